/* The record's encoder (core.otlp_record), the span queue (core.otlp_queue)
   and the Lua functions of csrc/otlp.c's plain-span encoder (core.otlp_span).

   A record (streamctl.base.spanrecord) is read by index, with no key looked
   up; what its template fixes (the name, the kind, the constant
   attributes) is copied as the template's bytes (core.otlp_template made
   them once). It makes the bytes the plain span it stands for makes
   (spec/trace/05 holds them to the Lua encoder's); a record with `more`
   attributes is left to the Lua encoder (a batch's span, one per batch).

   The queue keeps an exporter's spans encoded, one after another, each as
   the ScopeSpans `spans` field it will be sent as, in one buffer of its
   own (freed by its __gc): a span is written there at once, with no Lua
   string made for it, and a batch's request is made in one copy. A span
   the encoder does not take is written nowhere (the exporter's Lua encoder
   then makes its bytes, `push`ed). */
#include "otlp.h"

/* The record's slots (streamctl.base.spanrecord), and its template's. */
enum { R_TEMPLATE = 1, R_TRACE, R_SPAN, R_PARENT, R_STATE, R_START, R_END, R_STATUS, R_MESSAGE, R_EVENT, R_MORE };
#define R_VALUES R_MORE /* (the i-th name's value is at R_VALUES + i) */
enum { T_HEAD = 1, T_FIXED, T_BEFORE, T_NAMES, T_KEYS };

/* A small whole number at `idx`, from lo to hi; -1 when not. */
static int small_at(lua_State *L, int idx, int lo, int hi) {
    if (lua_type(L, idx) != LUA_TNUMBER) return -1;
    lua_Number x = lua_tonumber(L, idx);
    return x >= lo && x <= hi && x == floor(x) ? (int)x : -1;
}

/* The string at `idx`, or NULL. */
static const char *string_at(lua_State *L, int idx, size_t *len) {
    return lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, len) : NULL;
}

/* The record's attributes: each name's key field, as its template's `keys`
   has it (a byte, its length, then the field: core.otlp_template made
   them), with the record's value (a nil value: no attribute); the
   template's constants (encoded) where they sort among them. The i-th
   value is the table's (at `r`, read by index) or, with `r` 0, the stack's
   at `v + i - 1` (none past `last`: nil). */
static int put_values(lua_State *L, obuf *b, int r, int v, int last, const unsigned char *keys, size_t keys_len,
                      int before, const char *fixed, size_t fixed_len) {
    int top = lua_gettop(L), i = 0;
    for (size_t at = 0; at < keys_len; at += 1 + keys[at]) {
        const unsigned char *key = keys + at + 1;
        size_t klen = keys[at];
        if (klen > keys_len - at - 1) return 0; /* (not core.otlp_template's: a made-up template) */
        if (i++ == before) put(b, fixed, fixed_len);
        int idx = v + i - 1;
        if (r) {
            lua_rawgeti(L, r, R_VALUES + i);
            idx = top + 1;
        }
        int ok = (r == 0 && idx > last) || lua_type(L, idx) == LUA_TNIL ||
                 sc_otlp_put_kv_field(L, b, 0x4A, key, klen, NULL, 0, idx);
        if (r) lua_settop(L, top);
        if (!ok) return 0;
    }
    if (i == before) put(b, fixed, fixed_len);
    return i >= before;
}

/* A record's slots on the stack: its template at `s`, then its slots
   from its trace id to its `more`, one after another (SLOT); its values
   as put_values reads them (`r`, `v`, `last`). What it pushes (the
   template's strings) is left for the caller to pop. */
#define SLOT(s, slot) ((s) + (slot) - R_TEMPLATE)

