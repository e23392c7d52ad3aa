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
