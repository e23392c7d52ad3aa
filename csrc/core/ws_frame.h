/* RFC 6455 section 5 framing: frame headers in and out, and (un)masking.
 * Pure functions over caller buffers; no allocation. */
#ifndef WS_FRAME_H
#define WS_FRAME_H

#include "ws_common.h"

#define WS_FRAME_HEADER_MAX 14 /* 2 + 8 (64-bit length) + 4 (mask key) */

typedef struct ws_frame_header { /* 16 bytes: a connection keeps one for the frame it reads */
  uint64_t payload_len;
  uint8_t mask[4];
  unsigned fin : 1;
  unsigned rsv : 3;        /* RSV1 = 4, RSV2 = 2, RSV3 = 1 */
  unsigned opcode : 4;
  unsigned masked : 1;
  unsigned header_len : 4; /* bytes the header took on the wire (2 to 14) */
} ws_frame_header;

/* Parse a frame header from p[0..n). Returns the header length (2..14) and fills *h, or
 * WS_AGAIN when more bytes are needed, or WS_ERROR (64-bit length with the top bit set,
 * non-minimal length encodings are accepted as the RFC allows decoders to). Semantic
 * checks (opcodes, masking direction, RSV, control frame rules) belong to ws_conn. */
int ws_frame_parse_header(const uint8_t *p, size_t n, ws_frame_header *h) WS_HIDDEN;

/* Write a frame header into out (at least WS_FRAME_HEADER_MAX bytes); returns its length.
 * `mask` is NULL for an unmasked frame. */
size_t ws_frame_write_header(uint8_t *out, int fin, unsigned rsv, unsigned opcode,
                             uint64_t payload_len, const uint8_t mask[4]) WS_HIDDEN;

/* XOR n bytes of src with the 4-byte key into dst (dst may equal src), starting at key
 * position `phase` (0..3) so a payload can be (un)masked in pieces as it arrives.
 * Returns the phase for the next piece. Works 16 bytes (SSE2) or a machine word at a time. */
size_t ws_mask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4],
               size_t phase) WS_HIDDEN;
/* ws_mask that also tells whether any byte it wrote has the top bit set (*high = 1) or all
 * are ASCII (*high = 0): a text payload of ASCII needs no UTF-8 check after its unmask. */
size_t ws_mask_ascii(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4],
                     size_t phase, int *high) WS_HIDDEN;

#endif
