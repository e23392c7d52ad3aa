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

/* A control frame's payload (ping, pong, close) is at most this long (RFC 6455 5.5);
 * ws_control_len_check applies it. For a host's buffers that hold one. */
#define WS_CONTROL_MAX 125u
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

/* The struct is public so a host can embed it (no extra allocation per connection), but its
 * fields are sealed: their names end in '_', and only ws_conn.c and the inline functions of
 * this header touch them. Hosts (the runtime, the bindings, the fuzz drivers) use the calls
 * declared here; spec/layering_spec.lua fails on any direct access outside csrc/core. A server
 * keeps one per connection for as long as the connection lives, so it is laid out small:
 * narrow fields, no padding holes. */
typedef struct ws_conn {
  ws_buf in_;            /* received bytes not yet parsed */
  ws_buf msg_;           /* fragments of the message being reassembled */
  ws_buf out_;           /* bytes to write, in order */
  ws_frame_header hdr_;  /* header of the frame being received */
  uint64_t payload_seen_;   /* payload bytes of the current frame already unmasked/validated */
  const char *error_;
  const char *fail_reason_; /* the close reason of our failure (error_ may change after it) */
  struct ws_deflate *deflate_;
  struct {               /* the ws_conn_options' limits (over WS_BUF_MAX, which no buffer can
                            hold, they are WS_BUF_MAX); its flags are role_, auto_pong_ and
                            defer_fail_ below */
    uint32_t max_message, max_frame;
    uint32_t max_fragments;
  } opt_;
  uint32_t consumed_pending_; /* bytes of in_ to drop at the next call (event data lived there:
                                 a held frame, at most in_limit) */
  uint32_t fragments_;
  unsigned role_ : 1;       /* WS_ROLE_*; these bit-fields are set rarely (parse state,
                               written on every frame, has bytes of its own below) */
  unsigned auto_pong_ : 1;
  unsigned defer_fail_ : 1;
  unsigned close_received_ : 1;
  unsigned close_sent_ : 2; /* WS_CLOSE_SENT_FIRST or _REPLY */
  uint8_t state_;
  uint16_t close_code_;     /* the peer's, once received */
  uint16_t error_code_;     /* ours, once failed */
  uint8_t utf8_state_;      /* ws_utf8_validate's state (it has fewer than 256) */
  uint8_t msg_opcode_;      /* opcode of the message in progress, 0 when none */
  uint8_t send_opcode_;     /* opcode of the fragmented message we are sending, 0 when none */
  uint8_t have_header_;
  uint8_t mask_phase_;
  uint8_t msg_compressed_;
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
/* The input held: bytes received and not parsed yet, and those the last event points to
 * (they are dropped at the next ws_conn_next, _feed or _input_space call). */
static inline size_t ws_conn_input_size(const ws_conn *c) { return ws_buf_size(&c->in_); }
static inline const uint8_t *ws_conn_input_data(const ws_conn *c) {
  return c->in_.data ? c->in_.data + c->in_.head : NULL;
}
/* The input not parsed yet: ws_conn_input_size without the last event's bytes (0: the next
 * ws_conn_next cannot produce an event without more input). */
static inline size_t ws_conn_input_unread(const ws_conn *c) {
  size_t n = ws_buf_size(&c->in_);
  return c->consumed_pending_ < n ? n - c->consumed_pending_ : 0;
}
/* The input's memory: its address (NULL when it has none) and capacity. */
static inline const void *ws_conn_input_storage(const ws_conn *c) { return c->in_.data; }
static inline size_t ws_conn_input_capacity(const ws_conn *c) { return c->in_.cap; }
/* Nothing held in the input (not even the last event's bytes): its memory may go. */
static inline int ws_conn_input_idle(const ws_conn *c) {
  return ws_buf_size(&c->in_) == 0 && c->consumed_pending_ == 0;
}
/* Input storage lent and returned, for a host that reads many connections into one buffer of
 * its own (so an idle connection keeps none): b (empty) becomes the input's memory, the bytes
 * held copied to its start (b grows when it lacks the room), and b gets the previous memory
 * back, emptied (NULL when there was none). Offsets are kept: what the last event points to is
 * at the same distance from ws_conn_input_data afterwards (consumed_pending_ and payload_seen_
 * count from in_'s head, which becomes b's start). Returns 0, or -1 when out of memory (nothing
 * changed). With b unallocated and the input idle, it takes the input's memory out. Inline: a
 * host lends and takes back its buffer around every read. */
static inline int ws_conn_input_move(ws_conn *c, ws_buf *b) {
  size_t used = ws_buf_size(&c->in_);
  if (used && ws_buf_append(b, c->in_.data + c->in_.head, used, 0) != 0) return -1;
  ws_buf old = c->in_;
  c->in_ = *b;
  ws_buf_clear(&old);
  *b = old;
  return 0;
}

/* After the close or a failure nothing more is parsed: the input's memory goes to b
 * (unallocated) emptied, and what it held is dropped, the last event's bytes too (its data
 * must have been used). Returns 0, or -1 (nothing changed) while the connection still reads. */
int ws_conn_input_release(ws_conn *c, ws_buf *b) WS_HIDDEN;

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
  return c->error_code_ && c->state_ != WS_STATE_CLOSED;
}

/* Output. Each returns 0, or -1 when that cannot be sent in this state (after our close,
 * before open, a control payload over 125 bytes, an invalid close code) or memory ran out;
 * ws_conn_error then says why. Client frames are masked with keys from OpenSSL's RNG. A pong
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
 * Fragments are never compressed. 0 or -1 (ws_conn_error). */
