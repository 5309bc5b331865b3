/* The heap interposer's stack walker from cached unwind rules (walk.c). */
#ifndef FFIPROF_HEAP_WALK_H
#define FFIPROF_HEAP_WALK_H
#include <stdint.h>

/* Makes the rules' table; 0 where this machine's walk is left to libgcc. */
int ffiprof_fast_unwind_start(void);
/* After a dlclose: the rules kept may no longer hold. */
void ffiprof_fast_unwind_forget(void);
/* Walks the calling thread's stack from the caller of this function: the return address
 * of each frame, leaving out those in [skip_lo, skip_hi), at most `max`, as libgcc's
 * _Unwind_Backtrace gives them; -1 where a frame is one it does not walk (the caller then
 * walks the stack with libgcc). */
int64_t ffiprof_fast_unwind(uint64_t *ips, uint64_t max, uintptr_t skip_lo, uintptr_t skip_hi);
#endif
