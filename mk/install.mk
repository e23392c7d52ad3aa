# `make install`: the Lua modules and the C modules under a Lua tree (by default /usr/local for
# $(LUA)); luarocks calls it with INST_LUADIR/INST_LIBDIR pointing into its own tree.
# `make rock`: a clean build of the modules into build/rock for luarocks (whatever Lua it builds for).

PREFIX      ?= /usr/local
INST_LUADIR ?= $(PREFIX)/share/lua/$(LUA)
INST_LIBDIR ?= $(PREFIX)/lib/lua/$(LUA)
LUA_MODULES := $(shell cd lua && find ws -name '*.lua' 2>/dev/null | sort)

.PHONY: install rock
install: all
	@test -f $(OUT)/codec.so || { echo "install: $(OUT)/codec.so was not built" >&2; exit 1; }
	for f in $(LUA_MODULES); do install -D -m 644 lua/$$f $(INST_LUADIR)/$$f || exit 1; done
	for f in $(OUT)/*.so; do install -D -m 755 $$f $(INST_LIBDIR)/ws/$${f##*/} || exit 1; done

rock:
	rm -rf build/rock
	$(MAKE) --no-print-directory all BUILD=build/rock/obj OUT=build/rock/ws
