/* core.otlp_span(span): one span of streamctl's (streamctl.pipeline.spans'
   plain table) as OTLP's protobuf Span message, the bytes
   streamctl.trace.otlp's Lua encoder makes, field for field (field number
   order, attributes sorted by key, times rounded to the microsecond, a
   oneof's default written). Written in C for its cost: the exporter
   encodes every span a call makes, and the Lua encoder spent more CPU on it
   than the rest of the call's tracing (docs/tracing.md, "What it costs").

   It never raises on a span: anything it does not take as it is (a string
   that is not UTF-8, a value of another type, an id that is not hex, a
   time out of range, a key with a NUL) returns nil, and the Lua encoder
   then says what is wrong or mends it (U+FFFD for bytes that are not
   UTF-8). Its output is on the C stack, or in a userdata when a span is
   bigger, so a memory error or a metamethod that raises leaks nothing.

   Field numbers: opentelemetry-proto, trace/v1/trace.proto and
   common/v1/common.proto (spec/helpers/otlp/trace.proto has them). */
#include "core.h"

/* The output: first in `small` (on the C stack: nothing to free, whatever
   raises), then, when a span needs more, in a userdata kept in the stack
   slot `slot` (Lua's memory: collected with it). */
#define SMALL 1536
typedef struct {
    lua_State *L;
    int slot;
    unsigned char *p;
    size_t n, cap;
    int failed; /* too big: the result is nil */
    unsigned char small[SMALL];
} obuf;

static int reserve(obuf *b, size_t more) {
    if (b->failed) return 0;
    if (b->cap - b->n >= more) return 1;
    size_t cap = b->cap;
    while (cap - b->n < more) {
        if (cap > ((size_t)1 << 26)) { b->failed = 1; return 0; } /* (64 MiB: no span of ours) */
        cap *= 2;
    }
    unsigned char *p = (unsigned char *)lua_newuserdata(b->L, cap);
    memcpy(p, b->p, b->n);
    lua_replace(b->L, b->slot); /* (the old storage, if a userdata, collected) */
    b->p = p;
    b->cap = cap;
    return 1;
}

static inline void put(obuf *b, const void *s, size_t len) {
    if (b->cap - b->n < len && !reserve(b, len)) return; /* (the usual case: room, no call) */
    if (len) memcpy(b->p + b->n, s, len);
    b->n += len;
}

static inline void put_byte(obuf *b, unsigned char c) {
    if (b->cap == b->n && !reserve(b, 1)) return;
    b->p[b->n++] = c;
}

static size_t varint_bytes(uint64_t v, unsigned char out[10]) {
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (unsigned char)v;
    return n;
}

static void put_varint(obuf *b, uint64_t v) {
    unsigned char tmp[10];
    put(b, tmp, varint_bytes(v, tmp));
}

static void put_fixed64(obuf *b, uint64_t v) {
    unsigned char tmp[8];
    for (int i = 0; i < 8; i++) tmp[i] = (unsigned char)(v >> (8 * i));
    put(b, tmp, 8);
}

/* A length-delimited field is written as its content, then its length put
   in front of it: `open` marks where the content starts, `close` inserts
   the varint there. */
static size_t open_field(obuf *b, unsigned char tag) {
    put_byte(b, tag);
    return b->n;
}

static void close_field(obuf *b, size_t start) {
    if (b->failed) return;
    unsigned char tmp[10];
    size_t k = varint_bytes((uint64_t)(b->n - start), tmp);
    if (!reserve(b, k)) return;
    memmove(b->p + start + k, b->p + start, b->n - start);
    memcpy(b->p + start, tmp, k);
    b->n += k;
}

static void put_bytes_field(obuf *b, unsigned char tag, const char *s, size_t len) {
    put_byte(b, tag);
    put_varint(b, len);
    put(b, s, len);
}

/* The Lua encoder's UTF-8 rule: what it keeps as it is. (ASCII, the usual
   text, is passed over eight bytes at a time.) */
