/*
 * What a list read as it goes needs in C: the compact set of names seen and
 * the running digest of its bytes.
 *
 * streamctl.core.fingerprint_set(): the compact set a streamed batch keeps
 * to drop repeats (docs/clients.md, "Streamed batches"), where a Lua table
 * of a million names would hold the names themselves (about 100 bytes each).
 *
 * Each name is kept as a 64-bit fingerprint: SipHash-2-4 (OpenSSL's
 * EVP_MAC, keyed with 16 bytes from RAND_bytes per set, so that no list can
 * be made to collide on purpose), in an open-addressing table of uint64_t
 * grown by doubling at a load of 0.7: between 11 and 23 bytes a name.
 *
 * The collision rule: two different names with the same fingerprint make
 * the second one a "repeat". The caller never drops a repeat silently (it
 * reports it, by name); the chance of one false repeat among n names is
 * about n^2 / 2^65 (a million names: 3 in 100 million).
 *
 * Where OpenSSL is older than 3.0 (no EVP_MAC), the fingerprint is the
 * first 8 bytes of HMAC-SHA256 under the same random key: slower, the same
 * rule.
 *
 * streamctl.core.sha256_stream(): SHA-256 over bytes given a piece at a
 * time (the command's digest of a --from file it reads in blocks, which
 * `sha256sum FILE` gives too), where core.sha256_hex needs them whole.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
#include <openssl/core_names.h>
#include <openssl/params.h>
#define FP_SIPHASH 1
#else
#define FP_SIPHASH 0
#endif

#include "compat.h"
#include "fingerprint.h"

#define FP_MT "streamctl.fingerprint_set"
#define FP_MIN_SLOTS 1024

typedef struct {
    uint64_t *slots; /* 0: empty (a fingerprint of 0 is kept as 1) */
    size_t cap;      /* a power of two, or 0 once closed */
    size_t count;
    unsigned char key[16];
#if FP_SIPHASH
    EVP_MAC_CTX *mac;
#endif
} fp_set;

static int fp_gc(lua_State *L) {
    fp_set *s = (fp_set *)luaL_checkudata(L, 1, FP_MT);
    free(s->slots);
    s->slots = NULL;
    s->cap = s->count = 0;
#if FP_SIPHASH
    EVP_MAC_CTX_free(s->mac);
    s->mac = NULL;
#endif
    OPENSSL_cleanse(s->key, sizeof(s->key));
    return 0;
}

/* The 64-bit fingerprint of `p`, never 0; or 0 when OpenSSL fails. */
static uint64_t fingerprint(fp_set *s, const char *p, size_t n) {
    unsigned char out[32];
    uint64_t v = 0;
    size_t i;
#if FP_SIPHASH
    size_t len = 0;
    if (!EVP_MAC_init(s->mac, NULL, 0, NULL) || !EVP_MAC_update(s->mac, (const unsigned char *)p, n) ||
        !EVP_MAC_final(s->mac, out, &len, sizeof(out)) || len < 8)
        return 0;
#else
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), s->key, (int)sizeof(s->key), (const unsigned char *)p, n, out, &len) == NULL ||
        len < 8)
        return 0;
#endif
    for (i = 0; i < 8; i++) v = (v << 8) | out[i];
    return v == 0 ? 1 : v;
}

/* Puts `v` in `slots` (capacity `cap`): 1 added, 0 already there. */
static int place(uint64_t *slots, size_t cap, uint64_t v) {
    size_t i = (size_t)(v ^ (v >> 29)) & (cap - 1);
    for (;;) {
        if (slots[i] == 0) {
            slots[i] = v;
            return 1;
        }
        if (slots[i] == v) return 0;
        i = (i + 1) & (cap - 1);
    }
}

/* set:add(name) -> true (new) | false (a repeat, or a fingerprint seen:
   see the collision rule above). Raises when memory or OpenSSL fail. */