int ws_conn_send_fragment(ws_conn *c, int opcode, const void *p, size_t n, int fin) WS_HIDDEN;
/* The opcode of a message sent with ws_conn_send_fragment and still unfinished, 0 when none. */
static inline int ws_conn_fragment_opcode(const ws_conn *c) { return c->send_opcode_; }
int ws_conn_ping(ws_conn *c, const void *p, size_t n) WS_HIDDEN;
/* The rules every close goes through (RFC 6455 5.5, 5.5.1, 7.4): without a code (has_code 0)
 * the close frame carries no status and no reason; a code given must be one the wire allows
 * (1000-1003, 1007-1014, 3000-4999: 0, negative or above 65535 is not); a reason only with a
 * code, at most 123 bytes of UTF-8. Returns 0, or which argument is wrong (1: the code, 2: the
 * reason) with *error saying why, so a binding raises the precise error without checking
 * again. ws_conn_close applies it (its code 0 meaning "none"); a binding that reads an
 * optional code calls it first with has_code set when one was given. */
int ws_close_args_check(int has_code, long long code, const char *reason, size_t reason_len,
                        const char **error) WS_HIDDEN;
/* NULL when n bytes fit a control frame's payload (125), else the error ws_conn_ping gives. */
const char *ws_control_len_check(uint64_t n) WS_HIDDEN;
int ws_conn_pong(ws_conn *c, const void *p, size_t n) WS_HIDDEN;
/* Start (or answer) the closing handshake. code 0 sends a close with no status (the C
 * caller's "none"; ws_close_args_check refuses 0 as a code given). */
int ws_conn_close(ws_conn *c, unsigned code, const char *reason, size_t reason_len) WS_HIDDEN;

/* Output: the bytes waiting to be written, in order. Write some of ws_conn_output_data's
 * ws_conn_output_size bytes, then consume what was written; the view stays valid until the
 * next call that queues. */
static inline size_t ws_conn_output_size(const ws_conn *c) { return ws_buf_size(&c->out_); }
static inline const uint8_t *ws_conn_output_data(const ws_conn *c) {
  return c->out_.data ? c->out_.data + c->out_.head : NULL;
}
static inline void ws_conn_output_consume(ws_conn *c, size_t n) { ws_buf_consume(&c->out_, n); }
/* The output buffer itself, for a host that manages its memory (gives it pooled storage while
 * it is empty and unallocated, grows it ahead of a send, takes the memory back once it is
 * empty) or appends bytes of its own: the HTTP handshake before the connection opens, or a
 * frame built once for many connections (ws_frame_build, ws_conn_frame_compressed). The host
 * never changes or drops bytes the connection queued other than by writing them. */
static inline ws_buf *ws_conn_output(ws_conn *c) { return &c->out_; }
/* Move every byte queued so far into *to (empty and unallocated: it takes the buffer whole,
 * no copy); the connection goes on with an empty, unallocated output. For a host that queues
 * bytes elsewhere and must keep them after these (a shared frame after an automatic pong). */
static inline void ws_conn_output_take(ws_conn *c, ws_buf *to) {
  *to = c->out_;
  ws_buf_init(&c->out_);
}

static inline int ws_conn_state(const ws_conn *c) { return c->state_; }
/* Why the last call failed, or why the connection failed (a static text); NULL when none did. */
static inline const char *ws_conn_error(const ws_conn *c) { return c->error_; }
static inline int ws_conn_role(const ws_conn *c) { return c->role_; }
/* Our close frame: 0 not sent, WS_CLOSE_SENT_FIRST when it opened the closing handshake (or
 * failed the connection), WS_CLOSE_SENT_REPLY when it answered the peer's. */
#define WS_CLOSE_SENT_FIRST 1
#define WS_CLOSE_SENT_REPLY 2
static inline int ws_conn_close_sent(const ws_conn *c) { return c->close_sent_; }

/* permessage-deflate: whether it was negotiated (ws_conn_set_deflate), and the bytes of memory
 * its state holds now (0 without it). */
static inline int ws_conn_deflate_on(const ws_conn *c) { return c->deflate_ != NULL; }
size_t ws_conn_deflate_memory(const ws_conn *c) WS_HIDDEN;

/* Frames built once for many receivers (publish). ws_frame_build appends a whole frame,
 * unmasked when mask is NULL (a server's), to out; returns 0 or -1. */
int ws_frame_build(ws_buf *out, int fin, unsigned rsv, int opcode, const void *p, size_t n,
                   const uint8_t *mask) WS_HIDDEN;
/* The message (WS_OP_TEXT or WS_OP_BINARY) as one whole compressed server frame, the way c's
 * peer inflates it but from no context, so that every server connection negotiated like c (the
 * same window and ws_deflate_config) can receive the same frame: 1 with it appended to out;
 * 0 when c sends this message plain (no permessage-deflate, n under its threshold, a client
 * connection, or compressing does not make it smaller), out unchanged; -1 out of memory.
 * After queueing such a frame itself, the host calls ws_conn_shared_compressed_sent. */
int ws_conn_frame_compressed(const ws_conn *c, int opcode, const void *p, size_t n, ws_buf *out) WS_HIDDEN;
/* A frame from ws_conn_frame_compressed was queued on c: the peer's window now holds that
 * message and c's compressor does not, so the compressor forgets its context. */
void ws_conn_shared_compressed_sent(ws_conn *c) WS_HIDDEN;

#endif
