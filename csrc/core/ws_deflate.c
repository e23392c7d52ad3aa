/* permessage-deflate (RFC 7692, see ws_deflate.h), the per-message half: raw deflate with
 * zlib. Memory is the point here: zlib streams exist only while they must (lazily, and not
 * at all on a connection between messages without context takeover), inflation stops at a
 * byte limit before the memory is spent, and every zlib allocation is counted. The
 * negotiation half is ws_deflate_negotiate.c. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ws_conn.h"
#include "ws_deflate.h"

/* ---- configuration ---- */

/* Measured with ws_deflate_memory (spec/codec_deflate_spec.lua): window 13 and memLevel 4 give
 * a compressor of 46,912 bytes and, with the client's window limited to the same 13 bits, an
 * inflater of 15,352 bytes: about 61 KiB for a connection that keeps both contexts, and
 * within 3% of the compression of window 15 on chat-sized JSON. A peer that does not let us
 * limit its window (no client_max_window_bits in its offer) costs 24 KiB more. */
#define DEFAULT_WINDOW_BITS 13
#define DEFAULT_MEM_LEVEL 4
#define DEFAULT_THRESHOLD 64
/* zlib's own default (6), as Node's ws uses. On 1 KiB of JSON, level 1 takes a quarter less
 * CPU per message without context takeover and half as much with it, for 9% more bytes. */
#define DEFAULT_LEVEL 6
#define LEVELS 10

void ws_deflate_config_default(ws_deflate_config *cfg) {
  cfg->no_context_takeover = 0;
  cfg->window_bits = DEFAULT_WINDOW_BITS;
  cfg->mem_level = DEFAULT_MEM_LEVEL;
  cfg->threshold = DEFAULT_THRESHOLD;
  cfg->level = DEFAULT_LEVEL;
}

int ws_deflate_clamp_bits(int b) { return b < 8 ? 8 : b > 15 ? 15 : b; }

static int clamp_mem_level(int m) { return m < 1 ? 1 : m > 9 ? 9 : m; }

static int clamp_level(int l) { return l < 0 ? 0 : l > 9 ? 9 : l; }

/* ---- zlib streams, each counting its own memory ---- */

#define OUT_CHUNK (16u * 1024u)  /* compressor output grows by at most this much per step */
#define IN_CHUNK (16u * 1024u)   /* inflater output step: the bomb check runs this often */
#define ZLIB_MAX_INPUT (1u << 30) /* avail_in is a uInt */

typedef struct zstream {
  z_stream z;
  size_t mem;    /* bytes zlib holds for this stream, counted by zalloc/zfree */
  int inflater;  /* inflateInit2 (1) or deflateInit2 (0) */
} zstream;

/* zlib's allocations carry their size in front so zfree can count them back out. */
typedef union alloc_head {
  size_t size;
  void *align_p;
  long double align_ld;
  long long align_ll;
} alloc_head;

static voidpf counting_alloc(voidpf opaque, uInt items, uInt size) {
  zstream *s = opaque;
  if (size && items > (SIZE_MAX - sizeof(alloc_head)) / size) return Z_NULL;
  size_t n = (size_t)items * size;
  alloc_head *h = malloc(sizeof *h + n);
  if (!h) return Z_NULL;
  h->size = n;
  s->mem += n;
  return h + 1;
}

static void counting_free(voidpf opaque, voidpf p) {
  zstream *s = opaque;
  if (!p) return;
  alloc_head *h = (alloc_head *)p - 1;
  s->mem -= h->size;
  free(h);
}

static zstream *zstream_alloc(int inflater) {
  zstream *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->z.zalloc = counting_alloc;
  s->z.zfree = counting_free;
  s->z.opaque = s;
  s->inflater = inflater;
  return s;
}

/* bits is zlib's (positive; raw deflate is asked for with -bits). */
static zstream *deflater_new(int bits, int mem_level, int level) {
  zstream *s = zstream_alloc(0);
  if (s && deflateInit2(&s->z, level, Z_DEFLATED, -bits, mem_level,
                        Z_DEFAULT_STRATEGY) != Z_OK) {
    free(s); /* a failed init has released what it allocated */
    s = NULL;
  }
  return s;
}

static zstream *inflater_new(int bits) {
  zstream *s = zstream_alloc(1);
  if (s && inflateInit2(&s->z, -bits) != Z_OK) {
    free(s);
    s = NULL;
  }
  return s;
}

static void zstream_free(zstream *s) {
  if (!s) return;
  if (s->inflater) inflateEnd(&s->z);
  else deflateEnd(&s->z);
  free(s);
}

static size_t zstream_memory(const zstream *s) { return s ? sizeof *s + s->mem : 0; }

