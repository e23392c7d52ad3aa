/* The opening handshake of `ws.codec` (docs/codec.md): parse_request, choose_protocol,
 * accept_response, response, accept_key, client_request, parse_response. Thin: every
 * protocol decision is ws_handshake.c's; this file only moves values between Lua and C. */
#include <string.h>

#include "lua_codec.h"
#include "lua_kit.h"
#include "ws_conn.h"
#include "ws_handshake.h"

#define BUF_MT "ws.codec.handshake_buf"
#define MAX_PROTOCOLS 64

/* Output is built in a ws_buf held by a userdata, so a Lua error (out of memory while
 * pushing the result) never leaks it: the collector frees what was not freed here. */
static int buf_gc(lua_State *L) {
  ws_buf_free((ws_buf *)lua_touserdata(L, 1));
  return 0;
}

static ws_buf *new_buf(lua_State *L) {
  ws_buf *b = (ws_buf *)lua_newuserdata(L, sizeof *b);
  ws_buf_init(b);
  luaL_setmetatable(L, BUF_MT);
  return b;
}

/* ---- reading arguments ---- */

typedef struct header_set {
  ws_header h[WS_MAX_HEADERS];
  size_t n;
} header_set;

static int header_before(const ws_header *a, const ws_header *b) {
  size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
  int c = memcmp(a->name, b->name, n);
  return c < 0 || (c == 0 && a->name_len < b->name_len);
}

/* opts.headers = { Name = value }: checked, then sorted by name so the bytes we write do not
 * depend on the table's traversal order. Number values are converted; the converted strings
 * are kept alive in a table left on the stack. */
static void get_headers(lua_State *L, int opts, const char *fn, header_set *out) {
  ws_header h[WS_MAX_HEADERS];
  kit_where w = { fn, 0 };
  out->n = 0;
  if (lua_isnoneornil(L, opts)) return;
  lua_getfield(L, opts, "headers");
  size_t n = kit_headers(L, -1, h, WS_MAX_HEADERS, w); /* the list and its anchor stay */
  for (size_t k = 0; k < n; k++) {
    size_t i = out->n++;
    for (; i > 0 && header_before(&h[k], &out->h[i - 1]); i--) out->h[i] = out->h[i - 1];
    out->h[i] = h[k];
  }
}

/* An optional string field of the options table at `opts`; the string stays referenced by it. */
static const char *opt_string(lua_State *L, int opts, const char *field, const char *fn) {
  const char *s = NULL;
  if (lua_isnoneornil(L, opts)) return NULL;
  lua_getfield(L, opts, field);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s: %s must be a string", fn, field);
    size_t len;
    s = lua_tolstring(L, -1, &len);
    if (strlen(s) != len) luaL_error(L, "%s: %s contains a zero byte", fn, field);
  }
  lua_pop(L, 1);
  return s;
}

/* A list of protocol names (opts[field]), each a token. */
static size_t get_protocols(lua_State *L, int opts, const char *field, const char *fn,
                            const char *out[MAX_PROTOCOLS]) {
  kit_where w = { fn, 0 };
  if (lua_isnoneornil(L, opts)) return 0;
  lua_getfield(L, opts, field);
  size_t n = kit_protocols(L, -1, out, MAX_PROTOCOLS, w);
  lua_pop(L, 1); /* the list stays referenced by opts */
  return n;
}

/* ---- building result tables ---- */

/* t.headers (lower-case name -> values joined with ", ") and t.header_list, for the table on
 * top of the stack. */
static void set_headers(lua_State *L, const ws_header *hs, size_t n) {
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_createtable(L, 2, 0);
    lua_pushlstring(L, hs[i].name, hs[i].name_len);
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, hs[i].value, hs[i].value_len);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -2, "header_list");
  kit_push_headers(L, hs, n);
  lua_setfield(L, -2, "headers");
}

static void set_lstring(lua_State *L, const char *field, const char *s, size_t n) {
  if (!s) return;
  lua_pushlstring(L, s, n);
  lua_setfield(L, -2, field);
}

