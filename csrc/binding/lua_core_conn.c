/* Connections as Lua userdata: the non-blocking primitives the Lua wrappers in
 * lua/ws/conn.lua build on (receive, send, close, ping, the handshake steps), the fields a
 * handler reads (conn.id, conn.state, ...), and the events that wake waiting tasks.
 * User value 1 is the handler's thread, user value 2 a table created on first use for
 * conn.protocol, conn.request, conn.data and fields the application sets. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lua_core.h"
#include "lua_kit.h"

#define MAX_EXTRA_HEADERS 64
#define MAX_PROTOCOLS 32

static wsl_conn *checkconn(lua_State *L, int idx) {
  return wsl_toconn(L, wsl_ctx_get(L), idx);
}

wsl_conn *wsl_conn_new(lua_State *L, wsl_ctx *x) {
  wsl_conn *c = lua_newuserdatauv(L, sizeof(wsl_conn), 2);
  wsl_task_init(&c->task, WSL_K_CONN);
  c->reader = c->writers = NULL;
  c->closed_next = NULL;
  c->server = NULL;
  c->self_ref = LUA_NOREF;
  c->id = 0;
  ws_stream_init(&c->s, x->loop);
  c->s.user = c;
  luaL_setmetatable(L, WSL_CONN_MT);
  return c;
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

/* The errno names results carry as their code; anything else is `other`. */
const char *wsl_errno_name(int e, const char *other) {
  switch (e) {
  case EPIPE: return "EPIPE";
  case ECONNRESET: return "ECONNRESET";
  case ETIMEDOUT: return "ETIMEDOUT";
  case ENOMEM: return "ENOMEM";
  case EHOSTUNREACH: return "EHOSTUNREACH";
  case ENETUNREACH: return "ENETUNREACH";
  case ECONNREFUSED: return "ECONNREFUSED";
  case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
  case EMFILE: return "EMFILE";
  case ENFILE: return "ENFILE";
  case EADDRINUSE: return "EADDRINUSE";
  case EACCES: return "EACCES";
  case EINVAL: return "EINVAL";
  default: return other;
  }
}

/* nil, message, code for a connection that has ended (or is ending). The code "timeout" is
 * kept for a receive that timed out (the connection lives on); a connection that died of a
 * deadline (ping, close or handshake timeout) reports "closed" with the reason as message. */
static int push_end(lua_State *L, wsl_conn *c) {
  const ws_stream *s = &c->s;
  const char *msg = s->error ? s->error : "closed", *code = "closed";
  switch (s->fail_code) {
  case 0: break;
  case WS_CLOSE_TOO_BIG: code = "toolarge"; break;
  case WS_CLOSE_INTERNAL: code = "closed"; break; /* ping timeout, out of memory */
  default: code = "protocol"; break;
  }
  if (!s->fail_code) {
    if (s->err) code = wsl_errno_name(s->err, "EIO");
  }
  return kit_fail(L, msg, code);
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
  wsl_conn *c = checkconn(L, 1);
  if (take_message(L, c, 2)) return 2;
  switch (c->s.phase) {
  case WS_PH_OPEN:
  case WS_PH_CLOSING:
    lua_pushboolean(L, 0);
    return 1;
  case WS_PH_FINISH:
  case WS_PH_DONE:
    return push_end(L, c);
  default:
    return luaL_error(L, "ws: the connection is not open yet");
  }
}

static int opcode_arg(lua_State *L, int idx) {
  size_t n;
  const char *kind = luaL_optlstring(L, idx, "text", &n);
  if (n == 4 && memcmp(kind, "text", 4) == 0) return WS_OP_TEXT;
  if (n == 6 && memcmp(kind, "binary", 6) == 0) return WS_OP_BINARY;
  return luaL_argerror(L, idx, "\"text\" or \"binary\" expected");
}

