/* TLS for the runtime: reference-counted OpenSSL contexts (server with SNI and ALPN, client
 * with verification on by default) and a ws_transport over non-blocking OpenSSL. A connection
 * keeps the context it started with, so a server can swap its context (certificate renewal)
 * while older connections go on. No OpenSSL type appears here: the binding includes this file. */
#ifndef WS_TLS_H
#define WS_TLS_H

#include <stddef.h>

#include "ws_rt.h"

typedef struct ws_tls_ctx ws_tls_ctx;

/* One certificate a server presents for a host name (SNI); "*.example.com" matches one label. */
typedef struct ws_tls_name {
  const char *name;
  const char *cert;  /* PEM chain file */
  const char *key;   /* PEM private key file */
} ws_tls_name;

typedef struct ws_tls_options {
  int server;               /* 1: a server context, 0: a client context */
  const char *cert, *key;   /* server: required; client: optional client certificate */
  const char *ca;           /* PEM CA file; a client without one uses the system's default paths */
  int verify;               /* server: require a client certificate signed by ca;
                               client: verify the server's certificate and name */
  const ws_tls_name *names; /* server: more certificates, chosen by SNI */
  size_t nnames;
} ws_tls_options;

#define WS_TLS_ERR_MAX 256

/* A new context with one reference, or NULL with the reason in err (OpenSSL's text). */
ws_tls_ctx *ws_tls_ctx_new(const ws_tls_options *o, char err[WS_TLS_ERR_MAX]) WS_HIDDEN;
void ws_tls_ctx_ref(ws_tls_ctx *c) WS_HIDDEN;
void ws_tls_ctx_unref(ws_tls_ctx *c) WS_HIDDEN;  /* NULL is fine */
int ws_tls_ctx_is_server(const ws_tls_ctx *c) WS_HIDDEN;

/* Put the stream (its fd set) under TLS with the context (which it references). A client gives
 * the server's name: sent as SNI unless it is an IP address, and matched against the
 * certificate when the context verifies. Returns 0, or -1 with s->error. */
int ws_tls_attach(ws_stream *s, ws_tls_ctx *c, const char *server_name) WS_HIDDEN;

/* What was negotiated (static strings; NULL before the handshake or without TLS). */
typedef struct ws_tls_info {
  const char *version, *cipher;
  const unsigned char *alpn;  /* not NUL-terminated */
  unsigned alpn_len;
} ws_tls_info;
int ws_tls_describe(const ws_stream *s, ws_tls_info *info) WS_HIDDEN;

/* An error text that lives as long as the process (s->error must): repeated texts are
 * shared, and past a bound the generic text is returned. */
const char *ws_tls_intern(const char *text, const char *fallback) WS_HIDDEN;

/* Free what the TLS layer keeps for the process (the socket BIO method, the interned error
 * texts): for the binding's unload, once no Lua state uses the module, so no stream or client
 * is left to point at them. Whatever is needed again afterwards is made again. */
void ws_tls_release(void) WS_HIDDEN;

extern const ws_transport ws_transport_tls WS_HIDDEN;

#endif
