/* core.sio_decode(s, off): the common Socket.IO packet read straight from a WebSocket message,
 * for lua/ws/socketio/parser.lua's decode_common. Lua 5.4 spends most of an event's time in
 * cjson's decode and in string.match/string.sub; this reads the simple case in one C call.
 *
 * The simple case: at s[off] an EVENT ("2") or ACK ("3") of the default namespace without
 * attachments, an optional ack id of 1 to 15 digits, then a JSON array whose elements are
 * strings without escapes or control characters, integers of at most 15 digits, true, false or
 * null, and nothing after the closing bracket. -> type (2 or 3), id (an integer, or nil),
 * data (the array as cjson decodes it: numbers as floats, null as cjson.null, i.e. a NULL light
 * userdata), id's digits (or nil). Anything else, valid or not, -> nothing: the caller decodes
 * it the general way (cjson), which is also the one that tells errors.
 *
 * core.sio_ack(digits, v): the text of the ACK "43<digits>[<v as JSON>]" for one string or
 * boolean v, escaped as cjson escapes (so the bytes are those of the general way); nothing for
 * any other v. */
#include <string.h>

#include "lua_core.h"

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* One element at p: pushed, returns the byte after it; NULL when it is not a simple one. */
static const char *element(lua_State *L, const char *p, const char *end) {
  if (p >= end) return NULL;
  if (*p == '"') {
    const char *q = ++p;
    while (q < end && *q != '"') {
      unsigned char c = (unsigned char)*q;
      if (c < 0x20 || c == '\\') return NULL;
      q++;
    }
    if (q >= end) return NULL;
    lua_pushlstring(L, p, (size_t)(q - p));
    return q + 1;
  }
  if (*p == '-' || (*p >= '0' && *p <= '9')) {
    int neg = *p == '-';
    const char *q = p + neg;
    if (q >= end || *q < '0' || *q > '9') return NULL;
    if (*q == '0' && q + 1 < end && q[1] >= '0' && q[1] <= '9') return NULL; /* a leading zero */
    double v = 0;
    int n = 0;
    while (q < end && *q >= '0' && *q <= '9') {
      v = v * 10 + (*q - '0'); /* exact: at most 15 digits */
      q++;
      if (++n > 15) return NULL;
    }
    if (q < end && (*q == '.' || *q == 'e' || *q == 'E')) return NULL;
    lua_pushnumber(L, (lua_Number)(neg ? -v : v));
    return q;
  }
  if (end - p >= 4 && memcmp(p, "true", 4) == 0) { lua_pushboolean(L, 1); return p + 4; }
  if (end - p >= 5 && memcmp(p, "false", 5) == 0) { lua_pushboolean(L, 0); return p + 5; }
  if (end - p >= 4 && memcmp(p, "null", 4) == 0) { lua_pushlightuserdata(L, NULL); return p + 4; }
  return NULL;
}

static int l_sio_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_Integer off = luaL_checkinteger(L, 2);
  if (off < 1 || (size_t)off > len) return 0;
  const char *p = s + off - 1, *end = s + len;
  char t = *p++;
  if ((t != '2' && t != '3') || p >= end) return 0;
  const char *digits = p;
  lua_Integer id = 0;
  while (p < end && *p >= '0' && *p <= '9') {
    id = id * 10 + (*p - '0');
    p++;
    if (p - digits > 15) return 0;
  }
  size_t ndigits = (size_t)(p - digits);
  if (p >= end || *p != '[' || (t == '3' && ndigits == 0)) return 0;
  p++;
  lua_settop(L, 2);
  lua_pushinteger(L, t - '0');
  if (ndigits) lua_pushinteger(L, id); else lua_pushnil(L);
  lua_createtable(L, 4, 0);
  int n = 0;
  p = skip_ws(p, end);
  if (p < end && *p == ']') {
    p++;
  } else {
    for (;;) {
      p = skip_ws(p, end);
      if (n == 0 && t == '2' && (p >= end || *p != '"')) return 0; /* an event name first */
      if (!lua_checkstack(L, 2)) return 0;
      p = element(L, p, end);
      if (!p) return 0;
      lua_rawseti(L, -2, ++n);
      p = skip_ws(p, end);
      if (p >= end) return 0;
      if (*p == ']') { p++; break; }
      if (*p != ',') return 0;
      p++;
    }
  }
  if (p != end || (t == '2' && n == 0)) return 0;
  if (ndigits) lua_pushlstring(L, digits, ndigits); else lua_pushnil(L);
  return 4;
}

static int l_sio_ack(lua_State *L) {
  size_t nd, n;
  const char *digits = luaL_checklstring(L, 1, &nd);
  luaL_Buffer b;
  int type = lua_type(L, 2);
  if (type == LUA_TBOOLEAN) {
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, "43", 2);
    luaL_addlstring(&b, digits, nd);
    luaL_addstring(&b, lua_toboolean(L, 2) ? "[true]" : "[false]");
    luaL_pushresult(&b);
    return 1;
  }
  if (type != LUA_TSTRING) return 0;
  const char *v = lua_tolstring(L, 2, &n);
  static const char hex[] = "0123456789abcdef";
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, "43", 2);
  luaL_addlstring(&b, digits, nd);
  luaL_addlstring(&b, "[\"", 2);
  size_t run = 0; /* bytes copied as they are, added in one piece */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    const char *esc = NULL;
    char u[6];
    if (c >= 0x20 && c != '"' && c != '\\' && c != '/' && c != 0x7f) { run++; continue; }
    if (run) { luaL_addlstring(&b, v + i - run, run); run = 0; }
    switch (c) {
    case '"': esc = "\\\""; break;
    case '\\': esc = "\\\\"; break;
    case '/': esc = "\\/"; break;
    case '\b': esc = "\\b"; break;
    case '\t': esc = "\\t"; break;
    case '\n': esc = "\\n"; break;
    case '\f': esc = "\\f"; break;
    case '\r': esc = "\\r"; break;
    default:
      memcpy(u, "\\u00", 4);
      u[4] = hex[c >> 4];
      u[5] = hex[c & 15];
      luaL_addlstring(&b, u, 6);
      continue;
    }
    luaL_addstring(&b, esc);
  }
  if (run) luaL_addlstring(&b, v + n - run, run);
  luaL_addlstring(&b, "\"]", 2);
  luaL_pushresult(&b);
  return 1;
}

void wsl_sio_open_lib(lua_State *L, int mod) {
  lua_pushcfunction(L, l_sio_decode);
  lua_setfield(L, mod, "sio_decode");
  lua_pushcfunction(L, l_sio_ack);
  lua_setfield(L, mod, "sio_ack");
}
