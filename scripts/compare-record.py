#!/usr/bin/env python3
"""Side by side on the SQLite example: `ffiprof record`, `samply record`, and
`perf record --call-graph dwarf` followed by `perf script` and inferno.

For each profiler, one recording at 1 kHz gives:
  - the share of samples with a frame in the C library (SQLite, compiled into the
    program) whose stack has a Rust frame above that frame;
  - post-processing time: from the program's end to the profiler's files (for perf, plus
    `perf script` and inferno's collapse and flamegraph);
  - output size.
Then the program's slowdown under each profiler at 1 kHz, in one long run of the
program at a steady rate (it prints its progress): rounds of windows with no profiler,
none again (the A/A control) and each profiler attached by pid, in shuffled order; each
window's rate against the same round's plain window; the median over rounds with the
distribution-free interval of a median.

The same rule decides "C library" and "Rust" for every profiler: a C-library frame is
a function of the program's own file whose symbol is not mangled (nm; SQLite's), a Rust
frame one whose demangled name has a path (`::`).

    scripts/compare-record.py [--rounds 9] [--work-rounds 60] [--threads 2]

Needs perf (apt-get install linux-perf), samply (cargo install samply) and inferno's
tools (cargo install inferno); a missing one is skipped, with the command that installs it.
"""

import argparse
import gzip
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FREQ = 1000
CRT = {"_start", "main", "_init", "_fini", "deregister_tm_clones", "register_tm_clones",
       "__do_global_dtors_aux", "frame_dummy", "rust_eh_personality"}


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def c_symbols(binary):
    """Unmangled function symbols of the program (SQLite's) and every function's range."""
    out = subprocess.run(["nm", "--defined-only", "-S", "--no-demangle", str(binary)],
                         check=True, capture_output=True, text=True).stdout
    c_names, ranges = set(), []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 4 or parts[2] not in "tT":
            continue
        addr, size, _, name = int(parts[0], 16), int(parts[1], 16), parts[2], parts[3]
        mangled = name.startswith("_ZN") or name.startswith("_R")
        is_c = not mangled and name not in CRT and not name.startswith("__rust") \
            and not name.startswith("_")
        if is_c:
            c_names.add(name)
        ranges.append((addr, addr + size, name, is_c, mangled))
    ranges.sort()
    return c_names, ranges


def is_rust(name):
    return "::" in name or name.startswith("_ZN") or name.startswith("_R")


def share(stacks, c_names):
    """stacks: (root-first function names, weight). Share of C-library samples with a
    Rust frame above their outermost C-library frame."""
    c = with_rust = 0
    for frames, w in stacks:
        first = next((i for i, f in enumerate(frames) if f in c_names), None)
        if first is None:
            continue
        c += w
        if any(is_rust(f) for f in frames[:first]):
            with_rust += w
    return c, (with_rust / c if c else float("nan"))


def folded_stacks(text):
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            yield [f.split("+0x")[0] for f in stack.split(";")], int(count)


def perf_script_stacks(text):
    """Samples of `perf script` output: a header line, then one frame per line, leaf
    first (`addr symbol+off (dso)`); blank lines between samples."""
    for block in text.split("\n\n"):
        lines = [l for l in block.splitlines() if l.strip()]
        if len(lines) < 2:
            continue
        frames = []
        for l in lines[1:]:
            parts = l.split(None, 1)
            if len(parts) < 2:
                continue
            sym = parts[1].rsplit(" (", 1)[0]
            frames.append(re.sub(r"\+0x[0-9a-f]+$", "", sym))
        frames.reverse()
        yield frames, 1


def du(path):
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def run_program(cmd, env=None):
    """Runs cmd; returns (wall seconds, the program's reported rows/s, its own seconds)."""
    t0 = time.monotonic()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    m = re.search(r": ([0-9.]+) s, ([0-9.]+) rows/s", out.stdout)
    if not m:
        sys.exit(f"no throughput in the output of {cmd}: {out.stdout!r} {out.stderr[-2000:]!r}")
    return wall, float(m.group(2)), float(m.group(1))


