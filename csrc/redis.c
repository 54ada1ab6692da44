/*
 * streamctl.redis: a blocking Redis client over hiredis, for plain Lua 5.4
 * and LuaJIT outside nginx (inside nginx, streamctl.store.redis talks to
 * Redis over cosockets instead: this module blocks).
 *
 *   redis.connect(host, port, timeout_ms [, tls]) -> conn | nil, err, "io"
 *   conn:command(arg1, arg2, ...)          -> reply | nil, err, kind
 *   conn:close()                           idempotent; also __gc and (5.4) __close
 *   redis.null                             what a nil bulk or nil array reply is
 *   redis.sha1_hex(s)                      lowercase hex SHA-1 (a script's EVALSHA name)
 *   redis.tls_check(tls)                   true | nil, err: tls's files load and match
 *
 * timeout_ms bounds the connect and then every read and write of a command
 * (SO_RCVTIMEO/SO_SNDTIMEO, set by redisSetTimeout): a server that accepts
 * and never answers costs one timeout, not a hang.
 *
 * tls, a table, makes it a TLS connection (csrc/redis_tls.c: hiredis 0.14
 * has no TLS): { ca_file =, server_name =, cert_file =, key_file = }, each
 * a string or nil (the CAs to trust, default OpenSSL's paths; the name the
 * certificate must show, default host; a client certificate and its key).
 * The handshake is bounded by timeout_ms as a command's reads are; a
 * certificate that fails the check is an "io" failure saying why.
 *
 * Arguments of command: strings (binary-safe, sent with their lengths) and
 * numbers (integral ones as decimal integers, others as "%.17g"); anything
 * else raises. Replies: status -> string; integer -> integer (a number under
 * LuaJIT: exact up to 2^53); bulk -> string; nil bulk or nil array ->
 * redis.null; array -> table (1-based, nested); an error reply -> nil, its
 * message, "server"; an error inside an array -> { false, message }.
 * I/O failure (timeout, reset, EOF, protocol error) -> nil, message, "io",
 * and the connection is closed: later commands answer nil, "connection
 * closed", "io" without touching the network.
 *
 * Memory: the userdata and its metatable (with __gc) exist before anything is
 * allocated; the formatted command and the reply being converted are owned
 * by it, so a Lua error raised half-way (a bad argument, out of memory while
 * building a reply's table) leaks nothing: the next command, close or __gc
 * frees them.
 *
 * Secrets (AUTH passwords pass through command): the command is formatted
 * here, into a buffer of the connection, and written to the socket here
 * (send with MSG_NOSIGNAL: a peer that went away is an error, not SIGPIPE);
 * hiredis never holds a copy. The buffer is wiped with OPENSSL_cleanse after
 * every command, sent or not, and when it is freed. hiredis reads the replies.
 */
#define _POSIX_C_SOURCE 200809L /* MSG_NOSIGNAL */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "compat.h"
#include "redis_resp.h"
#include "redis_tls.h"

#define CONN_MT "streamctl.redis.conn"
#define CLOSED_MSG "connection closed"
#define KEEP_BUFFER 65536     /* a larger command buffer is freed after use */

typedef struct {
    redisContext *ctx;  /* NULL once closed */
    SSL *ssl;           /* with TLS: over ctx's socket; NULL without */
    BIO_METHOD *bio;    /* the method ssl's BIO uses (freed after ssl) */
    redisReply *reply;  /* the reply being converted to Lua values */
    char *buf;          /* the formatted command; wiped after each use */
    size_t cap;
    int timeout_ms;
} sc_conn;

/* &null_reply is redis.null: a light userdata no other module uses. */
static const char null_reply = 0;

static void conn_release(sc_conn *k) {
    if (k->reply != NULL) {
        freeReplyObject(k->reply);
        k->reply = NULL;
    }
    if (k->ssl != NULL) {
        SSL_free(k->ssl);
        k->ssl = NULL;
    }
    if (k->bio != NULL) {
        BIO_meth_free(k->bio);
        k->bio = NULL;
    }
    if (k->ctx != NULL) {
        redisFree(k->ctx);
        k->ctx = NULL;
    }
    if (k->buf != NULL) {
        OPENSSL_cleanse(k->buf, k->cap);
        free(k->buf);
        k->buf = NULL;
        k->cap = 0;
    }
}

