//! `ffiprof memory`'s ownership census on a program whose crossed frees are known by
//! construction: Rust strings freed by C's `free`, C strings dropped by Rust, Rust strings
//! C keeps past the call and frees later, correct pairs on both sides (not crossed), a C
//! library allocating through an allocator function Rust gives it (as mlua gives Lua), and
//! a double free.

use crate::common::{self, ffiprof, run};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ffiprof::memory::{Family, InvalidFreeKind, MemoryCensus};
use ffiprof::stacks::Language;

const C_SOURCE: &str = r#"
#include <stdlib.h>
#include <string.h>

static char *kept[1000];
static int n_kept;
/* Stores after the calls keep them from being tail calls, whose callers no unwinder can
 * see (a jump leaves no return address). */
volatile int done;

void c_take_and_free(char *s) { free(s); done = 1; }
char *c_make(const char *s) { char *p = strdup(s); done = 1; return p; }
void c_keep(char *s) { kept[n_kept++] = s; }
void c_release_kept(void) {
    for (int i = 0; i < n_kept; i++) free(kept[i]);
    n_kept = 0;
    done = 1;
}
void c_pairs(int n) {
    for (int i = 0; i < n; i++) {
        char *volatile p = malloc(16);
        free(p);
    }
}
void c_double_free(void) {
    char *volatile p = malloc(24);
    free(p);
    free(p);
    done = 1;
}

/* A library that allocates through the function its user gives it, as Lua does. */
typedef void *(*lib_alloc_fn)(void *ud, void *ptr, size_t old_size, size_t new_size);
static lib_alloc_fn lib_alloc;
static void *lib_ud;
void lib_init(lib_alloc_fn f, void *ud) { lib_alloc = f; lib_ud = ud; }
void *lib_new_table(size_t n) {
    void *p = lib_alloc(lib_ud, NULL, 0, n);
    done = 1;
    return p;
}
void lib_free_table(void *p, size_t n) { lib_alloc(lib_ud, p, n, 0); done = 1; }
"#;

const RUST_SOURCE: &str = r#"
use std::alloc::{alloc, dealloc, Layout};
use std::ffi::{c_void, CString};
use std::hint::black_box;
use std::os::raw::c_char;

type LibAlloc = extern "C" fn(*mut c_void, *mut c_void, usize, usize) -> *mut c_void;

extern "C" {
    fn c_take_and_free(s: *mut c_char);
    fn c_make(s: *const c_char) -> *mut c_char;
    fn c_keep(s: *mut c_char);
    fn c_release_kept();
    fn c_pairs(n: i32);
    fn c_double_free();
    fn lib_init(f: LibAlloc, ud: *mut c_void);
    fn lib_new_table(n: usize) -> *mut c_void;
    fn lib_free_table(p: *mut c_void, n: usize);
    fn raise(signal: i32) -> i32;
}

#[inline(never)]
fn rust_to_c_free(n: usize) {
    for i in 0..n {
        let s = CString::new(format!("r{i}")).unwrap();
        unsafe { c_take_and_free(s.into_raw()) };
    }
    black_box(n);
}

#[inline(never)]
fn c_to_rust_drop(n: usize) {
    for _ in 0..n {
        let s = unsafe { CString::from_raw(c_make(c"abc".as_ptr())) };
        drop(black_box(s));
    }
}

#[inline(never)]
fn kept_by_c(n: usize) {
    for i in 0..n {
        unsafe { c_keep(CString::new(format!("k{i}")).unwrap().into_raw()) };
    }
    black_box(n);
}

#[inline(never)]
fn correct_pairs(n: usize) {
    for i in 0..n {
        let p = CString::new(format!("ok{i}")).unwrap().into_raw();
        drop(black_box(unsafe { CString::from_raw(p) }));
    }
    unsafe { c_pairs(n as i32) };
    black_box(n);
}

// The allocator function the library is given: Rust's global allocator serves it (and
// checks what it got, as mlua's does).
extern "C" fn rust_allocator(_ud: *mut c_void, ptr: *mut c_void, old: usize, new: usize) -> *mut c_void {
    unsafe {
        if new == 0 {
            dealloc(ptr.cast(), Layout::from_size_align(old, 8).unwrap());
            std::ptr::null_mut()
        } else {
            let layout = Layout::from_size_align(new, 8).unwrap();
            let p = alloc(layout);
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            p.cast()
        }
    }
}

#[inline(never)]
fn lua_like(tables: usize, size: usize) {
    unsafe { lib_init(rust_allocator, std::ptr::null_mut()) };
    let kept: Vec<*mut c_void> = (0..tables).map(|_| unsafe { lib_new_table(size) }).collect();
    for p in kept {
        unsafe { lib_free_table(p, size) };
    }
    black_box(tables);
}

