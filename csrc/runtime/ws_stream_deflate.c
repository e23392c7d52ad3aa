/* permessage-deflate on a server connection: hands every Sec-WebSocket-Extensions value of
 * the request to the core's negotiation (ws_deflate_negotiate decides everything) with the
 * listener's settings, and attaches the state to the connection. The state holds no zlib
 * memory yet: dedicated streams are created at the first compressed message and freed with
 * the connection (ws_conn_free); shared ones are borrowed per message (ws_deflate.c). */
#include "ws_rt_internal.h"

int ws_stream_deflate_negotiate(ws_stream *s, const ws_request *req, int attach, char *resp,
                                size_t cap, const char **error) {
  const char *values[WS_MAX_HEADERS];
  size_t lens[WS_MAX_HEADERS], n = 0;
  const char *dummy;
  if (!error) error = &dummy;
  *error = NULL;
  if (!s->cfg || s->cfg->deflate_mode == WS_DEFLATE_OFF) return 0;
  ws_deflate_config cfg = s->cfg->deflate;
  cfg.no_context_takeover = s->cfg->deflate_mode == WS_DEFLATE_SHARED;
  for (const ws_header *h = ws_request_header(req, "sec-websocket-extensions", NULL); h && n < WS_MAX_HEADERS;
       h = ws_request_header(req, "sec-websocket-extensions", h)) {
    values[n] = h->value;
    lens[n++] = h->value_len;
  }
  if (n == 0) return 0;
  ws_deflate_params params;
  int r = ws_deflate_negotiate(values, lens, n, &cfg, &params, resp, cap, error);
  if (r <= 0 || !attach) return r;
  ws_deflate *d = ws_deflate_new(&params, &cfg, WS_ROLE_SERVER);
  if (!d) return 0; /* no memory for the state: the connection goes on uncompressed */
  ws_conn_set_deflate(&s->ws, d);
  int bits = ws_deflate_clamp_bits(cfg.window_bits);
  if (params.server_max_window_bits < bits) bits = params.server_max_window_bits;
  s->deflate_bits = (uint8_t)bits;
  return 1;
}
