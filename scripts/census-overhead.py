#!/usr/bin/env python3
"""What `ffiprof crossings` costs beyond callgrind itself, in paired rounds.

Each round runs, in a shuffled order, the census of a program and a bare
`valgrind --tool=callgrind` of the same program, and takes the ratio of their wall
times; then, on the callgrind file of that round, ffiprof's post-processing
(`ffiprof crossings --from FILE`, its own `post_processing_seconds`) and
`callgrind_annotate --tree=caller` (wall time), and their ratio. The medians of the
ratios over rounds are printed with the distribution-free 95% interval of a median
(order statistics), as ffiprof's paired engine reports its own.

    scripts/census-overhead.py [--rounds N] -- PROGRAM [ARGS...]

The census reads its cost per call from a run's report when --costs is given (else it
measures them beside callgrind, on the other core, as by default).
"""

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time


def median_interval(values, confidence=0.95):
    """Median and the order-statistic interval that covers it with `confidence`."""
    v = sorted(values)
    n = len(v)
    med = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    if n < 6:
        return med, v[0], v[-1]
    # Normal approximation to the binomial(n, 1/2) for the ranks.
    z = 1.959963984540054 if confidence == 0.95 else 2.5758293035489
    half = z * math.sqrt(n) / 2
    lo = max(0, int(math.floor(n / 2 - half)))
    hi = min(n - 1, int(math.ceil(n / 2 + half)) - 1)
    return med, v[lo], v[hi]


def timed(cmd, **kw):
    start = time.perf_counter()
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--ffiprof", default=os.environ.get("FFIPROF", "target/release/ffiprof"))
    ap.add_argument("--costs", help="a run's report.json or directory, for the cost per call")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("give the program after --")
    for tool in ("valgrind", "callgrind_annotate"):
        if shutil.which(tool) is None:
            sys.exit(f"needs {tool} (apt-get install valgrind)")
    census_args = ["--costs", a.costs] if a.costs else []
    work = tempfile.mkdtemp(prefix="census-overhead-")
    whole, post = [], []
    try:
        for r in range(a.rounds):
            out_file = os.path.join(work, f"bare.{r}.out")
            runs = {
                "census": [a.ffiprof, "crossings", "--out", os.path.join(work, f"census-{r}"),
                           *census_args, "--", *cmd],
                "bare": ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", *cmd],
            }
            order = list(runs)
            random.shuffle(order)
            t = {name: timed(runs[name]) for name in order}
            whole.append(t["census"] / t["bare"])
            # Post-processing of the same file, in shuffled order.
            jobs = {
                "ffiprof": [a.ffiprof, "crossings", "--out", os.path.join(work, f"from-{r}"),
                            *census_args, "--from", out_file],
                "annotate": ["callgrind_annotate", "--tree=caller", out_file],
            }
            order = list(jobs)
            random.shuffle(order)
            spent = {}
            for name in order:
                wall = timed(jobs[name])
                if name == "ffiprof":
                    with open(os.path.join(work, f"from-{r}", "crossings.json")) as f:
                        wall = json.load(f)["post_processing_seconds"]
                spent[name] = wall
            post.append(spent["annotate"] / spent["ffiprof"])
            print(f"round {r + 1}: census/bare {whole[-1]:.3f} ({t['census']:.2f} s / {t['bare']:.2f} s), "
                  f"annotate/ffiprof post-processing {post[-1]:.0f}x "
                  f"({spent['annotate'] * 1e3:.0f} ms / {spent['ffiprof'] * 1e3:.1f} ms)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    m, lo, hi = median_interval(whole)
    print(f"census wall time / bare callgrind: median {m:.3f} [{lo:.3f}, {hi:.3f}] over {len(whole)} rounds")
    m, lo, hi = median_interval(post)
    print(f"callgrind_annotate --tree=caller / ffiprof post-processing: median {m:.0f}x [{lo:.0f}x, {hi:.0f}x]")


if __name__ == "__main__":
    main()
