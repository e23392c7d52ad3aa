# Benchmarks (bench/): `make bench` runs lua-ws and the peers available here side by side and
# writes bench/RESULTS.md (BENCH_QUICK=1 for a short run; see bench/run.sh for the options);
# `make bench-instr` counts instructions per echoed message under callgrind; `make bench-bus`
# measures the Redis bus (two processes on one redis-server) beside Socket.IO's Redis adapter;
# `make bench-bus-classes` compares the ordered class with the fast one on one node
# (bench/bus_classes.sh; BUS_SUBS, BUS_SECONDS).
BENCH_BIN    ?= bench/bin
BENCH_CFLAGS := -std=c99 -O2 -g -Wall -Wextra -Wpedantic
LIBWEBSOCKETS_HEADER   := $(wildcard /usr/include/libwebsockets.h)

BENCH_PROGS := $(BENCH_BIN)/loadclient $(BENCH_BIN)/tcp_echo $(if $(LIBWEBSOCKETS_HEADER),$(BENCH_BIN)/lws_server)

.PHONY: bench bench-bin bench-instr bench-bus bench-bus-classes
bench-bin: $(BENCH_PROGS)

$(BENCH_BIN)/loadclient: bench/loadclient.c bench/lc_proto.c bench/lc_proto.h bench/lc_hist.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ bench/loadclient.c bench/lc_proto.c -lssl -lcrypto -lz

$(BENCH_BIN)/tcp_echo: bench/peers/tcp_echo.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $<

$(BENCH_BIN)/lws_server: bench/peers/lws_server.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< -lwebsockets

# lua-ws itself is built first; when it does not build, the run goes on and says so.
bench: bench-bin
	@$(MAKE) --no-print-directory all || echo "bench: the lua-ws modules did not build; lua-ws will be skipped"
	BENCH_BIN=$(BENCH_BIN) bench/run.sh

bench-instr: $(BENCH_BIN)/loadclient
	$(MAKE) --no-print-directory all
	BENCH_BIN=$(BENCH_BIN) bench/instr.sh

# The bus section of bench/RESULTS.md (bench/run_bus.sh; BENCH_QUICK=1 for a short run).
bench-bus: $(BENCH_BIN)/loadclient
	@$(MAKE) --no-print-directory all || echo "bench-bus: the lua-ws modules did not build; lua-ws will be skipped"
	BENCH_BIN=$(BENCH_BIN) bench/run_bus.sh

BUS_SUBS    ?= 100
BUS_SECONDS ?= 5
bench-bus-classes: $(BENCH_BIN)/loadclient
	$(MAKE) --no-print-directory all
	bash bench/bus_classes.sh $(BUS_SUBS) $(BUS_SECONDS)
