/* The Redis bus of a server (see ws_bus.h). Subscriptions follow the local subscriber count
 * of each topic (ws_topic.c's edges): SUBSCRIBE on 0 -> 1, UNSUBSCRIBE after the linger on
 * 1 -> 0, so join/leave churn does not become SUBSCRIBE churn and a node receives only the
 * topics it serves. The subscriber connection's reads are fanned out right here, frame built
 * once, never waiting for a WebSocket reader (the topic's slow-subscriber policy applies). */
#define _GNU_SOURCE
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "ws_bus.h"
#include "ws_bus_push.h"
#include "ws_random.h"
#include "ws_rt_internal.h"
#include "ws_tls.h"
#include "ws_topic.h"

#define BACKOFF_MIN 0.1
#define BACKOFF_MAX 2.0 /* a node that lost Redis tries again at least every 2 s */
#define INITIAL_BUCKETS 64

typedef struct bus_topic {
  struct bus_topic *next;           /* hash chain */
  struct bus_topic *lprev, *lnext;  /* linger list, oldest first */
  uint32_t hash;
  uint8_t active;                   /* has local subscribers */
  uint32_t holds;                   /* connection-less holds (ws_bus_hold) */
  uint8_t subscribed;               /* SUBSCRIBE sent on the current subscriber connection */
  uint8_t lingering;
  double linger_at;
  size_t len;
  char name[];
} bus_topic;

typedef struct bus_conn {
  ws_redis *r;
  ev_timer retry;
  int attempts;
  int ever_up;
  struct ws_bus *bus;
} bus_conn;

struct ws_bus {
  ws_loop *loop;
  ws_listener *l;
  ws_bus_cfg cfg;
  char prefix[WS_BUS_PREFIX_MAX + 1];
  size_t prefix_len;
  char node[WS_BUS_NODE_MAX + 1];
  char *host, *username, *password, *server_name;
  int started, closed;
  ev_timer start, ping, linger;
  bus_conn sub, cmd;
  bus_topic **buckets;
  size_t nbuckets, count;
  bus_topic *lhead, *ltail;
  ws_bus_counters c;
  ws_bus_hook_fn hook;
  void *user;
  size_t resub_left;       /* subscribe confirmations still due after the subscriber (re)connected */
  int resub_notify;        /* then tell the hook ('r'): it was a reconnect */
};

static uint32_t hash_name(const char *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) {
    h ^= (uint8_t)p[i];
    h *= 16777619u;
  }
  return h;
}

