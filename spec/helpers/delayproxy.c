/*
 * delayproxy: a TCP proxy on 127.0.0.1 that delays every byte, both ways, by
 * a fixed one-way delay, so that specs and `make bench` can talk to a server
 * "DELAY_US away" on one machine (spec/helpers/delayproxy.lua builds and
 * starts it).
 *
 *   delayproxy LISTEN_PORT TARGET_PORT DELAY_US
 *
 * Listens on 127.0.0.1:LISTEN_PORT (0: a port the kernel picks) and prints
 * the port it listens on as the first line of stdout, flushed, once it
 * accepts. Each accepted connection is forwarded to 127.0.0.1:TARGET_PORT;
 * only the loopback address is ever used, so the proxy can neither be reached
 * from nor reach another machine. At most MAX_CONNS connections at once (the
 * next ones wait in the listen backlog).
 *
 * A latency, not a rate limit: each direction keeps a FIFO of chunks, each
 * the bytes of one read with the time it is due (the time read + DELAY_US).
 * A chunk is written as soon as it is due, whatever else is queued, so
 * requests pipelined back to back each see the delay once, and order is kept
 * because due times only grow. The one bound is MAX_QUEUED bytes waiting in
 * a direction: past it that source is not read (TCP pushes back), which caps
 * the throughput at MAX_QUEUED / delay (32 MiB / 5 ms: 6.4 GiB/s).
 *
 * An end of stream (or a reset) read on one side is delayed like a byte: the
 * other side is shut down for writing (FIN) once everything read before it is
 * delivered and the delay has passed. A connection is closed when both
 * directions have ended, or at once when a write fails (the peer is gone) or
 * the target refuses the connection.
 *
 * Exits (status 0, every descriptor closed, every buffer freed) on SIGTERM,
 * SIGINT or SIGHUP, or when its parent dies (PR_SET_PDEATHSIG on Linux, and
 * getppid() checked at least every POLL_MAX_MS elsewhere): a spec that
 * crashes leaves no proxy behind, and one that a busy machine slows keeps it
 * as long as it runs (never a clock of its own). Bad arguments: status 2;
 * failure to listen: status 1.
 *
 * C99 + POSIX (poll, clock_gettime, MSG_NOSIGNAL), one thread.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, MSG_NOSIGNAL, sigaction */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define MAX_CONNS 256
#define READ_SIZE 65536                  /* bytes taken per read */
#define MAX_QUEUED (32u * 1024u * 1024u) /* bytes waiting per direction before that source is not read */
#define POLL_MAX_MS 250                  /* longest sleep: how late a dead parent is noticed without prctl */
#define MAX_DELAY_US 60000000L           /* one minute: more is surely a mistake in the arguments */

struct chunk {
  struct chunk *next;
  int64_t due; /* monotonic µs at which these bytes may be written */
  size_t len, off;
  unsigned char data[];
};

/* One direction: bytes read from `from`, written to `to` when due. */
struct dir {
  int from, to;
  struct chunk *head, *tail;
  size_t queued;   /* bytes in the chunks not yet written */
  int eof;         /* end of stream (or error) read on `from`: read no more */
  int64_t eof_due; /* when to pass the end on (shutdown of `to`) */
  int shut;        /* `to` was shut down for writing: this direction is over */
  int blocked;     /* the last write would block: wait for POLLOUT */
};

struct conn {
  int client, server;
  int connecting;  /* the non-blocking connect to the target is under way */
  struct dir d[2]; /* [0] client -> server, [1] server -> client */
  int pin[2];      /* index in the pollfd array of client, server; -1: not polled */
};

static struct conn *conns[MAX_CONNS];
static int nconns;
static int64_t delay_us;
static int target_port;
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A decimal integer in [lo, hi], the whole string; -1 when it is not one. */
static long parse_arg(const char *s, long lo, long hi) {
  char *end;
  long v;
  if (*s < '0' || *s > '9') return -1;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno || *end || v < lo || v > hi) return -1;
  return v;
}

static int set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* Small requests go out at once: Nagle's algorithm would hold them back
 * waiting for an ACK, adding latency of its own to the one we set. */
static void set_nodelay(int fd) {
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* 127.0.0.1, never anything else */
  return a;
}

static void free_chunks(struct dir *d) {
  struct chunk *c = d->head, *next;
  for (; c; c = next) {
    next = c->next;
    free(c);
  }
  d->head = d->tail = NULL;
  d->queued = 0;
}

static void close_conn(int i) {
  struct conn *c = conns[i];
  free_chunks(&c->d[0]);
  free_chunks(&c->d[1]);
  close(c->client);
  close(c->server);
  free(c);
  conns[i] = conns[--nconns]; /* order of connections does not matter */
  conns[nconns] = NULL;
}

