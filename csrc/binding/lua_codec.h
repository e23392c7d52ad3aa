/* Shared parts of the `ws.codec` binding: the entry points each half of the module
 * registers through. Written against lua_compat.h, as ws.core, so the same source builds for
 * Lua 5.1, 5.3, 5.4 and LuaJIT. */
#ifndef LUA_CODEC_H
#define LUA_CODEC_H

#include "lua_compat.h"
#include "ws_common.h"

struct ws_conn;

/* Each adds its functions to the module table on top of the stack. */
void ws_codec_open_conn(lua_State *L) WS_HIDDEN;      /* codec.new and the conn methods */
void ws_codec_open_handshake(lua_State *L) WS_HIDDEN;
void ws_codec_open_deflate(lua_State *L) WS_HIDDEN;

/* Registry name of the conn metatable (created by ws_codec_open_conn, before
 * ws_codec_open_deflate runs, so that half may add methods to its __index table). */
#define WS_CODEC_CONN_MT "ws.codec.conn"

/* The conn at idx, or a raised argument error. */
struct ws_conn *ws_codec_check_conn(lua_State *L, int idx) WS_HIDDEN;

#endif