static int64_t now_us(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static double random01(void) {
  uint8_t k[4];
  if (ws_random_mask(k) != 0) return 0.5;
  return (double)((uint32_t)k[0] << 16 | (uint32_t)k[1] << 8 | k[2]) / 16777216.0;
}

/* ---- topics ---- */

static bus_topic *find(ws_bus *b, const char *name, size_t len, uint32_t h) {
  for (bus_topic *t = b->buckets[h & (b->nbuckets - 1)]; t; t = t->next)
    if (t->hash == h && t->len == len && memcmp(t->name, name, len) == 0) return t;
  return NULL;
}

static void maybe_grow(ws_bus *b) {
  if (b->count <= b->nbuckets) return;
  size_t nb = b->nbuckets * 2;
  bus_topic **nbk = calloc(nb, sizeof *nbk);
  if (!nbk) return;
  for (size_t i = 0; i < b->nbuckets; i++) {
    for (bus_topic *t = b->buckets[i], *next; t; t = next) {
      next = t->next;
      t->next = nbk[t->hash & (nb - 1)];
      nbk[t->hash & (nb - 1)] = t;
    }
  }
  free(b->buckets);
  b->buckets = nbk;
  b->nbuckets = nb;
}

static void linger_unlink(ws_bus *b, bus_topic *t) {
  if (!t->lingering) return;
  if (t->lprev) t->lprev->lnext = t->lnext; else b->lhead = t->lnext;
  if (t->lnext) t->lnext->lprev = t->lprev; else b->ltail = t->lprev;
  t->lprev = t->lnext = NULL;
  t->lingering = 0;
}

static void topic_free(ws_bus *b, bus_topic *t) {
  linger_unlink(b, t);
  for (bus_topic **pp = &b->buckets[t->hash & (b->nbuckets - 1)]; *pp; pp = &(*pp)->next)
    if (*pp == t) { *pp = t->next; break; }
  b->count--;
  free(t);
}

/* Not envelopes: events for the binding with only a type (and a topic). 'u': this node no
 * longer receives the topic (unsubscribed after its linger); 'r': the subscriber connection is
 * back after a loss and has resubscribed (what was published meanwhile was not received). */
static void notify(ws_bus *b, char type, const char *topic, size_t tlen) {
  if (!b->hook || b->closed) return;
  ws_bus_env e;
  memset(&e, 0, sizeof e);
  e.type = type;
  e.node = e.id = e.epoch = "";
  e.data = (const uint8_t *)"";
  b->hook(b, &e, topic, tlen, b->user);
}

/* ---- channels ---- */

/* "<prefix>t:<topic>" into buf (cap >= prefix + 2 + WS_TOPIC_NAME_MAX). */
static size_t topic_channel(const ws_bus *b, char *buf, const char *name, size_t len) {
  memcpy(buf, b->prefix, b->prefix_len);
  memcpy(buf + b->prefix_len, "t:", 2);
  memcpy(buf + b->prefix_len + 2, name, len);
  return b->prefix_len + 2 + len;
}

#define CHANNEL_MAX (WS_BUS_PREFIX_MAX + 2 + WS_TOPIC_NAME_MAX + WS_BUS_NODE_MAX)

static int sub_failed_reply(ws_redis *r, struct redisReply *rep, const char *err, const char *code, void *priv) {
  (void)r; (void)err; (void)code;
  if (!rep || rep->type == REDIS_REPLY_ERROR) ((ws_bus *)priv)->c.failed++;
  return 0;
}

/* One SUBSCRIBE or UNSUBSCRIBE with the given topics' channels (at most WS_BUS_BATCH). */
static void send_batch(ws_bus *b, const char *verb, bus_topic **list, size_t n) {
  if (n == 0 || ws_redis_state(b->sub.r) != WS_REDIS_UP) return;
  ws_redis_arg *argv = malloc((n + 1) * sizeof *argv);
  char *chans = malloc(n * (b->prefix_len + 2));
  if (!argv || !chans) { free(argv); free(chans); b->c.failed++; return; }
  argv[0] = (ws_redis_arg){ verb, strlen(verb), NULL, 0 };
  for (size_t i = 0; i < n; i++) {
    char *p = chans + i * (b->prefix_len + 2);
    memcpy(p, b->prefix, b->prefix_len);
    memcpy(p + b->prefix_len, "t:", 2);
    argv[i + 1] = (ws_redis_arg){ p, b->prefix_len + 2, list[i]->name, list[i]->len };
  }
  if (ws_redis_command(b->sub.r, (int)n + 1, argv, sub_failed_reply, b, NULL) < 0) b->c.failed++;
  free(argv);
  free(chans);
}

static void subscribe_one(ws_bus *b, bus_topic *t, const char *verb) {
  bus_topic *list[1] = { t };
  send_batch(b, verb, list, 1);
}

/* The topic is wanted (a local subscriber or a hold): subscribed, out of the linger list. */
static bus_topic *topic_want(ws_bus *b, const char *name, size_t len) {
  uint32_t h = hash_name(name, len);
  bus_topic *t = find(b, name, len, h);
  if (!t) {
    t = calloc(1, sizeof *t + len + 1);
    if (!t) { b->c.failed++; return NULL; } /* this topic stays local until it is joined again */
    t->hash = h;
    t->len = len;
    memcpy(t->name, name, len);
    size_t k = h & (b->nbuckets - 1);
    t->next = b->buckets[k];
    b->buckets[k] = t;
    b->count++;
    maybe_grow(b);
  }
  linger_unlink(b, t);
  if (!t->subscribed && ws_redis_state(b->sub.r) == WS_REDIS_UP) {
    subscribe_one(b, t, "SUBSCRIBE");
    t->subscribed = 1;
  }
  return t;
}

/* Neither a local subscriber nor a hold any more: unsubscribed after the linger. */
static void topic_unwanted(ws_bus *b, bus_topic *t) {
  if (t->active || t->holds || t->lingering) return;
  ws_loop_touch(b->loop);
  t->linger_at = ws_loop_now(b->loop) + b->cfg.linger;
  t->lingering = 1;
  t->lnext = NULL;
  t->lprev = b->ltail;
  if (b->ltail) b->ltail->lnext = t; else b->lhead = t;
  b->ltail = t;
  if (!ev_is_active(&b->linger)) {
    ev_timer_set(&b->linger, b->cfg.linger, 0.);
    ev_timer_start(ws_loop_ev(b->loop), &b->linger);
  }
}

/* The edge hook of ws_topic.c. */
static void on_edge(void *user, const char *name, size_t len, int on) {
  ws_bus *b = user;
  if (b->closed) return;
  if (on) {
    bus_topic *t = topic_want(b, name, len);
    if (t) t->active = 1;
    return;
  }
  bus_topic *t = find(b, name, len, hash_name(name, len));
  if (!t) return;
  t->active = 0;
  topic_unwanted(b, t);
}

int ws_bus_hold(ws_bus *b, const char *name, size_t len, int on) {
  if (b->closed) return 0;
  if (on) {
    bus_topic *t = topic_want(b, name, len);
    if (!t) return -1;
    t->holds++;
    return 1;
  }
  bus_topic *t = find(b, name, len, hash_name(name, len));
  if (!t || t->holds == 0) return 0;
  t->holds--;
  topic_unwanted(b, t);
  return 1;
}

static void linger_cb(struct ev_loop *ev, ev_timer *w, int revents) {
  ws_bus *b = w->data;
  bus_topic *batch[WS_BUS_BATCH];
  size_t n = 0;
  (void)revents;
  double now = ws_loop_now(b->loop);
  while (b->lhead && b->lhead->linger_at <= now + 0.001) {
    bus_topic *t = b->lhead;
    linger_unlink(b, t);
    if (t->subscribed) {
      batch[n++] = t;
      if (n == WS_BUS_BATCH) {
        send_batch(b, "UNSUBSCRIBE", batch, n);
        for (size_t i = 0; i < n; i++) { notify(b, 'u', batch[i]->name, batch[i]->len); topic_free(b, batch[i]); }
        n = 0;
      }
    } else {
      notify(b, 'u', t->name, t->len);
      topic_free(b, t);
    }
  }
  send_batch(b, "UNSUBSCRIBE", batch, n);
  for (size_t i = 0; i < n; i++) { notify(b, 'u', batch[i]->name, batch[i]->len); topic_free(b, batch[i]); }
  if (b->lhead) {
    ev_timer_set(w, b->lhead->linger_at - now > 0 ? b->lhead->linger_at - now : 0., 0.);
    ev_timer_start(ev, w);
  }
}

/* Every topic with local subscribers, after the subscriber connection came (back) up. */
static size_t resubscribe_all(ws_bus *b) {
  bus_topic *batch[WS_BUS_BATCH];
  size_t n = 0, total = 0;
  for (size_t i = 0; i < b->nbuckets; i++) {
    for (bus_topic *t = b->buckets[i]; t; t = t->next) {
      if (!t->active && !t->holds) continue; /* lingering ones are dropped when their linger ends */
      t->subscribed = 1;
      batch[n++] = t;
      total++;
      if (n == WS_BUS_BATCH) { send_batch(b, "SUBSCRIBE", batch, n); n = 0; }
    }
  }
  send_batch(b, "SUBSCRIBE", batch, n);
  return total;
}

/* ---- receiving ---- */

/* A "subscribe" confirmation (not an "unsubscribe" one). */
static int is_subscribe(const redisReply *rep) {
  const redisReply *k = rep->element[0];
  return k->type == REDIS_REPLY_STRING && k->len == 9 && strncasecmp(k->str, "subscribe", 9) == 0;
}

static void on_push(ws_redis *r, struct redisReply *rep, void *user) {
  ws_bus *b = ((bus_conn *)user)->bus;
  ws_bus_push m;
  (void)r;
  ws_bus_push_classify(rep, b->prefix, b->prefix_len, b->node, strlen(b->node), WS_TOPIC_NAME_MAX, &m);
  switch (m.kind) {
  case WS_BUS_PUSH_COUNT:
    b->c.subscriptions = m.count > 0 ? (uint64_t)m.count : 0;
    /* Redis answers in order: once every channel of the resubscription is confirmed, what is
     * published from now on reaches us, and the hook may read what was missed meanwhile. */
    if (!is_subscribe(rep)) return;
    if (b->resub_left) {
      if (--b->resub_left == 0 && b->resub_notify) {
        b->resub_notify = 0;
        notify(b, 'r', NULL, 0);
      }
      return;
    }
    /* A topic's first subscription is active from here ('s'): a connection that resumed on a
     * topic this node did not receive yet waits for it to read what was published meanwhile. */
    {
      const redisReply *ch = rep->element[1];
      if (ch->type == REDIS_REPLY_STRING && ch->len > b->prefix_len + 2 &&
          memcmp(ch->str, b->prefix, b->prefix_len) == 0 && memcmp(ch->str + b->prefix_len, "t:", 2) == 0)
        notify(b, 's', ch->str + b->prefix_len + 2, ch->len - b->prefix_len - 2);
    }
    return;
  case WS_BUS_PUSH_ERROR: b->c.failed++; return;
  case WS_BUS_PUSH_FOREIGN: b->c.foreign++; return;
  case WS_BUS_PUSH_OWN: b->c.own++; return;
  case WS_BUS_PUSH_FAST:
  case WS_BUS_PUSH_HOOK: break;
  default: return;
  }
  const ws_bus_env *e = &m.env;
  if (e->has_time) b->c.lag_us = now_us() - (int64_t)e->time_us;
  b->c.received++;
  if (m.kind == WS_BUS_PUSH_FAST)
    ws_topics_publish(b->l, m.topic, m.topic_len, e->binary ? WS_OP_BINARY : WS_OP_TEXT, e->data, e->data_len, NULL);
  else if (b->hook)
    b->hook(b, e, m.topic, m.topic_len, b->user);
}

/* ---- connections ---- */

static void conn_retry(bus_conn *bc) {
  ws_bus *b = bc->bus;
  double d = BACKOFF_MIN;
  for (int i = 1; i < bc->attempts && d < BACKOFF_MAX; i++) d *= 2;
  if (d > BACKOFF_MAX) d = BACKOFF_MAX;
  d *= 0.5 + 0.5 * random01(); /* jitter, never above the cap: nodes that lost Redis together do not
                                  come back in step */
  bc->attempts++;
  ev_timer_set(&bc->retry, d, 0.);
  ev_timer_start(ws_loop_ev(b->loop), &bc->retry);
}

static void on_state(ws_redis *r, int up, const char *why, void *user) {
  bus_conn *bc = user;
  ws_bus *b = bc->bus;
  (void)r; (void)why;
  if (b->closed) return;
  if (!up) {
    if (bc == &b->sub) {
      b->c.subscriptions = 0;
      b->resub_left = 0;
      for (size_t i = 0; i < b->nbuckets; i++)
        for (bus_topic *t = b->buckets[i]; t; t = t->next) t->subscribed = 0;
    }
    conn_retry(bc);
    return;
  }
  int again = bc->ever_up;
  if (again) b->c.reconnects++;
  bc->ever_up = 1;
  bc->attempts = 0;
  if (bc == &b->sub) {
    char chan[CHANNEL_MAX];
    size_t n = (size_t)snprintf(chan, sizeof chan, "%sn:%s", b->prefix, b->node);
    ws_redis_arg a[2] = { { "SUBSCRIBE", 9, NULL, 0 }, { chan, n, NULL, 0 } };
    if (ws_redis_command(b->sub.r, 2, a, NULL, NULL, NULL) < 0) b->c.failed++;
    b->resub_left = 1 + resubscribe_all(b); /* the node's channel and the topics */
    b->resub_notify = again;
  }
}

static void retry_cb(struct ev_loop *ev, ev_timer *w, int revents) {
  bus_conn *bc = w->data;
  (void)ev; (void)revents;
  if (bc->bus->closed) return;
  if (ws_redis_connect(bc->r) < 0) conn_retry(bc);
}

static void ping_cb(struct ev_loop *ev, ev_timer *w, int revents) {
  ws_bus *b = w->data;
  (void)ev; (void)revents;
  if (ws_redis_state(b->sub.r) == WS_REDIS_UP) ws_redis_ping(b->sub.r);
}

static void default_node(ws_bus *b) {
  char host[256] = "";
  if (gethostname(host, sizeof host - 1) != 0 || !host[0]) strcpy(host, "node");
  host[sizeof host - 1] = 0;
  for (char *p = host; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
          c == '-'))
      *p = '-';
  }
  uint8_t k[4] = { 0, 0, 0, 0 };
  ws_random_mask(k);
  char tail[32];
  int tl = snprintf(tail, sizeof tail, "-%ld-%02x%02x", (long)getpid(), k[0], k[1]);
  int hl = (int)strlen(host);
  if (hl + tl > WS_BUS_NODE_MAX) hl = WS_BUS_NODE_MAX - tl;
  snprintf(b->node, sizeof b->node, "%.*s%s", hl, host, tail);
}

