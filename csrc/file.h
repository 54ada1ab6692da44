/* streamctl.core's file operations (csrc/file.c) and its lock
   (csrc/lock.c), registered into the module's table by
   luaopen_streamctl_core; the opening and the failure message they share. */
#ifndef STREAMCTL_FILE_H
#define STREAMCTL_FILE_H

#include "compat.h"

extern const luaL_Reg sc_file_funcs[];
extern const luaL_Reg sc_lock_funcs[];

/* Opens the regular file at `path` (csrc/file.c): the descriptor, or -1
   with nil and why pushed. */
int sc_open_regular(lua_State *L, const char *path, int flags, const char *what);
/* Pushes nil and "cannot WHAT PATH: strerror(err)"; returns 2. */
int sc_push_failure(lua_State *L, const char *what, const char *path, int err);

#endif
