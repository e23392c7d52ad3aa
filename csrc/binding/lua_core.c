/* `ws.core`: the module's context and its loop. The loop's hooks land here (stream and
 * listener events, signals, the round that runs ready tasks); the tasks themselves are
 * lua_core_task.c's, connections lua_core_conn.c's. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_core.h"
#include "lua_kit.h"
#include "runtime/ws_tls.h"
#include "ws.h"

#define ATTACH_KEY "ws.core.evloop" /* the host's struct ev_loop *, set by ws_attach */
/* ws.step's answer for how long the host may poll before stepping again: libev does not tell
 * when its next timer is due, so timers (sleeps, timeouts, pings) fire within this bound. */
#define STEP_TICK 0.05

void wsl_report(wsl_ctx *x, const char *where, const char *msg) {
  lua_State *L = x->L;
  if (x->error_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, x->error_ref);
    lua_pushstring(L, where);
    lua_pushstring(L, msg);
    if (lua_pcall(L, 2, 0, 0) == LUA_OK) return;
    fprintf(stderr, "ws: error reporter failed: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  fprintf(stderr, "ws: error in %s: %s\n", where, msg);
  fflush(stderr);
}

/* A signal caught: its handler runs as a task (core.spawn). */
static int spawn_signal_handler(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  int sig = (int)lua_tointeger(L, 1);
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, x->signal_ref);
  lua_pushstring(L, sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal");
  return wsl_task_spawn(L);
}

static size_t run_ready(ws_loop *loop) {
  wsl_ctx *x = ws_loop_user(loop);
  lua_State *L = x->L;
  while (x->closed_head) { /* closed connections no longer need to be anchored */
    wsl_conn *c = x->closed_head;
    x->closed_head = c->closed_next == c ? NULL : c->closed_next; /* the last one points to itself */
    c->closed_next = NULL;
    if (c->task.ref == WSL_REF_SELF && (c->task.state == WSL_T_WAIT || c->task.state == WSL_T_READY)) {
      c->task.ref = c->self_ref; /* its task waits or is ready: the reference is the task's now */
    } else {
      luaL_unref(L, LUA_REGISTRYINDEX, c->self_ref);
      if (c->task.ref == WSL_REF_SELF) c->task.ref = LUA_NOREF;
    }
    c->self_ref = LUA_NOREF;
    if (c->server) wsl_server_check_release(x, c->server);
  }
  if (x->signals) { /* signals caught, or (bit 0) log lines queued: one test for both */
    if (x->signals & WSL_LOG_PENDING) {
      x->signals &= ~WSL_LOG_PENDING;
      wsl_log_flush(x);
    }
    if (x->signals && x->signal_ref != LUA_NOREF) {
      for (int sig = 1; sig < 32; sig++) {
        if (!(x->signals & (1u << sig))) continue;
        x->signals &= ~(1u << sig);
        lua_pushlightuserdata(L, x);
        lua_pushcclosure(L, spawn_signal_handler, 1);
        lua_pushinteger(L, sig);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
          wsl_report(x, "signal handler", lua_tostring(L, -1));
          lua_pop(L, 1);
        }
      }
    }
  }
  wsl_task_run_ready(x);
  /* Work queued meanwhile, the log lines of the tasks just run too: the loop runs another
   * round rather than wait in the poll. */
  int queued = (x->signals & WSL_LOG_PENDING) || (x->signals && x->signal_ref != LUA_NOREF);
  return (x->ready_head != NULL) + (x->closed_head != NULL) + (size_t)queued;
}

static void on_stream_event(ws_stream *s, int ev) {
  wsl_conn *c = s->user;
  if (c) wsl_conn_event((wsl_ctx *)ws_loop_user(s->loop), c, ev);
}

static void on_listener_ready(ws_listener *l) {
  wsl_server_ready((wsl_ctx *)ws_loop_user(l->loop), (wsl_server *)(void *)l);
}

static void on_signal(ws_loop *loop, int signum) {
  wsl_ctx *x = ws_loop_user(loop);
  if (signum > 0 && signum < 32) x->signals |= 1u << signum;
  ws_loop_wakeup(loop);
}

/* A burst of connections is over (ws_loop.c, reclaim): collect now, because an idle server
 * allocates nothing that would drive the collector through the strings the burst left, and
 * the loop trims malloc's heap next. Twice: objects with a finalizer (every connection) are
 * only finalized by the first collection and freed by the second. A collector the host
 * stopped stays stopped. */
