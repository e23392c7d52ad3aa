/* Topics of a server: a hash table of names, each topic with an array of its subscribers, and
 * each stream with a small array of its topics. Both arrays keep the other's index, so a
 * subscriber leaves with two swap-removes: O(1) in the number of subscribers. A publish hashes
 * the name once, builds the frame once into a reference-counted ws_shared buffer and queues
 * that buffer on each subscriber (O(N), no copy per subscriber); it never waits: a subscriber
 * whose queue is over the limit has the message dropped (counted) or is closed, by policy.
 *
 * permessage-deflate: a message at or over the compression threshold is also compressed once,
 * without context (so any peer can inflate it whatever its context takeover), per window size
 * the subscribers negotiated (nearly always one: the server's window_bits); subscribers with
 * deflate get that frame (RSV1), the others the plain one (RFC 7692 lets each message choose).
 * A subscriber whose own compressor keeps its context forgets it after such a frame: the
 * peer's window now holds bytes our compressor never saw. */
#include <stdlib.h>
#include <string.h>

#include "ws_topic.h"

#define INITIAL_BUCKETS 16
#define INITIAL_SUBS 4
#define INITIAL_SLOTS 4

typedef struct ws_topic ws_topic;
typedef struct ws_topics ws_topics;

typedef struct ws_topic_sub {
  ws_stream *s;
  uint32_t slot;      /* index of this topic in s->topics->m */
} ws_topic_sub;

typedef struct ws_topic_slot {
  ws_topic *t;
  uint32_t at;        /* index of the stream in t->subs */
} ws_topic_slot;

struct ws_topic_set {  /* a stream's topics (ws_stream.topics) */
  uint32_t n, cap;
  ws_topic_slot m[];
};

struct ws_topic {
  ws_topic *next;     /* hash chain */
  ws_topics *reg;
  ws_topic_sub *subs;
  uint32_t nsubs, cap;
  uint32_t hash;
  uint32_t busy;      /* a publish is walking subs: do not free the topic under it */
  size_t len;
  char name[];        /* len bytes, then a NUL */
};

struct ws_topics {     /* a listener's topics (ws_listener.topics) */
  ws_topic **buckets;
  size_t nbuckets;    /* a power of two */
  size_t count;
  size_t subscriptions; /* memberships of all its topics */
  ws_listener *owner; /* NULL once the listener is gone: freed with its last topic */
  size_t max_backlog; /* 0: the listener's send_high */
  int policy;         /* enum ws_slow_policy */
  ws_topic_edge_fn edge; /* first subscriber in, last one out (the Redis bus) */
  void *edge_user;
};

/* FNV-1a: short names, one pass, no allocation. */
/* The count behind conn.dropped (in the stream's cold part: most connections never drop). */
static void count_drop(ws_stream *s) {
  ws_stream_cold *x = ws_stream_cold_get(s);
  if (x) x->dropped++;
  ws_stream_counters(s)->dropped++;
}

static uint32_t hash_name(const char *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) {
    h ^= (uint8_t)p[i];
    h *= 16777619u;
  }
  return h;
}

static ws_topics *registry(ws_listener *l) {
  if (l->topics) return l->topics;
  ws_topics *reg = calloc(1, sizeof *reg);
  if (!reg) return NULL;
  reg->buckets = calloc(INITIAL_BUCKETS, sizeof *reg->buckets);
  if (!reg->buckets) { free(reg); return NULL; }
  reg->nbuckets = INITIAL_BUCKETS;
  reg->owner = l;
  reg->policy = WS_SLOW_DROP;
  l->topics = reg;
  return reg;
}

static void registry_free(ws_topics *reg) {
  free(reg->buckets);
  free(reg);
}

int ws_topics_configure(ws_listener *l, int policy, size_t max_backlog) {
  ws_topics *reg = registry(l);
  if (!reg) return -1;
  reg->policy = policy == WS_SLOW_CLOSE ? WS_SLOW_CLOSE : WS_SLOW_DROP;
  reg->max_backlog = max_backlog;
  return 0;
}

