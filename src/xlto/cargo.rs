//! The release build's two xlto variants: cross-language LTO, and its compiler control
//! (the packages' targets and builds are [`crate::cargo`]'s).

use std::path::PathBuf;

use crate::cargo::Recipe;
use crate::workload::per_call_xlto::Toolchain;

/// The same build with cross-language LTO, into `target_dir`: the C and C++ compilers
/// the matching clang with `-flto=thin` (and DWARF 4 where debuginfo is asked for:
/// valgrind 3.19 cannot read the DWARF 5 that clang writes by default), rustc with
/// `-Clinker-plugin-lto` and clang as the linker driving the matching lld. The user's
/// own CFLAGS, CXXFLAGS and RUSTFLAGS are kept, ffiprof's appended.
pub(crate) fn cross_language_lto(t: &Toolchain, target_dir: PathBuf) -> Recipe {
    with_clang(t, target_dir, true)
}

/// The compiler control: the C and C++ built by the same clang, without LTO, Rust as
/// in the release build. Against it, the LTO build's change is the inlining's alone;
/// against the release build, it is what changing the C compiler does.
pub(crate) fn clang_without_lto(t: &Toolchain, target_dir: PathBuf) -> Recipe {
    with_clang(t, target_dir, false)
}

fn with_clang(t: &Toolchain, target_dir: PathBuf, lto: bool) -> Recipe {
    let append = |var: &str, extra: &str| {
        let mut v = std::env::var_os(var).unwrap_or_default();
        if !v.is_empty() {
            v.push(" ");
        }
        v.push(extra);
        (var.to_owned(), v)
    };
    let clangxx = t.clang.with_file_name(
        t.clang
            .file_name()
            .map_or("clang++".into(), |n| n.to_string_lossy().replacen("clang", "clang++", 1)),
    );
    let cxx = if clangxx.is_file() { clangxx } else { t.clang.clone() };
    let c_flags =
        if lto { "-flto=thin -fdebug-default-version=4" } else { "-fdebug-default-version=4" };
    let rust_flags = [
        "-Clinker-plugin-lto".to_owned(),
        format!("-Clinker={}", t.clang.display()),
        format!("-Clink-arg=--ld-path={}", t.lld.display()),
    ];
    let mut env = vec![
        ("CC".to_owned(), t.clang.clone().into_os_string()),
        ("CXX".to_owned(), cxx.into_os_string()),
        append("CFLAGS", c_flags),
        append("CXXFLAGS", c_flags),
    ];
    if !lto {
        return Recipe { env, target_dir: Some(target_dir) };
    }
    // cargo reads CARGO_ENCODED_RUSTFLAGS (flags separated by 0x1f) before RUSTFLAGS.
    match std::env::var_os("CARGO_ENCODED_RUSTFLAGS").filter(|v| !v.is_empty()) {
        Some(mut encoded) => {
            for f in &rust_flags {
                encoded.push("\u{1f}");
                encoded.push(f);
            }
            env.push(("CARGO_ENCODED_RUSTFLAGS".into(), encoded));
        }
        None => env.push(append("RUSTFLAGS", &rust_flags.join(" "))),
    }
    Recipe { env, target_dir: Some(target_dir) }
}
