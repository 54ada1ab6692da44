/* The span queue (core.otlp_queue): an exporter's spans kept encoded, one
   after another, each as the ScopeSpans `spans` field it will be sent as,
   in one buffer of its own (freed by its __gc). A span is written there at
   once, with no Lua string made for it (csrc/otlp_record.c's encoder, or
   csrc/otlp.c's for a plain span), and a batch's request is made in one
   copy, into a string or into bytes the transport sends as they are
   (csrc/bytes.h). A span the encoder does not take is written nowhere (the
   exporter's Lua encoder then makes its bytes, `push`ed). */
#include "otlp.h"
#include "bytes.h"

#define QUEUE_MT "streamctl.otlp_queue"
#define QUEUE_MAX ((size_t)1 << 30) /* (1 GiB: a million spans of a kilobyte) */
#define QUEUE_ROOM 4096                 /* (a new buffer's room for spans, after its head) */

typedef struct {
    unsigned char *p; /* n bytes of cap: `head` bytes of room, then `count` spans, each 0x12, its length, its bytes */
    size_t n, cap, head;
    lua_Integer count;
    char *parts; /* a request's resource field, then its scope field: rlen and slen bytes */
    size_t rlen, slen;
    lua_Integer most, dropped; /* the tracer methods': the most spans they queue (0: no bound), those they dropped */
    lua_Integer dropped_roots; /* of those dropped, traces' local roots (taken up to twice `most`) */
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
static int q_record(lua_State *L) { return put_span(L, sc_otlp_encode_record); }
static int q_span(lua_State *L) { return put_span(L, sc_otlp_encode_span); }

/* The tracer methods' work (q:tracer): the span at 2 (`positional`: the
   record's slots from the template on, as arguments; else the record
   table) appended, unless the queue is stopped or holds its most (then it
   is counted dropped): `most`, or twice that for a trace's local root
   (upvalue 3 true: the span a trace's others hang from, ended last, is
   kept past the children that filled the queue). A span the encoder does
   not take goes to the fallback (upvalue 2) as `fallback(self, record)`, a
   table made of the arguments when they came so; what the fallback raises
   is raised. */
static int tracer_add(lua_State *L, int positional) {
    otlp_queue *q = (otlp_queue *)lua_touserdata(L, lua_upvalueindex(1));
    int root = lua_toboolean(L, lua_upvalueindex(3));
    if (!q->parts || q->stopped || (q->most > 0 && q->count >= (root ? 2 * q->most : q->most))) {
        q->dropped++;
        if (root) q->dropped_roots++;
        return 0;
    }
    int top = lua_gettop(L), ok;
    if (positional && top < SLOT(2, R_MORE)) lua_settop(L, SLOT(2, R_MORE)); /* (slots not given: nil) */
    obuf b = writer(L, q);
    size_t start = sc_otlp_open_field(&b, 0x12);
    if (positional) ok = sc_otlp_record_body(L, &b, 2, 0, SLOT(2, R_VALUES + 1), top);
    else ok = lua_istable(L, 2) && sc_otlp_encode_record(L, &b, 2);
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
   (streamctl.base.spanrecord), then the same two for a trace's local root
   (`record_root`, `put_root`), each a C function from the client's call
   to the queue: they queue at most `most` spans (0: no bound; a root's,
   up to twice that) and count those they drop (q:dropped());
   `fallback(self, rec)` is handed what the encoder does not take. */
static int q_tracer(lua_State *L) {
    otlp_queue *q = open_queue(L);
    lua_Integer most = luaL_checkinteger(L, 2);
    /* (at most 2^30: twice it, a root's bound, in range) */
    luaL_argcheck(L, most >= 0 && most <= ((lua_Integer)1 << 30), 2, "most must be 0 (no bound) to 2^30");
    luaL_checktype(L, 3, LUA_TFUNCTION);
    q->most = most;
    for (int root = 0; root <= 1; root++) {
        for (int positional = 0; positional <= 1; positional++) {
            lua_pushvalue(L, 1);
            lua_pushvalue(L, 3);
            lua_pushboolean(L, root);
            lua_pushcclosure(L, positional ? tracer_put : tracer_record, 3);
        }
    }
    return 4;
}

/* q:stop(): the tracer methods take no more spans (each counted dropped). */
static int q_stop(lua_State *L) {
    otlp_queue *q = (otlp_queue *)luaL_checkudata(L, 1, QUEUE_MT);
    q->stopped = 1;
    return 0;
}

/* q:dropped(): how many spans the tracer methods dropped, in all, and how
   many of them were traces' local roots. */
static int q_dropped(lua_State *L) {
    otlp_queue *q = (otlp_queue *)luaL_checkudata(L, 1, QUEUE_MT);
    lua_pushinteger(L, q->dropped);
    lua_pushinteger(L, q->dropped_roots);
    return 2;
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

/* q:take(n[, into]): the first n spans (at most all) taken off the queue,
   as an ExportTraceServiceRequest's bytes (one ResourceSpans of the
   queue's resource field, one ScopeSpans of its scope field and the
   spans): a string, or written into `into` (core.bytes(): raises while a
   transfer sends it), which is returned; and how many spans it holds.
   What goes before the spans is written in the room kept for it before
   them. Into bytes, a take of every span queued (an exporter's batch, as a
   rule) copies nothing: the queue's buffer becomes the bytes' and the
   bytes' old one the queue's, the two taking turns from batch to batch. A
   batch is a few hundred kilobytes, out of the caches by the time it is
   sent (the calls since the last batch pushed it out): reading it to find
   its end and copying it cost an exporter 0.4 us a call (docs/tracing.md,
   "What it costs"). A string is a copy, and a large allocation of Lua's
   collector. */
static int q_take(lua_State *L) {
    otlp_queue *q = open_queue(L);
    lua_Integer want = luaL_checkinteger(L, 2);
    sc_bytes *into = lua_isnoneornil(L, 3) ? NULL : (sc_bytes *)luaL_checkudata(L, 3, SC_BYTES_MT);
    if (want > q->count) want = q->count;
    if (want < 0) want = 0;
    size_t spans = 0, head = q->head;
    /* The spans' bytes: all the queue holds, or the first `want` spans' (each: 0x12, a varint, that many
       bytes), found by reading each one's length. (Not read for a take of them all: a batch's lengths lie
       across a few hundred kilobytes, in as many lines of memory the caches no longer hold.) */
    int whole = want == q->count;
    if (whole) {
        spans = q->n - head;
    } else {
        for (lua_Integer i = 0; i < want; i++) {
            size_t len = 0, at = head + spans + 1;
            for (int shift = 0; at < q->n && shift < 64; shift += 7) {
                unsigned char c = q->p[at++];
                len |= (size_t)(c & 0x7F) << shift;
                if (c < 0x80) break;
            }
            spans = at + len - head;
        }
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
    if (into && want > 0 && whole) {
        sc_bytes_writable(L, into);
        /* (the queue's next buffer: the bytes' old one, or a new one when that has no room for the head) */
        unsigned char *next = into->p;
        size_t next_cap = into->cap;
        if (next_cap < head + QUEUE_ROOM) {
            next_cap = head + QUEUE_ROOM;
            next = (unsigned char *)malloc(next_cap);
            if (!next) return luaL_error(L, "the span queue: out of memory");
            free(into->p);
        }
        into->p = q->p;
        into->cap = q->cap;
        into->off = (size_t)(start - q->p);
        into->n = before + spans;
        q->p = next;
        q->cap = next_cap;
        q->n = head;
        q->count -= want;
        lua_settop(L, 3);
        lua_pushinteger(L, want);
        return 2;
    }
    if (into) {
        unsigned char *to = sc_bytes_room(L, into, before + spans);
        if (!to) return luaL_error(L, "the span queue: out of memory");
        memcpy(to, start, before + spans);
        into->n = before + spans;
        lua_settop(L, 3);
    } else {
        lua_pushlstring(L, (const char *)start, before + spans);
    }
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
    q->p = (unsigned char *)malloc(q->head + QUEUE_ROOM);
    if (!q->p) return luaL_error(L, "the span queue: out of memory");
    q->n = q->head;
    q->cap = q->head + QUEUE_ROOM;
    return 1;
}

const luaL_Reg sc_otlp_queue_funcs[] = {{"otlp_queue", l_otlp_queue}, {NULL, NULL}};