static void on_reclaim(ws_loop *loop) {
  wsl_ctx *x = ws_loop_user(loop);
  if (!lua_gc(x->L, LUA_GCISRUNNING, 0)) return;
  lua_gc(x->L, LUA_GCCOLLECT, 0);
  lua_gc(x->L, LUA_GCCOLLECT, 0);
}


static int l_run(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  if (x->running) return luaL_error(L, "ws.run: the loop is already running");
  if (x->attached) return luaL_error(L, "ws.run: the host runs the loop (ws_attach)");
  x->running = 1;
  ws_loop_run(x->loop, 0);
  x->running = 0;
  return 0;
}

/* core.step([timeout]) -> alive, wait: one iteration for hosts that poll core.pollfd()
 * themselves. It waits at most `timeout` seconds for events (default 0: it does not wait).
 * alive: watchers or tasks are left; wait: how long the host may poll before the next step
 * (0 when work is queued already, else STEP_TICK so that timers fire on time). */
static int l_step(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  double timeout = luaL_optnumber(L, 1, 0);
  if (timeout != timeout) return luaL_argerror(L, 1, "number expected, got nan");
  if (x->running) return luaL_error(L, "ws.step: the loop is already running");
  if (x->attached) return luaL_error(L, "ws.step: the host runs the loop (ws_attach)");
  x->running = 1;
  int active = ws_loop_step(x->loop, timeout);
  x->running = 0;
  int busy = ws_loop_busy(x->loop) || x->ready_head != NULL || x->closed_head != NULL;
  lua_pushboolean(L, active || busy);
  lua_pushnumber(L, busy ? 0. : STEP_TICK);
  return 2;
}

/* core.pollfd() -> fd | nil, message: a descriptor that is readable while lua-ws has I/O to
 * handle (the loop's epoll descriptor), for hosts that call core.step themselves. */
static int l_pollfd(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  if (x->attached) return kit_fail(L, "ws.pollfd: the host runs the loop (ws_attach)", NULL);
  int fd = ws_loop_backend_fd(x->loop);
  if (fd < 0)
    return kit_fail(L, "ws.pollfd: the event loop's backend cannot be polled from outside (epoll, kqueue or ports needed)", NULL);
  lua_pushinteger(L, fd);
  return 1;
}

static int l_stop(lua_State *L) {
  ws_loop_stop(wsl_ctx_get(L)->loop);
  return 0;
}

static int l_now(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  if (!x->running) ws_loop_touch(x->loop);
  lua_pushnumber(L, ws_loop_now(x->loop));
  return 1;
}