int ws_topics_on_edge(ws_listener *l, ws_topic_edge_fn fn, void *user) {
  if (!fn && !l->topics) return 0;
  ws_topics *reg = registry(l);
  if (!reg) return -1;
  reg->edge = fn;
  reg->edge_user = user;
  return 0;
}

void ws_topics_release(ws_listener *l) {
  ws_topics *reg = l->topics;
  if (!reg) return;
  l->topics = NULL;
  reg->owner = NULL;
  reg->edge = NULL;
  if (reg->count == 0) registry_free(reg);
}

static ws_topic *find(const ws_topics *reg, const char *name, size_t len, uint32_t h) {
  for (ws_topic *t = reg->buckets[h & (reg->nbuckets - 1)]; t; t = t->next)
    if (t->hash == h && t->len == len && memcmp(t->name, name, len) == 0) return t;
  return NULL;
}

/* Doubles the table when it is full; a failure only leaves the chains longer. */
static void maybe_grow(ws_topics *reg) {
  if (reg->count <= reg->nbuckets || reg->nbuckets > SIZE_MAX / 2 / sizeof *reg->buckets) return;
  size_t nb = reg->nbuckets * 2;
  ws_topic **b = calloc(nb, sizeof *b);
  if (!b) return;
  for (size_t i = 0; i < reg->nbuckets; i++) {
    for (ws_topic *t = reg->buckets[i], *next; t; t = next) {
      next = t->next;
      t->next = b[t->hash & (nb - 1)];
      b[t->hash & (nb - 1)] = t;
    }
  }
  free(reg->buckets);
  reg->buckets = b;
  reg->nbuckets = nb;
}

static ws_topic *topic_new(ws_topics *reg, const char *name, size_t len, uint32_t h) {
  ws_topic *t = malloc(sizeof *t + len + 1);
  if (!t) return NULL;
  t->subs = malloc(INITIAL_SUBS * sizeof *t->subs);
  if (!t->subs) { free(t); return NULL; }
  t->cap = INITIAL_SUBS;
  t->nsubs = 0;
  t->busy = 0;
  t->hash = h;
  t->reg = reg;
  t->len = len;
  memcpy(t->name, name, len);
  t->name[len] = 0;
  size_t b = h & (reg->nbuckets - 1);
  t->next = reg->buckets[b];
  reg->buckets[b] = t;
  reg->count++;
  maybe_grow(reg);
  return t;
}

/* A topic exists while it has subscribers (and while a publish walks it). */
static void topic_maybe_free(ws_topic *t) {
  if (t->nsubs || t->busy) return;
  ws_topics *reg = t->reg;
  for (ws_topic **pp = &reg->buckets[t->hash & (reg->nbuckets - 1)]; *pp; pp = &(*pp)->next) {
    if (*pp == t) { *pp = t->next; break; }
  }
  reg->count--;
  free(t->subs);
  free(t);
  if (reg->count == 0 && !reg->owner) registry_free(reg);
}

/* Room for one more subscriber; the array shrinks again in topic_remove. */
static int subs_reserve(ws_topic *t) {
  if (t->nsubs < t->cap) return 0;
  if (t->cap > UINT32_MAX / 2) return -1;
  ws_topic_sub *p = realloc(t->subs, (size_t)t->cap * 2 * sizeof *p);
  if (!p) return -1;
  t->subs = p;
  t->cap *= 2;
  return 0;
}

static int slots_reserve(ws_stream *s) {
  struct ws_topic_set *set = s->topics;
  if (set && set->n < set->cap) return 0;
  uint32_t cap = set ? set->cap * 2 : INITIAL_SLOTS;
  if (set && set->cap > UINT32_MAX / 2) return -1;
  set = realloc(set, sizeof *set + (size_t)cap * sizeof set->m[0]);
  if (!set) return -1;
  if (!s->topics) set->n = 0;
  set->cap = cap;
  s->topics = set;
  return 0;
}

