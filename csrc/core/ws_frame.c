/* RFC 6455 section 5 framing (see ws_frame.h): header parsing and writing, (un)masking a
 * machine word at a time, whole-frame building for broadcasts, and the close code rule. */
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__AVX2__)
#define WS_MASK_AVX2 1
#include <immintrin.h>
#endif

#include "ws_conn.h"
#include "ws_frame.h"

int ws_frame_parse_header(const uint8_t *p, size_t n, ws_frame_header *h) {
  if (n < 2) return WS_AGAIN;
  unsigned len7 = p[1] & 0x7Fu;
  size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((p[1] & 0x80u) ? 4 : 0);
  if (len7 == 127 && n > 2 && (p[2] & 0x80u)) return WS_ERROR; /* checkable as soon as it arrives */
  if (n < need) return WS_AGAIN;
  h->fin = (p[0] >> 7) & 1u;
  h->rsv = (p[0] >> 4) & 7u;
  h->opcode = p[0] & 0x0Fu;
  h->masked = (p[1] >> 7) & 1u;
  size_t at = 2;
  if (len7 == 126) {
    h->payload_len = ((uint64_t)p[2] << 8) | p[3];
    at = 4;
  } else if (len7 == 127) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[2 + i];
    h->payload_len = v;
    at = 10;
  } else {
    h->payload_len = len7;
  }
  if (h->masked) {
    memcpy(h->mask, p + at, 4);
    at += 4;
  } else {
    memset(h->mask, 0, 4);
  }
  h->header_len = (unsigned)at;
  return (int)at;
}

size_t ws_frame_write_header(uint8_t *out, int fin, unsigned rsv, unsigned opcode,
                             uint64_t payload_len, const uint8_t mask[4]) {
  size_t at = 2;
  out[0] = (uint8_t)((fin ? 0x80u : 0u) | ((rsv & 7u) << 4) | (opcode & 0x0Fu));
  uint8_t mbit = mask ? 0x80u : 0u;
  if (payload_len < 126) {
    out[1] = (uint8_t)(mbit | payload_len);
  } else if (payload_len <= 0xFFFFu) {
    out[1] = (uint8_t)(mbit | 126u);
    out[2] = (uint8_t)(payload_len >> 8);
    out[3] = (uint8_t)payload_len;
    at = 4;
  } else {
    out[1] = (uint8_t)(mbit | 127u);
    for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    at = 10;
  }
  if (mask) {
    memcpy(out + at, mask, 4);
    at += 4;
  }
  return at;
}

#if WS_MASK_AVX2
/* The build targets any x86-64; where the CPU has AVX2, the bulk of a large payload goes 32
 * bytes per step. n is a multiple of 64, k the key rotated to the phase (8 bytes, as mask_run
 * makes it). Returns whether a byte written has its top bit set (when want_high). */
__attribute__((target("avx2"))) static int mask_bulk_avx2(uint8_t *dst, const uint8_t *src, size_t n,
                                                          uint64_t k, int want_high) {
  __m256i kv = _mm256_set1_epi64x((long long)k);
  __m256i av = _mm256_setzero_si256();
  for (size_t i = 0; i < n; i += 64) {
    __m256i a = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(src + i)), kv);
    __m256i b = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(src + i + 32)), kv);
    _mm256_storeu_si256((__m256i *)(void *)(dst + i), a);
    _mm256_storeu_si256((__m256i *)(void *)(dst + i + 32), b);
    if (want_high) av = _mm256_or_si256(av, _mm256_or_si256(a, b));
  }
  return want_high && _mm256_movemask_epi8(av) != 0;
}

/* Asked of the CPU model the compiler's run-time library reads once, at load. */
static int have_avx2(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") != 0;
}
#endif

/* The body of ws_mask and ws_mask_ascii: `high` collects the top bit of every byte written
 * (inlined with a constant want_high, the plain mask does not pay for it). SSE2, which every
 * x86-64 has, does 16 bytes per step; elsewhere a machine word. */
