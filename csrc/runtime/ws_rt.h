/* The server runtime as the binding sees it: the event loop, timers, listening sockets and
 * connections (transport + ws_conn + write queue + received-message inbox). No Lua and no
 * libev types appear here: libev watchers are embedded as opaque blobs of the right size
 * (checked at compile time in ws_loop.c), so the binding can embed these structs in its
 * userdata without including <ev.h>. The runtime never makes a protocol decision; every
 * byte goes through ws_conn (frames) or ws_handshake (the HTTP head). */
#ifndef WS_RT_H
#define WS_RT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "ws_buf.h"
#include "ws_conn.h"
#include "ws_deflate.h"
#include "ws_handshake.h"

#define WS_WATCHER_BYTES 48 /* sizeof(ev_io) == sizeof(ev_timer) on LP64 with libev 4 */
typedef union ws_watcher {
  void *p;
  double d;
  unsigned char bytes[WS_WATCHER_BYTES];
} ws_watcher;

typedef struct ws_loop ws_loop;
typedef struct ws_stream ws_stream;
typedef struct ws_listener ws_listener;

/* ---- loop ---- */

/* What the binding provides. The runtime calls these from libev callbacks; none of them may
 * resume a coroutine directly for a stream event: they queue work, which runs from
 * run_ready at the top of the next loop iteration, so runtime code is never re-entered. */
typedef struct ws_hooks {
  void (*stream_event)(ws_stream *s, int ev);  /* WS_SEV_* */
  void (*listener_ready)(ws_listener *l);      /* connections are waiting to be accepted */
  size_t (*run_ready)(ws_loop *loop);          /* run queued work; returns how much is left */
  void (*signal)(ws_loop *loop, int signum);
  /* The connections fell to half their peak (a burst is over): free what the binding holds
   * only until its next collection (ws_loop.c, reclaim). May be NULL. */
  void (*reclaim)(ws_loop *loop);
} ws_hooks;

enum ws_stream_event {
  WS_SEV_READ = 1,   /* messages arrived, the request head is complete, or the state changed */
  WS_SEV_WRITE = 2,  /* the write queue drained below the low-water mark */
  WS_SEV_CLOSED = 3, /* the socket is closed: final, no more events */
  WS_SEV_PONG = 4    /* the pong of a ping sent with ws_stream_ping_wait came */
};

/* `evloop` is a `struct ev_loop *` owned by a host, or NULL for libev's default loop. */
ws_loop *ws_loop_new(void *evloop, const ws_hooks *hooks, void *user) WS_HIDDEN;
/* Stop the loop's own watchers, free its buffers, and destroy libev's default loop if it was
 * created by ws_loop_new. Every stream, listener and timer must be gone already. */
void ws_loop_free(ws_loop *loop) WS_HIDDEN;
void *ws_loop_user(ws_loop *loop) WS_HIDDEN;
void *ws_loop_evloop(ws_loop *loop) WS_HIDDEN;
double ws_loop_now(ws_loop *loop) WS_HIDDEN;
/* Bring the loop's clock up to date: its time only advances while it runs, so callers from
 * outside the loop do this before they read the clock or start a timer. */
void ws_loop_touch(ws_loop *loop) WS_HIDDEN;
/* mode 0: until ws_loop_stop or nothing is left; 1: one iteration, blocking; 2: one
 * iteration, not blocking. Returns nonzero while watchers are active (work is left). */
int ws_loop_run(ws_loop *loop, int mode) WS_HIDDEN;
/* Make the innermost ws_loop_run return after the current step. */
void ws_loop_stop(ws_loop *loop) WS_HIDDEN;
/* Queued work exists: the next iteration must not block. */
void ws_loop_wakeup(ws_loop *loop) WS_HIDDEN;
/* Watch a signal (on: 1) or stop watching it; only on libev's default loop. */
int ws_loop_signal(ws_loop *loop, int signum, int on) WS_HIDDEN;

