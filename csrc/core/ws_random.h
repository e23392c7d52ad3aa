/* Random bytes for masking keys, from OpenSSL's CSPRNG. Keys are drawn from a small
 * per-thread pool refilled in batches, so a client does not pay a RAND_bytes call (and its
 * locking) for every frame it sends. */
#ifndef WS_RANDOM_H
#define WS_RANDOM_H

#include "ws_common.h"

/* Fill key with 4 unpredictable bytes. Returns 0, or -1 when the RNG failed. */
int ws_random_mask(uint8_t key[4]) WS_HIDDEN;
/* Drop the keys drawn in advance: a forked child must not use the same ones as its parent. */
void ws_random_forget(void) WS_HIDDEN;

#endif
