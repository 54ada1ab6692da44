/*
 * streamctl.core: signing, encoding, nonces and time for streamctl.
 *
 * No I/O but three small file operations (csrc/file.c: an audit record
 * appended, a state file replaced or read; local files, like nginx's own
 * logs), so it is safe in every nginx phase. Its only process-wide state is
 * the fork watch of the nonce pools (fork_count, forks_seen, fork_once: see
 * "Random bytes" below), set once and read-only to everything but the
 * pthread_atfork child handler; all other state is per Lua state (upvalues,
 * userdata). Every temporary lives in Lua-owned memory (userdata or
 * luaL_Buffer) before anything can raise; copies of secrets are wiped with
 * OPENSSL_cleanse.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>
#include <errno.h>
#include <fcntl.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "compat.h"
#include "file.h"
#include "fingerprint.h"

#define SECRET_MT "streamctl.secret"
#define V3_ALGORITHM "ACS3-HMAC-SHA256"

static const char HEX[] = "0123456789abcdef";
static const char HEXU[] = "0123456789ABCDEF";

/* ------------------------------------------------------------------ */
/* Secrets: bytes held in a userdata that is wiped when collected.    */

/* HMAC keyed once per secret and kept (OpenSSL 3: an EVP_MAC_CTX that is
 * re-initialised with the same key for each signature, so no digest is
 * fetched and no key is hashed again). Owned by the secret's userdata and
 * freed (its key state cleansed) by its __gc. */
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
#include <openssl/core_names.h>
#include <openssl/params.h>
#define SC_KEYED_MAC 1
typedef EVP_MAC_CTX sc_mac;
typedef EVP_MD_CTX sc_md;
#else
#define SC_KEYED_MAC 0
typedef void sc_mac;
typedef void sc_md;
#endif

typedef struct {
    size_t len;
    sc_mac *v1;              /* HMAC-SHA1 keyed with secret .. "&" (Aliyun V1) */
    sc_mac *v3;              /* HMAC-SHA256 keyed with the secret (Aliyun V3) */
    sc_md *md5;              /* an MD5 context, its digest fetched once (ZEGO) */
    sc_md *sha256;           /* a SHA-256 context, the same (Aliyun V3's canonical request) */
    unsigned char bytes[1];  /* len bytes follow, then a NUL */
} sc_secret;

static int secret_new(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    sc_secret *sec = (sc_secret *)lua_newuserdata(L, sizeof(sc_secret) + len);
    sec->len = len;
    sec->v1 = sec->v3 = NULL;
    sec->md5 = sec->sha256 = NULL;
    memcpy(sec->bytes, s, len);
    sec->bytes[len] = '\0';
    luaL_setmetatable(L, SECRET_MT);
    return 1;
}

static int secret_gc(lua_State *L) {
    sc_secret *sec = (sc_secret *)luaL_checkudata(L, 1, SECRET_MT);
    OPENSSL_cleanse(sec->bytes, sec->len);
    sec->len = 0;
#if SC_KEYED_MAC
    EVP_MAC_CTX_free(sec->v1); /* cleanses the keyed state */
    EVP_MAC_CTX_free(sec->v3);
    EVP_MD_CTX_free(sec->md5); /* cleanses the state it held */
    EVP_MD_CTX_free(sec->sha256);
#endif
    sec->v1 = sec->v3 = NULL;
    sec->md5 = sec->sha256 = NULL;
    return 0;
}

static int secret_tostring(lua_State *L) {
    lua_pushliteral(L, "streamctl.secret(redacted)");
    return 1;
}

/* core.is_secret(v): is v a streamctl.secret? */
/* ------------------------------------------------------------------ */
/* Text checks: what a field's value may hold, in one pass.           */

/* text_flaws(s): a number that says what `s` holds that text fields must not:
   1 a CR, LF or NUL; 2 another control character (TAB, DEL, ...); 4 bytes
   that are not UTF-8 (overlong forms, surrogates and code points beyond
   U+10FFFF included); 0 none. Flags are added, so a caller reports the one
   it ranks first. */
static int l_text_flaws(lua_State *L) {
    size_t n, i = 0;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    int flaws = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c == '\r' || c == '\n' || c == 0) {
                flaws |= 1;
            } else if (c < 0x20 || c == 0x7f) {
                flaws |= 2;
            }
            i++;
            continue;
        }
        {
            size_t len, j;
            unsigned char lo = 0x80, hi = 0xBF;
            if (c >= 0xC2 && c <= 0xDF) {
                len = 2;
            } else if (c >= 0xE0 && c <= 0xEF) {
                len = 3;
                if (c == 0xE0) lo = 0xA0;
                if (c == 0xED) hi = 0x9F;
            } else if (c >= 0xF0 && c <= 0xF4) {
                len = 4;
                if (c == 0xF0) lo = 0x90;
                if (c == 0xF4) hi = 0x8F;
            } else {
                flaws |= 4;
                i++;
                continue;
            }
            if (i + len > n || s[i + 1] < lo || s[i + 1] > hi) {
                flaws |= 4;
                i++;
                continue;
            }
            for (j = 2; j < len; j++) {
                if (s[i + j] < 0x80 || s[i + j] > 0xBF) break;
            }
            if (j < len) {
                flaws |= 4;
                i++;
                continue;
            }
            i += len;
        }
    }
    lua_pushinteger(L, flaws);
    return 1;
}

static int l_is_secret(lua_State *L) {
    lua_pushboolean(L, luaL_testudata(L, 1, SECRET_MT) != NULL);
    return 1;
}

static int secret_len(lua_State *L) {
    sc_secret *sec = (sc_secret *)luaL_checkudata(L, 1, SECRET_MT);
    lua_pushinteger(L, (lua_Integer)sec->len);
    return 1;
}