/* For hosts that drive the loop from their own poll (ws_loop_embed.c). The file descriptor
 * of libev's backend (epoll): readable while a watched socket has an event; -1 when the
 * backend cannot be polled from outside. */
int ws_loop_backend_fd(ws_loop *loop) WS_HIDDEN;
/* One iteration that waits at most `timeout` seconds for events (0: does not wait).
 * Returns nonzero while watchers are active, as ws_loop_run. */
int ws_loop_step(ws_loop *loop, double timeout) WS_HIDDEN;
/* Work is queued for the next iteration (it must not wait): nonzero, else 0 (ws_loop.c). */
int ws_loop_busy(ws_loop *loop) WS_HIDDEN;

/* ---- timers (embedded in the binding's task objects) ---- */

typedef struct ws_timer ws_timer;
typedef void (*ws_timer_cb)(ws_loop *loop, ws_timer *t);
struct ws_timer {
  ws_watcher w;
  ws_timer_cb cb;
};
void ws_timer_init(ws_timer *t, ws_timer_cb cb) WS_HIDDEN;
void ws_timer_start(ws_loop *loop, ws_timer *t, double after) WS_HIDDEN;
void ws_timer_stop(ws_loop *loop, ws_timer *t) WS_HIDDEN;

/* ---- shared frames: one buffer queued on many connections (publish) ---- */

typedef struct ws_shared {
  size_t refs;
  size_t len;
  uint8_t data[];
} ws_shared;
ws_shared *ws_shared_new(size_t len) WS_HIDDEN; /* refs = 1 */
void ws_shared_unref(ws_shared *sh) WS_HIDDEN;

/* ---- transport: plain sockets now, TLS slots in beside it ---- */

#define WS_TP_PLAIN_HTTP (-2)
typedef struct ws_transport {
  const char *name;
  /* Finish the transport's own handshake: 1 done, 0 again (s->want says for what), -1 failed,
   * WS_TP_PLAIN_HTTP: the peer sent a plain HTTP request (s->error says so; answer 400). */
  int (*handshake)(ws_stream *s);
  /* >0 bytes, 0 end of stream, -1 with errno (EAGAIN: s->want says what to wait for). */
  ssize_t (*read)(ws_stream *s, void *p, size_t n);
  ssize_t (*writev)(ws_stream *s, const struct iovec *iov, int iovcnt);
  /* Bytes already decrypted and waiting inside the transport (read them without polling). */
  size_t (*pending)(ws_stream *s);
  void (*shutdown)(ws_stream *s); /* stop sending (TLS close_notify, then SHUT_WR) */
  void (*free)(ws_stream *s);     /* release transport state; the fd is closed by the stream */
} ws_transport;
extern const ws_transport ws_transport_plain WS_HIDDEN;

/* ---- server configuration, shared by every connection of a listener ---- */

typedef struct ws_server_cfg {
  uint64_t max_message;
  size_t max_header_bytes;
  double open_timeout, close_timeout, ping_interval, ping_timeout, idle_timeout;
  size_t send_high, send_low;
  uint32_t max_queue;        /* received messages waiting for the handler */
  uint32_t max_connections;  /* 0: no limit */
  int deflate_mode;          /* WS_DEFLATE_OFF, _SHARED or _DEDICATED (permessage-deflate) */
  ws_deflate_config deflate; /* its window, memLevel and threshold (no_context_takeover: shared) */
} ws_server_cfg;

/* The server option `compression` (ws_stream_deflate.c). "shared": no context takeover either
 * way, so a connection holds zlib memory only while a message is being (de)compressed, and a
 * publish compresses once for every subscriber; "dedicated": per-connection contexts kept
 * between messages (better ratios, about 60 KiB per connection with the defaults). */
enum ws_deflate_mode { WS_DEFLATE_OFF = 0, WS_DEFLATE_SHARED = 1, WS_DEFLATE_DEDICATED = 2 };
void ws_server_cfg_default(ws_server_cfg *cfg) WS_HIDDEN;

