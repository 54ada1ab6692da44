/* streamctl.core, cipher.c: AES and base64 for ZEGO's Token04 (issue 69),
   all from OpenSSL's EVP: AES-GCM seal and open (the 16-byte tag after the
   ciphertext, no additional data: the published generators' layout),
   AES-CBC seal and open with PKCS#7 padding (the form zego_server_assistant's
   generators make, issued and read only when asked: it authenticates
   nothing), and base64 (the standard alphabet, padded).

   A key is a string or a streamctl.secret of 16, 24 or 32 bytes (AES-128,
   -192, -256); another length is a misuse and raises. Everything that can
   raise (argument checks, the output buffer, a userdata owned by the Lua
   state) comes before the cipher context is made; between its making and
   its freeing nothing raises, so it is never lost. EVP_CIPHER_CTX_free
   cleanses the expanded key. */
#include "core.h"

#define GCM_TAG 16

static const EVP_CIPHER *aes(lua_State *L, int idx, size_t keylen, int gcm) {
    switch (keylen) {
    case 16: return gcm ? EVP_aes_128_gcm() : EVP_aes_128_cbc();
    case 24: return gcm ? EVP_aes_192_gcm() : EVP_aes_192_cbc();
    case 32: return gcm ? EVP_aes_256_gcm() : EVP_aes_256_cbc();
    default: luaL_argerror(L, idx, "an AES key of 16, 24 or 32 bytes expected"); return NULL;
    }
}

/* The arguments every AES function takes: key (1), nonce or IV (2) of
   `ivlen` bytes, data (3); the cipher of the key's length. Misuse raises. */
typedef struct {
    const unsigned char *key, *iv, *data;
    size_t kl, il, dl;
    const EVP_CIPHER *cipher;
} aes_args;

static void check_args(lua_State *L, aes_args *a, int gcm, size_t ivlen, const char *ivsaid) {
    a->key = sc_check_secret(L, 1, &a->kl);
    a->iv = (const unsigned char *)luaL_checklstring(L, 2, &a->il);
    a->data = (const unsigned char *)luaL_checklstring(L, 3, &a->dl);
    a->cipher = aes(L, 1, a->kl, gcm);
    luaL_argcheck(L, a->il == ivlen, 2, ivsaid);
    luaL_argcheck(L, a->dl <= (size_t)INT32_MAX - 32, 3, "too long");
}

/* A scratch buffer of `n` bytes (at least 1) owned by the Lua state (a
   userdata left on the stack): freed by the collector, whatever raises. */
static unsigned char *scratch(lua_State *L, size_t n) {
    return (unsigned char *)lua_newuserdata(L, n > 0 ? n : 1);
}

/* core.aes_gcm_seal(key, nonce, plaintext): the ciphertext with its 16-byte
   tag after it. `nonce`: 12 bytes (GCM's own size; the generators' too). */
static int l_aes_gcm_seal(lua_State *L) {
    aes_args a;
    unsigned char *out;
    EVP_CIPHER_CTX *ctx;
    int len = 0, fin = 0, ok;

    check_args(L, &a, 1, 12, "a 12-byte nonce expected");
    out = scratch(L, a.dl + GCM_TAG);
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return luaL_error(L, "out of memory");
    ok = EVP_EncryptInit_ex(ctx, a.cipher, NULL, a.key, a.iv) == 1 &&
         EVP_EncryptUpdate(ctx, out, &len, a.data, (int)a.dl) == 1 &&
         EVP_EncryptFinal_ex(ctx, out + len, &fin) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG, out + len + fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) return luaL_error(L, "AES-GCM failed (is it disabled in this OpenSSL?)");
    lua_pushlstring(L, (const char *)out, (size_t)len + (size_t)fin + GCM_TAG);
    return 1;
}

/* core.aes_gcm_open(key, nonce, sealed): the plaintext, or nil when the
   tag does not verify (a byte changed, another key) or `sealed` is shorter
   than a tag. */
static int l_aes_gcm_open(lua_State *L) {
    aes_args a;
    unsigned char *out, tag[GCM_TAG];
    EVP_CIPHER_CTX *ctx;
    size_t cl;
    int len = 0, fin = 0, ok;

    check_args(L, &a, 1, 12, "a 12-byte nonce expected");
    if (a.dl < GCM_TAG) {
        lua_pushnil(L);
        return 1;
    }
    cl = a.dl - GCM_TAG;
    memcpy(tag, a.data + cl, GCM_TAG);
    out = scratch(L, cl);
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return luaL_error(L, "out of memory");
    ok = EVP_DecryptInit_ex(ctx, a.cipher, NULL, a.key, a.iv) == 1 &&
         EVP_DecryptUpdate(ctx, out, &len, a.data, (int)cl) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG, tag) == 1 &&
         EVP_DecryptFinal_ex(ctx, out + len, &fin) == 1; /* 0: the tag does not verify */
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        OPENSSL_cleanse(out, cl); /* (what an unverified text decrypted to is never handed out) */
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, (const char *)out, (size_t)len + (size_t)fin);
    return 1;
}

