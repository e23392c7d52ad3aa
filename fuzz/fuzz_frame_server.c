/* libFuzzer driver for the frame parser and connection state machine (ws_conn), server
 * role; fuzz_frame_client.c builds the same driver for the client role.
 *
 * Build and run (from the repository root):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *     -Icsrc/core fuzz/fuzz_frame_server.c csrc/core/ws_*.c -lcrypto -lz -o fuzz/bin/fuzz_frame_server
 *   fuzz/bin/fuzz_frame_server -max_total_time=60 fuzz/corpus/fuzz_frame_server
 *
 * Input layout: byte 0 picks options (compression, limits, auto pong, echo, feeding
 * style), bytes 1..4 the lengths of the pieces the rest is cut into, cyclically; the rest
 * is what the peer sent. Every input runs twice, once cut as chosen and once in large
 * reads, and both runs must give exactly the same events: a frame split anywhere is
 * never lost or misread. Each event is also checked against the protocol's promises
 * (text is UTF-8, close codes are valid, nothing comes after an error, buffers stay
 * within their bounds), and messages are echoed straight from their event, so event
 * data must stay valid across sends. */
#include "fuzz_common.h"
#include "ws_conn.h"
#include "ws_deflate.h"
#include "ws_utf8.h"

#ifndef FUZZ_ROLE
#define FUZZ_ROLE WS_ROLE_SERVER
#endif

#define HEADER_BYTES 5
#define BIG_READ 65536u
#define MAX_EVENTS 100000u

typedef struct digest {
  int type, opcode;
  size_t len;
  unsigned code;
  uint64_t hash;
  const char *error;
} digest;

typedef struct run_log {
  digest ev[MAX_EVENTS > 4096 ? 4096 : MAX_EVENTS];
  size_t n;
  size_t total;
} run_log;

static uint64_t fnv(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211u;
  return h;
}

static void options_from(uint8_t flags, ws_conn_options *o) {
  static const uint64_t limits[4] = {WS_DEFAULT_MAX_MESSAGE, 200, 1000, 70000};
  ws_conn_options_default(o, FUZZ_ROLE);
  o->max_message = limits[(flags >> 2) & 3u];
  o->max_frame = (flags & 0x40u) ? 100 : o->max_message;
  o->max_fragments = (flags & 0x40u) ? 4 : 0; /* 0: follows max_message */
  o->auto_pong = !(flags & 2u);
  o->defer_fail = (flags & 0x10u) != 0; /* as the runtime: answers may go before the failure */
}

static size_t in_limit(const ws_conn_options *o) {
  uint64_t cap = 65536;
  if (o->max_frame < cap) cap = o->max_frame;
  if (o->max_message < cap) cap = o->max_message;
  if (cap < 125) cap = 125;
  return (size_t)cap + WS_FRAME_HEADER_MAX + 65536;
}

static void drain(ws_conn *c, run_log *log, uint8_t flags, int *failed) {
  ws_event ev;
  ws_conn_options o; /* what c was made with */
  options_from(flags, &o);
  while (ws_conn_next(c, &ev)) {
    CHECK(!*failed); /* nothing after an error */
    CHECK(log->total++ < MAX_EVENTS);
    switch (ev.type) {
    case WS_EV_MESSAGE:
      CHECK(ev.opcode == WS_OP_TEXT || ev.opcode == WS_OP_BINARY);
      CHECK(ev.len <= o.max_message);
      if (ev.opcode == WS_OP_TEXT) CHECK(ws_utf8_valid(ev.data, ev.len));
      if (flags & 0x10u) { /* echo from the event's own memory, which must survive it */
        uint64_t before = fnv(ev.data, ev.len);
        ws_conn_send(c, ev.opcode, ev.data, ev.len, WS_SEND_COMPRESS);
        CHECK(fnv(ev.data, ev.len) == before);
      }
      break;
    case WS_EV_PING:
    case WS_EV_PONG:
      CHECK(ev.len <= 125);
      break;
    case WS_EV_CLOSE:
      CHECK(ev.code == WS_CLOSE_NO_STATUS || ws_close_code_valid(ev.code));
      CHECK(ev.len <= 123 && ws_utf8_valid(ev.data, ev.len));
      CHECK(ws_conn_state(c) == WS_STATE_CLOSED);
      break;
    case WS_EV_ERROR:
      CHECK(ev.code == 1002 || ev.code == 1007 || ev.code == 1009 || ev.code == 1011);
      CHECK(ev.error != NULL);
      if (o.defer_fail) {
        CHECK(ws_conn_fail_pending(c) && ws_conn_state(c) != WS_STATE_CLOSED);
        CHECK(ws_conn_fail_commit(c) == 1 && ws_conn_fail_commit(c) == 0);
      }
      CHECK(ws_conn_state(c) == WS_STATE_CLOSED);
      *failed = 1;
      break;
    default:
      CHECK(0);
    }
    if (log->n < sizeof log->ev / sizeof log->ev[0]) {
      digest *d = &log->ev[log->n++];
      d->type = ev.type;
      d->opcode = ev.opcode;
      d->len = ev.len;
      d->code = ev.code;
      d->hash = ev.len ? fnv(ev.data, ev.len) : 0;
      d->error = ev.error;
    }
  }
  CHECK(ws_conn_input_size(c) <= in_limit(&o));
  CHECK(ws_conn_input_capacity(c) <= in_limit(&o));
  ws_conn_output_consume(c, ws_conn_output_size(c)); /* as if all was written */
}

