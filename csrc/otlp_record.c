/* The record's encoder (core.otlp_record, and csrc/otlp_queue.c's), the
   span templates (core.otlp_template) and the Lua function of csrc/otlp.c's
   plain-span encoder (core.otlp_span).

   A record (streamctl.base.spanrecord) is read by index, with no key looked
   up; what its template fixes (the name, the kind, the constant
   attributes) is copied as the template's bytes (core.otlp_template made
   them once). It makes the bytes the plain span it stands for makes
   (spec/trace/05 holds them to the Lua encoder's); a record with `more`
   attributes is left to the Lua encoder (a batch's span, one per batch). */
#include "otlp.h"

/* A template's slots (spanrecord.template). */
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
int sc_otlp_record_body(lua_State *L, obuf *b, int s, int r, int v, int last) {
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
int sc_otlp_encode_record(lua_State *L, obuf *b, int r) {
    int base = lua_gettop(L);
    int ok = lua_checkstack(L, R_MORE + 8);
    if (ok) {
        for (int i = R_TEMPLATE; i <= R_MORE; i++) lua_rawgeti(L, r, i);
        ok = sc_otlp_record_body(L, b, base + 1, r, 0, 0);
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
static int l_otlp_record(lua_State *L) { return encode_with(L, sc_otlp_encode_record); }

const luaL_Reg sc_otlp_funcs[] = {
    {"otlp_span", l_otlp_span},
    {"otlp_record", l_otlp_record},
    {"otlp_template", l_otlp_template},
    {NULL, NULL}};
