/* Shared declarations of the `ws.core` binding (lua_core*.c): the per-state context, tasks
 * (coroutines run by the loop), connections and servers as userdata. C here never blocks
 * and never yields: a primitive that would block says so, the Lua wrapper waits (lua/ws/conn.lua)
 * and the loop resumes the coroutine from the top of an iteration. One exception: conn:messages()
 * on a handler's own coroutine waits and yields from C, with a continuation (lua_core_conn.c),
 * so that an idle handler keeps fewer call frames. */
#ifndef LUA_CORE_H
#define LUA_CORE_H

#include <stdint.h>
#include <string.h>

#include "lauxlib.h"
#include "lua.h"
#include "lua_compat.h"
#include "runtime/ws_rt.h"

#define WSL_CTX_KEY "ws.core.ctx" /* registry: the wsl_ctx, a light userdata */
#define WSL_TASK_MT "ws.core.task"
#define WSL_CONN_MT "ws.core.conn"
#define WSL_SERVER_MT "ws.core.server"
#define WSL_TLS_MT "ws.core.tls"

/* The states of a task (wsl_task.state), the one description of them; lua_core_task.c moves
 * tasks:
 *   IDLE     not scheduled: not started yet, a callback-style connection between events, or
 *            the main thread between waits
 *   WAIT     in core.wait: on a connection's reader slot or writers list and/or its timer;
 *            t->ref anchors the owning userdata (WSL_REF_SELF: the connection's self_ref)
 *   READY    in the context's ready queue, resumed next round by run_ready; t->ref anchors
 *   RUNNING  being resumed by resume_task
 *   DONE     its function returned or failed: it never runs again
 * IDLE --spawn/handoff/wsl_conn_schedule--> READY --resume_task--> RUNNING;
 * RUNNING --core.wait--> WAIT --wsl_task_wake (event, timeout, close)--> READY;
 * RUNNING --coroutine.yield--> READY; RUNNING --return/error--> DONE, or IDLE for a
 * callback-style run that ended with more events to come. The main thread's task (WSL_K_MAIN)
 * is never resumed: READY stops the loop its core.wait runs. */
enum wsl_task_state { WSL_T_IDLE = 0, WSL_T_WAIT, WSL_T_READY, WSL_T_RUNNING, WSL_T_DONE };
enum wsl_task_kind { WSL_K_TASK = 0, WSL_K_CONN, WSL_K_MAIN };
/* wsl_task.ref of a connection's own task waiting on its open connection (or of a scheduled
 * callback-style run): it borrows the connection's self_ref instead of taking a registry
 * reference per wait (one slot fewer per idle connection); when the socket closes, run_ready
 * hands self_ref over to the task if it still waits or is ready. */
#define WSL_REF_SELF (-3)

enum wsl_reason { WSL_R_NONE = 0, WSL_R_READ, WSL_R_WRITE, WSL_R_TIMEOUT, WSL_R_CLOSED, WSL_R_START };
#define WSL_REASONS 6

typedef struct wsl_conn wsl_conn;

/* A callback-style connection's progress: its handshake, its open callback and messages, a
 * callback failed (no more messages, close still called), nothing more to call. */
enum wsl_stage { WSL_STAGE_NEW = 0, WSL_STAGE_OPEN, WSL_STAGE_FAILED, WSL_STAGE_DONE };

/* The timer of a task's timed waits (receive timeouts, sleeps). */
typedef struct wsl_timer {
  ws_timer timer;         /* first member: the timer callback recovers the task */
  struct wsl_task *task;
} wsl_timer;

/* A coroutine the loop runs. Its thread is user value 1 of the userdata that embeds it. */
typedef struct wsl_task {
  wsl_timer *tm;          /* a task's own (right after it in its userdata); a connection's is
                             allocated at its first timed wait (most never wait with a timeout) */
  struct wsl_task *next;  /* ready queue, or a connection's list of writers */
  wsl_conn *on;           /* the connection waited on */
  int ref;                /* anchors the owning userdata while waiting or ready */
  uint8_t parked;         /* callback style: user value 1 holds the thread, which waits */
  uint8_t reusable;       /* its thread is one core.handoff gave it (none else holds it) */
  uint8_t bare;           /* it waits in a continuation that reads no value: resumed with none */
  lua_State *co;          /* its thread while it has one (user value 1 anchors it, or for a
                             callback-style connection the stack of the resume running it) */
  uint8_t state, kind, reason, started;
  uint8_t wait;           /* what it waits for: 'r', 'w', 'c' or 't' */
  uint8_t pooled;         /* a callback-style connection: a thread from the pool runs each event */
  uint8_t stage;          /* callback style: WSL_STAGE_* */
  uint8_t handoff;        /* its thread ended and user value 1 holds the next one (core.handoff) */
} wsl_task;

