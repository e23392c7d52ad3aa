/* Client connections up to the response head: name lookup, non-blocking connect (each
 * address in turn), the TLS handshake, the upgrade request and the response head. The stream's
 * own watchers are lent to this file (their callbacks swapped) until the head is read, so a
 * close or abort during the connect needs nothing special: finish_socket stops them and
 * calls on_finish, which cleans up here. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/un.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ws_connect.h"
#include "ws_dns.h"
#include "ws_rt_internal.h"
#include "ws_tls.h"

#define WS_HEAD_SLACK 4096     /* frames the server may send right after its 101 */
#define WS_REFUSAL_BODY_MAX 65536 /* the most of a refusal's body kept for the application */
#define WS_DNS_POLL_MIN 0.002  /* a lookup in flight is polled from 2 ms ... */
#define WS_DNS_POLL_MAX 0.025  /* ... backing off to 25 ms */

enum { CL_RESOLVE = 1, CL_CONNECT, CL_TLS, CL_REQUEST, CL_RESPONSE, CL_DONE };

static void client_io(struct ev_loop *ev, ev_io *w, int revents);
static void client_timer(struct ev_loop *ev, ev_timer *w, int revents);

void ws_client_init(ws_client *cl) {
  memset(cl, 0, sizeof *cl);
  ws_server_cfg_default(&cl->cfg);
}

/* Poll for exactly these events on the stream's io watcher (as ws_stream_update_io does). */
static void set_io(ws_client *cl, int events) {
  ws_stream *s = cl->s;
  struct ev_loop *ev = ws_loop_ev(s->loop);
  ev_io *io = WS_EV_IO(s);
  if (s->fd < 0) events = 0;
  if (events == s->io_events && (events == 0 || ev_is_active(io))) return;
  if (ev_is_active(io)) ev_io_stop(ev, io);
  s->io_events = (uint8_t)events;
  if (events) {
    ev_io_set(io, s->fd, events);
    ev_io_start(ev, io);
  }
}

static void arm_timer(ws_client *cl, double after) {
  struct ev_loop *ev = ws_loop_ev(cl->s->loop);
  ev_timer *t = (ev_timer *)(void *)&cl->timer;
  double left = cl->deadline - ws_loop_now(cl->s->loop);
  if (after < 0 || after > left) after = left;
  if (after < 0) after = 0;
  if (ev_is_active(t)) ev_timer_stop(ev, t);
  ev_timer_set(t, after, 0.);
  ev_timer_start(ev, t);
}

/* Give the watchers back to the stream. */
static void give_back(ws_client *cl) {
  ws_stream *s = cl->s;
  ev_io *io = WS_EV_IO(s);
  ev_timer *t = (ev_timer *)(void *)&cl->timer;
  if (!cl->io_cb) return;
  ev_set_cb(io, (void (*)(struct ev_loop *, ev_io *, int))cl->io_cb);
  io->data = NULL;
  cl->io_cb = NULL;
  if (ev_is_active(t) || ev_is_pending(t)) ev_timer_stop(ws_loop_ev(s->loop), t);
}

static void release(ws_client *cl) {
  ws_dns_drop(cl->dns);
  cl->dns = NULL;
  ws_tls_ctx_unref(cl->tls);
  cl->tls = NULL;
}

/* on_finish: the stream closed (failure, close, abort or collection) while connecting. */
static void client_finished(ws_stream *s) {
  ws_client *cl = WS_EV_IO(s)->data;
  if (!cl) return;
  cl->step = CL_DONE;
  release(cl);
  give_back(cl);
}

static void fail(ws_client *cl, const char *why, int err) {
  ws_stream *s = cl->s;
  if (err && !s->err) s->err = err;
  ws_stream_abort(s, why);
}

/* ---- stages ---- */

static void send_request(ws_client *cl);
static void read_response(ws_client *cl);

static void tls_step(ws_client *cl) {
  ws_stream *s = cl->s;
  int r = s->tp->handshake(s);
  if (r < 0) { fail(cl, s->error ? s->error : "tls: handshake failed", 0); return; }
  if (r == 0) { set_io(cl, s->want ? s->want : EV_READ); return; }
  s->flags |= WS_SF_TLS_DONE;
  cl->step = CL_REQUEST;
  send_request(cl);
}

