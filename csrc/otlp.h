/* OTLP's protobuf Span message, written by csrc/otlp.c (the buffer, the
   shared writers, the plain span's encoder) and csrc/otlp_record.c (the
   record's encoder, the templates, the encoders' Lua functions), and kept
   by csrc/otlp_queue.c (the span queue). */
#ifndef STREAMCTL_OTLP_H
#define STREAMCTL_OTLP_H

#include "core.h"

/* Where a span is written: `p` holds `n` bytes of `cap`; `grow` replaces
   the storage by one of a larger capacity, the bytes kept (false when it
   cannot: `failed` is set, and the result is nil). `L` and `slot` are for
   a grow that keeps its storage on the Lua stack; `owner` for one that
   keeps it elsewhere. */
typedef struct obuf obuf;
struct obuf {
    lua_State *L;
    int slot;
    void *owner;
    unsigned char *p;
    size_t n, cap;
    int failed;
    int (*grow)(obuf *b, size_t cap);
};

int sc_otlp_reserve(obuf *b, size_t more);

static inline void put(obuf *b, const void *s, size_t len) {
    if (b->cap - b->n < len && !sc_otlp_reserve(b, len)) return; /* (the usual case: room, no call) */
    if (len) memcpy(b->p + b->n, s, len);
    b->n += len;
}

static inline void put_byte(obuf *b, unsigned char c) {
    if (b->cap == b->n && !sc_otlp_reserve(b, 1)) return;
    b->p[b->n++] = c;
}

void sc_otlp_put_bytes_field(obuf *b, unsigned char tag, const char *s, size_t len);
int sc_otlp_is_utf8(const unsigned char *s, size_t len);
size_t sc_otlp_open_field(obuf *b, unsigned char tag);
void sc_otlp_close_field(obuf *b, size_t start);

/* Values read at a stack index: false when not taken. */
int sc_otlp_text_at(lua_State *L, int idx, const char **s, size_t *len);
int sc_otlp_id_at(lua_State *L, int idx, size_t n, unsigned char *out, int *present);
int sc_otlp_micros(lua_State *L, int idx, uint64_t *us);

/* An attribute: its key (anchored by its table) and its value's stack index. */
typedef struct {
    const char *k;
    size_t len;
    int value;
} okey;

/* The most attributes a span may have for the C encoders (more: the Lua one). */
#define MAX_KEYS 64

int sc_otlp_key_ok(const char *k, size_t len); /* an attribute key: no NUL, UTF-8 */
int sc_otlp_collect_map(lua_State *L, int t, okey *keys, int *n);
size_t sc_otlp_varint_len(uint64_t v); /* a varint's bytes */
size_t sc_otlp_any(lua_State *L, int idx, unsigned char out[11], const char **s, size_t *slen);
size_t sc_otlp_key_head(size_t len, unsigned char out[11]);
int sc_otlp_put_kv_field(lua_State *L, obuf *b, unsigned char tag, const unsigned char *kh, size_t khlen,
                         const char *k, size_t klen, int value);
int sc_otlp_put_kv(lua_State *L, obuf *b, unsigned char tag, const char *k, size_t len, int value);
int sc_otlp_put_keys(lua_State *L, obuf *b, okey *keys, int n, unsigned char tag);
int sc_otlp_put_event_field(lua_State *L, obuf *b, int e);

/* What a span holds besides its attributes and events, read from either
   form before anything is written. */
typedef struct {
    unsigned char trace_id[16], span_id[8], parent[8];
    int has_parent, kind, code; /* kind: SpanKind (1-5); code: 0 unset (no status written), 1 ok, 2 error */
    const char *name, *state, *message, *head; /* head: the name and kind fields, encoded (then name, kind unused) */
    size_t name_len, state_len, message_len, head_len;
    uint64_t start_us, end_us;
} span_head;

void sc_otlp_put_head(obuf *b, const span_head *h);
void sc_otlp_put_status(obuf *b, const span_head *h);

/* The plain span (streamctl.pipeline.spans' table at `s`) into b: false when not taken. */
int sc_otlp_encode_span(lua_State *L, obuf *b, int s);

/* A record's slots (streamctl.base.spanrecord); the i-th name's value is
   at R_VALUES + i. On the stack, a record's slots lie one after another
   from its template's (at `s`): SLOT(s, slot). */
enum { R_TEMPLATE = 1, R_TRACE, R_SPAN, R_PARENT, R_STATE, R_START, R_END, R_STATUS, R_MESSAGE, R_EVENT, R_MORE };
#define R_VALUES R_MORE
#define SLOT(s, slot) ((s) + (slot) - R_TEMPLATE)

/* A record into b, from its slots on the stack (its template at `s`; its
   values from the table at `r`, or with `r` 0 from the stack at `v` on,
   none past `last`), or from the record table at `r`: false when not
   taken. What they push is left for the caller to pop. */
int sc_otlp_record_body(lua_State *L, obuf *b, int s, int r, int v, int last);
int sc_otlp_encode_record(lua_State *L, obuf *b, int r);

#endif
