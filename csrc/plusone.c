#include "ffiprof.h"

/* Unsigned arithmetic so that INT_MAX + 1 wraps instead of being undefined. */
FFIPROF_CALLEE int ffiprof_plusone(int x) { return (int)((unsigned)x + 1u); }

/* The batched loop, one copy per code placement (ffiprof.h). */
#define PLUSONE_LOOP(name, k)                                                              \
    int name(int x, uint64_t n) {                                                          \
        FFIPROF_PLACE(k);                                                                  \
        for (uint64_t i = 0; i < n; i++) {                                                 \
            x = ffiprof_plusone(x);                                                        \
        }                                                                                  \
        return x;                                                                          \
    }
FFIPROF_PLACED(PLUSONE_LOOP, ffiprof_plusone_loop)