#[inline(never)]
fn double_free() {
    unsafe { c_double_free() };
    black_box(());
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode == "double-free" {
        double_free();
        return;
    }
    if mode == "killed" {
        kept_by_c(30);
        unsafe { raise(9) };
    }
    rust_to_c_free(350);
    c_to_rust_drop(20);
    kept_by_c(30);
    correct_pairs(40);
    lua_like(12, 4096);
    unsafe { c_release_kept() };
}
"#;

fn program() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        common::build_program("memory-ownership-program", C_SOURCE, &[], RUST_SOURCE)
    })
}

/// Bytes of the strings `format!("{prefix}{i}")` for `i` in `0..n`, with their nul.
fn strings(prefix: &str, n: usize) -> u64 {
    (0..n).map(|i| (format!("{prefix}{i}").len() + 1) as u64).sum()
}

#[test]
fn every_crossed_free_is_counted_exactly_with_both_sites() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("own");
    let ran = run(ffiprof().args(["memory", "--out"]).arg(&dir).arg("--").arg(program())).success();
    let c = MemoryCensus::load(&dir).unwrap();
    let o = c.ownership.as_ref().expect("the native engine keeps ownership");
    let crossed = |free_function: &str| {
        let found: Vec<_> =
            o.crossed_frees.iter().filter(|x| x.free_function.ends_with(free_function)).collect();
        assert_eq!(found.len(), 1, "{free_function}: {:#?}", o.crossed_frees);
        found[0]
    };
    // Rust's CStrings freed by C's free(), at once and later.
    let now = crossed("c_take_and_free");
    assert_eq!((now.allocated_by, now.freed_by), (Family::Rust, Family::C));
    assert_eq!(now.free_rust_caller.as_deref(), Some("main::rust_to_c_free"));
    assert_eq!((now.blocks, now.bytes), (350, strings("r", 350)));
    let later = crossed("c_release_kept");
    assert_eq!((later.allocated_by, later.freed_by), (Family::Rust, Family::C));
    assert_eq!(later.free_rust_caller.as_deref(), Some("main::main"));
    assert_eq!((later.blocks, later.bytes), (30, strings("k", 30)));
    // C's strdup dropped by Rust (CString::from_raw).
    let dropped: Vec<_> = o.crossed_frees.iter().filter(|x| x.allocated_by == Family::C).collect();
    assert_eq!(dropped.len(), 1, "{:#?}", o.crossed_frees);
    assert_eq!(dropped[0].freed_by, Family::Rust);
    assert_eq!(dropped[0].alloc_function, "strdup");
    assert_eq!(dropped[0].alloc_rust_caller.as_deref(), Some("main::c_to_rust_drop"));
    assert_eq!(dropped[0].free_function, "main::c_to_rust_drop");
    assert_eq!(now.alloc_function, "main::rust_to_c_free");
    assert_eq!((dropped[0].blocks, dropped[0].bytes), (20, 80));
    // Only those: the correct pairs (and the library's blocks, served and taken back by
    // Rust) are not crossed.
    assert_eq!(o.crossed_frees.len(), 3, "{:#?}", o.crossed_frees);
    let pair = |a: Family, f: Family| {
        o.frees.iter().find(|p| (p.allocated_by, p.freed_by) == (a, f)).map_or(0, |p| p.blocks)
    };
    assert_eq!(pair(Family::Rust, Family::C), 380);
    assert_eq!(pair(Family::C, Family::Rust), 20);
    assert!(pair(Family::C, Family::C) >= 40, "{:#?}", o.frees);
    assert!(pair(Family::Rust, Family::Rust) >= 40 + 12, "{:#?}", o.frees);
    assert!(o.invalid_frees.is_empty(), "{:#?}", o.invalid_frees);
    // In words, on the terminal.
    assert!(
        ran.stderr.contains("350 blocks (")
            && ran.stderr.contains("were freed by C's free() in c_take_and_free"),
        "{}",
        ran.stderr
    );

    // The library's tables: asked for by C, served by Rust's allocator.
    let tables =
        c.sites.iter().find(|s| s.function == "main::rust_allocator").expect("the callback's site");
    assert_eq!((tables.allocator, tables.requested_by), (Some(Family::Rust), Some(Language::C)));
    assert_eq!((tables.figures.blocks, tables.figures.bytes), (12, 12 * 4096));
    assert!(c.by_requester["c"].bytes >= 12 * 4096);
    assert!(c.by_allocator["rust"].bytes >= 12 * 4096);

    // The same build, twice: nothing to tell; a doubled crossed free is a regression.
    let again = tmp.path().join("again");
    run(ffiprof().args(["memory", "--out"]).arg(&again).arg("--").arg(program())).success();
    run(ffiprof().args(["compare", "--fail-on-regression"]).arg(&dir).arg(&again))
        .success()
        .stdout_has("0 regressions");
    let mut doubled = c.clone();
    let o = doubled.ownership.as_mut().unwrap();
    o.crossed_frees
        .iter_mut()
        .filter(|x| x.free_function.ends_with("c_take_and_free"))
        .for_each(|x| x.blocks *= 2);
    let more = tmp.path().join("more");
    std::fs::create_dir_all(&more).unwrap();
    std::fs::write(more.join("memory.json"), doubled.to_json().unwrap()).unwrap();
    run(ffiprof().args(["compare", "--fail-on-regression"]).arg(&dir).arg(&more))
        .code(3)
        .stdout_has("| 350 | 700 | more blocks crossed |");
}

