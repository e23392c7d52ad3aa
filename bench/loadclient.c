/* The lua-ws load client: one epoll thread driving N real WebSocket connections to 127.0.0.1
 * through one scenario, bounded in time, printing one machine-readable line.
 *
 * Scenarios
 *   echo       every connection keeps --inflight text messages of --size bytes outstanding;
 *              each echo is checked and answered by a new message. msg/s, latency p50/p99.
 *   fanout     --conns subscribers plus one publisher connection on a broadcasting server:
 *              THE BROADCAST PROTOCOL (what bench/peers/ and bench/servers/broadcast.lua serve):
 *              every text message the server receives from any connection is sent, unchanged,
 *              as one text frame to every connection open at that moment, the sender included.
 *              Only the publisher sends. A message counts as done when all subscribers and the
 *              publisher have it; the publisher keeps --inflight messages not yet done.
 *              Before timing starts the publisher sends "probe-XXXXXXXX" messages until every
 *              connection has seen one, so no subscriber is counted before the server has
 *              registered it. deliveries/s (subscriber receipts), latency publish -> receipt.
 *   handshake  --conns slots each loop: connect, upgrade (random key, Accept checked), send a
 *              close frame, wait for the server's close frame, close the socket. handshakes/s.
 *   idle       open --conns connections (default 10,000) against an echo server, hold them
 *              --hold seconds, read the server's RSS (--server-pid), then check every one is
 *              still alive with one echo each. bytes of server RSS per connection.
 *   chat       --rooms R rooms of two members (2R connections; the path of room r is --path
 *              followed by r, default "/chat/"): every text message a member sends reaches the
 *              other member only (the chat server publishes it to the room, sender excluded).
 *              Each member keeps --inflight messages outstanding to the other. Probes first, as
 *              for fanout, until every member has seen one from its partner. msg/s end to end.
 *
 * Two servers (--port2 N, the bus benchmarks): fanout puts the publisher and the first half of
 * the subscribers on --port and the other half on --port2, so a broadcast reaches the second
 * half only through the servers' bus; the latency is then also reported per half (local_ and
 * remote_, and their difference bus_added_). chat puts the first member of every room on
 * --port and the second on --port2, so every message crosses the bus (with --local-rooms both
 * members of even rooms are on --port and of odd rooms on --port2: no message needs the bus). --server-pid2 adds the
 * second server's CPU to server_cpu_us_per_*; --redis-pid reports the bus's own CPU per
 * publish. --rate R (fanout): the publisher sends R messages per second on a fixed schedule
 * (at most --inflight not yet done) instead of as fast as deliveries come back.
 *
 * Every payload that comes back is checked (opcode, length, a per-message sequence number and
 * the per-connection random content), so a fast wrong server cannot win: mismatches, lost or
 * extra messages, unexpected closes and timeouts all count in errors=.
 *
 * --raw: the machine's limit with the same client against bench/peers/tcp_echo (a plain TCP
 * echo). There is no HTTP upgrade; the client sends exactly the masked frames it sends in the
 * echo scenario and gets them back byte for byte, still masked, so it parses them with the same
 * frame parser, unmasks them in place and checks them the same way. The client does slightly
 * more work per message than against a WebSocket server (one extra unmask pass), so the limit
 * it reports errs low, never high.
 *
 * --socketio: the same echo and fanout over Socket.IO (Engine.IO v4 on WebSocket, path
 * /socket.io/?EIO=4&transport=websocket): each connection waits for the open packet, connects
 * the default namespace ("40") and answers the server's pings. echo sends the event
 * 42<seq>["echo","<payload>"] and expects the acknowledgement 43<seq>["<payload>"]; fanout's
 * publisher sends 42["pub","<payload>"] and every connection (in one room, the publisher
 * included) expects 42["msg","<payload>"] (bench/socketio/ serves both).
 *
 * --tls: every connection is a TLS client (wss://; OpenSSL, non-blocking on the same loop), a full
 * handshake each time (no session cache), the certificate not verified; the line says tls=1.
 * Plain connections pay one branch per read and write for it.
 *
 * With --server-pid the line also carries the server's CPU time per message (the run time of
 * its threads from /proc/PID/task/TID/schedstat over the timed window, or utime + stime from
 * /proc/PID/stat where schedstat is missing), which still ranks servers once this client
 * saturates its own core, and for idle the server's VmRSS from /proc/PID/status. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lc_hist.h"
#include "lc_proto.h"

enum { SC_ECHO, SC_FANOUT, SC_HANDSHAKE, SC_IDLE, SC_CHAT };
enum { ST_FREE, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSING, ST_DONE };
enum { PH_SETUP, PH_PROBE, PH_RUN, PH_DRAIN, PH_HOLD, PH_CHECK, PH_CLOSE, PH_END };

#define MAX_MESSAGE ((size_t)64 << 20)
#define CONN_TIMEOUT_NS (10ull * 1000000000ull)
#define CYCLE_TIMEOUT_NS (5ull * 1000000000ull)

typedef struct conn {
  int fd;
  int state;
  int is_pub;
  int want_out;   /* EPOLLOUT registered */
  int dirty;      /* on the flush list */
  int probed;
  int port;       /* the server it talks to (--port or --port2) */
  int remote;     /* on --port2 */
  int room;       /* chat: its room; the partner is the connection next to it (index ^ 1) */
  int probes;     /* chat: probes sent to its partner so far */
  uint64_t probe_at; /* chat: when the last one left */
  int sio;        /* --socketio: 0 open packet awaited, 1 CONNECT answer awaited, 2 connected */
  uint8_t *rbuf;
  size_t rlen, rcap;
  uint8_t *wbuf;
  size_t whead, wlen, wcap;
  uint8_t *frag;  /* reassembly of a fragmented message */
  size_t flen, fcap;
  int fop;
  uint32_t send_seq, recv_seq;
  uint32_t outstanding;
  uint64_t *ts;   /* send times, ring of --inflight */
  uint8_t *tmpl;  /* this connection's random payload */
  lc_pmd *pmd;    /* --deflate: the agreed permessage-deflate state */
  int fcomp;      /* the fragmented message in c->frag is compressed */
  uint64_t t_begin;
  char accept[LC_ACCEPT_LEN + 1];
  SSL *ssl;       /* --tls: the TLS client, NULL on plain TCP */
  int tls_hs;     /* --tls: the TLS handshake is under way (state ST_CONNECTING) */
  int rpend;      /* --tls: decrypted bytes wait inside OpenSSL (on run.pend) */
} conn;

static struct {
  int scenario;
  int port;
  const char *path;
  const char *label;
  int conns;
  int inflight;
  size_t size;
  double duration, warmup, deadline, hold;
  uint64_t count;     /* echo: total messages instead of a duration (0: duration) */
  int server_pid;
  int raw;
  int window;         /* connects/handshakes in progress at once during setup */
  int spin;           /* poll without sleeping during the timed run */
  int socketio;       /* speak Socket.IO over the WebSocket (echo, fanout, chat) */
  int port2;          /* a second server (bus benchmarks) */
  int server_pid2, redis_pid;
  double rate;        /* fanout: publishes per second (0: as fast as they complete) */
  int rooms;          /* chat */
  int path_set;
  int local_rooms;    /* chat with --port2: both members of a room on one server */
  int tls;            /* every connection is a TLS client (wss://) */
} cfg = {SC_ECHO, 0, "/", "-", 0, 1, 32, 5.0, 1.0, 0, 2.0, 0, 0, 0, 128, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};

static uint8_t *sio_buf; /* --socketio: one outgoing event, built here */
static SSL_CTX *tls_ctx;  /* --tls */
/* --deflate: offer permessage-deflate and send JSON-like payloads (lc_json_body) */
static int opt_deflate;

