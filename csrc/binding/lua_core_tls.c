/* TLS contexts as Lua userdata (ws.core.tls): built from an options table, referenced by the
 * servers and connections that use them, so a server can swap its context (reload_tls) while
 * connections made before keep theirs. Also: what a connection negotiated (conn:tls_info()),
 * and core.report for the Lua side to log through the loop's error reporter. */
#include <string.h>

#include "lua_core.h"
#include "lua_kit.h"
#include "runtime/ws_tls.h"

#define MAX_SNI 64

typedef struct wsl_tls {
  ws_tls_ctx *ctx;
} wsl_tls;

ws_tls_ctx *wsl_check_tls(lua_State *L, int idx) {
  wsl_tls *t = luaL_checkudata(L, idx, WSL_TLS_MT);
  if (!t->ctx) luaL_argerror(L, idx, "TLS context released");
  return t->ctx;
}

static const char *optfield(lua_State *L, int t, const char *k) {
  const char *v = NULL;
  int ty = lua_getfield(L, t, k);
  if (ty == LUA_TSTRING) v = lua_tostring(L, -1); /* anchored by the options table */
  else if (ty != LUA_TNIL) luaL_error(L, "tls option %s must be a string", k);
  lua_pop(L, 1);
  return v;
}

/* core.tls_context({ server = bool, cert =, key =, ca =, verify = bool,
 *                    sni = { [name] = { cert =, key = } } }) -> ctx | nil, message, "tls" */
static int l_tls_context(lua_State *L) {
  ws_tls_options o;
  ws_tls_name names[MAX_SNI];
  char err[WS_TLS_ERR_MAX];
  luaL_checktype(L, 1, LUA_TTABLE);
  memset(&o, 0, sizeof o);
  lua_getfield(L, 1, "server");
  o.server = lua_toboolean(L, -1);
  lua_pop(L, 1);
  o.cert = optfield(L, 1, "cert");
  o.key = optfield(L, 1, "key");
  o.ca = optfield(L, 1, "ca");
  lua_getfield(L, 1, "verify");
  o.verify = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "sni") == LUA_TTABLE) {
    int sni = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, sni)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TTABLE)
        return luaL_error(L, "tls.sni: { [name] = { cert = ..., key = ... } } expected");
      if (o.nnames == MAX_SNI) return luaL_error(L, "tls.sni: more than %d names", MAX_SNI);
      ws_tls_name *n = &names[o.nnames++];
      n->name = lua_tostring(L, -2);
      n->cert = optfield(L, lua_gettop(L), "cert");
      n->key = optfield(L, lua_gettop(L), "key");
      if (!n->cert || !n->key) return luaL_error(L, "tls.sni[%s]: cert and key expected", n->name);
      lua_pop(L, 1);
    }
    o.names = names;
  } else if (!lua_isnil(L, -1)) {
    return luaL_error(L, "tls.sni must be a table");
  }
  /* The userdata exists before the context, so a Lua error never strands one. */
  wsl_tls *t = lua_newuserdatauv(L, sizeof *t, 0);
  t->ctx = NULL;
  luaL_setmetatable(L, WSL_TLS_MT);
  t->ctx = ws_tls_ctx_new(&o, err);
  if (!t->ctx) return kit_fail(L, err, "tls");
  return 1;
}

/* core.server_set_tls(server, ctx|nil): the context for connections accepted from now on. */
static int l_server_set_tls(lua_State *L) {
  wsl_server *sv = luaL_checkudata(L, 1, WSL_SERVER_MT);
  ws_tls_ctx *c = lua_isnoneornil(L, 2) ? NULL : wsl_check_tls(L, 2);
  if (c && !ws_tls_ctx_is_server(c)) return luaL_argerror(L, 2, "a server context expected");
  if (sv->l.fd < 0) return luaL_error(L, "ws: the server is closed");
  if (c) ws_tls_ctx_ref(c);
  ws_tls_ctx_unref(sv->l.tls);
  sv->l.tls = c;
  return 0;
}

/* core.tls_info(conn) -> { version =, cipher =, alpn = } | nil */
static int l_tls_info(lua_State *L) {
  wsl_conn *c = luaL_checkudata(L, 1, WSL_CONN_MT);
  ws_tls_info info;
  if (!ws_tls_describe(&c->s, &info)) return 0;
  lua_createtable(L, 0, 3);
  lua_pushstring(L, info.version);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, info.cipher);
  lua_setfield(L, -2, "cipher");
  if (info.alpn) {
    lua_pushlstring(L, (const char *)info.alpn, info.alpn_len);
    lua_setfield(L, -2, "alpn");
  }
  return 1;
}

/* core.report(where, message): through ws.set_error_handler's function, or stderr. */
static int l_report(lua_State *L) {
  wsl_report(wsl_ctx_get(L), luaL_checkstring(L, 1), luaL_checkstring(L, 2));
  return 0;
}

static int tls_gc(lua_State *L) {
  wsl_tls *t = lua_touserdata(L, 1);
  ws_tls_ctx_unref(t->ctx);
  t->ctx = NULL;
  return 0;
}

void wsl_tls_open_lib(lua_State *L, int mod) {
  static const luaL_Reg funcs[] = {
    { "tls_context", l_tls_context }, { "server_set_tls", l_server_set_tls },
    { "tls_info", l_tls_info }, { "report", l_report }, { NULL, NULL }
  };
  lua_pushvalue(L, mod);
  lua_getfield(L, LUA_REGISTRYINDEX, "ws.core.ctx");
  luaL_setfuncs(L, funcs, 1);
  lua_pop(L, 1);
  if (luaL_newmetatable(L, WSL_TLS_MT)) {
    lua_pushcfunction(L, tls_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, "ws.tls");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
}
