/* The write queue of a connection: segments written before the protocol engine's own output
 * (ws_conn_output). A segment is either bytes the connection owns (an earlier output, moved
 * here whole) or a reference to a frame shared by many connections (publish). Sealing the output
 * into a segment before queueing a shared frame keeps every byte in the order it was
 * produced, including automatic pongs and close replies. Flushing gathers everything into
 * one writev. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ws_rt_internal.h"

struct ws_segment {
  ws_segment *next;
  ws_shared *sh;  /* shared frame, or NULL for owned bytes in `own` */
  size_t off;     /* bytes of the shared frame already written */
  ws_buf own;
};

ws_shared *ws_shared_new(size_t len) {
  ws_shared *sh = malloc(sizeof *sh + len);
  if (!sh) return NULL;
  sh->refs = 1;
  sh->len = len;
  return sh;
}

void ws_shared_unref(ws_shared *sh) {
  if (sh && --sh->refs == 0) free(sh);
}

static size_t seg_size(const ws_segment *g) {
  return g->sh ? g->sh->len - g->off : ws_buf_size(&g->own);
}

/* Freed segments are kept for the next ones (a bounded list), so a publish to N subscribers
 * does not allocate N queue entries every time. The runtime runs on one thread (the loop's).
 * The bound is what a fan-out keeps queued at once: 1,000 subscribers with 16 messages in
 * flight hold 16,000 entries, and with a cache of 4,096 most of them were a malloc and a free
 * each (half the CPU of a 1 KiB fan-out under callgrind). At most 4 MiB are kept, given back
 * when the loop reclaims memory after a burst (ws_wqueue_trim). */
#define WS_SEG_CACHE_MAX 65536
static ws_segment *seg_cache;
static size_t seg_cached;

static ws_segment *seg_new(void) {
  ws_segment *g = seg_cache;
  if (!g) return malloc(sizeof *g);
  seg_cache = g->next;
  seg_cached--;
  return g;
}

void ws_wqueue_trim(void) {
  while (seg_cache) {
    ws_segment *g = seg_cache;
    seg_cache = g->next;
    free(g);
  }
  seg_cached = 0;
}

static void seg_free(ws_loop *loop, ws_segment *g) {
  if (g->sh) ws_shared_unref(g->sh);
  else { ws_buf_clear(&g->own); ws_pool_give(loop, &g->own); }
  if (seg_cached < WS_SEG_CACHE_MAX) {
    g->next = seg_cache;
    seg_cache = g;
    seg_cached++;
  } else {
    free(g);
  }
}

/* s->act is there: taken before the segment (ws_stream_act_get). */
static void seg_append(ws_stream *s, ws_segment *g) {
  ws_stream_act *a = s->act;
  g->next = NULL;
  if (a->seg_tail) a->seg_tail->next = g; else a->seg_head = g;
  a->seg_tail = g;
  a->seg_bytes += seg_size(g);
}

void ws_wqueue_seal(ws_stream *s) {
  if (ws_conn_output_size(&s->ws) == 0) return;
  if (!ws_stream_act_get(s)) return; /* the output stays where it is: still written, only after the shared frame */
  ws_segment *g = seg_new();
  if (!g) return; /* the active part stays: ws_stream_send_shared appends to it next */
  g->sh = NULL;
  g->off = 0;
  ws_conn_output_take(&s->ws, &g->own);
  seg_append(s, g);
}

/* Room for `want` more bytes in the connection's output without moving what it holds: a full buffer is sealed
 * into the queue (the same writev writes it first) and a fresh one of the size needed takes its
 * place. Growing it instead copies its bytes into a buffer twice its size: with sixteen 1 KiB
 * echoes in flight, 16 KiB copied for every sixteen messages. */
void ws_wqueue_room(ws_stream *s, size_t want) {
  ws_buf *out = ws_conn_output(&s->ws);
  if (!out->data) ws_pool_take(s->loop, out);
  if (out->cap - out->len >= want) return;
  if (ws_buf_size(out)) ws_wqueue_seal(s);
  ws_pool_grow(s->loop, out, want);
}

void ws_wqueue_free(ws_stream *s) {
  ws_stream_act *a = s->act;
  if (!a) return;
  ws_segment *g = a->seg_head;
  while (g) {
    ws_segment *next = g->next;
    seg_free(s->loop, g);
    g = next;
  }
  a->seg_head = a->seg_tail = NULL;
  a->seg_bytes = 0;
}

