//! Each allocation point given its site, language and Rust caller.
//!
//! The site is the frame that asked for the memory: the first frame above the allocator
//! (`malloc`, `calloc`, `realloc`, `memalign` and their kin, C++'s `operator new`, Rust's
//! allocator shims and the `alloc::` frames inlined above them: `RawVec` growing, `Box`,
//! `String`). Its language comes from the rules the profiles and the census use
//! ([`crate::stacks::classify`]); a frame that valgrind describes by source file rather
//! than object is placed in the program where its address lies in the program's own code,
//! else in the shared library that exports its name. For a C, C++ or C-runtime site, the
//! Rust caller is the first Rust frame above it: where Rust handed the work to C (none for
//! a C thread, or C's own initialisation).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSegment, ObjectSymbol};
use serde::{Deserialize, Serialize};

use super::dhat::{self, Point};
use crate::ids::Pid;
use crate::stacks::{classify, Language};
use crate::symbol::Frame;

/// Where valgrind loads a position-independent executable (`0x108000` on amd64).
const PIE_BASE: u64 = 0x10_8000;

/// Source paths of Rust's allocator and the `alloc` crate (with valgrind's
/// `--fullpath-after=`, inlined frames carry their file's whole path; their names are the
/// bare DWARF names, `alloc` or `grow_one`, without the path that says whose they are).
const ALLOCATOR_SOURCES: &[&str] = &[
    "/library/alloc/src/",
    "/library/std/src/alloc.rs",
    "/library/std/src/sys/alloc/",
    "/library/core/src/alloc/",
];

/// True for a frame of the allocator, by its name or its source file: what is below the
/// site.
pub(crate) fn is_allocator_frame(function: &str, file: Option<&str>) -> bool {
    is_allocator(function) || file.is_some_and(|f| ALLOCATOR_SOURCES.iter().any(|p| f.contains(p)))
}

/// C's allocator entry points (what the heap interposer hooks, C++'s operators apart).
pub(crate) const C_ENTRIES: &[&str] = &[
    "malloc",
    "calloc",
    "realloc",
    "reallocarray",
    "memalign",
    "posix_memalign",
    "aligned_alloc",
    "valloc",
    "pvalloc",
    "free",
    "cfree",
];

/// True for a frame of the allocator, by its name.
pub(crate) fn is_allocator(function: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "operator new",
        "operator delete",
        "__rust_alloc",
        "__rust_realloc",
        "__rust_alloc_zeroed",
        "__rdl_",
        "__rg_",
        "__rustc::",
        "alloc::",
        "<alloc::",
        "std::alloc::",
        "<std::alloc::",
        "std::sys::alloc::",
        "std::sys::pal::unix::alloc::",
    ];
    C_ENTRIES.contains(&function) || PREFIXES.iter().any(|p| function.starts_with(p))
}

/// A shared library's exported functions and code ranges, relative to where it loads.
#[derive(Debug)]
struct Library {
    name: String,
    /// Exported functions: name -> (address, size), relative.
    functions: HashMap<String, (u64, u64)>,
    /// Its loaded segments, relative.
    ranges: Vec<(u64, u64)>,
    /// Where it loaded, once a frame of a function it exports tells.
    base: Option<u64>,
}

/// What tells a frame's module where valgrind gives a source file instead: the program's
/// code range, and each shared library's, placed where it loaded by the frames of the
/// functions it exports (a library's `strdup` at `0x48F99A9`, 0x989A9 into the library,
/// puts it at `0x4861000`; its static functions then fall in its range too).
#[derive(Debug, Default)]
pub(crate) struct Modules {
    program: Option<(String, Vec<(u64, u64)>)>,
    libraries: Vec<Library>,
}

/// `path` mapped into memory (only the pages read are loaded: a program's symbol table,
/// not its debug info), or `None` where it cannot be opened.
pub(crate) fn mapped(path: &Path) -> Option<memmap2::Mmap> {
    crate::ffi::map_file(&std::fs::File::open(path).ok()?).ok()
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into())
}