/* A send on a connection that is not open: an error before the upgrade, else its end. */
static int push_not_open(lua_State *L, wsl_conn *c) {
  const ws_stream *s = &c->s;
  if (s->phase < WS_PH_OPEN) return luaL_error(L, "ws: the connection is not open yet");
  if (s->phase == WS_PH_CLOSING) {
    lua_pushnil(L);
    lua_pushstring(L, "closing");
    lua_pushstring(L, "closed");
    return 3;
  }
  return push_end(L, c);
}

/* A message the protocol engine refused: "busy" while a fragmented message of this connection
 * is unfinished (the core allows no other data message in between), else "closed". */
static int push_send_failed(lua_State *L, const ws_stream *s) {
  lua_pushnil(L);
  lua_pushstring(L, ws_conn_error(&s->ws) ? ws_conn_error(&s->ws) : "send failed");
  if (s->phase == WS_PH_OPEN && ws_conn_fragment_opcode(&s->ws)) lua_pushliteral(L, "busy");
  else lua_pushliteral(L, "closed");
  return 3;
}

static int push_queued(lua_State *L, wsl_conn *c);

/* core.send(conn, data [, kind [, opts]]) -> true | false (queued, over the high-water mark:
 * wait for "w") | nil, message, code. opts.compress = false sends this message uncompressed. */
