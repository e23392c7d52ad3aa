/* A Redis connection on the loop (see ws_redis.h). The socket, the name lookup
 * (getaddrinfo_a, polled from the timer so no thread of ours and no signal), the writes and
 * the deadlines are ours; hiredis's reader only turns bytes into reply objects. Commands are
 * appended to one output buffer and written once per loop iteration: by a prepare watcher just
 * before the loop polls, or, for commands queued by tasks while the loop's own prepare step
 * runs them, by an idle watcher right after a poll that it keeps from blocking. Only when the
 * socket is full does the io watcher wait for writability. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ws_dns.h"
#include "ws_redis.h"
#include "ws_bus_push.h"
#include "ws_rt_internal.h"
#include "ws_tls.h"

#define DNS_POLL 0.005
#define READ_CHUNK 65536
#define READ_ROUNDS 16      /* reads per wake-up before other sockets get their turn */

typedef struct pending {
  ws_redis_reply_fn cb;
  void *priv;
  double at;               /* when it was queued: its reply is due by at + timeout */
} pending;

struct ws_redis {
  ws_loop *loop;
  ws_redis_cfg cfg;
  char *host, *password, *username, *client_name;
  ev_io io;
  ev_timer timer;
  ev_prepare flush;        /* writes the output before the loop polls ... */
  ev_idle flush_idle;      /* ... or after a poll it does not let block */
  int io_events;           /* what io is started with */
  int wblocked;            /* the socket was full: wait for EV_WRITE */
  ws_tls_ctx *tls;         /* rediss://: the client context (referenced), else NULL */
  char *server_name;
  ws_stream *ts;           /* carries the TLS transport (ws_tls.c works on a stream's fd and state) */
  int tls_busy;            /* the TLS handshake is in progress */
  int fd;
  int state;
  int busy;                /* inside a callback */
  int dead;                /* ws_redis_free was called from a callback */
  unsigned gen;            /* counts closes: a callback sees whether its socket is gone */
  int hs_left;             /* handshake replies still expected */
  redisReader *reader;
  size_t reply_bytes;      /* bytes fed since the last complete reply */
  ws_buf out;
  pending *q;              /* ring of commands awaiting replies */
  size_t qhead, qlen, qcap;
  double deadline;         /* connect deadline */
  double ping_due;         /* push mode: a PING's reply is due by then (0: none out) */
  struct ws_dns *dns;
  struct sockaddr_storage addrs[8];
  socklen_t addrlens[8];
  int naddrs, next_addr, last_errno;
  const char *error;
};

