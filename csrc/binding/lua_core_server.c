/* Listening servers as Lua userdata. Each accepted connection gets its userdata and its
 * coroutine (running the server's Lua `serve` function) before the socket is accepted, so an
 * allocation error never strands a socket; one spare is kept for the next accept. User value
 * 1 is the serve function, 2 the spare connection. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lua_core.h"
#include "lua_kit.h"
#include "runtime/ws_topic.h"

#define ACCEPT_BATCH 256

void wsl_server_check_release(wsl_ctx *x, wsl_server *sv) {
  if (sv->closed && sv->l.count == 0 && sv->self_ref != LUA_NOREF) {
    luaL_unref(x->L, LUA_REGISTRYINDEX, sv->self_ref);
    sv->self_ref = LUA_NOREF;
  }
}

/* A connection with its coroutine, ready to receive an accepted socket. A callback-style
 * server's connections get no coroutine: user value 1 is the dispatch function, which a
 * pooled thread runs for each event (lua_core_task.c). */
static void new_conn(lua_State *L, wsl_ctx *x, int server_idx) {
  wsl_conn *c = wsl_conn_new(L, x, sizeof(wsl_conn));
  int conn = lua_gettop(L);
  if (((wsl_server *)lua_touserdata(L, server_idx))->pooled) {
    c->task.pooled = 1;
    lua_getiuservalue(L, server_idx, 1);
    lua_setiuservalue(L, conn, 1);
    return;
  }
  lua_State *co = lua_newthread(L);
  lua_getiuservalue(L, server_idx, 1);
  lua_pushvalue(L, conn);
  lua_xmove(L, co, 2);
  wsl_register_task(L, -1, conn);
  lua_setiuservalue(L, conn, 1);
}

static int accept_batch(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  wsl_server *sv = wsl_check_server(L, 1);
  for (int i = 0; i < ACCEPT_BATCH; i++) {
    lua_settop(L, 1);
    if (lua_getiuservalue(L, 1, 2) == LUA_TNIL) {
      lua_pop(L, 1);
      new_conn(L, x, 1);
    }
    wsl_conn *c = lua_touserdata(L, 2);
    int r = ws_listener_accept(&sv->l, &c->s);
    if (r <= 0) {
      lua_setiuservalue(L, 1, 2); /* keep it for the next time */
      if (r < 0) {
        lua_pushfstring(L, "accept failed: %s", strerror(errno));
        wsl_report(x, "server", lua_tostring(L, -1));
      }
      break;
    }
    lua_pushnil(L);
    lua_setiuservalue(L, 1, 2);
    c->server = sv;
    wsl_conn_start(L, x, c, 2);
    c->task.ref = WSL_REF_SELF; /* c->self_ref anchors it: the socket is open (run_ready hands it over) */
    wsl_task_ready(x, &c->task, WSL_R_START);
  }
  return 0;
}

void wsl_server_ready(wsl_ctx *x, wsl_server *sv) {
  lua_State *L = x->L;
  int top = lua_gettop(L);
  lua_pushlightuserdata(L, x);
  lua_pushcclosure(L, accept_batch, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, sv->self_ref);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    wsl_report(x, "server", lua_tostring(L, -1));
  }
  lua_settop(L, top);
}

void wsl_stream_options(lua_State *L, int t, ws_server_cfg *c, const char *who, int client) {
  char w[16];
  snprintf(w, sizeof w, "%s:", who);
  c->max_message = (uint64_t)kit_optnum(L, t, "max_message", (double)c->max_message, w);
  c->max_header_bytes = (size_t)kit_optnum(L, t, "max_header_bytes", (double)c->max_header_bytes, w);
  c->close_timeout = kit_optnum(L, t, "close_timeout", c->close_timeout, w);
  c->ping_interval = kit_optnum(L, t, "ping_interval", c->ping_interval, w);
  c->ping_timeout = kit_optnum(L, t, "ping_timeout", c->ping_timeout, w);
  c->idle_timeout = kit_optnum(L, t, "idle_timeout", c->idle_timeout, w);
  c->send_high = (size_t)kit_optnum(L, t, "send_high_water", (double)c->send_high, w);
  size_t low = client || c->send_high / 4 < c->send_low ? c->send_high / 4 : c->send_low;
  c->send_low = (size_t)kit_optnum(L, t, "send_low_water", (double)low, w);
  c->max_queue = (uint32_t)kit_optnum(L, t, "max_queue", c->max_queue, w);
  if (c->max_queue == 0) c->max_queue = 1;
  if (c->send_low > c->send_high) luaL_error(L, "%s: send_low_water is over send_high_water", who);
  if (c->max_message == 0) luaL_error(L, "%s: max_message must be positive", who);
}

