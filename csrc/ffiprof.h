/* The C side of ffiprof's workloads. Every function here is called from Rust through
 * src/ffi.rs; the batched loops call the same per-item functions that the Rust per-call
 * loops call, so both sides do the same work and return the same checksum. */
#ifndef FFIPROF_H
#define FFIPROF_H

#include <stddef.h>
#include <stdint.h>

/* Keeps a per-item function a real call even inside its own translation unit: no
 * inlining, no cloning, no interprocedural constant propagation; and puts it at the start
 * of a 64-byte line, so that where it sits is the same in every binary that links it.
 * The cross-language LTO library (src/workload/xlto) defines it empty: there the
 * optimiser may do across the boundary what it would do to any C library's function. */
#ifndef FFIPROF_CALLEE
#define FFIPROF_CALLEE __attribute__((noinline, noipa, aligned(64)))
#endif

/* The per-item barrier of a measured loop (Rust's is ffi::keep): the optimiser must take
 * x as unknown from here on, and x stays in a register. No instruction, no store, no
 * load: a barrier through memory would make every item wait for a store to be forwarded
 * to the next load, which times the harness, not the call. */
#define FFIPROF_KEEP(x) __asm__ volatile("" : "+r"(x))

/* Code placement. A loop of a few nanoseconds per item runs at a speed that depends on
 * where its machine code sits (alignment, branch-predictor aliasing, the decoded-
 * instruction cache) by more than a crossing costs. So each measured loop is compiled
 * FFIPROF_PLACEMENTS times, as distinct functions: placement k starts its body on a
 * 64-byte boundary and then 16 * k bytes further (no-ops run once per call of the loop,
 * not per item), the same offsets in every binary. The paired engine draws a placement
 * per subject and round (src/measure/paired.rs). The Rust loops do the same
 * (src/workload/placement.rs); the two must agree. */
#define FFIPROF_PLACEMENTS 4
#if defined(__x86_64__)
#define FFIPROF_PLACE(k)                                                                   \
    __asm__ volatile(".balign 64\n\t.if " #k "\n\t.skip " #k " * 16, 0x90\n\t.endif")
#else
#define FFIPROF_PLACE(k) __asm__ volatile(".balign 64")
#endif
/* Defines placement copies of a loop from M(name, k): placement 0 under the name itself
 * (what other programs call), the others with the suffixes _p1, _p2 and _p3. */
#define FFIPROF_PLACED(M, name) M(name, 0) M(name##_p1, 1) M(name##_p2, 2) M(name##_p3, 3)

/* pow: the seeds' experiment. a = pow(a, e) n times, from a. */
double ffiprof_pow_loop(double a, double e, uint64_t n);
double ffiprof_pow_loop_p1(double a, double e, uint64_t n);
double ffiprof_pow_loop_p2(double a, double e, uint64_t n);
double ffiprof_pow_loop_p3(double a, double e, uint64_t n);

/* plusone: the cheapest call there is. */
int ffiprof_plusone(int x);
int ffiprof_plusone_loop(int x, uint64_t n);
int ffiprof_plusone_loop_p1(int x, uint64_t n);
int ffiprof_plusone_loop_p2(int x, uint64_t n);
int ffiprof_plusone_loop_p3(int x, uint64_t n);

/* buffer: a digest of a byte buffer, chained through seed. */
uint64_t ffiprof_buf_digest(const uint8_t *p, size_t len, uint64_t seed);
uint64_t ffiprof_buf_digest_repeat(const uint8_t *p, size_t len, uint64_t n, uint64_t seed);
uint64_t ffiprof_buf_digest_repeat_p1(const uint8_t *p, size_t len, uint64_t n, uint64_t seed);
uint64_t ffiprof_buf_digest_repeat_p2(const uint8_t *p, size_t len, uint64_t n, uint64_t seed);
uint64_t ffiprof_buf_digest_repeat_p3(const uint8_t *p, size_t len, uint64_t n, uint64_t seed);

/* cstring: a digest of a NUL-terminated string, chained through seed. */
uint64_t ffiprof_cstr_digest(const char *s, uint64_t seed);
uint64_t ffiprof_cstr_digest_many(const char *const *strs, size_t k, uint64_t n, uint64_t seed);

/* callback: C loops and calls back once per element. A callback returns 0 and writes
 * *out to go on; any other status stops the loop, which returns that status. */
typedef int (*ffiprof_step_fn)(void *user, uint64_t x, uint64_t *out);
int ffiprof_for_each(ffiprof_step_fn step, void *user, uint64_t n, uint64_t x0,
                     uint64_t *result, uint64_t *done);
int ffiprof_for_each_p1(ffiprof_step_fn step, void *user, uint64_t n, uint64_t x0,
                        uint64_t *result, uint64_t *done);
int ffiprof_for_each_p2(ffiprof_step_fn step, void *user, uint64_t n, uint64_t x0,
                        uint64_t *result, uint64_t *done);
int ffiprof_for_each_p3(ffiprof_step_fn step, void *user, uint64_t n, uint64_t x0,
                        uint64_t *result, uint64_t *done);
int ffiprof_c_step(void *user, uint64_t x, uint64_t *out);

/* arena: a linked list of small nodes, from malloc one by one or from an arena. */
typedef struct ffiprof_node ffiprof_node;
typedef struct ffiprof_arena ffiprof_arena;
ffiprof_node *ffiprof_node_push(ffiprof_node *head, uint64_t value);
ffiprof_node *ffiprof_node_pop(ffiprof_node *head, uint64_t *value);
uint64_t ffiprof_nodes_batched(uint64_t n, uint64_t seed);
ffiprof_arena *ffiprof_arena_new(size_t capacity_nodes);
ffiprof_node *ffiprof_arena_push(ffiprof_arena *arena, ffiprof_node *head, uint64_t value);
uint64_t ffiprof_list_sum(const ffiprof_node *head);
void ffiprof_arena_free(ffiprof_arena *arena);

/* calibrate: planted work for the samplers' accuracy tests. */
uint64_t ffiprof_spin(uint64_t x, uint64_t iters);

#endif
