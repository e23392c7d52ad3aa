/* `ws.codec` connections: codec.new and its methods, a thin layer over ws_conn (every
 * protocol decision is made there). The userdata embeds the ws_conn, so a connection is
 * one allocation, and ws_conn_init allocates nothing, so a Lua error while reading the
 * options never leaves anything half-built. */
#include <string.h>

#include "lua_codec.h"
#include "lua_kit.h"
#include "ws_conn.h"

#define OUTPUT_KEEP (64u * 1024u) /* a larger output buffer is released once drained */

ws_conn *ws_codec_check_conn(lua_State *L, int idx) {
  return (ws_conn *)luaL_checkudata(L, idx, WS_CODEC_CONN_MT);
}

/* The methods' upvalues: the conn metatable and the event names of messages, so that the
 * calls made for every message neither look the metatable up by name in the registry nor
 * intern a string (both cost more than the rest of a small call on LuaJIT). */
#define UV_MT lua_upvalueindex(1)
#define UV_TEXT lua_upvalueindex(2)
#define UV_BINARY lua_upvalueindex(3)
#define CONN_UPVALUES 3

/* The method's self: a userdata whose metatable is the conn metatable; anything else gets
 * luaL_checkudata's error. */
static ws_conn *self_conn(lua_State *L) {
  void *p = lua_touserdata(L, 1);
  if (p && lua_getmetatable(L, 1)) {
    int same = lua_rawequal(L, -1, UV_MT);
    lua_pop(L, 1);
    if (same) return (ws_conn *)p;
  }
  return ws_codec_check_conn(L, 1);
}

/* An optional positive whole number field of the options table at index 1. */
static uint64_t opt_limit(lua_State *L, const char *name, uint64_t dflt, uint64_t max) {
  double v = (double)dflt;
  if (!kit_optwhole(L, 1, name, 1, (double)max, &v)) luaL_error(L, "bad option '%s' (positive integer expected)", name);
  return (uint64_t)v;
}

/* codec.new{ role =, max_message =, max_frame =, max_fragments =, auto_pong =, open = } */
static int codec_new(lua_State *L) {
  ws_conn_options o;
  int open = 1;
  ws_conn_options_default(&o, WS_ROLE_SERVER);
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "role");
    if (!lua_isnil(L, -1)) {
      const char *role = lua_tostring(L, -1);
      if (role && strcmp(role, "client") == 0) o.role = WS_ROLE_CLIENT;
      else if (!role || strcmp(role, "server") != 0)
        return luaL_error(L, "bad option 'role' (\"server\" or \"client\" expected)");
    }
    lua_pop(L, 1);
    /* 2^53 keeps the limits exact in a double, on every Lua */
    o.max_message = opt_limit(L, "max_message", o.max_message, UINT64_C(1) << 53);
    o.max_frame = opt_limit(L, "max_frame", 0, UINT64_C(1) << 53); /* 0: the core's default */
    o.max_fragments = (uint32_t)opt_limit(L, "max_fragments", 0, UINT32_MAX);
    o.auto_pong = kit_optbool(L, 1, "auto_pong", 1);
    open = kit_optbool(L, 1, "open", 1);
  }
  ws_conn *c = (ws_conn *)lua_newuserdata(L, sizeof *c);
  ws_conn_init(c, &o);
  luaL_setmetatable(L, WS_CODEC_CONN_MT);
  if (open) ws_conn_open(c);
  return 1;
}

static int codec_conn_open(lua_State *L) {
  ws_conn_open(self_conn(L));
  return 0;
}

