/* streamctl.core's bytes (csrc/bytes.h): memory of the C heap, held by a
   small userdata and freed by its __gc, whose capacity is kept from one
   use to the next (a span queue's request, written into it each batch). */
#include "core.h"
#include "bytes.h"

static sc_bytes *check_bytes(lua_State *L, int idx) { return (sc_bytes *)luaL_checkudata(L, idx, SC_BYTES_MT); }

void sc_bytes_writable(lua_State *L, const sc_bytes *b) {
    if (b->busy > 0) luaL_error(L, "streamctl.bytes: not written while a transfer sends them");
}

unsigned char *sc_bytes_room(lua_State *L, sc_bytes *b, size_t n) {
    sc_bytes_writable(L, b);
    b->n = b->off = 0;
    if (n > b->cap) {
        unsigned char *p = (unsigned char *)realloc(b->p, n);
        if (p == NULL) return NULL;
        b->p = p;
        b->cap = n;
    }
    return b->p;
}

static int bytes_gc(lua_State *L) {
    sc_bytes *b = check_bytes(L, 1);
    if (b->busy > 0) return 0; /* (a transfer may still read them: only as the state closes; left then) */
    free(b->p);
    b->p = NULL;
    b->n = b->cap = b->off = 0;
    return 0;
}

static int bytes_len(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)check_bytes(L, 1)->n);
    return 1;
}

/* b:string(): the bytes, as a Lua string (a copy). */
static int bytes_string(lua_State *L) {
    sc_bytes *b = check_bytes(L, 1);
    lua_pushlstring(L, b->n ? (const char *)sc_bytes_data(b) : "", b->n);
    return 1;
}

/* b:sending(): whether a transfer may read them now (then they are not written). */
static int bytes_sending(lua_State *L) {
    lua_pushboolean(L, check_bytes(L, 1)->busy > 0);
    return 1;
}

static int bytes_tostring(lua_State *L) {
    lua_pushfstring(L, "streamctl.bytes (%d bytes)", (int)check_bytes(L, 1)->n);
    return 1;
}

static const luaL_Reg bytes_methods[] = {{"string", bytes_string}, {"sending", bytes_sending}, {NULL, NULL}};

/* core.bytes(): new, empty bytes. */
static int l_bytes(lua_State *L) {
    sc_bytes *b = (sc_bytes *)lua_newuserdata(L, sizeof *b);
    memset(b, 0, sizeof *b);
    sc_new_class(L, SC_BYTES_MT, bytes_methods, bytes_gc, bytes_tostring);
    luaL_getmetatable(L, SC_BYTES_MT);
    lua_pushcfunction(L, bytes_len);
    lua_setfield(L, -2, "__len");
    lua_setmetatable(L, -2);
    return 1;
}

const luaL_Reg sc_bytes_funcs[] = {{"bytes", l_bytes}, {NULL, NULL}};