static struct {
  conn *c;
  int n;              /* connections (fanout: subscribers + publisher) */
  int ep;
  int phase;
  int started, open, failed, done_closing;
  conn **dirty;
  int ndirty;
  conn **pend, **pend2; /* --tls: connections with decrypted input left in OpenSSL's buffer */
  int npend;
  uint64_t t_origin, t_deadline, t_start, t_end, t_phase;
  uint64_t drain_ns;  /* how long the messages still out after the run may take to come back */
  uint64_t msgs, bytes, handshakes, deliveries;
  uint64_t sent_total, recv_total;
  uint64_t errors;
  char first_error[256];
  lc_hist hist;
  lc_hist hist_local, hist_remote; /* --port2: receipts on the publisher's server / the other one */
  long long cpu_start, cpu_end;  /* server CPU nanoseconds at the window's ends (-1: unknown) */
  long long cpu2_start, cpu2_end, rcpu_start, rcpu_end; /* --server-pid2, --redis-pid */
  double ccpu_start, ccpu_end; /* this client's CPU seconds at the same moments */
  uint64_t w_start, w_end;     /* when those samples were taken */
  int sampled_start, sampled_end;
  uint64_t idle_ns, idle_start, idle_end; /* time in polls that found nothing to do */
  long rss_base_kb, rss_kb;
  /* fanout */
  uint8_t *pub_tmpl;
  uint32_t pub_sent, pub_done, probes_sent;
  uint32_t *remaining;
  uint64_t *pub_ts;
  int ready;
  uint64_t next_pub;    /* --rate: when the next publish is due */
  uint64_t rate_missed; /* --rate: publishes skipped because --inflight were not done */
  /* idle */
  int checked;
  /* --deflate: data payload bytes on the wire and before compression, each way */
  uint64_t wire_in, plain_in, wire_out, plain_out;
  uint64_t msgs_in, msgs_in_compressed;
  uint8_t *json;  /* JSON_BODIES bodies of --size bytes; message seq carries body seq % JSON_BODIES */
  uint8_t *json_msg;
} run;

#define JSON_BODIES 256u

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t secs(double s) { return (uint64_t)(s * 1e9); }

static void note_error(const conn *c, const char *what) {
  run.errors++;
  if (!run.first_error[0])
    snprintf(run.first_error, sizeof run.first_error, "conn %ld: %s", c ? (long)(c - run.c) : -1L, what);
}

/* ---- server measurements from /proc ---- */

static long proc_cpu_ticks(int pid) {
  if (!pid) return -1;
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');  /* the command name may hold spaces */
  if (!p) return -1;
  long utime = 0, stime = 0;
  /* fields after ")" start at field 3; utime and stime are fields 14 and 15 */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime) != 2)
    return -1;
  return utime + stime;
}

/* A process's CPU time in nanoseconds: the run times of all its threads from
 * /proc/PID/task/TID/schedstat (exact, where clock ticks are 10 ms), or utime + stime from
 * /proc/PID/stat when schedstat is not there; -1 when the process is unknown. */
static long long proc_cpu_ns(int pid) {
  if (!pid) return -1;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", pid);
  DIR *d = opendir(path);
  long long sum = 0;
  int seen = 0;
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char p[300];
      snprintf(p, sizeof p, "/proc/%d/task/%s/schedstat", pid, e->d_name);
      FILE *f = fopen(p, "r");
      if (!f) continue;
      unsigned long long ns;
      if (fscanf(f, "%llu", &ns) == 1) {
        sum += (long long)ns;
        seen++;
      }
      fclose(f);
    }
    closedir(d);
  }
  if (seen) return sum;
  long t = proc_cpu_ticks(pid);
  return t < 0 ? -1 : (long long)t * (1000000000LL / sysconf(_SC_CLK_TCK));
}

static double client_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
         ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* CPU samples bracket the timed window [t_start, t_end): they are taken after the first batch
 * of events past each end, a few microseconds late at most. */
static void sample_start(uint64_t now) {
  run.sampled_start = 1;
  run.idle_start = run.idle_ns;
  run.cpu_start = proc_cpu_ns(cfg.server_pid);
  run.cpu2_start = proc_cpu_ns(cfg.server_pid2);
  run.rcpu_start = proc_cpu_ns(cfg.redis_pid);
  run.ccpu_start = client_cpu();
  run.w_start = now;
}

static void sample_end(uint64_t now) {
  if (run.sampled_end || !run.sampled_start) return;
  run.sampled_end = 1;
  run.idle_end = run.idle_ns;
  run.cpu_end = proc_cpu_ns(cfg.server_pid);
  run.cpu2_end = proc_cpu_ns(cfg.server_pid2);
  run.rcpu_end = proc_cpu_ns(cfg.redis_pid);
  run.ccpu_end = client_cpu();
  run.w_end = now;
}

static long server_rss_kb(void) {
  if (!cfg.server_pid) return -1;
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", cfg.server_pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
  fclose(f);
  return kb;
}

/* ---- buffers and writing ---- */

static int reserve(uint8_t **buf, size_t *cap, size_t used, size_t more, size_t limit) {
  if (used + more <= *cap) return 0;
  size_t want = *cap ? *cap : 4096;
  while (want < used + more) want *= 2;
  if (want > limit) return -1;
  uint8_t *p = realloc(*buf, want);
  if (!p) return -1;
  *buf = p;
  *cap = want;
  return 0;
}

static void set_out(conn *c, int on) {
  if (c->want_out == on || c->fd < 0) return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(run.ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->want_out = on;
}

static void mark_dirty(conn *c) {
  if (!c->dirty) {
    c->dirty = 1;
    run.dirty[run.ndirty++] = c;
  }
}

/* ---- transport: plain TCP, or TLS with --tls (a branch per read and write) ---- */

/* --tls: input that OpenSSL has decrypted (or read ahead) but on_readable left behind is read
 * again after this batch of events; epoll knows nothing of it. */
static void mark_pending(conn *c) {
  if (!c->rpend) {
    c->rpend = 1;
    run.pend[run.npend++] = c;
  }
}

/* What an SSL_read or SSL_write that did not move bytes means, in read()/write() terms: 0 for
 * the end of the stream, -1 with errno (EAGAIN: wait for epoll). */
static ssize_t tls_result(conn *c, int r) {
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    errno = EAGAIN;
    return -1;
  }
  if (e == SSL_ERROR_ZERO_RETURN) return 0;
  int saved = errno;
  ERR_clear_error();
  if (e == SSL_ERROR_SYSCALL && saved) {
    errno = saved;
    return -1;
  }
  if (e == SSL_ERROR_SYSCALL) return 0; /* EOF without close_notify */
  errno = ECONNRESET;
  return -1;
}

static ssize_t conn_read(conn *c, uint8_t *buf, size_t n) {
  if (!c->ssl) return read(c->fd, buf, n);
  int r = SSL_read(c->ssl, buf, n > 1u << 30 ? 1 << 30 : (int)n);
  return r > 0 ? r : tls_result(c, r);
}

static ssize_t conn_write(conn *c, const uint8_t *buf, size_t n) {
  if (!c->ssl) return write(c->fd, buf, n);
  int r = SSL_write(c->ssl, buf, n > 1u << 30 ? 1 << 30 : (int)n);
  return r > 0 ? r : tls_result(c, r);
}

static void conn_close_fd(conn *c) {
  if (c->ssl) {
    SSL_free(c->ssl);
    c->ssl = NULL;
    c->tls_hs = 0;
  }
  lc_pmd_free(c->pmd);
  c->pmd = NULL;
  c->fcomp = 0;
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->want_out = 0;
  c->rlen = c->whead = c->wlen = c->flen = 0;
}

static void conn_fail(conn *c, const char *why) {
  if (c->state == ST_DONE || c->state == ST_FREE) return;
  if (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE) run.failed++;
  note_error(c, why);
  conn_close_fd(c);
  c->state = ST_DONE;
}

static int conn_flush(conn *c) {
  while (c->whead < c->wlen) {
    ssize_t n = conn_write(c, c->wbuf + c->whead, c->wlen - c->whead);
    if (n > 0) {
      c->whead += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      set_out(c, 1);
      return 0;
    } else {
      conn_fail(c, "write failed");
      return -1;
    }
  }
  c->whead = c->wlen = 0;
  set_out(c, 0);
  return 0;
}

/* Append one masked frame: header, then the payload masked in pieces (each piece starts at a
 * multiple of 4 bytes, so the key phase stays 0). */