/// The shared libraries `program` loads, as `ldd` lists them.
pub(crate) fn libraries(program: &Path) -> Vec<PathBuf> {
    let Ok(out) = Command::new("ldd").arg(program).output() else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(" => ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

fn ranges(file: &object::File<'_>, base: u64) -> Vec<(u64, u64)> {
    file.segments().map(|s| (base + s.address(), base + s.address() + s.size())).collect()
}

impl Modules {
    /// Reads `program` and `libraries` (where they can be read).
    pub(crate) fn of(program: &Path, libraries: &[PathBuf]) -> Modules {
        let mut m = Modules::default();
        if let Some(data) = mapped(program) {
            if let Ok(file) = object::File::parse(&*data) {
                let base = if file.kind() == object::ObjectKind::Dynamic { PIE_BASE } else { 0 };
                m.program = Some((file_name(program), ranges(&file, base)));
            }
        }
        for lib in libraries.iter().filter(|l| l.as_path() != program) {
            let Some(data) = mapped(lib) else { continue };
            let Ok(file) = object::File::parse(&*data) else { continue };
            let functions = file
                .dynamic_symbols()
                .chain(file.symbols())
                .filter(|s| {
                    s.is_definition() && s.kind() == object::SymbolKind::Text && s.size() > 0
                })
                .filter_map(|s| Some((s.name().ok()?.to_owned(), (s.address(), s.size()))))
                .collect();
            m.libraries.push(Library {
                name: file_name(lib),
                functions,
                ranges: ranges(&file, 0),
                base: None,
            });
        }
        m
    }

    /// Places each library where the frames of its exported functions say it loaded: a
    /// frame's address lies inside its function, so the load address is the page below
    /// (address - the function's start); where functions longer than a page leave doubt,
    /// the most frames' answer wins.
    pub(crate) fn locate(&mut self, frames: &[dhat::Frame]) {
        for lib in self.libraries.iter_mut().filter(|l| l.base.is_none()) {
            let mut votes: HashMap<u64, usize> = HashMap::new();
            for f in frames.iter().filter(|f| f.object.is_none()) {
                let Some(&(at, size)) = lib.functions.get(&f.function) else { continue };
                let Some(base) = f.address.checked_sub(at).map(|b| b & !0xfff) else { continue };
                if (at..at + size).contains(&(f.address - base)) {
                    *votes.entry(base).or_default() += 1;
                }
            }
            lib.base = votes
                .into_iter()
                .max_by_key(|&(base, n)| (n, std::cmp::Reverse(base)))
                .map(|v| v.0);
        }
    }

    fn module(&self, f: &dhat::Frame) -> Option<String> {
        if let Some(object) = &f.object {
            return Some(file_name(Path::new(object)));
        }
        let inside = |ranges: &[(u64, u64)], base: u64| {
            ranges.iter().any(|&(lo, hi)| (base + lo..base + hi).contains(&f.address))
        };
        if let Some((name, ranges)) = &self.program {
            if inside(ranges, 0) {
                return Some(name.clone());
            }
        }
        let placed = self.libraries.iter().find(|l| l.base.is_some_and(|b| inside(&l.ranges, b)));
        let named = || self.libraries.iter().find(|l| l.functions.contains_key(&f.function));
        placed.or_else(named).map(|l| l.name.clone())
    }
}

/// A frame of a stack, with its module and language.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Placed {
    /// Its code address (frames inlined at one call share it).
    pub(crate) address: u64,
    pub(crate) function: String,
    pub(crate) module: String,
    pub(crate) language: Language,
    /// A frame of the allocator ([`is_allocator_frame`]).
    pub(crate) allocator: bool,
    /// A frame of Rust's standard library ([`is_library_frame`]).
    pub(crate) standard_library: bool,
}

/// True for a frame of Rust's standard library (`core`, `alloc`, `std`), by its path or
/// its source file (line tables name an inlined function bare: `map_or_else<..>`).
pub(crate) fn is_library_frame(function: &str, file: Option<&str>) -> bool {
    const LIBRARIES: &[&str] = &["core::", "alloc::", "std::", "<core::", "<alloc::", "<std::"];
    const SOURCES: &[&str] = &["/library/core/src/", "/library/alloc/src/", "/library/std/src/"];
    LIBRARIES.iter().any(|l| function.starts_with(l))
        || file.is_some_and(|f| SOURCES.iter().any(|s| f.contains(s)))
}

/// The frame table of one file, each entry placed (`None` for `[root]`).
pub(crate) fn place_all(ftbl: &[String], modules: &mut Modules) -> Vec<Option<Placed>> {
    let parsed: Vec<Option<dhat::Frame>> = ftbl.iter().map(|t| dhat::parse_frame(t)).collect();
    modules.locate(&parsed.iter().flatten().cloned().collect::<Vec<_>>());
    parsed
        .into_iter()
        .map(|f| {
            let f = f?;
            let module = modules.module(&f);
            let frame = Frame {
                function: Some(f.function.clone()),
                module: module.clone(),
                file: f.file.clone(),
                line: None,
                inlined: false,
            };
            Some(Placed {
                address: f.address,
                language: classify(f.address, &frame),
                allocator: is_allocator_frame(&f.function, f.file.as_deref()),
                standard_library: is_library_frame(&f.function, f.file.as_deref()),
                function: f.function,
                module: module.unwrap_or_default(),
            })
        })
        .collect()
}

/// The allocator family that served (or took back) a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Family {
    /// Rust's global allocator (`__rust_alloc`, `__rust_dealloc` and what they reach).
    #[serde(rename = "rust")]
    Rust,
    /// C's malloc and free, called directly from any language.
    #[serde(rename = "c")]
    C,
    /// C++'s operator new and delete.
    #[serde(rename = "c++")]
    Cxx,
    /// Not told: the call that reached the allocator left no proof of whose it was.
    #[serde(rename = "unknown")]
    Unknown,
}

