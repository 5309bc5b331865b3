#!/usr/bin/env python3
"""A long `ffiprof record --pid` of the SQLite example: does the recorder's memory stay
flat, are samples lost, are the files written?

    scripts/record-soak.py [--minutes 10] [--threads 2] [--frequency 1000]
                           [--ffiprof PATH] [--example PATH]

Builds nothing: run `cargo build --release --workspace --examples` first (or give the
two binaries, copies of a build, so that a soak runs while the tree is rebuilt). The example runs
on its own (`--seconds`, a steady rate); after 5 s ffiprof attaches to it for the given
minutes. The recorder's resident memory is read from /proc every second. Printed: its
RSS while recording at 1 minute, the largest after that and at the end (flat means
within 10% of the 1-minute figure), the largest while it writes the files, the samples
taken and lost, the post-processing time, and the example's rate (rows/s) in the 5 s before attaching against its rate while attached.
Exits 1 if memory grew more than 10% after the first minute, samples were lost, or no
summary was written.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FFIPROF = os.path.join(ROOT, "target", "release", "ffiprof")
EXAMPLE = os.path.join(ROOT, "target", "release", "examples", "sqlite_threads")


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frequency", type=int, default=1000)
    ap.add_argument("--ffiprof", default=FFIPROF)
    ap.add_argument("--example", default=EXAMPLE)
    a = ap.parse_args()
    for path in (a.ffiprof, a.example):
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: cargo build --release --workspace --examples")
    seconds = a.minutes * 60
    example = subprocess.Popen(
        [a.example, "--threads", str(a.threads), "--seconds", str(int(seconds + 30)),
         "--progress-ms", "1000"],
        stdout=subprocess.PIPE, text=True)
    progress = []  # (unix seconds, rows)

    def read_progress():
        for line in example.stdout:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "progress":
                progress.append((int(parts[1]) / 1e9, int(parts[2])))

    threading.Thread(target=read_progress, daemon=True).start()
    time.sleep(5)
    out = tempfile.mkdtemp(prefix="ffiprof-soak-")
    attached = time.time()
    rec = subprocess.Popen(
        [a.ffiprof, "record", "--pid", str(example.pid), "--duration", str(seconds),
         "--frequency", str(a.frequency), "--out", os.path.join(out, "rec")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples = []  # (seconds since attaching, RSS kB)
    while rec.poll() is None:
        kb = rss_kb(rec.pid)
        if kb is not None:
            samples.append((time.time() - attached, kb))
        time.sleep(1)
    ended = time.time()
    stderr = rec.stderr.read()
    example.wait()

    def rate(t0, t1):
        inside = [p for p in progress if t0 <= p[0] <= t1]
        if len(inside) < 2:
            return float("nan")
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    summary_path = os.path.join(out, "rec", "summary.json")
    if rec.returncode != 0 or not os.path.exists(summary_path):
        print(stderr)
        sys.exit(f"record failed (status {rec.returncode}); no summary in {out}")
    with open(summary_path) as f:
        s = json.load(f)
    # While recording (up to the duration), then while writing the files.
    recording = [(t, kb) for t, kb in samples if t <= seconds] or samples[:1]
    at_minute = next((kb for t, kb in recording if t >= 60), recording[-1][1])
    later = max((kb for t, kb in recording if t >= 60), default=at_minute)
    final = recording[-1][1]
    writing = max((kb for t, kb in samples if t > seconds), default=final)
    growth = later / at_minute - 1
    lost = s["overall"]["lost"]
    print(f"recorded {seconds:.0f} s of {a.threads} threads at {a.frequency} Hz into {out}/rec")
    print(f"recorder RSS while recording: {at_minute / 1024:.1f} MB at 1 min, at most "
          f"{later / 1024:.1f} MB after, {final / 1024:.1f} MB at the end ({growth * 100:+.1f}%); "
          f"{writing / 1024:.1f} MB at most while writing the files")
    peak = s.get("recorder_peak_memory_bytes")
    print(f"samples {s['overall']['samples']}, lost {lost}; "
          f"post-processing {s['post_processing_seconds']:.3f} s; "
          f"ffiprof's own peak (summary.json) "
          + (f"{peak / 1e6:.1f} MB" if peak else "not known"))
    before, during = rate(attached - 5, attached), rate(attached + 1, ended)
    print(f"example's rate: {before:.0f} rows/s before attaching, {during:.0f} rows/s attached")
    ok = growth <= 0.10 and lost == 0
    print("flat, nothing lost" if ok else "NOT flat or samples lost")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
