/* permessage-deflate (RFC 7692, see ws_deflate.h), the negotiation half: the
 * Sec-WebSocket-Extensions grammar (RFC 6455 9.1) and the rules of RFC 7692 section 7.1 for
 * both sides. Pure string work over caller buffers; no allocation. */
#include <string.h>

#include "ws_deflate.h"

/* ---- the Sec-WebSocket-Extensions grammar (RFC 6455 9.1, RFC 7230 3.2.6) ---- */

#define MAX_PARAMS 8 /* permessage-deflate defines 4; more than 8 is certainly a duplicate */

typedef struct ext_param {
  const char *name;
  size_t name_len;
  const char *value; /* NULL when the parameter has no value; raw text inside quotes */
  size_t value_len;
  int quoted;
} ext_param;

typedef struct ext_item {
  const char *name;
  size_t name_len;
  ext_param params[MAX_PARAMS];
  size_t nparams;
  int overflow; /* more parameters than MAX_PARAMS */
} ext_item;

static int is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void skip_ows(const char *s, size_t n, size_t *i) {
  while (*i < n && (s[*i] == ' ' || s[*i] == '\t')) ++*i;
}

static size_t scan_token(const char *s, size_t n, size_t i) {
  size_t start = i;
  while (i < n && is_tchar((unsigned char)s[i])) i++;
  return i - start;
}

static int name_is(const char *s, size_t n, const char *lit) {
  size_t m = strlen(lit);
  if (n != m) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 'A' && c <= 'Z') c = (unsigned char)(c + 32);
    if (c != (unsigned char)lit[i]) return 0;
  }
  return 1;
}

/* One element of the comma-separated extension list, from s[*pos]. Empty list elements are
 * skipped (RFC 7230 7). Returns 1 with *e filled, 0 at the end, -1 on a syntax error. */
static int next_extension(const char *s, size_t n, size_t *pos, ext_item *e, const char **error) {
  size_t i = *pos;
  for (;;) {
    skip_ows(s, n, &i);
    if (i < n && s[i] == ',') { i++; continue; }
    break;
  }
  if (i == n) { *pos = i; return 0; }
  size_t len = scan_token(s, n, i);
  if (len == 0) { *error = "invalid extension name"; return -1; }
  e->name = s + i;
  e->name_len = len;
  e->nparams = 0;
  e->overflow = 0;
  i += len;
  skip_ows(s, n, &i);
  while (i < n && s[i] == ';') {
    ext_param p;
    i++;
    skip_ows(s, n, &i);
    len = scan_token(s, n, i);
    if (len == 0) { *error = "invalid extension parameter"; return -1; }
    p.name = s + i;
    p.name_len = len;
    p.value = NULL;
    p.value_len = 0;
    p.quoted = 0;
    i += len;
    skip_ows(s, n, &i);
    if (i < n && s[i] == '=') {
      i++;
      skip_ows(s, n, &i);
      if (i < n && s[i] == '"') {
        size_t start = ++i;
        while (i < n && s[i] != '"') {
          unsigned char c = (unsigned char)s[i];
          if (c == '\\') {
            if (++i == n) break;
            c = (unsigned char)s[i];
          }
          if ((c < 0x20 && c != '\t') || c == 0x7f) { *error = "invalid quoted string"; return -1; }
          i++;
        }
        if (i >= n) { *error = "unterminated quoted string"; return -1; }
        p.value = s + start;
        p.value_len = i - start;
        p.quoted = 1;
        i++;
      } else {
        len = scan_token(s, n, i);
        if (len == 0) { *error = "invalid extension parameter value"; return -1; }
        p.value = s + i;
        p.value_len = len;
        i += len;
      }
      skip_ows(s, n, &i);
    }
    if (e->nparams < MAX_PARAMS) e->params[e->nparams++] = p;
    else e->overflow = 1;
  }
  if (i < n && s[i] != ',') { *error = "invalid character in extension list"; return -1; }
  if (i < n) i++;
  *pos = i;
  return 1;
}

/* A window-bits value: a decimal integer 8..15 without leading zeros, also when quoted
 * (RFC 7692 7.1.2). Returns the value or -1. */
static int parse_bits(const ext_param *p) {
  char digits[3];
  size_t nd = 0;
  for (size_t i = 0; i < p->value_len; i++) {
    char c = p->value[i];
    if (p->quoted && c == '\\') c = p->value[++i]; /* quoted-pair; the scanner checked it exists */
    if (c < '0' || c > '9' || nd == sizeof digits) return -1;
    digits[nd++] = c;
  }
  if (nd == 0 || digits[0] == '0') return -1;
  int v = 0;
  for (size_t i = 0; i < nd; i++) v = v * 10 + (digits[i] - '0');
  return v >= 8 && v <= 15 ? v : -1;
}

/* The four parameters of one permessage-deflate element, checked for names, values and
 * repeats. bits are -1 when absent, 0 when present without a value (client_max_window_bits
 * in an offer only). */
typedef struct pmd_params {
  int server_nct, client_nct;
  int server_bits, client_bits;
} pmd_params;

