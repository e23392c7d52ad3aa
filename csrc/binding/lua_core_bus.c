/* The Redis bus as ws.core functions (thin: the bus itself is csrc/runtime/ws_bus.c).
 * core.bus_new, core.bus_request/bus_result/bus_cancel (lua/ws/bus.lua builds the waiting
 * core.bus_call on them: C never yields), core.bus_send, core.bus_publish,
 * core.publish_local, core.bus_hold, core.bus_state, core.bus_node, core.bus_close, core.conn_bus.
 * The Lua hook gets every envelope the C bus does not deliver itself; it is called with a
 * plain protected call from a libev callback, so it must not wait. */
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "lua_core.h"
#include "lua_kit.h"
#include "runtime/ws_bus.h"
#include "runtime/ws_topic.h"

#define WSL_BUS_MT "ws.core.bus"
#define WSL_BUSREQ_MT "ws.core.busreq"
#define MAX_ARGS 1024

typedef struct wsl_bus {
  ws_bus *b;
  wsl_ctx *x;
  wsl_server *sv;
  int hook_ref;
  int self_ref;           /* the registry holds the bus until it is closed (core.conn_bus) */
  ws_bus_counters last;   /* the counters when it was closed: server:bus() still reports them */
} wsl_bus;

/* A command whose reply a task waits for. */
typedef struct wsl_busreq {
  wsl_ctx *x;
  wsl_task *task;         /* the waiting task; NULL once it gave up */
  redisReply *reply;
  const char *err, *code; /* no reply: why (static text) */
  int done;
  int ref;                /* anchors the request while Redis has it */
} wsl_busreq;

static wsl_bus *checkbus(lua_State *L, int idx) {
  wsl_bus *u = luaL_checkudata(L, idx, WSL_BUS_MT);
  return u;
}

static wsl_bus *openbus(lua_State *L, int idx) {
  wsl_bus *u = checkbus(L, idx);
  if (!u->b) luaL_error(L, "ws: the bus is closed");
  return u;
}

void wsl_push_conn_id(lua_State *L, const wsl_conn *c) {
  const char *node = c->server && c->server->bus && c->server->bus->b ? ws_bus_node(c->server->bus->b) : NULL;
  if (node) lua_pushfstring(L, "%s/%d", node, (int)c->id);
  else lua_pushinteger(L, c->id);
}

/* ---- the hook ---- */

typedef struct hook_args {
  const ws_bus_env *e;
  const char *topic;
  size_t tlen;
  int ref;
} hook_args;

static int call_hook(lua_State *L) {
  hook_args *a = lua_touserdata(L, 1);
  const ws_bus_env *e = a->e;
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->ref);
  char type[2] = { e->type, 0 };
  lua_pushstring(L, type);
  if (a->topic) lua_pushlstring(L, a->topic, a->tlen); else lua_pushnil(L);
  lua_pushlstring(L, (const char *)e->data, e->data_len);
  lua_pushstring(L, e->binary ? "binary" : "text");
  lua_pushlstring(L, e->node, e->node_len);
  if (e->id_len) lua_pushlstring(L, e->id, e->id_len); else lua_pushnil(L);
  if (e->has_offset) lua_pushinteger(L, (lua_Integer)e->offset); else lua_pushnil(L);
  if (e->epoch_len) lua_pushlstring(L, e->epoch, e->epoch_len); else lua_pushnil(L);
  if (e->has_time) lua_pushinteger(L, (lua_Integer)e->time_us); else lua_pushnil(L);
  lua_call(L, 9, 0);
  return 0;
}

static void on_hook(ws_bus *b, const ws_bus_env *e, const char *topic, size_t tlen, void *user) {
  wsl_bus *u = user;
  lua_State *L = u->x->L;
  (void)b;
  if (u->hook_ref == LUA_NOREF) return;
  int top = lua_gettop(L);
  hook_args a = { e, topic, tlen, u->hook_ref };
  lua_pushcfunction(L, call_hook);
  lua_pushlightuserdata(L, &a);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    wsl_report(u->x, "bus hook", lua_tostring(L, -1));
  }
  lua_settop(L, top);
}

