/* The task scheduler of `ws.core`: every coroutine the loop runs (a connection handler, a
 * callback-style connection's dispatch function on a pooled thread, or a ws.spawn task) is
 * resumed from here, at the top of a loop iteration, never from inside runtime code: runtime
 * events only move tasks to the ready queue. A task that waits calls core.wait (which records
 * what it waits for and returns) and then yields from Lua, so no C function ever yields. The
 * main thread may wait too: it then runs the loop until woken. The states a task goes
 * through are written down once, in lua_core.h (enum wsl_task_state). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_core.h"

static const char *const reason_names[] = { "", "r", "w", "timeout", "closed", "" };
/* The reason a task woke, as the Lua string its wait returns: kept in the registry (an array
 * read per resume) rather than pushed with lua_pushstring, whose cache of C strings by address
 * costs a lookup, and on a collision a new string, at every resume. */
static void push_reason(wsl_ctx *x, lua_State *L, int reason) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, x->reason_refs[reason]);
}

void wsl_task_init(wsl_task *t, int kind) {
  memset(t, 0, sizeof *t);
  t->tm = NULL;
  t->ref = LUA_NOREF;
  t->kind = (uint8_t)kind;
}

/* The metatable of the userdata at idx, as a pointer to compare with x->conn_mt and
 * x->task_mt (cheaper than luaL_checkudata's lookup by name, on every receive and send). */
static const void *meta_of(lua_State *L, int idx) {
  const void *mt = NULL;
  if (lua_getmetatable(L, idx)) {
    mt = lua_topointer(L, -1);
    lua_pop(L, 1);
  }
  return mt;
}

/* A handler calls receive and send on the same connection many times in a row: the one
 * identified last is remembered (conn_gc forgets it before its memory can go, and a finalized
 * connection is never remembered), so only its type needs checking, not its metatable. */
wsl_conn *wsl_toconn(lua_State *L, wsl_ctx *x, int idx) {
  void *p = lua_touserdata(L, idx);
  if (p && x) {
    if (p == x->conn_last && lua_type(L, idx) == LUA_TUSERDATA) return p;
    if (x->conn_mt && meta_of(L, idx) == x->conn_mt) {
      if (((wsl_conn *)p)->s.user == p) x->conn_last = p;
      return p;
    }
  }
  return luaL_checkudata(L, idx, WSL_CONN_MT); /* the usual error, or a match after all */
}

static wsl_task *totask(lua_State *L, wsl_ctx *x, int idx) {
  void *p = lua_touserdata(L, idx);
  if (p) {
    const void *mt = meta_of(L, idx);
    if (mt && mt == x->task_mt) return (wsl_task *)p;
    if (mt && mt == x->conn_mt) return &((wsl_conn *)p)->task;
  }
  return NULL;
}

/* The task must hold a reference (t->ref) already: it is the one taken when it started
 * waiting, or by spawn/accept. */
void wsl_task_ready(wsl_ctx *x, wsl_task *t, int reason) {
  t->state = WSL_T_READY;
  t->reason = (uint8_t)reason;
  t->next = NULL;
  if (x->ready_tail) x->ready_tail->next = t; else x->ready_head = t;
  x->ready_tail = t;
  ws_loop_wakeup(x->loop);
}

static void detach(wsl_task *t) {
  wsl_conn *c = t->on;
  if (!c) return;
  if (c->reader == t) c->reader = NULL;
  for (wsl_task **pp = &c->writers; *pp; pp = &(*pp)->next)
    if (*pp == t) { *pp = t->next; break; }
  t->next = NULL;
  t->on = NULL;
}

void wsl_task_wake(wsl_ctx *x, wsl_task *t, int reason) {
  if (t->state != WSL_T_WAIT) return;
  detach(t);
  if (t->tm) ws_timer_stop(x->loop, &t->tm->timer);
  wsl_task_ready(x, t, reason);
}

