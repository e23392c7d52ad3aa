/* One accepted connection on the loop: reads the request head, hands it to the binding,
 * then feeds frames to ws_conn and keeps complete messages in an inbox until the handler
 * takes them. Control frames are handled as they arrive (ws_conn answers pings and closes),
 * so a handler that is busy elsewhere still answers pings. Deadlines (open, ping, idle,
 * close) share one deadline, in the loop's heap, because a connection is in one phase at a time. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ws_handshake.h"
#include "ws_rt_internal.h"
#include "ws_topic.h"

#define WS_HEAD_SLACK 4096  /* bytes a client may send after its head before the upgrade */
#define WS_INBOX_HDR 8      /* u32 length, u8 opcode, 3 bytes of padding */
#define WS_LINGER_MAX 2.0   /* how long to wait for the peer's FIN after our last byte */
/* Reading also pauses when the inbox holds this many bytes (besides max_queue messages): large
 * messages then go to the handler a few at a time, and the inbox stays a reused buffer
 * instead of growing to max_queue times the message size. */
#define WS_INBOX_BYTES (256u * 1024u)
/* A message larger than this that arrives with the inbox empty is not copied into it: it stays
 * in ws_conn's buffers (valid until the next ws_conn_next) and reading pauses until the handler
 * has taken it. Smaller ones are copied so that a whole batch reaches the handler at once. */
#define WS_INBOX_DIRECT (WS_POOL_BUF / 2)
/* Streams read into the loop's one receive buffer and parse there (ws_loop_recv_take), so a
 * busy connection keeps no input buffer of its own, except for the trailing part of a frame
 * or messages its handler has not taken yet. Input up to this size is moved into the loop's
 * buffer before the next read; a larger partial frame is completed in the stream's own. */
#define WS_CARRY_MAX WS_POOL_BUF
/* The most input the loop's buffer holds for one stream (carried bytes plus one read), so that
 * what a stream may have to keep of it stays within ws_conn's input limit (a held frame plus
 * one read). */
#define WS_READ_MAX (64u * 1024u)
/* See return_input: at most the loop's receive buffer (256 KiB) stays with a connection for
 * this much input kept, where a copy would take up to ws_conn's input limit (about 128 KiB). */
#define WS_KEEP_LENT (32u * 1024u)
/* A message at least this large, sent while nothing waits to be written, goes to the socket at
 * once from the caller's memory (its header and payload in one writev) instead of being copied
 * into the output buffer first; what the socket does not take is queued as usual. */
#define WS_SEND_DIRECT WS_POOL_BUF

static void on_io(struct ev_loop *ev, ev_io *w, int revents);
static void after_input(ws_stream *s);
static void after_input_at(ws_stream *s, double now);
static void read_frames(ws_stream *s);
static void commit_failure(ws_stream *s);
static int inbox_push(ws_stream *s, int opcode, const uint8_t *p, size_t n);
static void request_drop(ws_stream *s);
static void hs_free(ws_stream *s);
static void input_to_pool(ws_stream *s);

static void emit(ws_stream *s, int ev) {
  const ws_hooks *h = ws_loop_hooks(s->loop);
  if (h->stream_event) h->stream_event(s, ev);
}

void ws_stream_init(ws_stream *s, ws_loop *loop) {
  ws_conn_options o;
  memset(s, 0, sizeof *s);
  s->fd = -1;
  s->loop = loop;
  s->tp = &ws_transport_plain;
  s->phase = WS_PH_NEW;
  s->latency = -1.f;
  ev_io_init(WS_EV_IO(s), on_io, -1, 0);
  ws_conn_options_default(&o, WS_ROLE_SERVER);
  o.defer_fail = 1; /* see after_input */
  ws_conn_init(&s->ws, &o);
}

void ws_stream_update_io(ws_stream *s) {
  struct ev_loop *ev = ws_loop_ev(s->loop);
  int events = 0;
  if (s->fd >= 0) {
    switch (s->phase) {
    case WS_PH_HEAD:
    case WS_PH_OPEN:
    case WS_PH_CLOSING:
    case WS_PH_FINISH:
      if (!(s->flags & WS_SF_PAUSED)) events |= EV_READ;
      break;
    case WS_PH_HEAD_READY:
      if (s->hs && s->hs->body_want) events |= EV_READ;
      break;
    default:
      break;
    }
    /* A TLS write that waits for readability must not poll for writability meanwhile. */
    if (s->wait_write && !(s->tp_wait & EV_READ)) events |= EV_WRITE;
    events |= s->tp_wait; /* TLS: the other direction an SSL call waits for */
  }
  if (events == s->io_events) return;
  ev_io *io = WS_EV_IO(s);
  if (ev_is_active(io)) ev_io_stop(ev, io);
  s->io_events = (uint8_t)events;
  if (events) {
    ev_io_set(io, s->fd, events);
    ev_io_start(ev, io);
  }
}

void ws_stream_set_deadline(ws_stream *s, double after) {
  if (after >= 0) ws_loop_deadline_set(s->loop, s, ws_loop_now(s->loop) + after);
  else ws_loop_deadline_clear(s->loop, s);
}

static void set_timer(ws_stream *s, double after) { ws_stream_set_deadline(s, after); }

/* Close the socket: the one way into WS_PH_DONE. */
static void finish_socket(ws_stream *s, int notify) {
  struct ev_loop *ev = ws_loop_ev(s->loop);
  if (s->phase == WS_PH_DONE) return;
  if (ev_is_active(WS_EV_IO(s))) ev_io_stop(ev, WS_EV_IO(s));
  s->io_events = 0;
  ws_loop_deadline_clear(s->loop, s);
  if (ev_is_pending(WS_EV_IO(s))) ev_clear_pending(ev, WS_EV_IO(s));
  ws_loop_unmark_dirty(s->loop, s);
  if (s->cold && s->cold->on_finish) {
    void (*hook)(ws_stream *) = s->cold->on_finish;
    s->cold->on_finish = NULL;
    hook(s);
  }
  if (s->tp && s->tp->free) s->tp->free(s);
  s->tls = NULL;
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  if (s->flags & WS_SF_HELD) { /* the handler may still take it: out of ws_conn's buffers */
    s->flags &= (uint8_t)~WS_SF_HELD;
    ws_stream_act *a = s->act;
    const uint8_t *held = a->held;
    a->held = NULL; /* before the push: a failed one gives the active part back */
    s->inbox_count--;
    inbox_push(s, a->held_op, held, a->held_len); /* on failure the message is lost with the socket */
  }
  ws_topic_leave_all(s); /* a closed connection is no subscriber: publish never sees it again */
  ws_wqueue_free(s);
  ws_stream_act_put(s);
  ws_conn_free(&s->ws);
  request_drop(s);
  if (s->close_code == 0) s->close_code = WS_CLOSE_ABNORMAL;
  if (s->last_activity > 0) { /* it was open (see count_open) */
    ws_counters *ctr = ws_stream_counters(s);
    ctr->open--;
    ws_code_count_add(ctr->closes, s->fail_code ? s->fail_code : s->close_code, 1);
  }
  int was_new = s->phase == WS_PH_NEW;
  s->phase = WS_PH_DONE;
  if (s->listener) {
    ws_listener *l = s->listener;
    s->listener = NULL;
    ws_listener_release(l, s);
  }
  if (notify && !was_new) emit(s, WS_SEV_CLOSED);
}

