//! `ffiprof record` end to end: a program built here (Rust calling C compiled without
//! frame pointers, on several threads, one started after recording began), the SQLite
//! example, `--pid` on a running child, and every bad input.

use crate::common::{self, ffiprof, run_ok, usage_error};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use ffiprof::record::RecordSummary;
use ffiprof::stacks::Language;

const C_SOURCE: &str = r#"
#include <stdint.h>

__attribute__((noinline)) uint64_t ffiprof_test_spin(uint64_t x, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        x ^= x >> 29;
    }
    return x;
}

/* Keeps a stack frame of its own without a frame pointer: a frame-pointer walk from the
   spin loop would skip this function's caller. */
__attribute__((noinline)) uint64_t ffiprof_test_work(uint64_t x, uint64_t n) {
    volatile uint64_t pad[8];
    pad[x & 7] = x;
    return ffiprof_test_spin(x, n) + pad[x & 7];
}
"#;

const RUST_SOURCE: &str = r#"
use std::time::Duration;

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn ffiprof_test_work(x: u64, n: u64) -> u64;
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// This thread's CPU time, ms (CLOCK_THREAD_CPUTIME_ID): each thread does the same work
/// however busy the machine is.
fn thread_cpu_ms() -> u64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    unsafe { clock_gettime(3, &mut ts) };
    ts.sec as u64 * 1000 + ts.nsec as u64 / 1_000_000
}

#[inline(never)]
fn busy_rust_caller(ms: u64) -> u64 {
    let end = thread_cpu_ms() + ms;
    let mut x = 1;
    while thread_cpu_ms() < end {
        x = unsafe { ffiprof_test_work(x, 20_000) };
    }
    x
}

fn spawn(name: &str, ms: u64) -> std::thread::JoinHandle<u64> {
    std::thread::Builder::new().name(name.into()).spawn(move || busy_rust_caller(ms)).unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ms: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(600);
    let code: i32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let a = spawn("early-a", ms);
    let b = spawn("early-b", ms);
    std::thread::sleep(Duration::from_millis(ms / 3));
    let late = spawn("late", ms / 2);
    let x = a.join().unwrap() ^ b.join().unwrap() ^ late.join().unwrap();
    println!("{x}");
    std::process::exit(code);
}
"#;

/// The test program, built once: C with -fomit-frame-pointer, Rust calling it.
fn test_program() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        common::build_program(
            "record-test-program",
            C_SOURCE,
            &["-fomit-frame-pointer"],
            RUST_SOURCE,
        )
    })
}

fn summary(dir: &Path) -> RecordSummary {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

fn firefox(dir: &Path, s: &RecordSummary) -> serde_json::Value {
    let mut json = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(dir.join(&s.files.firefox)).unwrap())
        .read_to_string(&mut json)
        .unwrap();
    serde_json::from_str(&json).unwrap()
}

fn thread<'a>(s: &'a RecordSummary, name: &str) -> &'a ffiprof::record::ThreadSummary {
    s.threads.iter().find(|t| t.name == name).unwrap_or_else(|| {
        panic!("no thread {name}: {:?}", s.threads.iter().map(|t| &t.name).collect::<Vec<_>>())
    })
}

