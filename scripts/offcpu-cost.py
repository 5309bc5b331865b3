#!/usr/bin/env python3
"""What `ffiprof record --off-cpu` costs on a switch-heavy program, and whether it loses
records: the `switch_pingpong` example (two threads passing a byte back and forth, each
spinning a while on CPU after each byte) recorded N times. Each run prints the switches
off a CPU per second of the window, the records lost, and ffiprof's CPU per switch off a
CPU and per CPU sample, as `summary.json` (`off_cpu_recording`) gives them; then the
ranges over the runs.

    scripts/offcpu-cost.py [--runs N] [--rounds R] [--spin MICROSECONDS]

Needs what the context-switch sample needs: root, CAP_PERFMON, or
kernel.perf_event_paranoid at 1 or lower. Run it on an otherwise idle machine: a
recorder that waits for a CPU while the rings fill loses records.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build():
    """Builds ffiprof and the example in release; returns their paths."""
    for args in (["-p", "ffiprof"], ["-p", "ffiprof-examples", "--example", "switch_pingpong"]):
        subprocess.run(["cargo", "build", "--release", "-q", *args], cwd=ROOT, check=True)
    release = os.path.join(ROOT, "target", "release")
    return os.path.join(release, "ffiprof"), os.path.join(release, "examples", "switch_pingpong")


def record(ffiprof, program, rounds, spin):
    """One recording; returns its off_cpu_recording, CPU samples and window."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rec")
        subprocess.run(
            [ffiprof, "record", "--off-cpu", "--out", out, "--", program, str(rounds), str(spin)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with open(os.path.join(out, "summary.json")) as f:
            s = json.load(f)
    r = s["off_cpu_recording"]
    if r["mode"] != "stacks":
        sys.exit("no context-switch samples: " + "; ".join(s["notes"]))
    return r, s["overall"]["samples"], s["window_seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=20000)
    parser.add_argument("--spin", type=int, default=40, help="microseconds on CPU per byte")
    a = parser.parse_args()
    ffiprof, program = build()
    rows = []
    for i in range(a.runs):
        r, samples, window = record(ffiprof, program, a.rounds, a.spin)
        row = (
            r["switches_out"] / window,
            r["records_lost"],
            r["recorder_cpu_per_off_cpu_event_us"],
            r["recorder_cpu_per_cpu_sample_us"],
        )
        rows.append(row)
        print(
            f"run {i + 1}: {row[0]:.0f} switches off a CPU per second, {row[1]} records lost, "
            f"{row[2]:.2f} us of ffiprof's CPU per switch, {row[3]:.2f} us per CPU sample "
            f"({samples} CPU samples)"
        )
    col = lambda k: [r[k] for r in rows]
    print(
        f"{a.runs} runs: {min(col(0)):.0f}-{max(col(0)):.0f} switches/s, records lost "
        f"{min(col(1))}-{max(col(1))}, per switch {min(col(2)):.2f}-{max(col(2)):.2f} us, "
        f"per CPU sample {min(col(3)):.2f}-{max(col(3)):.2f} us"
    )


if __name__ == "__main__":
    main()
