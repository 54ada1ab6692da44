/*
 * streamctl.signal: lets a command line program finish what it started when
 * the user presses Ctrl-C (or cron sends SIGTERM), instead of dying with
 * requests in flight and streams in an unreported state.
 *
 *   signal.catch()      installs handlers for SIGINT and SIGTERM, and ignores
 *                       SIGPIPE and SIGXFSZ (idempotent)
 *   signal.caught()     the number of the first signal caught since, or nil
 *   signal.write_failed(file) true and why when a write to the Lua file
 *                       `file` failed (its stream's error indicator: see there)
 *   signal.output_closed(fd)  true when `fd` is a pipe or a socket whose
 *                       reading end is gone (`... | head -1` after head
 *                       exited), false otherwise (a file, a terminal, a
 *                       pipe still read); never blocks, writes nothing
 *
 * The first signal, either one, only sets a flag, which the program polls
 * between steps (streamctl's engine does through a client's `cancel`
 * option). A second one of either kind ends the process at once: Ctrl-C
 * after a SIGTERM, SIGTERM after a Ctrl-C, Ctrl-C twice; it first says so on
 * standard error, on a line of its own (the output may end mid-row), then
 * dies of that signal, its default action restored. SA_RESTART is left off, so a
 * blocking wait returns early (EINTR: curl.sleep, a multi's poll) and the
 * program sees the flag soon.
 *
 * SIGPIPE is set to SIG_IGN, so that a write to a pipe whose reader has gone
 * (`streamctl ... --output json | head -1`) fails with EPIPE, which the
 * program sees and handles like Ctrl-C (stop sending, finish what is in
 * flight, report), instead of killing the process with requests in flight
 * and nothing said. It stays ignored (it is never caught: a handler would
 * only make the write fail the same way), and processes started afterwards
 * inherit SIG_IGN across exec, as POSIX says for ignored signals.
 *
 * SIGXFSZ is set to SIG_IGN for the same reason: a write past a file size
 * limit (RLIMIT_FSIZE: `ulimit -f`) then fails with EFBIG, an ordinary write
 * error (the audit record cut and repaired as for a full disk, the table's
 * loss said, the finished streams reported) instead of killing the process
 * with the record torn and nothing said.
 *
 *   signal.isatty(fd)   whether `fd` is a terminal (isatty(3)), with no shell
 *   signal.user()       the name of the process's user (getpwuid_r(3) of its
 *                       real uid), or nil: what an audit record says when
 *                       neither USER nor LOGNAME is set
 *   signal.uid()        the process's real user id (`id -u`), for a name
 *                       where the passwd has none for it
 *
 * Process-wide state by nature: for programs, never for nginx (whose
 * workers set their own signal dispositions).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compat.h"

static volatile sig_atomic_t caught_signal = 0;

/* The default action, filled in once by the first catch(), before any
   handler is installed: the handler only reads it, and a later catch() does
   not write it under a handler that may be running. */
static struct sigaction default_action;
static int default_ready = 0;

static const char SECOND[] = "\nstreamctl: stopped at once (a second signal): what is above is all that was "
                             "reported; the audit log has the run's intent, and requests in flight were not "
                             "waited for\n";

/* The second signal: said, then the default action, then the signal again
   (the process dies of it, as a shell expects). write, sigaction and raise
   are async-signal-safe. */
static void on_second(int sig) {
    ssize_t ignored = write(2, SECOND, sizeof SECOND - 1);
    (void)ignored;
    sigaction(SIGINT, &default_action, NULL);
    sigaction(SIGTERM, &default_action, NULL);
    raise(sig);
}

/* Async-signal-safe: sigaction only, and errno kept for the code it
   interrupted. Both signals are blocked while it runs (sa_mask), so one that
   comes meanwhile waits and then meets the second handler. */
static struct sigaction second_action; /* on_second's, made with default_action before a handler runs */

static void on_signal(int sig) {
    int saved = errno;
    if (caught_signal == 0) caught_signal = sig;
    sigaction(SIGINT, &second_action, NULL);
    sigaction(SIGTERM, &second_action, NULL);
    errno = saved;
}

static int l_catch(lua_State *L) {
    static const int sigs[] = {SIGINT, SIGTERM};
    size_t i;
    struct sigaction sa;
    if (!default_ready) {
        memset(&default_action, 0, sizeof default_action);
        default_action.sa_handler = SIG_DFL;
        sigemptyset(&default_action.sa_mask);
        memset(&second_action, 0, sizeof second_action);
        second_action.sa_handler = on_second;
        sigemptyset(&second_action.sa_mask);
        default_ready = 1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaddset(&sa.sa_mask, sigs[i]);
    sa.sa_flags = 0; /* no SA_RESTART: blocking waits return early */
    for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        if (sigaction(sigs[i], &sa, NULL) != 0) return luaL_error(L, "sigaction failed: %s", strerror(errno));
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPIPE, &sa, NULL) != 0 || sigaction(SIGXFSZ, &sa, NULL) != 0)
        return luaL_error(L, "sigaction failed: %s", strerror(errno));
    lua_pushboolean(L, 1);
    return 1;
}