/* ---- streams without context takeover, shared by every connection ----
 *
 * A direction that resets after every message needs a zlib stream only during one call
 * (compressing is always a whole message; inflating usually is, when the message arrived in
 * one read). Creating one each time means 20 to 300 KB of fresh allocations and their
 * initialisation per message, which also fragments the heap (a server's RSS per connection
 * grew by half), so an idle stream of each shape (window bits, and memLevel for compressors)
 * (and level) is kept here for the next message on any connection; a connection holds a stream only
 * while one of its messages is half inflated. deflateReset/inflateReset before a stream goes
 * back also forget its window: nothing one connection sent or received can be referred to
 * in another's messages (a back-reference to it is "invalid distance too far back").
 *
 * The lua-ws runtime is single-threaded, but ws.codec may be loaded by several threads of
 * one process: a slot is taken and given back with an atomic exchange, so two threads never
 * get the same stream (one of them creates a fresh stream instead). The idle streams, at
 * most one per shape in use (62 KiB in all at the defaults, 87 KiB when peers do not limit
 * their window), live as long as the module. */
#define DEFLATE_BITS_MIN 9 /* zlib's raw deflate needs 9 (see ws_deflate_new) */
#define MEM_LEVELS 9

static zstream *idle_deflaters[16 - DEFLATE_BITS_MIN][MEM_LEVELS][LEVELS];
static zstream *idle_inflaters[16 - 8];