/* The values of every header `name`, joined with ", ", or nothing pushed (returns 0). */
static int push_joined(lua_State *L, const ws_header *hs, size_t n, const char *name) {
  int found = 0;
  size_t nlen = strlen(name);
  for (size_t i = 0; i < n; i++) {
    size_t j = 0;
    if (hs[i].name_len != nlen) continue;
    while (j < nlen && (hs[i].name[j] | 0x20) == (name[j] | 0x20)) j++;
    if (j < nlen) continue;
    if (found) lua_pushliteral(L, ", ");
    lua_pushlstring(L, hs[i].value, hs[i].value_len);
    if (found) lua_concat(L, 3);
    found = 1;
  }
  return found;
}

/* ---- server side ---- */

/* An upgrade request's fields in the table on top: status and error when
 * ws_request_check_upgrade refuses it, key, origin, the offered protocols and extensions. */
static void set_upgrade_fields(lua_State *L, ws_request *r) {
  if (ws_request_check_upgrade(r) != 0) {
    lua_pushinteger(L, r->status);
    lua_setfield(L, -2, "status");
    lua_pushstring(L, r->error);
    lua_setfield(L, -2, "error");
  }
  set_lstring(L, "key", r->key, r->key_len);
  set_lstring(L, "origin", r->origin, r->origin_len);
  lua_newtable(L);
  int k = 0;
  for (const ws_header *h = ws_request_header(r, "Sec-WebSocket-Protocol", NULL); h;
       h = ws_request_header(r, "Sec-WebSocket-Protocol", h)) {
    size_t pos = 0, tlen;
    const char *t;
    while (ws_header_next_token(h->value, h->value_len, &pos, &t, &tlen)) {
      lua_pushlstring(L, t, tlen);
      lua_rawseti(L, -2, ++k);
    }
  }
  lua_setfield(L, -2, "protocols");
  if (push_joined(L, r->headers, r->num_headers, "Sec-WebSocket-Extensions"))
    lua_setfield(L, -2, "extensions");
}

/* parse_request(data [, max_header_bytes]) -> req, consumed | nil, "again" | nil, reason, status */
static int codec_parse_request(lua_State *L) {
  size_t len;
  const char *data = luaL_checklstring(L, 1, &len);
  lua_Integer max = luaL_optinteger(L, 2, WS_DEFAULT_MAX_HEADER_BYTES);
  luaL_argcheck(L, max > 0, 2, "must be positive");
  ws_request r;
  memset(&r, 0, sizeof r);
  /* a limit beyond size_t (32-bit hosts) must not wrap to a small one */
  size_t limit = (uint64_t)max > (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)max;
  int n = ws_request_parse(&r, data, len, limit);
  if (n == WS_AGAIN) return kit_fail(L, "again", NULL);
  if (n == WS_ERROR) {
    lua_pushnil(L);
    lua_pushstring(L, r.error);
    lua_pushinteger(L, r.status);
    return 3;
  }
  lua_newtable(L);
  set_lstring(L, "method", r.method, r.method_len);
  set_lstring(L, "target", r.target, r.target_len);
  set_lstring(L, "path", r.path, r.path_len);
  set_lstring(L, "query", r.query, r.query_len);
  lua_pushfstring(L, "1.%d", r.minor_version);
  lua_setfield(L, -2, "version");
  set_headers(L, r.headers, r.num_headers);
  /* A client that asks for websocket gets told what is wrong with its request, even if it
   * forgot Connection: Upgrade (ws_request_check_upgrade says so). */
  int upgrade = ws_request_is_upgrade(&r);
  lua_pushboolean(L, upgrade);
  lua_setfield(L, -2, "upgrade");
  if (upgrade) set_upgrade_fields(L, &r);
  lua_pushinteger(L, n);
  return 2;
}

/* Is `s` one of req.protocols? The core compares (ws_protocol_find); the names stay anchored
 * by the list while it does. */
static int offered(lua_State *L, int req, const char *s, size_t slen) {
  const char *list[MAX_PROTOCOLS];
  size_t n = 0;
  lua_getfield(L, req, "protocols");
  if (lua_istable(L, -1)) {
    size_t len = lua_rawlen(L, -1);
    for (size_t i = 1; i <= len && n < MAX_PROTOCOLS; i++) {
      lua_rawgeti(L, -1, (int)i);
      if (lua_type(L, -1) == LUA_TSTRING) list[n++] = lua_tostring(L, -1);
      lua_pop(L, 1);
    }
  }
  int found = ws_protocol_find(list, n, s, slen) >= 0;
  lua_pop(L, 1);
  return found;
}