static void connected(ws_client *cl) {
  ws_stream *s = cl->s;
  const struct sockaddr_storage *sa = &cl->addrs[cl->next_addr - 1];
  int one = 1;
  if (sa->ss_family != AF_UNIX) setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (sa->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    s->remote_family = AF_INET;
    memcpy(s->remote_ip, &in->sin_addr, 4);
    s->remote_port = ntohs(in->sin_port);
  } else if (sa->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    s->remote_family = AF_INET6;
    memcpy(s->remote_ip, &in6->sin6_addr, 16);
    s->remote_port = ntohs(in6->sin6_port);
  }
  if (cl->tls) {
    if (ws_tls_attach(s, cl->tls, cl->server_name[0] ? cl->server_name : NULL) < 0) {
      fail(cl, s->error, 0);
      return;
    }
    cl->step = CL_TLS;
    tls_step(cl);
    return;
  }
  cl->step = CL_REQUEST;
  send_request(cl);
}

/* Try the addresses from next_addr on; the last error is reported when none answers. */
static void try_connect(ws_client *cl) {
  ws_stream *s = cl->s;
  while (cl->next_addr < cl->naddrs) {
    int i = cl->next_addr++;
    int fd = socket(cl->addrs[i].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { cl->last_errno = errno; continue; }
    int r;
    do r = connect(fd, (const struct sockaddr *)&cl->addrs[i], cl->addrlens[i]); while (r < 0 && errno == EINTR);
    if (r == 0 || errno == EINPROGRESS) {
      s->fd = fd;
      if (r == 0) { connected(cl); return; }
      cl->step = CL_CONNECT;
      set_io(cl, EV_WRITE);
      return;
    }
    cl->last_errno = errno;
    close(fd);
  }
  int e = cl->last_errno ? cl->last_errno : ECONNREFUSED;
  fail(cl, strerror(e), e);
}

static void connect_done(ws_client *cl) {
  ws_stream *s = cl->s;
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err == 0) { connected(cl); return; }
  cl->last_errno = err;
  set_io(cl, 0);
  close(s->fd);
  s->fd = -1;
  try_connect(cl);
}

static void send_request(ws_client *cl) {
  ws_stream *s = cl->s;
  ws_stream_flush(s); /* on EAGAIN it polls for writability itself */
  if (s->phase != WS_PH_HEAD) return;
  if (ws_stream_buffered(s) == 0) {
    cl->step = CL_RESPONSE;
    read_response(cl);
  }
}

/* The response head is in s->hs->head (head_len bytes, then what came after it): the stream takes
 * over; its own timer callback ends HEAD_READY at the same deadline. */
static void head_ready(ws_client *cl, size_t head_len) {
  ws_stream *s = cl->s;
  double left = cl->deadline - ws_loop_now(s->loop);
  s->hs->head_len = (uint32_t)head_len;
  s->phase = WS_PH_HEAD_READY;
  cl->step = CL_DONE;
  s->cold->on_finish = NULL; /* set by ws_client_start */
  release(cl);
  set_io(cl, 0);
  give_back(cl);
  ws_stream_set_deadline(s, left > 0 ? left : 0.);
  ws_stream_update_io(s);
  const ws_hooks *h = ws_loop_hooks(s->loop);
  if (h->stream_event) h->stream_event(s, WS_SEV_READ);
}

/* A refusal (any status but 101) is read with its body, so the application can see what the
 * server said: Content-Length bytes, a chunked body up to its last chunk, or else up to the
 * end of the connection; at most WS_REFUSAL_BODY_MAX bytes (the rest is not waited for). */
static int refusal_complete(const ws_response *r, const uint8_t *body, size_t have) {
  size_t want;
  if (have >= WS_REFUSAL_BODY_MAX) return 1;
  switch (ws_response_content_length(r, WS_REFUSAL_BODY_MAX, &want)) {
  case 1: return have >= want;
  case -1: return 1; /* not a length: take what is here */
  }
  const ws_header *h = ws_response_header(r, "Transfer-Encoding", NULL);
  if (h) /* the last chunk: "0" and an empty line (no trailers expected) */
    return have >= 5 && memcmp(body + have - 5, "0\r\n\r\n", 5) == 0;
  return 0; /* until the end of the connection */
}

