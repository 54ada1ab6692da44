/*
 * streamctl.core's file operations, for what must survive a crash
 * (docs/reconcile.md): an audit record appended whole and made durable, a
 * state file replaced atomically, a state file read so that "absent" (a
 * first run) is told from "unreadable" and "not a file", a private file
 * (and its directories) made without a shell (the lock held across a
 * state's read-modify-replace: csrc/lock.c).
 *
 * Lua's io library cannot fsync, cannot lock, and tells none of these apart
 * (io.open of a directory succeeds; of a FIFO, blocks), hence C here. Every
 * open is O_NONBLOCK|O_NOCTTY|O_CLOEXEC and anything but a regular file is
 * refused, naming the path and what it is: a FIFO or a device is never
 * waited on, a terminal never becomes the process's. A write that meets a
 * size limit (EFBIG: SIGXFSZ is ignored by streamctl.signal.catch) or a
 * full disk is an ordinary failure, with the bytes that reached the file.
 * Each function owns one descriptor on the C stack and closes it on every
 * path before it returns (the lock's lives in a userdata Lua owns, made
 * before it is opened); the only allocation is Lua's (lua_pushlstring, a
 * luaL_Buffer), made while no descriptor is open or through a buffer Lua
 * owns, so an error raised by Lua (out of memory) leaks nothing but, at
 * worst, the descriptor of a read under way (see read_file).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "compat.h"
#include "file.h"

/* write(2) until `n` bytes are written: 0, or the errno that stopped it
   (EIO for a write that wrote nothing); *done says how many were. */
static int write_all(int fd, const char *data, size_t n, size_t *done) {
    *done = 0;
    while (*done < n) {
        ssize_t w = write(fd, data + *done, n - *done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? errno : EIO;
        *done += (size_t)w;
    }
    return 0;
}

int sc_push_failure(lua_State *L, const char *what, const char *path, int err) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot %s %s: %s", what, path, strerror(err));
    return 2;
}

static const char *type_name(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

static int push_not_regular(lua_State *L, const char *what, const char *path, mode_t m) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot %s %s: it is %s, not a regular file", what, path,
                    S_ISLNK(m) ? "a symbolic link" : type_name(m));
    return 2;
}

/* Opens the regular file at `path` with `flags` (and O_NONBLOCK, O_NOCTTY,
   O_CLOEXEC; mode 0600 when O_CREAT makes it): the descriptor, or -1 with
   nil and why pushed, `what` the verb said ("cannot open PATH: ..."). What
   is there and is not a regular file is refused before it is opened (the
   open of a device can act on it: a tape rewinds), and again after, on the
   descriptor (it may have been swapped in between). */
int sc_open_regular(lua_State *L, const char *path, int flags, const char *what) {
    struct stat st;
    int fd;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        push_not_regular(L, what, path, st.st_mode);
        return -1;
    }
    fd = open(path, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0600);
    if (fd < 0) {
        sc_push_failure(L, what, path, errno);
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        sc_push_failure(L, what, path, err);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        push_not_regular(L, what, path, st.st_mode);
        return -1;
    }
    return fd;
}

/* Whether the file open on `fd` is empty or ends with "\n": 1 yes, 0 no,
   -1 it cannot be told (errno set). */
static int ends_in_newline(int fd) {
    struct stat st;
    char last;
    if (fstat(fd, &st) != 0) return -1;
    if (st.st_size == 0) return 1;
    for (;;) {
        ssize_t r = pread(fd, &last, 1, st.st_size - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r != 1) {
            if (r == 0) errno = EIO;
            return -1;
        }
        return last == '\n';
    }
}

