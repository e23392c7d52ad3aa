rockspec_format = "3.0"
package = "lua-ws"
version = "0.2.0-1"

source = {
  url = "git+https://github.com/lua-ws/lua-ws.git",
  tag = "v0.2.0",
}

description = {
  summary = "WebSocket (RFC 6455) for Lua on a C core: server, client, permessage-deflate, TLS",
  detailed = [[
lua-ws serves and connects WebSockets from Lua with a coroutine per connection on a libev loop,
and offers ws.codec, a sans-I/O codec that runs inside any host (OpenResty included) on
Lua 5.1 to 5.4 and LuaJIT.
]],
  homepage = "https://github.com/lua-ws/lua-ws",
}

dependencies = {
  "lua >= 5.1, < 5.5",
}

external_dependencies = {
  LIBEV = { header = "ev.h", library = "ev" },
  OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
  ZLIB = { header = "zlib.h", library = "z" },
  HIREDIS = { header = "hiredis/hiredis.h", library = "hiredis" },
}

-- The project's own Makefile builds ws.codec and ws.core (and knows their sources);
-- `make rock` builds into build/rock, `make install` copies the Lua and C modules into the tree.
build = {
  type = "make",
  build_target = "rock",
  build_variables = {
    LUA_INC = "$(LUA_INCDIR)",
    CFLAGS = "$(CFLAGS)",
    EXTRA_CFLAGS = "-I$(LIBEV_INCDIR) -I$(OPENSSL_INCDIR) -I$(ZLIB_INCDIR) -I$(HIREDIS_INCDIR)",
    LDFLAGS = "-L$(LIBEV_LIBDIR) -L$(OPENSSL_LIBDIR) -L$(ZLIB_LIBDIR) -L$(HIREDIS_LIBDIR)",
  },
  install_target = "install",
  install_variables = {
    BUILD = "build/rock/obj",
    OUT = "build/rock/ws",
    LUA_INC = "$(LUA_INCDIR)",
    INST_LUADIR = "$(LUADIR)",
    INST_LIBDIR = "$(LIBDIR)",
  },
}
