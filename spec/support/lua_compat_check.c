/* Checks csrc/binding/lua_compat.h on the Lua it is compiled for (spec/lua_compat_spec.lua builds it
 * against LuaJIT 2.1 and Lua 5.4): each 5.4 function the ws.core binding uses behaves as on 5.4.
 * Prints "ok", or one line per failed check. */
#include <stdio.h>
#include <string.h>

#include "lualib.h"
#include "binding/lua_compat.h"

static int key;
static int fails;
#define CHECK(c) do { if (!(c)) { printf("failed, line %d: %s\n", __LINE__, #c); fails++; } } while (0)

int main(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lua_newtable(L);
  lua_pushstring(L, "v");
  lua_rawsetp(L, -2, &key);
  CHECK(lua_rawgetp(L, -1, &key) == LUA_TSTRING);
  lua_pop(L, 1);
  lua_pushstring(L, "three");
  lua_seti(L, -2, 3);
  CHECK(lua_geti(L, -1, 3) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "three") == 0);
  lua_pop(L, 1);
  CHECK(lua_getfield(L, -1, "nope") == LUA_TNIL);
  lua_pop(L, 1);
  CHECK(lua_absindex(L, -1) == lua_gettop(L));
  CHECK(lua_absindex(L, LUA_REGISTRYINDEX) == LUA_REGISTRYINDEX);
  lua_newuserdatauv(L, 16, 2);
  int ud = lua_gettop(L);
  CHECK(lua_getiuservalue(L, ud, 1) == LUA_TNIL);
  lua_pop(L, 1);
  lua_pushinteger(L, 7);
  CHECK(lua_setiuservalue(L, ud, 2) == 1);
  CHECK(lua_getiuservalue(L, ud, 2) == LUA_TNUMBER && lua_tointeger(L, -1) == 7);
  lua_pop(L, 1);
  CHECK(lua_gettop(L) == ud);
  CHECK(lua_rawlen(L, ud) == 16);
  luaL_Buffer b;
  char *d = luaL_buffinitsize(L, &b, 5);
  memcpy(d, "hello", 5);
  luaL_pushresultsize(&b, 4);
  CHECK(strcmp(lua_tostring(L, -1), "hell") == 0 && lua_gettop(L) == ud + 1);
  lua_pop(L, 1);
  wsl_push_main_thread(L);
  CHECK(lua_tothread(L, -1) == L);
  lua_pop(L, 1);
  (void)luaL_dostring(L, "return function(a) local b = coroutine.yield(a + 1, 'x') return b * 2 end");
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, -2);
  lua_pushinteger(L, 1);
  lua_xmove(L, co, 2);
  int nres = -1;
  CHECK(lua_resume(co, L, 1, &nres) == LUA_YIELD && nres == 2 && lua_tointeger(co, 1) == 2);
  lua_pop(co, nres);
  lua_pushinteger(co, 5);
  CHECK(lua_resume(co, L, 1, &nres) == LUA_OK && nres == 1 && lua_tointeger(co, -1) == 10);
  lua_close(L);
  printf("%s\n", fails ? "failed" : "ok");
  return fails != 0;
}