/* ---- options ---- */

#define optstr(L, t, k) kit_optstr(L, t, k, "ws.server: bus")
#define optnum(L, t, k, def) kit_optnum(L, t, k, def, "ws.server: bus")

/* core.bus_new(server, opts, hook) -> bus. opts: host, port, username, password, db, prefix,
 * node, linger, ping, timeout, max_pending, max_output, max_reply, tls (a client context from
 * core.tls_context, for rediss://), server_name (checked by lua/ws/bus.lua). */
static int l_bus_new(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  wsl_server *sv = wsl_check_server(L, 1);
  ws_listener *l = &sv->l;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  if (sv->bus) return luaL_error(L, "ws.server: this server has a bus already");
  ws_bus_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.host = optstr(L, 2, "host");
  cfg.port = (int)optnum(L, 2, "port", 6379);
  cfg.username = optstr(L, 2, "username");
  cfg.password = optstr(L, 2, "password");
  cfg.db = (int)optnum(L, 2, "db", 0);
  cfg.prefix = optstr(L, 2, "prefix");
  cfg.node = optstr(L, 2, "node");
  cfg.linger = optnum(L, 2, "linger", 2);
  cfg.ping = optnum(L, 2, "ping", 5);
  cfg.timeout = optnum(L, 2, "timeout", 2);
  cfg.max_pending = (size_t)optnum(L, 2, "max_pending", 10000);
  cfg.max_output = (size_t)optnum(L, 2, "max_output", 16u << 20);
  cfg.max_reply = (size_t)optnum(L, 2, "max_reply", 64u << 20);
  cfg.server_name = optstr(L, 2, "server_name");
  if (lua_getfield(L, 2, "tls") != LUA_TNIL) cfg.tls = wsl_check_tls(L, -1); /* rediss:// */
  lua_pop(L, 1); /* the options table keeps the context */
  if (cfg.port < 1 || cfg.port > 65535) return luaL_error(L, "ws.server: bus port out of range");
  wsl_bus *u = lua_newuserdatauv(L, sizeof *u, 1);
  memset(u, 0, sizeof *u);
  u->last.lag_us = -1;
  u->x = x;
  u->sv = sv;
  u->hook_ref = u->self_ref = LUA_NOREF;
  luaL_setmetatable(L, WSL_BUS_MT);
  int ud = lua_gettop(L);
  if (lua_type(L, 1) == LUA_TTABLE) lua_getfield(L, 1, "_l"); else lua_pushvalue(L, 1);
  lua_setiuservalue(L, ud, 1); /* the server lives as long as its bus */
  const char *err = NULL;
  u->b = ws_bus_new(l, &cfg, on_hook, u, &err);
  if (!u->b) return luaL_error(L, "ws.server: bus: %s", err ? err : "out of memory");
  lua_pushvalue(L, 3);
  u->hook_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, ud);
  u->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  sv->bus = u;
  lua_settop(L, ud);
  return 1;
}

static void bus_release(lua_State *L, wsl_bus *u) {
  if (!u->b) return;
  if (u->sv && u->sv->bus == u) u->sv->bus = NULL;
  ws_bus_get_counters(u->b, &u->last);
  ws_bus_free(u->b); /* pending commands fail: their tasks wake with "bus unavailable" */
  u->b = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, u->hook_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, u->self_ref);
  u->hook_ref = u->self_ref = LUA_NOREF;
}

/* core.bus_close(bus): idempotent. */
static int l_bus_close(lua_State *L) {
  bus_release(L, checkbus(L, 1));
  return 0;
}

static int bus_gc(lua_State *L) {
  bus_release(L, lua_touserdata(L, 1));
  return 0;
}

/* ---- commands ---- */

/* A command's arguments, 2 to the top, all strings or numbers: returns the top. */
static int check_command(lua_State *L) {
  int top = lua_gettop(L);
  if (top < 2) return luaL_argerror(L, 2, "command expected");
  if (top - 1 > MAX_ARGS) return luaL_argerror(L, 2, "too many command arguments");
  for (int i = 2; i <= top; i++) {
    int t = lua_type(L, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER) return luaL_argerror(L, i, "string or number expected");
  }
  return top;
}

