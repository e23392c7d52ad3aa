/* Connections as Lua userdata: the non-blocking primitives the Lua wrappers in
 * lua/ws/conn.lua build on (receive, send, close, ping; the handshake steps are
 * lua_core_handshake.c's), the fields a
 * handler reads (conn.id, conn.state, ...), and the events that wake waiting tasks.
 * User value 1 is the handler's thread, user value 2 a table created on first use for
 * conn.protocol, conn.request, conn.data and fields the application sets. */
#include <stdio.h>
#include <string.h>

#include "lua_core.h"
#include "lua_kit.h"

wsl_conn *wsl_conn_new(lua_State *L, wsl_ctx *x, size_t size) {
  wsl_conn *c = lua_newuserdatauv(L, size, 2);
  wsl_task_init(&c->task, WSL_K_CONN);
  c->reader = c->writers = NULL;
  c->closed_next = NULL;
  c->server = NULL;
  c->self_ref = LUA_NOREF;
  c->id = 0;
  ws_stream_init(&c->s, x->loop);
  c->s.user = c;
  if (x->conn_mt_ref > 0) { /* no lookup by name per connection */
    lua_rawgeti(L, LUA_REGISTRYINDEX, x->conn_mt_ref);
    lua_setmetatable(L, -2);
  } else {
    luaL_setmetatable(L, WSL_CONN_MT);
  }
  return c;
}

void wsl_conn_start(lua_State *L, wsl_ctx *x, wsl_conn *c, int idx) {
  c->id = ++x->next_id;
  lua_pushvalue(L, idx);
  c->self_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* released once the socket is closed */
}

void wsl_conn_event(wsl_ctx *x, wsl_conn *c, int ev) {
  wsl_task *t;
  switch (ev) {
  case WS_SEV_READ:
    if (c->reader) wsl_task_wake(x, c->reader, WSL_R_READ);
    else if (c->task.pooled) wsl_conn_schedule(x, c);
    break;
  case WS_SEV_WRITE:
    for (t = c->writers; t;) {
      wsl_task *next = t->next;
      if (t->wait == 'w') wsl_task_wake(x, t, WSL_R_WRITE);
      t = next;
    }
    break;
  case WS_SEV_PONG:
    for (t = c->writers; t;) {
      wsl_task *next = t->next;
      if (t->wait == 'p') wsl_task_wake(x, t, WSL_R_READ);
      t = next;
    }
    break;
  case WS_SEV_CLOSED:
    if (x->log_level && c->s.last_activity > 0) wsl_log_closed(x, c);
    if (c->reader) wsl_task_wake(x, c->reader, WSL_R_CLOSED);
    while (c->writers) wsl_task_wake(x, c->writers, WSL_R_CLOSED);
    if (c->task.pooled) wsl_conn_schedule(x, c); /* the close callback */
    if (c->self_ref != LUA_NOREF && !c->closed_next) { /* released at the top of the next round */
      c->closed_next = x->closed_head ? x->closed_head : c;
      x->closed_head = c;
      ws_loop_wakeup(x->loop);
    }
    break;
  default:
    break;
  }
}

void wsl_conn_task_done(wsl_ctx *x, wsl_conn *c, int failed) {
  switch (c->s.phase) {
  case WS_PH_HEAD:
    ws_stream_abort(&c->s, failed ? "error during the handshake" : "handshake not completed");
    break;
  case WS_PH_HEAD_READY: /* unanswered: a server error, unless the answer comes later (core.defer) */
    if (!c->s.deferred || failed) {
      wsl_conn_refused(x, c, 500);
      ws_stream_respond(&c->s, 500, NULL, 0, NULL, 0, 0);
    }
    break;
  case WS_PH_OPEN:
    if (failed) ws_stream_close(&c->s, WS_CLOSE_INTERNAL, "internal error", 14);
    else ws_stream_close(&c->s, WS_CLOSE_NORMAL, NULL, 0);
    break;
  default:
    break;
  }
}

/* ---- results ---- */

/* nil, message, code for a connection that has ended (or is ending). The code "timeout" is
 * kept for a receive that timed out (the connection lives on); a connection that died of a
 * deadline (ping, close or handshake timeout) reports "closed" with the reason as message. */