/* An integer in min..max at stack index i, or raises naming `what`. */
static long check_range(lua_State *L, int i, const char *fname, const char *what, long min,
                        long max) {
    lua_Number n;
    if (lua_type(L, i) != LUA_TNUMBER) {
        lua_pushfstring(L, "%s must be an integer in %d..%d, got %s", what, (int)min, (int)max,
                        luaL_typename(L, i));
        sc_arg_error(L, fname, i, lua_tostring(L, -1));
    }
    n = lua_tonumber(L, i);
    if (!(n >= (lua_Number)min && n <= (lua_Number)max) || n != (lua_Number)(long)n) {
        lua_pushfstring(L, "%s must be an integer in %d..%d", what, (int)min, (int)max);
        sc_arg_error(L, fname, i, lua_tostring(L, -1));
    }
    return (long)n;
}

/* A string field of the tls table at index t, pushed (nil when absent):
   the string, or NULL; raises naming argument t of fname. */
static const char *tls_field(lua_State *L, int t, const char *fname, const char *name) {
    size_t len;
    const char *s;
    lua_getfield(L, t, name);
    if (lua_isnil(L, -1)) return NULL;
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pushfstring(L, "tls.%s must be a string, got %s", name, luaL_typename(L, -1));
        sc_arg_error(L, fname, t, lua_tostring(L, -1));
    }
    s = lua_tolstring(L, -1, &len);
    if (len == 0 || strlen(s) != len) {
        lua_pushfstring(L, "tls.%s must be a non-empty string without NUL", name);
        sc_arg_error(L, fname, t, lua_tostring(L, -1));
    }
    return s;
}

/* The tls table at index t (a table) into *o; its strings pushed. */
static void tls_opts(lua_State *L, int t, const char *fname, sc_tls_opts *o) {
    memset(o, 0, sizeof(*o));
    o->ca_file = tls_field(L, t, fname, "ca_file");
    o->server_name = tls_field(L, t, fname, "server_name");
    o->cert_file = tls_field(L, t, fname, "cert_file");
    o->key_file = tls_field(L, t, fname, "key_file");
    if ((o->cert_file == NULL) != (o->key_file == NULL))
        sc_arg_error(L, fname, t, "tls.cert_file and tls.key_file go together");
}

/* redis.tls_check(tls) -> true | nil, message: the files of a TLS setting
   loaded as a connection would load them (the CAs, the certificate, the
   key and whether they match), with no connection. */
static int l_tls_check(lua_State *L) {
    sc_tls_opts o;
    SSL_CTX *ctx;
    char msg[320];
    luaL_checktype(L, 1, LUA_TTABLE);
    tls_opts(L, 1, "tls_check", &o);
    ctx = sc_tls_context(&o, msg, sizeof(msg));
    if (ctx == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, msg);
        return 2;
    }
    SSL_CTX_free(ctx);
    lua_pushboolean(L, 1);
    return 1;
}

static int io_failure(lua_State *L, sc_conn *k, int err, const char *msg);

/* redis.connect(host, port, timeout_ms [, tls]) */
static int l_connect(lua_State *L) {
    size_t hl;
    const char *host;
    long port, timeout_ms;
    struct timeval tv;
    sc_conn *k;
    sc_tls_opts tls;
    int use_tls;
    if (lua_type(L, 1) != LUA_TSTRING) {
        lua_pushfstring(L, "host must be a string, got %s", luaL_typename(L, 1));
        return sc_arg_error(L, "connect", 1, lua_tostring(L, -1));
    }
    host = lua_tolstring(L, 1, &hl);
    if (hl == 0 || strlen(host) != hl)
        return sc_arg_error(L, "connect", 1, "host must be a non-empty string without NUL");
    port = check_range(L, 2, "connect", "port", 1, 65535);
    timeout_ms = check_range(L, 3, "connect", "timeout_ms", 1, INT_MAX);
    use_tls = !lua_isnoneornil(L, 4);
    if (use_tls && lua_type(L, 4) != LUA_TTABLE) {
        lua_pushfstring(L, "tls must be a table or nil, got %s", luaL_typename(L, 4));
        return sc_arg_error(L, "connect", 4, lua_tostring(L, -1));
    }
    lua_settop(L, 4);
    memset(&tls, 0, sizeof(tls));
    if (use_tls) tls_opts(L, 4, "connect", &tls); /* (its strings stay on the stack, at 5..8) */

    k = (sc_conn *)lua_newuserdata(L, sizeof(sc_conn));
    memset(k, 0, sizeof(sc_conn));
    luaL_setmetatable(L, CONN_MT);
    k->timeout_ms = (int)timeout_ms;
    tv.tv_sec = (time_t)(timeout_ms / 1000);
    tv.tv_usec = (suseconds_t)((timeout_ms % 1000) * 1000);

    k->ctx = redisConnectWithTimeout(host, (int)port, tv);
    if (k->ctx == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "out of memory");
        lua_pushliteral(L, "io");
        return 3;
    }
    if (k->ctx->err == 0 && redisSetTimeout(k->ctx, tv) != REDIS_OK && k->ctx->err == 0)
        k->ctx->err = REDIS_ERR_IO; /* (hiredis sets it; never left at 0) */
    if (k->ctx->err != 0) {
        lua_pushnil(L);
        lua_pushstring(L, k->ctx->errstr[0] != '\0' ? k->ctx->errstr : "connect failed");
        lua_pushliteral(L, "io");
        conn_release(k);
        return 3;
    }
    if (use_tls) {
        char msg[320];
        int e = 0;
        k->ssl = sc_tls_connect(k->ctx->fd, host, &tls, &k->bio, &e, msg, sizeof(msg));
        if (k->ssl == NULL) return io_failure(L, k, e, msg);
    }
    return 1;
}

