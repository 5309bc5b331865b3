#!/usr/bin/env bash
# Checks `ffiprof crossings` against an independent count: ltrace's (Debian's `ltrace`).
#
# Builds a small Rust program that calls zlib through libz.so (crc32 per chunk, then
# compressBound, compress, uncompress and zlibVersion), counts its crossings with
# `ffiprof crossings`, counts the same functions' calls with `ltrace -c -x` (a breakpoint
# at each function's entry in libz), and compares the two for every libz function both
# see. rustc calls shared libraries through the GOT, not a PLT, so ltrace's default PLT
# tracing sees nothing of a Rust program; `-x` counts every entry, which is why the
# program calls no function that zlib also calls internally (compress() calls adler32).
#
#   scripts/check-crossings-ltrace.sh [CALLS]      (default 20000 crc32 calls)
#
# Exits 0 when every count agrees, 1 when one differs, 2 when a tool is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-20000}
for tool in ltrace valgrind rustc python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install $tool)" >&2; exit 2; }
done
libz=$(ldconfig -p | awk '/libz\.so\.1 .*x86-64/ {print $NF; exit}')
[ -n "$libz" ] || { echo "needs zlib's shared library (apt-get install zlib1g)" >&2; exit 2; }
ffiprof=${FFIPROF:-target/release/ffiprof}
[ -x "$ffiprof" ] || cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/zprog.rs" <<'RUST'
use std::os::raw::{c_char, c_int, c_uint, c_ulong};
extern "C" {
    fn crc32(crc: c_ulong, buf: *const u8, len: c_uint) -> c_ulong;
    fn compressBound(len: c_ulong) -> c_ulong;
    fn compress(dst: *mut u8, dlen: *mut c_ulong, src: *const u8, slen: c_ulong) -> c_int;
    fn uncompress(dst: *mut u8, dlen: *mut c_ulong, src: *const u8, slen: c_ulong) -> c_int;
    fn zlibVersion() -> *const c_char;
}
fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20000);
    let data: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut crc = 0;
    for i in 0..n {
        crc = unsafe { crc32(crc, data[i % 64..].as_ptr(), 16) };
    }
    let mut packed = vec![0u8; unsafe { compressBound(4096) } as usize];
    let mut back = vec![0u8; 4096];
    let mut total = 0;
    for _ in 0..25 {
        let mut len = packed.len() as c_ulong;
        let mut out = back.len() as c_ulong;
        unsafe {
            assert_eq!(compress(packed.as_mut_ptr(), &mut len, data.as_ptr(), 4096), 0);
            assert_eq!(uncompress(back.as_mut_ptr(), &mut out, packed.as_ptr(), len), 0);
            total += *zlibVersion() as u64;
        }
    }
    println!("crc {crc} version bytes {total}");
}
RUST
rustc -O -g --edition 2021 "$work/zprog.rs" -C "link-arg=$libz" -o "$work/zprog"

"$ffiprof" crossings --native-runs 0 --out "$work/census" -- "$work/zprog" "$calls" 2>"$work/census.txt" >/dev/null
functions=$(python3 - "$work/census/crossings.json" <<'PY'
import json, sys
census = json.load(open(sys.argv[1]))
names = sorted({c["callee"] for c in census["crossings"] if c["callee_module"].startswith("libz.so")})
print("+".join(f"{n}@libz.so.1" for n in names))
PY
)
[ -n "$functions" ] || { echo "the census found no call into libz" >&2; cat "$work/census.txt" >&2; exit 1; }
ltrace -c -x "$functions" -o "$work/ltrace.txt" "$work/zprog" "$calls" >/dev/null

python3 - "$work/census/crossings.json" "$work/ltrace.txt" <<'PY'
import json, sys
census = json.load(open(sys.argv[1]))
counted = {}
for c in census["crossings"]:
    if c["callee_module"].startswith("libz.so"):
        counted[c["callee"]] = counted.get(c["callee"], 0) + c["calls"]
traced = {}
for line in open(sys.argv[2]):
    f = line.split()
    if len(f) == 5 and f[3].isdigit():
        traced[f[4]] = int(f[3])
both = sorted(set(counted) & set(traced))
width = max(len(n) for n in counted)
print(f"{'function':<{width}}  {'ffiprof crossings':>17}  {'ltrace -c -x':>12}")
bad = 0
for name in sorted(counted):
    a, b = counted.get(name), traced.get(name)
    mark = "" if a == b else "  DIFFERENT" if name in both else "  (ltrace did not see it)"
    bad += name in both and a != b
    print(f"{name:<{width}}  {a if a is not None else '-':>17}  {b if b is not None else '-':>12}{mark}")
missing = set(counted) - set(traced)
if bad or missing:
    print(f"{bad} of {len(both)} functions differ; ltrace missed {sorted(missing)}")
    sys.exit(1)
print(f"all {len(both)} libz functions agree")
PY