#[test]
fn records_every_thread_through_frameless_c_and_passes_the_exit_status() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("rec");
    let status = ffiprof()
        .args(["record", "--frequency", "1000", "--out"])
        .arg(&dir)
        .arg("--")
        .arg(test_program())
        .args(["600", "3"])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3), "the program's exit status is ffiprof's");
    let s = summary(&dir);
    assert_eq!(s.exit_code, Some(3));
    for name in ["early-a", "early-b", "late"] {
        let t = thread(&s, name);
        assert!(t.health.boundary.samples >= 50, "{name}: {} samples", t.health.boundary.samples);
        assert!(t.health.c_samples > 0, "{name} has samples in C");
        assert!(
            t.health.c_with_rust_caller >= 0.99,
            "{name}: {} of C samples have a Rust caller",
            t.health.c_with_rust_caller
        );
        assert!(
            t.health.boundary.reaches_root >= 0.99,
            "{name}: {}",
            t.health.boundary.reaches_root
        );
        assert_eq!(t.health.truncated_samples, 0);
        assert!(t.files.is_some(), "{name} is busy and has its own flamegraph");
    }
    // The hottest C function is the spin loop, called from the Rust caller.
    let hot = &s.hottest_c_functions[0];
    assert_eq!(hot.function, "ffiprof_test_spin");
    assert_eq!(hot.language, Language::C);
    assert!(hot.rust_callers[0].function.ends_with("busy_rust_caller"), "{:?}", hot.rust_callers);
    let folded = std::fs::read_to_string(dir.join(&s.files.folded)).unwrap();
    assert!(folded.lines().any(|l| l.starts_with("late (tid ")
        && l.contains("busy_rust_caller;ffiprof_test_work;ffiprof_test_spin")));
    for f in [&s.files.flamegraph, &s.files.pprof] {
        assert!(dir.join(f).metadata().unwrap().len() > 0);
    }
    // The Firefox profile: one track per thread, one category per language.
    let fx = firefox(&dir, &s);
    let threads = fx["threads"].as_array().unwrap();
    assert_eq!(threads.len(), s.threads.len());
    let categories: Vec<&str> = fx["meta"]["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(categories.len(), Language::ALL.len() + 1, "{categories:?}"); // + the crate's "Other"
    for l in Language::ALL {
        assert!(categories.contains(&l.name()), "{categories:?}");
    }
    let in_tracks: u64 = threads.iter().map(|t| t["samples"]["length"].as_u64().unwrap()).sum();
    assert_eq!(in_tracks, s.overall.boundary.samples, "every sample is on its thread's track");
    let names: Vec<&str> = threads.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for name in ["early-a", "early-b", "late"] {
        assert!(names.contains(&name), "{names:?}");
    }
}

#[test]
fn records_the_sqlite_example_under_its_rust_callers() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("rec");
    let status = ffiprof()
        .args(["record", "--out"])
        .arg(&dir)
        .arg("--")
        .arg(common::example("sqlite_threads"))
        .args(["--threads", "3", "--rounds", "40"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let s = summary(&dir);
    for t in ["sqlite-0", "sqlite-1", "sqlite-2"] {
        assert!(thread(&s, t).health.boundary.samples > 0);
    }
    assert!(s.overall.c_samples > 100, "{} samples in SQLite", s.overall.c_samples);
    assert!(s.overall.c_with_rust_caller >= 0.95, "{}", s.overall.c_with_rust_caller);
    let folded = std::fs::read_to_string(dir.join(&s.files.folded)).unwrap();
    assert!(folded.lines().any(|l| l.contains("rusqlite::") && l.contains(";sqlite3_step;")));
    assert!(s
        .crossings
        .iter()
        .any(|c| common::in_crate(&c.rust, "rusqlite") && c.c_entry.starts_with("sqlite3_")));
}

/// C code whose callers have no unwind information (an assembly loop that uses `rbp` as
/// data and calls back into C), and the C library's `qsort`, which calls back into Rust.
const FOREIGN_C_SOURCE: &str = r#"
#include <stdint.h>

__attribute__((noinline)) uint64_t ffiprof_test_spin(uint64_t x, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        x ^= x >> 29;
    }
    return x;
}

/* uint64_t ffiprof_asm_loop(uint64_t x, uint64_t rounds, uint64_t (*f)(uint64_t, uint64_t)):
   hand-written, without CFI directives, so no unwind information covers it; it keeps a
   constant in rbp, as zstd's Huffman decoder keeps data there. */
__asm__(
    ".text\n"
    ".globl ffiprof_asm_loop\n"
    ".type ffiprof_asm_loop, @function\n"
    "ffiprof_asm_loop:\n"
    "    push %rbp\n"
    "    push %rbx\n"
    "    push %r12\n"
    "    push %r13\n"
    "    sub $8, %rsp\n"
    "    mov %rdi, %rbx\n"
    "    mov %rsi, %r12\n"
    "    mov %rdx, %r13\n"
    "    movabs $0x9e3779b97f4a7c15, %rbp\n"
    "1:  mov $20000, %ecx\n"
    "2:  imul %rbp, %rbx\n"
    "    add $1, %rbx\n"
    "    dec %ecx\n"
    "    jnz 2b\n"
    "    mov %rbx, %rdi\n"
    "    mov $20000, %esi\n"
    "    call *%r13\n"
    "    mov %rax, %rbx\n"
    "    dec %r12\n"
    "    jnz 1b\n"
    "    mov %rbx, %rax\n"
    "    add $8, %rsp\n"
    "    pop %r13\n"
    "    pop %r12\n"
    "    pop %rbx\n"
    "    pop %rbp\n"
    "    ret\n"
    ".size ffiprof_asm_loop, .-ffiprof_asm_loop\n");
