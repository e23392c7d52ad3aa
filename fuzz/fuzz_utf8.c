/* libFuzzer driver for the incremental UTF-8 validator (ws_utf8).
 *
 * Build and run (from the repository root):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *     -Icsrc/core fuzz/fuzz_utf8.c csrc/core/ws_utf8.c -o fuzz/bin/fuzz_utf8
 *   fuzz/bin/fuzz_utf8 -max_total_time=60 fuzz/corpus/fuzz_utf8
 *
 * Input layout: byte 0 is the length minus one of the pieces the rest is validated in (the
 * state carried between calls; 0xFF: pieces of about 4 KiB, see fuzz_common.h); the rest is
 * the text. The validator must agree with a plain
 * reference decoder on the verdict, and must reject exactly at the first byte after which
 * no valid text can follow: fed in pieces, the piece holding that byte is the first to
 * return WS_UTF8_REJECT; fed byte by byte, that very byte is. */
#include "fuzz_common.h"
#include "ws_utf8.h"

/* Index of the first byte that makes the prefix impossible to complete (n when none);
 * *complete says whether the whole input ends between code points. */
static size_t ref_first_bad(const uint8_t *p, size_t n, int *complete) {
  size_t i = 0;
  *complete = 0;
  while (i < n) {
    uint8_t c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    int need;
    uint8_t lo = 0x80, hi = 0xBF; /* range of the first continuation byte */
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) need = 2, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) need = 2;
    else if (c == 0xED) need = 2, hi = 0x9F;
    else if (c == 0xF0) need = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else if (c == 0xF4) need = 3, hi = 0x8F;
    else return i;
    for (int k = 1; k <= need; k++) {
      if (i + (size_t)k >= n) return n; /* ends inside a code point */
      uint8_t d = p[i + (size_t)k];
      if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) return i + (size_t)k;
    }
    i += (size_t)need + 1;
  }
  *complete = 1;
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  int complete;
  size_t bad = ref_first_bad(p, n, &complete);

  CHECK(ws_utf8_valid(p, n) == (bad == n && complete));

  uint32_t state = WS_UTF8_ACCEPT;
  fuzz_split cut = fuzz_split_new(n, data, 1, 1, 0);
  size_t at, k;
  while ((k = fuzz_split_next(&cut, &at)) > 0) {
    uint32_t s = ws_utf8_validate(&state, p + at, k);
    CHECK(s == state);
    CHECK((s == WS_UTF8_REJECT) == (bad < at + k));
  }
  CHECK(n == 0 || (state == WS_UTF8_ACCEPT) == (bad == n && complete));

  state = WS_UTF8_ACCEPT;
  for (size_t i = 0; i < n; i++) {
    uint32_t s = ws_utf8_validate(&state, p + i, 1);
    CHECK((s == WS_UTF8_REJECT) == (i >= bad));
  }
  return 0;
}
