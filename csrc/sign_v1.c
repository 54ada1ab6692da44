/* streamctl.core, sign_v1.c: Alibaba Cloud's signature V1: the StringToSign and its Base64
   HMAC-SHA1 (keyed once per secret with secret .. "&"), the whole URL made in one buffer. */
#include "core.h"

/* ------------------------------------------------------------------ */
/* Aliyun RPC signature V1 (HMAC-SHA1)                                */

const char *sc_check_method(lua_State *L, int idx, size_t *len) {
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
    sc_add_encoded(&b, cq, cl, 0);
    luaL_pushresult(&b);
}

static int l_aliyun_string_to_sign_v1(lua_State *L) {
    size_t ml;
    const char *m = sc_check_method(L, 1, &ml);
    luaL_checktype(L, 2, LUA_TTABLE);
    sc_push_canonical_query(L, 2);
    push_string_to_sign_v1(L, m, ml, -1);
    return 1;
}

#if SC_KEYED_MAC
/* A new HMAC context for `digest`, keyed; NULL when OpenSSL fails. */
sc_mac *sc_keyed_mac(const char *digest, const unsigned char *key, size_t kl) {
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
        sec->v1 = sc_keyed_mac("SHA1", key, kl);
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
            if (sc_unreserved[c]) {
                *o++ = (char)c;
                *q++ = (char)c;
            } else {
                o[0] = '%'; o[1] = sc_hexu[c >> 4]; o[2] = sc_hexu[c & 15];
                o += 3;
                q[0] = '%'; q[1] = '2'; q[2] = '5'; q[3] = sc_hexu[c >> 4]; q[4] = sc_hexu[c & 15];
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
        sc_add_encoded(&b, (const char *)b64, (size_t)bl, 0);
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
    const unsigned char *secret = sc_check_secret(L, 3, &sl);
    sc_secret *sec = (sc_secret *)luaL_testudata(L, 3, SECRET_MT);
    const char *m = sc_check_method(L, 1, &ml);
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
        sc_param *ps = sc_collect_params(L, 2, &n, small); /* 5 */
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
        sc_push_canonical_query(L, 2);          /* 5 */
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
            sc_add_encoded(&b, (const char *)b64, strlen((const char *)b64), 0);
            luaL_pushresult(&b); /* 7 */
            lua_replace(L, 5);
        }
        lua_insert(L, 5);
        return 2;
    }
}

const luaL_Reg sc_sign_v1_funcs[] = {
    {"aliyun_string_to_sign_v1", l_aliyun_string_to_sign_v1},
    {"aliyun_sign_v1", l_aliyun_sign_v1},
    {NULL, NULL}};
