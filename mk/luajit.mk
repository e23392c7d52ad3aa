# ws.codec and ws.core for LuaJIT 2.1 outside nginx: build/luajit/ws/{codec,core}.so, from objects
# of their own, so the Lua 5.4 modules in lua/ws stay as they are. The binding is written against
# the 5.4 API; csrc/binding/lua_compat.h maps it onto LuaJIT's. Run with the build first on the
# C path, e.g. `luajit examples/echo.lua` (the examples look there under LuaJIT) or
# LUA_CPATH='build/luajit/?.so;;' luajit -e 'require "ws"'.

LUAJIT_INC ?= /usr/include/luajit-2.1

.PHONY: luajit
luajit:
	@$(MAKE) --no-print-directory all LUA=luajit LUA_INC=$(LUAJIT_INC) \
	  BUILD=build/luajit/obj OUT=build/luajit/ws
