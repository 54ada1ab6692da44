/*
 * A Lua 5.4 interpreter with symbols, for bench/profile/run.sh: Debian's
 * lua5.4 is stripped, so callgrind names none of its functions; this one
 * links Debian's liblua5.4.a (the same release) behind a minimal main:
 *
 *   lua54 script.lua [args...]     (arg as lua5.4 sets it, no options)
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>

int main(int argc, char **argv) {
    lua_State *L;
    int i, rc;
    if (argc < 2) {
        fprintf(stderr, "usage: lua54 script.lua [args...]\n");
        return 2;
    }
    L = luaL_newstate();
    if (L == NULL) return 1;
    luaL_openlibs(L);
    lua_createtable(L, argc, 0);
    for (i = 1; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");
    rc = luaL_loadfile(L, argv[1]);
    if (rc == LUA_OK) {
        for (i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
        rc = lua_pcall(L, argc - 2, 0, 0);
    }
    if (rc != LUA_OK) fprintf(stderr, "lua54: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return rc == LUA_OK ? 0 : 1;
}