/* A secret argument: a plain string or a streamctl.secret. */
static const unsigned char *check_secret(lua_State *L, int idx, size_t *len) {
    sc_secret *sec = (sc_secret *)luaL_testudata(L, idx, SECRET_MT);
    if (sec != NULL) {
        *len = sec->len;
        return sec->bytes;
    }
    if (lua_type(L, idx) == LUA_TSTRING)
        return (const unsigned char *)lua_tolstring(L, idx, len);
    luaL_argerror(L, idx, "secret expected (string or streamctl.secret)");
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                           */

/* 1 for the bytes RFC 3986 leaves unreserved (A-Z a-z 0-9 - _ . ~). */
static const unsigned char UNRESERVED[256] = {
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
static size_t encode_into(char *out, const char *s, size_t n, int keep_slash) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    char *o = out;
    while (p < end) {
        unsigned char c = *p++;
        if (UNRESERVED[c] || (keep_slash && c == '/')) {
            *o++ = (char)c;
        } else {
            o[0] = '%';
            o[1] = HEXU[c >> 4];
            o[2] = HEXU[c & 15];
            o += 3;
        }
    }
    return (size_t)(o - out);
}

static void add_encoded(luaL_Buffer *b, const char *s, size_t n, int keep_slash) {
    /* in slices, so the room asked for stays small whatever n is */
    while (n > 0) {
        size_t k = n < SC_PREP_MAX / 3 ? n : SC_PREP_MAX / 3;
        char *out = sc_prepbuffsize(b, 3 * k);
        luaL_addsize(b, encode_into(out, s, k, keep_slash));
        s += k;
        n -= k;
    }
}

#define MAX_RANDOM_BYTES 256

/* Writes n bytes as 2n lower-case hex characters (no NUL). */
static void to_hex(char *out, const unsigned char *p, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = HEX[p[i] >> 4];
        out[2 * i + 1] = HEX[p[i] & 15];
    }
}

/* Pushes n bytes (n <= MAX_RANDOM_BYTES) as lower-case hex. */
static void push_hex(lua_State *L, const unsigned char *p, size_t n) {
    char out[2 * MAX_RANDOM_BYTES];
    if (n > MAX_RANDOM_BYTES) n = MAX_RANDOM_BYTES;
    to_hex(out, p, n);
    lua_pushlstring(L, out, 2 * n);
}

static int l_percent_encode(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    add_encoded(&b, s, n, 0);
    luaL_pushresult(&b);
    return 1;
}

/* ------------------------------------------------------------------ */
/* Parameter sets: name -> string, or name -> array of strings        */
/* (repeated name). Sorted by raw name bytes; repeats keep order.     */

typedef struct {
    const char *k, *v;
    size_t kl, vl;
    size_t order;
} sc_param;

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

#define SMALL_PARAMS 32

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
static sc_param *collect_params(lua_State *L, int tidx, size_t *count, sc_param *small) {
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
        add_encoded(b, ps[i].k, ps[i].kl, 0);
        luaL_addchar(b, '=');
        add_encoded(b, ps[i].v, ps[i].vl, 0);
    }
}

/* Pushes the canonical query of the table at tidx. */
static void push_canonical_query(lua_State *L, int tidx) {
    size_t n;
    luaL_Buffer b;
    sc_param small[SMALL_PARAMS];
    sc_param *ps = collect_params(L, tidx, &n, small);
    luaL_buffinit(L, &b);
    add_canonical_query(&b, ps, n);
    luaL_pushresult(&b);
    lua_remove(L, -2); /* the param array */
}

static int l_canonical_query(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    push_canonical_query(L, 1);
    return 1;
}

/* ------------------------------------------------------------------ */
/* Aliyun RPC signature V1 (HMAC-SHA1)                                */

static const char *check_method(lua_State *L, int idx, size_t *len) {
    size_t i;
    const char *m = luaL_checklstring(L, idx, len);
    if (*len == 0) luaL_argerror(L, idx, "HTTP method must not be empty");
    for (i = 0; i < *len; i++)
        if (m[i] < 'A' || m[i] > 'Z')
            luaL_argerror(L, idx, "HTTP method must be upper-case letters");
    return m;
}

/* Pushes METHOD&%2F&enc(canonical query) for the method at midx and the
   canonical query at cqidx. */
static void push_string_to_sign_v1(lua_State *L, const char *m, size_t ml, int cqidx) {
    size_t cl;
    const char *cq = lua_tolstring(L, cqidx, &cl);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, m, ml);
    luaL_addstring(&b, "&%2F&");
    add_encoded(&b, cq, cl, 0);
    luaL_pushresult(&b);
}

static int l_aliyun_string_to_sign_v1(lua_State *L) {
    size_t ml;
    const char *m = check_method(L, 1, &ml);
    luaL_checktype(L, 2, LUA_TTABLE);
    push_canonical_query(L, 2);
    push_string_to_sign_v1(L, m, ml, -1);
    return 1;
}

#if SC_KEYED_MAC
/* A new HMAC context for `digest`, keyed; NULL when OpenSSL fails. */
static sc_mac *keyed_mac(const char *digest, const unsigned char *key, size_t kl) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[2];
    EVP_MAC_free(mac); /* the context holds its own reference */
    if (ctx == NULL) return NULL;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (!EVP_MAC_init(ctx, key, kl, params)) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* The secret's V1 context (HMAC-SHA1 keyed with secret .. "&"), made on
   first use; NULL when OpenSSL fails. Nothing here raises. */
static sc_mac *v1_mac(sc_secret *sec) {
    if (sec->v1 == NULL) {
        size_t kl = sec->len + 1;
        unsigned char *key = (unsigned char *)malloc(kl);
        if (key == NULL) return NULL;
        memcpy(key, sec->bytes, sec->len);
        key[sec->len] = '&';
        sec->v1 = keyed_mac("SHA1", key, kl);
        OPENSSL_cleanse(key, kl);
        free(key);
    }
    return sec->v1;
}

/* Builds the canonical query into b and, in the same pass, streams the V1
   string-to-sign METHOD&%2F&enc(canonical query) into a keyed context, so
   nothing is encoded twice and no string-to-sign is made. Returns 1, or 0
   when OpenSSL fails (b is complete either way). */
