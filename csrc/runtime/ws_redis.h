/* One connection to a Redis server on the loop: our own non-blocking socket (asynchronous
 * name lookup, connect and command timeouts), hiredis used only as the RESP codec (its reader;
 * commands are written here), pipelined commands whose replies go to their callbacks in
 * order, and a "push" mode for a subscribed connection where every reply goes to one
 * callback. It never blocks and never reconnects by itself: the owner (ws_bus.c) decides. */
#ifndef WS_REDIS_H
#define WS_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "ws_rt.h"

struct redisReply;
typedef struct ws_redis ws_redis;

enum ws_redis_state {
  WS_REDIS_IDLE = 0,   /* not connected (never, or after a failure or close) */
  WS_REDIS_CONNECTING, /* lookup, connect, AUTH/SELECT in flight */
  WS_REDIS_UP
};

/* A command's reply (NULL when the command failed without one: err and code then say why,
 * e.g. "bus unavailable"/"unavailable" or "timeout"/"timeout"). Return 1 to keep the reply
 * (then freeReplyObject it yourself), 0 to have it freed after the callback. */
typedef int (*ws_redis_reply_fn)(ws_redis *r, struct redisReply *reply, const char *err, const char *code,
                                  void *priv);
/* Every reply of a push-mode connection (subscribe confirmations, messages); pongs are
 * handled inside. */
typedef void (*ws_redis_push_fn)(ws_redis *r, struct redisReply *reply, void *user);
/* up: 1 the connection is ready for commands; 0 it failed or closed (why: static text). */
typedef void (*ws_redis_state_fn)(ws_redis *r, int up, const char *why, void *user);

typedef struct ws_redis_cfg {
  const char *host;        /* name or address literal */
  int port;
  const char *password;    /* NULL: no AUTH */
  const char *username;    /* NULL: AUTH with the password only */
  int db;                  /* SELECT when > 0 */
  const char *client_name; /* CLIENT SETNAME (NULL: none) */
  struct ws_tls_ctx *tls;  /* rediss://: a client context (ws_tls.h; referenced), NULL: plain */
  const char *server_name; /* the name the certificate must match (NULL: host) */
  double timeout;          /* connect timeout and longest wait for a reply (seconds) */
  size_t max_pending;      /* commands awaiting a reply */
  size_t max_output;       /* bytes of commands not written yet */
  size_t max_reply;        /* bytes of one reply (a bigger one fails the connection) */
  int push;                /* subscriber connection: replies go to on_push */
  ws_redis_push_fn on_push;
  ws_redis_state_fn on_state;
  void *user;
} ws_redis_cfg;

/* Strings of cfg are copied. NULL when out of memory. */
ws_redis *ws_redis_new(ws_loop *loop, const ws_redis_cfg *cfg) WS_HIDDEN;
/* Start connecting (state IDLE only): 0, or -1 when it failed at once (on_state is called
 * from the loop's next callbacks either way, never from inside this call). */
int ws_redis_connect(ws_redis *r) WS_HIDDEN;
int ws_redis_state(const ws_redis *r) WS_HIDDEN; /* IDLE for NULL (not created yet) */
/* A command as argc strings (binary-safe). An argument may have a second part appended to it
 * (p2/n2), so a header and its payload need no copy into one string first. Returns 0, or -1
 * when the connection is not up or its queues are full (*why says which; cb is not called). */
typedef struct ws_redis_arg {
  const void *p;
  size_t n;
  const void *p2;
  size_t n2;
} ws_redis_arg;
int ws_redis_command(ws_redis *r, int argc, const ws_redis_arg *argv, ws_redis_reply_fn cb, void *priv,
                     const char **why) WS_HIDDEN;
/* Push mode: PING, with a reply expected within the timeout, else the connection fails
 * ("ping timeout"). */
int ws_redis_ping(ws_redis *r) WS_HIDDEN;
/* Close the socket (idempotent): pending commands fail with err/code; on_state(0, why) is
 * called unless quiet. */
void ws_redis_close(ws_redis *r, const char *why, const char *err, const char *code, int quiet) WS_HIDDEN;
/* Close quietly and free (deferred while one of its callbacks runs). */
void ws_redis_free(ws_redis *r) WS_HIDDEN;
size_t ws_redis_pending(const ws_redis *r) WS_HIDDEN;
const char *ws_redis_error(const ws_redis *r) WS_HIDDEN; /* why it last failed, or NULL */

#endif
