/* streamctl.curl, curl_request.c: the options shared by easy and multi handles, and a
   request checked (method, URL, headers: nothing is sent when one is refused) and set on an
   easy handle. */
#include "transfer.h"

/* ------------------------------------------------------------------ */
/* Options shared by easy and multi                                   */

void sc_opts_free(sc_opts *o) {
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
void sc_read_opts(lua_State *L, int idx, sc_opts *o, int multi) {
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
/* Request validation and setup                                       */

static int is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int sc_lower(int c) { return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c; }

static int ieq(const char *a, size_t an, const char *b) {
    size_t i, bn = strlen(b);
    if (an != bn) return 0;
    for (i = 0; i < an; i++)
        if (sc_lower((unsigned char)a[i]) != sc_lower((unsigned char)b[i])) return 0;
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
            if (sc_lower((unsigned char)l->data[i]) != sc_lower((unsigned char)name[i])) break;
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

/*
 * An attempt goes on the wire once. libcurl sends a request again by itself,
 * on a fresh connection, when the reused connection it went on closes before
 * any byte of an answer (Curl_retry_request, "Connection died, retrying a
 * fresh connect"), whether or not the server had read it: a server that
 * applied the request and then dropped the connection gets it twice, the
 * second time without a slot of the budget (a ForbidLiveStream applied,
 * dropped, and arriving again within 1 ms with the same nonce: issue 66).
 * There is no option to turn that retry off, and CURLOPT_FORBID_REUSE would
 * give up keep-alive for every request. CURLOPT_PREREQFUNCTION is called
 * each time libcurl is about to send the request on a connection, so a
 * second call within one transfer is that retry: it is refused when a byte
 * of the request had been handed to the first connection (CURLINFO_REQUEST_SIZE
 * counts what the connections took), and the transfer ends as a NetworkError
 * with sent = true (its outcome unknown: the engine takes a slot for the
 * next attempt, and a look-up first where the operation has one). A retry
 * of a request that never left (its first write failed) goes on. The stale
 * pooled connection that can be told before sending (closed, or readable at
 * EOF) libcurl checks itself before reusing it, and the request then goes
 * on a fresh connection, once. streamctl.transport.common.may_send_again is
 * the same rule in Lua. Older libcurl (before 7.80) has no such callback:
 * connections are not reused there (CURLOPT_FORBID_REUSE).
 */
#if LIBCURL_VERSION_NUM >= 0x075000
static int on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port, int local_port) {
    sc_xfer *x = (sc_xfer *)ud;
    long size = 0;
    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    if (x->sends++ == 0) return CURL_PREREQFUNC_OK;
    if (curl_easy_getinfo(x->curl, CURLINFO_REQUEST_SIZE, &size) != CURLE_OK || size != 0) {
        x->resend_stopped = 1;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}
#endif

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
    SETOPT(c, CURLOPT_WRITEFUNCTION, sc_on_body);
    SETOPT(c, CURLOPT_WRITEDATA, (void *)x);
    SETOPT(c, CURLOPT_HEADERFUNCTION, sc_on_header);
    SETOPT(c, CURLOPT_HEADERDATA, (void *)x);
    SETOPT(c, CURLOPT_PRIVATE, (void *)x);
#if LIBCURL_VERSION_NUM >= 0x075000
    SETOPT(c, CURLOPT_PREREQFUNCTION, on_prereq);
    SETOPT(c, CURLOPT_PREREQDATA, (void *)x);
#else
    SETOPT(c, CURLOPT_FORBID_REUSE, 1L);
#endif
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
    /* "Name;" sends an empty header; "Name:" would remove curl's own. The
       line is made on the C stack when it fits (curl_slist_append copies it). */
    char line[512];
    if (nl + vl + 3 <= sizeof line) {
        memcpy(line, name, nl);
        if (vl == 0) {
            line[nl] = ';';
            line[nl + 1] = '\0';
        } else {
            line[nl] = ':';
            line[nl + 1] = ' ';
            memcpy(line + nl + 2, value, vl);
            line[nl + 2 + vl] = '\0';
        }
        slist_push(L, x, line);
        lua_pop(L, 1); /* value */
        return NULL;
    }
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

/*
 * The URL, as its origin ("http://host:port") and its request target
 * ("/path?query") apart, when they can be: no proxy (a proxy takes the
 * whole URL in its request line), a '/' that ends the authority, and no
 * '#'. The request line is the same bytes either way. Apart, libcurl parses
 * and prints (its own printf, a byte at a time) a URL of a few bytes rather
 * than one of several hundred: a V1 request carries all its parameters in
 * the query, and that took about 60,000 instructions of every call
 * (make profile; docs/performance.md, "Where a call's time goes").
 */
static CURLcode set_url(sc_xfer *x, const sc_opts *o, const char *url, size_t ul) {
#if LIBCURL_VERSION_NUM >= 0x073700
    char origin[256];
    const char *authority = strstr(url, "://");
    if (o->proxy == NULL && authority != NULL && memchr(url, '#', ul) == NULL) {
        const char *slash;
        size_t n;
        authority += 3;
        slash = strchr(authority, '/');
        n = slash != NULL ? (size_t)(slash - url) : 0;
        if (n > 0 && n < sizeof(origin) && memchr(authority, '?', (size_t)(slash - authority)) == NULL) {
            CURLcode rc;
            memcpy(origin, url, n);
            origin[n] = '\0';
            if ((rc = curl_easy_setopt(x->curl, CURLOPT_URL, origin)) != CURLE_OK) return rc;
            return curl_easy_setopt(x->curl, CURLOPT_REQUEST_TARGET, slash);
        }
    }
#else
    (void)o;
    (void)ul;
#endif
    return curl_easy_setopt(x->curl, CURLOPT_URL, url);
}

/* The method, URL, headers and body as curl options (after base_options). */
static CURLcode set_request(sc_xfer *x, const sc_opts *o, const char *method, const char *url, size_t ul,
                            const char *body, size_t bl) {
    CURLcode rc;
    if ((rc = set_url(x, o, url, ul)) != CURLE_OK ||
        (rc = curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, x->slist)) != CURLE_OK)
        return rc;
    if (strcmp(method, "HEAD") == 0) return curl_easy_setopt(x->curl, CURLOPT_NOBODY, 1L);
    if (bl > 0 || method_has_body(method)) {
        /* The body stays referenced (stack or registry) until the end. */
        if ((rc = curl_easy_setopt(x->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bl)) != CURLE_OK ||
            (rc = curl_easy_setopt(x->curl, CURLOPT_POSTFIELDS, body)) != CURLE_OK)
            return rc;
        return strcmp(method, "POST") != 0 ? curl_easy_setopt(x->curl, CURLOPT_CUSTOMREQUEST, method) : CURLE_OK;
    }
    if (strcmp(method, "GET") != 0) return curl_easy_setopt(x->curl, CURLOPT_CUSTOMREQUEST, method);
    return CURLE_OK;
}

/* A request's own `timeout_ms` (absent: the transport's): its whole time
   and its connect, each at most the transport's. */
static CURLcode request_timeout(lua_State *L, int ridx, sc_xfer *x, const sc_opts *o) {
    CURLcode rc = CURLE_OK;
    lua_getfield(L, ridx, "timeout_ms");
    if (!lua_isnil(L, -1)) {
        lua_Number t = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
        if (!(t >= 1 && t <= INT_MAX && t == (lua_Number)(long)t))
            luaL_error(L, "streamctl.curl: request.timeout_ms must be a whole number of milliseconds from 1");
        CURL *c = x->curl;
        if ((long)t < o->timeout_ms && (rc = curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)t)) != CURLE_OK) return rc;
        if ((long)t < o->connect_timeout_ms) rc = curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)t);
    }
    lua_pop(L, 1);
    return rc;
}

