module ffiprof/cgo

go 1.19
