/* A log-linear latency histogram in nanoseconds: exact below 64 ns, then 32 buckets per power
 * of two (about 3 % resolution), fixed size, no allocation, O(1) to record. */
#ifndef LC_HIST_H
#define LC_HIST_H

#include <stdint.h>
#include <string.h>

#define LC_HIST_SUB 5
#define LC_HIST_BUCKETS ((64 - LC_HIST_SUB) * (1 << LC_HIST_SUB))

typedef struct lc_hist {
  uint64_t count;
  uint64_t b[LC_HIST_BUCKETS];
} lc_hist;

static inline void lc_hist_reset(lc_hist *h) { memset(h, 0, sizeof *h); }

static inline unsigned lc_hist_index(uint64_t v) {
  if (v < (2u << LC_HIST_SUB)) return (unsigned)v;
  unsigned e = 63u - (unsigned)__builtin_clzll(v);
  unsigned shift = e - LC_HIST_SUB;
  return shift * (1u << LC_HIST_SUB) + (unsigned)(v >> shift);
}

static inline void lc_hist_add(lc_hist *h, uint64_t v) {
  h->b[lc_hist_index(v)]++;
  h->count++;
}

/* The value (middle of its bucket) below which fraction q of the samples lie; 0 if empty. */
static inline uint64_t lc_hist_quantile(const lc_hist *h, double q) {
  if (!h->count) return 0;
  uint64_t want = (uint64_t)(q * (double)h->count);
  if (want >= h->count) want = h->count - 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < LC_HIST_BUCKETS; i++) {
    seen += h->b[i];
    if (seen > want) {
      if (i < (2u << LC_HIST_SUB)) return i;
      unsigned shift = i / (1u << LC_HIST_SUB) - 1;
      uint64_t mant = i - shift * (1u << LC_HIST_SUB);
      return (mant << shift) + ((1ull << shift) >> 1);
    }
  }
  return 0;
}

#endif
