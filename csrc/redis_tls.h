/*
 * TLS for streamctl.redis (csrc/redis_tls.c): a connection hiredis made,
 * wrapped in OpenSSL. Debian 12's hiredis (0.14) has no TLS of its own.
 */
#ifndef STREAMCTL_REDIS_TLS_H
#define STREAMCTL_REDIS_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

/* What a TLS connection checks and shows; NULL fields take the defaults. */
typedef struct {
    const char *ca_file;     /* PEM CAs to trust; NULL: OpenSSL's default paths */
    const char *server_name; /* checked in the certificate (and sent as SNI); NULL: the host */
    const char *cert_file;   /* the client's certificate chain (PEM), with key_file */
    const char *key_file;    /* its private key (PEM, not encrypted) */
} sc_tls_opts;

/* A context for o (its files loaded and checked), or NULL with a message
   in msg naming the option that failed (tls_ca_file, tls_cert_file,
   tls_key_file). */
SSL_CTX *sc_tls_context(const sc_tls_opts *o, char *msg, size_t msglen);

/* The handshake over the connected socket fd (blocking, its timeouts set):
   an SSL that owns nothing of fd, and in *m the BIO method it reads and
   writes through (BIO_meth_free it after SSL_free); or NULL (*m NULL) with
   *err (an errno, 0 when the reason is TLS's) and a message in msg. */
SSL *sc_tls_connect(int fd, const char *host, const sc_tls_opts *o, BIO_METHOD **m, int *err, char *msg,
                    size_t msglen);

/* Writes n bytes: 0, or -1 with *err and msg as above. */
int sc_tls_write(SSL *ssl, const char *p, size_t n, int *err, char *msg, size_t msglen);

/* Reads up to n bytes: how many (> 0), or -1 with *err and msg as above
   (the server closing the connection is one). */
int sc_tls_read(SSL *ssl, char *p, int n, int *err, char *msg, size_t msglen);

#endif