"#;

const FOREIGN_RUST_SOURCE: &str = r#"
#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn ffiprof_test_spin(x: u64, n: u64) -> u64;
    fn ffiprof_asm_loop(x: u64, rounds: u64, f: unsafe extern "C" fn(u64, u64) -> u64) -> u64;
    fn qsort(
        base: *mut u64,
        n: usize,
        size: usize,
        cmp: extern "C" fn(*const u64, *const u64) -> i32,
    );
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    fn getrusage(who: i32, usage: *mut [i64; 18]) -> i32;
}

fn thread_cpu_ms() -> u64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    unsafe { clock_gettime(3, &mut ts) };
    ts.sec as u64 * 1000 + ts.nsec as u64 / 1_000_000
}

/// The process's user + system CPU time, nanoseconds (struct rusage begins with two
/// timevals).
fn process_cpu_ns() -> u64 {
    let mut r = [0i64; 18];
    unsafe { getrusage(0, &mut r) };
    ((r[0] + r[2]) * 1_000_000_000 + (r[1] + r[3]) * 1000) as u64
}

#[inline(never)]
fn through_assembly(ms: u64) -> u64 {
    let end = thread_cpu_ms() + ms;
    let mut x = 1;
    while thread_cpu_ms() < end {
        x = unsafe { ffiprof_asm_loop(x, 20, ffiprof_test_spin) };
    }
    x
}

/// The comparator qsort calls: Rust under C, with work of its own.
#[inline(never)]
extern "C" fn rust_comparator(a: *const u64, b: *const u64) -> i32 {
    let (mut a, mut b) = unsafe { (*a, *b) };
    for _ in 0..200 {
        a = std::hint::black_box(a.rotate_left(7) ^ 0x9e37);
        b = std::hint::black_box(b.rotate_left(7) ^ 0x9e37);
    }
    a.cmp(&b) as i32
}

#[inline(never)]
fn sorting_in_c(ms: u64) -> u64 {
    let end = thread_cpu_ms() + ms;
    let mut v: Vec<u64> = Vec::new();
    while thread_cpu_ms() < end {
        v = (0..2000u64).map(|i| i.wrapping_mul(0x9e3779b97f4a7c15)).collect();
        unsafe { qsort(v.as_mut_ptr(), v.len(), 8, rust_comparator) };
    }
    v[0]
}

fn main() {
    let ms: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(600);
    let asm = std::thread::Builder::new().name("asm".into()).spawn(move || through_assembly(ms));
    let sort = std::thread::Builder::new().name("qsort".into()).spawn(move || sorting_in_c(ms));
    let x = asm.unwrap().join().unwrap() ^ sort.unwrap().join().unwrap();
    println!("{x} cpu_ns={}", process_cpu_ns());
}
"#;

/// The test program of C without unwind information and callbacks, built once.
fn foreign_program() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        common::build_program("record-foreign-program", FOREIGN_C_SOURCE, &[], FOREIGN_RUST_SOURCE)
    })
}