static int l_send(lua_State *L) {
  wsl_conn *c = checkconn(L, 1);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  int op = opcode_arg(L, 3);
  unsigned flags = WS_SEND_COMPRESS; /* when negotiated and over the threshold */
  if (lua_type(L, 4) == LUA_TTABLE) {
    lua_getfield(L, 4, "compress");
    if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) flags = 0;
    lua_pop(L, 1);
  } else if (!lua_isnoneornil(L, 4)) {
    return luaL_argerror(L, 4, "options table expected");
  }
  ws_stream *s = &c->s;
  if (s->phase != WS_PH_OPEN) return push_not_open(L, c);
  if (ws_stream_send(s, op, p, n, flags) < 0) return push_send_failed(L, s);
  size_t b = ws_stream_buffered(s); /* push_queued, inline: the hot path */
  if (b > s->cfg->send_high) {
    b = ws_stream_flush(s); /* try the socket before making the sender wait */
    if (s->phase == WS_PH_DONE) return push_end(L, c);
    if (b > s->cfg->send_high) {
      lua_pushboolean(L, 0);
      return 1;
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.send_fragment(conn, data [, kind [, fin]]) -> as core.send. One piece of a message
 * sent in fragments: kind names the message's kind on its first fragment (later ones may
 * leave it out), fin ends the message. The framing rules are ws_conn_send_fragment's. */
static int l_send_fragment(lua_State *L) {
  wsl_conn *c = checkconn(L, 1);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  int op = lua_isnoneornil(L, 3) ? 0 : opcode_arg(L, 3);
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
static int push_queued(lua_State *L, wsl_conn *c) {
  ws_stream *s = &c->s;
  size_t b = ws_stream_buffered(s);
  if (b > s->cfg->send_high) {
    b = ws_stream_flush(s); /* try the socket before making the sender wait */
    if (s->phase == WS_PH_DONE) return push_end(L, c);
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
  int n = l_send(L);
  if (n != 1 || lua_toboolean(L, -1)) return n; /* true, or nil, message, code */
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
static int m_next(lua_State *L);

static int next_again(lua_State *L, int status, lua_KContext k) {
  (void)status;
  (void)k;
  return m_next(L);
}

static int m_next(lua_State *L) {
  wsl_conn *c = checkconn(L, 1);
  if (take_message(L, c, 3)) return 2;
  switch (c->s.phase) {
  case WS_PH_OPEN:
  case WS_PH_CLOSING:
    lua_settop(L, 1);
    if (c->task.co == L && !c->task.pooled) {
      /* The connection's own handler: it waits and yields from here, so a suspended handler
       * holds two call frames (its function and this iterator) instead of four. */
      wsl_wait(L, wsl_ctx_get(L), c, 'r', -1);
      lua_settop(L, 1);
      return lua_yieldk(L, 0, 0, next_again);
    }
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, 1);
    lua_callk(L, 1, 0, 0, next_again);
    return m_next(L);
  case WS_PH_FINISH:
  case WS_PH_DONE:
    lua_pushnil(L);
    return 1;
  default:
    return luaL_error(L, "ws: the connection is not open yet");
  }
}

/* conn:messages() -> the iterator, conn. Upvalue 2: the iterator. */
static int m_messages(lua_State *L) {
  checkconn(L, 1);
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
  wsl_conn *c = checkconn(L, 1);
  ws_stream *s = &c->s;
  if (s->phase == WS_PH_DONE) return push_end(L, c);
  lua_pushboolean(L, !s->cfg || ws_stream_buffered(s) <= s->cfg->send_low);
  return 1;
}

/* core.close(conn [, code [, reason]]): starts the closing handshake; idempotent. */
static int l_close(lua_State *L) {
  wsl_conn *c = checkconn(L, 1);
  lua_Integer code = luaL_optinteger(L, 2, WS_CLOSE_NORMAL);
  size_t rl = 0;
  const char *reason = luaL_optlstring(L, 3, "", &rl);
  const char *why;
  int bad = code < 0 || code > 0xffff ? 1 : ws_close_args_check((unsigned)code, reason, rl, &why);
  if (bad) return luaL_argerror(L, bad + 1, bad == 1 ? "invalid close code" : why);
  wsl_ctx *x = wsl_ctx_get(L);
  if (x->log_level && c->s.phase == WS_PH_OPEN) {
    char who[96];
    wsl_log(x, 1, "%s: closing, code %u, reason \"%.*s\"", wsl_log_who(c, who, sizeof who), (unsigned)code, (int)rl, reason);
  }
  ws_stream_close(&c->s, (unsigned)code, reason, rl);
  return 0;
}

static int l_abort(lua_State *L) {
  wsl_conn *c = checkconn(L, 1);
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
  wsl_conn *c = checkconn(L, 1);
  size_t n = 0;
  int wait = lua_toboolean(L, 3);
  const char *p = wait && lua_isnoneornil(L, 2) ? NULL : luaL_optlstring(L, 2, "", &n);
  if (ws_control_len_check(n)) return luaL_argerror(L, 2, ws_control_len_check(n));
  long long seq = 0;
  if (wait ? (seq = ws_stream_ping_wait(&c->s, p, n)) < 0 : ws_stream_ping(&c->s, p, n) < 0) {
    if (c->s.phase == WS_PH_OPEN) return luaL_error(L, "ws: ping failed");
    if (c->s.phase < WS_PH_OPEN) return luaL_error(L, "ws: the connection is not open yet");
    return push_end(L, c);
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
  wsl_conn *c = checkconn(L, 1);
  lua_Integer seq = luaL_checkinteger(L, 2);
  double at;
  if (ws_stream_pong_seen(&c->s, (long long)seq, &at)) {
    lua_pushnumber(L, at);
    return 1;
  }
  if (c->s.phase != WS_PH_OPEN && c->s.phase != WS_PH_CLOSING) return push_end(L, c);
  lua_pushboolean(L, 0);
  return 1;
}

/* core.stage(conn [, stage]) -> stage: a callback-style connection's WSL_STAGE_* (the
 * dispatch function in lua/ws/server.lua keeps its progress here, not in a Lua table). */
static int l_stage(lua_State *L) {
  wsl_conn *c = checkconn(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    lua_Integer st = luaL_checkinteger(L, 2);
    if (st < WSL_STAGE_NEW || st > WSL_STAGE_DONE) return luaL_argerror(L, 2, "invalid stage");
    c->task.stage = (uint8_t)st;
  }
  lua_pushinteger(L, c->task.stage);
  return 1;
}

static int l_buffered(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)ws_stream_buffered(&checkconn(L, 1)->s));
  return 1;
}

/* ---- the handshake ---- */

/* core.head(conn) -> true, path, upgrade, status, error, origin, host | false | nil, msg, code.
 * status is 0 when an upgrade request meets RFC 6455 4.2.1, else the status to answer. */
static int l_head(lua_State *L) {
  wsl_conn *c = checkconn(L, 1);
  const char *p;
  size_t n;
  int r = ws_stream_head(&c->s, &p, &n);
  if (r == 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (r < 0) {
    wsl_ctx *x = wsl_ctx_get(L);
    char who[96];
    WSL_LOG(x, 1, "%s: handshake failed: %s", wsl_log_who(c, who, sizeof who), c->s.error ? c->s.error : "closed");
    return push_end(L, c);
  }
  const ws_request *req = ws_stream_request(&c->s);
  if (!req) return luaL_error(L, "ws: request head lost");
  int upgrade = ws_request_is_upgrade(req), status = upgrade ? req->status : 0;
  const char *ext_error = NULL;
  if (upgrade && status == 0) { /* with compression on, a malformed extension header is a 400 */
    char resp[WS_DEFLATE_RESPONSE_MAX];
    if (ws_stream_deflate_negotiate(&c->s, req, 0, resp, sizeof resp, &ext_error) < 0) status = 400;
    else ext_error = NULL;
  }
  lua_pushboolean(L, 1);
  lua_pushlstring(L, req->path, req->path_len);
  lua_pushboolean(L, upgrade);
  lua_pushinteger(L, status);
  if (ext_error) lua_pushfstring(L, "invalid Sec-WebSocket-Extensions (%s)", ext_error);
  else if (status && req->error) lua_pushstring(L, req->error);
  else lua_pushnil(L);
  if (req->origin) lua_pushlstring(L, req->origin, req->origin_len); else lua_pushnil(L);
  const ws_header *h = ws_request_header(req, "host", NULL);
  if (h) lua_pushlstring(L, h->value, h->value_len); else lua_pushnil(L);
  return 7;
}

static void push_lower(lua_State *L, const char *s, size_t n) {
  luaL_Buffer b;
  char *d = luaL_buffinitsize(L, &b, n);
  for (size_t i = 0; i < n; i++) d[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
  luaL_pushresultsize(&b, n);
}

static void push_request(lua_State *L, wsl_conn *c) {
  const ws_request *req = ws_stream_request(&c->s);
  if (!req) {
    lua_pushnil(L);
    return;
  }
  lua_createtable(L, 0, 7);
  lua_pushlstring(L, req->method, req->method_len);
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, req->target, req->target_len);
  lua_setfield(L, -2, "target");
  lua_pushlstring(L, req->path, req->path_len);
  lua_setfield(L, -2, "path");
  if (req->query) {
    lua_pushlstring(L, req->query, req->query_len);
    lua_setfield(L, -2, "query");
  }
  lua_pushfstring(L, "1.%d", req->minor_version);
  lua_setfield(L, -2, "version");
  lua_createtable(L, 0, (int)req->num_headers);
  for (size_t i = 0; i < req->num_headers; i++) {
    const ws_header *h = &req->headers[i];
    push_lower(L, h->name, h->name_len);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TSTRING) { /* a repeated header: values joined with ", " */
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, h->value, h->value_len);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, h->value, h->value_len);
    }
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "headers");
  char addr[64];
  ws_stream_remote_addr(&c->s, addr, sizeof addr);
  lua_pushstring(L, addr);
  lua_setfield(L, -2, "remote_addr");
  lua_pushinteger(L, c->s.remote_port);
  lua_setfield(L, -2, "remote_port");
  ws_stream_request_release(&c->s); /* the table is kept in the fields (l_request) */
}

