/* A C program that owns a libev loop and lets lua-ws run on it: the host has its own watchers
 * (a timer that counts, signal watchers that stop it), gives its loop to lua-ws with
 * ws_attach (csrc/ws.h), loads a Lua script that starts servers and returns, and then runs
 * ev_run itself. lua-ws's connections and coroutines are driven by the host's loop.
 *
 *   build/c_host/host examples/c_host/echo.lua [PORT]
 *
 * from the repository root (it adds ./lua to the Lua paths, after LUA_PATH / LUA_CPATH). */
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"
#include "ws.h"

#define TICK_SECONDS 0.2

static unsigned long ticks;

/* The host's own work: a periodic counter. */
static void on_tick(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop; (void)w; (void)revents;
  ticks++;
  printf("host tick %lu\n", ticks);
}

static void on_stop(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)revents;
  printf("host got signal %d\n", w->signum);
  ev_break(loop, EVBREAK_ALL);
}

/* host.ticks() for the script: what the host's timer has counted so far. */
static int l_ticks(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)ticks);
  return 1;
}

/* Appends a directory of the checkout to package.path or package.cpath. */
static void add_path(lua_State *L, const char *field, const char *more) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, field);
  lua_pushfstring(L, "%s;%s", lua_tostring(L, -1), more);
  lua_setfield(L, -3, field);
  lua_pop(L, 2);
}

static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return status;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0); /* the host and the script share stdout: one line at a time */

  struct ev_loop *loop = ev_default_loop(0);
  if (!loop) {
    fprintf(stderr, "host: no libev loop\n");
    return 1;
  }
  ev_timer tick;
  ev_timer_init(&tick, on_tick, TICK_SECONDS, TICK_SECONDS);
  ev_timer_start(loop, &tick);
  ev_signal sigterm, sigint;
  ev_signal_init(&sigterm, on_stop, SIGTERM);
  ev_signal_start(loop, &sigterm);
  ev_signal_init(&sigint, on_stop, SIGINT);
  ev_signal_start(loop, &sigint);

  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "host: no memory for Lua\n");
    return 1;
  }
  luaL_openlibs(L);
  add_path(L, "path", "./lua/?.lua;./lua/?/init.lua");
  add_path(L, "cpath", "./lua/?.so");
  lua_newtable(L);
  lua_pushcfunction(L, l_ticks);
  lua_setfield(L, -2, "ticks");
  lua_setglobal(L, "host");
  /* `arg` as the standalone interpreter sets it: arg[0] the script, arg[1..] the rest. */
  lua_createtable(L, argc - 2, 1);
  for (int i = 1; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");

  /* Before the script's first require "ws": lua-ws then runs on this loop. */
  if (ws_attach(L, loop) != 0) {
    fprintf(stderr, "host: ws_attach failed\n");
    return 1;
  }
  int status = luaL_loadfile(L, argv[1]);
  if (status == LUA_OK) status = lua_pcall(L, 0, 0, 0);
  if (report(L, status) != LUA_OK) {
    lua_close(L);
    return 1;
  }

  ev_run(loop, 0);

  /* lua-ws's sockets and watchers go with the Lua state, before the loop they live on. */
  lua_close(L);
  ev_timer_stop(loop, &tick);
  ev_signal_stop(loop, &sigterm);
  ev_signal_stop(loop, &sigint);
  printf("host stopped after %lu ticks\n", ticks);
  ev_loop_destroy(loop);
  return 0;
}
