/*
 * The floor under streamctl's signing: bare OpenSSL over the same bytes the
 * signatures cover, measured in the same run as bench/sign.lua (which writes
 * those bytes to files and runs this). Built by `make bench`:
 *
 *   floor RUNS SECONDS V1_STRING_TO_SIGN V3_CANONICAL_REQUEST ZEGO_INPUT
 *
 * For each digest it prints one JSON line: {"name", "unit", "samples"} with
 * one rate (operations per second) per run. HMAC is measured twice: with
 * OpenSSL 3's one-shot HMAC() (it fetches the digest on every call) and with
 * a keyed EVP_MAC context re-initialised per message, the fastest way
 * OpenSSL offers and the true floor.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    unsigned char *p;
    long len;
    if (f == NULL) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc((size_t)len + 1);
    if (p == NULL || fread(p, 1, (size_t)len, f) != (size_t)len) { perror(path); exit(1); }
    fclose(f);
    *n = (size_t)len;
    return p;
}

typedef struct {
    const char *digest;
    const unsigned char *key, *msg;
    size_t kl, ml;
    EVP_MAC_CTX *ctx;
} job;

static volatile unsigned char sink;

static void oneshot(job *j) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    const EVP_MD *md = strcmp(j->digest, "SHA1") == 0 ? EVP_sha1() : EVP_sha256();
    if (HMAC(md, j->key, (int)j->kl, j->msg, j->ml, out, &n) == NULL) exit(2);
    sink ^= out[0];
}

static void keyed(job *j) {
    unsigned char out[EVP_MAX_MD_SIZE];
    size_t n = 0;
    if (!EVP_MAC_init(j->ctx, NULL, 0, NULL) || !EVP_MAC_update(j->ctx, j->msg, j->ml) ||
        !EVP_MAC_final(j->ctx, out, &n, sizeof(out)))
        exit(2);
    sink ^= out[0];
}

/* V3: SHA-256 of the canonical request, then HMAC-SHA256 of the string-to-sign. */
static void v3_sign(job *j) {
    static const char hexd[] = "0123456789abcdef";
    unsigned char d[32], out[EVP_MAX_MD_SIZE];
    char sts[17 + 64];
    unsigned int n = 0, i;
    size_t m = 0;
    if (!EVP_Digest(j->msg, j->ml, d, &n, EVP_sha256(), NULL)) exit(2);
    memcpy(sts, "ACS3-HMAC-SHA256\n", 17);
    for (i = 0; i < 32; i++) {
        sts[17 + 2 * i] = hexd[d[i] >> 4];
        sts[18 + 2 * i] = hexd[d[i] & 15];
    }
    if (!EVP_MAC_init(j->ctx, NULL, 0, NULL) || !EVP_MAC_update(j->ctx, (unsigned char *)sts, sizeof(sts)) ||
        !EVP_MAC_final(j->ctx, out, &m, sizeof(out)))
        exit(2);
    sink ^= out[0];
}

static void md5(job *j) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(j->msg, j->ml, out, &n, EVP_md5(), NULL)) exit(2);
    sink ^= out[0];
}

static void measure(const char *name, void (*fn)(job *), job *j, int runs, double seconds) {
    int r, i;
    printf("{\"name\":\"%s\",\"unit\":\"/s\",\"bytes\":%zu,\"samples\":[", name, j->ml);
    for (i = 0; i < 2000; i++) fn(j); /* warm up */
    for (r = 0; r < runs; r++) {
        long n = 0;
        double t0 = now(), t;
        do {
            for (i = 0; i < 1000; i++) fn(j);
            n += 1000;
            t = now();
        } while (t - t0 < seconds);
        printf("%s%.0f", r ? "," : "", (double)n / (t - t0));
    }
    printf("]}\n");
    fflush(stdout);
}

static EVP_MAC_CTX *keyed_ctx(const char *digest, const unsigned char *key, size_t kl) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    EVP_MAC_free(mac);
    if (ctx == NULL || !EVP_MAC_init(ctx, key, kl, params)) exit(2);
    return ctx;
}

int main(int argc, char **argv) {
    job v1, v3, z;
    int runs;
    double seconds;
    if (argc != 6) {
        fprintf(stderr, "usage: floor RUNS SECONDS V1_STRING_TO_SIGN V3_CANONICAL_REQUEST ZEGO_INPUT\n");
        return 1;
    }
    runs = atoi(argv[1]);
    seconds = atof(argv[2]);
    memset(&v1, 0, sizeof(v1));
    v1.digest = "SHA1";
    v1.key = (const unsigned char *)"emulator-secret-0123456789abcd&";
    v1.kl = strlen((const char *)v1.key);
    v1.msg = slurp(argv[3], &v1.ml);
    v1.ctx = keyed_ctx("SHA1", v1.key, v1.kl);
    v3 = v1;
    v3.digest = "SHA256";
    v3.kl = v1.kl - 1;
    v3.msg = slurp(argv[4], &v3.ml);
    v3.ctx = keyed_ctx("SHA256", v3.key, v3.kl);
    memset(&z, 0, sizeof(z));
    z.msg = slurp(argv[5], &z.ml);
    measure("floor: HMAC-SHA1, keyed context (V1 string-to-sign)", keyed, &v1, runs, seconds);
    measure("floor: HMAC-SHA1, one-shot HMAC() (V1 string-to-sign)", oneshot, &v1, runs, seconds);
    measure("floor: SHA-256 + HMAC-SHA256, keyed context (V3 canonical request)", v3_sign, &v3, runs, seconds);
    measure("floor: MD5 (ZEGO signature input)", md5, &z, runs, seconds);
    EVP_MAC_CTX_free(v1.ctx);
    EVP_MAC_CTX_free(v3.ctx);
    return 0;
}
