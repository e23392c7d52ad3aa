/* Shared vocabulary of the lua-ws protocol core: result codes, opcodes, close codes.
 * The core is sans-I/O: no sockets, no event loop, no Lua. Everything here is plain C99. */
#ifndef WS_COMMON_H
#define WS_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Functions of the core are hidden by default so the modules can live inside any host. */
#if defined(__GNUC__)
#define WS_HIDDEN __attribute__((visibility("hidden")))
#define WS_EXPORT __attribute__((visibility("default")))
/* Rare paths (debug tracing, pongs) kept out of line, so the hot functions around them stay small. */
#define WS_COLD __attribute__((cold, noinline))
#define WS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define WS_HIDDEN
#define WS_EXPORT
#define WS_COLD
#define WS_UNLIKELY(x) (x)
#endif

/* Parser results: a non-negative value is a count of bytes consumed. */
#define WS_AGAIN (-1) /* need more input */
#define WS_ERROR (-2) /* input is invalid; see the error text and close code */

enum ws_opcode {
  WS_OP_CONTINUATION = 0x0,
  WS_OP_TEXT = 0x1,
  WS_OP_BINARY = 0x2,
  WS_OP_CLOSE = 0x8,
  WS_OP_PING = 0x9,
  WS_OP_PONG = 0xA
};

enum ws_close_code {
  WS_CLOSE_NORMAL = 1000,
  WS_CLOSE_GOING_AWAY = 1001,
  WS_CLOSE_PROTOCOL = 1002,
  WS_CLOSE_UNSUPPORTED = 1003,
  WS_CLOSE_NO_STATUS = 1005,   /* never sent on the wire */
  WS_CLOSE_ABNORMAL = 1006,    /* never sent on the wire */
  WS_CLOSE_INVALID_DATA = 1007,
  WS_CLOSE_POLICY = 1008,
  WS_CLOSE_TOO_BIG = 1009,
  WS_CLOSE_EXTENSION = 1010,
  WS_CLOSE_INTERNAL = 1011,
  WS_CLOSE_TRY_AGAIN = 1013
};

/* Is `code` allowed in a close frame on the wire (RFC 6455 7.4.1, 7.4.2)? */
int ws_close_code_valid(unsigned code) WS_HIDDEN;

#endif