impl Family {
    /// Its name in the census.
    pub fn name(self) -> &'static str {
        match self {
            Family::Rust => "rust",
            Family::C => "c",
            Family::Cxx => "c++",
            Family::Unknown => "unknown",
        }
    }

    /// The family of the allocator frames below a site (innermost first); `cxx` where the
    /// call came through operator new or delete.
    pub(crate) fn of(allocator_frames: &[&Placed], cxx: bool) -> Family {
        let named = |p: &str| allocator_frames.iter().any(|f| f.function.starts_with(p));
        if cxx || named("operator new") || named("operator delete") {
            Family::Cxx
        } else if allocator_frames.iter().any(|f| is_rust_allocator(f)) {
            Family::Rust
        } else {
            Family::C
        }
    }
}

/// True for a frame of Rust's allocator: any allocator frame but C's entry points and
/// C++'s operators.
fn is_rust_allocator(f: &Placed) -> bool {
    f.allocator && !C_ENTRIES.contains(&f.function.as_str()) && !f.function.starts_with("operator ")
}

/// One point attributed: its stack from the root to the site, and its Rust caller.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Attributed {
    /// Root first, the site last (the allocator's frames left out).
    pub(crate) stack: Vec<Placed>,
    /// The first Rust frame above a C-side site.
    pub(crate) rust_caller: Option<String>,
    /// The allocator that served it, told by the frames below the site.
    pub(crate) family: Family,
    /// The language of the code that asked: the site's, or, for a Rust site called
    /// straight from C (an allocator callback, as mlua gives Lua), its caller's.
    pub(crate) requested_by: Language,
}

/// True for a frame of Rust's standard library: code the program's author did not write,
/// where no site is worth naming.
fn is_rust_library(p: &Placed) -> bool {
    p.language == Language::Rust && p.standard_library
}

impl Attributed {
    /// The site a user can act on: the first frame above the allocator that is not Rust's
    /// standard library (`main::name` under `format!`'s closures, not
    /// `core::option::Option<T>::map_or_else`); the first above the allocator where every
    /// frame is the library's.
    pub(crate) fn site(&self) -> Option<&Placed> {
        let mut frames = self.stack.iter().rev();
        let first = frames.next()?;
        if !is_rust_library(first) {
            return Some(first);
        }
        Some(frames.find(|p| !is_rust_library(p)).unwrap_or(first))
    }
}

/// The site and Rust caller of `point`.
pub(crate) fn attribute(point: &Point, frames: &[Option<Placed>]) -> Attributed {
    // Innermost first, `[root]` left out.
    let stack: Vec<&Placed> = point.fs.iter().filter_map(|&i| frames[i].as_ref()).collect();
    attribute_stack(&stack, false)
}

/// The site, Rust caller and family of a stack (innermost first).
pub(crate) fn attribute_stack(stack: &[&Placed], cxx: bool) -> Attributed {
    let site = stack.iter().position(|f| !f.allocator).unwrap_or(stack.len().saturating_sub(1));
    let rust_caller = stack.get(site).filter(|s| s.language.is_c_side()).and_then(|_| {
        let above = &stack[site + 1..];
        let at = above
            .iter()
            .position(|f| f.language == Language::Rust && f.function != UNKNOWN_INLINED)?;
        Some(caller_name(&above[at..]))
    });
    let family = Family::of(&stack[..site.min(stack.len())], cxx);
    let site_language = stack.get(site).map_or(Language::Unknown, |s| s.language);
    let caller = stack.get(site + 1).map(|f| f.language);
    let requested_by = match caller {
        Some(l) if site_language == Language::Rust && l.is_c_side() => l,
        _ => site_language,
    };
    let kept = stack.get(site..).unwrap_or(&[]).iter().rev().map(|&f| f.clone()).collect();
    Attributed { stack: kept, rust_caller, family, requested_by }
}

