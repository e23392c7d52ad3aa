/* Incremental UTF-8 validation (RFC 3629): the state is carried across calls, so a text
 * message split into fragments or reads is checked as its bytes arrive and fails on the
 * first invalid byte rather than at the end of the message. */
#ifndef WS_UTF8_H
#define WS_UTF8_H

#include "ws_common.h"

#define WS_UTF8_ACCEPT 0u  /* state between complete code points */
#define WS_UTF8_REJECT 1u  /* sticky: once rejected, always rejected */

/* Validate n more bytes. `*state` starts as WS_UTF8_ACCEPT. Returns the new state:
 * WS_UTF8_ACCEPT (complete so far), WS_UTF8_REJECT (invalid), or another value (inside a
 * code point: valid so far, but the text must not end here). ASCII runs are checked a
 * machine word at a time. */
uint32_t ws_utf8_validate(uint32_t *state, const uint8_t *p, size_t n) WS_HIDDEN;

/* Whole-buffer convenience: 1 if p[0..n) is complete valid UTF-8, else 0. */
int ws_utf8_valid(const uint8_t *p, size_t n) WS_HIDDEN;

#endif