void ws_stream_destroy(ws_stream *s) {
  finish_socket(s, 0);
  if (s->act) { /* freed, not given back: the loop may be gone already */
    ws_buf_free(&s->act->inbox);
    free(s->act);
    s->act = NULL;
  }
  s->inbox_count = 0;
  hs_free(s); /* and the request parsed after the socket's end */
  if (s->cold) {
    free(s->cold->close_reason);
    free(s->cold->ping_wait);
    free(s->cold);
    s->cold = NULL;
  }
}

ws_stream_cold *ws_stream_cold_get(ws_stream *s) {
  if (!s->cold && (s->cold = malloc(sizeof *s->cold))) { /* not calloc: see ws_stream_hs_get */
    static const ws_stream_cold none;
    *s->cold = none;
  }
  return s->cold;
}

void ws_stream_abort(ws_stream *s, const char *why) {
  if (s->phase == WS_PH_DONE) return;
  if (why && !s->error) s->error = why;
  finish_socket(s, 1);
}

void ws_stream_fail_io(ws_stream *s, int err) {
  if (!s->err) s->err = err;
  ws_stream_abort(s, strerror(err));
}

/* Our last bytes are queued: write them, half-close, wait for the peer's FIN (bounded). */
static void enter_finish(ws_stream *s) {
  double t = s->cfg ? s->cfg->close_timeout : WS_LINGER_MAX;
  s->phase = WS_PH_FINISH;
  s->flags &= (uint8_t)~WS_SF_PAUSED; /* from now on input is only drained */
  set_timer(s, t > 0 ? t : WS_LINGER_MAX);
  ws_stream_update_io(s);
  ws_loop_mark_dirty(s->loop, s);
}

void ws_stream_on_flushed(ws_stream *s, int all) {
  if ((s->flags & WS_SF_WANT_DRAIN) && s->cfg && ws_stream_buffered(s) <= s->cfg->send_low) {
    s->flags &= (uint8_t)~WS_SF_WANT_DRAIN;
    emit(s, WS_SEV_WRITE);
  }
  /* The handler has taken the messages that came before a protocol error and had its turn to
   * answer them (flushes follow the handlers' runs): now the failure's close goes out. */
  if (ws_conn_fail_pending(&s->ws) && !s->inbox_count && s->phase != WS_PH_DONE) {
    commit_failure(s);
    return;
  }
  if (!all || s->phase == WS_PH_DONE) return;
  ws_pool_give(s->loop, ws_conn_output(&s->ws));
  if (s->phase == WS_PH_FINISH && !(s->flags & WS_SF_SHUT)) {
    s->flags |= WS_SF_SHUT;
    s->tp->shutdown(s);
    double t = s->cfg && s->cfg->close_timeout < WS_LINGER_MAX ? s->cfg->close_timeout : WS_LINGER_MAX;
    set_timer(s, t);
  }
}

void ws_stream_want_drain(ws_stream *s) { s->flags |= WS_SF_WANT_DRAIN; }

/* ---- the request head ---- */

static void head_failed(ws_stream *s, int status, const char *why) {
  s->error = why;
  ws_code_count_add(ws_stream_counters(s)->refused, (unsigned)status, 1);
  s->phase = WS_PH_HEAD_READY; /* so that respond accepts it */
  ws_stream_respond(s, status, NULL, 0, NULL, 0, 0);
  emit(s, WS_SEV_READ);
}

/* The TLS handshake failed, and OpenSSL has written its alert. Closing now would answer the
 * peer's next bytes with a reset (a TLS 1.3 client sends its last handshake records and its
 * request before it learns of the refusal), and a reset can cost the peer the alert, or fail
 * its next write: half-close instead and drain until the peer's FIN, bounded, as after a
 * refusal. The binding learns of the failure at once. */
static void transport_failed(ws_stream *s) {
  if (!s->error) s->error = "transport handshake failed";
  ws_stream_counters(s)->tls_failures++;
  if (s->tp->free) s->tp->free(s);
  s->tp = &ws_transport_plain; /* from now on the bytes are only read and dropped */
  enter_finish(s);
  emit(s, WS_SEV_READ);
}

/* A plain HTTP request came to a TLS port: answer it in plain HTTP, as nginx does, then close
 * (draining the request until the peer's FIN, as after any refusal). */
static void plain_http_to_tls(ws_stream *s) {
  static const char body[] = "The plain HTTP request was sent to HTTPS port\n";
  if (s->tp->free) s->tp->free(s);
  s->tp = &ws_transport_plain;
  s->phase = WS_PH_HEAD_READY; /* so that respond accepts it */
  ws_stream_respond(s, 400, NULL, 0, body, sizeof body - 1, 0);
  emit(s, WS_SEV_READ);
}

/* The parsed request, on the heap while the handshake asks for it (ws_request is some 3 KiB:
 * an open connection keeps only the head's bytes), in memory the loop lends
 * (ws_loop_request_take) while it runs; once the socket is closed, the loop may be gone. */
static ws_request *request_new(ws_stream *s) {
  return s->phase != WS_PH_DONE ? ws_loop_request_take(s->loop) : malloc(sizeof(ws_request));
}

static void request_free(ws_stream *s, ws_request *req) {
  if (s->phase != WS_PH_DONE) ws_loop_request_give(s->loop, req);
  else free(req);
}

/* req, parsed from the head, becomes the request kept. An upgrade request is checked at once,
 * so that every question about it gets the same answer. */