static int codec_conn_feed(lua_State *L) {
  ws_conn *c = self_conn(L);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  if (ws_conn_feed(c, p, n) != 0) return kit_fail(L, "input over the buffer limit", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* The next event as c:next() returns it (nothing when more input is needed). */
static int push_next(lua_State *L, ws_conn *c) {
  ws_event ev;
  if (!ws_conn_next(c, &ev)) return 0;
  switch (ev.type) {
  case WS_EV_MESSAGE:
    lua_pushvalue(L, ev.opcode == WS_OP_TEXT ? UV_TEXT : UV_BINARY);
    lua_pushlstring(L, (const char *)ev.data, ev.len);
    return 2;
  case WS_EV_PING:
  case WS_EV_PONG:
    lua_pushstring(L, ev.type == WS_EV_PING ? "ping" : "pong");
    lua_pushlstring(L, (const char *)ev.data, ev.len);
    return 2;
  case WS_EV_CLOSE:
    lua_pushstring(L, "close");
    lua_pushinteger(L, (lua_Integer)ev.code);
    lua_pushlstring(L, (const char *)ev.data, ev.len);
    return 3;
  default: /* WS_EV_ERROR */
    lua_pushstring(L, "error");
    lua_pushstring(L, ev.error);
    lua_pushinteger(L, (lua_Integer)ev.code);
    return 3;
  }
}

static int codec_conn_next(lua_State *L) {
  return push_next(L, self_conn(L));
}

/* c:feed_next(bytes): c:feed(bytes), then c:next() in the same call; nil, message when the
 * bytes do not fit (as feed). */
static int codec_conn_feed_next(lua_State *L) {
  ws_conn *c = self_conn(L);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  if (ws_conn_feed(c, p, n) != 0) return kit_fail(L, "input over the buffer limit", NULL);
  return push_next(L, c);
}

static const char *const send_kinds[] = {"text", "binary", "continuation", NULL};
static const int send_opcodes[] = {WS_OP_TEXT, WS_OP_BINARY, WS_OP_CONTINUATION};

/* Queues the frame of c:send(data [, kind [, { fin =, compress = }]]) (arguments 2 to 4);
 * 0, or -1 when the connection refuses it. */
static int queue_send(lua_State *L, ws_conn *c) {
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  int opcode;
  /* the kinds a host passes for every message are the upvalues: no string compare then */
  if (lua_rawequal(L, 3, UV_TEXT) || lua_isnoneornil(L, 3)) opcode = WS_OP_TEXT;
  else if (lua_rawequal(L, 3, UV_BINARY)) opcode = WS_OP_BINARY;
  else opcode = send_opcodes[luaL_checkoption(L, 3, "text", send_kinds)];
  unsigned flags = WS_SEND_COMPRESS; /* used only when permessage-deflate was negotiated */
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_getfield(L, 4, "fin");
    if (!lua_isnil(L, -1) && !lua_toboolean(L, -1)) flags |= WS_SEND_MORE;
    lua_getfield(L, 4, "compress");
    if (!lua_isnil(L, -1) && !lua_toboolean(L, -1)) flags &= ~WS_SEND_COMPRESS;
    lua_pop(L, 2);
  }
  return ws_conn_send(c, opcode, p, n, flags) != 0 ? -1 : 0;
}

static int codec_conn_send(lua_State *L) {
  ws_conn *c = self_conn(L);
  if (queue_send(L, c) != 0) return kit_fail(L, ws_conn_error(c), NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* The queued output as one string, taken out of the codec (c:output()). */
static int push_output(lua_State *L, ws_conn *c) {
  ws_buf *out = ws_conn_output(c);
  size_t n = ws_buf_size(out);
  lua_pushlstring(L, n ? (const char *)ws_buf_begin(out) : "", n);
  if (out->cap > OUTPUT_KEEP) ws_buf_free(out);
  else ws_buf_clear(out);
  return 1;
}

/* c:send_output(data [, kind [, opts]]): c:send(...), then c:output() in the same call: the
 * bytes to write (this frame after any queued before it), or nil, message (the frame is not
 * queued; what was queued before stays for c:output()). */
static int codec_conn_send_output(lua_State *L) {
  ws_conn *c = self_conn(L);
  if (queue_send(L, c) != 0) return kit_fail(L, ws_conn_error(c), NULL);
  return push_output(L, c);
}

static int control(lua_State *L, int (*fn)(ws_conn *, const void *, size_t)) {
  ws_conn *c = self_conn(L);
  size_t n;
  const char *p = luaL_optlstring(L, 2, "", &n);
  if (fn(c, p, n) != 0) return kit_fail(L, ws_conn_error(c), NULL);
  lua_pushboolean(L, 1);
  return 1;
}

static int codec_conn_ping(lua_State *L) { return control(L, ws_conn_ping); }
static int codec_conn_pong(lua_State *L) { return control(L, ws_conn_pong); }

/* c:close([code [, reason]]): without a code the close frame carries no status; a code
 * given must be one the wire allows (ws_close_args_check: 0 is not one). */
static int codec_conn_close(lua_State *L) {
  ws_conn *c = self_conn(L);
  int given;
  long long code = kit_optcode(L, 2, 0, &given);
  size_t n;
  const char *reason = luaL_optlstring(L, 3, "", &n);
  const char *why; /* a wrong code is told in any state; the reason's rules after the state's */
  if (ws_close_args_check(given, code, reason, n, &why) == 1) return kit_fail(L, why, NULL);
  if (ws_conn_close(c, given ? (unsigned)code : 0, reason, n) != 0) return kit_fail(L, ws_conn_error(c), NULL);
  lua_pushboolean(L, 1);
  return 1;
}

static int codec_conn_output(lua_State *L) {
  return push_output(L, self_conn(L));
}

static int codec_conn_pending(lua_State *L) {
  ws_conn *c = self_conn(L);
  lua_pushinteger(L, (lua_Integer)ws_buf_size(ws_conn_output(c)));
  return 1;
}

/* c:buffered(): bytes received and not yet returned as events (0: the next c:next() cannot
 * produce an event without more input). */
static int codec_conn_buffered(lua_State *L) {
  ws_conn *c = self_conn(L);
  lua_pushinteger(L, (lua_Integer)ws_conn_input_unread(c));
  return 1;
}

static const char *const state_names[] = {"connecting", "open", "closing", "closed"};

static int codec_conn_state(lua_State *L) {
  ws_conn *c = self_conn(L);
  lua_pushstring(L, state_names[ws_conn_state(c) & 3]);
  return 1;
}

static int codec_conn_gc(lua_State *L) {
  ws_conn_free(self_conn(L)); /* idempotent */
  return 0;
}

static int codec_conn_tostring(lua_State *L) {
  ws_conn *c = self_conn(L);
  lua_pushfstring(L, "ws.codec.conn (%s): %p", state_names[ws_conn_state(c) & 3], (void *)c);
  return 1;
}

/* Entry points for LuaJIT's FFI (ws.resty calls them where the FFI is there: a call from
 * compiled code costs a few instructions, where a Lua C function costs a trace exit). `conn`
 * is a ws.codec conn userdata (the FFI passes a userdata's payload address for a void *);
 * the caller passes only its own. Events are written to *ev, as c:next() returns them:
 * kind 0 none, 1 "text", 2 "binary", 3 "ping", 4 "pong", 5 "close" (code, data = reason),
 * 6 "error" (data = message, code = the close code), -1 the input did not fit (feed_next). The
 * data stays valid until the next call on the conn. */
typedef struct ws_codec_event {
  int kind;
  unsigned code;
  const char *data;
  size_t len;
} ws_codec_event;

WS_EXPORT int ws_codec_next(void *conn, ws_codec_event *ev);
WS_EXPORT int ws_codec_feed_next(void *conn, const char *p, size_t n, ws_codec_event *ev);
WS_EXPORT const char *ws_codec_send_output(void *conn, int opcode, const char *p, size_t n,
                                           size_t *len);
WS_EXPORT void ws_codec_output_taken(void *conn);
WS_EXPORT const char *ws_codec_error(void *conn);
WS_EXPORT int ws_codec_state(void *conn);
WS_EXPORT int ws_codec_server_limits(void *conn, double max_message, double max_frame,
                                     double max_fragments);

int ws_codec_next(void *conn, ws_codec_event *ev) {
  ws_event e;
  if (!ws_conn_next((ws_conn *)conn, &e)) return ev->kind = 0;
  ev->code = e.code;
  ev->data = (const char *)e.data;
  ev->len = e.len;
  switch (e.type) {
  case WS_EV_MESSAGE: return ev->kind = e.opcode == WS_OP_TEXT ? 1 : 2;
  case WS_EV_PING: return ev->kind = 3;
  case WS_EV_PONG: return ev->kind = 4;
  case WS_EV_CLOSE: return ev->kind = 5;
  default: /* WS_EV_ERROR */
    ev->data = e.error;
    ev->len = strlen(e.error);
    return ev->kind = 6;
  }
}

int ws_codec_feed_next(void *conn, const char *p, size_t n, ws_codec_event *ev) {
  if (ws_conn_feed((ws_conn *)conn, p, n) != 0) return ev->kind = -1;
  return ws_codec_next(conn, ev);
}

/* c:send_output(data, kind) for opcode 1 (text) or 2 (binary): the queued output (this frame
 * after any queued before it), *len bytes, to be copied and then released with
 * ws_codec_output_taken; NULL when the connection refuses the frame (ws_codec_error). */
const char *ws_codec_send_output(void *conn, int opcode, const char *p, size_t n, size_t *len) {
  ws_conn *c = (ws_conn *)conn;
  if (ws_conn_send(c, opcode, p, n, WS_SEND_COMPRESS) != 0) return NULL;
  ws_buf *out = ws_conn_output(c);
  *len = ws_buf_size(out);
  return *len ? (const char *)ws_buf_begin(out) : "";
}

/* A limit as codec.new reads it: 0 for one not given, else a whole number in 1..hi; -1 when it
 * is neither (codec.new raises for it). */
static double limit_arg(double v, double hi) {
  if (v == 0) return 0;
  /* the range first (NaN fails it): converting a number out of range is undefined */
  return v >= 1 && v <= hi && v == (double)(int64_t)v ? v : -1;
}

/* On a conn codec.new() has just made (a server's, open, nothing fed or sent yet, so holding
 * no memory of its own): the limits codec.new{ max_message =, max_frame =, max_fragments = }
 * would have given it, 0 standing for a limit not given; 0, or -1 with the conn unchanged when a
 * value is not one codec.new takes (then codec.new with the table says why). The options table
 * codec.new reads costs more than the whole of this call through the FFI. */
int ws_codec_server_limits(void *conn, double max_message, double max_frame, double max_fragments) {
  double mm = limit_arg(max_message, (double)(UINT64_C(1) << 53));
  double mf = limit_arg(max_frame, (double)(UINT64_C(1) << 53));
  double mn = limit_arg(max_fragments, (double)UINT32_MAX);
  if (mm < 0 || mf < 0 || mn < 0) return -1;
  ws_conn_options o;
  ws_conn_options_default(&o, WS_ROLE_SERVER);
  if (mm > 0) o.max_message = (uint64_t)mm;
  o.max_frame = (uint64_t)mf;
  o.max_fragments = (uint32_t)mn;
  ws_conn *c = (ws_conn *)conn;
  ws_conn_init(c, &o);
  ws_conn_open(c);
  return 0;
}

/* c:state() as a number: 0 "connecting", 1 "open", 2 "closing", 3 "closed". */
int ws_codec_state(void *conn) {
  return (int)(ws_conn_state((ws_conn *)conn) & 3);
}

void ws_codec_output_taken(void *conn) {
  ws_buf *out = ws_conn_output((ws_conn *)conn);
  if (out->cap > OUTPUT_KEEP) ws_buf_free(out);
  else ws_buf_clear(out);
}

const char *ws_codec_error(void *conn) {
  const char *e = ws_conn_error((ws_conn *)conn);
  return e ? e : "";
}

static const luaL_Reg conn_methods[] = {
  {"open", codec_conn_open},
  {"feed", codec_conn_feed},
  {"next", codec_conn_next},
  {"feed_next", codec_conn_feed_next},
  {"send", codec_conn_send},
  {"send_output", codec_conn_send_output},
  {"ping", codec_conn_ping},
  {"pong", codec_conn_pong},
  {"close", codec_conn_close},
  {"output", codec_conn_output},
  {"pending", codec_conn_pending},
  {"buffered", codec_conn_buffered},
  {"state", codec_conn_state},
  {NULL, NULL}
};

static const luaL_Reg codec_conn_functions[] = {
  {"new", codec_new},
  {NULL, NULL}
};

static const luaL_Reg conn_metamethods[] = {
  {"__gc", codec_conn_gc},
  {"__tostring", codec_conn_tostring},
  {NULL, NULL}
};

/* Pushes the methods' upvalues (UV_MT, UV_TEXT, UV_BINARY), the metatable being at mt. */
static void push_upvalues(lua_State *L, int mt) {
  lua_pushvalue(L, mt);
  lua_pushliteral(L, "text");
  lua_pushliteral(L, "binary");
}

void ws_codec_open_conn(lua_State *L) {
  luaL_newmetatable(L, WS_CODEC_CONN_MT);
  int mt = lua_gettop(L);
  push_upvalues(L, mt);
  luaL_setfuncs(L, conn_metamethods, CONN_UPVALUES);
  lua_newtable(L);
  push_upvalues(L, mt);
  luaL_setfuncs(L, conn_methods, CONN_UPVALUES);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_setfuncs(L, codec_conn_functions, 0);
}