#[test]
fn recovers_callers_through_assembly_without_unwind_info() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("rec");
    let ran = common::run(
        ffiprof()
            .args(["record", "--frequency", "1000", "--out"])
            .arg(&dir)
            .arg("--")
            .arg(foreign_program())
            .arg("600"),
    )
    .success()
    .stderr_has("where C calls back into Rust")
    .stderr_has("samples with callers found where no unwind information covers the code");
    let s = summary(&dir);
    let t = thread(&s, "asm");
    assert!(t.health.c_samples >= 50, "{} samples in C", t.health.c_samples);
    assert!(
        t.health.c_with_rust_caller >= 0.99,
        "{} of C samples have a Rust caller",
        t.health.c_with_rust_caller
    );
    // The assembly's caller was found by a scan (rbp holds data), and counted.
    assert!(t.health.recovered >= 0.9, "{} of samples recovered", t.health.recovered);
    assert!(t.health.recovered_by_scan >= t.health.recovered_samples);
    let folded = std::fs::read_to_string(dir.join(&s.files.folded)).unwrap();
    assert!(
        folded.lines().any(|l| l.contains("through_assembly;ffiprof_asm_loop;ffiprof_test_spin")),
        "{folded}"
    );
    assert!(folded.lines().any(|l| l.contains("through_assembly;ffiprof_asm_loop ")));
    // Where unwind information covers every frame, nothing is recovered.
    let sorting = thread(&s, "qsort");
    assert_eq!(sorting.health.recovered_samples, 0);

    // qsort calling the Rust comparator is a crossing from C into Rust, with its share.
    let back = s
        .callbacks
        .iter()
        .find(|c| c.rust.ends_with("rust_comparator"))
        .unwrap_or_else(|| panic!("no callback into the comparator: {:?}", s.callbacks));
    assert!(back.c_entry.contains("qsort"), "{back:?}");
    assert!(back.samples >= 10 && back.share > 0.0 && back.share < 0.5, "{back:?}");
    let row = ran.stderr.lines().find(|l| l.contains("rust_comparator")).unwrap_or_else(|| {
        panic!("the terminal's callback table lacks the comparator:\n{}", ran.stderr)
    });
    assert!(row.contains("qsort"), "{row}");
    // The assembly calling back into C is C to C: no callback.
    assert!(s.callbacks.iter().all(|c| !c.rust.contains("ffiprof")), "{:?}", s.callbacks);

    // The Firefox profile marks the comparator's frames as Rust called back from C.
    let fx = firefox(&dir, &s);
    let rust = fx["meta"]["categories"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["name"] == Language::Rust.name())
        .unwrap();
    let back_sub = fx["meta"]["categories"][rust]["subcategories"]
        .as_array()
        .unwrap()
        .iter()
        .position(|n| n == "called back from C")
        .expect("Rust has a subcategory for callbacks");
    let track = fx["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "qsort")
        .expect("the qsort thread's track");
    let frames = &track["frameTable"];
    let marked = (0..frames["length"].as_u64().unwrap() as usize).any(|i| {
        frames["category"][i].as_u64() == Some(rust as u64)
            && frames["subcategory"][i].as_u64() == Some(back_sub as u64)
    });
    assert!(marked, "no frame of the qsort thread is marked as called back from C");

    // The pprof profile weighs each sample by its own CPU time: its total is the two busy
    // threads' CPU time, as the program measured it (user + system), not the window (which
    // is about half of it where both threads get a core).
    let used: f64 = ran
        .stdout
        .split("cpu_ns=")
        .nth(1)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("the program's CPU time: {}", ran.stdout));
    let pprof = ffiprof::decode_pprof(&std::fs::read(dir.join(&s.files.pprof)).unwrap()).unwrap();
    let in_pprof = pprof.cpu_nanos.expect("a cpu sample type") as f64;
    assert!(
        (in_pprof / used - 1.0).abs() <= 0.05,
        "pprof's CPU total {in_pprof} ns against the program's {used} ns"
    );
}

