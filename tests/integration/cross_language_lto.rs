//! `ffiprof xlto` on a cargo package built by the test (its C built by the `cc` crate: a
//! cheap function called per item, an expensive one, a C sort calling a Rust comparator
//! through a function pointer, libc's qsort calling it too), and `ffiprof duel`, the
//! whole-program timing, on its own.

use crate::common::{self, ffiprof, run};
use std::path::{Path, PathBuf};

use ffiprof::crossings::{Census, Direction};

const C_SOURCE: &str = r#"
#include <stdint.h>
#include <stdlib.h>

uint64_t demo_cheap(uint64_t x) { return x * 3 + 1; }

/* Stands for a function too large to inline. */
__attribute__((noinline)) uint64_t demo_expensive(uint64_t x) {
    uint64_t s = 0;
    for (uint64_t i = 0; i < 5000; i++) s += (x ^ i) * 7;
    return s;
}

typedef int (*cmp_t)(const void *, const void *);

__attribute__((noinline)) void demo_csort(uint64_t *v, size_t n, cmp_t cmp) {
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && cmp(&v[j - 1], &v[j]) > 0; j--) {
            uint64_t t = v[j]; v[j] = v[j - 1]; v[j - 1] = t;
        }
}

__attribute__((noinline)) void demo_qsort(uint64_t *v, size_t n, cmp_t cmp) {
    qsort(v, n, sizeof *v, cmp);
}
"#;

const RUST_SOURCE: &str = r#"
extern "C" {
    fn demo_cheap(x: u64) -> u64;
    fn demo_expensive(x: u64) -> u64;
    fn demo_csort(v: *mut u64, n: usize, cmp: extern "C" fn(*const u64, *const u64) -> i32);
    fn demo_qsort(v: *mut u64, n: usize, cmp: extern "C" fn(*const u64, *const u64) -> i32);
}

extern "C" fn compare(a: *const u64, b: *const u64) -> i32 {
    unsafe { (*a).cmp(&*b) as i32 }
}

#[inline(never)]
fn cheap_loop(n: u64) -> u64 {
    (0..n).map(|i| unsafe { demo_cheap(std::hint::black_box(i)) }).fold(0, u64::wrapping_add)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (n, m, code) = (arg(1, 60_000), arg(2, 12), arg(3, 0));
    let mut check = cheap_loop(n);
    for i in 0..m {
        check = check.wrapping_add(unsafe { demo_expensive(std::hint::black_box(i)) });
    }
    let mut v: Vec<u64> = (0..200u64).map(|i| (i * 7919) % 1000).collect();
    unsafe { demo_csort(v.as_mut_ptr(), v.len(), compare) };
    let mut w: Vec<u64> = (0..200u64).map(|i| (i * 104729) % 997).collect();
    unsafe { demo_qsort(w.as_mut_ptr(), w.len(), compare) };
    println!("check {check} {} {}", v[0], w[199]);
    std::process::exit(code as i32);
}
"#;

/// The `[[package]]` entries of `names` in ffiprof's own Cargo.lock: the demo package
/// locks the `cc` that ffiprof itself was built with, so cargo has it without asking the
/// registry.
fn locked(names: &[&str]) -> String {
    let lock =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock")).unwrap();
    lock.split("\n[[package]]\n")
        .filter(|entry| names.iter().any(|n| entry.starts_with(&format!("name = \"{n}\"\n"))))
        .map(|entry| format!("[[package]]\n{}\n", entry.trim_end()))
        .collect()
}

