/* RFC 6455 section 4: the opening handshake over caller buffers (see ws_handshake.h).
 * The head parser checks each line as soon as its line end arrives and remembers how far it
 * got, so a head that arrives one byte at a time still costs linear time; it never allocates. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ws_handshake.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const char ws_err_header_name[] = "invalid header name";
const char ws_err_header_value[] = "invalid value for header";

/* ---- characters ---- */

/* Character classes, one lookup per byte: C_TCHAR, the RFC 7230 3.2.6 token characters
 * (digits, letters and !#$%&'*+-.^_`|~); C_HOST, those of a Host value (host_valid). */
enum { C_TCHAR = 1, C_HOST = 2 };
static const unsigned char cclass[256] = {
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 3, 0, 1, 3, 3, 3, 3, 2, 2, 3, 3, 2, 3, 3, 0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 0, 2, 0, 0,
  0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 0, 2, 1, 3,
  1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 1, 0, 3, 0,
};

static int is_tchar(unsigned char c) { return cclass[c] & C_TCHAR; }

static int is_ctl(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; }
/* RFC 5234 VCHAR: what a request target (RFC 7230 3.1.1) and the Host we send are made of. */
static int is_visible(unsigned char c) { return c > 0x20 && c < 0x7f; }
static int is_ows(char c) { return c == ' ' || c == '\t'; }

static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c; }

static int ieq(const char *a, size_t alen, const char *b, size_t blen) {
  if (alen != blen) return 0;
  for (size_t i = 0; i < alen; i++)
    if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return 0;
  return 1;
}

int ws_header_name_valid(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (!is_tchar((unsigned char)s[i])) return 0;
  return 1;
}

int ws_header_value_valid(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (is_ctl((unsigned char)s[i])) return 0;
  return 1;
}

size_t ws_headers_check(const ws_header *hs, size_t n, const char **error) {
  for (size_t i = 0; i < n; i++) {
    if (!ws_header_name_valid(hs[i].name, hs[i].name_len)) {
      *error = ws_err_header_name;
      return i;
    }
    if (!ws_header_value_valid(hs[i].value, hs[i].value_len)) {
      *error = ws_err_header_value;
      return i;
    }
  }
  *error = NULL;
  return n;
}

/* ---- the head scanner shared by requests and responses ----
 * The two structs keep the same bookkeeping under different layouts, so the scanner works
 * through pointers to their fields. */

typedef struct head {
  size_t *scanned, *line, *lines;
  ws_header *headers;
  size_t *num_headers;
  const char **error;
  int *status;       /* where the HTTP status to answer goes; NULL for responses */
  const char *too_large;
  const char *bad_first_ctl; /* control character reported in the first line */
  int (*first_line)(void *r, const char *p, size_t n, const char **error);
  void *r;
  unsigned char *first, *count; /* a request's index of the headers its checks read; NULL else */
} head;

/* The headers a request's index holds (ws_request._first), by their lower-case names. */
enum { H_HOST, H_UPGRADE, H_CONNECTION, H_KEY, H_VERSION, H_PROTOCOL, H_EXTENSIONS, H_ORIGIN,
       H_CONTENT_LENGTH, H_TRANSFER_ENCODING, H_INDEXED };
typedef char indexed_headers_fit[H_INDEXED == WS_INDEXED_HEADERS ? 1 : -1];
static const char *const indexed_names[H_INDEXED] = {
  "host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
  "sec-websocket-protocol", "sec-websocket-extensions", "origin", "content-length",
  "transfer-encoding",
};

/* Is name[0..n) the lower-case lc[0..n) (letters and '-') in any case? Eight bytes at a time:
 * OR-ing 0x20 into a letter's byte folds its case ((lc & 0x40) >> 1 is 0x20 for a letter, 0
 * for '-', which must then match exactly). */
static int same_name(const char *name, const char *lc, size_t n) {
  const uint64_t fold = 0x4040404040404040ULL;
  uint64_t a, b;
  size_t i = 0;
  if (n < 8) {
    for (; i < n; i++)
      if ((unsigned char)(name[i] | ((lc[i] & 0x40) >> 1)) != (unsigned char)lc[i]) return 0;
    return 1;
  }
  for (;; i += 8) {
    if (i + 8 > n) i = n - 8; /* the last word overlaps the one before */
    memcpy(&a, name + i, 8);
    memcpy(&b, lc + i, 8);
    if ((a | ((b & fold) >> 1)) != b) return 0;
    if (i + 8 == n) return 1;
  }
}

/* Which indexed header is named name[0..n) (in any case), or -1: the length picks the one
 * candidate, then one comparison. */
