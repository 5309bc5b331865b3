//! `per-call-xlto`: the third answer to "per-call or batched?". What a Rust->C call per
//! item loses is the call itself and what the optimiser could have done across it;
//! cross-language LTO gives that back by letting LLVM see both sides. Here the catalogue's
//! per-call Rust loops (`csrc/xlto/loops.rs`) and csrc's C are built with linker-plugin
//! LTO into a shared library (rustc `-Clinker-plugin-lto`, C compiled to bitcode by the
//! clang of rustc's own LLVM version, linked by clang and that version's lld), then
//! loaded and timed like any variant, at every code placement.
//!
//! In that library the C functions are not marked `noinline` (the static catalogue marks
//! them so that its batched C loops keep their calls): what the optimiser does there is
//! what it would do to any C library's function. Whether a call was inlined is read from
//! the library's machine code ([`inspect`]), never guessed from a time.
//!
//! Without the matching compilers the variant is left out with a note that names the
//! Debian packages; `FFIPROF_XLTO_CLANG` and `FFIPROF_XLTO_LLD` name others, `RUSTC` the
//! Rust compiler. The library is built once per set of sources and compilers, into the
//! user's cache directory (beside the dylib workload's library), and reused.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use object::{Object, ObjectSymbol};
use serde::{Deserialize, Serialize};

use super::{Placement, Prepare, Role, Variant, PLACEMENTS};
use crate::cache::{cache_dir, fnv1a};
pub use crate::error::NoToolchain;
use crate::error::{Error, Result, Unavailability};
use crate::ffi::{self, XltoLoops};

/// The variant's name in every workload that has it.
pub const NAME: &str = "per-call-xlto";

/// The sources the library is built from, as they are in the tree.
const SOURCES: &[(&str, &str)] = &[
    ("ffiprof.h", include_str!("../../csrc/ffiprof.h")),
    ("plusone.c", include_str!("../../csrc/plusone.c")),
    ("loops.rs", include_str!("../../csrc/xlto/loops.rs")),
];

/// Each workload's loop in the library: its exported name (before `_pK`) and the C
/// function it calls per item.
const LOOPS: &[(&str, &str, &str)] =
    &[("plusone", "ffiprof_xlto_plusone", "ffiprof_plusone"), ("pow", "ffiprof_xlto_pow", "pow")];

/// Where each placement of the library's loop `name` (its exported name before `_pK`)
/// starts in this process; unavailable as the variant is.
pub(super) fn addresses(name: &str) -> Result<[usize; PLACEMENTS]> {
    library()?
        .addresses(name)
        .ok_or_else(|| Error::Internal(format!("the LTO library has no loop {name}")))
}

/// A placed per-call variant built with cross-language LTO.
pub(super) fn variant(about: &'static str, prepare: Prepare) -> Variant {
    Variant {
        name: NAME,
        role: Role::PerCall,
        about,
        prepare,
        placed: true,
        needs: Some(|| made().map(drop)),
    }
}

/// The compilers cross-language LTO needs: rustc, and the clang and lld of rustc's LLVM
/// major version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toolchain {
    /// The Rust compiler.
    pub rustc: PathBuf,
    /// The C compiler, also the linker driver.
    pub clang: PathBuf,
    /// The linker.
    pub lld: PathBuf,
    /// The LLVM major version the three share.
    pub llvm_major: u32,
    /// `rustc --version`, `clang --version` and `ld.lld --version`, first lines.
    pub versions: Vec<String>,
}

fn first_line(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    out.status.success().then(|| text.lines().next().unwrap_or("").trim().to_owned())
}