static long slot_of(const ws_stream *s, const ws_topic *t) {
  const struct ws_topic_set *set = s->topics;
  if (!set) return -1;
  for (uint32_t i = 0; i < set->n; i++)
    if (set->m[i].t == t) return (long)i;
  return -1;
}

int ws_topic_subscribe(ws_stream *s, const char *name, size_t len) {
  if (!s->listener || s->phase == WS_PH_DONE || len > WS_TOPIC_NAME_MAX) return -1;
  ws_topics *reg = registry(s->listener);
  if (!reg) return -1;
  uint32_t h = hash_name(name, len);
  ws_topic *t = find(reg, name, len, h);
  if (t && slot_of(s, t) >= 0) return 0;
  /* Every allocation first, so a failure leaves nothing half-linked. */
  if (slots_reserve(s) < 0) return -1;
  if ((!t && !(t = topic_new(reg, name, len, h))) || subs_reserve(t) < 0) {
    if (t) topic_maybe_free(t);
    if (s->topics->n == 0) { /* a set reserved for this first topic stays empty */
      free(s->topics);
      s->topics = NULL;
    }
    return -1;
  }
  struct ws_topic_set *set = s->topics;
  uint32_t slot = set->n++, at = t->nsubs++;
  set->m[slot].t = t;
  set->m[slot].at = at;
  t->subs[at].s = s;
  t->subs[at].slot = slot;
  reg->subscriptions++;
  if (t->nsubs == 1 && reg->edge) reg->edge(reg->edge_user, t->name, t->len, 1);
  return 1;
}

/* Removes the stream's i-th topic membership: a swap-remove in both arrays, each fixing the
 * back index of the entry it moved. */
static void remove_slot(ws_stream *s, uint32_t i) {
  struct ws_topic_set *set = s->topics;
  ws_topic *t = set->m[i].t;
  uint32_t at = set->m[i].at, last = t->nsubs - 1;
  if (at != last) {
    t->subs[at] = t->subs[last];
    t->subs[at].s->topics->m[t->subs[at].slot].at = at;
  }
  t->nsubs--;
  t->reg->subscriptions--;
  if (t->nsubs == 0 && t->reg->edge && t->reg->owner) t->reg->edge(t->reg->edge_user, t->name, t->len, 0);
  if (t->cap > 64 && t->nsubs < t->cap / 4) { /* give memory back after a crowd left */
    ws_topic_sub *p = realloc(t->subs, (size_t)(t->cap / 2) * sizeof *p);
    if (p) { t->subs = p; t->cap /= 2; }
  }
  last = set->n - 1;
  if (i != last) {
    set->m[i] = set->m[last];
    set->m[i].t->subs[set->m[i].at].slot = i;
  }
  if (--set->n == 0) {
    free(set);
    s->topics = NULL;
  }
  topic_maybe_free(t);
}

int ws_topic_unsubscribe(ws_stream *s, const char *name, size_t len) {
  struct ws_topic_set *set = s->topics;
  if (!set) return 0;
  ws_topics *reg = set->m[0].t->reg; /* the listener may already be detached from a closing stream */
  ws_topic *t = find(reg, name, len, hash_name(name, len));
  long i = t ? slot_of(s, t) : -1;
  if (i < 0) return 0;
  remove_slot(s, (uint32_t)i);
  return 1;
}

void ws_topic_leave_all(ws_stream *s) {
  while (s->topics) remove_slot(s, s->topics->n - 1);
}

size_t ws_topic_count(const ws_stream *s) { return s->topics ? s->topics->n : 0; }

const char *ws_topic_name(const ws_stream *s, size_t i, size_t *len) {
  if (!s->topics || i >= s->topics->n) return NULL;
  *len = s->topics->m[i].t->len;
  return s->topics->m[i].t->name;
}

void ws_topics_stats(const ws_listener *l, size_t *topics, size_t *subscriptions) {
  *topics = l->topics ? l->topics->count : 0;
  *subscriptions = l->topics ? l->topics->subscriptions : 0;
}