#define STS_BUF 2048
#define V1_SLICE 256
typedef struct {
    sc_mac *ctx;
    int ok;
    size_t n;
    char buf[STS_BUF];
} sc_sts;

static void sts_flush(sc_sts *t) {
    if (t->ok && t->n > 0 && !EVP_MAC_update(t->ctx, (const unsigned char *)t->buf, t->n)) t->ok = 0;
    t->n = 0;
}

static void sts_add(sc_sts *t, const char *p, size_t n) {
    if (t->n + n > sizeof(t->buf)) sts_flush(t);
    memcpy(t->buf + t->n, p, n); /* n is at most a few bytes here */
    t->n += n;
}

#if 5 * V1_SLICE > STS_BUF || 3 * V1_SLICE > SC_PREP_MAX
#error "a V1 slice must fit the string-to-sign buffer and the Lua buffer's room"
#endif

/* s[0..n) percent-encoded into b, and encoded twice into t. */
static void add_encoded_v1(luaL_Buffer *b, sc_sts *t, const char *s, size_t n) {
    while (n > 0) {
        /* a slice takes at most 3k bytes of b and 5k of t (both sizes checked below) */
        size_t k = n < V1_SLICE ? n : V1_SLICE, i;
        char *o = sc_prepbuffsize(b, 3 * k), *o0 = o;
        char *q;
        if (t->n + 5 * k > sizeof(t->buf)) sts_flush(t);
        q = t->buf + t->n;
        for (i = 0; i < k; i++) {
            unsigned char c = (unsigned char)s[i];
            if (UNRESERVED[c]) {
                *o++ = (char)c;
                *q++ = (char)c;
            } else {
                o[0] = '%'; o[1] = HEXU[c >> 4]; o[2] = HEXU[c & 15];
                o += 3;
                q[0] = '%'; q[1] = '2'; q[2] = '5'; q[3] = HEXU[c >> 4]; q[4] = HEXU[c & 15];
                q += 5;
            }
        }
        luaL_addsize(b, (size_t)(o - o0));
        t->n = (size_t)(q - t->buf);
        s += k;
        n -= k;
    }
}

/* The canonical query (after `prefix`, when one is given) pushed, its
   signature in sig; with a prefix, "&Signature=" and the signature's
   encoded base64 follow in the same string: the request's URL, made in one
   buffer. Returns 1, or 0 when OpenSSL failed (a string is pushed either way). */
static int mac_v1(lua_State *L, sc_mac *ctx, const char *m, size_t ml, const sc_param *ps, size_t n,
                  const char *prefix, size_t pl, unsigned char *sig, size_t *siglen) {
    sc_sts ts, *t = &ts;
    luaL_Buffer b;
    size_t i;
    int ok;
    t->ctx = ctx;
    t->n = 0;
    t->ok = EVP_MAC_init(ctx, NULL, 0, NULL) && /* the same key again */
            EVP_MAC_update(ctx, (const unsigned char *)m, ml) &&
            EVP_MAC_update(ctx, (const unsigned char *)"&%2F&", 5);
    luaL_buffinit(L, &b);
    if (prefix != NULL) luaL_addlstring(&b, prefix, pl);
    for (i = 0; i < n; i++) {
        if (i) {
            luaL_addchar(&b, '&');
            sts_add(t, "%26", 3);
        }
        add_encoded_v1(&b, t, ps[i].k, ps[i].kl);
        luaL_addchar(&b, '=');
        sts_add(t, "%3D", 3);
        add_encoded_v1(&b, t, ps[i].v, ps[i].vl);
    }
    sts_flush(t);
    ok = t->ok && EVP_MAC_final(ctx, sig, siglen, EVP_MAX_MD_SIZE);
    if (ok && prefix != NULL) {
        unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
        int bl = EVP_EncodeBlock(b64, sig, (int)*siglen);
        luaL_addstring(&b, n > 0 ? "&Signature=" : "Signature=");
        add_encoded(&b, (const char *)b64, (size_t)bl, 0);
    }
    luaL_pushresult(&b);
    return ok;
}
#endif

/* core.aliyun_sign_v1(method, params, secret[, url_prefix]) -> Signature
   (base64), and the canonical query it signed (the request's query string,
   without Signature); with url_prefix (e.g. "https://host/?"), the whole
   URL instead: url_prefix .. query .. "&Signature=" .. percent-encoded
   signature, made in one buffer. */
static int l_aliyun_sign_v1(lua_State *L) {
    size_t sl, ml, pl = 0, siglen = 0;
    const unsigned char *secret = check_secret(L, 3, &sl);
    sc_secret *sec = (sc_secret *)luaL_testudata(L, 3, SECRET_MT);
    const char *m = check_method(L, 1, &ml);
    const char *prefix = luaL_optlstring(L, 4, NULL, &pl);
    unsigned char sig[EVP_MAX_MD_SIZE];
    unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    int ok = 0;

    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 4);
#if SC_KEYED_MAC
    if (sec != NULL) {
        sc_param small[SMALL_PARAMS];
        size_t n;
        sc_param *ps = collect_params(L, 2, &n, small); /* 5 */
        sc_mac *ctx = v1_mac(sec);
        if (ctx == NULL) return luaL_error(L, "HMAC-SHA1 failed");
        ok = mac_v1(L, ctx, m, ml, ps, n, prefix, pl, sig, &siglen); /* 6: canonical query or URL */
        if (!ok) return luaL_error(L, "HMAC-SHA1 failed");
        EVP_EncodeBlock(b64, sig, (int)siglen);
        OPENSSL_cleanse(sig, sizeof(sig));
        lua_pushstring(L, (const char *)b64);
        lua_insert(L, 6);
        return 2;
    }
