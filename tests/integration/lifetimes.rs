//! `ffiprof lifetimes` on a program whose memory errors are known by construction: C
//! reading a Rust buffer Rust dropped (7 times), Rust reading a C buffer C freed (5), C
//! writing one byte past a Rust buffer (3), C reading through a pointer into a `Vec` that
//! Rust grew (4); and the same calls used correctly, which must give nothing. Apart
//! (glibc aborts on it bare), C freeing a block twice (2). Built as a user builds it: with debug information, and without.

use crate::common::{self, ffiprof, run, Foreign};
use std::path::{Path, PathBuf};
use std::process::Command;

use ffiprof::language::Language;
use ffiprof::lifetimes::{Access, ErrorKind, LifetimeCensus, LifetimeError};
use ffiprof::memory::Family;

const C_SOURCE: &str = r#"
#include <stdlib.h>
#include <string.h>
static const unsigned char *held;
volatile unsigned long sink;
volatile int done;
void c_hold(const unsigned char *p) { held = p; done = 1; }
unsigned long c_read_held(void) {
    unsigned long v;
    memcpy(&v, held, 8);
    sink = v;
    done = 1;
    return v;
}
void c_fill(unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)i;
    done = 1;
}
unsigned char *c_make(size_t n) {
    unsigned char *p = malloc(n);
    memset(p, 7, n);
    done = 1;
    return p;
}
void c_release(unsigned char *p) { free(p); done = 1; }
void c_double_free(void) {
    char *volatile p = malloc(24);
    free(p);
    free(p);
    done = 1;
}
"#;

const RUST_SOURCE: &str = r#"
use std::hint::black_box;
extern "C" {
    fn c_hold(p: *const u8);
    fn c_read_held() -> u64;
    fn c_fill(p: *mut u8, n: usize);
    fn c_make(n: usize) -> *mut u8;
    fn c_release(p: *mut u8);
    fn c_double_free();
}

#[inline(never)]
fn c_reads_after_rust_drop() -> u64 {
    let v = vec![1u8; 64];
    unsafe { c_hold(v.as_ptr()) };
    drop(v);
    black_box(unsafe { c_read_held() })
}

#[inline(never)]
fn rust_reads_after_c_free() -> u8 {
    unsafe {
        let p = c_make(32);
        let s = std::slice::from_raw_parts(p, 32);
        c_release(p);
        black_box(s[3])
    }
}

#[inline(never)]
fn c_writes_past_rust_buffer() {
    let mut v: Vec<u8> = Vec::with_capacity(16);
    unsafe { c_fill(v.as_mut_ptr(), 17) };
    unsafe { v.set_len(16) };
    black_box(&v);
}

#[inline(never)]
fn c_reads_moved_vec() -> u64 {
    let mut v = vec![2u8; 16];
    unsafe { c_hold(v.as_ptr()) };
    v.extend_from_slice(&[3u8; 100]);
    let r = unsafe { c_read_held() };
    black_box(&v);
    r
}

#[inline(never)]
fn correct_uses() -> u64 {
    let mut v = vec![1u8; 64];
    unsafe { c_hold(v.as_ptr()) };
    let mut r = unsafe { c_read_held() };
    drop(v);
    let mut w: Vec<u8> = Vec::with_capacity(16);
    unsafe { c_fill(w.as_mut_ptr(), 16) };
    unsafe { w.set_len(16) };
    unsafe {
        let p = c_make(32);
        r += std::slice::from_raw_parts(p, 32)[3] as u64;
        c_release(p);
    }
    black_box(&w);
    r
}

fn main() {
    // One byte past a 17-byte buffer: inside a guarded block's alignment slack.
    if std::env::args().nth(1).as_deref() == Some("slack") {
        for _ in 0..black_box(2) {
            let mut v: Vec<u8> = Vec::with_capacity(17);
            unsafe { c_fill(v.as_mut_ptr(), 18) };
            unsafe { v.set_len(17) };
            black_box(&v);
        }
        return;
    }
    // A double free aborts under glibc: asked for alone.
    if std::env::args().nth(1).as_deref() == Some("double-free") {
        for _ in 0..black_box(2) { unsafe { c_double_free() }; }
        return;
    }
    let mut t = 0u64;
    for _ in 0..black_box(7) { t += c_reads_after_rust_drop(); }
    for _ in 0..black_box(5) { t += rust_reads_after_c_free() as u64; }
    for _ in 0..black_box(3) { c_writes_past_rust_buffer(); }
    for _ in 0..black_box(4) { t += c_reads_moved_vec(); }
    for _ in 0..black_box(10) { t += correct_uses(); }
    println!("done {}", t > 0);
    std::process::exit(black_box(5));
}
"#;