static void on_task_timer(ws_loop *loop, ws_timer *tm) {
  wsl_task_wake((wsl_ctx *)ws_loop_user(loop), ((wsl_timer *)(void *)tm)->task, WSL_R_TIMEOUT);
}

/* A task's userdata: the task, then its timer. */
typedef struct wsl_task_ud {
  wsl_task task;
  wsl_timer tm;
} wsl_task_ud;

static wsl_task *new_task_ud(lua_State *L, int kind) {
  wsl_task_ud *u = lua_newuserdatauv(L, sizeof(wsl_task_ud), 1);
  wsl_task_init(&u->task, kind);
  ws_timer_init(&u->tm.timer, on_task_timer);
  u->tm.task = &u->task;
  u->task.tm = &u->tm;
  luaL_setmetatable(L, WSL_TASK_MT);
  return &u->task;
}

void wsl_task_free_timer(wsl_ctx *x, wsl_task *t) {
  if (!t->tm) return;
  ws_timer_stop(x->loop, &t->tm->timer);
  free(t->tm);
  t->tm = NULL;
}

static void register_task(wsl_ctx *x, lua_State *L, int thread_idx, int owner_idx) {
  thread_idx = lua_absindex(L, thread_idx);
  owner_idx = lua_absindex(L, owner_idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, x->tasks_ref);
  lua_pushvalue(L, thread_idx);
  lua_pushvalue(L, owner_idx);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

void wsl_register_task(lua_State *L, int thread_idx, int owner_idx) {
  /* Not wsl_ctx_get: this also runs from loop callbacks (resume_task), where the function
   * running on L need not be one of the module's (ws.step from a coroutine, a host's ev_run). */
  lua_getfield(L, LUA_REGISTRYINDEX, WSL_CTX_KEY);
  wsl_ctx *x = lua_touserdata(L, -1);
  lua_pop(L, 1);
  register_task(x, L, thread_idx, owner_idx);
}

/* ---- running tasks ---- */

static void close_thread(lua_State *co, lua_State *L) {
#if LUA_VERSION_NUM < 502 /* nothing to close; the collector takes the thread */
  (void)co;
  (void)L;
#elif LUA_VERSION_RELEASE_NUM >= 50406
  lua_closethread(co, L);
#else
  (void)L;
  lua_resetthread(co);
#endif
}

/* ---- callback style: threads from a pool ---- */

#define THREAD_POOL_MAX 64

static void pool_table(wsl_ctx *x, lua_State *L) {
  if (x->pool_ref <= 0) {
    lua_newtable(L);
    x->pool_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, x->pool_ref);
}

/* Pushes an idle thread (the spare, from the pool, or a new one) and returns it. The spare
 * is what a connection that runs its callbacks again and again takes and gives back: one
 * registry slot instead of the array's three operations each way, and none at all to give
 * back the thread the slot still holds. The slot goes on anchoring a taken spare until
 * another thread replaces it, which does no harm. */
static lua_State *pool_take(wsl_ctx *x, lua_State *L) {
  if (x->spare) {
    lua_State *co = x->spare;
    x->spare = NULL;
    lua_rawgeti(L, LUA_REGISTRYINDEX, x->spare_ref);
    return co;
  }
  if (x->npool > 0) {
    pool_table(x, L);
    lua_rawgeti(L, -1, x->npool);
    lua_pushnil(L);
    lua_rawseti(L, -3, x->npool);
    x->npool--;
    lua_remove(L, -2);
    return lua_tothread(L, -1);
  }
  return lua_newthread(L);
}

static void pool_give(wsl_ctx *x, lua_State *L, int idx) {
  if (!x->spare) {
    lua_State *co = lua_tothread(L, idx);
    if (co != x->spare_kept) { /* else the slot holds it already: the spare came back */
      lua_pushvalue(L, idx);
      lua_rawseti(L, LUA_REGISTRYINDEX, x->spare_ref);
      x->spare_kept = co;
    }
    x->spare = co;
    return;
  }
  if (x->npool >= THREAD_POOL_MAX) return; /* the collector takes it */
  idx = lua_absindex(L, idx);
  pool_table(x, L);
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, ++x->npool);
  lua_pop(L, 1);
}