typedef struct wsl_server wsl_server;

struct wsl_conn {
  wsl_task task;          /* first member: the handler's own task */
  wsl_task *reader;       /* the task waiting to receive */
  wsl_task *writers;      /* tasks waiting for the write queue to drain or the close */
  wsl_conn *closed_next;  /* queue of closed connections to release */
  wsl_server *server;
  int self_ref;           /* anchors the userdata while its socket is open */
  uint32_t id;
  ws_stream s;
};

struct wsl_bus;

struct wsl_server {
  ws_listener l;
  int self_ref;           /* while listening or while connections remain */
  int closed;
  int pooled;             /* callback style (core.listen's fifth argument) */
  int quiet_close;        /* nothing to call at a close (core.listen's sixth argument) */
  int keep_request;       /* option keep_request: conn.request for the connection's whole life */
  struct wsl_bus *bus;    /* its Redis bus (lua_core_bus.c), NULL when none */
};

typedef struct wsl_ctx {
  ws_loop *loop;
  lua_State *L;           /* the main thread: the only state kept beyond a callback */
  wsl_task *ready_head, *ready_tail;
  wsl_conn *closed_head;
  uint32_t next_id;
  unsigned signals;       /* bit per signal caught and not yet handled; bit 0: log lines queued */
  int error_ref;          /* Lua error reporter, LUA_NOREF for stderr */
  int signal_ref;         /* Lua signal handler */
  int tasks_ref;          /* weak table thread -> task userdata */
  int main_ref;           /* the main thread's task userdata */
  int running;            /* inside ws_loop_run */
  int attached;           /* the loop is a host's (ws_attach): the host runs it, not ws.run */
  const void *conn_mt;    /* the metatables of connections and tasks, for cheap type checks */
  const void *task_mt;
  int conn_mt_ref;        /* the connections' metatable in the registry (0: not yet) */
  int pool_ref;           /* idle threads kept for callback-style connections (a Lua array) */
  int npool;
  lua_State *spare;       /* the thread given back last, kept out of the array (spare_ref) */
  lua_State *spare_kept;  /* the thread the spare_ref slot holds (given out or not) */
  int spare_ref;
  int handlers_ref;       /* finished coroutine-style handler threads kept for reuse (a Lua array) */
  int nhandlers;
  wsl_task *resumed;      /* the task being resumed, its owner at resumed_top + 1 on L */
  int resumed_top;
  void *conn_last;        /* the connection wsl_toconn identified last: no metatable check for it */
  const char *kind_text;  /* the interned strings "text" and "binary" (kept in the registry): */
  const char *kind_binary; /* a kind argument that is one of them is known by its address */
  int reason_refs[WSL_REASONS]; /* registry references of the wsl_reason names (lua_core_task.c) */
  int log_level;          /* debug log: 0 off, 1 handshakes and closes, 2 every frame too */
  int logger_ref;         /* Lua logger fn(line, level), LUA_NOREF for stderr */
  char *logq;             /* lines for the Lua logger, delivered from run_ready */
  size_t logq_len, logq_cap;
} wsl_ctx;

/* lua_core.c */
/* The context: upvalue 1 of every function of the module. */
static inline wsl_ctx *wsl_ctx_get(lua_State *L) { return (wsl_ctx *)lua_touserdata(L, lua_upvalueindex(1)); }
void wsl_report(wsl_ctx *x, const char *where, const char *msg) WS_HIDDEN;

/* lua_core_task.c: the scheduler */
void wsl_task_open_lib(lua_State *L, int mod) WS_HIDDEN;
int wsl_task_spawn(lua_State *L) WS_HIDDEN;          /* core.spawn(fn, ...) */
void wsl_task_run_ready(wsl_ctx *x) WS_HIDDEN;       /* one round of the ready queue */
/* The running task (the main thread's when is_main is set), its owner pushed; NULL when the
 * running coroutine is none of the loop's. */