/* ---- counters: what ws.metrics() reports ---- */

/* Counts by close code or HTTP status: a few slots, filled in order of first use; once they
 * are all taken, further codes are counted in the last slot under code 0 ("other"). */
#define WS_CODE_SLOTS 24
typedef struct ws_code_count {
  uint32_t code;
  uint64_t n;
} ws_code_count;

/* Kept where the events happen: in each listener for its connections, and in the loop for
 * client connections and for listeners that are gone (ws_listener_retire). Messages and bytes
 * are data messages (text and binary) and their payload bytes, before compression; a publish
 * counts one message per subscriber it was queued on. */
typedef struct ws_counters {
  int64_t open;              /* connections upgraded and not closed yet (a gauge) */
  uint64_t accepted;         /* connections upgraded (server) or opened (client) */
  /* (in this order: a message's two counts are not neighbours, which keeps compilers from
   * pairing their increments into vector instructions that cost more than two adds) */
  uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
  uint64_t dropped;          /* published messages skipped for a slow subscriber */
  uint64_t ping_timeouts;    /* connections closed because no pong came in time */
  uint64_t tls_failures;     /* TLS handshakes that failed */
  ws_code_count closes[WS_CODE_SLOTS];  /* opened connections closed, by close code */
  ws_code_count refused[WS_CODE_SLOTS]; /* handshakes answered with an HTTP error, by status */
} ws_counters;

void ws_code_count_add(ws_code_count *t, unsigned code, uint64_t n) WS_HIDDEN;
/* into += from, gauge included. */
void ws_counters_add(ws_counters *into, const ws_counters *from) WS_HIDDEN;
/* The loop's own counters (client connections, retired listeners). */
ws_counters *ws_loop_counters(ws_loop *loop) WS_HIDDEN;

/* ---- connections ---- */

enum ws_phase {
  WS_PH_NEW = 0,     /* not accepted yet (or accept failed) */
  WS_PH_HEAD,        /* transport handshake and reading the HTTP request head */
  WS_PH_HEAD_READY,  /* the head is complete; waiting for the binding to accept or refuse */
  WS_PH_OPEN,
  WS_PH_CLOSING,     /* our close frame is out; waiting for the peer's */
  WS_PH_FINISH,      /* flushing the last bytes, then half-close and wait for the peer's FIN */
  WS_PH_DONE         /* the socket is closed */
};

typedef struct ws_segment ws_segment;

/* What a stream holds only while messages or output wait: taken from the loop's spares when
 * the first message or queued segment comes and given back once all of it is empty again
 * (ws_stream_act_get / ws_stream_act_put), so an idle connection carries one pointer. */
typedef struct ws_stream_act {
  ws_buf inbox;             /* received messages: [u32 length][u8 opcode][3 pad] bytes ... */
  ws_segment *seg_head, *seg_tail; /* output queued before ws_conn_output, in order */
  size_t seg_bytes;
  const uint8_t *held;      /* a large message left in ws_conn's buffers instead of the inbox */
  uint32_t held_len;        /* (WS_SF_HELD, ws_stream.c): its length, bytes and opcode */
  uint8_t held_op;
} ws_stream_act;

/* What few connections need, allocated at first use (ws_stream_cold_get), so an idle
 * connection does not carry it. */
/* The HTTP head of the handshake (a server's request, a client's response) and what waits on
 * it, allocated when its first bytes come and freed when the connection no longer needs them
 * (the upgrade's end for a server unless the binding keeps conn.request, the response read for
 * a client), so an open connection does not carry it. */
typedef struct ws_stream_hs {
  ws_buf head;              /* the head, and bytes after it until the upgrade */
  ws_request *req;          /* the head parsed, while kept (ws_stream_request) */
  uint32_t head_len;        /* length of the complete head, 0 until parsed */
  uint32_t body_want;       /* request body bytes ws_stream_body waits for, 0 when none */
} ws_stream_hs;