static int put_frame(conn *c, unsigned opcode, const uint8_t *a, size_t na, const uint8_t *b, size_t nb) {
  if (reserve(&c->wbuf, &c->wcap, c->wlen, LC_HEADER_MAX + na + nb, (size_t)1 << 30)) {
    conn_fail(c, "out of memory for the write buffer");
    return -1;
  }
  int rsv1 = 0;
  if (c->pmd && (opcode == 0x1 || opcode == 0x2)) {  /* permessage-deflate: one compressed frame */
    const uint8_t *z;
    size_t nz;
    if (lc_pmd_compress(c->pmd, a, na, b, nb, &z, &nz)) {
      conn_fail(c, "deflate failed");
      return -1;
    }
    run.plain_out += na + nb;
    run.wire_out += nz;
    if (reserve(&c->wbuf, &c->wcap, c->wlen, LC_HEADER_MAX + nz, (size_t)1 << 30)) {
      conn_fail(c, "out of memory for the write buffer");
      return -1;
    }
    a = z, na = nz, b = NULL, nb = 0;
    rsv1 = 1;
  }
  uint8_t key[4];
  lc_mask_key(key);
  uint8_t *p = c->wbuf + c->wlen;
  size_t h = lc_frame_header(p, opcode, na + nb, key);
  if (rsv1) p[0] |= 0x40;
  lc_mask(p + h, a, na, key);
  if (nb) lc_mask(p + h + na, b, nb, key);
  c->wlen += h + na + nb;
  mark_dirty(c);
  return 0;
}

static const char HEX[] = "0123456789abcdef";

static void seq_digits(uint32_t seq, uint8_t out[8]) {
  for (int i = 7; i >= 0; i--) {
    out[i] = (uint8_t)HEX[seq & 15];
    seq >>= 4;
  }
}

/* A text payload: 8 hex digits of the sequence number, then the template from byte 8 on. */
static int send_payload(conn *c, const uint8_t *tmpl, uint32_t seq) {
  uint8_t digits[8];
  seq_digits(seq, digits);
  if (cfg.socketio) {
    int np = cfg.scenario != SC_ECHO ? snprintf((char *)sio_buf, 64, "42[\"pub\",\"")
                                       : snprintf((char *)sio_buf, 64, "42%u[\"echo\",\"", seq);
    memcpy(sio_buf + np, digits, 8);
    memcpy(sio_buf + np + 8, tmpl + 8, cfg.size - 8);
    memcpy(sio_buf + np + cfg.size, "\"]", 2);
    return put_frame(c, 0x1, sio_buf, (size_t)np + cfg.size + 2, NULL, 0);
  }
  if (opt_deflate) {  /* the JSON body of this sequence number, the number inside it */
    memcpy(run.json_msg, run.json + (size_t)(seq % JSON_BODIES) * cfg.size, cfg.size);
    memcpy(run.json_msg + LC_JSON_SEQ_AT, digits, 8);
    return put_frame(c, 0x1, run.json_msg, cfg.size, NULL, 0);
  }
  return put_frame(c, 0x1, digits, 8, tmpl + 8, cfg.size - 8);
}

/* --socketio: the Engine.IO/Socket.IO handshake and heartbeat; for a data message, p and n
 * are narrowed to the payload inside the event or acknowledgement. 0 when the message is
 * consumed here (or the connection failed). */
static int sio_message(conn *c, int opcode, const uint8_t **pp, size_t *pn) {
  const uint8_t *p = *pp;
  size_t n = *pn;
  if (opcode == 0x1 && n == 1 && p[0] == '2') { /* the server's ping */
    put_frame(c, 0x1, (const uint8_t *)"3", 1, NULL, 0);
    return 0;
  }
  if (c->sio == 0) {
    if (opcode != 0x1 || n < 2 || p[0] != '0') { conn_fail(c, "no Engine.IO open packet"); return 0; }
    c->sio = 1;
    put_frame(c, 0x1, (const uint8_t *)"40", 2, NULL, 0);
    return 0;
  }
  if (c->sio == 1) {
    if (opcode != 0x1 || n < 2 || p[0] != '4' || p[1] != '0') { conn_fail(c, "no Socket.IO CONNECT answer"); return 0; }
    c->sio = 2;
    return 0;
  }
  size_t i;
  if (opcode != 0x1) { conn_fail(c, "a binary frame"); return 0; }
  if (cfg.scenario != SC_ECHO) {
    static const char pre[] = "42[\"msg\",\"";
    if (n < sizeof pre - 1 + 2 || memcmp(p, pre, sizeof pre - 1) != 0) { conn_fail(c, "not a msg event"); return 0; }
    i = sizeof pre - 1;
  } else {
    char want[16];
    int nw = snprintf(want, sizeof want, "43%u[\"", c->recv_seq);
    if (n < (size_t)nw + 2 || memcmp(p, want, (size_t)nw) != 0) { conn_fail(c, "not the acknowledgement awaited"); return 0; }
    i = (size_t)nw;
  }
  if (p[n - 2] != '"' || p[n - 1] != ']') { conn_fail(c, "a malformed event"); return 0; }
  *pp = p + i;
  *pn = n - i - 2;
  return 1;
}

/* A readiness probe, "probe-XXXXXXXX" (in a Socket.IO event with --socketio). */
static void send_probe(conn *c) {
  char probe[15], ev[40];
  snprintf(probe, sizeof probe, "probe-%08x", run.probes_sent++);
  if (cfg.socketio) {
    int ne = snprintf(ev, sizeof ev, "42[\"pub\",\"%s\"]", probe);
    put_frame(c, 0x1, (const uint8_t *)ev, (size_t)ne, NULL, 0);
  } else {
    put_frame(c, 0x1, (const uint8_t *)probe, 14, NULL, 0);
  }
}

static int payload_ok(const uint8_t *tmpl, uint32_t seq, int opcode, const uint8_t *p, size_t n) {
  uint8_t digits[8];
  if (opcode != 0x1 || n != cfg.size) return 0;
  seq_digits(seq, digits);
  if (opt_deflate) {
    const uint8_t *body = run.json + (size_t)(seq % JSON_BODIES) * cfg.size;
    return memcmp(p, body, LC_JSON_SEQ_AT) == 0 && memcmp(p + LC_JSON_SEQ_AT, digits, 8) == 0 &&
           memcmp(p + LC_JSON_SEQ_AT + 8, body + LC_JSON_SEQ_AT + 8, n - LC_JSON_SEQ_AT - 8) == 0;
  }
  return memcmp(p, digits, 8) == 0 && memcmp(p + 8, tmpl + 8, n - 8) == 0;
}

static void fill_template(uint8_t *t, size_t n) {
  uint8_t rnd[256];
  for (size_t i = 0; i < n; i++) {
    if (i % sizeof rnd == 0)
      for (size_t j = 0; j < sizeof rnd; j += 4) lc_mask_key(rnd + j);
    t[i] = (uint8_t)('a' + rnd[i % sizeof rnd] % 26);
  }
}

/* ---- connections ---- */

