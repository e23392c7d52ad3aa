/* What a reply on the bus's subscribed connection means (pure: no I/O, no state): a message
 * on a topic's or the node's channel with its decoded envelope, a subscription count, or
 * something to count and drop. ws_bus.c acts on the verdict; the fuzz driver feeds it RESP. */
#ifndef WS_BUS_PUSH_H
#define WS_BUS_PUSH_H

#include <stddef.h>

#include "ws_bus_envelope.h"

struct redisReply;

enum ws_bus_push_kind {
  WS_BUS_PUSH_IGNORE = 0, /* not for us (an unknown push, a short array) */
  WS_BUS_PUSH_COUNT,      /* subscribe/unsubscribe confirmation: count is Redis's channel count */
  WS_BUS_PUSH_ERROR,      /* an error reply */
  WS_BUS_PUSH_FOREIGN,    /* a message that is not a valid envelope for this channel */
  WS_BUS_PUSH_OWN,        /* our own fast envelope coming back */
  WS_BUS_PUSH_FAST,       /* another node's fast publish: deliver to the topic's subscribers */
  WS_BUS_PUSH_HOOK        /* any other envelope: for the hook (topic NULL on the node channel) */
};

typedef struct ws_bus_push {
  int kind;
  const char *topic;      /* into the reply */
  size_t topic_len;
  long long count;
  ws_bus_env env;         /* FAST, OWN, HOOK */
} ws_bus_push;

/* hiredis's reply reader with aggregates bounded to WS_BUS_MAX_ELEMENTS elements: hiredis 0.14
 * allocates an array's element table when it reads its header, so "*999999999" alone would ask
 * for gigabytes; over the bound the reader fails ("Out of memory") and the connection is made
 * again. NULL when out of memory. */
#define WS_BUS_MAX_ELEMENTS (1 << 20)
struct redisReader *ws_bus_reader_new(void);

/* prefix: the bus's channel prefix; node: this node's id; topic_max: the longest topic name. */
void ws_bus_push_classify(const struct redisReply *rep, const char *prefix, size_t prefix_len, const char *node,
                          size_t node_len, size_t topic_max, ws_bus_push *out);

#endif
