//! Each frame's language: the rules that tell Rust from C, C++, the C runtime, glue, the
//! kernel and the unknown, used by every profile, recording and census.
//! # How a frame's language is decided
//!
//! In this order, the first rule that matches wins:
//! 1. an address in the kernel half of the address space: **kernel**;
//! 2. no symbol at all: **unknown**;
//! 3. a PLT stub (`name@plt`), the signal trampoline, rustc's C-ABI `main` shim, or
//!    ffiprof's own FFI trampolines (`ffiprof::ffi::*_trampoline`): **glue**;
//! 4. a module that is part of the C runtime (libc, libm, libmvec, ld.so, libgcc_s,
//!    libpthread, libdl, librt, libstdc++, the vDSO), or a C runtime entry point linked
//!    into the executable (`_start`, `__libc_start_main`, `start_thread`, `clone3`):
//!    **C runtime**;
//! 5. a source file ending in `.rs`: **Rust**;
//! 6. a C++ source or header (`.cpp`, `.cc`, `.cxx`, `.c++`, `.hpp`, `.hh`, `.hxx`,
//!    `.tcc`, or a file under a `c++/` include directory such as libstdc++'s `vector`),
//!    or a demangled Itanium C++ name: one that ends in a parameter list (`ns::f(int)`,
//!    `S::get() const`, `f() [clone .cold]`), which a Rust path never does, or one left
//!    mangled (`_Z...`) that is not Rust's legacy mangling: **C++**;
//! 7. a demangled Rust path (`a::b`), or one left in Rust's legacy mangling: **Rust**;
//! 8. anything else with a symbol (C sources of csrc, a shared library of the
//!    project's): **C**.

use serde::{Deserialize, Serialize};

use crate::symbol::Frame;

/// The language of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Language {
    /// Rust code.
    Rust,
    /// Go code (the cgo reference's profiles).
    Go,
    /// C code of the project (csrc) or of a library that is not the C runtime.
    C,
    /// C++ code (Itanium-mangled names, C++ sources), reached from Rust through a C ABI
    /// (`cxx`, bindgen's wrappers).
    #[serde(rename = "c++")]
    Cpp,
    /// libc, libm, libgcc, ld.so and the like.
    CRuntime,
    /// The kernel.
    Kernel,
    /// PLT stubs and trampolines.
    Glue,
    /// No symbol.
    Unknown,
}

impl Language {
    /// Every language, in legend order.
    pub const ALL: [Language; 8] = [
        Language::Rust,
        Language::Go,
        Language::C,
        Language::Cpp,
        Language::CRuntime,
        Language::Kernel,
        Language::Glue,
        Language::Unknown,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Go => "go",
            Language::C => "c",
            Language::Cpp => "c++",
            Language::CRuntime => "c-runtime",
            Language::Kernel => "kernel",
            Language::Glue => "glue",
            Language::Unknown => "unknown",
        }
    }

    /// True for the C side of the boundary (C++ included: Rust reaches it through the C
    /// ABI).
    pub fn is_c_side(self) -> bool {
        matches!(self, Language::C | Language::Cpp | Language::CRuntime)
    }

    /// True for a library's or the project's own C or C++ code (the C side without its
    /// runtime).
    pub fn is_c_library(self) -> bool {
        matches!(self, Language::C | Language::Cpp)
    }

    /// True for a program's own code in some language (not the kernel, glue or unknown
    /// frames, which a crossing looks through).
    pub fn is_code(self) -> bool {
        matches!(self, Language::Rust | Language::Go) || self.is_c_side()
    }
}

/// How a frame was entered across the boundary, as [`boundary_marks`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entered {
    /// A C-side frame called by Rust (the nearest code frame above it).
    FromRust,
    /// A Rust frame called back by C-side code that Rust called: a callback (`qsort`'s
    /// comparator). Rust entered from C with no Rust above (a thread's or the program's
    /// start) is not a callback.
    CalledBack,
}

/// For each frame of a stack (root first, by language), how it was entered when its
/// caller, the nearest code frame above it, is on the other side of the boundary.
pub fn boundary_marks(languages: &[Language]) -> Vec<Option<Entered>> {
    let mut marks = vec![None; languages.len()];
    let mut above: Option<Language> = None;
    let mut rust_above = false;
    for (i, &l) in languages.iter().enumerate() {
        if !l.is_code() {
            continue;
        }
        marks[i] = match above {
            Some(Language::Rust) if l.is_c_side() => Some(Entered::FromRust),
            Some(a) if a.is_c_side() && l == Language::Rust && rust_above => {
                Some(Entered::CalledBack)
            }
            _ => None,
        };
        rust_above |= l == Language::Rust;
        above = Some(l);
    }
    marks
}

const C_RUNTIME_MODULES: &[&str] = &[
    "libc.so",
    "libm.so",
    "libmvec.so",
    "ld-linux",
    "ld64.so",
    "libgcc_s.so",
    "libpthread.so",
    "libdl.so",
    "librt.so",
    "libstdc++.so",
    "linux-vdso",
    "[vdso]",
];
const C_RUNTIME_ENTRY: &[&str] = &[
    "_start",
    "__libc_start_main",
    "__libc_start_call_main",
    "start_thread",
    "clone3",
    "clone",
    "__clone",
    "__clone3",
];
pub(crate) const THREAD_ROOTS: &[&str] =
    &["_start", "start_thread", "clone3", "clone", "__clone", "__clone3"];

