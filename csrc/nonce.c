/* streamctl.core, nonce.c: random bytes from OpenSSL's RAND_bytes, drawn
   ahead into a pool per Lua state (1 KiB) that is refilled after a fork (a
   child never repeats its parent's bytes) and wiped as it is used; nonces
   as hex, bytes and UUIDv4. */
#include "core.h"

static volatile unsigned long fork_count = 0;
static int forks_seen = 0; /* 1: the handler counts forks */
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void on_fork_child(void) { fork_count++; }
static void watch_forks(void) { forks_seen = pthread_atfork(NULL, NULL, on_fork_child) == 0; }

typedef struct {
    unsigned long forks;
    pid_t pid;
    size_t pos;
    unsigned char buf[1024];
} sc_pool;

static void random_bytes(lua_State *L, unsigned char *p, int n) {
    sc_pool *pool = (sc_pool *)lua_touserdata(L, lua_upvalueindex(1));
    int forked = forks_seen ? pool->forks != fork_count : pool->pid != getpid();
    if (forked || pool->pos + (size_t)n > sizeof(pool->buf)) {
        if (RAND_bytes(pool->buf, (int)sizeof(pool->buf)) != 1) {
            pool->pos = sizeof(pool->buf);
            luaL_error(L, "RAND_bytes failed: the OpenSSL random generator is not seeded");
        }
        pool->forks = fork_count;
        pool->pid = forks_seen ? 0 : getpid();
        pool->pos = 0;
    }
    memcpy(p, pool->buf + pool->pos, (size_t)n);
    OPENSSL_cleanse(pool->buf + pool->pos, (size_t)n);
    pool->pos += (size_t)n;
}

static int l_random_hex(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    unsigned char buf[MAX_RANDOM_BYTES];
    luaL_argcheck(L, n >= 1 && n <= MAX_RANDOM_BYTES, 1, "nbytes must be in 1..256");
    random_bytes(L, buf, (int)n);
    sc_push_hex(L, buf, (size_t)n);
    return 1;
}

/* n random bytes, never all zeros (drawn again, one time in 2^(8n)): W3C
   Trace Context's trace and span ids, which must not be zeros. */
static void random_id_bytes(lua_State *L, unsigned char *p, int n) {
    unsigned char any = 0;
    while (!any) {
        random_bytes(L, p, n);
        for (int i = 0; i < n; i++) any |= p[i];
    }
}

/* core.random_id(n[, m]): an id of n random bytes (1..32, random_id_bytes')
   as lower-case hex; with m, a second id, of m bytes, too (a new trace's
   id and its first span's, in one call). */
static int l_random_id(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1), m = luaL_optinteger(L, 2, 0);
    unsigned char buf[32];
    luaL_argcheck(L, n >= 1 && n <= 32, 1, "nbytes must be in 1..32");
    luaL_argcheck(L, lua_isnoneornil(L, 2) || (m >= 1 && m <= 32), 2, "nbytes must be in 1..32");
    random_id_bytes(L, buf, (int)n);
    sc_push_hex(L, buf, (size_t)n);
    if (m == 0) return 1;
    random_id_bytes(L, buf, (int)m);
    sc_push_hex(L, buf, (size_t)m);
    return 2;
}

/* core.traceparent(trace_id, sampled): a new span in that trace: its id
   (random_id(8)'s) and the W3C `traceparent` that names it, version 00,
   flags 01 when `sampled` is true, else 00. One call and no concatenation
   for what every traced request sends. trace_id: 32 lower-case hex digits
   (raises otherwise: a misuse; tracecontext's ids are so). */
static int l_traceparent(lua_State *L) {
    size_t tl;
    const char *trace_id = luaL_checklstring(L, 1, &tl);
    int hex = tl == 32;
    for (size_t i = 0; hex && i < tl; i++)
        hex = (trace_id[i] >= '0' && trace_id[i] <= '9') || (trace_id[i] >= 'a' && trace_id[i] <= 'f');
    luaL_argcheck(L, hex, 1, "a trace id is 32 lower-case hex digits");
    unsigned char id[8];
    random_id_bytes(L, id, 8);
    char h[55]; /* 00-<trace id>-<span id>-<flags> */
    h[0] = h[1] = h[53] = '0';
    h[2] = h[35] = h[52] = '-';
    memcpy(h + 3, trace_id, 32);
    sc_to_hex(h + 36, id, 8);
    h[54] = lua_toboolean(L, 2) ? '1' : '0';
    lua_pushlstring(L, h + 36, 16);
    lua_pushlstring(L, h, sizeof h);
    return 2;
}

/* core.random_bytes(n): n bytes (1..256) from the pool, as a string (a
   nonce an encryption takes as bytes: Token04's). */
static int l_random_bytes(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    unsigned char buf[MAX_RANDOM_BYTES];
    luaL_argcheck(L, n >= 1 && n <= MAX_RANDOM_BYTES, 1, "nbytes must be in 1..256");
    random_bytes(L, buf, (int)n);
    lua_pushlstring(L, (const char *)buf, (size_t)n);
    OPENSSL_cleanse(buf, (size_t)n);
    return 1;
}

static int l_uuid4(lua_State *L) {
    unsigned char u[16];
    char out[36];
    random_bytes(L, u, 16);
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    /* 8-4-4-4-12 hex digits */
    sc_to_hex(out, u, 4);
    out[8] = '-';
    sc_to_hex(out + 9, u + 4, 2);
    out[13] = '-';
    sc_to_hex(out + 14, u + 6, 2);
    out[18] = '-';
    sc_to_hex(out + 19, u + 8, 2);
    out[23] = '-';
    sc_to_hex(out + 24, u + 10, 6);
    lua_pushlstring(L, out, 36);
    return 1;
}

/* Sets random_hex, random_id, traceparent, random_bytes and uuid4 into the module's table (at the top of the
   stack), sharing one pool. */
void sc_nonce_open(lua_State *L) {
    sc_pool *pool;
    pthread_once(&fork_once, watch_forks);
    pool = (sc_pool *)lua_newuserdata(L, sizeof(sc_pool));
    pool->forks = fork_count;
    pool->pid = 0;
    pool->pos = sizeof(pool->buf); /* empty: filled on first use */
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, l_random_hex, 1);
    lua_setfield(L, -3, "random_hex");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, l_random_id, 1);
    lua_setfield(L, -3, "random_id");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, l_traceparent, 1);
    lua_setfield(L, -3, "traceparent");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, l_random_bytes, 1);
    lua_setfield(L, -3, "random_bytes");
    lua_pushcclosure(L, l_uuid4, 1);
    lua_setfield(L, -2, "uuid4");
}
