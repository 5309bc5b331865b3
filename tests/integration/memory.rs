//! `ffiprof memory` end to end: a program built here whose allocations are known by
//! construction (a C function that allocates S bytes N times and frees some, a planted C
//! leak, libc's `strdup` leaking K strings, a Rust buffer live at the peak), counted by the
//! native engine and equal to `--dhat`'s census site for site; the SQLite example's heap
//! under rusqlite's callers, compare of two censuses, and bad input. The ownership
//! census's own program is in `memory_ownership.rs`.

use crate::common::{self, ffiprof, run};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ffiprof::memory::{MemoryCensus, Site};
use ffiprof::stacks::Language;

const C_SOURCE: &str = r#"
#include <stdlib.h>

static void *kept[1000];

void mem_alloc_many(size_t size, int n, int freed) {
    for (int i = 0; i < n; i++) kept[i] = malloc(size);
    for (int i = 0; i < freed; i++) free(kept[i]);
}

void *mem_leak(size_t size) {
    char *p = malloc(size);
    p[0] = 1;
    return p;
}
"#;

const RUST_SOURCE: &str = r#"
use std::os::raw::c_char;

extern "C" {
    fn mem_alloc_many(size: usize, n: i32, freed: i32);
    fn mem_leak(size: usize) -> *mut u8;
    fn strdup(s: *const c_char) -> *mut c_char;
}

#[inline(never)]
fn rust_buffer(bytes: usize) -> Vec<u8> {
    vec![1u8; bytes]
}

#[inline(never)]
fn leak_strings(k: u64) {
    for _ in 0..k {
        std::hint::black_box(unsafe { strdup(c"leak".as_ptr()) });
    }
}

#[inline(never)]
fn plant_leak(size: usize) {
    std::hint::black_box(unsafe { mem_leak(size) });
}

// Work after the call, so that the call is not a tail call and this frame stays.
#[inline(never)]
fn c_work(size: usize, n: i32, freed: i32) -> usize {
    unsafe { mem_alloc_many(size, n, freed) };
    std::hint::black_box(size)
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let (buffer, k, leak, size, n, freed) = (args[0], args[1], args[2], args[3], args[4], args[5]);
    let buf = rust_buffer(buffer as usize);
    leak_strings(k);
    plant_leak(leak as usize);
    // The heap's peak: everything above is live when the last block here is allocated.
    c_work(size as usize, n as i32, freed as i32);
    let check = buf.iter().map(|&b| b as u64).sum::<u64>();
    drop(buf);
    println!("{check}");
}
"#;

fn program() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| common::build_program("memory-test-program", C_SOURCE, &[], RUST_SOURCE))
}

/// The program's arguments: Rust buffer, strdup'ed strings, planted leak, C block size,
/// C blocks, C blocks freed.
const ARGS: [u64; 6] = [1 << 20, 7, 777, 100, 50, 20];

fn census(dir: &Path, args: [u64; 6], engine: &[&str]) -> (MemoryCensus, common::Ran) {
    let ran = run(ffiprof()
        .args(["memory", "--out"])
        .arg(dir)
        .args(engine)
        .arg("--")
        .arg(program())
        .args(args.map(|a| a.to_string())))
    .success();
    (MemoryCensus::load(dir).unwrap(), ran)
}

/// A function's name as both symbolizers agree on it: the last path segment, without
/// generics (before or after it) or a symbol version (valgrind names an inlined frame by
/// its bare DWARF name, `map_or_else<&str, ..>`, blazesym by its path,
/// `core::option::Option<T>::map_or_else`; valgrind keeps `@@GLIBC_2.32`).
fn plain(name: &str) -> String {
    let name = name.split(" (inlined into").next().unwrap_or(name);
    let name = name.split("@@").next().unwrap_or(name).replace("->", "");
    let (mut depth, mut bare) = (0, String::new());
    for c in name.chars() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            _ if depth == 0 => bare.push(c),
            _ => {}
        }
    }
    // v0 mangling (rustc's `-C symbol-mangling-version=v0`, nightly's default) names a
    // generic function's arguments after it, `collect::<Vec<u64>>`: the path ends in `::`.
    let bare = bare.trim_end_matches("::");
    bare.rsplit("::").next().unwrap_or(bare).to_owned()
}

