/* streamctl.core.fingerprint_set (csrc/fingerprint.c): sets the module
   table's field, the table on the top of the stack. */
#ifndef STREAMCTL_FINGERPRINT_H
#define STREAMCTL_FINGERPRINT_H

#include "compat.h"

void sc_fingerprint_open(lua_State *L);

#endif