static char *dup_or_null(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

static void io_cb(struct ev_loop *ev, ev_io *w, int revents);
static void timer_cb(struct ev_loop *ev, ev_timer *w, int revents);
static void flush_cb(struct ev_loop *ev, ev_prepare *w, int revents);
static void flush_idle_cb(struct ev_loop *ev, ev_idle *w, int revents);

ws_redis *ws_redis_new(ws_loop *loop, const ws_redis_cfg *cfg) {
  ws_redis *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->loop = loop;
  r->cfg = *cfg;
  r->fd = -1;
  r->host = dup_or_null(cfg->host ? cfg->host : "127.0.0.1");
  r->password = dup_or_null(cfg->password);
  r->username = dup_or_null(cfg->username);
  r->client_name = dup_or_null(cfg->client_name);
  if (cfg->tls) {
    r->server_name = dup_or_null(cfg->server_name ? cfg->server_name : cfg->host ? cfg->host : "127.0.0.1");
    r->ts = calloc(1, sizeof *r->ts);
  }
  if (!r->host || (cfg->password && !r->password) || (cfg->username && !r->username) ||
      (cfg->client_name && !r->client_name) || (cfg->tls && (!r->server_name || !r->ts))) {
    free(r->host); free(r->password); free(r->username); free(r->client_name);
    free(r->server_name); free(r->ts);
    free(r);
    return NULL;
  }
  r->cfg.host = r->host;
  r->cfg.password = r->password;
  r->cfg.username = r->username;
  r->cfg.client_name = r->client_name;
  r->cfg.server_name = r->server_name;
  if (cfg->tls) {
    r->tls = cfg->tls;
    ws_tls_ctx_ref(r->tls);
    r->ts->fd = -1;
    r->ts->tp = &ws_transport_plain;
  }
  if (r->cfg.timeout <= 0) r->cfg.timeout = 2;
  if (r->cfg.max_pending == 0) r->cfg.max_pending = 100000;
  if (r->cfg.max_output == 0) r->cfg.max_output = 16u << 20;
  if (r->cfg.max_reply == 0) r->cfg.max_reply = 64u << 20;
  ev_io_init(&r->io, io_cb, -1, 0);
  ev_timer_init(&r->timer, timer_cb, 0., 0.);
  ev_prepare_init(&r->flush, flush_cb);
  ev_idle_init(&r->flush_idle, flush_idle_cb);
  r->io.data = r->timer.data = r->flush.data = r->flush_idle.data = r;
  ws_buf_init(&r->out);
  return r;
}

int ws_redis_state(const ws_redis *r) { return r ? r->state : WS_REDIS_IDLE; }
size_t ws_redis_pending(const ws_redis *r) { return r->qlen; }
const char *ws_redis_error(const ws_redis *r) { return r->error; }

static void set_io(ws_redis *r, int events) {
  struct ev_loop *ev = ws_loop_ev(r->loop);
  if (r->fd < 0) events = 0;
  if (ev_is_active(&r->io)) {
    if (r->io_events == events) return;
    ev_io_stop(ev, &r->io);
  }
  r->io_events = events;
  if (events) {
    ev_io_set(&r->io, r->fd, events);
    ev_io_start(ev, &r->io);
  }
}

static void want_io(ws_redis *r) {
  if (r->fd < 0) return;
  if (r->tls_busy) { set_io(r, r->ts->want ? r->ts->want : EV_READ); return; }
  if (r->state == WS_REDIS_CONNECTING && r->naddrs && !r->reader) { set_io(r, EV_WRITE); return; }
  int tls_wait = r->ts && r->ts->tls ? r->ts->tp_wait : 0; /* a read waiting for writability */
  set_io(r, EV_READ | ((r->wblocked && ws_buf_size(&r->out)) || (tls_wait & EV_WRITE) ? EV_WRITE : 0));
}

/* Output is waiting: write it before the next poll (or on EV_WRITE when the socket is full). */
static void want_flush(ws_redis *r) {
  if (r->fd < 0 || r->wblocked || ev_is_active(&r->flush)) return;
  ev_prepare_start(ws_loop_ev(r->loop), &r->flush);
  ev_idle_start(ws_loop_ev(r->loop), &r->flush_idle);
}

static void stop_flush(ws_redis *r) {
  struct ev_loop *ev = ws_loop_ev(r->loop);
  if (ev_is_active(&r->flush)) ev_prepare_stop(ev, &r->flush);
  if (ev_is_active(&r->flush_idle)) ev_idle_stop(ev, &r->flush_idle);
}

/* The timer: the connect deadline, a name lookup's polling, the oldest reply's deadline or a
 * PING's, whichever comes first. */
static void arm(ws_redis *r) {
  struct ev_loop *ev = ws_loop_ev(r->loop);
  double now = ws_loop_now(r->loop), due = 0;
  if (r->state == WS_REDIS_CONNECTING) {
    due = r->deadline;
    if (r->dns && now + DNS_POLL < due) due = now + DNS_POLL;
  } else if (r->state == WS_REDIS_UP) {
    if (r->qlen) due = r->q[r->qhead].at + r->cfg.timeout;
    if (r->ping_due && (!due || r->ping_due < due)) due = r->ping_due;
  }
  if (ev_is_active(&r->timer)) ev_timer_stop(ev, &r->timer);
  if (!due) return;
  ev_timer_set(&r->timer, due > now ? due - now : 0., 0.);
  ev_timer_start(ev, &r->timer);
}

static void fail_pending(ws_redis *r, const char *err, const char *code) {
  while (r->qlen) {
    pending p = r->q[r->qhead];
    r->qhead = (r->qhead + 1) % r->qcap;
    r->qlen--;
    if (p.cb) p.cb(r, NULL, err, code, p.priv);
  }
  r->qhead = 0;
}

static void really_free(ws_redis *r) {
  ws_tls_ctx_unref(r->tls);
  free(r->ts);
  free(r->server_name);
  free(r->q);
  free(r->host); free(r->password); free(r->username); free(r->client_name);
  free(r);
}

void ws_redis_close(ws_redis *r, const char *why, const char *err, const char *code, int quiet) {
  struct ev_loop *ev = ws_loop_ev(r->loop);
  int was = r->state;
  if (was == WS_REDIS_IDLE && r->fd < 0) return;
  r->state = WS_REDIS_IDLE;
  r->gen++;
  if (why) r->error = why;
  ws_dns_drop(r->dns);
  r->dns = NULL;
  set_io(r, 0);
  if (ev_is_active(&r->timer)) ev_timer_stop(ev, &r->timer);
  stop_flush(r);
  r->wblocked = 0;
  r->tls_busy = 0;
  if (r->ts && r->ts->tls) r->ts->tp->free(r->ts); /* no close_notify: the socket goes now */
  if (r->ts) { r->ts->fd = -1; r->ts->tp = &ws_transport_plain; r->ts->error = NULL; }
  if (r->fd >= 0) { close(r->fd); r->fd = -1; }
  if (r->reader && !r->busy) { redisReaderFree(r->reader); r->reader = NULL; }
  ws_buf_free(&r->out);
  r->ping_due = 0;
  r->hs_left = 0;
  r->busy++;
  fail_pending(r, err ? err : "bus unavailable", code ? code : "unavailable");
  if (!quiet && r->cfg.on_state) r->cfg.on_state(r, 0, r->error ? r->error : "closed", r->cfg.user);
  r->busy--;
  if (r->dead && !r->busy) { /* freed by a callback; every caller returns at once after a close */
    if (r->reader) redisReaderFree(r->reader);
    really_free(r);
  }
}

void ws_redis_free(ws_redis *r) {
  if (!r) return;
  ws_redis_close(r, NULL, NULL, NULL, 1);
  if (r->busy) { r->dead = 1; return; }
  if (r->reader) redisReaderFree(r->reader);
  really_free(r);
}

static void fail(ws_redis *r, const char *why) { ws_redis_close(r, why, NULL, NULL, 0); }

/* ---- writing ---- */

static int put(ws_redis *r, const void *p, size_t n) { return ws_buf_append(&r->out, p, n, 0); }

static int put_len(ws_redis *r, char type, size_t n) {
  char b[32];
  int k = snprintf(b, sizeof b, "%c%zu\r\n", type, n);
  return put(r, b, (size_t)k);
}

static int queue_reply(ws_redis *r, ws_redis_reply_fn cb, void *priv) {
  if (r->qlen == r->qcap) {
    size_t cap = r->qcap ? r->qcap * 2 : 64;
    pending *q = malloc(cap * sizeof *q);
    if (!q) return -1;
    for (size_t i = 0; i < r->qlen; i++) q[i] = r->q[(r->qhead + i) % r->qcap];
    free(r->q);
    r->q = q;
    r->qcap = cap;
    r->qhead = 0;
  }
  pending *p = &r->q[(r->qhead + r->qlen) % r->qcap];
  p->cb = cb;
  p->priv = priv;
  p->at = ws_loop_now(r->loop);
  r->qlen++;
  return 0;
}

/* Appending may move the unsent bytes to the front of the buffer (ws_buf_reserve), so a
 * rollback keeps a size, not an end offset. */
static void rollback(ws_redis *r, size_t size) { r->out.len = r->out.head + size; }

static int format(ws_redis *r, int argc, const ws_redis_arg *argv) {
  size_t mark = ws_buf_size(&r->out), bytes = 0;
  for (int i = 0; i < argc; i++) bytes += argv[i].n + argv[i].n2 + 32;
  if (ws_buf_size(&r->out) + bytes > r->cfg.max_output) return -1;
  int bad = put_len(r, '*', (size_t)argc);
  for (int i = 0; i < argc && !bad; i++) {
    bad |= put_len(r, '$', argv[i].n + argv[i].n2);
    if (argv[i].n) bad |= put(r, argv[i].p, argv[i].n);
    if (argv[i].n2) bad |= put(r, argv[i].p2, argv[i].n2);
    bad |= put(r, "\r\n", 2);
  }
  if (bad) { rollback(r, mark); return -1; }
  return 0;
}

static int command(ws_redis *r, int argc, const ws_redis_arg *argv, ws_redis_reply_fn cb, void *priv,
                   int expect_reply, const char **why) {
  if (r->cfg.push) expect_reply = 0;
  if (expect_reply && r->qlen >= r->cfg.max_pending) {
    if (why) *why = "too many commands waiting for Redis";
    return -1;
  }
  size_t mark = ws_buf_size(&r->out);
  if (format(r, argc, argv) < 0 || (expect_reply && queue_reply(r, cb, priv) < 0)) {
    rollback(r, mark);
    if (why) *why = "bus output buffer full";
    return -1;
  }
  if (expect_reply && r->qlen == 1) arm(r);
  want_flush(r);
  return 0;
}

int ws_redis_command(ws_redis *r, int argc, const ws_redis_arg *argv, ws_redis_reply_fn cb, void *priv,
                     const char **why) {
  if (r->state != WS_REDIS_UP) {
    if (why) *why = "bus unavailable";
    return -1;
  }
  return command(r, argc, argv, cb, priv, 1, why);
}

int ws_redis_ping(ws_redis *r) {
  if (r->state != WS_REDIS_UP) return -1;
  if (r->ping_due) return 0; /* one at a time */
  ws_redis_arg a = { "PING", 4, NULL, 0 };
  if (command(r, 1, &a, NULL, NULL, 0, NULL) < 0) return -1;
  r->ping_due = ws_loop_now(r->loop) + r->cfg.timeout;
  arm(r);
  return 0;
}

/* The socket, or TLS over it: >0 bytes, 0 end (reads), -1 with errno (EAGAIN: wait). */
static ssize_t io_read(ws_redis *r, void *p, size_t n) {
  if (r->ts && r->ts->tls) return r->ts->tp->read(r->ts, p, n);
  ssize_t k;
  do k = recv(r->fd, p, n, 0); while (k < 0 && errno == EINTR);
  return k;
}

static ssize_t io_write(ws_redis *r, const void *p, size_t n) {
  if (r->ts && r->ts->tls) {
    struct iovec iov = { (void *)(uintptr_t)p, n };
    return r->ts->tp->writev(r->ts, &iov, 1);
  }
  return send(r->fd, p, n, MSG_NOSIGNAL);
}

static const char *io_error(ws_redis *r, const char *plain) {
  return r->ts && r->ts->error ? r->ts->error : plain;
}

static void flush_out(ws_redis *r) {
  r->wblocked = 0;
  while (ws_buf_size(&r->out)) {
    ssize_t n = io_write(r, ws_buf_begin(&r->out), ws_buf_size(&r->out));
    if (n > 0) { ws_buf_consume(&r->out, (size_t)n); continue; }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { r->wblocked = 1; break; }
    fail(r, io_error(r, "connection to Redis lost"));
    return;
  }
  if (ws_buf_size(&r->out) == 0 && r->out.cap > (1u << 20)) ws_buf_free(&r->out);
  want_io(r);
}

static void flush_now(ws_redis *r) {
  stop_flush(r);
  if (r->fd >= 0 && ws_buf_size(&r->out) && !r->wblocked) flush_out(r);
}

static void flush_cb(struct ev_loop *ev, ev_prepare *w, int revents) {
  (void)ev; (void)revents;
  flush_now(w->data);
}

static void flush_idle_cb(struct ev_loop *ev, ev_idle *w, int revents) {
  (void)ev; (void)revents;
  flush_now(w->data);
}

/* ---- reading ---- */

static int is_pong(const redisReply *rep) {
  if (rep->type == REDIS_REPLY_STATUS) return rep->len == 4 && strcasecmp(rep->str, "PONG") == 0;
  return rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 && rep->element[0]->type == REDIS_REPLY_STRING &&
         rep->element[0]->len == 4 && strcasecmp(rep->element[0]->str, "pong") == 0;
}

static void became_up(ws_redis *r) {
  r->state = WS_REDIS_UP;
  r->error = NULL;
  arm(r);
  if (r->cfg.on_state) r->cfg.on_state(r, 1, NULL, r->cfg.user);
}

/* One complete reply: the handshake's, a pong, a push, or the oldest command's. */
static int dispatch(ws_redis *r, redisReply *rep) {
  if (r->hs_left > 0) {
    if (rep->type == REDIS_REPLY_ERROR) {
      static char buf[160];
      snprintf(buf, sizeof buf, "Redis refused the connection: %.120s", rep->str);
      fail(r, buf);
      return 0;
    }
    if (--r->hs_left == 0) became_up(r);
    return 0;
  }
  if (r->cfg.push) {
    if (is_pong(rep)) {
      r->ping_due = 0;
      arm(r);
      return 0;
    }
    if (r->cfg.on_push) r->cfg.on_push(r, rep, r->cfg.user);
    return 0;
  }
  if (r->qlen == 0) { fail(r, "unexpected reply from Redis"); return 0; }
  pending p = r->q[r->qhead];
  r->qhead = (r->qhead + 1) % r->qcap;
  r->qlen--;
  int kept = p.cb ? p.cb(r, rep, NULL, NULL, p.priv) : 0;
  if (r->state == WS_REDIS_UP) arm(r);
  return kept;
}

/* A reply over max_reply: its command fails with "toolarge", the connection goes (the rest
 * of the reply cannot be skipped without reading it). */
static void too_large(ws_redis *r) {
  static const char msg[] = "reply from Redis too large";
  if (!r->cfg.push && r->qlen) {
    pending p = r->q[r->qhead];
    r->qhead = (r->qhead + 1) % r->qcap;
    r->qlen--;
    if (p.cb) p.cb(r, NULL, msg, "toolarge", p.priv);
    if (r->dead || r->state == WS_REDIS_IDLE) return;
  }
  fail(r, msg);
}

static void on_readable(ws_redis *r) {
  char buf[READ_CHUNK];
  /* TLS keeps decrypted bytes no poll reports: read until a short read there. */
  int rounds = r->ts && r->ts->tls ? INT32_MAX : READ_ROUNDS;
  for (int round = 0; round < rounds; round++) {
    ssize_t n = io_read(r, buf, sizeof buf);
    if (n == 0) { fail(r, "Redis closed the connection"); return; }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      fail(r, io_error(r, "connection to Redis lost"));
      return;
    }
    if (redisReaderFeed(r->reader, buf, (size_t)n) != REDIS_OK) { fail(r, "out of memory"); return; }
    r->reply_bytes += (size_t)n;
    for (;;) {
      void *obj = NULL;
      if (redisReaderGetReply(r->reader, &obj) != REDIS_OK) { fail(r, "protocol error from Redis"); return; }
      if (!obj) break;
      size_t left = r->reader->len - r->reader->pos;
      size_t used = r->reply_bytes > left ? r->reply_bytes - left : 0;
      r->reply_bytes = left;
      if (used > r->cfg.max_reply) {
        freeReplyObject(obj);
        too_large(r);
        return;
      }
      unsigned gen = r->gen;
      r->busy++;
      int kept = dispatch(r, obj);
      r->busy--;
      if (!kept) freeReplyObject(obj);
      if (r->dead || r->gen != gen) return; /* freed or closed from a callback: io_cb cleans up */
    }
    if (r->reply_bytes > r->cfg.max_reply) { too_large(r); return; }
    if ((size_t)n < sizeof buf) return;
  }
}