static int indexed_header(const char *name, size_t n) {
  int k;
  switch (n) {
  case 4: k = H_HOST; break;
  case 6: k = H_ORIGIN; break;
  case 7: k = H_UPGRADE; break;
  case 10: k = H_CONNECTION; break;
  case 14: k = H_CONTENT_LENGTH; break;
  case 17: k = lower((unsigned char)name[0]) == 's' ? H_KEY : H_TRANSFER_ENCODING; break;
  case 21: k = H_VERSION; break;
  case 22: k = H_PROTOCOL; break;
  case 24: k = H_EXTENSIONS; break;
  default: return -1;
  }
  return same_name(name, indexed_names[k], n) ? k : -1;
}

static int head_fail(const head *h, int status, const char *error) {
  *h->error = error;
  if (h->status) *h->status = status;
  return WS_ERROR;
}

/* One header line, without its line end, into headers[index]. */
static int header_line(const head *h, const char *p, size_t n, size_t index) {
  size_t i = 0;
  int k = -1;
  if (is_ows(p[0])) return head_fail(h, 400, "obsolete line folding");
  if (h->first) { /* a request: is it one of the indexed headers (whose names are tokens)? */
    const char *colon = memchr(p, ':', n);
    if (colon) k = indexed_header(p, (size_t)(colon - p));
    if (k >= 0) i = (size_t)(colon - p);
  }
  if (k < 0) {
    while (i < n && is_tchar((unsigned char)p[i])) i++;
    if (i == n) return head_fail(h, 400, "header line without colon");
    if (p[i] != ':') {
      if (is_ows(p[i])) return head_fail(h, 400, "white space in header name");
      return head_fail(h, 400, "invalid character in header name");
    }
    if (i == 0) return head_fail(h, 400, "empty header name");
  }
  size_t v = i + 1, e = n;
  while (v < e && is_ows(p[v])) v++;
  while (e > v && is_ows(p[e - 1])) e--;
  ws_header *hd = &h->headers[index];
  hd->name = p;
  hd->name_len = i;
  hd->value = p + v;
  hd->value_len = e - v;
  *h->num_headers = index + 1;
  if (k >= 0 && h->count[k]++ == 0) h->first[k] = (unsigned char)(index + 1); /* index < WS_MAX_HEADERS */
  return 0;
}

/* Does the word hold a byte below 0x20 or a DEL (a line end, or a control character but
 * maybe a tab)? Nonzero if so, with the high bit of each such byte set. Bytes from 0x80 up do
 * not count, as in the byte loop. A borrow only ever flags a byte above a flagged one, so the
 * answer to "is there one" is exact, and so is the flag of the first one in memory order. */
static uint64_t word_special(uint64_t x) {
  const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  uint64_t del = x ^ (ones * 0x7f);
  return (((x - ones * 0x20) & ~x) | ((del - ones) & ~del)) & highs;
}

/* Scan buf[*scanned .. min(len, max)), checking every line whose end has arrived. Returns
 * the length of the head, WS_AGAIN or WS_ERROR. Every decision depends only on the bytes
 * before the point where it is taken, so any split of the input gives the same result. */
static int head_scan(const head *h, const char *buf, size_t len, size_t max) {
  size_t w = len < max ? len : max;
  size_t pos = *h->scanned;
  while (pos < w) {
    /* Most bytes are none of CR, LF or a control character: skip them eight at a time. */
    while (w - pos >= 8) {
      uint64_t x, m;
      memcpy(&x, buf + pos, 8);
      if ((m = word_special(x))) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        pos += (size_t)__builtin_ctzll(m) >> 3; /* the first byte in memory is the lowest */
#endif
        break;
      }
      pos += 8;
    }
    unsigned char c = 0;
    while (pos < w && (c = (unsigned char)buf[pos]) >= 0x20 && c != 0x7f) pos++;
    if (pos == w) break;
    if (c == '\n') {
      size_t start = *h->line, end = pos;
      if (end > start && buf[end - 1] == '\r') end--;
      if (end == start) {
        if (*h->lines == 0) return head_fail(h, 400, "empty first line");
        return (int)(pos + 1);
      }
      if (*h->lines == 0) {
        if (h->first_line(h->r, buf + start, end - start, h->error) < 0) {
          if (h->status) *h->status = 400;
          return WS_ERROR;
        }
      } else {
        if (*h->lines > WS_MAX_HEADERS) return head_fail(h, 431, "too many header lines");
        if (header_line(h, buf + start, end - start, *h->lines - 1) < 0) return WS_ERROR;
      }
      (*h->lines)++;
      *h->line = *h->scanned = pos + 1;
    } else if (c == '\r') {
      if (pos + 1 == w) break; /* its LF may be next: look at this CR again */
      if (buf[pos + 1] != '\n') return head_fail(h, 400, "CR without LF");
    } else if (c != '\t') {
      return head_fail(h, 400, *h->lines == 0 ? h->bad_first_ctl : "control character in header");
    }
    pos++;
  }
  *h->scanned = pos;
  if (len > max) return head_fail(h, 431, h->too_large);
  return WS_AGAIN;
}