/* A new connection: a non-blocking connect to the target; bytes the client
 * sends meanwhile are read and queued, their delay already running. */
static void accept_one(int lfd) {
  struct sockaddr_in target;
  struct conn *c;
  int cfd, sfd;
  cfd = accept(lfd, NULL, NULL);
  if (cfd < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
      perror("delayproxy: accept");
    return;
  }
  sfd = socket(AF_INET, SOCK_STREAM, 0);
  c = malloc(sizeof *c);
  if (sfd < 0 || !c || set_nonblocking(cfd) < 0 || set_nonblocking(sfd) < 0) {
    perror("delayproxy: new connection");
    free(c);
    if (sfd >= 0) close(sfd);
    close(cfd);
    return;
  }
  set_nodelay(cfd);
  set_nodelay(sfd);
  memset(c, 0, sizeof *c);
  c->client = cfd;
  c->server = sfd;
  target = loopback(target_port);
  if (connect(sfd, (struct sockaddr *)&target, sizeof target) == 0) {
    c->connecting = 0;
  } else if (errno == EINPROGRESS || errno == EINTR) {
    c->connecting = 1;
  } else {
    /* refused at once: the client sees its connection closed */
    free(c);
    close(sfd);
    close(cfd);
    return;
  }
  c->d[0].from = cfd;
  c->d[0].to = sfd;
  c->d[1].from = sfd;
  c->d[1].to = cfd;
  conns[nconns++] = c;
}

/* Reads what `d->from` has (until it would block or the queue is full) into
 * chunks due now + delay. Returns -1 when the connection must be closed. */
static int read_side(struct dir *d) {
  static unsigned char buf[READ_SIZE];
  while (!d->eof && d->queued < MAX_QUEUED) {
    ssize_t n = recv(d->from, buf, sizeof buf, 0);
    if (n > 0) {
      struct chunk *ch = malloc(sizeof *ch + (size_t)n);
      if (!ch) {
        perror("delayproxy: malloc");
        return -1;
      }
      ch->next = NULL;
      ch->due = now_us() + delay_us;
      ch->len = (size_t)n;
      ch->off = 0;
      memcpy(ch->data, buf, (size_t)n);
      if (d->tail)
        d->tail->next = ch;
      else
        d->head = ch;
      d->tail = ch;
      d->queued += (size_t)n;
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      /* end of stream, or a reset: passed on like a byte, after the delay */
      d->eof = 1;
      d->eof_due = now_us() + delay_us;
    } else if (errno == EINTR) {
      continue;
    } else {
      break; /* would block */
    }
  }
  return 0;
}

/* Writes the chunks that are due, then the end of stream once it is due.
 * Returns -1 when the connection must be closed (the destination is gone). */
static int flush_side(struct dir *d, int64_t now) {
  while (d->head && d->head->due <= now) {
    struct chunk *ch = d->head;
    ssize_t n = send(d->to, ch->data + ch->off, ch->len - ch->off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        d->blocked = 1;
        return 0;
      }
      return -1;
    }
    ch->off += (size_t)n;
    d->queued -= (size_t)n;
    if (ch->off < ch->len) {
      d->blocked = 1; /* a partial write: the socket's buffer is full */
      return 0;
    }
    d->head = ch->next;
    if (!d->head) d->tail = NULL;
    free(ch);
  }
  if (d->eof && !d->shut && !d->head && d->eof_due <= now) {
    (void)shutdown(d->to, SHUT_WR);
    d->shut = 1;
  }
  return 0;
}

/* When this direction next has something to do by the clock (INT64_MAX: nothing). */
static int64_t next_due(const struct dir *d) {
  if (d->blocked) return INT64_MAX; /* POLLOUT wakes us instead */
  if (d->head) return d->head->due;
  if (d->eof && !d->shut) return d->eof_due;
  return INT64_MAX;
}

