/* Listening sockets: bind, listen and accept into connection structs the binding has
 * already allocated (so a failure never leaves a socket without an owner). At the
 * connection limit accepting pauses, which leaves new clients in the kernel's backlog. */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ws_rt_internal.h"
#include "ws_tls.h"

void ws_server_cfg_default(ws_server_cfg *c) {
  memset(c, 0, sizeof *c);
  c->max_message = WS_DEFAULT_MAX_MESSAGE;
  c->max_header_bytes = 8192;
  c->open_timeout = 10;
  c->close_timeout = 10;
  c->ping_interval = 20;
  c->ping_timeout = 20;
  c->idle_timeout = 0;
  c->send_high = 1u << 20;
  c->send_low = 1u << 18;
  c->max_queue = 64;
  c->max_connections = 0;
}

static void on_accept(struct ev_loop *ev, ev_io *w, int revents) {
  ws_listener *l = WS_CONTAINER(w, ws_listener, io);
  const ws_hooks *h = ws_loop_hooks(l->loop);
  (void)ev; (void)revents;
  if (h->listener_ready) h->listener_ready(l);
}

void ws_listener_init(ws_listener *l, ws_loop *loop) {
  memset(l, 0, sizeof *l);
  l->loop = loop;
  l->fd = -1;
  l->hold_fd = -1;
  ws_server_cfg_default(&l->cfg);
  ev_io_init((ev_io *)(void *)&l->io, on_accept, -1, EV_READ);
  ws_listener **head = ws_loop_listener_head(loop);
  l->next_l = *head;
  if (*head) (*head)->prev_l = l;
  *head = l;
}

void ws_listener_retire(ws_listener *l) {
  ws_listener **head = ws_loop_listener_head(l->loop);
  if (l->prev_l) l->prev_l->next_l = l->next_l;
  else if (*head == l) *head = l->next_l;
  else return; /* retired already */
  if (l->next_l) l->next_l->prev_l = l->prev_l;
  l->next_l = l->prev_l = NULL;
  ws_counters_add(ws_loop_counters(l->loop), &l->ctr);
  memset(&l->ctr, 0, sizeof l->ctr);
}

size_t ws_listener_queued(const ws_listener *l) {
  size_t n = 0;
  for (const ws_stream *s = l->streams; s; s = s->lnext) n += ws_stream_buffered(s);
  return n;
}

/* A socket bound to sa and listening, or with backlog 0 only bound: without SO_REUSEADDR
 * then, which Linux would let any other SO_REUSEADDR socket share with one not listening.
 * -1 with errno. */
static int bind_socket(const struct sockaddr *sa, socklen_t len, int reuseport, int backlog) {
  int one = 1, e;
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (backlog > 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
#ifdef SO_REUSEPORT
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) goto fail;
#else
  if (reuseport) { errno = ENOPROTOOPT; goto fail; }
#endif
  if (bind(fd, sa, len) < 0) goto fail;
  if (backlog > 0 && listen(fd, backlog) < 0) goto fail;
  return fd;
fail:
  e = errno;
  close(fd);
  errno = e;
  return -1;
}

static void start_accepting(ws_listener *l, int fd) {
  l->fd = fd;
  l->paused = 0;
  ev_io_set((ev_io *)(void *)&l->io, fd, EV_READ);
  ev_io_start(ws_loop_ev(l->loop), (ev_io *)(void *)&l->io);
}

int ws_listener_open(ws_listener *l, const char *host, int port, int backlog, const char **err) {
  struct addrinfo hints, *res = NULL, *ai;
  char service[16];
  int fd = -1, e = 0;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  snprintf(service, sizeof service, "%d", port);
  int gai = getaddrinfo(host, service, &hints, &res);
  if (gai != 0) {
    *err = gai_strerror(gai);
    errno = EINVAL;
    return -1;
  }
  *err = "bind failed";
  l->backlog = backlog > 0 ? backlog : 1024;
  for (ai = res; ai; ai = ai->ai_next) {
    fd = bind_socket(ai->ai_addr, ai->ai_addrlen, l->reuseport, l->backlog);
    if (fd >= 0) break;
    e = errno;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    errno = e;
    *err = strerror(e);
    return -1;
  }
  l->addrlen = sizeof l->addr;
  if (getsockname(fd, (struct sockaddr *)&l->addr, &l->addrlen) == 0)
    l->port = ntohs(l->addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&l->addr)->sin6_port
                                                  : ((struct sockaddr_in *)&l->addr)->sin_port);
  else
    l->addrlen = 0;
  start_accepting(l, fd);
  return 0;
}