/// What valgrind names an inlined frame whose name the debug info does not give.
const UNKNOWN_INLINED: &str = "UnknownInlinedFun";

/// The name of the caller `frames[0]`: an inlined function's debug-info name is bare
/// (`step`), so it is given with the function it was inlined into, the last frame at the
/// same address (`step (inlined into rusqlite::row::Rows::next)`).
fn caller_name(frames: &[&Placed]) -> String {
    let first = frames[0];
    if first.function.contains("::") {
        return first.function.clone();
    }
    let host = frames.iter().take_while(|f| f.address == first.address).last();
    match host.filter(|h| h.function.contains("::") && !std::ptr::eq(**h, first)) {
        Some(h) => format!("{} (inlined into {})", first.function, h.function),
        None => first.function.clone(),
    }
}

/// What keys a site in memory.json: the function that asked, its module and language,
/// the Rust caller above it, the allocator that served and the language that asked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SiteKey {
    pub(crate) function: String,
    pub(crate) module: String,
    pub(crate) language: Language,
    pub(crate) rust_caller: Option<String>,
    pub(crate) family: Family,
    pub(crate) requested_by: Language,
}

/// Groups attributed points by site.
pub(crate) fn group<'p>(
    points: impl Iterator<Item = (&'p Point, Attributed)>,
) -> BTreeMap<SiteKey, Vec<(&'p Point, Attributed)>> {
    let mut sites: BTreeMap<SiteKey, Vec<(&Point, Attributed)>> = BTreeMap::new();
    for (p, a) in points {
        let Some(site) = a.site() else { continue };
        let key = SiteKey {
            function: site.function.clone(),
            module: site.module.clone(),
            language: site.language,
            rust_caller: a.rust_caller.clone(),
            family: a.family,
            requested_by: a.requested_by,
        };
        sites.entry(key).or_default().push((p, a));
    }
    sites
}

/// One process's heap, ready for its sites: its frame table and its allocation points
/// (from DHAT's file, or the interposer's replayed log).
#[derive(Debug)]
pub(crate) struct Heap {
    pub(crate) pid: Pid,
    pub(crate) command: String,
    /// The frame table (`None` for the root).
    pub(crate) frames: Vec<Option<Placed>>,
    pub(crate) points: Vec<Point>,
    /// Each point's family where told apart from its frames (the native engine's, from
    /// the machine code); empty for DHAT's, whose frames tell it.
    pub(crate) families: Vec<Family>,
    /// The process's whole heap where counted apart from its points (the native engine,
    /// exact where the points are sampled).
    pub(crate) totals: Option<super::schema::Figures>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(function: &str, language: Language) -> Option<Placed> {
        Some(Placed {
            address: 0,
            function: function.into(),
            module: "m".into(),
            language,
            allocator: is_allocator(function),
            standard_library: is_library_frame(function, None),
        })
    }

    #[test]
    fn the_site_is_above_the_allocator_and_the_rust_caller_above_c() {
        let frames = vec![
            None,
            placed("malloc", Language::CRuntime),
            placed("ts_malloc_default", Language::C),
            placed("ts_parser_parse", Language::C),
            placed("ts_walk::parse", Language::Rust),
            placed("main", Language::Rust),
            placed("__rustc::__rust_alloc", Language::Rust),
            placed("alloc::raw_vec::RawVecInner<A>::finish_grow", Language::Rust),
            placed("strdup", Language::CRuntime),
            placed("c_thread_main", Language::C),
        ];
        let point = |fs: Vec<usize>| Point { tb: 1, tbk: 1, gb: 0, gbk: 0, eb: 0, ebk: 0, fs };
        let a = attribute(&point(vec![1, 2, 3, 4, 5]), &frames);
        assert_eq!(a.stack.last().unwrap().function, "ts_malloc_default");
        assert_eq!(a.stack.len(), 4);
        assert_eq!(a.rust_caller.as_deref(), Some("ts_walk::parse"));
        let rust = attribute(&point(vec![1, 6, 7, 4, 5]), &frames);
        assert_eq!(
            (rust.stack.last().unwrap().function.as_str(), rust.rust_caller),
            ("ts_walk::parse", None)
        );
        let c_thread = attribute(&point(vec![1, 8, 9]), &frames);
        assert_eq!(c_thread.stack.last().unwrap().function, "strdup");
        assert_eq!(c_thread.rust_caller, None);
        let only_malloc = attribute(&point(vec![1]), &frames);
        assert_eq!(only_malloc.stack.last().unwrap().function, "malloc");
    }

