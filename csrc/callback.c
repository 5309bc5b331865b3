#include "ffiprof.h"

/* The per-element work, the same formula as the Rust callbacks: one multiply-add, so the
 * callback's own cost stays small next to the call. */
FFIPROF_CALLEE int ffiprof_c_step(void *user, uint64_t x, uint64_t *out) {
    const uint64_t *mult = (const uint64_t *)user;
    *out = x * *mult + 1;
    return 0;
}

/* The C loop every variant runs, one copy per code placement (ffiprof.h). */
#define FOR_EACH(name, k)                                                                  \
    int name(ffiprof_step_fn step, void *user, uint64_t n, uint64_t x0, uint64_t *result,  \
             uint64_t *done) {                                                             \
        FFIPROF_PLACE(k);                                                                  \
        uint64_t x = x0;                                                                   \
        uint64_t i = 0;                                                                    \
        int status = 0;                                                                    \
        for (; i < n; i++) {                                                               \
            uint64_t next = 0;                                                             \
            status = step(user, x ^ i, &next);                                             \
            if (status != 0) {                                                             \
                break;                                                                     \
            }                                                                              \
            x = next;                                                                      \
        }                                                                                  \
        *result = x;                                                                       \
        *done = i;                                                                         \
        return status;                                                                     \
    }
FFIPROF_PLACED(FOR_EACH, ffiprof_for_each)
