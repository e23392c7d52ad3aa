/* Client connections as Lua userdata: the same ws.core.conn type as a server's connections
 * (so every method works on both), with the connect state after it. core.connect starts
 * connecting and returns at once; core.client_head checks the server's answer once it is
 * there. lua/ws/client.lua waits between the two. */
#include <errno.h>
#include <string.h>

#include "lua_core.h"
#include "lua_kit.h"
#include "runtime/ws_connect.h"
#include "runtime/ws_tls.h"

#define MAX_EXTRA_HEADERS 64
#define MAX_PROTOCOLS 32

typedef struct wsl_client {
  wsl_conn c;               /* first: what the connection methods see */
  ws_client cl;
  char key[WS_KEY_LEN + 1]; /* our Sec-WebSocket-Key, to check the Accept */
  ws_deflate_config deflate; /* the `compression` option */
  char offer[WS_DEFLATE_RESPONSE_MAX]; /* our Sec-WebSocket-Extensions, "" when none */
} wsl_client;

#define optstr(L, t, k) kit_optstr(L, t, k, "ws.connect:")

/* nil, message, code for a connect that failed: "dns", "tls", "timeout", an errno name or
 * "closed". */
static int push_failure(lua_State *L, const ws_stream *s) {
  const char *msg = s->error ? s->error : "connection closed";
  const char *code = "closed";
  if (s->err == ETIMEDOUT || strstr(msg, "timed out")) code = "timeout";
  else if (strncmp(msg, "dns: ", 5) == 0) code = "dns";
  else if (strncmp(msg, "tls: ", 5) == 0) code = "tls";
  else if (strncmp(msg, "invalid handshake response", 26) == 0) code = "handshake";
  else if (s->err) code = kit_errno_code(s->err, "EIO"); /* ETIMEDOUT was "timeout" above */
  return kit_fail(L, msg, code);
}

/* A client connection's userdata, pushed: a connection (WSL_CONN_MT) not started yet, with
 * our permessage-deflate offer when compression is on. */
static wsl_client *client_new(lua_State *L, wsl_ctx *x, const ws_deflate_config *deflate, int deflate_mode) {
  wsl_client *u = (wsl_client *)wsl_conn_new(L, x, sizeof(wsl_client));
  ws_client_init(&u->cl);
  u->deflate = *deflate;
  u->offer[0] = '\0';
  if (deflate_mode != WS_DEFLATE_OFF) ws_deflate_offer(&u->deflate, u->offer, sizeof u->offer);
  return u;
}

/* The limits and timeouts of ws.connect's options (table at 3) into u's configuration and
 * its protocol state. */
static void client_options(lua_State *L, wsl_client *u, double timeout) {
  ws_server_cfg *cfg = &u->cl.cfg;
  cfg->open_timeout = timeout;
  wsl_stream_options(L, 3, cfg, "ws.connect", 1);
  ws_conn_options o;
  ws_conn_options_default(&o, WS_ROLE_CLIENT);
  o.max_message = cfg->max_message; /* max_frame and max_fragments follow it */
  o.defer_fail = 1; /* messages before a protocol error are answered first (ws_stream.c) */
  ws_conn_free(&u->c.s.ws);
  ws_conn_init(&u->c.s.ws, &o);
}

/* ws_client_start failed: nil, message, code and the failed connection (the event style
 * reports through it). */
static int start_failed(lua_State *L, wsl_conn *c, int ud) {
  if (c->s.phase == WS_PH_NEW) { /* nothing started: no close event will release it */
    luaL_unref(L, LUA_REGISTRYINDEX, c->self_ref);
    c->self_ref = LUA_NOREF;
    ws_stream_abort(&c->s, c->s.error); /* "closed", as any connection that failed */
  }
  push_failure(L, &c->s);
  lua_pushvalue(L, ud);
  return 4;
}

/* core.connect(host, port, opts) -> conn | nil, message, code. opts: tls (a client context),
 * server_name, host_header, path, origin, protocols, headers, timeout, max_message,
 * ping_interval, ping_timeout, close_timeout, send_high_water, send_low_water, max_queue. */
