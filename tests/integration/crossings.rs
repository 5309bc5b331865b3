//! `ffiprof crossings` end to end: a program built here whose crossings are known by
//! construction (a cheap C function on two threads, an expensive one, a C sort and libc's
//! qsort calling a Rust comparator that counts its own calls), the SQLite example's
//! `sqlite3_step` calls, compare of two censuses, and every bad input.

use crate::common::{self, ffiprof, run, run_ok};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use ffiprof::crossings::{Census, Direction, Verdict};

const C_SOURCE: &str = r#"
#include <stdint.h>
#include <stdlib.h>

uint64_t ffiprof_test_cheap(uint64_t x) { return x * 3 + 1; }

uint64_t ffiprof_test_expensive(uint64_t x) {
    uint64_t s = 0;
    for (uint64_t i = 0; i < 5000; i++) s += (x ^ i) * 7;
    return s;
}

typedef int (*cmp_t)(const void *, const void *);

/* An insertion sort of C's own: every comparison is a call from C into Rust. */
void ffiprof_test_csort(uint64_t *v, size_t n, cmp_t cmp) {
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && cmp(&v[j - 1], &v[j]) > 0; j--) {
            uint64_t t = v[j]; v[j] = v[j - 1]; v[j - 1] = t;
        }
}

void ffiprof_test_qsort(uint64_t *v, size_t n, cmp_t cmp) { qsort(v, n, sizeof *v, cmp); }
"#;

const RUST_SOURCE: &str = r#"
use std::sync::atomic::{AtomicU64, Ordering};

extern "C" {
    fn ffiprof_test_cheap(x: u64) -> u64;
    fn ffiprof_test_expensive(x: u64) -> u64;
    fn ffiprof_test_csort(v: *mut u64, n: usize, cmp: extern "C" fn(*const u64, *const u64) -> i32);
    fn ffiprof_test_qsort(v: *mut u64, n: usize, cmp: extern "C" fn(*const u64, *const u64) -> i32);
}

static COMPARISONS: AtomicU64 = AtomicU64::new(0);

extern "C" fn compare(a: *const u64, b: *const u64) -> i32 {
    COMPARISONS.fetch_add(1, Ordering::Relaxed);
    unsafe { (*a).cmp(&*b) as i32 }
}

#[inline(never)]
fn cheap_loop(n: u64) -> u64 {
    (0..n).map(|i| unsafe { ffiprof_test_cheap(i) }).fold(0, u64::wrapping_add)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (n, m, code) = (arg(1, 30_000), arg(2, 40), arg(3, 0));
    let threads: Vec<_> = (0..2).map(|_| std::thread::spawn(move || cheap_loop(n))).collect();
    let mut check = threads.into_iter().map(|t| t.join().unwrap()).fold(0, u64::wrapping_add);
    for i in 0..m {
        check = check.wrapping_add(unsafe { ffiprof_test_expensive(i) });
    }
    let mut v: Vec<u64> = (0..300u64).map(|i| (i * 7919) % 1000).collect();
    unsafe { ffiprof_test_csort(v.as_mut_ptr(), v.len(), compare) };
    let csorted = COMPARISONS.swap(0, Ordering::Relaxed);
    let mut w: Vec<u64> = (0..300u64).map(|i| (i * 104729) % 997).collect();
    unsafe { ffiprof_test_qsort(w.as_mut_ptr(), w.len(), compare) };
    let qsorted = COMPARISONS.load(Ordering::Relaxed);
    println!("check {check} csort-comparisons {csorted} qsort-comparisons {qsorted}");
    std::process::exit(code as i32);
}
"#;

/// The test program, built once.
fn test_program() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| common::build_program("crossings-test-program", C_SOURCE, &[], RUST_SOURCE))
}

/// Runs a census into `dir`; returns its exit status.
fn census(dir: &Path, args: &[&str], program: &Path, program_args: &[&str]) -> i32 {
    let out = ffiprof()
        .args(["crossings", "--out"])
        .arg(dir)
        .args(args)
        .arg("--")
        .arg(program)
        .args(program_args)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("crossings of"), "{stderr}");
    out.status.code().unwrap_or(-1)
}

fn calls_into(c: &Census, callee: &str) -> u64 {
    c.crossings.iter().filter(|x| x.callee == callee).map(|x| x.calls).sum()
}

fn comparisons(program_args: &[&str]) -> (u64, u64) {
    let out = run_ok(Command::new(test_program()).args(program_args));
    let field = |name: &str| -> u64 {
        let words: Vec<&str> = out.split_whitespace().collect();
        let i = words.iter().position(|w| *w == name).unwrap();
        words[i + 1].parse().unwrap()
    };
    (field("csort-comparisons"), field("qsort-comparisons"))
}