def median_interval(xs, confidence=0.95):
    """Median and the order-statistic interval of a median (binomial ranks)."""
    xs = sorted(xs)
    n = len(xs)
    best = (xs[0], xs[-1])
    for k in range(0, n // 2):
        # P(X(k+1) <= median <= X(n-k)) = 1 - 2 * P(Bin(n, 1/2) <= k)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
        if 1 - 2 * tail >= confidence:
            best = (xs[k], xs[n - 1 - k])
        else:
            break
    return statistics.median(xs), best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=9, help="paired rounds for the slowdown")
    ap.add_argument("--work-rounds", type=int, default=60, help="the example's --rounds")
    ap.add_argument("--threads", type=int, default=2, help="the example's --threads")
    ap.add_argument("--tools", default="ffiprof,perf,samply",
                    help="comma-separated subset of ffiprof,perf,samply")
    args = ap.parse_args()
    tools = set(args.tools.split(","))

    os.chdir(ROOT)
    sh(["cargo", "build", "--release", "--quiet", "--example", "sqlite_threads"])
    sh(["cargo", "build", "--release", "--quiet"])
    ffiprof = ROOT / "target/release/ffiprof"
    prog = ROOT / "target/release/examples/sqlite_threads"
    cmd = [str(prog), "--threads", str(args.threads), "--rounds", str(args.work_rounds)]
    c_names, ranges = c_symbols(prog)

    have = {
        "perf": "perf" in tools and shutil.which("perf") is not None,
        "samply": "samply" in tools and shutil.which("samply") is not None,
        "inferno": shutil.which("inferno-collapse-perf") is not None
        and shutil.which("inferno-flamegraph") is not None,
    }
    if have["samply"]:
        probe = subprocess.run(["samply", "record", "--save-only", "-o", os.devnull, "--", "true"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            print("skipping samply: it refused to record (it needs kernel.perf_event_paranoid "
                  "at 1 or lower; ffiprof records at 2):", probe.stderr.strip().splitlines()[:1])
            have["samply"] = False
    for tool, install in [("perf", "apt-get install linux-perf"),
                          ("samply", "cargo install samply"),
                          ("inferno", "cargo install inferno")]:
        if not have[tool] and (tool in tools or tool == "inferno" and "perf" in tools):
            print(f"skipping {tool}: not installed ({install})")
    work = Path(tempfile.mkdtemp(prefix="ffiprof-compare-"))
    rows = []

    # ffiprof record
    out = work / "ffiprof"
    wall, _, own = run_program([str(ffiprof), "record", "--frequency", str(FREQ), "--out",
                                str(out), "--"] + cmd)
    summary = json.loads((out / "summary.json").read_text())
    stacks = list(folded_stacks((out / summary["files"]["folded"]).read_text()))
    c, s = share(stacks, c_names)
    rows.append(("ffiprof record", c, s, summary["post_processing_seconds"], wall - own, du(out),
                 [str(ffiprof), "record", "--frequency", str(FREQ), "--out",
                  str(work / "ffiprof-round"), "--"]))

    # perf record + perf script + inferno
    if have["perf"]:
        data = work / "perf.data"
        wall, _, own = run_program(["perf", "record", "-q", "-F", str(FREQ), "-e", "cpu-clock",
                                    "--call-graph", "dwarf", "-o", str(data), "--"] + cmd)
        t0 = time.monotonic()
        script = work / "perf.script"
        with open(script, "w") as f:
            sh(["perf", "script", "-i", str(data)], stdout=f, stderr=subprocess.DEVNULL)
        t_script = time.monotonic() - t0
        stacks = list(perf_script_stacks(script.read_text(errors="replace")))
        folded = work / "perf.folded"
        post = t_script
        if have["inferno"]:
            t0 = time.monotonic()
            with open(script) as i, open(folded, "w") as o:
                sh(["inferno-collapse-perf"], stdin=i, stdout=o)
            with open(folded) as i, open(work / "perf.svg", "w") as o:
                sh(["inferno-flamegraph"], stdin=i, stdout=o)
            post += time.monotonic() - t0
        c, s = share(stacks, c_names)
        size = data.stat().st_size + (du(work / "perf.svg") if have["inferno"] else 0)
        rows.append(("perf record + perf script + inferno", c, s, post, wall - own + post, size,
                     ["perf", "record", "-q", "-F", str(FREQ), "-e", "cpu-clock", "--call-graph",
                      "dwarf", "-o", str(work / "perf-round.data"), "--"]))

    # samply record (saved, symbolicated at the end with --unstable-presymbolicate)
    if have["samply"]:
        prof = work / "samply.json.gz"
        wall, _, own = run_program(["samply", "record", "--save-only", "--unstable-presymbolicate",
                                    "-r", str(FREQ), "-o", str(prof), "--"] + cmd)
        c, s = samply_share(prof, prog, ranges, c_names)
        size = du(prof) + sum(du(p) for p in work.glob("samply.json*.syms.json*"))
        rows.append(("samply record", c, s, float("nan"), wall - own, size,
                     ["samply", "record", "--save-only", "-r", str(FREQ), "-o",
                      str(work / "samply-round.json.gz"), "--"]))

    # Slowdown at 1 kHz: one long run of the program at a steady rate; in each round, a
    # window with no profiler, a second one (the A/A control) and one per profiler
    # attached with its --pid option, in shuffled order; each window's rate against the
    # same round's plain window.
    attach = {"ffiprof record": lambda pid, i: [str(ffiprof), "record", "--frequency", str(FREQ),
                                               "--pid", str(pid), "--out", str(work / f"att-{i}")]}
    if have["perf"]:
        attach["perf record + perf script + inferno"] = lambda pid, i: [
            "perf", "record", "-q", "-F", str(FREQ), "-e", "cpu-clock", "--call-graph", "dwarf",
            "-p", str(pid), "-o", str(work / f"att-{i}.data")]
    if have["samply"]:
        attach["samply record"] = lambda pid, i: [
            "samply", "record", "--save-only", "-r", str(FREQ), "-p", str(pid), "-o",
            str(work / f"att-{i}.json.gz")]
    ratios = rate_rounds(prog, args, attach)
    print(f"\nSQLite example, {args.threads} threads x {args.work_rounds} rounds, {FREQ} Hz; "
          f"{os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d')}")
    print(f"\n{'profiler':<38} {'C samples':>9} {'with Rust caller':>16} {'post-proc (own)':>15} "
          f"{'after exit':>10} {'output':>10}")
    for name, c, s, own_post, after, size, _ in rows:
        own_text = "" if math.isnan(own_post) else f"{own_post:.3f} s"
        print(f"{name:<38} {c:>9} {s * 100:>15.1f}% {own_text:>15} {after:>8.3f} s "
              f"{size / 1e6:>8.2f} MB")
    print(f"\nrate with each profiler attached / plain, {args.rounds} paired rounds of "
          f"{MEASURED} s windows in one run (median [95% interval of the median]):")
    for name, rs in ratios.items():
        med, (lo, hi) = median_interval(rs)
        print(f"  {name:<38} {(med - 1) * 100:+6.2f}%  [{(lo - 1) * 100:+.2f}%, {(hi - 1) * 100:+.2f}%]")
    shutil.rmtree(work, ignore_errors=True)


WINDOW = 2.5  # seconds a profiler is attached
SETTLE = 0.5  # seconds after attaching before the measured window
MEASURED = 1.8  # seconds measured


def rate_rounds(prog, args, attach):
    """Paired windows in one run of the program; returns each subject's per-round rate
    ratios against the round's plain window."""
    import signal
    import threading
    subjects = ["plain", "plain again (A/A control)"] + list(attach)
    total = args.rounds * len(subjects) * (WINDOW + 1.5) + 10
    p = subprocess.Popen([str(prog), "--threads", str(args.threads), "--seconds",
                          str(int(total)), "--progress-ms", "20"],
                         stdout=subprocess.PIPE, text=True)
    progress = []

    def read():
        for line in p.stdout:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "progress":
                progress.append((int(parts[1]) / 1e9, int(parts[2])))
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(1.0)

    def rate(t0, t1):
        before = [x for x in progress if x[0] <= t0]
        after = [x for x in progress if x[0] >= t1]
        a, b = before[-1], after[0]
        return (b[1] - a[1]) / (b[0] - a[0])

    rng = random.Random(20261123)
    ratios = {name: [] for name in subjects[1:]}
    n = 0
    for _ in range(args.rounds):
        order = subjects[:]
        rng.shuffle(order)
        got = {}
        for name in order:
            t = time.time()
            proc = None
            if name in attach:
                n += 1
                proc = subprocess.Popen(attach[name](p.pid, n), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
            time.sleep(WINDOW)
            if proc:
                proc.send_signal(signal.SIGINT)
                proc.wait()
            time.sleep(0.3)  # the profiler's files are written outside every window
            got[name] = rate(t + SETTLE, t + SETTLE + MEASURED)
        for name in ratios:
            ratios[name].append(got[name] / got["plain"])
    p.terminate()
    p.wait()
    return ratios


def samply_share(prof, prog, ranges, c_names):
    """C-library share of a samply profile: frames resolved through the program's own
    symbol table (nm) by their address relative to the program's image."""
    data = json.loads(gzip.open(prof).read())
    starts = [r[0] for r in ranges]
    import bisect

    def name_at(rva):
        i = bisect.bisect_right(starts, rva) - 1
        if i >= 0 and ranges[i][0] <= rva < ranges[i][1]:
            return ranges[i][2]
        return None

    prog_libs = {i for i, lib in enumerate(data["libs"]) if lib.get("name") == prog.name}
    c = with_rust = 0
    for t in data["threads"]:
        st, ft, fn, rt = t["stackTable"], t["frameTable"], t["funcTable"], t["resourceTable"]
        names = {}

        def frame_name(f):
            if f in names:
                return names[f]
            func = ft["func"][f]
            res = fn["resource"][func]
            lib = rt["lib"][res] if res is not None and res >= 0 else None
            n = None
            if lib in prog_libs:
                addr = ft["address"][f]
                n = name_at(addr if addr is not None else -1)
            names[f] = n
            return n

        weights = t["samples"].get("weight") or [1] * len(t["samples"]["stack"])
        for s, w in zip(t["samples"]["stack"], weights):
            frames = []
            while s is not None:
                frames.append(frame_name(st["frame"][s]))
                s = st["prefix"][s]
            frames.reverse()
            first = next((i for i, f in enumerate(frames) if f in c_names), None)
            if first is None:
                continue
            c += w
            if any(f is not None and is_rust(f) for f in frames[:first]):
                with_rust += w
    return c, (with_rust / c if c else float("nan"))


if __name__ == "__main__":
    main()
