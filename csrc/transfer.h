/* streamctl.curl's parts: what curl.c (the module: easy and multi handles,
   sleep), curl_request.c (options, a request checked and set) and
   curl_transfer.c (a transfer's state and outcome) share. Internal. */
#ifndef STREAMCTL_TRANSFER_H
#define STREAMCTL_TRANSFER_H

#define _POSIX_C_SOURCE 200809L /* nanosleep, strdup */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "compat.h"
#include "bytes.h"

#define EASY_MT "streamctl.curl.easy"
#define MULTI_MT "streamctl.curl.multi"
#define CLOSED_MSG "streamctl.curl: handle is closed"

/* Fallbacks for the module's direct callers only (bench, examples, spec
   helpers): streamctl.transport.curl passes every option, from its DEFAULTS
   (the one table of the transports' defaults), so these never apply to a
   client's request. No User-Agent fallback: without the option none is sent. */
#define DEFAULT_TIMEOUT_MS 10000L
#define DEFAULT_CONNECT_TIMEOUT_MS 5000L
#define DEFAULT_MAX_BODY 1048576L
#define DEFAULT_MAX_CONNECTIONS 8L
#define MAX_BODY_LIMIT 1073741824L /* 1 GiB */
#define MAX_HEADER_BYTES 65536     /* response header lines, all of one transfer */

typedef struct {
    long timeout_ms;
    long connect_timeout_ms;
    size_t max_body;
    long max_connections; /* multi only */
    char *ca_file;        /* NULL: libcurl's default CA store */
    char *proxy;          /* NULL: no proxy (environment variables ignored) */
    char *user_agent;     /* NULL or "": none sent */
} sc_opts;

typedef struct {
    char *data;
    size_t len, cap;
} sc_buf;

enum { X_IDLE = 0, X_RUNNING, X_DONE };

typedef struct sc_xfer {
    CURL *curl;
    struct curl_slist *slist;
    sc_buf body;          /* response body */
    sc_buf head;          /* header lines of the last response (reset at each status line) */
    size_t head_total;    /* header bytes of every response of this transfer */
    size_t max_body;
    int body_over, head_over, oom;
    int sends;         /* times libcurl was about to send the request (CURLOPT_PREREQFUNCTION) */
    int resend_stopped; /* a resend of a request that had left was stopped: see on_prereq */
    char errbuf[CURL_ERROR_SIZE];
    /* multi only */
    int state;
    CURLcode result;
    int key_ref, body_ref;
    sc_bytes *held;            /* the body, when bytes: counted busy from add to unref (NULL: a string) */
    struct sc_xfer *next;      /* all transfers of a multi */
    struct sc_xfer *done_next; /* completion order */
} sc_xfer;

void sc_opts_free(sc_opts *o);
void sc_read_opts(lua_State *L, int idx, sc_opts *o, int multi);
size_t sc_on_body(char *p, size_t size, size_t nmemb, void *ud);
size_t sc_on_header(char *p, size_t size, size_t nitems, void *ud);
void sc_xfer_clear(sc_xfer *x);
int sc_lower(int c);
const char *sc_prepare(lua_State *L, int ridx, sc_xfer *x, const sc_opts *o, int *body_idx);
void sc_push_error(lua_State *L, const char *code, const char *msg, int sent, int curl_code);
int sc_push_outcome(lua_State *L, sc_xfer *x, CURLcode rc);

#endif
