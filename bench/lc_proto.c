/* Client-side handshake and framing for the load client (see lc_proto.h). Only what a
 * measuring client needs, but checked strictly: a server that answers a wrong Accept value or
 * a malformed head is counted as failing, never as fast. */
#include "lc_proto.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void lc_mask_key(uint8_t key[4]) {
  /* One RAND_bytes call per 1024 keys keeps the cost per frame at a memcpy. */
  static uint8_t pool[4096];
  static size_t used = sizeof pool;
  if (used == sizeof pool) {
    if (RAND_bytes(pool, (int)sizeof pool) != 1) {
      fprintf(stderr, "loadclient: RAND_bytes failed\n");
      memset(pool, 0x5a, sizeof pool);
    }
    used = 0;
  }
  memcpy(key, pool + used, 4);
  used += 4;
}

int lc_client_key(char *out) {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) return -1;
  EVP_EncodeBlock((unsigned char *)out, raw, sizeof raw);
  out[LC_KEY_LEN] = '\0';
  return 0;
}

void lc_accept_for(const char *key, char out[LC_ACCEPT_LEN + 1]) {
  char buf[LC_KEY_LEN + sizeof GUID];
  unsigned char digest[SHA_DIGEST_LENGTH];
  size_t klen = strlen(key);
  if (klen > LC_KEY_LEN) klen = LC_KEY_LEN;
  memcpy(buf, key, klen);
  memcpy(buf + klen, GUID, sizeof GUID - 1);
  SHA1((const unsigned char *)buf, klen + sizeof GUID - 1, digest);
  EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
  out[LC_ACCEPT_LEN] = '\0';
}

size_t lc_upgrade_request(char *out, size_t cap, int port, const char *path, const char *key) {
  int n = snprintf(out, cap,
                   "GET %s HTTP/1.1\r\n"
                   "Host: 127.0.0.1:%d\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "\r\n",
                   path, port, key);
  if (n < 0 || (size_t)n >= cap) return 0;
  return (size_t)n;
}

/* Does the comma-separated list v[0..n) hold token (case-insensitive)? */
static int has_token(const char *v, size_t n, const char *token) {
  size_t tl = strlen(token), i = 0;
  while (i < n) {
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    size_t start = i;
    while (i < n && v[i] != ',') i++;
    size_t end = i;
    while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t')) end--;
    if (end - start == tl && strncasecmp(v + start, token, tl) == 0) return 1;
  }
  return 0;
}

long lc_check_upgrade(const char *buf, size_t n, const char *expected_accept, const char **why) {
  const char *end = NULL;
  for (size_t i = 3; i < n; i++) {
    if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
      end = buf + i + 1;
      break;
    }
  }
  if (!end) {
    if (n > 16384) { *why = "response head over 16 KiB"; return -1; }
    return 0;
  }
  if (n < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0) { *why = "status is not HTTP/1.1 101"; return -1; }
  int upgrade = 0, connection = 0, accept = 0;
  const char *line = (const char *)memchr(buf, '\n', (size_t)(end - buf)) + 1;
  while (line < end - 2) {
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    if (!eol) break;
    const char *lend = eol;
    if (lend > line && lend[-1] == '\r') lend--;
    const char *colon = memchr(line, ':', (size_t)(lend - line));
    if (colon) {
      size_t nl = (size_t)(colon - line);
      const char *v = colon + 1;
      while (v < lend && (*v == ' ' || *v == '\t')) v++;
      const char *ve = lend;
      while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      size_t vl = (size_t)(ve - v);
      if (nl == 7 && strncasecmp(line, "upgrade", 7) == 0) {
        upgrade |= has_token(v, vl, "websocket");
      } else if (nl == 10 && strncasecmp(line, "connection", 10) == 0) {
        connection |= has_token(v, vl, "upgrade");
      } else if (nl == 20 && strncasecmp(line, "sec-websocket-accept", 20) == 0) {
        if (accept) { *why = "Sec-WebSocket-Accept repeated"; return -1; }
        accept = (vl == LC_ACCEPT_LEN && memcmp(v, expected_accept, LC_ACCEPT_LEN) == 0) ? 1 : -1;
      }
    }
    line = eol + 1;
  }
  if (!upgrade) { *why = "no Upgrade: websocket"; return -1; }
  if (!connection) { *why = "no Connection: upgrade"; return -1; }
  if (accept != 1) { *why = accept ? "wrong Sec-WebSocket-Accept" : "no Sec-WebSocket-Accept"; return -1; }
  return (long)(end - buf);
}