/// The start of the kernel half of the x86_64 address space.
const KERNEL_START: u64 = 0xffff_8000_0000_0000;

/// True for a module of the C runtime (libc, libm, the dynamic loader, libgcc_s...), by its
/// file name.
pub(crate) fn is_c_runtime_module(module: &str) -> bool {
    C_RUNTIME_MODULES.iter().any(|m| module.starts_with(m))
}

/// Decides a frame's language (see the module docs for the rules).
pub fn classify(addr: u64, frame: &Frame) -> Language {
    if addr >= KERNEL_START {
        return Language::Kernel;
    }
    let Some(name) = frame.function.as_deref() else {
        return Language::Unknown;
    };
    if name.ends_with("@plt")
        || name == "__restore_rt"
        || (name == "main" && frame.file.is_none())
        || (name.starts_with("ffiprof::ffi::") && name.contains("_trampoline"))
    {
        return Language::Glue;
    }
    let module = frame.module.as_deref().unwrap_or("");
    if is_c_runtime_module(module) || C_RUNTIME_ENTRY.contains(&name) {
        return Language::CRuntime;
    }
    let file = frame.file.as_deref().unwrap_or("");
    if file.ends_with(".rs") {
        return Language::Rust;
    }
    if is_cpp_file(file) || is_cpp_name(name) {
        return Language::Cpp;
    }
    if name.contains("::") || is_rust_legacy_mangled(name) {
        return Language::Rust;
    }
    Language::C
}

/// True for a Rust symbol in the legacy mangling that was left mangled: Itanium-like, but
/// its last path segment is `h` and 16 hex digits (`_ZN3app4main17h0123456789abcdefE`).
fn is_rust_legacy_mangled(name: &str) -> bool {
    let Some(body) = name.strip_prefix("_ZN").and_then(|b| b.strip_suffix('E')) else {
        return false;
    };
    body.len() >= 19 && {
        let (rest, hash) = body.split_at(body.len() - 19);
        hash.starts_with("17h")
            && hash[3..].bytes().all(|b| b.is_ascii_hexdigit())
            && rest.bytes().next().is_some_and(|b| b.is_ascii_digit())
    }
}

const CPP_EXTENSIONS: &[&str] =
    &[".cpp", ".cc", ".cxx", ".c++", ".cp", ".hpp", ".hh", ".hxx", ".h++", ".tcc", ".ipp"];

/// True for a C++ source or header: by extension, or a header of a C++ standard
/// library's include directory (`/usr/include/c++/12/bits/stl_vector.h`, `.../vector`).
fn is_cpp_file(file: &str) -> bool {
    let lower = file.to_ascii_lowercase();
    CPP_EXTENSIONS.iter().any(|e| lower.ends_with(e))
        || file.contains("/c++/")
        || file.starts_with("c++/")
}

/// True for a demangled Itanium C++ function name: it ends in a parameter list, perhaps
/// followed by qualifiers (`const`, `&`, `noexcept`) and gcc's clone suffixes
/// (`[clone .cold]`, `[clone .constprop.0]`). Demangled Rust paths never end that way
/// (`<F as FnOnce<()>>::call_once` ends in a name), nor do C names.
fn is_cpp_name(name: &str) -> bool {
    if name.starts_with("_Z") {
        return !is_rust_legacy_mangled(name);
    }
    let mut rest = name.trim_end();
    while let Some(stripped) = rest.strip_suffix(']') {
        match stripped.rfind(" [clone ") {
            Some(at) => rest = stripped[..at].trim_end(),
            None => return false,
        }
    }
    loop {
        let before = rest;
        for qualifier in [" const", " volatile", " &&", " &", " noexcept"] {
            if let Some(stripped) = rest.strip_suffix(qualifier) {
                rest = stripped.trim_end();
            }
        }
        if rest == before {
            break;
        }
    }
    rest.ends_with(')') && rest.find('(').is_some_and(|open| open > 0)
}

/// Decides the language of a frame of Go's own profiler, which gives names only: cgo's
/// call machinery (`runtime.cgocall`, `runtime.asmcgocall`, `_Cfunc_*` stubs, `_cgo_*`)
/// is glue; other dotted names (`main.f`, `runtime.mallocgc`) are Go; undotted names are
/// C: the project's (`ffiprof_*`) or the C runtime's.
pub fn classify_go(name: &str) -> Language {
    let glue = name.starts_with("runtime.cgocall")
        || name.starts_with("runtime.asmcgocall")
        || name.contains("._Cfunc_")
        || name.starts_with("_cgo")
        || name == "runtime._ExternalCode";
    if glue {
        Language::Glue
    } else if name.contains('.') {
        Language::Go
    } else if name.starts_with("ffiprof_") {
        Language::C
    } else {
        Language::CRuntime
    }
}
