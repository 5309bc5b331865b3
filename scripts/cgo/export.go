package main

// Callbacks from C into Go. A file with //export may only declare in its preamble.

/*
#include <stdint.h>
*/
import "C"

import (
	"runtime/cgo"
	"sync"
	"unsafe"
)

type stepState struct{ mult uint64 }

func step(s *stepState, x uint64) uint64 { return x*s.mult + 1 }

//export goStepHandle
func goStepHandle(user unsafe.Pointer, x C.uint64_t, out *C.uint64_t) C.int {
	s := cgo.Handle(uintptr(user)).Value().(*stepState)
	*out = C.uint64_t(step(s, uint64(x)))
	return 0
}

// The seeds' pattern before runtime/cgo.Handle: a map of ids behind a lock.
var (
	registryMu sync.Mutex
	registry   = map[uintptr]*stepState{}
	nextID     uintptr
)

func register(s *stepState) uintptr {
	registryMu.Lock()
	defer registryMu.Unlock()
	nextID++
	registry[nextID] = s
	return nextID
}

//export goStepMap
func goStepMap(user unsafe.Pointer, x C.uint64_t, out *C.uint64_t) C.int {
	registryMu.Lock()
	s, ok := registry[uintptr(user)]
	registryMu.Unlock()
	if !ok {
		return 1
	}
	*out = C.uint64_t(step(s, uint64(x)))
	return 0
}
