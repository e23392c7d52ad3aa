/* lua-ws for C hosts: the functions ws/core.so (and ws/codec.so) export. Everything else in
 * the modules has hidden visibility.
 *
 * A host that already runs a libev loop gives it to lua-ws before the first `require "ws"` in
 * a Lua state; servers, clients and coroutines started from Lua then run on the host's loop
 * (lua-ws's prepare and idle watchers live there) while the host calls ev_run itself:
 *
 *     struct ev_loop *loop = ev_default_loop(0);
 *     lua_State *L = luaL_newstate();
 *     luaL_openlibs(L);
 *     ws_attach(L, loop);                    // before require "ws"
 *     luaL_dofile(L, "app.lua");             // starts servers with ws.server, returns
 *     ev_run(loop, 0);                       // the host's own loop drives them
 *     lua_close(L);                          // closes every lua-ws socket and watcher...
 *     ev_loop_destroy(loop);                 // ...so the loop goes last
 *
 * With an attached loop, ws.run, ws.step and waiting on the main thread raise (the host runs
 * the loop); Lua code waits inside coroutines (connection handlers, ws.spawn). ws.stop()
 * breaks the host's innermost ev_run. The loop must be used by one thread, and the Lua state
 * only from that thread. See docs/embedding.md. */
#ifndef LUA_WS_H
#define LUA_WS_H

#if defined(__GNUC__) || defined(__clang__)
#define WS_API __attribute__((visibility("default")))
#else
#define WS_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct lua_State;
struct ev_loop;

/* Run lua-ws in state L on the host's libev loop. Call it before ws.core is loaded into L
 * (the first `require "ws"`). Returns 0, or -1 when L or loop is NULL or when ws.core is
 * loaded already on another loop (calling it again with the same loop returns 0). */
WS_API int ws_attach(struct lua_State *L, struct ev_loop *loop);

/* The modules' entry points, for hosts that link them and preload them
 * (luaL_requiref or package.preload) instead of letting `require` find the .so files. */
WS_API int luaopen_ws_core(struct lua_State *L);
WS_API int luaopen_ws_codec(struct lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
