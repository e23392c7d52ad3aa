/* libFuzzer driver for the Redis bus envelope codec (csrc/runtime/ws_bus_envelope.c) and for
 * what reaches it: RESP bytes from a subscribed connection, parsed by hiredis's reader.
 *
 * Input layout: byte 0 picks the mode, the rest is the input.
 *   even: the rest is one envelope. When it decodes, every field must be in its alphabet and
 *         bounds, the data must be the bytes after the header, and the header re-encoded from
 *         the decoded fields must decode to the same fields.
 *   odd:  the rest is RESP fed to a redisReader in pieces of (byte 0 >> 1) + 1 bytes; every
 *         reply goes through the bus's push classifier (ws_bus_push.c) for prefix "ws:" and
 *         node "nodeA", whose verdict must be consistent, and every ["message", channel,
 *         payload] array's payload is decoded as above. */
#include <hiredis/hiredis.h>

#include "fuzz_common.h"
#include "runtime/ws_bus_envelope.h"
#include "runtime/ws_bus_push.h"

static void one_envelope(const uint8_t *p, size_t n) {
  ws_bus_env e, e2;
  const char *err = NULL;
  if (ws_bus_env_decode(p, n, &e, &err) != 0) {
    CHECK(err != NULL);
    return;
  }
  CHECK(strchr(WS_BUS_ENV_TYPES, e.type) != NULL && e.type != 0);
  CHECK(ws_bus_node_valid(e.node, e.node_len));
  CHECK(ws_bus_id_valid(e.id, e.id_len));
  CHECK(ws_bus_epoch_valid(e.epoch, e.epoch_len));
  CHECK(e.data >= p && e.data + e.data_len == p + n);
  char head[WS_BUS_HEADER_MAX + 1];
  size_t hl = ws_bus_env_header(head, sizeof head, &e);
  CHECK(hl > 0 && hl <= WS_BUS_HEADER_MAX);
  CHECK(ws_bus_env_decode(head, hl, &e2, &err) == 0);
  CHECK(e2.type == e.type && e2.binary == e.binary && e2.data_len == 0);
  CHECK(e2.node_len == e.node_len && memcmp(e2.node, e.node, e.node_len) == 0);
  CHECK(e2.id_len == e.id_len && (e.id_len == 0 || memcmp(e2.id, e.id, e.id_len) == 0));
  CHECK(e2.epoch_len == e.epoch_len && (e.epoch_len == 0 || memcmp(e2.epoch, e.epoch, e.epoch_len) == 0));
  CHECK(e2.has_offset == e.has_offset && (!e.has_offset || e2.offset == e.offset));
  CHECK(e2.has_time == e.has_time && (!e.has_time || e2.time_us == e.time_us));
}

static int inside(const char *p, size_t n, const redisReply *s) {
  return s->type == REDIS_REPLY_STRING && p >= s->str && p + n <= s->str + s->len;
}

static void classify(const redisReply *rep) {
  ws_bus_push m;
  ws_bus_push_classify(rep, "ws:", 3, "nodeA", 5, 1024, &m);
  CHECK(m.kind >= WS_BUS_PUSH_IGNORE && m.kind <= WS_BUS_PUSH_HOOK);
  if (m.kind == WS_BUS_PUSH_FAST || m.kind == WS_BUS_PUSH_OWN || m.kind == WS_BUS_PUSH_HOOK) {
    CHECK(rep->type == REDIS_REPLY_ARRAY && rep->elements == 3);
    CHECK(inside((const char *)m.env.data, m.env.data_len, rep->element[2]));
    CHECK(ws_bus_node_valid(m.env.node, m.env.node_len));
    CHECK((m.kind == WS_BUS_PUSH_HOOK) == (m.env.type != 'f'));
    CHECK((m.kind == WS_BUS_PUSH_OWN) == (m.env.type == 'f' && m.env.node_len == 5 && !memcmp(m.env.node, "nodeA", 5)));
  }
  if (m.kind == WS_BUS_PUSH_FAST || m.kind == WS_BUS_PUSH_OWN) CHECK(m.topic != NULL);
  if (m.topic) {
    CHECK(m.topic_len >= 1 && m.topic_len <= 1024);
    CHECK(inside(m.topic, m.topic_len, rep->element[1]));
  }
}

static void resp(const uint8_t *p, size_t n, uint8_t step) {
  redisReader *r = ws_bus_reader_new();
  if (!r) return;
  fuzz_split cut = fuzz_split_new(n, &step, 1, 1, 0);
  size_t at, k;
  while ((k = fuzz_split_next(&cut, &at)) > 0) {
    if (redisReaderFeed(r, (const char *)p + at, k) != REDIS_OK) break;
    void *obj;
    int failed = 0;
    while (!failed) {
      obj = NULL;
      if (redisReaderGetReply(r, &obj) != REDIS_OK) { failed = 1; break; }
      if (!obj) break;
      redisReply *rep = obj;
      classify(rep);
      if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 && rep->element[0]->type == REDIS_REPLY_STRING &&
          rep->element[0]->len == 7 && memcmp(rep->element[0]->str, "message", 7) == 0 &&
          rep->element[2]->type == REDIS_REPLY_STRING)
        one_envelope((const uint8_t *)rep->element[2]->str, rep->element[2]->len);
      freeReplyObject(obj);
    }
    if (failed) break;
  }
  redisReaderFree(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  if (data[0] & 1) resp(data + 1, size - 1, (uint8_t)(data[0] >> 1));
  else one_envelope(data + 1, size - 1);
  return 0;
}
