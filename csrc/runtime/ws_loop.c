/* The event loop around libev: the flush-and-run step before each poll (queued coroutines
 * run, then every connection with output is written once: gathered writes), timers for the
 * binding, signals, and the pool of I/O buffers. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "ws_rt_internal.h"

/* The binding embeds watchers as blobs; they must be big enough. */
typedef char ws_check_io_size[sizeof(ev_io) <= WS_WATCHER_BYTES ? 1 : -1];
typedef char ws_check_timer_size[sizeof(ev_timer) <= WS_WATCHER_BYTES ? 1 : -1];

#define WS_MAX_SIGNALS 4
#define WS_PREPARE_ROUNDS 64
#define WS_BIG_MAX 4             /* grown buffers kept by the loop ... */
#define WS_BIG_KEEP (4u << 20)   /* ... of at most this capacity each */
/* The pool keeps freed I/O buffers in size classes of WS_POOL_BUF << k. Each class grows to
 * what the busy connections borrow at once (a buffer is taken when a connection has output
 * or unread messages and given back when they are gone, so at a thousand busy connections a
 * thousand are out at the top of every iteration), up to WS_POOL_BYTES of memory per class.
 * Once a second, the buffers a class did not lend at all during the last second are freed,
 * down to WS_POOL_KEEP: the pool follows the load down again. */
#define WS_POOL_CLASSES 5          /* 16 KiB to 256 KiB */
#define WS_POOL_BYTES (64u << 20)
#define WS_POOL_KEEP 32
#define WS_POOL_TRIM 1.0           /* seconds between trims */
/* The receive buffer every stream reads into (ws_loop_recv_take): larger than any ws_conn's
 * input limit, so the protocol engine never has to grow it. */
#define WS_RECV_BUF (256u * 1024u)
/* Giving memory back after a burst (reclaim, below): when the connections fall to half their
 * peak, and by this many at least. */
#define WS_RECLAIM_DROP 32

/* The receive buffer is of the pool's largest class: one a stream took over goes back to the
 * pool, and the loop takes its next one from there. */
typedef char ws_check_recv_class[WS_RECV_BUF == (size_t)WS_POOL_BUF << (WS_POOL_CLASSES - 1) ? 1 : -1];

typedef struct ws_pool_class {
  void **bufs;
  size_t n, cap;
  size_t low;                /* fewest pooled since the last trim: never needed meanwhile */
} ws_pool_class;

struct ws_loop {
  struct ev_loop *ev;
  ev_prepare prepare;
  ev_idle idle;
  ev_signal sig[WS_MAX_SIGNALS];
  ws_hooks hooks;
  void *user;
  ws_stream *dirty;  /* doubly linked through dprev/dnext */
  int owns_ev;       /* libev's default loop was created here */
  ws_pool_class pool[WS_POOL_CLASSES];
  ev_timer pool_timer;       /* the trim; unreferenced: it keeps no loop running */
  ws_buf recv;               /* the shared receive buffer ... */
  int recv_lent;             /* ... while a stream reads into it */
  size_t nbig;               /* grown buffers kept for the next large message (ws_pool_grow) */
  ws_buf big[WS_BIG_MAX];
  double now;                /* the loop's clock (see ws_loop_now) ... */
  double now_stamp;          /* ... as read after libev's clock showed this ev_now() */
  size_t conns, conns_peak;  /* accepted connections open now, and their peak since the last
                                reclaim */
  int reclaim_due;           /* nonzero: the trim after next gives memory back (reclaim) */
  size_t conns_settled;      /* connections at the last reclaim: a rise from here is watched */
  size_t conns_tick;         /* while a rise is watched (grow_watch), the count at the last trim */
  int grow_watch;
  ws_listener *listeners;    /* linked through next_l/prev_l (ws_listen.c) */
  ws_counters ctr;           /* client connections and retired listeners */
  ws_stream **dl;            /* the streams' deadline heap (earliest first) ... */
  uint32_t ndl, dl_cap;
  ev_timer dl_timer;         /* ... and its timer, armed for dl_armed (or later) */
  double dl_armed;
  double dl_pass;            /* the clock of the pass running due deadlines, 0 outside one */
  size_t nreq;               /* parsed requests kept for the next handshakes (ws_loop_request_take) */
  ws_request *req[WS_REQ_SPARE];
};