/* ---- connecting ---- */

static void start_handshake(ws_redis *r) {
  int one = 1;
  setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (r->reader) redisReaderFree(r->reader); /* left by a close inside a callback */
  r->reader = ws_bus_reader_new();
  if (!r->reader) { fail(r, "out of memory"); return; }
  r->reply_bytes = 0;
  r->hs_left = 0;
  ws_redis_arg a[3];
  if (r->password) {
    int n = 0;
    a[n++] = (ws_redis_arg){ "AUTH", 4, NULL, 0 };
    if (r->username) a[n++] = (ws_redis_arg){ r->username, strlen(r->username), NULL, 0 };
    a[n++] = (ws_redis_arg){ r->password, strlen(r->password), NULL, 0 };
    if (format(r, n, a) < 0) { fail(r, "out of memory"); return; }
    r->hs_left++;
  }
  if (r->cfg.db > 0) {
    char db[16];
    snprintf(db, sizeof db, "%d", r->cfg.db);
    a[0] = (ws_redis_arg){ "SELECT", 6, NULL, 0 };
    a[1] = (ws_redis_arg){ db, strlen(db), NULL, 0 };
    if (format(r, 2, a) < 0) { fail(r, "out of memory"); return; }
    r->hs_left++;
  }
  if (r->client_name) {
    a[0] = (ws_redis_arg){ "CLIENT", 6, NULL, 0 };
    a[1] = (ws_redis_arg){ "SETNAME", 7, NULL, 0 };
    a[2] = (ws_redis_arg){ r->client_name, strlen(r->client_name), NULL, 0 };
    if (format(r, 3, a) < 0) { fail(r, "out of memory"); return; }
    r->hs_left++;
  }
  want_io(r);
  want_flush(r);
  if (r->hs_left == 0) { became_up(r); return; }
  /* the handshake's replies are due by the connect deadline (arm) */
  arm(r);
}

