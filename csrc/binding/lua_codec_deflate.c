/* The permessage-deflate part of `ws.codec` (RFC 7692): negotiation on both sides, a
 * stand-alone compressor/decompressor object for hosts and tests, and c:set_deflate, which
 * attaches the negotiated parameters to a codec connection. Every rule lives in
 * ws_deflate.c; this file only moves values between Lua and C.
 *
 *   codec.deflate_defaults()                  -> config table
 *   codec.deflate_negotiate(offers, config)   -> response, params | false [, why] | nil, err, 400
 *   codec.deflate_offer(config)               -> offer string
 *   codec.deflate_accept(response, config [, offer]) -> params | false | nil, err
 *   codec.deflater(params, config, role)      -> d; d:compress(msg), d:inflate(data, fin, max),
 *                                                d:memory(), d:close()
 *   conn:set_deflate(params, config)          -> true;  conn:deflate_memory() -> bytes
 *
 * config: { no_context_takeover =, window_bits = 8..15, mem_level = 1..9, level = 0..9, threshold = }
 *   (mode = "shared" sets no_context_takeover, "dedicated" clears it).
 * params: { server_no_context_takeover =, client_no_context_takeover =,
 *           server_max_window_bits =, client_max_window_bits = } */
#include <string.h>

#include "lua_codec.h"
#include "lua_kit.h"
#include "ws_conn.h"
#include "ws_deflate.h"

#define DEFLATER_MT "ws.codec.deflater"

/* ---- tables <-> structs (these may raise: nothing is allocated while they run) ---- */

static int field_int(lua_State *L, int idx, const char *name, int dflt, int lo, int hi) {
  double v = dflt;
  if (!kit_optwhole(L, idx, name, lo, hi, &v))
    luaL_error(L, "bad deflate option '%s' (integer %d..%d expected)", name, lo, hi);
  return (int)v;
}

static void check_config(lua_State *L, int idx, ws_deflate_config *cfg) {
  ws_deflate_config_default(cfg);
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "mode");
  if (!lua_isnil(L, -1)) {
    const char *m = lua_tostring(L, -1);
    if (m && strcmp(m, "shared") == 0) cfg->no_context_takeover = 1;
    else if (!m || strcmp(m, "dedicated") != 0)
      luaL_error(L, "bad deflate option 'mode' (\"shared\" or \"dedicated\" expected)");
  }
  lua_pop(L, 1);
  cfg->no_context_takeover = kit_optbool(L, idx, "no_context_takeover", cfg->no_context_takeover);
  cfg->window_bits = field_int(L, idx, "window_bits", cfg->window_bits, 8, 15);
  cfg->mem_level = field_int(L, idx, "mem_level", cfg->mem_level, 1, 9);
  cfg->level = field_int(L, idx, "level", cfg->level, 0, 9);
  double threshold = (double)cfg->threshold;
  if (!kit_optwhole(L, idx, "threshold", 0, 9007199254740992.0, &threshold))
    luaL_error(L, "bad deflate option 'threshold' (non-negative integer expected)");
  cfg->threshold = (size_t)threshold;
}

static void push_config(lua_State *L, const ws_deflate_config *cfg) {
  lua_createtable(L, 0, 5);
  lua_pushboolean(L, cfg->no_context_takeover);
  lua_setfield(L, -2, "no_context_takeover");
  lua_pushinteger(L, cfg->window_bits);
  lua_setfield(L, -2, "window_bits");
  lua_pushinteger(L, cfg->mem_level);
  lua_setfield(L, -2, "mem_level");
  lua_pushinteger(L, cfg->level);
  lua_setfield(L, -2, "level");
  lua_pushinteger(L, (lua_Integer)cfg->threshold);
  lua_setfield(L, -2, "threshold");
}

static void check_params(lua_State *L, int idx, ws_deflate_params *p) {
  luaL_checktype(L, idx, LUA_TTABLE);
  p->server_no_context_takeover = kit_optbool(L, idx, "server_no_context_takeover", 0);
  p->client_no_context_takeover = kit_optbool(L, idx, "client_no_context_takeover", 0);
  p->server_max_window_bits = field_int(L, idx, "server_max_window_bits", 15, 8, 15);
  p->client_max_window_bits = field_int(L, idx, "client_max_window_bits", 15, 8, 15);
}

static void push_params(lua_State *L, const ws_deflate_params *p) {
  lua_createtable(L, 0, 5);
  lua_pushboolean(L, p->server_no_context_takeover);
  lua_setfield(L, -2, "server_no_context_takeover");
  lua_pushboolean(L, p->client_no_context_takeover);
  lua_setfield(L, -2, "client_no_context_takeover");
  lua_pushinteger(L, p->server_max_window_bits);
  lua_setfield(L, -2, "server_max_window_bits");
  lua_pushinteger(L, p->client_max_window_bits);
  lua_setfield(L, -2, "client_max_window_bits");
}