static int record_body(lua_State *L, obuf *b, int s, int r, int v, int last) {
    span_head h = {0};
    size_t fixed_len, keys_len;
    int has_trace, has_span, base = lua_gettop(L);
    if (!lua_istable(L, s)) return 0;
    lua_rawgeti(L, s, T_HEAD);
    lua_rawgeti(L, s, T_FIXED);
    lua_rawgeti(L, s, T_KEYS);
    lua_rawgeti(L, s, T_BEFORE);
    h.head = string_at(L, base + 1, &h.head_len);
    const char *fixed = string_at(L, base + 2, &fixed_len);
    const unsigned char *keys = (const unsigned char *)string_at(L, base + 3, &keys_len);
    int before = small_at(L, base + 4, 0, MAX_KEYS);
    /* (more attributes, a batch's counts: sorted among the rest by the Lua encoder) */
    if (!h.head || !fixed || !keys || before < 0 || !lua_isnil(L, SLOT(s, R_MORE))) return 0;
    if (!sc_otlp_id_at(L, SLOT(s, R_TRACE), 16, h.trace_id, &has_trace) || !has_trace) return 0;
    if (!sc_otlp_id_at(L, SLOT(s, R_SPAN), 8, h.span_id, &has_span) || !has_span) return 0;
    if (!sc_otlp_id_at(L, SLOT(s, R_PARENT), 8, h.parent, &h.has_parent)) return 0;
    if (!sc_otlp_text_at(L, SLOT(s, R_STATE), &h.state, &h.state_len)) return 0;
    h.code = small_at(L, SLOT(s, R_STATUS), 0, 2);
    if (h.code < 0) return 0;
    if (h.code == 2 && !sc_otlp_text_at(L, SLOT(s, R_MESSAGE), &h.message, &h.message_len)) return 0;
    if (!sc_otlp_micros(L, SLOT(s, R_START), &h.start_us) || !sc_otlp_micros(L, SLOT(s, R_END), &h.end_us))
        return 0;

    sc_otlp_put_head(b, &h);
    if (!put_values(L, b, r, v, last, keys, keys_len, before, fixed, fixed_len)) return 0;
    int e = SLOT(s, R_EVENT);
    if (!lua_isnil(L, e) && !sc_otlp_put_event_field(L, b, e)) return 0;
    sc_otlp_put_status(b, &h);
    return !b->failed;
}

/* A record (the table at `r`): its template and slots read once, by index, onto the stack. */
static int encode_record(lua_State *L, obuf *b, int r) {
    int base = lua_gettop(L);
    int ok = lua_checkstack(L, R_MORE + 8);
    if (ok) {
        for (int i = R_TEMPLATE; i <= R_MORE; i++) lua_rawgeti(L, r, i);
        ok = record_body(L, b, base + 1, r, 0, 0);
    }
    lua_settop(L, base);
    return ok;
}

/* ---------------------------------------------------------------- one span as a string */

/* A span's bytes, first in a buffer on the C stack (nothing to free,
   whatever raises), then, when it needs more, in a userdata kept in the
   stack slot `slot` (Lua's memory: collected with it). */
#define SMALL 1536
#define SPAN_MAX ((size_t)1 << 26) /* (64 MiB: no span of ours) */

static int grow_userdata(obuf *b, size_t cap) {
    if (cap > SPAN_MAX) return 0;
    unsigned char *p = (unsigned char *)lua_newuserdata(b->L, cap);
    memcpy(p, b->p, b->n);
    lua_replace(b->L, b->slot); /* (the old storage, if a userdata, collected) */
    b->p = p;
    b->cap = cap;
    return 1;
}

/* The encoder `encode` over the table at 1: its bytes, or nil. */
static int encode_with(lua_State *L, int (*encode)(lua_State *, obuf *, int)) {
    lua_settop(L, 1);
    if (!lua_istable(L, 1)) {
        lua_pushnil(L);
        return 1;
    }
    unsigned char small[SMALL];
    lua_pushnil(L); /* (slot 2: the output's storage once it outgrows `small`) */
    obuf b = {L, 2, NULL, small, 0, SMALL, 0, grow_userdata};
    if (encode(L, &b, 1) && !b.failed) lua_pushlstring(L, (const char *)b.p, b.n);
    else lua_pushnil(L);
    return 1;
}