/// Every site's figures by its plain key (function, language, Rust caller).
fn by_plain_site(c: &MemoryCensus) -> std::collections::BTreeMap<String, ffiprof::memory::Figures> {
    let mut m: std::collections::BTreeMap<String, ffiprof::memory::Figures> = Default::default();
    for s in &c.sites {
        let caller = s.rust_caller.as_deref().map(plain).unwrap_or_default();
        let key = format!("{} [{}] under {caller}", plain(&s.function), s.language.name());
        m.entry(key).or_default().add(&s.figures);
    }
    m
}

fn site<'a>(c: &'a MemoryCensus, function: &str) -> &'a Site {
    let found: Vec<&Site> = c.sites.iter().filter(|s| s.function.ends_with(function)).collect();
    assert_eq!(found.len(), 1, "{function}: {:#?}", c.sites);
    found[0]
}

/// The planted figures, as either engine must count them.
fn assert_planted(c: &MemoryCensus) {
    let [buffer, k, leak, size, n, freed] = ARGS;
    let many = site(c, "mem_alloc_many");
    assert_eq!(many.language, Language::C);
    assert_eq!(many.rust_caller.as_deref(), Some("main::c_work"));
    let f = many.figures;
    assert_eq!((f.bytes, f.blocks), (size * n, n));
    assert_eq!((f.bytes_at_peak, f.blocks_at_peak), (size * n, n));
    assert_eq!((f.bytes_at_exit, f.blocks_at_exit), (size * (n - freed), n - freed));

    let planted = site(c, "mem_leak");
    assert_eq!(planted.rust_caller.as_deref(), Some("main::plant_leak"));
    assert_eq!((planted.figures.bytes_at_exit, planted.figures.blocks_at_exit), (leak, 1));

    let dup = site(c, "strdup");
    assert_eq!(dup.language, Language::CRuntime, "{dup:?}");
    assert_eq!(dup.rust_caller.as_deref(), Some("main::leak_strings"));
    assert_eq!((dup.figures.bytes_at_exit, dup.figures.blocks_at_exit), (5 * k, k));

    let rust = site(c, "rust_buffer");
    assert_eq!((rust.language, rust.rust_caller.as_deref()), (Language::Rust, None));
    assert_eq!((rust.figures.bytes_at_peak, rust.figures.blocks_at_peak), (buffer, 1));
    assert_eq!(rust.figures.bytes_at_exit, 0);
    assert_eq!(rust.allocator, Some(ffiprof::memory::Family::Rust));
    assert_eq!(many.allocator, Some(ffiprof::memory::Family::C));
    assert!(c.rust_heap_seen);
    let sum = |l: &str| c.by_language[l].bytes_at_exit;
    assert_eq!(sum("c"), size * (n - freed) + leak);
}

#[test]
fn the_native_census_is_exact_and_equals_dhats_site_for_site() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("memory");
    let (c, ran) = census(&dir, ARGS, &[]);
    assert_eq!(c.engine, ffiprof::memory::Engine::Native);
    assert_planted(&c);
    // Nothing allocated went without a stack, and the sites add up to the whole heap.
    assert!(c.notes.iter().all(|n| !n.contains("no stack")), "{:?}", c.notes);
    let mut sum = ffiprof::memory::Figures::default();
    c.sites.iter().for_each(|s| sum.add(&s.figures));
    assert_eq!((sum.bytes, sum.blocks), (c.totals.bytes, c.totals.blocks));

    // The files: flamegraphs, folded stacks, a pprof heap profile go tool pprof reads.
    for f in ["memory.md", "peak.svg", "exit.svg", "peak.folded", "exit.folded"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let exit = std::fs::read_to_string(dir.join("exit.folded")).unwrap();
    assert!(exit.lines().any(|l| l.contains("main::leak_strings;strdup ")), "{exit}");
    let pprof = ffiprof::decode_pprof(&std::fs::read(dir.join("memory.pb.gz")).unwrap()).unwrap();
    let sum_of = |t: &str| pprof.sums.iter().find(|(n, _)| n == t).map(|p| p.1);
    assert_eq!(sum_of("alloc_space"), Some(c.totals.bytes as i64));
    assert_eq!(sum_of("alloc_objects"), Some(c.totals.blocks as i64));
    // The terminal: each side's share, and the largest C sites with their Rust callers.
    assert!(ran.stderr.contains("at the peak: "), "{}", ran.stderr);
    assert!(ran.stderr.contains("strdup (c-runtime, libc.so.6) holds 35 B in 7 blocks at the peak, asked for under main::leak_strings, and never frees 35 B in 7 blocks"), "{}", ran.stderr);

    // DHAT's census of the same program: every site's figures equal, and the totals.
    if !common::valgrind_here("the_native_census_is_exact_and_equals_dhats_site_for_site") {
        return;
    }
    let dhat_dir = tmp.path().join("dhat");
    let (d, _) = census(&dhat_dir, ARGS, &["--dhat"]);
    assert_eq!(d.engine, ffiprof::memory::Engine::Dhat);
    assert_planted(&d);
    assert_eq!(d.dhat_summary, Some(d.totals), "{:?}", d.notes);
    assert_eq!(c.totals, d.totals);
    assert_eq!(by_plain_site(&c), by_plain_site(&d));

    // --from reads DHAT's files again, to the same sites.
    let again = tmp.path().join("again");
    let files: Vec<PathBuf> = std::fs::read_dir(dhat_dir.join("dhat"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("dhat.out"))
        .collect();
    run(ffiprof().args(["memory", "--out"]).arg(&again).arg("--from").args(&files)).success();
    assert_eq!(MemoryCensus::load(&again).unwrap().sites, d.sites);
}

#[test]
fn sampling_scales_the_sites_and_keeps_the_totals_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let (exact, _) = census(&tmp.path().join("exact"), ARGS, &[]);
    let (sampled, _) = census(&tmp.path().join("sampled"), ARGS, &["--sample-bytes", "4096"]);
    assert_eq!(sampled.sample_bytes, Some(4096));
    assert_eq!(sampled.totals, exact.totals);
    assert!(sampled.notes.iter().any(|n| n.starts_with("sampled")), "{:?}", sampled.notes);
    // The 1 MiB buffer is sampled for certain (its weight is 1): its figures are exact.
    let (a, b) = (site(&exact, "rust_buffer"), site(&sampled, "rust_buffer"));
    assert_eq!(a.figures, b.figures);
    run(ffiprof().args(["memory", "--sample-bytes", "0", "--", "/bin/true"]))
        .usage_error("--sample-bytes 0");
}

