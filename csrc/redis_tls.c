/*
 * TLS for streamctl.redis over OpenSSL. Debian 12's hiredis (0.14) has no
 * TLS (it came with hiredis 1.0's hiredis_ssl), so the blocking connection
 * hiredis made is wrapped here and hiredis keeps only its reply parser
 * (redis.c feeds it what SSL_read gives).
 *
 * Checks: the peer's certificate chain against ca_file (or OpenSSL's default
 * paths), and its name against server_name or the host: an IP address
 * against the certificate's IP entries, a name against its DNS names (no
 * partial wildcards; the name sent as SNI). TLS 1.2 at least. A private key
 * with a passphrase is refused rather than asked for on a terminal.
 *
 * The socket's reads and writes go through a BIO of our own, not OpenSSL's
 * socket BIO: that one writes with write(2), and a server that went away
 * would kill the process with SIGPIPE; ours sends with MSG_NOSIGNAL, as
 * redis.c does without TLS. Its reads and writes block under the socket's
 * SO_RCVTIMEO/SO_SNDTIMEO (hiredis set them), so a handshake or a read is
 * bounded as a plain one is; a timeout comes back as errno EAGAIN.
 */
#define _POSIX_C_SOURCE 200809L /* MSG_NOSIGNAL */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "redis_tls.h"


static int bio_write(BIO *b, const char *p, int n) {
    int fd = (int)(intptr_t)BIO_get_data(b);
    ssize_t w;
    do
        w = send(fd, p, (size_t)n, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    return w < 0 ? -1 : (int)w;
}

static int bio_read(BIO *b, char *p, int n) {
    int fd = (int)(intptr_t)BIO_get_data(b);
    ssize_t r;
    do
        r = recv(fd, p, (size_t)n, 0);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -1 : (int)r;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* writes go straight out */
}

/* A method of the connection's own (freed with it, after its SSL: a method
   kept for the process would outlive the module when Lua unloads it). */
static BIO_METHOD *method(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "streamctl redis socket");
    if (m == NULL) return NULL;
    if (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) || !BIO_meth_set_ctrl(m, bio_ctrl)) {
        BIO_meth_free(m);
        return NULL;
    }
    return m;
}

/* (a key with a passphrase: no prompt, the load fails) */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/* Why an SSL call failed, into *err and msg: the certificate check, else
   OpenSSL's error, else the socket's errno, else the peer closing. */
static void describe(SSL *ssl, const char *what, int e, int *err, char *msg, size_t msglen) {
    unsigned long code = ERR_peek_last_error();
    long verify = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
    *err = 0;
    if (verify != X509_V_OK) {
        snprintf(msg, msglen, "TLS %s: certificate verify failed (%s)", what, X509_verify_cert_error_string(verify));
    } else if (e == EAGAIN || e == EWOULDBLOCK) {
        *err = e; /* (the caller says "timeout") */
        snprintf(msg, msglen, "TLS %s: timeout", what);
    } else if (code != 0) {
        char text[200];
        ERR_error_string_n(code, text, sizeof(text));
        snprintf(msg, msglen, "TLS %s: %s", what, text);
    } else if (e != 0) {
        *err = e;
        snprintf(msg, msglen, "TLS %s: %s", what, strerror(e));
    } else {
        snprintf(msg, msglen, "TLS %s: connection closed by the server", what);
    }
    ERR_clear_error();
}

static int is_ip(const char *s) {
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

SSL_CTX *sc_tls_context(const sc_tls_opts *o, char *msg, size_t msglen) {
    SSL_CTX *ctx;
    const char *step = "setup";
    int e;
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) goto fail;
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) goto fail;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    step = "tls_ca_file";
    if (o->ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1
                           : SSL_CTX_set_default_verify_paths(ctx) != 1)
        goto fail;
    if (o->cert_file != NULL) {
        step = "tls_cert_file";
        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) goto fail;
        step = "tls_key_file";
        if (o->key_file == NULL || SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1)
            goto fail;
    }
    return ctx;
fail:
    if (strcmp(step, "setup") == 0) {
        describe(NULL, step, 0, &e, msg, msglen);
    } else {
        char text[200];
        ERR_error_string_n(ERR_peek_error(), text, sizeof(text)); /* (the first: the cause) */
        snprintf(msg, msglen, "%s cannot be loaded (OpenSSL: %s)", step, text);
        ERR_clear_error();
    }
    if (ctx != NULL) SSL_CTX_free(ctx);
    return NULL;
}

SSL *sc_tls_connect(int fd, const char *host, const sc_tls_opts *o, BIO_METHOD **m, int *err, char *msg,
                    size_t msglen) {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *bio;
    const char *name = o->server_name != NULL ? o->server_name : host;
    *err = 0;
    *m = NULL;
    ctx = sc_tls_context(o, msg, msglen);
    if (ctx == NULL) return NULL;
    ssl = SSL_new(ctx); /* holds ctx from here */
    SSL_CTX_free(ctx);
    if (ssl == NULL) goto fail;
    if (is_ip(name)) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1) goto fail;
    } else {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(ssl, name) != 1 || SSL_set_tlsext_host_name(ssl, name) != 1) goto fail;
    }
    *m = method();
    if (*m == NULL) goto fail;
    bio = BIO_new(*m);
    if (bio == NULL) goto fail;
    BIO_set_data(bio, (void *)(intptr_t)fd);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl, bio, bio); /* owned by ssl */
    errno = 0;
    if (SSL_connect(ssl) != 1) {
        describe(ssl, "handshake", errno, err, msg, msglen);
        goto free;
    }
    return ssl;
fail:
    describe(NULL, "setup", 0, err, msg, msglen);
free:
    if (ssl != NULL) SSL_free(ssl);
    if (*m != NULL) BIO_meth_free(*m);
    *m = NULL;
    return NULL;
}

int sc_tls_write(SSL *ssl, const char *p, size_t n, int *err, char *msg, size_t msglen) {
    ERR_clear_error();
    while (n > 0) {
        int chunk = n > (size_t)(INT_MAX / 2) ? INT_MAX / 2 : (int)n, w;
        errno = 0;
        w = SSL_write(ssl, p, chunk);
        if (w <= 0) {
            describe(NULL, "write", errno, err, msg, msglen);
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int sc_tls_read(SSL *ssl, char *p, int n, int *err, char *msg, size_t msglen) {
    int r;
    ERR_clear_error();
    errno = 0;
    r = SSL_read(ssl, p, n);
    if (r <= 0) {
        describe(NULL, "read", errno, err, msg, msglen);
        return -1;
    }
    return r;
}