static int is_utf8(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        if (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ULL) == 0) { i += 8; continue; }
        }
        unsigned char c = s[i];
        size_t need;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) need = 2;
        else if (c >= 0xF0 && c <= 0xF4) need = 3;
        else return 0;
        if (i + need >= len) return 0; /* (cut short) */
        for (size_t k = 1; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return 0;
        unsigned char b2 = s[i + 1];
        if ((c == 0xE0 && b2 < 0xA0) || (c == 0xED && b2 > 0x9F) || (c == 0xF0 && b2 < 0x90) ||
            (c == 0xF4 && b2 > 0x8F))
            return 0;
        i += need + 1;
    }
    return 1;
}

/* A string field of the span table (absent: *s NULL, true), UTF-8; false
   when it is there but no such string. Leaves nothing on the stack (the
   string stays anchored by the table). */
static int text_at(lua_State *L, int t, const char *name, const char **s, size_t *len) {
    lua_getfield(L, t, name);
    *s = NULL;
    *len = 0;
    int type = lua_type(L, -1);
    if (type == LUA_TNIL) { lua_pop(L, 1); return 1; }
    if (type != LUA_TSTRING) { lua_pop(L, 1); return 0; }
    *s = lua_tolstring(L, -1, len);
    lua_pop(L, 1);
    return is_utf8((const unsigned char *)*s, *len);
}

/* A hex digit's value (either case), or -1: a table made at the first call. */
static signed char HEX[256];
static int hex_ready;

static void hex_init(void) {
    for (int c = 0; c < 256; c++) HEX[c] = -1;
    for (int c = 0; c < 10; c++) HEX['0' + c] = (signed char)c;
    for (int c = 0; c < 6; c++) HEX['a' + c] = HEX['A' + c] = (signed char)(10 + c);
    hex_ready = 1;
}

static inline int hex_value(char c) { return HEX[(unsigned char)c]; }

/* An id of `n` bytes (2n hex digits, either case) into out: false when not. */
static int id_at(lua_State *L, int t, const char *name, size_t n, unsigned char *out, int *present) {
    lua_getfield(L, t, name);
    *present = !lua_isnil(L, -1);
    if (!*present) { lua_pop(L, 1); return 1; }
    size_t len;
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    int ok = s != NULL && len == 2 * n;
    for (size_t i = 0; ok && i < n; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0) ok = 0;
        else out[i] = (unsigned char)(hi * 16 + lo);
    }
    lua_pop(L, 1);
    return ok;
}

/* A time (Unix seconds) as whole microseconds, as the Lua encoder rounds it
   (its operations one by one, never fused: the same doubles). */
static int micros(lua_State *L, int idx, uint64_t *us) {
    if (lua_type(L, idx) != LUA_TNUMBER) return 0;
    double t = (double)lua_tonumber(L, idx);
    if (!(t >= 0 && t < 9.0e9)) return 0;
    volatile double s = floor(t);
    volatile double frac = t - s;
    volatile double scaled = frac * 1e6;
    volatile double r = floor(scaled + 0.5);
    volatile double whole = s * 1000000;
    *us = (uint64_t)(whole + r);
    return 1;
}

/* An attribute's value as AnyValue (Lua's any_pb): true, or false when the
   value is none of string (UTF-8), boolean, number. */
static int put_any(lua_State *L, obuf *b, int idx) {
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (!is_utf8((const unsigned char *)s, len)) return 0;
        put_bytes_field(b, 0x0A, s, len);
        return 1;
    }
    case LUA_TBOOLEAN:
        put_byte(b, 0x10);
        put_byte(b, lua_toboolean(L, idx) ? 1 : 0);
        return 1;
    case LUA_TNUMBER: {
#if LUA_VERSION_NUM >= 503
        if (lua_isinteger(L, idx)) {
            put_byte(b, 0x18);
            put_varint(b, (uint64_t)lua_tointeger(L, idx));
            return 1;
        }
#endif
        double v = (double)lua_tonumber(L, idx);
        if (v == floor(v) && v >= -9223372036854775808.0 && v < 9223372036854775808.0) {
            put_byte(b, 0x18);
            put_varint(b, (uint64_t)(int64_t)v);
            return 1;
        }
        uint64_t bits;
        memcpy(&bits, &v, sizeof bits);
        put_byte(b, 0x21);
        put_fixed64(b, bits);
        return 1;
    }
    default:
        return 0;
    }
}

