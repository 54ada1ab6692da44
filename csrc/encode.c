/* streamctl.core, encode.c: RFC 3986 percent-encoding (the providers' rule) and the
   canonical query (parameters sorted by raw name, repeats kept in order). */
#include "core.h"

/* ------------------------------------------------------------------ */
/* Encoding                                                           */

/* 1 for the bytes RFC 3986 leaves unreserved (A-Z a-z 0-9 - _ . ~). */
const unsigned char sc_unreserved[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};


/* Percent-encodes s[0..n) into out (room for 3n bytes); returns the length. */
size_t sc_encode_into(char *out, const char *s, size_t n, int keep_slash) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    char *o = out;
    while (p < end) {
        unsigned char c = *p++;
        if (sc_unreserved[c] || (keep_slash && c == '/')) {
            *o++ = (char)c;
        } else {
            o[0] = '%';
            o[1] = sc_hexu[c >> 4];
            o[2] = sc_hexu[c & 15];
            o += 3;
        }
    }
    return (size_t)(o - out);
}

void sc_add_encoded(luaL_Buffer *b, const char *s, size_t n, int keep_slash) {
    /* in slices, so the room asked for stays small whatever n is */
    while (n > 0) {
        size_t k = n < SC_PREP_MAX / 3 ? n : SC_PREP_MAX / 3;
        char *out = sc_prepbuffsize(b, 3 * k);
        luaL_addsize(b, sc_encode_into(out, s, k, keep_slash));
        s += k;
        n -= k;
    }
}

/* Writes n bytes as 2n lower-case hex characters (no NUL). */
void sc_to_hex(char *out, const unsigned char *p, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = sc_hex[p[i] >> 4];
        out[2 * i + 1] = sc_hex[p[i] & 15];
    }
}

/* Pushes n bytes (n <= MAX_RANDOM_BYTES) as lower-case hex. */
void sc_push_hex(lua_State *L, const unsigned char *p, size_t n) {
    char out[2 * MAX_RANDOM_BYTES];
    if (n > MAX_RANDOM_BYTES) n = MAX_RANDOM_BYTES;
    sc_to_hex(out, p, n);
    lua_pushlstring(L, out, 2 * n);
}

static int l_percent_encode(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    sc_add_encoded(&b, s, n, 0);
    luaL_pushresult(&b);
    return 1;
}

/* ------------------------------------------------------------------ */
/* Parameter sets: name -> string, or name -> array of strings        */
/* (repeated name). Sorted by raw name bytes; repeats keep order.     */

static int param_cmp(const void *a, const void *b) {
    const sc_param *x = (const sc_param *)a, *y = (const sc_param *)b;
    const unsigned char *p = (const unsigned char *)x->k, *q = (const unsigned char *)y->k;
    size_t n = x->kl < y->kl ? x->kl : y->kl, i;
    /* names are short and differ early: a loop beats a call to memcmp */
    for (i = 0; i < n; i++)
        if (p[i] != q[i]) return p[i] < q[i] ? -1 : 1;
    if (x->kl != y->kl) return x->kl < y->kl ? -1 : 1;
    return x->order < y->order ? -1 : (x->order > y->order ? 1 : 0);
}

static const char *param_name(lua_State *L, int kidx, size_t *kl) {
    if (lua_type(L, kidx) != LUA_TSTRING)
        luaL_error(L, "parameter names must be strings (got %s)", luaL_typename(L, kidx));
    return lua_tolstring(L, kidx, kl);
}

/* Sorts ps[0..n) by param_cmp: insertion sort for the few a request has
   (no allocation, and fast at that size), qsort beyond. */
static void sort_params(sc_param *ps, size_t n) {
    size_t i, j;
    if (n > 32) {
        qsort(ps, n, sizeof(sc_param), param_cmp);
        return;
    }
    for (i = 1; i < n; i++) {
        sc_param x = ps[i];
        for (j = i; j > 0 && param_cmp(&ps[j - 1], &x) > 0; j--) ps[j] = ps[j - 1];
        ps[j] = x;
    }
}