/// The first number after `marker` in `text` (`"clang version "` in `clang --version`).
fn major_after(text: &str, marker: &str) -> Option<u32> {
    let rest = &text[text.find(marker)? + marker.len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
}

/// `env` if set, else the first of `names` on PATH whose version (the number after
/// `marker` in `--version`) is `major`.
fn find_tool(
    env: &'static str,
    names: &[String],
    marker: &str,
    major: u32,
) -> Result<PathBuf, NoToolchain> {
    if let Some(path) = std::env::var_os(env).filter(|v| !v.is_empty()).map(PathBuf::from) {
        let Some(version) = first_line(&path, &["--version"]) else {
            return Err(NoToolchain::GivenDoesNotRun { env, path, major });
        };
        return match major_after(&version, marker) {
            Some(m) if m == major => Ok(path),
            _ => Err(NoToolchain::GivenOtherVersion { env, path, version, major }),
        };
    }
    names
        .iter()
        .filter_map(|name| on_path(name))
        .find(|path| {
            first_line(path, &["--version"]).and_then(|v| major_after(&v, marker)) == Some(major)
        })
        .ok_or_else(|| NoToolchain::NotOnPath { names: names.to_vec(), major })
}

/// The toolchain on this machine, or why there is none.
pub fn toolchain() -> Result<Toolchain, NoToolchain> {
    let rustc = std::env::var_os("RUSTC").map_or_else(|| PathBuf::from("rustc"), PathBuf::from);
    let verbose = Command::new(&rustc)
        .arg("-vV")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .ok_or_else(|| NoToolchain::NoRustc { rustc: rustc.clone() })?;
    let major = major_after(&verbose, "LLVM version: ")
        .ok_or_else(|| NoToolchain::NoLlvmVersion { rustc: rustc.clone() })?;
    let clang = find_tool(
        "FFIPROF_XLTO_CLANG",
        &[format!("clang-{major}"), "clang".into()],
        "clang version ",
        major,
    )?;
    let lld = find_tool(
        "FFIPROF_XLTO_LLD",
        &[format!("ld.lld-{major}"), "ld.lld".into()],
        "LLD ",
        major,
    )?;
    let versions = [(&rustc, "--version"), (&clang, "--version"), (&lld, "--version")]
        .iter()
        .filter_map(|(p, a)| first_line(p, &[a]))
        .collect();
    Ok(Toolchain { rustc, clang, lld, llvm_major: major, versions })
}

/// The built library, loaded, with what its code says of each loop.
pub(crate) struct Library {
    loops: XltoLoops,
    /// Where it is.
    pub(crate) path: PathBuf,
    /// Built by.
    pub(crate) toolchain: Toolchain,
}

impl Library {
    /// The per-call plusone loop at `at`.
    pub(crate) fn plusone(&self, at: Placement, x: i32, n: u64) -> i32 {
        self.loops.plusone(at.index(), x, n)
    }

    /// What the library's code says of `workload`'s loop ([`inspect`]).
    pub(crate) fn inspect(&self, workload: &str) -> Option<Result<Inlining>> {
        inspect(&self.path, workload).map(|found| {
            found.map(|i| Inlining { built_with: self.toolchain.versions.clone(), ..i })
        })
    }

    /// The per-call pow loop at `at`.
    pub(crate) fn pow(&self, at: Placement, a: f64, e: f64, n: u64) -> f64 {
        self.loops.pow(at.index(), a, e, n)
    }

    /// Where each placement of a loop starts in this process, by its exported name before
    /// `_pK`.
    pub(crate) fn addresses(&self, name: &str) -> Option<[usize; PLACEMENTS]> {
        self.loops.addresses(name)
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
    Err(format!(
        "{what} failed ({}): {}",
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    ))
}

/// Builds the library from [`SOURCES`] with `t` into `out`, in a scratch directory beside
/// it, renamed into place when complete.
fn build(t: &Toolchain, out: &Path) -> Result<(), String> {
    let dir = out.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix(".xlto-build-")
        .tempdir_in(dir)
        .map_err(|e| format!("cannot create a build directory in {}: {e}", dir.display()))?;
    let work = scratch.path();
    for (name, text) in SOURCES {
        std::fs::write(work.join(name), text)
            .map_err(|e| format!("cannot write {}: {e}", work.join(name).display()))?;
    }
    let mut objects = Vec::new();
    for c in SOURCES.iter().map(|s| s.0).filter(|n| n.ends_with(".c")) {
        let object = work.join(c).with_extension("o");
        run(
            Command::new(&t.clang)
                .args(["-flto=thin", "-O2", "-gdwarf-4", "-fno-omit-frame-pointer", "-fPIC"])
                .args(["-std=c11", "-DFFIPROF_CALLEE=", "-c"])
                .arg(work.join(c))
                .arg("-o")
                .arg(&object),
            &format!("{} on {c}", t.clang.display()),
        )?;
        objects.push(object);
    }
    let library = work.join("libffiprof_xlto.so");
    let mut rustc = Command::new(&t.rustc);
    rustc
        .args(["--edition", "2021", "--crate-type", "cdylib", "--crate-name", "ffiprof_xlto"])
        .args(["-Copt-level=3", "-Cpanic=abort", "-Cforce-frame-pointers=yes"])
        // DWARF 4 on both sides: valgrind 3.19 (Debian 12) gives up on LLVM 22's DWARF 5.
        .args(["-Cdebuginfo=2", "-Cdwarf-version=4"])
        .arg("-Clinker-plugin-lto")
        .arg(format!("-Clinker={}", t.clang.display()))
        .arg(format!("-Clink-arg=--ld-path={}", t.lld.display()));
    for object in &objects {
        rustc.arg(format!("-Clink-arg={}", object.display()));
    }
    rustc.arg("-Clink-arg=-lm").arg(work.join("loops.rs")).arg("-o").arg(&library);
    run(&mut rustc, &format!("{} (linker-plugin LTO)", t.rustc.display()))?;
    std::fs::rename(&library, out).map_err(|e| format!("cannot move the library into place: {e}"))
}

/// FNV-1a over the sources and the compilers' versions: the cached library's name.
fn build_key(t: &Toolchain) -> u64 {
    let mut bytes = Vec::new();
    for (name, text) in SOURCES {
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(text.as_bytes());
    }
    for part in t
        .versions
        .iter()
        .map(String::as_str)
        .chain([t.clang.to_str().unwrap_or(""), t.lld.to_str().unwrap_or("")])
    {
        bytes.extend_from_slice(part.as_bytes());
    }
    fnv1a(&bytes)
}

/// The library: built (or found in the cache) and loaded once per process. Fails with
/// [`Error::VariantUnavailable`], saying why and what to install, when this machine cannot
/// build it; the failure is remembered, so it is tried once.
pub(crate) fn library() -> Result<Arc<Library>> {
    made().map_err(|why| Error::VariantUnavailable { variant: NAME.to_owned(), why })
}

/// The library, or why this machine has none (remembered: tried once per process).
fn made() -> Result<Arc<Library>, Unavailability> {
    static LIBRARY: OnceLock<Result<Arc<Library>, Unavailability>> = OnceLock::new();
    LIBRARY
        .get_or_init(|| {
            let toolchain = toolchain().map_err(Unavailability::Toolchain)?;
            let path = cache_dir().join(format!(
                "libffiprof_xlto-{}-{:016x}.so",
                env!("CARGO_PKG_VERSION"),
                build_key(&toolchain)
            ));
            if !path.exists() {
                build(&toolchain, &path).map_err(Unavailability::Build)?;
            }
            let loops = XltoLoops::open(&path)
                .map_err(|e| Unavailability::Load { path: path.clone(), error: e.to_string() })?;
            Ok(Arc::new(Library { loops, path, toolchain }))
        })
        .clone()
}

/// What the library's machine code says of one workload's per-call loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inlining {
    /// The loop's exported name, before the placement's `_pK`.
    pub loop_symbol: String,
    /// The C function the loop calls per item in the source.
    pub callee: String,
    /// True when the loop, at every placement, has no call left in it: the callee was
    /// inlined.
    pub inlined: bool,
    /// What the loops still call, by the machine code: a function's name, or how the
    /// call is made where no name can be read.
    pub calls: Vec<String>,
    /// Why the callee is still called, where the code tells.
    #[serde(default, deserialize_with = "still_called_or_words")]
    pub why: Option<StillCalled>,
    /// How many placements were read.
    pub placements: usize,
    /// The compilers that built the library, first lines of their `--version`.
    #[serde(default)]
    pub built_with: Vec<String>,
}

/// Why the LTO library's loop still calls its C callee: data, worded by its `Display`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum StillCalled {
    /// The callee is in the LTO unit, yet the optimiser kept the call.
    KeptInUnit {
        /// The callee.
        callee: String,
    },
    /// The callee is imported at load time from a shared library, which no link-time
    /// optimisation reaches.
    Imported {
        /// The callee.
        callee: String,
        /// The library that defines it in this process, where the loader tells.
        library: Option<PathBuf>,
    },
    /// Read from a report of schema 4, which kept the reason as words.
    Worded {
        /// The words.
        words: String,
    },
}