static int l_otlp_span(lua_State *L) { return encode_with(L, sc_otlp_encode_span); }

/* The key fields of the names in the array at `t` into b, each after a
   byte of its length (a record's values go with them: put_values): false
   when a name is not a key of at most 125 bytes. */
static int put_key_fields(lua_State *L, obuf *b, int t) {
    int base = lua_gettop(L);
    for (int i = 1;; i++) {
        lua_settop(L, base);
        lua_rawgeti(L, t, i);
        if (lua_isnil(L, -1)) break;
        size_t len;
        const char *k = string_at(L, -1, &len);
        unsigned char kh[11];
        if (!k || len > 125 || !sc_otlp_key_ok(k, len)) return 0;
        size_t h = sc_otlp_key_head(len, kh);
        put_byte(b, (unsigned char)(h + len));
        put(b, kh, h);
        put(b, k, len);
    }
    lua_settop(L, base);
    return !b->failed;
}

/* core.otlp_template(name, kind, constants, names): a span template's
   bytes (its name and kind fields; its constant attributes' fields, sorted
   by key; its names' key fields, for put_values), or nil and why. */
static int l_otlp_template(lua_State *L) {
    size_t name_len;
    const char *name = luaL_checklstring(L, 1, &name_len);
    lua_Integer kind = luaL_checkinteger(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_settop(L, 4);
    const char *why = NULL;
    if (kind < 1 || kind > 5) why = "the kind must be 1 to 5";
    else if (!sc_otlp_is_utf8((const unsigned char *)name, name_len)) why = "the name must be UTF-8";
    if (why) {
        lua_pushnil(L);
        lua_pushstring(L, why);
        return 2;
    }
    unsigned char small[SMALL];
    lua_pushnil(L); /* (slot 5: the output's storage once it outgrows `small`) */
    obuf b = {L, 5, NULL, small, 0, SMALL, 0, grow_userdata};
    if (name_len > 0) sc_otlp_put_bytes_field(&b, 0x2A, name, name_len);
    put_byte(&b, 0x30);
    put_byte(&b, (unsigned char)kind);
    if (b.failed) return luaL_error(L, "otlp_template: out of memory");
    lua_pushlstring(L, (const char *)b.p, b.n); /* 6 */
    b.n = 0;
    okey keys[MAX_KEYS];
    int n = 0, ok = sc_otlp_collect_map(L, 3, keys, &n) && sc_otlp_put_keys(L, &b, keys, n, 0x4A) && !b.failed;
    lua_settop(L, 6);
    if (!ok) {
        lua_pushnil(L);
        lua_pushstring(L, "the constants must map UTF-8 names (at most 64) to strings, numbers or booleans");
        return 2;
    }
    lua_pushlstring(L, (const char *)b.p, b.n); /* 7 */
    b.n = 0;
    if (!put_key_fields(L, &b, 4)) {
        lua_pushnil(L);
        lua_pushstring(L, "the names must be UTF-8 strings of at most 125 bytes, with no NUL");
        return 2;
    }
    lua_pushlstring(L, (const char *)b.p, b.n);
    return 3;
}
static int l_otlp_record(lua_State *L) { return encode_with(L, encode_record); }

/* ---------------------------------------------------------------- the queue */

#define QUEUE_MT "streamctl.otlp_queue"
#define QUEUE_MAX ((size_t)1 << 30) /* (1 GiB: a million spans of a kilobyte) */

typedef struct {
    unsigned char *p; /* n bytes of cap: `head` bytes of room, then `count` spans, each 0x12, its length, its bytes */
    size_t n, cap, head;
    lua_Integer count;
    char *parts; /* a request's resource field, then its scope field: rlen and slen bytes */
    size_t rlen, slen;
    lua_Integer most, dropped; /* the tracer methods': the most spans they queue (0: no bound), those they dropped */
    int stopped;               /* 1: they take no more (q:stop()) */
} otlp_queue;

static int grow_queue(obuf *b, size_t cap) {
    otlp_queue *q = (otlp_queue *)b->owner;
    if (cap > QUEUE_MAX) return 0;
    unsigned char *p = (unsigned char *)realloc(q->p, cap);
    if (!p) return 0;
    q->p = b->p = p;
    q->cap = b->cap = cap;
    return 1;
}

/* The queue at 1, open (a closed one, to-be-closed or collected, raises). */
static otlp_queue *open_queue(lua_State *L) {
    otlp_queue *q = (otlp_queue *)luaL_checkudata(L, 1, QUEUE_MT);
    if (!q->parts) luaL_error(L, "the span queue is closed");
    return q;
}

/* The queue's writer, at its end: what it writes is the queue's once committed. */
static obuf writer(lua_State *L, otlp_queue *q) {
    obuf b = {L, 0, q, q->p, q->n, q->cap, 0, grow_queue};
    return b;
}

/* Appends the span at 2 by `encode`, unless the queue holds the most it
   may already (3, an integer; none: no bound): true, or false when not
   taken (nothing appended), or nil when full. */
static int put_span(lua_State *L, int (*encode)(lua_State *, obuf *, int)) {
    otlp_queue *q = open_queue(L);
    int bounded = !lua_isnoneornil(L, 3);
    lua_Integer most = bounded ? luaL_checkinteger(L, 3) : 0;
    lua_settop(L, 2);
    if (bounded && q->count >= most) {
        lua_pushnil(L);
        return 1;
    }
    int ok = lua_istable(L, 2);
    if (ok) {
        obuf b = writer(L, q);
        size_t start = sc_otlp_open_field(&b, 0x12);
        ok = encode(L, &b, 2);
        sc_otlp_close_field(&b, start);
        if (ok && !b.failed) {
            q->n = b.n;
            q->count++;
        } else {
            ok = 0;
        }
    }
    lua_pushboolean(L, ok);
    return 1;
}

/* q:record(rec[, most]), q:span(span[, most]): the span appended (true), not
   taken (false), or not appended to a queue that holds `most` (nil). */
static int q_record(lua_State *L) { return put_span(L, encode_record); }
static int q_span(lua_State *L) { return put_span(L, sc_otlp_encode_span); }

/* The tracer methods' work (q:tracer): the span at 2 (`positional`: the
   record's slots from the template on, as arguments; else the record
   table) appended, unless the queue is stopped or holds its most (then it
   is counted dropped). A span the encoder does not take goes to the
   fallback (upvalue 2) as `fallback(self, record)`, a table made of the
   arguments when they came so; what the fallback raises is raised. */
static int tracer_add(lua_State *L, int positional) {
    otlp_queue *q = (otlp_queue *)lua_touserdata(L, lua_upvalueindex(1));
    if (!q->parts || q->stopped || (q->most > 0 && q->count >= q->most)) {
        q->dropped++;
        return 0;
    }
    int top = lua_gettop(L), ok;
    if (positional && top < SLOT(2, R_MORE)) lua_settop(L, SLOT(2, R_MORE)); /* (slots not given: nil) */
    obuf b = writer(L, q);
    size_t start = sc_otlp_open_field(&b, 0x12);
    if (positional) ok = record_body(L, &b, 2, 0, SLOT(2, R_VALUES + 1), top);
    else ok = lua_istable(L, 2) && encode_record(L, &b, 2);
    sc_otlp_close_field(&b, start);
    if (ok && !b.failed) {
        q->n = b.n;
        q->count++;
        return 0;
    }
    lua_settop(L, top);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, 1);
    if (positional) {
        lua_createtable(L, top > 1 ? top - 1 : 0, 0);
        for (int i = 2; i <= top; i++) {
            lua_pushvalue(L, i);
            lua_rawseti(L, -2, i - 1);
        }
    } else {
        lua_pushvalue(L, 2);
    }
    lua_call(L, 2, 0);
    return 0;
}

