//! `dylib`: the plusone call through a shared library loaded at run time.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use super::{runner, Input, Role, Variant, Workload};
use crate::error::{Error, Result};
use crate::ffi::{self, DynPlusOne};

const START: i32 = 7;

/// Where the shared library is: `FFIPROF_DYLIB` if set, else next to the running
/// executable (for a copied binary), else where build.rs put it.
pub fn library_path() -> PathBuf {
    if let Some(path) = std::env::var_os("FFIPROF_DYLIB") {
        return PathBuf::from(path);
    }
    let built = PathBuf::from(env!("FFIPROF_BUILT_DYLIB"));
    if built.exists() {
        return built;
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("libffiprof_dyn.so")));
    beside.filter(|p| p.exists()).unwrap_or(built)
}

/// The library, loaded once per process and kept loaded.
fn library() -> Result<Arc<DynPlusOne>> {
    static LIB: OnceLock<Arc<DynPlusOne>> = OnceLock::new();
    if let Some(lib) = LIB.get() {
        return Ok(lib.clone());
    }
    let path = library_path();
    let lib = DynPlusOne::open(&path).map_err(|source| Error::DylibLoad { path, source })?;
    Ok(LIB.get_or_init(|| Arc::new(lib)).clone())
}

pub(super) fn workload() -> Workload {
    Workload {
        name: "dylib",
        about: "plusone through a dlopen'ed shared library vs the statically linked call",
        inputs: vec![Input { name: "int", value: 0, calls_per_iteration: 10_000 }],
        variants: vec![
            Variant {
                name: "batched",
                role: Role::Baseline,
                about: "one call into the shared library's own loop",
                prepare: |_| {
                    let lib = library()?;
                    let start = black_box(START);
                    runner(move |n| lib.plusone_loop(start, n) as u32 as u64)
                },
            },
            Variant {
                name: "per-call-static",
                role: Role::PerCall,
                about: "per-call to the statically linked plusone",
                prepare: |_| {
                    let start = black_box(START);
                    runner(move |n| {
                        let mut x = start;
                        for _ in 0..n {
                            x = ffi::plusone(x);
                        }
                        x as u32 as u64
                    })
                },
            },
            Variant {
                name: "per-call-dylib",
                role: Role::PerCall,
                about: "per-call through a function pointer resolved once with dlsym",
                prepare: |_| {
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
            },
            Variant {
                name: "dlsym-per-call",
                role: Role::PerCall,
                about: "per-call, looking the symbol up with dlsym every time (the anti-pattern)",
                prepare: |_| {
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
            },
        ],
    }
}