typedef struct ws_stream_cold {
  char *close_reason;       /* the peer's close reason (malloc'd, NUL-terminated) */
  void (*on_finish)(ws_stream *s); /* called once as the socket closes (a client's connect state) */
  uint64_t dropped;         /* published messages skipped because its queue was over the limit */
  struct ws_ping_wait *ping_wait; /* pings a caller waits to see answered (ws_stream_ping_wait) */
} ws_stream_cold;

/* The pings sent with ws_stream_ping_wait: the payload of the last one, how many were sent and
 * how many are answered (a pong answers its ping and every earlier one), when the last one
 * went and when its answer came (the loop's clock). */
typedef struct ws_ping_wait {
  uint64_t sent, answered;
  double sent_at, answered_at;
  uint8_t len;
  uint8_t data[WS_CONTROL_MAX];
} ws_ping_wait;

struct ws_stream {           /* laid out without padding holes: a server keeps one per connection */
  ws_conn ws;               /* the protocol engine */
  ws_watcher io;            /* ev_io: EV_READ and/or EV_WRITE */
  double deadline;          /* open, ping/idle, close or linger deadline (loop clock), while
                               dl_slot is set: one heap per loop, no libev timer per stream */
  ws_loop *loop;
  ws_listener *listener;
  const ws_server_cfg *cfg;
  const ws_transport *tp;
  void *tls;                /* transport state (NULL for plain sockets) */
  ws_stream *lprev, *lnext; /* the listener's connections */
  ws_stream_hs *hs;         /* the handshake's head, NULL when there is none (ws_stream_has_head) */
  ws_stream_act *act;       /* inbox, write queue, held message: NULL while all are empty */
  double last_recv, last_activity, ping_sent;
  void *user;               /* the binding's object */
  ws_stream_cold *cold;     /* NULL until needed */
  const char *error;        /* why the connection failed (static text), NULL when it did not */
  struct ws_topic_set *topics; /* the topics it subscribes to (ws_topic.c), NULL when none */
  uint32_t inbox_count;     /* messages in act's inbox (or its held message) */
  uint32_t dl_slot;         /* 1 + its index in the loop's deadline heap, 0 when none is set */
  uint32_t dirty_slot;      /* 1 + its index in the loop's streams with output to flush, 0 when
                               not among them (WS_SF_DIRTY) */
  int fd;
  int err;                  /* errno of a failed read or write */
  float latency;            /* seconds from the last ping to its pong, -1 before the first */
  uint16_t close_code;      /* the peer's close code (1005 none, 1006 no close frame) */
  uint16_t fail_code;       /* our close code when we failed the connection */
  uint16_t remote_port;
  uint8_t remote_family;    /* AF_INET / AF_INET6 */
  uint8_t remote_ip[16];
  uint8_t phase;
  uint8_t flags;            /* WS_SF_* (ws_stream.c) */
  uint8_t want;             /* events the transport waits for after EAGAIN (EV_READ/EV_WRITE) */
  uint8_t wait_write;       /* output is waiting for the socket to become writable */
  uint8_t io_events;        /* events the io watcher is started with */
  uint8_t tp_wait;          /* TLS: EV_WRITE when a read waits for writability, EV_READ when a
                               write waits for readability (set by the transport) */
  uint8_t deflate_bits;     /* permessage-deflate: our compressor's window bits, 0 when not
                               negotiated (a publish shares compressed frames by this value) */
  uint8_t deferred;         /* a plain HTTP request whose answer comes later (ws_stream_defer) */
};


/* s->cold, allocated on first use; NULL when out of memory. */
ws_stream_cold *ws_stream_cold_get(ws_stream *s) WS_HIDDEN;
static inline const char *ws_stream_close_reason(const ws_stream *s) {
  return s->cold ? s->cold->close_reason : NULL;
}
/* The handshake's head is held (until the upgrade, or while conn.request is kept). */
static inline int ws_stream_has_head(const ws_stream *s) { return s->hs && s->hs->head.data; }
/* s->hs, allocated (empty) when missing; NULL when out of memory. */
ws_stream_hs *ws_stream_hs_get(ws_stream *s) WS_HIDDEN;
static inline uint64_t ws_stream_dropped(const ws_stream *s) { return s->cold ? s->cold->dropped : 0; }

