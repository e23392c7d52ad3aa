/* Client connections: resolve, connect, TLS handshake, send the upgrade request and read the
 * response head, all without blocking the loop. Once the head is read the stream is in phase
 * HEAD_READY and behaves as a server connection does (ws_stream.c); the binding checks the
 * response (ws_response_check_upgrade) and calls ws_stream_open_client. */
#ifndef WS_CONNECT_H
#define WS_CONNECT_H

#include <sys/socket.h>

#include "ws_rt.h"

#define WS_CLIENT_ADDRS 8      /* addresses of one name tried in turn */
#define WS_CLIENT_HOST_MAX 255 /* a DNS name's limit */

struct ws_tls_ctx;
struct ws_dns;
typedef void (*ws_client_fn)(void);

typedef struct ws_client {
  ws_stream *s;
  ws_server_cfg cfg;          /* limits and deadlines of the stream: s->cfg points here */
  struct ws_tls_ctx *tls;     /* referenced until the handshake is done; NULL for ws:// */
  char host[WS_CLIENT_HOST_MAX + 1];
  char server_name[WS_CLIENT_HOST_MAX + 1];
  int port;
  int step;
  int naddrs, next_addr;
  int last_errno;
  struct sockaddr_storage addrs[WS_CLIENT_ADDRS];
  socklen_t addrlens[WS_CLIENT_ADDRS];
  struct ws_dns *dns;         /* a name lookup in flight (getaddrinfo_a) */
  double deadline, poll;
  size_t head_len;            /* a refusal's head, once read (its body is read after it) */
  const char *unix_path;      /* connect to this Unix socket instead (only read by ws_client_start) */
  ws_client_fn io_cb;         /* the stream's own io callback, lent to this file */
  ws_watcher timer;           /* ev_timer: the connect deadline and the DNS polls */
} ws_client;

/* cfg defaults (ws_server_cfg_default) and no TLS. */
void ws_client_init(ws_client *cl) WS_HIDDEN;

/* Start connecting s (from ws_stream_init, its ws_conn already a client one with the upgrade
 * request queued in its output, ws_conn_output). host is a name or an address literal; literal addresses and
 * "localhost" are resolved at once, other names by getaddrinfo_a so the loop never blocks.
 * tls (may be NULL) is a client context; server_name is what the certificate must match
 * (NULL: host). Events come as for any stream: WS_SEV_READ once the response head is there
 * (phase HEAD_READY), or WS_SEV_CLOSED with s->error (and s->err) on failure, bounded by
 * timeout seconds. Error texts start with "dns: " or "tls: " for those stages. Returns 0, or
 * -1 when it failed at once (s->error; no event is sent then if the phase was NEW). */
int ws_client_start(ws_client *cl, ws_stream *s, const char *host, int port, struct ws_tls_ctx *tls,
                    const char *server_name, double timeout) WS_HIDDEN;

#endif
