/* Publish/subscribe as Lua methods: conn:subscribe, conn:unsubscribe, conn:topics,
 * conn:publish, and the server's publish and subscribers (lua/ws/topics.lua puts these on the
 * server object). None of them waits: a publish queues one shared frame on every subscriber and
 * returns how many it reached; the runtime (ws_topic.c) applies the slow-subscriber policy. */
#include <string.h>

#include "lua_core.h"
#include "lua_kit.h"
#include "runtime/ws_topic.h"

wsl_server *wsl_check_server(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TTABLE) {
    lua_getfield(L, idx, "_l");
    wsl_server *sv = luaL_testudata(L, -1, WSL_SERVER_MT);
    lua_pop(L, 1); /* the table keeps the userdata alive */
    if (sv) return sv;
  }
  return (wsl_server *)luaL_checkudata(L, idx, WSL_SERVER_MT);
}

static ws_listener *checklistener(lua_State *L, int idx) { return &wsl_check_server(L, idx)->l; }

const char *wsl_check_topic(lua_State *L, int idx, size_t *len) {
  const char *name = luaL_checklstring(L, idx, len);
  if (*len == 0) luaL_argerror(L, idx, "empty topic name");
  if (*len > WS_TOPIC_NAME_MAX) luaL_argerror(L, idx, "topic name over 1024 bytes");
  return name;
}

/* Topics are a server's: a client connection has none to join. */
static ws_stream *server_stream(lua_State *L, wsl_conn *c) {
  if (!c->server) luaL_error(L, "ws: topics belong to a server's connections");
  if (c->s.phase < WS_PH_OPEN) luaL_error(L, "ws: the connection is not open yet");
  return &c->s;
}

static int push_closed(lua_State *L, const ws_stream *s) {
  return kit_fail(L, s->error ? s->error : "closed", "closed");
}

/* conn:subscribe(topic) -> true (subscribed now) | false (it was) | nil, message, "closed" */
static int l_subscribe(lua_State *L) {
  wsl_conn *c = wsl_checkconn(L, 1);
  size_t len;
  const char *name = wsl_check_topic(L, 2, &len);
  ws_stream *s = server_stream(L, c);
  if (s->phase == WS_PH_DONE || !s->listener) return push_closed(L, s);
  int r = ws_topic_subscribe(s, name, len);
  if (r < 0) return luaL_error(L, "ws: out of memory");
  lua_pushboolean(L, r);
  return 1;
}

/* conn:unsubscribe(topic) -> true (left) | false (was not subscribed, or closed: it left all) */
static int l_unsubscribe(lua_State *L) {
  wsl_conn *c = wsl_checkconn(L, 1);
  size_t len;
  const char *name = wsl_check_topic(L, 2, &len);
  lua_pushboolean(L, ws_topic_unsubscribe(&c->s, name, len));
  return 1;
}

/* conn:topics() -> { name, ... } in no particular order */
static int l_topics(lua_State *L) {
  wsl_conn *c = wsl_checkconn(L, 1);
  size_t n = ws_topic_count(&c->s);
  lua_createtable(L, n > INT32_MAX ? 0 : (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    size_t len;
    const char *name = ws_topic_name(&c->s, i, &len);
    lua_pushlstring(L, name, len);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int push_published(lua_State *L, long n) {
  if (n < 0) return luaL_error(L, "ws: out of memory");
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

/* conn:publish(topic, data [, kind]) -> receivers (every subscriber but this connection) |
 * nil, message, "closed" once this connection is closed (it is no longer one of the server's). */
static int l_conn_publish(lua_State *L) {
  wsl_conn *c = wsl_checkconn(L, 1);
  size_t len, n;
  const char *name = wsl_check_topic(L, 2, &len);
  const char *data = luaL_checklstring(L, 3, &n);
  int op = wsl_check_kind(L, 4);
  ws_stream *s = server_stream(L, c);
  if (s->phase == WS_PH_DONE || !s->listener) return push_closed(L, s);
  return push_published(L, ws_topics_publish(s->listener, name, len, op, data, n, s));
}

/* server:publish(topic, data [, kind]) -> receivers */
static int l_server_publish(lua_State *L) {
  ws_listener *l = checklistener(L, 1);
  size_t len, n;
  const char *name = wsl_check_topic(L, 2, &len);
  const char *data = luaL_checklstring(L, 3, &n);
  int op = wsl_check_kind(L, 4);
  return push_published(L, ws_topics_publish(l, name, len, op, data, n, NULL));
}

/* server:broadcast(data [, kind [, except]]) -> receivers (every open connection of the
 * server but `except`, a connection) */
static int l_server_broadcast(lua_State *L) {
  ws_listener *l = checklistener(L, 1);
  size_t n;
  const char *data = luaL_checklstring(L, 2, &n);
  int op = wsl_check_kind(L, 3);
  ws_stream *except = lua_isnoneornil(L, 4) ? NULL : &wsl_checkconn(L, 4)->s;
  return push_published(L, ws_listener_broadcast(l, op, data, n, except));
}

/* server:subscribers(topic) -> count */
static int l_server_subscribers(lua_State *L) {
  ws_listener *l = checklistener(L, 1);
  size_t len;
  const char *name = wsl_check_topic(L, 2, &len);
  lua_pushinteger(L, (lua_Integer)ws_topics_subscribers(l, name, len));
  return 1;
}

/* core.topics_configure(server, "drop" | "close", max_backlog): checked by lua/ws/topics.lua. */
static int l_topics_configure(lua_State *L) {
  ws_listener *l = checklistener(L, 1);
  static const char *const policies[] = { "drop", "close", NULL };
  int policy = luaL_checkoption(L, 2, "drop", policies) == 1 ? WS_SLOW_CLOSE : WS_SLOW_DROP;
  lua_Number backlog = luaL_optnumber(L, 3, 0);
  if (!(backlog >= 0)) return luaL_argerror(L, 3, "max_backlog must not be negative");
  if (ws_topics_configure(l, policy, backlog >= (lua_Number)SIZE_MAX ? SIZE_MAX : (size_t)backlog) < 0)
    return luaL_error(L, "ws: out of memory");
  return 0;
}

void wsl_topic_open_lib(lua_State *L, int mod) {
  static const luaL_Reg conn_methods[] = {
    { "subscribe", l_subscribe }, { "unsubscribe", l_unsubscribe }, { "topics", l_topics },
    { "publish", l_conn_publish }, { NULL, NULL }
  };
  static const luaL_Reg funcs[] = {
    { "server_publish", l_server_publish }, { "server_subscribers", l_server_subscribers },
    { "server_broadcast", l_server_broadcast },
    { "topics_configure", l_topics_configure }, { NULL, NULL }
  };
  lua_getfield(L, mod, "conn_methods");
  lua_getfield(L, LUA_REGISTRYINDEX, WSL_CTX_KEY);
  luaL_setfuncs(L, conn_methods, 1);
  lua_pushvalue(L, mod);
  lua_getfield(L, LUA_REGISTRYINDEX, WSL_CTX_KEY);
  luaL_setfuncs(L, funcs, 1);
  lua_pop(L, 2);
}
