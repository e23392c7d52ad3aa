/* Masking keys from OpenSSL's RAND_bytes through a per-thread pool (see ws_random.h).
 * RFC 6455 10.3 wants keys an attacker cannot predict, so they come from the CSPRNG; the
 * pool only amortises the call. */
#include <string.h>

#include <openssl/rand.h>

#include "ws_random.h"

#define POOL_BYTES 256 /* 64 keys per refill */

#if defined(__GNUC__)
#define WS_THREAD_LOCAL __thread
#else
#define WS_THREAD_LOCAL
#endif

static WS_THREAD_LOCAL uint8_t pool[POOL_BYTES];
static WS_THREAD_LOCAL size_t pool_used = POOL_BYTES; /* empty until first use */

int ws_random_mask(uint8_t key[4]) {
  if (pool_used + 4 > POOL_BYTES) {
    if (RAND_bytes(pool, POOL_BYTES) != 1) return -1;
    pool_used = 0;
  }
  memcpy(key, pool + pool_used, 4);
  memset(pool + pool_used, 0, 4); /* a used key does not linger in memory */
  pool_used += 4;
  return 0;
}

void ws_random_forget(void) {
  memset(pool, 0, sizeof pool);
  pool_used = POOL_BYTES;
}
