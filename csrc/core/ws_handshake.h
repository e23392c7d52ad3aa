/* RFC 6455 section 4: the opening handshake, both sides, over caller buffers.
 * Parsers are incremental in the picohttpparser manner: the caller accumulates the bytes
 * received so far and calls again with the longer buffer; results point into it. */
#ifndef WS_HANDSHAKE_H
#define WS_HANDSHAKE_H

#include "ws_buf.h"
#include "ws_common.h"

#define WS_MAX_HEADERS 100            /* more header lines than this: 431 */
#define WS_DEFAULT_MAX_HEADER_BYTES 8192
#define WS_ACCEPT_LEN 28              /* base64 of a SHA-1 digest */
#define WS_KEY_LEN 24                 /* base64 of 16 bytes */
#define WS_INDEXED_HEADERS 10         /* request headers the parser indexes (ws_handshake.c) */

typedef struct ws_header {
  const char *name;
  size_t name_len;
  const char *value;   /* leading and trailing white space removed */
  size_t value_len;
} ws_header;

typedef struct ws_request {
  const char *method;  size_t method_len;
  const char *target;  size_t target_len;  /* as sent: path[?query] */
  const char *path;    size_t path_len;
  const char *query;   size_t query_len;   /* after '?', NULL when absent */
  int minor_version;                       /* HTTP/1.x */
  ws_header headers[WS_MAX_HEADERS];       /* in order, repeated names kept */
  size_t num_headers;
  /* Filled by ws_request_check_upgrade: */
  const char *key;     size_t key_len;     /* Sec-WebSocket-Key */
  const char *origin;  size_t origin_len;  /* NULL when absent */
  /* On error: the HTTP status to answer with and a short reason. */
  int status;
  const char *error;
  size_t _scanned;                         /* private: how far the end of headers was sought */
  size_t _line, _lines;                    /* private: start of the unchecked line, lines checked */
  /* private: the headers the upgrade checks read (Host, Upgrade, Connection, Sec-WebSocket-*,
   * Origin, Content-Length, Transfer-Encoding), noted as the parser meets them so that no check
   * searches the list: index + 1 of the first of each name (0 when absent), how many there are. */
  unsigned char _first[WS_INDEXED_HEADERS], _count[WS_INDEXED_HEADERS];
} ws_request;

/* Parse an HTTP/1.1 request head from buf[0..len). Returns the length of the head
 * (request line + headers + blank line), WS_AGAIN, or WS_ERROR with r->status (400, or 431
 * when the head exceeds max_header_bytes or has more than WS_MAX_HEADERS lines) and
 * r->error. Zero-initialise *r before the first call and keep it between calls. A
 * max_header_bytes of 0 means WS_DEFAULT_MAX_HEADER_BYTES. Until the head is complete the
 * fields are unspecified. */
int ws_request_parse(ws_request *r, const char *buf, size_t len, size_t max_header_bytes) WS_HIDDEN;
/* What zero-initialising *r does for ws_request_parse, without writing the headers array
 * (most of the struct), which the parser fills as it goes. */
void ws_request_init(ws_request *r) WS_HIDDEN;

/* Does the parsed request ask for a WebSocket upgrade at all (an Upgrade header listing
 * websocket)? Plain HTTP requests go elsewhere; one that asks but lacks Connection: Upgrade
 * is an upgrade request that ws_request_check_upgrade answers with 400. Every binding
 * (ws.core, ws.codec and so ws.resty) sorts requests with this one function. */
int ws_request_is_upgrade(const ws_request *r) WS_HIDDEN;

/* Check every RFC 6455 4.2.1 requirement (GET, HTTP/1.1 or later, one valid Host, Upgrade,
 * Connection, a key that is base64 of exactly 16 bytes, version 13, subprotocols that are
 * tokens, at most one Origin, no request body). Returns 0, or the status to answer with
 * (400, 426 for a wrong version) with r->error set. */
int ws_request_check_upgrade(ws_request *r) WS_HIDDEN;

/* First header named `name` (case-insensitive), or NULL. `after` continues a search
 * (NULL to start). */
const ws_header *ws_request_header(const ws_request *r, const char *name, const ws_header *after) WS_HIDDEN;

/* Iterate the comma-separated tokens of a header value (Connection, Sec-WebSocket-Protocol,
 * Sec-WebSocket-Extensions items). *pos starts at 0. Returns 1 and the token (trimmed) or 0
 * at the end. Quoted strings are kept whole. */