static void request_keep(ws_stream *s, ws_request *req) {
  ws_stream_hs *hs = s->hs; /* there: the request was parsed from its head */
  request_drop(s);
  hs->req = req;
  if (ws_request_is_upgrade(req)) ws_request_check_upgrade(req);
}

static void request_drop(ws_stream *s) {
  if (!s->hs || !s->hs->req) return;
  request_free(s, s->hs->req);
  s->hs->req = NULL;
}

ws_stream_hs *ws_stream_hs_get(ws_stream *s) {
  if (!s->hs && (s->hs = malloc(sizeof *s->hs))) { /* not calloc: malloc's thread cache is quicker */
    static const ws_stream_hs none;
    *s->hs = none;
  }
  return s->hs;
}

/* The head, its parse and the handshake's state go. */
static void hs_free(ws_stream *s) {
  if (!s->hs) return;
  request_drop(s);
  ws_buf_free(&s->hs->head);
  free(s->hs);
  s->hs = NULL;
}

const ws_request *ws_stream_request(ws_stream *s) {
  ws_request *req;
  ws_stream_hs *hs = s->hs;
  if (!hs) return NULL;
  if (hs->req || hs->head_len == 0 || !hs->head.data) return hs->req;
  if (!(req = request_new(s))) return NULL;
  ws_request_init(req);
  if (ws_request_parse(req, (const char *)ws_buf_begin(&hs->head), hs->head_len, (size_t)hs->head_len + 1) < 0) {
    request_free(s, req);
    return NULL;
  }
  request_keep(s, req);
  return hs->req;
}

void ws_stream_request_release(ws_stream *s) {
  if (s->phase != WS_PH_HEAD_READY) request_drop(s);
}

static void read_head(ws_stream *s) {
  size_t max = s->cfg ? s->cfg->max_header_bytes : WS_DEFAULT_MAX_HEADER_BYTES;
  if (s->tp->handshake && !(s->flags & WS_SF_TLS_DONE)) {
    int r = s->tp->handshake(s);
    if (r == WS_TP_PLAIN_HTTP) { plain_http_to_tls(s); return; }
    if (r < 0) { transport_failed(s); return; }
    if (r == 0) { ws_stream_update_io(s); return; }
    s->flags |= WS_SF_TLS_DONE;
  }
  for (;;) {
    /* A head usually comes in one read: read it on the stack and keep an exact copy, so a
     * burst of handshakes leaves no half-used buffers between the connections' memory. */
    uint8_t first[2048];
    ws_stream_hs *hs = s->hs;
    int direct = !hs || hs->head.data == NULL;
    uint8_t *p = direct ? first : ws_buf_reserve(&hs->head, 1024, max + WS_HEAD_SLACK);
    if (!p) { head_failed(s, 431, "request head too large"); return; }
    size_t avail = direct ? sizeof first : hs->head.cap - hs->head.len;
    ssize_t n = s->tp->read(s, p, avail);
    if (n == 0) { ws_stream_abort(s, "connection closed during the handshake"); return; }
    if (n < 0) {
      if (errno != EAGAIN) ws_stream_fail_io(s, errno);
      else ws_stream_update_io(s); /* TLS may wait for writability */
      return;
    }
    if (direct) {
      if (!(hs = ws_stream_hs_get(s)) || !(hs->head.data = malloc((size_t)n))) {
        ws_stream_abort(s, "out of memory");
        return;
      }
      memcpy(hs->head.data, first, (size_t)n);
      hs->head.head = 0;
      hs->head.len = hs->head.cap = (uint32_t)n;
      if ((size_t)n == avail) continue; /* more may wait: read on into the buffer */
    } else {
      ws_buf_commit(&hs->head, (size_t)n);
    }
    ws_request *req = request_new(s);
    if (!req) {
      ws_stream_abort(s, "out of memory");
      return;
    }
    ws_request_init(req);
    int r = ws_request_parse(req, (const char *)ws_buf_begin(&hs->head), ws_buf_size(&hs->head), max);
    if (r >= 0) {
      hs->head_len = (uint32_t)r;
      request_keep(s, req);
      s->phase = WS_PH_HEAD_READY;
      ws_stream_update_io(s); /* no more reading until the binding decides */
      emit(s, WS_SEV_READ);
      return;
    }
    int status = req->status;
    const char *error = req->error; /* a static string */
    request_free(s, req);
    if (r == WS_ERROR) { head_failed(s, status ? status : 400, error); return; }
    if ((size_t)n < avail) return; /* drained; more comes with the next readiness */
  }
}

int ws_stream_head(ws_stream *s, const char **p, size_t *n) {
  if (s->phase == WS_PH_HEAD) read_head(s); /* the bytes are often there already */
  if (s->phase == WS_PH_HEAD_READY) {
    *p = (const char *)ws_buf_begin(&s->hs->head);
    *n = s->hs->head_len;
    return 1;
  }
  return s->phase == WS_PH_HEAD ? 0 : -1;
}

/* The connection is open: counted until finish_socket, which knows it by last_activity (set
 * here, never 0 on the loop's clock). */
static void count_open(ws_stream *s) {
  ws_counters *ctr = ws_stream_counters(s);
  ctr->open++;
  ctr->accepted++;
  s->last_recv = s->last_activity = ws_loop_now(s->loop);
}

static void arm_keepalive(ws_stream *s) {
  const ws_server_cfg *c = s->cfg;
  double next = -1, now = ws_loop_now(s->loop);
  if (!c) return;
  if (c->ping_interval > 0)
    next = (s->flags & WS_SF_PING_OUT) ? s->ping_sent + c->ping_timeout : s->last_recv + c->ping_interval;
  if (c->idle_timeout > 0) {
    double d = s->last_activity + c->idle_timeout;
    if (next < 0 || d < next) next = d;
  }
  set_timer(s, next < 0 ? -1 : (next > now ? next - now : 0.));
}