/* Parse, and when the head is complete make every pointer refer to this buffer: lines checked
 * in earlier calls pointed into the caller's earlier (maybe moved) buffer, so they are filled
 * again from the start, once. */
static int head_parse(const head *h, const char *buf, size_t len, size_t max) {
  int fresh = *h->lines == 0;
  if (max == 0) max = WS_DEFAULT_MAX_HEADER_BYTES;
  if (max > (size_t)INT_MAX) max = (size_t)INT_MAX;
  *h->error = NULL;
  if (h->status) *h->status = 0;
  int n = head_scan(h, buf, len, max);
  if (n >= 0 && !fresh) {
    *h->scanned = *h->line = *h->lines = 0;
    *h->num_headers = 0;
    if (h->first) {
      memset(h->first, 0, WS_INDEXED_HEADERS);
      memset(h->count, 0, WS_INDEXED_HEADERS);
    }
    n = head_scan(h, buf, (size_t)n, (size_t)n);
  }
  return n;
}

static int http_version(const char *p, size_t n, int *minor, const char **error) {
  if (n == 8 && memcmp(p, "HTTP/1.", 7) == 0 && p[7] >= '0' && p[7] <= '9') {
    *minor = p[7] - '0';
    return 0;
  }
  if (n == 8 && memcmp(p, "HTTP/", 5) == 0 && p[5] >= '0' && p[5] <= '9' && p[6] == '.' &&
      p[7] >= '0' && p[7] <= '9')
    *error = "unsupported HTTP version";
  else
    *error = "invalid HTTP version";
  return -1;
}

/* ---- server side ---- */

static int request_line(void *rv, const char *p, size_t n, const char **error) {
  ws_request *r = rv;
  size_t i = 0;
  while (i < n && is_tchar((unsigned char)p[i])) i++;
  if (i == 0 || i == n || p[i] != ' ') { *error = "invalid method"; return -1; }
  r->method = p;
  r->method_len = i;
  size_t t = ++i;
  while (i < n && p[i] != ' ') {
    unsigned char c = (unsigned char)p[i];
    if (!is_visible(c)) { *error = "invalid request target"; return -1; }
    i++;
  }
  if (i == t) { *error = "invalid request target"; return -1; }
  if (i == n) { *error = "invalid request line"; return -1; }
  r->target = p + t;
  r->target_len = i - t;
  const char *q = memchr(r->target, '?', r->target_len);
  r->path = r->target;
  r->path_len = q ? (size_t)(q - r->target) : r->target_len;
  r->query = q ? q + 1 : NULL;
  r->query_len = q ? r->target_len - r->path_len - 1 : 0;
  return http_version(p + i + 1, n - i - 1, &r->minor_version, error);
}

static head request_head(ws_request *r) {
  head h = { &r->_scanned, &r->_line, &r->_lines, r->headers, &r->num_headers, &r->error,
             &r->status, "request head too large", "control character in request line",
             request_line, r, r->_first, r->_count };
  return h;
}

void ws_request_init(ws_request *r) {
  memset(r, 0, offsetof(ws_request, headers));
  memset(&r->num_headers, 0, sizeof *r - offsetof(ws_request, num_headers));
}

int ws_request_parse(ws_request *r, const char *buf, size_t len, size_t max_header_bytes) {
  head h = request_head(r);
  return head_parse(&h, buf, len, max_header_bytes);
}

static const ws_header *find_header(const ws_header *hs, size_t n, const char *name,
                                    const ws_header *after) {
  size_t i = after ? (size_t)(after - hs) + 1 : 0, len = strlen(name);
  for (; i < n; i++)
    if (ieq(hs[i].name, hs[i].name_len, name, len)) return &hs[i];
  return NULL;
}

/* The next header of indexed kind k after `after` (NULL: the first), from the index. */
static const ws_header *req_find(const ws_request *r, int k, const ws_header *after) {
  if (!r->_count[k]) return NULL;
  const ws_header *first = &r->headers[r->_first[k] - 1];
  if (!after || after < first) return first;
  if (r->_count[k] == 1) return NULL;
  return find_header(r->headers, r->num_headers, indexed_names[k], after);
}

const ws_header *ws_request_header(const ws_request *r, const char *name, const ws_header *after) {
  int k = indexed_header(name, strlen(name));
  if (k >= 0) return req_find(r, k, after);
  return find_header(r->headers, r->num_headers, name, after);
}

int ws_response_content_length(const ws_response *r, size_t cap, size_t *len) {
  const ws_header *h = ws_response_header(r, "Content-Length", NULL);
  size_t v = 0;
  if (!h) return 0;
  if (!h->value_len) return -1;
  for (size_t i = 0; i < h->value_len; i++) {
    if (h->value[i] < '0' || h->value[i] > '9') return -1;
    if (v < cap) v = v * 10 + (size_t)(h->value[i] - '0'); /* stops growing once past cap */
  }
  *len = v < cap ? v : cap;
  return 1;
}