#endif
    {
        /* a plain string secret: the one-shot HMAC over a made string-to-sign */
        unsigned char stackkey[256], *key;
        unsigned int ul = 0;
        size_t kl = sl + 1, stsl;
        const char *sts;
        (void)sec;
        push_canonical_query(L, 2);          /* 5 */
        push_string_to_sign_v1(L, m, ml, 5); /* 6 */
        sts = lua_tolstring(L, 6, &stsl);
        key = kl <= sizeof(stackkey) ? stackkey : (unsigned char *)lua_newuserdata(L, kl);
        memcpy(key, secret, sl);
        key[sl] = '&';
        ok = HMAC(EVP_sha1(), key, (int)kl, (const unsigned char *)sts, stsl, sig, &ul) != NULL;
        OPENSSL_cleanse(key, kl);
        siglen = ul;
        lua_settop(L, 5);
        if (!ok) return luaL_error(L, "HMAC-SHA1 failed");
        EVP_EncodeBlock(b64, sig, (int)siglen);
        OPENSSL_cleanse(sig, sizeof(sig));
        lua_pushstring(L, (const char *)b64); /* 6 */
        if (prefix != NULL) {
            luaL_Buffer b;
            size_t ql;
            const char *q = lua_tolstring(L, 5, &ql);
            luaL_buffinit(L, &b);
            luaL_addlstring(&b, prefix, pl);
            luaL_addlstring(&b, q, ql);
            luaL_addstring(&b, ql > 0 ? "&Signature=" : "Signature=");
            add_encoded(&b, (const char *)b64, strlen((const char *)b64), 0);
            luaL_pushresult(&b); /* 7 */
            lua_replace(L, 5);
        }
        lua_insert(L, 5);
        return 2;
    }
}

/* ------------------------------------------------------------------ */
/* Aliyun signature V3 (ACS3-HMAC-SHA256)                             */

typedef struct {
    char *name; /* lower-case copy, inside the same userdata */
    size_t nl;
    const char *v;
    size_t vl;
} sc_header;

static int header_cmp(const void *a, const void *b) {
    const sc_header *x = (const sc_header *)a, *y = (const sc_header *)b;
    size_t n = x->nl < y->nl ? x->nl : y->nl;
    int c = memcmp(x->name, y->name, n);
    if (c != 0) return c;
    return x->nl < y->nl ? -1 : (x->nl > y->nl ? 1 : 0);
}

static int is_signed_header(const char *lname, size_t n) {
    return (n >= 6 && memcmp(lname, "x-acs-", 6) == 0) ||
           (n == 4 && memcmp(lname, "host", 4) == 0) ||
           (n == 12 && memcmp(lname, "content-type", 12) == 0);
}

/* Header values are trimmed as the official utilities trim them (JavaScript's
 * String.prototype.trim): the ECMAScript white space and line terminators,
 * in UTF-8: TAB LF VT FF CR SP, U+00A0, U+1680, U+2000..U+200A, U+2028,
 * U+2029, U+202F, U+205F, U+3000 and U+FEFF. These give the length of the
 * one such character that starts (or ends) s[0..n), or 0. */
static size_t ws_code_len(const unsigned char *s, size_t n) {
    if (n >= 1 && (s[0] == ' ' || (s[0] >= 0x09 && s[0] <= 0x0d))) return 1;
    if (n >= 2 && s[0] == 0xc2 && s[1] == 0xa0) return 2;
    if (n >= 3) {
        if (s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80) return 3;
        if (s[0] == 0xe2 && s[1] == 0x80 &&
            ((s[2] >= 0x80 && s[2] <= 0x8a) || s[2] == 0xa8 || s[2] == 0xa9 || s[2] == 0xaf))
            return 3;
        if (s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f) return 3;
        if (s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80) return 3;
        if (s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf) return 3;
    }
    return 0;
}

static size_t ws_prefix(const char *v, size_t n) { return ws_code_len((const unsigned char *)v, n); }

static size_t ws_suffix(const char *v, size_t n) {
    size_t k;
    for (k = 1; k <= 3 && k <= n; k++)
        if (ws_code_len((const unsigned char *)v + n - k, k) == k) return k;
    return 0;
}

/* Is c a character of an RFC 9110 token (what a header name is made of)? */
static int is_token_char(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Sorted signed headers of the table at tidx, in a userdata pushed on the stack.
   Every name must be a token: a ',' or ';' in a signed name would change what
   SignedHeaders and the Authorization value say. */
static sc_header *collect_headers(lua_State *L, int tidx, size_t *count) {
    size_t n = 0, bytes = 0, i = 0;
    sc_header *hs;
    char *names;
    lua_pushnil(L);
    while (lua_next(L, tidx) != 0) {
        size_t nl;
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "headers must map strings to strings");
        lua_tolstring(L, -2, &nl);
        n++;
        bytes += nl;
        lua_pop(L, 1);
    }
    hs = (sc_header *)lua_newuserdata(L, (n ? n : 1) * sizeof(sc_header) + bytes + 1);
    names = (char *)(hs + (n ? n : 1));
    lua_pushnil(L);
    while (lua_next(L, tidx) != 0) {
        size_t nl, vl, j;
        const char *name = lua_tolstring(L, -2, &nl);
        const char *v = lua_tolstring(L, -1, &vl);
        if (nl == 0) luaL_argerror(L, 1, "headers: a header name is empty");
        for (j = 0; j < nl; j++) {
            char c = name[j];
            if (!is_token_char((unsigned char)c)) luaL_argerror(L, 1, "headers: a header name is not a token");
            names[j] = (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
        }
        if (is_signed_header(names, nl)) {
            size_t k;
            while ((k = ws_prefix(v, vl)) > 0) { v += k; vl -= k; }
            while ((k = ws_suffix(v, vl)) > 0) vl -= k;
            hs[i].name = names; hs[i].nl = nl; hs[i].v = v; hs[i].vl = vl;
            names += nl;
            i++;
        }
        lua_pop(L, 1);
    }
    qsort(hs, i, sizeof(sc_header), header_cmp);
    for (n = 1; n < i; n++)
        if (header_cmp(&hs[n - 1], &hs[n]) == 0) {
            lua_pushlstring(L, hs[n].name, hs[n].nl);
            luaL_error(L, "header '%s' given twice (names are case-insensitive)", lua_tostring(L, -1));
        }
    *count = i;
    return hs;
}

/* SHA-256 of p[0..n) into out; raises if OpenSSL fails (callers own nothing
 * outside Lua when they call it). */
#if SC_KEYED_MAC
/* A secret's digest context in *slot (MD5 for ZEGO, SHA-256 for V3), made
   on first use with its digest fetched once (OpenSSL 3 fetches EVP_md5()'s
   and EVP_sha256()'s implementations at every init); NULL when OpenSSL
   fails. Nothing here raises. */
static sc_md *secret_md(sc_md **slot, const char *name) {
    if (*slot == NULL) {
        EVP_MD *md = EVP_MD_fetch(NULL, name, NULL);
        EVP_MD_CTX *ctx = md != NULL ? EVP_MD_CTX_new() : NULL;
        if (ctx != NULL && !EVP_DigestInit_ex2(ctx, md, NULL)) {
            EVP_MD_CTX_free(ctx);
            ctx = NULL;
        }
        EVP_MD_free(md); /* the context holds its own reference */
        *slot = ctx;
    }
    return *slot;
}
#endif

/* SHA-256 of p[0..n): through the secret's context when there is one. */
static void sha256(lua_State *L, sc_secret *sec, const void *p, size_t n, unsigned char out[32]) {
    unsigned int len = 32;
#if SC_KEYED_MAC
    sc_md *ctx = sec != NULL ? secret_md(&sec->sha256, "SHA256") : NULL;
    if (ctx != NULL) {
        if (!EVP_DigestInit_ex2(ctx, NULL, NULL) || !EVP_DigestUpdate(ctx, p, n) ||
            !EVP_DigestFinal_ex(ctx, out, &len) || len != 32)
            luaL_error(L, "SHA-256 failed");
        return;
    }
#else
    (void)sec;
#endif
    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32) luaL_error(L, "SHA-256 failed");
}

