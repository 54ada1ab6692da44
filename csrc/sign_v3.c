/* streamctl.core, sign_v3.c: Alibaba Cloud's signature V3 (ACS3-HMAC-SHA256): the canonical
   request, its signed headers, the Authorization value; SHA-256 with a context kept per
   secret (also digest.c's). */
#include "core.h"

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
sc_md *sc_secret_md(sc_md **slot, const char *name) {
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
void sc_sha256(lua_State *L, sc_secret *sec, const void *p, size_t n, unsigned char out[32]) {
    unsigned int len = 32;
#if SC_KEYED_MAC
    sc_md *ctx = sec != NULL ? sc_secret_md(&sec->sha256, "SHA256") : NULL;
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
    sc_add_encoded(&b, path, pl, 1);
    luaL_pushresult(&b);
    ep = lua_tolstring(L, -1, &el);
    cq = lua_tolstring(L, base + 4, &cql);
    sn = lua_tolstring(L, base + 3, &snl);
    ph = lua_tolstring(L, base + 2, &phl);
#if SC_KEYED_MAC
    ctx = sec != NULL ? sc_secret_md(&sec->sha256, "SHA256") : NULL;
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
        if (sec->v3 == NULL) sec->v3 = sc_keyed_mac("SHA256", sec->bytes, sec->len);
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

    method = sc_check_method(L, 2, &ml);
    if (lua_isnil(L, 3)) { lua_pushliteral(L, "/"); lua_replace(L, 3); }
    path = luaL_checklstring(L, 3, &pl);
    if (pl == 0 || path[0] != '/') luaL_argerror(L, 1, "path must start with '/'");
    if (lua_isnil(L, 4)) { lua_newtable(L); lua_replace(L, 4); }
    luaL_checktype(L, 4, LUA_TTABLE);
    luaL_checktype(L, 5, LUA_TTABLE);
    if (lua_isnil(L, 6)) { lua_pushliteral(L, ""); lua_replace(L, 6); }
    body = luaL_checklstring(L, 6, &bl);
    akid = luaL_checklstring(L, 7, &akl);
    secret = sc_check_secret(L, 8, &sl);
    sec = (sc_secret *)luaL_testudata(L, 8, SECRET_MT);

    hs = collect_headers(L, 5, &nh);           /* base + 1 */
    if (bl == 0) {                             /* (every request streamctl makes) */
        lua_pushliteral(L, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    } else {
        sc_sha256(L, sec, body, bl, digest);
        sc_push_hex(L, digest, 32);               /* base + 2: hashed payload */
    }
    push_signed_names(L, hs, nh);              /* base + 3 */
    sc_push_canonical_query(L, 4);                /* base + 4 */
    hash_canonical_request(L, sec, method, ml, path, pl, hs, nh, base, digest);
    sc_to_hex(hexcr, digest, 32);
    hexcr[64] = '\0';
    memcpy(sts, V3_ALGORITHM "\n", sizeof(V3_ALGORITHM));
    memcpy(sts + sizeof(V3_ALGORITHM), hexcr, 65);
    if (!v3_mac(sec, secret, sl, sts, sig)) return luaL_error(L, "HMAC-SHA256 failed");
    sc_to_hex(hexsig, sig, 32);
    hexsig[64] = '\0';

    push_authorization(L, akid, akl, base + 3, hexsig);
    lua_pushstring(L, hexsig);
    lua_pushstring(L, hexcr);
    lua_pushvalue(L, base + 4);
    return 4;
}

const luaL_Reg sc_sign_v3_funcs[] = {
    {"aliyun_sign_v3", l_aliyun_sign_v3},
    {NULL, NULL}};
