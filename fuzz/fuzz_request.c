/* libFuzzer driver for the server side of the opening handshake: ws_request_parse fed the
 * input in growing prefixes, then the upgrade checks, the protocol choice and the 101
 * response, which the client side must then accept.
 *
 * Input: as fuzz_head_input in fuzz_common.h says (the header byte limit, then the split
 * points); the rest is the request. Each prefix is copied to a buffer of
 * exactly its size (freed after the call, so ASan catches reads past it and pointers kept
 * from an earlier buffer), and the parse must reach the same answer as one call on the
 * whole input. */
// Build (from the repository root):
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Icsrc/core \
//     fuzz/fuzz_request.c csrc/core/*.c -lcrypto -lz -o fuzz/bin/fuzz_request
// Run:
//   fuzz/bin/fuzz_request -dict=fuzz/http.dict -max_total_time=30 fuzz/corpus/request
#include "fuzz_common.h"
#include "ws_handshake.h"

static int feed(void *r, const uint8_t *data, size_t len, size_t max, char **keep) {
  *keep = fuzz_copy(data, len);
  return ws_request_parse(r, *keep, len, max);
}

/* The same answer, with every pointer at the same offset into its own buffer. */
static void same(const ws_request *a, const char *abuf, const ws_request *b, const char *bbuf, int n) {
  if (n < 0) {
    CHECK(a->status == b->status);
    CHECK(strcmp(a->error, b->error) == 0);
    return;
  }
  CHECK(a->num_headers == b->num_headers && a->minor_version == b->minor_version);
  CHECK(a->method - abuf == b->method - bbuf && a->method_len == b->method_len);
  CHECK(a->target - abuf == b->target - bbuf && a->target_len == b->target_len);
  CHECK(a->path - abuf == b->path - bbuf && a->path_len == b->path_len);
  CHECK((a->query == NULL) == (b->query == NULL));
  CHECK(!a->query || (a->query - abuf == b->query - bbuf && a->query_len == b->query_len));
  for (size_t i = 0; i < a->num_headers; i++) {
    CHECK(a->headers[i].name - abuf == b->headers[i].name - bbuf);
    CHECK(a->headers[i].name_len == b->headers[i].name_len);
    CHECK(a->headers[i].value - abuf == b->headers[i].value - bbuf);
    CHECK(a->headers[i].value_len == b->headers[i].value_len);
  }
}

static void after_parse(ws_request *r, const char *buf, size_t n) {
  static const char *const server_protocols[] = { "superchat", "chat", "v1" };
  CHECK(r->num_headers <= WS_MAX_HEADERS);
  CHECK(fuzz_inside(r->method, r->method_len, buf, n) && fuzz_inside(r->target, r->target_len, buf, n));
  for (size_t i = 0; i < r->num_headers; i++) {
    CHECK(fuzz_inside(r->headers[i].name, r->headers[i].name_len, buf, n));
    CHECK(fuzz_inside(r->headers[i].value, r->headers[i].value_len, buf, n));
    CHECK(ws_header_name_valid(r->headers[i].name, r->headers[i].name_len));
    CHECK(ws_header_value_valid(r->headers[i].value, r->headers[i].value_len));
  }
  (void)ws_request_is_upgrade(r);
  int status = ws_request_check_upgrade(r);
  CHECK(status == 0 || status == 400 || status == 426);
  CHECK((status == 0) == (r->error == NULL));

  ws_buf out;
  ws_buf_init(&out);
  if (status) {
    CHECK(ws_response_status(&out, status, NULL, 0, r->error, strlen(r->error)) == 0);
    ws_buf_free(&out);
    return;
  }
  int chosen = ws_request_choose_protocol(r, server_protocols, 3);
  CHECK(chosen >= -1 && chosen < 3);
  const char *protocol = chosen >= 0 ? server_protocols[chosen] : NULL;
  CHECK(ws_response_accept(&out, r->key, r->key_len, protocol, NULL, NULL, 0) == 0);

  /* What the server answered, the client (who sent this key) accepts. */
  char key[WS_KEY_LEN + 1];
  memcpy(key, r->key, WS_KEY_LEN);
  key[WS_KEY_LEN] = '\0';
  ws_response *resp = calloc(1, sizeof *resp);
  CHECK(resp);
  int m = ws_response_parse(resp, (const char *)ws_buf_begin(&out), ws_buf_size(&out), 0);
  CHECK(m == (int)ws_buf_size(&out));
  CHECK(ws_response_check_upgrade(resp, key, protocol ? &protocol : NULL, protocol ? 1 : 0, 0) == 0);
  CHECK((resp->protocol == NULL) == (protocol == NULL));
  free(resp);
  ws_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_head_input in;
  if (!fuzz_head_input_read(&in, data, size)) return 0;
  ws_request *whole = calloc(1, sizeof *whole), *inc = calloc(1, sizeof *inc);
  CHECK(whole && inc);
  char *wbuf, *ibuf;
  int n = feed(whole, in.msg, in.len, in.max, &wbuf);
  CHECK(n == WS_AGAIN || n == WS_ERROR || (n > 0 && (size_t)n <= in.len));
  CHECK(n != WS_ERROR || whole->status == 400 || whole->status == 431);

  CHECK(fuzz_prefixes(&in, feed, inc, WS_AGAIN, &ibuf) == n);
  if (n != WS_AGAIN) same(whole, wbuf, inc, ibuf, n);
  if (n > 0) after_parse(whole, wbuf, (size_t)n);
  free(ibuf);
  free(wbuf);
  free(whole);
  free(inc);
  return 0;
}
