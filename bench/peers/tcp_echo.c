/* The machine's limit: a plain TCP echo on 127.0.0.1 (one epoll thread, no protocol at all).
 * It sends back every byte as received; `loadclient --raw` speaks to it with the same masked
 * frames it sends a WebSocket server (see the comment at the top of bench/loadclient.c).
 * Usage: tcp_echo --port N */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 65536

typedef struct peer {
  int fd;
  char *pending;  /* bytes a write could not take yet; reading pauses until they drain */
  size_t head, len;
} peer;

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static void drop(int ep, peer *p) {
  epoll_ctl(ep, EPOLL_CTL_DEL, p->fd, NULL);
  close(p->fd);
  free(p->pending);
  free(p);
}

/* Write pending bytes; returns -1 when the peer is gone, else whether bytes remain. */
static int flush(peer *p) {
  while (p->head < p->len) {
    ssize_t n = write(p->fd, p->pending + p->head, p->len - p->head);
    if (n > 0) p->head += (size_t)n;
    else if (n < 0 && errno == EINTR) continue;
    else if (n < 0 && errno == EAGAIN) return 1;
    else return -1;
  }
  free(p->pending);
  p->pending = NULL;
  p->head = p->len = 0;
  return 0;
}

int main(int argc, char **argv) {
  int port = 0;
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--port")) port = atoi(argv[++i]);
  if (port <= 0 || port > 65535) {
    fprintf(stderr, "usage: tcp_echo --port N\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);

  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 4096) < 0) {
    perror("tcp_echo: bind/listen");
    return 1;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
  printf("tcp_echo listening on 127.0.0.1:%d\n", port);
  fflush(stdout);

  static char buf[READ_CHUNK];
  struct epoll_event evs[512];
  while (!stop) {
    int n = epoll_wait(ep, evs, 512, 200);
    for (int i = 0; i < n; i++) {
      peer *p = evs[i].data.ptr;
      if (!p) {
        for (int k = 0; k < 256; k++) {  /* accept a bounded batch per wake-up */
          int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          peer *np = calloc(1, sizeof *np);
          if (!np) { close(fd); continue; }
          np->fd = fd;
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = np};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      if (p->len) {  /* waiting for the socket to take the rest */
        int r = flush(p);
        if (r < 0) { drop(ep, p); continue; }
        if (r == 0) {
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = p};
          epoll_ctl(ep, EPOLL_CTL_MOD, p->fd, &ev);
        }
        continue;
      }
      ssize_t got = read(p->fd, buf, sizeof buf);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) { drop(ep, p); continue; }
      if (got < 0) continue;
      ssize_t put = write(p->fd, buf, (size_t)got);
      if (put < 0 && errno != EAGAIN && errno != EINTR) { drop(ep, p); continue; }
      if (put < 0) put = 0;
      if (put < got) {
        size_t rest = (size_t)(got - put);
        p->pending = malloc(rest);
        if (!p->pending) { drop(ep, p); continue; }
        memcpy(p->pending, buf + put, rest);
        p->head = 0;
        p->len = rest;
        struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = p};
        epoll_ctl(ep, EPOLL_CTL_MOD, p->fd, &ev);
      }
    }
  }
  return 0;
}
