/* The binding toolkit shared by ws.core and ws.codec (see lua_kit.h): Lua values in, core
 * types out, with the core's rules applied once. */
#include <errno.h>
#include <string.h>

#include "lua_kit.h"

int kit_raise(lua_State *L, kit_where w, const char *what) {
  if (w.fn) return luaL_error(L, "%s: %s", w.fn, what);
  return luaL_argerror(L, w.arg, what);
}

const char *kit_arg_message(lua_State *L, const ws_arg_error *e) {
  const char *why = e->why ? e->why : "invalid argument", *at = strstr(why, "%s");
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (!at) {
    luaL_addstring(&b, why);
  } else {
    luaL_addlstring(&b, why, (size_t)(at - why));
    if (e->value) luaL_addlstring(&b, e->value, e->value_len);
    luaL_addstring(&b, at + 2);
  }
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

/* The header entry on top (key at -2, value at -1) -> *h; the strings stay referenced from the
 * table at `t` or from `anchor`. Pops nothing. */
static void read_entry(lua_State *L, int anchor, ws_header *h, kit_where w) {
  int kt = lua_type(L, -2), vt = lua_type(L, -1);
  if (kt == LUA_TSTRING && (vt == LUA_TSTRING || vt == LUA_TNUMBER)) {
    if (vt == LUA_TNUMBER) { /* the converted copy is kept by the anchor table */
      lua_pushvalue(L, -1);
      lua_tostring(L, -1);
      lua_pushvalue(L, -1);
      lua_rawseti(L, anchor, (int)lua_rawlen(L, anchor) + 1);
      h->value = lua_tolstring(L, -1, &h->value_len);
      lua_pop(L, 1);
    } else {
      h->value = lua_tolstring(L, -1, &h->value_len);
    }
    h->name = lua_tolstring(L, -2, &h->name_len);
  } else if (vt == LUA_TTABLE) {
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      kit_raise(L, w, "header pairs must be { name, value } strings");
    h->name = lua_tolstring(L, -2, &h->name_len);
    h->value = lua_tolstring(L, -1, &h->value_len);
    lua_pop(L, 2); /* both stay referenced by the pair table */
  } else {
    kit_raise(L, w, "header names and values must be strings");
  }
}

size_t kit_headers(lua_State *L, int t, ws_header *out, size_t max, kit_where w) {
  size_t n = 0;
  t = t < 0 ? lua_gettop(L) + t + 1 : t;
  if (lua_isnoneornil(L, t)) { /* the usual case: no table made for the anchor */
    lua_pushnil(L);
    return 0;
  }
  lua_newtable(L);
  int anchor = lua_gettop(L);
  if (!lua_istable(L, t)) kit_raise(L, w, "headers must be a table");
  lua_pushnil(L);
  while (lua_next(L, t)) {
    const char *why;
    if (n == max) kit_raise(L, w, "too many headers");
    read_entry(L, anchor, &out[n], w);
    if (ws_headers_check(&out[n], 1, &why) == 0)
      kit_raise(L, w, lua_pushfstring(L, "%s '%s'", why, out[n].name));
    n++;
    lua_pop(L, 1);
  }
  return n;
}

size_t kit_protocols(lua_State *L, int t, const char **out, size_t max, kit_where w) {
  size_t n = 0, len;
  t = t < 0 ? lua_gettop(L) + t + 1 : t;
  if (lua_isnoneornil(L, t)) return 0;
  if (!lua_istable(L, t)) kit_raise(L, w, "protocols must be a list of strings");
  len = lua_rawlen(L, t);
  if (len > max) kit_raise(L, w, lua_pushfstring(L, "more than %d protocols", (int)max));
  for (size_t i = 1; i <= len; i++) {
    size_t plen;
    lua_rawgeti(L, t, (int)i);
    if (lua_type(L, -1) != LUA_TSTRING) kit_raise(L, w, "protocols must be a list of strings");
    out[n] = lua_tolstring(L, -1, &plen);
    if (strlen(out[n]) != plen) /* a C string would cut it short */
      kit_raise(L, w, lua_pushfstring(L, "invalid protocol name '%s'", out[n]));
    n++;
    lua_pop(L, 1); /* still referenced by the list */
  }
  return n;
}

double kit_optnum(lua_State *L, int t, const char *k, double def, const char *who) {
  double v = def;
  if (lua_getfield(L, t, k) != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "%s option %s must be a number", who, k);
    v = lua_tonumber(L, -1);
    if (!(v >= 0)) luaL_error(L, "%s option %s must not be negative", who, k);
  }
  lua_pop(L, 1);
  return v;
}

