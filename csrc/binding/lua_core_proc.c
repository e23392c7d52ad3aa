/* The workers mode's process calls for lua/ws/workers.lua: fork, the master's signal wait,
 * a worker's status, kill, and a server's listener parked in the master and reopened in a
 * worker. None blocks, except core.sigwait, the master's bounded wait (it runs no loop). */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "lua_core.h"
#include "lua_kit.h"

static const struct { const char *name; int sig; } signals[] = {
  { "SIGTERM", SIGTERM }, { "SIGINT", SIGINT }, { "SIGKILL", SIGKILL }, { "SIGCHLD", SIGCHLD },
  { "SIGHUP", SIGHUP }, { "SIGQUIT", SIGQUIT }, { "SIGUSR1", SIGUSR1 }, { "SIGUSR2", SIGUSR2 },
};

static const char *signal_name(int sig) {
  for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
    if (signals[i].sig == sig) return signals[i].name;
  return NULL;
}

static int fail_errno(lua_State *L, const char *what) {
  int e = errno;
  return kit_fail(L, lua_pushfstring(L, "%s: %s", what, strerror(e)), kit_errno_code(e, "EIO"));
}

/* core.fork() -> pid in the master, 0 in the worker | nil, message, code. */
static int l_fork(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  if (x->running) return luaL_error(L, "ws.run: workers are forked before the loop runs");
  if (x->attached) return luaL_error(L, "ws.run: the host runs the loop (ws_attach)");
  pid_t pid = ws_proc_fork(x->loop);
  if (pid < 0) return fail_errno(L, "fork");
  lua_pushinteger(L, (lua_Integer)pid);
  return 1;
}

/* core.proc_master(on): SIGCHLD, SIGINT and SIGTERM blocked for core.sigwait (on), or back. */
static int l_proc_master(lua_State *L) {
  if (ws_proc_master(lua_toboolean(L, 1)) < 0) return fail_errno(L, "sigprocmask");
  lua_pushboolean(L, 1);
  return 1;
}

/* core.sigwait(timeout) -> "SIGCHLD" | "SIGINT" | "SIGTERM" | nil (the timeout). */
static int l_sigwait(lua_State *L) {
  double timeout = luaL_checknumber(L, 1);
  if (timeout != timeout) return luaL_argerror(L, 1, "number expected, got nan");
  int sig = ws_proc_sigwait(timeout);
  if (sig < 0) return fail_errno(L, "sigtimedwait");
  if (sig == 0) return 0;
  lua_pushstring(L, signal_name(sig));
  return 1;
}

/* core.proc_status(pid) -> false (running) | "exit", status | "signal", number |
 * nil, message, code. */
static int l_proc_status(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  if (pid <= 0) return luaL_argerror(L, 1, "pid expected");
  int code = 0, r = ws_proc_status((pid_t)pid, &code);
  if (r < 0) return fail_errno(L, "waitpid");
  if (r == 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushstring(L, r == 1 ? "exit" : "signal");
  lua_pushinteger(L, code);
  return 2;
}

/* core.kill(pid, "SIGTERM" | "SIGKILL" | ...) -> true | nil, message, code. */
static int l_kill(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  const char *name = luaL_checkstring(L, 2);
  int sig = -1;
  if (pid <= 0) return luaL_argerror(L, 1, "pid expected");
  for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
    if (strcmp(signals[i].name, name) == 0) sig = signals[i].sig;
  if (sig < 0) return luaL_argerror(L, 2, "unknown signal name");
  if (kill((pid_t)pid, sig) < 0) return fail_errno(L, "kill");
  lua_pushboolean(L, 1);
  return 1;
}

static int l_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

static int l_cores(lua_State *L) {
  lua_pushinteger(L, ws_proc_cores());
  return 1;
}

/* op on the listener of the server at 1: true | nil, message (fmt with the port and why),
 * code. */
static int listener_op(lua_State *L, int (*op)(ws_listener *, const char **), const char *fmt) {
  wsl_server *sv = wsl_check_server(L, 1);
  const char *err;
  if (sv->closed) return luaL_error(L, "ws: the server is closed");
  if (op(&sv->l, &err) < 0) {
    int e = errno;
    return kit_fail(L, lua_pushfstring(L, fmt, sv->l.port, err), kit_errno_code(e, "EINVAL"));
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.server_park(server) -> true | nil, message, code: the master's listener stops (the
 * port stays reserved) before the workers are forked. */
static int l_server_park(lua_State *L) { return listener_op(L, ws_listener_park, "cannot keep port %d: %s"); }

/* core.server_reopen(server) -> true | nil, message, code: in a worker, its own SO_REUSEPORT
 * listener on the port the master resolved. */
static int l_server_reopen(lua_State *L) { return listener_op(L, ws_listener_reopen, "cannot listen on port %d: %s"); }

void wsl_proc_open_lib(lua_State *L, int mod) {
  static const luaL_Reg funcs[] = {
    { "fork", l_fork }, { "proc_master", l_proc_master }, { "sigwait", l_sigwait },
    { "proc_status", l_proc_status }, { "kill", l_kill }, { "getpid", l_getpid },
    { "cores", l_cores }, { "server_park", l_server_park }, { "server_reopen", l_server_reopen },
    { NULL, NULL }
  };
  lua_pushvalue(L, mod);
  lua_getfield(L, LUA_REGISTRYINDEX, "ws.core.ctx");
  luaL_setfuncs(L, funcs, 1);
  lua_pop(L, 1);
}
