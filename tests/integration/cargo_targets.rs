//! `record`, `crossings` and `memory` on a package's own binary, as cargo's flags name it
//! (`--manifest-path`, `--bin`, `--example`, `--package`): a small package made here, with
//! a C function of its own (compiled by its build script) that the binary calls a known
//! number of times, two binaries, and the bad input cargo's words describe. Also through
//! `cargo-ffiprof`, as `cargo ffiprof` runs it.

use crate::common::{self, ffiprof, run};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ffiprof::crossings::Census;
use ffiprof::memory::MemoryCensus;

const C_SOURCE: &str = r#"
#include <stdlib.h>
#include <string.h>
int c_add(int x) { return x + 1; }
char *c_copy(const char *s) {
    char *p = malloc(strlen(s) + 1);
    strcpy(p, s);
    return p;
}
"#;

const BUILD_RS: &str = r#"
use std::process::Command;
fn main() {
    let out = std::env::var("OUT_DIR").unwrap();
    let ok = |c: &mut Command| assert!(c.status().unwrap().success());
    ok(Command::new("cc").args(["-O2", "-g", "-c", "lib.c", "-o"]).arg(format!("{out}/lib.o")));
    ok(Command::new("ar").args(["rcs"]).arg(format!("{out}/libclib.a")).arg(format!("{out}/lib.o")));
    println!("cargo:rustc-link-search=native={out}");
    println!("cargo:rustc-link-lib=static=clib");
    println!("cargo:rerun-if-changed=lib.c");
}
"#;

const MAIN_RS: &str = r#"
use std::os::raw::{c_char, c_int};
extern "C" {
    fn c_add(x: c_int) -> c_int;
    fn c_copy(s: *const c_char) -> *mut c_char;
    fn free(p: *mut std::ffi::c_void);
}

#[inline(never)]
fn add_all(n: i32) -> i32 {
    let mut x = 0;
    for _ in 0..n {
        x = unsafe { c_add(std::hint::black_box(x)) };
    }
    x
}

fn main() {
    let n: i32 = std::env::args().nth(1).map_or(1000, |a| a.parse().unwrap());
    let copy = unsafe { c_copy(c"kept".as_ptr()) };
    println!("{}", add_all(n));
    unsafe { free(copy.cast()) };
}
"#;

const MANIFEST: &str = r#"
[package]
name = "cpkg"
version = "0.1.0"
edition = "2021"
build = "build.rs"

[[bin]]
name = "cpkg"
path = "src/main.rs"

[[bin]]
name = "other"
path = "src/other.rs"

[profile.release]
debug = "line-tables-only"

[workspace]
"#;

/// The package's Cargo.toml, written once per test run.
fn package() -> &'static Path {
    static MADE: OnceLock<PathBuf> = OnceLock::new();
    MADE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cargo-user-package");
        std::fs::create_dir_all(dir.join("src")).unwrap();
        for (file, text) in [
            ("Cargo.toml", MANIFEST),
            ("build.rs", BUILD_RS),
            ("lib.c", C_SOURCE),
            ("src/main.rs", MAIN_RS),
            ("src/other.rs", "fn main() {}\n"),
        ] {
            std::fs::write(dir.join(file), text).unwrap();
        }
        dir.join("Cargo.toml")
    })
}

#[test]
fn memory_runs_the_packages_binary_built_by_cargo() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mem");
    let ran = run(ffiprof()
        .args(["memory", "--manifest-path"])
        .arg(package())
        .args(["--bin", "cpkg", "--out"])
        .arg(&out)
        .args(["--", "5"]))
    .success();
    assert!(ran.stderr.contains("built "), "{}", ran.stderr);
    assert!(ran.stdout.contains('5'), "the program's own output passes through: {}", ran.stdout);
    let c = MemoryCensus::load(&out).unwrap();
    let copy = c.sites.iter().find(|s| s.function == "c_copy").expect("c_copy's site");
    assert_eq!(copy.rust_caller.as_deref(), Some("cpkg::main"));
    assert_eq!((copy.figures.bytes, copy.figures.blocks), (5, 1));
    // cargo ffiprof: cargo runs `cargo-ffiprof ffiprof ARGS`.
    let via_cargo = tmp.path().join("via-cargo");
    run(std::process::Command::new(env!("CARGO_BIN_EXE_cargo-ffiprof"))
        .args(["ffiprof", "memory", "--manifest-path"])
        .arg(package())
        .args(["--bin", "cpkg", "--out"])
        .arg(&via_cargo)
        .args(["--", "5"]))
    .success();
    assert!(via_cargo.join("memory.json").is_file());
}

#[test]
fn record_runs_the_packages_binary_built_by_cargo() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rec");
    run(ffiprof()
        .args(["record", "--manifest-path"])
        .arg(package())
        .args(["--bin", "cpkg", "--out"])
        .arg(&out)
        .args(["--", "3000000"]))
    .success();
    assert!(out.is_dir());
}

#[test]
fn crossings_counts_the_packages_calls_exactly() {
    if !common::valgrind_here("cargo_targets::crossings_counts_the_packages_calls_exactly") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cross");
    run(ffiprof()
        .args(["crossings", "--native-runs", "0", "--manifest-path"])
        .arg(package())
        .args(["-p", "cpkg", "--bin", "cpkg", "--out"])
        .arg(&out)
        .args(["--", "1234"]))
    .success();
    let c = Census::load(&out).unwrap();
    let calls: u64 = c.crossings.iter().filter(|x| x.callee == "c_add").map(|x| x.calls).sum();
    assert_eq!(calls, 1234, "{:#?}", c.crossings);
}

#[test]
fn cargo_s_bad_input_is_the_users_to_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("never");
    let cmd = |extra: &[&str]| {
        let mut c = ffiprof();
        c.args(["memory", "--out"]).arg(&out).arg("--manifest-path").arg(package()).args(extra);
        run(&mut c)
    };
    cmd(&[]).usage_error("--bin NAME (binaries: cpkg, other)");
    cmd(&["--bin", "nope"]).usage_error("no binary `nope`");
    cmd(&["-p", "nope"]).usage_error("no package `nope`");
    let broken = tmp.path().join("broken");
    std::fs::create_dir_all(broken.join("src")).unwrap();
    std::fs::write(
        broken.join("Cargo.toml"),
        "[package]\nname = \"broken\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(broken.join("src/main.rs"), "fn main() { let x: u8 = \"no\"; }\n").unwrap();
    run(ffiprof()
        .args(["memory", "--out"])
        .arg(&out)
        .arg("--manifest-path")
        .arg(broken.join("Cargo.toml")))
    .usage_error("the build failed");
    run(ffiprof()
        .args(["memory", "--out"])
        .arg(&out)
        .args(["--manifest-path", "/nonexistent/Cargo.toml"]))
    .usage_error("cargo cannot read the package");
    assert!(!out.exists());
}