static sc_conn *check_conn(lua_State *L) { return (sc_conn *)luaL_checkudata(L, 1, CONN_MT); }

/* Sends n bytes; 0, or the errno of the failure. */
static int send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno != 0 ? errno : EIO;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Wipes the command buffer; frees it when it grew large. */
static void wipe_command(sc_conn *k, size_t used) {
    if (k->buf == NULL) return;
    OPENSSL_cleanse(k->buf, used);
    if (k->cap > KEEP_BUFFER) {
        OPENSSL_cleanse(k->buf, k->cap);
        free(k->buf);
        k->buf = NULL;
        k->cap = 0;
    }
}

/* An I/O failure: closes the connection and returns nil, message, "io".
   The message is copied and the connection closed before anything is
   pushed, so a memory error while pushing cannot leave an unread late reply
   for the next command. */
static int io_failure(lua_State *L, sc_conn *k, int err, const char *msg) {
    char text[320];
    if ((err == EAGAIN || err == EWOULDBLOCK) && msg != NULL && strncmp(msg, "TLS ", 4) == 0)
        snprintf(text, sizeof(text), "%s (%d ms)", msg, k->timeout_ms); /* ("TLS read: timeout") */
    else if (err == EAGAIN || err == EWOULDBLOCK)
        snprintf(text, sizeof(text), "timeout (%d ms)", k->timeout_ms);
    else if (msg != NULL && msg[0] != '\0')
        snprintf(text, sizeof(text), "%s", msg);
    else if (err != 0)
        snprintf(text, sizeof(text), "%s", strerror(err));
    else
        snprintf(text, sizeof(text), "connection failed");
    conn_release(k);
    lua_pushnil(L);
    lua_pushstring(L, text);
    lua_pushliteral(L, "io");
    return 3;
}

static void push_reply(lua_State *L, const redisReply *r) {
    size_t i;
    switch (r->type) {
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_STRING:
        lua_pushlstring(L, r->str != NULL ? r->str : "", r->len);
        break;
    case REDIS_REPLY_INTEGER:
        lua_pushinteger(L, (lua_Integer)r->integer);
        break;
    case REDIS_REPLY_ERROR: /* inside an array: { false, message } */
        lua_createtable(L, 2, 0);
        lua_pushboolean(L, 0);
        lua_rawseti(L, -2, 1);
        lua_pushlstring(L, r->str != NULL ? r->str : "", r->len);
        lua_rawseti(L, -2, 2);
        break;
    case REDIS_REPLY_ARRAY:
        /* hiredis nests arrays at most 7 deep: the recursion is bounded */
        luaL_checkstack(L, 4, "streamctl.redis: reply nested too deep");
        lua_createtable(L, r->elements > (size_t)INT_MAX ? INT_MAX : (int)r->elements, 0);
        for (i = 0; i < r->elements && i < (size_t)INT_MAX; i++) {
            push_reply(L, r->element[i]);
            lua_rawseti(L, -2, (int)i + 1);
        }
        break;
    default: /* REDIS_REPLY_NIL */
        lua_pushlightuserdata(L, (void *)&null_reply);
        break;
    }
}

/* The next reply over TLS: what hiredis' parser has, fed from SSL_read
   until it has one. 0 and *reply, or -1 with *err and msg. */
static int tls_reply(sc_conn *k, void **reply, int *err, char *msg, size_t msglen) {
    char in[16384];
    for (;;) {
        int n;
        if (redisReaderGetReply(k->ctx->reader, reply) != REDIS_OK) {
            *err = 0;
            snprintf(msg, msglen, "%s", k->ctx->reader->errstr[0] != '\0' ? k->ctx->reader->errstr
                                                                           : "protocol error");
            return -1;
        }
        if (*reply != NULL) return 0;
        n = sc_tls_read(k->ssl, in, (int)sizeof(in), err, msg, msglen);
        if (n < 0) return -1;
        if (redisReaderFeed(k->ctx->reader, in, (size_t)n) != REDIS_OK) {
            *err = 0;
            snprintf(msg, msglen, "protocol error");
            return -1;
        }
    }
}