/* Sends the command in arguments 2..top (check_command), its reply to cb: 0, or nil, message,
 * code pushed (3) when the bus refuses it. */
static int send_command(lua_State *L, wsl_bus *u, int top, ws_redis_reply_fn cb, void *priv) {
  ws_redis_arg stackv[16] = { { NULL, 0, NULL, 0 } }; /* (gcc cannot tell the loop fills it) */
  ws_redis_arg *argv = top - 1 <= 16 ? stackv : malloc((size_t)(top - 1) * sizeof *argv);
  if (!argv) return luaL_error(L, "ws: out of memory");
  int argc = 0;
  for (int i = 2; i <= top; i++) { /* nothing raises from here to the free */
    size_t n;
    const char *p = lua_tolstring(L, i, &n);
    argv[argc++] = (ws_redis_arg){ p, n, NULL, 0 };
  }
  const char *why = NULL;
  int rc = ws_bus_command(u->b, argc, argv, cb, priv, &why);
  if (argv != stackv) free(argv);
  return rc < 0 ? kit_fail(L, why ? why : "bus unavailable", "unavailable") : 0;
}

static int req_reply(ws_redis *r, redisReply *rep, const char *err, const char *code, void *priv) {
  wsl_busreq *q = priv;
  wsl_ctx *x = q->x;
  (void)r;
  q->done = 1;
  q->reply = rep;
  q->err = err;
  q->code = code;
  luaL_unref(x->L, LUA_REGISTRYINDEX, q->ref);
  q->ref = LUA_NOREF;
  if (q->task && q->task->state == WSL_T_WAIT && q->task->wait == 't') wsl_task_wake(x, q->task, WSL_R_READ);
  q->task = NULL;
  return rep != NULL; /* the request keeps the reply until bus_result */
}

static int req_gc(lua_State *L) {
  wsl_busreq *q = lua_touserdata(L, 1);
  if (q->reply) freeReplyObject(q->reply);
  q->reply = NULL;
  return 0;
}

/* core.bus_request(bus, cmd, ...) -> request | nil, message, code: the command is queued and
 * the running task will be woken (core.wait(nil, "t", timeout)) when its reply comes. */
