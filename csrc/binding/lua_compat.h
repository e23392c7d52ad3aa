/* The Lua 5.4 API that both bindings (`ws.core`, `ws.codec`) are written against, on LuaJIT
 * 2.1 and, for ws.codec, on Lua 5.1 and 5.3 (whose 5.3 subset it keeps to). On 5.4 it adds only wsl_push_main_thread,
 * wsl_push_size and WSL_HAVE_CONTINUATIONS. On 5.1/LuaJIT:
 * - user values live in the userdata's environment table (created only when the userdata
 *   is made with at least one user value: a fresh userdata's environment is the globals);
 * - the getters return the type of the value they push, as in 5.3+;
 * - lua_resume takes the 5.4 arguments (`from` is unused, *nres is the whole stack, which on
 *   a yield or a return holds exactly the values passed);
 * - the main thread is the thread that loaded the module when that is the main thread, else
 *   a thread of the module's own (5.1 keeps no reference to the main thread);
 * - on Lua 5.1 itself, the three functions LuaJIT 2.1 took from 5.2 (luaL_setfuncs,
 *   luaL_testudata, luaL_setmetatable). */
#ifndef LUA_COMPAT_H
#define LUA_COMPAT_H

#include <stdint.h>

#include "lauxlib.h"
#include "lua.h"

#if LUA_VERSION_NUM < 502

/* No continuations (lua_callk, lua_yieldk): a C function cannot call a Lua function that yields
 * (LuaJIT raises "attempt to yield across C-call boundary"). What needs one keeps a Lua version
 * for WSL_HAVE_CONTINUATIONS 0. */
#define WSL_HAVE_CONTINUATIONS 0

#ifndef LUA_OK /* Lua 5.1 itself (LuaJIT 2.1 has these) */
#define LUA_OK 0

static inline void luaL_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup + 1, "too many upvalues");
  for (; l->name; l++) {
    for (int i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}

static inline void *luaL_testudata(lua_State *L, int idx, const char *tname) {
  void *p = lua_touserdata(L, idx);
  if (!p || !lua_getmetatable(L, idx)) return NULL;
  lua_getfield(L, LUA_REGISTRYINDEX, tname);
  if (!lua_rawequal(L, -1, -2)) p = NULL;
  lua_pop(L, 2);
  return p;
}

static inline void luaL_setmetatable(lua_State *L, const char *tname) {
  luaL_getmetatable(L, tname);
  lua_setmetatable(L, -2);
}
#endif

static inline int lua_absindex(lua_State *L, int idx) {
  return idx > 0 || idx <= LUA_REGISTRYINDEX ? idx : lua_gettop(L) + idx + 1;
}

#define lua_rawlen(L, idx) lua_objlen(L, (idx))

/* A function-like macro does not expand inside its own expansion: these call the real ones. */
#define lua_getfield(L, idx, k) (lua_getfield(L, (idx), (k)), lua_type(L, -1))
#define lua_gettable(L, idx) (lua_gettable(L, (idx)), lua_type(L, -1))
#define lua_rawget(L, idx) (lua_rawget(L, (idx)), lua_type(L, -1))
#define lua_rawgeti(L, idx, n) (lua_rawgeti(L, (idx), (n)), lua_type(L, -1))

static inline int lua_rawgetp(lua_State *L, int idx, const void *p) {
  idx = lua_absindex(L, idx);
  lua_pushlightuserdata(L, (void *)(uintptr_t)p);
  return lua_rawget(L, idx);
}

static inline void lua_rawsetp(lua_State *L, int idx, const void *p) {
  idx = lua_absindex(L, idx);
  lua_pushlightuserdata(L, (void *)(uintptr_t)p);
  lua_insert(L, -2);
  lua_rawset(L, idx);
}

static inline int lua_geti(lua_State *L, int idx, lua_Integer n) {
  idx = lua_absindex(L, idx);
  lua_pushinteger(L, n);
  return lua_gettable(L, idx);
}

static inline void lua_seti(lua_State *L, int idx, lua_Integer n) {
  idx = lua_absindex(L, idx);
  lua_pushinteger(L, n);
  lua_insert(L, -2);
  lua_settable(L, idx);
}

static inline void *lua_newuserdatauv(lua_State *L, size_t size, int nuv) {
  void *p = lua_newuserdata(L, size);
  if (nuv > 0) {
    lua_createtable(L, nuv, 0);
    lua_setfenv(L, -2);
  }
  return p;
}

/* Pushes user value n of the userdata at idx (nil and LUA_TNONE when it has none). */
static inline int lua_getiuservalue(lua_State *L, int idx, int n) {
  lua_getfenv(L, idx);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return LUA_TNONE;
  }
  lua_rawgeti(L, -1, n);
  lua_remove(L, -2);
  return lua_type(L, -1);
}

/* Pops a value into user value n of the userdata at idx. */
static inline int lua_setiuservalue(lua_State *L, int idx, int n) {
  idx = lua_absindex(L, idx);
  lua_getfenv(L, idx);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 2);
    return 0;
  }
  lua_insert(L, -2);
  lua_rawseti(L, -2, n);
  lua_pop(L, 1);
  return 1;
}

static inline int wsl_compat_resume(lua_State *co, lua_State *from, int nargs, int *nres) {
  (void)from;
  int st = (lua_resume)(co, nargs);
  *nres = st == LUA_OK || st == LUA_YIELD ? lua_gettop(co) : 0;
  return st;
}
#define lua_resume(co, from, nargs, nres) wsl_compat_resume(co, from, nargs, nres)

/* Buffers of a known size: a scratch userdata on the stack, made a string at the end. */
static inline char *luaL_buffinitsize(lua_State *L, luaL_Buffer *b, size_t size) {
  b->L = L;
  b->p = lua_newuserdata(L, size ? size : 1);
  return b->p;
}

static inline void luaL_pushresultsize(luaL_Buffer *b, size_t n) {
  lua_pushlstring(b->L, b->p, n);
  lua_remove(b->L, -2);
}

#define WSL_MAINTHREAD_KEY "ws.core.mainthread"

/* Pushes the main thread (see the top of the file). */
static inline void wsl_push_main_thread(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, WSL_MAINTHREAD_KEY) == LUA_TTHREAD) return;
  lua_pop(L, 1);
  if (!lua_pushthread(L)) {
    lua_pop(L, 1);
    lua_newthread(L);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, WSL_MAINTHREAD_KEY);
}

#else

#define WSL_HAVE_CONTINUATIONS 1

static inline void wsl_push_main_thread(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
}

#endif

/* A size or a length as a Lua number: an integer from 5.3 on (sizes stay below 2^63), a
 * float before (5.1's lua_Integer may be 32 bits). */
#if LUA_VERSION_NUM >= 503
#define wsl_push_size(L, v) lua_pushinteger(L, (lua_Integer)(v))
#else
#define wsl_push_size(L, v) lua_pushnumber(L, (lua_Number)(v))
#endif

#endif
