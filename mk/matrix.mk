# ws.codec for every Lua the project supports, each from its own headers into its own directory:
# build/matrix/<lua>/ws/codec.so for <lua> in 5.1 5.3 5.4 luajit (LuaJIT 2.1 is what OpenResty runs).
# The C is compiled with -Werror here: a warning on any Lua version fails the build.

MATRIX_LUAS := 5.1 5.3 5.4 luajit
matrix_inc   = $(if $(filter luajit,$(1)),/usr/include/luajit-2.1,/usr/include/lua$(1))

.PHONY: matrix $(addprefix matrix-,$(MATRIX_LUAS))
matrix: $(addprefix matrix-,$(MATRIX_LUAS))

$(addprefix matrix-,$(MATRIX_LUAS)): matrix-%:
	@$(MAKE) --no-print-directory codec LUA=$* LUA_INC=$(call matrix_inc,$*) \
	  BUILD=build/matrix/$*/obj OUT=build/matrix/$*/ws EXTRA_CFLAGS=-Werror