int ws_stream_upgrade(ws_stream *s, const char *key, size_t key_len, const char *protocol,
                      const char *extensions, const ws_header *extra, size_t nextra) {
  if (s->phase != WS_PH_HEAD_READY) return -1;
  ws_buf *out = ws_conn_output(&s->ws);
  ws_pool_take(s->loop, out);
  if (ws_response_accept(out, key, key_len, protocol, extensions, extra, nextra) < 0) {
    ws_stream_abort(s, "out of memory");
    return -1;
  }
  ws_conn_open(&s->ws);
  s->phase = WS_PH_OPEN;
  ws_stream_hs *hs = s->hs; /* HEAD_READY: the head is there */
  size_t rest = ws_buf_size(&hs->head) - hs->head_len;
  if (rest && ws_conn_feed(&s->ws, ws_buf_begin(&hs->head) + hs->head_len, rest) < 0) {
    ws_stream_abort(s, "out of memory");
    return -1;
  }
  /* Keep only the head (conn.request is built from it on demand, until the binding lets it
   * go with ws_stream_drop_head), at its exact size; the parse goes (ws_stream_request makes
   * another if asked). */
  request_drop(s);
  if (hs->head.head) {
    memmove(hs->head.data, hs->head.data + hs->head.head, hs->head_len);
    hs->head.head = 0;
  }
  hs->head.len = hs->head_len;
  hs->body_want = 0;
  uint8_t *shrunk = realloc(hs->head.data, hs->head_len ? hs->head_len : 1);
  if (shrunk) { hs->head.data = shrunk; hs->head.cap = hs->head_len; }
  count_open(s);
  arm_keepalive(s);
  ws_stream_update_io(s);
  /* Write the 101 now: its pooled buffer goes back at once, so a burst of handshakes borrows
   * one buffer instead of one per connection until the loop's next flush. */
  ws_stream_flush(s);
  if (s->phase == WS_PH_DONE) return 0;
  if (ws_conn_output_size(&s->ws) || (s->act && s->act->seg_head)) ws_loop_mark_dirty(s->loop, s);
  if (rest) after_input(s);
  if (s->phase == WS_PH_OPEN && s->tp->pending && s->tp->pending(s)) read_frames(s);
  return 0;
}

void ws_stream_drop_head(ws_stream *s) {
  if (s->phase < WS_PH_OPEN) return; /* still needed: the handshake or a plain request's answer */
  hs_free(s);
}

int ws_stream_open_client(ws_stream *s) {
  if (s->phase != WS_PH_HEAD_READY) return -1;
  ws_conn_open(&s->ws);
  s->phase = WS_PH_OPEN;
  ws_stream_hs *hs = s->hs; /* HEAD_READY: the response head is there */
  size_t rest = ws_buf_size(&hs->head) - hs->head_len;
  if (rest && ws_conn_feed(&s->ws, ws_buf_begin(&hs->head) + hs->head_len, rest) < 0) {
    ws_stream_abort(s, "out of memory");
    return -1;
  }
  hs_free(s); /* the response head was read by the binding already */
  count_open(s);
  arm_keepalive(s);
  ws_stream_update_io(s);
  if (ws_conn_output_size(&s->ws)) ws_loop_mark_dirty(s->loop, s);
  if (rest) after_input(s);
  if (s->phase == WS_PH_OPEN && s->tp->pending && s->tp->pending(s)) read_frames(s);
  return 0;
}

/* ---- plain HTTP requests: a body, an answer given later ---- */

static void read_body(ws_stream *s) {
  ws_stream_hs *hs = s->hs; /* HEAD_READY: the head is there */
  for (;;) {
    size_t have = ws_buf_size(&hs->head) - hs->head_len;
    if (have >= hs->body_want) {
      hs->body_want = 0;
      ws_stream_update_io(s);
      emit(s, WS_SEV_READ);
      return;
    }
    size_t need = hs->body_want - have;
    const uint8_t *was = hs->head.data;
    uint8_t *p = ws_buf_reserve(&hs->head, need, 0);
    if (!p) { ws_stream_abort(s, "out of memory"); return; }
    if (hs->head.data != was) request_drop(s); /* its pointers went with the old memory */
    ssize_t n = s->tp->read(s, p, need);
    if (n == 0) { ws_stream_abort(s, "connection closed during the request body"); return; }
    if (n < 0) {
      if (errno != EAGAIN) ws_stream_fail_io(s, errno);
      else ws_stream_update_io(s);
      return;
    }
    ws_buf_commit(&hs->head, (size_t)n);
  }
}

int ws_stream_body(ws_stream *s, size_t want, const uint8_t **p) {
  if (s->phase != WS_PH_HEAD_READY) return -1;
  if (want > UINT32_MAX) return -1;
  ws_stream_hs *hs = s->hs; /* HEAD_READY: the head is there */
  if (ws_buf_size(&hs->head) - hs->head_len >= want) {
    hs->body_want = 0;
    *p = ws_buf_begin(&hs->head) + hs->head_len;
    return 1;
  }
  hs->body_want = (uint32_t)want;
  read_body(s); /* the bytes are often there already; else wait for readability */
  if (s->phase != WS_PH_HEAD_READY) return -1;
  if (hs->body_want) return 0;
  *p = ws_buf_begin(&hs->head) + hs->head_len;
  return 1;
}

int ws_stream_defer(ws_stream *s, double seconds) {
  if (s->phase != WS_PH_HEAD_READY) return -1;
  s->deferred = 1;
  request_drop(s); /* a deferred request may wait long: its answer parses the head again */
  set_timer(s, seconds > 0 ? seconds : 0.);
  return 0;
}

int ws_stream_respond(ws_stream *s, int status, const ws_header *extra, size_t nextra,
                      const char *body, size_t body_len, int head_only) {
  if (s->phase != WS_PH_HEAD_READY) return -1;
  if (s->hs) s->hs->body_want = 0;
  s->deferred = 0;
  if ((head_only ? ws_response_status_head : ws_response_status)(ws_conn_output(&s->ws), status, extra, nextra,
                                                                  body, body_len) < 0) {
    ws_stream_abort(s, "out of memory");
    return -1;
  }
  enter_finish(s);
  return 0;
}

/* ---- frames and messages ---- */