/* Initialise an embedded stream (phase NEW, no fd); safe to destroy at once. */
void ws_stream_init(ws_stream *s, ws_loop *loop) WS_HIDDEN;
/* Idempotent: stops watchers, closes the socket, frees every buffer. No hook is called. */
void ws_stream_destroy(ws_stream *s) WS_HIDDEN;

/* Handshake. ws_stream_head: 1 with the complete head in p and n, 0 still reading, -1 failed
 * (s->error; the error response, if any, was sent). */
int ws_stream_head(ws_stream *s, const char **p, size_t *n) WS_HIDDEN;
/* The request head, parsed, and checked when it asks for an upgrade (ws_request_check_upgrade:
 * status and error say whether it is a valid one; key and origin are set): NULL when the stream
 * has no request head (a client's, or none complete yet) or it does not parse. Its pointers go
 * into the head's bytes. The stream owns it: the parse read_head made is kept for the questions
 * of the handshake and freed when the stream leaves it (the upgrade, ws_stream_defer, the socket's
 * end); a later call parses the head again. Valid until the next call that changes the stream's
 * phase, or ws_stream_request_release. */
const ws_request *ws_stream_request(ws_stream *s) WS_HIDDEN;
/* The caller is done with the parse: outside the handshake it goes (some 3 KiB an open
 * connection need not keep; the head's bytes stay). During the handshake it is kept. */
void ws_stream_request_release(ws_stream *s) WS_HIDDEN;
/* permessage-deflate (ws_stream_deflate.c): answer the request's Sec-WebSocket-Extensions
 * offers with the listener's compression settings. 1: accepted, resp holds the response
 * value and, when attach is set, the state is on s->ws (ws_conn_set_deflate); 0: off, nothing
 * offered, every offer declined (or no memory for the state); -1: the header is malformed
 * (answer 400, *error says why). Call it before ws_stream_upgrade. */
int ws_stream_deflate_negotiate(ws_stream *s, const ws_request *req, int attach, char *resp,
                                size_t cap, const char **error) WS_HIDDEN;
/* Send the 101 (ws_response_accept) and open; bytes after the head go to the protocol engine. */
int ws_stream_upgrade(ws_stream *s, const char *key, size_t key_len, const char *protocol,
                      const char *extensions, const ws_header *extra, size_t nextra) WS_HIDDEN;
/* An upgraded connection's request head is no longer wanted (the binding's policy for
 * conn.request): its memory goes. Nothing happens before the upgrade. */
void ws_stream_drop_head(ws_stream *s) WS_HIDDEN;
/* Answer with a plain HTTP response (ws_response_status) and close once it is sent; head_only:
 * the answer to a HEAD request (ws_response_status_head: the body's length, not the body). */
int ws_stream_respond(ws_stream *s, int status, const ws_header *extra, size_t nextra,
                      const char *body, size_t body_len, int head_only) WS_HIDDEN;

/* A plain HTTP request's body (the head is ready, no upgrade): 1 with the first `want` bytes
 * after the head in *p (valid until the next call on s), 0 while they are still coming (s
 * reads on and signals WS_SEV_READ when they are there), -1 when the connection failed. */
int ws_stream_body(ws_stream *s, size_t want, const uint8_t **p) WS_HIDDEN;
/* Keep a request whose head is ready unanswered for at most `seconds` (then the connection is
 * cut, as a handshake timeout): the answer (ws_stream_respond) comes later. */
int ws_stream_defer(ws_stream *s, double seconds) WS_HIDDEN;

/* The oldest received message: 1 with p, n and opcode set (valid until ws_stream_drop or any
 * other call on this stream), 0 when none is waiting. */