int ws_listener_park(ws_listener *l, const char **err) {
  ev_io *io = (ev_io *)(void *)&l->io;
  if (l->unix_path && l->fd >= 0) { /* the workers inherit this very socket: only stop watching it */
    if (ev_is_active(io)) ev_io_stop(ws_loop_ev(l->loop), io);
    return 0;
  }
  if (l->fd < 0 || l->addrlen == 0) { *err = "not listening"; errno = EBADF; return -1; }
  if (ev_is_active(io)) ev_io_stop(ws_loop_ev(l->loop), io);
  close(l->fd);
  l->fd = -1;
  l->paused = 0;
  /* A listening socket without SO_REUSEPORT would keep its own share of connections that no
   * one accepts: it goes, and a bound socket keeps the port for the workers (and for their
   * restarts) against other programs. */
  l->hold_fd = bind_socket((struct sockaddr *)&l->addr, l->addrlen, 1, 0);
  if (l->hold_fd < 0) { *err = strerror(errno); return -1; }
  return 0;
}

int ws_listener_reopen(ws_listener *l, const char **err) {
  ev_io *io = (ev_io *)(void *)&l->io;
  if (l->unix_path && l->fd >= 0) { /* every worker accepts on the master's socket */
    if (ev_is_active(io)) ev_io_stop(ws_loop_ev(l->loop), io);
    start_accepting(l, l->fd);
    return 0;
  }
  if (l->addrlen == 0) { *err = "not listening"; errno = EBADF; return -1; }
  if (ev_is_active(io)) ev_io_stop(ws_loop_ev(l->loop), io);
  if (l->fd >= 0) { close(l->fd); l->fd = -1; } /* a copy of the master's listener */
  l->reuseport = 1;
  int fd = bind_socket((struct sockaddr *)&l->addr, l->addrlen, 1, l->backlog > 0 ? l->backlog : 1024);
  if (fd < 0) { *err = strerror(errno); return -1; }
  if (l->hold_fd >= 0) { close(l->hold_fd); l->hold_fd = -1; } /* the master keeps its own */
  start_accepting(l, fd);
  return 0;
}

/* A socket file at path that nothing accepts on: a server that ended without removing it. */
static int stale_socket(const struct sockaddr_un *sa) {
  struct stat st;
  if (lstat(sa->sun_path, &st) < 0 || !S_ISSOCK(st.st_mode)) return 0;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  int r = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
  int e = errno;
  close(fd);
  return r < 0 && e == ECONNREFUSED;
}