#[test]
fn compare_is_exact_and_fails_on_more_leaked_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    census(&a, ARGS, &[]);
    census(&b, ARGS, &[]);
    let mut twice = ARGS;
    twice[1] *= 2;
    census(&c, twice, &[]);
    run(ffiprof().args(["compare", "--fail-on-regression"]).arg(&a).arg(&b))
        .success()
        .stdout_has("0 regressions");
    run(ffiprof().args(["compare", "--fail-on-regression"]).arg(&a).arg(&c))
        .code(3)
        .stdout_has("blocks at exit 7 -> 14");
}

#[test]
fn the_sqlite_examples_heap_is_c_under_rusqlites_callers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sqlite");
    run(ffiprof()
        .args(["memory", "--out"])
        .arg(&dir)
        .arg("--")
        .arg(common::example("sqlite_threads"))
        .args(["--threads", "2", "--rounds", "2"]))
    .success();
    let c = MemoryCensus::load(&dir).unwrap();
    // Two threads allocating and freeing at once: every block accounted for (the example
    // closes what it opens), and nothing taken for an invalid free.
    let ownership = c.ownership.as_ref().unwrap();
    assert!(ownership.invalid_frees.is_empty(), "{:#?}", ownership.invalid_frees);
    // rusqlite keeps Rust's rule: what Rust allocated Rust frees, C's blocks C frees (its
    // drops end in tail jumps to free, which leave no frame of Rust's allocator).
    assert!(ownership.crossed_frees.is_empty(), "{:#?}", ownership.crossed_frees);
    let under_rusqlite: Vec<&Site> = c
        .sites
        .iter()
        .filter(|s| s.language == Language::C)
        .filter(|s| s.rust_caller.as_deref().is_some_and(|r| r.contains("rusqlite::")))
        .collect();
    assert!(!under_rusqlite.is_empty(), "{:#?}", c.sites);
    let at_peak: u64 = under_rusqlite.iter().map(|s| s.figures.bytes_at_peak).sum();
    // The connection (its page cache) and the statements, under the rusqlite calls that
    // asked for them.
    for caller in ["open_with_flags", "prepare"] {
        assert!(
            under_rusqlite.iter().any(|s| s.rust_caller.as_deref().unwrap().contains(caller)),
            "{caller}: {under_rusqlite:#?}"
        );
    }
    assert!(at_peak > 100_000, "SQLite's page cache and statements: {at_peak} bytes at the peak");
    assert!(c.by_language["c"].bytes_at_peak > c.by_language["rust"].bytes_at_peak);
}

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let not_dhat = tmp.path().join("x.json");
    std::fs::write(&not_dhat, "{\"a\": 1}").unwrap();
    run(ffiprof().args(["memory", "--out"]).arg(&out).arg("--from").arg(&not_dhat))
        .usage_error("not DHAT's JSON");
    run(ffiprof().args(["memory", "--out"]).arg(&out).args(["--", "/nonexistent/prog"])).code(2);
    run(ffiprof()
        .args(["memory", "--dhat", "--out"])
        .arg(&out)
        .args(["--", "/bin/true"])
        .env("PATH", "/nonexistent"))
    .usage_error("apt-get install valgrind");
    // A static program: no dynamic loader to preload the interposer; DHAT is the way.
    let dir = tmp.path().join("static");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("s.c"), "int main(void) { return 0; }\n").unwrap();
    let built = std::process::Command::new("gcc")
        .current_dir(&dir)
        .args(["-static", "-o", "s", "s.c"])
        .status()
        .is_ok_and(|s| s.success());
    if built {
        run(ffiprof().args(["memory", "--out"]).arg(&out).arg("--").arg(dir.join("s")))
            .usage_error("statically linked")
            .stderr_has("--dhat");
    } else {
        common::skip(
            "bad_input_is_refused_before_anything_is_written",
            "gcc -static needs libc.a (apt-get install libc6-dev)",
        );
    }
    std::fs::write(tmp.path().join("file"), "").unwrap();
    run(ffiprof().args(["memory", "--out"]).arg(tmp.path().join("file")).args(["--", "/bin/true"]))
        .code(2);
    assert!(!out.exists());
}