static void conn_start(conn *c, uint64_t now) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  c->state = ST_CONNECTING;
  c->t_begin = now;
  c->send_seq = c->recv_seq = c->outstanding = 0;
  c->probed = 0;
  c->sio = 0;
  run.started++;
  if (c->fd < 0) {
    conn_fail(c, "socket() failed (file descriptor limit?)");
    return;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
    conn_fail(c, "connect failed");
    return;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  c->want_out = 1;
  if (epoll_ctl(run.ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) conn_fail(c, "epoll_ctl failed");
}

static void conn_opened(conn *c) {
  c->state = ST_OPEN;
  run.open++;
}

static void start_close(conn *c) {
  static const uint8_t code[2] = {0x03, 0xe8}; /* 1000 */
  if (c->state != ST_OPEN) return;
  c->state = ST_CLOSING;
  c->t_begin = now_ns();
  if (cfg.raw) {  /* a TCP echo has no closing handshake */
    conn_close_fd(c);
    c->state = ST_DONE;
    run.done_closing++;
    return;
  }
  put_frame(c, 0x8, code, 2, NULL, 0);
}

/* The closing handshake ended (server's close frame, or EOF after ours). */
static void closed_cleanly(conn *c, uint64_t now) {
  if (c->ssl) {
    SSL_shutdown(c->ssl); /* our close_notify, as a browser sends it; no wait for the server's */
    ERR_clear_error();
  }
  conn_close_fd(c);
  c->state = ST_DONE;
  run.done_closing++;
  if (cfg.scenario == SC_HANDSHAKE) {
    if (now >= run.t_start && now < run.t_end) {
      run.handshakes++;
      lc_hist_add(&run.hist, now - c->t_begin);
    }
  }
}

/* ---- scenarios: what a message means ---- */

static void echo_send(conn *c, uint64_t now) {
  c->ts[c->send_seq % (uint32_t)cfg.inflight] = now;
  if (send_payload(c, c->tmpl, c->send_seq) == 0) {
    c->send_seq++;
    c->outstanding++;
    run.sent_total++;
  }
}

static int may_send(uint64_t now) {
  if (cfg.count) return run.phase == PH_RUN && run.sent_total < cfg.count;
  return run.phase == PH_RUN && now < run.t_end;
}

static void pub_send(uint64_t now) {
  conn *p = &run.c[0];
  if (p->state != ST_OPEN) return;
  uint32_t slot = run.pub_sent % (uint32_t)cfg.inflight;
  run.remaining[slot] = (uint32_t)run.n;
  run.pub_ts[slot] = now;
  if (send_payload(p, run.pub_tmpl, run.pub_sent) == 0) run.pub_sent++;
}

/* The answer to a fanout or chat client's probe (its subscription is in place): 1 when it was one. */
static int take_probe(conn *c, int opcode, const uint8_t *p, size_t n) {
  if (n != 14 || memcmp(p, "probe-", 6) != 0) return 0;
  if (opcode != 0x1) note_error(c, "probe came back as binary");
  if (!c->probed) {
    c->probed = 1;
    run.ready++;
  }
  return 1;
}

/* A message of `from` came back (echo) or reached the room's other member (chat), in order:
 * counted, and its latency kept when it arrived within the timed window. */
static void count_reply(conn *from, size_t n, uint64_t now) {
  uint64_t sent = from->ts[from->recv_seq % (uint32_t)cfg.inflight];
  from->recv_seq++;
  from->outstanding--;
  run.recv_total++;
  if (now >= run.t_start && now < run.t_end) {
    run.msgs++;
    run.bytes += n;
    lc_hist_add(&run.hist, now - sent);
  }
}

static void on_message(conn *c, int opcode, const uint8_t *p, size_t n, uint64_t now) {
  if (cfg.socketio && !sio_message(c, opcode, &p, &n)) return;
  if (cfg.scenario == SC_ECHO || cfg.scenario == SC_IDLE) {
    if (!c->outstanding) {
      note_error(c, "a message that was never sent");
      return;
    }
    if (!payload_ok(c->tmpl, c->recv_seq, opcode, p, n)) {
      conn_fail(c, n != cfg.size ? "echoed payload has the wrong length" : "echoed payload differs");
      return;
    }
    count_reply(c, n, now);
    if (cfg.scenario == SC_ECHO && may_send(now)) echo_send(c, now);
    return;
  }
  if (cfg.scenario == SC_FANOUT) {
    if (take_probe(c, opcode, p, n)) return;
    if (c->recv_seq >= run.pub_sent) {
      conn_fail(c, "a broadcast that was never published");
      return;
    }
    if (!payload_ok(run.pub_tmpl, c->recv_seq, opcode, p, n)) {
      conn_fail(c, "broadcast payload differs (or lost, reordered)");
      return;
    }
    uint32_t slot = c->recv_seq % (uint32_t)cfg.inflight;
    c->recv_seq++;
    if (!c->is_pub && now >= run.t_start && now < run.t_end) {
      run.deliveries++;
      lc_hist_add(&run.hist, now - run.pub_ts[slot]);
      if (cfg.port2) lc_hist_add(c->remote ? &run.hist_remote : &run.hist_local, now - run.pub_ts[slot]);
    }
    if (--run.remaining[slot] == 0) {
      if (now >= run.t_start && now < run.t_end) run.msgs++;
      run.pub_done++;
      if (!cfg.rate && may_send(now)) pub_send(now);
    }
    return;
  }
  if (cfg.scenario == SC_CHAT) {
    if (take_probe(c, opcode, p, n)) return;
    /* the message was sent by the other member of the room */
    conn *from = &run.c[(c - run.c) ^ 1];
    if (!from->outstanding) {
      conn_fail(c, "a room message that was never sent (or one sent back to its sender)");
      return;
    }
    if (!payload_ok(from->tmpl, from->recv_seq, opcode, p, n)) {
      conn_fail(c, n != cfg.size ? "room message has the wrong length" : "room message differs (or lost, reordered)");
      return;
    }
    count_reply(from, n, now);
    if (from->state == ST_OPEN && may_send(now)) echo_send(from, now);
    return;
  }
  note_error(c, "a data message during a handshake cycle");
}

/* ---- input ---- */

/* A whole data message; inflated first when it came compressed. */
static void deliver(conn *c, int opcode, int comp, const uint8_t *p, size_t n, uint64_t now) {
  if (c->pmd) {
    run.wire_in += n;
    if (comp) {
      const char *why = NULL;
      if (lc_pmd_inflate(c->pmd, p, n, MAX_MESSAGE, &p, &n, &why)) {
        conn_fail(c, why);
        return;
      }
    }
    run.plain_in += n;
    run.msgs_in++;
    run.msgs_in_compressed += comp;
  }
  on_message(c, opcode, p, n, now);
}

static void on_frame(conn *c, lc_frame *f, uint8_t *p, uint64_t now) {
  size_t n = (size_t)f->len;
  if (f->masked) {
    if (!cfg.raw) {
      conn_fail(c, "server sent a masked frame");
      return;
    }
    lc_mask(p, p, n, f->mask);
  }
  int comp = 0;
  if (f->rsv) {
    /* RSV1 on the first frame of a data message marks it compressed (RFC 7692 6) */
    if (f->rsv != 4 || !c->pmd || (f->opcode != 0x1 && f->opcode != 0x2)) {
      conn_fail(c, !c->pmd ? "RSV bits set without an extension" : "RSV bits set where permessage-deflate allows none");
      return;
    }
    comp = 1;
  }
  switch (f->opcode) {
  case 0x8: /* close */
    if (c->state == ST_CLOSING) {
      closed_cleanly(c, now);
    } else {
      conn_fail(c, "server closed the WebSocket");
    }
    return;
  case 0x9: /* ping */
    if (n > 125) {
      conn_fail(c, "ping over 125 bytes");
      return;
    }
    if (c->state == ST_OPEN) put_frame(c, 0xA, p, n, NULL, 0);
    return;
  case 0xA:
    return;
  case 0x0:
  case 0x1:
  case 0x2:
    break;
  default:
    conn_fail(c, "unknown opcode");
    return;
  }
  if (f->opcode != 0 && c->flen) {
    conn_fail(c, "new message inside a fragmented one");
    return;
  }
  if (f->opcode == 0 && !c->fop) {
    conn_fail(c, "continuation without a message");
    return;
  }
  if (f->fin && f->opcode != 0) {
    deliver(c, f->opcode, comp, p, n, now);
    return;
  }
  if (f->opcode != 0) c->fop = f->opcode, c->fcomp = comp;
  if (reserve(&c->frag, &c->fcap, c->flen, n, MAX_MESSAGE)) {
    conn_fail(c, "fragmented message too large");
    return;
  }
  memcpy(c->frag + c->flen, p, n);
  c->flen += n;
  if (f->fin) {
    int op = c->fop;
    c->fop = 0;
    size_t len = c->flen;
    c->flen = 0;
    comp = c->fcomp;
    c->fcomp = 0;
    deliver(c, op, comp, c->frag, len, now);
  }
}

static void parse_frames(conn *c, uint64_t now) {
  size_t off = 0;
  while (c->fd >= 0 && (c->state == ST_OPEN || c->state == ST_CLOSING)) {
    lc_frame f;
    int h = lc_parse_frame(c->rbuf + off, c->rlen - off, &f);
    if (h < 0) {
      conn_fail(c, "invalid frame length");
      return;
    }
    if (h == 0) break;
    if (f.len > MAX_MESSAGE) {
      conn_fail(c, "frame over 64 MiB");
      return;
    }
    size_t total = (size_t)h + (size_t)f.len;
    if (c->rlen - off < total) {
      if (total > c->rcap) {  /* make room for the whole frame */
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
        off = 0;
        if (reserve(&c->rbuf, &c->rcap, c->rlen, total - c->rlen, MAX_MESSAGE + LC_HEADER_MAX)) {
          conn_fail(c, "out of memory for the read buffer");
          return;
        }
      }
      break;
    }
    on_frame(c, &f, c->rbuf + off + h, now);
    off += total;
  }
  if (c->fd < 0) return;
  if (off) {
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
  }
}

static void tls_step(conn *c);

static void on_readable(conn *c) {
  if (c->tls_hs) {
    tls_step(c);
    return;
  }
  for (int round = 0; round < 8 && c->fd >= 0; round++) {
    if (c->rcap - c->rlen < 4096 &&
        reserve(&c->rbuf, &c->rcap, c->rlen, c->rcap < 16384 ? 16384 - c->rlen : c->rcap, MAX_MESSAGE * 2)) {
      conn_fail(c, "out of memory for the read buffer");
      return;
    }
    size_t room = c->rcap - c->rlen;
    ssize_t n = conn_read(c, c->rbuf + c->rlen, room);
    uint64_t now = now_ns();
    if (n == 0) {
      if (c->state == ST_CLOSING && !cfg.raw) {
        if (cfg.scenario == SC_HANDSHAKE) {
          conn_fail(c, "EOF before the server's close frame");
        } else {
          closed_cleanly(c, now);
        }
      } else {
        conn_fail(c, c->state == ST_HANDSHAKE ? "EOF during the handshake" : "server closed the TCP connection");
      }
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) conn_fail(c, "read failed (connection reset?)");
      return;
    }
    c->rlen += (size_t)n;
    if (c->state == ST_HANDSHAKE) {
      const char *why = NULL;
      long head = lc_check_upgrade((const char *)c->rbuf, c->rlen, c->accept, &why);
      if (head < 0) {
        conn_fail(c, why);
        return;
      }
      if (head == 0) continue;
      if (opt_deflate) {
        lc_pmd_params pp;
        int agreed = lc_deflate_answer((const char *)c->rbuf, (size_t)head, &pp, &why);
        if (agreed <= 0) {
          conn_fail(c, agreed < 0 ? why : "the server did not agree to permessage-deflate");
          return;
        }
        lc_pmd_free(c->pmd);
        if (!(c->pmd = lc_pmd_new(&pp, -1 /* zlib's default level, 6 */))) {
          conn_fail(c, "out of memory for zlib");
          return;
        }
      }
      memmove(c->rbuf, c->rbuf + head, c->rlen - (size_t)head);
      c->rlen -= (size_t)head;
      conn_opened(c);
      if (cfg.scenario == SC_HANDSHAKE) start_close(c);
    }
    parse_frames(c, now);
    if ((size_t)n < room && (!c->ssl || !SSL_has_pending(c->ssl))) return;
  }
  if (c->ssl && c->fd >= 0 && SSL_has_pending(c->ssl)) mark_pending(c);
}

