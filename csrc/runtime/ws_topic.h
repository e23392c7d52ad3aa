/* Publish/subscribe for a server's connections: topics by name, each with its subscribers,
 * and a publish that builds one frame and queues that one buffer on every subscriber. The
 * topics belong to a listener (server:publish reaches that server's connections); a stream
 * leaves all its topics when its socket closes (ws_topic_leave_all from the stream's close). */
#ifndef WS_TOPIC_H
#define WS_TOPIC_H

#include <stddef.h>
#include <stdint.h>

#include "ws_rt.h"

#define WS_TOPIC_NAME_MAX 1024 /* bytes in a topic name */

/* What a publish does with a subscriber whose queued bytes are over the server's limit.
 * Only published messages are subject to it: control frames and conn:send are never dropped. */
enum ws_slow_policy {
  WS_SLOW_DROP = 0,  /* skip the message for that subscriber and count it (ws_stream.dropped) */
  WS_SLOW_CLOSE = 1  /* close that subscriber with WS_TOPIC_SLOW_CODE */
};

/* 1008 (policy violation), not 1013 (try again later): the subscriber broke the server's rule
 * "keep up with what you subscribed to"; 1013 describes an overloaded server and invites the
 * same client to come straight back and fall behind again. */
#define WS_TOPIC_SLOW_CODE 1008
#define WS_TOPIC_SLOW_REASON "subscriber too slow"

/* The listener's policy and backlog limit (bytes; 0: the server's send_high_water).
 * 0, or -1 when out of memory. */
int ws_topics_configure(ws_listener *l, int policy, size_t max_backlog) WS_HIDDEN;
/* At the listener's end (its owner is freed): the topics go once their subscribers have left. */
void ws_topics_release(ws_listener *l) WS_HIDDEN;

/* The edges of a topic's local subscriber count: on = 1 when its first subscriber joins (0 -> 1),
 * 0 when its last one leaves (1 -> 0). Called synchronously from subscribe/unsubscribe/close:
 * fn must not subscribe, unsubscribe or publish. fn NULL removes it. 0, or -1 out of memory. */
typedef void (*ws_topic_edge_fn)(void *user, const char *name, size_t len, int on);
int ws_topics_on_edge(ws_listener *l, ws_topic_edge_fn fn, void *user) WS_HIDDEN;

/* 1 subscribed, 0 it already was, -1 out of memory or the stream has no listener or is closed. */
int ws_topic_subscribe(ws_stream *s, const char *name, size_t len) WS_HIDDEN;
/* 1 left, 0 it was not subscribed. */
int ws_topic_unsubscribe(ws_stream *s, const char *name, size_t len) WS_HIDDEN;
/* Leave every topic (the stream is closing or being destroyed). Idempotent. */
void ws_topic_leave_all(ws_stream *s) WS_HIDDEN;
/* The stream's topics: how many, and the i-th name (valid until the next change). */
size_t ws_topic_count(const ws_stream *s) WS_HIDDEN;
const char *ws_topic_name(const ws_stream *s, size_t i, size_t *len) WS_HIDDEN;

/* How many topics the listener has now, and memberships in all of them. */
void ws_topics_stats(const ws_listener *l, size_t *topics, size_t *subscriptions) WS_HIDDEN;
/* Subscribers of a topic of the listener (0 when the topic does not exist). */
size_t ws_topics_subscribers(ws_listener *l, const char *name, size_t len) WS_HIDDEN;
/* Queue one data frame (WS_OP_TEXT or WS_OP_BINARY) on every open subscriber of the topic but
 * `except` (NULL: none). Never blocks, never waits for a subscriber. Returns how many
 * subscribers it was queued on, or -1 when out of memory (nothing was queued). */
long ws_topics_publish(ws_listener *l, const char *name, size_t len, int opcode, const void *data,
                       size_t n, ws_stream *except) WS_HIDDEN;
/* The same to every open connection of the listener but `except` (server:broadcast). */
long ws_listener_broadcast(ws_listener *l, int opcode, const void *data, size_t n, ws_stream *except) WS_HIDDEN;

#endif