static int tracer_record(lua_State *L) { return tracer_add(L, 0); }
static int tracer_put(lua_State *L) { return tracer_add(L, 1); }

/* q:tracer(most, fallback): the queue's `record(self, rec)` and
   `put(self, template, trace_id, ...)`, a tracer's two methods
   (streamctl.base.spanrecord), each a C function from the client's call
   to the queue: they queue at most `most` spans (0: no bound) and count
   those they drop (q:dropped()); `fallback(self, rec)` is handed what the
   encoder does not take. */
static int q_tracer(lua_State *L) {
    otlp_queue *q = open_queue(L);
    lua_Integer most = luaL_checkinteger(L, 2);
    luaL_argcheck(L, most >= 0, 2, "most must be 0 (no bound) or more");
    luaL_checktype(L, 3, LUA_TFUNCTION);
    q->most = most;
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 3);
    lua_pushcclosure(L, tracer_record, 2);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 3);
    lua_pushcclosure(L, tracer_put, 2);
    return 2;
}

/* q:stop(): the tracer methods take no more spans (each counted dropped). */
static int q_stop(lua_State *L) {
    otlp_queue *q = (otlp_queue *)luaL_checkudata(L, 1, QUEUE_MT);
    q->stopped = 1;
    return 0;
}

/* q:dropped(): how many spans the tracer methods dropped, in all. */
static int q_dropped(lua_State *L) {
    otlp_queue *q = (otlp_queue *)luaL_checkudata(L, 1, QUEUE_MT);
    lua_pushinteger(L, q->dropped);
    return 1;
}

