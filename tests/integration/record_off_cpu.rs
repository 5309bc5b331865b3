//! `ffiprof record --off-cpu` end to end: a program built here whose threads block in
//! known ways and measure it themselves (a libc sleep called from Rust, `read` inside a C
//! function on a pipe another thread fills slowly, a Rust `Condvar` wait, `std`'s sleep),
//! recorded with stacks, and as `nobody` (switch records alone). The switch-heavy
//! program, which needs the machine to itself, is the `sampling` crate's.

use crate::common::{self, ffiprof, run};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ffiprof::record::RecordSummary;

const C_SOURCE: &str = r#"
#include <stdint.h>
#include <unistd.h>

/* Reads the pipe to its end, one byte at a time: it blocks in read until the writer
   sends each byte. */
__attribute__((noinline)) uint64_t ffiprof_read_all(int fd) {
    char buf[1];
    uint64_t total = 0;
    while (read(fd, buf, 1) == 1) total++;
    return total;
}
"#;

const RUST_SOURCE: &str = r#"
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn nanosleep(req: *const Timespec, rem: *mut Timespec) -> i32;
    fn pipe(fds: *mut i32) -> i32;
    fn write(fd: i32, buf: *const u8, n: usize) -> isize;
    fn close(fd: i32) -> i32;
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    fn ffiprof_read_all(fd: i32) -> u64;
}

fn thread_cpu_ns() -> u64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    unsafe { clock_gettime(3, &mut ts) }; // CLOCK_THREAD_CPUTIME_ID
    ts.sec as u64 * 1_000_000_000 + ts.nsec as u64
}

#[inline(never)]
fn sleeper_waits(n: u32, ms: i64) -> Duration {
    let mut blocked = Duration::ZERO;
    for _ in 0..n {
        let t = Instant::now();
        let req = Timespec { sec: 0, nsec: ms * 1_000_000 };
        unsafe { nanosleep(&req, std::ptr::null_mut()) };
        blocked += t.elapsed();
    }
    blocked
}

#[inline(never)]
fn reader_waits(fd: i32) -> Duration {
    let t = Instant::now();
    std::hint::black_box(unsafe { ffiprof_read_all(fd) });
    t.elapsed()
}

#[inline(never)]
fn writer_feeds(fd: i32, n: u32, ms: u64) -> Duration {
    let mut blocked = Duration::ZERO;
    for _ in 0..n {
        let t = Instant::now();
        std::thread::sleep(Duration::from_millis(ms));
        blocked += t.elapsed();
        unsafe { write(fd, b"x".as_ptr(), 1) };
    }
    unsafe { close(fd) };
    blocked
}

#[inline(never)]
fn condvar_waits(pair: &(Mutex<u32>, Condvar), n: u32) -> Duration {
    let (lock, cv) = pair;
    let mut blocked = Duration::ZERO;
    let mut seen = 0;
    let mut g = lock.lock().unwrap();
    while seen < n {
        let t = Instant::now();
        while *g == seen {
            g = cv.wait(g).unwrap();
        }
        blocked += t.elapsed();
        seen = *g;
    }
    blocked
}

#[inline(never)]
fn notifier_sleeps(pair: &(Mutex<u32>, Condvar), n: u32, ms: u64) -> Duration {
    let mut blocked = Duration::ZERO;
    for _ in 0..n {
        let t = Instant::now();
        std::thread::sleep(Duration::from_millis(ms));
        blocked += t.elapsed();
        *pair.0.lock().unwrap() += 1;
        pair.1.notify_one();
    }
    blocked
}