static int l_bus_request(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  wsl_bus *u = openbus(L, 1);
  int top = check_command(L);
  int is_main;
  wsl_task *t = wsl_current_task(L, x, &is_main);
  lua_pop(L, 1);
  wsl_busreq *q = lua_newuserdatauv(L, sizeof *q, 0);
  memset(q, 0, sizeof *q);
  q->x = x;
  q->ref = LUA_NOREF;
  luaL_setmetatable(L, WSL_BUSREQ_MT);
  if (send_command(L, u, top, req_reply, q)) return 3;
  q->task = t;
  lua_pushvalue(L, -1);
  q->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

/* A reply as Lua values: string/status -> string, integer -> integer, nil -> false, array ->
 * table (1-based); an error inside an array -> { err = message }. */
static void push_reply(lua_State *L, const redisReply *r, int depth) {
  luaL_checkstack(L, 4, "reply too deep");
  switch (r->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS: lua_pushlstring(L, r->str, r->len); break;
  case REDIS_REPLY_INTEGER: lua_pushinteger(L, (lua_Integer)r->integer); break;
  case REDIS_REPLY_ARRAY:
    lua_createtable(L, r->elements > INT32_MAX ? 0 : (int)r->elements, 0);
    for (size_t i = 0; i < r->elements; i++) {
      push_reply(L, r->element[i], depth + 1);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  case REDIS_REPLY_ERROR:
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, r->str, r->len);
    lua_setfield(L, -2, "err");
    break;
  default: lua_pushboolean(L, 0); break;
  }
}

/* core.bus_result(req) -> done, ... : false while waiting; else true followed by the reply
 * (see push_reply) | nil, message, "redis" for an error reply | nil, message, code. */
static int l_bus_result(lua_State *L) {
  wsl_busreq *q = luaL_checkudata(L, 1, WSL_BUSREQ_MT);
  if (!q->done) { lua_pushboolean(L, 0); return 1; }
  lua_pushboolean(L, 1);
  if (!q->reply) return 1 + kit_fail(L, q->err ? q->err : "bus unavailable", q->code ? q->code : "unavailable");
  if (q->reply->type == REDIS_REPLY_ERROR) {
    lua_pushnil(L);
    lua_pushlstring(L, q->reply->str, q->reply->len);
    lua_pushliteral(L, "redis");
    return 4;
  }
  push_reply(L, q->reply, 0);
  return 2;
}

/* core.bus_cancel(req): the task stops waiting for it (timeout); a late reply is dropped. */
static int l_bus_cancel(lua_State *L) {
  wsl_busreq *q = luaL_checkudata(L, 1, WSL_BUSREQ_MT);
  q->task = NULL;
  return 0;
}

static int send_reply(ws_redis *r, redisReply *rep, const char *err, const char *code, void *priv) {
  wsl_bus *u = priv;
  (void)r; (void)err; (void)code;
  if ((!rep || rep->type == REDIS_REPLY_ERROR) && u->b) ws_bus_count_failed(u->b);
  return 0;
}

/* core.bus_send(bus, cmd, ...) -> true | nil, message, code: no waiting; a failed reply is
 * counted in `failed`. */
static int l_bus_send(lua_State *L) {
  wsl_bus *u = openbus(L, 1);
  if (send_command(L, u, check_command(L), send_reply, u)) return 3;
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- publishing ---- */

static ws_stream *except_stream(lua_State *L, int idx, wsl_conn **out) {
  *out = NULL;
  if (lua_isnoneornil(L, idx)) return NULL;
  wsl_conn *c = luaL_checkudata(L, idx, WSL_CONN_MT);
  *out = c;
  return &c->s;
}

/* core.bus_publish(bus, topic, data [, kind [, except_conn]]) -> local count |
 * nil, message, "closed" when except_conn is closed (conn:publish on a closed connection). */
static int l_bus_publish(lua_State *L) {
  wsl_bus *u = openbus(L, 1);
  size_t len, n;
  const char *name = wsl_check_topic(L, 2, &len);
  const char *data = luaL_checklstring(L, 3, &n);
  int op = wsl_check_kind(L, 4);
  wsl_conn *c;
  ws_stream *except = except_stream(L, 5, &c);
  char id[WS_BUS_NODE_MAX + 16];
  size_t idl = 0;
  if (c) {
    if (c->s.phase == WS_PH_DONE || !c->s.listener)
      return kit_fail(L, c->s.error ? c->s.error : "closed", "closed");
    const char *node = ws_bus_node(u->b);
    if (node) idl = (size_t)snprintf(id, sizeof id, "%s/%u", node, (unsigned)c->id);
  }
  long r = ws_bus_publish(u->b, name, len, op, data, n, except, idl ? id : NULL, idl);
  if (r < 0) return luaL_error(L, "ws: out of memory");
  lua_pushinteger(L, (lua_Integer)r);
  return 1;
}

/* core.publish_local(server, topic, data [, kind [, except_conn]]) -> count: this node's
 * subscribers only, no bus. */
static int l_publish_local(lua_State *L) {
  ws_listener *l = &wsl_check_server(L, 1)->l;
  size_t len, n;
  const char *name = wsl_check_topic(L, 2, &len);
  const char *data = luaL_checklstring(L, 3, &n);
  int op = wsl_check_kind(L, 4);
  wsl_conn *c;
  ws_stream *except = except_stream(L, 5, &c);
  long r = ws_topics_publish(l, name, len, op, data, n, except);
  if (r < 0) return luaL_error(L, "ws: out of memory");
  lua_pushinteger(L, (lua_Integer)r);
  return 1;
}

/* core.bus_state(bus) -> "up" | "connecting" | "down", counters */
static int l_bus_state(lua_State *L) {
  wsl_bus *u = checkbus(L, 1);
  ws_bus_counters c = u->last; /* a closed bus keeps its last counters */
  int st = u->b ? ws_bus_state(u->b) : WS_BUS_DOWN;
  if (u->b) ws_bus_get_counters(u->b, &c);
  lua_pushstring(L, st == WS_BUS_UP ? "up" : st == WS_BUS_CONNECTING ? "connecting" : "down");
  lua_createtable(L, 0, 10);
#define SETI(name, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, name))
  SETI("sent", c.sent);
  SETI("received", c.received);
  SETI("unsent", c.unsent);
  SETI("failed", c.failed);
  SETI("foreign", c.foreign);
  SETI("own", c.own);
  SETI("reconnects", c.reconnects);
  SETI("subscriptions", c.subscriptions);
  if (c.lag_us >= 0) SETI("lag_us", c.lag_us);
#undef SETI
  const char *why = u->b ? ws_bus_error(u->b) : "bus closed";
  if (why) {
    lua_pushstring(L, why);
    lua_setfield(L, -2, "error");
  }
  return 2;
}

/* core.bus_node(bus) -> node id | nil before the bus started */
static int l_bus_node(lua_State *L) {
  wsl_bus *u = checkbus(L, 1);
  const char *node = u->b ? ws_bus_node(u->b) : NULL;
  if (node) lua_pushstring(L, node); else lua_pushnil(L);
  return 1;
}

/* core.bus_prefix(bus) -> prefix */
static int l_bus_prefix(lua_State *L) {
  wsl_bus *u = openbus(L, 1);
  lua_pushstring(L, ws_bus_prefix(u->b));
  return 1;
}

/* core.bus_hold(bus, topic, on) -> true | false: a hold on the topic without a connection
 * (ws_bus_hold): while held, this node stays subscribed to the topic's channel. */
static int l_bus_hold(lua_State *L) {
  wsl_bus *u = openbus(L, 1);
  size_t len;
  const char *name = wsl_check_topic(L, 2, &len);
  int r = ws_bus_hold(u->b, name, len, lua_toboolean(L, 3));
  if (r < 0) return luaL_error(L, "ws: out of memory");
  lua_pushboolean(L, r);
  return 1;
}

/* core.conn_bus(conn) -> the bus of the connection's server | nil */
static int l_conn_bus(lua_State *L) {
  wsl_conn *c = luaL_checkudata(L, 1, WSL_CONN_MT);
  if (c->server && c->server->bus && c->server->bus->self_ref != LUA_NOREF)
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->server->bus->self_ref);
  else
    lua_pushnil(L);
  return 1;
}

/* core.server_bus(server) -> its bus | nil */
static int l_server_bus(lua_State *L) {
  wsl_server *sv = wsl_check_server(L, 1);
  if (sv->bus && sv->bus->self_ref != LUA_NOREF) lua_rawgeti(L, LUA_REGISTRYINDEX, sv->bus->self_ref);
  else lua_pushnil(L);
  return 1;
}

void wsl_bus_open_lib(lua_State *L, int mod) {
  static const luaL_Reg funcs[] = {
    { "bus_new", l_bus_new }, { "bus_close", l_bus_close }, { "bus_request", l_bus_request },
    { "bus_result", l_bus_result }, { "bus_cancel", l_bus_cancel }, { "bus_send", l_bus_send },
    { "bus_publish", l_bus_publish }, { "publish_local", l_publish_local }, { "bus_state", l_bus_state },
    { "bus_node", l_bus_node }, { "bus_prefix", l_bus_prefix }, { "conn_bus", l_conn_bus },
    { "server_bus", l_server_bus }, { "bus_hold", l_bus_hold }, { NULL, NULL }
  };
  lua_pushvalue(L, mod);
  lua_getfield(L, LUA_REGISTRYINDEX, "ws.core.ctx");
  luaL_setfuncs(L, funcs, 1);
  lua_pop(L, 1);
  if (luaL_newmetatable(L, WSL_BUS_MT)) {
    lua_pushcfunction(L, bus_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, WSL_BUSREQ_MT)) {
    lua_pushcfunction(L, req_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}