int wsl_conn_push_end(lua_State *L, wsl_conn *c) {
  const ws_stream *s = &c->s;
  const char *code = s->fail_code ? kit_close_code(s->fail_code) : s->err ? kit_errno_code(s->err, "EIO") : "closed";
  return kit_fail(L, s->error ? s->error : "closed", code);
}

/* ---- primitives (never block) ---- */

/* The oldest waiting message and its kind, pushed and taken from the inbox: 1, or 0 when none
 * waits. Upvalues `text_up` and `text_up + 1` of the running function hold "text" and "binary"
 * (no string lookup per message). */
static int take_message(lua_State *L, wsl_conn *c, int text_up) {
  const uint8_t *p;
  size_t n;
  int op;
  if (!ws_stream_peek(&c->s, &p, &n, &op)) return 0;
  lua_pushlstring(L, (const char *)p, n);
  lua_pushvalue(L, lua_upvalueindex(op == WS_OP_BINARY ? text_up + 1 : text_up));
  ws_stream_drop(&c->s);
  return 1;
}

/* core.recv(conn) -> msg, kind | false (nothing yet) | nil, message, code.
 * Upvalues 2 and 3 are the strings "text" and "binary" (no lookup per message). */
static int l_recv(lua_State *L) {
  wsl_conn *c = wsl_checkconn(L, 1);
  if (take_message(L, c, 2)) return 2;
  switch (c->s.phase) {
  case WS_PH_OPEN:
  case WS_PH_CLOSING:
    lua_pushboolean(L, 0);
    return 1;
  case WS_PH_FINISH:
  case WS_PH_DONE:
    return wsl_conn_push_end(L, c);
  default:
    return luaL_error(L, "ws: the connection is not open yet");
  }
}

/* A send on a connection that is not open: an error before the upgrade, else its end. */
static int push_not_open(lua_State *L, wsl_conn *c) {
  const ws_stream *s = &c->s;
  if (s->phase < WS_PH_OPEN) return luaL_error(L, "ws: the connection is not open yet");
  if (s->phase == WS_PH_CLOSING) return kit_fail(L, "closing", "closed");
  return wsl_conn_push_end(L, c);
}

/* A message the protocol engine refused: "busy" while a fragmented message of this connection
 * is unfinished (the core allows no other data message in between), else "closed". */
static int push_send_failed(lua_State *L, const ws_stream *s) {
  int busy = s->phase == WS_PH_OPEN && ws_conn_fragment_opcode(&s->ws);
  return kit_fail(L, ws_conn_error(&s->ws) ? ws_conn_error(&s->ws) : "send failed", busy ? "busy" : "closed");
}

static inline int push_queued(lua_State *L, wsl_conn *c);

/* The work of core.send and conn:send: pushes its results and returns their number, or
 * returns -1 with nothing pushed when the message was queued over the high-water mark. */