#[test]
fn counts_every_crossing_of_a_program_built_to_known_counts() {
    if !common::valgrind_here("counts_every_crossing_of_a_program_built_to_known_counts") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("census");
    let (n, m) = (30_000u64, 40u64);
    let status = census(&dir, &[], test_program(), &[&n.to_string(), &m.to_string()]);
    assert_eq!(status, 0);
    let c = Census::load(&dir).unwrap();
    assert!(dir.join("crossings.md").is_file());
    let one = |callee: &str| {
        let found: Vec<_> = c.crossings.iter().filter(|x| x.callee == callee).collect();
        assert_eq!(found.len(), 1, "{callee}: {found:?}");
        found[0].clone()
    };
    // Two threads, n calls each, from the Rust function that holds the call.
    let cheap = one("ffiprof_test_cheap");
    assert_eq!((cheap.caller.as_str(), cheap.calls), ("main::cheap_loop", 2 * n));
    assert_eq!(cheap.direction, Direction::RustToC);
    assert_eq!(cheap.verdict, Verdict::Chatty);
    assert!(cheap.instructions_per_call < 10.0, "{}", cheap.instructions_per_call);
    let expensive = one("ffiprof_test_expensive");
    assert_eq!((expensive.caller.as_str(), expensive.calls), ("main::main", m));
    assert_eq!(expensive.verdict, Verdict::Fine);
    assert!(expensive.instructions_per_call > 5000.0);
    // Every comparison the comparator counted, as calls from C (csort) and from libc
    // (qsort's merge sort) into Rust.
    let (csorted, qsorted) = comparisons(&[&n.to_string(), &m.to_string()]);
    let from = |d: Direction| -> u64 {
        c.crossings
            .iter()
            .filter(|x| x.callee == "main::compare" && x.direction == d)
            .map(|x| x.calls)
            .sum()
    };
    assert_eq!(from(Direction::CToRust), csorted);
    assert_eq!(from(Direction::CRuntimeToRust), qsorted);
    assert!(c
        .crossings
        .iter()
        .any(|x| x.caller == "ffiprof_test_csort" && x.callee == "main::compare"));
    assert_eq!(calls_into(&c, "ffiprof_test_csort"), 1);
    // The costs were measured, and every crossing of a known kind has one.
    let model = c.cost_model.as_ref().expect("costs measured");
    assert_eq!(model.kinds.len(), 3);
    assert!(c.crossings.iter().all(|x| x.estimated_cost_ns.is_some()));
    assert!(c.native.as_ref().is_some_and(|n| n.cpu_seconds > 0.0));
    // Chatty first.
    assert_eq!(c.crossings[0].verdict, Verdict::Chatty);
    assert!(c.totals.program_instructions > cheap.instructions);
}