/// [`Inlining::why`] as this version writes it, or as a report of schema 4 wrote it: words.
fn still_called_or_words<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<StillCalled>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Data(StillCalled),
        Words(String),
    }
    Ok(Option::<Either>::deserialize(d)?.map(|e| match e {
        Either::Data(why) => why,
        Either::Words(words) => StillCalled::Worded { words },
    }))
}

impl std::fmt::Display for StillCalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StillCalled::KeptInUnit { callee } => {
                write!(f, "{callee} is in the LTO unit, yet the optimiser kept the call")
            }
            StillCalled::Imported { callee, library } => write!(
                f,
                "{callee} is not in the LTO unit: it is imported at load time from a shared \
                 library{}, which no link-time optimisation reaches",
                library.as_ref().map_or(String::new(), |l| format!(" ({})", l.display()))
            ),
            StillCalled::Worded { words } => f.write_str(words),
        }
    }
}

impl Inlining {
    /// The finding in words.
    pub fn sentence(&self) -> String {
        if self.inlined {
            format!(
                "{} inlined: the loop's machine code ({}) has no call left at any of {} \
                 placements",
                self.callee, self.loop_symbol, self.placements
            )
        } else {
            format!(
                "{} still a call: the loop's machine code ({}) calls {}{}",
                self.callee,
                self.loop_symbol,
                self.calls.join(", "),
                self.why.as_ref().map_or(String::new(), |w| format!("; {w}"))
            )
        }
    }
}