static int l_connect(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  if (port <= 0 || port > 65535) return luaL_argerror(L, 2, "port out of range");
  ws_tls_ctx *tls = NULL;
  if (lua_getfield(L, 3, "tls") != LUA_TNIL) {
    tls = wsl_check_tls(L, lua_gettop(L));
    if (ws_tls_ctx_is_server(tls)) return luaL_error(L, "ws.connect: a client TLS context expected");
  }
  lua_pop(L, 1);
  const char *server_name = optstr(L, 3, "server_name");
  const char *host_header = optstr(L, 3, "host_header");
  const char *path = optstr(L, 3, "path");
  const char *origin = optstr(L, 3, "origin");
  const char *unix_path = optstr(L, 3, "unix");
  double timeout = kit_optnum(L, 3, "timeout", 10, "ws.connect:");
  const char *protocols[MAX_PROTOCOLS];
  ws_header extra[MAX_EXTRA_HEADERS];
  kit_where w = { "ws.connect", 0 };
  lua_getfield(L, 3, "protocols");
  size_t nprotocols = kit_protocols(L, -1, protocols, MAX_PROTOCOLS, w);
  lua_getfield(L, 3, "headers");
  size_t nextra = kit_headers(L, -1, extra, MAX_EXTRA_HEADERS, w); /* and their anchor */
  ws_deflate_config deflate;
  int deflate_mode = wsl_check_compression(L, 3, "ws.connect", &deflate);

  /* Every option is read (errors raise) before anything is allocated outside Lua. */
  wsl_client *u = client_new(L, x, &deflate, deflate_mode);
  int ud = lua_gettop(L);
  wsl_conn *c = &u->c;
  client_options(L, u, timeout);

  if (ws_client_key(u->key) < 0) return luaL_error(L, "ws.connect: no random bytes for the key");
  const char *req_host = host_header ? host_header : host, *offer = u->offer[0] ? u->offer : NULL;
  ws_arg_error e;
  if (ws_client_request_check(req_host, path, u->key, protocols, nprotocols, offer, origin, extra, nextra, &e))
    return luaL_error(L, "ws.connect: %s", kit_arg_message(L, &e));
  if (ws_client_request(ws_conn_output(&c->s.ws), req_host, path, u->key, protocols, nprotocols, offer, origin,
                        extra, nextra) < 0)
    return luaL_error(L, "ws.connect: out of memory");

  wsl_conn_start(L, x, c, ud);
  if (!x->running) ws_loop_touch(x->loop); /* the deadline counts from now, not from the last loop run */
  u->cl.unix_path = unix_path;
  if (ws_client_start(&u->cl, &c->s, host, (int)port, tls, server_name, timeout) < 0) return start_failed(L, c, ud);
  lua_settop(L, ud);
  return 1;
}

/* A refused handshake's response: { status =, reason =, headers =, body = } (the body as
 * sent, up to 64 KiB; lua/ws/client.lua decodes a chunked one). */
static void push_refusal(lua_State *L, const ws_stream *s, const ws_response *r) {
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, r->status);
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, r->reason ? r->reason : "", r->reason ? r->reason_len : 0);
  lua_setfield(L, -2, "reason");
  kit_push_headers(L, r->headers, r->num_headers);
  lua_setfield(L, -2, "headers");
  size_t have = r->status == 101 ? 0 : ws_buf_size(&s->hs->head) - s->hs->head_len; /* after a 101: frames */
  size_t want;
  if (ws_response_content_length(r, have, &want) == 1) have = want;
  lua_pushlstring(L, (const char *)ws_buf_begin(&s->hs->head) + s->hs->head_len, have);
  lua_setfield(L, -2, "body");
}

/* A refused handshake (another status, or a 101 that breaks RFC 6455 4.1): nil, message,
 * "handshake", status, response (push_refusal); the stream is aborted. */
static int refused(lua_State *L, wsl_client *u, const ws_response *r) {
  ws_stream *s = &u->c.s;
  char who[96];
  WSL_LOG(wsl_ctx_get(L), 1, "%s: handshake refused: %d %s", wsl_log_who(&u->c, who, sizeof who), r->status, r->error ? r->error : "");
  lua_pushnil(L);
  if (r->status != 101) {
    char reason[64];
    size_t rl = r->reason && r->reason_len < sizeof reason ? r->reason_len : 0;
    if (rl) memcpy(reason, r->reason, rl);
    reason[rl] = 0;
    lua_pushfstring(L, "server answered %d%s%s instead of 101", r->status, rl ? " " : "", reason);
  } else {
    lua_pushfstring(L, "bad handshake response: %s", r->error ? r->error : "invalid");
  }
  lua_pushliteral(L, "handshake");
  lua_pushinteger(L, r->status);
  push_refusal(L, s, r);
  ws_stream_abort(s, "handshake refused");
  return 5;
}

