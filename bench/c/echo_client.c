/*
 * A small epoll TCP echo load generator for bench/echo.bench.ts.
 *
 *   echo_client echo HOST PORT CONNS SIZE WARMUP_MS DURATION_MS
 *     CONNS connections, one SIZE-byte message in flight on each: send it, wait for
 *     all SIZE bytes to come back, send the next. Messages completed during the
 *     DURATION_MS window after WARMUP_MS are counted. Prints one JSON line:
 *     {"msgs":..,"seconds":..,"rate":..,"p50_us":..,"p99_us":..,"max_us":..,"errors":..}
 *
 *   echo_client idle HOST PORT N
 *     Opens N connections (at most 64 handshakes at a time, below the servers' listen backlog), does one 16-byte
 *     round trip on each so the server has really accepted and served it, prints
 *     {"ready":N}, then holds them until stdin reaches EOF. Connections are closed
 *     with RST (SO_LINGER 0) so that repeated runs leave no TIME_WAIT behind.
 *
 * Built by the bench with `gcc -O2 -o bench/c/echo_client.bin bench/c/echo_client.c`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIST_US 200000 /* latency histogram: 1 us buckets up to 200 ms, then overflow */

typedef struct {
  int fd;
  size_t sent, recvd;
  uint64_t started_ns;
  unsigned seq;
  int want_out;
  int done; /* idle mode: round trip finished */
} conn_t;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "echo_client: %s: %s\n", what, strerror(errno));
  exit(2);
}

static int open_conn(const char *host, int port) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "echo_client: bad IPv4 address %s\n", host);
    exit(2);
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) die("connect");
  return fd;
}

static void set_events(int ep, conn_t *c, int want_out) {
  if (c->want_out == want_out) return;
  c->want_out = want_out;
  struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
}

static void add_conn(int ep, conn_t *c) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  c->want_out = 1;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl add");
}

/* Sends what is left of the current message; returns -1 on a connection error. */
static int pump_out(int ep, conn_t *c, const unsigned char *msg, size_t size) {
  while (c->sent < size) {
    ssize_t n = send(c->fd, msg + (c->seq % 251) + c->sent, size - c->sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN) {
        set_events(ep, c, 1);
        return 0;
      }
      if (errno == EINTR) continue;
      return -1;
    }
    c->sent += (size_t)n;
  }
  set_events(ep, c, 0);
  return 0;
}

static int run_echo(const char *host, int port, int nconns, size_t size, long warmup_ms, long duration_ms) {
  /* The message for sequence number s starts at msg + s % 251, so consecutive
     messages differ and the check below catches bytes echoed out of order. */
  unsigned char *msg = malloc(size + 256);
  unsigned char *rbuf = malloc(256 * 1024);
  uint64_t *hist = calloc(HIST_US + 1, sizeof *hist);
  conn_t *conns = calloc((size_t)nconns, sizeof *conns);
  if (!msg || !rbuf || !hist || !conns) die("malloc");
  for (size_t i = 0; i < size + 256; i++) msg[i] = (unsigned char)(i * 7 + 3);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  uint64_t t_start = now_ns();
  uint64_t t_measure = t_start + (uint64_t)warmup_ms * 1000000ull;
  uint64_t t_end = t_measure + (uint64_t)duration_ms * 1000000ull;
  for (int i = 0; i < nconns; i++) {
    conns[i].fd = open_conn(host, port);
    conns[i].seq = (unsigned)i;
    conns[i].started_ns = now_ns();
    add_conn(ep, &conns[i]);
  }
  uint64_t msgs = 0, errors = 0;
  struct epoll_event evs[64];
  for (;;) {
    uint64_t t = now_ns();
    if (t >= t_end) break;
    int n = epoll_wait(ep, evs, 64, 50);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int k = 0; k < n; k++) {
      conn_t *c = evs[k].data.ptr;
      if (c->fd < 0) continue;
      if (evs[k].events & (EPOLLERR | EPOLLHUP)) goto broken;
      if (evs[k].events & EPOLLOUT) {
        if (pump_out(ep, c, msg, size) < 0) goto broken;
      }
      if (evs[k].events & EPOLLIN) {
        for (;;) {
          ssize_t r = recv(c->fd, rbuf, 256 * 1024, 0);
          if (r < 0) {
            if (errno == EAGAIN) break;
            if (errno == EINTR) continue;
            goto broken;
          }
          if (r == 0) goto broken;
          if (rbuf[0] != msg[(c->seq % 251) + c->recvd] || c->recvd + (size_t)r > size) {
            fprintf(stderr, "echo_client: wrong bytes echoed\n");
            goto broken;
          }
          c->recvd += (size_t)r;
          if (c->recvd == size) {
            uint64_t done = now_ns();
            if (c->started_ns >= t_measure && done < t_end) {
              uint64_t us = (done - c->started_ns) / 1000;
              hist[us > HIST_US ? HIST_US : us]++;
              msgs++;
            }
            c->seq++;
            c->sent = 0;
            c->recvd = 0;
            c->started_ns = done;
            if (pump_out(ep, c, msg, size) < 0) goto broken;
          }
        }
      }
      continue;
    broken:
      errors++;
      close(c->fd);
      c->fd = -1;
    }
  }
  uint64_t p50 = 0, p99 = 0, maxv = 0, acc = 0;
  int have50 = 0, have99 = 0;
  for (uint64_t us = 0; us <= HIST_US; us++) {
    if (hist[us] == 0) continue;
    acc += hist[us];
    maxv = us;
    if (!have50 && acc * 100 >= msgs * 50) { p50 = us; have50 = 1; }
    if (!have99 && acc * 100 >= msgs * 99) { p99 = us; have99 = 1; }
  }
  double secs = (double)duration_ms / 1000.0;
  printf("{\"msgs\":%llu,\"seconds\":%.3f,\"rate\":%.1f,\"p50_us\":%llu,\"p99_us\":%llu,\"max_us\":%llu,\"errors\":%llu}\n",
         (unsigned long long)msgs, secs, (double)msgs / secs, (unsigned long long)p50, (unsigned long long)p99,
         (unsigned long long)maxv, (unsigned long long)errors);
  for (int i = 0; i < nconns; i++) if (conns[i].fd >= 0) close(conns[i].fd);
  return errors > 0 ? 1 : 0;
}

