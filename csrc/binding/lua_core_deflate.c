/* The `compression` option of ws.server and ws.connect (permessage-deflate), read from Lua:
 *   compression = "off" | "shared" | "dedicated"
 *   compression = { mode = "shared" | "dedicated", window_bits = 8..15, mem_level = 1..9,
 *                   level = 0..9, threshold = bytes }
 * false and nil mean "off"; true means "dedicated". The defaults (window 13, memLevel 4,
 * level 6, threshold 64) come from the core (ws_deflate_config_default). Errors raise, naming the
 * caller (`who`), before anything is allocated. */
#include <string.h>

#include "lua_core.h"
#include "lua_kit.h"

static int opt_int(lua_State *L, int t, const char *who, const char *k, int def, int lo, int hi) {
  double v = def;
  if (!kit_optwhole(L, t, k, lo, hi, &v)) luaL_error(L, "%s: compression.%s must be an integer from %d to %d", who, k, lo, hi);
  return (int)v;
}

static int mode_of(lua_State *L, int idx, const char *who) {
  const char *m = lua_tostring(L, idx);
  if (m && strcmp(m, "off") == 0) return WS_DEFLATE_OFF;
  if (m && strcmp(m, "shared") == 0) return WS_DEFLATE_SHARED;
  if (m && strcmp(m, "dedicated") == 0) return WS_DEFLATE_DEDICATED;
  return luaL_error(L, "%s: compression must be \"off\", \"shared\" or \"dedicated\"", who);
}

int wsl_check_compression(lua_State *L, int opts, const char *who, ws_deflate_config *cfg) {
  int mode = WS_DEFLATE_OFF;
  ws_deflate_config_default(cfg);
  opts = lua_absindex(L, opts);
  int t = lua_getfield(L, opts, "compression");
  int idx = lua_gettop(L);
  if (t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(L, idx))) {
    mode = WS_DEFLATE_OFF;
  } else if (t == LUA_TBOOLEAN) {
    mode = WS_DEFLATE_DEDICATED;
  } else if (t == LUA_TSTRING) {
    mode = mode_of(L, idx, who);
  } else if (t == LUA_TTABLE) {
    lua_getfield(L, idx, "mode");
    mode = lua_isnil(L, -1) ? WS_DEFLATE_DEDICATED : mode_of(L, -1, who);
    lua_pop(L, 1);
    cfg->window_bits = opt_int(L, idx, who, "window_bits", cfg->window_bits, 8, 15);
    cfg->mem_level = opt_int(L, idx, who, "mem_level", cfg->mem_level, 1, 9);
    cfg->level = opt_int(L, idx, who, "level", cfg->level, 0, 9);
    double threshold = (double)cfg->threshold;
    if (!kit_optwhole(L, idx, "threshold", 0, 1e15, &threshold))
      luaL_error(L, "%s: compression.threshold must be a non-negative integer", who);
    cfg->threshold = (size_t)threshold;
  } else {
    luaL_error(L, "%s: compression must be \"off\", \"shared\", \"dedicated\" or a table", who);
  }
  lua_pop(L, 1);
  cfg->no_context_takeover = mode == WS_DEFLATE_SHARED;
  return mode;
}