/// On CPU for `ms` of its own CPU time, blocking nowhere.
#[inline(never)]
fn busy_spins(ms: u64) -> Duration {
    let start = thread_cpu_ns();
    let mut x = 1u64;
    while thread_cpu_ns() - start < ms * 1_000_000 {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    Duration::ZERO
}

type Work = Box<dyn FnOnce() -> Duration + Send>;

fn main() {
    let args: Vec<u32> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let (n, ms) = (args.first().copied().unwrap_or(50), args.get(1).copied().unwrap_or(10));
    let mut fds = [0i32; 2];
    assert_eq!(unsafe { pipe(fds.as_mut_ptr()) }, 0);
    let (rd, wr) = (fds[0], fds[1]);
    let pair: &'static (Mutex<u32>, Condvar) =
        Box::leak(Box::new((Mutex::new(0), Condvar::new())));
    let spawn = |name: &str, f: Work| {
        let f = move || (f(), thread_cpu_ns());
        std::thread::Builder::new().name(name.into()).spawn(f).unwrap()
    };
    let threads = vec![
        ("sleeper", spawn("sleeper", Box::new(move || sleeper_waits(n, ms as i64)))),
        ("reader", spawn("reader", Box::new(move || reader_waits(rd)))),
        ("writer", spawn("writer", Box::new(move || writer_feeds(wr, n, ms as u64)))),
        ("waiter", spawn("waiter", Box::new(move || condvar_waits(pair, n)))),
        ("notifier", spawn("notifier", Box::new(move || notifier_sleeps(pair, n, ms as u64)))),
        ("busy", spawn("busy", Box::new(move || busy_spins(100)))),
    ];
    for (name, t) in threads {
        let (blocked, cpu) = t.join().unwrap();
        println!("{name} {} {cpu}", blocked.as_nanos());
    }
}
"#;

/// The program whose threads block in known ways, built once.
fn waiting_program() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| common::build_program("record-off-cpu-program", C_SOURCE, &[], RUST_SOURCE))
}

pub fn summary(dir: &Path) -> RecordSummary {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// What each thread measured itself: (name, seconds blocked, seconds of CPU).
fn measured(stdout: &str) -> Vec<(String, f64, f64)> {
    stdout
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let ns = |s: &str| s.parse::<f64>().unwrap() / 1e9;
            (f[0].to_owned(), ns(f[1]), ns(f[2]))
        })
        .collect()
}

fn time_of<'a>(s: &'a RecordSummary, name: &str) -> &'a ffiprof::record::ThreadTime {
    let t = s.threads.iter().find(|t| t.name == name).unwrap_or_else(|| {
        panic!("no thread {name}: {:?}", s.threads.iter().map(|t| &t.name).collect::<Vec<_>>())
    });
    t.time.as_ref().unwrap_or_else(|| panic!("{name} has no time on and off CPU"))
}

/// Each thread's time off CPU is within 5% of its own measurement (the busy thread's,
/// which blocks nowhere, under 5 ms), and its time on CPU within 5% (or 3 ms) of its CPU
/// clock. A thread's measurement also holds the time it was preempted between its waits
/// (on a busy machine, a test beside), which ffiprof tells apart as runnable: it is added
/// back before comparing.
fn assert_times_match(s: &RecordSummary, stdout: &str) {
    let threads = measured(stdout);
    assert_eq!(threads.len(), 6, "{stdout}");
    for (name, blocked, cpu) in threads {
        let t = time_of(s, &name);
        let (off, slack) = match name.as_str() {
            "busy" => (t.off_cpu_seconds, 0.005),
            _ => (t.off_cpu_seconds + t.runnable_seconds, 0.05 * blocked),
        };
        assert!((off - blocked).abs() <= slack, "{name}: {off} s off CPU, {blocked} s");
        let on = t.on_cpu_seconds;
        assert!((on - cpu).abs() <= (0.05 * cpu).max(0.003), "{name}: {on} s on CPU, {cpu} s");
    }
}

/// Where perf allows the context-switch sample (root, CAP_PERFMON, or
/// perf_event_paranoid 1 or lower); elsewhere the test is skipped, but not under CI.
pub fn stacks_allowed(test: &str) -> bool {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .unwrap_or(2);
    let allowed = root || paranoid <= 1;
    if !allowed {
        common::skip(test, "needs root or perf_event_paranoid 1 or lower");
    }
    allowed
}

pub fn record(program: &Path, out: &Path, args: &[&str]) -> common::Ran {
    run(ffiprof().args(["record", "--off-cpu", "--out"]).arg(out).arg("--").arg(program).args(args))
}