/// Reads the library at `path`: for `workload`'s loop at every placement, whether its C
/// callee was inlined, and what the code still calls. `None` for a workload without a
/// loop in the library.
pub fn inspect(path: &Path, workload: &str) -> Option<Result<Inlining>> {
    let &(_, loop_symbol, callee) = LOOPS.iter().find(|l| l.0 == workload)?;
    let failed = |why: String| Error::Internal(format!("reading {}: {why}", path.display()));
    let read = || -> Result<Inlining> {
        let data =
            std::fs::read(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
        let file = object::File::parse(&*data).map_err(|e| failed(e.to_string()))?;
        let mut calls = BTreeSet::new();
        for k in 0..PLACEMENTS {
            let name = format!("{loop_symbol}_p{k}");
            let symbol = file
                .symbols()
                .find(|s| s.name() == Ok(name.as_str()) && s.is_definition())
                .ok_or_else(|| failed(format!("no function {name}")))?;
            calls.extend(
                crate::machine_code::calls_in(&file, symbol.address(), symbol.size())
                    .map_err(failed)?,
            );
        }
        let defined_here = file.symbols().any(|s| {
            s.name() == Ok(callee) && s.is_definition() && s.kind() == object::SymbolKind::Text
        });
        let why = (!calls.is_empty()).then(|| {
            let callee = callee.to_owned();
            if defined_here {
                StillCalled::KeptInUnit { callee }
            } else {
                StillCalled::Imported { library: ffi::library_of(&callee), callee }
            }
        });
        Ok(Inlining {
            loop_symbol: loop_symbol.to_owned(),
            callee: callee.to_owned(),
            inlined: calls.is_empty(),
            calls: calls.into_iter().collect(),
            why,
            placements: PLACEMENTS,
            built_with: Vec::new(),
        })
    };
    Some(read())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_is_named_with_what_to_install() {
        let names = vec!["ffiprof-no-such-clang-22".to_owned(), "ffiprof-no-such-clang".into()];
        // An environment variable no one sets: the names on PATH are looked for.
        let why = find_tool("FFIPROF_TEST_UNSET_TOOL", &names, "clang version ", 22).unwrap_err();
        assert_eq!(why, NoToolchain::NotOnPath { names, major: 22 });
        let words = why.to_string();
        assert!(
            words.starts_with(
                "no ffiprof-no-such-clang-22 or ffiprof-no-such-clang of LLVM 22 on PATH: "
            ),
            "{words}"
        );
        assert!(words.contains("apt-get install clang-22 lld-22"), "{words}");
        let other = NoToolchain::GivenOtherVersion {
            env: "FFIPROF_XLTO_LLD",
            path: "/opt/ld.lld".into(),
            version: "LLD 17.0.6".into(),
            major: 22,
        };
        assert!(other
            .to_string()
            .starts_with("FFIPROF_XLTO_LLD=/opt/ld.lld is `LLD 17.0.6`, not LLVM 22: "));
        let rustc = NoToolchain::NoRustc { rustc: "/x/rustc".into() };
        assert_eq!(rustc.to_string(), "cannot run /x/rustc (set RUSTC)");
    }

    #[test]
    fn why_a_call_stays_is_data_and_older_reports_words_still_load() {
        let inlining = |why: serde_json::Value| -> Inlining {
            serde_json::from_value(serde_json::json!({
                "loop_symbol": "ffiprof_xlto_pow", "callee": "pow", "inlined": false,
                "calls": ["pow"], "why": why, "placements": 4
            }))
            .unwrap()
        };
        let imported = StillCalled::Imported {
            callee: "pow".into(),
            library: Some(PathBuf::from("/lib/libm.so.6")),
        };
        let read = inlining(serde_json::to_value(&imported).unwrap());
        assert_eq!(read.why, Some(imported));
        assert!(read
            .sentence()
            .contains("imported at load time from a shared library (/lib/libm.so.6)"));
        let old = inlining(serde_json::json!("pow is not in the LTO unit"));
        assert_eq!(
            old.why,
            Some(StillCalled::Worded { words: "pow is not in the LTO unit".into() })
        );
        assert_eq!(inlining(serde_json::Value::Null).why, None);
    }

    #[test]
    fn versions_are_read_from_each_tools_first_line() {
        let rustc = "rustc 1.95.0\nbinary: rustc\nLLVM version: 22.1.2\n";
        assert_eq!(major_after(rustc, "LLVM version: "), Some(22));
        assert_eq!(
            major_after("Debian clang version 22.1.8 (1~deb12u1)", "clang version "),
            Some(22)
        );
        assert_eq!(
            major_after("Debian LLD 14.0.6 (compatible with GNU linkers)", "LLD "),
            Some(14)
        );
        assert_eq!(major_after("gcc (Debian 12.2.0) 12.2.0", "clang version "), None);
    }
}
