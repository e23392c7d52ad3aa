# The two commands of the README: `make chat` (install, build, run the demo on http://127.0.0.1:8080/)
# and `make test` (install, build, run every test stage; see scripts/test.sh). `make deps` installs
# only. DEMO_PORT picks another port for `make chat`; `make chat-cluster` runs the chat on two
# processes sharing one local Redis.

DEMO_PORT ?= 8080
DEMO      := examples/chat.lua

.PHONY: deps test chat chat-cluster
deps:
	@bash scripts/deps.sh

test:
	@bash scripts/test.sh

chat: deps
	@$(MAKE) --no-print-directory all
	@echo "Starting $(DEMO) on http://127.0.0.1:$(DEMO_PORT)/ (Ctrl-C stops it)"
	lua5.4 $(DEMO) --port $(DEMO_PORT)

# The chat on two processes sharing a local redis-server (DEMO_PORT, DEMO_PORT2, REDIS_PORT).
chat-cluster: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/chat_cluster.sh
