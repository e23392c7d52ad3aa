# The C host example (examples/c_host): a program with its own libev loop that runs lua-ws on it
# through csrc/ws.h. `make c-host` builds $(C_HOST) against $(C_HOST_CORE) (ws/core.so, which
# exports ws_attach); run it from the repository root:
#   build/c_host/host examples/c_host/echo.lua 8080
# C_HOST_FLAGS adds compiler flags (a sanitizer build of core.so needs its -fsanitize flags).
# For LuaJIT (with `make luajit`'s core.so): C_HOST_LUA_INC=/usr/include/luajit-2.1
# C_HOST_LUA_LIB=-lluajit-5.1.

C_HOST       ?= build/c_host/host
C_HOST_CORE  ?= $(OUT)/core.so
C_HOST_LUA   ?= 5.4
C_HOST_FLAGS ?=
C_HOST_LUA_INC ?= /usr/include/lua$(C_HOST_LUA)
C_HOST_LUA_LIB ?= -llua$(C_HOST_LUA)

.PHONY: c-host
c-host: $(C_HOST)

$(C_HOST): examples/c_host/host.c csrc/ws.h $(C_HOST_CORE)
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L $(WARN) $(OPT) $(C_HOST_FLAGS) -Icsrc -I$(C_HOST_LUA_INC) \
	  -o $@ $< $(abspath $(C_HOST_CORE)) -Wl,-rpath,$(abspath $(dir $(C_HOST_CORE))) $(C_HOST_LUA_LIB) -lev