int ws_listener_open_unix(ws_listener *l, const char *path, int mode, int backlog, const char **err) {
  struct sockaddr_un sa;
  size_t len = strlen(path);
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (len == 0 || len >= sizeof sa.sun_path) {
    *err = "socket path too long";
    errno = EINVAL;
    return -1;
  }
  memcpy(sa.sun_path, path, len + 1);
  char *copy = malloc(len + 1);
  if (!copy) { *err = strerror(ENOMEM); errno = ENOMEM; return -1; }
  memcpy(copy, path, len + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int e = errno;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    e = errno;
    if (e == EADDRINUSE && stale_socket(&sa) && unlink(path) == 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
      e = 0;
    if (e) { close(fd); fd = -1; }
  }
  if (fd >= 0 && mode >= 0 && chmod(path, (mode_t)mode) < 0) e = errno;
  else if (fd >= 0 && listen(fd, backlog > 0 ? backlog : 1024) < 0) e = errno;
  else if (fd >= 0) e = 0;
  if (fd < 0 || e) {
    if (fd >= 0) { close(fd); unlink(path); }
    free(copy);
    errno = e;
    *err = strerror(e);
    return -1;
  }
  l->unix_path = copy;
  l->unix_pid = (int)getpid();
  l->port = 0;
  start_accepting(l, fd);
  return 0;
}

static void pause_accepting(ws_listener *l) {
  ev_io *io = (ev_io *)(void *)&l->io;
  if (ev_is_active(io)) ev_io_stop(ws_loop_ev(l->loop), io);
  l->paused = 1;
}

int ws_listener_accept(ws_listener *l, ws_stream *s) {
  struct sockaddr_storage sa;
  socklen_t len;
  int fd, one = 1;
  if (l->fd < 0) return 0;
  if (l->cfg.max_connections && l->count >= l->cfg.max_connections) {
    pause_accepting(l);
    return 0;
  }
  for (;;) {
    len = sizeof sa;
    fd = accept4(l->fd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) break;
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    if (errno == EMFILE || errno == ENFILE) pause_accepting(l); /* resumes when one closes */
    return -1;
  }
  if (!l->unix_path) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ws_conn_options o;
  ws_conn_options_default(&o, WS_ROLE_SERVER);
  o.max_message = l->cfg.max_message; /* max_frame and max_fragments follow it */
  o.defer_fail = 1; /* messages before a protocol error are answered first (ws_stream.c) */
  ws_conn_free(&s->ws);
  ws_conn_init(&s->ws, &o);
  s->fd = fd;
  s->listener = l;
  s->cfg = &l->cfg;
  s->phase = WS_PH_HEAD;
  if (sa.ss_family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)&sa;
    s->remote_family = AF_INET;
    memcpy(s->remote_ip, &in->sin_addr, 4);
    s->remote_port = ntohs(in->sin_port);
  } else if (sa.ss_family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
    s->remote_family = AF_INET6;
    memcpy(s->remote_ip, &in6->sin6_addr, 16);
    s->remote_port = ntohs(in6->sin6_port);
  }
  s->lprev = NULL;
  s->lnext = l->streams;
  if (l->streams) l->streams->lprev = s;
  l->streams = s;
  l->count++;
  ws_loop_conn_opened(l->loop);
  ws_stream_update_io(s);
  ws_stream_set_deadline(s, l->cfg.open_timeout > 0 ? l->cfg.open_timeout : 10.);
  /* TLS: the handshake runs in the HEAD phase, under the same open_timeout. */
  if (l->tls && ws_tls_attach(s, l->tls, NULL) < 0) ws_stream_abort(s, s->error);
  return 1;
}

void ws_listener_release(ws_listener *l, ws_stream *s) {
  if (s->lprev) s->lprev->lnext = s->lnext; else if (l->streams == s) l->streams = s->lnext;
  if (s->lnext) s->lnext->lprev = s->lprev;
  s->lprev = s->lnext = NULL;
  if (l->count) {
    l->count--;
    ws_loop_conn_closed(l->loop);
  }
  if (l->paused && l->fd >= 0) {
    l->paused = 0;
    ev_io_start(ws_loop_ev(l->loop), (ev_io *)(void *)&l->io);
  }
}

void ws_listener_close(ws_listener *l) {
  ev_io *io = (ev_io *)(void *)&l->io;
  if (l->hold_fd >= 0) { close(l->hold_fd); l->hold_fd = -1; }
  if (l->fd >= 0) {
    if (ev_is_active(io)) ev_io_stop(ws_loop_ev(l->loop), io);
    close(l->fd);
    l->fd = -1;
  }
  l->paused = 0;
  if (l->unix_path) { /* ours: nothing else binds to a path that exists */
    if (l->unix_pid == (int)getpid()) unlink(l->unix_path);
    free(l->unix_path);
    l->unix_path = NULL;
  }
  ws_tls_ctx_unref(l->tls); /* connections keep their own references */
  l->tls = NULL;
}
