/* A growable byte buffer with a hard limit. Data lives in [data + head, data + len);
 * consumed bytes at the front are reclaimed lazily by ws_buf_reserve, so a reader can
 * consume a little at a time without memmove on every call. */
#ifndef WS_BUF_H
#define WS_BUF_H

#include "ws_common.h"

/* Offsets and capacity are 32-bit: a connection holds several of these for as long as it
 * lives, and no buffer grows past WS_BUF_MAX bytes (ws_buf_reserve fails beyond it, as when
 * memory runs out). */
#define WS_BUF_MAX UINT32_MAX
typedef struct ws_buf {
  uint8_t *data;
  uint32_t head;  /* first unread byte */
  uint32_t len;   /* one past the last written byte */
  uint32_t cap;
} ws_buf;

static inline void ws_buf_init(ws_buf *b) { b->data = NULL; b->head = b->len = b->cap = 0; }
static inline size_t ws_buf_size(const ws_buf *b) { return b->len - b->head; }
static inline uint8_t *ws_buf_begin(const ws_buf *b) { return b->data + b->head; }
static inline void ws_buf_clear(ws_buf *b) { b->head = b->len = 0; }

/* Make room for `want` more bytes after the data, growing to at most `limit` bytes of
 * capacity (0: no limit). Returns a pointer to the free space, or NULL when the limit or
 * memory does not allow it (the buffer is unchanged then). */
uint8_t *ws_buf_reserve_grow(ws_buf *b, size_t want, size_t limit) WS_HIDDEN;
static inline uint8_t *ws_buf_reserve(ws_buf *b, size_t want, size_t limit) {
  if (b->cap - b->len >= want) return b->data + b->len; /* the usual case, inline */
  return ws_buf_reserve_grow(b, want, limit);
}
/* Append bytes; returns 0 or -1 (limit or out of memory, nothing appended). */
int ws_buf_append(ws_buf *b, const void *p, size_t n, size_t limit) WS_HIDDEN;
/* Mark n bytes written after ws_buf_reserve. */
static inline void ws_buf_commit(ws_buf *b, size_t n) { b->len += (uint32_t)n; }
/* Drop n bytes from the front. */
static inline void ws_buf_consume(ws_buf *b, size_t n) {
  b->head += (uint32_t)n;
  if (b->head == b->len) b->head = b->len = 0;
}
/* Release the memory (the buffer stays usable, empty). */
void ws_buf_free(ws_buf *b) WS_HIDDEN;

#endif