static int check_role(lua_State *L, int idx) {
  static const char *const roles[] = {"server", "client", NULL};
  return luaL_checkoption(L, idx, "server", roles) == 0 ? WS_ROLE_SERVER : WS_ROLE_CLIENT;
}

/* ---- negotiation ---- */

#define MAX_OFFER_VALUES 100 /* a request has at most WS_MAX_HEADERS header lines */

/* codec.deflate_negotiate(offers, config): offers is the Sec-WebSocket-Extensions value, or
 * a list of them (one per header line), or nil. */
static int codec_deflate_negotiate(lua_State *L) {
  const char *values[MAX_OFFER_VALUES];
  size_t lens[MAX_OFFER_VALUES], n = 0;
  ws_deflate_config cfg;
  check_config(L, 2, &cfg);
  if (lua_type(L, 1) == LUA_TTABLE) {
    for (int i = 1;; i++) {
      lua_rawgeti(L, 1, i);
      if (lua_isnil(L, -1)) { lua_pop(L, 1); break; }
      if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, 1, "list of strings expected");
      if (n == MAX_OFFER_VALUES) luaL_argerror(L, 1, "too many header values");
      values[n] = lua_tolstring(L, -1, &lens[n]); /* the string stays in the table */
      n++;
      lua_pop(L, 1);
    }
  } else if (!lua_isnoneornil(L, 1)) {
    values[0] = luaL_checklstring(L, 1, &lens[0]);
    n = 1;
  }
  ws_deflate_params params;
  char resp[WS_DEFLATE_RESPONSE_MAX];
  const char *err = NULL;
  int r = ws_deflate_negotiate(values, lens, n, &cfg, &params, resp, sizeof resp, &err);
  if (r < 0) {
    lua_pushnil(L);
    lua_pushstring(L, err ? err : "invalid Sec-WebSocket-Extensions");
    lua_pushinteger(L, 400);
    return 3;
  }
  if (r == 0) {
    lua_pushboolean(L, 0);
    if (!err) return 1;
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushstring(L, resp);
  push_params(L, &params);
  return 2;
}

static int codec_deflate_offer(lua_State *L) {
  ws_deflate_config cfg;
  char offer[WS_DEFLATE_RESPONSE_MAX];
  check_config(L, 1, &cfg);
  if (ws_deflate_offer(&cfg, offer, sizeof offer) != 0) return luaL_error(L, "offer too long");
  lua_pushstring(L, offer);
  return 1;
}

/* codec.deflate_accept(response, config [, offer]): the offer defaults to
 * codec.deflate_offer(config). */
static int codec_deflate_accept(lua_State *L) {
  size_t n, on = 0;
  const char *v = luaL_checklstring(L, 1, &n);
  ws_deflate_config cfg;
  check_config(L, 2, &cfg);
  const char *offer = luaL_optlstring(L, 3, NULL, &on);
  ws_deflate_params params;
  const char *err = NULL;
  int r = offer ? ws_deflate_accept_offer(offer, on, v, n, &cfg, &params, &err)
                : ws_deflate_accept(v, n, &cfg, &params, &err);
  if (r < 0) return kit_fail(L, err ? err : "invalid permessage-deflate response", NULL);
  if (r == 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  push_params(L, &params);
  return 1;
}

static int codec_deflate_defaults(lua_State *L) {
  ws_deflate_config cfg;
  ws_deflate_config_default(&cfg);
  push_config(L, &cfg);
  return 1;
}

/* ---- the deflater object ---- */

typedef struct deflater {
  ws_deflate *d;   /* NULL once closed */
  ws_buf buf;      /* output scratch, owned here so a Lua error cannot leak it */
  size_t in_msg;   /* bytes inflated so far in the current message */
} deflater;

static deflater *check_deflater(lua_State *L) {
  deflater *u = (deflater *)luaL_checkudata(L, 1, DEFLATER_MT);
  if (!u->d) luaL_error(L, "deflater is closed");
  return u;
}

static int codec_deflater(lua_State *L) {
  ws_deflate_params params;
  ws_deflate_config cfg;
  check_params(L, 1, &params);
  check_config(L, 2, &cfg);
  int role = check_role(L, 3);
  deflater *u = (deflater *)lua_newuserdata(L, sizeof *u);
  u->d = NULL;
  ws_buf_init(&u->buf);
  u->in_msg = 0;
  luaL_setmetatable(L, DEFLATER_MT);
  u->d = ws_deflate_new(&params, &cfg, role);
  if (!u->d) return luaL_error(L, "out of memory");
  return 1;
}

static int deflater_compress(lua_State *L) {
  deflater *u = check_deflater(L);
  size_t n;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 2, &n);
  ws_buf_clear(&u->buf);
  if (ws_deflate_compress(u->d, p, n, &u->buf) != 0) {
    ws_buf_free(&u->buf);
    return kit_fail(L, "out of memory", NULL);
  }
  kit_push_buf(L, &u->buf); /* on a memory error the bytes stay for __gc */
  return 1;
}

