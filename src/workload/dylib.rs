//! `dylib`: the plusone call through a shared library loaded at run time.
//!
//! The library (`csrc/dylib`, built by build.rs) is embedded in ffiprof's binary, so an
//! installed `ffiprof` needs no build directory: on first use it is written to the user's
//! cache directory under a name that carries its content hash, and loaded from there. A
//! real file on disk (not an anonymous memory file) keeps it visible to the samplers'
//! unwinder and symbolizer, which read modules by path.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use super::{runner, Input, Role, Variant, Workload};
use crate::error::{Error, Result};
use crate::ffi::DynPlusOne;

const START: i32 = 7;

/// The shared library as build.rs built it.
static EMBEDDED: &[u8] = include_bytes!(env!("FFIPROF_BUILT_DYLIB"));

/// Where the shared library is loaded from: `FFIPROF_DYLIB` if set, else the embedded
/// copy, written to the cache directory if it is not there with the same bytes.
pub(super) fn library_path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("FFIPROF_DYLIB") {
        return Ok(PathBuf::from(path));
    }
    crate::cache::embedded("libffiprof_dyn", EMBEDDED)
}

/// The library, loaded once per process and kept loaded.
fn library() -> Result<Arc<DynPlusOne>> {
    static LIB: OnceLock<Arc<DynPlusOne>> = OnceLock::new();
    if let Some(lib) = LIB.get() {
        return Ok(lib.clone());
    }
    let path = library_path()?;
    let lib = DynPlusOne::open(&path).map_err(|source| Error::DylibLoad { path, source })?;
    Ok(LIB.get_or_init(|| Arc::new(lib)).clone())
}

pub(super) fn workload() -> Workload {
    Workload {
        name: "dylib",
        about: "plusone through a dlopen'ed shared library vs the statically linked call",
        inputs: vec![Input { name: "int", value: 0, calls_per_iteration: 10_000 }],
        share: super::nothing_shared,
        variants: vec![
            Variant {
                name: "batched",
                role: Role::Baseline,
                about: "one call into the shared library's own loop",
                prepare: |_, _, _| {
                    let lib = library()?;
                    let start = black_box(START);
                    runner(move |n| lib.plusone_loop(start, n) as u32 as u64)
                },
                placed: false,
                needs: None,
            },
            Variant {
                name: "per-call-static",
                role: Role::PerCall,
                about: "per-call to the statically linked plusone",
                prepare: |_, _, _| {
                    let start = black_box(START);
                    runner(move |n| super::plusone::PER_CALL[0](start, n) as u32 as u64)
                },
                placed: false,
                needs: None,
            },
            Variant {
                name: "per-call-dylib",
                role: Role::PerCall,
                about: "per-call through a function pointer resolved once with dlsym",
                prepare: |_, _, _| {
                    let lib = library()?;
                    let start = black_box(START);
                    runner(move |n| {
                        let mut x = start;
                        for _ in 0..n {
                            x = lib.plusone(x);
                        }
                        x as u32 as u64
                    })
                },
                placed: false,
                needs: None,
            },
            Variant {
                name: "dlsym-per-call",
                role: Role::PerCall,
                about: "per-call, looking the symbol up with dlsym every time (the anti-pattern)",
                prepare: |_, _, _| {
                    let lib = library()?;
                    let start = black_box(START);
                    runner(move |n| {
                        let mut x = start;
                        for _ in 0..n {
                            // The symbol resolved when the library loaded, so it resolves
                            // again; a failure here would be a changed file on disk.
                            x = lib.plusone_lookup(x).expect("symbol resolved at load time");
                        }
                        x as u32 as u64
                    })
                },
                placed: false,
                needs: None,
            },
        ],
        loops: Vec::new(),
    }
}