#if defined(__GNUC__) || defined(__clang__)
static zstream *slot_take(zstream **slot) {
  return __atomic_exchange_n(slot, (zstream *)NULL, __ATOMIC_ACQ_REL);
}
static int slot_put(zstream **slot, zstream *s) {
  zstream *empty = NULL;
  return __atomic_compare_exchange_n(slot, &empty, s, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
/* At exit or when the module is unloaded, so leak checkers see every stream freed. */
__attribute__((destructor)) static void idle_streams_free(void) {
  for (int b = 0; b < 16 - DEFLATE_BITS_MIN; b++)
    for (int m = 0; m < MEM_LEVELS; m++)
      for (int l = 0; l < LEVELS; l++) zstream_free(slot_take(&idle_deflaters[b][m][l]));
  for (int b = 0; b < 16 - 8; b++) zstream_free(slot_take(&idle_inflaters[b]));
}
#else /* without atomics: one thread only */
static zstream *slot_take(zstream **slot) {
  zstream *s = *slot;
  *slot = NULL;
  return s;
}
static int slot_put(zstream **slot, zstream *s) {
  if (*slot) return 0;
  *slot = s;
  return 1;
}
#endif

static zstream **deflater_slot(int bits, int mem_level, int level) {
  return &idle_deflaters[bits - DEFLATE_BITS_MIN][mem_level - 1][level];
}

static zstream **inflater_slot(int bits) { return &idle_inflaters[bits - 8]; }

/* A stream at rest goes back to its slot, or is freed when the slot is taken (or the
 * reset failed, which zlib does only for a broken stream). */
static void give_back(zstream **slot, zstream *s) {
  if (!s) return;
  int rc = s->inflater ? inflateReset(&s->z) : deflateReset(&s->z);
  if (rc != Z_OK || !slot_put(slot, s)) zstream_free(s);
}

/* ---- the per-connection state ---- */

struct ws_deflate {
  zstream *out, *in;        /* NULL when none is held */
  int out_reset, in_reset;  /* no context takeover in that direction: streams are borrowed */
  int out_bits, in_bits;    /* zlib windowBits (positive; raw deflate is asked with -bits) */
  int mem_level, level;
  int in_ended;             /* the input so far ended right after a BFINAL block */
  size_t threshold;
};

ws_deflate *ws_deflate_new(const ws_deflate_params *params, const ws_deflate_config *cfg, int role) {
  ws_deflate *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  int server = role != WS_ROLE_CLIENT;
  int own_bits = server ? params->server_max_window_bits : params->client_max_window_bits;
  int peer_bits = server ? params->client_max_window_bits : params->server_max_window_bits;
  int cfg_bits = ws_deflate_clamp_bits(cfg->window_bits);
  own_bits = ws_deflate_clamp_bits(own_bits);
  if (cfg_bits < own_bits) own_bits = cfg_bits; /* a side may always use less than agreed */
  /* zlib refuses an 8-bit raw deflate window. A 9-bit one is still within 8 bits on the
   * wire: zlib's deflate never reaches back more than the window minus 262 bytes
   * (MAX_DIST), i.e. 250 < 256. Node's ws and others do the same. */
  d->out_bits = own_bits < DEFLATE_BITS_MIN ? DEFLATE_BITS_MIN : own_bits;
  /* Inflating with the peer's declared window is enough (zlib's inflate takes 8). */
  d->in_bits = ws_deflate_clamp_bits(peer_bits);
  d->out_reset = (server ? params->server_no_context_takeover : params->client_no_context_takeover) ||
                 cfg->no_context_takeover;
  d->in_reset = server ? params->client_no_context_takeover : params->server_no_context_takeover;
  d->mem_level = clamp_mem_level(cfg->mem_level);
  d->level = clamp_level(cfg->level);
  d->threshold = cfg->threshold;
  return d;
}

/* The stream is unusable or no longer wanted: free it, never share it. */
static void out_end(ws_deflate *d) {
  zstream_free(d->out);
  d->out = NULL;
}

static void in_end(ws_deflate *d) {
  zstream_free(d->in);
  d->in = NULL;
  d->in_ended = 0;
}

void ws_deflate_free(ws_deflate *d) {
  if (!d) return;
  out_end(d);
  in_end(d); /* a message cut short: its stream is freed rather than reset */
  free(d);
}

size_t ws_deflate_memory(const ws_deflate *d) {
  return d ? sizeof *d + zstream_memory(d->out) + zstream_memory(d->in) : 0;
}

size_t ws_deflate_threshold(const ws_deflate *d) { return d->threshold; }

void ws_deflate_reset_output(ws_deflate *d) {
  if (d && d->out && deflateReset(&d->out->z) != Z_OK) out_end(d);
}

static int out_start(ws_deflate *d) {
  if (d->out) return 0;
  if (d->out_reset) d->out = slot_take(deflater_slot(d->out_bits, d->mem_level, d->level));
  if (!d->out) d->out = deflater_new(d->out_bits, d->mem_level, d->level);
  return d->out ? 0 : -1;
}

static int in_start(ws_deflate *d) {
  if (d->in) return 0;
  if (d->in_reset) d->in = slot_take(inflater_slot(d->in_bits));
  if (!d->in) d->in = inflater_new(d->in_bits);
  d->in_ended = 0;
  return d->in ? 0 : -1;
}

int ws_deflate_compress(ws_deflate *d, const uint8_t *p, size_t n, ws_buf *out) {
  static const uint8_t tail[4] = { 0x00, 0x00, 0xff, 0xff };
  size_t before = ws_buf_size(out);
  if (out_start(d) != 0) return -1;
  z_stream *z = &d->out->z;
  const uint8_t *ip = p;
  size_t left = n;
  for (;;) {
    uInt take = left > ZLIB_MAX_INPUT ? ZLIB_MAX_INPUT : (uInt)left;
    int flush = left > take ? Z_NO_FLUSH : Z_SYNC_FLUSH;
    z->next_in = (Bytef *)(uintptr_t)ip; /* zlib's API is not const-correct */
    z->avail_in = take;
    ip += take;
    left -= take;
    do {
      uLong bound = deflateBound(z, z->avail_in) + 16;
      size_t want = bound < OUT_CHUNK ? (size_t)bound : OUT_CHUNK;
      uint8_t *dst = ws_buf_reserve(out, want, 0);
      if (!dst) goto fail;
      z->next_out = dst;
      z->avail_out = (uInt)want;
      int rc = deflate(z, flush);
      if (rc != Z_OK && rc != Z_BUF_ERROR) goto fail;
      ws_buf_commit(out, want - z->avail_out);
    } while (z->avail_in > 0 || z->avail_out == 0);
    if (flush == Z_SYNC_FLUSH) break;
  }
  if (ws_buf_size(out) == before) {
    /* zlib emits nothing for an empty message right after a flush. A lone 0x00 is the
     * header of an empty stored block, which the receiver completes with 00 00 ff ff. */
    static const uint8_t empty = 0x00;
    if (ws_buf_append(out, &empty, 1, 0) != 0) goto fail;
  } else {
    /* A sync flush ends with an empty stored block, 00 00 ff ff; RFC 7692 7.2.1 drops it. */
    if (ws_buf_size(out) < before + 4 || memcmp(out->data + out->len - 4, tail, 4) != 0) goto fail;
    out->len -= 4;
  }
  if (d->out_reset) { /* nothing to carry over: the stream serves the next message anywhere */
    give_back(deflater_slot(d->out_bits, d->mem_level, d->level), d->out);
    d->out = NULL;
  }
  return 0;
fail:
  out->len = out->head + before;
  out_end(d); /* the next message starts a fresh stream, which refers to nothing the peer lacks */
  return -1;
}

/* A copy of d's settings compresses without context: it borrows an idle stream of d's shape
 * and gives it back reset, as a connection without context takeover does. */
int ws_deflate_compress_fresh(const ws_deflate *d, const uint8_t *p, size_t n, ws_buf *out) {
  ws_deflate t = *d;
  t.out = t.in = NULL;
  t.out_reset = 1;
  t.in_ended = 0;
  return ws_deflate_compress(&t, p, n, out);
}

/* A block with BFINAL set ends zlib's stream, but not the message: RFC 7692 7.2.3.4 lets a
 * sender flush that way and go on (at least with the empty stored block the message ends
 * with), and later blocks and messages may still refer back. So a fresh stream takes over
 * the window as its dictionary. */
static int in_restart(ws_deflate *d) {
  uInt len = 0;
  Bytef *dict = malloc((size_t)1 << d->in_bits);
  if (!dict) return -1;
  z_stream *z = &d->in->z;
  int ok = inflateGetDictionary(z, dict, &len) == Z_OK && inflateReset(z) == Z_OK &&
           (len == 0 || inflateSetDictionary(z, dict, len) == Z_OK);
  free(dict);
  return ok ? 0 : -1;
}

static const char *const err_too_big = "message over max_message";
static const char *const err_corrupt = "invalid compressed data";
static const char *const err_memory = "out of memory";

/* Inflate p[0..n) into out, never letting out exceed max bytes. */
static int inflate_piece(ws_deflate *d, const uint8_t *p, size_t n, ws_buf *out, size_t max,
                         const char **error) {
  z_stream *z = &d->in->z;
  while (n > 0) {
    uInt take = n > ZLIB_MAX_INPUT ? ZLIB_MAX_INPUT : (uInt)n;
    z->next_in = (Bytef *)(uintptr_t)p;
    z->avail_in = take;
    p += take;
    n -= take;
    do {
      size_t have = ws_buf_size(out);
      if (have > max) { *error = err_too_big; return -1; }
      size_t room = max - have;
      /* One byte beyond the room tells whether the message would exceed max. */
      size_t want = room >= IN_CHUNK ? IN_CHUNK : room + 1;
      /* No more than this input likely needs (a few times its size), unless the buffer has
       * that much free already: a small message then costs one small allocation, where a
       * whole chunk per call meant a 16 KiB one and its regrowth (a copy) for the 4-byte
       * tail. A guess too small only costs another round of this loop. */
      size_t guess = (size_t)z->avail_in * 4 + 256, spare = out->cap - out->len;
      if (guess < spare) guess = spare;
      if (guess < want) want = guess;
      size_t limit = max < SIZE_MAX ? max + 1 : 0;
      uint8_t *dst = ws_buf_reserve(out, want, limit);
      if (!dst) { *error = err_memory; return -1; }
      z->next_out = dst;
      z->avail_out = (uInt)want;
      if (z->avail_in > 0) d->in_ended = 0;
      int rc = inflate(z, Z_SYNC_FLUSH);
      size_t got = want - z->avail_out;
      if (got > room) { *error = err_too_big; return -1; }
      ws_buf_commit(out, got);
      if (rc == Z_STREAM_END) {
        if (in_restart(d) != 0) { *error = err_memory; return -1; }
        d->in_ended = 1;
        continue; /* on with the rest of the input, if any */
      }
      if (rc == Z_MEM_ERROR) { *error = err_memory; return -1; }
      if (rc == Z_BUF_ERROR) break; /* no progress possible: all input taken, no output left */
      if (rc != Z_OK) { *error = err_corrupt; return -1; }
    } while (z->avail_in > 0 || z->avail_out == 0);
  }
  return 0;
}

int ws_deflate_inflate(ws_deflate *d, const uint8_t *p, size_t n, int fin, ws_buf *out,
                       size_t max, const char **error) {
  static const uint8_t tail[4] = { 0x00, 0x00, 0xff, 0xff };
  const char *dummy;
  if (!error) error = &dummy;
  *error = NULL;
  if (in_start(d) != 0) { *error = err_memory; return -1; }
  if (inflate_piece(d, p, n, out, max, error) != 0) goto fail;
  if (fin) {
    /* A message that stops right after a BFINAL block lacks the empty stored block
     * RFC 7692 7.2.1 wants; it is complete anyway, so the tail is not needed. */
    if (!d->in_ended) {
      if (inflate_piece(d, tail, sizeof tail, out, max, error) != 0) goto fail;
      /* With the tail appended the stream must rest between blocks (data_type bit 128);
       * anything else is a message cut inside a block. */
      if (!d->in_ended && !(d->in->z.data_type & 128)) { *error = err_corrupt; goto fail; }
    }
    d->in_ended = 0;
    if (d->in_reset) { /* the message is whole: its stream serves the next one anywhere */
      give_back(inflater_slot(d->in_bits), d->in);
      d->in = NULL;
    }
  }
  return 0;
fail:
  in_end(d); /* the stream is unusable; the connection fails with it */
  return -1;
}