/* ws.server's options (table at 3) into sv's configuration; returns the listen backlog. */
static int server_options(lua_State *L, wsl_server *sv) {
  ws_server_cfg *c = &sv->l.cfg;
  c->open_timeout = kit_optnum(L, 3, "open_timeout", c->open_timeout, "ws.server:");
  c->max_connections = (uint32_t)kit_optnum(L, 3, "max_connections", 0, "ws.server:");
  lua_getfield(L, 3, "reuseport"); /* off by default: a second server on a taken port fails */
  sv->l.reuseport = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 3, "keep_request"); /* off by default: the head goes once the handler waits */
  sv->keep_request = lua_toboolean(L, -1);
  lua_pop(L, 1);
  c->deflate_mode = wsl_check_compression(L, 3, "ws.server", &c->deflate);
  wsl_stream_options(L, 3, c, "ws.server", 0);
  return (int)kit_optnum(L, 3, "backlog", 1024, "ws.server:");
}

/* core.listen(host, port, options, serve [, pooled [, quiet_close]]) -> server | nil, message,
 * code. options.unix (a path) listens on a Unix socket instead, with options.unix_mode as its
 * permission bits.
 * pooled: serve is a dispatch function run by pooled threads per event (the callback style,
 * and the handshake of a coroutine-style connection until core.handoff).
 * quiet_close: the dispatch function has nothing to do at the close of a connection past its
 * handshake but take the messages still waiting (no close callback): one whose inbox is empty
 * when it closes is done without being run (wsl_conn_schedule). */
static int l_listen(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TFUNCTION);
  if (port < 0 || port > 65535) return luaL_argerror(L, 2, "port out of range");
  int pooled = lua_toboolean(L, 5), quiet_close = lua_toboolean(L, 6);
  lua_settop(L, 6);
  wsl_server *sv = lua_newuserdatauv(L, sizeof(wsl_server), 2);
  ws_listener_init(&sv->l, x->loop);
  sv->self_ref = LUA_NOREF;
  sv->closed = 1;
  sv->pooled = pooled;
  sv->quiet_close = pooled && quiet_close;
  sv->keep_request = 0;
  sv->bus = NULL;
  luaL_setmetatable(L, WSL_SERVER_MT);
  int ud = lua_gettop(L);
  lua_pushvalue(L, 4);
  lua_setiuservalue(L, ud, 1);
  int backlog = server_options(L, sv);
  const char *err;
  const char *unix_path = NULL;
  int mode = -1;
  if (lua_getfield(L, 3, "unix") == LUA_TSTRING) unix_path = lua_tostring(L, -1); /* anchored by opts */
  lua_pop(L, 1);
  if (unix_path) mode = (int)kit_optnum(L, 3, "unix_mode", -1, "ws.server:");
  int r = unix_path ? ws_listener_open_unix(&sv->l, unix_path, mode, backlog, &err)
                    : ws_listener_open(&sv->l, host, (int)port, backlog, &err);
  if (r < 0) {
    int e = errno;
    if (unix_path) lua_pushfstring(L, "cannot listen on %s: %s", unix_path, err);
    else lua_pushfstring(L, "cannot listen on %s:%d: %s", host, (int)port, err);
    return kit_fail(L, lua_tostring(L, -1), kit_errno_code(e, "EINVAL"));
  }
  sv->closed = 0;
  lua_pushvalue(L, ud);
  sv->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, ud);
  return 1;
}

static int l_server_port(lua_State *L) {
  lua_pushinteger(L, wsl_check_server(L, 1)->l.port);
  return 1;
}

static int l_server_count(lua_State *L) {
  lua_pushinteger(L, wsl_check_server(L, 1)->l.count);
  return 1;
}

/* core.server_clients(server) -> { conn, ... }: the connections past their handshake and not
 * yet closed (states "open" and "closing"), most recently accepted first. A new table. */
static int l_server_clients(lua_State *L) {
  wsl_server *sv = wsl_check_server(L, 1);
  lua_createtable(L, (int)(sv->l.count < 1024 ? sv->l.count : 1024), 0);
  lua_Integer i = 0;
  for (ws_stream *s = sv->l.streams; s; s = s->lnext) {
    wsl_conn *c = s->user;
    if (!c || c->self_ref == LUA_NOREF || ws_conn_state(&s->ws) == WS_STATE_CONNECTING) continue;
    if (s->phase == WS_PH_DONE) continue;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->self_ref);
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

/* core.server_close(server): stop accepting; the server goes once its connections have. */
static int l_server_close(lua_State *L) {
  wsl_server *sv = wsl_check_server(L, 1);
  ws_listener_close(&sv->l);
  sv->closed = 1;
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, 2);
  lua_pushnil(L);
  lua_setiuservalue(L, 1, 2);
  wsl_server_check_release(wsl_ctx_get(L), sv);
  return 0;
}