/* is_offer: an offer may carry client_max_window_bits without a value; a response may not.
 * Returns 0, or -1 with *why. */
static int read_pmd(const ext_item *e, int is_offer, pmd_params *o, const char **why) {
  o->server_nct = o->client_nct = 0;
  o->server_bits = o->client_bits = -1;
  if (e->overflow) { *why = "duplicate permessage-deflate parameter"; return -1; }
  for (size_t k = 0; k < e->nparams; k++) {
    const ext_param *p = &e->params[k];
    if (name_is(p->name, p->name_len, "server_no_context_takeover")) {
      if (o->server_nct) { *why = "duplicate server_no_context_takeover"; return -1; }
      if (p->value) { *why = "server_no_context_takeover takes no value"; return -1; }
      o->server_nct = 1;
    } else if (name_is(p->name, p->name_len, "client_no_context_takeover")) {
      if (o->client_nct) { *why = "duplicate client_no_context_takeover"; return -1; }
      if (p->value) { *why = "client_no_context_takeover takes no value"; return -1; }
      o->client_nct = 1;
    } else if (name_is(p->name, p->name_len, "server_max_window_bits")) {
      if (o->server_bits >= 0) { *why = "duplicate server_max_window_bits"; return -1; }
      o->server_bits = p->value ? parse_bits(p) : -1;
      if (o->server_bits < 0) { *why = "server_max_window_bits must be 8..15"; return -1; }
    } else if (name_is(p->name, p->name_len, "client_max_window_bits")) {
      if (o->client_bits >= 0) { *why = "duplicate client_max_window_bits"; return -1; }
      if (!p->value && is_offer) {
        o->client_bits = 0;
      } else {
        o->client_bits = p->value ? parse_bits(p) : -1;
        if (o->client_bits < 0) { *why = "client_max_window_bits must be 8..15"; return -1; }
      }
    } else {
      *why = "unknown permessage-deflate parameter";
      return -1;
    }
  }
  return 0;
}

/* ---- server side ---- */

static int append(char *out, size_t cap, size_t *at, const char *s) {
  size_t n = strlen(s);
  if (*at + n >= cap) return -1;
  memcpy(out + *at, s, n + 1);
  *at += n;
  return 0;
}

static int append_bits(char *out, size_t cap, size_t *at, const char *name, int bits) {
  char tmp[48];
  memcpy(tmp, "; ", 2);
  size_t n = strlen(name);
  memcpy(tmp + 2, name, n);
  tmp[2 + n] = '=';
  tmp[3 + n] = bits >= 10 ? '1' : (char)('0' + bits);
  tmp[4 + n] = bits >= 10 ? (char)('0' + bits - 10) : '\0';
  tmp[5 + n] = '\0';
  return append(out, cap, at, tmp);
}

/* What we answer to an acceptable offer (RFC 7692 7.1): every parameter the offer asked of
 * us is granted, and the config's wishes are added where the RFC lets a server add them.
 * Both windows are limited to cfg->window_bits, the client's only when it said (with
 * client_max_window_bits) that it can be limited. */
static int answer_offer(const pmd_params *o, const ws_deflate_config *cfg, ws_deflate_params *params,
                        char *resp, size_t cap) {
  int want = ws_deflate_clamp_bits(cfg->window_bits);
  size_t at = 0;
  params->server_no_context_takeover = o->server_nct || cfg->no_context_takeover;
  params->client_no_context_takeover = o->client_nct || cfg->no_context_takeover;
  params->server_max_window_bits = o->server_bits > 0 && o->server_bits < want ? o->server_bits : want;
  params->client_max_window_bits = 15;
  if (o->client_bits >= 0) {
    /* We never impose 8 on a client that did not ask for it: zlib-based peers (Python's
     * websockets) fail to set up a compressor with an 8-bit window. */
    int limit = want < 9 ? 9 : want;
    params->client_max_window_bits = o->client_bits > 0 && o->client_bits < limit ? o->client_bits : limit;
  }
  if (!resp || cap == 0) return -1;
  resp[0] = '\0';
  if (append(resp, cap, &at, "permessage-deflate") != 0) return -1;
  if (params->server_no_context_takeover && append(resp, cap, &at, "; server_no_context_takeover") != 0) return -1;
  if (params->client_no_context_takeover && append(resp, cap, &at, "; client_no_context_takeover") != 0) return -1;
  if ((o->server_bits > 0 || params->server_max_window_bits < 15) &&
      append_bits(resp, cap, &at, "server_max_window_bits", params->server_max_window_bits) != 0)
    return -1;
  if (o->client_bits >= 0 && params->client_max_window_bits < 15 &&
      append_bits(resp, cap, &at, "client_max_window_bits", params->client_max_window_bits) != 0)
    return -1;
  return 0;
}