int main(int argc, char **argv) {
  long listen_port, dl;
  int lfd, one = 1, i;
  pid_t parent = getppid();
  struct sockaddr_in addr;
  socklen_t alen = sizeof addr;
  struct sigaction sa;
  struct pollfd *pfd;

  if (argc != 4 || (listen_port = parse_arg(argv[1], 0, 65535)) < 0 ||
      (target_port = (int)parse_arg(argv[2], 1, 65535)) < 0 || (dl = parse_arg(argv[3], 0, MAX_DELAY_US)) < 0) {
    fprintf(stderr, "usage: delayproxy LISTEN_PORT TARGET_PORT DELAY_US\n"
                    "  LISTEN_PORT 0-65535 (0: any free one), TARGET_PORT 1-65535, both on 127.0.0.1;\n"
                    "  DELAY_US 0-%ld (one way)\n",
            MAX_DELAY_US);
    return 2;
  }
  delay_us = dl;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: poll returns EINTR and the loop sees the flag */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sa.sa_handler = SIG_IGN; /* a peer gone is a failed send (MSG_NOSIGNAL too), not death */
  sigaction(SIGPIPE, &sa, NULL);
#ifdef __linux__
  /* The parent's death sends us SIGTERM; set before the port is printed, so
   * the parent that reads it is covered (the getppid() check covers a parent
   * gone before this line). */
  (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
  if (getppid() != parent) return 0;

  lfd = socket(AF_INET, SOCK_STREAM, 0);
  addr = loopback((int)listen_port);
  if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 128) < 0 || set_nonblocking(lfd) < 0 ||
      getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) {
    perror("delayproxy: listen on 127.0.0.1");
    if (lfd >= 0) close(lfd);
    return 1;
  }
  printf("%u\n", (unsigned)ntohs(addr.sin_port));
  fflush(stdout);

  /* one listener, then client and server of each connection */
  pfd = malloc(sizeof *pfd * (1 + 2 * MAX_CONNS));
  if (!pfd) {
    perror("delayproxy: malloc");
    close(lfd);
    return 1;
  }

  while (!stop_signal && getppid() == parent) {
    int64_t now = now_us(), wake = INT64_MAX;
    int n = 0, timeout, ready;

    /* 1. write what is due; find the next time anything is due */
    for (i = 0; i < nconns; i++) {
      struct conn *c = conns[i];
      int k, bad = 0;
      if (!c->connecting)
        for (k = 0; k < 2; k++)
          if (!c->d[k].blocked && flush_side(&c->d[k], now) < 0) bad = 1;
      if (bad || (c->d[0].shut && c->d[1].shut)) {
        close_conn(i--);
        continue;
      }
      if (!c->connecting)
        for (k = 0; k < 2; k++) {
          int64_t t = next_due(&c->d[k]);
          if (t < wake) wake = t;
        }
    }

    /* 2. what to wait for */
    pfd[n].fd = nconns < MAX_CONNS ? lfd : -1; /* at the cap, new ones wait in the backlog */
    pfd[n].events = POLLIN;
    pfd[n++].revents = 0;
    for (i = 0; i < nconns; i++) {
      struct conn *c = conns[i];
      int k;
      for (k = 0; k < 2; k++) {
        int fd = k == 0 ? c->client : c->server;
        struct dir *in = &c->d[k], *out = &c->d[1 - k]; /* read from fd, write to fd */
        short ev = 0;
        if (!in->eof && in->queued < MAX_QUEUED) ev |= POLLIN;
        if (k == 1 && c->connecting) ev = POLLOUT;
        else if (out->blocked) ev |= POLLOUT;
        /* nothing to wait for: not polled at all, or an error or hang-up
         * (always reported) would wake us again and again */
        c->pin[k] = ev ? n : -1;
        if (ev) {
          pfd[n].fd = fd;
          pfd[n].events = ev;
          pfd[n++].revents = 0;
        }
      }
    }

    /* poll counts in ms: round up so that nothing is written early */
    timeout = POLL_MAX_MS;
    if (wake <= now)
      timeout = 0;
    else if (wake - now < (int64_t)POLL_MAX_MS * 1000)
      timeout = (int)((wake - now + 999) / 1000);
    ready = poll(pfd, (nfds_t)n, timeout);
    if (ready < 0) {
      if (errno == EINTR) continue;
      perror("delayproxy: poll");
      break;
    }
    if (ready == 0) continue;

    /* 3. handle what is ready; the writes happen in step 1 of the next turn */
    for (i = 0; i < nconns; i++) {
      struct conn *c = conns[i];
      int k, bad = 0;
      for (k = 0; k < 2 && !bad; k++) {
        short rev;
        if (c->pin[k] < 0 || !(rev = pfd[c->pin[k]].revents)) continue;
        if (k == 1 && c->connecting) {
          int err = 0;
          socklen_t elen = sizeof err;
          if (getsockopt(c->server, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err) bad = 1;
          c->connecting = 0;
          continue;
        }
        if (c->d[1 - k].blocked && (rev & (POLLOUT | POLLERR | POLLHUP))) c->d[1 - k].blocked = 0;
        if (!c->d[k].eof && (rev & (POLLIN | POLLERR | POLLHUP)) && read_side(&c->d[k]) < 0) bad = 1;
      }
      if (bad) close_conn(i--);
    }
    /* accepted last: the new connections have no pollfd index from this turn */
    if (pfd[0].revents & POLLIN)
      while (nconns < MAX_CONNS) {
        int before = nconns;
        accept_one(lfd);
        if (nconns == before) break; /* would block, or that one failed */
      }
  }

  while (nconns > 0) close_conn(nconns - 1);
  free(pfd);
  close(lfd);
  return 0;
}
