#include <math.h>
#include <string.h>

#include "ffiprof.h"

/* The C loop of the seeds' slide 64: one call into C, then pow once per iteration.
 * The exponent is an argument, so the compiler cannot specialise pow(a, 3). One copy per
 * code placement (ffiprof.h).
 *
 * The exponent must outlive every call, and x86-64 has no vector register that a call
 * preserves: gcc would store it before each call and load it after, a stack round trip
 * per item that the Rust loop does not make (it stores it once and only loads it). Its
 * bits are kept in a general register instead, which a call preserves. */
#define POW_LOOP(name, k)                                                                  \
    double name(double a, double e, uint64_t n) {                                          \
        FFIPROF_PLACE(k);                                                                  \
        uint64_t e_bits;                                                                   \
        memcpy(&e_bits, &e, sizeof e_bits);                                                \
        for (uint64_t i = 0; i < n; i++) {                                                 \
            FFIPROF_KEEP(e_bits);                                                          \
            double exponent;                                                               \
            memcpy(&exponent, &e_bits, sizeof exponent);                                   \
            a = pow(a, exponent);                                                          \
        }                                                                                  \
        return a;                                                                          \
    }
FFIPROF_PLACED(POW_LOOP, ffiprof_pow_loop)