/* ---- coroutine style: handler threads reused ---- */

/* A handler thread that returned is as good as new: its stack is empty, its calls, upvalues
 * and to-be-closed variables closed, and the collector shrinks what its stack grew to. One is
 * kept (at most HANDLER_POOL_MAX) only if nothing of its last handler can be left on it: no
 * hook set on it (debug.sethook(co, ...)), and before Lua 5.2 (LuaJIT) its globals still the
 * main thread's (setfenv(0, ...)). A thread that failed is never kept. The threads kept are
 * the ones core.handoff gave out (t->reusable), which nothing else holds unless the handler
 * kept coroutine.running() after it returned. */
#define HANDLER_POOL_MAX 64

static int handler_reusable(wsl_ctx *x, lua_State *co) {
  if (x->nhandlers >= HANDLER_POOL_MAX || lua_status(co) != LUA_OK || lua_gethook(co) != NULL) return 0;
#if LUA_VERSION_NUM < 502
  lua_pushvalue(co, LUA_GLOBALSINDEX);
  lua_pushvalue(co, LUA_GLOBALSINDEX);
  lua_xmove(co, x->L, 1);
  lua_pushvalue(x->L, LUA_GLOBALSINDEX);
  int same = lua_rawequal(x->L, -1, -2) && lua_rawequal(co, -1, LUA_GLOBALSINDEX);
  lua_pop(x->L, 2);
  lua_pop(co, 1);
  if (!same) return 0;
#endif
  return 1;
}

static void handlers_table(wsl_ctx *x, lua_State *L) {
  if (x->handlers_ref <= 0) {
    lua_newtable(L);
    x->handlers_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, x->handlers_ref);
}

/* Pushes a thread for a new handler: a kept one, or a new one. */
static lua_State *handler_take(wsl_ctx *x, lua_State *L) {
  if (x->nhandlers == 0) return lua_newthread(L);
  handlers_table(x, L);
  lua_rawgeti(L, -1, x->nhandlers);
  lua_pushnil(L);
  lua_rawseti(L, -3, x->nhandlers);
  x->nhandlers--;
  lua_remove(L, -2);
  return lua_tothread(L, -1);
}

/* The handler thread at idx of L (its owner's user value no longer holds it) returned: kept
 * for the next handler. */
static void handler_give(wsl_ctx *x, lua_State *L, int idx) {
  lua_State *co = lua_tothread(L, idx);
  if (!handler_reusable(x, co)) return; /* the collector takes it */
  idx = lua_absindex(L, idx);
  lua_settop(co, 0);
  handlers_table(x, L);
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, ++x->nhandlers);
  lua_pop(L, 1);
}

/* The dispatch function of callback connection c returned (st LUA_OK) or failed: the
 * thread goes back to the pool (or away after an error), the function back to user value 1
 * if the thread had taken its place there (it waited). Stack of L: top + 1 the connection,
 * top + 2 the thread. */
