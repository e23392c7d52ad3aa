# lua-ws build. `make` builds the C modules inside the tree (lua/ws/*.so) so that scripts
# run from the repository root with no environment variables. See README for the targets.

LUA        ?= 5.4
CC         ?= cc
LUA_INC    ?= $(firstword $(wildcard /usr/include/lua$(LUA) /usr/include/luajit-2.1))
WARN       := -Wall -Wextra -Wpedantic -Wno-overlength-strings
OPT        ?= -O2 -g
CFLAGS     ?= $(OPT)
ALL_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -fPIC -fvisibility=hidden \
              $(WARN) $(CFLAGS) -Icsrc -Icsrc/core -I$(LUA_INC) $(EXTRA_CFLAGS)
LDFLAGS    ?=
SHARED     := -shared

CORE_SRC    := $(sort $(wildcard csrc/core/*.c))
RUNTIME_SRC := $(sort $(wildcard csrc/runtime/*.c))
KIT_SRC     := csrc/binding/lua_kit.c
CODEC_SRC   := $(sort $(wildcard csrc/binding/lua_codec*.c)) $(KIT_SRC)
RTBIND_SRC  := $(sort $(wildcard csrc/binding/lua_core*.c)) $(KIT_SRC)
HEADERS     := $(wildcard csrc/*.h csrc/core/*.h csrc/runtime/*.h csrc/binding/*.h)

# BUILD names the object directory, so sanitizer and other-Lua builds never mix objects.
BUILD  ?= build/lua$(LUA)
OUT    ?= lua/ws
obj     = $(patsubst csrc/%.c,$(BUILD)/%.o,$(1))

CODEC_LIBS := -lcrypto -lz
CORE_LIBS  := -lev -lhiredis -lssl -lcrypto -lz

.PHONY: all codec clean deps test chat
all: $(OUT)/codec.so $(OUT)/core.so
codec: $(OUT)/codec.so

$(BUILD)/%.o: csrc/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(OUT)/codec.so: $(call obj,$(CORE_SRC) $(CODEC_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(SHARED) $(LDFLAGS) -o $@ $^ $(CODEC_LIBS)

$(OUT)/core.so: $(call obj,$(CORE_SRC) $(RUNTIME_SRC) $(RTBIND_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(SHARED) $(LDFLAGS) -o $@ $^ $(CORE_LIBS)

clean:
	rm -rf build lua/ws/*.so fuzz/bin bench/bin

# Further targets (test, sanitizers, fuzzing, benchmarks, demos) live one job per file.
-include mk/*.mk