static int inbox_push(ws_stream *s, int opcode, const uint8_t *p, size_t n) {
  uint8_t hdr[WS_INBOX_HDR] = {0};
  uint32_t len = (uint32_t)n;
  ws_stream_act *a;
  if (n > UINT32_MAX || !(a = ws_stream_act_get(s))) return -1;
  ws_buf *inbox = &a->inbox;
  if (!inbox->data) {
    /* The first message of a batch: size the inbox for the messages read behind it (input
     * takes at least 6 bytes of header per message, the inbox 8), as many as max_queue lets
     * in if they are of this size. Growing it halfway would copy the batch so far. */
    size_t ahead = ws_conn_input_size(&s->ws), one = WS_INBOX_HDR + n;
    size_t more = s->cfg && s->cfg->max_queue ? (size_t)(s->cfg->max_queue - 1) * one : ahead;
    ahead += ahead / 3;
    size_t want = one + (ahead < more ? ahead : more);
    if (want > WS_INBOX_BYTES) want = one > WS_INBOX_BYTES ? one : WS_INBOX_BYTES;
    if (want <= WS_POOL_BUF) ws_pool_take(s->loop, inbox);
    else ws_pool_grow(s->loop, inbox, want);
  } else {
    ws_pool_grow(s->loop, inbox, WS_INBOX_HDR + n);
  }
  uint8_t *dst = ws_buf_reserve(inbox, WS_INBOX_HDR + n, 0);
  if (!dst) {
    ws_stream_act_put(s);
    return -1;
  }
  memcpy(hdr, &len, 4);
  hdr[4] = (uint8_t)opcode;
  memcpy(dst, hdr, WS_INBOX_HDR);
  if (n) memcpy(dst + WS_INBOX_HDR, p, n);
  ws_buf_commit(inbox, WS_INBOX_HDR + n);
  s->inbox_count++;
  return 0;
}

int ws_stream_peek(ws_stream *s, const uint8_t **p, size_t *n, int *opcode) {
  uint32_t len;
  if (!s->inbox_count) return 0;
  ws_stream_act *a = s->act;
  if (s->flags & WS_SF_HELD) {
    *p = a->held;
    *n = a->held_len;
    *opcode = a->held_op;
    return 1;
  }
  const uint8_t *h = ws_buf_begin(&a->inbox);
  memcpy(&len, h, 4);
  *opcode = h[4];
  *p = h + WS_INBOX_HDR;
  *n = len;
  return 1;
}

void ws_stream_drop(ws_stream *s) {
  uint32_t len;
  if (!s->inbox_count) return;
  ws_stream_act *a = s->act;
  if (s->flags & WS_SF_HELD) { /* ws_conn drops its bytes at the next ws_conn_next */
    s->flags &= (uint8_t)~WS_SF_HELD;
    a->held = NULL;
    s->inbox_count = 0;
    ws_stream_act_put(s);
  } else {
    memcpy(&len, ws_buf_begin(&a->inbox), 4);
    ws_buf_consume(&a->inbox, WS_INBOX_HDR + (size_t)len);
    if (--s->inbox_count == 0) {
      ws_pool_give(s->loop, &a->inbox);
      ws_stream_act_put(s);
    }
  }
  /* The last message before a protocol error is taken: fail at the next flush (on_flushed). */
  if (!s->inbox_count && ws_conn_fail_pending(&s->ws)) ws_loop_mark_dirty(s->loop, s);
  if ((s->flags & WS_SF_PAUSED) && (!s->cfg || s->inbox_count < s->cfg->max_queue) &&
      ws_stream_inbox_bytes(s) < WS_INBOX_BYTES) {
    s->flags &= (uint8_t)~WS_SF_PAUSED;
    after_input(s); /* messages already received wait in ws_conn's input */
    ws_stream_update_io(s);
    /* Plaintext a TLS transport already decrypted makes the socket no more readable. */
    if (s->phase == WS_PH_OPEN && s->tp->pending && s->tp->pending(s)) read_frames(s);
  }
  /* A held message was the input's last bytes: its buffer (the loop's receive buffer the stream
   * kept) goes back to the pool now, not at the connection's next read. The next large message
   * on any connection reads into it while it is still in the cache, and a thousand connections
   * with a large message each in turn share a few buffers instead of keeping one each. */
  if ((s->phase == WS_PH_OPEN || s->phase == WS_PH_CLOSING) && ws_conn_input_storage(&s->ws) &&
      ws_conn_input_idle(&s->ws))
    input_to_pool(s);
}

static void keep_reason(ws_stream *s, const uint8_t *p, size_t n) {
  if (n == 0) { /* the usual close: a code alone, whose reason reads "" (no memory taken for it) */
    if (s->cold) {
      free(s->cold->close_reason);
      s->cold->close_reason = NULL;
    }
    return;
  }
  ws_stream_cold *x = ws_stream_cold_get(s);
  char *r = x ? malloc(n + 1) : NULL;
  if (!r) return;
  if (n) memcpy(r, p, n);
  r[n] = 0;
  free(x->close_reason);
  x->close_reason = r;
}

/* Fail the connection for the protocol error ws_conn reported earlier: its close goes out
 * after whatever the handler queued, and the handler learns of the end. */
static void commit_failure(ws_stream *s) {
  ws_conn_fail_commit(&s->ws);
  enter_finish(s);
  emit(s, WS_SEV_READ);
}

/* A pong: the round trip of our automatic ping (ping_sent is 0 once answered) or of a ping
 * a caller waits for (its payload identifies it; it answers every earlier one too). */
static WS_COLD void on_pong(ws_stream *s, const ws_event *ev) {
  double now = ws_loop_now(s->loop);
  ws_ping_wait *pw = s->cold ? s->cold->ping_wait : NULL;
  if (pw && pw->answered < pw->sent && ev->len == pw->len && (!ev->len || memcmp(ev->data, pw->data, ev->len) == 0)) {
    pw->answered = pw->sent;
    pw->answered_at = now;
    s->latency = (float)(now - pw->sent_at);
    emit(s, WS_SEV_PONG);
  }
  if (s->ping_sent > 0) {
    s->latency = (float)(now - s->ping_sent);
    s->ping_sent = 0;
  }
}

/* Turn the input received so far into inbox messages and protocol actions. A read can hold
 * messages and, after them, a frame that breaks the protocol: the messages were received,
 * so the handler gets them and may answer them before the failure's close goes out
 * (ws_conn's defer_fail; committed once the inbox is empty, or after close_timeout). */
static void after_input(ws_stream *s) { after_input_at(s, -1); }

