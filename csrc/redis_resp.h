/*
 * The RESP encoding of a command (csrc/redis_resp.c), for streamctl.redis.
 */
#ifndef STREAMCTL_REDIS_RESP_H
#define STREAMCTL_REDIS_RESP_H

#include <stddef.h>

#include "compat.h"

/* Raises "bad argument #n to 'fname' (why)". */
int sc_arg_error(lua_State *L, const char *fname, int n, const char *why);

/* The size of the RESP encoding of arguments 2..top; raises on a bad one
   (naming it as an argument of command). */
size_t sc_resp_size(lua_State *L, int top);

/* Writes that encoding into p (sc_resp_size bytes); its length. */
size_t sc_resp_write(lua_State *L, int top, char *p);

#endif
