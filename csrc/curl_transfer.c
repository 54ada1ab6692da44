/* streamctl.curl, curl_transfer.c: a transfer's per-request state (its response body and
   header lines, bounded as they arrive) and its outcome: a response table, or an error table
   with its code and whether the request was sent. */
#include "transfer.h"

/* ------------------------------------------------------------------ */
/* A transfer: one easy handle and its per-request state              */

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

void sc_xfer_clear(sc_xfer *x) {
    curl_slist_free_all(x->slist);
    x->slist = NULL;
    buf_free(&x->body);
    buf_free(&x->head);
    x->head_total = 0;
    x->body_over = x->head_over = x->oom = 0;
    x->sends = x->resend_stopped = 0;
    x->errbuf[0] = '\0';
}

size_t sc_on_body(char *p, size_t size, size_t nmemb, void *ud) {
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

size_t sc_on_header(char *p, size_t size, size_t nitems, void *ud) {
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
/* Outcome: a response table or an error table                        */

void sc_push_error(lua_State *L, const char *code, const char *msg, int sent, int curl_code) {
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
        for (q = line; q < colon; q++) *q = (char)sc_lower((unsigned char)*q);
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
int sc_push_outcome(lua_State *L, sc_xfer *x, CURLcode rc) {
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
            sc_push_error(L, "InvalidResponse", msg, sent, (int)rc);
        } else if (x->head_over) {
            lua_pushfstring(L, "response headers exceed %d bytes", MAX_HEADER_BYTES);
            msg = lua_tostring(L, -1);
            sc_push_error(L, "InvalidResponse", msg, sent, (int)rc);
        } else if (x->oom) {
            msg = "out of memory while receiving the response";
            lua_pushstring(L, msg);
            sc_push_error(L, "NetworkError", msg, sent, (int)rc);
        } else if (x->resend_stopped) {
            msg = "the reused connection closed after the request had left, before any answer: not sent "
                  "again (the request may have been applied)";
            lua_pushstring(L, msg);
            sc_push_error(L, "NetworkError", msg, 1, (int)rc);
        } else {
            msg = x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(rc);
            lua_pushstring(L, msg);
            sc_push_error(L, code_for(rc), msg, sent, (int)rc);
        }
        lua_remove(L, -2);
        sc_xfer_clear(x);
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
    sc_xfer_clear(x); /* release the buffers now; the header list goes too */
    return 1;
}