/* now: the loop's clock when the caller read it already, else negative. */
static void after_input_at(ws_stream *s, double now) {
  ws_event ev;
  ws_stream_act *a;
  uint32_t max_queue = s->cfg && s->cfg->max_queue ? s->cfg->max_queue : UINT32_MAX;
  int any = 0, got = 0;
  if (s->phase != WS_PH_OPEN && s->phase != WS_PH_CLOSING) return;
  ws_counters *ctr = ws_stream_counters(s);
  while (s->inbox_count < max_queue && ws_stream_inbox_bytes(s) < WS_INBOX_BYTES &&
         !(s->flags & WS_SF_HELD) && ws_conn_next(&s->ws, &ev)) {
    switch (ev.type) {
    case WS_EV_MESSAGE:
      if (s->inbox_count == 0 && ev.len > WS_INBOX_DIRECT && ev.len <= UINT32_MAX &&
          (a = ws_stream_act_get(s)) != NULL) {
        s->flags |= WS_SF_HELD;
        a->held = ev.data;
        a->held_len = (uint32_t)ev.len;
        a->held_op = (uint8_t)ev.opcode;
        s->inbox_count = 1;
      } else if (inbox_push(s, ev.opcode, ev.data, ev.len) < 0) {
        s->fail_code = WS_CLOSE_INTERNAL;
        s->error = "out of memory";
        ws_conn_close(&s->ws, WS_CLOSE_INTERNAL, NULL, 0);
      }
      got = 1;
      ctr->msgs_in++;
      ctr->bytes_in += ev.len;
      break;
    case WS_EV_PONG:
      s->flags &= (uint8_t)~WS_SF_PING_OUT;
      on_pong(s, &ev);
      break;
    case WS_EV_CLOSE:
      s->close_code = (uint16_t)ev.code;
      keep_reason(s, ev.data, ev.len);
      any = 1;
      break;
    case WS_EV_ERROR:
      s->fail_code = (uint16_t)ev.code;
      s->error = ev.error;
      if (s->inbox_count) {
        double t = s->cfg && s->cfg->close_timeout > 0 ? s->cfg->close_timeout : 10.;
        set_timer(s, t); /* a handler that never takes them does not hold the failure up */
      } else {
        ws_conn_fail_commit(&s->ws);
      }
      any = 1;
      break;
    default:
      break;
    }
    if (ws_conn_state(&s->ws) == WS_STATE_CLOSED) break;
  }
  if (got) {
    s->last_activity = now >= 0 ? now : ws_loop_now(s->loop); /* once per batch of messages */
    any = 1;
  }
  if ((s->inbox_count >= max_queue || ws_stream_inbox_bytes(s) >= WS_INBOX_BYTES || (s->flags & WS_SF_HELD)) &&
      !(s->flags & WS_SF_PAUSED)) {
    /* TCP backpressure: the handler is behind. The read watcher stays on until the socket
     * turns readable meanwhile (read_frames stops it then): a handler that takes the message
     * before the next bytes come, as an echo does, costs no epoll_ctl to stop and start it. */
    s->flags |= WS_SF_PAUSED;
  }
  if (ws_conn_output_size(&s->ws)) ws_loop_mark_dirty(s->loop, s);
  if (ws_conn_state(&s->ws) == WS_STATE_CLOSED) {
    enter_finish(s);
    any = 1;
  }
  if (any) emit(s, WS_SEV_READ);
}

/* Put the loop's receive buffer in place of the stream's input (the bytes it holds move
 * along, at the same offsets for ws_conn): the lent memory, or NULL when the stream reads into
 * its own. */
static const void *lend_input(ws_stream *s) {
  ws_buf *r;
  if (ws_conn_input_size(&s->ws) > WS_CARRY_MAX || (s->flags & WS_SF_HELD)) return NULL;
  if (!(r = ws_loop_recv_take(s->loop))) return NULL;
  ws_buf mine = *r;
  if (ws_conn_input_move(&s->ws, &mine) < 0) { /* cannot fail: it has room for any carry */
    ws_loop_recv_back(s->loop, r);
    return NULL;
  }
  ws_pool_give(s->loop, &mine); /* the stream's own memory, emptied */
  return ws_conn_input_storage(&s->ws);
}

/* Give the loop its buffer back; bytes not parsed yet (a partial frame, messages waiting for
 * the handler, a held message) move to a pooled buffer of the stream's own. More than
 * WS_KEEP_LENT of them (a large message, held or in part) keep the loop's buffer instead: the
 * stream takes it over, reads the rest of the message into it and hands it out from there, and
 * the loop takes another from the pool for its next read. Copying them cost a copy of every
 * large message, and one more when the copy had to grow for the rest of its frame. */
static void return_input(ws_stream *s, const void *lent) {
  if (ws_conn_input_storage(&s->ws) != lent || ws_conn_input_size(&s->ws) > WS_KEEP_LENT) {
    /* ws_conn freed or regrew it, or keeps a large message: the memory is the stream's now */
    ws_loop_recv_back(s->loop, NULL);
    return;
  }
  ws_buf own;
  ws_buf_init(&own);
  /* Closed (the close frame read, or a failure), nothing held in the input: what it still
   * holds is never read again, so the loop gets its buffer back without a copy. */
  if (ws_conn_state(&s->ws) == WS_STATE_CLOSED && !(s->flags & WS_SF_HELD) && ws_conn_input_release(&s->ws, &own) == 0) {
    ws_loop_recv_back(s->loop, &own);
    return;
  }
  size_t used = ws_conn_input_size(&s->ws);
  uintptr_t from = (uintptr_t)ws_conn_input_data(&s->ws);
  if (used) ws_pool_grow(s->loop, &own, used);
  if (ws_conn_input_move(&s->ws, &own) < 0) {
    ws_pool_give(s->loop, &own); /* no memory for a copy: the stream keeps this one, the loop makes another */
    ws_loop_recv_back(s->loop, NULL);
    return;
  }
  if (used && (s->flags & WS_SF_HELD)) {
    uintptr_t held = (uintptr_t)s->act->held;
    if (held >= from && held < from + used) /* it lives in the input */
      s->act->held = ws_conn_input_data(&s->ws) + (held - from);
  }
  ws_loop_recv_back(s->loop, &own); /* own holds the loop's buffer now */
}

/* The stream's input memory: pooled when it has none, back to the pool when idle. */
static void input_from_pool(ws_stream *s) {
  ws_buf b;
  ws_buf_init(&b);
  ws_pool_take(s->loop, &b);
  if (ws_conn_input_move(&s->ws, &b) < 0) ws_pool_give(s->loop, &b);
}

static void input_to_pool(ws_stream *s) {
  ws_buf none;
  ws_buf_init(&none);
  ws_conn_input_move(&s->ws, &none); /* nothing to copy: cannot fail */
  ws_pool_give(s->loop, &none);
}

