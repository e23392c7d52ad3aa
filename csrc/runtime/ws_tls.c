/* TLS over non-blocking sockets with OpenSSL: contexts and the ws_transport table.
 * Every SSL call may want the other direction (a read that must write first, a write that
 * must read); those cases are reported in s->tp_wait so the stream polls for them, and
 * plaintext OpenSSL already holds is reported by pending() so it is read without polling. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ws_rt_internal.h"
#include "ws_tls.h"

#define WS_TLS_COALESCE 16384 /* small queued pieces are joined into records up to this size */
#define WS_TLS_SMALL 4096     /* a piece under this size is worth copying to join others */
#define WS_TLS_INTERN_MAX 128
#define WS_TLS_READ_AHEAD 65536 /* OpenSSL's read buffer: one recv() takes up to this much */

typedef struct tls_name {
  char *name;
  SSL_CTX *ctx;
} tls_name;

struct ws_tls_ctx {
  size_t refs;
  SSL_CTX *ctx;
  int server, verify;
  tls_name *names;
  size_t nnames;
};

/* Per connection: the SSL object, the context it holds, and which direction each side waits for. */
typedef struct tls_conn {
  SSL *ssl;
  ws_tls_ctx *ctx;
  uint8_t read_cross;   /* the last read or handshake step waits for the socket to be writable */
  uint8_t write_cross;  /* the last write waits for the socket to be readable */
  uint8_t first_seen;   /* server: the peer's first byte was checked (plain_http_first) */
  uint8_t recv_short;   /* the socket's last recv() returned less than asked: likely drained */
  uint8_t big_reads;    /* a recv() filled OpenSSL's buffer: it is WS_TLS_READ_AHEAD from now on */
  int fd;
} tls_conn;

/* ---- error texts ---- */

static char *intern_table[WS_TLS_INTERN_MAX];
static size_t intern_n;

const char *ws_tls_intern(const char *text, const char *fallback) {
  for (size_t i = 0; i < intern_n; i++)
    if (strcmp(intern_table[i], text) == 0) return intern_table[i];
  if (intern_n == WS_TLS_INTERN_MAX) return fallback;
  char *copy = malloc(strlen(text) + 1);
  if (!copy) return fallback;
  strcpy(copy, text);
  intern_table[intern_n++] = copy;
  return copy;
}