/* core.append_private(path, data [, sync]): appends `data` to the file at
   `path` in one write(2), made with mode 0600 when it does not exist
   (whatever the umask: a log rotated away is made again as private as it
   was). Under flock(LOCK_EX), so that processes appending at once never
   interleave and the tail check below sees a whole record: when the file
   does not end with "\n" (a record cut short: a full disk, a crash), a
   "\n" is written first, so this record starts on a line of its own. With
   `sync`, fdatasync(2) before returning: the record is on the disk.
   Returns true and whether a newline had to be added; or nil, the reason,
   and how many bytes of `data` reached the file (0: none; fewer than
   #data: the record is cut short, and the next append starts a new line).
   Anything but a regular file (a FIFO, a device, a directory) is refused,
   never opened for writing nor waited on. */
static int l_append_private(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    size_t n, done = 0;
    const char *data = luaL_checklstring(L, 2, &n);
    int sync = lua_toboolean(L, 3);
    int err = 0, repaired = 0;
    int fd = sc_open_regular(L, path, O_RDWR | O_APPEND | O_CREAT, "open");
    if (fd < 0) return 2;
    /* (a wait for another writer's lock ends at a caught signal: SA_RESTART
       is off, so flock returns EINTR at Ctrl-C or SIGTERM, and the record is
       not written, "Interrupted system call", rather than waited on) */
    if (flock(fd, LOCK_EX) != 0) err = errno;
    if (err == 0) {
        int tail = ends_in_newline(fd);
        if (tail < 0) {
            err = errno;
        } else if (tail == 0) {
            size_t one;
            err = write_all(fd, "\n", 1, &one);
            repaired = err == 0;
        }
    }
    if (err == 0) err = write_all(fd, data, n, &done);
    if (err == 0 && sync && fdatasync(fd) != 0) err = errno;
    if (close(fd) != 0 && err == 0 && errno != EINTR) err = errno; /* (closing drops the lock) */
    if (err != 0) {
        sc_push_failure(L, "write", path, err);
        lua_pushinteger(L, (lua_Integer)done);
        return 3;
    }
    lua_pushboolean(L, 1);
    lua_pushboolean(L, repaired);
    return 2;
}

/* The directory part of `path` into `dir` (at most `size` bytes): "." for
   a bare name. 0, or -1 when it does not fit. */
static int dir_of(const char *path, char *dir, size_t size) {
    const char *slash = strrchr(path, '/');
    size_t len;
    if (slash == NULL) {
        if (size < 2) return -1;
        memcpy(dir, ".", 2);
        return 0;
    }
    len = slash == path ? 1 : (size_t)(slash - path);
    if (len + 1 > size) return -1;
    memcpy(dir, path, len);
    dir[len] = '\0';
    return 0;
}

/* core.replace_file(path, data [, mode]): replaces the file at `path` with
   `data`, atomically: written whole to a temporary file beside it (O_EXCL,
   mode 0600, or `mode` by fchmod(2) whatever the umask: a file others read;
   named from RAND_bytes), fsync(2)ed, renamed over `path`, and the directory
   fsync(2)ed so that the rename itself is on the disk. A reader sees the old
   bytes or the new, never a part; on any failure the old file is left as it
   was and the temporary removed. true, or nil and the reason (naming `path`). */