static void pooled_end(wsl_ctx *x, wsl_conn *c, lua_State *co, int top, int st) {
  lua_State *L = x->L;
  wsl_task *t = &c->task;
  if (t->parked) {
    if (st == LUA_OK) { /* returned: the stack is [dispatch, results...] */
      lua_pushvalue(co, 1);
      lua_xmove(co, L, 1);
    } else { /* failed: the stack is as it was; dispatch is the outermost function running */
      lua_Debug ar;
      int level = 0;
      while (lua_getstack(co, level + 1, &ar)) level++;
      if (lua_getstack(co, level, &ar) && lua_getinfo(co, "f", &ar)) lua_xmove(co, L, 1);
      else lua_pushnil(L);
    }
    lua_setiuservalue(L, top + 1, 1);
    t->parked = 0;
  }
  t->co = NULL;
  if (c->task.stage != WSL_STAGE_NEW && ws_stream_has_head(&c->s)) wsl_conn_drop_request(L, c, top + 1); /* open returned */
  if (st == LUA_OK) {
    lua_settop(co, 0);
    pool_give(x, L, top + 2);
  } else {
    close_thread(co, L);
  }
  if (c->task.stage == WSL_STAGE_NEW) { /* the handshake ended without an upgrade */
    wsl_conn_task_done(x, c, st != LUA_OK);
    c->task.stage = WSL_STAGE_DONE;
  } else if (st != LUA_OK) { /* 1011; the close callback still runs */
    wsl_conn_task_done(x, c, 1);
    c->task.stage = c->task.stage == WSL_STAGE_OPEN ? WSL_STAGE_FAILED : WSL_STAGE_DONE;
  }
  t->state = c->task.stage == WSL_STAGE_DONE ? WSL_T_DONE : WSL_T_IDLE;
  if (t->state == WSL_T_IDLE && (c->s.inbox_count || c->s.phase >= WS_PH_FINISH)) wsl_conn_schedule(x, c);
}

/* The handshake of c ran on a pooled thread (stack of L: top + 1 the connection, top + 2 the
 * thread) and core.handoff left the handler's own thread in user value 1: the pooled thread
 * goes back to the pool, and from now on c is a connection with a coroutine of its own. */
