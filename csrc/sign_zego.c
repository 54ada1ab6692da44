/* streamctl.core, sign_zego.c: ZEGOCLOUD's signature: MD5 over AppId, the nonce, the server
   secret and the timestamp, as hex. */
#include "core.h"

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
    const unsigned char *secret = sc_check_secret(L, 3, &sl);
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
            ctx = sc_secret_md(&sec->md5, "MD5");
            ok = ctx != NULL && EVP_DigestInit_ex2(ctx, NULL, NULL) &&
                 EVP_DigestUpdate(ctx, appid, strlen(appid)) &&
                 EVP_DigestUpdate(ctx, nonce, nl) &&
                 EVP_DigestUpdate(ctx, secret, sl) &&
                 EVP_DigestUpdate(ctx, ts, strlen(ts)) &&
                 EVP_DigestFinal_ex(ctx, md, &mdl);
            if (!ok) return luaL_error(L, "MD5 failed (is MD5 disabled in this OpenSSL?)");
            sc_push_hex(L, md, mdl);
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
    sc_push_hex(L, md, mdl);
    return 1;
}

const luaL_Reg sc_sign_zego_funcs[] = {
    {"zego_sign", l_zego_sign},
    {NULL, NULL}};