/* User value 2, created on demand. */
static void push_fields(lua_State *L, int idx, int create) {
  idx = lua_absindex(L, idx);
  if (lua_getiuservalue(L, idx, 2) == LUA_TTABLE || !create) return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, idx, 2);
}

/* conn.request on a server's connection whose head has gone (wsl_conn_drop_request): it was
 * upgraded (last_activity is set then, never 0 again) and holds no head. */
static int request_gone(const wsl_conn *c) {
  return c->server && c->s.last_activity > 0 && !c->s.head.data;
}

static int l_request(lua_State *L) {
  wsl_conn *c = checkconn(L, 1);
  push_fields(L, 1, 1);
  if (lua_getfield(L, -1, "request") != LUA_TNIL) return 1;
  lua_pop(L, 1);
  if (request_gone(c))
    return luaL_error(L, "ws: conn.request is kept only until the handler first waits or the open callback "
                         "returns (keep a copy, or set the server option keep_request = true)");
  push_request(L, c);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "request");
  return 1;
}

/* The policy for conn.request: an idle connection should not hold the bytes of its request for
 * hours, and handlers read the request as they start (the handshake hook, the open callback,
 * the first lines of a coroutine handler). So the head, and the table built from it, go when
 * the handler first waits or the open callback returns; the option keep_request keeps them. */
