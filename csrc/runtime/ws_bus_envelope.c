/* Envelope encode/decode for the Redis bus (see ws_bus_envelope.h). Every field is checked
 * against its alphabet and length before anything uses it: the bus channel is shared with
 * whatever else writes to that Redis, so its bytes are untrusted input. */
#include <stdio.h>
#include <string.h>

#include "ws_bus_envelope.h"

#define MAGIC "\x1fws1|"
#define MAGIC_LEN 5

static int alnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int ws_bus_node_valid(const char *p, size_t n) {
  if (n < 1 || n > WS_BUS_NODE_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (!alnum(c) && c != '.' && c != '_' && c != ':' && c != '-') return 0;
  }
  return 1;
}

int ws_bus_id_valid(const char *p, size_t n) {
  if (n > WS_BUS_ID_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (!alnum(c) && c != '.' && c != '_' && c != ':' && c != '-' && c != '/') return 0;
  }
  return 1;
}

int ws_bus_epoch_valid(const char *p, size_t n) {
  if (n > WS_BUS_EPOCH_MAX) return 0;
  for (size_t i = 0; i < n; i++)
    if (!alnum((unsigned char)p[i])) return 0;
  return 1;
}

/* Decimal without sign or leading garbage, at most 20 digits, no overflow. */
static int parse_u64(const char *p, size_t n, uint64_t *v) {
  uint64_t x = 0;
  if (n == 0 || n > 20) return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned d = (unsigned)((unsigned char)p[i] - '0');
    if (d > 9) return -1;
    if (x > (UINT64_MAX - d) / 10) return -1;
    x = x * 10 + d;
  }
  *v = x;
  return 0;
}

int ws_bus_env_decode(const void *buf, size_t n, ws_bus_env *e, const char **err) {
  const char *p = buf;
  const char *f[7];
  size_t fl[7];
  memset(e, 0, sizeof *e);
  if (n < MAGIC_LEN || memcmp(p, MAGIC, MAGIC_LEN) != 0) { *err = "not a bus envelope"; return -1; }
  size_t at = MAGIC_LEN, limit = n < WS_BUS_HEADER_MAX ? n : WS_BUS_HEADER_MAX;
  for (int i = 0; i < 7; i++) {
    size_t start = at;
    char end = i == 6 ? '\n' : '|';
    while (at < limit && p[at] != end) {
      if (p[at] == '|' || p[at] == '\n') { *err = "malformed envelope header"; return -1; }
      at++;
    }
    if (at >= limit) { *err = "malformed envelope header"; return -1; }
    f[i] = p + start;
    fl[i] = at - start;
    at++; /* the separator */
  }
  if (fl[0] != 1 || !strchr(WS_BUS_ENV_TYPES, f[0][0]) || f[0][0] == 0) { *err = "unknown envelope type"; return -1; }
  if (fl[1] != 1 || (f[1][0] != 't' && f[1][0] != 'b')) { *err = "unknown envelope kind"; return -1; }
  if (!ws_bus_node_valid(f[2], fl[2])) { *err = "invalid envelope node"; return -1; }
  if (!ws_bus_id_valid(f[3], fl[3])) { *err = "invalid envelope id"; return -1; }
  if (fl[4] && parse_u64(f[4], fl[4], &e->offset) < 0) { *err = "invalid envelope offset"; return -1; }
  if (!ws_bus_epoch_valid(f[5], fl[5])) { *err = "invalid envelope epoch"; return -1; }
  if (fl[6] && parse_u64(f[6], fl[6], &e->time_us) < 0) { *err = "invalid envelope time"; return -1; }
  e->type = f[0][0];
  e->binary = f[1][0] == 'b';
  e->node = f[2];
  e->node_len = fl[2];
  e->id = f[3];
  e->id_len = fl[3];
  e->has_offset = fl[4] != 0;
  e->epoch = f[5];
  e->epoch_len = fl[5];
  e->has_time = fl[6] != 0;
  e->data = (const uint8_t *)p + at;
  e->data_len = n - at;
  return 0;
}

size_t ws_bus_env_header(char *out, size_t cap, const ws_bus_env *e) {
  char off[24] = "", tm[24] = "";
  if (!e->type || !strchr(WS_BUS_ENV_TYPES, e->type)) return 0;
  if (!ws_bus_node_valid(e->node, e->node_len) || !ws_bus_id_valid(e->id, e->id_len) ||
      !ws_bus_epoch_valid(e->epoch, e->epoch_len))
    return 0;
  if (e->has_offset) snprintf(off, sizeof off, "%llu", (unsigned long long)e->offset);
  if (e->has_time) snprintf(tm, sizeof tm, "%llu", (unsigned long long)e->time_us);
  int k = snprintf(out, cap, MAGIC "%c|%c|%.*s|%.*s|%s|%.*s|%s\n", e->type, e->binary ? 'b' : 't',
                   (int)e->node_len, e->node ? e->node : "", (int)e->id_len, e->id ? e->id : "", off,
                   (int)e->epoch_len, e->epoch ? e->epoch : "", tm);
  if (k < 0 || (size_t)k >= cap) return 0;
  return (size_t)k;
}