size_t ws_topics_subscribers(ws_listener *l, const char *name, size_t len) {
  if (!l->topics) return 0;
  ws_topic *t = find(l->topics, name, len, hash_name(name, len));
  return t ? t->nsubs : 0;
}

/* The whole frame, once, in a buffer the subscribers' write queues share. */
static ws_shared *build_frame(int opcode, const void *data, size_t n) {
  if (n > SIZE_MAX - WS_FRAME_HEADER_MAX - sizeof(ws_shared)) return NULL;
  ws_shared *sh = ws_shared_new(WS_FRAME_HEADER_MAX + n);
  if (!sh) return NULL;
  ws_buf view; /* exactly big enough, so ws_frame_build writes in place and never reallocates */
  view.data = sh->data;
  view.head = view.len = 0;
  view.cap = sh->len;
  if (ws_frame_build(&view, 1, 0, opcode, data, n, NULL) != 0 || view.data != sh->data) {
    ws_shared_unref(sh);
    return NULL;
  }
  sh->len = view.len;
  return sh;
}

/* The compressed frames of one publish, by the subscribers' window bits (8..15), built on
 * first need. */
typedef struct packed_frames {
  ws_shared *by_bits[16];
  unsigned tried; /* bit per window size already attempted (NULL then means: send it plain) */
} packed_frames;

/* The message compressed for s and every subscriber with its window (the core builds it from
 * no context, so each of them can take it); NULL when out of memory or when s gets it plain
 * (ws_conn_frame_compressed: under the threshold, or no smaller). */
static ws_shared *packed_frame(packed_frames *pf, ws_stream *s, int opcode, const void *data, size_t n) {
  int bits = s->deflate_bits & 15;
  if (pf->tried & (1u << bits)) return pf->by_bits[bits];
  pf->tried |= 1u << bits;
  ws_buf out;
  ws_buf_init(&out);
  if (ws_conn_frame_compressed(&s->ws, opcode, data, n, &out) == 1 &&
      (pf->by_bits[bits] = ws_shared_new(ws_buf_size(&out))) != NULL)
    memcpy(pf->by_bits[bits]->data, ws_buf_begin(&out), ws_buf_size(&out));
  ws_buf_free(&out);
  return pf->by_bits[bits];
}

/* The frame for subscriber s: the compressed one when it negotiated compression (and it helps),
 * else the plain one. */
static ws_shared *frame_for(ws_stream *s, ws_shared *plain, packed_frames *pf, int may_pack, int opcode,
                            const void *data, size_t n) {
  if (may_pack && s->deflate_bits && ws_conn_deflate_on(&s->ws)) {
    ws_shared *packed = packed_frame(pf, s, opcode, data, n);
    if (packed) return packed;
  }
  return plain;
}

/* Over the limit: true when the subscriber must not get this message. Tries the socket
 * first, so only bytes the peer really left unread count against it. */
static int too_slow(ws_stream *s, size_t limit) {
  if (ws_stream_buffered(s) <= limit) return 0;
  ws_stream_flush(s);
  return s->phase != WS_PH_OPEN || ws_stream_buffered(s) > limit;
}