/* conn:command(arg1, ...) */
static int conn_command(lua_State *L) {
    sc_conn *k = check_conn(L);
    int top = lua_gettop(L), err, results = 1;
    size_t size, used;
    void *reply = NULL;
    if (top < 2) return sc_arg_error(L, "command", 1, "string or number expected, got no value");
    if (top - 1 > INT_MAX / 2) return sc_arg_error(L, "command", 1, "too many arguments");
    size = sc_resp_size(L, top); /* raises on a bad argument, before anything is allocated */
    if (k->reply != NULL) {      /* left by a conversion that raised */
        freeReplyObject(k->reply);
        k->reply = NULL;
    }
    if (k->ctx == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, CLOSED_MSG);
        lua_pushliteral(L, "io");
        return 3;
    }
    if (size > k->cap) {
        char *nb = (char *)malloc(size);
        if (nb == NULL) return luaL_error(L, "streamctl.redis: out of memory");
        if (k->buf != NULL) {
            OPENSSL_cleanse(k->buf, k->cap);
            free(k->buf);
        }
        k->buf = nb;
        k->cap = size;
    }
    used = sc_resp_write(L, top, k->buf);
    if (k->ssl != NULL) {
        char msg[320];
        int failed = sc_tls_write(k->ssl, k->buf, used, &err, msg, sizeof(msg));
        wipe_command(k, used);
        if (failed) return io_failure(L, k, err, msg);
        if (tls_reply(k, &reply, &err, msg, sizeof(msg)) != 0) return io_failure(L, k, err, msg);
    } else {
        err = send_all(k->ctx->fd, k->buf, used);
        wipe_command(k, used);
        if (err != 0) return io_failure(L, k, err, NULL);
        errno = 0;
        if (redisGetReply(k->ctx, &reply) != REDIS_OK || reply == NULL) {
            int e = errno;
            if (reply != NULL) freeReplyObject(reply);
            return io_failure(L, k, k->ctx->err == REDIS_ERR_IO ? e : 0, k->ctx->errstr);
        }
    }
    k->reply = (redisReply *)reply; /* owned by k while Lua values are made */
    if (k->reply->type == REDIS_REPLY_ERROR) {
        lua_pushnil(L);
        lua_pushlstring(L, k->reply->str != NULL ? k->reply->str : "", k->reply->len);
        lua_pushliteral(L, "server");
        results = 3;
    } else {
        push_reply(L, k->reply);
    }
    freeReplyObject(k->reply);
    k->reply = NULL;
    return results;
}

static int conn_close(lua_State *L) {
    conn_release(check_conn(L));
    return 0;
}

static int conn_tostring(lua_State *L) {
    sc_conn *k = check_conn(L);
    lua_pushfstring(L, "streamctl.redis.conn (%s)", k->ctx != NULL ? "open" : "closed");
    return 1;
}

/* redis.sha1_hex(s) */
static int l_sha1_hex(lua_State *L) {
    static const char hexdigits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    size_t i;
    char hex[2 * EVP_MAX_MD_SIZE];
    size_t n;
    const char *s;
    if (lua_type(L, 1) != LUA_TSTRING) {
        lua_pushfstring(L, "string expected, got %s", luaL_typename(L, 1));
        return sc_arg_error(L, "sha1_hex", 1, lua_tostring(L, -1));
    }
    s = lua_tolstring(L, 1, &n);
    if (!EVP_Digest(s, n, md, &ml, EVP_sha1(), NULL) || ml > EVP_MAX_MD_SIZE)
        return luaL_error(L, "streamctl.redis: SHA-1 failed");
    for (i = 0; i < ml; i++) {
        hex[2 * i] = hexdigits[md[i] >> 4];
        hex[2 * i + 1] = hexdigits[md[i] & 15];
    }
    lua_pushlstring(L, hex, 2 * (size_t)ml);
    return 1;
}

static const luaL_Reg conn_methods[] = {
    {"command", conn_command},
    {"close", conn_close},
    {NULL, NULL}};

static const luaL_Reg redis_funcs[] = {
    {"connect", l_connect},
    {"sha1_hex", l_sha1_hex},
    {"tls_check", l_tls_check},
    {NULL, NULL}};

int luaopen_streamctl_redis(lua_State *L) {
    sc_new_class(L, CONN_MT, conn_methods, conn_close, conn_tostring);
    sc_newlib(L, redis_funcs);
    lua_pushlightuserdata(L, (void *)&null_reply);
    lua_setfield(L, -2, "null");
    return 1;
}