void wsl_conn_drop_request(lua_State *L, wsl_conn *c, int idx) {
  ws_stream *s = &c->s;
  /* The listener is its server's first member; it is set while the socket is open. */
  if (!s->head.data || s->phase < WS_PH_OPEN || !s->listener || ((wsl_server *)(void *)s->listener)->keep_request)
    return;
  ws_stream_drop_head(s);
  if (lua_getiuservalue(L, idx, 2) == LUA_TTABLE) {
    lua_pushnil(L);
    lua_setfield(L, -2, "request");
  }
  lua_pop(L, 1);
}

/* core.choose_protocol(conn, { "p1", "p2" }) -> the first of the server's list the client
 * offered, or nil. */
static int l_choose_protocol(lua_State *L) {
  wsl_conn *c = checkconn(L, 1);
  const char *list[MAX_PROTOCOLS];
  size_t n = 0;
  luaL_checktype(L, 2, LUA_TTABLE);
  for (lua_Integer i = 1; n < MAX_PROTOCOLS; i++) {
    if (lua_rawgeti(L, 2, i) != LUA_TSTRING) { lua_pop(L, 1); break; }
    list[n++] = lua_tostring(L, -1); /* anchored by the table */
    lua_pop(L, 1);
  }
  const ws_request *req = ws_stream_request(&c->s);
  if (!req) return 0;
  int k = ws_request_choose_protocol(req, list, n);
  if (k < 0) return 0;
  lua_pushstring(L, list[k]);
  return 1;
}

/* Headers from the table at argument idx (lua_kit.c); pushes their anchor table. */
static size_t check_headers(lua_State *L, int idx, ws_header *out, size_t max) {
  kit_where w = { NULL, idx };
  return kit_headers(L, idx, out, max, w);
}

static int header_is(const ws_header *h, const char *name) {
  size_t n = strlen(name);
  if (h->name_len != n) return 0;
  for (size_t i = 0; i < n; i++) {
    char a = h->name[i], b = name[i];
    if (a >= 'A' && a <= 'Z') a = (char)(a + 32);
    if (b >= 'A' && b <= 'Z') b = (char)(b + 32);
    if (a != b) return 0;
  }
  return 1;
}

/* core.upgrade(conn [, protocol [, headers [, compress]]]) -> true | nil, message, code.
 * The subprotocol and the extensions answered in the 101 are the ones the connection runs
 * with, so extra headers may not set them; compress = false declines permessage-deflate for
 * this connection even when the server offers it. */
