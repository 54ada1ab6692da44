/*
 * streamctl.curl: the HTTP transport of streamctl, over libcurl. This file
 * is the module (easy and multi handles, sleep); curl_request.c checks and
 * sets a request, curl_transfer.c holds a transfer and makes its outcome
 * (transfer.h: what they share).
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
 * err.sent is CURLINFO_REQUEST_SIZE > 0. A request is never sent twice by
 * libcurl's own resend on a reused connection that died unanswered: see
 * curl_request.c's on_prereq (a NetworkError, sent). Wrong argument types raise.
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
#include "transfer.h"

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
    sc_read_opts(L, 1, &e->opts, 0);
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
    bad = sc_prepare(L, 2, &e->x, &e->opts, &body_idx);
    if (bad != NULL) {
        lua_pushnil(L);
        sc_push_error(L, "InvalidRequest", bad, 0, -1);
        sc_xfer_clear(&e->x);
        return 2;
    }
    /* The body is at body_idx for the whole (blocking) transfer; bytes are counted busy meanwhile. */
    sc_bytes *held = sc_bytes_at(L, body_idx);
    if (held) held->busy++;
    rc = curl_easy_perform(e->x.curl);
    if (held) held->busy--;
    if (sc_push_outcome(L, &e->x, rc)) return 1;
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

static int easy_close(lua_State *L) {
    sc_easy *e = (sc_easy *)luaL_checkudata(L, 1, EASY_MT);
    if (!e->closed) {
        e->closed = 1;
        sc_xfer_clear(&e->x);
        if (e->x.curl != NULL) curl_easy_cleanup(e->x.curl);
        e->x.curl = NULL;
        sc_opts_free(&e->opts);
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
    if (x->held) x->held->busy--; /* (still held by body_ref, dropped below) */
    x->held = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, x->key_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, x->body_ref);
    x->key_ref = x->body_ref = LUA_NOREF;
}

static void xfer_destroy(sc_xfer *x) {
    sc_xfer_clear(x);
    if (x->curl != NULL) curl_easy_cleanup(x->curl);
    free(x);
}

static int l_multi(lua_State *L) {
    sc_multi *m;
    lua_settop(L, 1);
    m = (sc_multi *)lua_newuserdata(L, sizeof(sc_multi));
    memset(m, 0, sizeof(sc_multi));
    luaL_setmetatable(L, MULTI_MT);
    sc_read_opts(L, 1, &m->opts, 1);
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
    bad = sc_prepare(L, 3, x, &m->opts, &body_idx);
    if (bad != NULL) {
        lua_pushnil(L);
        sc_push_error(L, "InvalidRequest", bad, 0, -1);
        sc_xfer_clear(x);
        return 2;
    }
    lua_pushvalue(L, 2);
    x->key_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, body_idx);
    x->body_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* POSTFIELDS points into this string, or these bytes */
    x->held = sc_bytes_at(L, body_idx);
    if (x->held) x->held->busy++;
    mc = curl_multi_add_handle(m->multi, x->curl);
    if (mc != CURLM_OK) {
        xfer_unref(L, x);
        sc_xfer_clear(x);
        lua_pushnil(L);
        sc_push_error(L, "NetworkError", curl_multi_strerror(mc), 0, -1);
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
        ok = sc_push_outcome(L, x, x->result);
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
        sc_opts_free(&m->opts);
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
