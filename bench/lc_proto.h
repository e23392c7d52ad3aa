/* The client side of RFC 6455 as the load client needs it: the upgrade request with a random
 * key and the check of the 101 answer, masked frames out, frame headers in. Self-contained (it
 * does not link the library under test), with SHA-1, base64 and randomness from libcrypto. */
#ifndef LC_PROTO_H
#define LC_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define LC_KEY_LEN 24     /* base64 of 16 random bytes */
#define LC_ACCEPT_LEN 28  /* base64 of a SHA-1 digest */
#define LC_HEADER_MAX 14  /* 2 + 8 (64-bit length) + 4 (mask key) */

/* Random 4-byte mask keys, drawn from OpenSSL's RAND a block at a time so that a frame costs
 * no RAND call of its own. */
void lc_mask_key(uint8_t key[4]);

/* Fill out (at least LC_KEY_LEN + 1 bytes) with a fresh Sec-WebSocket-Key; 0 or -1. */
int lc_client_key(char *out);
/* The Sec-WebSocket-Accept value the server must answer for key (NUL-terminated). */
void lc_accept_for(const char *key, char out[LC_ACCEPT_LEN + 1]);
/* The upgrade request for ws://127.0.0.1:port/path; returns its length (or 0 if cap is short). */
size_t lc_upgrade_request(char *out, size_t cap, int port, const char *path, const char *key);

/* Look at a response head in buf[0..n): returns the head's length once it is complete and is a
 * valid 101 carrying the right Accept value, 0 when more bytes are needed, -1 when it is not an
 * acceptable upgrade (*why says what). */
long lc_check_upgrade(const char *buf, size_t n, const char *expected_accept, const char **why);

/* Write a frame header (FIN set, no RSV) into out; mask NULL for an unmasked frame. */
size_t lc_frame_header(uint8_t *out, unsigned opcode, uint64_t len, const uint8_t *mask);

/* XOR n bytes of src with key into dst (dst may equal src), starting at key phase 0. */
void lc_mask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4]);

typedef struct lc_frame {
  int fin, rsv, opcode, masked;
  uint8_t mask[4];
  uint64_t len;
  size_t header_len;
} lc_frame;

/* Parse a frame header from p[0..n): header length, 0 when more bytes are needed, -1 when the
 * 64-bit length has its top bit set. */
int lc_parse_frame(const uint8_t *p, size_t n, lc_frame *f);

/* ---- permessage-deflate (RFC 7692), for --deflate ----
 * The client offers plain "permessage-deflate" and takes the parameters the server answers:
 * server_no_context_takeover (our inflater is reset after every message, so a server that
 * still refers to an earlier message fails with invalid data), client_no_context_takeover (our
 * deflater is reset after every message), server_max_window_bits (our inflater's window; a
 * server that uses a larger one fails). client_max_window_bits in an answer to an offer
 * without it fails the connection (RFC 7692 7.1.2.2), as do unknown or repeated parameters. */
#define LC_DEFLATE_OFFER "Sec-WebSocket-Extensions: permessage-deflate\r\n"

typedef struct lc_pmd_params {
  int server_no_context_takeover, client_no_context_takeover;
  int server_max_window_bits, client_max_window_bits; /* 15 when not named */
} lc_pmd_params;

/* The extension answered in the response head buf[0..n): 1 with *params filled when it agreed
 * to permessage-deflate, 0 when it named no extension, -1 when the answer is unacceptable
 * (*why says what). */
int lc_deflate_answer(const char *buf, size_t n, lc_pmd_params *params, const char **why);

/* Insert a header line (ending in \r\n) before the blank line that ends request req[0..n);
 * returns the new length, 0 when cap is too small. */
size_t lc_add_header(char *req, size_t n, size_t cap, const char *line);

typedef struct lc_pmd lc_pmd;
lc_pmd *lc_pmd_new(const lc_pmd_params *params, int level);
void lc_pmd_free(lc_pmd *d);
/* Compress one message; *out points into the state's buffer until the next call (the payload
 * without its final 00 00 ff ff). 0 or -1. */
int lc_pmd_compress(lc_pmd *d, const uint8_t *a, size_t na, const uint8_t *b, size_t nb,
                    const uint8_t **out, size_t *out_len);
/* Inflate one whole message payload p[0..n) (all its frames joined); *out as above; -1 with
 * *why on corrupt data or more than max bytes. */
int lc_pmd_inflate(lc_pmd *d, const uint8_t *p, size_t n, size_t max, const uint8_t **out, size_t *out_len,
                   const char **why);

/* A JSON-like text body of exactly n bytes (n >= 24), different for every index and the same
 * for the same index: {"seq":"XXXXXXXX","items":[{...},...]} where bytes 8..15 (the X) are left
 * for the sequence number. Objects with a handful of keys, words from a small vocabulary and
 * varying numbers: compresses about as well as real chat or event JSON. */
void lc_json_body(uint8_t *out, size_t n, uint32_t index);
#define LC_JSON_SEQ_AT 8

#endif