static int open_conn(ws_bus *b, bus_conn *bc, int push) {
  char name[WS_BUS_NODE_MAX + 16];
  snprintf(name, sizeof name, "lua-ws:%s:%s", b->node, push ? "sub" : "cmd");
  ws_redis_cfg rc;
  memset(&rc, 0, sizeof rc);
  rc.host = b->host;
  rc.port = b->cfg.port;
  rc.username = b->username;
  rc.password = b->password;
  rc.db = b->cfg.db;
  rc.client_name = name;
  rc.timeout = b->cfg.timeout;
  rc.max_pending = b->cfg.max_pending;
  rc.max_output = b->cfg.max_output;
  rc.max_reply = b->cfg.max_reply;
  rc.tls = b->cfg.tls;
  rc.server_name = b->server_name;
  rc.push = push;
  rc.on_push = on_push;
  rc.on_state = on_state;
  rc.user = bc;
  bc->bus = b;
  bc->r = ws_redis_new(b->loop, &rc);
  if (!bc->r) return -1;
  return 0;
}

static void start_cb(struct ev_loop *ev, ev_timer *w, int revents) {
  ws_bus *b = w->data;
  (void)ev; (void)revents;
  if (b->closed || b->started) return;
  b->started = 1;
  if (!b->node[0]) default_node(b);
  if (open_conn(b, &b->sub, 1) < 0 || open_conn(b, &b->cmd, 0) < 0) {
    b->c.failed++;
    return;
  }
  if (ws_redis_connect(b->sub.r) < 0) conn_retry(&b->sub);
  if (ws_redis_connect(b->cmd.r) < 0) conn_retry(&b->cmd);
  if (b->cfg.ping > 0) {
    ev_timer_set(&b->ping, b->cfg.ping, b->cfg.ping);
    ev_timer_start(ws_loop_ev(b->loop), &b->ping);
  }
}

