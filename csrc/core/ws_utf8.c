/* Incremental UTF-8 validation (see ws_utf8.h). A small DFA over byte classes whose state
 * survives between calls, so a text message is checked piece by piece as it arrives. Runs
 * of ASCII, the common case, are skipped 16 or 8 bytes at a time. */
#include <string.h>

#include "ws_utf8.h"

/* Byte classes. The leads that restrict their first continuation byte get their own class
 * so that overlong forms (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code points
 * over U+10FFFF (F4 90..BF) are rejected by the table alone. */
enum {
  C_ASCII,  /* 00..7F */
  C_CONT1,  /* 80..8F */
  C_CONT2,  /* 90..9F */
  C_CONT3,  /* A0..BF */
  C_BAD,    /* C0 C1 F5..FF: never valid */
  C_L2,     /* C2..DF */
  C_E0,     /* E0: next A0..BF */
  C_L3,     /* E1..EC EE EF */
  C_ED,     /* ED: next 80..9F */
  C_F0,     /* F0: next 90..BF */
  C_L4,     /* F1..F3 */
  C_F4,     /* F4: next 80..8F */
  C_COUNT
};

/* States: 0 accept and 1 reject are fixed by the header; the others count what is missing. */
enum {
  S_OK = WS_UTF8_ACCEPT,
  S_BAD = WS_UTF8_REJECT,
  S_NEED1,    /* one continuation byte of any kind */
  S_NEED2,    /* two of any kind */
  S_E0,       /* after E0 */
  S_ED,       /* after ED */
  S_NEED3,    /* three of any kind */
  S_F0,       /* after F0 */
  S_F4,       /* after F4 */
  S_COUNT
};

static const uint8_t byte_class[256] = {
#define R16(x) x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x
  R16(C_ASCII), R16(C_ASCII), R16(C_ASCII), R16(C_ASCII),   /* 00..3F */
  R16(C_ASCII), R16(C_ASCII), R16(C_ASCII), R16(C_ASCII),   /* 40..7F */
  R16(C_CONT1), R16(C_CONT2), R16(C_CONT3), R16(C_CONT3),   /* 80..BF */
  C_BAD, C_BAD, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2,         /* C0..C7 */
  C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2,           /* C8..CF */
  R16(C_L2),                                                /* D0..DF */
  C_E0, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3,           /* E0..E7 */
  C_L3, C_L3, C_L3, C_L3, C_L3, C_ED, C_L3, C_L3,           /* E8..EF */
  C_F0, C_L4, C_L4, C_L4, C_F4, C_BAD, C_BAD, C_BAD,        /* F0..F7 */
  C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD    /* F8..FF */
#undef R16
};

static const uint8_t next_state[S_COUNT][C_COUNT] = {
  /*            ASCII  CONT1    CONT2    CONT3    BAD    L2       E0    L3       ED    F0    L4       F4 */
  /* S_OK    */ {S_OK, S_BAD,   S_BAD,   S_BAD,   S_BAD, S_NEED1, S_E0, S_NEED2, S_ED, S_F0, S_NEED3, S_F4},
  /* S_BAD   */ {S_BAD, S_BAD,  S_BAD,   S_BAD,   S_BAD, S_BAD,   S_BAD, S_BAD,  S_BAD, S_BAD, S_BAD,  S_BAD},
  /* S_NEED1 */ {S_BAD, S_OK,   S_OK,    S_OK,    S_BAD, S_BAD,   S_BAD, S_BAD,  S_BAD, S_BAD, S_BAD,  S_BAD},
  /* S_NEED2 */ {S_BAD, S_NEED1, S_NEED1, S_NEED1, S_BAD, S_BAD,  S_BAD, S_BAD,  S_BAD, S_BAD, S_BAD,  S_BAD},
  /* S_E0    */ {S_BAD, S_BAD,  S_BAD,   S_NEED1, S_BAD, S_BAD,   S_BAD, S_BAD,  S_BAD, S_BAD, S_BAD,  S_BAD},
  /* S_ED    */ {S_BAD, S_NEED1, S_NEED1, S_BAD,  S_BAD, S_BAD,   S_BAD, S_BAD,  S_BAD, S_BAD, S_BAD,  S_BAD},
  /* S_NEED3 */ {S_BAD, S_NEED2, S_NEED2, S_NEED2, S_BAD, S_BAD,  S_BAD, S_BAD,  S_BAD, S_BAD, S_BAD,  S_BAD},
  /* S_F0    */ {S_BAD, S_BAD,  S_NEED2, S_NEED2, S_BAD, S_BAD,   S_BAD, S_BAD,  S_BAD, S_BAD, S_BAD,  S_BAD},
  /* S_F4    */ {S_BAD, S_NEED2, S_BAD,  S_BAD,   S_BAD, S_BAD,   S_BAD, S_BAD,  S_BAD, S_BAD, S_BAD,  S_BAD},
};

#define HIGH_BITS UINT64_C(0x8080808080808080)

static uint64_t load64(const uint8_t *p) {
  uint64_t w;
  memcpy(&w, p, sizeof w); /* unaligned-safe; compiles to one load */
  return w;
}

uint32_t ws_utf8_validate(uint32_t *state, const uint8_t *p, size_t n) {
  uint32_t s = *state;
  if (n == 0) return s; /* p may be NULL then, and NULL + 0 is not defined in C */
  const uint8_t *end = p + n;
  if (s >= S_COUNT) s = S_BAD; /* a corrupt state is never trusted */
  while (p < end && s != S_BAD) {
    if (s == S_OK) {
      /* Between code points: skip ASCII a machine word (or two) at a time. */
      while ((size_t)(end - p) >= 16 && ((load64(p) | load64(p + 8)) & HIGH_BITS) == 0) p += 16;
      while ((size_t)(end - p) >= 8 && (load64(p) & HIGH_BITS) == 0) p += 8;
      while (p < end && *p < 0x80) p++;
      if (p == end) break;
    }
    s = next_state[s][byte_class[*p++]];
  }
  *state = s;
  return s;
}

int ws_utf8_valid(const uint8_t *p, size_t n) {
  uint32_t s = WS_UTF8_ACCEPT;
  return ws_utf8_validate(&s, p, n) == WS_UTF8_ACCEPT;
}
