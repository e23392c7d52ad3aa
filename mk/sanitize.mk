# AddressSanitizer + UndefinedBehaviorSanitizer build of the modules, for running the whole spec suite.
# `make asan` puts ws/codec.so, ws/core.so and a sanitized Lua interpreter (lua5.4) under $(ASAN_DIR);
# the interpreter carries the sanitizer runtimes, so nothing needs LD_PRELOAD (see spec/support/lua_host.c).

ASAN_DIR   ?= build/asan
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ASAN_LUA   := $(ASAN_DIR)/lua5.4

.PHONY: asan
asan: $(ASAN_LUA)
	$(MAKE) --no-print-directory all BUILD=$(ASAN_DIR)/obj OUT=$(ASAN_DIR)/ws OPT="-O1 -g" \
	  EXTRA_CFLAGS="$(ASAN_FLAGS) -Werror" LDFLAGS="$(ASAN_FLAGS)"

$(ASAN_LUA): spec/support/lua_host.c
	@mkdir -p $(dir $@)
	$(CC) -std=c99 $(WARN) -Werror -O1 -g $(ASAN_FLAGS) -I/usr/include/lua5.4 -o $@ $< -llua5.4