size_t lc_frame_header(uint8_t *out, unsigned opcode, uint64_t len, const uint8_t *mask) {
  size_t h = 2;
  out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
  uint8_t m = mask ? 0x80 : 0;
  if (len < 126) {
    out[1] = (uint8_t)(m | len);
  } else if (len <= 0xffff) {
    out[1] = (uint8_t)(m | 126);
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    h = 4;
  } else {
    out[1] = (uint8_t)(m | 127);
    for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    h = 10;
  }
  if (mask) {
    memcpy(out + h, mask, 4);
    h += 4;
  }
  return h;
}

void lc_mask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4]) {
  uint64_t k8;
  uint8_t kk[8];
  memcpy(kk, key, 4);
  memcpy(kk + 4, key, 4);
  memcpy(&k8, kk, 8);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, src + i, 8);
    w ^= k8;
    memcpy(dst + i, &w, 8);
  }
  for (; i < n; i++) dst[i] = src[i] ^ key[i & 3];
}

int lc_parse_frame(const uint8_t *p, size_t n, lc_frame *f) {
  if (n < 2) return 0;
  f->fin = p[0] >> 7;
  f->rsv = (p[0] >> 4) & 7;
  f->opcode = p[0] & 0x0f;
  f->masked = p[1] >> 7;
  uint64_t len = p[1] & 0x7f;
  size_t h = 2;
  if (len == 126) {
    if (n < 4) return 0;
    len = ((uint64_t)p[2] << 8) | p[3];
    h = 4;
  } else if (len == 127) {
    if (n < 10) return 0;
    if (p[2] & 0x80) return -1;
    len = 0;
    for (int i = 0; i < 8; i++) len = (len << 8) | p[2 + i];
    h = 10;
  }
  if (f->masked) {
    if (n < h + 4) return 0;
    memcpy(f->mask, p + h, 4);
    h += 4;
  }
  f->len = len;
  f->header_len = h;
  return (int)h;
}

/* ---- permessage-deflate ---- */

#include <stdlib.h>
#include <zlib.h>

size_t lc_add_header(char *req, size_t n, size_t cap, const char *line) {
  size_t ll = strlen(line);
  if (n < 2 || n + ll > cap) return 0;
  memmove(req + n - 2 + ll, req + n - 2, 2);
  memcpy(req + n - 2, line, ll);
  return n + ll;
}

/* One extension parameter value: a token or a quoted string; 8..15 or -1. */
static int window_bits(const char *v, size_t n) {
  if (n >= 2 && v[0] == '"' && v[n - 1] == '"') v++, n -= 2;
  if (n < 1 || n > 2) return -1;
  int b = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return -1;
    b = b * 10 + (v[i] - '0');
  }
  if (v[0] == '0' || b < 8 || b > 15) return -1;
  return b;
}

static void trim(const char **s, const char **e) {
  while (*s < *e && (**s == ' ' || **s == '\t')) (*s)++;
  while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t')) (*e)--;
}

/* One element of the answer, v[0..n) ("permessage-deflate; p; p=v"). */
static int answer_element(const char *v, size_t n, lc_pmd_params *pp, int *seen, const char **why) {
  const char *end = v + n, *s = v;
  const char *semi = memchr(s, ';', n);
  const char *ne = semi ? semi : end, *ns = s;
  trim(&ns, &ne);
  if ((size_t)(ne - ns) != 18 || strncasecmp(ns, "permessage-deflate", 18) != 0) {
    *why = "the server answered an extension that was not offered";
    return -1;
  }
  if ((*seen)++) { *why = "permessage-deflate answered twice"; return -1; }
  int have[4] = {0, 0, 0, 0};
  s = semi ? semi + 1 : end;
  while (s < end) {
    const char *pe = memchr(s, ';', (size_t)(end - s));
    if (!pe) pe = end;
    const char *eq = memchr(s, '=', (size_t)(pe - s));
    const char *ks = s, *ke = eq ? eq : pe;
    trim(&ks, &ke);
    const char *vs = eq ? eq + 1 : pe, *ve = pe;
    trim(&vs, &ve);
    size_t kl = (size_t)(ke - ks);
    int k = -1;
    if (kl == 26 && !strncasecmp(ks, "server_no_context_takeover", kl)) k = 0;
    else if (kl == 26 && !strncasecmp(ks, "client_no_context_takeover", kl)) k = 1;
    else if (kl == 22 && !strncasecmp(ks, "server_max_window_bits", kl)) k = 2;
    else if (kl == 22 && !strncasecmp(ks, "client_max_window_bits", kl)) k = 3;
    if (k < 0) { *why = "an unknown permessage-deflate parameter in the answer"; return -1; }
    if (have[k]++) { *why = "a permessage-deflate parameter repeated in the answer"; return -1; }
    if (k == 3) { *why = "client_max_window_bits answered but not offered"; return -1; }
    if (k < 2 && eq) { *why = "a value on a no_context_takeover parameter"; return -1; }
    if (k == 0) pp->server_no_context_takeover = 1;
    if (k == 1) pp->client_no_context_takeover = 1;
    if (k == 2 && (!eq || (pp->server_max_window_bits = window_bits(vs, (size_t)(ve - vs))) < 0)) {
      *why = "server_max_window_bits without a value in 8..15";
      return -1;
    }
    s = pe < end ? pe + 1 : end;
  }
  return 1;
}