static void tls_step(ws_redis *r) {
  int rc = r->ts->tp->handshake(r->ts);
  if (rc < 0) { fail(r, r->ts->error ? r->ts->error : "tls: handshake failed"); return; }
  if (rc == 0) { want_io(r); return; }
  r->tls_busy = 0;
  start_handshake(r);
}

/* TCP is connected: TLS first for rediss://, then the Redis handshake. */
static void connected(ws_redis *r) {
  if (!r->tls) { start_handshake(r); return; }
  r->ts->fd = r->fd;
  r->ts->error = NULL;
  if (ws_tls_attach(r->ts, r->tls, r->server_name) < 0) {
    fail(r, r->ts->error ? r->ts->error : "tls: cannot set up the connection");
    return;
  }
  r->tls_busy = 1;
  tls_step(r);
}

static void try_connect(ws_redis *r) {
  while (r->next_addr < r->naddrs) {
    int i = r->next_addr++;
    int fd = socket(r->addrs[i].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { r->last_errno = errno; continue; }
    int rc;
    do rc = connect(fd, (const struct sockaddr *)&r->addrs[i], r->addrlens[i]); while (rc < 0 && errno == EINTR);
    if (rc == 0 || errno == EINPROGRESS) {
      r->fd = fd;
      if (rc == 0) connected(r);
      else set_io(r, EV_WRITE);
      return;
    }
    r->last_errno = errno;
    close(fd);
  }
  int e = r->last_errno ? r->last_errno : ECONNREFUSED;
  fail(r, e == ECONNREFUSED ? "connection to Redis refused" : "cannot connect to Redis");
}

static void connect_done(ws_redis *r) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err == 0) { connected(r); return; }
  r->last_errno = err;
  set_io(r, 0);
  close(r->fd);
  r->fd = -1;
  try_connect(r);
}