fn planted(rust_flags: &[&str], name: &str) -> PathBuf {
    common::build_linked_with(
        name,
        Foreign { compiler: "gcc", file: "lib.c", source: C_SOURCE, libs: &[] },
        &[],
        RUST_SOURCE,
        rust_flags,
    )
}

fn census(program: &Path, out: &Path, extra: &[&str]) -> (LifetimeCensus, common::Ran) {
    census_of(program, &[], out, extra)
}

fn census_of(
    program: &Path,
    args: &[&str],
    out: &Path,
    extra: &[&str],
) -> (LifetimeCensus, common::Ran) {
    let ran = run(ffiprof()
        .args(["lifetimes", "--out"])
        .arg(out)
        .args(extra)
        .arg("--")
        .arg(program)
        .args(args));
    (LifetimeCensus::load(out).expect(&ran.stderr), ran)
}

fn of_kind(c: &LifetimeCensus, kind: ErrorKind) -> Vec<&LifetimeError> {
    c.errors.iter().filter(|e| e.kind == kind).collect()
}

fn only(c: &LifetimeCensus, kind: ErrorKind) -> &LifetimeError {
    let found = of_kind(c, kind);
    assert_eq!(found.len(), 1, "{kind:?}: {:#?}", c.errors);
    found[0]
}

fn exact(c: &LifetimeCensus, build: &str) {
    assert_eq!(c.total, 19, "{build}: {:#?}", c.errors);
    assert_eq!(c.memcheck_total, Some(c.total), "{build}");
    assert_eq!(c.errors.len(), 4, "{build}: {:#?}", c.errors);

    let after_free = of_kind(c, ErrorKind::UseAfterFree);
    assert_eq!(after_free.len(), 2, "{build}: {after_free:#?}");
    let e = after_free.iter().find(|e| e.accessed_by == Language::C).expect(build);
    let (access, by, owner) = (e.access, e.accessed_by, e.allocated_by);
    assert_eq!((e.count, access, e.size), (7, Some(Access::Read), Some(8)), "{build}: {e:#?}");
    assert_eq!((by, e.access_function.as_str()), (Language::C, "c_read_held"), "{build}");
    assert_eq!((owner, e.freed_by), (Some(Family::Rust), Some(Family::Rust)), "{build}");
    assert_eq!(e.alloc_function.as_deref(), Some("main::c_reads_after_rust_drop"), "{build}");
    assert_eq!(e.free_function, e.alloc_function, "{build}");
    assert_eq!(e.crossed, Some(true), "{build}");
    assert!(e.sentence().contains("C kept the pointer past the call"), "{}", e.sentence());

    let e = after_free.iter().find(|e| e.accessed_by == Language::Rust).expect(build);
    assert_eq!((e.kind, e.count, e.access), (ErrorKind::UseAfterFree, 5, Some(Access::Read)));
    assert_eq!(e.access_function, "main::rust_reads_after_c_free", "{build}");
    assert_eq!((e.allocated_by, e.freed_by), (Some(Family::C), Some(Family::C)), "{build}");
    assert_eq!(
        (e.alloc_function.as_deref(), e.free_function.as_deref()),
        (Some("c_make"), Some("c_release")),
        "{build}"
    );
    assert_eq!(e.alloc_rust_caller.as_deref(), Some("main::rust_reads_after_c_free"), "{build}");
    assert_eq!(e.crossed, Some(true), "{build}");

    let e = only(c, ErrorKind::Overflow);
    assert_eq!((e.count, e.access, e.size), (3, Some(Access::Write), Some(1)), "{build}");
    assert_eq!((e.accessed_by, e.access_function.as_str()), (Language::C, "c_fill"), "{build}");
    assert_eq!(e.access_rust_caller.as_deref(), Some("main::c_writes_past_rust_buffer"));
    assert_eq!((e.allocated_by, e.freed_by, e.block_size), (Some(Family::Rust), None, Some(16)));
    assert_eq!(e.crossed, Some(true), "{build}");

    let e = only(c, ErrorKind::UseAfterMove);
    assert_eq!(
        (e.count, e.accessed_by, e.access_function.as_str()),
        (4, Language::C, "c_read_held")
    );
    assert_eq!((e.allocated_by, e.freed_by), (Some(Family::Rust), Some(Family::Rust)), "{build}");
    assert_eq!(e.alloc_function.as_deref(), Some("main::c_reads_moved_vec"), "{build}");
    assert_eq!(e.crossed, Some(true), "{build}");

    // Nothing from the correct uses.
    for e in &c.errors {
        let stacks = [&e.stacks.access, &e.stacks.allocation, &e.stacks.free];
        let named =
            stacks.iter().flat_map(|s| s.iter()).any(|f| f.function.contains("correct_uses"));
        assert!(!named, "{build}: {e:#?}");
    }
}

