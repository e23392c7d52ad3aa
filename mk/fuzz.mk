# libFuzzer drivers: every fuzz/fuzz_*.c becomes fuzz/bin/fuzz_* (clang, ASan + UBSan), linked with the
# protocol core (csrc/core); what the drivers share is in fuzz/fuzz_common.h. `make fuzz` builds them
# and runs each for FUZZ_SECONDS (default 60) over a temporary copy of fuzz/corpus/<name>/; see
# scripts/fuzz.sh.

FUZZ_CC      ?= clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 $(WARN) -Icsrc -Icsrc/core
FUZZ_OBJDIR  := build/fuzz
FUZZ_DRIVERS := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BINS    := $(patsubst fuzz/%.c,fuzz/bin/%,$(FUZZ_DRIVERS))
# Pure runtime files (no libev, no sockets) a driver may use: the bus envelope codec and the
# verdict on a subscribed connection's replies.
FUZZ_RT_SRC  := csrc/runtime/ws_bus_envelope.c csrc/runtime/ws_bus_push.c
FUZZ_OBJS    := $(patsubst csrc/%.c,$(FUZZ_OBJDIR)/%.o,$(CORE_SRC) $(FUZZ_RT_SRC))

.PHONY: fuzz fuzz-build
# The core objects are shared by every driver: keep them between runs.
.SECONDARY: $(FUZZ_OBJS)
fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@bash scripts/fuzz.sh

$(FUZZ_OBJDIR)/core/%.o: csrc/core/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_OBJDIR)/runtime/%.o: csrc/runtime/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c -o $@ $<

fuzz/bin/%: fuzz/%.c $(FUZZ_OBJS) $(wildcard fuzz/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJS) -lhiredis -lcrypto -lz
