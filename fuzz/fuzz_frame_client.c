/* libFuzzer driver for the frame parser and connection state machine (ws_conn), client
 * role: the same driver as fuzz_frame_server.c (see there for the input layout and the
 * checks), built with the other role, so frames must come unmasked and replies go masked.
 *
 * Build and run (from the repository root):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *     -Icsrc/core fuzz/fuzz_frame_client.c csrc/core/ws_*.c -lcrypto -lz -o fuzz/bin/fuzz_frame_client
 *   fuzz/bin/fuzz_frame_client -max_total_time=60 fuzz/corpus/fuzz_frame_client */
#define FUZZ_ROLE WS_ROLE_CLIENT
#include "fuzz_frame_server.c"