/* The upgrade request, once the TCP connection (and with --tls the TLS session) is up. */
static void send_upgrade(conn *c) {
  char key[LC_KEY_LEN + 1], req[512];
  if (lc_client_key(key)) {
    conn_fail(c, "RAND_bytes failed");
    return;
  }
  lc_accept_for(key, c->accept);
  char path[256];
  if (cfg.scenario == SC_CHAT) snprintf(path, sizeof path, "%s%d", cfg.path, c->room);
  else snprintf(path, sizeof path, "%s", cfg.path);
  size_t n = lc_upgrade_request(req, sizeof req, c->port, path, key);
  if (opt_deflate) n = lc_add_header(req, n, sizeof req, LC_DEFLATE_OFFER);
  c->state = ST_HANDSHAKE;
  if (reserve(&c->wbuf, &c->wcap, c->wlen, n, 1 << 20)) {
    conn_fail(c, "out of memory");
    return;
  }
  memcpy(c->wbuf + c->wlen, req, n);
  c->wlen += n;
  conn_flush(c);
}

/* --tls: one step of the TLS handshake (a full one every time: no session is resumed, and the
 * server's certificate is not verified, which changes nothing on the server's side). */
static void tls_step(conn *c) {
  ERR_clear_error();
  int r = SSL_do_handshake(c->ssl);
  if (r == 1) {
    c->tls_hs = 0;
    send_upgrade(c);
    if (c->ssl && SSL_has_pending(c->ssl)) mark_pending(c);
    return;
  }
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ) {
    set_out(c, 0);
    return;
  }
  if (e == SSL_ERROR_WANT_WRITE) {
    set_out(c, 1);
    return;
  }
  char why[160];
  unsigned long code = ERR_peek_error();
  snprintf(why, sizeof why, "TLS handshake failed: %s",
           code ? ERR_reason_error_string(code) ? ERR_reason_error_string(code) : "unknown reason"
                : e == SSL_ERROR_SYSCALL ? "connection closed" : "protocol error");
  ERR_clear_error();
  conn_fail(c, why);
}

static void tls_begin(conn *c) {
  c->ssl = SSL_new(tls_ctx);
  if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
    ERR_clear_error();
    conn_fail(c, "SSL_new failed");
    return;
  }
  SSL_set_connect_state(c->ssl);
  c->tls_hs = 1;
  tls_step(c);
}

static void on_writable(conn *c) {
  if (c->tls_hs) {
    tls_step(c);
    return;
  }
  if (c->state == ST_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      conn_fail(c, err == ECONNREFUSED ? "connection refused" : "connect failed");
      return;
    }
    if (cfg.raw) {
      conn_opened(c);
      set_out(c, 0);
      return;
    }
    if (cfg.tls) tls_begin(c);
    else send_upgrade(c);
    return;
  }
  conn_flush(c);
}

/* ---- phases ---- */

static void begin_run(uint64_t now) {
  run.phase = PH_RUN;
  run.t_start = now + secs(cfg.count ? 0 : cfg.warmup);
  run.t_end = cfg.count ? UINT64_MAX : run.t_start + secs(cfg.duration);
  if (cfg.scenario == SC_ECHO || cfg.scenario == SC_CHAT) {
    for (int i = 0; i < run.n; i++)
      for (int k = 0; k < cfg.inflight && run.c[i].state == ST_OPEN && may_send(now); k++)
        echo_send(&run.c[i], now);
  } else if (cfg.scenario == SC_FANOUT && cfg.rate > 0) {
    run.next_pub = now;  /* advance() publishes on the schedule */
  } else if (cfg.scenario == SC_FANOUT) {
    for (int k = 0; k < cfg.inflight; k++) pub_send(now);
  } else if (cfg.scenario == SC_HANDSHAKE) {
    for (int i = 0; i < run.n; i++) conn_start(&run.c[i], now);
  }
}

static int all_settled(void) {
  for (int i = 0; i < run.n; i++)
    if (run.c[i].state == ST_CONNECTING || run.c[i].state == ST_HANDSHAKE ||
        (cfg.socketio && run.c[i].state == ST_OPEN && run.c[i].sio < 2)) return 0;
  return run.started == run.n;
}

static void start_closing_all(uint64_t now) {
  run.phase = PH_CLOSE;
  run.t_phase = now;
  for (int i = 0; i < run.n; i++) start_close(&run.c[i]);
}

static int outstanding_total(void) {
  if (cfg.scenario == SC_FANOUT) return run.pub_sent != run.pub_done;
  for (int i = 0; i < run.n; i++)
    if (run.c[i].outstanding && run.c[i].state == ST_OPEN) return 1;
  return 0;
}

static void count_lost(void) {
  for (int i = 0; i < run.n; i++)
    if (run.c[i].state == ST_OPEN && run.c[i].outstanding) note_error(&run.c[i], "messages never came back");
  if (cfg.scenario == SC_FANOUT && run.pub_sent != run.pub_done) note_error(NULL, "broadcasts never reached everyone");
}