static void got_addresses(ws_redis *r, const struct addrinfo *res) {
  r->next_addr = 0;
  r->naddrs = ws_dns_addresses(res, r->addrs, r->addrlens, (int)(sizeof r->addrs / sizeof r->addrs[0]));
}

static void io_cb(struct ev_loop *ev, ev_io *w, int revents) {
  ws_redis *r = w->data;
  (void)ev;
  if (r->fd < 0) return;
  if (r->tls_busy) { tls_step(r); return; }
  if (r->state == WS_REDIS_CONNECTING && !r->reader) { connect_done(r); return; }
  int tls_wait = r->ts && r->ts->tls ? r->ts->tp_wait : 0;
  if ((revents & EV_READ) || ((revents & EV_WRITE) && (tls_wait & EV_WRITE))) {
    unsigned gen = r->gen;
    r->busy++;
    on_readable(r);
    r->busy--;
    if (r->dead) { if (!r->busy) ws_redis_free(r); return; }
    if (r->gen != gen) {
      if (r->reader && !r->busy && r->fd < 0) { redisReaderFree(r->reader); r->reader = NULL; }
      return;
    }
  }
  /* a TLS write may wait for readability (renegotiation): retry it on any event */
  if (((revents & EV_WRITE) || (r->ts && r->wblocked)) && r->fd >= 0 && ws_buf_size(&r->out)) flush_out(r);
  else if (r->fd >= 0) want_io(r);
}

