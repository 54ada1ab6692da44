/*
 * Lua 5.1 (LuaJIT) .. 5.4 C API compatibility, kept to what streamctl uses.
 * LuaJIT 2.1 (recognised by LUA_JITLIBNAME) already exports luaL_setfuncs, luaL_testudata and
 * luaL_setmetatable, so only plain PUC Lua 5.1 needs the fallbacks (inline: a file that uses
 * none of them is no warning; the Debian packages build the 5.1 modules against these headers).
 */
#ifndef STREAMCTL_COMPAT_H
#define STREAMCTL_COMPAT_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h> /* LuaJIT's defines LUA_JITLIBNAME */

#if LUA_VERSION_NUM == 501 && !defined(LUA_JITLIBNAME)
static inline void luaL_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
    luaL_checkstack(L, nup + 1, "too many upvalues");
    for (; l->name != NULL; l++) {
        int i;
        for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
static inline void *luaL_testudata(lua_State *L, int ud, const char *tname) {
    void *p = lua_touserdata(L, ud);
    if (p != NULL && lua_getmetatable(L, ud)) {
        luaL_getmetatable(L, tname);
        if (!lua_rawequal(L, -1, -2)) p = NULL;
        lua_pop(L, 2);
        return p;
    }
    return NULL;
}
static inline void luaL_setmetatable(lua_State *L, const char *tname) {
    luaL_getmetatable(L, tname);
    lua_setmetatable(L, -2);
}
#endif

/* luaL_error, luaL_argerror and lua_error never return (they longjmp, or
   throw under LuaJIT); the headers do not say so, and a static analyzer then
   follows paths past them that do not exist. Told here, for clang's
   analyzer (clang-tidy) only, never for the compilers. */
#if defined(__clang_analyzer__)
LUALIB_API int(luaL_error)(lua_State *L, const char *fmt, ...) __attribute__((noreturn));
LUALIB_API int(luaL_argerror)(lua_State *L, int arg, const char *extramsg) __attribute__((noreturn));
LUA_API int(lua_error)(lua_State *L) __attribute__((noreturn));
#endif

/* luaL_prepbuffsize(b, sz) for the 5.1 API, for sz <= SC_PREP_MAX: the room
   left in the buffer when it is enough, else luaL_prepbuffer (which empties
   the buffer onto the stack and gives all LUAL_BUFFERSIZE bytes). */
#define SC_PREP_MAX 3072
#if LUA_VERSION_NUM == 501
#if LUAL_BUFFERSIZE < SC_PREP_MAX
#error "LUAL_BUFFERSIZE is smaller than streamctl's encoding slices"
#endif
static inline char *sc_prepbuffsize(luaL_Buffer *b, size_t sz) {
    if ((size_t)(b->buffer + LUAL_BUFFERSIZE - b->p) >= sz) return b->p;
    return luaL_prepbuffer(b);
}
#else
#define sc_prepbuffsize(b, sz) luaL_prepbuffsize((b), (sz))
#endif

#if LUA_VERSION_NUM == 501
#define sc_rawlen(L, i) lua_objlen((L), (i))
#define sc_newlib(L, l) (lua_newtable(L), luaL_setfuncs((L), (l), 0))
#else
#define sc_rawlen(L, i) lua_rawlen((L), (i))
#define sc_newlib(L, l) luaL_newlib((L), (l))
#endif

/* A class's metatable `name` (once): methods as __index, `close` as __gc
   and (Lua 5.4) __close, `tostring`, __name, and a hidden metatable. */
static inline void sc_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                                lua_CFunction close, lua_CFunction tostring) {
    if (luaL_newmetatable(L, name)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, close);
        lua_setfield(L, -2, "__close"); /* Lua 5.4 to-be-closed variables */
        lua_pushcfunction(L, tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushstring(L, name);
        lua_setfield(L, -2, "__name");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
}

#endif
