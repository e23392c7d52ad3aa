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

#endif