/// Writes the demo package under `dir` (its own workspace) with `bins` binaries, each
/// the demo's main; `broken` adds a syntax error.
fn write_package(dir: &Path, bins: &[&str], broken: bool) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let mut manifest = String::from(
        "[package]\nname = \"xlto-demo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
         build = \"build.rs\"\n\n[workspace]\n\n[build-dependencies]\ncc = \"1\"\n",
    );
    for b in bins {
        manifest.push_str(&format!("\n[[bin]]\nname = \"{b}\"\npath = \"src/main.rs\"\n"));
    }
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    let mut lock = String::from(
        "version = 4\n\n[[package]]\nname = \"xlto-demo\"\nversion = \"0.1.0\"\n\
         dependencies = [\n \"cc\",\n]\n\n",
    );
    lock.push_str(&locked(&["cc", "find-msvc-tools", "shlex"]));
    std::fs::write(dir.join("Cargo.lock"), lock).unwrap();
    std::fs::write(
        dir.join("build.rs"),
        "fn main() {\n    cc::Build::new().file(\"demo.c\").compile(\"demo\");\n    \
         println!(\"cargo:rerun-if-changed=demo.c\");\n}\n",
    )
    .unwrap();
    std::fs::write(dir.join("demo.c"), C_SOURCE).unwrap();
    let rust = if broken { format!("{RUST_SOURCE}\nfn broken( {{") } else { RUST_SOURCE.into() };
    std::fs::write(dir.join("src/main.rs"), rust).unwrap();
}

/// The demo package in Cargo's scratch directory for tests (kept between runs, so that
/// its builds are reused as a user's are).
fn package(name: &str, bins: &[&str], broken: bool) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    write_package(&dir, bins, broken);
    dir
}

/// The demo package with its one binary, written once per test run and shared by the
/// tests that run it whole: each builds it as a user's second `xlto` would, reusing what
/// the other built (cargo's lock keeps their builds apart).
fn demo() -> &'static Path {
    static DEMO: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DEMO.get_or_init(|| package("xlto-demo", &["demo"], false))
}

fn xlto(package: &Path, out: &Path, extra: &[&str], program_args: &[&str]) -> common::Ran {
    run(ffiprof()
        .arg("xlto")
        .arg("--manifest-path")
        .arg(package.join("Cargo.toml"))
        .arg("--out")
        .arg(out)
        .args(["--min-rounds", "10", "--budget", "3"])
        .args(extra)
        .arg("--")
        .args(program_args))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn crossing<'a>(
    list: &'a serde_json::Value,
    caller: &str,
    callee: &str,
) -> Option<&'a serde_json::Value> {
    list.as_array().unwrap().iter().find(|c| {
        c["caller"].as_str().is_some_and(|s| s.ends_with(caller)) && c["callee"] == callee
    })
}