/* Feed one piece, by copy or through the zero-copy input space. */
static void feed(ws_conn *c, const uint8_t *p, size_t n, uint8_t flags, run_log *log, int *failed) {
  if (flags & 0x20u) {
    while (n) {
      size_t avail = 0;
      uint8_t *dst = ws_conn_input_space(c, &avail);
      if (!dst) {
        drain(c, log, flags, failed);
        dst = ws_conn_input_space(c, &avail);
        CHECK(dst != NULL && avail > 0); /* after draining a read always fits */
      }
      size_t k = n < avail ? n : avail;
      memcpy(dst, p, k);
      ws_conn_input_commit(c, k);
      p += k;
      n -= k;
      drain(c, log, flags, failed);
    }
  } else {
    if (ws_conn_feed(c, p, n) != 0) {
      drain(c, log, flags, failed);
      CHECK(ws_conn_feed(c, p, n) == 0);
    }
    drain(c, log, flags, failed);
  }
}

static void run(const uint8_t *data, size_t size, uint8_t flags, const uint8_t cuts[4],
                int split, run_log *log) {
  ws_conn_options o;
  ws_conn c;
  int failed = 0;
  options_from(flags, &o);
  ws_conn_init(&c, &o);
  ws_conn_open(&c);
  if (flags & 1u) {
    ws_deflate_params params = {0, 0, 15, 15};
    ws_deflate_config cfg;
    ws_deflate_config_default(&cfg);
    ws_deflate *d = ws_deflate_new(&params, &cfg, FUZZ_ROLE);
    if (d) ws_conn_set_deflate(&c, d);
  }
  if (flags & 0x80u) ws_conn_close(&c, 1000, "bye", 3); /* we closed first: CLOSING */
  fuzz_split cut = fuzz_split_new(size, cuts, split ? 4 : 0, 1, BIG_READ);
  size_t at, n;
  while ((n = fuzz_split_next(&cut, &at)) > 0) feed(&c, data + at, n, flags, log, &failed);
  ws_conn_free(&c);
}

/* With compression one thing may legitimately differ: inside a message that is both
 * corrupt and inflates to bad text (or too much), which fault shows first depends on how
 * much input each inflate call saw, since inflated text is checked between calls. */
static int same_log(const run_log *a, const run_log *b, int compressed) {
  if (a->n != b->n || a->total != b->total) return 0;
  for (size_t i = 0; i < a->n; i++) {
    const digest *x = &a->ev[i], *y = &b->ev[i];
    if (x->type != y->type) return 0;
    if (compressed && x->type == WS_EV_ERROR) continue;
    if (x->opcode != y->opcode || x->len != y->len || x->code != y->code ||
        x->hash != y->hash || x->error != y->error)
      return 0;
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static run_log split_log, whole_log;
  if (size < HEADER_BYTES) return 0;
  uint8_t flags = data[0];
  const uint8_t *cuts = data + 1;
  memset(&split_log, 0, sizeof split_log);
  memset(&whole_log, 0, sizeof whole_log);
  run(data + HEADER_BYTES, size - HEADER_BYTES, flags, cuts, 1, &split_log);
  run(data + HEADER_BYTES, size - HEADER_BYTES, flags, cuts, 0, &whole_log);
  CHECK(same_log(&split_log, &whole_log, flags & 1u));
  return 0;
}