#[test]
fn attaches_to_a_running_process_and_follows_its_new_threads() {
    let mut child =
        Command::new(test_program()).args(["2400", "5"]).stdout(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("rec");
    let status = ffiprof()
        .args(["record", "--duration", "1", "--pid", &child.id().to_string(), "--out"])
        .arg(&dir)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let s = summary(&dir);
    assert_eq!(s.pid, ffiprof::Pid(child.id()));
    // early-a and early-b ran all along; late started (at 0.8 s) while recording.
    for name in ["early-a", "early-b", "late"] {
        let t = thread(&s, name);
        assert!(t.health.boundary.samples > 0);
        assert!(t.health.c_with_rust_caller >= 0.99, "{name}: {}", t.health.c_with_rust_caller);
    }
    assert!(s.notes.iter().any(|n| n.contains("--duration")));
    // The process was left alone: it ends on its own with its own status.
    assert_eq!(child.wait().unwrap().code(), Some(5));
}

#[test]
fn bad_inputs_exit_2_and_leave_earlier_results_alone() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("rec");
    let d = dir.to_str().unwrap();
    // An earlier recording in the destination.
    let status = ffiprof().args(["record", "--out", d, "--", "/bin/true"]).status().unwrap();
    assert_eq!(status.code(), Some(0));
    let before = std::fs::read(dir.join("summary.json")).unwrap();

    usage_error(&["record", "--out", d, "--", "/nonexistent/program"], "check the path");
    usage_error(&["record", "--out", d, "--", "ffiprof-no-such-program"], "not found on PATH");
    usage_error(&["record", "--out", d, "--pid", "4999999"], "no process 4999999");
    usage_error(&["record", "--out", d], "no program given");
    usage_error(
        &["record", "--out", d, "--stack-bytes", "100", "--", "/bin/true"],
        "--stack-bytes",
    );
    usage_error(&["record", "--out", d, "--frequency", "0", "--", "/bin/true"], "--frequency");
    usage_error(&["record", "--out", d, "--duration=-1", "--", "/bin/true"], "--duration");
    let file = out.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    usage_error(&["record", "--out", d, "--", file.to_str().unwrap()], "not an executable");
    let script = out.path().join("not-a-program");
    std::fs::write(&script, "no interpreter line\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    usage_error(&["record", "--out", d, "--", script.to_str().unwrap()], "Exec format error");
    usage_error(&["record", "--out", file.to_str().unwrap(), "--", "/bin/true"], "cannot write");
    usage_error(
        &["record", "--out", "/proc/ffiprof-cannot-write-here", "--", "/bin/true"],
        "cannot write",
    );

    assert_eq!(std::fs::read(dir.join("summary.json")).unwrap(), before, "earlier results intact");
    let stray: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(stray.is_empty(), "nothing half-written: {stray:?}");
}

/// A process of another user may not be observed: perf_event_open refuses, and the
/// message says why and what to do. Needs root (to run ffiprof as another user) and
/// `setpriv`; skipped elsewhere.
#[test]
fn a_process_that_may_not_be_observed_exits_2() {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root
        || !common::tool_available(
            "not_traceable",
            "setpriv",
            "--version",
            "apt-get install util-linux",
        )
    {
        if root {
            return; // setpriv is missing: tool_available said so
        }
        common::skip("a_process_that_may_not_be_observed_exits_2", "needs root");
        return;
    }
    let mut target = Command::new("sleep").arg("5").spawn().unwrap();
    let ffiprof = std::path::Path::new(env!("CARGO_BIN_EXE_ffiprof"));
    let (out, copies) = common::open_to_every_user(&[ffiprof]);
    let dir = out.path().join("rec");
    let result = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "--"])
        .arg(&copies[0])
        .args(["record", "--duration", "0.2", "--pid", &target.id().to_string(), "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let _ = target.kill();
    let _ = target.wait();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("may not be observed"), "{stderr}");
    assert!(!dir.exists());
}

#[test]
fn ctrl_c_writes_the_outputs_and_leaves_the_program_running() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("rec");
    let mut recorder = ffiprof()
        .args(["record", "--out"])
        .arg(&dir)
        .arg("--")
        .arg(test_program())
        .args(["1500", "4"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    // What the terminal's Ctrl-C sends to ffiprof (here to ffiprof alone).
    run_ok(Command::new("kill").args(["-INT", &recorder.id().to_string()]));
    let status = recorder.wait().unwrap();
    let mut stderr = String::new();
    recorder.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    // ffiprof waited for the program, which ran to its end, and passed its status on.
    assert_eq!(status.code(), Some(4), "{stderr}");
    let s = summary(&dir);
    assert_eq!(s.exit_code, None, "recording stopped before the program ended");
    assert!(s.notes.iter().any(|n| n.contains("Ctrl-C")), "{:?}", s.notes);
    assert!(s.window_seconds < 1.4, "{}", s.window_seconds);
    assert!(thread(&s, "early-a").health.boundary.samples > 0);
}

const CPP_SOURCE: &str = r#"
#include <algorithm>
#include <cstdint>
#include <vector>

namespace ffiprof_test {
template <typename T>
class Mixer {
  public:
    explicit Mixer(T seed) : state_(seed) {}
    __attribute__((noinline)) T mix(T rounds) {
        for (T i = 0; i < rounds; i++) {
            state_ = state_ * 6364136223846793005ULL + 1442695040888963407ULL;
            state_ ^= state_ >> 29;
        }
        return state_;
    }
  private:
    T state_;
};
}  // namespace ffiprof_test

extern "C" uint64_t ffiprof_cpp_mix(uint64_t seed, uint64_t rounds) {
    ffiprof_test::Mixer<uint64_t> mixer(seed);
    return mixer.mix(rounds);
}

// C++ sorting with a comparator written in Rust: C++ calls back into Rust.
extern "C" uint64_t ffiprof_cpp_sort(uint64_t n, int (*less)(uint64_t, uint64_t)) {
    std::vector<uint64_t> v(n);
    for (uint64_t i = 0; i < n; i++) v[i] = i * 0x9e3779b97f4a7c15ULL;
    std::sort(v.begin(), v.end(), [less](uint64_t a, uint64_t b) { return less(a, b) != 0; });
    return v[0];
}
"#;

const CPP_RUST_SOURCE: &str = r#"
#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn ffiprof_cpp_mix(seed: u64, rounds: u64) -> u64;
    fn ffiprof_cpp_sort(n: u64, less: extern "C" fn(u64, u64) -> i32) -> u64;
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

fn thread_cpu_ms() -> u64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    unsafe { clock_gettime(3, &mut ts) };
    ts.sec as u64 * 1000 + ts.nsec as u64 / 1_000_000
}