int ws_header_next_token(const char *value, size_t value_len, size_t *pos,
                         const char **tok, size_t *tok_len) WS_HIDDEN;

/* The index of the subprotocol p[0..plen) in list[0..n), or -1: the one comparison (exact,
 * as browsers do) behind "the server answers one the client offered" on both sides. */
int ws_protocol_find(const char *const *list, size_t n, const char *p, size_t plen) WS_HIDDEN;

/* Pick the subprotocol: the first of the server's `protocols` (its order of preference)
 * that the client offered in any Sec-WebSocket-Protocol header. Returns its index, or -1. */
int ws_request_choose_protocol(const ws_request *r, const char *const *protocols, size_t n) WS_HIDDEN;

/* Sec-WebSocket-Accept for a key: SHA-1 and base64 from libcrypto. out gets
 * WS_ACCEPT_LEN characters and a NUL. */
void ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]) WS_HIDDEN;
/* Free the SHA-1 implementation ws_accept_key keeps (it is fetched again at the next use):
 * for a binding's unload, once no Lua state uses the module, so a leak checker sees it freed. */
void ws_accept_key_release(void) WS_HIDDEN;
/* Fetch it now: OpenSSL 3's first fetch initialises its provider tables (about 2 MiB of
 * libcrypto pages), a cost of the process rather than of its first handshake. */
void ws_accept_key_prepare(void) WS_HIDDEN;

/* Which argument of a message builder is wrong, and why: the builders' own checks, which a
 * binding calls to raise a precise error instead of checking anything itself. `why` reads
 * "invalid host '%s'", "protocol '%s' offered twice", "invalid key"...: its one "%s", when it
 * has one, stands for value[0..value_len) (the host, the protocol or the header name). */
typedef struct ws_arg_error {
  int arg;                 /* WS_ARG_* */
  size_t index;            /* which protocol or extra header */
  const char *why;
  const char *value;
  size_t value_len;
} ws_arg_error;
enum { WS_ARG_NONE, WS_ARG_HOST, WS_ARG_PATH, WS_ARG_KEY, WS_ARG_PROTOCOL, WS_ARG_EXTENSIONS,
       WS_ARG_ORIGIN, WS_ARG_HEADER };

/* The arguments of ws_response_accept: the protocol a token, extensions a header value, and
 * each extra header valid (ws_headers_check) and none of those the 101 itself carries
 * (Upgrade, Connection, Sec-WebSocket-Accept, -Protocol, -Extensions: the protocol and
 * extensions arguments set the last two). Returns 0, or WS_ARG_* with *e filled. */
int ws_response_accept_check(const char *protocol, const char *extensions, const ws_header *extra,
                             size_t nextra, ws_arg_error *e) WS_HIDDEN;

/* The 101 response. protocol and extensions may be NULL; extra headers (name/value pairs)
 * are appended as given. Returns 0, or -1 (out of memory, or arguments that
 * ws_response_accept_check refuses; nothing is appended then). */
int ws_response_accept(ws_buf *out, const char *key, size_t key_len, const char *protocol,
                       const char *extensions, const ws_header *extra, size_t nextra) WS_HIDDEN;

/* Can a response carry this status: three digits, 100 to 999 (RFC 9110 15)? ws_response_status
 * refuses others; bindings ask this to raise for a status argument before anything is sent. */
int ws_status_valid(long long status) WS_HIDDEN;

/* An error or plain HTTP response: status line, Content-Length, Connection: close, the
 * extra headers, and body (may be NULL). A 426 carries Sec-WebSocket-Version: 13. Returns 0,
 * or -1 (out of memory, a status ws_status_valid refuses, or an extra header that
 * ws_headers_check refuses). */
int ws_response_status(ws_buf *out, int status, const ws_header *extra, size_t nextra,
                       const char *body, size_t body_len) WS_HIDDEN;
/* The same response to a HEAD request: its Content-Length is body's, and no body follows
 * (RFC 7231 4.3.2). */
int ws_response_status_head(ws_buf *out, int status, const ws_header *extra, size_t nextra,
                            const char *body, size_t body_len) WS_HIDDEN;

/* Can this text go on the wire as a header name (an RFC 7230 token) or value (no control
 * characters but tab)? The builders refuse anything else, so no caller can inject lines. */
int ws_header_name_valid(const char *s, size_t n) WS_HIDDEN;
int ws_header_value_valid(const char *s, size_t n) WS_HIDDEN;