static int accepted(lua_State *L, wsl_client *u, const ws_response *r, const ws_deflate_params *dparams);

/* core.client_head(conn, protocols) -> true (open) | false (not yet) |
 * nil, message, code [, status, response] (a refusal: the response, push_refusal) */
static int l_client_head(lua_State *L) {
  wsl_client *u = luaL_checkudata(L, 1, WSL_CONN_MT);
  if (lua_rawlen(L, 1) != sizeof(wsl_client)) return luaL_argerror(L, 1, "client connection expected");
  ws_stream *s = &u->c.s;
  const char *protocols[MAX_PROTOCOLS];
  kit_where w = { NULL, 2 };
  size_t nprotocols = kit_protocols(L, 2, protocols, MAX_PROTOCOLS, w);
  if (s->phase == WS_PH_HEAD) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (s->phase != WS_PH_HEAD_READY) {
    if (s->phase == WS_PH_OPEN || s->phase == WS_PH_CLOSING) {
      lua_pushboolean(L, 1);
      return 1;
    }
    return push_failure(L, s);
  }
  ws_response r;
  memset(&r, 0, sizeof r);
  if (ws_response_parse(&r, (const char *)ws_buf_begin(&s->hs->head), s->hs->head_len, s->hs->head_len + 1) < 0)
    return luaL_error(L, "ws: response head lost");
  ws_deflate_params dparams;
  int deflated = 0;
  if (ws_response_check_upgrade(&r, u->key, protocols, nprotocols, u->offer[0] != '\0') == 0 && r.extensions) {
    /* permessage-deflate: the answer must fit our offer (RFC 7692 7.1). */
    deflated = ws_deflate_accept_offer(u->offer, strlen(u->offer), r.extensions, r.extensions_len,
                                       &u->deflate, &dparams, &r.error);
    if (deflated < 0 && !r.error) r.error = "invalid Sec-WebSocket-Extensions";
  }
  if (deflated < 0 || r.error) return refused(L, u, &r);
  return accepted(L, u, &r, deflated > 0 ? &dparams : NULL);
}

/* The 101 passed: conn.protocol, conn.response and conn.extensions in the fields table (user
 * value 2 of the connection at 1), the compressor when dparams is set, and the stream opens. */
static int accepted(lua_State *L, wsl_client *u, const ws_response *r, const ws_deflate_params *dparams) {
  ws_stream *s = &u->c.s;
  int deflated = dparams != NULL;
  if (lua_getiuservalue(L, 1, 2) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 2);
  }
  int fields = lua_gettop(L);
  if (r->protocol) {
    lua_pushlstring(L, r->protocol, r->protocol_len);
    lua_setfield(L, fields, "protocol");
  }
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, r->status);
  lua_setfield(L, -2, "status");
  kit_push_headers(L, r->headers, r->num_headers);
  lua_setfield(L, -2, "headers");
  lua_setfield(L, fields, "response");
  if (deflated > 0) {
    ws_deflate *d = ws_deflate_new(dparams, &u->deflate, WS_ROLE_CLIENT);
    if (!d) {
      ws_stream_abort(s, "out of memory");
      return push_failure(L, s);
    }
    ws_conn_set_deflate(&s->ws, d);
    lua_pushlstring(L, r->extensions, r->extensions_len);
    lua_setfield(L, fields, "extensions");
  }
  char who[96];
  WSL_LOG(wsl_ctx_get(L), 1, "%s: 101, subprotocol %.*s, extensions %.*s", wsl_log_who(&u->c, who, sizeof who),
          r->protocol ? (int)r->protocol_len : 6, r->protocol ? r->protocol : "(none)",
          deflated > 0 ? (int)r->extensions_len : 6, deflated > 0 ? r->extensions : "(none)");
  if (ws_stream_open_client(s) < 0) return push_failure(L, s);
  lua_pushboolean(L, 1);
  return 1;
}

void wsl_client_open_lib(lua_State *L, int mod) {
  static const luaL_Reg funcs[] = {
    { "connect", l_connect }, { "client_head", l_client_head }, { NULL, NULL }
  };
  lua_pushvalue(L, mod);
  lua_getfield(L, LUA_REGISTRYINDEX, "ws.core.ctx");
  luaL_setfuncs(L, funcs, 1);
  lua_pop(L, 1);
}