int ws_stream_peek(ws_stream *s, const uint8_t **p, size_t *n, int *opcode) WS_HIDDEN;
/* Forget the message ws_stream_peek returned (and read again if the inbox had been full). */
void ws_stream_drop(ws_stream *s) WS_HIDDEN;
/* Queue a message; -1 when it cannot be sent (ws_conn_error(&s->ws) or "closed"). */
int ws_stream_send(ws_stream *s, int opcode, const void *p, size_t n, unsigned flags) WS_HIDDEN;
/* Queue one fragment of a message sent in pieces (ws_conn_send_fragment); -1 as above. */
int ws_stream_send_fragment(ws_stream *s, int opcode, const void *p, size_t n, int fin) WS_HIDDEN;
/* Queue a frame built once for many connections (takes a reference). */
int ws_stream_send_shared(ws_stream *s, ws_shared *sh) WS_HIDDEN;
int ws_stream_ping(ws_stream *s, const void *p, size_t n) WS_HIDDEN;
/* A ping whose pong the caller waits for: returns its sequence number (1, 2, ...), or -1.
 * No payload (p NULL): one is made from the sequence number. WS_SEV_PONG follows its pong. */
long long ws_stream_ping_wait(ws_stream *s, const void *p, size_t n) WS_HIDDEN;
/* The pong of ping `seq` came: 1 with *at the loop's time it came, 0 not yet. */
int ws_stream_pong_seen(const ws_stream *s, long long seq, double *at) WS_HIDDEN;
/* Start the closing handshake (or just close before the upgrade). Idempotent. */
void ws_stream_close(ws_stream *s, unsigned code, const char *reason, size_t len) WS_HIDDEN;
/* Close the socket now (after a failed close handshake or for an abort). */
void ws_stream_abort(ws_stream *s, const char *why) WS_HIDDEN;
size_t ws_stream_buffered(const ws_stream *s) WS_HIDDEN;
/* Write what can be written now; returns the bytes still queued. */
size_t ws_stream_flush(ws_stream *s) WS_HIDDEN;
/* Ask for WS_SEV_WRITE once the queue is at or below the low-water mark. */
void ws_stream_want_drain(ws_stream *s) WS_HIDDEN;
/* "connecting", "open", "closing" or "closed", as a browser's readyState. */
const char *ws_stream_state_name(const ws_stream *s) WS_HIDDEN;
/* The remote address as text. */
void ws_stream_remote_addr(const ws_stream *s, char *out, size_t cap) WS_HIDDEN;
/* Client side: the response head in s->hs->head (head_len bytes, then any bytes after it) was
 * accepted; open the connection (phase HEAD_READY -> OPEN). 0, or -1 (s->error). */
int ws_stream_open_client(ws_stream *s) WS_HIDDEN;

/* ---- listening sockets ---- */

struct ws_listener {
  ws_watcher io;
  ws_loop *loop;
  ws_server_cfg cfg;
  ws_stream *streams;  /* the connections accepted and not yet closed */
  uint32_t count;
  int fd;
  int port;
  int paused;          /* accepting stopped at max_connections */
  int reuseport;       /* SO_REUSEPORT: set before ws_listener_open (option), or by reopen */
  int hold_fd;         /* parked: a bound, not listening socket that keeps the port; else -1 */
  int backlog;
  socklen_t addrlen;   /* the address bound (the port resolved), for ws_listener_reopen */
  struct sockaddr_storage addr;
  struct ws_tls_ctx *tls; /* TLS for new connections (ws_tls.h), NULL for plain; referenced */
  struct ws_topics *topics; /* its publish/subscribe topics (ws_topic.c), NULL until used */
  void *user;
  ws_listener *next_l, *prev_l; /* the loop's listeners, until ws_listener_retire */
  ws_counters ctr;
  char *unix_path;     /* a Unix socket's file (malloc'd), removed at close; NULL for TCP */
  int unix_pid;        /* the process that made it: a forked worker closing its copy leaves it */
};

