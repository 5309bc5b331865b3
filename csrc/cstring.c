#include "ffiprof.h"

/* FNV-1a over the string up to its NUL, starting from the seed. */
FFIPROF_CALLEE uint64_t ffiprof_cstr_digest(const char *s, uint64_t seed) {
    uint64_t h = seed ^ 0xcbf29ce484222325ULL;
    for (; *s != '\0'; s++) {
        h ^= (uint8_t)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t ffiprof_cstr_digest_many(const char *const *strs, size_t k, uint64_t n, uint64_t seed) {
    if (k == 0) {
        return seed;
    }
    /* A wrapping index rather than i % k: a 64-bit division would cost more than the
     * call whose cost this loop is the baseline for. */
    size_t j = 0;
    for (uint64_t i = 0; i < n; i++) {
        seed = ffiprof_cstr_digest(strs[j], seed);
        j = (j + 1 == k) ? 0 : j + 1;
    }
    return seed;
}
