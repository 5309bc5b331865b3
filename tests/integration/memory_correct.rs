//! `ffiprof memory` on correct programs whose memory crosses the boundary in the usual
//! ways: the census claims no crossed free and no invalid one, and the program runs as it
//! does bare (its output and status). Where a family cannot be told, the free is counted
//! unknown, with why, never crossed. And a C function whose last act is `free(p)` (a tail
//! jump, no frame left) is still named as the one that freed.

use crate::common::{self, ffiprof, run};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ffiprof::memory::{Family, MemoryCensus, Untold};

/// A C registry that owns Rust data through a destroy callback (GLib's `GDestroyNotify`,
/// `sqlite3_bind_blob`'s destructor), and Rust's `Box<dyn T>` and `Arc<dyn T>` drops.
const REGISTRY_C: &str = r#"
#include <stdlib.h>
typedef void (*destroy_fn)(void *);
struct entry { void *data; destroy_fn destroy; };
static struct entry *entries;
static int n, cap;
void reg_add(void *data, destroy_fn d) {
    if (n == cap) { cap = cap ? cap * 2 : 16; entries = realloc(entries, cap * sizeof *entries); }
    entries[n].data = data;
    entries[n].destroy = d;
    n++;
}
void reg_clear(void) {
    for (int i = 0; i < n; i++) entries[i].destroy(entries[i].data);
    n = 0;
}
"#;

const REGISTRY_RUST: &str = r#"
use std::ffi::c_void;
use std::sync::Arc;
extern "C" {
    fn reg_add(d: *mut c_void, f: extern "C" fn(*mut c_void));
    fn reg_clear();
}
struct Payload { v: [u64; 4] }
extern "C" fn destroy(p: *mut c_void) { drop(unsafe { Box::from_raw(p as *mut Payload) }) }
extern "C" fn destroy_vec(p: *mut c_void) { drop(unsafe { Box::from_raw(p as *mut Vec<u8>) }) }
trait Shape { fn area(&self) -> u64; }
struct Sq(u64, Vec<u8>);
impl Shape for Sq { fn area(&self) -> u64 { self.0 * self.0 + self.1.len() as u64 } }
fn main() {
    let mut check = 0u64;
    for round in 0..3 {
        for i in 0..500u64 {
            let b = Box::new(Payload { v: [i; 4] });
            check += b.v[3];
            unsafe { reg_add(Box::into_raw(b) as *mut c_void, destroy) };
            let v = Box::new(vec![1u8; 40]);
            unsafe { reg_add(Box::into_raw(v) as *mut c_void, destroy_vec) };
        }
        unsafe { reg_clear() };
        let boxed: Vec<Box<dyn Shape>> =
            (0..100).map(|i| Box::new(Sq(i, vec![0; 8])) as Box<dyn Shape>).collect();
        let shared: Vec<Arc<dyn Shape>> =
            (0..100).map(|i| Arc::new(Sq(i, vec![0; 8])) as Arc<dyn Shape>).collect();
        let s: u64 = boxed.iter().map(|s| s.area()).sum::<u64>()
            + shared.iter().map(|s| s.area()).sum::<u64>();
        println!("round {round} {s} {check}");
    }
}
"#;

/// Rust strings freed by a C function that tail-jumps into free (no frame of its own left),
/// and correct pairs on both sides.
const TAIL_C: &str = r#"
#include <stdlib.h>
void c_take_and_free(char *s) { free(s); }
void c_pairs(int n) {
    for (int i = 0; i < n; i++) {
        char *volatile p = malloc(16);
        free(p);
    }
}
"#;