/* "what: OpenSSL's reason" into err; always returns NULL (for `return fail(...)`). */
static void *fail(char *err, const char *fmt, ...) {
  char head[WS_TLS_ERR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(head, sizeof head, fmt, ap);
  va_end(ap);
  unsigned long code = ERR_peek_error(); /* the oldest: the root cause */
  const char *reason = code ? ERR_reason_error_string(code) : NULL;
  if (reason) snprintf(err, WS_TLS_ERR_MAX, "%.160s: %.80s", head, reason);
  else snprintf(err, WS_TLS_ERR_MAX, "%s", head);
  ERR_clear_error();
  return NULL;
}

/* The reason a handshake, read or write failed, as a process-lifetime text. */
static const char *failure_text(tls_conn *t, int e, int err_no) {
  char buf[WS_TLS_ERR_MAX];
  unsigned long code = ERR_get_error();
  if (code && ERR_GET_LIB(code) == ERR_LIB_SSL && ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    long v = SSL_get_verify_result(t->ssl);
    snprintf(buf, sizeof buf, "tls: certificate verify failed: %s", X509_verify_cert_error_string(v));
  } else if (code) {
    const char *reason = ERR_reason_error_string(code);
    if (reason) snprintf(buf, sizeof buf, "tls: %s", reason);
    else {
      char text[WS_TLS_ERR_MAX - 8];
      ERR_error_string_n(code, text, sizeof text);
      snprintf(buf, sizeof buf, "tls: %s", text);
    }
  } else if (e == SSL_ERROR_SYSCALL) {
    snprintf(buf, sizeof buf, "tls: %s", err_no ? strerror(err_no) : "connection closed by the peer");
  } else if (e == SSL_ERROR_ZERO_RETURN) {
    snprintf(buf, sizeof buf, "tls: the peer closed the connection (close_notify)");
  } else {
    snprintf(buf, sizeof buf, "tls: failed (SSL error %d)", e);
  }
  ERR_clear_error();
  return ws_tls_intern(buf, "tls: failed");
}

/* ---- contexts ---- */

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg) {
  static const unsigned char ours[] = "\x08http/1.1";
  unsigned char *sel;
  (void)ssl; (void)arg;
  if (SSL_select_next_proto(&sel, outlen, ours, sizeof ours - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK; /* no ALPN in the answer; the HTTP upgrade decides */
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

static int name_matches(const char *pattern, const char *name) {
  if (pattern[0] == '*' && pattern[1] == '.') {
    const char *dot = strchr(name, '.');
    return dot && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
  }
  return strcasecmp(pattern, name) == 0;
}

static int servername_cb(SSL *ssl, int *alert, void *arg) {
  ws_tls_ctx *c = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  (void)alert;
  if (!name) return SSL_TLSEXT_ERR_NOACK;
  for (size_t i = 0; i < c->nnames; i++) {
    if (name_matches(c->names[i].name, name)) {
      SSL_set_SSL_CTX(ssl, c->names[i].ctx);
      return SSL_TLSEXT_ERR_OK;
    }
  }
  return SSL_TLSEXT_ERR_OK; /* the default certificate */
}

static SSL_CTX *new_ssl_ctx(const ws_tls_options *o, char *err) {
  static const unsigned char sid[] = "lua-ws";
  SSL_CTX *c = SSL_CTX_new(o->server ? TLS_server_method() : TLS_client_method());
  if (!c) return fail(err, "cannot create a TLS context");
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  uint64_t op = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION;
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
  op |= SSL_OP_IGNORE_UNEXPECTED_EOF; /* many peers close TCP after the WebSocket close */
#endif
  SSL_CTX_set_options(c, op);
  /* Partial writes: a queue of frames is written record by record. Moving buffer: a retry
   * after WANT_WRITE may come from a different (larger) buffer with the same bytes first.
   * No SSL_MODE_RELEASE_BUFFERS: idle connections give their buffers back in release_idle. */
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  /* Read ahead: one recv() for several records; what it holds is reported by pending(). */
  SSL_CTX_set_read_ahead(c, 1);
  if (o->server) {
    SSL_CTX_set_alpn_select_cb(c, alpn_select, NULL);
    SSL_CTX_set_session_id_context(c, sid, sizeof sid - 1);
    if (o->verify) {
      if (!o->ca) { SSL_CTX_free(c); return fail(err, "verify_peer needs a ca file"); }
      if (SSL_CTX_load_verify_locations(c, o->ca, NULL) != 1) {
        SSL_CTX_free(c);
        return fail(err, "cannot load CA file %s", o->ca);
      }
      STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca);
      if (names) SSL_CTX_set_client_CA_list(c, names);
      SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
  } else {
    static const unsigned char protos[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(c, protos, sizeof protos - 1);
    if (o->verify) {
      int ok = o->ca ? SSL_CTX_load_verify_locations(c, o->ca, NULL) : SSL_CTX_set_default_verify_paths(c);
      if (ok != 1) {
        SSL_CTX_free(c);
        return o->ca ? fail(err, "cannot load CA file %s", o->ca) : fail(err, "cannot load the system's CA certificates");
      }
      SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    }
  }
  return c;
}

static int load_pair(SSL_CTX *c, const char *cert, const char *key, char *err) {
  if (SSL_CTX_use_certificate_chain_file(c, cert) != 1) return fail(err, "cannot load certificate %s", cert), -1;
  if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1) return fail(err, "cannot load key %s", key), -1;
  if (SSL_CTX_check_private_key(c) != 1) return fail(err, "key %s does not match certificate %s", key, cert), -1;
  return 0;
}

static void ctx_free(ws_tls_ctx *c) {
  for (size_t i = 0; i < c->nnames; i++) {
    free(c->names[i].name);
    SSL_CTX_free(c->names[i].ctx);
  }
  free(c->names);
  SSL_CTX_free(c->ctx);
  free(c);
}

ws_tls_ctx *ws_tls_ctx_new(const ws_tls_options *o, char err[WS_TLS_ERR_MAX]) {
  ws_tls_ctx *c = calloc(1, sizeof *c);
  err[0] = 0;
  ERR_clear_error();
  if (!c) { snprintf(err, WS_TLS_ERR_MAX, "out of memory"); return NULL; }
  c->refs = 1;
  c->server = o->server != 0;
  c->verify = o->verify != 0;
  if (o->server && (!o->cert || !o->key)) {
    snprintf(err, WS_TLS_ERR_MAX, "a server needs cert and key");
    goto bad;
  }
  if (!(c->ctx = new_ssl_ctx(o, err))) goto bad;
  if (o->cert && o->key && load_pair(c->ctx, o->cert, o->key, err) < 0) goto bad;
  if (o->server && o->nnames) {
    c->names = calloc(o->nnames, sizeof *c->names);
    if (!c->names) { snprintf(err, WS_TLS_ERR_MAX, "out of memory"); goto bad; }
    for (size_t i = 0; i < o->nnames; i++) {
      const ws_tls_name *n = &o->names[i];
      tls_name *d = &c->names[c->nnames];
      if (!(d->ctx = new_ssl_ctx(o, err))) goto bad;
      c->nnames++;
      if (!(d->name = malloc(strlen(n->name) + 1))) { snprintf(err, WS_TLS_ERR_MAX, "out of memory"); goto bad; }
      strcpy(d->name, n->name);
      if (load_pair(d->ctx, n->cert, n->key, err) < 0) goto bad;
    }
    SSL_CTX_set_tlsext_servername_callback(c->ctx, servername_cb);
    SSL_CTX_set_tlsext_servername_arg(c->ctx, c);
  }
  return c;
bad:
  ctx_free(c);
  return NULL;
}

void ws_tls_ctx_ref(ws_tls_ctx *c) { c->refs++; }

void ws_tls_ctx_unref(ws_tls_ctx *c) {
  if (c && --c->refs == 0) ctx_free(c);
}

int ws_tls_ctx_is_server(const ws_tls_ctx *c) { return c->server; }

/* ---- a socket BIO that never raises SIGPIPE ---- */

/* OpenSSL's socket BIO writes with write(): a peer that went away would kill the process
 * with SIGPIPE. This one uses send(MSG_NOSIGNAL), so it is an EPIPE for that connection. */
static int sock_write(BIO *b, const char *p, int n) {
  int fd = ((tls_conn *)BIO_get_data(b))->fd;
  ssize_t r;
  BIO_clear_retry_flags(b);
  do r = send(fd, p, (size_t)n, MSG_NOSIGNAL); while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
  return (int)r;
}

static int sock_read(BIO *b, char *p, int n) {
  tls_conn *t = BIO_get_data(b);
  ssize_t r;
  BIO_clear_retry_flags(b);
  do r = recv(t->fd, p, (size_t)n, 0); while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
  t->recv_short = r < n;
  /* The socket had more than the read buffer (one record, the default) holds: the next buffer
   * takes about four records, half the recv() calls for large messages. Connections that get
   * small messages keep the small buffer, and every buffer is freed when idle (release_idle). */
  if (r == n && !t->big_reads) {
    t->big_reads = 1;
    SSL_set_default_read_buffer_len(t->ssl, WS_TLS_READ_AHEAD);
  }
  return (int)r;
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b; (void)num; (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int sock_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static BIO_METHOD *sock_meth;

static BIO_METHOD *sock_method(void) {
  BIO_METHOD *m = sock_meth;
  if (m) return m;
  m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "lua-ws socket");
  if (!m) return NULL;
  BIO_meth_set_write(m, sock_write);
  BIO_meth_set_read(m, sock_read);
  BIO_meth_set_ctrl(m, sock_ctrl);
  BIO_meth_set_create(m, sock_create);
  return sock_meth = m;
}

void ws_tls_release(void) {
  BIO_meth_free(sock_meth); /* no BIO is left: every SSL (which owns its BIO) was freed */
  sock_meth = NULL;
  while (intern_n) free(intern_table[--intern_n]);
}

/* ---- the transport ---- */

static void report_wait(ws_stream *s, const tls_conn *t) {
  s->tp_wait = (uint8_t)((t->read_cross ? EV_WRITE : 0) | (t->write_cross ? EV_READ : 0));
}

/* OpenSSL's record buffers (about 17 KiB each way) are kept while the connection is busy and
 * freed once it has nothing buffered either way: after the socket is drained (also between
 * handshake steps) and after the whole queue was written. (SSL_MODE_RELEASE_BUFFERS frees the write buffer after every
 * record: a malloc and free of 17 KiB per 16 KiB written.) SSL_free_buffers does nothing while
 * a record is half read or half written. */
static void release_idle(tls_conn *t) {
  if (!SSL_has_pending(t->ssl)) SSL_free_buffers(t->ssl);
}

/* Maps a WANT_* result to EAGAIN; returns 1 if it was one. `reading`: a read or handshake. */
static int would_block(ws_stream *s, tls_conn *t, int e, int reading) {
  int want;
  if (e == SSL_ERROR_WANT_READ) want = EV_READ;
  else if (e == SSL_ERROR_WANT_WRITE) want = EV_WRITE;
  else return 0;
  s->want = (uint8_t)want;
  if (reading) t->read_cross = want == EV_WRITE;
  else t->write_cross = want == EV_READ;
  report_wait(s, t);
  errno = EAGAIN;
  return 1;
}

/* The one rule for telling plain HTTP on a TLS port apart: a TLS record starts with its
 * content type (20 to 24; an SSLv2-style hello with a byte of 0x80 or more), an HTTP request
 * with its method, a token of capital letters. Any other first byte is left to OpenSSL. */
static int plain_http_first(unsigned char first) { return first >= 'A' && first <= 'Z'; }

/* Server side, before OpenSSL reads anything: peek at the first byte. 1 plain HTTP, 0 not
 * (or the socket has nothing to say: OpenSSL reports the end or the error), -1 no byte yet. */
static int peek_plain_http(ws_stream *s) {
  unsigned char first;
  ssize_t r;
  do r = recv(s->fd, &first, 1, MSG_PEEK); while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return -1;
  return r == 1 && plain_http_first(first);
}

static int tls_handshake(ws_stream *s) {
  tls_conn *t = s->tls;
  if (!t->first_seen && SSL_is_server(t->ssl)) {
    int plain = peek_plain_http(s);
    if (plain < 0) {
      s->want = EV_READ;
      errno = EAGAIN;
      return 0;
    }
    t->first_seen = 1;
    if (plain) {
      s->error = "tls: plain HTTP request sent to a TLS port";
      return WS_TP_PLAIN_HTTP;
    }
  }
  ERR_clear_error();
  errno = 0;
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) {
    t->read_cross = 0;
    report_wait(s, t);
    return 1;
  }
  int saved = errno, e = SSL_get_error(t->ssl, r);
  if (would_block(s, t, e, 1)) {
    if (e == SSL_ERROR_WANT_READ) release_idle(t); /* a peer that stops halfway holds none */
    return 0;
  }
  s->error = failure_text(t, e, saved);
  return -1;
}

/* Fills p with as many records as are there: a short read then means the socket is drained
 * (as for a plain socket), so the stream goes back to polling only when it has to. */
static ssize_t tls_read(ws_stream *s, void *p, size_t n) {
  tls_conn *t = s->tls;
  size_t total = 0;
  int r, saved, e;
  for (;;) {
    size_t got = 0;
    ERR_clear_error();
    errno = 0;
    r = SSL_read_ex(t->ssl, (char *)p + total, n - total, &got);
    if (r != 1) break;
    total += got;
    if (t->read_cross) { t->read_cross = 0; report_wait(s, t); }
    if (total == n) return (ssize_t)total;
    /* All OpenSSL held is out and the recv() that brought it came back short: the socket
     * is drained, so no recv() that can only say EAGAIN (the loop polls again anyway). */
    if (t->recv_short && !SSL_has_pending(t->ssl)) {
      SSL_free_buffers(t->ssl);
      return (ssize_t)total;
    }
  }
  saved = errno;
  e = SSL_get_error(t->ssl, r);
  if (total) { /* the condition (EAGAIN, end or error) shows again at the next call */
    if (e == SSL_ERROR_WANT_WRITE) { t->read_cross = 1; report_wait(s, t); }
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ) release_idle(t);
    return (ssize_t)total;
  }
  if (would_block(s, t, e, 1)) {
    if (e == SSL_ERROR_WANT_READ) release_idle(t);
    return -1;
  }
  switch (e) {
  case SSL_ERROR_ZERO_RETURN: /* close_notify, or a plain end of stream */
    return 0;
  case SSL_ERROR_SYSCALL:
    if (ERR_peek_error() == 0) {
      ERR_clear_error();
      errno = saved ? saved : ECONNRESET;
      return saved ? -1 : 0;
    }
    /* fall through */
  default:
    s->error = failure_text(t, e, saved);
    errno = EPROTO;
    return -1;
  }
}

/* Writes the iovecs record by record (small pieces joined), as far as the socket takes them.
 * A retry after WANT_WRITE starts with the same bytes in a chunk at least as long, as
 * OpenSSL requires: chunking depends only on the queued bytes, which only grow at the end. */
static ssize_t tls_writev(ws_stream *s, const struct iovec *iov, int iovcnt) {
  tls_conn *t = s->tls;
  unsigned char join[WS_TLS_COALESCE];
  size_t done = 0, off = 0;
  int i = 0;
  while (i < iovcnt) {
    const unsigned char *p;
    size_t len = iov[i].iov_len - off;
    if (len == 0) { i++; off = 0; continue; }
    if (len < WS_TLS_SMALL && i + 1 < iovcnt) {
      size_t fill = 0, o = off;
      for (int k = i; k < iovcnt && fill < sizeof join; k++, o = 0) {
        size_t take = iov[k].iov_len - o;
        if (take > sizeof join - fill) take = sizeof join - fill;
        memcpy(join + fill, (const char *)iov[k].iov_base + o, take);
        fill += take;
      }
      p = join;
      len = fill;
    } else {
      p = (const unsigned char *)iov[i].iov_base + off;
    }
    size_t w = 0;
    ERR_clear_error();
    errno = 0;
    int r = SSL_write_ex(t->ssl, p, len, &w);
    if (r != 1) {
      int saved = errno, e = SSL_get_error(t->ssl, r);
      if (would_block(s, t, e, 0)) return done ? (ssize_t)done : -1;
      if (done) return (ssize_t)done; /* report the failure on the next call */
      if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        errno = saved ? saved : EPIPE;
        return -1;
      }
      s->error = failure_text(t, e, saved);
      errno = EPROTO;
      return -1;
    }
    if (t->write_cross) { t->write_cross = 0; report_wait(s, t); }
    done += w;
    while (w && i < iovcnt) { /* advance over what was written */
      size_t left = iov[i].iov_len - off;
      if (w < left) { off += w; w = 0; } else { w -= left; i++; off = 0; }
    }
  }
  release_idle(t); /* all written */
  return (ssize_t)done;
}

static size_t tls_pending(ws_stream *s) {
  tls_conn *t = s->tls;
  if (!t) return 0;
  int n = SSL_pending(t->ssl);
  if (n > 0) return (size_t)n;
  return SSL_has_pending(t->ssl) ? 1 : 0;
}

static void tls_shutdown(ws_stream *s) {
  tls_conn *t = s->tls;
  if (t && SSL_is_init_finished(t->ssl)) {
    ERR_clear_error();
    SSL_shutdown(t->ssl); /* close_notify; what the socket does not take now is dropped */
    ERR_clear_error();
  }
  shutdown(s->fd, SHUT_WR);
}

static void tls_free(ws_stream *s) {
  tls_conn *t = s->tls;
  if (!t) return;
  SSL_free(t->ssl);
  ws_tls_ctx_unref(t->ctx);
  free(t);
  s->tls = NULL;
  s->tp_wait = 0;
}

const ws_transport ws_transport_tls = {
  "tls", tls_handshake, tls_read, tls_writev, tls_pending, tls_shutdown, tls_free
};

int ws_tls_attach(ws_stream *s, ws_tls_ctx *c, const char *server_name) {
  tls_conn *t = calloc(1, sizeof *t);
  if (!t) { s->error = "out of memory"; return -1; }
  ERR_clear_error();
  t->ssl = SSL_new(c->ctx);
  if (!t->ssl) goto bad;
  BIO_METHOD *m = sock_method();
  BIO *bio = m ? BIO_new(m) : NULL;
  if (!bio) goto bad;
  t->fd = s->fd;
  BIO_set_data(bio, t);
  SSL_set_bio(t->ssl, bio, bio); /* the SSL owns the BIO (one reference for both directions) */
  if (c->server) {
    SSL_set_accept_state(t->ssl);
  } else {
    SSL_set_connect_state(t->ssl);
    if (server_name && *server_name) {
      unsigned char ip[16];
      int is_ip = inet_pton(AF_INET, server_name, ip) == 1 || inet_pton(AF_INET6, server_name, ip) == 1;
      if (!is_ip && SSL_set_tlsext_host_name(t->ssl, server_name) != 1) goto bad;
      if (c->verify) {
        int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), server_name)
                       : SSL_set1_host(t->ssl, server_name);
        if (ok != 1) goto bad;
        SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      }
    }
  }
  t->ctx = c;
  ws_tls_ctx_ref(c);
  s->tls = t;
  s->tp = &ws_transport_tls;
  s->tp_wait = 0;
  return 0;
bad:
  {
    unsigned long code = ERR_get_error();
    const char *reason = code ? ERR_reason_error_string(code) : NULL;
    char buf[WS_TLS_ERR_MAX];
    snprintf(buf, sizeof buf, "tls: %s", reason ? reason : "cannot set up the connection");
    ERR_clear_error();
    s->error = ws_tls_intern(buf, "tls: cannot set up the connection");
  }
  if (t->ssl) SSL_free(t->ssl);
  free(t);
  return -1;
}

int ws_tls_describe(const ws_stream *s, ws_tls_info *info) {
  memset(info, 0, sizeof *info);
  if (s->tp != &ws_transport_tls || !s->tls) return 0;
  const tls_conn *t = s->tls;
  if (!SSL_is_init_finished(t->ssl)) return 0;
  info->version = SSL_get_version(t->ssl);
  info->cipher = SSL_get_cipher_name(t->ssl);
  SSL_get0_alpn_selected(t->ssl, &info->alpn, &info->alpn_len);
  return 1;
}
