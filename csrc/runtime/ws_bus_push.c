/* The verdict on a reply of the bus's subscribed connection (see ws_bus_push.h). RESP2 in
 * subscribe mode: ["message", channel, payload], ["subscribe"|"unsubscribe", channel, count];
 * pongs are taken by ws_redis.c before this. */
#include <hiredis/hiredis.h>
#include <string.h>
#include <strings.h>

#include "ws_bus_push.h"

static int str_is(const redisReply *r, const char *s) {
  size_t n = strlen(s);
  return r->type == REDIS_REPLY_STRING && r->len == n && strncasecmp(r->str, s, n) == 0;
}

static int has_prefix(const char *chan, size_t clen, const char *prefix, size_t plen, const char *kind) {
  return clen >= plen + 2 && memcmp(chan, prefix, plen) == 0 && memcmp(chan + plen, kind, 2) == 0;
}

void ws_bus_push_classify(const redisReply *rep, const char *prefix, size_t plen, const char *node, size_t nlen,
                          size_t topic_max, ws_bus_push *out) {
  memset(out, 0, sizeof *out);
  if (rep->type == REDIS_REPLY_ERROR) { out->kind = WS_BUS_PUSH_ERROR; return; }
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3) return;
  redisReply **el = rep->element;
  if ((str_is(el[0], "subscribe") || str_is(el[0], "unsubscribe")) && el[2]->type == REDIS_REPLY_INTEGER) {
    out->kind = WS_BUS_PUSH_COUNT;
    out->count = el[2]->integer;
    return;
  }
  if (!str_is(el[0], "message")) return;
  out->kind = WS_BUS_PUSH_FOREIGN;
  if (rep->elements != 3 || el[1]->type != REDIS_REPLY_STRING || el[2]->type != REDIS_REPLY_STRING) return;
  const char *chan = el[1]->str;
  size_t clen = el[1]->len;
  int on_node = 0;
  if (has_prefix(chan, clen, prefix, plen, "t:") && clen > plen + 2) {
    out->topic = chan + plen + 2;
    out->topic_len = clen - plen - 2;
    if (out->topic_len > topic_max) return;
  } else if (has_prefix(chan, clen, prefix, plen, "n:") && clen == plen + 2 + nlen &&
             memcmp(chan + plen + 2, node, nlen) == 0) {
    on_node = 1;
  } else {
    return;
  }
  const char *err;
  if (ws_bus_env_decode(el[2]->str, el[2]->len, &out->env, &err) < 0) return;
  const ws_bus_env *e = &out->env;
  if (e->type == 'f') {
    if (on_node) return; /* a fast publish belongs to a topic */
    out->kind = e->node_len == nlen && memcmp(e->node, node, nlen) == 0 ? WS_BUS_PUSH_OWN : WS_BUS_PUSH_FAST;
    return;
  }
  if (on_node) out->topic = NULL, out->topic_len = 0;
  out->kind = WS_BUS_PUSH_HOOK;
}

/* hiredis's own array constructor, kept when the first bounded reader is made. */
static void *(*hiredis_create_array)(const redisReadTask *, int);
static redisReplyObjectFunctions bounded_functions;

static void *bounded_array(const redisReadTask *task, int elements) {
  if (elements < 0 || elements > WS_BUS_MAX_ELEMENTS) return NULL; /* the reader fails */
  return hiredis_create_array(task, elements);
}

redisReader *ws_bus_reader_new(void) {
  redisReader *r = redisReaderCreate();
  if (!r) return NULL;
  if (!hiredis_create_array) {
    bounded_functions = *r->fn;
    hiredis_create_array = bounded_functions.createArray;
    bounded_functions.createArray = bounded_array;
  }
  r->fn = &bounded_functions;
  return r;
}
