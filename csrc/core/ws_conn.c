/* The sans-I/O connection (see ws_conn.h): parses frames incrementally out of `in`,
 * enforces every RFC 6455 receiving rule, and queues what must be written into `out`.
 *
 * Receiving has two paths. A whole message in one small frame (and every control frame) is
 * "held": it stays in `in`, is unmasked and validated in place as its bytes arrive, and is
 * handed out zero-copy. Any other data frame is "streamed": each piece is unmasked straight
 * from `in` into `msg` (or inflated into it) and dropped from `in`, so `in` never holds more
 * than a small frame plus a read, and `msg` never more than max_message. */
#include <string.h>

#include "ws_conn.h"
#include "ws_deflate.h"
#include "ws_random.h"
#include "ws_utf8.h"

#define READ_CHUNK (16u * 1024u)      /* the least free space ws_conn_input_space offers */
#define IN_SLACK (64u * 1024u)        /* room for one read beyond a held frame */
#define HELD_MAX (64u * 1024u)        /* largest single-frame message delivered in place */
#define MSG_KEEP (64u * 1024u)        /* a larger reassembly buffer is freed after use */
#define CONTROL_MAX WS_CONTROL_MAX
#define CLOSE_REASON_MAX 123u

static uint8_t no_bytes[1]; /* what an empty payload points at: never NULL, never written */

/* Error texts are part of the API (the Lua specs assert them). */
static const char E_LEN64[] = "frame length has the top bit set";
static const char E_OPCODE[] = "unknown opcode";
static const char E_RSV[] = "reserved bits set without an extension";
static const char E_RSV1_CONTROL[] = "RSV1 set on a control frame";
static const char E_RSV1_CONT[] = "RSV1 set on a continuation frame";
static const char E_UNMASKED[] = "unmasked frame from client";
static const char E_MASKED[] = "masked frame from server";
static const char E_CONTROL_FRAG[] = "fragmented control frame";
static const char E_CONTROL_LEN[] = "control frame payload over 125 bytes";
static const char E_CONT[] = "continuation frame without a message to continue";
static const char E_INTERLEAVE[] = "new data frame inside a fragmented message";
static const char E_MAX_FRAME[] = "frame over max_frame";
static const char E_MAX_MESSAGE[] = "message over max_message";
static const char E_MAX_FRAGMENTS[] = "message over max_fragments";
static const char E_UTF8[] = "invalid UTF-8 in text message";
static const char E_CLOSE_1BYTE[] = "close frame with a 1-byte payload";
static const char E_CLOSE_CODE[] = "invalid close code";
static const char E_CLOSE_UTF8[] = "invalid UTF-8 in close reason";
static const char E_INFLATE[] = "invalid compressed data";
static const char E_NOMEM[] = "out of memory";
static const char E_RANDOM[] = "random generator failed";
static const char E_NOT_OPEN[] = "connection not open";
static const char E_CLOSE_SENT[] = "close already sent";
static const char E_SEND_OPCODE[] = "not a data opcode";
static const char E_SEND_CONT[] = "no fragmented message to continue";
static const char E_SEND_INTERLEAVE[] = "a fragmented message is being sent";
static const char E_SEND_KIND[] = "a fragment of another kind than its message";
static const char E_REASON_NO_CODE[] = "a close reason needs a code";
static const char E_REASON_LEN[] = "close reason over 123 bytes";
static const char E_REASON_UTF8[] = "close reason is not UTF-8";

void ws_conn_options_default(ws_conn_options *o, int role) {
  o->role = role;
  o->max_message = WS_DEFAULT_MAX_MESSAGE;
  o->max_frame = 0;     /* follows max_message */
  o->max_fragments = 0; /* follows max_message */
  o->auto_pong = 1;
  o->defer_fail = 0;
}