/* d:inflate(data [, fin = true [, max = 2^53]]) -> the bytes this piece inflated to |
 * nil, message, "toolarge" | "protocol". max bounds the whole message, across pieces. */
static int deflater_inflate(lua_State *L) {
  deflater *u = check_deflater(L);
  size_t n;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 2, &n);
  int fin = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3);
  lua_Number maxn = luaL_optnumber(L, 4, 9007199254740992.0);
  if (!(maxn >= 0)) luaL_argerror(L, 4, "non-negative size expected");
  size_t max = maxn >= (lua_Number)SIZE_MAX ? SIZE_MAX : (size_t)maxn;
  size_t room = max > u->in_msg ? max - u->in_msg : 0;
  const char *err = NULL;
  ws_buf_clear(&u->buf);
  if (ws_deflate_inflate(u->d, p, n, fin, &u->buf, room, &err) != 0) {
    ws_buf_free(&u->buf);
    u->in_msg = 0;
    int too_big = err && strstr(err, "max_message");
    return kit_fail(L, err ? err : "invalid compressed data", kit_close_code(too_big ? WS_CLOSE_TOO_BIG : WS_CLOSE_PROTOCOL));
  }
  u->in_msg = fin ? 0 : u->in_msg + ws_buf_size(&u->buf);
  kit_push_buf(L, &u->buf); /* on a memory error the bytes stay for __gc */
  return 1;
}

static int deflater_memory(lua_State *L) {
  deflater *u = (deflater *)luaL_checkudata(L, 1, DEFLATER_MT);
  lua_pushinteger(L, (lua_Integer)ws_deflate_memory(u->d));
  return 1;
}

static int deflater_close(lua_State *L) { /* also __gc; idempotent */
  deflater *u = (deflater *)luaL_checkudata(L, 1, DEFLATER_MT);
  ws_deflate_free(u->d);
  u->d = NULL;
  ws_buf_free(&u->buf);
  return 0;
}

static const luaL_Reg deflater_methods[] = {
  {"compress", deflater_compress},
  {"inflate", deflater_inflate},
  {"memory", deflater_memory},
  {"close", deflater_close},
  {NULL, NULL}
};

/* ---- attaching to a codec connection ---- */

/* c:set_deflate(params, config): compressed messages are sent and accepted from now on,
 * with the role the connection was made with. */
static int codec_conn_set_deflate(lua_State *L) {
  ws_conn *c = ws_codec_check_conn(L, 1);
  ws_deflate_params params;
  ws_deflate_config cfg;
  check_params(L, 2, &params);
  check_config(L, 3, &cfg);
  ws_deflate *d = ws_deflate_new(&params, &cfg, ws_conn_role(c));
  if (!d) return luaL_error(L, "out of memory");
  ws_conn_set_deflate(c, d); /* takes ownership; ws_conn_free releases it */
  lua_pushboolean(L, 1);
  return 1;
}

static int codec_conn_deflate_memory(lua_State *L) {
  ws_conn *c = ws_codec_check_conn(L, 1);
  lua_pushinteger(L, (lua_Integer)ws_conn_deflate_memory(c));
  return 1;
}

static const luaL_Reg conn_deflate_methods[] = {
  {"set_deflate", codec_conn_set_deflate},
  {"deflate_memory", codec_conn_deflate_memory},
  {NULL, NULL}
};

static const luaL_Reg codec_deflate_functions[] = {
  {"deflate_defaults", codec_deflate_defaults},
  {"deflate_negotiate", codec_deflate_negotiate},
  {"deflate_offer", codec_deflate_offer},
  {"deflate_accept", codec_deflate_accept},
  {"deflater", codec_deflater},
  {NULL, NULL}
};

void ws_codec_open_deflate(lua_State *L) {
  luaL_newmetatable(L, DEFLATER_MT);
  lua_pushcfunction(L, deflater_close);
  lua_setfield(L, -2, "__gc");
  lua_newtable(L);
  luaL_setfuncs(L, deflater_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  /* The conn metatable exists when ws_codec_open_conn ran first (see lua_codec.h). */
  luaL_getmetatable(L, WS_CODEC_CONN_MT);
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "__index");
    if (lua_istable(L, -1)) luaL_setfuncs(L, conn_deflate_methods, 0);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, codec_deflate_functions, 0);
}