#[test]
fn lto_inlines_the_cheap_crossing_and_says_why_the_rest_remain() {
    let test = "lto_inlines_the_cheap_crossing_and_says_why_the_rest_remain";
    if !common::valgrind_here(test) || !common::xlto_here(test) {
        return;
    }
    let pkg = demo();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("xlto");
    let (n, m) = (60_000u64, 12u64);
    let ran = xlto(pkg, &out, &[], &[&n.to_string(), &m.to_string()]).success();
    let x = json(&out.join("xlto.json"));
    let before = Census::load(&out.join("release")).unwrap();
    let after = Census::load(&out.join("xlto")).unwrap();
    assert!(out.join("xlto.md").is_file());

    // The cheap crossing is gone: listed as removed with its calls, absent from the census.
    let cheap = crossing(&x["crossings_removed"], "cheap_loop", "demo_cheap").expect("removed");
    assert_eq!(cheap["calls_before"], n, "{cheap}");
    assert!(after.crossings.iter().all(|c| c.callee != "demo_cheap"), "{:?}", after.crossings);
    // Every removed crossing is gone from the LTO build's census.
    for r in x["crossings_removed"].as_array().unwrap() {
        assert!(
            !after.crossings.iter().any(|c| c.caller == r["caller"] && c.callee == r["callee"]),
            "{r}"
        );
    }
    // What remains is counted as before, each with a reason.
    let expensive = crossing(&x["crossings_remaining"], "main", "demo_expensive").expect("kept");
    assert_eq!(
        (expensive["calls"].as_u64(), expensive["calls_before"].as_u64()),
        (Some(m), Some(m))
    );
    // Read from the machine code: main still calls it directly.
    assert_eq!(expensive["why"]["reason"], "not-inlined", "{expensive}");
    assert!(expensive["why"]["instructions_per_call"].as_f64().unwrap() > 0.0, "{expensive}");
    let remaining: Vec<ffiprof::xlto::Remaining> =
        serde_json::from_value(x["crossings_remaining"].clone()).unwrap();
    let expensive = remaining.iter().find(|r| r.callee == "demo_expensive").unwrap();
    let words = expensive.reason().to_string();
    assert!(words.contains("still calls demo_expensive directly"), "{words}");
    let qsort_callbacks: Vec<_> = after
        .crossings
        .iter()
        .filter(|c| c.direction == Direction::CRuntimeToRust && c.callee.ends_with("compare"))
        .collect();
    assert!(!qsort_callbacks.is_empty(), "{:?}", after.crossings);
    let calls_into = |c: &Census, d: Direction| -> u64 {
        c.crossings.iter().filter(|x| x.direction == d).map(|x| x.calls).sum()
    };
    assert_eq!(
        calls_into(&before, Direction::CRuntimeToRust),
        calls_into(&after, Direction::CRuntimeToRust),
        "libc's qsort calls the comparator as often in both builds"
    );
    // Instruction totals are the censuses' own, exact; the LTO build runs fewer.
    assert_eq!(x["instructions_before"], before.totals.program_instructions);
    assert_eq!(x["instructions_after"], after.totals.program_instructions);
    assert!(after.totals.program_instructions < before.totals.program_instructions);
    // The compiler control (the C by the same clang, no LTO) is counted too, exactly, and
    // still makes the cheap crossing that LTO removed.
    let control = Census::load(&out.join("clang-without-lto")).unwrap();
    assert_eq!(x["compiler_control"]["instructions"], control.totals.program_instructions);
    let cheap_calls: u64 =
        control.crossings.iter().filter(|c| c.callee == "demo_cheap").map(|c| c.calls).sum();
    assert_eq!(cheap_calls, n);
    let (calls_before, calls_after) = (
        x["rust_to_c_calls_before"].as_u64().unwrap(),
        x["rust_to_c_calls_after"].as_u64().unwrap(),
    );
    assert!(calls_before - calls_after >= n, "{calls_before} -> {calls_after}");
    // The timing ran with its control, which never calls identical programs different.
    assert_ne!(x["timing"]["cpu"]["judgement"], serde_json::Value::Null);
    let control = &x["control_ratio"];
    assert!(control["lower"].as_f64().unwrap() <= control["upper"].as_f64().unwrap());
    assert!(x["c_objects"]["bitcode"].as_u64().unwrap() >= 1, "{}", x["c_objects"]);
    let text = ran.stderr;
    assert!(text.contains("cross-language LTO inlined"), "{text}");
    assert!(text.contains("Rust->C calls; the program ran"), "{text}");

    // A second call compiles nothing: both builds are cargo's own, reused.
    xlto(pkg, &out, &[], &[&n.to_string(), &m.to_string()]).success();
    let again = json(&out.join("xlto.json"));
    assert_eq!(again["builds"]["release"]["compiled"], 0, "{}", again["builds"]);
    assert_eq!(again["builds"]["xlto"]["compiled"], 0, "{}", again["builds"]);
    assert_eq!(again["compiler_control"]["build"]["compiled"], 0, "{}", again["compiler_control"]);
    // The same program, counted again: every crossing's calls exactly as before. Its
    // instruction total can differ by a few between two runs of the same binary (CI once
    // read 1 322 654, then 1 322 658): start-up code depends on what the process is started
    // with, such as the memory map the C runtime reads to find the main thread's stack. So
    // the totals are compared within 0.001%.
    assert_eq!(again["rust_to_c_calls_after"], x["rust_to_c_calls_after"]);
    let (first, second) =
        (x["instructions_after"].as_f64().unwrap(), again["instructions_after"].as_f64().unwrap());
    assert!((first - second).abs() <= first * 1e-5, "{first} then {second}");
}