static int send_message(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  wsl_conn *c = wsl_toconn_fast(L, x, 1);
  size_t n;
  const char *p = lua_tolstring(L, 2, &n);
  if (!p) p = luaL_checklstring(L, 2, &n); /* its error */
  int top = lua_gettop(L), op = top >= 3 ? wsl_kind(L, x, 3) : WS_OP_TEXT;
  unsigned flags = WS_SEND_COMPRESS; /* when negotiated and over the threshold */
  if (top >= 4) {
    int t = lua_type(L, 4);
    if (t == LUA_TTABLE) {
      lua_getfield(L, 4, "compress");
      if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) flags = 0;
      lua_pop(L, 1);
    } else if (t != LUA_TNIL) {
      return luaL_argerror(L, 4, "options table expected");
    }
  }
  ws_stream *s = &c->s;
  if (s->phase != WS_PH_OPEN) return push_not_open(L, c);
  if (ws_stream_send(s, op, p, n, flags) < 0) return push_send_failed(L, s);
  if (ws_stream_buffered(s) > s->cfg->send_high) {
    size_t b = ws_stream_flush(s); /* try the socket before making the sender wait */
    if (s->phase == WS_PH_DONE) return wsl_conn_push_end(L, c);
    if (b > s->cfg->send_high) return -1;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.send(conn, data [, kind [, opts]]) -> true | false (queued, over the high-water mark:
 * wait for "w") | nil, message, code. opts.compress = false sends this message uncompressed. */
static int l_send(lua_State *L) {
  int r = send_message(L);
  if (r >= 0) return r;
  lua_pushboolean(L, 0);
  return 1;
}

/* core.send_fragment(conn, data [, kind [, fin]]) -> as core.send. One piece of a message
 * sent in fragments: kind names the message's kind on its first fragment (later ones may
 * leave it out), fin ends the message. The framing rules are ws_conn_send_fragment's. */
static int l_send_fragment(lua_State *L) {
  wsl_conn *c = wsl_checkconn(L, 1);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  int op = lua_isnoneornil(L, 3) ? 0 : wsl_check_kind(L, 3);
  int fin = lua_toboolean(L, 4);
  ws_stream *s = &c->s;
  if (s->phase != WS_PH_OPEN) return push_not_open(L, c);
  int started = ws_conn_fragment_opcode(&s->ws);
  if (op && started && op != started) return luaL_argerror(L, 3, "the message being sent is of the other kind");
  if (ws_stream_send_fragment(s, op, p, n, fin) < 0) return push_send_failed(L, s);
  return push_queued(L, c);
}

/* After a message was queued: true, or false when the queue is over the high-water mark
 * (the caller waits for "w"), or the end of a connection a flush found broken. */
static inline int push_queued(lua_State *L, wsl_conn *c) {
  ws_stream *s = &c->s;
  size_t b = ws_stream_buffered(s);
  if (b > s->cfg->send_high) {
    b = ws_stream_flush(s); /* try the socket before making the sender wait */
    if (s->phase == WS_PH_DONE) return wsl_conn_push_end(L, c);
    if (b > s->cfg->send_high) {
      lua_pushboolean(L, 0);
      return 1;
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

#if WSL_HAVE_CONTINUATIONS /* else lua/ws/conn.lua keeps them in Lua */
/* ---- the hot methods: conn:send and conn:messages() as C functions ----
 * One C call per message when nothing has to wait. When something does (a full queue, an empty
 * inbox), they call the waiting Lua function they were made with (lua/ws/conn.lua) through
 * lua_callk: that function yields from Lua, and the continuation picks up after the resume, so
 * C itself never yields. */

static int send_done(lua_State *L, int status, lua_KContext base) {
  (void)status;
  return lua_gettop(L) - (int)base;
}

/* conn:send(data [, kind [, opts]]): upvalue 2 waits until the queue is back under the
 * low-water mark and returns send's result. */
static int m_send(lua_State *L) {
  int n = send_message(L);
  if (n >= 0) return n; /* true, or nil, message, code */
  int base = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, 1);
  lua_callk(L, 1, LUA_MULTRET, base, send_done);
  return send_done(L, LUA_OK, base);
}

/* core.sender(drain) -> conn:send */
static int l_sender(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, m_send, 2);
  return 1;
}

/* The iterator of conn:messages(): msg, kind, or nil at the end. One function for every
 * connection, which is the generic for's state (argument 1), so an idle connection holds no
 * closure for it. Upvalues: the context, the function that waits for "r", "text", "binary". */
static int next_from(lua_State *L, wsl_ctx *x, wsl_conn *c);

/* After a wait: the connection at index 1 anchored it meanwhile, so the pointer passed as the
 * continuation's context is still good (no second check). */
static int next_again(lua_State *L, int status, lua_KContext k) {
  (void)status;
  return next_from(L, wsl_ctx_get(L), (wsl_conn *)k);
}

static int next_from(lua_State *L, wsl_ctx *x, wsl_conn *c) {
  if (take_message(L, c, 3)) return 2;
  switch (c->s.phase) {
  case WS_PH_OPEN:
  case WS_PH_CLOSING:
    lua_settop(L, 1);
    if (c->task.co == L && !c->task.pooled) {
      /* The connection's own handler: it waits and yields from here, so a suspended handler
       * holds two call frames (its function and this iterator) instead of four. */
      wsl_wait(L, x, c, 'r', -1);
      c->task.bare = 1; /* next_again reads no reason */
      lua_settop(L, 1);
      return lua_yieldk(L, 0, (lua_KContext)c, next_again);
    }
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, 1);
    lua_callk(L, 1, 0, (lua_KContext)c, next_again);
    return next_from(L, x, c);
  case WS_PH_FINISH:
  case WS_PH_DONE:
    lua_pushnil(L);
    return 1;
  default:
    return luaL_error(L, "ws: the connection is not open yet");
  }
}

static int m_next(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  return next_from(L, x, wsl_toconn_fast(L, x, 1));
}

/* conn:messages() -> the iterator, conn. Upvalue 2: the iterator. */
static int m_messages(lua_State *L) {
  wsl_checkconn(L, 1);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, 1);
  return 2;
}

