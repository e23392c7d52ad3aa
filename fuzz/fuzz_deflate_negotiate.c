/* libFuzzer driver for the permessage-deflate negotiation (csrc/core/ws_deflate_negotiate.c):
 * the server's ws_deflate_negotiate and the client's ws_deflate_accept_offer.
 *
 * Input: byte 0 picks the server's config (bit 0 no context takeover, bits 1-3 window bits
 * 8..15), the rest is Sec-WebSocket-Extensions header values separated by '\n' (each copied
 * to a buffer of exactly its size). Whenever the server accepts, the client that sent those
 * offers must accept the response and agree on every parameter; the input is also checked as
 * a response to a fixed offer. */
// Build: make fuzz-build (mk/fuzz.mk); run: fuzz/bin/fuzz_deflate_negotiate fuzz/corpus/deflate_negotiate
#include "fuzz_common.h"
#include "ws_deflate.h"

#define MAX_VALUES 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  ws_deflate_config cfg;
  ws_deflate_config_default(&cfg);
  cfg.no_context_takeover = data[0] & 1;
  cfg.window_bits = 8 + ((data[0] >> 1) & 7);
  data++;
  size--;

  const char *values[MAX_VALUES];
  size_t lens[MAX_VALUES], n = 0, start = 0, total = 0;
  for (size_t i = 0; i <= size && n < MAX_VALUES; i++) {
    if (i == size || data[i] == '\n') {
      values[n] = fuzz_copy(data + start, i - start);
      lens[n] = i - start;
      total += lens[n] + 2;
      n++;
      start = i + 1;
    }
  }

  ws_deflate_params sp, cp;
  char resp[WS_DEFLATE_RESPONSE_MAX];
  const char *err = NULL;
  int r = ws_deflate_negotiate(values, lens, n, &cfg, &sp, resp, sizeof resp, &err);
  CHECK(r >= -1 && r <= 1);
  if (r < 0) CHECK(err != NULL);
  if (r == 1) {
    CHECK(err == NULL);
    CHECK(strlen(resp) < sizeof resp);
    CHECK(sp.server_max_window_bits >= 8 && sp.server_max_window_bits <= 15);
    CHECK(sp.client_max_window_bits >= 8 && sp.client_max_window_bits <= 15);
    /* The offers as one header value, as the client would have sent them. */
    char *joined = malloc(total + 1), *at = joined;
    CHECK(joined);
    for (size_t i = 0; i < n; i++) {
      if (i) { memcpy(at, ", ", 2); at += 2; }
      memcpy(at, values[i], lens[i]);
      at += lens[i];
    }
    ws_deflate_config ccfg;
    ws_deflate_config_default(&ccfg);
    int a = ws_deflate_accept_offer(joined, (size_t)(at - joined), resp, strlen(resp), &ccfg, &cp, &err);
    if (a != 1) fprintf(stderr, "response %s refused: %s\n", resp, err ? err : "-");
    CHECK(a == 1);
    CHECK(cp.server_no_context_takeover == sp.server_no_context_takeover);
    CHECK(cp.client_no_context_takeover >= sp.client_no_context_takeover);
    CHECK(cp.server_max_window_bits == sp.server_max_window_bits);
    CHECK(cp.client_max_window_bits == sp.client_max_window_bits);
    /* and streams built from both sides' parameters come up */
    ws_deflate *s = ws_deflate_new(&sp, &cfg, 0), *c = ws_deflate_new(&cp, &ccfg, 1);
    CHECK(s && c);
    ws_deflate_free(s);
    ws_deflate_free(c);
    free(joined);
  }

  /* The same bytes as a server's response to a typical browser offer. */
  static const char offer[] = "permessage-deflate; client_max_window_bits, permessage-deflate";
  char *whole = fuzz_copy(data, size);
  err = NULL;
  r = ws_deflate_accept_offer(offer, sizeof offer - 1, whole, size, &cfg, &cp, &err);
  CHECK(r >= -1 && r <= 1);
  if (r < 0) CHECK(err != NULL);
  if (r == 1) {
    CHECK(cp.server_max_window_bits >= 8 && cp.server_max_window_bits <= 15);
    CHECK(cp.client_max_window_bits >= 8 && cp.client_max_window_bits <= 15);
  }
  free(whole);
  for (size_t i = 0; i < n; i++) free((void *)values[i]);
  return 0;
}