/* core.aes_cbc_seal(key, iv, plaintext): the ciphertext, PKCS#7-padded to
   whole blocks. `iv`: 16 bytes. */
static int l_aes_cbc_seal(lua_State *L) {
    aes_args a;
    unsigned char *out;
    EVP_CIPHER_CTX *ctx;
    int len = 0, fin = 0, ok;

    check_args(L, &a, 0, 16, "a 16-byte IV expected");
    out = scratch(L, a.dl + 16);
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return luaL_error(L, "out of memory");
    ok = EVP_EncryptInit_ex(ctx, a.cipher, NULL, a.key, a.iv) == 1 &&
         EVP_EncryptUpdate(ctx, out, &len, a.data, (int)a.dl) == 1 &&
         EVP_EncryptFinal_ex(ctx, out + len, &fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) return luaL_error(L, "AES-CBC failed (is it disabled in this OpenSSL?)");
    lua_pushlstring(L, (const char *)out, (size_t)len + (size_t)fin);
    return 1;
}

/* core.aes_cbc_open(key, iv, data): the plaintext, its PKCS#7 padding
   removed; nil when the padding is wrong or `data` is not whole blocks.
   CBC authenticates nothing: a caller must not trust what this returns
   for being readable (Token04's CBC form, read only when asked). */
static int l_aes_cbc_open(lua_State *L) {
    aes_args a;
    unsigned char *out;
    EVP_CIPHER_CTX *ctx;
    int len = 0, fin = 0, ok;

    check_args(L, &a, 0, 16, "a 16-byte IV expected");
    if (a.dl == 0 || a.dl % 16 != 0) {
        lua_pushnil(L);
        return 1;
    }
    out = scratch(L, a.dl + 16);
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return luaL_error(L, "out of memory");
    ok = EVP_DecryptInit_ex(ctx, a.cipher, NULL, a.key, a.iv) == 1 &&
         EVP_DecryptUpdate(ctx, out, &len, a.data, (int)a.dl) == 1 &&
         EVP_DecryptFinal_ex(ctx, out + len, &fin) == 1; /* 0: bad padding */
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, (const char *)out, (size_t)len + (size_t)fin);
    return 1;
}

/* core.base64_encode(s): standard alphabet, padded (EVP_EncodeBlock). */
static int l_base64_encode(lua_State *L) {
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    unsigned char *out;
    int written;
    luaL_argcheck(L, n <= (size_t)INT32_MAX / 4 * 3 - 3, 1, "too long");
    out = scratch(L, 4 * ((n + 2) / 3) + 1);
    written = EVP_EncodeBlock(out, s, (int)n);
    lua_pushlstring(L, (const char *)out, (size_t)written);
    return 1;
}

/* core.base64_decode(s): the bytes, or nil unless `s` is standard base64,
   padded, with nothing else in it, and the one text of its bytes (the
   unused bits before '=' zero: a token with a character changed never
   decodes to the same bytes). EVP_DecodeBlock skips blanks around the text
   and counts padding as zero bytes: the checks before it, written here,
   refuse what it would let through (a blank, a '=' inside, a length not a
   multiple of 4), the padding's bytes are taken off after, and the bytes
   encoded again must give `s`. */
static int l_base64_decode(lua_State *L) {
    size_t n, i, pad = 0;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    unsigned char *out;
    int written;
    if (n % 4 != 0 || n > (size_t)INT32_MAX) {
        lua_pushnil(L);
        return 1;
    }
    if (n > 0 && s[n - 1] == '=') pad++;
    if (n > 1 && s[n - 2] == '=') pad++;
    for (i = 0; i < n - pad; i++) {
        unsigned char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/')) {
            lua_pushnil(L);
            return 1;
        }
    }
    out = scratch(L, n / 4 * 3 + 1);
    written = n > 0 ? EVP_DecodeBlock(out, s, (int)n) : 0;
    if (written < 0 || (size_t)written < pad) {
        lua_pushnil(L);
        return 1;
    }
    written -= (int)pad;
    {
        unsigned char *again = scratch(L, n + 1);
        if (EVP_EncodeBlock(again, out, written) != (int)n || memcmp(again, s, n) != 0) {
            lua_pushnil(L);
            return 1;
        }
    }
    lua_pushlstring(L, (const char *)out, (size_t)written);
    return 1;
}

const luaL_Reg sc_cipher_funcs[] = {
    {"aes_gcm_seal", l_aes_gcm_seal},
    {"aes_gcm_open", l_aes_gcm_open},
    {"aes_cbc_seal", l_aes_cbc_seal},
    {"aes_cbc_open", l_aes_cbc_open},
    {"base64_encode", l_base64_encode},
    {"base64_decode", l_base64_decode},
    {NULL, NULL}};