/* core.reader(wait_read) -> conn:messages */
static int l_reader(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_pushliteral(L, "text");
  lua_pushliteral(L, "binary");
  lua_pushcclosure(L, m_next, 4);
  lua_pushcclosure(L, m_messages, 2);
  return 1;
}
#endif

/* core.drained(conn) -> true (at or below the low-water mark) | false | nil, message, code */
static int l_drained(lua_State *L) {
  wsl_conn *c = wsl_checkconn(L, 1);
  ws_stream *s = &c->s;
  if (s->phase == WS_PH_DONE) return wsl_conn_push_end(L, c);
  lua_pushboolean(L, !s->cfg || ws_stream_buffered(s) <= s->cfg->send_low);
  return 1;
}

/* core.close(conn [, code [, reason]]): starts the closing handshake; idempotent. */
static int l_close(lua_State *L) {
  wsl_conn *c = wsl_checkconn(L, 1);
  int given;
  long long code = kit_optcode(L, 2, WS_CLOSE_NORMAL, &given);
  size_t rl = 0;
  const char *reason = luaL_optlstring(L, 3, "", &rl);
  const char *why;
  int bad = ws_close_args_check(1, code, reason, rl, &why); /* always a code: 1000 by default */
  if (bad) return luaL_argerror(L, bad + 1, why);
  wsl_ctx *x = wsl_ctx_get(L);
  if (x->log_level && c->s.phase == WS_PH_OPEN) {
    char who[96];
    wsl_log(x, 1, "%s: closing, code %u, reason \"%.*s\"", wsl_log_who(c, who, sizeof who), (unsigned)code, (int)rl, reason);
  }
  ws_stream_close(&c->s, (unsigned)code, reason, rl);
  return 0;
}

static int l_abort(lua_State *L) {
  wsl_conn *c = wsl_checkconn(L, 1);
  wsl_ctx *x = wsl_ctx_get(L);
  if (x->log_level && c->s.phase != WS_PH_DONE) {
    char who[96];
    wsl_log(x, 1, "%s: aborting: %s", wsl_log_who(c, who, sizeof who), luaL_optstring(L, 2, "aborted"));
  }
  ws_stream_abort(&c->s, luaL_optstring(L, 2, "aborted"));
  return 0;
}

/* core.ping(conn [, data [, wait]]) -> true | nil, message, code. With wait: the ping's
 * sequence number and the loop's time it was sent, for core.pong (data nil: a payload of its
 * own that no other ping has). */
static int l_ping(lua_State *L) {
  wsl_conn *c = wsl_checkconn(L, 1);
  size_t n = 0;
  int wait = lua_toboolean(L, 3);
  const char *p = wait && lua_isnoneornil(L, 2) ? NULL : luaL_optlstring(L, 2, "", &n);
  if (ws_control_len_check(n)) return luaL_argerror(L, 2, ws_control_len_check(n));
  long long seq = 0;
  if (wait ? (seq = ws_stream_ping_wait(&c->s, p, n)) < 0 : ws_stream_ping(&c->s, p, n) < 0) {
    if (c->s.phase == WS_PH_OPEN) return luaL_error(L, "ws: ping failed");
    if (c->s.phase < WS_PH_OPEN) return luaL_error(L, "ws: the connection is not open yet");
    return wsl_conn_push_end(L, c);
  }
  if (!wait) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushinteger(L, (lua_Integer)seq);
  lua_pushnumber(L, c->s.cold->ping_wait->sent_at);
  return 2;
}

