/* Bytes one of streamctl's C modules hands another without a Lua string:
   a full userdata of metatable SC_BYTES_MT (made by streamctl.core's
   `bytes()`, csrc/bytes.c) that begins with an sc_bytes. The span queue
   writes a batch's request into one (csrc/otlp_queue.c) and the libcurl
   transport sends it as a request's body (csrc/curl_request.c). A batch of
   a few hundred kilobytes is then neither a new Lua string each time (a
   large allocation of the C heap, and as much work for Lua's collector)
   nor copied once more.

   Who sends the bytes counts itself in `busy` while it may read them (a
   transfer, from its start to its end); nothing writes or frees them while
   `busy` is above 0. The modules are built from one tree: the layout is the
   same on both sides. */
#ifndef STREAMCTL_BYTES_H
#define STREAMCTL_BYTES_H

#include "compat.h"

#include <stddef.h>

#define SC_BYTES_MT "streamctl.bytes"

typedef struct {
    unsigned char *p; /* cap bytes, malloc'd (NULL while cap is 0); the content: n bytes at p + off */
    size_t n, cap, off;
    int busy; /* the transfers that may read p now */
} sc_bytes;

/* The content's first byte (n of them). */
static inline const unsigned char *sc_bytes_data(const sc_bytes *b) { return b->p + b->off; }

/* The bytes at `idx`, or NULL when the value is something else. */
static inline sc_bytes *sc_bytes_at(lua_State *L, int idx) {
    return (sc_bytes *)luaL_testudata(L, idx, SC_BYTES_MT);
}

/* Raises while a transfer reads b: nothing may write it, free it or give
   it other storage then. (streamctl.core's: not for another module.) */
void sc_bytes_writable(lua_State *L, const sc_bytes *b);

/* Room for `n` bytes in b, its content dropped: b's storage (the content
   to be written at its start), or NULL when it cannot grow. Raises while a
   transfer reads b. (streamctl.core's: not for another module.) */
unsigned char *sc_bytes_room(lua_State *L, sc_bytes *b, size_t n);

#endif
