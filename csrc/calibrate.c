#include "ffiprof.h"

/* Planted C work for the samplers' calibration: a dependent multiply-add chain of `iters`
 * steps, the same chain as the Rust spin in src/workload/calibrate.rs. */
FFIPROF_CALLEE uint64_t ffiprof_spin(uint64_t x, uint64_t iters) {
    for (uint64_t i = 0; i < iters; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    }
    return x;
}