typedef struct {
    const char *k;
    size_t len;
    int value; /* its value's stack index */
} okey;

/* The most attributes a table may have for this encoder (more: the Lua one). */
#define MAX_KEYS 64

static int key_order(const void *a, const void *b) {
    const okey *x = (const okey *)a, *y = (const okey *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->k, y->k, n);
    if (c != 0) return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* The attributes table at `t` (absent: nothing) as repeated KeyValue fields
   `tag`, sorted by key: false when a key or a value is not taken. Its
   values are kept on the stack while they are written (their keys, strings
   the table holds, stay where they are). */
static int put_attributes(lua_State *L, obuf *b, int t, unsigned char tag) {
    if (lua_isnil(L, t)) return 1;
    if (!lua_istable(L, t)) return 0;
    okey keys[MAX_KEYS];
    int base = lua_gettop(L), n = 0, ok = 1;
    if (!lua_checkstack(L, MAX_KEYS + 4)) return 0;
    lua_pushnil(L);
    while (lua_next(L, t)) { /* ..., values kept, key, value */
        lua_insert(L, -2);   /* ..., values kept, value, key: the key on top for lua_next */
        if (n >= MAX_KEYS || lua_type(L, -1) != LUA_TSTRING) { ok = 0; break; }
        keys[n].k = lua_tolstring(L, -1, &keys[n].len);
        keys[n].value = lua_gettop(L) - 1;
        if (memchr(keys[n].k, 0, keys[n].len) || !is_utf8((const unsigned char *)keys[n].k, keys[n].len)) {
            ok = 0;
            break;
        }
        n++;
    }
    if (ok) {
        /* (insertion sort: a span has a dozen attributes, and qsort would allocate) */
        for (int i = 1; i < n; i++) {
            okey k = keys[i];
            int j = i - 1;
            while (j >= 0 && key_order(&keys[j], &k) > 0) {
                keys[j + 1] = keys[j];
                j--;
            }
            keys[j + 1] = k;
        }
        for (int i = 0; ok && i < n; i++) {
            size_t kv = open_field(b, tag);
            if (keys[i].len > 0) put_bytes_field(b, 0x0A, keys[i].k, keys[i].len);
            size_t value = open_field(b, 0x12);
            ok = put_any(L, b, keys[i].value);
            close_field(b, value);
            close_field(b, kv);
        }
    }
    lua_settop(L, base);
    return ok;
}

static const char *const KINDS[] = {"internal", "server", "client", "producer", "consumer", NULL};
static const char *const CODES[] = {"unset", "ok", "error", NULL};

/* The place of the string at `idx` in `list` (whole: a NUL inside is no match), or -1. */
static int index_of(lua_State *L, int idx, const char *const *list) {
    if (lua_type(L, idx) != LUA_TSTRING) return -1;
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    for (int i = 0; list[i]; i++)
        if (strlen(list[i]) == len && memcmp(s, list[i], len) == 0) return i;
    return -1;
}

/* One event (the table at `e`) as the Event message's content: false when not taken. */
static int put_event(lua_State *L, obuf *b, int e) {
    if (!lua_istable(L, e)) return 0;
    const char *name;
    size_t name_len;
    if (!text_at(L, e, "name", &name, &name_len)) return 0;
    lua_getfield(L, e, "time");
    uint64_t us;
    int ok = micros(L, -1, &us);
    lua_pop(L, 1);
    if (!ok) return 0;
    if (us != 0) {
        put_byte(b, 0x09);
        put_fixed64(b, us * 1000);
    }
    if (name_len > 0) put_bytes_field(b, 0x12, name, name_len);
    lua_getfield(L, e, "attributes");
    ok = put_attributes(L, b, lua_gettop(L), 0x1A);
    lua_pop(L, 1);
    return ok;
}

static int encode_span(lua_State *L, obuf *b, int s) {
    unsigned char trace_id[16], span_id[8], parent[8];
    int has_trace, has_span, has_parent;
    if (!id_at(L, s, "trace_id", 16, trace_id, &has_trace) || !has_trace) return 0;
    if (!id_at(L, s, "span_id", 8, span_id, &has_span) || !has_span) return 0;
    if (!id_at(L, s, "parent_span_id", 8, parent, &has_parent)) return 0;
    const char *name, *state, *message = NULL;
    size_t name_len, state_len, message_len = 0;
    if (!text_at(L, s, "name", &name, &name_len) || !name) return 0;
    if (!text_at(L, s, "trace_state", &state, &state_len)) return 0;
    lua_getfield(L, s, "kind");
    int kind = index_of(L, -1, KINDS) + 1;
    lua_pop(L, 1);
    if (kind <= 0) return 0;
    uint64_t start_us, end_us;
    lua_getfield(L, s, "start_time");
    lua_getfield(L, s, "end_time");
    int ok = micros(L, -2, &start_us) && micros(L, -1, &end_us);
    lua_pop(L, 2);
    if (!ok) return 0;
    int code = 0, has_status;
    lua_getfield(L, s, "status");
    has_status = !lua_isnil(L, -1);
    if (has_status) {
        if (!lua_istable(L, -1)) { lua_pop(L, 1); return 0; }
        lua_getfield(L, -1, "code");
        code = index_of(L, -1, CODES);
        lua_pop(L, 1);
        if (code < 0) { lua_pop(L, 1); return 0; }
        if (code == 2) {
            ok = text_at(L, lua_gettop(L), "message", &message, &message_len);
            if (!ok) { lua_pop(L, 1); return 0; }
        }
    }
    lua_pop(L, 1);

    put_bytes_field(b, 0x0A, (const char *)trace_id, 16);
    put_bytes_field(b, 0x12, (const char *)span_id, 8);
    if (state && state_len > 0) put_bytes_field(b, 0x1A, state, state_len);
    if (has_parent) put_bytes_field(b, 0x22, (const char *)parent, 8);
    if (name_len > 0) put_bytes_field(b, 0x2A, name, name_len);
    put_byte(b, 0x30);
    put_byte(b, (unsigned char)kind);
    if (start_us != 0) { put_byte(b, 0x39); put_fixed64(b, start_us * 1000); }
    if (end_us != 0) { put_byte(b, 0x41); put_fixed64(b, end_us * 1000); }
    lua_getfield(L, s, "attributes");
    ok = put_attributes(L, b, lua_gettop(L), 0x4A);
    lua_pop(L, 1);
    if (!ok) return 0;
    lua_getfield(L, s, "events");
    int events = lua_gettop(L);
    if (!lua_isnil(L, events)) {
        if (!lua_istable(L, events)) { lua_pop(L, 1); return 0; }
#if LUA_VERSION_NUM >= 502
        size_t n = (size_t)lua_rawlen(L, events);
#else
        size_t n = lua_objlen(L, events);
#endif
        for (size_t j = 1; ok && j <= n; j++) {
            lua_rawgeti(L, events, (int)j);
            size_t ev = open_field(b, 0x5A);
            ok = put_event(L, b, lua_gettop(L));
            close_field(b, ev);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    if (!ok) return 0;
    if (has_status && code != 0) {
        size_t st = open_field(b, 0x7A);
        if (message && message_len > 0) put_bytes_field(b, 0x12, message, message_len);
        put_byte(b, 0x18);
        put_byte(b, (unsigned char)code);
        close_field(b, st);
    }
    return !b->failed;
}

static int l_otlp_span(lua_State *L) {
    lua_settop(L, 1);
    if (!hex_ready) hex_init(); /* (a race between two threads writes the same values) */
    if (!lua_istable(L, 1)) {
        lua_pushnil(L);
        return 1;
    }
    obuf b;
    b.L = L;
    b.slot = 2;
    lua_pushnil(L); /* (slot 2: the output's storage once it outgrows `small`) */
    b.p = b.small;
    b.n = 0;
    b.cap = SMALL;
    b.failed = 0;
    if (encode_span(L, &b, 1)) lua_pushlstring(L, (const char *)b.p, b.n);
    else lua_pushnil(L);
    return 1;
}

const luaL_Reg sc_otlp_funcs[] = {
    {"otlp_span", l_otlp_span},
    {NULL, NULL}};