const TAIL_RUST: &str = r#"
use std::ffi::CString;
use std::hint::black_box;
use std::os::raw::c_char;
extern "C" {
    fn c_take_and_free(s: *mut c_char);
    fn c_pairs(n: i32);
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
fn rust_pairs(n: usize) {
    for i in 0..n {
        let p = CString::new(format!("ok{i}")).unwrap().into_raw();
        drop(black_box(unsafe { CString::from_raw(p) }));
    }
}
fn main() {
    rust_to_c_free(50);
    rust_pairs(40);
    unsafe { c_pairs(30) };
    println!("done");
}
"#;

fn build(name: &str, c: &str, rust: &str, rust_flags: &[&str]) -> PathBuf {
    let foreign = common::Foreign { compiler: "gcc", file: "lib.c", source: c, libs: &[] };
    common::build_linked_with(name, foreign, &[], rust, rust_flags)
}

/// The census of `program`, checked to run as it does bare: same output, same status;
/// and every stack the interposer walked from its cached unwind rules is the one libgcc's
/// unwinder walks (`FFIPROF_HEAP_UNWIND=check` walks each both ways and says so at exit).
fn census_as_bare(program: &Path, args: &[&str], out: &Path) -> MemoryCensus {
    let bare = Command::new(program).args(args).output().unwrap();
    let ran = checked_census(program, args, out);
    assert_eq!(ran.status.code(), bare.status.code(), "{}", ran.stderr);
    assert_eq!(ran.stdout, String::from_utf8_lossy(&bare.stdout), "{}", ran.stderr);
    let (fast, _) = walks_agree(&ran.stderr);
    assert!(fast > 0 || bare.status.code().is_none(), "no stack walked from the rules");
    MemoryCensus::load(out).unwrap()
}

/// `ffiprof memory` of `program` into `out`, every stack walked both ways (the counts on
/// stderr, read by [`walks_agree`]).
fn checked_census<S: AsRef<std::ffi::OsStr>>(
    program: &Path,
    args: &[S],
    out: &Path,
) -> common::Ran {
    run(ffiprof()
        .env("FFIPROF_HEAP_UNWIND", "check")
        .args(["memory", "--out"])
        .arg(out)
        .arg("--")
        .arg(program)
        .args(args))
}

/// The stacks walked from cached rules and by libgcc, summed over the processes that said
/// so; fails where one walked from the rules differed from libgcc's walk of the same stack.
fn walks_agree(stderr: &str) -> (u64, u64) {
    let (mut fast, mut libgcc) = (0, 0);
    for line in stderr.lines() {
        let Some(said) = line.strip_prefix("ffiprof-heap: stacks walked from cached rules ") else {
            continue;
        };
        let numbers: Vec<u64> = said
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .map(|w| w.parse().unwrap())
            .collect();
        assert_eq!(numbers.len(), 3, "{line}");
        assert_eq!(numbers[2], 0, "walks that differ from libgcc's: {line}");
        fast += numbers[0];
        libgcc += numbers[1];
    }
    (fast, libgcc)
}

/// No crossed free and no invalid one.
fn silent(c: &MemoryCensus) {
    let o = c.ownership.as_ref().expect("the native engine keeps ownership");
    assert!(o.crossed_frees.is_empty(), "{:#?}", o.crossed_frees);
    assert!(o.invalid_frees.is_empty(), "{:#?}", o.invalid_frees);
}

/// `ffiprof lifetimes` finds nothing in a correct program, under memcheck and with every
/// allocation on guard pages, and the program ends as it does bare.
fn no_lifetime_errors(program: &Path, args: &[&str], out: &Path) {
    if !common::valgrind_here("memory_correct::no_lifetime_errors") {
        return;
    }
    let bare = Command::new(program).args(args).output().unwrap();
    for mode in [&[][..], &["--guard", "1"][..]] {
        let dir = out.join(if mode.is_empty() { "memcheck" } else { "guard" });
        let ran = run(ffiprof()
            .args(["lifetimes", "--out"])
            .arg(&dir)
            .args(mode)
            .arg("--")
            .arg(program)
            .args(args));
        let c = ffiprof::lifetimes::LifetimeCensus::load(&dir).unwrap();
        // memcheck's operator new cannot throw bad_alloc: it ends the program, and says so.
        let no_throw = c.notes.iter().any(|n| n.contains("cannot throw std::bad_alloc"));
        if !(mode.is_empty() && no_throw) {
            assert_eq!(ran.status.code(), bare.status.code(), "{mode:?}: {}", ran.stderr);
        }
        assert_eq!(c.total, 0, "{mode:?}: {}", ran.stderr);
        assert!(c.memcheck_total.is_none_or(|n| n == 0), "{mode:?}");
    }
}

fn unknown_because(c: &MemoryCensus, why: Untold) -> u64 {
    let o = c.ownership.as_ref().unwrap();
    o.unknown.iter().filter(|u| u.reason == why).map(|u| u.blocks).sum()
}

#[test]
fn destroy_callbacks_and_dyn_drops_are_never_crossed_in_any_build() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, flags) in [
        ("memory-registry-debug", &["-g"][..]),
        ("memory-registry-release", &[][..]),
        ("memory-registry-stripped", &["-C", "strip=symbols"][..]),
    ] {
        let program = build(name, REGISTRY_C, REGISTRY_RUST, flags);
        let c = census_as_bare(&program, &[], &tmp.path().join(name));
        silent(&c);
        no_lifetime_errors(&program, &[], &tmp.path().join(format!("{name}-lifetimes")));
        let o = c.ownership.as_ref().unwrap();
        let unknown: u64 = o
            .frees
            .iter()
            .filter(|p| p.allocated_by == Family::Unknown || p.freed_by == Family::Unknown)
            .map(|p| p.blocks)
            .sum();
        // The 3 000 boxes C's registry gives back through the callbacks, at least, are not told.
        assert!(unknown >= 3 * 1000, "{name}: {:#?}", o.frees);
        if name.ends_with("stripped") {
            assert!(unknown_because(&c, Untold::NoSymbols) > 0, "{:#?}", o.unknown);
        } else {
            assert!(unknown_because(&c, Untold::FunctionPointer) >= 3 * 1000, "{:#?}", o.unknown);
            // Rust's own pairs are told: Vec buffers freed inside the callbacks.
            let rust = o
                .frees
                .iter()
                .find(|p| (p.allocated_by, p.freed_by) == (Family::Rust, Family::Rust));
            assert!(rust.is_some_and(|p| p.blocks >= 3 * 500), "{name}: {:#?}", o.frees);
        }
    }
}

