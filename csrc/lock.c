/*
 * streamctl.core.lock_file: an exclusive lock on a file, held across a
 * state's read-modify-replace (the decision file, ZEGO reconcile's state,
 * the credentials cache's entries), bounded in its wait, naming its holder
 * when it is busy. Its descriptor lives in a userdata Lua owns, made
 * before the file is opened (csrc/file.c's rules for opening: a regular
 * file only, O_NONBLOCK|O_NOCTTY|O_CLOEXEC).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "file.h"

/* A lock on a file: its descriptor, closed (the lock dropped) by unlock()
   or when the userdata is collected. */
#define LOCK_MT "streamctl.lock"
typedef struct {
    int fd;
} sc_lock;

static int lock_unlock(lua_State *L) {
    sc_lock *lk = (sc_lock *)luaL_checkudata(L, 1, LOCK_MT);
    if (lk->fd >= 0) close(lk->fd);
    lk->fd = -1;
    return 0;
}

static const luaL_Reg lock_methods[] = {{"unlock", lock_unlock}, {"__gc", lock_unlock}, {NULL, NULL}};

static double monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The process that holds the lock on `fd` as it wrote itself there (its
   pid, in decimal), or 0 when none did. Said when the lock is busy. */
static long holder_of(int fd) {
    char buf[24];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    long pid = 0;
    int i;
    for (i = 0; i < n && buf[i] >= '0' && buf[i] <= '9' && pid < 100000000L; i++) pid = pid * 10 + (buf[i] - '0');
    return pid;
}

/* Whether process `pid` is stopped (SIGSTOP, Ctrl-Z, a debugger): its
   state in /proc/PID/stat, "T" or "t". */
static int is_stopped(long pid) {
    char path[48], buf[256];
    const char *paren;
    ssize_t n;
    int fd;
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    paren = strrchr(buf, ')'); /* (the name may hold anything but ends at the last parenthesis) */
    return paren != NULL && paren[1] == ' ' && (paren[2] == 'T' || paren[2] == 't');
}

/* core.lock_file(path [, wait_ms]): an exclusive flock(2) on the file at
   `path` (made 0600 when it is not there; anything but a regular file
   refused), waited for at most `wait_ms` (0..60000, default 0), polled
   every 10 ms. The lock (an object: lock:unlock(), also when collected);
   or nil, why (naming `path`) and a kind: "busy" (another process held it
   all the while), "interrupted" (a signal's handler ran during the wait:
   Ctrl-C under streamctl.signal.catch, the caller looks), "failed" (it
   cannot be opened or locked). The holder writes its pid into the file,
   so that a busy lock names it ("locked by process 4242 (stopped)"); the
   kernel drops a flock when its holder exits, so no lock outlives its
   process (or a child it forked while holding it). A lock file is never
   removed: removing it would let a second process lock a new file while
   the first holds the old one. */
static int l_lock_file(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    lua_Integer wait = luaL_optinteger(L, 2, 0);
    sc_lock *lk;
    double start;
    luaL_argcheck(L, wait >= 0 && wait <= 60000, 2, "a wait of 0 to 60000 ms");
    if (*path == '\0') return luaL_argerror(L, 1, "an empty path");
    lua_settop(L, 2); /* the lock's userdata is 3 */
    if (luaL_newmetatable(L, LOCK_MT)) {
        luaL_setfuncs(L, lock_methods, 0);
        lua_pushvalue(L, -1);
        lua_setfield(L, -2, "__index");
        lua_pushliteral(L, LOCK_MT);
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
    lk = (sc_lock *)lua_newuserdata(L, sizeof(sc_lock)); /* owned by Lua before the descriptor is */
    lk->fd = -1;
    luaL_setmetatable(L, LOCK_MT);
    lk->fd = sc_open_regular(L, path, O_RDWR | O_CREAT, "lock");
    if (lk->fd < 0) {
        lua_pushliteral(L, "failed");
        return 3;
    }
    start = monotonic_ms();
    for (;;) {
        struct timespec pause = {0, 10000000L}; /* 10 ms */
        double left;
        if (flock(lk->fd, LOCK_EX | LOCK_NB) == 0) {
            char pid[24];
            int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
            /* (who holds it, for a waiter's message: a failure here costs that message only) */
            if (ftruncate(lk->fd, 0) != 0 || pwrite(lk->fd, pid, (size_t)n, 0) != n) (void)0;
            lua_settop(L, 3);
            return 1;
        }
        if (errno != EWOULDBLOCK && errno != EINTR) {
            int err = errno;
            close(lk->fd);
            lk->fd = -1;
            sc_push_failure(L, "lock", path, err);
            lua_pushliteral(L, "failed");
            return 3;
        }
        left = (double)wait - (monotonic_ms() - start);
        if (left <= 0) {
            long holder = holder_of(lk->fd);
            int stopped = holder > 0 && is_stopped(holder);
            close(lk->fd);
            lk->fd = -1;
            lua_pushnil(L);
            if (holder > 0) {
                lua_pushfstring(L, "%s is locked by process %d%s (waited %d ms)", path, (int)holder,
                                stopped ? " (stopped)" : "", (int)wait);
            } else {
                lua_pushfstring(L, "%s is locked by another process (waited %d ms)", path, (int)wait);
            }
            lua_pushliteral(L, "busy");
            return 3;
        }
        if (left < 10) pause.tv_nsec = (long)(left * 1e6);
        if (nanosleep(&pause, NULL) != 0 && errno == EINTR) {
            close(lk->fd);
            lk->fd = -1;
            lua_pushnil(L);
            lua_pushfstring(L, "the wait for the lock on %s was interrupted", path);
            lua_pushliteral(L, "interrupted");
            return 3;
        }
    }
}

const luaL_Reg sc_lock_funcs[] = {
    {"lock_file", l_lock_file},
    {NULL, NULL}};