static int l_set_error_handler(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_unref(L, LUA_REGISTRYINDEX, x->error_ref);
  x->error_ref = LUA_NOREF;
  if (!lua_isnoneornil(L, 1)) {
    lua_pushvalue(L, 1);
    x->error_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 0;
}

/* core.signals(fn|nil): fn(name) runs as a task on SIGINT and SIGTERM; nil restores the
 * default disposition. */
static int l_signals(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  int on = !lua_isnoneornil(L, 1);
  if (on) luaL_checktype(L, 1, LUA_TFUNCTION);
  /* Signals belong to the host that runs the loop. */
  if (on && x->attached) return luaL_error(L, "ws.run: the host runs the loop (ws_attach)");
  luaL_unref(L, LUA_REGISTRYINDEX, x->signal_ref);
  x->signal_ref = LUA_NOREF;
  if (on) {
    lua_pushvalue(L, 1);
    x->signal_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  ws_loop_signal(x->loop, SIGINT, on);
  ws_loop_signal(x->loop, SIGTERM, on);
  return 0;
}


/* Lua states with a context. When the last one closes, what the module keeps for the process
 * (OpenSSL objects, interned error texts) is freed, before the module itself is unloaded: a
 * leak checker then sees it freed, and a host that closes its states and unloads the module
 * loses nothing. Like those lazily made objects, the count assumes that states are not
 * opened or closed on two threads at once. */
static size_t ctx_states;

/* The context's guard is the first object of the module with a finalizer, so it is finalized
 * last when the state closes, after every connection, server and task. */
static int ctx_gc(lua_State *L) {
  wsl_ctx **px = lua_touserdata(L, 1);
  wsl_ctx *x = *px;
  if (!x) return 0;
  *px = NULL;
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, WSL_CTX_KEY);
  ws_loop_free(x->loop);
  wsl_log_free(x);
  free(x);
  if (--ctx_states == 0) {
    ws_tls_release();
    ws_accept_key_release();
  }
  return 0;
}

static wsl_ctx *ctx_for(lua_State *L) {
  wsl_ctx *x;
  if (lua_getfield(L, LUA_REGISTRYINDEX, WSL_CTX_KEY) == LUA_TLIGHTUSERDATA) {
    x = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return x;
  }
  lua_pop(L, 1);
  wsl_ctx **guard = lua_newuserdatauv(L, sizeof *guard, 0); /* userdata first, memory second */
  *guard = NULL;
  lua_newtable(L);
  lua_pushcfunction(L, ctx_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, "ws.core.ctx.guard");
  x = calloc(1, sizeof *x);
  if (!x) luaL_error(L, "ws.core: out of memory");
  static const ws_hooks hooks = { on_stream_event, on_listener_ready, run_ready, on_signal, on_reclaim };
  void *host = NULL; /* a loop given by ws_attach, else libev's default loop */
  if (lua_getfield(L, LUA_REGISTRYINDEX, ATTACH_KEY) == LUA_TLIGHTUSERDATA) host = lua_touserdata(L, -1);
  lua_pop(L, 1);
  x->attached = host != NULL;
  x->loop = ws_loop_new(host, &hooks, x);
  if (!x->loop) { free(x); luaL_error(L, "ws.core: cannot create the event loop"); }
  lua_getfield(L, LUA_REGISTRYINDEX, "ws.core.ctx.guard");
  *(wsl_ctx **)lua_touserdata(L, -1) = x;
  lua_pop(L, 1);
  ctx_states++;
  ws_accept_key_prepare(); /* at start: OpenSSL's one-time setup is no handshake's */
  wsl_push_main_thread(L);
  x->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  x->error_ref = x->signal_ref = LUA_NOREF;
  wsl_log_init(x);
  lua_newtable(L); /* thread -> task, weak keys: a finished coroutine takes its entry along */
  lua_newtable(L);
  lua_pushstring(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  x->tasks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushboolean(L, 0);
  x->spare_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushlightuserdata(L, x);
  lua_setfield(L, LUA_REGISTRYINDEX, WSL_CTX_KEY);
  return x;
}

/* ws.h: run lua-ws on a host's libev loop. Only records the loop: the context that uses it
 * is made when ws.core is first loaded into this state. */
int ws_attach(lua_State *L, struct ev_loop *loop) {
  if (!L || !loop) return -1;
  int t = lua_getfield(L, LUA_REGISTRYINDEX, WSL_CTX_KEY);
  wsl_ctx *x = t == LUA_TLIGHTUSERDATA ? lua_touserdata(L, -1) : NULL;
  lua_pop(L, 1);
  if (x) return ws_loop_evloop(x->loop) == (void *)loop && x->attached ? 0 : -1;
  lua_pushlightuserdata(L, loop);
  lua_setfield(L, LUA_REGISTRYINDEX, ATTACH_KEY);
  return 0;
}


int luaopen_ws_core(lua_State *L) {
  static const luaL_Reg funcs[] = {
    { "run", l_run }, { "step", l_step }, { "pollfd", l_pollfd }, { "stop", l_stop }, { "now", l_now },
    { "set_error_handler", l_set_error_handler }, { "signals", l_signals }, { NULL, NULL }
  };
  wsl_ctx *x = ctx_for(L);
  lua_newtable(L);
  int mod = lua_gettop(L);
  lua_pushlightuserdata(L, x);
  luaL_setfuncs(L, funcs, 1);
  wsl_task_open_lib(L, mod);
  wsl_conn_open_lib(L, mod);
  wsl_handshake_open_lib(L, mod);
  wsl_server_open_lib(L, mod);
  wsl_tls_open_lib(L, mod);
  wsl_client_open_lib(L, mod);
  wsl_topic_open_lib(L, mod);
  wsl_proc_open_lib(L, mod);
  wsl_log_open_lib(L, mod);
  wsl_metrics_open_lib(L, mod);
  wsl_bus_open_lib(L, mod);
  wsl_sio_open_lib(L, mod);
  lua_settop(L, mod);
  return 1;
}
