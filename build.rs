//! Compiles the C side of the workloads: `csrc/*.c` into a static library linked into
//! ffiprof, and `csrc/dylib/*.c` into a shared library that the `dylib` workload loads at
//! run time. Both keep frame pointers and debug info so that samplers can unwind and
//! symbolize them. `csrc/heap/interpose.c` becomes the heap interposer `ffiprof memory`
//! preloads into the programs it runs.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const C_FLAGS: &[&str] = &["-O2", "-g", "-fno-omit-frame-pointer", "-std=c11", "-Wall", "-Wextra"];

fn c_sources(dir: &Path) -> Vec<PathBuf> {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "c"))
        .collect();
    files.sort();
    files
}

fn main() {
    let csrc = Path::new("csrc");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=csrc/ffiprof.h");

    let mut build = cc::Build::new();
    build.opt_level(2).debug(true).warnings(true).include(csrc);
    for flag in C_FLAGS {
        build.flag_if_supported(flag);
    }
    for file in c_sources(csrc) {
        println!("cargo:rerun-if-changed={}", file.display());
        build.file(file);
    }
    build.compile("ffiprof_c");
    println!("cargo:rustc-link-lib=m");

    // The shared library is built with the same compiler that cc chose, by hand: cc only
    // makes static archives.
    let compiler = build.get_compiler();
    let dylib = out_dir.join("libffiprof_dyn.so");
    let mut cmd = compiler.to_command();
    cmd.args(C_FLAGS).args(["-shared", "-fPIC", "-o"]).arg(&dylib);
    for file in c_sources(&csrc.join("dylib")) {
        println!("cargo:rerun-if-changed={}", file.display());
        cmd.arg(file);
    }
    let status = cmd.status().unwrap_or_else(|e| {
        panic!(
            "cannot run the C compiler {:?} ({e}); install gcc (Debian: apt-get install gcc) or set CC",
            compiler.path()
        )
    });
    assert!(status.success(), "building {} failed: {status}", dylib.display());

    // The dylib workload finds the library here unless FFIPROF_DYLIB says otherwise.
    println!("cargo:rustc-env=FFIPROF_BUILT_DYLIB={}", dylib.display());

    // The heap interposer `ffiprof memory` preloads: only its allocator entry points and the
    // few calls it must see (sigaction, signal, dlclose) are exported; walk.c (or libgcc's
    // unwinder) walks the program's stacks.
    let heap = out_dir.join("libffiprof_heap.so");
    let source = csrc.join("heap/interpose.c");
    let walker = csrc.join("heap/walk.c");
    for file in ["heap/interpose.c", "heap/walk.c", "heap/walk.h"] {
        println!("cargo:rerun-if-changed={}", csrc.join(file).display());
    }
    let mut cmd = compiler.to_command();
    // -fexceptions: a bad_alloc thrown by operator new unwinds through its hook.
    cmd.args(["-O2", "-g", "-Wall", "-Wextra", "-fexceptions", "-fvisibility=hidden"])
        .args(["-shared", "-fPIC", "-o"])
        .arg(&heap)
        .arg(&source)
        .arg(&walker)
        // The walker reads its own frame pointer to start from its caller's registers.
        .arg("-fno-omit-frame-pointer")
        .args(["-lm", "-ldl", "-pthread"]);
    let status = cmd.status().expect("the C compiler ran above");
    assert!(status.success(), "building {} failed: {status}", heap.display());
    println!("cargo:rustc-env=FFIPROF_BUILT_HEAP_LIB={}", heap.display());
    let cc_version = Command::new(compiler.path())
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=FFIPROF_CC_VERSION={cc_version}");
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=FFIPROF_RUSTC_VERSION={rustc_version}");
}