/* core.pong(conn, seq) -> the loop's time the pong of ping seq came | false (not yet) |
 * nil, message, code (the connection is closed). */
static int l_pong(lua_State *L) {
  wsl_conn *c = wsl_checkconn(L, 1);
  lua_Integer seq = luaL_checkinteger(L, 2);
  double at;
  if (ws_stream_pong_seen(&c->s, (long long)seq, &at)) {
    lua_pushnumber(L, at);
    return 1;
  }
  if (c->s.phase != WS_PH_OPEN && c->s.phase != WS_PH_CLOSING) return wsl_conn_push_end(L, c);
  lua_pushboolean(L, 0);
  return 1;
}

/* core.stage(conn [, stage]) -> stage, more: a callback-style connection's WSL_STAGE_* (the
 * dispatch function in lua/ws/server.lua keeps its progress here, not in a Lua table), and
 * whether core.recv has anything to say now (a message waits, or the connection ended): when
 * not, it would return false. */
static int l_stage(lua_State *L) {
  wsl_conn *c = wsl_checkconn(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    lua_Integer st = luaL_checkinteger(L, 2);
    if (st < WSL_STAGE_NEW || st > WSL_STAGE_DONE) return luaL_argerror(L, 2, "invalid stage");
    c->task.stage = (uint8_t)st;
  }
  lua_pushinteger(L, c->task.stage);
  lua_pushboolean(L, c->s.inbox_count || c->s.phase >= WS_PH_FINISH);
  return 2;
}

static int l_buffered(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)ws_stream_buffered(&wsl_checkconn(L, 1)->s));
  return 1;
}

/* User value 2, created on demand. */
void wsl_conn_fields(lua_State *L, int idx, int create) {
  idx = lua_absindex(L, idx);
  if (lua_getiuservalue(L, idx, 2) == LUA_TTABLE || !create) return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, idx, 2);
}

/* ---- metamethods ---- */

static int conn_index(lua_State *L) {
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL) return 1; /* a method */
  lua_pop(L, 1);
  wsl_conn *c = lua_touserdata(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k) {
    const ws_stream *s = &c->s;
    if (strcmp(k, "id") == 0) { wsl_push_conn_id(L, c); return 1; }
    if (strcmp(k, "state") == 0) { lua_pushstring(L, ws_stream_state_name(s)); return 1; }
    if (strcmp(k, "close_code") == 0) {
      if (s->close_code) lua_pushinteger(L, s->close_code);
      else if (s->phase >= WS_PH_FINISH) lua_pushinteger(L, WS_CLOSE_ABNORMAL); /* no close frame came */
      else lua_pushnil(L);
      return 1;
    }
    if (strcmp(k, "close_reason") == 0) {
      if (ws_stream_close_reason(s)) lua_pushstring(L, ws_stream_close_reason(s));
      else if (s->close_code || s->phase >= WS_PH_FINISH) lua_pushliteral(L, "");
      else lua_pushnil(L);
      return 1;
    }
    if (strcmp(k, "remote_addr") == 0) {
      char addr[64];
      ws_stream_remote_addr(s, addr, sizeof addr);
      lua_pushstring(L, addr);
      return 1;
    }
    if (strcmp(k, "remote_port") == 0) { lua_pushinteger(L, s->remote_port); return 1; }
    if (strcmp(k, "latency") == 0) { /* seconds, the last ping's round trip; nil before one */
      if (s->latency >= 0) lua_pushnumber(L, (double)s->latency); else lua_pushnil(L);
      return 1;
    }
    if (strcmp(k, "dropped") == 0) { lua_pushinteger(L, (lua_Integer)ws_stream_dropped(s)); return 1; } /* ws_topic.c */
    if (strcmp(k, "deflate_memory") == 0) { /* bytes the permessage-deflate state holds now */
      lua_pushinteger(L, (lua_Integer)ws_conn_deflate_memory(&s->ws));
      return 1;
    }
    if (strcmp(k, "request") == 0) {
      lua_settop(L, 1);
      return wsl_conn_request(L);
    }
  }
  wsl_conn_fields(L, 1, 0);
  if (lua_type(L, -1) != LUA_TTABLE) return 0;
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