#[test]
fn a_double_free_is_reported_with_its_stack_and_the_program_meets_its_fate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("double");
    // glibc aborts the program on the second free, with or without ffiprof.
    let bare = std::process::Command::new(program()).arg("double-free").output().unwrap();
    let fate = common::shell_status(bare.status);
    assert_ne!(fate, 0);
    run(ffiprof().args(["memory", "--out"]).arg(&dir).arg("--").arg(program()).arg("double-free"))
        .code(fate);
    let c = MemoryCensus::load(&dir).unwrap();
    assert_eq!(c.exit_status, fate);
    let invalid = &c.ownership.as_ref().unwrap().invalid_frees;
    assert_eq!(invalid.len(), 1, "{invalid:#?}");
    assert_eq!(invalid[0].kind, InvalidFreeKind::DoubleFree);
    assert_eq!(invalid[0].function, "c_double_free");
    assert_eq!(invalid[0].rust_caller.as_deref(), Some("main::double_free"));
    assert_eq!(invalid[0].count, 1);
    assert!(c.notes.iter().any(|n| n.contains("did not reach exit")), "{:?}", c.notes);
}

#[test]
fn a_program_killed_by_a_signal_still_leaves_the_census_of_what_it_did() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("killed");
    run(ffiprof().args(["memory", "--out"]).arg(&dir).arg("--").arg(program()).arg("killed"))
        .code(128 + 9);
    let c = MemoryCensus::load(&dir).unwrap();
    assert_eq!(c.exit_status, 137);
    assert!(c.notes.iter().any(|n| n.contains("did not reach exit")), "{:?}", c.notes);
    // The strings C kept were live when it died.
    assert!(c.totals.blocks_at_exit >= 30, "{:?}", c.totals);
    let exit = std::fs::read_to_string(dir.join("exit.folded")).unwrap();
    let kept: u64 = exit
        .lines()
        .filter(|l| l.contains("main::kept_by_c"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(kept, strings("k", 30), "{exit}");
}

const CPP_SOURCE: &str = r#"
#include <cstdlib>
extern "C" void cpp_mismatch(int n) {
    for (int i = 0; i < n; i++) {
        char *volatile p = new char[16];
        std::free(p);
    }
}
extern "C" void cpp_pairs(int n) {
    for (int i = 0; i < n; i++) {
        int *volatile p = new int(i);
        delete p;
    }
}
"#;

const CPP_RUST_SOURCE: &str = r#"
extern "C" {
    fn cpp_mismatch(n: i32);
    fn cpp_pairs(n: i32);
}

fn main() {
    unsafe { cpp_mismatch(9) };
    unsafe { cpp_pairs(5) };
}
"#;

#[test]
fn cxx_new_freed_by_free_is_a_crossed_free() {
    let test = "memory_ownership::cxx_new_freed_by_free_is_a_crossed_free";
    if !common::tool_available(test, "g++", "--version", "apt-get install g++") {
        return;
    }
    let program = common::build_linked(
        "memory-cpp-program",
        common::Foreign { compiler: "g++", file: "lib.cpp", source: CPP_SOURCE, libs: &["stdc++"] },
        &[],
        CPP_RUST_SOURCE,
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cpp");
    run(ffiprof().args(["memory", "--out"]).arg(&dir).arg("--").arg(&program)).success();
    let o = MemoryCensus::load(&dir).unwrap().ownership.unwrap();
    let crossed: Vec<_> =
        o.crossed_frees.iter().filter(|x| x.allocated_by == Family::Cxx).collect();
    assert_eq!(crossed.len(), 1, "{:#?}", o.crossed_frees);
    assert_eq!((crossed[0].freed_by, crossed[0].blocks, crossed[0].bytes), (Family::C, 9, 9 * 16));
    assert_eq!(crossed[0].alloc_function, "cpp_mismatch");
    let pairs = o.frees.iter().find(|p| (p.allocated_by, p.freed_by) == (Family::Cxx, Family::Cxx));
    assert!(pairs.is_some_and(|p| p.blocks >= 5), "{:#?}", o.frees);
}

/// memory.md and the terminal summary of a census read from a file (a real native census
/// of the program above, its environment and paths made neutral), against golden files
/// (re-bless with FFIPROF_BLESS=1).
#[test]
fn memory_md_and_the_summary_match_their_golden_files() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let c = MemoryCensus::load(&data.join("memory-census.json")).unwrap();
    for (name, actual) in [("memory.md", c.markdown()), ("memory.txt", c.text())] {
        common::golden(name, &actual);
    }
}