/* Pushes the signed header names, "a;b;c". */
static void push_signed_names(lua_State *L, const sc_header *hs, size_t nh) {
    luaL_Buffer b;
    size_t i;
    luaL_buffinit(L, &b);
    for (i = 0; i < nh; i++) {
        if (i) luaL_addchar(&b, ';');
        luaL_addlstring(&b, hs[i].name, hs[i].nl);
    }
    luaL_pushresult(&b);
}

/* The SHA-256 of V3's canonical request: method, encoded path, the
   canonical query (at base + 4), the headers, the signed names (base + 3)
   and the payload's hash (base + 2), a line each, fed to the digest piece
   by piece. The request itself is never made a Lua string: LuaJIT interns
   every string by a sparse hash of four of its words, and canonical
   requests of one action share all four (the method, the first and last
   bytes, two spots in the sorted query), so each one made walked a chain
   of all those still in memory (a batch of 100,000 took 300 us a request,
   and more the more the process held). Lua work (the encoded path) comes
   first; between the context's creation and its release nothing raises. */
static void hash_canonical_request(lua_State *L, sc_secret *sec, const char *method, size_t ml, const char *path,
                                   size_t pl, const sc_header *hs, size_t nh, int base, unsigned char out[32]) {
    luaL_Buffer b;
    size_t i, el, cql, snl, phl;
    const char *ep, *cq, *sn, *ph;
    EVP_MD_CTX *ctx, *own = NULL;
    unsigned int len = 32;
    int ok;
    luaL_buffinit(L, &b);
    add_encoded(&b, path, pl, 1);
    luaL_pushresult(&b);
    ep = lua_tolstring(L, -1, &el);
    cq = lua_tolstring(L, base + 4, &cql);
    sn = lua_tolstring(L, base + 3, &snl);
    ph = lua_tolstring(L, base + 2, &phl);
#if SC_KEYED_MAC
    ctx = sec != NULL ? secret_md(&sec->sha256, "SHA256") : NULL;
    if (ctx == NULL) ctx = own = EVP_MD_CTX_new();
    ok = ctx != NULL && (own != NULL ? EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) : EVP_DigestInit_ex2(ctx, NULL, NULL));
#else
    (void)sec;
    ctx = own = EVP_MD_CTX_new();
    ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
#endif
    ok = ok && EVP_DigestUpdate(ctx, method, ml) && EVP_DigestUpdate(ctx, "\n", 1) && EVP_DigestUpdate(ctx, ep, el) &&
         EVP_DigestUpdate(ctx, "\n", 1) && EVP_DigestUpdate(ctx, cq, cql) && EVP_DigestUpdate(ctx, "\n", 1);
    for (i = 0; ok && i < nh; i++)
        ok = EVP_DigestUpdate(ctx, hs[i].name, hs[i].nl) && EVP_DigestUpdate(ctx, ":", 1) &&
             EVP_DigestUpdate(ctx, hs[i].v, hs[i].vl) && EVP_DigestUpdate(ctx, "\n", 1);
    ok = ok && EVP_DigestUpdate(ctx, "\n", 1) && EVP_DigestUpdate(ctx, sn, snl) && EVP_DigestUpdate(ctx, "\n", 1) &&
         EVP_DigestUpdate(ctx, ph, phl) && EVP_DigestFinal_ex(ctx, out, &len) && len == 32;
    EVP_MD_CTX_free(own); /* (a cached context stays with its secret) */
    lua_pop(L, 1);
    if (!ok) luaL_error(L, "SHA-256 failed");
}

/* HMAC-SHA256 of `sts` under the secret (its cached keyed MAC when it is a
   secret object): 1 when sig holds the 32 bytes. */
static int v3_mac(sc_secret *sec, const unsigned char *secret, size_t sl, const char *sts, unsigned char *sig) {
    unsigned int siglen = 0;
    int ok;
#if SC_KEYED_MAC
    if (sec != NULL) {
        size_t mlen = 0;
        if (sec->v3 == NULL) sec->v3 = keyed_mac("SHA256", sec->bytes, sec->len);
        ok = sec->v3 != NULL && EVP_MAC_init(sec->v3, NULL, 0, NULL) &&
             EVP_MAC_update(sec->v3, (const unsigned char *)sts, strlen(sts)) &&
             EVP_MAC_final(sec->v3, sig, &mlen, 32);
        return ok && mlen == 32;
    }
#endif
    (void)sec;
    ok = HMAC(EVP_sha256(), secret, (int)sl, (const unsigned char *)sts, strlen(sts), sig, &siglen) != NULL;
    return ok && siglen == 32;
}