#[test]
fn the_programs_status_passes_through_with_the_files_written() {
    let test = "the_programs_status_passes_through_with_the_files_written";
    if !common::valgrind_here(test) || !common::xlto_here(test) {
        return;
    }
    let pkg = demo();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("xlto");
    xlto(pkg, &out, &["--no-compiler-control"], &["1000", "1", "7"])
        .code(7)
        .stderr_has("exited with status 7");
    let x = json(&out.join("xlto.json"));
    assert_eq!((x["exit_status"].as_i64(), x["xlto_exit_status"].as_i64()), (Some(7), Some(7)));
    assert!(x["compiler_control"].is_null() && !out.join("clang-without-lto").exists());
}

#[test]
fn bad_input_is_the_users_to_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // No package.
    let nowhere = tmp.path().join("nowhere");
    std::fs::create_dir_all(&nowhere).unwrap();
    xlto(&nowhere, &out, &[], &[]).usage_error("Cargo.toml");
    // Several binaries and no --bin; a --bin that is not there.
    let pkg = package("xlto-demo-two", &["one", "two"], false);
    xlto(&pkg, &out, &[], &[]).usage_error("--bin NAME (binaries: one, two)");
    xlto(&pkg, &out, &["--bin", "three"], &[]).usage_error("no binary `three`");
    // No matching clang: the message names what to install.
    run(ffiprof()
        .args(["xlto", "--bin", "one", "--manifest-path"])
        .arg(pkg.join("Cargo.toml"))
        .arg("--out")
        .arg(&out)
        .env("FFIPROF_XLTO_CLANG", "/bin/false"))
    .usage_error("FFIPROF_XLTO_CLANG")
    .stderr_has("apt-get install clang-");
    assert!(!out.exists());
    let test = "bad_input_is_the_users_to_fix";
    if !common::xlto_here(test) || !common::valgrind_here(test) {
        return;
    }
    // The user's build failing: its last lines shown.
    let broken = package("xlto-demo-broken", &["demo"], true);
    xlto(&broken, &out, &[], &[]).usage_error("the build failed").stderr_has("fn broken(");
    assert!(!out.exists());
}

#[test]
fn duel_never_calls_a_program_different_from_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("duel.json");
    let ran = run(ffiprof()
        .args(["duel", "-n", "a", "-n", "b", "sh -c 'exit 0'", "sh -c 'exit 0'"])
        .args(["--min-rounds", "12", "--budget", "2", "--json"])
        .arg(&path))
    .success();
    let d = json(&path);
    for m in ["cpu", "wall"] {
        assert_ne!(d[m]["judgement"], "measurable", "{}: {}", m, d[m]);
        let r = &d[m]["ratio"];
        assert!(r["lower"].as_f64().unwrap() <= r["estimate"].as_f64().unwrap());
    }
    assert!(d["rounds"].as_u64().unwrap() >= 12);
    assert!(ran.stdout.contains("CPU time"), "{}", ran.stdout);
    crate::readme::shown("duel", &ran.stdout);
    // Bad input: names alike, a program that fails, an unwritable --json.
    run(ffiprof().args(["duel", "true", "true"])).usage_error("-n NAME -n NAME");
    run(ffiprof().args(["duel", "true", "false"])).usage_error("exited with status 1");
    run(ffiprof().args([
        "duel",
        "-n",
        "a",
        "-n",
        "b",
        "true",
        "true",
        "--json",
        "/nonexistent/x.json",
    ]))
    .code(2);
}

/// xlto.md and the terminal text of an experiment read from a file (a real `ffiprof
/// xlto` of examples/wrapper, its paths and environment made neutral), against golden
/// files (re-bless with FFIPROF_BLESS=1).
#[test]
fn xlto_md_and_the_terminal_text_match_their_golden_files() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let x = ffiprof::xlto::Xlto::load(&data.join("xlto.json")).unwrap();
    for (name, actual) in [("xlto.md", x.markdown()), ("xlto.txt", x.text())] {
        common::golden(name, &actual);
    }
}
