/* What the libFuzzer drivers share: a check that names its failure, copies of input pieces in
 * buffers of exactly their size (so ASan sees any read past them), and the cutting of an input
 * into pieces whose lengths the input itself chooses, since a parser must read a message split
 * anywhere the same as in one piece. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed: %s (line %d)\n", #c, __LINE__); abort(); } } while (0)

/* n bytes from p in a fresh buffer of exactly n bytes (one when n is 0); the caller frees it. */
static inline char *fuzz_copy(const uint8_t *p, size_t n) {
  char *c = malloc(n ? n : 1);
  CHECK(c != NULL);
  if (n) memcpy(c, p, n);
  return c;
}

/* Whether [p, p + n) lies inside [buf, buf + len). */
static inline int fuzz_inside(const char *p, size_t n, const char *buf, size_t len) {
  return p >= buf && p + n <= buf + len;
}

/* Cuts len bytes into pieces: step i makes a piece of steps[i] + 1 bytes, except that a step of
 * 0xFF makes a large one (4096 bytes and a few, so short and large reads mix). With cycle the
 * steps repeat; without, once they are used up the rest comes in pieces of at most `rest` bytes
 * (0: all of it at once). */
typedef struct fuzz_split {
  const uint8_t *steps;
  size_t nsteps, rest, len, at, i;
  int cycle;
} fuzz_split;

static inline fuzz_split fuzz_split_new(size_t len, const uint8_t *steps, size_t nsteps, int cycle, size_t rest) {
  fuzz_split s = { steps, nsteps, rest, len, 0, 0, cycle };
  return s;
}

/* The next piece's length (0 when the input is used up); it starts at *start and ends at s->at. */
static inline size_t fuzz_split_next(fuzz_split *s, size_t *start) {
  size_t n;
  if (s->at >= s->len) return 0;
  if (s->nsteps && (s->cycle || s->i < s->nsteps)) {
    uint8_t step = s->steps[s->i++ % s->nsteps];
    n = step == 0xFF ? 4096 + s->at % 7 : (size_t)step + 1;
  } else {
    n = s->rest ? s->rest : s->len - s->at;
  }
  if (n > s->len - s->at) n = s->len - s->at;
  if (start) *start = s->at;
  s->at += n;
  return n;
}

/* The layout of the handshake drivers' input: byte 0 the header byte limit (0: the default),
 * byte 1 the number of split points (low 3 bits; bit 7: one byte at a time instead; bit 6 is
 * the driver's), then one byte per split point (the size of the next step); the rest is the
 * message. Returns 0 when the input is too short to hold that. */
typedef struct fuzz_head_input {
  size_t max, len;
  const uint8_t *msg;
  uint8_t flags;
  fuzz_split cut;
} fuzz_head_input;

static inline int fuzz_head_input_read(fuzz_head_input *in, const uint8_t *data, size_t size) {
  static const uint8_t one_byte = 0;
  if (size < 2 || size < 2 + (size_t)(data[1] & 7)) return 0;
  size_t nsplit = data[1] & 7;
  in->max = data[0] ? 16 + (size_t)data[0] * 32 : 0;
  in->flags = data[1];
  in->msg = data + 2 + nsplit;
  in->len = size - 2 - nsplit;
  in->cut = (data[1] & 0x80) ? fuzz_split_new(in->len, &one_byte, 1, 1, 0)
                             : fuzz_split_new(in->len, data + 2, nsplit, 0, 0);
  return 1;
}

/* Parses a fresh copy of msg's first len bytes into state (kept in *keep for the caller). */
typedef int (*fuzz_parse_fn)(void *state, const uint8_t *msg, size_t len, size_t max, char **keep);

/* Gives parse the growing prefixes in->cut makes until it answers other than `again`; returns
 * that answer (or `again`), with *keep the copy it parsed last. */
static inline int fuzz_prefixes(fuzz_head_input *in, fuzz_parse_fn parse, void *state, int again, char **keep) {
  int m = again;
  *keep = NULL;
  while (m == again && fuzz_split_next(&in->cut, NULL) > 0) {
    free(*keep);
    m = parse(state, in->msg, in->cut.at, in->max, keep);
  }
  return m;
}

#endif