#[test]
fn a_c_function_that_jumps_into_free_is_named_and_counted_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, flags) in [("memory-tail-debug", &["-g"][..]), ("memory-tail-release", &[][..])] {
        let program = build(name, TAIL_C, TAIL_RUST, flags);
        let c = census_as_bare(&program, &[], &tmp.path().join(name));
        let o = c.ownership.as_ref().unwrap();
        assert_eq!(o.crossed_frees.len(), 1, "{name}: {:#?}", o.crossed_frees);
        let x = &o.crossed_frees[0];
        assert_eq!((x.allocated_by, x.freed_by, x.blocks), (Family::Rust, Family::C, 50), "{name}");
        let bytes: u64 = (0..50).map(|i| format!("r{i}").len() as u64 + 1).sum();
        assert_eq!(x.bytes, bytes, "{name}");
        assert_eq!(x.free_function, "c_take_and_free", "{name}");
        assert_eq!(x.free_rust_caller.as_deref(), Some("main::rust_to_c_free"), "{name}");
        assert!(o.invalid_frees.is_empty(), "{:#?}", o.invalid_frees);
        let pair = |a: Family, f: Family| {
            o.frees.iter().find(|p| (p.allocated_by, p.freed_by) == (a, f)).map_or(0, |p| p.blocks)
        };
        assert!(pair(Family::Rust, Family::Rust) >= 40, "{name}: {:#?}", o.frees);
        assert!(pair(Family::C, Family::C) >= 30, "{name}: {:#?}", o.frees);
    }
}

const PLUGIN_CPP: &str = r#"
#include <new>
#include <string>
#include <vector>
extern "C" long plugin_run(int n) {
    std::vector<std::string> v;
    for (int i = 0; i < n; i++) v.push_back(std::string(40, 'a' + i % 26));
    long total = 0;
    for (auto &s : v) total += s.size();
    try {
        void *p = ::operator new((size_t)1 << 62);
        total += (long)(p != nullptr);
    } catch (const std::bad_alloc &) {
        total += 1000;
    }
    return total;
}
"#;

const HOST_C: &str = r#"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    (void)argc;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    long (*run)(int) = (long (*)(int))dlsym(h, "plugin_run");
    char *volatile s = malloc(32);
    free(s);
    printf("result %ld\n", run(200));
    return 0;
}
"#;