int ws_deflate_negotiate(const char *const *values, const size_t *lens, size_t n,
                         const ws_deflate_config *cfg, ws_deflate_params *params,
                         char *resp, size_t resp_cap, const char **error) {
  const char *declined = NULL;
  int found = 0;
  const char *dummy;
  if (!error) error = &dummy;
  *error = NULL;
  /* The whole header is checked for syntax first: a malformed header is a bad request
   * whichever offer we would have taken (RFC 6455 4.2.1). */
  for (size_t v = 0; v < n; v++) {
    size_t pos = 0;
    ext_item e;
    int r;
    while ((r = next_extension(values[v], lens[v], &pos, &e, error)) == 1) {}
    if (r < 0) return -1;
  }
  for (size_t v = 0; v < n && !found; v++) {
    size_t pos = 0;
    ext_item e;
    while (!found && next_extension(values[v], lens[v], &pos, &e, error) == 1) {
      pmd_params o;
      const char *why;
      if (!name_is(e.name, e.name_len, "permessage-deflate")) continue;
      /* RFC 7692 5: an offer with an unknown, repeated or invalid parameter is declined,
       * and the next offer is considered. Every valid offer can be met: zlib does all
       * window sizes (8 through a 9-bit compressor, see ws_deflate_new). */
      if (read_pmd(&e, 1, &o, &why) != 0) {
        declined = why;
        continue;
      }
      if (answer_offer(&o, cfg, params, resp, resp_cap) != 0) {
        *error = "response buffer too small";
        return -1;
      }
      found = 1;
    }
  }
  *error = found ? NULL : declined;
  return found;
}

/* ---- client side ---- */

int ws_deflate_offer(const ws_deflate_config *cfg, char *out, size_t cap) {
  size_t at = 0;
  if (!out || cap == 0) return -1;
  out[0] = '\0';
  if (append(out, cap, &at, "permessage-deflate; client_max_window_bits") != 0) return -1;
  if (cfg->no_context_takeover &&
      append(out, cap, &at, "; server_no_context_takeover; client_no_context_takeover") != 0)
    return -1;
  return 0;
}

/* Does the response element r answer the offered element o (RFC 7692 7.1)? What the offer
 * asked of the server must be granted, and the client's window may only be limited when the
 * offer allowed it. Returns 0 or -1 with *why. */
static int answers(const pmd_params *o, const pmd_params *r, const char **why) {
  if (o->server_nct && !r->server_nct) { *why = "server_no_context_takeover not granted"; return -1; }
  if (o->server_bits > 0 && r->server_bits < 0) { *why = "server_max_window_bits not granted"; return -1; }
  if (o->server_bits > 0 && r->server_bits > o->server_bits) {
    *why = "server_max_window_bits above the offer";
    return -1;
  }
  if (r->client_bits > 0 && o->client_bits < 0) { *why = "client_max_window_bits not offered"; return -1; }
  if (r->client_bits > 0 && o->client_bits > 0 && r->client_bits > o->client_bits) {
    *why = "client_max_window_bits above the offer";
    return -1;
  }
  return 0;
}

int ws_deflate_accept_offer(const char *offer, size_t offer_len, const char *value, size_t len,
                            const ws_deflate_config *cfg, ws_deflate_params *params,
                            const char **error) {
  size_t pos = 0;
  ext_item e;
  int r, found = 0;
  const char *dummy;
  (void)cfg;
  if (!error) error = &dummy;
  *error = NULL;
  while ((r = next_extension(value, len, &pos, &e, error)) == 1) {
    pmd_params got;
    if (!name_is(e.name, e.name_len, "permessage-deflate")) {
      *error = "extension not offered";
      return -1;
    }
    if (found) { *error = "permessage-deflate accepted twice"; return -1; }
    if (read_pmd(&e, 0, &got, error) != 0) return -1;
    /* The response answers one of our offers; any one it fits will do. */
    size_t opos = 0;
    ext_item oe;
    const char *why = "permessage-deflate not offered";
    int fits = 0, client_nct = 0;
    while (!fits && next_extension(offer, offer_len, &opos, &oe, &dummy) == 1) {
      pmd_params o;
      if (!name_is(oe.name, oe.name_len, "permessage-deflate") || read_pmd(&oe, 1, &o, &dummy) != 0)
        continue;
      if (answers(&o, &got, &why) == 0) {
        fits = 1;
        client_nct = o.client_nct; /* our hint binds us even when the server says nothing */
      }
    }
    if (!fits) { *error = why; return -1; }
    params->server_no_context_takeover = got.server_nct;
    params->client_no_context_takeover = got.client_nct || client_nct;
    params->server_max_window_bits = got.server_bits > 0 ? got.server_bits : 15;
    params->client_max_window_bits = got.client_bits > 0 ? got.client_bits : 15;
    found = 1;
  }
  if (r < 0) return -1;
  return found;
}

int ws_deflate_accept(const char *value, size_t len, const ws_deflate_config *cfg,
                      ws_deflate_params *params, const char **error) {
  char offer[WS_DEFLATE_RESPONSE_MAX];
  if (ws_deflate_offer(cfg, offer, sizeof offer) != 0) {
    if (error) *error = "offer too long";
    return -1;
  }
  return ws_deflate_accept_offer(offer, strlen(offer), value, len, cfg, params, error);
}