/* core.server_shutdown(server, code, reason [, abort]): close (or abort) every connection. */
static int l_server_shutdown(lua_State *L) {
  wsl_server *sv = wsl_check_server(L, 1);
  int given;
  long long code = kit_optcode(L, 2, WS_CLOSE_GOING_AWAY, &given);
  size_t rl = 0;
  const char *reason = luaL_optlstring(L, 3, "", &rl);
  int abort = lua_toboolean(L, 4);
  const char *why;
  int bad = ws_close_args_check(1, code, reason, rl, &why); /* a shutdown always sends a code */
  if (bad) return luaL_argerror(L, bad + 1, why);
  wsl_ctx *x = wsl_ctx_get(L);
  WSL_LOG(x, 1, "server on port %d: %s its %u connections, code %u, reason \"%s\"", sv->l.port,
          abort ? "aborting" : "closing", (unsigned)sv->l.count, (unsigned)code, reason);
  for (ws_stream *s = sv->l.streams; s;) {
    ws_stream *next = s->lnext;
    if (abort) ws_stream_abort(s, "server closed");
    else ws_stream_close(s, (unsigned)code, reason, rl);
    s = next;
  }
  return 0;
}

/* The connection userdata of an open stream, pushed; 0 when it has none. */
static int push_stream_conn(lua_State *L, ws_stream *s) {
  wsl_conn *c = s->user;
  if (!c || c->self_ref == LUA_NOREF || s->phase != WS_PH_OPEN) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->self_ref);
  return 1;
}

/* core.server_conn(server, n) -> the open connection whose number is n | nil (the Redis bus:
 * send_to and the publisher excluded from an ordered message). A walk: not for hot paths. */
static int l_server_conn(lua_State *L) {
  wsl_server *sv = wsl_check_server(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  for (ws_stream *s = sv->l.streams; s; s = s->lnext) {
    wsl_conn *c = s->user;
    if (c && (lua_Integer)c->id == n && push_stream_conn(L, s)) return 1;
  }
  lua_pushnil(L);
  return 1;
}

/* core.topic_conns(server, topic) -> { conn, ... }: the open connections subscribed to topic
 * (the Redis bus tells them when they missed messages). A walk over every connection's topics. */
static int l_topic_conns(lua_State *L) {
  wsl_server *sv = wsl_check_server(L, 1);
  size_t len;
  const char *name = luaL_checklstring(L, 2, &len);
  lua_newtable(L);
  lua_Integer k = 0;
  for (ws_stream *s = sv->l.streams; s; s = s->lnext) {
    size_t nt = ws_topic_count(s);
    for (size_t i = 0; i < nt; i++) {
      size_t tl;
      const char *t = ws_topic_name(s, i, &tl);
      if (tl == len && memcmp(t, name, len) == 0) {
        if (push_stream_conn(L, s)) lua_rawseti(L, -2, ++k);
        break;
      }
    }
  }
  return 1;
}

static int server_gc(lua_State *L) {
  wsl_server *sv = lua_touserdata(L, 1);
  ws_listener_close(&sv->l);
  for (ws_stream *s = sv->l.streams; s; s = s->lnext) s->listener = NULL; /* only at exit */
  sv->l.streams = NULL;
  ws_topics_release(&sv->l); /* its topics go with their last subscriber */
  ws_listener_retire(&sv->l); /* its counters stay in the process-wide total */
  return 0;
}

void wsl_server_open_lib(lua_State *L, int mod) {
  static const luaL_Reg funcs[] = {
    { "listen", l_listen }, { "server_port", l_server_port }, { "server_count", l_server_count },
    { "server_clients", l_server_clients },
    { "server_close", l_server_close }, { "server_shutdown", l_server_shutdown },
    { "server_conn", l_server_conn }, { "topic_conns", l_topic_conns }, { NULL, NULL }
  };
  lua_pushvalue(L, mod);
  lua_getfield(L, LUA_REGISTRYINDEX, "ws.core.ctx");
  luaL_setfuncs(L, funcs, 1);
  lua_pop(L, 1);
  if (luaL_newmetatable(L, WSL_SERVER_MT)) {
    lua_pushcfunction(L, server_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}