static void read_frames(ws_stream *s) {
  for (;;) {
    if (s->flags & WS_SF_PAUSED) { /* the watcher may still be on (see after_input) */
      ws_stream_update_io(s);
      break;
    }
    size_t avail = 0;
    const void *lent = lend_input(s);
    if (!lent && !ws_conn_input_storage(&s->ws)) input_from_pool(s);
    uint8_t *p = ws_conn_input_space(&s->ws, &avail);
    if (!p) {
      if (lent) return_input(s, lent);
      ws_stream_abort(s, "out of memory");
      return;
    }
    if (lent) {
      size_t room = WS_READ_MAX - ws_conn_input_size(&s->ws); /* carried <= WS_CARRY_MAX */
      if (avail > room) avail = room;
    }
    ssize_t n = s->tp->read(s, p, avail);
    if (n <= 0) {
      int err = n < 0 ? errno : 0;
      if (lent) return_input(s, lent);
      if (n == 0) {
        ws_stream_abort(s, s->close_code ? NULL : "connection lost");
        return;
      }
      if (err != EAGAIN) { ws_stream_fail_io(s, err); return; }
      ws_stream_update_io(s); /* TLS may wait for writability */
      break;
    }
    ws_conn_input_commit(&s->ws, (size_t)n);
    double now = ws_loop_now(s->loop);
    s->last_recv = now;
    s->flags &= (uint8_t)~WS_SF_PING_OUT; /* any byte proves the peer is alive */
    after_input_at(s, now);
    if (lent) return_input(s, lent);
    if (s->phase != WS_PH_OPEN && s->phase != WS_PH_CLOSING) break;
    if ((size_t)n < avail && !(s->tp->pending && s->tp->pending(s))) break; /* drained */
  }
  /* Idle connections keep no input buffer. */
  if (s->phase != WS_PH_DONE && ws_conn_input_storage(&s->ws) && ws_conn_input_idle(&s->ws)) input_to_pool(s);
}

/* After our close, or during a refusal: read and discard until the peer's FIN. */
static void drain_input(ws_stream *s) {
  uint8_t scratch[4096];
  for (int i = 0; i < 16; i++) {
    ssize_t n = s->tp->read(s, scratch, sizeof scratch);
    if (n == 0) { finish_socket(s, 1); return; }
    if (n < 0) {
      if (errno != EAGAIN) finish_socket(s, 1);
      return;
    }
  }
}

static void on_io(struct ev_loop *ev, ev_io *w, int revents) {
  ws_stream *s = WS_CONTAINER(w, ws_stream, io);
  int cross = s->tp_wait;
  (void)ev;
  /* TLS: a write waiting for readability goes on when readable, a read waiting for
   * writability when writable. */
  if ((revents & EV_WRITE) || (revents & cross & EV_READ)) {
    ws_stream_flush(s);
    if (s->phase == WS_PH_DONE) return;
  }
  if (revents & cross & EV_WRITE) revents |= EV_READ;
  if (!(revents & EV_READ)) return;
  switch (s->phase) {
  case WS_PH_HEAD: read_head(s); break;
  case WS_PH_HEAD_READY: if (s->hs && s->hs->body_want) read_body(s); break;
  case WS_PH_OPEN:
  case WS_PH_CLOSING:
    /* Streams that kept the loop's receive buffer for a large message since the last prepare
     * (when the handlers take their messages) are at the bound: a stream with no input of its
     * own reads at the next iteration instead, when buffers are back in the pool. Else a
     * thousand readable connections with a large message each kept a thousand 256 KiB buffers
     * at once, most of them fresh memory past what the pool keeps (page faults on every
     * read). The socket stays readable, so the poll reports it again; a TLS stream may hold
     * decrypted bytes the poll does not see, and always reads; a paused stream only stops its
     * watcher there (see after_input). */
    if ((s->flags & WS_SF_PAUSED) || ws_conn_input_size(&s->ws) || s->tp != &ws_transport_plain ||
        !ws_loop_recv_spent(s->loop))
      read_frames(s);
    break;
  case WS_PH_FINISH: drain_input(s); break;
  default: break;
  }
}

void ws_stream_on_deadline(ws_stream *s) {
  const ws_server_cfg *c = s->cfg;
  double now = ws_loop_now(s->loop);
  switch (s->phase) {
  case WS_PH_HEAD:
  case WS_PH_HEAD_READY:
    ws_stream_abort(s, "handshake timed out");
    return;
  case WS_PH_CLOSING:
    ws_stream_abort(s, "close timed out");
    return;
  case WS_PH_FINISH:
    finish_socket(s, 1);
    return;
  case WS_PH_OPEN:
    if (ws_conn_fail_pending(&s->ws)) { commit_failure(s); return; }
    break;
  default:
    return;
  }
  if (!c) return;
  if (s->flags & WS_SF_PAUSED) {
    s->last_recv = now; /* we are not reading: no verdict */
  } else {
    /* libev runs expired timers before the reads of the same iteration: after a stall (a busy
     * handler, a loaded machine) a pong or message that came in time is read first, so it
     * counts before any ping or idle verdict. */
    read_frames(s);
    if (s->phase != WS_PH_OPEN) return;
  }
  if (c->ping_interval > 0) {
    if (s->flags & WS_SF_PING_OUT) {
      if (now >= s->ping_sent + c->ping_timeout) {
        s->fail_code = WS_CLOSE_INTERNAL;
        s->error = "ping timeout";
        ws_stream_counters(s)->ping_timeouts++;
        ws_conn_close(&s->ws, WS_CLOSE_INTERNAL, "ping timeout", 12);
        enter_finish(s);
        emit(s, WS_SEV_READ);
        return;
      }
    } else if (now >= s->last_recv + c->ping_interval) {
      ws_pool_take(s->loop, ws_conn_output(&s->ws));
      ws_conn_ping(&s->ws, NULL, 0);
      s->flags |= WS_SF_PING_OUT;
      s->ping_sent = now;
      ws_stream_flush(s); /* at once: ping_timeout counts from here, not from a later flush */
      if (s->phase != WS_PH_OPEN) return;
    }
  }
  if (c->idle_timeout > 0 && now >= s->last_activity + c->idle_timeout) {
    s->error = "idle timeout";
    ws_stream_close(s, WS_CLOSE_NORMAL, "idle timeout", 12);
    emit(s, WS_SEV_READ);
    return;
  }
  arm_keepalive(s);
}

/* ---- sending and closing ---- */