static inline size_t mask_run(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4],
                              size_t phase, int want_high, int *high) {
  phase &= 3u;
  /* k: the key rotated to the current phase, twice (byte j of k in memory order is
   * key[(phase + j) & 3]). Every step below is a multiple of 4 bytes, so the rotation holds to
   * the end. On a little-endian machine a rotation of the key's word; elsewhere built bytewise,
   * which is right on either byte order. */
  uint64_t k;
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  uint32_t k32;
  memcpy(&k32, key, 4);
  if (phase) k32 = (k32 >> (8u * phase)) | (k32 << (32u - 8u * phase));
  k = (uint64_t)k32 << 32 | k32;
#define KEY_BYTE(i) ((uint8_t)(k >> (8u * ((i) & 7u))))
#else
  uint8_t kb[8];
  for (size_t j = 0; j < 8; j++) kb[j] = key[(phase + j) & 3u];
  memcpy(&k, kb, 8);
#define KEY_BYTE(i) (kb[(i) & 7u])
#endif
  size_t i = 0;
  uint64_t acc = 0;
#if WS_MASK_AVX2
  if (n >= 256 && have_avx2()) {
    i = n & ~(size_t)63;
    if (mask_bulk_avx2(dst, src, i, k, want_high)) acc = 0x80;
  }
#endif
#if defined(__SSE2__)
  __m128i kv = _mm_set1_epi64x((long long)k), av = _mm_setzero_si128();
  for (; i + 64 <= n; i += 64) {
    __m128i a = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(src + i)), kv);
    __m128i b = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(src + i + 16)), kv);
    __m128i c = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(src + i + 32)), kv);
    __m128i d = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(src + i + 48)), kv);
    _mm_storeu_si128((__m128i *)(void *)(dst + i), a);
    _mm_storeu_si128((__m128i *)(void *)(dst + i + 16), b);
    _mm_storeu_si128((__m128i *)(void *)(dst + i + 32), c);
    _mm_storeu_si128((__m128i *)(void *)(dst + i + 48), d);
    if (want_high) av = _mm_or_si128(av, _mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d)));
  }
  for (; i + 16 <= n; i += 16) {
    __m128i a = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(src + i)), kv);
    _mm_storeu_si128((__m128i *)(void *)(dst + i), a);
    if (want_high) av = _mm_or_si128(av, a);
  }
  if (want_high && _mm_movemask_epi8(av)) acc = 0x80;
#else
  for (; i + 32 <= n; i += 32) {
    uint64_t a, b, c, d;
    memcpy(&a, src + i, 8);
    memcpy(&b, src + i + 8, 8);
    memcpy(&c, src + i + 16, 8);
    memcpy(&d, src + i + 24, 8);
    a ^= k; b ^= k; c ^= k; d ^= k;
    memcpy(dst + i, &a, 8);
    memcpy(dst + i + 8, &b, 8);
    memcpy(dst + i + 16, &c, 8);
    memcpy(dst + i + 24, &d, 8);
    if (want_high) acc |= a | b | c | d;
  }
#endif
  for (; i + 8 <= n; i += 8) {
    uint64_t a;
    memcpy(&a, src + i, 8);
    a ^= k;
    memcpy(dst + i, &a, 8);
    if (want_high) acc |= a;
  }
  for (; i < n; i++) { /* fewer than 8 left */
    uint8_t b = (uint8_t)(src[i] ^ KEY_BYTE(i));
    dst[i] = b;
    if (want_high) acc |= b;
  }
#undef KEY_BYTE
  if (want_high) *high = (acc & UINT64_C(0x8080808080808080)) != 0;
  return (phase + n) & 3u;
}

size_t ws_mask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4], size_t phase) {
  return mask_run(dst, src, n, key, phase, 0, NULL);
}

size_t ws_mask_ascii(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4], size_t phase,
                     int *high) {
  return mask_run(dst, src, n, key, phase, 1, high);
}

int ws_close_code_valid(unsigned code) {
  /* 1004-1006 and 1015 are reserved and never sent; 1012-1014 are registered with IANA. */
  if (code >= 1000 && code <= 1014) return code != 1004 && code != 1005 && code != 1006;
  return code >= 3000 && code <= 4999;
}

int ws_frame_build(ws_buf *out, int fin, unsigned rsv, int opcode, const void *p, size_t n,
                   const uint8_t *mask) {
  if (n > SIZE_MAX - WS_FRAME_HEADER_MAX) return -1;
  uint8_t *dst = ws_buf_reserve(out, WS_FRAME_HEADER_MAX + n, 0);
  if (!dst) return -1;
  size_t hl = ws_frame_write_header(dst, fin, rsv, (unsigned)opcode, n, mask);
  if (n) {
    if (mask) ws_mask(dst + hl, p, n, mask, 0);
    else memcpy(dst + hl, p, n);
  }
  ws_buf_commit(out, hl + n);
  return 0;
}
