/* Built as its own shared library (libffiprof_dyn.so), loaded at run time with dlopen.
 * The same trivial function as plusone.c, under names that the static library lacks. */
#include <stdint.h>

__attribute__((noinline, noipa)) int ffiprof_dyn_plusone(int x) { return (int)((unsigned)x + 1u); }

int ffiprof_dyn_plusone_loop(int x, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
        x = ffiprof_dyn_plusone(x);
    }
    return x;
}
