/* libwebsockets (Debian libwebsockets-dev) peer for the benchmarks: echo or broadcast on
 * 127.0.0.1, written the way the library's own mirror/echo examples are: messages are queued
 * per connection and one is written per WRITEABLE callback.
 * broadcast: every text message received from any connection is sent, unchanged, as one text
 * frame to every open connection, the sender included (the protocol bench/loadclient.c expects);
 * the message is stored once and shared by reference count.
 * Usage: lws_server --port N [--mode echo|broadcast] */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGE (64u << 20)
#define MAX_QUEUE (1u << 20)

typedef struct msg {
  unsigned refs;
  int binary;
  size_t len;
  unsigned char *data; /* LWS_PRE bytes of headroom, then the payload */
} msg;

typedef struct session {
  struct lws *wsi;
  struct session *prev, *next; /* all open connections (broadcast) */
  msg **q;                     /* ring of messages to write */
  size_t qhead, qlen, qcap;
  unsigned char *rx;           /* the message being received */
  size_t rxlen, rxcap;
} session;

static int broadcast_mode;
static session *sessions;
static volatile int interrupted;
static struct lws_context *context;

static msg *msg_new(const unsigned char *p, size_t len, int binary) {
  msg *m = malloc(sizeof *m);
  if (!m) return NULL;
  m->data = malloc(LWS_PRE + len + 1);
  if (!m->data) { free(m); return NULL; }
  memcpy(m->data + LWS_PRE, p, len);
  m->len = len;
  m->binary = binary;
  m->refs = 0;
  return m;
}

static void msg_unref(msg *m) {
  if (--m->refs == 0) { free(m->data); free(m); }
}

static int enqueue(session *s, msg *m) {
  if (s->qlen == s->qcap) {
    if (s->qcap >= MAX_QUEUE) return -1;
    size_t ncap = s->qcap ? s->qcap * 2 : 16;
    msg **nq = malloc(ncap * sizeof *nq);
    if (!nq) return -1;
    for (size_t i = 0; i < s->qlen; i++) nq[i] = s->q[(s->qhead + i) % s->qcap];
    free(s->q);
    s->q = nq;
    s->qcap = ncap;
    s->qhead = 0;
  }
  s->q[(s->qhead + s->qlen) % s->qcap] = m;
  s->qlen++;
  m->refs++;
  lws_callback_on_writable(s->wsi);
  return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  session *s = user;
  switch (reason) {
  case LWS_CALLBACK_ESTABLISHED:
    memset(s, 0, sizeof *s);
    s->wsi = wsi;
    s->next = sessions;
    if (sessions) sessions->prev = s;
    sessions = s;
    break;
  case LWS_CALLBACK_CLOSED:
    if (s->prev) s->prev->next = s->next; else sessions = s->next;
    if (s->next) s->next->prev = s->prev;
    while (s->qlen) {
      msg_unref(s->q[s->qhead]);
      s->qhead = (s->qhead + 1) % s->qcap;
      s->qlen--;
    }
    free(s->q);
    free(s->rx);
    break;
  case LWS_CALLBACK_RECEIVE: {
    if (s->rxlen + len > MAX_MESSAGE) return -1;
    if (s->rxlen + len > s->rxcap) {
      size_t ncap = s->rxcap ? s->rxcap : 4096;
      while (ncap < s->rxlen + len) ncap *= 2;
      unsigned char *n = realloc(s->rx, ncap);
      if (!n) return -1;
      s->rx = n;
      s->rxcap = ncap;
    }
    memcpy(s->rx + s->rxlen, in, len);
    s->rxlen += len;
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi)) break;
    int binary = lws_frame_is_binary(wsi);
    size_t n = s->rxlen;
    s->rxlen = 0;
    if (broadcast_mode && binary) break;
    msg *m = msg_new(s->rx, n, binary);
    if (!m) return -1;
    if (!broadcast_mode) {
      if (enqueue(s, m)) { free(m->data); free(m); return -1; }
      break;
    }
    m->refs = 1; /* held while it is being queued */
    for (session *o = sessions; o; o = o->next) enqueue(o, m);
    msg_unref(m);
    break;
  }
  case LWS_CALLBACK_SERVER_WRITEABLE: {
    if (!s->qlen) break;
    msg *m = s->q[s->qhead];
    /* lws keeps what the socket does not take and writes it before the next WRITEABLE */
    int w = lws_write(wsi, m->data + LWS_PRE, m->len, m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    s->qhead = (s->qhead + 1) % s->qcap;
    s->qlen--;
    msg_unref(m);
    if (w < 0) return -1;
    if (s->qlen) lws_callback_on_writable(wsi);
    break;
  }
  default:
    break;
  }
  return 0;
}

static struct lws_protocols protocols[] = {
    {"bench", callback, sizeof(session), 65536 + 16, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
  if (context) lws_cancel_service(context);
}

int main(int argc, char **argv) {
  int port = 0;
  for (int i = 1; i + 1 < argc; i++) {
    if (!strcmp(argv[i], "--port")) port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--mode")) broadcast_mode = !strcmp(argv[++i], "broadcast");
  }
  if (port <= 0 || port > 65535) {
    fprintf(stderr, "usage: lws_server --port N [--mode echo|broadcast]\n");
    return 2;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  lws_set_log_level(LLL_ERR, NULL);

  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = port;
  info.iface = "127.0.0.1";
  info.protocols = protocols;
  info.pt_serv_buf_size = 65536 + LWS_PRE + 16;
  info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
  context = lws_create_context(&info);
  if (!context) {
    fprintf(stderr, "lws_server: lws_create_context failed\n");
    return 1;
  }
  printf("libwebsockets %s listening on 127.0.0.1:%d\n", broadcast_mode ? "broadcast" : "echo", port);
  fflush(stdout);
  while (!interrupted && lws_service(context, 0) >= 0) {
  }
  lws_context_destroy(context);
  return 0;
}