#[test]
fn every_planted_error_is_told_with_its_sides_and_counted_exactly() {
    let test = "lifetimes::every_planted_error_is_told_with_its_sides_and_counted_exactly";
    if !common::valgrind_here(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for (build, flags) in [("debug information", &["-g"][..]), ("none", &[][..])] {
        let program = planted(flags, &format!("lifetimes-planted-{}", flags.len()));
        let bare = Command::new(&program).output().unwrap();
        let out = tmp.path().join(format!("c{}", flags.len()));
        let (c, ran) = census(&program, &out, &[]);
        // The program's status and output pass through.
        assert_eq!(ran.status.code(), bare.status.code(), "{build}: {}", ran.stderr);
        assert_eq!(ran.status.code(), Some(5));
        assert_eq!(ran.stdout, String::from_utf8_lossy(&bare.stdout));
        exact(&c, build);
        assert!(ran.stderr.contains("C's c_read_held"), "{}", ran.stderr);
        if flags.len() == 1 {
            // What the terminal says, the README's example (the paths of the run left out).
            let said: String = ran
                .stderr
                .lines()
                .filter(|l| !l.starts_with("wrote ") && !l.starts_with("ffiprof: "))
                .map(|l| format!("{l}\n"))
                .collect();
            common::golden("lifetimes.txt", &said);
        }
        let md = std::fs::read_to_string(out.join("lifetimes.md")).unwrap();
        assert!(md.contains("use-after-move") && md.contains("C kept the pointer"), "{md}");
        let svg = std::fs::read_to_string(out.join("access.svg")).unwrap();
        assert!(svg.contains("c_read_held"), "the access flamegraph names the reader");

        let out = tmp.path().join(format!("d{}", flags.len()));
        let (c, ran) = census_of(&program, &["double-free"], &out, &[]);
        assert_eq!(ran.status.code(), Some(0), "{build}: {}", ran.stderr);
        assert_eq!((c.total, c.memcheck_total), (2, Some(2)), "{build}: {:#?}", c.errors);
        let e = only(&c, ErrorKind::InvalidFree);
        assert_eq!(
            (e.count, e.accessed_by, e.access_function.as_str()),
            (2, Language::C, "c_double_free")
        );
        assert_eq!((e.allocated_by, e.freed_by), (Some(Family::C), Some(Family::C)), "{build}");
        assert_eq!(e.crossed, Some(false), "{build}");
    }
}

#[test]
fn fail_on_error_and_compare_call_new_errors_what_they_are() {
    let test = "lifetimes::fail_on_error_and_compare_call_new_errors_what_they_are";
    if !common::valgrind_here(test) {
        return;
    }
    let program = planted(&["-g"], "lifetimes-compare");
    let tmp = tempfile::tempdir().unwrap();
    let (planted_census, ran) = census(&program, &tmp.path().join("new"), &["--fail-on-error"]);
    assert_eq!(ran.status.code(), Some(3), "{}", ran.stderr);
    assert!(planted_census.total > 0);

    // A correct program: no error, its own status.
    let clean = common::build_program(
        "lifetimes-clean",
        "int c_add(int a, int b) { return a + b; }\n",
        &[],
        "extern \"C\" { fn c_add(a: i32, b: i32) -> i32; }\n\
         fn main() { let v: Vec<i32> = (0..100).map(|i| unsafe { c_add(i, 1) }).collect(); \
         println!(\"{}\", v.iter().sum::<i32>()); }\n",
    );
    let (c, ran) = census(&clean, &tmp.path().join("old"), &["--fail-on-error"]);
    assert_eq!(ran.status.code(), Some(0), "{}", ran.stderr);
    assert_eq!((c.total, c.memcheck_total, c.errors.len()), (0, Some(0), 0));

    let compare = |old: &str, new: &str| {
        let out = tmp.path().join(format!("cmp-{old}-{new}"));
        run(ffiprof()
            .args(["compare", "--fail-on-regression", "--out"])
            .arg(&out)
            .arg(tmp.path().join(old))
            .arg(tmp.path().join(new)))
    };
    let worse = compare("old", "new");
    assert_eq!(worse.status.code(), Some(3), "{}", worse.stdout);
    assert!(worse.stdout.contains("c_read_held"), "{}", worse.stdout);
    assert_eq!(compare("new", "new").status.code(), Some(0));
    assert_eq!(compare("new", "old").status.code(), Some(0));
    // A lifetimes census beside a heap census is the user's to fix.
    let heap = tmp.path().join("heap");
    std::fs::create_dir_all(&heap).unwrap();
    std::fs::write(heap.join("memory.json"), "{}").unwrap();
    let mixed = run(ffiprof().arg("compare").arg(tmp.path().join("new")).arg(&heap));
    assert_eq!(mixed.status.code(), Some(2), "{}", mixed.stderr);

    // memcheck's own file, given, is read as the run was.
    let xml = tmp.path().join("memcheck.xml");
    let vg = Command::new("valgrind")
        .args(["--tool=memcheck", "--xml=yes", "--fullpath-after=", "--num-callers=100"])
        .arg(format!("--xml-file={}", xml.display()))
        .arg(&program)
        .output()
        .unwrap();
    assert_eq!(vg.status.code(), Some(5));
    let given = run(ffiprof()
        .args(["lifetimes", "--out"])
        .arg(tmp.path().join("given"))
        .arg("--from")
        .arg(&xml));
    assert_eq!(given.status.code(), Some(0), "{}", given.stderr);
    let g = LifetimeCensus::load(&tmp.path().join("given")).unwrap();
    assert_eq!((g.total, g.errors.len()), (planted_census.total, planted_census.errors.len()));
    // Anything else is refused, and nothing is written.
    let bogus = tmp.path().join("bogus.xml");
    std::fs::write(&bogus, "<html></html>").unwrap();
    let refused = run(ffiprof()
        .args(["lifetimes", "--out"])
        .arg(tmp.path().join("b"))
        .arg("--from")
        .arg(&bogus));
    assert_eq!(refused.status.code(), Some(2), "{}", refused.stderr);
    assert!(refused.stderr.contains("not memcheck's XML"), "{}", refused.stderr);
    assert!(!tmp.path().join("b").exists());
}

#[test]
fn the_sqlite_example_has_no_error() {
    let test = "lifetimes::the_sqlite_example_has_no_error";
    if !common::valgrind_here(test) {
        return;
    }
    let example = common::example("sqlite_threads");
    let tmp = tempfile::tempdir().unwrap();
    let ran = run(ffiprof()
        .args(["lifetimes", "--fail-on-error", "--out"])
        .arg(tmp.path())
        .arg("--")
        .arg(&example)
        .args(["--threads", "2", "--rounds", "3"]));
    assert_eq!(ran.status.code(), Some(0), "{}", ran.stderr);
    let c = LifetimeCensus::load(tmp.path()).unwrap();
    assert_eq!((c.total, c.memcheck_total), (0, Some(0)), "{:#?}", c.errors);
}

/// The guard-page mode finds the same reads after a free or a move and the same overflow
/// at the program's own speed (every allocation guarded here), and the program ends as it
/// does bare; a double free, which aborts the program bare, is found and survived.
#[test]
fn guard_pages_find_the_same_errors_and_the_program_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    for (build, flags) in [("debug information", &["-g"][..]), ("none", &[][..])] {
        let program = planted(flags, &format!("lifetimes-guarded-{}", flags.len()));
        let bare = Command::new(&program).output().unwrap();
        let out = tmp.path().join(format!("g{}", flags.len()));
        let (c, ran) = census(&program, &out, &["--guard", "1"]);
        assert_eq!(ran.status.code(), bare.status.code(), "{build}: {}", ran.stderr);
        assert_eq!(ran.stdout, String::from_utf8_lossy(&bare.stdout), "{build}");
        assert_eq!((c.engine.as_str(), c.guard, c.memcheck_total), ("guard", Some(1), None));
        let count = |kind: ErrorKind, by: Language| -> u64 {
            let found = c.errors.iter().filter(|e| e.kind == kind && e.accessed_by == by);
            found.map(|e| e.count).sum()
        };
        assert_eq!(count(ErrorKind::UseAfterFree, Language::C), 7, "{build}: {:#?}", c.errors);
        assert_eq!(count(ErrorKind::UseAfterFree, Language::Rust), 5, "{build}: {:#?}", c.errors);
        assert_eq!(count(ErrorKind::UseAfterMove, Language::C), 4, "{build}: {:#?}", c.errors);
        assert_eq!(count(ErrorKind::Overflow, Language::C), 3, "{build}: {:#?}", c.errors);
        assert_eq!(c.total, 19, "{build}: {:#?}", c.errors);
        let e = c
            .errors
            .iter()
            .find(|e| e.kind == ErrorKind::UseAfterFree && e.accessed_by == Language::C)
            .unwrap();
        assert_eq!(e.access_function, "c_read_held", "{build}");
        assert_eq!((e.access, e.size), (Some(Access::Read), Some(8)), "{build}: {e:#?}");
        assert_eq!(
            (e.allocated_by, e.freed_by, e.crossed),
            (Some(Family::Rust), Some(Family::Rust), Some(true))
        );
        assert_eq!(e.alloc_function.as_deref(), Some("main::c_reads_after_rust_drop"), "{build}");
        let e = c.errors.iter().find(|e| e.kind == ErrorKind::Overflow).unwrap();
        assert_eq!((e.access, e.access_function.as_str()), (Some(Access::Write), "c_fill"));
        assert_eq!(e.size, Some(1), "one byte written past the end: {e:#?}");
        assert_eq!(e.alloc_function.as_deref(), Some("main::c_writes_past_rust_buffer"));

        let (c, ran) =
            census_of(&program, &["double-free"], &tmp.path().join("d"), &["--guard", "1"]);
        assert_eq!(ran.status.code(), Some(0), "{build}: {}", ran.stderr);
        let e = only(&c, ErrorKind::InvalidFree);
        assert_eq!((e.count, e.access_function.as_str()), (2, "c_double_free"), "{build}");

        // Written into the slack the page does not guard: found when the block is freed.
        let (c, ran) = census_of(&program, &["slack"], &tmp.path().join("s"), &["--guard", "1"]);
        assert_eq!(ran.status.code(), Some(0), "{build}: {}", ran.stderr);
        let e = only(&c, ErrorKind::Overflow);
        assert_eq!((e.count, e.access, e.block_size), (2, Some(Access::Write), Some(17)), "{e:#?}");
        assert_eq!(e.accessed_by, Language::Unknown, "who wrote it is not known: {e:#?}");
        // Rust's, where the machine code proves it; never C's.
        assert_ne!(e.allocated_by, Some(Family::C), "{build}: {e:#?}");
        assert_eq!(e.alloc_function.as_deref(), Some("main::main"), "{build}: {e:#?}");
    }
    // --guard 0 guards nothing: the user's to fix.
    let ran = run(ffiprof().args(["lifetimes", "--guard", "0", "--", "true"]));
    assert_eq!(ran.status.code(), Some(2), "{}", ran.stderr);
}