/* Move between phases; called after every batch of events. */
static void advance(uint64_t now) {
  if (!run.sampled_start && run.t_start != UINT64_MAX && now >= run.t_start && run.phase == PH_RUN)
    sample_start(now);
  switch (run.phase) {
  case PH_SETUP:
    if (cfg.scenario != SC_HANDSHAKE) {
      for (int i = 0; i < run.n; i++) {
        conn *c = &run.c[i];
        if ((c->state == ST_CONNECTING || c->state == ST_HANDSHAKE) && now - c->t_begin > CONN_TIMEOUT_NS)
          conn_fail(c, "connect or handshake timed out");
      }
      int busy = 0;
      for (int i = 0; i < run.started; i++)
        busy += run.c[i].state == ST_CONNECTING || run.c[i].state == ST_HANDSHAKE;
      while (run.started < run.n && busy < cfg.window) {
        conn_start(&run.c[run.started], now);
        busy++;
      }
      if (!all_settled()) return;
      if (run.open == 0) {
        note_error(NULL, "no connection could be opened");
        run.phase = PH_END;
        return;
      }
    }
    if (cfg.scenario == SC_FANOUT || cfg.scenario == SC_CHAT) {
      run.phase = PH_PROBE;
      run.t_phase = 0;
      return;
    }
    if (cfg.scenario == SC_IDLE) {
      run.phase = PH_HOLD;
      run.t_phase = now;
      return;
    }
    begin_run(now);
    return;
  case PH_PROBE:
    if (cfg.scenario == SC_CHAT) {
      /* every member that has not heard from its partner yet gets a probe from it, again after
       * 100 ms, 200 ms, ... up to 2 s (a slow server is not flooded with probes) */
      int waiting = 0;
      for (int i = 0; i < run.n; i++) {
        conn *c = &run.c[i], *from = &run.c[i ^ 1];
        if (c->state != ST_OPEN || from->state != ST_OPEN || c->probed) continue;
        waiting++;
        uint64_t wait = 100000000ull << (from->probes < 5 ? from->probes : 5);
        if (wait > 2000000000ull) wait = 2000000000ull;
        if (!from->probes || now - from->probe_at > wait) {
          send_probe(from);
          from->probes++;
          from->probe_at = now;
        }
      }
      if (!waiting) begin_run(now);
      return;
    }
    if (run.c[0].state != ST_OPEN) {
      note_error(NULL, "publisher connection lost");
      start_closing_all(now);
      return;
    }
    int waiting = 0;
    for (int i = 0; i < run.n; i++) waiting += run.c[i].state == ST_OPEN && !run.c[i].probed;
    if (!waiting) {
      begin_run(now);
      return;
    }
    if (run.t_phase == 0 || now - run.t_phase > 20000000ull) {  /* a probe every 20 ms */
      send_probe(&run.c[0]);
      run.t_phase = now;
    }
    return;
  case PH_RUN:
    if (cfg.scenario == SC_FANOUT && cfg.rate > 0) {
      for (int k = 0; k < 64 && now >= run.next_pub && may_send(now); k++) {
        if (run.pub_sent - run.pub_done < (uint32_t)cfg.inflight) pub_send(now);
        else run.rate_missed++;
        run.next_pub += (uint64_t)(1e9 / cfg.rate);
      }
    }
    if (cfg.scenario == SC_HANDSHAKE) {
      for (int i = 0; i < run.n; i++) {
        conn *c = &run.c[i];
        if (c->state != ST_DONE && c->state != ST_FREE && now - c->t_begin > CYCLE_TIMEOUT_NS)
          conn_fail(c, "handshake cycle timed out");
        /* a finished (or failed) slot starts its next cycle */
        if (c->state == ST_DONE && now < run.t_end) conn_start(c, now);
      }
      if (now >= run.t_end) {
        sample_end(now);
        run.phase = PH_DRAIN;
        run.t_phase = now;
      }
      return;
    }
    if (cfg.count ? run.recv_total >= cfg.count || (run.sent_total >= cfg.count && !outstanding_total())
                  : now >= run.t_end) {
      if (cfg.count) run.t_end = now;
      sample_end(now);
      /* A slow server is not a wrong one: the messages still out get twice the time the
       * measured rate needs for them, plus 5 s, at most 50 s, before they count as lost. */
      double window = (double)(now - run.t_start) / 1e9;
      double rate = window > 0 ? (double)run.msgs / window : 0;
      double out = cfg.scenario == SC_FANOUT ? (double)(run.pub_sent - run.pub_done) : (double)(run.sent_total - run.recv_total);
      double extra = rate > 0 ? 2.0 * out / rate : 45.0;
      run.drain_ns = secs(5.0 + (extra < 45.0 ? extra : 45.0));
      run.phase = PH_DRAIN;
      run.t_phase = now;
    }
    return;
  case PH_DRAIN:
    if (cfg.scenario == SC_HANDSHAKE) {
      int busy = 0;
      for (int i = 0; i < run.n; i++) busy += run.c[i].state != ST_DONE && run.c[i].state != ST_FREE;
      if (!busy || now - run.t_phase > CYCLE_TIMEOUT_NS) {
        for (int i = 0; i < run.n; i++)
          if (run.c[i].state != ST_DONE && run.c[i].state != ST_FREE) conn_fail(&run.c[i], "handshake cycle unfinished");
        run.phase = PH_END;
      }
      return;
    }
    if (!outstanding_total() || now - run.t_phase > run.drain_ns) {
      count_lost();
      start_closing_all(now);
    }
    return;
  case PH_HOLD:
    if (now - run.t_phase >= secs(cfg.hold)) {
      run.rss_kb = server_rss_kb();
      run.phase = PH_CHECK;
      run.t_phase = now;
      run.t_start = now;
      run.t_end = UINT64_MAX;
      for (int i = 0; i < run.n; i++)
        if (run.c[i].state == ST_OPEN) echo_send(&run.c[i], now);
    }
    return;
  case PH_CHECK:
    if (!outstanding_total() || now - run.t_phase > secs(10)) {
      count_lost();
      run.t_end = now;
      start_closing_all(now);
    }
    return;
  case PH_CLOSE: {
    int busy = 0;
    for (int i = 0; i < run.n; i++) busy += run.c[i].state == ST_CLOSING;
    if (!busy || now - run.t_phase > secs(3)) run.phase = PH_END;
    return;
  }
  default:
    return;
  }
}

/* ---- output ---- */

static double cpu_us(long long a, long long b) { return (double)(b - a) / 1e3; }

/* Server CPU per unit: --server-pid's, plus --server-pid2's when given (summed, and each one's
 * share of a core); with --redis-pid, the bus's CPU per publish. */
static void print_cpu(double per, const char *unit, double publishes) {
  double wall = run.sampled_end ? (double)(run.w_end - run.w_start) / 1e9 : 0;
  int two = cfg.server_pid2 != 0;
  if (run.cpu_start < 0 || run.cpu_end < 0 || (two && (run.cpu2_start < 0 || run.cpu2_end < 0)) || per <= 0 ||
      wall <= 0) {
    printf(" server_cpu_us_per_%s=na server_cpu_pct=na", unit);
  } else {
    double us1 = cpu_us(run.cpu_start, run.cpu_end), us2 = two ? cpu_us(run.cpu2_start, run.cpu2_end) : 0;
    printf(" server_cpu_us_per_%s=%.3f server_cpu_pct=%.1f", unit, (us1 + us2) / per, 100.0 * (us1 + us2) / 1e6 / wall);
    if (two) printf(" server1_cpu_pct=%.1f server2_cpu_pct=%.1f", 100.0 * us1 / 1e6 / wall, 100.0 * us2 / 1e6 / wall);
  }
  if (cfg.redis_pid) {
    if (run.rcpu_start < 0 || run.rcpu_end < 0 || publishes <= 0 || wall <= 0) {
      printf(" redis_cpu_us_per_publish=na redis_cpu_pct=na");
    } else {
      double us = cpu_us(run.rcpu_start, run.rcpu_end);
      printf(" redis_cpu_us_per_publish=%.3f redis_cpu_pct=%.1f", us / publishes, 100.0 * us / 1e6 / wall);
    }
  }
}

/* --port2: the latency on each side and what the bus adds (difference of the quantiles). */
static void print_split(void) {
  if (!cfg.port2 || cfg.scenario != SC_FANOUT) return;
  double l10 = (double)lc_hist_quantile(&run.hist_local, 0.10) / 1000.0;
  double r10 = (double)lc_hist_quantile(&run.hist_remote, 0.10) / 1000.0;
  double l50 = (double)lc_hist_quantile(&run.hist_local, 0.50) / 1000.0;
  double l99 = (double)lc_hist_quantile(&run.hist_local, 0.99) / 1000.0;
  double r50 = (double)lc_hist_quantile(&run.hist_remote, 0.50) / 1000.0;
  double r99 = (double)lc_hist_quantile(&run.hist_remote, 0.99) / 1000.0;
  printf(" local_p10_us=%.1f local_p50_us=%.1f local_p99_us=%.1f remote_p10_us=%.1f remote_p50_us=%.1f "
         "remote_p99_us=%.1f bus_added_p10_us=%.1f bus_added_p50_us=%.1f bus_added_p99_us=%.1f",
         l10, l50, l99, r10, r50, r99, r10 - l10, r50 - l50, r99 - l99);
}