/* See WS_SEND_DIRECT: 1 sent (written or queued), 0 not this way, -1 refused or failed. */
static int send_direct(ws_stream *s, int opcode, const void *p, size_t n, unsigned flags) {
  uint8_t hdr[WS_FRAME_HEADER_MAX];
  int hl = ws_conn_send_header(&s->ws, opcode, n, flags, hdr);
  if (hl <= 0) return hl;
  struct iovec iov[2];
  iov[0].iov_base = hdr;
  iov[0].iov_len = (size_t)hl;
  iov[1].iov_base = (void *)(uintptr_t)p;
  iov[1].iov_len = n;
  /* A failure other than a full socket is met again, and reported, by the next flush. */
  ssize_t w = s->tp->writev(s, iov, 2);
  size_t done = w > 0 ? (size_t)w : 0, total = (size_t)hl + n;
  if (done == total) return 1;
  ws_wqueue_room(s, total - done);
  int r = 0;
  if (done < (size_t)hl) r = ws_buf_append(ws_conn_output(&s->ws), hdr + done, (size_t)hl - done, 0);
  if (r == 0) {
    size_t from = done > (size_t)hl ? done - (size_t)hl : 0;
    r = ws_buf_append(ws_conn_output(&s->ws), (const uint8_t *)p + from, n - from, 0);
  }
  if (r < 0) { /* part of a frame went out: the connection cannot go on */
    ws_stream_abort(s, "out of memory");
    return -1;
  }
  return 1;
}

int ws_stream_send(ws_stream *s, int opcode, const void *p, size_t n, unsigned flags) {
  if (s->phase != WS_PH_OPEN) return -1;
  int direct = 0;
  if (n >= WS_SEND_DIRECT && s->tp == &ws_transport_plain && s->fd >= 0 && !(s->act && s->act->seg_head) &&
      !ws_conn_output_size(&s->ws) && (direct = send_direct(s, opcode, p, n, flags)) < 0)
    return -1;
  if (!direct) {
    ws_wqueue_room(s, n + WS_FRAME_HEADER_MAX);
    if (ws_conn_send(&s->ws, opcode, p, n, flags) < 0) return -1;
  }
  ws_counters *ctr = ws_stream_counters(s);
  ctr->msgs_out += ~flags & WS_SEND_MORE; /* a fragmented message counts at its last frame */
  ctr->bytes_out += n;
  s->flags |= WS_SF_SENT;
  ws_loop_mark_dirty(s->loop, s);
  return 0;
}

int ws_stream_send_fragment(ws_stream *s, int opcode, const void *p, size_t n, int fin) {
  if (s->phase != WS_PH_OPEN) return -1;
  ws_wqueue_room(s, n + WS_FRAME_HEADER_MAX);
  if (ws_conn_send_fragment(&s->ws, opcode, p, n, fin) < 0) return -1;
  s->flags |= WS_SF_SENT;
  ws_loop_mark_dirty(s->loop, s);
  return 0;
}

int ws_stream_ping(ws_stream *s, const void *p, size_t n) {
  if (s->phase != WS_PH_OPEN) return -1;
  ws_pool_take(s->loop, ws_conn_output(&s->ws));
  if (ws_conn_ping(&s->ws, p, n) < 0) return -1;
  ws_loop_mark_dirty(s->loop, s);
  return 0;
}

long long ws_stream_ping_wait(ws_stream *s, const void *p, size_t n) {
  uint8_t made[8];
  if (s->phase != WS_PH_OPEN || ws_control_len_check(n)) return -1;
  ws_stream_cold *x = ws_stream_cold_get(s);
  if (!x) return -1;
  if (!x->ping_wait && !(x->ping_wait = calloc(1, sizeof *x->ping_wait))) return -1;
  ws_ping_wait *pw = x->ping_wait;
  if (!p) { /* a payload of our own: "ws" and the sequence number, unique on this connection */
    uint64_t seq = pw->sent + 1;
    made[0] = 'w';
    made[1] = 's';
    for (int i = 7; i >= 2; i--, seq >>= 8) made[i] = (uint8_t)seq;
    p = made;
    n = sizeof made;
  }
  if (ws_stream_ping(s, p, n) < 0) return -1;
  memcpy(pw->data, p, n);
  pw->len = (uint8_t)n;
  pw->sent_at = ws_loop_now(s->loop);
  return (long long)++pw->sent;
}

int ws_stream_pong_seen(const ws_stream *s, long long seq, double *at) {
  const ws_ping_wait *pw = s->cold ? s->cold->ping_wait : NULL;
  if (!pw || seq <= 0 || (uint64_t)seq > pw->answered) return 0;
  *at = pw->answered_at;
  return 1;
}

void ws_stream_close(ws_stream *s, unsigned code, const char *reason, size_t len) {
  switch (s->phase) {
  case WS_PH_HEAD:
  case WS_PH_HEAD_READY:
    ws_stream_abort(s, "closed before the upgrade");
    return;
  case WS_PH_OPEN:
    ws_pool_take(s->loop, ws_conn_output(&s->ws));
    if (ws_conn_fail_pending(&s->ws)) { /* the peer broke the protocol: that close goes out */
      ws_loop_mark_dirty(s->loop, s);
      commit_failure(s);
      return;
    }
    if (ws_conn_close(&s->ws, code, reason, len) < 0) {
      ws_stream_abort(s, ws_conn_error(&s->ws) ? ws_conn_error(&s->ws) : "close failed");
      return;
    }
    ws_loop_mark_dirty(s->loop, s);
    if (ws_conn_state(&s->ws) == WS_STATE_CLOSED) { enter_finish(s); return; }
    s->phase = WS_PH_CLOSING;
    set_timer(s, s->cfg && s->cfg->close_timeout > 0 ? s->cfg->close_timeout : 10.);
    return;
  default:
    return;
  }
}

const char *ws_stream_state_name(const ws_stream *s) {
  switch (s->phase) {
  case WS_PH_NEW:
  case WS_PH_HEAD:
  case WS_PH_HEAD_READY: return "connecting";
  case WS_PH_OPEN: return "open";
  case WS_PH_CLOSING:
  case WS_PH_FINISH: return "closing";
  default: return "closed";
  }
}

void ws_stream_remote_addr(const ws_stream *s, char *out, size_t cap) {
  if (!cap) return;
  out[0] = 0;
  if (s->remote_family == AF_INET || s->remote_family == AF_INET6)
    inet_ntop(s->remote_family, s->remote_ip, out, (socklen_t)cap);
}