static void timer_cb(struct ev_loop *ev, ev_timer *w, int revents) {
  ws_redis *r = w->data;
  (void)ev; (void)revents;
  double now = ws_loop_now(r->loop);
  if (r->state == WS_REDIS_CONNECTING) {
    if (!r->dns && r->fd < 0) { /* the first step after ws_redis_connect */
      if (r->error) { fail(r, r->error); return; }
      if (r->next_addr == 0 && r->naddrs) { arm(r); try_connect(r); return; }
    }
    if (r->dns) {
      int rc = ws_dns_status(r->dns);
      if (rc != EAI_INPROGRESS) {
        struct ws_dns *d = r->dns;
        r->dns = NULL;
        if (rc != 0) { ws_dns_drop(d); fail(r, "cannot resolve the Redis host"); return; }
        got_addresses(r, ws_dns_result(d));
        ws_dns_drop(d);
        arm(r);
        try_connect(r);
        return;
      }
    }
    if (now >= r->deadline) { fail(r, "connecting to Redis timed out"); return; }
    arm(r);
    return;
  }
  if (r->state != WS_REDIS_UP) return;
  if (r->ping_due && now >= r->ping_due) {
    ws_redis_close(r, "Redis did not answer a PING in time", "timeout", "timeout", 0);
    return;
  }
  if (r->qlen && now >= r->q[r->qhead].at + r->cfg.timeout) {
    ws_redis_close(r, "Redis did not answer in time", "timeout", "timeout", 0);
    return;
  }
  arm(r);
}

