/* Debug logging a person can turn on: WS_DEBUG=1 (handshakes, refusals, closes) or 2 (and
 * every frame), or core.set_logger(fn, level). Off, each log point is one test of an int and
 * the frame hook of the protocol core stays NULL. Lines go to stderr as they happen, or to a
 * Lua function from the top of the next loop iteration: the runtime's callbacks never run
 * Lua code. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_core.h"

#define LINE_MAX_BYTES 512
#define LOGQ_MAX (1u << 20) /* lines queued for the Lua logger beyond this are dropped */

static int tracing_states; /* Lua states of this process that log frames (level 2) */

static const char *opcode_name(int op) {
  switch (op) {
  case WS_OP_CONTINUATION: return "continuation";
  case WS_OP_TEXT: return "text";
  case WS_OP_BINARY: return "binary";
  case WS_OP_CLOSE: return "close";
  case WS_OP_PING: return "ping";
  case WS_OP_PONG: return "pong";
  default: return "reserved";
  }
}

const char *wsl_log_who(const wsl_conn *c, char *buf, size_t cap) {
  char addr[64];
  ws_stream_remote_addr(&c->s, addr, sizeof addr);
  snprintf(buf, cap, "%sconn %u %s:%u", c->server ? "" : "client ", (unsigned)c->id, addr, (unsigned)c->s.remote_port);
  return buf;
}

/* ws_conn's frame hook: every ws_conn of this module is the first member of a ws_stream. */
static void trace_frame(const ws_conn *wc, int out, int fin, unsigned rsv, int opcode, uint64_t len) {
  const ws_stream *s = (const ws_stream *)(const void *)wc;
  if (!s->loop || !s->user) return;
  wsl_ctx *x = ws_loop_user(s->loop);
  if (!x || x->log_level < 2) return;
  char who[96];
  wsl_log(x, 2, "%s: frame %s %s fin=%d rsv=%u len=%llu", wsl_log_who(s->user, who, sizeof who),
          out ? "out" : "in", opcode_name(opcode), fin, rsv, (unsigned long long)len);
}

static void set_level(wsl_ctx *x, int level) {
  if (level < 0) level = 0;
  if (level > 2) level = 2;
  if ((x->log_level >= 2) != (level >= 2)) tracing_states += level >= 2 ? 1 : -1;
  x->log_level = level;
  ws_conn_trace = tracing_states > 0 ? trace_frame : NULL;
}

void wsl_log_init(wsl_ctx *x) {
  const char *v = getenv("WS_DEBUG");
  x->logger_ref = LUA_NOREF;
  if (v && *v) set_level(x, atoi(v) > 0 ? atoi(v) : (strcmp(v, "0") ? 1 : 0));
}

void wsl_log(wsl_ctx *x, int level, const char *fmt, ...) {
  char line[LINE_MAX_BYTES];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) n = (int)sizeof line - 1;
  if (x->logger_ref == LUA_NOREF) {
    fprintf(stderr, "ws[%d]: %s\n", level, line);
    fflush(stderr);
    return;
  }
  size_t need = (size_t)n + 2; /* the level byte, the line, its NUL */
  if (x->logq_len + need > x->logq_cap) {
    if (x->logq_len + need > LOGQ_MAX) return;
    size_t cap = x->logq_cap ? x->logq_cap * 2 : 4096;
    while (cap < x->logq_len + need) cap *= 2;
    char *q = realloc(x->logq, cap);
    if (!q) return;
    x->logq = q;
    x->logq_cap = cap;
  }
  x->logq[x->logq_len] = (char)('0' + level);
  memcpy(x->logq + x->logq_len + 1, line, (size_t)n + 1);
  x->logq_len += need;
  x->signals |= WSL_LOG_PENDING;
  ws_loop_wakeup(x->loop);
}

