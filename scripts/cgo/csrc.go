package main

// The project's own C workload code, compiled into this program by cgo: the same files
// as the Rust side links, included here rather than copied.

/*
#cgo CFLAGS: -O2 -g -fno-omit-frame-pointer -std=c11
#cgo LDFLAGS: -lm
#include <math.h>
#include <stdint.h>
#include "../../csrc/pow.c"
#include "../../csrc/plusone.c"
#include "../../csrc/callback.c"

extern int goStepHandle(void *user, uint64_t x, uint64_t *out);
extern int goStepMap(void *user, uint64_t x, uint64_t *out);

static uint64_t for_each_with(ffiprof_step_fn step, uintptr_t handle, uint64_t n, uint64_t x0) {
	uint64_t result = 0, done = 0;
	ffiprof_for_each(step, (void *)handle, n, x0, &result, &done);
	return result;
}

static uint64_t for_each_handle(uintptr_t handle, uint64_t n, uint64_t x0) {
	return for_each_with(goStepHandle, handle, n, x0);
}

static uint64_t for_each_map(uintptr_t id, uint64_t n, uint64_t x0) {
	return for_each_with(goStepMap, id, n, x0);
}

static uint64_t for_each_c(uint64_t mult, uint64_t n, uint64_t x0) {
	uint64_t result = 0, done = 0;
	ffiprof_for_each(ffiprof_c_step, &mult, n, x0, &result, &done);
	return result;
}
*/
import "C"

func powPerCall(a, e float64, n int) float64 {
	ca, ce := C.double(a), C.double(e)
	for i := 0; i < n; i++ {
		ca = C.pow(ca, ce)
	}
	return float64(ca)
}

func powBatched(a, e float64, n int) float64 {
	return float64(C.ffiprof_pow_loop(C.double(a), C.double(e), C.uint64_t(n)))
}

func plusonePerCall(x int32, n int) int32 {
	cx := C.int(x)
	for i := 0; i < n; i++ {
		cx = C.ffiprof_plusone(cx)
	}
	return int32(cx)
}

func plusoneBatched(x int32, n int) int32 {
	return int32(C.ffiprof_plusone_loop(C.int(x), C.uint64_t(n)))
}

func callbackBatched(mult, x0 uint64, n int) uint64 {
	return uint64(C.for_each_c(C.uint64_t(mult), C.uint64_t(n), C.uint64_t(x0)))
}

func callbackHandle(handle uintptr, x0 uint64, n int) uint64 {
	return uint64(C.for_each_handle(C.uintptr_t(handle), C.uint64_t(n), C.uint64_t(x0)))
}

func callbackMap(id uintptr, x0 uint64, n int) uint64 {
	return uint64(C.for_each_map(C.uintptr_t(id), C.uint64_t(n), C.uint64_t(x0)))
}