/* ---- public ---- */

static char *dup_or_null(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

ws_bus *ws_bus_new(ws_listener *l, const ws_bus_cfg *cfg, ws_bus_hook_fn hook, void *user, const char **err) {
  const char *prefix = cfg->prefix ? cfg->prefix : "ws:";
  if (strlen(prefix) > WS_BUS_PREFIX_MAX) { *err = "prefix over 64 bytes"; return NULL; }
  if (cfg->node && !ws_bus_node_valid(cfg->node, strlen(cfg->node))) {
    *err = "node must be 1 to 64 of A-Z a-z 0-9 . _ : -";
    return NULL;
  }
  ws_bus *b = calloc(1, sizeof *b);
  if (!b) { *err = "out of memory"; return NULL; }
  b->loop = l->loop;
  b->l = l;
  b->cfg = *cfg;
  strcpy(b->prefix, prefix);
  b->prefix_len = strlen(prefix);
  if (cfg->node) strcpy(b->node, cfg->node);
  b->host = dup_or_null(cfg->host ? cfg->host : "127.0.0.1");
  b->username = dup_or_null(cfg->username);
  b->password = dup_or_null(cfg->password);
  b->server_name = dup_or_null(cfg->server_name);
  b->buckets = calloc(INITIAL_BUCKETS, sizeof *b->buckets);
  b->nbuckets = INITIAL_BUCKETS;
  if (!b->host || !b->buckets || (cfg->username && !b->username) || (cfg->password && !b->password) ||
      (cfg->server_name && !b->server_name) || ws_topics_on_edge(l, on_edge, b) < 0) {
    free(b->host); free(b->username); free(b->password); free(b->server_name); free(b->buckets); free(b);
    *err = "out of memory";
    return NULL;
  }
  b->cfg.host = b->cfg.username = b->cfg.password = b->cfg.prefix = b->cfg.node = b->cfg.server_name = NULL;
  if (b->cfg.tls) ws_tls_ctx_ref(b->cfg.tls);
  if (b->cfg.linger < 0) b->cfg.linger = 0;
  if (b->cfg.timeout <= 0) b->cfg.timeout = 2;
  b->c.lag_us = -1;
  b->hook = hook;
  b->user = user;
  b->sub.bus = b->cmd.bus = b;
  ev_timer_init(&b->start, start_cb, 0., 0.);
  ev_timer_init(&b->ping, ping_cb, 0., 0.);
  ev_timer_init(&b->linger, linger_cb, 0., 0.);
  ev_timer_init(&b->sub.retry, retry_cb, 0., 0.);
  ev_timer_init(&b->cmd.retry, retry_cb, 0., 0.);
  b->start.data = b->ping.data = b->linger.data = b;
  b->sub.retry.data = &b->sub;
  b->cmd.retry.data = &b->cmd;
  /* Started by the loop's first iteration: no socket exists before (a process that forks
   * workers before its loop runs shares no connection with them). */
  ev_timer_start(ws_loop_ev(b->loop), &b->start);
  return b;
}

const char *ws_bus_node(const ws_bus *b) { return b->started && b->node[0] ? b->node : NULL; }
const char *ws_bus_prefix(const ws_bus *b) { return b->prefix; }

int ws_bus_state(const ws_bus *b) {
  if (b->closed) return WS_BUS_DOWN;
  if (!b->started || !b->sub.r || !b->cmd.r) return b->started ? WS_BUS_DOWN : WS_BUS_CONNECTING;
  int s = ws_redis_state(b->sub.r), c = ws_redis_state(b->cmd.r);
  if (s == WS_REDIS_UP && c == WS_REDIS_UP) return WS_BUS_UP;
  if (s == WS_REDIS_IDLE || c == WS_REDIS_IDLE) return WS_BUS_DOWN;
  return WS_BUS_CONNECTING;
}

void ws_bus_get_counters(const ws_bus *b, ws_bus_counters *c) { *c = b->c; }
void ws_bus_count_failed(ws_bus *b) { b->c.failed++; }

const char *ws_bus_error(const ws_bus *b) {
  const ws_redis *rs[2] = { b->sub.r, b->cmd.r };
  for (int i = 0; i < 2; i++)
    if (rs[i] && ws_redis_state(rs[i]) != WS_REDIS_UP && ws_redis_error(rs[i])) return ws_redis_error(rs[i]);
  return NULL;
}

static int publish_reply(ws_redis *r, struct redisReply *rep, const char *err, const char *code, void *priv) {
  (void)r; (void)err; (void)code;
  if (!rep || rep->type == REDIS_REPLY_ERROR) ((ws_bus *)priv)->c.failed++;
  return 0;
}

long ws_bus_publish(ws_bus *b, const char *name, size_t len, int opcode, const void *data, size_t n,
                    ws_stream *except, const char *except_id, size_t except_id_len) {
  long count = ws_topics_publish(b->l, name, len, opcode, data, n, except);
  if (count < 0) return -1;
  if (b->closed || !b->cmd.r || ws_redis_state(b->cmd.r) != WS_REDIS_UP || len > WS_TOPIC_NAME_MAX) {
    b->c.unsent++;
    return count;
  }
  ws_bus_env e;
  memset(&e, 0, sizeof e);
  e.type = 'f';
  e.binary = opcode == WS_OP_BINARY;
  e.node = b->node;
  e.node_len = strlen(b->node);
  e.id = except_id;
  e.id_len = except_id ? except_id_len : 0;
  e.has_time = 1;
  e.time_us = (uint64_t)now_us();
  char head[WS_BUS_HEADER_MAX + 1], chan[CHANNEL_MAX];
  size_t hl = ws_bus_env_header(head, sizeof head, &e);
  if (!hl) { b->c.unsent++; return count; }
  size_t cl = topic_channel(b, chan, name, len);
  ws_redis_arg a[3] = { { "PUBLISH", 7, NULL, 0 }, { chan, cl, NULL, 0 }, { head, hl, data, n } };
  if (ws_redis_command(b->cmd.r, 3, a, publish_reply, b, NULL) < 0) b->c.unsent++;
  else b->c.sent++;
  return count;
}

int ws_bus_command(ws_bus *b, int argc, const ws_redis_arg *argv, ws_redis_reply_fn cb, void *priv,
                   const char **why) {
  if (b->closed || !b->cmd.r) {
    if (why) *why = "bus unavailable";
    return -1;
  }
  return ws_redis_command(b->cmd.r, argc, argv, cb, priv, why);
}

void ws_bus_close(ws_bus *b) {
  if (b->closed) return;
  b->closed = 1;
  struct ev_loop *ev = ws_loop_ev(b->loop);
  ev_timer_stop(ev, &b->start);
  ev_timer_stop(ev, &b->ping);
  ev_timer_stop(ev, &b->linger);
  ev_timer_stop(ev, &b->sub.retry);
  ev_timer_stop(ev, &b->cmd.retry);
  ws_topics_on_edge(b->l, NULL, NULL);
  if (b->sub.r) ws_redis_close(b->sub.r, "bus closed", NULL, NULL, 1);
  if (b->cmd.r) ws_redis_close(b->cmd.r, "bus closed", NULL, NULL, 1);
}

void ws_bus_free(ws_bus *b) {
  if (!b) return;
  ws_bus_close(b);
  ws_redis_free(b->sub.r);
  ws_redis_free(b->cmd.r);
  while (b->count) {
    for (size_t i = 0; i < b->nbuckets; i++)
      while (b->buckets[i]) topic_free(b, b->buckets[i]);
  }
  free(b->buckets);
  free(b->host); free(b->username); free(b->password); free(b->server_name);
  ws_tls_ctx_unref(b->cfg.tls);
  free(b);
}