/* choose_protocol(req, server_list) -> the first of the server's list the client offered, or nil */
static int codec_choose_protocol(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  size_t n = lua_rawlen(L, 2);
  for (size_t i = 1; i <= n; i++) {
    size_t len;
    lua_rawgeti(L, 2, (int)i);
    if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "choose_protocol: protocols must be strings");
    const char *p = lua_tolstring(L, -1, &len);
    if (offered(L, 1, p, len)) return 1;
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  return 1;
}

/* accept_response(req [, { protocol =, extensions =, headers = }]) -> the 101 response */
static int codec_accept_response(lua_State *L) {
  static const char fn[] = "accept_response";
  header_set extra;
  size_t key_len;
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_getfield(L, 1, "error");
  if (!lua_isnil(L, -1))
    return luaL_error(L, "%s: the request failed its upgrade check (%s)", fn,
                      lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
  lua_getfield(L, 1, "key");
  if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "%s: the request has no key", fn);
  const char *key = lua_tolstring(L, -1, &key_len);
  const char *protocol = opt_string(L, 2, "protocol", fn);
  const char *extensions = opt_string(L, 2, "extensions", fn);
  get_headers(L, 2, fn, &extra);
  ws_arg_error e;
  if (ws_response_accept_check(protocol, extensions, extra.h, extra.n, &e))
    return luaL_error(L, "%s: %s", fn, kit_arg_message(L, &e));
  if (protocol && !offered(L, 1, protocol, strlen(protocol)))
    return luaL_error(L, "%s: protocol '%s' was not offered by the client", fn, protocol);
  ws_buf *b = new_buf(L);
  if (ws_response_accept(b, key, key_len, protocol, extensions, extra.h, extra.n) < 0)
    return luaL_error(L, "%s: out of memory", fn);
  kit_push_buf(L, b);
  return 1;
}

/* An entry point for LuaJIT's FFI, for ws.resty's accept when none of its options changes
 * the answer (no subprotocols, origins, compression or extra headers): parses the request
 * head[0..len) as parse_request(head, len + 1) does and, when it is an upgrade request that
 * ws_request_check_upgrade accepts, queues on the codec conn `conn` (a conn userdata's
 * payload, as the FFI passes it) the 101 response accept_response would give it with no
 * protocol and no extensions: 0. Otherwise nothing is queued and it returns -1; the caller
 * then takes parse_request's path, which says why. No Lua value is made on the way. */
WS_EXPORT int ws_codec_accept_plain(void *conn, const char *head, size_t len);

int ws_codec_accept_plain(void *conn, const char *head, size_t len) {
  ws_request r;
  ws_request_init(&r); /* not the whole headers array: the parser fills what it uses */
  if (ws_request_parse(&r, head, len, len + 1) < 0) return -1;
  if (!ws_request_is_upgrade(&r) || ws_request_check_upgrade(&r) != 0) return -1;
  if (ws_response_accept(ws_conn_output((ws_conn *)conn), r.key, r.key_len, NULL, NULL, NULL, 0) != 0)
    return -1;
  return 0;
}

/* response(status [, headers [, body]]) -> a complete plain HTTP response */
static int codec_response(lua_State *L) {
  static const char fn[] = "response";
  header_set extra;
  size_t body_len = 0;
  lua_Integer status = luaL_checkinteger(L, 1);
  luaL_argcheck(L, ws_status_valid(status), 1, "status must be 100..999");
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  const char *body = luaL_optlstring(L, 3, NULL, &body_len);
  lua_settop(L, 3);
  /* get_headers reads opts.headers: give it a table whose `headers` is argument 2. */
  lua_createtable(L, 0, 1);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "headers");
  get_headers(L, 4, fn, &extra);
  ws_buf *b = new_buf(L);
  if (ws_response_status(b, (int)status, extra.h, extra.n, body, body_len) < 0)
    return luaL_error(L, "%s: out of memory", fn);
  kit_push_buf(L, b);
  return 1;
}

/* accept_key(key) -> the Sec-WebSocket-Accept value */
static int codec_accept_key(lua_State *L) {
  size_t len;
  const char *key = luaL_checklstring(L, 1, &len);
  char out[WS_ACCEPT_LEN + 1];
  ws_accept_key(key, len, out);
  if (!out[0]) return luaL_error(L, "accept_key: out of memory");
  lua_pushstring(L, out);
  return 1;
}

/* ---- client side ---- */

