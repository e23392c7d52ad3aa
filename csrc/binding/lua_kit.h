/* The binding toolkit compiled into both ws.core and ws.codec: header tables and protocol
 * lists read from Lua, option readers, header maps and buffers pushed to Lua, and
 * `nil, message, code` results with the one map of their codes. Written against lua_compat.h
 * (ws.codec loads on Lua 5.1 to 5.4 and LuaJIT), it leaves every rule to the core: names and
 * values are checked by ws_headers_check, the builders' arguments by their own checks
 * (kit_arg_message words their answer). */
#ifndef LUA_KIT_H
#define LUA_KIT_H

#include "lua_compat.h"
#include "ws_common.h"
#include "ws_handshake.h"

/* How a reader reports a bad argument: `fn` set raises "fn: what" (luaL_error); `fn` NULL
 * raises a bad-argument error for stack index `arg`. */
typedef struct kit_where {
  const char *fn;
  int arg;
} kit_where;

/* Raises `what` as `w` says. */
int kit_raise(lua_State *L, kit_where w, const char *what) WS_HIDDEN;

/* Pushes and returns the message of a builder's refusal (ws_response_accept_check,
 * ws_client_request_check): e->why with its "%s" replaced by the value it names. */
const char *kit_arg_message(lua_State *L, const ws_arg_error *e) WS_HIDDEN;

/* Headers from the table at `t` (nil or none: no headers): { name = value } and
 * { { name, value }, ... } entries, mixed as one likes; number values become strings. At most
 * `max` go to out[]; each name and value is one the core's builders accept. Pushes one table
 * that anchors converted values, or nil when there are no headers (leave it on the stack while
 * out[] is used). */
size_t kit_headers(lua_State *L, int t, ws_header *out, size_t max, kit_where w) WS_HIDDEN;

/* Protocol names from the list at `t` (nil or none: none), at most `max`. The strings stay
 * anchored by the list; the builder that sends them checks them (ws_client_request_check). */
size_t kit_protocols(lua_State *L, int t, const char **out, size_t max, kit_where w) WS_HIDDEN;

/* Option readers for the options table at `t`: a missing field gives `def` (NULL). A number
 * must be one (not NaN) and not negative; errors read "<who> option k must be a number" and
 * the like (who: "ws.connect:", "ws.server: bus"). A string stays anchored by the table. */
double kit_optnum(lua_State *L, int t, const char *k, double def, const char *who) WS_HIDDEN;
const char *kit_optstr(lua_State *L, int t, const char *k, const char *who) WS_HIDDEN;

/* Field k of the table at t as a boolean (nil: def). */
int kit_optbool(lua_State *L, int t, const char *k, int def) WS_HIDDEN;
/* Field k of the table at t as a whole number from lo to hi (at most 2^53): 1 with *v set, or
 * *v left alone when k is nil; 0 for anything else (the caller raises its own message). */
int kit_optwhole(lua_State *L, int t, const char *k, double lo, double hi, double *v) WS_HIDDEN;

/* The optional close code at argument idx, for ws_close_args_check (which decides): *given
 * says whether one was passed (nil or none: `def` comes back). A number that is no whole
 * number a long long holds (NaN, 1000.5, 1e300) comes back as -1, which the check refuses;
 * anything but a number raises a bad-argument error. */
long long kit_optcode(lua_State *L, int idx, long long def, int *given) WS_HIDDEN;

/* Pushes { lower-case name = value } of n headers; a repeated header's values are joined
 * with ", " (RFC 9110 5.3). */
void kit_push_headers(lua_State *L, const ws_header *hs, size_t n) WS_HIDDEN;
/* Pushes b's bytes as a string and frees b (a Lua error while pushing leaves them in b, for
 * its owner's __gc). */
void kit_push_buf(lua_State *L, ws_buf *b) WS_HIDDEN;

/* ---- `nil, message, code` results: the one code map of both modules ----
 * A code is a stable short string: "timeout", "closed", "protocol", "toolarge", "tls",
 * "dns", "handshake", "busy", "unavailable", "redis", or an errno name. */

/* nil, message, code (code NULL: nil, message; message NULL: "failed"). Returns the number
 * of results pushed. */
int kit_fail(lua_State *L, const char *message, const char *code) WS_HIDDEN;
/* The errno names a code may be ("ECONNRESET", "EADDRINUSE", ...); `other` for the rest. */
const char *kit_errno_code(int e, const char *other) WS_HIDDEN;
/* The code of a connection that failed with a close code: "toolarge" (1009), "closed" (1011:
 * a deadline missed or out of memory), "protocol" (any other); NULL for 0 (no failure). */
const char *kit_close_code(unsigned close_code) WS_HIDDEN;

#endif
