//! The per-call loop of `plusone` really crosses into C on every iteration: under
//! callgrind, the C function is called exactly n times from the Rust loop, and the
//! instructions per iteration include the call. Needs valgrind (.ci/run installs it);
//! without it the test says it skipped, except under CI, where it fails.

use crate::common;
use std::path::Path;
use std::process::Command;

struct Profile {
    /// Total instructions executed.
    instructions: u64,
    /// Calls into `ffiprof_plusone`, from any caller.
    plusone_calls: u64,
    /// Distinct callers of `ffiprof_plusone`.
    callers: Vec<String>,
}

/// Reads a callgrind output file (format: valgrind's callgrind "Callgrind Format"). Names
/// may be compressed as `(id) name` on first use and `(id)` later.
fn parse(text: &str) -> Profile {
    let mut names: std::collections::HashMap<String, String> = Default::default();
    let mut resolve = |spec: &str| -> String {
        let spec = spec.trim();
        if let Some(rest) = spec.strip_prefix('(') {
            let (id, name) = rest.split_once(')').unwrap();
            let name = name.trim();
            if name.is_empty() {
                names.get(id).cloned().unwrap_or_default()
            } else {
                names.insert(id.to_owned(), name.to_owned());
                name.to_owned()
            }
        } else {
            spec.to_owned()
        }
    };
    let (mut instructions, mut plusone_calls) = (0, 0);
    let mut callers = Vec::new();
    let (mut current_fn, mut call_target) = (String::new(), String::new());
    for line in text.lines() {
        if let Some(spec) = line.strip_prefix("fn=") {
            current_fn = resolve(spec);
        } else if let Some(spec) = line.strip_prefix("cfn=") {
            call_target = resolve(spec);
        } else if let Some(rest) = line.strip_prefix("calls=") {
            let count: u64 = rest.split_whitespace().next().unwrap().parse().unwrap();
            if call_target == "ffiprof_plusone" {
                plusone_calls += count;
                if !callers.contains(&current_fn) {
                    callers.push(current_fn.clone());
                }
            }
        } else if let Some(total) = line.strip_prefix("summary:").or(line.strip_prefix("totals:")) {
            instructions = total.split_whitespace().next().unwrap().parse().unwrap();
        }
    }
    Profile { instructions, plusone_calls, callers }
}

fn callgrind(dir: &Path, n: u64) -> Profile {
    let out = dir.join(format!("callgrind.{n}.out"));
    let status = Command::new("valgrind")
        .args(["--tool=callgrind", "--dump-instr=no", "--compress-strings=yes"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(env!("CARGO_BIN_EXE_ffiprof"))
        .args(["exec", "plusone", "per-call", "--n", &n.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("valgrind runs");
    assert!(status.success(), "valgrind --tool=callgrind failed: {status}");
    parse(&std::fs::read_to_string(out).unwrap())
}

#[test]
fn plusone_per_call_calls_c_every_iteration() {
    let test = "plusone_per_call_calls_c_every_iteration";
    if !common::valgrind_here(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (n1, n2) = (100_000u64, 200_000u64);
    let small = callgrind(dir.path(), n1);
    let large = callgrind(dir.path(), n2);
    assert_eq!(small.plusone_calls, n1, "one C call per iteration");
    assert_eq!(large.plusone_calls, n2, "one C call per iteration");
    assert_eq!(large.callers.len(), 1, "one caller: the Rust loop, got {:?}", large.callers);
    assert!(
        large.callers[0].contains("ffiprof"),
        "the caller is ffiprof's runner: {:?}",
        large.callers
    );
    // Instructions per iteration, from the difference so that start-up cancels out: at
    // least the call, the callee's two instructions (lea, ret) and a loop branch.
    let per_iteration = (large.instructions - small.instructions) as f64 / (n2 - n1) as f64;
    assert!(per_iteration >= 4.0, "{per_iteration} instructions per iteration cannot hold a call");
    assert!(per_iteration < 20.0, "{per_iteration} instructions per iteration: not a tight loop");
    eprintln!("plusone per-call: {per_iteration:.2} instructions per iteration under callgrind");
}

#[test]
fn instructions_per_call_match_an_independent_count() {
    let test = "instructions_per_call_match_an_independent_count";
    if !common::valgrind_here(test) {
        return;
    }
    // Independently: whole-process totals of `exec` at two lengths, differenced. Two runs'
    // start-up can differ by a few instructions (see cross_language_lto), 100 000 calls apart:
    // the per-call figure, a whole number, is rounded to take that out.
    let dir = tempfile::tempdir().unwrap();
    let (n1, n2) = (100_000u64, 200_000u64);
    let known = ((callgrind(dir.path(), n2).instructions - callgrind(dir.path(), n1).instructions)
        as f64
        / (n2 - n1) as f64)
        .round();
    // ffiprof's counter: every variant in one process, dumps around each batch.
    let plusone = ffiprof::workload::find("plusone").unwrap();
    let exe = Path::new(env!("CARGO_BIN_EXE_ffiprof"));
    let boundary = Some(ffiprof::crossings::boundary_calls as ffiprof::measure::CrossingCounter);
    let counts = ffiprof::measure::count_instructions(exe, &[plusone], boundary).unwrap();
    let names: Vec<&str> = counts.iter().map(|c| c.2.as_str()).collect();
    let mut expected = common::plusone_variants();
    expected.insert(1, "batched (control)");
    assert_eq!(names, expected);
    let per_call = &counts[2].3;
    assert_eq!(per_call.per_call, known, "per-call: counted vs known");
    assert_eq!(per_call.per_call.fract(), 0.0, "a whole number of instructions per call");
    let (base, control) = (counts[0].3.per_call, counts[1].3.per_call);
    assert_eq!(base, control, "the control runs the baseline's code");
    assert_eq!(per_call.overhead_per_call, Some(per_call.per_call - base));
    // Beside the instructions, the crossings: one call of C's plusone per item.
    let crossed = counts[2].4.expect("crossings counted");
    assert_eq!((crossed.rust_to_c, crossed.c_to_rust), (1.0, 0.0));
    assert_eq!(counts[0].4.map(|c| c.total()), Some(0.0), "batched: one call per batch");
    eprintln!("plusone: batched {base}, per-call {} instructions per call", per_call.per_call);
}