ws_counters *ws_loop_counters(ws_loop *loop) { return &loop->ctr; }
ws_listener *ws_loop_listeners(ws_loop *loop) { return loop->listeners; }
ws_listener **ws_loop_listener_head(ws_loop *loop) { return &loop->listeners; }

void ws_code_count_add(ws_code_count *t, unsigned code, uint64_t n) {
  for (int i = 0; i < WS_CODE_SLOTS; i++) {
    if (t[i].n == 0 || t[i].code == code) {
      t[i].code = code;
      t[i].n += n;
      return;
    }
  }
  t[WS_CODE_SLOTS - 1].code = 0; /* full: the last slot counts every other code */
  t[WS_CODE_SLOTS - 1].n += n;
}

void ws_counters_add(ws_counters *into, const ws_counters *from) {
  into->open += from->open;
  into->accepted += from->accepted;
  into->msgs_in += from->msgs_in;
  into->bytes_in += from->bytes_in;
  into->msgs_out += from->msgs_out;
  into->bytes_out += from->bytes_out;
  into->dropped += from->dropped;
  into->ping_timeouts += from->ping_timeouts;
  into->tls_failures += from->tls_failures;
  for (int i = 0; i < WS_CODE_SLOTS && from->closes[i].n; i++)
    ws_code_count_add(into->closes, from->closes[i].code, from->closes[i].n);
  for (int i = 0; i < WS_CODE_SLOTS && from->refused[i].n; i++)
    ws_code_count_add(into->refused, from->refused[i].code, from->refused[i].n);
}

struct ev_loop *ws_loop_ev(ws_loop *loop) { return loop->ev; }
const ws_hooks *ws_loop_hooks(ws_loop *loop) { return &loop->hooks; }
void *ws_loop_user(ws_loop *loop) { return loop->user; }
void *ws_loop_evloop(ws_loop *loop) { return loop->ev; }
/* The loop's clock is CLOCK_MONOTONIC, not ev_now(): libev keeps ev_now() in step with the
 * wall clock, so a step of the system time (NTP, a resumed virtual machine) would jump every
 * deadline and duration computed from it (ws.now(), receive timeouts, ping and idle checks).
 * Like ev_now() it stands still between libev's clock updates (after each poll, and
 * ev_now_update): it is read again at the first call after ev_now() moved. */
