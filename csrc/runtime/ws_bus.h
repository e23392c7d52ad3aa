/* The Redis bus of one server (listener): a subscriber connection and a command connection
 * to Redis (ws_redis.c), a subscription per topic only while the topic has local subscribers
 * (with a linger before unsubscribing), the node's own channel for direct messages, the fast
 * delivery class (local fan-out, then PUBLISH an envelope; envelopes of other nodes fanned out
 * here, our own skipped), reconnects with backoff, PING liveness and counters. Every other
 * envelope goes to a hook (the binding hands it to Lua). Nothing happens before the loop runs:
 * the bus starts (computes its node id, opens its sockets) at the loop's first iteration. */
#ifndef WS_BUS_H
#define WS_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "ws_bus_envelope.h"
#include "ws_redis.h"
#include "ws_rt.h"

#define WS_BUS_PREFIX_MAX 64
#define WS_BUS_BATCH 512 /* channels per SUBSCRIBE/UNSUBSCRIBE command */

typedef struct ws_bus ws_bus;

enum ws_bus_state { WS_BUS_CONNECTING = 0, WS_BUS_UP, WS_BUS_DOWN };

typedef struct ws_bus_cfg {
  const char *host;
  int port;
  const char *username, *password;
  int db;
  const char *prefix;      /* of every channel and key (default "ws:") */
  const char *node;        /* NULL: "<hostname>-<pid>-<4 hex>" computed at start */
  double linger;           /* seconds before unsubscribing a topic without local subscribers */
  double ping;             /* seconds between PINGs on the subscriber connection */
  double timeout;          /* connect timeout and longest wait for a reply */
  size_t max_pending, max_output, max_reply; /* ws_redis_cfg */
  struct ws_tls_ctx *tls;  /* rediss://: a client context (referenced by the bus), NULL: plain */
  const char *server_name; /* what the certificate must match (NULL: host) */
} ws_bus_cfg;

typedef struct ws_bus_counters {
  uint64_t sent;           /* envelopes published by this node */
  uint64_t received;       /* envelopes of other nodes handled */
  uint64_t unsent;         /* fast publishes not sent to Redis (bus down, queue full) */
  uint64_t failed;         /* commands whose reply was an error or never came */
  uint64_t foreign;        /* messages on our channels that are not valid envelopes */
  uint64_t own;            /* our own fast envelopes coming back, skipped */
  uint64_t reconnects;     /* connections up again after a loss */
  uint64_t subscriptions;  /* channels the subscriber connection holds now (Redis's count) */
  int64_t lag_us;          /* publish -> receipt of the last envelope with a time, -1 none yet */
} ws_bus_counters;

/* An envelope the bus does not handle itself (types o, j, l, d, a). topic is NULL for a message
 * on the node channel. Also two events with only a type: 'u' (topic: this node unsubscribed
 * from it after its linger) and 'r' (topic NULL: the subscriber connection came back after a
 * loss and Redis confirmed every channel of the resubscription) and 's' (Redis confirmed the
 * subscription of a topic's channel, outside a resubscription). Called from a libev callback: it must not wait. */
typedef void (*ws_bus_hook_fn)(ws_bus *b, const ws_bus_env *e, const char *topic, size_t topic_len, void *user);

/* NULL with *err when the configuration is invalid or memory ran out. */
ws_bus *ws_bus_new(ws_listener *l, const ws_bus_cfg *cfg, ws_bus_hook_fn hook, void *user, const char **err) WS_HIDDEN;
/* The node id, NULL before the bus started. */
const char *ws_bus_node(const ws_bus *b) WS_HIDDEN;
const char *ws_bus_prefix(const ws_bus *b) WS_HIDDEN;
int ws_bus_state(const ws_bus *b) WS_HIDDEN;
void ws_bus_get_counters(const ws_bus *b, ws_bus_counters *c) WS_HIDDEN;
void ws_bus_count_failed(ws_bus *b) WS_HIDDEN;
/* Why a connection is not up (its last failure, static text), NULL when both are up. */
const char *ws_bus_error(const ws_bus *b) WS_HIDDEN;
/* Fast publish: local subscribers but except (NULL: none) at once, then the envelope to Redis
 * (except_id names except for the other nodes; may be NULL). Returns the local count or -1
 * when out of memory. */
long ws_bus_publish(ws_bus *b, const char *name, size_t len, int opcode, const void *data, size_t n,
                    ws_stream *except, const char *except_id, size_t except_id_len) WS_HIDDEN;
/* A hold on a topic without a connection (on = 1 takes one, 0 gives one back): the node stays
 * subscribed to the topic's channel while it has holds or local subscribers, so the envelopes
 * published there reach the hook (Socket.IO rooms whose members are not WebSocket connections).
 * 1 done, 0 nothing to give back (or the bus is closed), -1 out of memory. */
int ws_bus_hold(ws_bus *b, const char *name, size_t len, int on) WS_HIDDEN;
/* A command on the command connection (ws_redis_command). */
int ws_bus_command(ws_bus *b, int argc, const ws_redis_arg *argv, ws_redis_reply_fn cb, void *priv,
                   const char **why) WS_HIDDEN;
/* Close both connections (pending commands fail), stop every timer. Idempotent. */
void ws_bus_close(ws_bus *b) WS_HIDDEN;
void ws_bus_free(ws_bus *b) WS_HIDDEN;

#endif