wsl_task *wsl_current_task(lua_State *L, wsl_ctx *x, int *is_main) WS_HIDDEN;
void wsl_task_init(wsl_task *t, int kind) WS_HIDDEN;
void wsl_task_ready(wsl_ctx *x, wsl_task *t, int reason) WS_HIDDEN;
void wsl_task_wake(wsl_ctx *x, wsl_task *t, int reason) WS_HIDDEN;
/* Stop and free the timer a connection's task allocated (at most once, from its __gc). */
void wsl_task_free_timer(wsl_ctx *x, wsl_task *t) WS_HIDDEN;
void wsl_register_task(lua_State *L, int thread_idx, int owner_idx) WS_HIDDEN;
/* The connection at idx (any userdata with the connection metatable), or a Lua error. */
wsl_conn *wsl_toconn(lua_State *L, wsl_ctx *x, int idx) WS_HIDDEN;
/* core.wait(conn|NULL, what, timeout) from C (timeout < 0: none), the connection (if any) at
 * index 1: the running task waits and its caller yields next; on the main thread it runs the
 * loop until woken and pushes the reason (1 result). Returns the number of results. */
int wsl_wait(lua_State *L, wsl_ctx *x, wsl_conn *c, int what, double timeout) WS_HIDDEN;
/* Callback style: run the connection's dispatch function for a new event (from the next
 * round) unless it runs or waits already or has nothing more to call. */
void wsl_conn_schedule(wsl_ctx *x, wsl_conn *c) WS_HIDDEN;

/* lua_core_conn.c */
void wsl_conn_open_lib(lua_State *L, int ctx_idx) WS_HIDDEN;
/* A connection's userdata of `size` bytes (a wsl_conn first), pushed: no socket yet. */
wsl_conn *wsl_conn_new(lua_State *L, wsl_ctx *x, size_t size) WS_HIDDEN;
/* Its socket opens (accepted or connecting): c, the userdata at idx, gets its number and the
 * reference that anchors it until the socket is closed. */
void wsl_conn_start(lua_State *L, wsl_ctx *x, wsl_conn *c, int idx) WS_HIDDEN;
void wsl_conn_event(wsl_ctx *x, wsl_conn *c, int ev) WS_HIDDEN;
void wsl_conn_task_done(wsl_ctx *x, wsl_conn *c, int failed) WS_HIDDEN;
/* The handler has started waiting (coroutine style) or the open callback has returned
 * (callback style): the request head goes, unless the server keeps it (keep_request). The
 * connection's userdata is at idx. */
void wsl_conn_drop_request(lua_State *L, wsl_conn *c, int idx) WS_HIDDEN;
/* wsl_toconn, with the connection identified last recognised inline (the hot methods). */
static inline wsl_conn *wsl_toconn_fast(lua_State *L, wsl_ctx *x, int idx) {
  void *p = lua_touserdata(L, idx);
  if (p && x && p == x->conn_last && lua_type(L, idx) == LUA_TUSERDATA) return (wsl_conn *)p;
  return wsl_toconn(L, x, idx);
}
/* The connection at idx (wsl_toconn with the context of the running function). */
static inline wsl_conn *wsl_checkconn(lua_State *L, int idx) { return wsl_toconn_fast(L, wsl_ctx_get(L), idx); }
/* nil, message, code for a connection that has ended or is ending. */
int wsl_conn_push_end(lua_State *L, wsl_conn *c) WS_HIDDEN;
/* Pushes the fields table (user value 2) of the connection at idx, made when `create` is
 * set; else what user value 2 holds (nil). */
void wsl_conn_fields(lua_State *L, int idx, int create) WS_HIDDEN;
/* A message kind argument: "text" (the default) or "binary" -> WS_OP_*. Inline: core.send's
 * hot path. Strings are interned (short ones on Lua 5.4, all of them on 5.1 and LuaJIT), so
 * the usual argument is one of the context's two by its address, without a comparison. */
static inline int wsl_check_kind(lua_State *L, int idx) {
  size_t n;
  const char *kind = luaL_optlstring(L, idx, "text", &n);
  if (n == 4 && memcmp(kind, "text", 4) == 0) return WS_OP_TEXT;
  if (n == 6 && memcmp(kind, "binary", 6) == 0) return WS_OP_BINARY;
  return luaL_argerror(L, idx, "\"text\" or \"binary\" expected");
}
static inline int wsl_kind(lua_State *L, const wsl_ctx *x, int idx) {
  const char *kind = lua_tolstring(L, idx, NULL);
  if (kind) {
    if (kind == x->kind_text) return WS_OP_TEXT;
    if (kind == x->kind_binary) return WS_OP_BINARY;
  }
  return wsl_check_kind(L, idx);
}