/* The counters a stream's events go to: its listener's, or the loop's for a client (and for
 * a connection whose server is gone). */
static inline ws_counters *ws_stream_counters(ws_stream *s) {
  return s->listener ? &s->listener->ctr : ws_loop_counters(s->loop);
}

void ws_listener_init(ws_listener *l, ws_loop *loop) WS_HIDDEN;
/* Bind and listen; returns 0, or -1 with *err (static text) and errno. */
int ws_listener_open(ws_listener *l, const char *host, int port, int backlog, const char **err) WS_HIDDEN;
/* Bind and listen on a Unix socket at path. A socket file no server listens on (left by a
 * process that ended) is replaced; any other file there is an error (EADDRINUSE). mode >= 0
 * sets the file's permission bits. The file is removed by ws_listener_close. */
int ws_listener_open_unix(ws_listener *l, const char *path, int mode, int backlog, const char **err) WS_HIDDEN;
/* Accept one connection into s (from ws_stream_init): 1 accepted, 0 nothing waiting
 * (or the connection limit is reached), -1 error (errno). */
int ws_listener_accept(ws_listener *l, ws_stream *s) WS_HIDDEN;
/* Stop accepting and close the listening socket (and a parked one's placeholder). Idempotent. */
void ws_listener_close(ws_listener *l) WS_HIDDEN;
/* Workers mode, in the master before it forks: stop accepting and close the listening
 * socket, keeping its address and its port with a bound, not listening SO_REUSEPORT socket
 * (no connection is queued on it; the workers' listeners join its port). Connections waiting
 * in the old backlog are dropped. 0, or -1 with *err and errno. */
int ws_listener_park(ws_listener *l, const char **err) WS_HIDDEN;
/* Workers mode, in a forked worker: a listener of its own with SO_REUSEPORT on the address
 * the master bound (port 0 was resolved there once), replacing the inherited sockets; the
 * kernel spreads new connections over the workers' listeners. 0, or -1 with *err and errno. */
int ws_listener_reopen(ws_listener *l, const char **err) WS_HIDDEN;
/* The listener's struct is going (its owner is freed): its counters go to the loop's. */
void ws_listener_retire(ws_listener *l) WS_HIDDEN;
/* The loop's listeners, for a process-wide total. */
ws_listener *ws_loop_listeners(ws_loop *loop) WS_HIDDEN;
/* Send-queue bytes of its connections, now. */
size_t ws_listener_queued(const ws_listener *l) WS_HIDDEN;
/* Called by the stream when it is done: unlinks it and resumes accepting if paused. */
void ws_listener_release(ws_listener *l, ws_stream *s) WS_HIDDEN;

/* ---- processes: the workers mode (ws_proc.c) ---- */

/* The master's signals: on, SIGCHLD, SIGINT and SIGTERM are blocked (ws_proc_sigwait takes
 * them); off, the mask from before is back. */
int ws_proc_master(int on) WS_HIDDEN;
/* fork(2) after flushing stdio. In the child (returns 0): the signal mask from before
 * ws_proc_master, SIGTERM when the master dies (Linux), the libev loop made usable
 * (ev_loop_fork) and no masking key drawn by the parent. -1 with errno when fork fails. */
pid_t ws_proc_fork(ws_loop *loop) WS_HIDDEN;
/* Wait at most `timeout` seconds for SIGCHLD, SIGINT or SIGTERM (blocked by ws_proc_master):
 * the signal number, 0 at the timeout, -1 with errno. */
int ws_proc_sigwait(double timeout) WS_HIDDEN;
/* Has child `pid` ended? 0 running; 1 exited (*code: its status); 2 killed (*code: the
 * signal); -1 with errno. Never blocks. */
int ws_proc_status(pid_t pid, int *code) WS_HIDDEN;
/* The CPUs this process may run on. */
int ws_proc_cores(void) WS_HIDDEN;

#endif
