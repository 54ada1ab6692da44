/* streamctl.core's file operations (csrc/file.c), registered into the
   module's table by luaopen_streamctl_core. */
#ifndef STREAMCTL_FILE_H
#define STREAMCTL_FILE_H

#include "compat.h"

extern const luaL_Reg sc_file_funcs[];

#endif