const ws_header *ws_response_header(const ws_response *r, const char *name, const ws_header *after) {
  return find_header(r->headers, r->num_headers, name, after);
}

int ws_header_next_token(const char *value, size_t value_len, size_t *pos, const char **tok,
                         size_t *tok_len) {
  size_t i = *pos;
  for (;;) {
    while (i < value_len && (is_ows(value[i]) || value[i] == ',')) i++;
    if (i >= value_len) { *pos = i; return 0; }
    size_t start = i;
    int quoted = 0;
    for (; i < value_len; i++) {
      char c = value[i];
      if (quoted) {
        if (c == '\\' && i + 1 < value_len) i++;
        else if (c == '"') quoted = 0;
      } else if (c == '"') {
        quoted = 1;
      } else if (c == ',') {
        break;
      }
    }
    size_t end = i;
    while (end > start && is_ows(value[end - 1])) end--;
    *pos = i;
    *tok = value + start;
    *tok_len = end - start;
    return 1;
  }
}

/* Does h's value list `token` (case-insensitive; lower-case letters only)? */
static int lists_token(const ws_header *h, const char *token, size_t tlen) {
  size_t pos = 0, len;
  const char *t;
  /* the usual value: the token alone */
  if (h->value_len == tlen && same_name(h->value, token, tlen)) return 1;
  while (ws_header_next_token(h->value, h->value_len, &pos, &t, &len))
    if (ieq(t, len, token, tlen)) return 1;
  return 0;
}

/* Does any header `name` list `token`? */
static int has_token(const ws_header *hs, size_t n, const char *name, const char *token) {
  size_t tlen = strlen(token);
  for (const ws_header *h = find_header(hs, n, name, NULL); h; h = find_header(hs, n, name, h))
    if (lists_token(h, token, tlen)) return 1;
  return 0;
}

/* The same for a request's indexed header k. */
static int req_has_token(const ws_request *r, int k, const char *token) {
  size_t tlen = strlen(token);
  for (const ws_header *h = req_find(r, k, NULL); h; h = req_find(r, k, h))
    if (lists_token(h, token, tlen)) return 1;
  return 0;
}

int ws_request_is_upgrade(const ws_request *r) { return req_has_token(r, H_UPGRADE, "websocket"); }

/* Base64 of exactly 16 bytes, in its one canonical spelling (decode, encode again, compare). */
int ws_key_valid(const char *key, size_t len) {
  unsigned char raw[24];
  char again[WS_KEY_LEN + 1];
  if (len != WS_KEY_LEN) return 0;
  if (EVP_DecodeBlock(raw, (const unsigned char *)key, (int)len) != 18) return 0;
  EVP_EncodeBlock((unsigned char *)again, raw, 16);
  return memcmp(again, key, WS_KEY_LEN) == 0;
}

/* Host is uri-host [":" port] (RFC 7230 5.4, RFC 3986 3.2.2): reg-name, IPv4 and IP-literal
 * characters only. White space, userinfo ('@'), a path or anything non-ASCII is refused. */
static int host_valid(const char *s, size_t n) { /* -._~%!$&'()*+,;=:[] and alphanumerics */
  for (size_t i = 0; i < n; i++)
    if (!(cclass[(unsigned char)s[i]] & C_HOST)) return 0;
  return 1;
}

/* Every element of every Sec-WebSocket-Protocol header is a token (RFC 6455 4.3: 1#token);
 * empty list elements are skipped as RFC 7230 7 asks. */
static int protocols_valid(const ws_request *r) {
  for (const ws_header *h = req_find(r, H_PROTOCOL, NULL); h; h = req_find(r, H_PROTOCOL, h)) {
    size_t pos = 0, len;
    const char *t;
    while (ws_header_next_token(h->value, h->value_len, &pos, &t, &len))
      if (!ws_header_name_valid(t, len)) return 0;
  }
  return 1;
}

static int request_fail(ws_request *r, int status, const char *error) {
  r->status = status;
  r->error = error;
  return status;
}

