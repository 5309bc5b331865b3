#include <math.h>

#include "ffiprof.h"

/* The C loop of the seeds' slide 64: one call into C, then pow once per iteration.
 * The exponent is an argument, so the compiler cannot specialise pow(a, 3). */
double ffiprof_pow_loop(double a, double e, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
        a = pow(a, e);
    }
    return a;
}
