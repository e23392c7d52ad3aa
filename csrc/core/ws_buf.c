/* Growable, bounded byte buffer (see ws_buf.h). */
#include <stdlib.h>
#include <string.h>

#include "ws_buf.h"

uint8_t *ws_buf_reserve_grow(ws_buf *b, size_t want, size_t limit) {
  size_t used = b->len - b->head;
  if (b->cap - b->len >= want) return b->data + b->len;
  if (b->head > 0 && b->cap - used >= want) { /* room appears once the front is reclaimed */
    memmove(b->data, b->data + b->head, used);
    b->head = 0;
    b->len = (uint32_t)used;
    return b->data + b->len;
  }
  if (want > WS_BUF_MAX - used) return NULL;
  size_t need = used + want;
  if (limit && need > limit) return NULL;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap = cap > WS_BUF_MAX / 2 ? need : cap * 2;
  if (limit && cap > limit) cap = limit;
  uint8_t *p;
  if (b->head == 0) {
    p = realloc(b->data, cap);
    if (!p) return NULL;
  } else {
    p = malloc(cap);
    if (!p) return NULL;
    if (used) memcpy(p, b->data + b->head, used);
    free(b->data);
  }
  b->data = p;
  b->cap = (uint32_t)cap;
  b->head = 0;
  b->len = (uint32_t)used;
  return b->data + b->len;
}

int ws_buf_append(ws_buf *b, const void *p, size_t n, size_t limit) {
  if (n == 0) return 0;
  uint8_t *dst = ws_buf_reserve(b, n, limit);
  if (!dst) return -1;
  memcpy(dst, p, n);
  b->len += (uint32_t)n;
  return 0;
}

void ws_buf_free(ws_buf *b) {
  free(b->data);
  ws_buf_init(b);
}
