/*
 * One libFuzzer harness for every fuzz target (make fuzz): a Lua 5.4 state
 * with streamctl's C modules linked in (built with the fuzzer and ASan/UBSan),
 * the repository's src/ on package.path, and a target, fuzz/targets/NAME.lua,
 * chosen at build time (-DFUZZ_TARGET="NAME"). A target is a function of the
 * input bytes that checks its own invariants and raises when one breaks;
 * whatever it raises, and every crash or sanitizer report, is a finding.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "compat.h"

#ifndef FUZZ_TARGET
#error "build with -DFUZZ_TARGET=\"name\""
#endif
#ifndef FUZZ_ROOT
#error "build with -DFUZZ_ROOT=\"/path/to/the/repository\""
#endif

int luaopen_streamctl_core(lua_State *L);
int luaopen_streamctl_curl(lua_State *L);

static lua_State *state;
static int target_ref = LUA_NOREF;
static unsigned long runs;

static void die(const char *what) {
    fprintf(stderr, "fuzz harness (%s): %s: %s\n", FUZZ_TARGET, what, lua_tostring(state, -1));
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    state = luaL_newstate();
    if (state == NULL) abort();
    luaL_openlibs(state);
    lua_getglobal(state, "package");
    lua_getfield(state, -1, "preload");
    lua_pushcfunction(state, luaopen_streamctl_core);
    lua_setfield(state, -2, "streamctl.core");
    lua_pushcfunction(state, luaopen_streamctl_curl);
    lua_setfield(state, -2, "streamctl.curl");
    lua_pop(state, 1);
    lua_pushstring(state, FUZZ_ROOT "/src/?.lua;" FUZZ_ROOT "/src/?/init.lua;" FUZZ_ROOT "/fuzz/?.lua;"
                          "/usr/share/lua/5.4/?.lua;/usr/share/lua/5.4/?/init.lua");
    lua_setfield(state, -2, "path");
    lua_pop(state, 1);
    lua_getglobal(state, "require");
    lua_pushstring(state, "targets." FUZZ_TARGET);
    if (lua_pcall(state, 1, 1, 0) != LUA_OK) die("loading the target");
    if (lua_type(state, -1) != LUA_TFUNCTION) die("the target is not a function");
    target_ref = luaL_ref(state, LUA_REGISTRYINDEX);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lua_rawgeti(state, LUA_REGISTRYINDEX, target_ref);
    lua_pushlstring(state, (const char *)data, size);
    if (lua_pcall(state, 1, 0, 0) != LUA_OK) die("the target raised");
    lua_settop(state, 0);
    if (++runs % 4096 == 0) lua_gc(state, LUA_GCCOLLECT, 0);
    return 0;
}
