/* The server side of the opening handshake as ws.core functions, for lua/ws/server.lua:
 * core.head (the request head read and checked), core.request and core.choose_protocol,
 * core.upgrade (the 101), core.respond (any other answer) and, for plain HTTP requests,
 * core.body, core.defer and core.deferred. The rules are the core's (ws_handshake.c); this
 * file moves values between Lua and the stream. */
#include <stdio.h>
#include <string.h>

#include "lua_core.h"
#include "lua_kit.h"

#define MAX_EXTRA_HEADERS 64
#define MAX_PROTOCOLS 32


/* core.head(conn) -> true, path, upgrade, status, error, origin, host | false | nil, msg, code.
 * status is 0 when an upgrade request meets RFC 6455 4.2.1, else the status to answer. host
 * comes only with an origin (what the origin policy compares; nil otherwise). */
static int l_head(lua_State *L) {
  wsl_conn *c = wsl_checkconn(L, 1);
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
    return wsl_conn_push_end(L, c);
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
  if (!req->origin) return 5; /* no origin: no host either */
  lua_pushlstring(L, req->origin, req->origin_len);
  const ws_header *h = ws_request_header(req, "host", NULL);
  if (h) lua_pushlstring(L, h->value, h->value_len); else lua_pushnil(L);
  return 7;
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
  kit_push_headers(L, req->headers, req->num_headers);
  lua_setfield(L, -2, "headers");
  char addr[64];
  ws_stream_remote_addr(&c->s, addr, sizeof addr);
  lua_pushstring(L, addr);
  lua_setfield(L, -2, "remote_addr");
  lua_pushinteger(L, c->s.remote_port);
  lua_setfield(L, -2, "remote_port");
  ws_stream_request_release(&c->s); /* the table is kept in the fields (wsl_conn_request) */
}

/* conn.request on a server's connection whose head has gone (wsl_conn_drop_request): it was
 * upgraded (last_activity is set then, never 0 again) and holds no head. */
static int request_gone(const wsl_conn *c) {
  return c->server && c->s.last_activity > 0 && !ws_stream_has_head(&c->s);
}

int wsl_conn_request(lua_State *L) {
  wsl_conn *c = wsl_checkconn(L, 1);
  wsl_conn_fields(L, 1, 1);
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
  if (!ws_stream_has_head(s) || s->phase < WS_PH_OPEN || !s->listener || ((wsl_server *)(void *)s->listener)->keep_request)
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
  wsl_conn *c = wsl_checkconn(L, 1);
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

/* core.upgrade(conn [, protocol [, headers [, compress]]]) -> true | nil, message, code.
 * The subprotocol and the extensions answered in the 101 are the ones the connection runs
 * with, so extra headers may not set them (ws_response_accept_check); compress = false
 * declines permessage-deflate for this connection even when the server offers it. A
 * protocol the client did not offer: nil, message, "protocol", and nothing is sent. */
static int l_upgrade(lua_State *L) {
  wsl_conn *c = wsl_checkconn(L, 1);
  const char *protocol = luaL_optstring(L, 2, NULL);
  ws_header extra[MAX_EXTRA_HEADERS];
  size_t nextra = check_headers(L, 3, extra, MAX_EXTRA_HEADERS);
  int compress = lua_isnoneornil(L, 4) || lua_toboolean(L, 4);
  if (c->s.phase != WS_PH_HEAD_READY) return wsl_conn_push_end(L, c);
  const ws_request *req = ws_stream_request(&c->s);
  if (!req || !ws_request_is_upgrade(req) || req->status != 0)
    return luaL_error(L, "ws: the request is not a valid upgrade");
  /* RFC 6455 4.2.2: the server answers with one of the subprotocols the client offered (an
   * offered one is a token). Nothing is sent: the caller answers instead (server.lua: 500). */
  if (protocol && ws_request_choose_protocol(req, &protocol, 1) < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "subprotocol \"%s\" was not offered by the client", protocol);
    lua_pushliteral(L, "protocol");
    return 3;
  }
  ws_arg_error e;
  if (ws_response_accept_check(protocol, NULL, extra, nextra, &e))
    return luaL_argerror(L, e.arg == WS_ARG_HEADER ? 3 : 2, kit_arg_message(L, &e));
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
    return wsl_conn_push_end(L, c);
  if (x->log_level) {
    char who[96];
    wsl_log(x, 1, "%s: \"%s\" 101, subprotocol %s, extensions %s", wsl_log_who(c, who, sizeof who), line,
            protocol ? protocol : "(none)", extensions ? extensions : "(none)");
  }
  if (protocol || extensions) {
    wsl_conn_fields(L, 1, 1);
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
  wsl_conn *c = wsl_checkconn(L, 1);
  lua_Integer status = luaL_checkinteger(L, 2);
  ws_header extra[MAX_EXTRA_HEADERS];
  size_t nextra = check_headers(L, 3, extra, MAX_EXTRA_HEADERS);
  size_t bl = 0;
  const char *body = luaL_optlstring(L, 4, NULL, &bl);
  if (!ws_status_valid(status)) return luaL_argerror(L, 2, "HTTP status expected");
  if (c->s.phase != WS_PH_HEAD_READY) return wsl_conn_push_end(L, c);
  int head_only = 0;
  const ws_request *req = ws_stream_request(&c->s);
  if (req) {
    note_response(wsl_ctx_get(L), c, req, (int)status, body, bl);
    head_only = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
  }
  if (ws_stream_respond(&c->s, (int)status, extra, nextra, body, bl, head_only) < 0) return wsl_conn_push_end(L, c);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.body(conn, length) -> the request body's `length` bytes | false (still coming: wait
 * "r") | nil, message, code. For plain HTTP requests (the http hook), before the answer. */
static int l_body(lua_State *L) {
  wsl_conn *c = wsl_checkconn(L, 1);
  lua_Integer want = luaL_checkinteger(L, 2);
  const uint8_t *p = NULL;
  if (want < 0 || (uint64_t)want > UINT32_MAX) return luaL_argerror(L, 2, "invalid length");
  int r = ws_stream_body(&c->s, (size_t)want, &p);
  if (r < 0) return wsl_conn_push_end(L, c);
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
  wsl_conn *c = wsl_checkconn(L, 1);
  lua_Number t = luaL_checknumber(L, 2);
  if (ws_stream_defer(&c->s, (double)t) < 0) return wsl_conn_push_end(L, c);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.deferred(conn) -> whether core.defer holds the request for a later answer. */
static int l_deferred(lua_State *L) {
  wsl_conn *c = wsl_checkconn(L, 1);
  lua_pushboolean(L, c->s.deferred && c->s.phase == WS_PH_HEAD_READY);
  return 1;
}

void wsl_handshake_open_lib(lua_State *L, int mod) {
  static const luaL_Reg funcs[] = {
    { "head", l_head }, { "request", wsl_conn_request }, { "choose_protocol", l_choose_protocol },
    { "upgrade", l_upgrade }, { "respond", l_respond }, { "body", l_body }, { "defer", l_defer },
    { "deferred", l_deferred }, { NULL, NULL }
  };
  lua_pushvalue(L, mod);
  lua_getfield(L, LUA_REGISTRYINDEX, WSL_CTX_KEY);
  luaL_setfuncs(L, funcs, 1);
  lua_pop(L, 1);
}
