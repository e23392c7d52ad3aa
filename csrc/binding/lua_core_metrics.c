/* core.metrics([server]) -> a table of the counters the runtime keeps where the events happen
 * (ws_counters: per listener, and the loop's for client connections and servers that are
 * gone), with the gauges read now (send-queue bytes, topics, subscriptions). Without a server:
 * the whole process (this Lua state's loop). lua/ws/metrics.lua writes the exposition. */
#include <string.h>

#include "lua_core.h"
#include "runtime/ws_topic.h"

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void push_codes(lua_State *L, const ws_code_count *t, const char *k) {
  lua_newtable(L);
  for (int i = 0; i < WS_CODE_SLOTS && t[i].n; i++) {
    if (t[i].code) lua_pushinteger(L, t[i].code);
    else lua_pushliteral(L, "other");
    lua_pushinteger(L, (lua_Integer)t[i].n);
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, k);
}

static int l_metrics(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  ws_counters sum;
  size_t queued = 0, topics = 0, subs = 0, nt, ns;
  lua_Integer servers = 0;
  memset(&sum, 0, sizeof sum);
  if (!lua_isnoneornil(L, 1)) {
    wsl_server *sv = luaL_checkudata(L, 1, WSL_SERVER_MT);
    ws_counters_add(&sum, &sv->l.ctr);
    queued = ws_listener_queued(&sv->l);
    ws_topics_stats(&sv->l, &topics, &subs);
    servers = !sv->closed;
  } else {
    ws_counters_add(&sum, ws_loop_counters(x->loop));
    for (ws_listener *l = ws_loop_listeners(x->loop); l; l = l->next_l) {
      ws_counters_add(&sum, &l->ctr);
      queued += ws_listener_queued(l);
      ws_topics_stats(l, &nt, &ns);
      topics += nt;
      subs += ns;
      servers += l->fd >= 0;
    }
  }
  lua_createtable(L, 0, 18);
  set_int(L, "connections", (lua_Integer)sum.open);
  set_int(L, "accepted", (lua_Integer)sum.accepted);
  set_int(L, "messages_received", (lua_Integer)sum.msgs_in);
  set_int(L, "bytes_received", (lua_Integer)sum.bytes_in);
  set_int(L, "messages_sent", (lua_Integer)sum.msgs_out);
  set_int(L, "bytes_sent", (lua_Integer)sum.bytes_out);
  set_int(L, "dropped", (lua_Integer)sum.dropped);
  set_int(L, "ping_timeouts", (lua_Integer)sum.ping_timeouts);
  set_int(L, "tls_failures", (lua_Integer)sum.tls_failures);
  set_int(L, "send_queue_bytes", (lua_Integer)queued);
  set_int(L, "topics", (lua_Integer)topics);
  set_int(L, "subscriptions", (lua_Integer)subs);
  set_int(L, "servers", servers);
  push_codes(L, sum.closes, "closes");
  push_codes(L, sum.refused, "refused");
  return 1;
}

void wsl_metrics_open_lib(lua_State *L, int mod) {
  static const luaL_Reg funcs[] = { { "metrics", l_metrics }, { NULL, NULL } };
  lua_pushvalue(L, mod);
  lua_getfield(L, LUA_REGISTRYINDEX, "ws.core.ctx");
  luaL_setfuncs(L, funcs, 1);
  lua_pop(L, 1);
}
