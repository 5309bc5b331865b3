#include "ffiprof.h"

/* Unsigned arithmetic so that INT_MAX + 1 wraps instead of being undefined. */
FFIPROF_CALLEE int ffiprof_plusone(int x) { return (int)((unsigned)x + 1u); }

int ffiprof_plusone_loop(int x, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
        x = ffiprof_plusone(x);
    }
    return x;
}