int lc_deflate_answer(const char *buf, size_t n, lc_pmd_params *pp, const char **why) {
  static const char name[] = "sec-websocket-extensions";
  pp->server_no_context_takeover = pp->client_no_context_takeover = 0;
  pp->server_max_window_bits = pp->client_max_window_bits = 15;
  int seen = 0;
  const char *end = buf + n;
  const char *line = memchr(buf, '\n', n);
  while (line && ++line < end) {
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    if (!eol) break;
    if ((size_t)(eol - line) > sizeof name && line[sizeof name - 1] == ':' &&
        strncasecmp(line, name, sizeof name - 1) == 0) {
      const char *v = line + sizeof name, *ve = eol;
      while (v < ve) {  /* the comma-separated elements (no quoted commas in our answers) */
        const char *c = memchr(v, ',', (size_t)(ve - v));
        const char *ee = c ? c : ve, *es = v;
        if (ee > es && ee[-1] == '\r') ee--;
        trim(&es, &ee);
        if (ee > es && answer_element(es, (size_t)(ee - es), pp, &seen, why) < 0) return -1;
        v = c ? c + 1 : ve;
      }
    }
    line = eol;
  }
  return seen ? 1 : 0;
}

struct lc_pmd {
  lc_pmd_params p;
  z_stream def, inf;
  int def_on, inf_on;
  uint8_t *obuf, *ibuf; /* compressed output, inflated output */
  size_t ocap, icap;
};

lc_pmd *lc_pmd_new(const lc_pmd_params *params, int level) {
  lc_pmd *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->p = *params;
  /* zlib's deflate has no 8-bit raw window: 9 (RFC 7692 8.1.2.1 allows the larger one only
   * when the peer accepts it; our offer never asks for a client window, so this stays 15) */
  int cbits = d->p.client_max_window_bits < 9 ? 9 : d->p.client_max_window_bits;
  if (deflateInit2(&d->def, level, Z_DEFLATED, -cbits, 8, Z_DEFAULT_STRATEGY) != Z_OK) goto fail;
  d->def_on = 1;
  if (inflateInit2(&d->inf, -d->p.server_max_window_bits) != Z_OK) goto fail;
  d->inf_on = 1;
  return d;
fail:
  lc_pmd_free(d);
  return NULL;
}

void lc_pmd_free(lc_pmd *d) {
  if (!d) return;
  if (d->def_on) deflateEnd(&d->def);
  if (d->inf_on) inflateEnd(&d->inf);
  free(d->obuf);
  free(d->ibuf);
  free(d);
}

static int grow(uint8_t **buf, size_t *bcap, size_t want) {
  if (want <= *bcap) return 0;
  size_t cap = *bcap ? *bcap : 4096;
  while (cap < want) cap *= 2;
  uint8_t *p = realloc(*buf, cap);
  if (!p) return -1;
  *buf = p;
  *bcap = cap;
  return 0;
}

static int deflate_piece(lc_pmd *d, const uint8_t *p, size_t n, int flush, size_t *used) {
  d->def.next_in = (Bytef *)(uintptr_t)p;
  d->def.avail_in = (uInt)n;
  for (;;) {
    if (grow(&d->obuf, &d->ocap, *used + 64 + n / 2)) return -1;
    d->def.next_out = d->obuf + *used;
    d->def.avail_out = (uInt)(d->ocap - *used);
    int rc = deflate(&d->def, flush);
    *used = d->ocap - d->def.avail_out;
    if (rc != Z_OK && rc != Z_BUF_ERROR) return -1;
    if (d->def.avail_in == 0 && d->def.avail_out > 0) return 0;
  }
}

int lc_pmd_compress(lc_pmd *d, const uint8_t *a, size_t na, const uint8_t *b, size_t nb,
                    const uint8_t **out, size_t *out_len) {
  size_t used = 0;
  if (nb && deflate_piece(d, a, na, Z_NO_FLUSH, &used)) return -1;
  if (deflate_piece(d, nb ? b : a, nb ? nb : na, Z_SYNC_FLUSH, &used)) return -1;
  if (used < 4 || memcmp(d->obuf + used - 4, "\0\0\xff\xff", 4) != 0) return -1;
  used -= 4;
  if (d->p.client_no_context_takeover && deflateReset(&d->def) != Z_OK) return -1;
  *out = d->obuf;
  *out_len = used;
  return 0;
}