int ws_request_check_upgrade(ws_request *r) {
  const ws_header *h, *key, *version;
  r->status = 0;
  r->error = NULL;
  /* Origin and the key are exposed even when a check fails, for the log of the refusal. */
  h = req_find(r, H_ORIGIN, NULL);
  r->origin = h ? h->value : NULL;
  r->origin_len = h ? h->value_len : 0;
  key = req_find(r, H_KEY, NULL);
  r->key = key ? key->value : NULL;
  r->key_len = key ? key->value_len : 0;

  if (!(r->method_len == 3 && memcmp(r->method, "GET", 3) == 0))
    return request_fail(r, 400, "method must be GET");
  if (r->minor_version < 1) return request_fail(r, 400, "HTTP/1.1 or later required");
  h = req_find(r, H_HOST, NULL);
  if (!h) return request_fail(r, 400, "missing Host header");
  if (r->_count[H_HOST] > 1) return request_fail(r, 400, "repeated Host header");
  if (h->value_len == 0) return request_fail(r, 400, "empty Host header");
  if (!host_valid(h->value, h->value_len)) return request_fail(r, 400, "invalid Host header");
  if (!req_has_token(r, H_UPGRADE, "websocket"))
    return request_fail(r, 400, "missing Upgrade: websocket");
  if (!req_has_token(r, H_CONNECTION, "upgrade"))
    return request_fail(r, 400, "missing Connection: Upgrade");
  version = req_find(r, H_VERSION, NULL);
  if (!version) return request_fail(r, 426, "missing Sec-WebSocket-Version");
  if (r->_count[H_VERSION] > 1 || !(version->value_len == 2 && memcmp(version->value, "13", 2) == 0))
    return request_fail(r, 426, "unsupported Sec-WebSocket-Version");
  if (!key) return request_fail(r, 400, "missing Sec-WebSocket-Key");
  if (r->_count[H_KEY] > 1) return request_fail(r, 400, "repeated Sec-WebSocket-Key");
  if (!ws_key_valid(key->value, key->value_len))
    return request_fail(r, 400, "invalid Sec-WebSocket-Key");
  if (!protocols_valid(r)) return request_fail(r, 400, "invalid Sec-WebSocket-Protocol");
  /* Frames follow the head at once: a body would be read as frames here and as a body by
   * anything in between. Content-Length: 0 is the only length that says no body. */
  if (r->_count[H_TRANSFER_ENCODING]) return request_fail(r, 400, "request body not allowed");
  for (h = req_find(r, H_CONTENT_LENGTH, NULL); h; h = req_find(r, H_CONTENT_LENGTH, h))
    if (!(h->value_len == 1 && h->value[0] == '0')) return request_fail(r, 400, "request body not allowed");
  /* One Origin at most (RFC 6454 7.3): with two, an origin check would see one value while
   * the request carries another. */
  if (r->_count[H_ORIGIN] > 1) return request_fail(r, 400, "repeated Origin header");
  return 0;
}

/* Subprotocol names are compared exactly, as browsers do. */
int ws_protocol_find(const char *const *list, size_t n, const char *p, size_t plen) {
  for (size_t i = 0; i < n; i++)
    if (strlen(list[i]) == plen && memcmp(list[i], p, plen) == 0) return (int)i;
  return -1;
}

int ws_request_choose_protocol(const ws_request *r, const char *const *protocols, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const ws_header *h = NULL;
    while ((h = req_find(r, H_PROTOCOL, h))) {
      size_t pos = 0, len;
      const char *t;
      while (ws_header_next_token(h->value, h->value_len, &pos, &t, &len))
        if (ws_protocol_find(protocols + i, 1, t, len) == 0) return (int)i;
    }
  }
  return -1;
}

/* OpenSSL 3 looks EVP_sha1() up in its provider tables on every use, which costs more than
 * hashing a key: the implementation is fetched once and kept until ws_accept_key_release. A
 * digest context costs a malloc and a free and most of an init, so each thread keeps one (a
 * context is not to be shared between threads; without thread-local storage, one per call). */
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
static EVP_MD *sha1_fetched;
#endif
#if defined(__GNUC__)
#define SHA1_CTX_KEPT 1
static __thread EVP_MD_CTX *sha1_ctx;
#endif

static const EVP_MD *sha1_md(void) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  if (!sha1_fetched) sha1_fetched = EVP_MD_fetch(NULL, "SHA1", NULL);
  if (sha1_fetched) return sha1_fetched;
#endif
  return EVP_sha1();
}

void ws_accept_key_prepare(void) { (void)sha1_md(); }

/* Called where the module is unloaded (the last Lua state using it closes): this thread's
 * context and the implementation go. */
void ws_accept_key_release(void) {
#ifdef SHA1_CTX_KEPT
  EVP_MD_CTX_free(sha1_ctx);
  sha1_ctx = NULL;
#endif
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  EVP_MD_free(sha1_fetched);
  sha1_fetched = NULL;
#endif
}

void ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  char text[64]; /* key and GUID in one piece, one update, when the key is the usual 24 */
  unsigned int dlen = 0;
  int ok = 0;
#ifdef SHA1_CTX_KEPT
  EVP_MD_CTX *ctx = sha1_ctx ? sha1_ctx : (sha1_ctx = EVP_MD_CTX_new());
#else
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
#endif
  if (ctx && EVP_DigestInit_ex(ctx, sha1_md(), NULL)) {
    if (key_len + sizeof ws_guid - 1 <= sizeof text) {
      memcpy(text, key, key_len);
      memcpy(text + key_len, ws_guid, sizeof ws_guid - 1);
      ok = EVP_DigestUpdate(ctx, text, key_len + sizeof ws_guid - 1);
    } else {
      ok = EVP_DigestUpdate(ctx, key, key_len) && EVP_DigestUpdate(ctx, ws_guid, sizeof ws_guid - 1);
    }
    ok = ok && EVP_DigestFinal_ex(ctx, digest, &dlen) && dlen == 20;
  }
