/* permessage-deflate (RFC 7692): negotiation of the extension parameters and per-message
 * compression with zlib. Sans-I/O; memory is bounded (inflate stops at a limit) and zlib
 * streams are created lazily. */
#ifndef WS_DEFLATE_H
#define WS_DEFLATE_H

#include "ws_buf.h"
#include "ws_common.h"

typedef struct ws_deflate_params {
  int server_no_context_takeover;
  int client_no_context_takeover;
  int server_max_window_bits;   /* 8..15; 15 when not negotiated */
  int client_max_window_bits;   /* 8..15; 15 when not negotiated */
} ws_deflate_params;

typedef struct ws_deflate_config {
  int no_context_takeover;      /* "shared" mode: both directions reset after every message */
  int window_bits;              /* our windows (8..15; 8 runs as zlib's 9, see ws_deflate_new) */
  int mem_level;                /* zlib memLevel 1..9 */
  int level;                    /* zlib compression level 0..9 (speed against size) */
  size_t threshold;             /* messages shorter than this go uncompressed */
} ws_deflate_config;

void ws_deflate_config_default(ws_deflate_config *cfg) WS_HIDDEN;

/* A window size limited to 8..15. */
int ws_deflate_clamp_bits(int bits) WS_HIDDEN;

/* Room enough for any response or offer value we build (with its NUL). */
#define WS_DEFLATE_RESPONSE_MAX 160

/* Server: look at every Sec-WebSocket-Extensions value (n of them), take the first
 * permessage-deflate offer that can be met, fill *params and write the response value
 * (NUL-terminated) into resp. Returns 1 when accepted, 0 when no offer (or none that can be
 * met), -1 when an offer is malformed (answer 400; *error says why). "Malformed" is the
 * header's syntax (RFC 6455 9.1); an offer with an unknown, repeated or out-of-range
 * parameter is declined as RFC 7692 section 5 requires (0, or the next offer is taken), and
 * *error then names the reason the last one was declined (NULL when none was offered).
 * params gets the agreed values; window bits are 15 when a side is not limited. */
int ws_deflate_negotiate(const char *const *values, const size_t *lens, size_t n,
                         const ws_deflate_config *cfg, ws_deflate_params *params,
                         char *resp, size_t resp_cap, const char **error) WS_HIDDEN;

/* Client: our offer (NUL-terminated) for the request, and the check of the server's answer.
 * Both checks return 1 (accepted, *params filled), 0 (the response has no
 * permessage-deflate: no compression) or -1 (fail the connection; *error says why).
 * ws_deflate_accept checks against the offer ws_deflate_offer makes for cfg;
 * ws_deflate_accept_offer against the offer actually sent (one or several elements). */
int ws_deflate_offer(const ws_deflate_config *cfg, char *out, size_t cap) WS_HIDDEN;
int ws_deflate_accept(const char *value, size_t len, const ws_deflate_config *cfg,
                      ws_deflate_params *params, const char **error) WS_HIDDEN;
int ws_deflate_accept_offer(const char *offer, size_t offer_len, const char *value, size_t len,
                            const ws_deflate_config *cfg, ws_deflate_params *params,
                            const char **error) WS_HIDDEN;

typedef struct ws_deflate ws_deflate;

/* A direction with context takeover keeps its own zlib stream from its first message on.
 * One without it borrows a stream from those the process keeps idle (one per shape; safe
 * across threads) for one message -- from its first piece to its last when inflating --
 * and gives it back reset, so an idle state holds no zlib memory. */

/* role is WS_ROLE_SERVER or WS_ROLE_CLIENT (ws_conn.h): it says which parameters apply to
 * our compressor and which to our decompressor. Returns NULL when out of memory. */
ws_deflate *ws_deflate_new(const ws_deflate_params *params, const ws_deflate_config *cfg, int role) WS_HIDDEN;
void ws_deflate_free(ws_deflate *d) WS_HIDDEN;

/* Compress one whole message, appending the payload (without the final 00 00 ff ff) to
 * out. Returns 0 or -1. */
int ws_deflate_compress(ws_deflate *d, const uint8_t *p, size_t n, ws_buf *out) WS_HIDDEN;

/* The same from no context, leaving d's own untouched: a payload that any peer of a
 * connection with d's settings (window, level, memLevel) inflates, whatever it received
 * before (one message compressed once for many connections). Returns 0 or -1. */
int ws_deflate_compress_fresh(const ws_deflate *d, const uint8_t *p, size_t n, ws_buf *out) WS_HIDDEN;

/* Inflate the next piece of a compressed message, appending to out; `fin` marks the last
 * piece. Fails (-1, *error set) as soon as out would exceed `max` bytes, before using that
 * memory ("message over max_message"), or on corrupt data ("invalid compressed data").
 * Returns 0. */
int ws_deflate_inflate(ws_deflate *d, const uint8_t *p, size_t n, int fin, ws_buf *out,
                       size_t max, const char **error) WS_HIDDEN;

/* Forget the compressor's context: the next message refers to nothing compressed before it.
 * For a host that puts a message compressed elsewhere on this connection (one frame shared
 * by many connections): the peer's window now holds that message, ours does not. */
void ws_deflate_reset_output(ws_deflate *d) WS_HIDDEN;

/* Bytes of memory the zlib streams this state holds now (a borrowed one only while its
 * message is in progress), plus the state itself (for measurements). */
size_t ws_deflate_memory(const ws_deflate *d) WS_HIDDEN;

/* The config's threshold: messages shorter than this are better sent uncompressed. */
size_t ws_deflate_threshold(const ws_deflate *d) WS_HIDDEN;

#endif
