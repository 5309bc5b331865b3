#!/usr/bin/env bash
# Side by side on one workload (pow, per-call, the chain input): ffiprof's perf_event_open
# sampler against the common pipeline `perf record --call-graph dwarf` + `perf script` +
# inferno's collapse and flamegraph. Prints wall time of each stage, samples, and how many
# libm samples keep the Rust per-call loop as an ancestor. Skips where perf is absent.
#
#   scripts/compare-with-perf.sh            # 3 s at 1000 Hz
#   DURATION=5 FREQ=4000 scripts/compare-with-perf.sh
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-3}
freq=${FREQ:-1000}

if ! command -v perf >/dev/null 2>&1; then
  echo "skipped: perf is not installed (Debian: apt-get install linux-perf)"
  exit 0
fi
if ! perf record -e cpu-clock -o /dev/null -q -- true >/dev/null 2>&1; then
  echo "skipped: perf cannot sample here (see kernel.perf_event_paranoid)"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet
bin=target/release/ffiprof

if ! command -v inferno-collapse-perf >/dev/null 2>&1 || ! command -v inferno-flamegraph >/dev/null 2>&1; then
  echo "installing inferno's command-line tools (cargo install inferno) ..."
  cargo install inferno --version 0.12.8 --locked --quiet --root "$work/inferno"
  PATH="$work/inferno/bin:$PATH"
fi

now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }

# Calls that take about $duration seconds, from a timed run of 10 million.
t0=$(now); "$bin" exec pow per-call --input chain --n 10000000 >/dev/null; t1=$(now)
calls=$(python3 -c "import sys; print(int(1e7 * float(sys.argv[1]) / (float(sys.argv[3]) - float(sys.argv[2]))))" "$duration" "$t0" "$t1")

echo "== perf record --call-graph dwarf -F $freq + perf script + inferno"
t0=$(now)
perf record -q -e cpu-clock -F "$freq" --call-graph dwarf -o "$work/perf.data" -- \
  "$bin" exec pow per-call --input chain --n "$calls" >/dev/null 2>&1
t1=$(now)
perf script -i "$work/perf.data" >"$work/perf.script" 2>/dev/null
t2=$(now)
inferno-collapse-perf <"$work/perf.script" >"$work/perf.folded"
t3=$(now)
inferno-flamegraph <"$work/perf.folded" >"$work/perf.svg"
t4=$(now)
size=$(du -k "$work/perf.data" | cut -f1)
echo "record (run + write) $(elapsed "$t0" "$t1") s, perf.data ${size} KiB"
echo "perf script          $(elapsed "$t1" "$t2") s"
echo "collapse             $(elapsed "$t2" "$t3") s"
echo "flamegraph           $(elapsed "$t3" "$t4") s"
echo "post-processing      $(elapsed "$t1" "$t4") s (script + collapse + flamegraph)"

# Share of libm samples (leaf in pow's internals) that keep the Rust loop as ancestor,
# by weight (perf's folded stacks weigh samples by their period).
exactness() {
  awk '{ n = $NF; $NF = ""; k = split($0, f, ";"); leaf = f[k]; gsub(/ /, "", leaf);
         if (leaf ~ /pow|exp_inline|log_inline|top12|asuint64|specialcase/) {
           libm += n; if ($0 ~ /per_call_loop/) kept += n } }
       END { if (libm == 0) print "no libm samples"; else printf "%.1f%% of libm weight\n", 100 * kept / libm }' "$1"
}
echo "samples              $(grep -c '^[^[:space:]]' "$work/perf.script")"
echo "libm under the loop  $(exactness "$work/perf.folded")"

echo
echo "== ffiprof profile --sampler perf (DWARF, framehop) -F $freq"
t0=$(now)
"$bin" profile pow --variant per-call --input chain --sampler perf --frequency "$freq" \
  --duration "$duration" --out "$work/ffiprof" >/dev/null 2>&1
t1=$(now)
post=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(next(p['post_processing_seconds'] for p in d['profiles'] if p['variant']=='per-call'))" "$work/ffiprof/summary.json")
folded="$work/ffiprof/folded/pow.chain.per-call.perf.folded"
echo "whole command        $(elapsed "$t0" "$t1") s (profiles the batched baseline too, $duration s each)"
echo "post-processing      $(printf '%.3f' "$post") s (symbols + flamegraph + folded + pprof)"
echo "samples              $(awk '{ s += $NF } END { print s }' "$folded")"
echo "libm under the loop  $(exactness "$folded")"