#ifndef SHA1_CTX_KEPT
  EVP_MD_CTX_free(ctx);
#endif
  if (!ok) { /* no memory for a digest context: an empty value that matches nothing */
    out[0] = '\0';
    return;
  }
  EVP_EncodeBlock((unsigned char *)out, digest, 20);
}

/* ---- response and request builders ---- */

typedef struct writer {
  ws_buf *b;
  size_t start; /* out's size before we began: restored on failure */
  int failed;
} writer;

static void put(writer *w, const char *s, size_t n) {
  if (!w->failed && ws_buf_append(w->b, s, n, 0) < 0) w->failed = 1;
}
static void puts_(writer *w, const char *s) { put(w, s, strlen(s)); }
static void put_header(writer *w, const char *name, const char *value, size_t vlen) {
  puts_(w, name);
  put(w, ": ", 2);
  put(w, value, vlen);
  put(w, "\r\n", 2);
}

static int extra_valid(const ws_header *extra, size_t n) {
  const char *error;
  return ws_headers_check(extra, n, &error) == n;
}

static void put_extra(writer *w, const ws_header *extra, size_t n) {
  for (size_t i = 0; i < n; i++) {
    put(w, extra[i].name, extra[i].name_len);
    put(w, ": ", 2);
    put(w, extra[i].value, extra[i].value_len);
    put(w, "\r\n", 2);
  }
}

static int writer_end(writer *w) {
  if (!w->failed) return 0;
  /* Appends only ever add at the end (a reserve may move the data, never reorder it). */
  w->b->len = w->b->head + w->start;
  if (w->b->len == w->b->head) w->b->head = w->b->len = 0;
  return -1;
}

static writer writer_begin(ws_buf *b) {
  writer w = { b, ws_buf_size(b), 0 };
  return w;
}

static int text_valid(const char *s) { return !s || ws_header_value_valid(s, strlen(s)); }

static int arg_fail(ws_arg_error *e, int arg, size_t index, const char *why, const char *value, size_t len) {
  e->arg = arg;
  e->index = index;
  e->why = why;
  e->value = value;
  e->value_len = len;
  return arg;
}

static int arg_text(ws_arg_error *e, int arg, const char *why, const char *value) {
  return arg_fail(e, arg, 0, why, value, value ? strlen(value) : 0);
}

/* The extra headers: valid, and (for a 101) none of those the handshake writes. */
static int extra_check(const ws_header *extra, size_t n, int accept, ws_arg_error *e) {
  static const struct { const char *name, *why; } own[] = {
    { "Upgrade", "Upgrade is set by the handshake" },
    { "Connection", "Connection is set by the handshake" },
    { "Sec-WebSocket-Accept", "Sec-WebSocket-Accept is set by the handshake" },
    { "Sec-WebSocket-Protocol", "Sec-WebSocket-Protocol is set with the protocol field" },
    { "Sec-WebSocket-Extensions", "Sec-WebSocket-Extensions is set by the compression option or the extensions field" },
  };
  const char *why;
  size_t i = ws_headers_check(extra, n, &why);
  if (i < n)
    return arg_fail(e, WS_ARG_HEADER, i, why == ws_err_header_name ? "invalid header name '%s'"
                                                                  : "invalid value for header '%s'",
                    extra[i].name, extra[i].name_len);
  for (i = 0; accept && i < n; i++)
    for (size_t k = 0; k < sizeof own / sizeof own[0]; k++)
      if (ieq(extra[i].name, extra[i].name_len, own[k].name, strlen(own[k].name)))
        return arg_fail(e, WS_ARG_HEADER, i, own[k].why, extra[i].name, extra[i].name_len);
  return 0;
}

int ws_response_accept_check(const char *protocol, const char *extensions, const ws_header *extra,
                             size_t nextra, ws_arg_error *e) {
  memset(e, 0, sizeof *e);
  if (protocol && !ws_header_name_valid(protocol, strlen(protocol)))
    return arg_text(e, WS_ARG_PROTOCOL, "invalid protocol name '%s'", protocol);
  if (!text_valid(extensions)) return arg_text(e, WS_ARG_EXTENSIONS, "invalid extensions value", NULL);
  return extra_check(extra, nextra, 1, e);
}