static void read_response(ws_client *cl) {
  ws_stream *s = cl->s;
  size_t max = cl->cfg.max_header_bytes ? cl->cfg.max_header_bytes : WS_DEFAULT_MAX_HEADER_BYTES;
  ws_stream_hs *hs = ws_stream_hs_get(s);
  if (!hs) { fail(cl, "out of memory", 0); return; }
  for (;;) {
    size_t cap = cl->head_len ? cl->head_len + WS_REFUSAL_BODY_MAX : max + WS_HEAD_SLACK;
    uint8_t *p = ws_buf_reserve(&hs->head, cl->head_len ? 1 : 1024, cap); /* a body: to the last byte */
    if (!p && cl->head_len) { head_ready(cl, cl->head_len); return; } /* a refusal's body: enough */
    if (!p) { fail(cl, "handshake response too large", 0); return; }
    size_t avail = hs->head.cap - hs->head.len;
    ssize_t n = s->tp->read(s, p, avail);
    if (n == 0 && cl->head_len) { head_ready(cl, cl->head_len); return; } /* the body ends here */
    if (n == 0) { fail(cl, "connection closed before the handshake response", 0); return; }
    if (n < 0) {
      if (errno != EAGAIN) {
        if (cl->head_len) { head_ready(cl, cl->head_len); return; }
        fail(cl, s->error ? s->error : strerror(errno), s->error ? 0 : errno);
        return;
      }
      set_io(cl, EV_READ | s->tp_wait);
      return;
    }
    ws_buf_commit(&hs->head, (size_t)n);
    ws_response r;
    memset(&r, 0, sizeof r);
    /* a refusal's head is parsed again as it is (its body may be longer than max) */
    size_t parse_len = cl->head_len ? cl->head_len : ws_buf_size(&hs->head);
    int rc = ws_response_parse(&r, (const char *)ws_buf_begin(&hs->head), parse_len, max);
    if (rc >= 0 && r.status == 101) { head_ready(cl, (size_t)rc); return; }
    if (rc >= 0) {
      cl->head_len = (size_t)rc;
      if (refusal_complete(&r, ws_buf_begin(&hs->head) + rc, ws_buf_size(&hs->head) - (size_t)rc)) {
        head_ready(cl, (size_t)rc);
        return;
      }
    } else if (rc == WS_ERROR) {
      char buf[160];
      snprintf(buf, sizeof buf, "invalid handshake response: %s", r.error ? r.error : "malformed");
      fail(cl, ws_tls_intern(buf, "invalid handshake response"), 0);
      return;
    }
    if ((size_t)n < avail && !(s->tp->pending && s->tp->pending(s))) {
      set_io(cl, EV_READ | s->tp_wait);
      return;
    }
  }
}

/* ---- watchers ---- */

static void client_io(struct ev_loop *ev, ev_io *w, int revents) {
  ws_client *cl = w->data;
  (void)ev;
  if (!cl || cl->s->phase != WS_PH_HEAD) return;
  switch (cl->step) {
  case CL_CONNECT: connect_done(cl); break;
  case CL_TLS: tls_step(cl); break;
  case CL_REQUEST: send_request(cl); break;
  case CL_RESPONSE:
    if ((revents & EV_WRITE) && ws_stream_buffered(cl->s)) ws_stream_flush(cl->s);
    if (cl->s->phase == WS_PH_HEAD) read_response(cl);
    break;
  default: break;
  }
}

static void got_addresses(ws_client *cl, const struct addrinfo *res) {
  cl->next_addr = 0;
  cl->naddrs = ws_dns_addresses(res, cl->addrs, cl->addrlens, WS_CLIENT_ADDRS);
}

