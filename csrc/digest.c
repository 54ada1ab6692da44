/* streamctl.core, digest.c: digests and comparison for the edge's callbacks: SHA-256 as hex,
   a digest over sorted parts, and a constant-time compare. */
#include "core.h"

/* ------------------------------------------------------------------ */
/* Hashes                                                             */

static int l_sha256_hex(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char d[32];
    sc_sha256(L, NULL, s, n, d);
    sc_push_hex(L, d, 32);
    return 1;
}

/* core.digest_hex(alg, sep, sorted, part1, ..., partN): the lowercase hex
   digest ("md5", "sha1" or "sha256") of the parts joined by `sep`, after sorting them
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
    } else if (strcmp(alg, "sha256") == 0) {
        md = EVP_sha256();
    } else {
        return luaL_argerror(L, 1, "\"md5\", \"sha1\" or \"sha256\" expected");
    }
    if (nparts < 1 || nparts > DIGEST_MAX_PARTS) return luaL_error(L, "digest_hex: 1 to %d parts expected", DIGEST_MAX_PARTS);
    for (i = 0; i < (size_t)nparts; i++) parts[i].p = sc_check_secret(L, (int)i + 4, &parts[i].n);
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
    sc_push_hex(L, out, outlen);
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

const luaL_Reg sc_digest_funcs[] = {
    {"sha256_hex", l_sha256_hex},
    {"digest_hex", l_digest_hex},
    {"equal", l_equal},
    {NULL, NULL}};