static int run_idle(const char *host, int port, int n) {
  conn_t *conns = calloc((size_t)n, sizeof *conns);
  if (!conns) die("calloc");
  unsigned char ping[16], buf[64];
  memset(ping, 'p', sizeof ping);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  int opened = 0, finished = 0, inflight = 0;
  uint64_t deadline = now_ns() + 60ull * 1000000000ull;
  struct epoll_event evs[256];
  while (finished < n) {
    while (opened < n && inflight < 64) {
      conns[opened].fd = open_conn(host, port);
      add_conn(ep, &conns[opened]);
      opened++;
      inflight++;
    }
    if (now_ns() > deadline) {
      fprintf(stderr, "echo_client: idle: only %d of %d connections answered within 60 s\n", finished, n);
      return 1;
    }
    int k = epoll_wait(ep, evs, 256, 100);
    if (k < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < k; i++) {
      conn_t *c = evs[i].data.ptr;
      if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        fprintf(stderr, "echo_client: idle: connection %d of %d failed: %s\n", (int)(c - conns), n, strerror(err));
        return 1;
      }
      if ((evs[i].events & EPOLLOUT) && c->sent == 0) {
        if (send(c->fd, ping, sizeof ping, MSG_NOSIGNAL) != (ssize_t)sizeof ping) die("send");
        c->sent = sizeof ping;
        set_events(ep, c, 0);
      }
      if (evs[i].events & EPOLLIN) {
        ssize_t r = recv(c->fd, buf, sizeof buf, 0);
        if (r <= 0 && !(r < 0 && errno == EAGAIN)) {
          fprintf(stderr, "echo_client: idle: connection %d closed: %s\n", (int)(c - conns), r == 0 ? "EOF" : strerror(errno));
          return 1;
        }
        if (r > 0) c->recvd += (size_t)r;
        if (c->recvd >= sizeof ping && !c->done) {
          c->done = 1;
          finished++;
          inflight--;
          epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        }
      }
    }
  }
  printf("{\"ready\":%d}\n", n);
  fflush(stdout);
  /* Hold the connections until the parent closes our stdin. */
  char b[64];
  while (read(0, b, sizeof b) > 0) {}
  struct linger lg = {1, 0};
  for (int i = 0; i < n; i++) {
    setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(conns[i].fd);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 8 && strcmp(argv[1], "echo") == 0) {
    return run_echo(argv[2], atoi(argv[3]), atoi(argv[4]), (size_t)atol(argv[5]), atol(argv[6]), atol(argv[7]));
  }
  if (argc >= 5 && strcmp(argv[1], "idle") == 0) return run_idle(argv[2], atoi(argv[3]), atoi(argv[4]));
  fprintf(stderr, "usage: echo_client echo HOST PORT CONNS SIZE WARMUP_MS DURATION_MS\n"
                  "       echo_client idle HOST PORT N\n");
  return 2;
}