int ws_response_accept(ws_buf *out, const char *key, size_t key_len, const char *protocol,
                       const char *extensions, const ws_header *extra, size_t nextra) {
  char accept[WS_ACCEPT_LEN + 1];
  ws_arg_error e;
  if (ws_response_accept_check(protocol, extensions, extra, nextra, &e)) return -1;
  ws_accept_key(key, key_len, accept);
  writer w = writer_begin(out);
  puts_(&w, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
  put_header(&w, "Sec-WebSocket-Accept", accept, strlen(accept));
  if (protocol) put_header(&w, "Sec-WebSocket-Protocol", protocol, strlen(protocol));
  if (extensions && *extensions) put_header(&w, "Sec-WebSocket-Extensions", extensions, strlen(extensions));
  put_extra(&w, extra, nextra);
  put(&w, "\r\n", 2);
  return writer_end(&w);
}

const char *ws_status_text(int status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 426: return "Upgrade Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: break;
  }
  switch (status / 100) {
  case 1: return "Informational";
  case 2: return "Success";
  case 3: return "Redirection";
  case 4: return "Client Error";
  case 5: return "Server Error";
  default: return "Unknown";
  }
}

int ws_status_valid(long long status) { return status >= 100 && status <= 999; }

static int response(ws_buf *out, int status, const ws_header *extra, size_t nextra,
                    const char *body, size_t body_len, int with_body) {
  char line[64];
  if (!ws_status_valid(status) || !extra_valid(extra, nextra)) return -1;
  if (!body) body_len = 0;
  writer w = writer_begin(out);
  snprintf(line, sizeof line, "HTTP/1.1 %d ", status);
  puts_(&w, line);
  puts_(&w, ws_status_text(status));
  snprintf(line, sizeof line, "\r\nContent-Length: %zu\r\n", body_len);
  puts_(&w, line);
  puts_(&w, "Connection: close\r\n");
  if (status == 426) puts_(&w, "Sec-WebSocket-Version: 13\r\n");
  put_extra(&w, extra, nextra);
  put(&w, "\r\n", 2);
  if (body_len && with_body) put(&w, body, body_len);
  return writer_end(&w);
}

int ws_response_status(ws_buf *out, int status, const ws_header *extra, size_t nextra,
                       const char *body, size_t body_len) {
  return response(out, status, extra, nextra, body, body_len, 1);
}

int ws_response_status_head(ws_buf *out, int status, const ws_header *extra, size_t nextra,
                            const char *body, size_t body_len) {
  return response(out, status, extra, nextra, body, body_len, 0);
}

/* ---- client side ---- */

int ws_client_key(char out[WS_KEY_LEN + 1]) {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) return -1;
  EVP_EncodeBlock((unsigned char *)out, raw, sizeof raw);
  return 0;
}

int ws_target_valid(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (!is_visible((unsigned char)*s)) return 0;
  return 1;
}

int ws_protocol_repeated(const char *const *protocols, size_t i) {
  return ws_protocol_find(protocols, i, protocols[i], strlen(protocols[i])) >= 0;
}

int ws_client_request_check(const char *host, const char *path, const char *key,
                            const char *const *protocols, size_t nprotocols, const char *extensions,
                            const char *origin, const ws_header *extra, size_t nextra,
                            ws_arg_error *e) {
  memset(e, 0, sizeof *e);
  if (!host || !*host || !host_valid(host, strlen(host))) /* the Host rule our requests must pass */
    return arg_text(e, WS_ARG_HOST, "invalid host '%s'", host ? host : "");
  if (path && !ws_target_valid(path)) return arg_text(e, WS_ARG_PATH, "invalid path '%s'", path);
  if (!key || !ws_key_valid(key, strlen(key))) return arg_text(e, WS_ARG_KEY, "invalid key", NULL);
  for (size_t i = 0; i < nprotocols; i++) {
    if (!ws_header_name_valid(protocols[i], strlen(protocols[i])))
      return arg_fail(e, WS_ARG_PROTOCOL, i, "invalid protocol name '%s'", protocols[i], strlen(protocols[i]));
    if (ws_protocol_repeated(protocols, i)) /* RFC 6455 4.1: unique strings */
      return arg_fail(e, WS_ARG_PROTOCOL, i, "protocol '%s' offered twice", protocols[i], strlen(protocols[i]));
  }
  if (!text_valid(extensions)) return arg_text(e, WS_ARG_EXTENSIONS, "invalid extensions value", NULL);
  if (!text_valid(origin)) return arg_text(e, WS_ARG_ORIGIN, "invalid origin", NULL);
  return extra_check(extra, nextra, 0, e);
}

int ws_client_request(ws_buf *out, const char *host, const char *path, const char *key,
                      const char *const *protocols, size_t nprotocols, const char *extensions,
                      const char *origin, const ws_header *extra, size_t nextra) {
  ws_arg_error e;
  if (!path) path = "/";
  if (ws_client_request_check(host, path, key, protocols, nprotocols, extensions, origin, extra, nextra, &e))
    return -1;
  writer w = writer_begin(out);
  puts_(&w, "GET ");
  puts_(&w, path);
  puts_(&w, " HTTP/1.1\r\n");
  put_header(&w, "Host", host, strlen(host));
  puts_(&w, "Upgrade: websocket\r\nConnection: Upgrade\r\n");
  put_header(&w, "Sec-WebSocket-Key", key, strlen(key));
  puts_(&w, "Sec-WebSocket-Version: 13\r\n");
  if (origin) put_header(&w, "Origin", origin, strlen(origin));
  if (nprotocols) {
    puts_(&w, "Sec-WebSocket-Protocol: ");
    for (size_t i = 0; i < nprotocols; i++) {
      if (i) put(&w, ", ", 2);
      puts_(&w, protocols[i]);
    }
    put(&w, "\r\n", 2);
  }
  if (extensions && *extensions) put_header(&w, "Sec-WebSocket-Extensions", extensions, strlen(extensions));
  put_extra(&w, extra, nextra);
  put(&w, "\r\n", 2);
  return writer_end(&w);
}

