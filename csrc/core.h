/* streamctl.core's parts: what the files the module is made of share
   (core.c the module, its secrets and text checks; encode.c, sign_v1.c,
   sign_v3.c, sign_zego.c, digest.c, cipher.c, nonce.c, clock.c; file.c and
   fingerprint.c). Internal: nothing here is a public interface. */
#ifndef STREAMCTL_CORE_H
#define STREAMCTL_CORE_H

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

#define SECRET_MT "streamctl.secret"
#define V3_ALGORITHM "ACS3-HMAC-SHA256"

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

/* A parameter (name -> value); a repeated name is several, in order. */
typedef struct {
    const char *k, *v;
    size_t kl, vl;
    size_t order;
} sc_param;

#define SMALL_PARAMS 32     /* parameters a caller collects on its stack */
#define MAX_RANDOM_BYTES 256 /* the most sc_push_hex writes */

extern const char sc_hex[];  /* "0123456789abcdef" */
extern const char sc_hexu[]; /* "0123456789ABCDEF" */
extern const unsigned char sc_unreserved[256];

const unsigned char *sc_check_secret(lua_State *L, int idx, size_t *len);
size_t sc_encode_into(char *out, const char *s, size_t n, int keep_slash);
void sc_add_encoded(luaL_Buffer *b, const char *s, size_t n, int keep_slash);
void sc_to_hex(char *out, const unsigned char *p, size_t n);
void sc_push_hex(lua_State *L, const unsigned char *p, size_t n);
sc_param *sc_collect_params(lua_State *L, int tidx, size_t *count, sc_param *small);
void sc_push_canonical_query(lua_State *L, int tidx);
const char *sc_check_method(lua_State *L, int idx, size_t *len);
sc_mac *sc_keyed_mac(const char *digest, const unsigned char *key, size_t kl);
sc_md *sc_secret_md(sc_md **slot, const char *name);
void sc_sha256(lua_State *L, sc_secret *sec, const void *p, size_t n, unsigned char out[32]);

extern const luaL_Reg sc_encode_funcs[], sc_sign_v1_funcs[], sc_sign_v3_funcs[], sc_sign_zego_funcs[],
    sc_digest_funcs[], sc_cipher_funcs[], sc_clock_funcs[], sc_otlp_funcs[], sc_otlp_queue_funcs[],
    sc_bytes_funcs[];
void sc_nonce_open(lua_State *L);

#endif
