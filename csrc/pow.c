#include <math.h>

#include "ffiprof.h"

/* The C loop of the seeds' slide 64: one call into C, then pow once per iteration.
 * The exponent is an argument, so the compiler cannot specialise pow(a, 3). One copy per
 * code placement (ffiprof.h). */
#define POW_LOOP(name, k)                                                                  \
    double name(double a, double e, uint64_t n) {                                          \
        FFIPROF_PLACE(k);                                                                  \
        for (uint64_t i = 0; i < n; i++) {                                                 \
            a = pow(a, e);                                                                 \
        }                                                                                  \
        return a;                                                                          \
    }
FFIPROF_PLACED(POW_LOOP, ffiprof_pow_loop)