static int is_literal(const char *host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int ws_redis_connect(ws_redis *r) {
  if (r->state != WS_REDIS_IDLE || r->dead) return -1;
  ws_dns_reap();
  ws_loop_touch(r->loop);
  r->state = WS_REDIS_CONNECTING;
  r->deadline = ws_loop_now(r->loop) + r->cfg.timeout;
  r->naddrs = r->next_addr = r->last_errno = 0;
  r->error = NULL;
  char service[8];
  snprintf(service, sizeof service, "%d", r->cfg.port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
  if (is_literal(r->host)) {
    struct addrinfo *res = NULL;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (getaddrinfo(r->host, service, &hints, &res) != 0) {
      r->error = "cannot resolve the Redis host";
    } else {
      got_addresses(r, res);
      freeaddrinfo(res);
    }
    goto step;
  }
  struct ws_dns *d = NULL;
  if (strlen(r->host) > WS_DNS_HOST_MAX) {
    r->error = "Redis host name too long";
  } else {
    int rc;
    d = ws_dns_start(r->host, service, &hints, &rc);
    if (!d && rc != 0) r->error = "cannot resolve the Redis host";
  }
  r->dns = d;
  if (d) { arm(r); return 0; }
step: /* connect (or report the failure) from the timer, so on_state never runs inside this call */
  ev_timer_stop(ws_loop_ev(r->loop), &r->timer);
  ev_timer_set(&r->timer, 0., 0.);
  ev_timer_start(ws_loop_ev(r->loop), &r->timer);
  return 0;
}