/* The first of hs[0..n) that the builders would refuse: returns its index and sets *error to
 * ws_err_header_name or ws_err_header_value; returns n (and *error = NULL) when all pass.
 * Bindings name the header from the index instead of checking again. */
size_t ws_headers_check(const ws_header *hs, size_t n, const char **error) WS_HIDDEN;
extern const char ws_err_header_name[] WS_HIDDEN;   /* "invalid header name" */
extern const char ws_err_header_value[] WS_HIDDEN;  /* "invalid value for header" */

/* Standard reason phrase for a status ("Bad Request"...). */
const char *ws_status_text(int status) WS_HIDDEN;

/* ---- client side ---- */

/* Is this a Sec-WebSocket-Key: base64 of exactly 16 bytes, in its canonical spelling? */
int ws_key_valid(const char *key, size_t len) WS_HIDDEN;

/* Can this go in a request line: one or more visible ASCII characters (0x21..0x7e), nothing
 * else? ws_client_request refuses a path otherwise. */
int ws_target_valid(const char *s) WS_HIDDEN;

/* Is protocols[i] equal to one of protocols[0..i)? (RFC 6455 4.1 wants offers unique.) */
int ws_protocol_repeated(const char *const *protocols, size_t i) WS_HIDDEN;

/* A fresh random key (16 bytes from OpenSSL's RAND, base64). Returns 0 or -1. */
int ws_client_key(char out[WS_KEY_LEN + 1]) WS_HIDDEN;

/* The arguments of ws_client_request: host a uri-host [":" port] as ws_request_check_upgrade
 * wants it of a request's Host (so we never send one a server of ours refuses), path visible
 * ASCII (ws_target_valid), the key
 * one ws_key_valid accepts, protocols tokens and none twice (RFC 6455 4.1), extensions and
 * origin header values, the extra headers valid (ws_headers_check). Returns 0, or WS_ARG_*
 * with *e filled. */
int ws_client_request_check(const char *host, const char *path, const char *key,
                            const char *const *protocols, size_t nprotocols, const char *extensions,
                            const char *origin, const ws_header *extra, size_t nextra,
                            ws_arg_error *e) WS_HIDDEN;

/* The upgrade request. host includes ":port" when not the default; path NULL is "/".
 * protocols (n of them) and extensions (an offer such as "permessage-deflate;
 * client_max_window_bits") may be empty/NULL; origin may be NULL. Returns 0 or -1 (out of
 * memory, or arguments that ws_client_request_check refuses). */
int ws_client_request(ws_buf *out, const char *host, const char *path, const char *key,
                      const char *const *protocols, size_t nprotocols, const char *extensions,
                      const char *origin, const ws_header *extra, size_t nextra) WS_HIDDEN;

typedef struct ws_response {
  int minor_version;
  int status;
  const char *reason;  size_t reason_len;
  ws_header headers[WS_MAX_HEADERS];
  size_t num_headers;
  /* Filled by ws_response_check_upgrade: */
  const char *protocol;   size_t protocol_len;    /* NULL when none chosen */
  const char *extensions; size_t extensions_len;  /* NULL when none accepted */
  const char *error;
  size_t _scanned;
  size_t _line, _lines;
} ws_response;

/* Parse an HTTP/1.1 response head; same contract as ws_request_parse (error -> r->error). */
int ws_response_parse(ws_response *r, const char *buf, size_t len, size_t max_header_bytes) WS_HIDDEN;

/* Check a parsed response against our request (RFC 6455 4.1): status 101 in HTTP/1.1 or
 * later, Upgrade: websocket (alone), Connection, the Accept value for `key`, a protocol that
 * is one of those offered (or none), no extension unless offered and then in one header.
 * Returns 0, or -1 with
 * r->error. */
int ws_response_check_upgrade(ws_response *r, const char *key, const char *const *protocols,
                              size_t nprotocols, int offered_extensions) WS_HIDDEN;

const ws_header *ws_response_header(const ws_response *r, const char *name, const ws_header *after) WS_HIDDEN;

/* The response's Content-Length (the first one): 1 with *len set to it, or to `cap` when it
 * is larger; 0 when there is none; -1 when it is not a length (one or more digits). For the
 * body of a refusal, which a client reads to show what the server said. */
int ws_response_content_length(const ws_response *r, size_t cap, size_t *len) WS_HIDDEN;

#endif