/// A directory of the tests' own, `name`, holding `files` (name, text).
fn sources(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    for (file, text) in files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn compile(dir: &Path, args: &[&str]) {
    let out = Command::new(args[0]).current_dir(dir).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A C host without libstdc++ that dlopens a C++ library RTLD_LOCAL (as plugin hosts and
/// Python's extensions do): the library's operators bind to the interposer's, while its
/// libstdc++ is not in the global scope. The plugin's bad_alloc is thrown and caught
/// through the hook.
#[test]
fn a_c_host_that_dlopens_a_cxx_library_locally_runs_as_it_does_bare() {
    let test = "memory_correct::a_c_host_that_dlopens_a_cxx_library_locally_runs_as_it_does_bare";
    if !common::tool_available(test, "g++", "--version", "apt-get install g++") {
        return;
    }
    let dir = sources("memory-plugin-host", &[("plugin.cpp", PLUGIN_CPP), ("host.c", HOST_C)]);
    compile(&dir, &["g++", "-O2", "-g", "-shared", "-fPIC", "plugin.cpp", "-o", "libplugin.so"]);
    compile(&dir, &["gcc", "-O2", "-g", "host.c", "-o", "host", "-ldl"]);
    let plugin = dir.join("libplugin.so");
    let tmp = tempfile::tempdir().unwrap();
    let c = census_as_bare(&dir.join("host"), &[plugin.to_str().unwrap()], &tmp.path().join("c"));
    silent(&c);
    no_lifetime_errors(&dir.join("host"), &[plugin.to_str().unwrap()], &tmp.path().join("l"));
    assert!(c.by_allocator.get("c++").is_some_and(|f| f.blocks >= 200), "{:#?}", c.by_allocator);
}

/// Four threads of the SQLite example allocate and free at once (Rust over SQLite's C,
/// their stacks through std's thread start and glibc's clone): every stack is walked from
/// the cached rules, none left to libgcc, each as libgcc walks it.
#[test]
fn threads_are_walked_from_the_rules_as_libgcc_walks_them() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ["--threads", "4", "--rounds", "2"];
    let ran =
        checked_census(&common::example("sqlite_threads"), &args, &tmp.path().join("c")).success();
    let (fast, libgcc) = walks_agree(&ran.stderr);
    assert!(fast > 10_000, "{}", ran.stderr);
    assert_eq!(libgcc, 0, "{}", ran.stderr);
}

/// A library whose allocating function keeps a frame of `FRAME` bytes: built twice, the
/// two differ in that frame's size alone, code at the same addresses.
const FRAMED_C: &str = r#"
#include <stdlib.h>
__attribute__((noinline)) static void *deep(int n) {
    volatile char buf[FRAME];
    buf[0] = (char)n;
    void *p = malloc(16 + (size_t)(buf[0] & 1));
    buf[1] = (char)(p != NULL);
    return buf[1] ? p : NULL;
}
void *plugin_make(int n) { return deep(n); }
"#;

/// Loads each library in turn, allocates through it, unloads it; three times over.
const RELOAD_C: &str = r#"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    long made = 0;
    for (int round = 0; round < 3; round++)
        for (int k = 1; k < argc; k++) {
            void *h = dlopen(argv[k], RTLD_NOW | RTLD_LOCAL);
            if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
            void *(*make)(int) = (void *(*)(int))dlsym(h, "plugin_make");
            for (int i = 0; i < 100; i++) { void *p = make(i); made += p != NULL; free(p); }
            dlclose(h);
        }
    printf("made %ld\n", made);
    return 0;
}
"#;

/// Libraries unloaded and others loaded where they were (a plugin host reloading): the
/// rules the stack walker kept for the first one's code must not be followed for the
/// second's. Every stack is walked as libgcc walks it, and none is left to libgcc (the
/// walker starts afresh after each dlclose rather than trip over rules gone stale).
#[test]
fn libraries_unloaded_and_reloaded_are_walked_from_their_own_rules() {
    let dir = sources("memory-reload", &[("framed.c", FRAMED_C), ("host.c", RELOAD_C)]);
    for (lib, frame) in [("liba.so", "-DFRAME=256"), ("libb.so", "-DFRAME=512")] {
        compile(&dir, &["gcc", "-O2", "-g", "-shared", "-fPIC", frame, "framed.c", "-o", lib]);
    }
    compile(&dir, &["gcc", "-O2", "-g", "host.c", "-o", "host", "-ldl"]);
    let libs = [dir.join("liba.so"), dir.join("libb.so")];
    let args: Vec<&str> = libs.iter().map(|l| l.to_str().unwrap()).collect();
    let tmp = tempfile::tempdir().unwrap();
    let ran = checked_census(&dir.join("host"), &args, &tmp.path().join("c")).success();
    assert_eq!(ran.stdout, "made 600\n");
    let (fast, libgcc) = walks_agree(&ran.stderr);
    assert!(fast >= 600, "{}", ran.stderr);
    assert_eq!(libgcc, 0, "{}", ran.stderr);
    silent(&MemoryCensus::load(&tmp.path().join("c")).unwrap());
}

/// Five threads allocate; the one a SIGTERM lands on exits from its handler, perhaps
/// while it is inside the interposer.
const SIGNAL_C: &str = r#"
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static void on_term(int s) { (void)s; exit(0); }
static void *work(void *arg) {
    (void)arg;
    for (unsigned i = 0;; i++) {
        void *volatile p = malloc(64 + i % 512);
        free(p);
    }
    return NULL;
}
int main(int argc, char **argv) {
    (void)argv;
    signal(SIGTERM, on_term);
    pthread_t t[5];
    for (int i = 0; i < 5; i++) pthread_create(&t[i], NULL, work, NULL);
    usleep(20000);
    pthread_kill(t[argc % 5], SIGTERM);
    for (;;) {
        void *volatile p = malloc(100);
        free(p);
    }
}
"#;

#[test]
fn exit_from_a_signal_handler_among_allocating_threads_never_hangs() {
    let dir = sources("memory-signal-exit", &[("sig.c", SIGNAL_C)]);
    compile(&dir, &["gcc", "-O2", "-g", "sig.c", "-o", "sig", "-pthread"]);
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..50 {
        let mut child = ffiprof()
            .args(["memory", "--out"])
            .arg(tmp.path().join(format!("run{i}")))
            .arg("--")
            .arg(dir.join("sig"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("run {i} hung under ffiprof memory");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(0), "run {i}");
    }
}

/// C++ that carries its own libstdc++ (linked in statically, as rustc's LLVM and its
/// linker do): its operators are not interposed, and `operator delete` jumps on to
/// `free`, or is inlined into its callers under LTO.
const STATIC_CXX: &str = r#"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>
int main() {
    std::map<std::string, std::shared_ptr<std::vector<int>>> m;
    for (int i = 0; i < 300; i++) {
        auto v = std::make_shared<std::vector<int>>(i % 17 + 1, i);
        m[std::to_string(i) + std::string(30, 'x')] = v;
    }
    long total = 0;
    for (auto &kv : m) total += kv.second->size();
    m.clear();
    for (int i = 0; i < 100; i++) {
        char *volatile s = strdup("abc");
        free(s);
    }
    std::printf("%ld\n", total);
}
"#;

#[test]
fn cxx_with_its_own_libstdcxx_is_never_crossed() {
    let test = "memory_correct::cxx_with_its_own_libstdcxx_is_never_crossed";
    if !common::tool_available(test, "g++", "--version", "apt-get install g++") {
        return;
    }
    let dir = sources("memory-static-cxx", &[("p.cpp", STATIC_CXX)]);
    let tmp = tempfile::tempdir().unwrap();
    for (name, lto) in [("static", "-fno-lto"), ("static-lto", "-flto")] {
        compile(&dir, &["g++", "-O2", lto, "p.cpp", "-static-libstdc++", "-o", name]);
        let c = census_as_bare(&dir.join(name), &[], &tmp.path().join(name));
        silent(&c);
        no_lifetime_errors(&dir.join(name), &[], &tmp.path().join(format!("{name}-lifetimes")));
        let o = c.ownership.as_ref().unwrap();
        let told = |f: Family| {
            o.frees.iter().filter(|p| p.allocated_by == f).map(|p| p.blocks).sum::<u64>()
        };
        assert!(told(Family::Cxx) >= 300, "{name}: {:#?}", o.frees);
        assert!(told(Family::C) >= 100, "{name}: {:#?}", o.frees);
    }
}

/// A program whose file size limit is smaller than its heap log would grow to (as under
/// `ulimit -f`, or a small tmpfs): it runs as it does bare, and the census says the log
/// stopped and after how many events.
const LIMITED_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
int main(void) {
    struct rlimit limit = {40 << 20, 40 << 20};
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0) return 9;
    unsigned long sum = 0;
    for (int i = 0; i < 1500000; i++) {
        char *volatile p = malloc(16 + i % 64);
        p[0] = (char)i;
        sum += (unsigned char)p[0];
        free(p);
    }
    printf("%lu\n", sum);
    return 0;
}
"#;

#[test]
fn a_log_that_cannot_grow_stops_and_the_program_goes_on() {
    let dir = sources("memory-file-limit", &[("limited.c", LIMITED_C)]);
    compile(&dir, &["gcc", "-O2", "-g", "limited.c", "-o", "limited"]);
    let tmp = tempfile::tempdir().unwrap();
    let c = census_as_bare(&dir.join("limited"), &[], &tmp.path().join("c"));
    let note = c.notes.iter().find(|n| n.contains("could not grow"));
    assert!(note.is_some_and(|n| n.contains("after its first")), "{:?}", c.notes);
    // What was logged is counted: the first 32 MiB of the log, hundreds of thousands of
    // events, and fewer than the program made.
    assert!(c.totals.blocks > 100_000 && c.totals.blocks < 1_500_000, "{:?}", c.totals);
    silent(&c);
}

const PACKAGE_BUILD_RS: &str = r#"
use std::process::Command;
fn main() {
    let out = std::env::var("OUT_DIR").unwrap();
    let ok = |c: &mut Command| assert!(c.status().unwrap().success());
    ok(Command::new("cc").args(["-O2", "-c", "lib.c", "-o"]).arg(format!("{out}/lib.o")));
    ok(Command::new("ar").args(["rcs"]).arg(format!("{out}/libtail.a")).arg(format!("{out}/lib.o")));
    println!("cargo:rustc-link-search=native={out}");
    println!("cargo:rustc-link-lib=static=tail");
    println!("cargo:rerun-if-changed=lib.c");
}
"#;

/// Cargo's release profile without debug information, stripped, as many users ship it.
const PACKAGE_MANIFEST: &str = r#"
[package]
name = "tailpkg"
version = "0.1.0"
edition = "2021"
build = "build.rs"

[profile.release]
debug = false
strip = "symbols"

[workspace]
"#;

#[test]
fn bin_builds_add_line_tables_and_the_crossings_are_exact() {
    let dir = sources(
        "memory-stripped-package",
        &[
            ("Cargo.toml", PACKAGE_MANIFEST),
            ("build.rs", PACKAGE_BUILD_RS),
            ("lib.c", TAIL_C),
            ("src/main.rs", TAIL_RUST),
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mem");
    let ran = run(ffiprof()
        .args(["memory", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .args(["--bin", "tailpkg", "--out"])
        .arg(&out))
    .success();
    assert!(ran.stderr.contains("built again with line tables"), "{}", ran.stderr);
    assert!(ran.stderr.contains("CARGO_PROFILE_RELEASE_DEBUG=line-tables-only"), "{}", ran.stderr);
    assert_eq!(ran.stdout, "done\n");
    let c = MemoryCensus::load(&out).unwrap();
    let o = c.ownership.as_ref().unwrap();
    assert_eq!(o.crossed_frees.len(), 1, "{:#?}", o.crossed_frees);
    let x = &o.crossed_frees[0];
    assert_eq!((x.allocated_by, x.freed_by, x.blocks), (Family::Rust, Family::C, 50));
    assert_eq!(x.free_function, "c_take_and_free");
    assert_eq!(x.free_rust_caller.as_deref(), Some("tailpkg::rust_to_c_free"));
    assert!(o.invalid_frees.is_empty(), "{:#?}", o.invalid_frees);
    // Sampled, the ownership census is the same: every free is in the log either way.
    let sampled = tmp.path().join("sampled");
    run(ffiprof()
        .args(["memory", "--sample-bytes", "524288", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .args(["--bin", "tailpkg", "--out"])
        .arg(&sampled))
    .success();
    let s = MemoryCensus::load(&sampled).unwrap().ownership.unwrap();
    assert_eq!((&s.frees, &s.invalid_frees, &s.unknown), (&o.frees, &o.invalid_frees, &o.unknown));
    // Each crossed free the same but for the allocation's site: an allocation sampling
    // kept no stack for is named by the code that called the allocator.
    let key = |x: &ffiprof::memory::CrossedFree| {
        (
            x.allocated_by,
            x.freed_by,
            x.free_function.clone(),
            x.free_rust_caller.clone(),
            x.blocks,
            x.bytes,
        )
    };
    assert_eq!(
        s.crossed_frees.iter().map(key).collect::<Vec<_>>(),
        o.crossed_frees.iter().map(key).collect::<Vec<_>>()
    );
    // With every stack kept, the allocation is named where the program asked, and the
    // site keeps its whole stacks, root to the allocator (format!'s frames above it).
    assert_eq!(x.alloc_function, "tailpkg::rust_to_c_free");
    let site = c.sites.iter().find(|s| s.function == "tailpkg::rust_to_c_free").unwrap();
    assert!(!site.stacks.is_empty());
    for &i in &site.stacks {
        let functions = c.stack_table.functions(i);
        let at = functions.iter().position(|f| *f == "tailpkg::rust_to_c_free");
        assert!(at.is_some_and(|at| functions[at - 1] == "tailpkg::main"), "{functions:?}");
    }
}

/// The census with `LD_PRELOAD` set for both the bare run and ffiprof's.
fn census_with_preload(program: &Path, preload: &Path, out: &Path) -> MemoryCensus {
    let bare = Command::new(program).env("LD_PRELOAD", preload).output().unwrap();
    let ran = run(ffiprof()
        .env("LD_PRELOAD", preload)
        .args(["memory", "--out"])
        .arg(out)
        .arg("--")
        .arg(program));
    assert_eq!(ran.status.code(), bare.status.code(), "{}", ran.stderr);
    assert_eq!(ran.stdout, String::from_utf8_lossy(&bare.stdout), "{}", ran.stderr);
    MemoryCensus::load(out).unwrap()
}

/// C++ and C allocating, with a question only the serving allocator can answer
/// (`malloc_usable_size`).
const ALLOCATOR_CPP: &str = r#"
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>
#include <malloc.h>
int main() {
    std::map<int, std::string> m;
    for (int i = 0; i < 2000; i++) m[i] = std::string(50 + i % 100, 'q');
    std::vector<void *> v;
    for (int i = 0; i < 1000; i++) v.push_back(malloc(100 + i));
    size_t usable = 0;
    for (void *p : v) usable += malloc_usable_size(p) >= 100;
    for (void *p : v) free(p);
    std::printf("%zu %zu\n", m.size(), usable);
}
"#;

/// A user's own allocator preloaded (jemalloc's and tcmalloc's define operator new and
/// delete too): it keeps serving, and the census is the one glibc's malloc gives.
#[test]
fn a_users_preloaded_allocator_keeps_serving_and_is_counted() {
    let test = "memory_correct::a_users_preloaded_allocator_keeps_serving_and_is_counted";
    if !common::tool_available(test, "g++", "--version", "apt-get install g++") {
        return;
    }
    let dir = sources("memory-preloaded-allocator", &[("p.cpp", ALLOCATOR_CPP)]);
    compile(&dir, &["g++", "-O2", "-g", "p.cpp", "-o", "p"]);
    let tmp = tempfile::tempdir().unwrap();
    let plain = census_as_bare(&dir.join("p"), &[], &tmp.path().join("plain"));
    silent(&plain);
    let multiarch = Command::new("gcc").arg("-dumpmachine").output().unwrap();
    let lib_dir = Path::new("/usr/lib").join(String::from_utf8_lossy(&multiarch.stdout).trim());
    for (lib, package) in
        [("libjemalloc.so.2", "libjemalloc2"), ("libtcmalloc_minimal.so.4", "libtcmalloc-minimal4")]
    {
        let path = lib_dir.join(lib);
        if !path.is_file() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{lib} is missing: apt-get install {package}"
            );
            eprintln!("SKIPPED {test} ({lib}): apt-get install {package}");
            continue;
        }
        let c = census_with_preload(&dir.join("p"), &path, &tmp.path().join(lib));
        silent(&c);
        let o = c.ownership.as_ref().unwrap();
        assert_eq!(o.frees, plain.ownership.as_ref().unwrap().frees, "{lib}");
    }
}

/// Threads allocate while the program forks a child that allocates and leaves, then the
/// program becomes another (exec without fork).
const FORK_EXEC_C: &str = r#"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile int stop;
static void *work(void *arg) {
    (void)arg;
    for (unsigned i = 0; !stop; i++) {
        void *volatile p = malloc(32 + i % 200);
        free(p);
    }
    return NULL;
}
int main(int argc, char **argv) {
    if (argc > 1) {
        char *volatile p = malloc(77);
        free(p);
        printf("after exec\n");
        return 0;
    }
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, work, NULL);
    usleep(10000);
    pid_t child = fork();
    if (child == 0) {
        for (int i = 0; i < 1000; i++) {
            char *volatile p = malloc(64);
            free(p);
        }
        exit(3);
    }
    int status = 0;
    waitpid(child, &status, 0);
    stop = 1;
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    printf("child %d\n", WEXITSTATUS(status));
    fflush(stdout);
    execl("/proc/self/exe", argv[0], "after", (char *)NULL);
    return 1;
}
"#;

#[test]
fn fork_without_exec_and_exec_without_fork_run_as_bare_and_are_told() {
    let dir = sources("memory-fork-exec", &[("fe.c", FORK_EXEC_C)]);
    compile(&dir, &["gcc", "-O2", "-g", "fe.c", "-o", "fe", "-pthread"]);
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..4 {
        let c = census_as_bare(&dir.join("fe"), &[], &tmp.path().join(format!("alone{i}")));
        silent(&c);
        // Not followed: the child is not counted, and the exec is said.
        assert_eq!(c.processes.len(), 1, "{:?}", c.processes);
        assert!(c.notes.iter().any(|n| n.contains("_exit or an exec")), "{:?}", c.notes);
    }
    let out = tmp.path().join("followed");
    let ran = run(ffiprof()
        .args(["memory", "--trace-children", "--out"])
        .arg(&out)
        .arg("--")
        .arg(dir.join("fe")))
    .success();
    assert_eq!(ran.stdout, "child 3\nafter exec\n");
    let c = MemoryCensus::load(&out).unwrap();
    silent(&c);
    // The program, its child, and the program it became.
    assert_eq!(c.processes.len(), 3, "{:?}", c.processes);
    assert!(c.notes.iter().any(|n| n.contains("ran another program (exec)")), "{:?}", c.notes);
}

/// A timer's signal handler that allocates and frees, and one that forks. glibc's malloc
/// is not async-signal-safe: the program allocates in its handler only where the thread
/// it interrupted is not inside malloc, free or fork itself (bare, it would corrupt
/// glibc's heap); under ffiprof the interposer's own work around them is what a handler
/// may interrupt.
const HANDLER_C: &str = r#"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
static void *volatile kept[64];
static volatile sig_atomic_t busy, ticks, allocated;
static void on_alarm(int s) {
    (void)s;
    ticks++;
    if (busy) return;
    unsigned i = allocated++ % 64;
    free(kept[i]);
    kept[i] = malloc(24 + i);
}
static void on_usr1(int s) {
    (void)s;
    busy = 1;
    pid_t child = fork();
    if (child == 0) _exit(0);
    busy = 0;
    waitpid(child, NULL, 0);
}
int main(void) {
    signal(SIGALRM, on_alarm);
    signal(SIGUSR1, on_usr1);
    struct itimerval every = {{0, 200}, {0, 200}};
    setitimer(ITIMER_REAL, &every, NULL);
    unsigned long sum = 0;
    for (int i = 0; i < 400000; i++) {
        busy = 1;
        char *volatile p = malloc(16 + i % 100);
        busy = 0;
        p[0] = 1;
        sum += p[0];
        busy = 1;
        free(p);
        busy = 0;
        if (i % 50000 == 0) raise(SIGUSR1);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    busy = 1;
    for (int i = 0; i < 64; i++) free(kept[i]);
    printf("%lu\n", sum);
    return 0;
}
"#;

#[test]
fn signal_handlers_that_allocate_free_and_fork_are_no_errors() {
    let dir = sources("memory-signal-handlers", &[("h.c", HANDLER_C)]);
    compile(&dir, &["gcc", "-O2", "-g", "h.c", "-o", "h"]);
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..2 {
        let c = census_as_bare(&dir.join("h"), &[], &tmp.path().join(format!("run{i}")));
        silent(&c);
        assert!(c.totals.blocks >= 400_000, "{:?}", c.totals);
    }
    no_lifetime_errors(&dir.join("h"), &[], &tmp.path().join("lifetimes"));
}

/// Threads hand blocks to each other: one allocates, another reallocs (often moving the
/// block), a third frees, each call made outside the slots' locks so a freed address is
/// soon another thread's. The log's order (one sequence the threads share; a realloc's
/// release and arrival at their own numbers) must keep every block live once: then the
/// blocks counted are the program's calls plus the C library's own few, and those few are
/// exactly the blocks left at exit. A record out of order leaves a block live or loses one.
const HANDOFF_C: &str = r#"
/* Threads hand blocks to each other through shared slots: one allocates, another grows or
 * shrinks it with realloc (often moving it), a third frees it; each allocator call is made
 * outside the slots' locks, so a freed address is soon another thread's. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define SLOTS 256
static void *slot[SLOTS];
static pthread_mutex_t lock[SLOTS];
static long ops = 20000;
static long allocs, reallocs, frees;
static void *work(void *arg) {
    uint64_t x = 0x9e3779b97f4a7c15ull * (uintptr_t)arg + 1;
    long a = 0, r = 0, f = 0;
    for (long n = 0; n < ops; n++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int i = (int)(x % SLOTS);
        size_t size = 16 + (x >> 20) % 2000;
        pthread_mutex_lock(&lock[i]);
        void *p = slot[i];
        slot[i] = NULL;
        pthread_mutex_unlock(&lock[i]);
        if (!p) { p = malloc(size); memset(p, 1, 16); a++; }
        else if ((x >> 40) % 3) { p = realloc(p, size); r++; }
        else { free(p); f++; p = NULL; }
        if (!p) continue;
        pthread_mutex_lock(&lock[i]);
        void *other = slot[i];
        if (!other) slot[i] = p;
        pthread_mutex_unlock(&lock[i]);
        if (other) { free(p); f++; }
    }
    __atomic_fetch_add(&allocs, a, __ATOMIC_RELAXED);
    __atomic_fetch_add(&reallocs, r, __ATOMIC_RELAXED);
    __atomic_fetch_add(&frees, f, __ATOMIC_RELAXED);
    return NULL;
}
int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    if (argc > 2) ops = atol(argv[2]);
    for (int i = 0; i < SLOTS; i++) pthread_mutex_init(&lock[i], NULL);
    /* Small stacks: glibc keeps them all in its cache, and with them each thread's TLS
     * block, whatever `ulimit -s` says (beyond the cache, it frees some). */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 << 10);
    pthread_t t[64];
    for (int i = 0; i < threads; i++) pthread_create(&t[i], &attr, work, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < SLOTS; i++) if (slot[i]) { free(slot[i]); frees++; }
    printf("%ld %ld %ld\n", allocs, reallocs, frees);
    return 0;
}
"#;

#[test]
fn blocks_handed_between_threads_are_each_live_once() {
    let dir = sources("memory-handoff", &[("handoff.c", HANDOFF_C)]);
    compile(&dir, &["gcc", "-O2", "-g", "handoff.c", "-o", "handoff", "-pthread"]);
    let tmp = tempfile::tempdir().unwrap();
    // Every stack kept, twice; then sampled.
    let modes: [&[&str]; 3] = [&[], &[], &["--sample-bytes", "524288"]];
    for (i, mode) in modes.into_iter().enumerate() {
        let out = tmp.path().join(format!("run{i}"));
        let ran = run(ffiprof()
            .arg("memory")
            .args(mode)
            .arg("--out")
            .arg(&out)
            .arg("--")
            .arg(dir.join("handoff"))
            .args(["4", "20000"]))
        .success();
        let calls: Vec<u64> = ran.stdout.split_whitespace().map(|w| w.parse().unwrap()).collect();
        let (allocs, reallocs, frees) = (calls[0], calls[1], calls[2]);
        assert_eq!(allocs, frees, "{}", ran.stdout);
        assert!(reallocs > 10_000, "{}", ran.stdout);
        let c = MemoryCensus::load(&out).unwrap();
        silent(&c);
        let t = c.totals;
        let libc_own = t.blocks - (allocs + reallocs);
        assert!(libc_own < 32, "{t:?} for {allocs} mallocs and {reallocs} reallocs");
        assert_eq!(t.blocks_at_exit, libc_own, "{mode:?}: {t:?}");
    }
}