static int l_replace_file(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    size_t n, done;
    const char *data = luaL_checklstring(L, 2, &n);
    lua_Integer mode = luaL_optinteger(L, 3, 0600);
    unsigned char rnd[8];
    char tmp[4096], dir[4096];
    int fd, dfd, err = 0;
    size_t i;
    size_t plen = strlen(path);
    if (plen == 0) return luaL_argerror(L, 1, "an empty path");
    if (mode < 0 || mode > 0777) return luaL_argerror(L, 3, "permission bits, 0 to 0777");
    if (plen + 1 + 4 + 16 + 1 > sizeof(tmp) || dir_of(path, dir, sizeof(dir)) != 0)
        return sc_push_failure(L, "replace", path, ENAMETOOLONG);
    {
        /* Only a regular file (or nothing) is replaced: a rename over a device
           node (as root: /dev/null) or a symbolic link would replace the node or
           the link itself, not the state someone reads through it. */
        struct stat st;
        if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) return push_not_regular(L, "replace", path, st.st_mode);
    }
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) return sc_push_failure(L, "replace", path, EIO);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.", 5);
    for (i = 0; i < sizeof(rnd); i++) {
        tmp[plen + 5 + 2 * i] = "0123456789abcdef"[rnd[i] >> 4];
        tmp[plen + 5 + 2 * i + 1] = "0123456789abcdef"[rnd[i] & 15];
    }
    tmp[plen + 5 + 16] = '\0';
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) return sc_push_failure(L, "replace", path, errno);
    err = write_all(fd, data, n, &done);
    if (err == 0 && mode != 0600 && fchmod(fd, (mode_t)mode) != 0) err = errno;
    if (err == 0 && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && err == 0 && errno != EINTR) err = errno;
    if (err == 0 && rename(tmp, path) != 0) err = errno;
    if (err != 0) {
        unlink(tmp);
        return sc_push_failure(L, "replace", path, err);
    }
    /* The rename is done; its durability needs the directory synced. A
       directory that cannot be opened or synced is said: the new bytes are
       in place, but a power loss could bring the old ones back. */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return sc_push_failure(L, "sync the directory of", path, errno);
    if (fsync(dfd) != 0 && errno != EINVAL) err = errno;
    close(dfd);
    if (err != 0) return sc_push_failure(L, "sync the directory of", path, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* What a failed open or read means for a state: "absent" when there is no
   such file (ENOENT; ENOTDIR: a component is a file), else "unreadable". */
static const char *kind_of(int err) {
    return (err == ENOENT || err == ENOTDIR) ? "absent" : "unreadable";
}


static int push_read_failure(lua_State *L, const char *path, const char *what, const char *kind) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s", path, what);
    lua_pushstring(L, kind);
    return 3;
}

/* core.read_file(path [, max [, private]]): the whole of a regular file,
   or its first `max` bytes (an integer >= 0, or nil: a file that should be
   small, a CA bundle, is never read whole when it is not). nil, a message
   naming the path and the reason, and a kind: "absent" (no such file),
   "not_a_file" (a directory, a FIFO, a device: opened without blocking,
   never read) or "unreadable" (permissions, an I/O error). With `private`
   (a file only its owner may have written, such as a cache of
   credentials), also "untrusted": a symbolic link (opened with O_NOFOLLOW,
   never followed), a file of another user, or one that others may write
   (judged on the open file, fstat(2): no window between check and read). */
static int l_read_file(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    lua_Integer max = luaL_optinteger(L, 2, -1);
    int private_ = lua_toboolean(L, 3);
    size_t left;
    struct stat st;
    luaL_Buffer b;
    int err = 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | (private_ ? O_NOFOLLOW : 0));
    if (fd < 0) {
        err = errno;
        if (private_ && err == ELOOP) return push_read_failure(L, path, "is a symbolic link", "untrusted");
        return push_read_failure(L, path, err == ENOENT || err == ENOTDIR ? "does not exist"
                                 : lua_pushfstring(L, "cannot be read: %s", strerror(err)), kind_of(err));
    }
    if (fstat(fd, &st) != 0) {
        err = errno;
        close(fd);
        return push_read_failure(L, path, lua_pushfstring(L, "cannot be read: %s", strerror(err)), "unreadable");
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return push_read_failure(L, path, lua_pushfstring(L, "is not a file (%s)", type_name(st.st_mode)),
                                 "not_a_file");
    }
    if (private_ && st.st_uid != geteuid()) {
        close(fd);
        return push_read_failure(L, path, lua_pushfstring(L, "belongs to another user (uid %d)", (int)st.st_uid),
                                 "untrusted");
    }
    if (private_ && (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        char mode[8]; /* (lua_pushfstring has no %o) */
        snprintf(mode, sizeof(mode), "%04o", (unsigned)(st.st_mode & 07777));
        close(fd);
        return push_read_failure(L, path, lua_pushfstring(L, "can be written by other users (mode %s)", mode),
                                 "untrusted");
    }
    /* (a raise from here, out of memory in the buffer, would leave fd open:
       the one leak this file allows, on a process that is failing anyway) */
    left = max < 0 ? (size_t)-1 : (size_t)max;
    luaL_buffinit(L, &b);
    while (left > 0) {
        char *p = sc_prepbuffsize(&b, SC_PREP_MAX);
        ssize_t r = read(fd, p, left < SC_PREP_MAX ? left : SC_PREP_MAX);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            err = errno;
            break;
        }
        if (r == 0) break;
        luaL_addsize(&b, (size_t)r);
        left -= (size_t)r;
    }
    close(fd);
    luaL_pushresult(&b);
    if (err != 0) {
        lua_pop(L, 1);
        return push_read_failure(L, path, lua_pushfstring(L, "cannot be read: %s", strerror(err)), "unreadable");
    }
    return 1;
}

