/* OTLP's protobuf Span message: the buffer it is written to, the writers
   both of streamctl's span forms share, and the plain span's encoder
   (streamctl.pipeline.spans' table; core.otlp_span, in csrc/otlp_record.c
   beside the record's encoder and the span queue). The bytes are those
   streamctl.trace.otlp's Lua encoder makes, field for field (field number
   order, attributes sorted by key, times rounded to the microsecond, a
   oneof's default written). Written in C for its cost: the exporter
   encodes every span a call makes, and the Lua encoder spent more CPU on it
   than the rest of the call's tracing (docs/tracing.md, "What it costs").

   No encoder raises on a span: anything it does not take as it is (a
   string that is not UTF-8, a value of another type, an id that is not
   hex, a time out of range, a key with a NUL, a key twice) gives false,
   and the Lua encoder then says what is wrong or mends it (U+FFFD for
   bytes that are not UTF-8). Nothing it writes to is the C heap's but a
   queue's buffer, which its userdata owns: a memory error or a metamethod
   that raises leaks nothing.

   Field numbers: opentelemetry-proto, trace/v1/trace.proto and
   common/v1/common.proto (spec/helpers/otlp/trace.proto has them). */
#include "otlp.h"

int sc_otlp_reserve(obuf *b, size_t more) {
    if (b->failed) return 0;
    if (b->cap - b->n >= more) return 1;
    size_t cap = b->cap < 256 ? 256 : b->cap;
    while (cap - b->n < more) {
        if (cap > SIZE_MAX / 4) { b->failed = 1; return 0; }
        cap *= 2;
    }
    if (!b->grow(b, cap)) { b->failed = 1; return 0; }
    return 1;
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
    if (b->cap - b->n < 10 && !sc_otlp_reserve(b, 10)) return;
    b->n += varint_bytes(v, b->p + b->n);
}

/* A fixed64 field: its tag, then v's 8 bytes, least significant first
   (a little-endian machine's own order: one store). */
static void put_fixed64_field(obuf *b, unsigned char tag, uint64_t v) {
    if (b->cap - b->n < 9 && !sc_otlp_reserve(b, 9)) return;
    unsigned char *o = b->p + b->n;
    o[0] = tag;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(o + 1, &v, 8);
#else
    for (int i = 0; i < 8; i++) o[1 + i] = (unsigned char)(v >> (8 * i));
#endif
    b->n += 9;
}

/* A length-delimited field is written as its content, then its length put
   in front of it: `open` writes the tag and one byte for the length, and
   marks where the content starts; `close` writes the length there, moving
   the content only when the length takes more than one byte (128 bytes
   of content or more: a whole span, seldom one of its fields). */
size_t sc_otlp_open_field(obuf *b, unsigned char tag) {
    put_byte(b, tag);
    put_byte(b, 0);
    return b->n;
}

void sc_otlp_close_field(obuf *b, size_t start) {
    if (b->failed) return;
    uint64_t len = (uint64_t)(b->n - start);
    if (len < 0x80) {
        b->p[start - 1] = (unsigned char)len;
        return;
    }
    unsigned char tmp[10];
    size_t k = varint_bytes(len, tmp);
    if (!sc_otlp_reserve(b, k - 1)) return;
    memmove(b->p + start + k - 1, b->p + start, (size_t)len);
    memcpy(b->p + start - 1, tmp, k);
    b->n += k - 1;
}

void sc_otlp_put_bytes_field(obuf *b, unsigned char tag, const char *s, size_t len) {
    put_byte(b, tag);
    put_varint(b, len);
    put(b, s, len);
}

/* The Lua encoder's UTF-8 rule: what it keeps as it is. (ASCII, the usual
   text, is passed over eight bytes at a time.) */