#[test]
fn each_threads_wait_is_timed_and_placed_under_its_rust_caller_and_c_function() {
    let test = "each_threads_wait_is_timed_and_placed_under_its_rust_caller_and_c_function";
    if !stacks_allowed(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rec");
    let ran = record(waiting_program(), &out, &["40", "10"]).success();
    let s = summary(&out);
    assert_times_match(&s, &ran.stdout);
    let r = s.off_cpu_recording.as_ref().expect("off_cpu_recording");
    assert_eq!(r.mode, "stacks");
    assert_eq!(r.records_lost, 0);
    assert!(r.with_stack_seconds >= 0.99 * r.off_cpu_seconds, "{r:?}");

    // Each wait under its Rust caller and the C function below it, timed as measured.
    let waits = s.off_cpu.as_ref().expect("the table of waits");
    let place = |caller: &str| {
        waits.iter().find(|w| w.rust_caller.as_deref().is_some_and(|c| c.ends_with(caller)))
    };
    let blocked =
        |name: &str| measured(&ran.stdout).into_iter().find(|m| m.0 == name).map(|m| m.1).unwrap();
    let check = |caller: &str, thread: &str, c_function: &dyn Fn(&str) -> bool| {
        let w = place(caller).unwrap_or_else(|| panic!("no wait under {caller}: {waits:#?}"));
        let c = w.c_function.as_deref().unwrap_or_default();
        assert!(c_function(c), "{caller}: C function {c}");
        let expected = blocked(thread) - time_of(&s, thread).runnable_seconds;
        assert!((w.seconds - expected).abs() <= 0.05 * expected, "{w:?} against {expected} s");
        assert_eq!(w.threads, 1, "{w:?}");
        w
    };
    let sleep = check("sleeper_waits", "sleeper", &|c| c.contains("nanosleep"));
    assert_eq!(sleep.through_std, None, "libc's sleep called from the program's own Rust");
    let read = check("reader_waits", "reader", &|c| c == "ffiprof_read_all");
    assert!(read.function.contains("read"), "left user space in {}", read.function);
    let condvar = check("condvar_waits", "waiter", &|c| !c.is_empty());
    assert!(condvar.through_std.as_deref().is_some_and(|f| f.contains("std::")), "{condvar:?}");
    for (caller, thread) in [("writer_feeds", "writer"), ("notifier_sleeps", "notifier")] {
        let w = check(caller, thread, &|c| c.contains("nanosleep"));
        assert!(w.through_std.as_deref().is_some_and(|f| f.contains("sleep")), "{w:?}");
    }

    // The off-CPU files: flamegraph and folded stacks in microseconds, pprof in
    // nanoseconds, the Firefox profile's off-CPU tracks weighted in microseconds.
    let files = r.files.as_ref().expect("off-CPU files");
    assert!(out.join(&files.flamegraph).is_file());
    let folded = std::fs::read_to_string(out.join(&files.folded)).unwrap();
    assert!(folded.lines().any(|l| l.contains("reader_waits;ffiprof_read_all;")), "{folded}");
    let pprof = ffiprof::decode_pprof(&std::fs::read(out.join(&files.pprof)).unwrap()).unwrap();
    let off_ns = pprof.sums.iter().find(|(t, _)| t == "off_cpu").map(|s| s.1).unwrap();
    let with_stack = r.with_stack_seconds * 1e9;
    assert!((off_ns as f64 - with_stack).abs() <= 0.01 * with_stack, "{off_ns} ns");
    let mut json = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(out.join(&s.files.firefox)).unwrap())
        .read_to_string(&mut json)
        .unwrap();
    let fx: serde_json::Value = serde_json::from_str(&json).unwrap();
    let track = fx["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "sleeper off CPU (µs blocked)")
        .expect("the sleeper's off-CPU track");
    let weights: u64 =
        track["samples"]["weight"].as_array().unwrap().iter().map(|w| w.as_u64().unwrap()).sum();
    let sleeper_us = time_of(&s, "sleeper").off_cpu_with_stack_seconds * 1e6;
    assert!((weights as f64 - sleeper_us).abs() <= 0.01 * sleeper_us, "{weights} µs");
    assert!(ran.stderr.contains("where threads wait"), "{}", ran.stderr);

    // Where each thread's time went: the busy thread's is its time on CPU (and any wait for
    // a CPU), the reader's mostly blocked in read under its Rust caller.
    let wall = std::fs::read_to_string(out.join(&files.wall_folded)).unwrap();
    let micros = |thread: &str, within: &str| -> f64 {
        wall.lines()
            .filter(|l| l.starts_with(&format!("{thread} (tid ")) && l.contains(within))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    let busy = time_of(&s, "busy");
    let expected = (busy.on_cpu_seconds + busy.runnable_seconds) * 1e6;
    let got = micros("busy", "busy_spins");
    assert!((got - expected).abs() <= 0.1 * expected + 2000.0, "busy: {got} µs, {expected}");
    let reader = micros("reader", "reader_waits;ffiprof_read_all;");
    let blocked = time_of(&s, "reader").off_cpu_with_stack_seconds * 1e6;
    let reader_blocked = micros("reader", "[blocked]");
    assert!(
        reader >= 0.95 * blocked && (reader_blocked - blocked).abs() <= 100.0,
        "{reader} µs under reader_waits, {reader_blocked} µs blocked, {blocked} µs with stacks"
    );
}

/// As `nobody` at perf_event_paranoid 2, perf refuses the context-switch sample: the note
/// says what to change, each thread's time off CPU comes from switch records alone, and
/// the CPU profile is recorded as ever. Needs root (to run ffiprof as another user),
/// `setpriv`, and paranoid 2; skipped elsewhere.
#[test]
fn as_nobody_off_cpu_time_comes_from_switch_records_alone() {
    let test = "as_nobody_off_cpu_time_comes_from_switch_records_alone";
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .is_ok_and(|p| p.trim() == "2");
    if !root
        || !paranoid
        || !common::tool_available(test, "setpriv", "--version", "apt-get install util-linux")
    {
        if root && paranoid {
            return; // setpriv is missing: tool_available said so
        }
        common::skip(test, "needs root and perf_event_paranoid 2");
        return;
    }
    let ffiprof = Path::new(env!("CARGO_BIN_EXE_ffiprof"));
    let (tmp, copies) = common::open_to_every_user(&[ffiprof, waiting_program()]);
    let (ffiprof_copy, program) = (&copies[0], &copies[1]);
    let out = tmp.path().join("rec");
    let ran = run(Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "--"])
        .arg(ffiprof_copy)
        .args(["record", "--off-cpu", "--out"])
        .arg(&out)
        .arg("--")
        .arg(program)
        .args(["30", "10"]))
    .success();
    let s = summary(&out);
    assert!(
        s.notes.iter().any(|n| n.contains("kernel.perf_event_paranoid is 2")
            && n.contains("CAP_PERFMON")
            && n.contains("without stacks")),
        "{:?}",
        s.notes
    );
    let r = s.off_cpu_recording.as_ref().unwrap();
    assert_eq!(
        (r.mode.as_str(), r.off_cpu_samples, r.with_stack_seconds),
        ("switch-records", 0, 0.0)
    );
    assert!(r.files.is_none() && s.off_cpu.is_none());
    assert!(!out.join("flamegraphs/off-cpu.svg").exists());
    assert_times_match(&s, &ran.stdout);
    // The CPU profile as ever: the busy thread's samples under its Rust function, and
    // every file.
    let folded = std::fs::read_to_string(out.join(&s.files.folded)).unwrap();
    let busy: u64 = folded
        .lines()
        .filter(|l| l.contains("busy_spins"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(busy >= 50, "100 ms on CPU at 1000 Hz: {busy} samples\n{folded}");
    for f in [&s.files.flamegraph, &s.files.pprof, &s.files.firefox] {
        assert!(out.join(f).is_file(), "{}", f.display());
    }
    assert!(ran.stderr.contains("switch records alone"), "{}", ran.stderr);
}