/* core.private_file(path): makes the file at `path` when it is not there,
   with mode 0600, and the directories above it that are not there, 0700
   (whatever the umask: it can only take bits away), as an audit log is
   made; one that is there is opened for writing and closed, untouched.
   true, or nil and why (naming `path`): a FIFO, a device, a directory (or
   a link to one) is refused without being waited on; a file that cannot
   be written is refused now, before a run sends anything. No shell: the
   directories are made one by one with mkdir(2). */
static int l_private_file(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    char dir[4096];
    char *p;
    int fd;
    size_t len = strlen(path);
    if (len == 0) return luaL_argerror(L, 1, "an empty path");
    if (len >= sizeof(dir)) return sc_push_failure(L, "create", path, ENAMETOOLONG);
    memcpy(dir, path, len + 1);
    for (p = strchr(dir + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
        struct stat st;
        *p = '\0';
        /* (EEXIST, or an error other than it for a directory that is there:
           a read-only file system's EROFS; a file in the way is said by the
           open below: ENOTDIR) */
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            int err = errno;
            if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return sc_push_failure(L, "create", path, err);
        }
        *p = '/';
    }
    fd = sc_open_regular(L, path, O_WRONLY | O_APPEND | O_CREAT, "open");
    if (fd < 0) return 2;
    close(fd);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.private_dir(path): the directory at `path` made mode 0700, as a
   directory holding credentials must be: fchmod(2) on the directory itself,
   opened with O_NOFOLLOW (a symbolic link is refused, never its target
   changed). A directory another user owns is refused, untouched: its owner
   can rename and replace what is in it whatever its mode (root's fchmod
   would succeed there, and protect nothing). The mode it had (its
   permission bits: 493 for 0755), or nil and why (naming `path`). No
   shell: Lua has no chmod(2). A directory that is not there: nil, why and
   "absent". */
static int l_private_dir(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    int fd;
    if (path[0] == '\0') return luaL_argerror(L, 1, "an empty path");
    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (lstat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
            lua_pushnil(L);
            lua_pushfstring(L, "cannot make %s private: it is %s, not a directory", path,
                            S_ISLNK(st.st_mode) ? "a symbolic link" : S_ISREG(st.st_mode) ? "a file" : type_name(st.st_mode));
            return 2;
        }
        sc_push_failure(L, "open the directory", path, err);
        if (err != ENOENT) return 2;
        lua_pushliteral(L, "absent");
        return 3;
    }
    if (fstat(fd, &st) == 0 && st.st_uid != geteuid()) {
        close(fd);
        lua_pushnil(L);
        lua_pushfstring(L, "cannot make %s private: it is owned by uid %d, not by this user (uid %d)", path,
                        (int)st.st_uid, (int)geteuid());
        return 2;
    }
    if (fstat(fd, &st) != 0 || ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) != 0)) {
        int err = errno;
        close(fd);
        return sc_push_failure(L, "make private (mode 0700)", path, err);
    }
    close(fd);
    lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
    return 1;
}

const luaL_Reg sc_file_funcs[] = {
    {"append_private", l_append_private},
    {"replace_file", l_replace_file},
    {"read_file", l_read_file},
    {"private_file", l_private_file},
    {"private_dir", l_private_dir},
    {NULL, NULL}};
