/* Runtime-private declarations shared by the files of csrc/runtime (loop, streams, write
 * queue, listeners, transports). The binding uses ws_rt.h only. */
#ifndef WS_RT_INTERNAL_H
#define WS_RT_INTERNAL_H

#include <ev.h>

#include "ws_rt.h"

#define WS_CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#define WS_EV_IO(s) ((ev_io *)(void *)&(s)->io)

/* Stream flags. */
#define WS_SF_DIRTY 0x01       /* on the loop's flush list */
#define WS_SF_PAUSED 0x02      /* reading stopped: the inbox holds max_queue messages */
#define WS_SF_PING_OUT 0x04    /* our automatic ping awaits an answer */
#define WS_SF_WANT_DRAIN 0x08  /* a writer waits for the low-water mark */
#define WS_SF_SHUT 0x10        /* our side is shut down for writing */
#define WS_SF_TLS_DONE 0x20    /* the transport handshake finished */
#define WS_SF_HELD 0x40        /* the inbox's one message is s->held, inside ws_conn's buffers */
#define WS_SF_SENT 0x80        /* a message was queued since the last flush: activity for
                                  idle_timeout, recorded once per flush (ws_loop.c) */

struct ev_loop *ws_loop_ev(ws_loop *loop) WS_HIDDEN;
const ws_hooks *ws_loop_hooks(ws_loop *loop) WS_HIDDEN;
void ws_loop_mark_dirty(ws_loop *loop, ws_stream *s) WS_HIDDEN;
void ws_loop_unmark_dirty(ws_loop *loop, ws_stream *s) WS_HIDDEN;
ws_listener **ws_loop_listener_head(ws_loop *loop) WS_HIDDEN;

/* Buffer pool: idle connections keep no I/O buffers; busy ones borrow pooled memory so that
 * no message and no flush allocates (the pool follows the number of busy connections). */
#define WS_POOL_BUF 16384
void ws_pool_take(ws_loop *loop, ws_buf *b) WS_HIDDEN;  /* b empty and unallocated -> pooled memory */
void ws_pool_give(ws_loop *loop, ws_buf *b) WS_HIDDEN;  /* b empty -> memory back to the pool (or freed) */
/* Make room for `want` more bytes in b with a pooled buffer of the next size that fits (the
 * old one goes back to the pool); when none is at hand nothing happens and ws_buf_reserve
 * grows b as usual. */
void ws_pool_regrow(ws_loop *loop, ws_buf *b, size_t want) WS_HIDDEN;
static inline void ws_pool_grow(ws_loop *loop, ws_buf *b, size_t want) {
  if (b->cap - b->len < want) ws_pool_regrow(loop, b, want); /* the common case: it fits */
}
/* The loop's one receive buffer, lent to one stream at a time while it reads and parses
 * (ws_stream.c): NULL when it is lent already or memory ran out. Give it back with the buffer
 * the stream has now (the same memory, whatever it holds) or NULL when the stream kept or
 * freed it. */
ws_buf *ws_loop_recv_take(ws_loop *loop) WS_HIDDEN;
void ws_loop_recv_back(ws_loop *loop, ws_buf *b) WS_HIDDEN;
/* A parsed request's memory (ws_request is some 3 KiB, for the longest head): a handshake takes
 * one as its head arrives and gives it back at the upgrade, so the loop keeps up to
 * WS_REQ_SPARE of them for the next handshakes instead of a malloc and free of each (given
 * back to the system with the pool's reclaim after a burst). Take returns NULL when out of
 * memory. */
#define WS_REQ_SPARE 16
ws_request *ws_loop_request_take(ws_loop *loop) WS_HIDDEN;
void ws_loop_request_give(ws_loop *loop, ws_request *r) WS_HIDDEN;
/* Nonzero when enough streams kept the receive buffer since the last prepare (ws_loop.c,
 * WS_RECV_KEPT_MAX): a stream with nothing received reads at the next iteration. */
int ws_loop_recv_spent(const ws_loop *loop) WS_HIDDEN;
/* A listener accepted a connection / one of its connections closed: the loop follows their
 * number to give memory back after a burst (ws_loop.c, reclaim). */
void ws_loop_conn_opened(ws_loop *loop) WS_HIDDEN;
void ws_loop_conn_closed(ws_loop *loop) WS_HIDDEN;

/* A stream's active part (ws_stream_act): the loop keeps up to WS_ACT_SPARE given back for
 * the next. Take returns NULL when out of memory; the block comes zeroed. */
#define WS_ACT_SPARE 1024
ws_stream_act *ws_loop_act_take(ws_loop *loop) WS_HIDDEN;
void ws_loop_act_give(ws_loop *loop, ws_stream_act *a) WS_HIDDEN;
/* The stream's active part, taken when it has none (NULL when out of memory). */
static inline ws_stream_act *ws_stream_act_get(ws_stream *s) {
  return s->act ? s->act : (s->act = ws_loop_act_take(s->loop));
}
/* Give it back when its inbox, held message and write queue are all empty. */
static inline void ws_stream_act_put(ws_stream *s) {
  ws_stream_act *a = s->act;
  if (a && !s->inbox_count && !a->inbox.data && !a->seg_head) {
    s->act = NULL;
    ws_loop_act_give(s->loop, a);
  }
}
static inline size_t ws_stream_inbox_bytes(const ws_stream *s) {
  return s->act ? ws_buf_size(&s->act->inbox) : 0;
}

/* Stream deadlines: one binary heap per loop ordered by s->deadline, and one libev timer for
 * the earliest, instead of an ev_timer per stream (48 bytes in the stream and 16 in libev's
 * heap): an idle connection keeps a double and a slot. ws_stream_on_deadline runs when one is
 * due, after it has left the heap. */
void ws_loop_deadline_set(ws_loop *loop, ws_stream *s, double at) WS_HIDDEN; /* on ws_loop_now's clock */
void ws_loop_deadline_clear(ws_loop *loop, ws_stream *s) WS_HIDDEN;
/* The stream's deadline in `after` seconds from now; after < 0: none. */
void ws_stream_set_deadline(ws_stream *s, double after) WS_HIDDEN;

/* ws_stream.c */
void ws_stream_on_deadline(ws_stream *s) WS_HIDDEN;
void ws_stream_on_flushed(ws_stream *s, int all) WS_HIDDEN;  /* after a flush; all: queue empty */
void ws_stream_fail_io(ws_stream *s, int err) WS_HIDDEN;
void ws_stream_update_io(ws_stream *s) WS_HIDDEN;

/* ws_wqueue.c */
void ws_wqueue_seal(ws_stream *s) WS_HIDDEN;  /* move the output to the segment queue, keeping order */
void ws_wqueue_free(ws_stream *s) WS_HIDDEN;
void ws_wqueue_room(ws_stream *s, size_t want) WS_HIDDEN; /* room in ws.out, without copying it */
void ws_wqueue_trim(void) WS_HIDDEN;  /* free the cached queue entries (the loop is going, or reclaims) */

#endif
