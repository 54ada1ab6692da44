/*
 * streamctl.curl: the HTTP transport of streamctl, over libcurl.
 *
 *   curl.easy(opts)            one reusable easy handle: h:request(req), h:close()
 *   curl.multi(opts)           concurrent transfers: m:add(key, req) (key: any value
 *                              but nil and NaN), m:poll(ms),
 *                              m:pending(), m:close(); a signal handler ends a
 *                              poll early (with what has completed, maybe none)
 *   curl.sleep(seconds)        a blocking sleep (scripts only); a signal handler
 *                              ends it early: it returns the seconds not slept
 *
 * Only http:// and https:// URLs, no redirects, TLS peer and host verification
 * always on, no signals (CURLOPT_NOSIGNAL), connect and total timeouts.
 *
 * What goes on the wire is what the caller asked for: the path is not
 * normalised (CURLOPT_PATH_AS_IS, it is signed as given), no "Expect:
 * 100-continue", no invented "Content-Type" for a body, caller headers replace
 * curl's (Host, Accept, User-Agent). Content-Length and Transfer-Encoding
 * belong to the transport and are refused from the caller. proxy = nil means
 * no proxy at all: http_proxy & co. in the environment are ignored.
 *
 * Errors: err.code is Timeout (CURLE_OPERATION_TIMEDOUT), TLSError (TLS and
 * certificate codes), InvalidResponse (body over max_body, header lines over
 * 64 KiB), InvalidRequest (checked here before anything is sent, and
 * CURLE_URL_MALFORMAT) or NetworkError (everything else, with curl's message).
 * err.sent is CURLINFO_REQUEST_SIZE > 0. Wrong argument types raise.
 *
 * Memory: every native object belongs to a userdata whose metatable (with
 * __gc) is set before the object is allocated, so nothing leaks when a Lua
 * error is raised half-way (bad argument, out of memory). Per-request state
 * (header list, response buffers) lives in the transfer struct and is reset
 * at the start of the next request and freed by close/__gc.
 *
 * Secrets: error messages name a request header, never its value; the URL
 * and the body never appear in a message. CURLOPT_VERBOSE is never set.
 *
 * curl_global_init: called from luaopen_streamctl_curl, once per process
 * (static flag), never undone. libcurl 7.84+ built with CURL_VERSION_THREADSAFE
 * makes it thread-safe by itself; with older libcurl, load this module before
 * starting threads (nginx: init_by_lua, or in each worker process, which are
 * processes, not threads).
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, strdup */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "compat.h"

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

/* ------------------------------------------------------------------ */
/* Options shared by easy and multi                                   */

typedef struct {
    long timeout_ms;
    long connect_timeout_ms;
    size_t max_body;
    long max_connections; /* multi only */
    char *ca_file;        /* NULL: libcurl's default CA store */
    char *proxy;          /* NULL: no proxy (environment variables ignored) */
    char *user_agent;     /* NULL or "": none sent */
} sc_opts;

static void opts_free(sc_opts *o) {
    free(o->ca_file);
    free(o->proxy);
    free(o->user_agent);
    o->ca_file = o->proxy = o->user_agent = NULL;
}

static char *dup_mem(lua_State *L, const char *s, size_t n) {
    char *p = (char *)malloc(n + 1);
    if (p == NULL) luaL_error(L, "streamctl.curl: out of memory");
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static long opt_int(lua_State *L, int t, const char *name, long def, long min, long max) {
    long v = def;
    lua_getfield(L, t, name);
    if (!lua_isnil(L, -1)) {
        lua_Number n;
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "streamctl.curl: option '%s' must be an integer in %d..%d", name,
                       (int)min, (int)max);
        n = lua_tonumber(L, -1);
        if (!(n >= (lua_Number)min && n <= (lua_Number)max) || n != (lua_Number)(long)n)
            luaL_error(L, "streamctl.curl: option '%s' must be an integer in %d..%d", name,
                       (int)min, (int)max);
        v = (long)n;
    }
    lua_pop(L, 1);
    return v;
}

/* A string option, copied into *dst (owned by the caller's userdata); absent: NULL. */
static void opt_str(lua_State *L, int t, const char *name, char **dst) {
    lua_getfield(L, t, name);
    if (!lua_isnil(L, -1)) {
        size_t n, i;
        const char *s;
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "streamctl.curl: option '%s' must be a string", name);
        s = lua_tolstring(L, -1, &n);
        for (i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                luaL_error(L, "streamctl.curl: option '%s' must not contain control characters",
                           name);
        *dst = dup_mem(L, s, n);
    }
    lua_pop(L, 1);
}