const HANDLER_C: &str = r#"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    char msg[64];
    int n = snprintf(msg, sizeof msg, "caught %s\n", si->si_addr == (void *)8 ? "null+8" : "other");
    write(1, msg, n);
    _exit(42);
}
int main(int argc, char **argv) {
    static char alt[1 << 16];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    if (argc < 2) sigaction(SIGSEGV, &sa, NULL);
    for (int i = 0; i < 100; i++) {
        char *volatile q = malloc(100);
        q[0] = 1;
        free(q);
    }
    volatile int *p = (int *)8;
    return *p;
}
"#;

const OVERFLOW_RS: &str = r#"
fn deep(n: u64) -> u64 {
    let a = [n; 256];
    if n == 0 { 0 } else { deep(n - 1) + std::hint::black_box(a)[3] }
}
fn main() {
    let v: Vec<u8> = vec![1; 100];
    println!("{}", v.len());
    println!("{}", deep(u64::MAX));
}
"#;

/// The program's own SIGSEGV handler (on its alternate stack) still runs under guard
/// pages; without one, a fault ends it as it would bare; Rust's stack-overflow handler
/// still says so.
#[test]
fn the_programs_own_fault_handling_keeps_working_under_guard_pages() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("lifetimes-handlers");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("h.c"), HANDLER_C).unwrap();
    std::fs::write(dir.join("so.rs"), OVERFLOW_RS).unwrap();
    common::run_ok(Command::new("gcc").current_dir(&dir).args(["-O1", "-g", "h.c", "-o", "h"]));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    common::run_ok(Command::new(rustc).current_dir(&dir).args(["-O", "so.rs", "-o", "so"]));
    let tmp = tempfile::tempdir().unwrap();
    for (i, (program, args)) in
        [("h", &[][..]), ("h", &["no-handler"][..]), ("so", &[][..])].into_iter().enumerate()
    {
        let program = dir.join(program);
        let bare = Command::new(&program).args(args).output().unwrap();
        let out = tmp.path().join(i.to_string());
        let (c, ran) = census_of(&program, args, &out, &["--guard", "1"]);
        let status = common::shell_status(bare.status);
        assert_eq!(ran.status.code(), Some(status), "{program:?} {args:?}: {}", ran.stderr);
        assert_eq!(ran.stdout, String::from_utf8_lossy(&bare.stdout), "{program:?} {args:?}");
        assert_eq!(c.total, 0, "{:#?}", c.errors);
        if i == 2 {
            assert!(ran.stderr.contains("has overflowed its stack"), "{}", ran.stderr);
        }
    }
}