const char *kit_optstr(lua_State *L, int t, const char *k, const char *who) {
  const char *v = NULL;
  if (lua_getfield(L, t, k) == LUA_TSTRING) v = lua_tostring(L, -1);
  else if (!lua_isnil(L, -1)) luaL_error(L, "%s option %s must be a string", who, k);
  lua_pop(L, 1);
  return v;
}

int kit_optbool(lua_State *L, int t, const char *k, int def) {
  int v = lua_getfield(L, t, k) == LUA_TNIL ? def : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

int kit_optwhole(lua_State *L, int t, const char *k, double lo, double hi, double *v) {
  int ok = 1;
  if (lua_getfield(L, t, k) != LUA_TNIL) {
    lua_Number n = lua_tonumber(L, -1);
    /* the range first (NaN fails it): converting a number out of range is undefined */
    ok = lua_type(L, -1) == LUA_TNUMBER && n >= lo && n <= hi && n == (lua_Number)(int64_t)n;
    if (ok) *v = n;
  }
  lua_pop(L, 1);
  return ok;
}

long long kit_optcode(lua_State *L, int idx, long long def, int *given) {
  *given = !lua_isnoneornil(L, idx);
  if (!*given) return def;
  lua_Number n = luaL_checknumber(L, idx);
  /* the range first (NaN fails it): converting a number out of range is undefined */
  if (!(n >= -1e15 && n <= 1e15) || n != (lua_Number)(long long)n) return -1;
  return (long long)n;
}

/* The header map: lower-case names (a header named twice: its values joined with ", ",
 * RFC 9110 5.3). */
void kit_push_headers(lua_State *L, const ws_header *hs, size_t n) {
  lua_createtable(L, 0, (int)n);
  for (size_t i = 0; i < n; i++) {
    luaL_Buffer b;
    char *d = luaL_buffinitsize(L, &b, hs[i].name_len);
    for (size_t k = 0; k < hs[i].name_len; k++) {
      char c = hs[i].name[k];
      d[k] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
    }
    luaL_pushresultsize(&b, hs[i].name_len);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TSTRING) {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, hs[i].value, hs[i].value_len);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, hs[i].value, hs[i].value_len);
    }
    lua_rawset(L, -3);
  }
}

void kit_push_buf(lua_State *L, ws_buf *b) {
  size_t n = ws_buf_size(b);
  lua_pushlstring(L, n ? (const char *)ws_buf_begin(b) : "", n);
  ws_buf_free(b);
}

int kit_fail(lua_State *L, const char *message, const char *code) {
  lua_pushnil(L);
  lua_pushstring(L, message ? message : "failed");
  if (!code) return 2;
  lua_pushstring(L, code);
  return 3;
}

#define ERRNO_CODE(e) { e, #e }
static const struct { int e; const char *name; } errno_codes[] = {
  ERRNO_CODE(EPIPE), ERRNO_CODE(ECONNRESET), ERRNO_CODE(ETIMEDOUT), ERRNO_CODE(ENOMEM),
  ERRNO_CODE(EHOSTUNREACH), ERRNO_CODE(ENETUNREACH), ERRNO_CODE(ECONNREFUSED), ERRNO_CODE(EADDRNOTAVAIL),
  ERRNO_CODE(EMFILE), ERRNO_CODE(ENFILE), ERRNO_CODE(EADDRINUSE), ERRNO_CODE(EACCES), ERRNO_CODE(EINVAL),
  ERRNO_CODE(EAGAIN), ERRNO_CODE(ESRCH), ERRNO_CODE(EPERM), ERRNO_CODE(ECHILD),
};

const char *kit_errno_code(int e, const char *other) {
  for (size_t i = 0; i < sizeof errno_codes / sizeof errno_codes[0]; i++)
    if (errno_codes[i].e == e) return errno_codes[i].name;
  return other;
}

const char *kit_close_code(unsigned close_code) {
  switch (close_code) {
  case 0: return NULL;
  case WS_CLOSE_TOO_BIG: return "toolarge";
  case WS_CLOSE_INTERNAL: return "closed";
  default: return "protocol";
  }
}