/*
 * Validates the request table at ridx and sets x up for it (reset first).
 * Returns NULL when ready, or an InvalidRequest message (pushed on the stack).
 * Raises on arguments of the wrong type. On success *body_idx is the stack
 * index of the body (a string, or streamctl.bytes: csrc/bytes.h), which
 * must stay referenced, and bytes unwritten, until the transfer ends.
 */
const char *sc_prepare(lua_State *L, int ridx, sc_xfer *x, const sc_opts *o, int *body_idx) {
    size_t ml, ul, bl;
    const char *method, *url, *body, *bad;
    int base;
    CURLcode rc;

    luaL_checktype(L, ridx, LUA_TTABLE);
    sc_xfer_clear(x);
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
    sc_bytes *bytes = sc_bytes_at(L, base + 4);
    if (!bytes && lua_type(L, base + 4) != LUA_TSTRING)
        luaL_error(L, "streamctl.curl: request.body must be a string or streamctl.bytes");
    method = lua_tolstring(L, base + 1, &ml);
    url = lua_tolstring(L, base + 2, &ul);
    if (bytes) {
        body = bytes->n ? (const char *)sc_bytes_data(bytes) : "";
        bl = bytes->n;
    } else {
        body = lua_tolstring(L, base + 4, &bl);
    }
    *body_idx = base + 4;

    if ((bad = check_line(L, method, ml, url, ul, bl)) != NULL) return bad;
    if ((bad = add_headers(L, x, base + 3)) != NULL) return bad;
    if ((rc = base_options(x, o)) != CURLE_OK || (rc = set_request(x, o, method, url, ul, body, bl)) != CURLE_OK ||
        (rc = request_timeout(L, ridx, x, o)) != CURLE_OK)
        luaL_error(L, "streamctl.curl: curl_easy_setopt failed: %s", curl_easy_strerror(rc));
    return NULL;
}
