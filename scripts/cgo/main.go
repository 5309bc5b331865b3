// Command cgo runs ffiprof's pow, plusone and callback workloads from Go through cgo,
// against the project's own C code, and writes the figures as JSON in the shape of the
// Rust rows. With -profile it also records Go's own CPU profile (runtime/pprof) of pow
// per-call and batched, to show what Go's profiler attributes to C.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/cgo"
	"runtime/pprof"
	"sort"
	"time"
)

type interval struct {
	Estimate float64 `json:"estimate"`
	Lower    float64 `json:"lower"`
	Upper    float64 `json:"upper"`
}

type variant struct {
	Name      string   `json:"name"`
	Role      string   `json:"role"`
	NsPerCall interval `json:"ns_per_call"`
	Checksum  string   `json:"checksum"`
}

type workload struct {
	Name     string    `json:"name"`
	Input    string    `json:"input"`
	Baseline string    `json:"baseline"`
	Calls    int       `json:"calls_per_iteration"`
	Variants []variant `json:"variants"`
}

type profileFile struct {
	Variant string  `json:"variant"`
	Path    string  `json:"path"`
	Seconds float64 `json:"seconds"`
}

type output struct {
	SchemaVersion int           `json:"schema_version"`
	Language      string        `json:"language"`
	GoVersion     string        `json:"go_version"`
	Statistic     string        `json:"statistic"`
	Runs          int           `json:"runs"`
	Workloads     []workload    `json:"workloads"`
	Profiles      []profileFile `json:"profiles"`
}

var sink uint64

// measure times fn (n calls per op) in `runs` runs of about `benchtime` each: the median
// ns per call, with the fastest and slowest run as its range. The ops per run come from
// one calibration (doubling until an op batch takes a twentieth of benchtime), which also
// warms the code up. testing.Benchmark would do the same work but ramp up to its count
// again in every run (1, 100, 10 000, ... ops), and those discarded rounds took about as
// long as the timed one.
func measure(runs, n int, benchtime time.Duration, fn func(n int) uint64) (interval, uint64) {
	var check uint64
	ops := 1
	for {
		start := time.Now()
		for j := 0; j < ops; j++ {
			check = fn(n)
		}
		took := time.Since(start)
		if took >= benchtime/20 || ops >= 1<<30 {
			ops = int(float64(ops) * float64(benchtime) / float64(took+1))
			break
		}
		ops *= 2
	}
	if ops < 1 {
		ops = 1
	}
	perCall := make([]float64, 0, runs)
	for i := 0; i < runs; i++ {
		start := time.Now()
		for j := 0; j < ops; j++ {
			check = fn(n)
		}
		took := time.Since(start)
		perCall = append(perCall, float64(took.Nanoseconds())/float64(ops)/float64(n))
	}
	sink += check
	sort.Float64s(perCall)
	return interval{perCall[len(perCall)/2], perCall[0], perCall[len(perCall)-1]}, check
}

type bench struct {
	name string
	role string
	fn   func(n int) uint64
}

func main() {
	jsonPath := flag.String("json", "", "write the figures to this file")
	profileDir := flag.String("profile", "", "write Go CPU profiles of pow per-call and batched here")
	runs := flag.Int("runs", 5, "benchmark runs per variant (median and range)")
	benchtime := flag.Duration("benchtime", 300*time.Millisecond, "time per benchmark run")
	profileTime := flag.Duration("profiletime", 2*time.Second, "time per CPU profile")
	flag.Parse()

	state := &stepState{mult: 0x2545f4914f6cdd1d}
	handle := cgo.NewHandle(state)
	defer handle.Delete()
	id := register(state)

	bits := func(f float64) uint64 { return math.Float64bits(f) }
	cases := []struct {
		name, input string
		calls       int
		benches     []bench
	}{
		{"pow", "cube-from-0", 2000, []bench{
			{"batched", "baseline", func(n int) uint64 { return bits(powBatched(0, 3, n)) }},
			{"per-call", "per-call", func(n int) uint64 { return bits(powPerCall(0, 3, n)) }},
		}},
		{"pow", "chain", 1000, []bench{
			{"batched", "baseline", func(n int) uint64 { return bits(powBatched(1.5, 0.9999999, n)) }},
			{"per-call", "per-call", func(n int) uint64 { return bits(powPerCall(1.5, 0.9999999, n)) }},
		}},
		{"plusone", "int", 10000, []bench{
			{"batched", "baseline", func(n int) uint64 { return uint64(uint32(plusoneBatched(7, n))) }},
			{"per-call", "per-call", func(n int) uint64 { return uint64(uint32(plusonePerCall(7, n))) }},
		}},
		{"callback", "u64", 10000, []bench{
			{"batched", "baseline", func(n int) uint64 { return callbackBatched(state.mult, 1, n) }},
			{"cgo-handle", "per-call", func(n int) uint64 { return callbackHandle(uintptr(handle), 1, n) }},
			{"handle-map", "per-call", func(n int) uint64 { return callbackMap(id, 1, n) }},
		}},
	}

	out := output{SchemaVersion: 1, Language: "go", GoVersion: runtime.Version(), Statistic: "median of runs", Runs: *runs}
	for _, c := range cases {
		w := workload{Name: c.name, Input: c.input, Baseline: "batched", Calls: c.calls}
		for _, b := range c.benches {
			ns, check := measure(*runs, c.calls, *benchtime, b.fn)
			w.Variants = append(w.Variants, variant{b.name, b.role, ns, fmt.Sprint(check)})
			fmt.Fprintf(os.Stderr, "cgo %s/%s/%s: %.2f ns/call\n", c.name, c.input, b.name, ns.Estimate)
		}
		out.Workloads = append(out.Workloads, w)
	}

	if *profileDir != "" {
		if err := os.MkdirAll(*profileDir, 0o755); err != nil {
			fatal(err)
		}
		for _, p := range []struct {
			name string
			fn   func(n int) uint64
		}{
			{"per-call", func(n int) uint64 { return bits(powPerCall(1.5, 0.9999999, n)) }},
			{"batched", func(n int) uint64 { return bits(powBatched(1.5, 0.9999999, n)) }},
		} {
			path := filepath.Join(*profileDir, "cgo.pow.chain."+p.name+".go-pprof.pb.gz")
			f, err := os.Create(path)
			if err != nil {
				fatal(err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				fatal(err)
			}
			start := time.Now()
			for time.Since(start) < *profileTime {
				sink += p.fn(1000)
			}
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				fatal(err)
			}
			out.Profiles = append(out.Profiles, profileFile{p.name, path, time.Since(start).Seconds()})
		}
	}

	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		fatal(err)
	}
	if *jsonPath == "" {
		fmt.Println(string(data))
		return
	}
	tmp := *jsonPath + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		fatal(err)
	}
	if err := os.Rename(tmp, *jsonPath); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}