static void dns_failed(ws_client *cl, int gai) {
  char buf[160];
  snprintf(buf, sizeof buf, "dns: %s", gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
  fail(cl, ws_tls_intern(buf, "dns: lookup failed"), 0);
}

static void client_timer(struct ev_loop *ev, ev_timer *w, int revents) {
  ws_client *cl = w->data;
  (void)ev; (void)revents;
  if (!cl || cl->s->phase != WS_PH_HEAD) return;
  double now = ws_loop_now(cl->s->loop);
  if (cl->step == CL_RESOLVE && cl->dns) {
    int rc = ws_dns_status(cl->dns);
    if (rc != EAI_INPROGRESS) {
      struct ws_dns *d = cl->dns;
      cl->dns = NULL;
      if (rc != 0) { ws_dns_drop(d); dns_failed(cl, rc); return; }
      got_addresses(cl, ws_dns_result(d));
      ws_dns_drop(d);
      arm_timer(cl, -1); /* from now on only the deadline */
      try_connect(cl);
      return;
    }
    if (now < cl->deadline) {
      cl->poll = cl->poll * 2 > WS_DNS_POLL_MAX ? WS_DNS_POLL_MAX : cl->poll * 2;
      arm_timer(cl, cl->poll);
      return;
    }
  }
  if (now < cl->deadline) { arm_timer(cl, -1); return; }
  switch (cl->step) {
  case CL_RESOLVE: fail(cl, "dns: lookup timed out", ETIMEDOUT); break;
  case CL_CONNECT: fail(cl, "connect timed out", ETIMEDOUT); break;
  case CL_TLS: fail(cl, "tls: handshake timed out", ETIMEDOUT); break;
  default: fail(cl, "handshake timed out", ETIMEDOUT); break;
  }
}

/* ---- start ---- */

static int is_literal(const char *host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int ws_client_start(ws_client *cl, ws_stream *s, const char *host, int port, struct ws_tls_ctx *tls,
                    const char *server_name, double timeout) {
  ev_io *io = WS_EV_IO(s);
  ev_timer *t = (ev_timer *)(void *)&cl->timer;
  ws_dns_reap();
  cl->s = s;
  if (strlen(host) > WS_CLIENT_HOST_MAX || (server_name && strlen(server_name) > WS_CLIENT_HOST_MAX)) {
    s->error = "host name too long";
    return -1;
  }
  if (!ws_stream_cold_get(s)) {
    s->error = "out of memory";
    return -1;
  }
  strcpy(cl->host, host);
  strcpy(cl->server_name, server_name ? server_name : host);
  cl->port = port;
  if (tls) ws_tls_ctx_ref(tls);
  cl->tls = tls;
  s->cfg = &cl->cfg;
  s->phase = WS_PH_HEAD;
  s->cold->on_finish = client_finished;
  cl->io_cb = (ws_client_fn)ev_cb(io);
  ev_set_cb(io, client_io);
  ev_timer_init(t, client_timer, 0., 0.);
  io->data = t->data = cl;
  cl->deadline = ws_loop_now(s->loop) + (timeout > 0 ? timeout : 10.);

  char service[8];
  snprintf(service, sizeof service, "%d", port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
  if (cl->unix_path) { /* a Unix socket: host only names the server in the request */
    struct sockaddr_un *un = (struct sockaddr_un *)&cl->addrs[0];
    const char *path = cl->unix_path;
    size_t len = strlen(path);
    cl->unix_path = NULL; /* not kept: the caller's string */
    if (len == 0 || len >= sizeof un->sun_path) { fail(cl, "socket path too long", EINVAL); return -1; }
    memset(un, 0, sizeof *un);
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, len + 1);
    cl->naddrs = 1;
    cl->next_addr = 0;
    cl->addrlens[0] = sizeof *un;
    arm_timer(cl, -1);
    try_connect(cl);
    return s->phase == WS_PH_DONE ? -1 : 0;
  }
  if (is_literal(host)) {
    /* A literal address needs no lookup: answered from the text at once. Every name, even
     * "localhost", goes through the asynchronous resolver so nsswitch can never block the loop. */
    struct addrinfo *res = NULL;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) { dns_failed(cl, rc); return -1; }
    got_addresses(cl, res);
    freeaddrinfo(res);
    arm_timer(cl, -1);
    try_connect(cl);
    return s->phase == WS_PH_DONE ? -1 : 0;
  }
  int rc;
  struct ws_dns *d = ws_dns_start(host, service, &hints, &rc);
  if (!d && rc == 0) { fail(cl, "out of memory", ENOMEM); return -1; }
  if (!d) { dns_failed(cl, rc); return -1; }
  cl->dns = d; /* polled from the timer */
  cl->step = CL_RESOLVE;
  cl->poll = WS_DNS_POLL_MIN;
  arm_timer(cl, cl->poll);
  return 0;
}