static void handoff_pooled(wsl_ctx *x, wsl_conn *c, int top) {
  lua_State *L = x->L;
  wsl_task *t = &c->task;
  t->parked = 0; /* user value 1 holds the handler's own thread now */
  lua_settop(lua_tothread(L, top + 2), 0);
  pool_give(x, L, top + 2);
  t->handoff = 0;
  t->pooled = 0;
  t->started = 0;
  t->co = NULL;
  if (c->self_ref != LUA_NOREF && !c->closed_next) {
    t->ref = WSL_REF_SELF; /* the socket is open: c->self_ref anchors it (run_ready hands it over) */
  } else {
    lua_pushvalue(L, top + 1);
    t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  wsl_task_ready(x, t, WSL_R_START);
  lua_settop(L, top);
}

void wsl_conn_schedule(wsl_ctx *x, wsl_conn *c) {
  wsl_task *t = &c->task;
  if (!c->task.pooled || t->state != WSL_T_IDLE || c->task.stage == WSL_STAGE_DONE || c->self_ref == LUA_NOREF) return;
  if (c->s.phase >= WS_PH_FINISH && !c->s.inbox_count && c->task.stage != WSL_STAGE_NEW && c->server &&
      c->server->quiet_close) { /* closed, no message waits, no close callback: nothing to run */
    t->stage = WSL_STAGE_DONE;
    t->state = WSL_T_DONE;
    return;
  }
  t->ref = WSL_REF_SELF; /* c->self_ref: the socket is open, or run_ready hands it over */
  wsl_task_ready(x, t, WSL_R_START);
}

/* Pushes the userdata that owns t and lets go of the reference that anchored it while it
 * waited or was ready (the stack anchors it while it runs). */
static void push_owner(lua_State *L, wsl_task *t) {
  if (t->ref == WSL_REF_SELF) { /* a connection's own task, its socket still open */
    lua_rawgeti(L, LUA_REGISTRYINDEX, ((wsl_conn *)t)->self_ref);
  } else {
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    luaL_unref(L, LUA_REGISTRYINDEX, t->ref);
  }
  t->ref = LUA_NOREF;
}

/* Callback style with no thread attached (user value 1 of the connection at top + 1 is the
 * dispatch function, at top + 2): a pooled thread runs it. Its stack is [dispatch, dispatch,
 * conn, stage]: the bottom copy stays there for pooled_end; dispatch(conn, stage) is told the
 * stage (no core.stage call per run). The thread replaces the function at top + 2, which
 * anchors it while it runs; only if it waits does it take the function's place in user value
 * 1 (resume_task, parked). It is not entered in the table of tasks by thread: while it runs,
 * wsl_current_task knows it as the task being resumed (x->resumed), and it runs nothing else. */
static void start_pooled(wsl_ctx *x, lua_State *L, wsl_conn *pc, int top) {
  lua_State *co = pool_take(x, L);
  lua_pushvalue(L, top + 2);
  lua_pushvalue(L, top + 2);
  lua_pushvalue(L, top + 1);
  lua_xmove(L, co, 3);
  lua_pushinteger(co, pc->task.stage);
  lua_replace(L, top + 2);
}

/* How many values the resume passes: a new thread's arguments (already on it), the dispatch
 * function's two, or the reason a waiting task woke (core.wait returns it). */
static int resume_nargs(wsl_ctx *x, wsl_task *t, lua_State *co, int pooled_start) {
  int first = !t->started;
  t->started = 1;
  if (pooled_start) return 2;
  if (first) return lua_gettop(co) - 1; /* the function and its arguments wait on the thread */
  if (t->bare) { /* (no reason string to fetch from the registry) */
    t->bare = 0;
    return 0;
  }
  push_reason(x, co, t->reason);
  return 1;
}

/* Queue t (owner at top + 1) for the next round with a registry reference to its owner. */
static void requeue(wsl_ctx *x, wsl_task *t, int top, int reason) {
  lua_State *L = x->L;
  lua_pushvalue(L, top + 1);
  t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  wsl_task_ready(x, t, reason);
}

/* The error a task's coroutine raised, with its traceback, to the error handler. */
static void report_failure(wsl_ctx *x, wsl_task *t, lua_State *co) {
  lua_State *L = x->L;
  const char *msg = lua_tostring(co, -1);
  if (!msg) msg = luaL_typename(co, -1);
  luaL_traceback(L, co, msg, 0);
  if (t->kind == WSL_K_CONN) {
    char where[64];
    snprintf(where, sizeof where, "connection handler (connection %u)", (unsigned)((wsl_conn *)t)->id);
    wsl_report(x, where, lua_tostring(L, -1));
  } else {
    wsl_report(x, "task", lua_tostring(L, -1));
  }
}

/* t's coroutine returned or failed (status st) and has no next thread to go on with. */
static void task_ended(wsl_ctx *x, wsl_task *t, wsl_conn *pc, lua_State *co, int top, int st) {
  lua_State *L = x->L;
  int reusable = t->reusable;
  t->reusable = 0;
  t->handoff = 0; /* a handler that failed after core.handoff: its next thread never runs */
  if (st != LUA_OK) {
    report_failure(x, t, co);
    if (!pc) close_thread(co, L); /* pooled_end closes it after taking the function back */
  }
  if (pc) {
    pooled_end(x, pc, co, top, st);
    return;
  }
  t->state = WSL_T_DONE;
  t->co = NULL;
  lua_pushnil(L);
  lua_setiuservalue(L, top + 1, 1); /* the finished thread can go */
  if (reusable && st == LUA_OK) handler_give(x, L, top + 2);
  if (t->kind == WSL_K_CONN) wsl_conn_task_done(x, (wsl_conn *)t, st != LUA_OK);
}

/* Runs a READY task until it waits, yields, returns or fails (the states: lua_core.h). */
static void resume_task(wsl_ctx *x, wsl_task *t) {
  lua_State *L = x->L;
  int top = lua_gettop(L);
  if (t->state != WSL_T_READY) return;
  lua_checkstack(L, 8);
  push_owner(L, t); /* top + 1 */
  if (t->kind == WSL_K_MAIN) { /* the main thread waits in core.wait: let it return */
    t->state = WSL_T_IDLE;
    ws_loop_stop(x->loop);
    lua_settop(L, top);
    return;
  }
  wsl_conn *pc = t->kind == WSL_K_CONN && t->pooled ? (wsl_conn *)t : NULL;
  int pooled_start = lua_getiuservalue(L, top + 1, 1) == LUA_TFUNCTION && pc; /* top + 2 */
  if (pooled_start) start_pooled(x, L, pc, top);
  lua_State *co = lua_tothread(L, top + 2);
  if (!co) {
    t->state = WSL_T_DONE;
    lua_settop(L, top);
    return;
  }
  int nres = 0;
  t->state = WSL_T_RUNNING;
  t->co = co;
  int nargs = resume_nargs(x, t, co, pooled_start);
  wsl_task *outer = x->resumed; /* (a loop run from inside a task resumes others) */
  int outer_top = x->resumed_top;
  x->resumed = t;
  x->resumed_top = top;
  int st = lua_resume(co, L, nargs, &nres);
  x->resumed = outer;
  x->resumed_top = outer_top;
  if (st == LUA_YIELD) {
    lua_pop(co, nres);
    if (pc && !t->parked && !t->handoff) { /* the connection's thread until the callback returns */
      lua_pushvalue(L, top + 2);
      lua_setiuservalue(L, top + 1, 1);
      t->parked = 1;
    }
    if (t->state == WSL_T_RUNNING) requeue(x, t, top, WSL_R_NONE); /* a plain coroutine.yield() */
  } else if (st == LUA_OK && t->handoff && !pc) { /* core.handoff: the next thread starts next round */
    t->handoff = 0;
    t->started = 0;
    t->co = NULL;
    requeue(x, t, top, WSL_R_START);
  } else if (st == LUA_OK && t->handoff) { /* a pooled thread ran the handshake only */
    handoff_pooled(x, pc, top);
  } else {
    task_ended(x, t, pc, co, top, st);
  }
  lua_settop(L, top);
}

/* ---- module functions ---- */

/* core.spawn(fn, ...) -> task: runs fn(...) in a new coroutine from the next iteration. */
int wsl_task_spawn(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  int n = lua_gettop(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  wsl_task *t = new_task_ud(L, WSL_K_TASK);
  int ud = lua_gettop(L);
  lua_State *co = lua_newthread(L);
  for (int i = 1; i <= n; i++) lua_pushvalue(L, i);
  lua_xmove(L, co, n);
  wsl_register_task(L, -1, ud);
  lua_setiuservalue(L, ud, 1);
  lua_pushvalue(L, ud);
  t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  wsl_task_ready(x, t, WSL_R_START);
  return 1;
}

/* core.handoff(conn, fn): called by a connection's own coroutine as it ends (after the
 * handshake), fn(conn) goes on in a fresh coroutine from the next round. The handshake's
 * calls grew its thread's stack and call list, which a thread keeps for its whole life: a
 * connection that then waits for messages for hours is cheaper on a thread of its own (one a
 * finished handler left, or a new one). Like a pooled thread it is not entered in the table of
 * tasks by thread: while it runs, wsl_current_task knows it as the task being resumed. */
static int l_handoff(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  wsl_conn *c = wsl_toconn(L, x, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (c->task.co != L) return luaL_error(L, "ws: core.handoff outside the connection's own coroutine");
  lua_settop(L, 2);
  lua_State *co = handler_take(x, L);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 2);
  lua_setiuservalue(L, 1, 1);
  c->task.handoff = 1;
  c->task.reusable = 1;
  return 0;
}

wsl_task *wsl_current_task(lua_State *L, wsl_ctx *x, int *is_main) {
  wsl_task *r = x->resumed;
  if (r && r->co == L && L != x->L) { /* the task being resumed: its owner is on x->L */
    *is_main = 0;
    lua_pushvalue(x->L, x->resumed_top + 1);
    lua_xmove(x->L, L, 1);
    return r;
  }
  *is_main = lua_pushthread(L);
  if (*is_main) {
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, x->main_ref);
  } else {
    lua_rawgeti(L, LUA_REGISTRYINDEX, x->tasks_ref);
    lua_insert(L, -2);
    lua_rawget(L, -2);
    lua_remove(L, -2);
  }
  return totask(L, x, -1); /* its userdata stays on the stack */
}

/* Puts t on what c offers for `what` (its reader slot or its writers list). Returns 0, or
 * WSL_R_CLOSED when the connection is gone already (the wait ends at once). */
static int wait_on(lua_State *L, wsl_conn *c, wsl_task *t, int what) {
  switch (what) {
  case 'r':
    if (!c) return luaL_argerror(L, 1, "connection expected");
    if (c->reader && c->reader != t) return luaL_error(L, "ws: another coroutine is already receiving on this connection");
    if (c->s.phase == WS_PH_DONE) return WSL_R_CLOSED;
    c->reader = t;
    t->on = c;
    return 0;
  case 'w':
  case 'c':
  case 'p': /* the pong of a ping sent with core.ping(conn, data, true) */
    if (!c) return luaL_argerror(L, 1, "connection expected");
    if (c->s.phase == WS_PH_DONE) return WSL_R_CLOSED;
    t->next = c->writers;
    c->writers = t;
    t->on = c;
    if (what == 'w') ws_stream_want_drain(&c->s);
    return 0;
  case 't':
    return 0;
  default:
    return luaL_argerror(L, 2, "\"r\", \"w\", \"c\", \"p\" or \"t\" expected");
  }
}

/* The main thread waits by running the loop until its task is woken (or nothing is left that
 * could wake it: then the wait ends as "closed"). */
static void run_until_woken(wsl_ctx *x, lua_State *L, wsl_task *t) {
  while (t->state == WSL_T_WAIT || t->state == WSL_T_READY) {
    x->running = 1;
    int active = ws_loop_run(x->loop, 1);
    x->running = 0;
    if (!active && t->state == WSL_T_WAIT && x->ready_head == NULL) {
      detach(t);
      if (t->tm) ws_timer_stop(x->loop, &t->tm->timer);
      luaL_unref(L, LUA_REGISTRYINDEX, t->ref);
      t->ref = LUA_NOREF;
      t->state = WSL_T_IDLE;
      t->reason = WSL_R_CLOSED;
    }
  }
}

/* The task calling core.wait (its owner pushed), checked for being able to wait. c_own is set
 * when it is c's own handler: no lookup then. */
static wsl_task *waiting_task(lua_State *L, wsl_ctx *x, wsl_conn *c, int *is_main, wsl_conn **c_own) {
  wsl_task *t;
  *c_own = NULL;
  if (c && c->task.co == L) {
    *is_main = 0;
    lua_pushvalue(L, 1);
    t = &c->task;
    *c_own = c;
  } else {
    t = wsl_current_task(L, x, is_main);
  }
  if (!t) luaL_error(L, "ws: waiting needs a coroutine run by the loop (start it with ws.spawn)");
  if (t->state == WSL_T_WAIT || t->state == WSL_T_READY) luaL_error(L, "ws: this task is already waiting");
  if (*is_main && x->running) luaL_error(L, "ws: cannot wait on the main thread while the loop runs");
  if (*is_main && x->attached)
    luaL_error(L, "ws: the host runs the loop (ws_attach): wait from a coroutine started with ws.spawn");
  return t;
}

/* core.wait(conn|nil, what, timeout|nil) -> nil (the caller yields next) or, on the main
 * thread, the reason it was woken ("r", "w", "timeout", "closed") after running the loop.
 * what: "r" a message or the end; "w" the write queue below its low-water mark;
 * "c" the connection closed; "t" only the timeout (sleep). The task goes WAIT (lua_core.h). */
static int l_wait(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  wsl_conn *c = lua_isnoneornil(L, 1) ? NULL : wsl_toconn(L, x, 1);
  const char *what = luaL_checkstring(L, 2);
  double timeout = luaL_optnumber(L, 3, -1);
  lua_settop(L, 3);
  return wsl_wait(L, x, c, what[0], timeout);
}

int wsl_wait(lua_State *L, wsl_ctx *x, wsl_conn *c, int what, double timeout) {
  int is_main;
  wsl_conn *c_own;
  wsl_task *t = waiting_task(L, x, c, &is_main, &c_own);
  /* A coroutine handler's first wait: its request head goes (owner on top). */
  if (t->kind == WSL_K_CONN && !t->pooled && ws_stream_has_head(&((wsl_conn *)t)->s))
    wsl_conn_drop_request(L, (wsl_conn *)t, lua_gettop(L));
  if (timeout >= 0 && !t->tm) { /* a connection's first timed wait */
    if (!(t->tm = malloc(sizeof *t->tm))) return luaL_error(L, "ws: out of memory");
    ws_timer_init(&t->tm->timer, on_task_timer);
    t->tm->task = t;
  }
  int immediate = wait_on(L, c, t, what);
  if (!x->running) ws_loop_touch(x->loop); /* the clock stood still while the loop was not running */
  if (timeout >= 0 && !immediate) ws_timer_start(x->loop, &t->tm->timer, timeout);
  t->state = WSL_T_WAIT;
  t->wait = (uint8_t)what;
  t->reason = WSL_R_NONE;
  if (c_own && !immediate && c_own->self_ref != LUA_NOREF && !c_own->closed_next) {
    t->ref = WSL_REF_SELF;
  } else {
    lua_pushvalue(L, -1);
    t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  if (immediate) wsl_task_wake(x, t, immediate);
  if (!is_main) return 0;
  run_until_woken(x, L, t);
  push_reason(x, L, t->reason);
  return 1;
}

/* core.current() -> the task or connection whose coroutine is running, or nil. */
static int l_current(lua_State *L) {
  int is_main;
  wsl_ctx *x = wsl_ctx_get(L);
  if (!wsl_current_task(L, x, &is_main) || is_main) lua_pushnil(L);
  return 1;
}

static int task_gc(lua_State *L) {
  wsl_task *t = lua_touserdata(L, 1);
  wsl_ctx *x = wsl_ctx_get(L);
  if (t->tm) ws_timer_stop(x->loop, &t->tm->timer);
  return 0;
}

static int task_tostring(lua_State *L) {
  lua_pushfstring(L, "ws.task (%p)", lua_touserdata(L, 1));
  return 1;
}

/* The tasks made ready before this round, resumed in order (run_ready, lua_core.c); tasks
 * made ready while these run wait for the next round. */
void wsl_task_run_ready(wsl_ctx *x) {
  wsl_task *t = x->ready_head;
  x->ready_head = x->ready_tail = NULL;
  while (t) {
    wsl_task *next = t->next;
    t->next = NULL;
    resume_task(x, t);
    t = next;
  }
}

void wsl_task_open_lib(lua_State *L, int mod) {
  static const luaL_Reg funcs[] = {
    { "spawn", wsl_task_spawn }, { "wait", l_wait }, { "current", l_current }, { "handoff", l_handoff },
    { NULL, NULL }
  };
  lua_getfield(L, LUA_REGISTRYINDEX, WSL_CTX_KEY);
  wsl_ctx *x = lua_touserdata(L, -1);
  lua_pushvalue(L, mod);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, funcs, 1);
  lua_pop(L, 1);
  int fresh = luaL_newmetatable(L, WSL_TASK_MT); /* once per state, as the context */
  x->task_mt = lua_topointer(L, -1);
  if (fresh) {
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, task_gc, 1);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, task_tostring);
    lua_setfield(L, -2, "__tostring");
    new_task_ud(L, WSL_K_MAIN); /* the main thread's task: it waits by running the loop */
    x->main_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    for (int i = 0; i < WSL_REASONS; i++) {
      lua_pushstring(L, reason_names[i]);
      x->reason_refs[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
  }
  lua_pop(L, 2);
}