int lc_pmd_inflate(lc_pmd *d, const uint8_t *p, size_t n, size_t max, const uint8_t **out, size_t *out_len,
                   const char **why) {
  static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
  size_t used = 0;
  for (int part = 0; part < 2; part++) {
    d->inf.next_in = (Bytef *)(uintptr_t)(part ? tail : p);
    d->inf.avail_in = part ? 4 : (uInt)n;
    while (d->inf.avail_in > 0) {
      if (grow(&d->ibuf, &d->icap, used + 4096 + 3 * n)) { *why = "out of memory inflating"; return -1; }
      d->inf.next_out = d->ibuf + used;
      d->inf.avail_out = (uInt)(d->icap - used);
      int rc = inflate(&d->inf, Z_SYNC_FLUSH);
      used = d->icap - d->inf.avail_out;
      if (rc == Z_STREAM_END) goto final_block; /* BFINAL (RFC 7692 7.2.3.4): the stream starts anew */
      if (rc != Z_OK && rc != Z_BUF_ERROR) { *why = "invalid compressed data"; return -1; }
      if (used > max) { *why = "inflated message too large"; return -1; }
      if (rc == Z_BUF_ERROR && d->inf.avail_out > 0) break;
    }
  }
  /* what inflate still holds back once the input is used up */
  for (;;) {
    if (grow(&d->ibuf, &d->icap, used + 4096)) { *why = "out of memory inflating"; return -1; }
    d->inf.next_out = d->ibuf + used;
    d->inf.avail_out = (uInt)(d->icap - used);
    int rc = inflate(&d->inf, Z_SYNC_FLUSH);
    used = d->icap - d->inf.avail_out;
    if (rc == Z_STREAM_END) goto final_block;
    if (rc != Z_OK && rc != Z_BUF_ERROR) { *why = "invalid compressed data"; return -1; }
    if (used > max) { *why = "inflated message too large"; return -1; }
    if (d->inf.avail_out > 0) break;
  }
  if (d->p.server_no_context_takeover && inflateReset(&d->inf) != Z_OK) { *why = "inflateReset failed"; return -1; }
  if (0) {
  final_block:
    if (used > max) { *why = "inflated message too large"; return -1; }
    if (inflateReset(&d->inf) != Z_OK) { *why = "inflateReset failed"; return -1; }
  }
  *out = d->ibuf;
  *out_len = used;
  return 0;
}

/* ---- JSON-like payloads ---- */

static const char *const WORDS[] = {
  "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
  "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
  "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "hello", "there", "message", "room",
  "lobby", "status", "online", "away", "typing", "update", "price", "order", "ticket", "event",
};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])

static uint32_t xs32(uint32_t *s) {
  uint32_t x = *s;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

void lc_json_body(uint8_t *out, size_t n, uint32_t index) {
  char item[256];
  uint32_t st = index * 2654435761u + 0x9e3779b9u;
  if (!st) st = 1;
  size_t len = (size_t)snprintf((char *)out, n, "{\"seq\":\"00000000\",\"items\":[");
  if (n < 32 || len + 2 > n) {
    memset(out, 'x', n);
    if (n >= 16) memcpy(out, "{\"seq\":\"00000000", 16);
    return;
  }
  for (int k = 0; ; k++) {
    uint32_t r1 = xs32(&st), r2 = xs32(&st), r3 = xs32(&st);
    int il = snprintf(item, sizeof item,
                      "%s{\"id\":%u,\"user\":\"%s%u\",\"room\":\"%s\",\"score\":%u.%02u,\"tags\":[\"%s\",\"%s\"],"
                      "\"text\":\"%s %s %s %s\",\"ok\":%s}",
                      k ? "," : "", r1 % 1000000u, WORDS[r2 % NWORDS], r3 % 100u, WORDS[(r1 >> 8) % 8],
                      (r2 >> 8) % 1000u, (r3 >> 8) % 100u, WORDS[(r1 >> 12) % NWORDS], WORDS[(r2 >> 12) % NWORDS],
                      WORDS[(r3 >> 12) % NWORDS], WORDS[(r1 >> 20) % NWORDS], WORDS[(r2 >> 20) % NWORDS],
                      WORDS[(r3 >> 20) % NWORDS], (r1 >> 30) ? "true" : "false");
    if (il < 0 || len + (size_t)il + 2 > n) break;
    memcpy(out + len, item, (size_t)il);
    len += (size_t)il;
  }
  memset(out + len, ' ', n - 2 - len);
  memcpy(out + n - 2, "]}", 2);
}