#[test]
fn children_are_followed_only_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let script = format!("{} {}", program().display(), ARGS.map(|a| a.to_string()).join(" "));
    let followed = tmp.path().join("followed");
    run(ffiprof()
        .args(["memory", "--trace-children", "--out"])
        .arg(&followed)
        .args(["--", "sh", "-c", &script]))
    .success();
    let c = MemoryCensus::load(&followed).unwrap();
    assert!(c.processes.len() >= 2, "{:#?}", c.processes);
    // The shell's own heap is there too; the program's sites are as planted.
    let leak = site(&c, "mem_leak");
    assert_eq!(
        (leak.figures.bytes_at_exit, leak.rust_caller.as_deref()),
        (ARGS[2], Some("main::plant_leak"))
    );
    let many = site(&c, "mem_alloc_many");
    assert_eq!(many.figures.blocks, ARGS[4]);
    let alone = tmp.path().join("alone");
    run(ffiprof().args(["memory", "--out"]).arg(&alone).args(["--", "sh", "-c", &script]))
        .success();
    let c = MemoryCensus::load(&alone).unwrap();
    assert!(c.sites.iter().all(|s| !s.function.ends_with("mem_leak")), "{:#?}", c.sites);
}

const THREADS_C: &str = r#"
#include <stdlib.h>
volatile int sink;
void c_churn(int n) {
    for (int i = 0; i < n; i++) {
        char *volatile p = malloc(24 + i % 40);
        sink += p[0] = 1;
        free(p);
    }
}
"#;

const THREADS_RUST: &str = r#"
extern "C" {
    fn c_churn(n: i32);
}

fn main() {
    let n: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..n {
                    std::hint::black_box(Box::new([t as u8; 48]));
                    std::hint::black_box(vec![i as u8; 16 + i % 64]);
                }
                unsafe { c_churn(n as i32) };
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
"#;

#[test]
fn threads_allocating_at_once_lose_nothing() {
    let program = common::build_program("memory-threads-program", THREADS_C, &[], THREADS_RUST);
    let tmp = tempfile::tempdir().unwrap();
    let census_of = |n: u64| {
        let dir = tmp.path().join(n.to_string());
        run(ffiprof()
            .args(["memory", "--out"])
            .arg(&dir)
            .arg("--")
            .arg(&program)
            .arg(n.to_string()))
        .success();
        MemoryCensus::load(&dir).unwrap()
    };
    let (none, some) = (census_of(0), census_of(20_000));
    // 8 threads, each 20 000 boxes, vectors and C blocks: three blocks per item more, all
    // freed, none taken for an invalid free or a crossed one.
    assert_eq!(some.totals.blocks - none.totals.blocks, 8 * 20_000 * 3);
    assert_eq!(some.totals.blocks_at_exit, none.totals.blocks_at_exit);
    let o = some.ownership.unwrap();
    assert!(o.invalid_frees.is_empty() && o.crossed_frees.is_empty(), "{o:#?}");
}