#[inline(never)]
extern "C" fn rust_less(a: u64, b: u64) -> i32 {
    let (mut a, mut b) = (a, b);
    for _ in 0..100 {
        a = std::hint::black_box(a.rotate_left(5) ^ 0x51);
        b = std::hint::black_box(b.rotate_left(5) ^ 0x51);
    }
    (a < b) as i32
}

#[inline(never)]
fn calls_cpp(ms: u64) -> u64 {
    let end = thread_cpu_ms() + ms;
    let mut x = 1;
    while thread_cpu_ms() < end {
        x ^= unsafe { ffiprof_cpp_mix(x, 3_000_000) };
        x ^= unsafe { ffiprof_cpp_sort(3000, rust_less) };
    }
    x
}

fn main() {
    let ms: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(600);
    println!("{}", calls_cpp(ms));
}
"#;

#[test]
fn cpp_frames_are_their_own_language_on_the_c_side() {
    let test = "record::cpp_frames_are_their_own_language_on_the_c_side";
    if !common::tool_available(test, "g++", "--version", "apt-get install g++") {
        return;
    }
    let program = common::build_linked(
        "record-cpp-program",
        common::Foreign { compiler: "g++", file: "lib.cpp", source: CPP_SOURCE, libs: &["stdc++"] },
        &[],
        CPP_RUST_SOURCE,
    );
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("rec");
    common::run(
        ffiprof()
            .args(["record", "--frequency", "1000", "--out"])
            .arg(&dir)
            .arg("--")
            .arg(&program)
            .arg("600"),
    )
    .success()
    .stderr_has("where C calls back into Rust");
    let s = summary(&dir);
    // The template's method is C++, found under its Rust caller.
    let mix = s
        .hottest_c_functions
        .iter()
        .find(|f| f.function.contains("Mixer") && f.function.contains("mix"))
        .unwrap_or_else(|| panic!("no C++ mixer among {:?}", s.hottest_c_functions));
    assert_eq!(mix.language, Language::Cpp, "{mix:?}");
    assert!(mix.rust_callers[0].function.ends_with("calls_cpp"), "{mix:?}");
    assert!(s.overall.c_samples >= 100, "{} samples in C or C++", s.overall.c_samples);
    assert!(s.overall.c_with_rust_caller >= 0.99, "{}", s.overall.c_with_rust_caller);
    let crossing = s.crossings.iter().find(|c| c.c_entry == "ffiprof_cpp_mix");
    assert!(crossing.is_some_and(|c| c.rust.ends_with("calls_cpp")), "{:?}", s.crossings);
    // std::sort calling the Rust comparator is C++ calling back into Rust.
    let back = s.callbacks.iter().find(|c| c.rust.ends_with("rust_less"));
    assert!(
        back.is_some_and(|c| c.c_entry == "ffiprof_cpp_sort" && c.samples > 0),
        "{:?}",
        s.callbacks
    );
    // Its own category in the Firefox profile, its own colour in the flamegraph's legend.
    let fx = firefox(&dir, &s);
    let names: Vec<&str> = fx["meta"]["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"c++"), "{names:?}");
    let svg = std::fs::read_to_string(dir.join(&s.files.flamegraph)).unwrap();
    assert!(svg.contains("c++ = purple"), "the legend names C++");
}