long ws_topics_publish(ws_listener *l, const char *name, size_t len, int opcode, const void *data,
                       size_t n, ws_stream *except) {
  ws_topics *reg = l->topics;
  if (!reg) return 0;
  ws_topic *t = find(reg, name, len, hash_name(name, len));
  if (!t || t->nsubs == 0 || (t->nsubs == 1 && t->subs[0].s == except)) return 0;
  ws_shared *sh = build_frame(opcode, data, n);
  if (!sh) return -1;
  size_t limit = reg->max_backlog ? reg->max_backlog : l->cfg.send_high;
  long count = 0;
  int may_pack = l->cfg.deflate_mode != WS_DEFLATE_OFF && n >= l->cfg.deflate.threshold;
  packed_frames pf;
  memset(&pf, 0, sizeof pf);
  t->busy++;
  /* Backwards: closing a subscriber can end its socket at once (a failed write), which
   * swap-removes it from subs; the entry moved into its place has been visited already. */
  for (uint32_t i = t->nsubs; i-- > 0;) {
    if (i >= t->nsubs) continue;
    ws_stream *s = t->subs[i].s;
    if (s == except || s->phase != WS_PH_OPEN) continue;
    if (ws_conn_fragment_opcode(&s->ws)) { /* inside a fragmented message of its own: no frame fits between */
      count_drop(s);
      continue;
    }
    if (too_slow(s, limit)) {
      if (s->phase != WS_PH_OPEN) continue;
      if (reg->policy == WS_SLOW_CLOSE) {
        if (!s->error) s->error = WS_TOPIC_SLOW_REASON;
        ws_stream_close(s, WS_TOPIC_SLOW_CODE, WS_TOPIC_SLOW_REASON, sizeof WS_TOPIC_SLOW_REASON - 1);
      } else {
        count_drop(s);
      }
      continue;
    }
    ws_shared *frame = frame_for(s, sh, &pf, may_pack, opcode, data, n);
    if (ws_stream_send_shared(s, frame) == 0) {
      count++;
      if (frame != sh) ws_conn_shared_compressed_sent(&s->ws);
    } else if (s->phase == WS_PH_OPEN) {
      count_drop(s); /* out of memory for its queue entry */
    }
  }
  t->busy--;
  l->ctr.msgs_out += (uint64_t)count;
  l->ctr.bytes_out += (uint64_t)count * n;
  ws_shared_unref(sh);
  for (int b = 0; b < 16; b++) ws_shared_unref(pf.by_bits[b]);
  topic_maybe_free(t);
  return count;
}

/* A publish without a topic: every open connection of the listener but `except`, with the
 * same frame sharing, compression and slow-reader policy as a publish (the policy and limit
 * of the listener's topics when it has any, else "drop" at send_high). A connection that
 * has not finished its handshake, or is sending a fragmented message, is skipped. */
long ws_listener_broadcast(ws_listener *l, int opcode, const void *data, size_t n, ws_stream *except) {
  ws_topics *reg = l->topics;
  ws_shared *sh = build_frame(opcode, data, n);
  if (!sh) return -1;
  size_t limit = reg && reg->max_backlog ? reg->max_backlog : l->cfg.send_high;
  int close_slow = reg && reg->policy == WS_SLOW_CLOSE;
  int may_pack = l->cfg.deflate_mode != WS_DEFLATE_OFF && n >= l->cfg.deflate.threshold;
  long count = 0;
  packed_frames pf;
  memset(&pf, 0, sizeof pf);
  for (ws_stream *s = l->streams, *next; s; s = next) {
    next = s->lnext; /* closing s unlinks it, and only it */
    if (s == except || s->phase != WS_PH_OPEN) continue;
    if (ws_conn_fragment_opcode(&s->ws)) { count_drop(s); continue; }
    if (too_slow(s, limit)) {
      if (s->phase != WS_PH_OPEN) continue;
      if (close_slow) {
        if (!s->error) s->error = WS_TOPIC_SLOW_REASON;
        ws_stream_close(s, WS_TOPIC_SLOW_CODE, WS_TOPIC_SLOW_REASON, sizeof WS_TOPIC_SLOW_REASON - 1);
      } else {
        count_drop(s);
      }
      continue;
    }
    ws_shared *frame = frame_for(s, sh, &pf, may_pack, opcode, data, n);
    if (ws_stream_send_shared(s, frame) == 0) {
      count++;
      if (frame != sh) ws_conn_shared_compressed_sent(&s->ws);
    } else if (s->phase == WS_PH_OPEN) {
      count_drop(s);
    }
  }
  ws_shared_unref(sh);
  for (int b = 0; b < 16; b++) ws_shared_unref(pf.by_bits[b]);
  return count;
}