/* lua_core_handshake.c */
void wsl_handshake_open_lib(lua_State *L, int mod) WS_HIDDEN;
int wsl_conn_request(lua_State *L) WS_HIDDEN;       /* core.request(conn) -> the request table */
/* The handshake is refused with `status` (counted and logged; the caller responds). */
void wsl_conn_refused(wsl_ctx *x, wsl_conn *c, int status) WS_HIDDEN;

/* lua_core_server.c */
void wsl_server_open_lib(lua_State *L, int ctx_idx) WS_HIDDEN;
/* The options ws.server and ws.connect share (table at t) into c: limits, timeouts and the
 * send queue's marks (send_low_water's default: a quarter of send_high_water for a client, at
 * most the default for a server). Raises "<who>: ..." on a bad value. */
void wsl_stream_options(lua_State *L, int t, ws_server_cfg *c, const char *who, int client) WS_HIDDEN;
void wsl_server_ready(wsl_ctx *x, wsl_server *sv) WS_HIDDEN;
void wsl_server_check_release(wsl_ctx *x, wsl_server *sv) WS_HIDDEN;

/* lua_core_tls.c */
void wsl_tls_open_lib(lua_State *L, int mod) WS_HIDDEN;
struct ws_tls_ctx *wsl_check_tls(lua_State *L, int idx) WS_HIDDEN;

/* lua_core_client.c */
void wsl_client_open_lib(lua_State *L, int mod) WS_HIDDEN;

/* lua_core_deflate.c: the `compression` option of options table `opts`; returns the mode
 * (WS_DEFLATE_*) and fills cfg. Raises "<who>: compression ..." on a bad value. */
int wsl_check_compression(lua_State *L, int opts, const char *who, ws_deflate_config *cfg) WS_HIDDEN;

/* lua_core_log.c: debug logging (WS_DEBUG, core.set_logger). wsl_log formats one line when
 * `level` is on: to stderr at once, or queued for the Lua logger (never called from inside
 * the runtime's callbacks). */
#define WSL_LOG_PENDING 1u /* wsl_ctx.signals: lines wait in logq */
#define WSL_LOG(x, level, ...) do { if ((x)->log_level >= (level)) wsl_log((x), (level), __VA_ARGS__); } while (0)
void wsl_log(wsl_ctx *x, int level, const char *fmt, ...) WS_HIDDEN;
void wsl_log_init(wsl_ctx *x) WS_HIDDEN;      /* WS_DEBUG from the environment */
void wsl_log_flush(wsl_ctx *x) WS_HIDDEN;     /* deliver queued lines (run_ready) */
void wsl_log_free(wsl_ctx *x) WS_HIDDEN;
/* "peer 127.0.0.1:5000, conn 3" into buf: who a line is about. */
const char *wsl_log_who(const wsl_conn *c, char *buf, size_t cap) WS_HIDDEN;
void wsl_log_closed(wsl_ctx *x, const wsl_conn *c) WS_HIDDEN;
void wsl_log_open_lib(lua_State *L, int mod) WS_HIDDEN;

/* lua_core_metrics.c: core.metrics([server]) */
void wsl_metrics_open_lib(lua_State *L, int mod) WS_HIDDEN;

/* lua_core_topic.c */
void wsl_topic_open_lib(lua_State *L, int mod) WS_HIDDEN;
/* The server at idx: its userdata, or the Lua server object holding it in `_l`. */
wsl_server *wsl_check_server(lua_State *L, int idx) WS_HIDDEN;
/* A topic name argument (1 to WS_TOPIC_NAME_MAX bytes). */
const char *wsl_check_topic(lua_State *L, int idx, size_t *len) WS_HIDDEN;

/* lua_core_proc.c: the workers mode */
void wsl_proc_open_lib(lua_State *L, int mod) WS_HIDDEN;
/* lua_core_bus.c */
void wsl_bus_open_lib(lua_State *L, int mod) WS_HIDDEN;
void wsl_sio_open_lib(lua_State *L, int mod) WS_HIDDEN;
/* Push conn.id: the number, or "<node>/<number>" when its server has a started bus. */
void wsl_push_conn_id(lua_State *L, const wsl_conn *c) WS_HIDDEN;

#endif
