/* libFuzzer driver for the client side of the opening handshake: ws_response_parse fed the
 * input in growing prefixes, then ws_response_check_upgrade against a known key.
 *
 * Input: as fuzz_head_input in fuzz_common.h says (the header byte limit, then the split
 * points; bit 6 of byte 1 says extensions were offered); the rest is the response. Each
 * prefix is copied to a buffer of exactly its size (freed after the call), and the parse
 * must reach the same answer as one call on the whole input. */
// Build (from the repository root):
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Icsrc/core \
//     fuzz/fuzz_response.c csrc/core/*.c -lcrypto -lz -o fuzz/bin/fuzz_response
// Run:
//   fuzz/bin/fuzz_response -dict=fuzz/http.dict -max_total_time=30 fuzz/corpus/response
#include "fuzz_common.h"
#include "ws_handshake.h"

/* RFC 6455's sample key; its accept value is s3pPLMBiTxaQ9kYGzzhZRbK+xOo=. */
static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";

static int feed(void *r, const uint8_t *data, size_t len, size_t max, char **keep) {
  *keep = fuzz_copy(data, len);
  return ws_response_parse(r, *keep, len, max);
}

static void same(const ws_response *a, const char *abuf, const ws_response *b, const char *bbuf, int n) {
  if (n < 0) {
    CHECK(strcmp(a->error, b->error) == 0);
    return;
  }
  CHECK(a->num_headers == b->num_headers && a->minor_version == b->minor_version);
  CHECK(a->status == b->status);
  CHECK(a->reason - abuf == b->reason - bbuf && a->reason_len == b->reason_len);
  for (size_t i = 0; i < a->num_headers; i++) {
    CHECK(a->headers[i].name - abuf == b->headers[i].name - bbuf);
    CHECK(a->headers[i].name_len == b->headers[i].name_len);
    CHECK(a->headers[i].value - abuf == b->headers[i].value - bbuf);
    CHECK(a->headers[i].value_len == b->headers[i].value_len);
  }
}

static void after_parse(ws_response *r, const char *buf, size_t n, int offered_extensions) {
  static const char *const protocols[] = { "chat", "superchat" };
  CHECK(r->num_headers <= WS_MAX_HEADERS);
  CHECK(r->status >= 100 && r->status <= 999);
  CHECK(fuzz_inside(r->reason, r->reason_len, buf, n));
  for (size_t i = 0; i < r->num_headers; i++) {
    CHECK(fuzz_inside(r->headers[i].name, r->headers[i].name_len, buf, n));
    CHECK(fuzz_inside(r->headers[i].value, r->headers[i].value_len, buf, n));
  }
  int rc = ws_response_check_upgrade(r, key, protocols, 2, offered_extensions);
  CHECK((rc == 0) == (r->error == NULL));
  if (rc == 0) {
    const ws_header *accept = ws_response_header(r, "Sec-WebSocket-Accept", NULL);
    CHECK(r->status == 101 && accept && accept->value_len == WS_ACCEPT_LEN);
    CHECK(memcmp(accept->value, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", WS_ACCEPT_LEN) == 0);
    CHECK(!r->protocol || (r->protocol_len == 4 && memcmp(r->protocol, "chat", 4) == 0) ||
          (r->protocol_len == 9 && memcmp(r->protocol, "superchat", 9) == 0));
    CHECK(offered_extensions || !r->extensions);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_head_input in;
  if (!fuzz_head_input_read(&in, data, size)) return 0;
  ws_response *whole = calloc(1, sizeof *whole), *inc = calloc(1, sizeof *inc);
  CHECK(whole && inc);
  char *wbuf, *ibuf;
  int n = feed(whole, in.msg, in.len, in.max, &wbuf);
  CHECK(n == WS_AGAIN || n == WS_ERROR || (n > 0 && (size_t)n <= in.len));

  CHECK(fuzz_prefixes(&in, feed, inc, WS_AGAIN, &ibuf) == n);
  if (n != WS_AGAIN) same(whole, wbuf, inc, ibuf, n);
  if (n > 0) after_parse(whole, wbuf, (size_t)n, (in.flags & 0x40) != 0);
  free(ibuf);
  free(wbuf);
  free(whole);
  free(inc);
  return 0;
}