int sc_otlp_is_utf8(const unsigned char *s, size_t len) {
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

/* The value at `idx` as a string field (nil: *s NULL, true), UTF-8; false
   when it is something else. (What it points to is anchored by the value.) */
int sc_otlp_text_at(lua_State *L, int idx, const char **s, size_t *len) {
    *s = NULL;
    *len = 0;
    int type = lua_type(L, idx);
    if (type == LUA_TNIL) return 1;
    if (type != LUA_TSTRING) return 0;
    *s = lua_tolstring(L, idx, len);
    return sc_otlp_is_utf8((const unsigned char *)*s, *len);
}

/* The field `name` of the table at `t` as a string field (popped: the
   string stays anchored by the table). */
static int text_at(lua_State *L, int t, const char *name, const char **s, size_t *len) {
    lua_getfield(L, t, name);
    int ok = sc_otlp_text_at(L, -1, s, len);
    lua_pop(L, 1);
    return ok;
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

/* The value at `idx` as an id of `n` bytes (2n hex digits, either case)
   into out (nil: *present false, true): false when it is something else. */
int sc_otlp_id_at(lua_State *L, int idx, size_t n, unsigned char *out, int *present) {
    if (!hex_ready) hex_init(); /* (a race between two threads writes the same values) */
    int type = lua_type(L, idx);
    *present = type != LUA_TNIL;
    if (!*present) return 1;
    size_t len;
    const char *s = type == LUA_TSTRING ? lua_tolstring(L, idx, &len) : NULL;
    if (s == NULL || len != 2 * n) return 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
        bad |= hi | lo; /* (a -1 sets the sign bit: checked once, after) */
        out[i] = (unsigned char)(hi * 16 + lo);
    }
    return bad >= 0;
}

static int id_at(lua_State *L, int t, const char *name, size_t n, unsigned char *out, int *present) {
    lua_getfield(L, t, name);
    int ok = sc_otlp_id_at(L, -1, n, out, present);
    lua_pop(L, 1);
    return ok;
}

/* A time (Unix seconds) as whole microseconds, as the Lua encoder rounds it
   (its operations one by one, never fused: the same doubles). */
int sc_otlp_micros(lua_State *L, int idx, uint64_t *us) {
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

/* An attribute's value (at `idx`) as AnyValue's content (Lua's any_pb):
   its bytes in `out` (how many: 0 when the value is none of string, UTF-8,
   boolean, number), then, for a string, the string's `*slen` bytes at
   `*s` (anchored by the value). */
size_t sc_otlp_any(lua_State *L, int idx, unsigned char out[11], const char **s, size_t *slen) {
    *s = NULL;
    *slen = 0;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        *s = lua_tolstring(L, idx, slen);
        if (!sc_otlp_is_utf8((const unsigned char *)*s, *slen)) return 0;
        out[0] = 0x0A;
        return 1 + varint_bytes(*slen, out + 1);
    case LUA_TBOOLEAN:
        out[0] = 0x10;
        out[1] = lua_toboolean(L, idx) ? 1 : 0;
        return 2;
    case LUA_TNUMBER: {
#if LUA_VERSION_NUM >= 503
        if (lua_isinteger(L, idx)) {
            out[0] = 0x18;
            return 1 + varint_bytes((uint64_t)lua_tointeger(L, idx), out + 1);
        }
#endif
        double v = (double)lua_tonumber(L, idx);
        if (v == floor(v) && v >= -9223372036854775808.0 && v < 9223372036854775808.0) {
            out[0] = 0x18;
            return 1 + varint_bytes((uint64_t)(int64_t)v, out + 1);
        }
        uint64_t bits;
        memcpy(&bits, &v, sizeof bits);
        out[0] = 0x21;
        for (int i = 0; i < 8; i++) out[1 + i] = (unsigned char)(bits >> (8 * i));
        return 9;
    }
    default:
        return 0;
    }
}

size_t sc_otlp_varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* A KeyValue field `tag`: its key field (KeyValue's field 1: `kh`, khlen
   bytes, then `k`, klen bytes; none at all for an empty key, which
   protobuf leaves out) and the value at `value`, its lengths known before
   a byte is written (nothing moved); false when the value is not taken. */
int sc_otlp_put_kv_field(lua_State *L, obuf *b, unsigned char tag, const unsigned char *kh, size_t khlen,
                         const char *k, size_t klen, int value) {
    unsigned char any[11];
    const char *s;
    size_t slen, alen = sc_otlp_any(L, value, any, &s, &slen);
    if (alen == 0) return 0;
    uint64_t anylen = alen + slen, kvlen = khlen + klen + 1 + sc_otlp_varint_len(anylen) + anylen;
    if (!sc_otlp_reserve(b, 1 + 10 + kvlen)) return 0;
    unsigned char *o = b->p + b->n;
    *o++ = tag;
    o += varint_bytes(kvlen, o);
    memcpy(o, kh, khlen);
    o += khlen;
    if (klen) memcpy(o, k, klen);
    o += klen;
    *o++ = 0x12;
    o += varint_bytes(anylen, o);
    memcpy(o, any, alen);
    o += alen;
    if (slen) memcpy(o, s, slen);
    b->n = (size_t)(o + slen - b->p);
    return 1;
}

/* A key's field's head (its tag and length) into `out`: how many bytes (0
   for an empty key, which protobuf leaves out with its field). */
size_t sc_otlp_key_head(size_t len, unsigned char out[11]) {
    if (len == 0) return 0;
    out[0] = 0x0A;
    return 1 + varint_bytes(len, out + 1);
}

static int key_order(const okey *x, const okey *y) {
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->k, y->k, n);
    if (c != 0) return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* Whether `k` is taken as an attribute's key: no NUL, UTF-8 (a record's
   names are checked by the same rule as a plain span's keys). */
int sc_otlp_key_ok(const char *k, size_t len) {
    return !memchr(k, 0, len) && sc_otlp_is_utf8((const unsigned char *)k, len);
}

/* One attribute's key (the string at `k`, kept anchored by its table) and
   its value (left on the stack): false when the key is not taken. */
static int add_key(lua_State *L, okey *keys, int *n, int k) {
    if (*n >= MAX_KEYS || lua_type(L, k) != LUA_TSTRING) return 0;
    okey *o = &keys[*n];
    o->k = lua_tolstring(L, k, &o->len);
    o->value = lua_gettop(L);
    if (!sc_otlp_key_ok(o->k, o->len)) return 0;
    (*n)++;
    return 1;
}

/* The attributes of the map at `t` (absent: none) added to `keys`, their
   values kept on the stack while they are written: false when a key or
   the map is not taken. The caller restores the stack. */
int sc_otlp_collect_map(lua_State *L, int t, okey *keys, int *n) {
    if (lua_isnil(L, t)) return 1;
    if (!lua_istable(L, t) || !lua_checkstack(L, MAX_KEYS + 4)) return 0;
    lua_pushnil(L);
    while (lua_next(L, t)) { /* ..., values kept, key, value */
        lua_insert(L, -2);   /* ..., values kept, value, key: the key on top for lua_next */
        if (!add_key(L, keys, n, lua_gettop(L))) return 0;
        keys[*n - 1].value = lua_gettop(L) - 1;
    }
    return 1;
}

/* One attribute as a KeyValue field `tag`: the key `k`, the value at
   stack index `value`; false when the value is not taken. */
int sc_otlp_put_kv(lua_State *L, obuf *b, unsigned char tag, const char *k, size_t len, int value) {
    unsigned char kh[11];
    return sc_otlp_put_kv_field(L, b, tag, kh, sc_otlp_key_head(len, kh), k, len, value);
}

/* The attributes in `keys` as repeated KeyValue fields `tag`, sorted by key
   (the Lua encoder's order): false when a key is there twice or a value is
   not taken. */
int sc_otlp_put_keys(lua_State *L, obuf *b, okey *keys, int n, unsigned char tag) {
    /* (insertion sort: a dozen keys, often sorted already, in one pass then;
       qsort would allocate) */
    for (int i = 1; i < n; i++) {
        int c = key_order(&keys[i - 1], &keys[i]);
        if (c == 0) return 0;
        if (c < 0) continue;
        okey k = keys[i];
        int j = i - 1;
        while (j >= 0 && (c = key_order(&keys[j], &k)) > 0) {
            keys[j + 1] = keys[j];
            j--;
        }
        if (j >= 0 && c == 0) return 0;
        keys[j + 1] = k;
    }
    for (int i = 0; i < n; i++)
        if (!sc_otlp_put_kv(L, b, tag, keys[i].k, keys[i].len, keys[i].value)) return 0;
    return 1;
}

/* The attributes table at `t` (absent: nothing) as repeated KeyValue
   fields `tag`: false when a key or a value is not taken. */
static int put_attributes(lua_State *L, obuf *b, int t, unsigned char tag) {
    okey keys[MAX_KEYS];
    int base = lua_gettop(L), n = 0;
    int ok = sc_otlp_collect_map(L, t, keys, &n) && sc_otlp_put_keys(L, b, keys, n, tag);
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
    int ok = sc_otlp_micros(L, -1, &us);
    lua_pop(L, 1);
    if (!ok) return 0;
    if (us != 0) put_fixed64_field(b, 0x09, us * 1000);
    if (name_len > 0) sc_otlp_put_bytes_field(b, 0x12, name, name_len);
    lua_getfield(L, e, "attributes");
    ok = put_attributes(L, b, lua_gettop(L), 0x1A);
    lua_pop(L, 1);
    return ok;
}

/* The event at `e` as a Span's events field. */
int sc_otlp_put_event_field(lua_State *L, obuf *b, int e) {
    size_t ev = sc_otlp_open_field(b, 0x5A);
    int ok = put_event(L, b, e);
    sc_otlp_close_field(b, ev);
    return ok;
}

/* The Span's fields 1 to 8, in field number order. */
void sc_otlp_put_head(obuf *b, const span_head *h) {
    sc_otlp_put_bytes_field(b, 0x0A, (const char *)h->trace_id, 16);
    sc_otlp_put_bytes_field(b, 0x12, (const char *)h->span_id, 8);
    if (h->state && h->state_len > 0) sc_otlp_put_bytes_field(b, 0x1A, h->state, h->state_len);
    if (h->has_parent) sc_otlp_put_bytes_field(b, 0x22, (const char *)h->parent, 8);
    if (h->head) {
        put(b, h->head, h->head_len);
    } else {
        if (h->name_len > 0) sc_otlp_put_bytes_field(b, 0x2A, h->name, h->name_len);
        put_byte(b, 0x30);
        put_byte(b, (unsigned char)h->kind);
    }
    if (h->start_us != 0) put_fixed64_field(b, 0x39, h->start_us * 1000);
    if (h->end_us != 0) put_fixed64_field(b, 0x41, h->end_us * 1000);
}

/* The Span's status (field 15), when it has one. */
void sc_otlp_put_status(obuf *b, const span_head *h) {
    if (h->code == 0) return;
    size_t st = sc_otlp_open_field(b, 0x7A);
    if (h->message && h->message_len > 0) sc_otlp_put_bytes_field(b, 0x12, h->message, h->message_len);
    put_byte(b, 0x18);
    put_byte(b, (unsigned char)h->code);
    sc_otlp_close_field(b, st);
}

/* A plain span's status table (on top of the stack, popped) into h: false when not taken. */
static int status_of(lua_State *L, span_head *h) {
    int t = lua_gettop(L), ok = 1;
    h->code = 0;
    if (!lua_isnil(L, t)) {
        ok = lua_istable(L, t);
        if (ok) {
            lua_getfield(L, t, "code");
            h->code = index_of(L, -1, CODES);
            lua_pop(L, 1);
            ok = h->code >= 0;
        }
        if (ok && h->code == 2) ok = text_at(L, t, "message", &h->message, &h->message_len);
    }
    lua_pop(L, 1);
    return ok;
}

/* A plain span (streamctl.pipeline.spans' table at `s`). */
int sc_otlp_encode_span(lua_State *L, obuf *b, int s) {
    span_head h = {0};
    int has_trace, has_span;
    if (!id_at(L, s, "trace_id", 16, h.trace_id, &has_trace) || !has_trace) return 0;
    if (!id_at(L, s, "span_id", 8, h.span_id, &has_span) || !has_span) return 0;
    if (!id_at(L, s, "parent_span_id", 8, h.parent, &h.has_parent)) return 0;
    if (!text_at(L, s, "name", &h.name, &h.name_len) || !h.name) return 0;
    if (!text_at(L, s, "trace_state", &h.state, &h.state_len)) return 0;
    lua_getfield(L, s, "kind");
    h.kind = index_of(L, -1, KINDS) + 1;
    lua_pop(L, 1);
    if (h.kind <= 0) return 0;
    lua_getfield(L, s, "start_time");
    lua_getfield(L, s, "end_time");
    int ok = sc_otlp_micros(L, -2, &h.start_us) && sc_otlp_micros(L, -1, &h.end_us);
    lua_pop(L, 2);
    lua_getfield(L, s, "status");
    if (!ok || !status_of(L, &h)) return 0;

    sc_otlp_put_head(b, &h);
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
            ok = sc_otlp_put_event_field(L, b, lua_gettop(L));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    if (!ok) return 0;
    sc_otlp_put_status(b, &h);
    return !b->failed;
}

