#include "ffiprof.h"

/* Reads every byte: a sum the compiler can vectorise, mixed with the seed and length so
 * that consecutive calls depend on each other. */
FFIPROF_CALLEE uint64_t ffiprof_buf_digest(const uint8_t *p, size_t len, uint64_t seed) {
    uint64_t sum = 0;
    for (size_t i = 0; i < len; i++) {
        sum += p[i];
    }
    return seed * 0x100000001b3ULL + sum + len;
}

/* The batched loop, one copy per code placement (ffiprof.h). */
#define DIGEST_REPEAT(name, k)                                                             \
    uint64_t name(const uint8_t *p, size_t len, uint64_t n, uint64_t seed) {               \
        FFIPROF_PLACE(k);                                                                  \
        for (uint64_t i = 0; i < n; i++) {                                                 \
            seed = ffiprof_buf_digest(p, len, seed);                                       \
        }                                                                                  \
        return seed;                                                                       \
    }
FFIPROF_PLACED(DIGEST_REPEAT, ffiprof_buf_digest_repeat)