static double monotonic_seconds(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return ev_time();
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double ws_loop_now(ws_loop *loop) {
  double stamp = ev_now(loop->ev);
  if (stamp != loop->now_stamp) {
    loop->now_stamp = stamp;
    loop->now = monotonic_seconds();
  }
  return loop->now;
}

void ws_loop_touch(ws_loop *loop) {
  ev_now_update(loop->ev); /* timers started next count from now too */
  loop->now_stamp = ev_now(loop->ev);
  loop->now = monotonic_seconds();
}

void ws_loop_mark_dirty(ws_loop *loop, ws_stream *s) {
  if (s->flags & WS_SF_DIRTY) return;
  s->flags |= WS_SF_DIRTY;
  s->dprev = NULL;
  s->dnext = loop->dirty;
  if (loop->dirty) loop->dirty->dprev = s;
  loop->dirty = s;
}

void ws_loop_unmark_dirty(ws_loop *loop, ws_stream *s) {
  if (!(s->flags & WS_SF_DIRTY)) return;
  s->flags &= (uint8_t)~WS_SF_DIRTY;
  if (s->dprev) s->dprev->dnext = s->dnext; else loop->dirty = s->dnext;
  if (s->dnext) s->dnext->dprev = s->dprev;
  s->dprev = s->dnext = NULL;
}

/* Write every stream that has output; returns how many were written. A message sent counts as
 * activity (idle_timeout) here, once per stream and flush, rather than at every send or for
 * every subscriber of every publish. */
static int flush_dirty(ws_loop *loop) {
  int n = 0;
  double now = -1;
  while (loop->dirty) {
    ws_stream *s = loop->dirty;
    ws_loop_unmark_dirty(loop, s);
    if (s->flags & WS_SF_SENT) {
      if (now < 0) now = ws_loop_now(loop);
      s->last_activity = now;
      s->flags &= (uint8_t)~WS_SF_SENT;
    }
    ws_stream_flush(s);
    n++;
  }
  return n;
}

static void on_prepare(struct ev_loop *ev, ev_prepare *w, int revents) {
  ws_loop *loop = WS_CONTAINER(w, ws_loop, prepare);
  size_t left = 0;
  (void)ev; (void)revents;
  for (int round = 0; round < WS_PREPARE_ROUNDS; round++) {
    left = loop->hooks.run_ready ? loop->hooks.run_ready(loop) : 0;
    int flushed = flush_dirty(loop);
    if (left == 0 && flushed == 0) break;
  }
  /* Work queued after the last round runs next iteration, without blocking in the poll. */
  if (left) ev_idle_start(loop->ev, &loop->idle);
  else if (ev_is_active(&loop->idle)) ev_idle_stop(loop->ev, &loop->idle);
}

static void on_pool_timer(struct ev_loop *ev, ev_timer *w, int revents);
static void on_deadlines(struct ev_loop *ev, ev_timer *w, int revents);

static void on_idle(struct ev_loop *ev, ev_idle *w, int revents) {
  /* Only here so that the poll does not block; the prepare watcher does the work. */
  (void)ev; (void)w; (void)revents;
}

static void on_signal(struct ev_loop *ev, ev_signal *w, int revents) {
  ws_loop *loop = w->data;
  (void)ev; (void)revents;
  if (loop->hooks.signal) loop->hooks.signal(loop, w->signum);
}

ws_loop *ws_loop_new(void *evloop, const ws_hooks *hooks, void *user) {
  ws_loop *loop = calloc(1, sizeof *loop);
  if (!loop) return NULL;
  loop->ev = evloop ? (struct ev_loop *)evloop : ev_default_loop(EVFLAG_AUTO);
  if (!loop->ev) { free(loop); return NULL; }
  loop->owns_ev = evloop == NULL;
  loop->hooks = *hooks;
  loop->user = user;
  ev_prepare_init(&loop->prepare, on_prepare);
  ev_prepare_start(loop->ev, &loop->prepare);
  ev_unref(loop->ev); /* the flush step alone must not keep ev_run going */
  ev_idle_init(&loop->idle, on_idle);
  ev_timer_init(&loop->pool_timer, on_pool_timer, WS_POOL_TRIM, WS_POOL_TRIM);
  ev_timer_init(&loop->dl_timer, on_deadlines, 0., 0.);
  return loop;
}

void ws_loop_free(ws_loop *loop) {
  if (!loop) return;
  ev_ref(loop->ev); /* undo the ev_unref of ws_loop_new before stopping */
  ev_prepare_stop(loop->ev, &loop->prepare);
  if (ev_is_active(&loop->idle)) ev_idle_stop(loop->ev, &loop->idle);
  for (int i = 0; i < WS_MAX_SIGNALS; i++) {
    if (!ev_is_active(&loop->sig[i])) continue;
    ev_ref(loop->ev);
    ev_signal_stop(loop->ev, &loop->sig[i]);
  }
  if (ev_is_active(&loop->pool_timer)) { ev_ref(loop->ev); ev_timer_stop(loop->ev, &loop->pool_timer); }
  if (ev_is_active(&loop->dl_timer) || ev_is_pending(&loop->dl_timer)) ev_timer_stop(loop->ev, &loop->dl_timer);
  free(loop->dl);
  for (int k = 0; k < WS_POOL_CLASSES; k++) {
    ws_pool_class *c = &loop->pool[k];
    while (c->n) free(c->bufs[--c->n]);
    free(c->bufs);
  }
  ws_buf_free(&loop->recv);
  while (loop->nbig) ws_buf_free(&loop->big[--loop->nbig]);
  while (loop->nreq) free(loop->req[--loop->nreq]);
  ws_wqueue_trim();
  if (loop->owns_ev) ev_loop_destroy(loop->ev);
  free(loop);
}

int ws_loop_run(ws_loop *loop, int mode) {
  int flags = mode == 1 ? EVRUN_ONCE : mode == 2 ? EVRUN_NOWAIT : 0;
  return ev_run(loop->ev, flags);
}

void ws_loop_stop(ws_loop *loop) { ev_break(loop->ev, EVBREAK_ONE); }

void ws_loop_wakeup(ws_loop *loop) {
  if (!ev_is_active(&loop->idle)) ev_idle_start(loop->ev, &loop->idle);
}

int ws_loop_busy(ws_loop *loop) { return ev_is_active(&loop->idle) || ev_pending_count(loop->ev) > 0; }

int ws_loop_signal(ws_loop *loop, int signum, int on) {
  int free_slot = -1;
  for (int i = 0; i < WS_MAX_SIGNALS; i++) {
    ev_signal *w = &loop->sig[i];
    if (ev_is_active(w) && w->signum == signum) {
      if (!on) { ev_ref(loop->ev); ev_signal_stop(loop->ev, w); }
      return 0;
    }
    if (!ev_is_active(w) && free_slot < 0) free_slot = i;
  }
  if (!on) return 0;
  if (free_slot < 0) return -1;
  ev_signal *w = &loop->sig[free_slot];
  ev_signal_init(w, on_signal, signum);
  w->data = loop;
  ev_signal_start(loop->ev, w);
  ev_unref(loop->ev); /* waiting for a signal is not work that keeps the loop running */
  return 0;
}

/* ---- timers ---- */

static void on_timer(struct ev_loop *ev, ev_timer *w, int revents) {
  ws_timer *t = (ws_timer *)(void *)w; /* the watcher is the first member */
  (void)ev; (void)revents;
  t->cb((ws_loop *)w->data, t);
}

void ws_timer_init(ws_timer *t, ws_timer_cb cb) {
  ev_timer *w = (ev_timer *)(void *)&t->w;
  ev_timer_init(w, on_timer, 0., 0.);
  w->data = NULL;
  t->cb = cb;
}

void ws_timer_start(ws_loop *loop, ws_timer *t, double after) {
  ev_timer *w = (ev_timer *)(void *)&t->w;
  if (ev_is_active(w)) ev_timer_stop(loop->ev, w);
  w->data = loop;
  ev_timer_set(w, after < 0 ? 0. : after, 0.);
  ev_timer_start(loop->ev, w);
}

void ws_timer_stop(ws_loop *loop, ws_timer *t) {
  ev_timer *w = (ev_timer *)(void *)&t->w;
  if (ev_is_active(w) || ev_is_pending(w)) ev_timer_stop(loop->ev, w);
}

/* ---- stream deadlines ---- */

/* A deadline this close is due: libev may run its timer a little before our clock (another
 * clock, read at another moment) shows the time, and the heap would only be armed again. */
#define WS_DL_SLACK 1e-4

static void dl_put(ws_loop *loop, uint32_t i, ws_stream *s) {
  loop->dl[i] = s;
  s->dl_slot = i + 1;
}

static void dl_up(ws_loop *loop, uint32_t i) {
  ws_stream *s = loop->dl[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (loop->dl[parent]->deadline <= s->deadline) break;
    dl_put(loop, i, loop->dl[parent]);
    i = parent;
  }
  dl_put(loop, i, s);
}

static void dl_down(ws_loop *loop, uint32_t i) {
  ws_stream *s = loop->dl[i];
  for (;;) {
    uint32_t child = 2 * i + 1;
    if (child >= loop->ndl) break;
    if (child + 1 < loop->ndl && loop->dl[child + 1]->deadline < loop->dl[child]->deadline) child++;
    if (s->deadline <= loop->dl[child]->deadline) break;
    dl_put(loop, i, loop->dl[child]);
    i = child;
  }
  dl_put(loop, i, s);
}

/* The timer follows the earliest deadline when it comes sooner than the one armed; a later
 * one lets it fire early (nothing is due then, and it is armed again). */
static void dl_arm(ws_loop *loop, int force) {
  if (!loop->ndl) return;
  double at = loop->dl[0]->deadline;
  if (!force && ev_is_active(&loop->dl_timer) && loop->dl_armed <= at) return;
  double after = at - ws_loop_now(loop);
  if (ev_is_active(&loop->dl_timer)) ev_timer_stop(loop->ev, &loop->dl_timer);
  ev_timer_set(&loop->dl_timer, after > 0 ? after : 0., 0.);
  ev_timer_start(loop->ev, &loop->dl_timer);
  loop->dl_armed = at;
}

void ws_loop_deadline_set(ws_loop *loop, ws_stream *s, double at) {
  /* Set while due ones run: not due before the next pass (as a libev timer of 0 seconds). */
  if (loop->dl_pass > 0 && at <= loop->dl_pass + WS_DL_SLACK) at = loop->dl_pass + 2 * WS_DL_SLACK;
  if (s->dl_slot) {
    double was = s->deadline;
    s->deadline = at;
    if (at < was) dl_up(loop, s->dl_slot - 1);
    else dl_down(loop, s->dl_slot - 1);
  } else {
    if (loop->ndl == loop->dl_cap) {
      uint32_t ncap = loop->dl_cap ? loop->dl_cap * 2 : 64;
      ws_stream **nd = realloc(loop->dl, ncap * sizeof *nd);
      if (!nd) abort(); /* as libev does when its own timer heap cannot grow */
      loop->dl = nd;
      loop->dl_cap = ncap;
    }
    s->deadline = at;
    loop->dl[loop->ndl++] = s;
    dl_up(loop, loop->ndl - 1);
  }
  dl_arm(loop, 0);
}

void ws_loop_deadline_clear(ws_loop *loop, ws_stream *s) {
  if (!s->dl_slot) return;
  uint32_t i = s->dl_slot - 1;
  s->dl_slot = 0;
  ws_stream *last = loop->dl[--loop->ndl];
  if (last != s) {
    loop->dl[i] = last;
    last->dl_slot = i + 1;
    if (last->deadline < s->deadline) dl_up(loop, i);
    else dl_down(loop, i);
  }
  /* No deadline left: nothing may keep the loop running (as no stream's timer did). */
  if (!loop->ndl && (ev_is_active(&loop->dl_timer) || ev_is_pending(&loop->dl_timer)))
    ev_timer_stop(loop->ev, &loop->dl_timer);
  if (loop->dl_cap > 256 && loop->ndl < loop->dl_cap / 4) { /* the heap follows the streams down */
    ws_stream **nd = realloc(loop->dl, (loop->dl_cap / 2) * sizeof *nd);
    if (nd) { loop->dl = nd; loop->dl_cap /= 2; }
  }
}

static void on_deadlines(struct ev_loop *ev, ev_timer *w, int revents) {
  ws_loop *loop = WS_CONTAINER(w, ws_loop, dl_timer);
  (void)ev; (void)revents;
  double now = ws_loop_now(loop);
  /* Each due stream leaves the heap before its handler runs, which may set a new deadline
   * (due at the next pass at the earliest) or close others. */
  loop->dl_pass = now;
  while (loop->ndl && loop->dl[0]->deadline <= now + WS_DL_SLACK) {
    ws_stream *s = loop->dl[0];
    ws_loop_deadline_clear(loop, s);
    ws_stream_on_deadline(s);
  }
  loop->dl_pass = 0;
  dl_arm(loop, 1);
}

/* ---- buffer pool ---- */

static size_t class_size(int k) { return (size_t)WS_POOL_BUF << k; }

/* The class of a buffer of exactly this capacity, or -1. */
static int class_of(size_t cap) {
  for (int k = 0; k < WS_POOL_CLASSES; k++) if (cap == class_size(k)) return k;
  return -1;
}

/* A buffer of class k: pooled, or new (NULL when memory ran out). */
static void *class_take(ws_loop *loop, int k) {
  ws_pool_class *c = &loop->pool[k];
  if (!c->n) return malloc(class_size(k));
  if (--c->n < c->low) c->low = c->n;
  return c->bufs[c->n];
}

/* The trim runs once a second while the pool holds more than it keeps, or a reclaim is due.
 * It is unreferenced: a trim to come is no reason to keep running. */
static void pool_timer_start(ws_loop *loop) {
  if (ev_is_active(&loop->pool_timer)) return;
  ev_timer_again(loop->ev, &loop->pool_timer);
  ev_unref(loop->ev);
}

/* Keep a buffer of class k, or free it when the class is full. */
static void class_give(ws_loop *loop, int k, void *p) {
  ws_pool_class *c = &loop->pool[k];
  if (c->n == c->cap) {
    size_t limit = WS_POOL_BYTES / class_size(k), ncap = c->cap ? c->cap * 2 : WS_POOL_KEEP;
    if (ncap > limit) ncap = limit;
    void **nb = ncap > c->cap ? realloc(c->bufs, ncap * sizeof *nb) : NULL;
    if (!nb) { free(p); return; }
    c->bufs = nb;
    c->cap = ncap;
  }
  c->bufs[c->n++] = p;
  if (c->n > WS_POOL_KEEP) pool_timer_start(loop);
}

/* ---- giving memory back after a burst ----
 * What a burst of connections leaves behind is mostly unused but not given back: the Lua
 * strings of its messages wait for a collection that only allocation drives (and an idle
 * server allocates nothing), and what was freed stays in malloc's heap, between chunks still in
 * use, until the heap is trimmed. Measured after 200 clients were killed in the middle of 1 MiB
 * messages, three times (5 MiB before): 548 MiB of RSS; 381 MiB after a full collection alone,
 * 234 MiB after malloc_trim alone, 10 MiB after both (and 8.5 MiB when the pool's spare and
 * large buffers go too). So once the accepted connections fall to half their peak, the trim
 * after next (one to two seconds later) asks the binding to collect, frees the large buffers
 * the loop keeps and the pool's buffers past WS_POOL_KEEP, and trims malloc's heap: a full
 * collection and a walk of the heap (tens of milliseconds, 200 after that burst), only as the
 * load falls, never on the path of a message. The same runs once the connections have risen by
 * half (and WS_RECLAIM_DROP) and a whole trim interval went by without a new one: a burst of
 * handshakes leaves its strings and scratch memory between the new connections' (about 50
 * bytes per connection at 10,000 idle ones). */
void ws_loop_conn_opened(ws_loop *loop) {
  if (++loop->conns > loop->conns_peak) loop->conns_peak = loop->conns;
  if (loop->grow_watch || loop->conns < loop->conns_settled + WS_RECLAIM_DROP ||
      loop->conns < loop->conns_settled + loop->conns_settled / 2)
    return;
  loop->grow_watch = 1; /* a rise by half: the reclaim runs once no more arrive for a tick */
  loop->conns_tick = loop->conns;
  pool_timer_start(loop);
}

void ws_loop_conn_closed(ws_loop *loop) {
  if (loop->conns) loop->conns--;
  if (loop->reclaim_due || loop->conns_peak - loop->conns < WS_RECLAIM_DROP ||
      loop->conns > loop->conns_peak / 2)
    return;
  loop->reclaim_due = 1;
  pool_timer_start(loop);
}

static void reclaim(ws_loop *loop) {
  loop->reclaim_due = 0;
  loop->grow_watch = 0;
  loop->conns_peak = loop->conns; /* the next fall is measured from here */
  loop->conns_settled = loop->conns; /* and the next rise */
  if (loop->hooks.reclaim) loop->hooks.reclaim(loop);
  while (loop->nbig) ws_buf_free(&loop->big[--loop->nbig]);
  while (loop->nreq) free(loop->req[--loop->nreq]);
  ws_wqueue_trim(); /* the write queue's spare entries */
  for (int k = 0; k < WS_POOL_CLASSES; k++) {
    ws_pool_class *c = &loop->pool[k];
    while (c->n > WS_POOL_KEEP) free(c->bufs[--c->n]);
    if (c->low > c->n) c->low = c->n;
  }
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

static void on_pool_timer(struct ev_loop *ev, ev_timer *w, int revents) {
  ws_loop *loop = WS_CONTAINER(w, ws_loop, pool_timer);
  int busy = 0;
  (void)revents;
  /* Not at the first tick: the handlers of the connections that just closed may still
   * hold their objects (they run out at the next iterations). */
  if (loop->reclaim_due && ++loop->reclaim_due > 2) reclaim(loop);
  /* After a rise, once a whole tick went by without a new connection: the handshakes' garbage
   * (the Lua strings and threads of a burst of them, collected only as allocation goes on) is
   * collected and the heap trimmed, so the connections' memory is what stays. */
  if (loop->grow_watch) {
    if (loop->conns_tick == loop->conns) reclaim(loop);
    else loop->conns_tick = loop->conns;
  }
  for (int k = 0; k < WS_POOL_CLASSES; k++) {
    ws_pool_class *c = &loop->pool[k];
    size_t spare = c->n > WS_POOL_KEEP ? c->n - WS_POOL_KEEP : 0;
    if (spare > c->low) spare = c->low;
    while (spare--) free(c->bufs[--c->n]);
    if (c->cap > 4 * WS_POOL_KEEP && c->n < c->cap / 4) { /* the array follows the pool down */
      void **nb = realloc(c->bufs, (c->cap / 2) * sizeof *nb);
      if (nb) { c->bufs = nb; c->cap /= 2; }
    }
    c->low = c->n;
    if (c->n > WS_POOL_KEEP) busy = 1;
  }
  if (!busy && !loop->reclaim_due && !loop->grow_watch) {
    ev_ref(ev);
    ev_timer_stop(ev, w);
  }
}

ws_request *ws_loop_request_take(ws_loop *loop) {
  return loop->nreq ? loop->req[--loop->nreq] : malloc(sizeof(ws_request));
}

void ws_loop_request_give(ws_loop *loop, ws_request *r) {
  if (!r) return;
  if (loop->nreq < WS_REQ_SPARE) loop->req[loop->nreq++] = r;
  else free(r);
}

void ws_pool_take(ws_loop *loop, ws_buf *b) {
  if (b->data) return;
  if (!(b->data = class_take(loop, 0))) return; /* ws_buf_reserve will try again */
  b->cap = WS_POOL_BUF;
  b->head = b->len = 0;
}

void ws_pool_give(ws_loop *loop, ws_buf *b) {
  if (!b->data) return;
  int k = class_of(b->cap);
  if (k >= 0) {
    class_give(loop, k, b->data);
    ws_buf_init(b);
  } else if (b->cap > WS_POOL_BUF && b->cap <= WS_BIG_KEEP) {
    /* A buffer grown for large messages goes to the loop, not the connection: the next large
     * message (on any connection) reuses it instead of growing a buffer from 16 KiB again,
     * with a copy and fresh pages at every doubling. The smallest one kept makes way. */
    size_t k = loop->nbig;
    if (k == WS_BIG_MAX) {
      k = 0;
      for (size_t i = 1; i < WS_BIG_MAX; i++) if (loop->big[i].cap < loop->big[k].cap) k = i;
      if (loop->big[k].cap >= b->cap) { ws_buf_free(b); return; }
      ws_buf_free(&loop->big[k]);
    } else {
      loop->nbig++;
    }
    loop->big[k] = *b;
    ws_buf_clear(&loop->big[k]);
    ws_buf_init(b);
  } else {
    ws_buf_free(b);
  }
}

void ws_pool_regrow(ws_loop *loop, ws_buf *b, size_t want) {
  size_t used = ws_buf_size(b), best = WS_BIG_MAX;
  ws_buf nb;
  if (b->cap - b->len >= want || want > SIZE_MAX - used) return;
  if (b->cap - used >= want && b->head) return; /* ws_buf_reserve makes room in place */
  int k = 0;
  while (k < WS_POOL_CLASSES && class_size(k) < used + want) k++;
  if (k < WS_POOL_CLASSES) {
    if (!(nb.data = class_take(loop, k))) return; /* ws_buf_reserve tries on its own */
    nb.cap = class_size(k);
  } else {
    for (size_t i = 0; i < loop->nbig; i++)
      if (loop->big[i].cap >= used + want && (best == WS_BIG_MAX || loop->big[i].cap < loop->big[best].cap)) best = i;
    if (best == WS_BIG_MAX) return; /* ws_buf_reserve grows it */
    nb = loop->big[best];
    loop->big[best] = loop->big[--loop->nbig];
  }
  if (used) memcpy(nb.data, ws_buf_begin(b), used);
  nb.head = 0;
  nb.len = used;
  ws_buf_clear(b);
  ws_pool_give(loop, b);
  *b = nb;
}

/* ---- the shared receive buffer ---- */

ws_buf *ws_loop_recv_take(ws_loop *loop) {
  if (loop->recv_lent) return NULL;
  if (!loop->recv.data) { /* a stream kept the last one (see ws_stream.c's return_input) */
    if (!(loop->recv.data = class_take(loop, WS_POOL_CLASSES - 1))) return NULL;
    loop->recv.cap = WS_RECV_BUF;
  }
  ws_buf_clear(&loop->recv);
  loop->recv_lent = 1;
  return &loop->recv;
}

void ws_loop_recv_back(ws_loop *loop, ws_buf *b) {
  loop->recv_lent = 0;
  if (b) {
    loop->recv = *b;
    ws_buf_clear(&loop->recv);
  } else {
    ws_buf_init(&loop->recv); /* the memory went with the stream (or was freed by it) */
  }
}
