/* Module `ws.codec`: the sans-I/O WebSocket codec for Lua 5.1 to 5.4 and LuaJIT (see
 * docs/codec.md). This file is the entry point and the frame-level helpers; the
 * connection, the handshake and permessage-deflate register their own parts. */
#include <string.h>

#include "lua_codec.h"
#include "lua_kit.h"
#include "ws_frame.h"
#include "ws_handshake.h"
#include "ws_utf8.h"

static const char *const kind_names[] = {"continuation", "text", "binary", "close", "ping",
                                         "pong", NULL};
static const int kind_opcodes[] = {WS_OP_CONTINUATION, WS_OP_TEXT, WS_OP_BINARY,
                                   WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};

/* A kind name, or an opcode number 0..15 (so tests can build frames the RFC forbids). */
static int check_opcode(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Number n = lua_tonumber(L, idx);
    /* the range is checked first (NaN fails it): converting it to int is undefined */
    if (!(n >= 0 && n <= 15) || n != (lua_Number)(int)n) luaL_argerror(L, idx, "opcode 0..15 expected");
    return (int)n;
  }
  return kind_opcodes[luaL_checkoption(L, idx, NULL, kind_names)];
}

/* 4 bytes of key from a string argument or table field at idx. */
static const uint8_t *check_key(lua_State *L, int idx, int arg) {
  size_t n;
  const char *k = lua_tolstring(L, idx, &n);
  if (!k || n != 4) luaL_argerror(L, arg, "mask key of 4 bytes expected");
  return (const uint8_t *)k;
}

/* Append n bytes of p, XORed with key from phase, to a luaL_Buffer in pieces of its own
 * size; returns the phase after them. */
static size_t add_masked(luaL_Buffer *b, const uint8_t *p, size_t n, const uint8_t key[4],
                         size_t phase) {
  while (n) {
    size_t k = n < LUAL_BUFFERSIZE ? n : LUAL_BUFFERSIZE;
    uint8_t *dst = (uint8_t *)luaL_prepbuffer(b);
    phase = ws_mask(dst, p, k, key, phase);
    luaL_addsize(b, k);
    p += k;
    n -= k;
  }
  return phase;
}

/* codec.frame(kind, payload [, { fin =, rsv =, mask = }]) -> the whole frame. */
static int codec_frame(lua_State *L) {
  int opcode = check_opcode(L, 1);
  size_t n;
  const uint8_t *p = (const uint8_t *)luaL_optlstring(L, 2, "", &n);
  int fin = 1;
  unsigned rsv = 0;
  const uint8_t *key = NULL;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "fin");
    if (!lua_isnil(L, -1)) fin = lua_toboolean(L, -1);
    lua_getfield(L, 3, "rsv");
    if (!lua_isnil(L, -1)) {
      lua_Number r = lua_tonumber(L, -1);
      if (!lua_isnumber(L, -1) || !(r >= 0 && r <= 7) || r != (lua_Number)(int)r)
        luaL_argerror(L, 3, "rsv must be 0..7");
      rsv = (unsigned)r;
    }
    lua_getfield(L, 3, "mask");
    if (!lua_isnil(L, -1)) key = check_key(L, -1, 3);
    /* the three values stay on the stack: key points into one of them */
  }
  uint8_t hdr[WS_FRAME_HEADER_MAX];
  size_t hl = ws_frame_write_header(hdr, fin, rsv, (unsigned)opcode, n, key);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, (const char *)hdr, hl);
  if (key) add_masked(&b, p, n, key, 0);
  else luaL_addlstring(&b, (const char *)p, n);
  luaL_pushresult(&b);
  return 1;
}

/* codec.mask(data, key [, phase]) -> masked data, next phase */
static int codec_mask(lua_State *L) {
  size_t n;
  const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &n);
  const uint8_t *key = check_key(L, 2, 2);
  lua_Number ph = luaL_optnumber(L, 3, 0);
  if (!(ph >= 0 && ph <= 3) || ph != (lua_Number)(int)ph) luaL_argerror(L, 3, "phase 0..3 expected");
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t next = add_masked(&b, p, n, key, (size_t)ph);
  luaL_pushresult(&b);
  lua_pushinteger(L, (lua_Integer)next);
  return 2;
}

static int codec_utf8_valid(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_pushboolean(L, ws_utf8_valid((const uint8_t *)s, n));
  return 1;
}

/* codec.parse_frame_header(s) -> header table | nil, "again" | nil, message */
static int codec_parse_frame_header(lua_State *L) {
  size_t n;
  const uint8_t *s = (const uint8_t *)luaL_checklstring(L, 1, &n);
  ws_frame_header h;
  int r = ws_frame_parse_header(s, n, &h);
  if (r < 0) return kit_fail(L, r == WS_AGAIN ? "again" : "frame length has the top bit set", NULL);
  lua_createtable(L, 0, 7);
  lua_pushboolean(L, h.fin);
  lua_setfield(L, -2, "fin");
  lua_pushinteger(L, (lua_Integer)h.rsv);
  lua_setfield(L, -2, "rsv");
  lua_pushinteger(L, (lua_Integer)h.opcode);
  lua_setfield(L, -2, "opcode");
  lua_pushboolean(L, h.masked);
  lua_setfield(L, -2, "masked");
  if (h.masked) {
    lua_pushlstring(L, (const char *)h.mask, 4);
    lua_setfield(L, -2, "mask");
  }
  wsl_push_size(L, h.payload_len);
  lua_setfield(L, -2, "length");
  lua_pushinteger(L, (lua_Integer)h.header_len);
  lua_setfield(L, -2, "header_length");
  return 1;
}

static const luaL_Reg codec_functions[] = {
  {"frame", codec_frame},
  {"mask", codec_mask},
  {"utf8_valid", codec_utf8_valid},
  {"parse_frame_header", codec_parse_frame_header},
  {NULL, NULL}
};

WS_EXPORT int luaopen_ws_codec(lua_State *L);

/* Lua states that loaded the module. When the last one closes, the SHA-1 implementation kept
 * for accept keys is freed before the module is unloaded (a leak checker sees it freed). The
 * count assumes that states are not opened or closed on two threads at once. */
static size_t codec_states;

static int codec_guard_gc(lua_State *L) {
  (void)L;
  if (codec_states && --codec_states == 0) ws_accept_key_release();
  return 0;
}

#define CODEC_GUARD "ws.codec.guard"

int luaopen_ws_codec(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, CODEC_GUARD);
  if (lua_isnil(L, -1)) { /* once per state: a finalizer that runs as the state closes */
    lua_newuserdata(L, 1);
    lua_newtable(L);
    lua_pushcfunction(L, codec_guard_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, CODEC_GUARD);
    codec_states++;
  }
  lua_pop(L, 1);
  lua_newtable(L);
  luaL_setfuncs(L, codec_functions, 0);
  ws_codec_open_conn(L);
  ws_codec_open_handshake(L);
  ws_codec_open_deflate(L);
  return 1;
}