static int status_line(void *rv, const char *p, size_t n, const char **error) {
  ws_response *r = rv;
  size_t v = 0;
  while (v < n && p[v] != ' ') v++;
  if (http_version(p, v, &r->minor_version, error) < 0) return -1;
  if (v == n || n - v < 4 || !(p[v + 1] >= '1' && p[v + 1] <= '9') ||
      !(p[v + 2] >= '0' && p[v + 2] <= '9') || !(p[v + 3] >= '0' && p[v + 3] <= '9') ||
      (n - v > 4 && p[v + 4] != ' ')) {
    *error = "invalid status code";
    return -1;
  }
  r->status = (p[v + 1] - '0') * 100 + (p[v + 2] - '0') * 10 + (p[v + 3] - '0');
  r->reason = n - v > 4 ? p + v + 5 : p + n;
  r->reason_len = n - v > 4 ? n - v - 5 : 0;
  return 0;
}

int ws_response_parse(ws_response *r, const char *buf, size_t len, size_t max_header_bytes) {
  head h = { &r->_scanned, &r->_line, &r->_lines, r->headers, &r->num_headers, &r->error,
             NULL, "response head too large", "control character in status line",
             status_line, r, NULL, NULL };
  return head_parse(&h, buf, len, max_header_bytes);
}

static int response_fail(ws_response *r, const char *error) {
  r->error = error;
  return -1;
}

int ws_response_check_upgrade(ws_response *r, const char *key, const char *const *protocols,
                              size_t nprotocols, int offered_extensions) {
  const ws_header *hs = r->headers, *h;
  size_t n = r->num_headers;
  char accept[WS_ACCEPT_LEN + 1];
  r->error = NULL;
  r->protocol = r->extensions = NULL;
  r->protocol_len = r->extensions_len = 0;
  if (r->status != 101) return response_fail(r, "unexpected status");
  if (r->minor_version < 1) return response_fail(r, "HTTP/1.1 or later required");
  if (!has_token(hs, n, "Upgrade", "websocket")) return response_fail(r, "missing Upgrade: websocket");
  /* RFC 6455 4.1 (2): the value is websocket itself, not a list that includes it. */
  for (h = find_header(hs, n, "Upgrade", NULL); h; h = find_header(hs, n, "Upgrade", h)) {
    size_t pos = 0, len;
    const char *t;
    while (ws_header_next_token(h->value, h->value_len, &pos, &t, &len))
      if (!ieq(t, len, "websocket", 9)) return response_fail(r, "Upgrade is not websocket alone");
  }
  if (!has_token(hs, n, "Connection", "upgrade")) return response_fail(r, "missing Connection: Upgrade");
  h = find_header(hs, n, "Sec-WebSocket-Accept", NULL);
  if (!h) return response_fail(r, "missing Sec-WebSocket-Accept");
  if (find_header(hs, n, "Sec-WebSocket-Accept", h)) return response_fail(r, "repeated Sec-WebSocket-Accept");
  ws_accept_key(key ? key : "", key ? strlen(key) : 0, accept);
  if (!(h->value_len == WS_ACCEPT_LEN && memcmp(h->value, accept, WS_ACCEPT_LEN) == 0))
    return response_fail(r, "wrong Sec-WebSocket-Accept");
  h = find_header(hs, n, "Sec-WebSocket-Protocol", NULL);
  if (h) {
    if (find_header(hs, n, "Sec-WebSocket-Protocol", h))
      return response_fail(r, "repeated Sec-WebSocket-Protocol");
    if (ws_protocol_find(protocols, nprotocols, h->value, h->value_len) < 0)
      return response_fail(r, "protocol not offered");
    r->protocol = h->value;
    r->protocol_len = h->value_len;
  }
  h = find_header(hs, n, "Sec-WebSocket-Extensions", NULL);
  if (h) {
    if (!offered_extensions) return response_fail(r, "extension not offered");
    /* The accepted extensions come in one header, so that what they say is unambiguous. */
    if (find_header(hs, n, "Sec-WebSocket-Extensions", h))
      return response_fail(r, "repeated Sec-WebSocket-Extensions");
    r->extensions = h->value;
    r->extensions_len = h->value_len;
  }
  return 0;
}