void wsl_log_flush(wsl_ctx *x) {
  lua_State *L = x->L;
  if (!x->logq_len) return;
  /* The logger may log again (or change the logger): take the queue first. */
  char *q = x->logq;
  size_t len = x->logq_len;
  x->logq = NULL;
  x->logq_len = x->logq_cap = 0;
  for (size_t at = 0; at < len;) {
    int level = q[at] - '0';
    const char *line = q + at + 1;
    size_t n = strlen(line);
    at += n + 2;
    if (x->logger_ref == LUA_NOREF) {
      fprintf(stderr, "ws[%d]: %s\n", level, line);
      continue;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, x->logger_ref);
    lua_pushlstring(L, line, n);
    lua_pushinteger(L, level);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
      fprintf(stderr, "ws: logger failed: %s\n", lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  }
  free(q);
}

void wsl_log_free(wsl_ctx *x) {
  free(x->logq);
  x->logq = NULL;
  x->logq_len = x->logq_cap = 0;
  set_level(x, 0);
}

/* A connection that was open is gone: who sent the first close frame, the codes and reasons
 * (the peer's; ours is logged as "closing" when the application closes), and why this side
 * ended it when it did (idle or ping timeout, a slow subscriber, a protocol error). */
void wsl_log_closed(wsl_ctx *x, const wsl_conn *c) {
  const ws_stream *s = &c->s;
  char who[96];
  const char *reason = ws_stream_close_reason(s);
  const char *why = s->error ? s->error : "";
  if (!reason) reason = "";
  wsl_log_who(c, who, sizeof who);
  if (s->fail_code)
    wsl_log(x, 1, "%s: closed by this side: code %u (%s)", who, (unsigned)s->fail_code, why);
  else if (ws_conn_close_sent(&s->ws) == WS_CLOSE_SENT_FIRST)
    wsl_log(x, 1, "%s: closed by this side%s%s%s; the peer answered code %u, reason \"%s\"", who, *why ? " (" : "", why,
            *why ? ")" : "", (unsigned)s->close_code, reason);
  else if (ws_conn_close_sent(&s->ws) == WS_CLOSE_SENT_REPLY)
    wsl_log(x, 1, "%s: closed by the peer: code %u, reason \"%s\"", who, (unsigned)s->close_code, reason);
  else
    wsl_log(x, 1, "%s: closed without a closing handshake: code %u%s%s%s", who, (unsigned)s->close_code, *why ? " (" : "",
            why, *why ? ")" : "");
}

/* core.set_logger(fn|nil [, level]): fn(line, level) gets each line; nil: stderr. level
 * (default 1 with a function, unchanged without) 0 turns logging off. Returns the level. */
static int l_set_logger(lua_State *L) {
  wsl_ctx *x = wsl_ctx_get(L);
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_Integer level = luaL_optinteger(L, 2, lua_isnoneornil(L, 1) ? x->log_level : (x->log_level ? x->log_level : 1));
  if (level < 0 || level > 2) return luaL_argerror(L, 2, "level 0, 1 or 2 expected");
  wsl_log_flush(x); /* lines logged so far go where they were meant to */
  luaL_unref(L, LUA_REGISTRYINDEX, x->logger_ref);
  x->logger_ref = LUA_NOREF;
  if (!lua_isnoneornil(L, 1)) {
    lua_pushvalue(L, 1);
    x->logger_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  set_level(x, (int)level);
  lua_pushinteger(L, x->log_level);
  return 1;
}

/* core.log_level() -> the current level. */
static int l_log_level(lua_State *L) {
  lua_pushinteger(L, wsl_ctx_get(L)->log_level);
  return 1;
}

void wsl_log_open_lib(lua_State *L, int mod) {
  static const luaL_Reg funcs[] = { { "set_logger", l_set_logger }, { "log_level", l_log_level }, { NULL, NULL } };
  lua_pushvalue(L, mod);
  lua_getfield(L, LUA_REGISTRYINDEX, "ws.core.ctx");
  luaL_setfuncs(L, funcs, 1);
  lua_pop(L, 1);
}
