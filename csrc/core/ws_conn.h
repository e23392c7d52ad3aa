/* The sans-I/O WebSocket connection (RFC 6455 sections 5 to 7): bytes in -> events out,
 * and calls -> bytes to write. It owns the protocol rules: masking direction, RSV bits,
 * control frames, fragmentation, UTF-8 of text, close codes, limits, automatic pong and
 * the close reply. The runtime, the codec binding and embedders drive it; none of them
 * decides anything about the protocol. */
#ifndef WS_CONN_H
#define WS_CONN_H

#include "ws_buf.h"
#include "ws_common.h"
#include "ws_frame.h"

struct ws_deflate; /* ws_deflate.h: permessage-deflate state, NULL when not negotiated */

enum ws_role { WS_ROLE_SERVER = 0, WS_ROLE_CLIENT = 1 };

enum ws_state {
  WS_STATE_CONNECTING = 0, /* handshake not finished (ws_conn_open not called yet) */
  WS_STATE_OPEN = 1,
  WS_STATE_CLOSING = 2,    /* a close frame was sent or received, not both */
  WS_STATE_CLOSED = 3      /* both close frames exchanged, or the connection failed */
};

#define WS_DEFAULT_MAX_MESSAGE (1u << 20)
/* Frames per message: memory is bounded by max_message, but every frame costs a header's work
 * however small it is, so the count is bounded too. By default the bound follows max_message:
 * a message of max_message bytes in fragments of WS_MIN_FRAGMENT bytes or more always fits,
 * and a message of tiny (or empty) frames costs no more work than one of max_message bytes.
 * Never below WS_MIN_MAX_FRAGMENTS, for small max_message values. */
#define WS_MIN_FRAGMENT 64u
#define WS_MIN_MAX_FRAGMENTS 1024u

typedef struct ws_conn_options {
  int role;                /* WS_ROLE_SERVER or WS_ROLE_CLIENT */
  uint64_t max_message;    /* reassembled (and inflated) message size; over it: 1009 */
  uint64_t max_frame;      /* one frame's payload; over it: 1009 (0: max_message) */
  uint32_t max_fragments;  /* frames in one message; over it: 1009 (0: ws_conn_max_fragments) */
  int auto_pong;           /* answer pings (default 1) */
  int defer_fail;          /* see ws_conn_fail_commit (default 0) */
} ws_conn_options;

void ws_conn_options_default(ws_conn_options *o, int role) WS_HIDDEN;
/* The default max_fragments for a max_message: max_message / WS_MIN_FRAGMENT + 1, at least
 * WS_MIN_MAX_FRAGMENTS (and at most UINT32_MAX). */
uint32_t ws_conn_max_fragments(uint64_t max_message) WS_HIDDEN;

enum ws_event_type {
  WS_EV_NONE = 0,
  WS_EV_MESSAGE,  /* opcode TEXT or BINARY, data/len the whole message (inflated, unmasked) */
  WS_EV_PING,     /* data/len the payload (a pong was queued if auto_pong) */
  WS_EV_PONG,
  WS_EV_CLOSE,    /* peer's close: code (1005 when absent), data/len the reason; the reply
                     close was queued if we had not sent one */
  WS_EV_ERROR     /* the peer broke the protocol or a limit: code is the close code we
                     queued (1002, 1007, 1009...), error a static text; no more events */
};

typedef struct ws_event {
  int type;
  int opcode;
  const uint8_t *data;  /* valid until the next ws_conn_next, _feed or _input_space call
                           (sending does not disturb it: a message can be echoed from here) */
  size_t len;
  unsigned code;
  const char *error;
} ws_event;

/* Flags for ws_conn_send. */
#define WS_SEND_MORE 1u      /* not the last fragment: more WS_OP_CONTINUATION frames follow */
#define WS_SEND_COMPRESS 2u  /* compress if permessage-deflate was negotiated */

/* The struct is public so a host can embed it (no extra allocation per connection);
 * its fields are private to ws_conn.c. A server keeps one per connection for as long as the
 * connection lives, so it is laid out small: narrow fields, no padding holes. */
typedef struct ws_conn {
  ws_buf in;            /* received bytes not yet parsed */
  ws_buf msg;           /* fragments of the message being reassembled */
  ws_buf out;           /* bytes to write, in order */
  struct {              /* the ws_conn_options it was made with */
    uint64_t max_message, max_frame;
    uint32_t max_fragments;
    uint8_t role, auto_pong, defer_fail;
  } opt;
  ws_frame_header hdr;  /* header of the frame being received */
  uint64_t payload_seen;   /* payload bytes of the current frame already unmasked/validated */
  const char *error;
  const char *fail_reason; /* the close reason of our failure (error may change after it) */
  struct ws_deflate *deflate;
  uint32_t consumed_pending; /* bytes of `in` to drop at the next call (event data lived there:
                                a held frame, at most in_limit) */
  uint32_t fragments;
  uint32_t utf8_state;
  uint16_t close_code;     /* the peer's, once received */
  uint16_t error_code;     /* ours, once failed */
  uint8_t state;
  uint8_t have_header;
  uint8_t mask_phase;
  uint8_t msg_opcode;      /* opcode of the message in progress, 0 when none */
  uint8_t msg_compressed;
  uint8_t close_sent, close_received; /* close_sent: 1 when we closed first, 2 when ours replied */
  uint8_t send_opcode;     /* opcode of the fragmented message we are sending, 0 when none */
} ws_conn;

/* Frame tracing for debug logs: when set, called for every frame parsed (out 0) or queued
 * (out 1) with its header fields; NULL (the default) costs one test per frame. */