    #[test]
    fn a_site_is_the_programs_own_code_above_rusts_library() {
        let frames = vec![
            None,
            placed("__rustc::__rust_alloc", Language::Rust),
            placed("core::fmt::write", Language::Rust),
            placed("core::option::Option<T>::map_or_else", Language::Rust),
            placed("own_cross::name", Language::Rust),
            placed("own_cross::into_raw_leak", Language::Rust),
            placed("std::rt::lang_start_internal", Language::Rust),
        ];
        let point = |fs: Vec<usize>| Point { tb: 1, tbk: 1, gb: 0, gbk: 0, eb: 0, ebk: 0, fs };
        let a = attribute(&point(vec![1, 2, 3, 4, 5]), &frames);
        assert_eq!(a.site().unwrap().function, "own_cross::name");
        // The whole stack above the allocator stays, for the pictures.
        assert_eq!(a.stack.last().unwrap().function, "core::fmt::write");
        // All of it the library's: the first frame above the allocator.
        let a = attribute(&point(vec![1, 2, 6]), &frames);
        assert_eq!(a.site().unwrap().function, "core::fmt::write");
    }

    #[test]
    fn inlined_frames_of_the_alloc_crate_are_the_allocators_by_their_file() {
        let raw_vec = "/rustc/0123/library/alloc/src/raw_vec/mod.rs";
        assert!(is_allocator_frame("grow_one", Some(raw_vec)));
        assert!(!is_allocator_frame("parse", Some("/src/ts_walk.rs")));
    }

    #[test]
    fn libraries_are_placed_by_their_exported_functions() {
        let lib = Library {
            name: "libc.so.6".into(),
            functions: HashMap::from([("strdup".to_owned(), (0x989A0, 0x40))]),
            ranges: vec![(0, 0x200000)],
            base: None,
        };
        let mut m = Modules {
            program: Some(("prog".into(), vec![(0x108000, 0x150000)])),
            libraries: vec![lib],
        };
        let frame = |address: u64, function: &str| dhat::Frame {
            address,
            function: function.into(),
            file: Some("x.c".into()),
            object: None,
        };
        m.locate(&[frame(0x10_9000, "main"), frame(0x48F_99A9, "strdup")]);
        assert_eq!(m.libraries[0].base, Some(0x486_1000));
        assert_eq!(m.module(&frame(0x48F_11FA, "__fopen_internal")).as_deref(), Some("libc.so.6"));
        assert_eq!(m.module(&frame(0x10_91DD, "alloc_some")).as_deref(), Some("prog"));
        assert_eq!(m.module(&frame(0x9000_0000, "elsewhere")), None);
    }

    #[test]
    fn an_inlined_callers_bare_name_comes_with_its_host() {
        let frame = |address: u64, function: &str| Placed {
            address,
            function: function.into(),
            module: "m".into(),
            language: Language::Rust,
            allocator: false,
            standard_library: false,
        };
        let (a, b, c) = (frame(1, "step"), frame(1, "rusqlite::row::Rows::next"), frame(2, "main"));
        assert_eq!(caller_name(&[&a, &b, &c]), "step (inlined into rusqlite::row::Rows::next)");
        assert_eq!(caller_name(&[&b, &c]), "rusqlite::row::Rows::next");
        assert_eq!(caller_name(&[&c]), "main");
    }

    #[test]
    fn allocator_frames_are_named_so() {
        for f in
            ["malloc", "operator new(unsigned long)", "__rustc::__rdl_alloc", "alloc::alloc::alloc"]
        {
            assert!(is_allocator(f), "{f}");
        }
        for f in ["strdup", "main", "ts_malloc_default", "my::alloc::thing"] {
            assert!(!is_allocator(f), "{f}");
        }
    }
}