/* Pushes the Authorization value. */
static void push_authorization(lua_State *L, const char *akid, size_t akl, int names, const char *hexsig) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, V3_ALGORITHM " Credential=");
    luaL_addlstring(&b, akid, akl);
    luaL_addstring(&b, ",SignedHeaders=");
    lua_pushvalue(L, names);
    luaL_addvalue(&b);
    luaL_addstring(&b, ",Signature=");
    luaL_addstring(&b, hexsig);
    luaL_pushresult(&b);
}

static int l_aliyun_sign_v3(lua_State *L) {
    size_t ml, pl, bl, akl, sl, nh;
    const char *method, *path, *body, *akid;
    const unsigned char *secret;
    sc_header *hs;
    unsigned char digest[32], sig[32];
    char sts[sizeof(V3_ALGORITHM) + 1 + 64], hexsig[65], hexcr[65];
    int base;
    sc_secret *sec;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_getfield(L, 1, "method");            /* 2 */
    lua_getfield(L, 1, "path");              /* 3 */
    lua_getfield(L, 1, "query");             /* 4 */
    lua_getfield(L, 1, "headers");           /* 5 */
    lua_getfield(L, 1, "body");              /* 6 */
    lua_getfield(L, 1, "access_key_id");     /* 7 */
    lua_getfield(L, 1, "access_key_secret"); /* 8 */
    base = lua_gettop(L);

    method = check_method(L, 2, &ml);
    if (lua_isnil(L, 3)) { lua_pushliteral(L, "/"); lua_replace(L, 3); }
    path = luaL_checklstring(L, 3, &pl);
    if (pl == 0 || path[0] != '/') luaL_argerror(L, 1, "path must start with '/'");
    if (lua_isnil(L, 4)) { lua_newtable(L); lua_replace(L, 4); }
    luaL_checktype(L, 4, LUA_TTABLE);
    luaL_checktype(L, 5, LUA_TTABLE);
    if (lua_isnil(L, 6)) { lua_pushliteral(L, ""); lua_replace(L, 6); }
    body = luaL_checklstring(L, 6, &bl);
    akid = luaL_checklstring(L, 7, &akl);
    secret = check_secret(L, 8, &sl);
    sec = (sc_secret *)luaL_testudata(L, 8, SECRET_MT);

    hs = collect_headers(L, 5, &nh);           /* base + 1 */
    if (bl == 0) {                             /* (every request streamctl makes) */
        lua_pushliteral(L, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    } else {
        sha256(L, sec, body, bl, digest);
        push_hex(L, digest, 32);               /* base + 2: hashed payload */
    }
    push_signed_names(L, hs, nh);              /* base + 3 */
    push_canonical_query(L, 4);                /* base + 4 */
    hash_canonical_request(L, sec, method, ml, path, pl, hs, nh, base, digest);
    to_hex(hexcr, digest, 32);
    hexcr[64] = '\0';
    memcpy(sts, V3_ALGORITHM "\n", sizeof(V3_ALGORITHM));
    memcpy(sts + sizeof(V3_ALGORITHM), hexcr, 65);
    if (!v3_mac(sec, secret, sl, sts, sig)) return luaL_error(L, "HMAC-SHA256 failed");
    to_hex(hexsig, sig, 32);
    hexsig[64] = '\0';

    push_authorization(L, akid, akl, base + 3, hexsig);
    lua_pushstring(L, hexsig);
    lua_pushstring(L, hexcr);
    lua_pushvalue(L, base + 4);
    return 4;
}

/* ------------------------------------------------------------------ */
/* ZEGO signature 2.0: md5(AppId .. SignatureNonce .. ServerSecret .. Timestamp) */

static unsigned long long check_uint(lua_State *L, int idx, double max, const char *what) {
    lua_Number n;
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len, i;
        const char *s = lua_tolstring(L, idx, &len);
        if (len == 0 || len > 15) luaL_argerror(L, idx, what);
        for (i = 0; i < len; i++)
            if (s[i] < '0' || s[i] > '9') luaL_argerror(L, idx, what);
        n = (lua_Number)strtoull(s, NULL, 10);
    } else {
        n = luaL_checknumber(L, idx);
    }
    if (!(n >= 0 && n <= max) || floor(n) != n) luaL_argerror(L, idx, what);
    return (unsigned long long)n;
}


static int l_zego_sign(lua_State *L) {
    char appid[24], ts[24];
    size_t nl, sl;
    unsigned long long a = check_uint(L, 1, 4294967295.0, "AppId must be an integer in 0..4294967295");
    const char *nonce = luaL_checklstring(L, 2, &nl);
    const unsigned char *secret = check_secret(L, 3, &sl);
    unsigned long long t = check_uint(L, 4, 9007199254740991.0, "Timestamp must be a non-negative integer");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdl = 0;
    int ok;
    EVP_MD_CTX *ctx;

    snprintf(appid, sizeof(appid), "%llu", a);
    snprintf(ts, sizeof(ts), "%llu", t);
#if SC_KEYED_MAC
    {
        /* a streamctl.secret keeps a context whose digest was fetched once
           (OpenSSL 3 fetches EVP_md5()'s implementation at every init) */
        sc_secret *sec = (sc_secret *)luaL_testudata(L, 3, SECRET_MT);
        if (sec != NULL) {
            ctx = secret_md(&sec->md5, "MD5");
            ok = ctx != NULL && EVP_DigestInit_ex2(ctx, NULL, NULL) &&
                 EVP_DigestUpdate(ctx, appid, strlen(appid)) &&
                 EVP_DigestUpdate(ctx, nonce, nl) &&
                 EVP_DigestUpdate(ctx, secret, sl) &&
                 EVP_DigestUpdate(ctx, ts, strlen(ts)) &&
                 EVP_DigestFinal_ex(ctx, md, &mdl);
            if (!ok) return luaL_error(L, "MD5 failed (is MD5 disabled in this OpenSSL?)");
            push_hex(L, md, mdl);
            return 1;
        }
    }
#endif
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) return luaL_error(L, "out of memory");
    ok = EVP_DigestInit_ex(ctx, EVP_md5(), NULL) &&
         EVP_DigestUpdate(ctx, appid, strlen(appid)) &&
         EVP_DigestUpdate(ctx, nonce, nl) &&
         EVP_DigestUpdate(ctx, secret, sl) &&
         EVP_DigestUpdate(ctx, ts, strlen(ts)) &&
         EVP_DigestFinal_ex(ctx, md, &mdl);
    EVP_MD_CTX_free(ctx); /* cleanses its state */
    if (!ok) return luaL_error(L, "MD5 failed (is MD5 disabled in this OpenSSL?)");
    push_hex(L, md, mdl);
    return 1;
}