/* client_request{ host =, path =, protocols =, extensions =, origin =, headers =, key = }
 * -> request, key. `key` is for reproducible requests (tests); by default it is random. */
static int codec_client_request(lua_State *L) {
  static const char fn[] = "client_request";
  const char *protocols[MAX_PROTOCOLS];
  header_set extra;
  char keybuf[WS_KEY_LEN + 1];
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  const char *host = opt_string(L, 1, "host", fn);
  if (!host) return luaL_error(L, "%s: host is required", fn);
  const char *path = opt_string(L, 1, "path", fn);
  const char *origin = opt_string(L, 1, "origin", fn);
  const char *extensions = opt_string(L, 1, "extensions", fn);
  const char *key = opt_string(L, 1, "key", fn);
  if (!key) {
    if (ws_client_key(keybuf) < 0) return luaL_error(L, "%s: the random generator failed", fn);
    key = keybuf;
  }
  size_t nprotocols = get_protocols(L, 1, "protocols", fn, protocols);
  get_headers(L, 1, fn, &extra);
  ws_arg_error e;
  if (ws_client_request_check(host, path, key, protocols, nprotocols, extensions, origin, extra.h, extra.n, &e))
    return luaL_error(L, "%s: %s", fn, kit_arg_message(L, &e));
  ws_buf *b = new_buf(L);
  if (ws_client_request(b, host, path, key, protocols, nprotocols, extensions, origin, extra.h,
                        extra.n) < 0)
    return luaL_error(L, "%s: out of memory", fn);
  kit_push_buf(L, b);
  lua_pushstring(L, key);
  return 2;
}

/* parse_response(data, key [, { protocols =, extensions =, max_header_bytes = }])
 * -> resp, consumed | nil, "again" | nil, reason [, status] */
static int codec_parse_response(lua_State *L) {
  static const char fn[] = "parse_response";
  const char *protocols[MAX_PROTOCOLS];
  size_t len;
  const char *data = luaL_checklstring(L, 1, &len);
  const char *key = luaL_checkstring(L, 2);
  lua_Integer max = WS_DEFAULT_MAX_HEADER_BYTES;
  int extensions = 0;
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  size_t nprotocols = get_protocols(L, 3, "protocols", fn, protocols);
  if (!lua_isnil(L, 3)) {
    lua_getfield(L, 3, "extensions");
    extensions = lua_toboolean(L, -1);
    lua_getfield(L, 3, "max_header_bytes");
    if (!lua_isnil(L, -1)) {
      max = lua_tointeger(L, -1);
      if (max <= 0) return luaL_error(L, "%s: max_header_bytes must be positive", fn);
    }
    lua_pop(L, 2);
  }
  ws_response r;
  memset(&r, 0, sizeof r);
  size_t limit = (uint64_t)max > (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)max;
  int n = ws_response_parse(&r, data, len, limit);
  if (n == WS_AGAIN) return kit_fail(L, "again", NULL);
  if (n == WS_ERROR) return kit_fail(L, r.error, NULL);
  if (ws_response_check_upgrade(&r, key, protocols, nprotocols, extensions) < 0) {
    lua_pushnil(L);
    if (r.status != 101) {
      lua_pushfstring(L, "unexpected status %d", r.status);
      lua_pushinteger(L, r.status);
      return 3;
    }
    lua_pushstring(L, r.error);
    return 2;
  }
  lua_newtable(L);
  lua_pushinteger(L, r.status);
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, r.reason, r.reason_len);
  lua_setfield(L, -2, "reason");
  lua_pushfstring(L, "1.%d", r.minor_version);
  lua_setfield(L, -2, "version");
  set_headers(L, r.headers, r.num_headers);
  set_lstring(L, "protocol", r.protocol, r.protocol_len);
  set_lstring(L, "extensions", r.extensions, r.extensions_len);
  lua_pushinteger(L, n);
  return 2;
}

void ws_codec_open_handshake(lua_State *L) {
  static const luaL_Reg fns[] = {
    { "parse_request", codec_parse_request },     { "choose_protocol", codec_choose_protocol },
    { "accept_response", codec_accept_response }, { "response", codec_response },
    { "accept_key", codec_accept_key },           { "client_request", codec_client_request },
    { "parse_response", codec_parse_response },   { NULL, NULL }
  };
  luaL_newmetatable(L, BUF_MT);
  lua_pushcfunction(L, buf_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_setfuncs(L, fns, 0);
}