/* Reads the options table at idx (or nil) into o, which is already owned by a userdata. */
static void read_opts(lua_State *L, int idx, sc_opts *o, int multi) {
    o->timeout_ms = DEFAULT_TIMEOUT_MS;
    o->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    o->max_body = (size_t)DEFAULT_MAX_BODY;
    o->max_connections = DEFAULT_MAX_CONNECTIONS;
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    o->timeout_ms = opt_int(L, idx, "timeout_ms", DEFAULT_TIMEOUT_MS, 1, INT_MAX);
    o->connect_timeout_ms =
        opt_int(L, idx, "connect_timeout_ms", DEFAULT_CONNECT_TIMEOUT_MS, 1, INT_MAX);
    o->max_body = (size_t)opt_int(L, idx, "max_body", DEFAULT_MAX_BODY, 0, MAX_BODY_LIMIT);
    if (multi)
        o->max_connections =
            opt_int(L, idx, "max_connections", DEFAULT_MAX_CONNECTIONS, 1, 1024);
    opt_str(L, idx, "ca_file", &o->ca_file);
    opt_str(L, idx, "proxy", &o->proxy);
    opt_str(L, idx, "user_agent", &o->user_agent);
}

/* ------------------------------------------------------------------ */
/* A transfer: one easy handle and its per-request state              */

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
    char errbuf[CURL_ERROR_SIZE];
    /* multi only */
    int state;
    CURLcode result;
    int key_ref, body_ref;
    struct sc_xfer *next;      /* all transfers of a multi */
    struct sc_xfer *done_next; /* completion order */
} sc_xfer;