#[test]
fn two_censuses_of_one_build_compare_equal_and_twice_the_calls_is_flagged() {
    if !common::valgrind_here(
        "two_censuses_of_one_build_compare_equal_and_twice_the_calls_is_flagged",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, twice) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("twice"));
    let fast = ["--native-runs", "0"];
    assert_eq!(census(&a, &fast, test_program(), &["20000", "10"]), 0);
    assert_eq!(census(&b, &fast, test_program(), &["20000", "10"]), 0);
    assert_eq!(census(&twice, &fast, test_program(), &["40000", "10"]), 0);
    let compare = |old: &Path, new: &Path| {
        ffiprof()
            .arg("compare")
            .arg(old)
            .arg(new)
            .arg("--fail-on-regression")
            .arg("--out")
            .arg(tmp.path().join("cmp"))
            .output()
            .unwrap()
    };
    let same = compare(&a, &b);
    assert_eq!(same.status.code(), Some(0), "{}", String::from_utf8_lossy(&same.stdout));
    let text = String::from_utf8_lossy(&same.stdout);
    assert!(text.contains("No crossing changed"), "{text}");
    let more = compare(&a, &twice);
    assert_eq!(more.status.code(), Some(i32::from(ffiprof::EXIT_REGRESSION)));
    let text = String::from_utf8_lossy(&more.stdout);
    assert!(
        text.contains("main::cheap_loop -> ffiprof_test_cheap") && text.contains("40000 -> 80000"),
        "{text}"
    );
    // The other way round is an improvement, not a regression.
    assert_eq!(compare(&twice, &a).status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("cmp/compare.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["schema_version"], 1);
}

#[test]
fn a_failing_or_killed_program_passes_its_status_and_keeps_its_census() {
    if !common::valgrind_here("a_failing_or_killed_program_passes_its_status_and_keeps_its_census")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fails");
    let fast = ["--native-runs", "0"];
    assert_eq!(census(&dir, &fast, test_program(), &["100", "1", "7"]), 7);
    let c = Census::load(&dir).unwrap();
    assert_eq!((c.exit_status, calls_into(&c, "ffiprof_test_cheap")), (7, 200));
    let killed = tmp.path().join("killed");
    let sh = which("sh");
    assert_eq!(census(&killed, &fast, &sh, &["-c", "kill -TERM $$"]), 128 + 15);
    assert_eq!(Census::load(&killed).unwrap().exit_status, 128 + 15);
}

fn which(program: &str) -> PathBuf {
    ffiprof::record::resolve_program(std::ffi::OsStr::new(program)).unwrap()
}

#[test]
fn counts_the_sqlite_examples_steps() {
    if !common::valgrind_here("counts_the_sqlite_examples_steps") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sqlite");
    let args = ["--threads", "2", "--rounds", "2"];
    let printed = run_ok(Command::new(common::example("sqlite_threads")).args(args));
    let steps: u64 = printed
        .lines()
        .find_map(|l| l.strip_prefix("sqlite3_step calls: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no step count in {printed}"));
    assert_eq!(census(&dir, &["--native-runs", "0"], &common::example("sqlite_threads"), &args), 0);
    let c = Census::load(&dir).unwrap();
    assert_eq!(calls_into(&c, "sqlite3_step"), steps);
    let step = c.crossings.iter().find(|x| x.callee == "sqlite3_step").unwrap();
    assert!(common::in_crate(&step.caller, "rusqlite"), "{}", step.caller);
    assert_eq!(step.direction, Direction::RustToC);
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("never");
    let cmd = |args: &[&str]| run(ffiprof().args(["crossings", "--out"]).arg(&dir).args(args));
    // valgrind missing: a PATH without it.
    let empty = tmp.path().join("bin");
    std::fs::create_dir_all(&empty).unwrap();
    run(ffiprof()
        .env("PATH", &empty)
        .args(["crossings", "--out"])
        .arg(&dir)
        .arg("--")
        .arg(which("true")))
    .usage_error("apt-get install valgrind");
    assert!(!dir.exists());
    if !common::valgrind_here("bad_input_exits_2_and_writes_nothing") {
        return;
    }
    cmd(&["--", "./no-such-program-here"]).usage_error("cannot start");
    cmd(&["--", "no-such-program-on-path"]).usage_error("not found on PATH");
    cmd(&[]).usage_error("give the program");
    cmd(&["--chatty-calls", "0", "--", "true"]).usage_error("--chatty-calls");
    cmd(&["--costs", "tests/data/report.json", "--", "true"]).usage_error("plusone/int");
    cmd(&["--costs", "/no/such/report.json", "--", "true"]).usage_error("cannot read");
    assert!(!dir.exists());
    // An unwritable destination: a path under a file.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    run(ffiprof().args(["crossings", "--out"]).arg(file.join("sub")).arg("--").arg(which("true")))
        .usage_error("cannot write");
    // An earlier census survives a failed one.
    let kept = tmp.path().join("kept");
    assert_eq!(census(&kept, &["--native-runs", "0"], &which("true"), &[]), 0);
    let before = std::fs::read(kept.join("crossings.json")).unwrap();
    // A census given with something else (here a file): said plainly.
    run(ffiprof().arg("compare").arg(&kept).arg(&file)).usage_error("is not a crossings census");
    run(ffiprof().args(["crossings", "--out"]).arg(&kept).args(["--", "./no-such-program-here"]))
        .usage_error("cannot start");
    assert_eq!(std::fs::read(kept.join("crossings.json")).unwrap(), before);
    // A corrupt census to compare is the user's to fix.
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("crossings.json"), "{not json").unwrap();
    run(ffiprof().arg("compare").arg(&bad).arg(&kept)).usage_error("not a crossings census");
}

#[test]
fn from_files_that_are_not_callgrind_output_exit_2_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let not_callgrind = tmp.path().join("passwd");
    std::fs::write(&not_callgrind, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    let empty = tmp.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    for file in [&not_callgrind, &empty] {
        let out = tmp.path().join("census");
        run(ffiprof().args(["crossings", "--from"]).arg(file).arg("--out").arg(&out))
            .usage_error("not callgrind output");
        assert!(!out.exists(), "nothing written for {}", file.display());
    }
    let names: Vec<_> =
        std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "only the two inputs: {names:?}");
}

#[test]
fn a_callgrind_file_cut_short_exits_2_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // The head of a file whose `summary:` states more than the costs that follow it.
    let cut = tmp.path().join("callgrind.out.1");
    std::fs::write(
        &cut,
        "# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\npid: 1\ncmd: ./p\n\
         part: 1\n\npositions: line\nevents: Ir\nsummary: 5000\n\nob=(1) /bin/p\n\
         fl=(1) main.rs\nfn=(1) main\n10 40\n",
    )
    .unwrap();
    let out = tmp.path().join("census");
    run(ffiprof().args(["crossings", "--from"]).arg(&cut).arg("--out").arg(&out))
        .usage_error("cut short or inconsistent");
    assert!(!out.exists());
}
