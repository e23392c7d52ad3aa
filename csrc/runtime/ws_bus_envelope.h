/* The bytes of every message on a bus channel (pure: no I/O, no allocation):
 *   "\x1fws1|<type>|<kind>|<node>|<id>|<offset>|<epoch>|<time_us>\n" <data>
 * type f (fast publish), o (ordered publish), j/l (presence join/leave), d (direct send),
 * a (an application's own envelope, handed to the hook like o);
 * kind t (text) or b (binary); node [A-Za-z0-9._:-]{1,64}; id [A-Za-z0-9._:/-]{0,160};
 * offset and time_us decimal (may be empty); epoch [A-Za-z0-9]{0,32}; data binary-safe.
 * Anything else is "foreign" and is rejected by the decoder. */
#ifndef WS_BUS_ENVELOPE_H
#define WS_BUS_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#define WS_BUS_NODE_MAX 64
#define WS_BUS_ID_MAX 160
#define WS_BUS_EPOCH_MAX 32
/* The longest header: magic, 7 separators, fields and the newline. */
#define WS_BUS_HEADER_MAX (5 + 2 + 2 + WS_BUS_NODE_MAX + 1 + WS_BUS_ID_MAX + 1 + 20 + 1 + WS_BUS_EPOCH_MAX + 1 + 20 + 1)
/* The envelope types: f fast publish, o ordered publish, j presence join, l presence leave,
 * d direct message, a an application's own (passed to the Lua hook, as o/j/l/d). */
#define WS_BUS_ENV_TYPES "fojlda"

typedef struct ws_bus_env {
  char type;               /* 'f', 'o', 'j', 'l', 'd' or 'a' */
  int binary;              /* kind b */
  const char *node;
  size_t node_len;
  const char *id;          /* may be empty */
  size_t id_len;
  uint64_t offset;
  int has_offset;
  const char *epoch;       /* may be empty */
  size_t epoch_len;
  uint64_t time_us;
  int has_time;
  const uint8_t *data;     /* points into the decoded bytes */
  size_t data_len;
} ws_bus_env;

/* Decode p[0..n): 0 with e filled (pointers into p), or -1 with *err (static text). */
int ws_bus_env_decode(const void *p, size_t n, ws_bus_env *e, const char **err);
/* Write e's header (not its data) into out: its length, or 0 when a field is invalid or cap is
 * too small. */
size_t ws_bus_env_header(char *out, size_t cap, const ws_bus_env *e);
/* Field checks shared with the option parsing. */
int ws_bus_node_valid(const char *p, size_t n);
int ws_bus_id_valid(const char *p, size_t n);
int ws_bus_epoch_valid(const char *p, size_t n);

#endif