/* ------------------------------------------------------------------ */
/* Hashes, nonces                                                     */

static int l_sha256_hex(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char d[32];
    sha256(L, NULL, s, n, d);
    push_hex(L, d, 32);
    return 1;
}

/* core.digest_hex(alg, sep, sorted, part1, ..., partN): the lowercase hex
   digest ("md5" or "sha1") of the parts joined by `sep`, after sorting them
   by their bytes when `sorted` is true (as the providers' callback and URL
   signatures build their input: Alibaba Cloud's "domain|timestamp|key" and
   auth_key's "uri-ts-rand-uid-key", ZEGO's sorted secret, timestamp and
   nonce). A part is a string or a streamctl.secret, whose bytes go to the
   digest from where they are kept: no Lua string of them is made. 1 to 8
   parts. Misuse raises before anything is allocated. */
#define DIGEST_MAX_PARTS 8
typedef struct {
    const unsigned char *p;
    size_t n;
} sc_part;

static int part_cmp(const void *a, const void *b) {
    const sc_part *x = (const sc_part *)a, *y = (const sc_part *)b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = n ? memcmp(x->p, y->p, n) : 0;
    if (c != 0) return c;
    return (x->n > y->n) - (x->n < y->n);
}

static int l_digest_hex(lua_State *L) {
    const char *alg = luaL_checkstring(L, 1);
    size_t seplen, i;
    const char *sep = luaL_checklstring(L, 2, &seplen);
    int sorted = lua_toboolean(L, 3);
    int nparts = lua_gettop(L) - 3;
    sc_part parts[DIGEST_MAX_PARTS];
    const EVP_MD *md;
    EVP_MD_CTX *ctx;
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int outlen = 0;
    int ok;

    if (strcmp(alg, "md5") == 0) {
        md = EVP_md5();
    } else if (strcmp(alg, "sha1") == 0) {
        md = EVP_sha1();
    } else {
        return luaL_argerror(L, 1, "\"md5\" or \"sha1\" expected");
    }
    if (nparts < 1 || nparts > DIGEST_MAX_PARTS) return luaL_error(L, "digest_hex: 1 to %d parts expected", DIGEST_MAX_PARTS);
    for (i = 0; i < (size_t)nparts; i++) parts[i].p = check_secret(L, (int)i + 4, &parts[i].n);
    if (sorted) qsort(parts, (size_t)nparts, sizeof(parts[0]), part_cmp);
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) return luaL_error(L, "out of memory");
    ok = EVP_DigestInit_ex(ctx, md, NULL);
    for (i = 0; ok && i < (size_t)nparts; i++) {
        if (i > 0 && seplen > 0) ok = EVP_DigestUpdate(ctx, sep, seplen);
        if (ok && parts[i].n > 0) ok = EVP_DigestUpdate(ctx, parts[i].p, parts[i].n);
    }
    ok = ok && EVP_DigestFinal_ex(ctx, out, &outlen);
    EVP_MD_CTX_free(ctx); /* cleanses its state */
    if (!ok) return luaL_error(L, "%s failed (is it disabled in this OpenSSL?)", alg);
    push_hex(L, out, outlen);
    OPENSSL_cleanse(out, sizeof(out));
    return 1;
}

/* core.equal(a, b): whether two strings are the same, in time that depends
   on their lengths only (CRYPTO_memcmp), for comparing a signature received
   with the one computed. Strings of different lengths are unequal. */
static int l_equal(lua_State *L) {
    size_t an, bn;
    const char *a = luaL_checklstring(L, 1, &an);
    const char *b = luaL_checklstring(L, 2, &bn);
    lua_pushboolean(L, an == bn && CRYPTO_memcmp(a, b, an) == 0);
    return 1;
}

/* Random bytes for nonces come from RAND_bytes a kilobyte at a time (one
 * call costs about as much as a whole signature: it asks the kernel for the
 * process ID each time), kept in a pool that is the first upvalue of
 * random_hex and uuid4, one per Lua state. Each byte is handed out once and
 * wiped. A fork (nginx's master starting its workers) empties every pool in
 * the child: a pthread_atfork handler counts forks (the one process-wide
 * value here; glibc drops the handler when the library is unloaded), so no
 * two processes ever hand out the same bytes. Where the handler cannot be
 * registered, the process ID is compared instead. */
static volatile unsigned long fork_count = 0;
static int forks_seen = 0; /* 1: the handler counts forks */
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void on_fork_child(void) { fork_count++; }
static void watch_forks(void) { forks_seen = pthread_atfork(NULL, NULL, on_fork_child) == 0; }

typedef struct {
    unsigned long forks;
    pid_t pid;
    size_t pos;
    unsigned char buf[1024];
} sc_pool;