static int conn_newindex(lua_State *L) {
  static const char *const readonly[] = { "id", "state", "close_code", "close_reason", "remote_addr",
                                          "remote_port", "request", "protocol", "dropped", "extensions", "latency",
                                          "deflate_memory", NULL };
  const char *k = lua_tostring(L, 2);
  wsl_checkconn(L, 1);
  if (k) {
    for (int i = 0; readonly[i]; i++)
      if (strcmp(k, readonly[i]) == 0) return luaL_error(L, "ws: conn.%s is read-only", k);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL) return luaL_error(L, "ws: conn.%s is a method", k);
    lua_pop(L, 1);
  }
  wsl_conn_fields(L, 1, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_rawset(L, -3);
  return 0;
}

static int conn_gc(lua_State *L) {
  wsl_conn *c = lua_touserdata(L, 1);
  wsl_ctx *x = wsl_ctx_get(L);
  wsl_task_free_timer(x, &c->task);
  ws_stream_destroy(&c->s);
  c->s.user = NULL; /* finalized: wsl_toconn no longer remembers it */
  if (x->conn_last == c) x->conn_last = NULL;
  return 0;
}

static int conn_tostring(lua_State *L) {
  wsl_conn *c = wsl_checkconn(L, 1);
  lua_pushfstring(L, "ws.conn %d (%s)", (int)c->id, ws_stream_state_name(&c->s));
  return 1;
}

void wsl_conn_open_lib(lua_State *L, int mod) {
  static const luaL_Reg funcs[] = {
    { "recv", l_recv }, { "send", l_send }, { "send_fragment", l_send_fragment },
    { "drained", l_drained }, { "close", l_close },
    { "abort", l_abort }, { "ping", l_ping }, { "pong", l_pong }, { "buffered", l_buffered },
    { "stage", l_stage },
#if WSL_HAVE_CONTINUATIONS
    { "sender", l_sender }, { "reader", l_reader },
#endif
    { NULL, NULL }
  };
  wsl_ctx *x;
  lua_pushvalue(L, mod);
  lua_getfield(L, LUA_REGISTRYINDEX, "ws.core.ctx");
  luaL_setfuncs(L, funcs, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, "ws.core.ctx");
  x = lua_touserdata(L, -1);
  lua_pushliteral(L, "text");
  lua_pushliteral(L, "binary");
  if (x) { /* the registry keeps them, so their addresses stay */
    x->kind_text = lua_tostring(L, -2);
    x->kind_binary = lua_tostring(L, -1);
    lua_pushvalue(L, -2);
    luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -1);
    luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_pushcclosure(L, l_recv, 3);
  lua_setfield(L, -2, "recv");
  lua_pop(L, 1);
  /* conn_methods: filled by lua/ws/conn.lua with the waiting wrappers. */
  int fresh = luaL_newmetatable(L, WSL_CONN_MT);
  if (x) {
    x->conn_mt = lua_topointer(L, -1);
    if (x->conn_mt_ref <= 0) {
      lua_pushvalue(L, -1);
      x->conn_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
  }
  if (fresh) {
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, mod, "conn_methods");
    lua_getfield(L, LUA_REGISTRYINDEX, "ws.core.ctx");
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, conn_index, 2);
    lua_setfield(L, -3, "__index");
    lua_getfield(L, LUA_REGISTRYINDEX, "ws.core.ctx");
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, conn_newindex, 2);
    lua_setfield(L, -3, "__newindex");
    lua_pop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, "ws.core.ctx");
    lua_pushcclosure(L, conn_gc, 1);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, conn_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "ws.conn");
    lua_setfield(L, -2, "__name");
  } else {
    lua_getfield(L, -1, "__index");
    lua_getupvalue(L, -1, 2);
    lua_setfield(L, mod, "conn_methods");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}