/* q:push(bytes): a Span message made elsewhere, appended; raises when the queue cannot grow. */
static int q_push(lua_State *L) {
    otlp_queue *q = open_queue(L);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    obuf b = writer(L, q);
    size_t start = sc_otlp_open_field(&b, 0x12);
    put(&b, s, len);
    sc_otlp_close_field(&b, start);
    if (b.failed) return luaL_error(L, "the span queue cannot grow: out of memory");
    q->n = b.n;
    q->count++;
    return 0;
}

static int q_count(lua_State *L) {
    otlp_queue *q = (otlp_queue *)luaL_checkudata(L, 1, QUEUE_MT);
    lua_pushinteger(L, q->count);
    return 1;
}

static unsigned char *put_len(unsigned char *o, unsigned char tag, size_t v) {
    *o++ = tag;
    while (v >= 0x80) {
        *o++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *o++ = (unsigned char)v;
    return o;
}

/* q:take(n): the first n spans (at most all) taken off the queue, as an
   ExportTraceServiceRequest's bytes (one ResourceSpans of the queue's
   resource field, one ScopeSpans of its scope field and the spans); and
   how many spans it holds. What goes before the spans is written in the
   room kept for it before them, so that the request is made in one copy:
   a batch is a few hundred kilobytes, and each large allocation costs its
   share of the C heap's upkeep. */
static int q_take(lua_State *L) {
    otlp_queue *q = open_queue(L);
    lua_Integer want = luaL_checkinteger(L, 2);
    if (want > q->count) want = q->count;
    if (want < 0) want = 0;
    size_t spans = 0, head = q->head;
    for (lua_Integer i = 0; i < want; i++) { /* (each: 0x12, a varint, that many bytes) */
        size_t len = 0, at = head + spans + 1;
        for (int shift = 0; at < q->n && shift < 64; shift += 7) {
            unsigned char c = q->p[at++];
            len |= (size_t)(c & 0x7F) << shift;
            if (c < 0x80) break;
        }
        spans = at + len - head;
    }
    if (head + spans > q->n) return luaL_error(L, "the span queue is corrupt");
    size_t rlen = q->rlen, slen = q->slen;
    size_t ss = slen + spans, rs = rlen + 1 + sc_otlp_varint_len(ss) + ss;
    size_t before = 1 + sc_otlp_varint_len(rs) + rlen + 1 + sc_otlp_varint_len(ss) + slen; /* (at most head: see l_otlp_queue) */
    unsigned char *start = q->p + head - before, *o = start;
    o = put_len(o, 0x0A, rs);
    memcpy(o, q->parts, rlen);
    o = put_len(o + rlen, 0x12, ss);
    memcpy(o, q->parts + rlen, slen);
    lua_pushlstring(L, (const char *)start, before + spans);
    memmove(q->p + head, q->p + head + spans, q->n - head - spans);
    q->n -= spans;
    q->count -= want;
    lua_pushinteger(L, want);
    return 2;
}

/* q:clear(): every span dropped; how many there were. */
static int q_clear(lua_State *L) {
    otlp_queue *q = (otlp_queue *)luaL_checkudata(L, 1, QUEUE_MT);
    lua_pushinteger(L, q->count);
    q->n = q->head;
    q->count = 0;
    return 1;
}

static int q_gc(lua_State *L) {
    otlp_queue *q = (otlp_queue *)luaL_checkudata(L, 1, QUEUE_MT);
    free(q->p);
    free(q->parts);
    q->p = NULL;
    q->parts = NULL;
    q->n = q->cap = q->head = q->rlen = q->slen = 0;
    q->count = 0;
    return 0;
}

static int q_tostring(lua_State *L) {
    otlp_queue *q = (otlp_queue *)luaL_checkudata(L, 1, QUEUE_MT);
    lua_pushfstring(L, "streamctl.otlp_queue (%d spans)", (int)q->count);
    return 1;
}

static const luaL_Reg queue_methods[] = {
    {"record", q_record}, {"span", q_span},   {"push", q_push},       {"count", q_count},     {"take", q_take},
    {"clear", q_clear},   {"tracer", q_tracer}, {"stop", q_stop}, {"dropped", q_dropped}, {NULL, NULL}};

/* core.otlp_queue(resource_field, scope_field): a new, empty queue, whose
   requests carry that resource and scope (each a whole field: tag, length,
   bytes; streamctl.trace.otlp's request_parts). */
static int l_otlp_queue(lua_State *L) {
    size_t rlen, slen;
    const char *resource = luaL_checklstring(L, 1, &rlen), *scope = luaL_checklstring(L, 2, &slen);
    otlp_queue *q = (otlp_queue *)lua_newuserdata(L, sizeof *q);
    memset(q, 0, sizeof *q);
    sc_new_class(L, QUEUE_MT, queue_methods, q_gc, q_tostring);
    luaL_getmetatable(L, QUEUE_MT);
    lua_setmetatable(L, -2);
    q->parts = (char *)malloc(rlen + slen + 1);
    if (!q->parts) return luaL_error(L, "the span queue: out of memory");
    memcpy(q->parts, resource, rlen);
    memcpy(q->parts + rlen, scope, slen);
    q->rlen = rlen;
    q->slen = slen;
    /* (the room before the spans: a request's fields before them, two tags and two lengths of at most 10 bytes) */
    q->head = rlen + slen + 22;
    q->p = (unsigned char *)malloc(q->head + 4096);
    if (!q->p) return luaL_error(L, "the span queue: out of memory");
    q->n = q->head;
    q->cap = q->head + 4096;
    return 1;
}

const luaL_Reg sc_otlp_funcs[] = {
    {"otlp_span", l_otlp_span},
    {"otlp_record", l_otlp_record},
    {"otlp_template", l_otlp_template},
    {"otlp_queue", l_otlp_queue},
    {NULL, NULL}};