static int fp_add(lua_State *L) {
    fp_set *s = (fp_set *)luaL_checkudata(L, 1, FP_MT);
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    uint64_t v;
    if (s->cap == 0) return luaL_error(L, "fingerprint_set: used after close");
    if ((s->count + 1) * 10 > s->cap * 7) {
        size_t cap = s->cap * 2, i;
        uint64_t *slots = (uint64_t *)calloc(cap, sizeof(uint64_t));
        if (slots == NULL) return luaL_error(L, "fingerprint_set: out of memory (%d names)", (int)s->count);
        for (i = 0; i < s->cap; i++)
            if (s->slots[i] != 0) place(slots, cap, s->slots[i]);
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    v = fingerprint(s, p, n);
    if (v == 0) return luaL_error(L, "fingerprint_set: OpenSSL could not hash a name");
    if (place(s->slots, s->cap, v)) {
        s->count++;
        lua_pushboolean(L, 1);
    } else {
        lua_pushboolean(L, 0);
    }
    return 1;
}

/* #set: the names kept. */
static int fp_len(lua_State *L) {
    fp_set *s = (fp_set *)luaL_checkudata(L, 1, FP_MT);
    lua_pushinteger(L, (lua_Integer)s->count);
    return 1;
}

/* set:bytes(): the memory the set holds (its table), for the docs' figure. */
static int fp_bytes(lua_State *L) {
    fp_set *s = (fp_set *)luaL_checkudata(L, 1, FP_MT);
    size_t bytes = s->cap * sizeof(uint64_t) + sizeof(fp_set);
    lua_pushinteger(L, (lua_Integer)bytes);
    return 1;
}

static int fp_tostring(lua_State *L) {
    fp_set *s = (fp_set *)luaL_checkudata(L, 1, FP_MT);
    lua_pushfstring(L, "streamctl.fingerprint_set (%d names)", (int)s->count);
    return 1;
}

/* core.fingerprint_set(): an empty set. The userdata and its metatable
   come first, so that its __gc frees whatever a later failure leaves. */
static int fp_new(lua_State *L) {
    fp_set *s = (fp_set *)lua_newuserdata(L, sizeof(fp_set));
    memset(s, 0, sizeof(*s));
    luaL_setmetatable(L, FP_MT);
    if (RAND_bytes(s->key, sizeof(s->key)) != 1) return luaL_error(L, "fingerprint_set: RAND_bytes failed");
#if FP_SIPHASH
    {
        EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
        OSSL_PARAM params[2];
        size_t size = 8;
        params[0] = OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size);
        params[1] = OSSL_PARAM_construct_end();
        s->mac = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
        EVP_MAC_free(mac);
        if (s->mac == NULL || !EVP_MAC_init(s->mac, s->key, sizeof(s->key), params))
            return luaL_error(L, "fingerprint_set: OpenSSL has no SipHash");
    }
#endif
    s->slots = (uint64_t *)calloc(FP_MIN_SLOTS, sizeof(uint64_t));
    if (s->slots == NULL) return luaL_error(L, "fingerprint_set: out of memory");
    s->cap = FP_MIN_SLOTS;
    return 1;
}

static const luaL_Reg fp_methods[] = {{"add", fp_add}, {"bytes", fp_bytes}, {NULL, NULL}};

/* The running SHA-256 ------------------------------------------------ */

#define SHA_MT "streamctl.sha256_stream"

typedef struct {
    EVP_MD_CTX *ctx; /* NULL once finished (or closed) */
} sha_stream;

static int sha_gc(lua_State *L) {
    sha_stream *h = (sha_stream *)luaL_checkudata(L, 1, SHA_MT);
    EVP_MD_CTX_free(h->ctx); /* cleanses its state */
    h->ctx = NULL;
    return 0;
}

/* h:update(bytes) -> h. Raises after hex(), or when OpenSSL fails. */
static int sha_update(lua_State *L) {
    sha_stream *h = (sha_stream *)luaL_checkudata(L, 1, SHA_MT);
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    if (h->ctx == NULL) return luaL_error(L, "sha256_stream: updated after hex()");
    if (!EVP_DigestUpdate(h->ctx, p, n)) return luaL_error(L, "sha256_stream: OpenSSL could not hash");
    lua_settop(L, 1);
    return 1;
}

/* h:hex() -> the lowercase hex digest of every byte given; once. */
static int sha_hex(lua_State *L) {
    static const char digits[] = "0123456789abcdef";
    sha_stream *h = (sha_stream *)luaL_checkudata(L, 1, SHA_MT);
    unsigned char d[EVP_MAX_MD_SIZE];
    char hex[2 * EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    size_t i;
    int ok;
    if (h->ctx == NULL) return luaL_error(L, "sha256_stream: hex() called twice");
    ok = EVP_DigestFinal_ex(h->ctx, d, &n);
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
    if (!ok) return luaL_error(L, "sha256_stream: OpenSSL could not hash");
    for (i = 0; i < (size_t)n; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    lua_pushlstring(L, hex, 2 * (size_t)n);
    return 1;
}

/* core.sha256_stream(): a digest with nothing in it yet. */
static int sha_new(lua_State *L) {
    sha_stream *h = (sha_stream *)lua_newuserdata(L, sizeof(sha_stream));
    h->ctx = NULL;
    luaL_setmetatable(L, SHA_MT);
    h->ctx = EVP_MD_CTX_new();
    if (h->ctx == NULL || !EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL))
        return luaL_error(L, "sha256_stream: OpenSSL has no SHA-256");
    return 1;
}

static const luaL_Reg sha_methods[] = {{"update", sha_update}, {"hex", sha_hex}, {NULL, NULL}};

/* Registers class `name`: its metatable (methods, __gc, and `meta`'s
   metamethods; __name, and a locked __metatable) and its constructor `new`
   as field `field` of the table on the top of the stack. */
static void add_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                      const luaL_Reg *meta, const char *field, lua_CFunction new_fn) {
    if (luaL_newmetatable(L, name)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
        if (meta != NULL) luaL_setfuncs(L, meta, 0);
        lua_pushstring(L, name);
        lua_setfield(L, -2, "__name");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, new_fn);
    lua_setfield(L, -2, field);
}

static const luaL_Reg fp_meta[] = {{"__len", fp_len}, {"__tostring", fp_tostring}, {NULL, NULL}};

void sc_fingerprint_open(lua_State *L) {
    add_class(L, SHA_MT, sha_methods, sha_gc, NULL, "sha256_stream", sha_new);
    add_class(L, FP_MT, fp_methods, fp_gc, fp_meta, "fingerprint_set", fp_new);
}