static void buf_free(sc_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int buf_add(sc_buf *b, const char *p, size_t n, size_t limit) {
    if (n == 0) return 1;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 16384;
        char *d;
        while (cap - b->len < n) cap *= 2;
        if (cap > limit && limit >= b->len + n) cap = limit;
        d = (char *)realloc(b->data, cap ? cap : 1);
        if (d == NULL) return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 1;
}

static void xfer_clear(sc_xfer *x) {
    curl_slist_free_all(x->slist);
    x->slist = NULL;
    buf_free(&x->body);
    buf_free(&x->head);
    x->head_total = 0;
    x->body_over = x->head_over = x->oom = 0;
    x->errbuf[0] = '\0';
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud) {
    sc_xfer *x = (sc_xfer *)ud;
    size_t n = size * nmemb;
    if (n > x->max_body - x->body.len) {
        x->body_over = 1;
        return 0; /* CURLE_WRITE_ERROR */
    }
    if (!buf_add(&x->body, p, n, x->max_body)) {
        x->oom = 1;
        return 0;
    }
    return n;
}

static size_t on_header(char *p, size_t size, size_t nitems, void *ud) {
    sc_xfer *x = (sc_xfer *)ud;
    size_t n = size * nitems;
    if (n > MAX_HEADER_BYTES - x->head_total) {
        x->head_over = 1;
        return 0;
    }
    x->head_total += n;
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) x->head.len = 0; /* a new response */
    if (!buf_add(&x->head, p, n, MAX_HEADER_BYTES)) {
        x->oom = 1;
        return 0;
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* Request validation and setup                                       */

static int is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c; }

static int ieq(const char *a, size_t an, const char *b) {
    size_t i, bn = strlen(b);
    if (an != bn) return 0;
    for (i = 0; i < an; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return 0;
    return 1;
}

/* Pushes a printable copy of a header name (for messages): its first 64
   bytes, control characters and quotes shown as '?', and "..." when cut. */
static const char *push_safe_name(lua_State *L, const char *s, size_t n) {
    char out[64] = {0};
    size_t i, m = n > sizeof out ? sizeof out : n;
    /* cppcheck follows the caller that may pass an empty name (n = 0) and
       calls the loop dead; the other callers pass real lengths */
    // cppcheck-suppress knownConditionTrueFalse
    for (i = 0; i < m; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (char)((c < 0x20 || c >= 0x7f || c == '\'') ? '?' : c);
    }
    lua_pushlstring(L, out, m);
    if (n > m) {
        lua_pushliteral(L, "...");
        lua_concat(L, 2);
    }
    return lua_tostring(L, -1);
}

/* An InvalidRequest message (pushed on the stack); the caller returns it. */
static const char *bad_header(lua_State *L, const char *name, size_t nl, const char *what) {
    const char *safe = push_safe_name(L, name, nl);
    return lua_pushfstring(L, "header '%s' %s", safe, what);
}

/* Is a header with this name already in the list? (case-insensitive) */
static int slist_has(const struct curl_slist *l, const char *name, size_t nl) {
    for (; l != NULL; l = l->next) {
        size_t i;
        for (i = 0; i < nl; i++)
            if (lower((unsigned char)l->data[i]) != lower((unsigned char)name[i])) break;
        if (i == nl && (l->data[nl] == ':' || l->data[nl] == ';')) return 1;
    }
    return 0;
}

static void slist_push(lua_State *L, sc_xfer *x, const char *line) {
    struct curl_slist *l = curl_slist_append(x->slist, line);
    if (l == NULL) luaL_error(L, "streamctl.curl: out of memory");
    x->slist = l;
}

#define SETOPT(c, opt, val)                                       \
    do {                                                          \
        CURLcode rc_ = curl_easy_setopt((c), (opt), (val));       \
        if (rc_ != CURLE_OK) return rc_;                          \
    } while (0)

/* The options every request gets, after curl_easy_reset. */
static CURLcode base_options(sc_xfer *x, const sc_opts *o) {
    CURL *c = x->curl;
    SETOPT(c, CURLOPT_NOSIGNAL, 1L);
    SETOPT(c, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    SETOPT(c, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    SETOPT(c, CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(c, CURLOPT_SSL_VERIFYHOST, 2L);
    SETOPT(c, CURLOPT_PROXY_SSL_VERIFYPEER, 1L);
    SETOPT(c, CURLOPT_PROXY_SSL_VERIFYHOST, 2L);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(c, CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SETOPT(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SETOPT(c, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SETOPT(c, CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(c, CURLOPT_PATH_AS_IS, 1L); /* the path is sent as signed */
    SETOPT(c, CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(c, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    SETOPT(c, CURLOPT_ERRORBUFFER, x->errbuf);
    SETOPT(c, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(c, CURLOPT_WRITEDATA, (void *)x);
    SETOPT(c, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(c, CURLOPT_HEADERDATA, (void *)x);
    SETOPT(c, CURLOPT_PRIVATE, (void *)x);
    if (o->max_body > 0) SETOPT(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_body);
    /* An empty string disables proxies, including http_proxy & co. from the
     * environment; "env" leaves CURLOPT_PROXY unset, so that libcurl reads
     * them itself (https_proxy/HTTPS_PROXY, http_proxy, no_proxy/NO_PROXY),
     * as the official SDKs read HTTPS_PROXY and NO_PROXY. */
    if (o->proxy == NULL) SETOPT(c, CURLOPT_PROXY, "");
    else if (strcmp(o->proxy, "env") != 0) SETOPT(c, CURLOPT_PROXY, o->proxy);
    if (o->ca_file != NULL) SETOPT(c, CURLOPT_CAINFO, o->ca_file);
    if (o->user_agent != NULL && o->user_agent[0] != '\0')
        SETOPT(c, CURLOPT_USERAGENT, o->user_agent);
    return CURLE_OK;
}

static int method_has_body(const char *m) {
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
}

/* The method and URL rules: NULL, or an InvalidRequest message (pushed). */
static const char *check_line(lua_State *L, const char *method, size_t ml, const char *url, size_t ul,
                              size_t bl) {
    size_t i;
    if (ml == 0) return lua_pushfstring(L, "method must not be empty");
    for (i = 0; i < ml; i++)
        if (!is_tchar((unsigned char)method[i]))
            return lua_pushfstring(L, "method contains CR, LF, NUL or another invalid character");
    for (i = 0; i < ul; i++)
        if ((unsigned char)url[i] < 0x20 || url[i] == 0x7f)
            return lua_pushfstring(L, "url contains CR, LF, NUL or another control character");
    if (!((ul > 7 && ieq(url, 7, "http://")) || (ul > 8 && ieq(url, 8, "https://"))))
        return lua_pushfstring(L, "url must start with http:// or https://");
    if (strcmp(method, "HEAD") == 0 && bl > 0)
        return lua_pushfstring(L, "a HEAD request must not have a body");
    return NULL;
}

/*
 * One header (name at -2, value at -1, popped on success) into x's list.
 * The rule is streamctl.transport.curl.header_fields', which both transports
 * apply before they get here; it is checked again here on purpose (defence
 * in depth): this module is also called directly (bench, examples, spec
 * helpers), and libcurl sends a list line as it is, so a CR or LF that got
 * this far would inject a header. NULL, or an InvalidRequest message (pushed).
 */
static const char *add_header(lua_State *L, sc_xfer *x, int *has_expect, int *has_ctype) {
    size_t nl, vl, i;
    const char *name, *value;
    if (lua_type(L, -2) != LUA_TSTRING)
        luaL_error(L, "streamctl.curl: header names must be strings (got %s)", luaL_typename(L, -2));
    name = lua_tolstring(L, -2, &nl);
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
        push_safe_name(L, name, nl);
        luaL_error(L, "streamctl.curl: header '%s' must be a string (got %s)", lua_tostring(L, -1),
                   luaL_typename(L, -2));
    }
    value = lua_tolstring(L, -1, &vl); /* converts the stack copy, not the table */
    if (nl == 0) return lua_pushfstring(L, "header name must not be empty");
    for (i = 0; i < nl; i++)
        if (!is_tchar((unsigned char)name[i]))
            return bad_header(L, name, nl, "has CR, LF, NUL or another invalid character in its name");
    for (i = 0; i < vl; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return bad_header(L, name, nl, "value contains CR, LF, NUL or another control character");
    }
    if (ieq(name, nl, "Content-Length") || ieq(name, nl, "Transfer-Encoding"))
        return bad_header(L, name, nl, "is set by the transport");
    if (slist_has(x->slist, name, nl))
        return bad_header(L, name, nl, "given twice (names are case-insensitive)");
    if (ieq(name, nl, "Expect")) *has_expect = 1;
    if (ieq(name, nl, "Content-Type")) *has_ctype = 1;
    /* "Name;" sends an empty header; "Name:" would remove curl's own. */
    if (vl == 0)
        lua_pushfstring(L, "%s;", name);
    else
        lua_pushfstring(L, "%s: %s", name, value);
    slist_push(L, x, lua_tostring(L, -1));
    lua_pop(L, 2); /* line, value */
    return NULL;
}

/* The headers table at hidx (or nil) into x's list, then the two curl would
   invent. NULL, or an InvalidRequest message (pushed). */
static const char *add_headers(lua_State *L, sc_xfer *x, int hidx) {
    int has_expect = 0, has_ctype = 0;
    if (!lua_isnil(L, hidx)) {
        lua_pushnil(L);
        while (lua_next(L, hidx) != 0) {
            const char *bad = add_header(L, x, &has_expect, &has_ctype);
            if (bad != NULL) return bad;
        }
    }
    if (!has_expect) slist_push(L, x, "Expect:"); /* no 100-continue round trip */
    if (!has_ctype) slist_push(L, x, "Content-Type:"); /* no invented form type */
    return NULL;
}

/* The method, URL, headers and body as curl options (after base_options). */
static CURLcode set_request(sc_xfer *x, const char *method, const char *url, const char *body, size_t bl) {
    CURLcode rc;
    if ((rc = curl_easy_setopt(x->curl, CURLOPT_URL, url)) != CURLE_OK ||
        (rc = curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, x->slist)) != CURLE_OK)
        return rc;
    if (strcmp(method, "HEAD") == 0) return curl_easy_setopt(x->curl, CURLOPT_NOBODY, 1L);
    if (bl > 0 || method_has_body(method)) {
        /* The body string stays referenced (stack or registry) until the end. */
        if ((rc = curl_easy_setopt(x->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bl)) != CURLE_OK ||
            (rc = curl_easy_setopt(x->curl, CURLOPT_POSTFIELDS, body)) != CURLE_OK)
            return rc;
        return strcmp(method, "POST") != 0 ? curl_easy_setopt(x->curl, CURLOPT_CUSTOMREQUEST, method) : CURLE_OK;
    }
    if (strcmp(method, "GET") != 0) return curl_easy_setopt(x->curl, CURLOPT_CUSTOMREQUEST, method);
    return CURLE_OK;
}

/*
 * Validates the request table at ridx and sets x up for it (reset first).
 * Returns NULL when ready, or an InvalidRequest message (pushed on the stack).
 * Raises on arguments of the wrong type. On success *body_idx is the stack
 * index of the body string, which must stay referenced until the transfer ends.
 */
static const char *prepare(lua_State *L, int ridx, sc_xfer *x, const sc_opts *o, int *body_idx) {
    size_t ml, ul, bl;
    const char *method, *url, *body, *bad;
    int base;
    CURLcode rc;

    luaL_checktype(L, ridx, LUA_TTABLE);
    xfer_clear(x);
    curl_easy_reset(x->curl);
    x->max_body = o->max_body;

    lua_getfield(L, ridx, "method");  /* base + 1 */
    lua_getfield(L, ridx, "url");     /* base + 2 */
    lua_getfield(L, ridx, "headers"); /* base + 3 */
    lua_getfield(L, ridx, "body");    /* base + 4 */
    base = lua_gettop(L) - 4;

    if (lua_isnil(L, base + 1)) {
        lua_pushliteral(L, "GET");
        lua_replace(L, base + 1);
    }
    if (lua_type(L, base + 1) != LUA_TSTRING)
        luaL_error(L, "streamctl.curl: request.method must be a string");
    if (lua_type(L, base + 2) != LUA_TSTRING)
        luaL_error(L, "streamctl.curl: request.url must be a string");
    if (!lua_isnil(L, base + 3) && !lua_istable(L, base + 3))
        luaL_error(L, "streamctl.curl: request.headers must be a table");
    if (lua_isnil(L, base + 4)) {
        lua_pushliteral(L, "");
        lua_replace(L, base + 4);
    }
    if (lua_type(L, base + 4) != LUA_TSTRING)
        luaL_error(L, "streamctl.curl: request.body must be a string");
    method = lua_tolstring(L, base + 1, &ml);
    url = lua_tolstring(L, base + 2, &ul);
    body = lua_tolstring(L, base + 4, &bl);
    *body_idx = base + 4;

    if ((bad = check_line(L, method, ml, url, ul, bl)) != NULL) return bad;
    if ((bad = add_headers(L, x, base + 3)) != NULL) return bad;
    if ((rc = base_options(x, o)) != CURLE_OK || (rc = set_request(x, method, url, body, bl)) != CURLE_OK)
        luaL_error(L, "streamctl.curl: curl_easy_setopt failed: %s", curl_easy_strerror(rc));
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Outcome: a response table or an error table                        */

static void push_error(lua_State *L, const char *code, const char *msg, int sent, int curl_code) {
    lua_createtable(L, 0, 4);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    lua_pushboolean(L, sent);
    lua_setfield(L, -2, "sent");
    if (curl_code >= 0) {
        lua_pushinteger(L, curl_code);
        lua_setfield(L, -2, "curl_code");
    }
}

static const char *code_for(CURLcode rc) {
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return "Timeout";
    case CURLE_URL_MALFORMAT:
        return "InvalidRequest";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_USE_SSL_FAILED:
#if LIBCURL_VERSION_NUM >= 0x072700
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
#endif
#if LIBCURL_VERSION_NUM >= 0x072900
    case CURLE_SSL_INVALIDCERTSTATUS:
#endif
#if LIBCURL_VERSION_NUM >= 0x074d00
    case CURLE_SSL_CLIENTCERT:
#endif
        return "TLSError";
    default:
        return "NetworkError";
    }
}

/* Pushes the response headers of x as a table: lower-case names, repeats joined by ", ". */
static void push_headers(lua_State *L, sc_xfer *x) {
    char *p = x->head.data, *end = p + x->head.len, *last = NULL;
    size_t lastl = 0;
    int t, first = 1;
    lua_newtable(L);
    t = lua_gettop(L);
    while (p < end) {
        char *eol = (char *)memchr(p, '\n', (size_t)(end - p));
        char *line = p, *le = eol ? eol : end, *colon, *v, *ve, *q;
        p = eol ? eol + 1 : end;
        if (le > line && le[-1] == '\r') le--;
        if (first) { first = 0; continue; } /* status line */
        if (le == line) break;              /* end of the header block */
        if (*line == ' ' || *line == '\t') { /* obsolete folding: continue the last value */
            if (last == NULL) continue;
            v = line;
            while (v < le && (*v == ' ' || *v == '\t')) v++;
            lua_pushlstring(L, last, lastl);
            lua_pushlstring(L, last, lastl);
            lua_rawget(L, t);
            lua_pushliteral(L, " ");
            lua_pushlstring(L, v, (size_t)(le - v));
            lua_concat(L, 3);
            lua_rawset(L, t);
            continue;
        }
        colon = (char *)memchr(line, ':', (size_t)(le - line));
        if (colon == NULL || colon == line) continue;
        for (q = line; q < colon; q++) *q = (char)lower((unsigned char)*q);
        v = colon + 1;
        ve = le;
        while (v < ve && (*v == ' ' || *v == '\t')) v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        last = line;
        lastl = (size_t)(colon - line);
        lua_pushlstring(L, line, lastl);
        lua_pushvalue(L, -1);
        lua_rawget(L, t);
        if (lua_isstring(L, -1)) {
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, v, (size_t)(ve - v));
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, v, (size_t)(ve - v));
        }
        lua_rawset(L, t);
    }
}

/* Pushes the outcome of a finished transfer; returns 1 for a response, 0 for an error. */
static int push_outcome(lua_State *L, sc_xfer *x, CURLcode rc) {
    long status = 0, reqsize = 0;
    lua_Number ms;
    int sent;
    curl_easy_getinfo(x->curl, CURLINFO_REQUEST_SIZE, &reqsize);
    sent = reqsize > 0;
    if (rc != CURLE_OK) {
        const char *msg;
        if (x->body_over || rc == CURLE_FILESIZE_EXCEEDED) {
            lua_pushfstring(L, "response body exceeds %d bytes", (int)x->max_body);
            msg = lua_tostring(L, -1);
            push_error(L, "InvalidResponse", msg, sent, (int)rc);
        } else if (x->head_over) {
            lua_pushfstring(L, "response headers exceed %d bytes", MAX_HEADER_BYTES);
            msg = lua_tostring(L, -1);
            push_error(L, "InvalidResponse", msg, sent, (int)rc);
        } else if (x->oom) {
            msg = "out of memory while receiving the response";
            lua_pushstring(L, msg);
            push_error(L, "NetworkError", msg, sent, (int)rc);
        } else {
            msg = x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(rc);
            lua_pushstring(L, msg);
            push_error(L, code_for(rc), msg, sent, (int)rc);
        }
        lua_remove(L, -2);
        xfer_clear(x);
        return 0;
    }
#if LIBCURL_VERSION_NUM >= 0x073d00
    {
        curl_off_t us = 0;
        curl_easy_getinfo(x->curl, CURLINFO_TOTAL_TIME_T, &us);
        ms = (lua_Number)us / 1000.0;
    }
#else
    {
        double s = 0;
        curl_easy_getinfo(x->curl, CURLINFO_TOTAL_TIME, &s);
        ms = (lua_Number)(s * 1000.0);
    }
#endif
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)status);
    lua_setfield(L, -2, "status");
    push_headers(L, x);
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, x->body.data ? x->body.data : "", x->body.len);
    lua_setfield(L, -2, "body");
    lua_pushnumber(L, ms);
    lua_setfield(L, -2, "total_ms");
    xfer_clear(x); /* release the buffers now; the header list goes too */
    return 1;
}

/* ------------------------------------------------------------------ */
/* curl.easy                                                          */

typedef struct {
    sc_opts opts;
    sc_xfer x;
    int closed;
} sc_easy;

static sc_easy *check_easy(lua_State *L) {
    sc_easy *e = (sc_easy *)luaL_checkudata(L, 1, EASY_MT);
    if (e->closed) luaL_error(L, CLOSED_MSG);
    return e;
}

static int l_easy(lua_State *L) {
    sc_easy *e;
    lua_settop(L, 1);
    e = (sc_easy *)lua_newuserdata(L, sizeof(sc_easy));
    memset(e, 0, sizeof(sc_easy));
    e->x.key_ref = e->x.body_ref = LUA_NOREF;
    luaL_setmetatable(L, EASY_MT);
    read_opts(L, 1, &e->opts, 0);
    e->x.curl = curl_easy_init();
    if (e->x.curl == NULL) return luaL_error(L, "streamctl.curl: curl_easy_init failed");
    return 1;
}

static int easy_request(lua_State *L) {
    sc_easy *e = check_easy(L);
    int body_idx;
    const char *bad;
    CURLcode rc;
    lua_settop(L, 2);
    bad = prepare(L, 2, &e->x, &e->opts, &body_idx);
    if (bad != NULL) {
        lua_pushnil(L);
        push_error(L, "InvalidRequest", bad, 0, -1);
        xfer_clear(&e->x);
        return 2;
    }
    /* The body string is at body_idx for the whole (blocking) transfer. */
    rc = curl_easy_perform(e->x.curl);
    if (push_outcome(L, &e->x, rc)) return 1;
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

static int easy_close(lua_State *L) {
    sc_easy *e = (sc_easy *)luaL_checkudata(L, 1, EASY_MT);
    if (!e->closed) {
        e->closed = 1;
        xfer_clear(&e->x);
        if (e->x.curl != NULL) curl_easy_cleanup(e->x.curl);
        e->x.curl = NULL;
        opts_free(&e->opts);
    }
    return 0;
}

static int easy_tostring(lua_State *L) {
    sc_easy *e = (sc_easy *)luaL_checkudata(L, 1, EASY_MT);
    lua_pushfstring(L, "streamctl.curl.easy (%s)", e->closed ? "closed" : "open");
    return 1;
}

/* ------------------------------------------------------------------ */
/* curl.multi                                                         */

typedef struct {
    sc_opts opts;
    CURLM *multi;
    sc_xfer *xfers;     /* every transfer struct, in any state */
    sc_xfer *done_head; /* finished, not yet returned by poll */
    sc_xfer *done_tail;
    int closed;
} sc_multi;

static sc_multi *check_multi(lua_State *L) {
    sc_multi *m = (sc_multi *)luaL_checkudata(L, 1, MULTI_MT);
    if (m->closed) luaL_error(L, CLOSED_MSG);
    return m;
}

static void xfer_unref(lua_State *L, sc_xfer *x) {
    luaL_unref(L, LUA_REGISTRYINDEX, x->key_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, x->body_ref);
    x->key_ref = x->body_ref = LUA_NOREF;
}

static void xfer_destroy(sc_xfer *x) {
    xfer_clear(x);
    if (x->curl != NULL) curl_easy_cleanup(x->curl);
    free(x);
}

static int l_multi(lua_State *L) {
    sc_multi *m;
    lua_settop(L, 1);
    m = (sc_multi *)lua_newuserdata(L, sizeof(sc_multi));
    memset(m, 0, sizeof(sc_multi));
    luaL_setmetatable(L, MULTI_MT);
    read_opts(L, 1, &m->opts, 1);
    m->multi = curl_multi_init();
    if (m->multi == NULL) return luaL_error(L, "streamctl.curl: curl_multi_init failed");
    if (curl_multi_setopt(m->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, m->opts.max_connections) !=
            CURLM_OK ||
        curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, m->opts.max_connections) != CURLM_OK)
        return luaL_error(L, "streamctl.curl: curl_multi_setopt failed");
    return 1;
}

static int count_state(const sc_multi *m, int state) {
    const sc_xfer *x;
    int n = 0;
    for (x = m->xfers; x != NULL; x = x->next)
        if (x->state == state) n++;
    return n;
}

/* An idle transfer struct with an easy handle, owned by m before anything can raise. */
static sc_xfer *get_idle(lua_State *L, sc_multi *m) {
    sc_xfer *x;
    for (x = m->xfers; x != NULL; x = x->next)
        if (x->state == X_IDLE) break;
    if (x == NULL) {
        x = (sc_xfer *)calloc(1, sizeof(sc_xfer));
        if (x == NULL) luaL_error(L, "streamctl.curl: out of memory");
        x->key_ref = x->body_ref = LUA_NOREF;
        x->next = m->xfers;
        m->xfers = x;
    }
    xfer_unref(L, x); /* left over if a previous add raised half-way */
    if (x->curl == NULL) {
        x->curl = curl_easy_init();
        if (x->curl == NULL) luaL_error(L, "streamctl.curl: curl_easy_init failed");
    }
    return x;
}

static int multi_add(lua_State *L) {
    sc_multi *m = check_multi(L);
    sc_xfer *x;
    const char *bad;
    int body_idx, running;
    CURLMcode mc;
    lua_settop(L, 3);
    /* Any value but nil is a key (the engine passes its attempt tables): it is
       held by a registry reference while in flight and compared raw, so a
       table key comes back from poll as the very same table. NaN is refused:
       it is never raw-equal to itself, so a duplicate could not be seen. */
    if (lua_isnil(L, 2)) luaL_argerror(L, 2, "key must not be nil");
    if (lua_type(L, 2) == LUA_TNUMBER && lua_tonumber(L, 2) != lua_tonumber(L, 2))
        luaL_argerror(L, 2, "key must not be NaN");
    for (x = m->xfers; x != NULL; x = x->next) {
        if (x->state == X_IDLE) continue;
        lua_rawgeti(L, LUA_REGISTRYINDEX, x->key_ref);
        if (lua_rawequal(L, -1, 2)) luaL_argerror(L, 2, "a transfer with this key is in flight");
        lua_pop(L, 1);
    }
    x = get_idle(L, m);
    bad = prepare(L, 3, x, &m->opts, &body_idx);
    if (bad != NULL) {
        lua_pushnil(L);
        push_error(L, "InvalidRequest", bad, 0, -1);
        xfer_clear(x);
        return 2;
    }
    lua_pushvalue(L, 2);
    x->key_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, body_idx);
    x->body_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* POSTFIELDS points into this string */
    mc = curl_multi_add_handle(m->multi, x->curl);
    if (mc != CURLM_OK) {
        xfer_unref(L, x);
        xfer_clear(x);
        lua_pushnil(L);
        push_error(L, "NetworkError", curl_multi_strerror(mc), 0, -1);
        return 2;
    }
    x->state = X_RUNNING;
    curl_multi_perform(m->multi, &running); /* start it; completions are read by poll */
    lua_pushboolean(L, 1);
    return 1;
}

/* Moves finished transfers from libcurl's message queue to m's done list. */
static void collect(sc_multi *m) {
    CURLMsg *msg;
    int left, running;
    curl_multi_perform(m->multi, &running);
    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        sc_xfer *x;
        char *priv = NULL;
        CURL *c = msg->easy_handle;
        CURLcode rc = msg->data.result;
        if (msg->msg != CURLMSG_DONE) continue;
        curl_easy_getinfo(c, CURLINFO_PRIVATE, &priv);
        x = (sc_xfer *)(void *)priv;
        curl_multi_remove_handle(m->multi, c); /* invalidates msg */
        if (x == NULL || x->state != X_RUNNING) continue;
        x->state = X_DONE;
        x->result = rc;
        x->done_next = NULL;
        if (m->done_tail != NULL) m->done_tail->done_next = x;
        else m->done_head = x;
        m->done_tail = x;
    }
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000L + (long)(ts.tv_nsec / 1000000L);
}

/* Frees idle transfer structs beyond max_connections. */
static void trim_pool(sc_multi *m) {
    sc_xfer **pp = &m->xfers;
    int idle = 0;
    while (*pp != NULL) {
        sc_xfer *x = *pp;
        if (x->state == X_IDLE && x->key_ref == LUA_NOREF && x->body_ref == LUA_NOREF &&
            ++idle > m->opts.max_connections) {
            *pp = x->next;
            xfer_destroy(x);
        } else {
            pp = &x->next;
        }
    }
}

static int multi_poll(lua_State *L) {
    sc_multi *m = check_multi(L);
    lua_Number t = luaL_optnumber(L, 2, 0);
    long deadline, left;
    int n = 0, interrupted = 0;
    luaL_argcheck(L, t >= 0, 2, "timeout_ms must not be negative");
    if (t > INT_MAX) t = INT_MAX;
    lua_settop(L, 1);
    lua_newtable(L); /* 2: completions */
    deadline = now_ms() + (long)t;
    for (;;) {
        collect(m);
        if (m->done_head != NULL || count_state(m, X_RUNNING) == 0 || interrupted) break;
        left = deadline - now_ms();
        if (left <= 0) break;
        /* A signal handler that runs during the wait makes poll() fail with
           EINTR; libcurl (Curl_poll, 7.88 as today) returns at once as if
           nothing happened and leaves errno at EINTR. Return then, like
           curl.sleep, so that the caller sees what the handler did (a
           Ctrl-C) now, not at the deadline; a wait without a signal keeps
           its whole time. errno is cleared first: an old EINTR is not one. */
        errno = 0;
#if LIBCURL_VERSION_NUM >= 0x074200
        curl_multi_poll(m->multi, NULL, 0, (int)left, NULL);
#else
        curl_multi_wait(m->multi, NULL, 0, (int)left, NULL);
#endif
        interrupted = errno == EINTR;
    }
    while (m->done_head != NULL) {
        sc_xfer *x = m->done_head;
        int ok;
        lua_createtable(L, 0, 2);
        lua_rawgeti(L, LUA_REGISTRYINDEX, x->key_ref);
        lua_setfield(L, -2, "key");
        ok = push_outcome(L, x, x->result);
        lua_setfield(L, -2, ok ? "res" : "err");
        lua_rawseti(L, 2, ++n);
        /* delivered: back to the pool */
        m->done_head = x->done_next;
        if (m->done_head == NULL) m->done_tail = NULL;
        x->done_next = NULL;
        x->state = X_IDLE;
        xfer_unref(L, x);
    }
    trim_pool(m);
    return 1;
}

static int multi_pending(lua_State *L) {
    sc_multi *m = (sc_multi *)luaL_checkudata(L, 1, MULTI_MT);
    lua_pushinteger(L, m->closed ? 0 : count_state(m, X_RUNNING) + count_state(m, X_DONE));
    return 1;
}

static int multi_close(lua_State *L) {
    sc_multi *m = (sc_multi *)luaL_checkudata(L, 1, MULTI_MT);
    if (!m->closed) {
        m->closed = 1;
        while (m->xfers != NULL) {
            sc_xfer *x = m->xfers;
            m->xfers = x->next;
            if (x->state == X_RUNNING && m->multi != NULL && x->curl != NULL)
                curl_multi_remove_handle(m->multi, x->curl);
            xfer_unref(L, x);
            xfer_destroy(x);
        }
        m->done_head = m->done_tail = NULL;
        if (m->multi != NULL) curl_multi_cleanup(m->multi);
        m->multi = NULL;
        opts_free(&m->opts);
    }
    return 0;
}

static int multi_tostring(lua_State *L) {
    sc_multi *m = (sc_multi *)luaL_checkudata(L, 1, MULTI_MT);
    lua_pushfstring(L, "streamctl.curl.multi (%s)", m->closed ? "closed" : "open");
    return 1;
}

/* ------------------------------------------------------------------ */

/* The longest single nanosleep: fits any time_t (about 68 years). */
#define SLEEP_CHUNK ((lua_Number)INT_MAX)

/* curl.sleep(seconds): a blocking sleep for scripts (never in an nginx
 * worker, where ngx.sleep is the way). Returns the seconds it did not sleep:
 * 0 after the whole time, more when a signal handler ran (EINTR). It returns
 * then rather than sleep the rest, so that the caller can look at what the
 * handler did (streamctl.signal's flag, which a client's `cancel` reads) and
 * either stop or sleep again: resuming made a process that slept a long
 * delay deaf to SIGTERM and Ctrl-C for all of it. */
static int l_sleep(lua_State *L) {
    lua_Number s = luaL_checknumber(L, 1);
    /* s - s is 0 for every finite number, NaN for an infinity or a NaN */
    luaL_argcheck(L, s >= 0 && s - s == 0, 1, "seconds must be a finite number >= 0");
    while (s > 0) {
        lua_Number chunk = s < SLEEP_CHUNK ? s : SLEEP_CHUNK;
        struct timespec req, rem;
        req.tv_sec = (time_t)chunk;
        req.tv_nsec = (long)((chunk - (lua_Number)req.tv_sec) * 1e9);
        if (req.tv_nsec > 999999999L) req.tv_nsec = 999999999L;
        s -= chunk;
        if (nanosleep(&req, &rem) != 0) {
            /* only EINTR can happen: req is valid and on the stack */
            if (errno != EINTR)
                return luaL_error(L, "streamctl.curl: nanosleep failed: %s", strerror(errno));
            lua_pushnumber(L, s + (lua_Number)rem.tv_sec + (lua_Number)rem.tv_nsec / 1e9);
            return 1;
        }
    }
    lua_pushnumber(L, 0);
    return 1;
}

static const luaL_Reg easy_methods[] = {
    {"request", easy_request},
    {"close", easy_close},
    {NULL, NULL}};

static const luaL_Reg multi_methods[] = {
    {"add", multi_add},
    {"poll", multi_poll},
    {"pending", multi_pending},
    {"close", multi_close},
    {NULL, NULL}};

static const luaL_Reg curl_funcs[] = {
    {"sleep", l_sleep},
    {"easy", l_easy},
    {"multi", l_multi},
    {NULL, NULL}};

static int curl_initialized = 0;

int luaopen_streamctl_curl(lua_State *L) {
    if (!curl_initialized) {
        CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (rc != CURLE_OK)
            return luaL_error(L, "streamctl.curl: curl_global_init failed: %s",
                              curl_easy_strerror(rc));
        curl_initialized = 1;
    }
    sc_new_class(L, EASY_MT, easy_methods, easy_close, easy_tostring);
    sc_new_class(L, MULTI_MT, multi_methods, multi_close, multi_tostring);
    sc_newlib(L, curl_funcs);
    return 1;
}