static int l_upgrade(lua_State *L) {
  wsl_conn *c = checkconn(L, 1);
  const char *protocol = luaL_optstring(L, 2, NULL);
  ws_header extra[MAX_EXTRA_HEADERS];
  size_t nextra = check_headers(L, 3, extra, MAX_EXTRA_HEADERS);
  int compress = lua_isnoneornil(L, 4) || lua_toboolean(L, 4);
  /* the core's token rule, the one ws_response_accept applies */
  if (protocol && !ws_header_name_valid(protocol, strlen(protocol))) return luaL_argerror(L, 2, "invalid protocol name");
  for (size_t i = 0; i < nextra; i++) {
    if (header_is(&extra[i], "Sec-WebSocket-Protocol"))
      return luaL_argerror(L, 3, "Sec-WebSocket-Protocol is set with the protocol field");
    if (header_is(&extra[i], "Sec-WebSocket-Extensions"))
      return luaL_argerror(L, 3, "Sec-WebSocket-Extensions is set by the compression option");
  }
  if (c->s.phase != WS_PH_HEAD_READY) return push_end(L, c);
  const ws_request *req = ws_stream_request(&c->s);
  if (!req || !ws_request_is_upgrade(req) || req->status != 0)
    return luaL_error(L, "ws: the request is not a valid upgrade");
  /* RFC 6455 4.2.2: the server answers with one of the subprotocols the client offered. */
  if (protocol && ws_request_choose_protocol(req, &protocol, 1) < 0)
    return luaL_error(L, "ws: subprotocol \"%s\" was not offered by the client", protocol);
  char ext[WS_DEFLATE_RESPONSE_MAX];
  const char *extensions = NULL;
  if (compress && ws_stream_deflate_negotiate(&c->s, req, 1, ext, sizeof ext, NULL) == 1) extensions = ext;
  /* The request line for the debug log, taken now: the upgrade trims the head's buffer and
   * frees req. */
  wsl_ctx *x = wsl_ctx_get(L);
  char line[256] = "";
  if (x->log_level)
    snprintf(line, sizeof line, "%.*s %.*s HTTP/1.%d", (int)req->method_len, req->method, (int)req->target_len,
             req->target, req->minor_version);
  if (ws_stream_upgrade(&c->s, req->key, req->key_len, protocol, extensions, extra, nextra) < 0)
    return push_end(L, c);
  if (x->log_level) {
    char who[96];
    wsl_log(x, 1, "%s: \"%s\" 101, subprotocol %s, extensions %s", wsl_log_who(c, who, sizeof who), line,
            protocol ? protocol : "(none)", extensions ? extensions : "(none)");
  }
  if (protocol || extensions) {
    push_fields(L, 1, 1);
    if (protocol) {
      lua_pushstring(L, protocol);
      lua_setfield(L, -2, "protocol");
    }
    if (extensions) {
      lua_pushstring(L, extensions);
      lua_setfield(L, -2, "extensions");
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* A response instead of the 101: counted as a refused handshake when the request asked for
 * an upgrade, and logged (with the body's first line, which says why for the server's own
 * refusals). */
static void note_response(wsl_ctx *x, wsl_conn *c, const ws_request *req, int status, const char *body, size_t bl) {
  int upgrade = ws_request_is_upgrade(req);
  if (upgrade) ws_code_count_add(ws_stream_counters(&c->s)->refused, (unsigned)status, 1);
  if (!x->log_level) return;
  char who[96];
  size_t why = 0;
  while (body && why < bl && why < 120 && body[why] != '\n' && body[why] != '\r') why++;
  wsl_log(x, 1, "%s: \"%.*s %.*s HTTP/1.%d\" %d%s%.*s", wsl_log_who(c, who, sizeof who), (int)req->method_len,
          req->method, (int)req->target_len, req->target, req->minor_version, status,
          upgrade ? ", upgrade refused: " : ", plain HTTP", upgrade ? (int)why : 0, body ? body : "");
}

void wsl_conn_refused(wsl_ctx *x, wsl_conn *c, int status) {
  const ws_request *req = ws_stream_request(&c->s);
  if (req) note_response(x, c, req, status, "handler failed", 14);
}

/* core.respond(conn, status [, headers [, body]]) -> true | nil, message, code. The answer to
 * a HEAD request carries the body's Content-Length and not the body. */
static int l_respond(lua_State *L) {
  wsl_conn *c = checkconn(L, 1);
  lua_Integer status = luaL_checkinteger(L, 2);
  ws_header extra[MAX_EXTRA_HEADERS];
  size_t nextra = check_headers(L, 3, extra, MAX_EXTRA_HEADERS);
  size_t bl = 0;
  const char *body = luaL_optlstring(L, 4, NULL, &bl);
  if (status < 100 || status > 999) return luaL_argerror(L, 2, "HTTP status expected");
  if (c->s.phase != WS_PH_HEAD_READY) return push_end(L, c);
  int head_only = 0;
  const ws_request *req = ws_stream_request(&c->s);
  if (req) {
    note_response(wsl_ctx_get(L), c, req, (int)status, body, bl);
    head_only = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
  }
  if (ws_stream_respond(&c->s, (int)status, extra, nextra, body, bl, head_only) < 0) return push_end(L, c);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.body(conn, length) -> the request body's `length` bytes | false (still coming: wait
 * "r") | nil, message, code. For plain HTTP requests (the http hook), before the answer. */
static int l_body(lua_State *L) {
  wsl_conn *c = checkconn(L, 1);
  lua_Integer want = luaL_checkinteger(L, 2);
  const uint8_t *p = NULL;
  if (want < 0 || (uint64_t)want > UINT32_MAX) return luaL_argerror(L, 2, "invalid length");
  int r = ws_stream_body(&c->s, (size_t)want, &p);
  if (r < 0) return push_end(L, c);
  if (r == 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushlstring(L, (const char *)p, (size_t)want);
  return 1;
}

/* core.defer(conn, seconds) -> true | nil, message, code: the request (its head read, no
 * upgrade) stays open after the http hook returns nothing, for core.respond later; after
 * `seconds` without an answer the connection is cut. */
static int l_defer(lua_State *L) {
  wsl_conn *c = checkconn(L, 1);
  lua_Number t = luaL_checknumber(L, 2);
  if (ws_stream_defer(&c->s, (double)t) < 0) return push_end(L, c);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.deferred(conn) -> whether core.defer holds the request for a later answer. */
static int l_deferred(lua_State *L) {
  wsl_conn *c = checkconn(L, 1);
  lua_pushboolean(L, c->s.deferred && c->s.phase == WS_PH_HEAD_READY);
  return 1;
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
      return l_request(L);
    }
  }
  push_fields(L, 1, 0);
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
  checkconn(L, 1);
  if (k) {
    for (int i = 0; readonly[i]; i++)
      if (strcmp(k, readonly[i]) == 0) return luaL_error(L, "ws: conn.%s is read-only", k);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL) return luaL_error(L, "ws: conn.%s is a method", k);
    lua_pop(L, 1);
  }
  push_fields(L, 1, 1);
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
  wsl_conn *c = checkconn(L, 1);
  lua_pushfstring(L, "ws.conn %d (%s)", (int)c->id, ws_stream_state_name(&c->s));
  return 1;
}

void wsl_conn_open_lib(lua_State *L, int mod) {
  static const luaL_Reg funcs[] = {
    { "recv", l_recv }, { "send", l_send }, { "send_fragment", l_send_fragment },
    { "drained", l_drained }, { "close", l_close },
    { "abort", l_abort }, { "ping", l_ping }, { "pong", l_pong }, { "buffered", l_buffered }, { "head", l_head },
    { "request", l_request }, { "choose_protocol", l_choose_protocol }, { "upgrade", l_upgrade },
    { "respond", l_respond }, { "stage", l_stage }, { "body", l_body }, { "defer", l_defer },
    { "deferred", l_deferred },
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
  lua_pushcclosure(L, l_recv, 3);
  lua_setfield(L, -2, "recv");
  lua_pop(L, 1);
  /* conn_methods: filled by lua/ws/conn.lua with the waiting wrappers. */
  int fresh = luaL_newmetatable(L, WSL_CONN_MT);
  if (x) x->conn_mt = lua_topointer(L, -1);
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