static void report(void) {
  double window = (run.t_end > run.t_start && run.t_end != UINT64_MAX) ? (double)(run.t_end - run.t_start) / 1e9 : 0;
  double p50 = (double)lc_hist_quantile(&run.hist, 0.50) / 1000.0;
  double p99 = (double)lc_hist_quantile(&run.hist, 0.99) / 1000.0;
  double rate = 0;
  switch (cfg.scenario) {
  case SC_ECHO:
    rate = window > 0 ? (double)run.msgs / window : 0;
    printf("scenario=echo server=%s%s conns=%d inflight=%d size=%zu duration_s=%.2f msgs=%llu msgs_per_s=%.0f "
           "mbytes_per_s=%.1f p50_us=%.1f p99_us=%.1f errors=%llu",
           cfg.label, cfg.raw ? " raw=1" : "", run.n, cfg.inflight, cfg.size, window, (unsigned long long)run.msgs,
           rate, window > 0 ? (double)run.bytes / window / 1e6 : 0, p50, p99, (unsigned long long)run.errors);
    print_cpu((double)run.msgs, "msg", 0);
    break;
  case SC_CHAT:
    rate = window > 0 ? (double)run.msgs / window : 0;
    printf("scenario=chat server=%s rooms=%d conns=%d%s%s inflight=%d size=%zu duration_s=%.2f msgs=%llu "
           "msgs_per_s=%.0f p50_us=%.1f p99_us=%.1f errors=%llu",
           cfg.label, run.n / 2, run.n, cfg.port2 ? " nodes=2" : "", cfg.local_rooms ? " placement=local" : "", cfg.inflight, cfg.size, window,
           (unsigned long long)run.msgs, rate, p50, p99, (unsigned long long)run.errors);
    print_cpu((double)run.msgs, "msg", (double)run.msgs);
    break;
  case SC_FANOUT:
    rate = window > 0 ? (double)run.deliveries / window : 0;
    printf("scenario=fanout server=%s subscribers=%d%s inflight=%d size=%zu duration_s=%.2f broadcasts=%llu "
           "deliveries=%llu deliveries_per_s=%.0f p50_us=%.1f p99_us=%.1f errors=%llu",
           cfg.label, run.n - 1, cfg.port2 ? " nodes=2" : "", cfg.inflight, cfg.size, window, (unsigned long long)run.msgs,
           (unsigned long long)run.deliveries, rate, p50, p99, (unsigned long long)run.errors);
    if (cfg.rate > 0) printf(" rate=%.0f rate_missed=%llu", cfg.rate, (unsigned long long)run.rate_missed);
    print_split();
    print_cpu((double)run.deliveries, "delivery", (double)run.msgs);
    break;
  case SC_HANDSHAKE:
    rate = window > 0 ? (double)run.handshakes / window : 0;
    printf("scenario=handshake server=%s conns=%d duration_s=%.2f handshakes=%llu handshakes_per_s=%.0f "
           "p50_us=%.1f p99_us=%.1f errors=%llu",
           cfg.label, run.n, window, (unsigned long long)run.handshakes, rate, p50, p99,
           (unsigned long long)run.errors);
    print_cpu((double)run.handshakes, "handshake", 0);
    break;
  case SC_IDLE: {
    long per = -1;
    if (run.rss_kb >= 0 && run.rss_base_kb >= 0 && run.open > 0)
      per = (run.rss_kb - run.rss_base_kb) * 1024 / run.open;
    printf("scenario=idle server=%s conns=%d open=%d hold_s=%.1f rss_base_kb=%ld rss_kb=%ld ", cfg.label, run.n,
           run.open, cfg.hold, run.rss_base_kb, run.rss_kb);
    if (per >= 0) printf("bytes_per_conn=%ld", per); else printf("bytes_per_conn=na");
    printf(" alive=%llu p50_us=%.1f p99_us=%.1f errors=%llu", (unsigned long long)run.msgs, p50, p99,
           (unsigned long long)run.errors);
    break;
  }
  }
  if (cfg.tls) printf(" tls=1");
  if (opt_deflate)  /* compressed payload bytes / payload bytes: the server's, then ours */
    printf(" deflate=1 wire_ratio=%.3f wire_ratio_sent=%.3f compressed_pct=%.1f",
           run.plain_in ? (double)run.wire_in / (double)run.plain_in : 0,
           run.plain_out ? (double)run.wire_out / (double)run.plain_out : 0,
           run.msgs_in ? 100.0 * (double)run.msgs_in_compressed / (double)run.msgs_in : 0);
  double wall = run.sampled_end ? (double)(run.w_end - run.w_start) / 1e9 : 0;
  if (wall > 0)
    printf(" client_cpu_pct=%.1f client_busy_pct=%.1f\n", 100.0 * (run.ccpu_end - run.ccpu_start) / wall,
           100.0 - 100.0 * (double)(run.idle_end - run.idle_start) / 1e9 / wall);
  else
    printf(" client_cpu_pct=na client_busy_pct=na\n");
  fflush(stdout);
  if (run.first_error[0]) fprintf(stderr, "loadclient: %llu errors; first: %s\n", (unsigned long long)run.errors, run.first_error);
}

/* ---- main ---- */

static void usage(void) {
  fprintf(stderr,
          "usage: loadclient --port N [--scenario echo|fanout|handshake|idle|chat] [--conns N] [--inflight K]\n"
          "                  [--size BYTES] [--duration S] [--warmup S] [--deadline S] [--count MSGS]\n"
          "                  [--hold S] [--server-pid PID] [--label NAME] [--path /] [--raw] [--window N]\n"
          "                  [--spin 0|1] [--socketio] [--rooms R] [--port2 N] [--server-pid2 PID]\n"
          "                  [--redis-pid PID] [--rate PER_S] [--local-rooms] [--tls] [--deflate]\n"
          "Connects to 127.0.0.1 only. Prints one line key=value ...; exits 1 when errors > 0.\n");
  exit(2);
}

static double num(const char *s) {
  char *end;
  double v = strtod(s, &end);
  if (!*s || *end) usage();
  return v;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (i++, 1))
    if (ARG("--scenario")) {
      if (!strcmp(v, "echo")) cfg.scenario = SC_ECHO;
      else if (!strcmp(v, "fanout")) cfg.scenario = SC_FANOUT;
      else if (!strcmp(v, "handshake")) cfg.scenario = SC_HANDSHAKE;
      else if (!strcmp(v, "idle")) cfg.scenario = SC_IDLE;
      else if (!strcmp(v, "chat")) cfg.scenario = SC_CHAT;
      else usage();
    } else if (ARG("--port")) cfg.port = (int)num(v);
    else if (ARG("--conns")) cfg.conns = (int)num(v);
    else if (ARG("--inflight")) cfg.inflight = (int)num(v);
    else if (ARG("--size")) cfg.size = (size_t)num(v);
    else if (ARG("--duration")) cfg.duration = num(v);
    else if (ARG("--warmup")) cfg.warmup = num(v);
    else if (ARG("--deadline")) cfg.deadline = num(v);
    else if (ARG("--count")) cfg.count = (uint64_t)num(v);
    else if (ARG("--hold")) cfg.hold = num(v);
    else if (ARG("--server-pid")) cfg.server_pid = (int)num(v);
    else if (ARG("--label")) cfg.label = v;
    else if (ARG("--path")) cfg.path = v, cfg.path_set = 1;
    else if (ARG("--port2")) cfg.port2 = (int)num(v);
    else if (ARG("--server-pid2")) cfg.server_pid2 = (int)num(v);
    else if (ARG("--redis-pid")) cfg.redis_pid = (int)num(v);
    else if (ARG("--rate")) cfg.rate = num(v);
    else if (ARG("--rooms")) cfg.rooms = (int)num(v);
    else if (ARG("--window")) cfg.window = (int)num(v);
    else if (ARG("--spin")) cfg.spin = (int)num(v);
    else if (!strcmp(a, "--raw")) cfg.raw = 1;
    else if (!strcmp(a, "--socketio")) cfg.socketio = 1;
    else if (!strcmp(a, "--local-rooms")) cfg.local_rooms = 1;
    else if (!strcmp(a, "--tls")) cfg.tls = 1;
    else if (!strcmp(a, "--deflate")) opt_deflate = 1;
    else usage();
