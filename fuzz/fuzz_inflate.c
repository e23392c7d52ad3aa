/* libFuzzer driver for permessage-deflate messages (csrc/core/ws_deflate.c): arbitrary
 * compressed data inflated in pieces under a small limit, and round trips of the input.
 *
 * Input: byte 0 picks the parameters (bit 0 role, bit 1 server and bit 2 client no context
 * takeover, bits 3-5 the peer's window bits 8..15), byte 1 the limit (1 << (byte % 18) bytes).
 * Then pieces: a control byte (bit 7 fin; bits 0-5 the length, in bytes, or in 64-byte units
 * when bit 6 is set) and that many bytes, each copied to a buffer of exactly its size. The output must never exceed the
 * limit, a failure must say why, and compressing then inflating the input must give it back. */
// Build: make fuzz-build (mk/fuzz.mk); run: fuzz/bin/fuzz_inflate fuzz/corpus/inflate
#include "fuzz_common.h"
#include "ws_conn.h"
#include "ws_deflate.h"

static void round_trip(const ws_deflate_params *p, const ws_deflate_config *cfg, const uint8_t *data,
                       size_t size) {
  ws_deflate *s = ws_deflate_new(p, cfg, WS_ROLE_SERVER), *c = ws_deflate_new(p, cfg, WS_ROLE_CLIENT);
  CHECK(s && c);
  ws_buf z, out;
  ws_buf_init(&z);
  ws_buf_init(&out);
  for (int round = 0; round < 2; round++) { /* twice: the second may refer to the first */
    const char *err = NULL;
    ws_buf_clear(&z);
    ws_buf_clear(&out);
    CHECK(ws_deflate_compress(s, data, size, &z) == 0);
    CHECK(ws_deflate_inflate(c, ws_buf_begin(&z), ws_buf_size(&z), 1, &out, size, &err) == 0);
    CHECK(ws_buf_size(&out) == size && (size == 0 || memcmp(ws_buf_begin(&out), data, size) == 0));
  }
  ws_buf_free(&z);
  ws_buf_free(&out);
  ws_deflate_free(s);
  ws_deflate_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  int role = data[0] & 1;
  ws_deflate_params p;
  p.server_no_context_takeover = (data[0] >> 1) & 1;
  p.client_no_context_takeover = (data[0] >> 2) & 1;
  p.server_max_window_bits = p.client_max_window_bits = 8 + ((data[0] >> 3) & 7);
  ws_deflate_config cfg;
  ws_deflate_config_default(&cfg);
  size_t max = (size_t)1 << (data[1] % 18);

  if (size <= 4096) round_trip(&p, &cfg, data + 2, size - 2);

  ws_deflate *d = ws_deflate_new(&p, &cfg, role);
  CHECK(d);
  ws_buf out;
  ws_buf_init(&out);
  size_t pos = 2;
  while (pos < size) {
    uint8_t ctl = data[pos++];
    size_t len = (ctl & 0x40) ? (size_t)(ctl & 0x3f) * 64 : (size_t)(ctl & 0x3f);
    if (len > size - pos) len = size - pos;
    int fin = (ctl & 0x80) != 0 || pos + len == size;
    uint8_t *piece = (uint8_t *)fuzz_copy(data + pos, len);
    pos += len;
    const char *err = NULL;
    int r = ws_deflate_inflate(d, piece, len, fin, &out, max, &err);
    free(piece);
    CHECK(ws_buf_size(&out) <= max);
    CHECK(out.cap <= max + 1 || out.cap <= 256);
    if (r != 0) {
      CHECK(err != NULL);
      CHECK(strcmp(err, "message over max_message") == 0 || strcmp(err, "invalid compressed data") == 0);
      ws_buf_clear(&out);
    } else if (fin) {
      ws_buf_clear(&out);
    }
  }
  ws_buf_free(&out);
  ws_deflate_free(d);
  return 0;
}