/* A shared frame this small is copied into the connection's output instead of being queued
 * by reference: a copy of a few dozen bytes costs less than a queue entry, and writing walks
 * one buffer instead of a list of entries scattered in memory (a publish to thousands). */
#define WS_SHARED_COPY_MAX 256

int ws_stream_send_shared(ws_stream *s, ws_shared *sh) {
  if (s->phase != WS_PH_OPEN) return -1;
  if (sh->len <= WS_SHARED_COPY_MAX) {
    ws_buf *out = ws_conn_output(&s->ws);
    if (!out->data) ws_pool_take(s->loop, out);
    ws_pool_grow(s->loop, out, sh->len);
    if (out->cap - out->len >= sh->len) { /* the usual case, once per subscriber: inline */
      memcpy(out->data + out->len, sh->data, sh->len);
      ws_buf_commit(out, sh->len);
    } else if (ws_buf_append(out, sh->data, sh->len, 0) < 0) {
      return -1;
    }
    s->flags |= WS_SF_SENT;
    ws_loop_mark_dirty(s->loop, s);
    return 0;
  }
  if (!ws_stream_act_get(s)) return -1;
  ws_segment *g = seg_new();
  if (!g) {
    ws_stream_act_put(s);
    return -1;
  }
  ws_wqueue_seal(s);
  g->sh = sh;
  g->off = 0;
  ws_buf_init(&g->own);
  sh->refs++;
  seg_append(s, g);
  s->flags |= WS_SF_SENT;
  ws_loop_mark_dirty(s->loop, s);
  return 0;
}

size_t ws_stream_buffered(const ws_stream *s) {
  return (s->act ? s->act->seg_bytes : 0) + ws_conn_output_size(&s->ws);
}

#define WS_IOV_MAX 64

size_t ws_stream_flush(ws_stream *s) {
  if (s->fd < 0 || s->phase == WS_PH_DONE || s->phase == WS_PH_NEW) return ws_stream_buffered(s);
  for (;;) {
    struct iovec iov[WS_IOV_MAX];
    int n = 0;
    size_t total = 0;
    ws_stream_act *a = s->act;
    ws_segment *first = a ? a->seg_head : NULL;
    for (ws_segment *g = first; g && n < WS_IOV_MAX - 1; g = g->next) {
      size_t len = seg_size(g);
      if (!len) continue;
      iov[n].iov_base = g->sh ? g->sh->data + g->off : ws_buf_begin(&g->own);
      iov[n].iov_len = len;
      total += len;
      n++;
    }
    size_t outlen = ws_conn_output_size(&s->ws);
    int whole = first == NULL || n < WS_IOV_MAX - 1;
    if (outlen && whole) {
      iov[n].iov_base = (void *)(uintptr_t)ws_conn_output_data(&s->ws);
      iov[n].iov_len = outlen;
      total += outlen;
      n++;
    }
    if (n == 0) break;
    ssize_t w = s->tp->writev(s, iov, n);
    if (w < 0) {
      if (errno == EAGAIN) {
        s->wait_write = 1;
        ws_stream_update_io(s);
        ws_stream_on_flushed(s, 0);
        return ws_stream_buffered(s);
      }
      ws_stream_fail_io(s, errno);
      return 0;
    }
    size_t left = (size_t)w;
    while (left && a && a->seg_head) {
      ws_segment *g = a->seg_head;
      size_t len = seg_size(g);
      if (left < len) {
        if (g->sh) g->off += left; else ws_buf_consume(&g->own, left);
        a->seg_bytes -= left;
        left = 0;
        break;
      }
      left -= len;
      a->seg_bytes -= len;
      a->seg_head = g->next;
      if (!a->seg_head) {
        a->seg_tail = NULL;
        seg_free(s->loop, g);
        ws_stream_act_put(s);
        a = NULL;
        break;
      }
      seg_free(s->loop, g);
    }
    if (left) ws_conn_output_consume(&s->ws, left);
    if ((size_t)w < total) { /* the socket is full: wait until it is writable */
      s->wait_write = 1;
      ws_stream_update_io(s);
      ws_stream_on_flushed(s, 0);
      return ws_stream_buffered(s);
    }
    if (whole) break; /* all of it was gathered and written: no second look */
  }
  if (s->wait_write) {
    s->wait_write = 0;
    ws_stream_update_io(s);
  }
  ws_stream_on_flushed(s, 1);
  return ws_stream_buffered(s);
}