static void random_bytes(lua_State *L, unsigned char *p, int n) {
    sc_pool *pool = (sc_pool *)lua_touserdata(L, lua_upvalueindex(1));
    int forked = forks_seen ? pool->forks != fork_count : pool->pid != getpid();
    if (forked || pool->pos + (size_t)n > sizeof(pool->buf)) {
        if (RAND_bytes(pool->buf, (int)sizeof(pool->buf)) != 1) {
            pool->pos = sizeof(pool->buf);
            luaL_error(L, "RAND_bytes failed: the OpenSSL random generator is not seeded");
        }
        pool->forks = fork_count;
        pool->pid = forks_seen ? 0 : getpid();
        pool->pos = 0;
    }
    memcpy(p, pool->buf + pool->pos, (size_t)n);
    OPENSSL_cleanse(pool->buf + pool->pos, (size_t)n);
    pool->pos += (size_t)n;
}

static int l_random_hex(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    unsigned char buf[MAX_RANDOM_BYTES];
    luaL_argcheck(L, n >= 1 && n <= MAX_RANDOM_BYTES, 1, "nbytes must be in 1..256");
    random_bytes(L, buf, (int)n);
    push_hex(L, buf, (size_t)n);
    return 1;
}

static int l_uuid4(lua_State *L) {
    unsigned char u[16];
    char out[36];
    random_bytes(L, u, 16);
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    /* 8-4-4-4-12 hex digits */
    to_hex(out, u, 4);
    out[8] = '-';
    to_hex(out + 9, u + 4, 2);
    out[13] = '-';
    to_hex(out + 14, u + 6, 2);
    out[18] = '-';
    to_hex(out + 19, u + 8, 2);
    out[23] = '-';
    to_hex(out + 24, u + 10, 6);
    lua_pushlstring(L, out, 36);
    return 1;
}

/* ------------------------------------------------------------------ */
/* Time: UTC "YYYY-MM-DDThh:mm:ssZ" <-> Unix seconds, without timegm  */

static long long days_from_civil(long long y, unsigned m, unsigned d) {
    long long era;
    unsigned yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static void civil_from_days(long long z, int *y, unsigned *m, unsigned *d) {
    long long era;
    unsigned doe, yoe, doy, mp;
    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)((long long)yoe + era * 400 + (*m <= 2));
}

#define MAX_UNIX 253402300799.0 /* 9999-12-31T23:59:59Z */

static int l_utc_timestamp(lua_State *L) {
    lua_Number t = luaL_checknumber(L, 1);
    long long s, days, rem;
    int y;
    unsigned m, d;
    char out[32];
    luaL_argcheck(L, t >= 0 && t <= MAX_UNIX, 1, "unix seconds must be in 0..253402300799");
    s = (long long)floor(t);
    days = s / 86400;
    rem = s % 86400;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, sizeof(out), "%04d-%02u-%02uT%02d:%02d:%02dZ", y, m, d,
             (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
    lua_pushstring(L, out);
    return 1;
}

/* Wall-clock time in seconds with sub-second precision (CLOCK_REALTIME). */
static int l_now(lua_State *L) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return luaL_error(L, "clock_gettime failed");
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* Monotonic seconds, for measuring intervals and pacing (CLOCK_MONOTONIC). */
static int l_monotonic(lua_State *L) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return luaL_error(L, "clock_gettime failed");
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static int digits(const char *s, int n, int *out) {
    int i, v = 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static int l_parse_utc_timestamp(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    int y, mo, d, h, mi, se;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap, dim;
    if (n != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':' || s[19] != 'Z' || !digits(s, 4, &y) || !digits(s + 5, 2, &mo) ||
        !digits(s + 8, 2, &d) || !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) ||
        !digits(s + 17, 2, &se)) {
        lua_pushnil(L);
        lua_pushliteral(L, "must be UTC time as YYYY-MM-DDThh:mm:ssZ");
        return 2;
    }
    leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    dim = (mo >= 1 && mo <= 12) ? mdays[mo - 1] + (mo == 2 && leap) : 0;
    if (y < 1970 || dim == 0 || d < 1 || d > dim || h > 23 || mi > 59 || se > 59) {
        lua_pushnil(L);
        lua_pushliteral(L, "is not a valid UTC date and time");
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)(days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
                                     (long long)h * 3600 + (long long)mi * 60 + se));
    return 1;
}

/* ------------------------------------------------------------------ */

static const luaL_Reg secret_methods[] = {
    {"__gc", secret_gc},
    {"__tostring", secret_tostring},
    {"__len", secret_len},
    {NULL, NULL}};

static const luaL_Reg core_funcs[] = {
    {"percent_encode", l_percent_encode},
    {"canonical_query", l_canonical_query},
    {"aliyun_string_to_sign_v1", l_aliyun_string_to_sign_v1},
    {"aliyun_sign_v1", l_aliyun_sign_v1},
    {"aliyun_sign_v3", l_aliyun_sign_v3},
    {"zego_sign", l_zego_sign},
    {"sha256_hex", l_sha256_hex},
    {"digest_hex", l_digest_hex},
    {"equal", l_equal},
    {"utc_timestamp", l_utc_timestamp},
    {"parse_utc_timestamp", l_parse_utc_timestamp},
    {"now", l_now},
    {"monotonic", l_monotonic},
    {"secret", secret_new},
    {"is_secret", l_is_secret},
    {"text_flaws", l_text_flaws},
    {NULL, NULL}};

int luaopen_streamctl_core(lua_State *L) {
    if (luaL_newmetatable(L, SECRET_MT)) {
        luaL_setfuncs(L, secret_methods, 0);
        lua_pushliteral(L, "streamctl.secret");
        lua_setfield(L, -2, "__name");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    sc_newlib(L, core_funcs);
    luaL_setfuncs(L, sc_file_funcs, 0);
    sc_fingerprint_open(L);
    {
        sc_pool *pool;
        pthread_once(&fork_once, watch_forks);
        pool = (sc_pool *)lua_newuserdata(L, sizeof(sc_pool));
        pool->forks = fork_count;
        pool->pid = 0;
        pool->pos = sizeof(pool->buf); /* empty: filled on first use */
        lua_pushvalue(L, -1);
        lua_pushcclosure(L, l_random_hex, 1);
        lua_setfield(L, -3, "random_hex");
        lua_pushcclosure(L, l_uuid4, 1);
        lua_setfield(L, -2, "uuid4");
    }
    return 1;
}