/* Adds the parameter at the stack top (key at -2) to ps (room for cap);
   returns the new count, or cap + 1 when it does not fit (nothing added). */
static size_t add_param(lua_State *L, sc_param *ps, size_t i, size_t cap) {
    size_t kl;
    const char *k = param_name(L, -2, &kl);
    if (lua_type(L, -1) == LUA_TSTRING) {
        if (i >= cap) return cap + 1;
        ps[i].k = k; ps[i].kl = kl; ps[i].order = i;
        ps[i].v = lua_tolstring(L, -1, &ps[i].vl);
        return i + 1;
    }
    if (lua_type(L, -1) == LUA_TTABLE) {
        size_t j, m = sc_rawlen(L, -1);
        if (i + m > cap) return cap + 1;
        for (j = 1; j <= m; j++) {
            lua_rawgeti(L, -1, (int)j);
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "parameter '%s' item %d must be a string (got %s)", k, (int)j,
                           luaL_typename(L, -1));
            ps[i].k = k; ps[i].kl = kl; ps[i].order = i;
            ps[i].v = lua_tolstring(L, -1, &ps[i].vl);
            lua_pop(L, 1);
            i++;
        }
        return i;
    }
    luaL_error(L, "parameter '%s' must be a string or an array of strings (got %s)", k, luaL_typename(L, -1));
    return 0;
}

/*
 * Collects the parameters of the table at tidx into a sorted array: `small`
 * (SMALL_PARAMS entries, the caller's) when they fit, in one pass; else a
 * userdata sized by a count. Either way one value is pushed (nil or that
 * userdata), for the caller to remove. The strings stay referenced by the
 * table, which the caller keeps on the stack.
 */
sc_param *sc_collect_params(lua_State *L, int tidx, size_t *count, sc_param *small) {
    size_t i = 0;
    sc_param *ps = small;
    tidx = tidx < 0 ? lua_gettop(L) + tidx + 1 : tidx;
    lua_pushnil(L); /* the slot for a userdata */
    lua_pushnil(L);
    while (lua_next(L, tidx) != 0) {
        i = add_param(L, small, i, SMALL_PARAMS);
        if (i > SMALL_PARAMS) {
            lua_pop(L, 2);
            break;
        }
        lua_pop(L, 1);
    }
    if (i > SMALL_PARAMS) { /* many: count them, then collect into a userdata */
        size_t n = 0;
        lua_pushnil(L);
        while (lua_next(L, tidx) != 0) {
            n += lua_type(L, -1) == LUA_TTABLE ? sc_rawlen(L, -1) : 1;
            lua_pop(L, 1);
        }
        ps = (sc_param *)lua_newuserdata(L, n * sizeof(sc_param));
        lua_replace(L, -2);
        i = 0;
        lua_pushnil(L);
        while (lua_next(L, tidx) != 0) {
            i = add_param(L, ps, i, n);
            if (i > n) luaL_error(L, "parameters changed while being read");
            lua_pop(L, 1);
        }
    }
    sort_params(ps, i);
    *count = i;
    return ps;
}

static void add_canonical_query(luaL_Buffer *b, const sc_param *ps, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        if (i) luaL_addchar(b, '&');
        sc_add_encoded(b, ps[i].k, ps[i].kl, 0);
        luaL_addchar(b, '=');
        sc_add_encoded(b, ps[i].v, ps[i].vl, 0);
    }
}

/* Pushes the canonical query of the table at tidx. */
void sc_push_canonical_query(lua_State *L, int tidx) {
    size_t n;
    luaL_Buffer b;
    sc_param small[SMALL_PARAMS];
    sc_param *ps = sc_collect_params(L, tidx, &n, small);
    luaL_buffinit(L, &b);
    add_canonical_query(&b, ps, n);
    luaL_pushresult(&b);
    lua_remove(L, -2); /* the param array */
}

static int l_canonical_query(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    sc_push_canonical_query(L, 1);
    return 1;
}

const luaL_Reg sc_encode_funcs[] = {
    {"percent_encode", l_percent_encode},
    {"canonical_query", l_canonical_query},
    {NULL, NULL}};