typedef void (*ws_conn_tracer)(const ws_conn *c, int out, int fin, unsigned rsv, int opcode, uint64_t len);
extern ws_conn_tracer ws_conn_trace WS_HIDDEN;

void ws_conn_init(ws_conn *c, const ws_conn_options *o) WS_HIDDEN;
void ws_conn_free(ws_conn *c) WS_HIDDEN;    /* frees buffers and the deflate state */
void ws_conn_open(ws_conn *c) WS_HIDDEN;    /* handshake done: CONNECTING -> OPEN */
void ws_conn_set_deflate(ws_conn *c, struct ws_deflate *d) WS_HIDDEN; /* takes ownership */

/* Input, zero-copy: get free space (at least *avail bytes, normally 16 KiB or more), read
 * into it, commit what was read. NULL when the input buffer is at its limit. */
uint8_t *ws_conn_input_space(ws_conn *c, size_t *avail) WS_HIDDEN;
void ws_conn_input_commit(ws_conn *c, size_t n) WS_HIDDEN;
/* Input, copying: returns 0, or -1 when the bytes do not fit (nothing taken). */
int ws_conn_feed(ws_conn *c, const void *p, size_t n) WS_HIDDEN;

/* Next event from the input received so far: 1 with *ev filled, 0 when more input is
 * needed (or the connection is closed/failed). Payload is unmasked and text is validated
 * as bytes arrive, so an invalid byte fails at once, even inside a partial frame. */
int ws_conn_next(ws_conn *c, ws_event *ev) WS_HIDDEN;

/* With opt.defer_fail set, a failure (WS_EV_ERROR) ends the events and the input at once, but
 * its close frame and the CLOSED state wait for this call: a host that still holds messages
 * received before the bad frame can hand them out and send their answers first (the peer sent
 * them first and may wait for those answers). Until then sending works as when OPEN. Returns 1
 * when it queued the failure's close (or completed our own), 0 when no failure was pending. */
int ws_conn_fail_commit(ws_conn *c) WS_HIDDEN;
static inline int ws_conn_fail_pending(const ws_conn *c) {
  return c->error_code && c->state != WS_STATE_CLOSED;
}

/* Output. Each returns 0, or -1 when that cannot be sent in this state (after our close,
 * before open, a control payload over 125 bytes, an invalid close code) or memory ran out;
 * c->error then says why. Client frames are masked with keys from OpenSSL's RNG. A pong
 * is the one frame still allowed after our close (while CLOSING), to answer a ping. */
int ws_conn_send(ws_conn *c, int opcode, const void *p, size_t n, unsigned flags) WS_HIDDEN;
/* ws_conn_send for a host that writes the payload itself, straight from the caller's memory
 * (a large message, nothing queued before it): the same rules, nothing goes into `out`; the
 * frame's header is written into hdr (WS_FRAME_HEADER_MAX bytes) and its length returned, to
 * be written before the n bytes of payload. 0 when the frame cannot go out that way (a client
 * masks its payload, a compressed message is built in `out`): use ws_conn_send. -1 (c->error)
 * where ws_conn_send fails. */
int ws_conn_send_header(ws_conn *c, int opcode, size_t n, unsigned flags, uint8_t *hdr) WS_HIDDEN;
/* One fragment of a message sent in pieces (RFC 6455 5.4): the first names the message's
 * opcode (0: text) and goes out as that opcode without FIN, the next ones as continuation
 * frames, the one with fin set ends the message. Control frames may go between fragments;
 * another data message may not (ws_conn_send fails while one is in progress). A later
 * fragment that names another opcode fails; 0 continues whatever kind was started.
 * Fragments are never compressed. 0 or -1 (c->error). */
int ws_conn_send_fragment(ws_conn *c, int opcode, const void *p, size_t n, int fin) WS_HIDDEN;
/* The opcode of a message sent with ws_conn_send_fragment and still unfinished, 0 when none. */
static inline int ws_conn_fragment_opcode(const ws_conn *c) { return c->send_opcode; }
int ws_conn_ping(ws_conn *c, const void *p, size_t n) WS_HIDDEN;
/* The rules ws_conn_close applies to its arguments (RFC 6455 5.5, 5.5.1, 7.4): a valid code
 * or 0 for none, a reason only with a code, at most 123 bytes of UTF-8. Returns 0, or which
 * argument is wrong (1: the code, 2: the reason) with *error saying why, so a binding raises
 * the precise error without checking again. */
int ws_close_args_check(unsigned code, const char *reason, size_t reason_len, const char **error) WS_HIDDEN;
/* NULL when n bytes fit a control frame's payload (125), else the error ws_conn_ping gives. */
const char *ws_control_len_check(size_t n) WS_HIDDEN;
int ws_conn_pong(ws_conn *c, const void *p, size_t n) WS_HIDDEN;
/* Start (or answer) the closing handshake. code 0 sends a close with no status. */
int ws_conn_close(ws_conn *c, unsigned code, const char *reason, size_t reason_len) WS_HIDDEN;

/* Bytes waiting to be written: write some, then ws_buf_consume(&c->out, written). */
static inline ws_buf *ws_conn_output(ws_conn *c) { return &c->out; }
static inline int ws_conn_state(const ws_conn *c) { return c->state; }

/* Frame building without a connection (used for publish: one frame, many receivers).
 * Appends a whole unmasked (server) frame to out; returns 0 or -1. */
int ws_frame_build(ws_buf *out, int fin, unsigned rsv, int opcode, const void *p, size_t n,
                   const uint8_t *mask) WS_HIDDEN;

#endif