const MISMATCH_CPP: &str = r#"
#include <cstdlib>
#include <cstdio>
extern "C" int *cxx_make(void) { return new int[4](); }
extern "C" void c_release_with_free(int *p) { free(p); }
"#;

/// A block C++'s new served, freed by C's free under Rust: memcheck's mismatched free,
/// told with both families and crossed.
#[test]
fn a_mismatched_free_names_both_allocators() {
    let test = "lifetimes::a_mismatched_free_names_both_allocators";
    if !common::valgrind_here(test)
        || !common::tool_available(test, "g++", "--version", "apt-get install g++")
    {
        return;
    }
    let program = common::build_linked(
        "lifetimes-mismatch",
        Foreign { compiler: "g++", file: "lib.cpp", source: MISMATCH_CPP, libs: &["stdc++"] },
        &[],
        "extern \"C\" { fn cxx_make() -> *mut i32; fn c_release_with_free(p: *mut i32); }\n\
         #[inline(never)] fn hand_back() { let mut n = 0; for _ in 0..3 { unsafe { c_release_with_free(cxx_make()) }; n += 1; } std::hint::black_box(n); }\n\
         fn main() { hand_back(); println!(\"ok\"); }\n",
    );
    let tmp = tempfile::tempdir().unwrap();
    let (c, ran) = census(&program, &tmp.path().join("m"), &[]);
    assert_eq!(ran.status.code(), Some(0), "{}", ran.stderr);
    // The loop unrolled gives memcheck three call sites; their sides are the same.
    let all = of_kind(&c, ErrorKind::MismatchedFree);
    assert_eq!(all.iter().map(|e| e.count).sum::<u64>(), 3, "{all:#?}");
    for e in all {
        assert_eq!(e.access, Some(Access::Free), "{e:#?}");
        assert_eq!((e.allocated_by, e.freed_by), (Some(Family::Cxx), Some(Family::C)), "{e:#?}");
        assert_eq!(e.access_function, "c_release_with_free");
        assert_eq!(e.alloc_function.as_deref(), Some("cxx_make"));
        assert_eq!(e.crossed, Some(false), "both C's side: {e:#?}");
        assert!(e.access_rust_caller.as_deref().is_some_and(|r| r.starts_with("main::")));
    }
    assert_eq!(c.memcheck_total, Some(c.total));
}