uint32_t ws_conn_max_fragments(uint64_t max_message) {
  uint64_t n = max_message / WS_MIN_FRAGMENT + 1;
  if (n < WS_MIN_MAX_FRAGMENTS) n = WS_MIN_MAX_FRAGMENTS;
  return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

void ws_conn_init(ws_conn *c, const ws_conn_options *o) {
  memset(c, 0, sizeof *c);
  ws_conn_options d;
  if (!o) {
    ws_conn_options_default(&d, WS_ROLE_SERVER);
    o = &d;
  }
  uint64_t max_message = o->max_message, max_frame = o->max_frame;
  /* Zero means "not set": every limit stays bounded. */
  if (!max_message) max_message = WS_DEFAULT_MAX_MESSAGE;
  if (!max_frame) max_frame = max_message;
  if (max_message > SIZE_MAX / 2) max_message = SIZE_MAX / 2;
  c->opt_.max_fragments = o->max_fragments ? o->max_fragments : ws_conn_max_fragments(max_message);
  /* No buffer holds more than WS_BUF_MAX bytes: a larger limit is that one. */
  c->opt_.max_message = max_message > WS_BUF_MAX ? WS_BUF_MAX : (uint32_t)max_message;
  c->opt_.max_frame = max_frame > WS_BUF_MAX ? WS_BUF_MAX : (uint32_t)max_frame;
  c->role_ = o->role == WS_ROLE_CLIENT;
  c->auto_pong_ = o->auto_pong != 0;
  c->defer_fail_ = o->defer_fail != 0;
  ws_buf_init(&c->in_);
  ws_buf_init(&c->msg_);
  ws_buf_init(&c->out_);
  c->state_ = WS_STATE_CONNECTING;
  c->utf8_state_ = WS_UTF8_ACCEPT;
}

void ws_conn_free(ws_conn *c) {
  ws_buf_free(&c->in_);
  ws_buf_free(&c->msg_);
  ws_buf_free(&c->out_);
  c->consumed_pending_ = 0;
  if (c->deflate_) {
    ws_deflate_free(c->deflate_);
    c->deflate_ = NULL;
  }
}

void ws_conn_open(ws_conn *c) {
  if (c->state_ == WS_STATE_CONNECTING) c->state_ = WS_STATE_OPEN;
}

void ws_conn_set_deflate(ws_conn *c, struct ws_deflate *d) {
  if (c->deflate_ && c->deflate_ != d) ws_deflate_free(c->deflate_);
  c->deflate_ = d;
}

size_t ws_conn_deflate_memory(const ws_conn *c) { return ws_deflate_memory(c->deflate_); }

/* ---- helpers ---------------------------------------------------------------------- */

static uint8_t *buf_ptr(const ws_buf *b) { return b->data ? b->data + b->head : no_bytes; }

/* ws_utf8_validate on the text received so far (the state is kept in a byte). */
static inline uint32_t utf8_check(ws_conn *c, const uint8_t *p, size_t n) {
  uint32_t st = c->utf8_state_, r = ws_utf8_validate(&st, p, n);
  c->utf8_state_ = (uint8_t)st;
  return r;
}

static int is_control(unsigned opcode) { return (opcode & 8u) != 0; }

/* Largest single-frame message kept in `in`, and hence the size `in` is allowed to reach. */
static size_t held_cap(const ws_conn *c) {
  uint64_t cap = HELD_MAX;
  if (c->opt_.max_frame < cap) cap = c->opt_.max_frame;
  if (c->opt_.max_message < cap) cap = c->opt_.max_message;
  if (cap < CONTROL_MAX) cap = CONTROL_MAX; /* control frames are always held */
  return (size_t)cap;
}

static size_t in_limit(const ws_conn *c) { return held_cap(c) + WS_FRAME_HEADER_MAX + IN_SLACK; }

/* No more events will come: the peer's close arrived or the connection failed. */
static int finished(const ws_conn *c) { return c->error_code_ || c->close_received_; }

/* Drop what the previous event pointed at. Called on entry to the calls that touch `in` or
 * `msg` (not by the send calls, so a message can be echoed straight from its event). */
static void settle(ws_conn *c) {
  if (c->consumed_pending_) {
    ws_buf_consume(&c->in_, c->consumed_pending_);
    c->consumed_pending_ = 0;
  }
  if (!c->msg_opcode_ && c->msg_.len) { /* a reassembled message was delivered */
    /* With permessage-deflate every compressed message is inflated into `msg`: freeing it
     * leaves an idle connection (in shared mode: no zlib memory either) without buffers. */
    if (c->msg_.cap > MSG_KEEP || c->deflate_) ws_buf_free(&c->msg_);
    else ws_buf_clear(&c->msg_);
  }
  if (finished(c) && c->in_.data) ws_buf_free(&c->in_);
}

ws_conn_tracer ws_conn_trace = NULL;

/* The frame hook's calls, out of line: off, each frame costs one test of ws_conn_trace. */
static WS_COLD void trace(const ws_conn *c, int out, int fin, unsigned rsv, int opcode, uint64_t len) {
  if (ws_conn_trace) ws_conn_trace(c, out, fin, rsv, opcode, len);
}
#define TRACE(c, out, fin, rsv, opcode, len) \
  do { if (WS_UNLIKELY(ws_conn_trace != NULL)) trace((c), (out), (fin), (rsv), (opcode), (len)); } while (0)

static int queue_frame(ws_conn *c, int fin, unsigned rsv, int opcode, const void *p, size_t n) {
  uint8_t key[4];
  const uint8_t *mask = NULL;
  if (c->role_ == WS_ROLE_CLIENT) {
    if (ws_random_mask(key) != 0) {
      c->error_ = E_RANDOM;
      return -1;
    }
    mask = key;
  }
  if (ws_frame_build(&c->out_, fin, rsv, opcode, p, n, mask) != 0) {
    c->error_ = E_NOMEM;
    return -1;
  }
  return 0;
}

/* code 0: a close frame with no status (and then no reason). */
static int queue_close(ws_conn *c, unsigned code, const char *reason, size_t rlen) {
  uint8_t payload[CONTROL_MAX];
  size_t n = 0;
  if (code) {
    if (rlen > CLOSE_REASON_MAX) rlen = CLOSE_REASON_MAX;
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    if (rlen) memcpy(payload + 2, reason, rlen);
    n = 2 + rlen;
  }
  TRACE(c, 1, 1, 0, WS_OP_CLOSE, n);
  return queue_frame(c, 1, 0, WS_OP_CLOSE, payload, n);
}

static void event(ws_event *ev, int type, int opcode, const uint8_t *data, size_t len) {
  ev->type = type;
  ev->opcode = opcode;
  ev->data = data;
  ev->len = len;
  ev->code = 0;
  ev->error = NULL;
}

/* Our close for a failure, unless one was sent already; then nothing more is sent. */
static void fail_close(ws_conn *c) {
  if (!c->close_sent_) {
    queue_close(c, c->error_code_, c->fail_reason_, strlen(c->fail_reason_));
    c->close_sent_ = WS_CLOSE_SENT_FIRST;
  }
  c->state_ = WS_STATE_CLOSED;
}

int ws_conn_fail_commit(ws_conn *c) {
  if (!ws_conn_fail_pending(c)) return 0;
  fail_close(c);
  return 1;
}

/* _Fail the WebSocket Connection_ (RFC 6455 7.1.7): queue our close with the code (at once,
 * or at ws_conn_fail_commit with defer_fail), report it once, and stop reading. */
static int fail(ws_conn *c, ws_event *ev, unsigned code, const char *why) {
  c->error_code_ = (uint16_t)code;
  c->error_ = why;
  c->fail_reason_ = why;
  if (!c->defer_fail_) fail_close(c);
  c->have_header_ = 0;
  c->msg_opcode_ = 0;
  c->consumed_pending_ = 0;
  ws_buf_free(&c->in_);
  ws_buf_free(&c->msg_);
  event(ev, WS_EV_ERROR, 0, NULL, 0);
  ev->code = code;
  ev->error = why;
  return 1;
}

/* ---- receiving -------------------------------------------------------------------- */

/* Rules a header can be judged by on its own, before any payload is read or stored. */
static const char *check_header(const ws_conn *c, unsigned *code) {
  const ws_frame_header *h = &c->hdr_;
  unsigned op = h->opcode;
  *code = WS_CLOSE_PROTOCOL;
  if (op > WS_OP_BINARY && (op < WS_OP_CLOSE || op > WS_OP_PONG)) return E_OPCODE;
  if (h->rsv) {
    if ((h->rsv & 3u) || !c->deflate_) return E_RSV;
    if (is_control(op)) return E_RSV1_CONTROL;
    if (op == WS_OP_CONTINUATION) return E_RSV1_CONT;
  }
  if (c->role_ == WS_ROLE_SERVER && !h->masked) return E_UNMASKED;
  if (c->role_ == WS_ROLE_CLIENT && h->masked) return E_MASKED;
  if (is_control(op)) {
    if (!h->fin) return E_CONTROL_FRAG;
    return ws_control_len_check(h->payload_len); /* the one test, for frames in and out */
  }
  if (op == WS_OP_CONTINUATION && !c->msg_opcode_) return E_CONT;
  if (op != WS_OP_CONTINUATION && c->msg_opcode_) return E_INTERLEAVE;
  *code = WS_CLOSE_TOO_BIG;
  int compressed = op == WS_OP_CONTINUATION ? c->msg_compressed_ : (h->rsv & 4u) != 0;
  if (!compressed) { /* an inflated size is checked while inflating */
    uint64_t have = op == WS_OP_CONTINUATION ? ws_buf_size(&c->msg_) : 0;
    if (h->payload_len > c->opt_.max_message - have) return E_MAX_MESSAGE;
  }
  /* A compressed frame may be a little larger than the message it carries (incompressible
   * data, small windows: at worst 9 bits per byte in zlib's fixed codes); max_message bounds
   * what it inflates to, so a message that fits is not refused for its compressed size. */
  uint64_t frame_max = c->opt_.max_frame;
  if (compressed) frame_max += frame_max / 8 + 1024;
  if (h->payload_len > frame_max) return E_MAX_FRAME;
  if (op == WS_OP_CONTINUATION && c->fragments_ >= c->opt_.max_fragments) return E_MAX_FRAGMENTS;
  return NULL;
}

/* 1: an error event, 0: more input needed, 2: c->hdr_ is ready. */
static int read_header(ws_conn *c, ws_event *ev) {
  size_t avail = ws_buf_size(&c->in_);
  if (avail < 2) return 0;
  int r = ws_frame_parse_header(buf_ptr(&c->in_), avail, &c->hdr_);
  if (r == WS_AGAIN) return 0;
  if (r == WS_ERROR) return fail(c, ev, WS_CLOSE_PROTOCOL, E_LEN64);
  unsigned code;
  const char *why = check_header(c, &code);
  if (why) return fail(c, ev, code, why);
  ws_buf_consume(&c->in_, (size_t)r);
  TRACE(c, 0, c->hdr_.fin, c->hdr_.rsv, (int)c->hdr_.opcode, c->hdr_.payload_len);
  c->have_header_ = 1;
  c->payload_seen_ = 0;
  c->mask_phase_ = 0;
  if (!is_control(c->hdr_.opcode)) {
    if (c->hdr_.opcode == WS_OP_CONTINUATION) {
      c->fragments_++;
    } else {
      c->msg_opcode_ = (uint8_t)c->hdr_.opcode;
      c->msg_compressed_ = (c->hdr_.rsv & 4u) != 0;
      c->fragments_ = 1;
      c->utf8_state_ = WS_UTF8_ACCEPT;
    }
  }
  return 2;
}

static int frame_is_held(const ws_conn *c) {
  const ws_frame_header *h = &c->hdr_;
  if (is_control(h->opcode)) return 1;
  return h->fin && h->opcode != WS_OP_CONTINUATION && !c->msg_compressed_ &&
         h->payload_len <= held_cap(c);
}

static void frame_done(ws_conn *c) {
  c->have_header_ = 0;
  c->payload_seen_ = 0;
  c->mask_phase_ = 0;
}

static void message_done(ws_conn *c) {
  c->msg_opcode_ = 0;
  c->msg_compressed_ = 0;
  c->fragments_ = 0;
}

static int on_close(ws_conn *c, ws_event *ev, const uint8_t *p, size_t n) {
  unsigned code = WS_CLOSE_NO_STATUS;
  const uint8_t *reason = no_bytes;
  size_t rlen = 0;
  if (n == 1) return fail(c, ev, WS_CLOSE_PROTOCOL, E_CLOSE_1BYTE);
  if (n >= 2) {
    code = ((unsigned)p[0] << 8) | p[1];
    if (!ws_close_code_valid(code)) return fail(c, ev, WS_CLOSE_PROTOCOL, E_CLOSE_CODE);
    reason = p + 2;
    rlen = n - 2;
    if (!ws_utf8_valid(reason, rlen)) return fail(c, ev, WS_CLOSE_INVALID_DATA, E_CLOSE_UTF8);
  }
  c->close_received_ = 1;
  c->close_code_ = (uint16_t)code;
  if (!c->close_sent_) {
    /* Echo the peer's code (RFC 6455 5.5.1); a close without one is answered without one. */
    queue_close(c, code == WS_CLOSE_NO_STATUS ? 0 : code, NULL, 0);
    c->close_sent_ = WS_CLOSE_SENT_REPLY;
  }
  c->state_ = WS_STATE_CLOSED;
  message_done(c); /* a message cut short by the close is dropped */
  event(ev, WS_EV_CLOSE, WS_OP_CLOSE, reason, rlen);
  ev->code = code;
  return 1;
}

/* A held frame: unmask and validate in place what has arrived; deliver once complete. */
static int step_held(ws_conn *c, ws_event *ev) {
  const ws_frame_header *h = &c->hdr_;
  size_t plen = (size_t)h->payload_len;
  size_t have = ws_buf_size(&c->in_);
  if (have > plen) have = plen;
  if (have > c->payload_seen_) {
    uint8_t *p = buf_ptr(&c->in_) + c->payload_seen_;
    size_t k = have - (size_t)c->payload_seen_;
    int high = 1; /* not known: check */
    if (h->masked) c->mask_phase_ = (uint8_t)ws_mask_ascii(p, p, k, h->mask, c->mask_phase_, &high);
    /* Between code points, ASCII is valid UTF-8 and leaves the state as it is. */
    if (h->opcode == WS_OP_TEXT && (high || c->utf8_state_ != WS_UTF8_ACCEPT) &&
        utf8_check(c, p, k) == WS_UTF8_REJECT)
      return fail(c, ev, WS_CLOSE_INVALID_DATA, E_UTF8);
    c->payload_seen_ = have;
  }
  if (have < plen) return 0;

  uint8_t *data = buf_ptr(&c->in_);
  unsigned op = h->opcode;
  frame_done(c);
  c->consumed_pending_ = (uint32_t)plen; /* the event points into `in` until the next call */
  switch (op) {
  case WS_OP_TEXT:
    if (c->utf8_state_ != WS_UTF8_ACCEPT) return fail(c, ev, WS_CLOSE_INVALID_DATA, E_UTF8);
    /* fall through */
  case WS_OP_BINARY:
    message_done(c);
    event(ev, WS_EV_MESSAGE, (int)op, data, plen);
    return 1;
  case WS_OP_PING:
    /* RFC 6455 5.5.2: every ping gets its pong unless the peer's close was received (then
     * no frame gets this far); our own close sent first is no exemption. */
    if (c->auto_pong_) {
      TRACE(c, 1, 1, 0, WS_OP_PONG, plen);
      queue_frame(c, 1, 0, WS_OP_PONG, data, plen);
    }
    event(ev, WS_EV_PING, WS_OP_PING, data, plen);
    return 1;
  case WS_OP_PONG:
    event(ev, WS_EV_PONG, WS_OP_PONG, data, plen);
    return 1;
  default: /* WS_OP_CLOSE; other opcodes never get past check_header */
    return on_close(c, ev, data, plen);
  }
}

/* Map an inflate failure (its texts are documented in ws_deflate.h) to a close code: the
 * size limit is 1009, our memory 1011, anything else data that does not inflate (1007). */
static unsigned inflate_code(const char *why) {
  if (why && strcmp(why, E_MAX_MESSAGE) == 0) return WS_CLOSE_TOO_BIG;
  if (why && strcmp(why, E_NOMEM) == 0) return WS_CLOSE_INTERNAL;
  return WS_CLOSE_INVALID_DATA;
}

/* A streamed data frame: move what has arrived into `msg`. 1: event, 0: more input,
 * 2: the frame ended without ending the message. */
static int step_streamed(ws_conn *c, ws_event *ev) {
  const ws_frame_header *h = &c->hdr_;
  uint64_t remaining = h->payload_len - c->payload_seen_;
  size_t avail = ws_buf_size(&c->in_);
  if (remaining && !avail) return 0;
  size_t k = (uint64_t)avail < remaining ? avail : (size_t)remaining;
  uint8_t *src = buf_ptr(&c->in_);
  int text = c->msg_opcode_ == WS_OP_TEXT;
  if (c->msg_compressed_) {
    int last = h->fin && k == remaining;
    size_t before = ws_buf_size(&c->msg_);
    const char *why = NULL;
    if (h->masked) c->mask_phase_ = (uint8_t)ws_mask(src, src, k, h->mask, c->mask_phase_);
    if ((k || last) && ws_deflate_inflate(c->deflate_, src, k, last, &c->msg_,
                                          (size_t)c->opt_.max_message, &why) != 0)
      return fail(c, ev, inflate_code(why), why ? why : E_INFLATE);
    size_t after = ws_buf_size(&c->msg_);
    if (text && after > before &&
        utf8_check(c, buf_ptr(&c->msg_) + before, after - before) ==
            WS_UTF8_REJECT)
      return fail(c, ev, WS_CLOSE_INVALID_DATA, E_UTF8);
  } else if (k) {
    /* Reserve the rest of the frame at once (its size was checked against max_message),
     * so a large frame does not regrow the buffer piece by piece. */
    uint8_t *dst = ws_buf_reserve(&c->msg_, (size_t)remaining, (size_t)c->opt_.max_message);
    if (!dst) return fail(c, ev, WS_CLOSE_INTERNAL, E_NOMEM);
    int high = 1;
    if (h->masked) c->mask_phase_ = (uint8_t)ws_mask_ascii(dst, src, k, h->mask, c->mask_phase_, &high);
    else memcpy(dst, src, k);
    if (text && (high || c->utf8_state_ != WS_UTF8_ACCEPT) &&
        utf8_check(c, dst, k) == WS_UTF8_REJECT)
      return fail(c, ev, WS_CLOSE_INVALID_DATA, E_UTF8);
    ws_buf_commit(&c->msg_, k);
  }
  ws_buf_consume(&c->in_, k);
  c->payload_seen_ += k;
  if (c->payload_seen_ < h->payload_len) return 0;

  int fin = h->fin;
  frame_done(c);
  if (!fin) return 2;
  if (text && c->utf8_state_ != WS_UTF8_ACCEPT) return fail(c, ev, WS_CLOSE_INVALID_DATA, E_UTF8);
  int op = c->msg_opcode_;
  message_done(c); /* msg is cleared by settle() at the next call */
  event(ev, WS_EV_MESSAGE, op, buf_ptr(&c->msg_), ws_buf_size(&c->msg_));
  return 1;
}

int ws_conn_next(ws_conn *c, ws_event *ev) {
  settle(c);
  event(ev, WS_EV_NONE, 0, NULL, 0);
  if (c->state_ == WS_STATE_CONNECTING || finished(c)) return 0;
  for (;;) {
    int r;
    if (!c->have_header_ && (r = read_header(c, ev)) != 2) return r;
    r = frame_is_held(c) ? step_held(c, ev) : step_streamed(c, ev);
    if (r != 2) return r;
  }
}

uint8_t *ws_conn_input_space(ws_conn *c, size_t *avail) {
  settle(c);
  size_t limit = in_limit(c), used = ws_buf_size(&c->in_);
  *avail = 0;
  if (used >= limit) return NULL;
  size_t want = limit - used < READ_CHUNK ? limit - used : READ_CHUNK;
  uint8_t *p = ws_buf_reserve(&c->in_, want, limit);
  if (!p) return NULL;
  *avail = c->in_.cap - c->in_.len;
  return p;
}

void ws_conn_input_commit(ws_conn *c, size_t n) {
  if (finished(c)) { /* nothing more is read after the close or a failure */
    ws_buf_clear(&c->in_);
    return;
  }
  ws_buf_commit(&c->in_, n);
}

int ws_conn_input_release(ws_conn *c, ws_buf *b) {
  if (!finished(c)) return -1;
  *b = c->in_;
  ws_buf_clear(b);
  ws_buf_init(&c->in_);
  c->consumed_pending_ = 0;
  c->payload_seen_ = 0;
  return 0;
}

int ws_conn_feed(ws_conn *c, const void *p, size_t n) {
  settle(c);
  if (finished(c) || n == 0) return 0;
  size_t limit = in_limit(c), used = ws_buf_size(&c->in_);
  if (n > limit - used || ws_buf_append(&c->in_, p, n, limit) != 0) return -1;
  return 0;
}

/* ---- sending ---------------------------------------------------------------------- */

/* Nothing is sent before the handshake or after our close frame. */
static int may_send(ws_conn *c) {
  if (c->state_ == WS_STATE_CONNECTING) {
    c->error_ = E_NOT_OPEN;
    return 0;
  }
  if (c->close_sent_) { /* CLOSED always follows a close we sent (or a failure) */
    c->error_ = E_CLOSE_SENT;
    return 0;
  }
  return 1;
}

/* Compress a whole message straight into `out` behind a maximal header gap, then close
 * the gap: the compressed size is only known afterwards, and no scratch buffer is needed.
 * With d its own context goes on (a message of this connection); else `like`'s settings
 * compress it from no context (a frame for many). 0 with *plen the payload's size, or -1
 * (out of memory; out unchanged). */
static int build_compressed(ws_buf *out, ws_deflate *d, const ws_deflate *like, int opcode,
                            const void *p, size_t n, const uint8_t *key, size_t *plen) {
  uint8_t hdr[WS_FRAME_HEADER_MAX];
  size_t start = ws_buf_size(out);
  if (!ws_buf_reserve(out, WS_FRAME_HEADER_MAX, 0)) return -1;
  ws_buf_commit(out, WS_FRAME_HEADER_MAX);
  int r = d ? ws_deflate_compress(d, p, n, out) : ws_deflate_compress_fresh(like, p, n, out);
  if (r != 0) {
    out->len = out->head + start; /* drop the partial frame */
    return -1;
  }
  uint8_t *frame = buf_ptr(out) + start;
  *plen = ws_buf_size(out) - start - WS_FRAME_HEADER_MAX;
  size_t hl = ws_frame_write_header(hdr, 1, 4u, (unsigned)opcode, *plen, key);
  memmove(frame + hl, frame + WS_FRAME_HEADER_MAX, *plen);
  memcpy(frame, hdr, hl);
  out->len -= WS_FRAME_HEADER_MAX - hl;
  if (key) ws_mask(frame + hl, frame + hl, *plen, key, 0);
  return 0;
}

static int send_compressed(ws_conn *c, int opcode, const void *p, size_t n) {
  uint8_t key[4];
  size_t plen;
  int client = c->role_ == WS_ROLE_CLIENT;
  if (client && ws_random_mask(key) != 0) {
    c->error_ = E_RANDOM;
    return -1;
  }
  if (build_compressed(&c->out_, c->deflate_, NULL, opcode, p, n, client ? key : NULL, &plen) != 0) {
    c->error_ = E_NOMEM;
    return -1;
  }
  return 0;
}

int ws_conn_frame_compressed(const ws_conn *c, int opcode, const void *p, size_t n, ws_buf *out) {
  size_t start = ws_buf_size(out), plen;
  if (!c->deflate_ || c->role_ != WS_ROLE_SERVER || n < ws_deflate_threshold(c->deflate_) ||
      (opcode != WS_OP_TEXT && opcode != WS_OP_BINARY))
    return 0;
  if (build_compressed(out, NULL, c->deflate_, opcode, p, n, NULL, &plen) != 0) return -1;
  if (plen >= n) { /* no smaller: the plain frame serves */
    out->len = out->head + start;
    return 0;
  }
  return 1;
}

void ws_conn_shared_compressed_sent(ws_conn *c) { ws_deflate_reset_output(c->deflate_); }

/* The rules a data frame is sent by: 0 or -1 (c->error). */
static int data_send_check(ws_conn *c, int opcode) {
  if (!may_send(c)) return -1;
  if (c->state_ != WS_STATE_OPEN) { /* CLOSING means our close went out */
    c->error_ = E_CLOSE_SENT;
    return -1;
  }
  if (opcode != WS_OP_TEXT && opcode != WS_OP_BINARY && opcode != WS_OP_CONTINUATION) {
    c->error_ = E_SEND_OPCODE;
    return -1;
  }
  if (opcode == WS_OP_CONTINUATION && !c->send_opcode_) {
    c->error_ = E_SEND_CONT;
    return -1;
  }
  if (opcode != WS_OP_CONTINUATION && c->send_opcode_) {
    c->error_ = E_SEND_INTERLEAVE;
    return -1;
  }
  return 0;
}

/* Only whole messages are compressed: ws_deflate works a message at a time. */
static int send_compresses(const ws_conn *c, int opcode, size_t n, unsigned flags) {
  return (flags & WS_SEND_COMPRESS) && c->deflate_ && !(flags & WS_SEND_MORE) &&
         opcode != WS_OP_CONTINUATION && n >= ws_deflate_threshold(c->deflate_);
}

static void sent_data(ws_conn *c, int opcode, int more) {
  if (more) {
    if (opcode != WS_OP_CONTINUATION) c->send_opcode_ = (uint8_t)opcode;
  } else {
    c->send_opcode_ = 0;
  }
}

int ws_conn_send(ws_conn *c, int opcode, const void *p, size_t n, unsigned flags) {
  if (data_send_check(c, opcode) < 0) return -1;
  int more = (flags & WS_SEND_MORE) != 0;
  int compress = send_compresses(c, opcode, n, flags);
  TRACE(c, 1, !more, compress ? 4u : 0u, opcode, n); /* (the length before compression) */
  int r = compress ? send_compressed(c, opcode, p, n) : queue_frame(c, !more, 0, opcode, p, n);
  if (r != 0) return -1;
  sent_data(c, opcode, more);
  return 0;
}

int ws_conn_send_header(ws_conn *c, int opcode, size_t n, unsigned flags, uint8_t *hdr) {
  if (c->role_ == WS_ROLE_CLIENT || send_compresses(c, opcode, n, flags)) return 0;
  if (data_send_check(c, opcode) < 0) return -1;
  int more = (flags & WS_SEND_MORE) != 0;
  TRACE(c, 1, !more, 0u, opcode, n);
  size_t hl = ws_frame_write_header(hdr, !more, 0, (unsigned)opcode, n, NULL);
  sent_data(c, opcode, more);
  return (int)hl;
}

int ws_conn_send_fragment(ws_conn *c, int opcode, const void *p, size_t n, int fin) {
  unsigned more = fin ? 0 : WS_SEND_MORE;
  if (c->send_opcode_ && c->state_ == WS_STATE_OPEN) {
    if (opcode && opcode != c->send_opcode_) {
      c->error_ = E_SEND_KIND;
      return -1;
    }
    return ws_conn_send(c, WS_OP_CONTINUATION, p, n, more);
  }
  return ws_conn_send(c, opcode ? opcode : WS_OP_TEXT, p, n, more);
}

const char *ws_control_len_check(uint64_t n) { return n > CONTROL_MAX ? E_CONTROL_LEN : NULL; }

/* A control frame of n bytes; the caller has decided it may be sent in this state. */
static int queue_control(ws_conn *c, int opcode, const void *p, size_t n) {
  const char *why = ws_control_len_check(n);
  if (why) {
    c->error_ = why;
    return -1;
  }
  TRACE(c, 1, 1, 0, opcode, n);
  return queue_frame(c, 1, 0, opcode, p, n);
}

static int send_control(ws_conn *c, int opcode, const void *p, size_t n) {
  if (!may_send(c)) return -1;
  return queue_control(c, opcode, p, n);
}

int ws_conn_ping(ws_conn *c, const void *p, size_t n) { return send_control(c, WS_OP_PING, p, n); }

/* A pong may still answer a ping between our close and the peer's (RFC 6455 5.5.2), so a
 * host that answers pings itself can do so while CLOSING; never after a failure. */
int ws_conn_pong(ws_conn *c, const void *p, size_t n) {
  if (c->state_ == WS_STATE_CLOSING) return queue_control(c, WS_OP_PONG, p, n);
  return send_control(c, WS_OP_PONG, p, n);
}

int ws_close_args_check(int has_code, long long code, const char *reason, size_t reason_len, const char **error) {
  *error = NULL;
  if (has_code && !(code >= 0 && code <= 0xffff && ws_close_code_valid((unsigned)code))) *error = E_CLOSE_CODE;
  else if (!has_code && reason_len) *error = E_REASON_NO_CODE;
  else if (reason_len > CLOSE_REASON_MAX) *error = E_REASON_LEN;
  else if (!ws_utf8_valid((const uint8_t *)reason, reason_len)) *error = E_REASON_UTF8;
  else return 0;
  return *error == E_CLOSE_CODE ? 1 : 2;
}


int ws_conn_close(ws_conn *c, unsigned code, const char *reason, size_t reason_len) {
  if (!may_send(c)) return -1;
  const char *why;
  if (ws_close_args_check(code != 0, code, reason, reason_len, &why)) {
    c->error_ = why;
    return -1;
  }
  if (queue_close(c, code, reason, reason_len) != 0) return -1;
  c->close_sent_ = WS_CLOSE_SENT_FIRST;
  c->state_ = WS_STATE_CLOSING;
  return 0;
}
