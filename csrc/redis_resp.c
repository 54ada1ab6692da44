/*
 * The RESP encoding of a command for streamctl.redis (csrc/redis.c): its
 * arguments on the Lua stack (strings, binary-safe; numbers, integral ones
 * as decimal integers, others as "%.17g"), checked and measured before
 * anything is allocated, then written into a buffer the caller owns.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "compat.h"
#include "redis_resp.h"

#define NUMBER_MAX 32 /* room for "%.17g" and "%lld" */

/* "bad argument #n to 'fname' (why)": the same text whatever the call looks
   like (luaL_argerror counts self in some calls and not in others). */
int sc_arg_error(lua_State *L, const char *fname, int n, const char *why) {
    return luaL_error(L, "bad argument #%d to '%s' (%s)", n, fname, why);
}

/* A number argument as Redis reads it, into out; its length, or 0 when it
   is not finite. */
static size_t format_number(lua_State *L, int i, char *out) {
    lua_Number n;
    int len;
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, i)) {
        len = snprintf(out, NUMBER_MAX, "%lld", (long long)lua_tointeger(L, i));
        return len > 0 ? (size_t)len : 0;
    }
#endif
    n = lua_tonumber(L, i);
    if (!isfinite(n)) return 0;
    if (n >= -9223372036854775808.0 && n < 9223372036854775808.0 && n == (lua_Number)(long long)n)
        len = snprintf(out, NUMBER_MAX, "%lld", (long long)n);
    else
        len = snprintf(out, NUMBER_MAX, "%.17g", (double)n);
    return len > 0 ? (size_t)len : 0;
}

/* Decimal digits of v. */
static size_t digits(size_t v) {
    size_t d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

/* Checks the arguments 2..top and returns the size of their RESP encoding
   ("*argc\r\n" then "$len\r\n<bytes>\r\n" each); raises on a bad one. Nothing
   is allocated yet. */
size_t sc_resp_size(lua_State *L, int top) {
    size_t total = 1 + digits((size_t)(top - 1)) + 2;
    int i;
    for (i = 2; i <= top; i++) {
        size_t len, item;
        char num[NUMBER_MAX];
        int t = lua_type(L, i);
        if (t == LUA_TSTRING) {
            (void)lua_tolstring(L, i, &len);
        } else if (t == LUA_TNUMBER) {
            len = format_number(L, i, num);
            if (len == 0) sc_arg_error(L, "command", i - 1, "number must be finite");
        } else {
            lua_pushfstring(L, "string or number expected, got %s", luaL_typename(L, i));
            sc_arg_error(L, "command", i - 1, lua_tostring(L, -1));
            len = 0; /* not reached */
        }
        item = 1 + digits(len) + 2 + len + 2;
        if (len > SIZE_MAX / 2 || item > SIZE_MAX - total)
            sc_arg_error(L, "command", i - 1, "command too large");
        total += item;
    }
    return total;
}

/* Writes the RESP encoding of arguments 2..top into k->buf (large enough). */
size_t sc_resp_write(lua_State *L, int top, char *p) {
    char *start = p;
    int i;
    p += sprintf(p, "*%d\r\n", top - 1);
    for (i = 2; i <= top; i++) {
        size_t len;
        char num[NUMBER_MAX];
        const char *s;
        if (lua_type(L, i) == LUA_TSTRING) {
            s = lua_tolstring(L, i, &len);
        } else {
            len = format_number(L, i, num);
            s = num;
        }
        p += sprintf(p, "$%lu\r\n", (unsigned long)len);
        memcpy(p, s, len);
        p += len;
        *p++ = '\r';
        *p++ = '\n';
    }
    return (size_t)(p - start);
}