static int l_caught(lua_State *L) {
    int sig = (int)caught_signal;
    if (sig == 0) {
        lua_pushnil(L);
    } else {
        lua_pushinteger(L, sig);
    }
    return 1;
}

/* signal.output_closed(fd): whether a write to `fd` can no longer reach a
   reader, asked without writing (a table printed at the end, or a run whose
   output comes seldom, learns it before sending more). poll(2) with no
   events and no wait: POLLERR (a pipe's write end, its reader gone) and
   POLLHUP (a socket shut down) are told whatever the events asked. Only a
   pipe or a socket is asked: a regular file never reports either, and a
   terminal's hang-up is SIGHUP's business. nil and the reason when `fd` is
   not open. */
static int l_output_closed(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    struct stat st;
    struct pollfd p;
    int r;
    luaL_argcheck(L, n >= 0 && n <= 0x7fffffff, 1, "not a file descriptor");
    if (fstat((int)n, &st) != 0) {
        int err = errno;
        lua_pushnil(L);
        lua_pushfstring(L, "file descriptor %d: %s", (int)n, strerror(err));
        return 2;
    }
    if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    p.fd = (int)n;
    p.events = 0;
    p.revents = 0;
    do {
        r = poll(&p, 1, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        int err = errno;
        lua_pushnil(L);
        lua_pushfstring(L, "file descriptor %d: %s", (int)n, strerror(err));
        return 2;
    }
    lua_pushboolean(L, r > 0 && (p.revents & (POLLERR | POLLHUP)) != 0);
    return 1;
}

static int l_isatty(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0 && n <= 0x7fffffff, 1, "not a file descriptor");
    lua_pushboolean(L, isatty((int)n) == 1);
    return 1;
}

/* (a buffer on the C stack: getpwuid_r's strings live in it; 16 KiB holds
   any passwd entry a system makes, and ERANGE beyond is said as nil) */
static int l_user(lua_State *L) {
    struct passwd pw, *found = NULL;
    char buf[16384];
    if (getpwuid_r(getuid(), &pw, buf, sizeof buf, &found) != 0 || found == NULL || found->pw_name == NULL ||
        found->pw_name[0] == '\0') {
        lua_pushnil(L);
    } else {
        lua_pushstring(L, found->pw_name);
    }
    return 1;
}

/* signal.uid(): the process's real user id (what `id -u` says), for a name
   where the passwd has no entry for it (a container's arbitrary uid). */
static int l_uid(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)getuid());
    return 1;
}

/* signal.write_failed(file): whether a write to the Lua file `file` has
   failed (its stream's error indicator). LuaJIT's file:write and
   file:flush return success for a stream whose writes past RLIMIT_FSIZE
   failed (EFBIG, under `ulimit -f`) when it was flushed every line or
   few: the command asks this too before it says its output is whole.
   A closed file has no stream: false. (Lua 5.4's luaL_Stream keeps its
   FILE * after closing and clears closef; LuaJIT's file userdata starts
   with its FILE *, which closing clears.) */
static int l_write_failed(lua_State *L) {
#if LUA_VERSION_NUM >= 502
    luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
    FILE *f = p->closef != NULL ? p->f : NULL;
#else
    FILE *f = *(FILE **)luaL_checkudata(L, 1, LUA_FILEHANDLE);
#endif
    struct rlimit rl;
    struct stat st;
    if (f == NULL || ferror(f) == 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    /* the reason, which the stream does not keep: a regular file at the size limit, else unknown */
    lua_pushboolean(L, 1);
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && fstat(fileno(f), &st) == 0 &&
        S_ISREG(st.st_mode) && (rlim_t)st.st_size >= rl.rlim_cur)
        lua_pushstring(L, strerror(EFBIG));
    else
        lua_pushliteral(L, "a write failed");
    return 2;
}

static const luaL_Reg signal_funcs[] = {
    {"write_failed", l_write_failed},
    {"isatty", l_isatty},
    {"user", l_user},
    {"uid", l_uid},
    {"catch", l_catch},
    {"caught", l_caught},
    {"output_closed", l_output_closed},
    {NULL, NULL},
};

int luaopen_streamctl_signal(lua_State *L);
int luaopen_streamctl_signal(lua_State *L) {
    sc_newlib(L, signal_funcs);
    lua_pushinteger(L, SIGINT);
    lua_setfield(L, -2, "SIGINT");
    lua_pushinteger(L, SIGTERM);
    lua_setfield(L, -2, "SIGTERM");
    lua_pushinteger(L, SIGPIPE);
    lua_setfield(L, -2, "SIGPIPE");
    lua_pushinteger(L, SIGXFSZ);
    lua_setfield(L, -2, "SIGXFSZ");
    return 1;
}