#undef ARG
  }
  if (cfg.conns <= 0) cfg.conns = cfg.scenario == SC_IDLE ? 10000 : cfg.scenario == SC_HANDSHAKE ? 16 : 100;
  if (cfg.scenario == SC_CHAT) {
    if (cfg.rooms <= 0) cfg.rooms = 1000;
    cfg.conns = 2 * cfg.rooms;
    if (!cfg.path_set) cfg.path = cfg.socketio ? "/socket.io/?EIO=4&transport=websocket&room=" : "/chat/";
  }
  if (cfg.port <= 0 || cfg.port > 65535 || cfg.port2 < 0 || cfg.port2 > 65535 || cfg.rate < 0 || cfg.conns > 100000 || cfg.inflight < 1 || cfg.inflight > 4096 ||
      cfg.size < 8 || cfg.size > MAX_MESSAGE || cfg.duration <= 0 || cfg.window < 1 || cfg.path[0] != '/' ||
      strlen(cfg.path) > 200)
    usage();
  if (cfg.raw && (cfg.scenario == SC_HANDSHAKE || cfg.scenario == SC_FANOUT)) {
    fprintf(stderr, "loadclient: --raw measures echo (and idle) only\n");
    return 2;
  }
  if (cfg.socketio && (cfg.raw || cfg.scenario == SC_HANDSHAKE || cfg.scenario == SC_IDLE)) {
    fprintf(stderr, "loadclient: --socketio measures echo, fanout and chat only\n");
    return 2;
  }
  if (cfg.raw && cfg.tls) {
    fprintf(stderr, "loadclient: --raw and --tls do not go together\n");
    return 2;
  }
  if (cfg.raw && cfg.scenario == SC_CHAT) {
    fprintf(stderr, "loadclient: --raw measures echo (and idle) only\n");
    return 2;
  }
  if ((cfg.port2 && cfg.scenario != SC_FANOUT && cfg.scenario != SC_CHAT) || (cfg.rate > 0 && cfg.scenario != SC_FANOUT)) {
    fprintf(stderr, "loadclient: --port2 is for fanout and chat, --rate for fanout\n");
    return 2;
  }
  if (opt_deflate && (cfg.raw || cfg.socketio || cfg.size < 32)) {
    fprintf(stderr, "loadclient: --deflate needs --size 32 or more, without --raw or --socketio\n");
    return 2;
  }
  if (opt_deflate) {
    if (!(run.json = malloc((size_t)JSON_BODIES * cfg.size)) || !(run.json_msg = malloc(cfg.size))) return 3;
    for (uint32_t k = 0; k < JSON_BODIES; k++) lc_json_body(run.json + (size_t)k * cfg.size, cfg.size, k);
  }
  if (cfg.socketio) {
    if (!strcmp(cfg.path, "/")) cfg.path = "/socket.io/?EIO=4&transport=websocket";
    if (!(sio_buf = malloc(cfg.size + 64))) return 3;
  }
  if (cfg.scenario == SC_IDLE) cfg.inflight = 1;
  if (cfg.deadline <= 0) cfg.deadline = cfg.warmup + cfg.duration + cfg.hold + 90;
  signal(SIGPIPE, SIG_IGN);

  run.n = cfg.conns + (cfg.scenario == SC_FANOUT);
  struct rlimit rl;
  rlim_t need = (rlim_t)run.n + 64;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
    rl.rlim_cur = need;
    if (rl.rlim_max < need) rl.rlim_max = need;  /* root may raise the hard limit too */
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      getrlimit(RLIMIT_NOFILE, &rl);
      rl.rlim_cur = rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
      fprintf(stderr, "loadclient: file descriptor limit is %llu, %d connections wanted\n",
              (unsigned long long)rl.rlim_max, run.n);
    }
  }

  run.c = calloc((size_t)run.n, sizeof *run.c);
  run.dirty = calloc((size_t)run.n, sizeof *run.dirty);
  run.pend = calloc((size_t)run.n, sizeof *run.pend);
  run.pend2 = calloc((size_t)run.n, sizeof *run.pend2);
  if (!run.c || !run.dirty || !run.pend || !run.pend2) return 3;
  if (cfg.tls) {
    /* A client like a browser's minus the certificate check: OpenSSL's defaults (TLS 1.3 when
     * the server has it), a full handshake on every connection (no session cache), read-ahead
     * for fewer reads; with many idle connections the buffers go back while idle. */
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (!tls_ctx) return 3;
    SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_read_ahead(tls_ctx, 1);
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  (cfg.scenario == SC_IDLE ? SSL_MODE_RELEASE_BUFFERS : 0));
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    SSL_CTX_set_options(tls_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
  }
  for (int i = 0; i < run.n; i++) {
    conn *c = &run.c[i];
    c->fd = -1;
    c->is_pub = cfg.scenario == SC_FANOUT && i == 0;
    c->room = i / 2;
    /* fanout: the publisher and the first half of the subscribers on --port, the rest on
     * --port2; chat: each room's first member on --port, its second on --port2 */
    if (cfg.port2 && cfg.scenario == SC_FANOUT) c->remote = i > (cfg.conns + 1) / 2;
    if (cfg.port2 && cfg.scenario == SC_CHAT) c->remote = cfg.local_rooms ? c->room & 1 : i & 1;
    c->port = c->remote ? cfg.port2 : cfg.port;
    if (cfg.scenario == SC_ECHO || cfg.scenario == SC_IDLE || cfg.scenario == SC_CHAT) {
      c->ts = calloc((size_t)cfg.inflight, sizeof *c->ts);
      c->tmpl = malloc(cfg.size);
      if (!c->ts || !c->tmpl) return 3;
      fill_template(c->tmpl, cfg.size);
    }
  }
  if (cfg.scenario == SC_FANOUT) {
    run.pub_tmpl = malloc(cfg.size);
    run.remaining = calloc((size_t)cfg.inflight, sizeof *run.remaining);
    run.pub_ts = calloc((size_t)cfg.inflight, sizeof *run.pub_ts);
    if (!run.pub_tmpl || !run.remaining || !run.pub_ts) return 3;
    fill_template(run.pub_tmpl, cfg.size);
  }
  run.ep = epoll_create1(EPOLL_CLOEXEC);
  if (run.ep < 0) return 3;
  run.rss_base_kb = server_rss_kb();
  run.cpu_start = run.cpu_end = run.cpu2_start = run.cpu2_end = run.rcpu_start = run.rcpu_end = -1;
  run.t_origin = now_ns();
  run.t_deadline = run.t_origin + secs(cfg.deadline);
  run.t_start = run.t_end = UINT64_MAX;

  struct epoll_event evs[1024];
  while (run.phase != PH_END) {
    /* Spinning during the timed run keeps the client's own wake-ups (slow on a virtual
     * machine) out of the figures; client_busy_pct tells how much of its core it needed. */
    int spin = cfg.spin && run.phase == PH_RUN;
    uint64_t before = spin ? now_ns() : 0;
    int n = epoll_wait(run.ep, evs, 1024, spin || run.npend ? 0 : 10);
    if (n < 0 && errno != EINTR) break;
    if (spin && n <= 0) run.idle_ns += now_ns() - before;
    for (int i = 0; i < n; i++) {
      conn *c = evs[i].data.ptr;
      if (c->fd < 0) continue;
      if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
      if (c->fd >= 0 && (evs[i].events & EPOLLOUT)) on_writable(c);
      /* Answers leave as soon as this connection's input is handled, so the server works on
       * them while the client goes on with the other connections of this batch. */
      if (c->dirty && c->fd >= 0 && c->state != ST_CONNECTING && !c->want_out) conn_flush(c);
    }
    if (run.npend) { /* --tls: input OpenSSL holds (new arrivals go to the other list) */
      conn **list = run.pend;
      int np = run.npend;
      run.pend = run.pend2;
      run.pend2 = list;
      run.npend = 0;
      for (int i = 0; i < np; i++) {
        conn *c = list[i];
        c->rpend = 0;
        if (c->fd >= 0) on_readable(c);
      }
    }
    for (int i = 0; i < run.ndirty; i++) {
      conn *c = run.dirty[i];
      c->dirty = 0;
      if (c->fd >= 0 && c->state != ST_CONNECTING) conn_flush(c);
    }
    run.ndirty = 0;
    uint64_t now = now_ns();
    advance(now);
    if (now > run.t_deadline && run.phase != PH_END) {
      note_error(NULL, "deadline reached before the scenario finished");
      if (run.t_end == UINT64_MAX || run.t_end > now) run.t_end = now;
      sample_end(now);
      break;
    }
  }
  for (int i = 0; i < run.n; i++) conn_close_fd(&run.c[i]);
  if (run.t_start == UINT64_MAX) run.t_start = run.t_end = 0;
  report();
  return run.errors ? 1 : 0;
}
