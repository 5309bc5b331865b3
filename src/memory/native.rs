//! The native engine: the program runs at its own speed with ffiprof's interposer
//! (`csrc/heap/interpose.c`, embedded in ffiprof's binary and written to the cache
//! directory) preloaded; its logs ([`super::log`]) are replayed as DHAT counts
//! ([`super::replay`]), each address symbolized from the files the process mapped (inlined
//! frames included), and each block's allocating and freeing sides told apart by the
//! frames of the allocator they went through ([`super::sites::Family`]).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::calls::{self, Reach, Untold};
use super::log::{self, Log};
use super::replay::{self, Count, Invalid, Replayed, Side};
use super::schema::{
    CrossedFree, Family, FamilyPair, Figures, InvalidFree, InvalidFreeKind, Ownership,
    UnknownFamily, UnknownSide,
};
use super::sites::{self, attribute_stack, is_allocator_frame, Attributed, Heap, Placed};
use crate::error::{Error, Result};
use crate::stacks::classify;
use crate::symbol::{FileSymbolizer, Frame};

/// The interposer as build.rs built it.
static EMBEDDED: &[u8] = include_bytes!(env!("FFIPROF_BUILT_HEAP_LIB"));

/// What the program's run under the interposer left.
pub(crate) struct Ran {
    /// One log per process.
    pub(crate) logs: Vec<Log>,
    /// Its exit status as a shell reports it.
    pub(crate) status: i32,
    /// Wall seconds.
    pub(crate) seconds: f64,
    /// The program as found.
    pub(crate) program: PathBuf,
    /// The program's own process.
    pub(crate) pid: crate::ids::Pid,
    /// Logs that could not be read, each said in a sentence: left out, the rest kept.
    pub(crate) left_out: Vec<String>,
}

/// Refuses a program the interposer cannot be preloaded into: a static executable (no
/// dynamic loader reads LD_PRELOAD) or a setuid/setgid one (the loader ignores it).
fn check_preloadable(program: &Path) -> Result<()> {
    use object::Object;
    use std::os::unix::fs::PermissionsExt;
    let refuse = |reason: &str| {
        Err(Error::CannotPreload { program: program.display().to_string(), reason: reason.into() })
    };
    if let Ok(meta) = std::fs::metadata(program) {
        if meta.permissions().mode() & 0o6000 != 0 {
            return refuse(
                "it is setuid or setgid, and the dynamic loader ignores LD_PRELOAD for it",
            );
        }
    }
    let Some(data) = sites::mapped(program) else { return Ok(()) };
    // A script (#!) is run by an interpreter that is checked when it starts.
    let Ok(file) = object::File::parse(&*data) else { return Ok(()) };
    let interp = file.sections().any(|s| {
        use object::ObjectSection;
        s.name().is_ok_and(|n| n == ".interp")
    });
    if !interp {
        return refuse(
            "it is statically linked: no dynamic loader runs in it to preload the interposer",
        );
    }
    Ok(())
}

/// Runs `command` with the interposer preloaded, its logs into `raw`; with `guard` > 0,
/// about one allocation in `guard` on guard pages and nothing else logged (`lifetimes
/// --guard`); `env` is set for the program too.
pub(crate) fn run(
    command: &[OsString],
    raw: &Path,
    trace_children: bool,
    sample_bytes: u64,
    guard: u64,
    env: &[(&str, String)],
) -> Result<Ran> {
    let program = crate::record::resolve_program(&command[0])?;
    check_preloadable(&program)?;
    let library = crate::cache::embedded("libffiprof_heap", EMBEDDED)?;
    std::fs::create_dir_all(raw).map_err(|source| Error::Write { path: raw.to_owned(), source })?;
    let mut preload = library.as_os_str().to_owned();
    if let Some(theirs) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        preload.push(":");
        preload.push(theirs);
    }
    let mut cmd = Command::new(&program);
    cmd.args(&command[1..])
        .env("LD_PRELOAD", preload)
        .env("FFIPROF_HEAP_LIB", &library)
        .env("FFIPROF_HEAP_DIR", raw)
        .env("FFIPROF_HEAP_SAMPLE", sample_bytes.to_string())
        .env("FFIPROF_HEAP_CHILDREN", if trace_children { "1" } else { "0" });
    if guard > 0 {
        cmd.env("FFIPROF_HEAP_GUARD", guard.to_string());
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    // Ctrl-C reaches the program; ffiprof stays to read what it logged.
    let _ = crate::ffi::interrupt_flag();
    let name = program.file_name().map_or(program.as_os_str(), |n| n).to_string_lossy();
    crate::progress::running(if guard > 0 {
        format!("running {name} with guard pages")
    } else {
        format!("running {name} with the heap interposer")
    });
    let start = Instant::now();
    let no_such = |e: std::io::Error| Error::NoSuchProgram {
        program: program.display().to_string(),
        reason: e.to_string(),
    };
    let mut child = cmd.spawn().map_err(no_such)?;
    let pid = crate::ids::Pid(child.id());
    let status = child.wait().map_err(no_such)?;
    let seconds = start.elapsed().as_secs_f64();
    let (mut logs, mut left_out) = (Vec::new(), Vec::new());
    for path in crate::valgrind::files_in(raw, "heap.")? {
        match log::read(&path) {
            Ok(log) => logs.push(log),
            Err(e) => left_out.push(match log::named(&path) {
                Some((pid, _)) => format!("process {pid}'s heap log is left out: {e}"),
                None => format!("a heap log is left out: {e}"),
            }),
        }
    }
    if logs.is_empty() && !left_out.is_empty() {
        return Err(Error::Internal(left_out.join("; ")));
    }
    // Guard mode logs only what it guards: a program that allocated nothing has no log.
    if logs.is_empty() && guard == 0 {
        return Err(Error::Internal(format!(
            "the heap interposer wrote no log (the program's status {}): the program may \
             clear LD_PRELOAD; run it under DHAT instead (--dhat)",
            crate::ffi::shell_status(status)
        )));
    }
    logs.sort_by_key(|l| (l.pid, l.image));
    let status = crate::ffi::shell_status(status);
    Ok(Ran { logs, status, seconds, program, pid, left_out })
}

/// A C library's exported functions, to name a frame as its library exports it: glibc's
/// debug information names `strdup` by an internal alias (`__GI___strdup`), and DHAT,
/// like a user, by the name the library exports. Of several names at one address, the
/// one with the fewest leading underscores, then the shortest, is taken.
struct Exports {
    /// (start, end, name), by start.
    functions: Vec<(u64, u64, String)>,
}

impl Exports {
    fn of(file: &object::File<'_>) -> Exports {
        use object::{Object, ObjectSymbol};
        let mut best: BTreeMap<u64, (u64, String)> = BTreeMap::new();
        let rank = |n: &str| (n.len() - n.trim_start_matches('_').len(), n.len());
        for s in file.dynamic_symbols() {
            let kind_ok = s.kind() == object::SymbolKind::Text && s.is_definition() && s.size() > 0;
            let Ok(name) = s.name() else { continue };
            if !kind_ok || name.is_empty() {
                continue;
            }
            let name = name.split('@').next().unwrap_or(name).to_owned();
            let entry = best.entry(s.address()).or_insert_with(|| (s.size(), name.clone()));
            if rank(&name) < rank(&entry.1) {
                *entry = (s.size(), name);
            }
        }
        let functions = best.into_iter().map(|(at, (size, name))| (at, at + size, name)).collect();
        Exports { functions }
    }

    /// The program's own functions as its symbol table names them (`.symtab`, mangled;
    /// see [`Exports::qualified_name`]): with line tables only, debug information names a
    /// Rust function bare (`open_with_flags`).
    fn symbols(file: &object::File<'_>) -> Exports {
        use object::{Object, ObjectSymbol};
        let mut functions: Vec<(u64, u64, String)> = file
            .symbols()
            .filter(|s| s.kind() == object::SymbolKind::Text && s.is_definition() && s.size() > 0)
            .filter_map(|s| Some((s.address(), s.address() + s.size(), s.name().ok()?.to_owned())))
            .collect();
        functions.sort();
        Exports { functions }
    }

    /// The demangled, qualified name of the function at `address`, where it has a path.
    fn qualified_name(&self, address: u64) -> Option<String> {
        let name = format!("{:#}", rustc_demangle::demangle(self.name(address)?));
        name.contains("::").then(|| crate::symbol::strip_rust_hash(&name).to_owned())
    }

    fn name(&self, address: u64) -> Option<&str> {
        let i = self.functions.partition_point(|f| f.0 <= address).checked_sub(1)?;
        let (start, end, name) = &self.functions[i];
        (*start <= address && address < *end).then_some(name.as_str())
    }
}

/// The file offset of a virtual address of `file`.
fn file_offset(file: &object::File<'_>, address: u64) -> Option<u64> {
    use object::{Object, ObjectSegment};
    file.segments().find_map(|s| {
        let (offset, size) = s.file_range();
        (s.address() <= address && address < s.address() + size)
            .then(|| address - s.address() + offset)
    })
}

/// True for a frame of std's own allocator (`System`, the shims), by name or source.
fn is_std_allocator(frame: &Frame) -> bool {
    const SOURCES: &[&str] = &["/library/std/src/alloc.rs", "/library/std/src/sys/alloc/"];
    frame.function.as_deref().and_then(calls::entry_family) == Some(Family::Rust)
        || frame.file.as_deref().is_some_and(|f| SOURCES.iter().any(|s| f.contains(s)))
}

/// Settles a C verdict that rests on Rust or C++ code calling C's allocator
/// ([`Reach::checked_sites`]) by the sites' line tables: Rust's allocator inlined there
/// makes it Rust's, an operator new or delete C++'s; line tables without either, C's;
/// none, unknown.
pub(crate) fn settle(
    reach: &Reach,
    file: &object::File<'_>,
    path: &Path,
    symbolizer: &mut FileSymbolizer,
) -> std::result::Result<Family, Untold> {
    if reach.checked_sites.is_empty() {
        return reach.family;
    }
    let offsets: Vec<u64> =
        reach.checked_sites.iter().filter_map(|&(a, _)| file_offset(file, a)).collect();
    let frames = symbolizer.resolve_with(path, &offsets, "", true).unwrap_or_default();
    let operator =
        |f: &Frame| f.function.as_deref().and_then(calls::entry_family) == Some(Family::Cxx);
    let none = Vec::new();
    let lines = frames.iter().chain(std::iter::repeat(&none));
    let mut verdicts = reach.checked_sites.iter().zip(lines).map(|(&(_, unlined), frames)| {
        if frames.iter().any(is_std_allocator) {
            Ok(Family::Rust)
        } else if frames.iter().any(operator) {
            Ok(Family::Cxx)
        } else if frames.first().is_some_and(|f| f.file.is_some() && f.line.is_some_and(|l| l > 0))
        {
            // The innermost frame is where the call is; its line 0 is code the compiler
            // made of several (LTO's merges): no source says what was inlined there.
            Ok(Family::C)
        } else {
            Err(unlined)
        }
    });
    let first = verdicts.next().unwrap_or(Err(Untold::Unresolved));
    match verdicts.find(|v| *v != first) {
        None => first,
        Some(_) => Err(Untold::Unresolved),
    }
}

/// The frames at `offsets` of `path`. The C runtime's are read from its symbol tables
/// first, and from its separate debug information (where installed) only for what they
/// leave unnamed (static functions such as `__fopen_internal`): reading libc's debug
/// information takes longer than the rest of a census.
fn resolve(
    symbolizer: &mut FileSymbolizer,
    path: &Path,
    offsets: &[u64],
    module: &str,
) -> Vec<Vec<Frame>> {
    let debug_first = !crate::language::is_c_runtime_module(module);
    let mut frames =
        symbolizer.resolve_with(path, offsets, module, debug_first).unwrap_or_default();
    if debug_first {
        return frames;
    }
    let unnamed: Vec<usize> = (0..offsets.len())
        .filter(|&i| frames.get(i).is_none_or(|f| f.iter().all(|f| f.function.is_none())))
        .collect();
    if unnamed.is_empty() {
        return frames;
    }
    let again: Vec<u64> = unnamed.iter().map(|&i| offsets[i]).collect();
    let named = symbolizer.resolve_with(path, &again, module, true).unwrap_or_default();
    frames.resize(offsets.len(), Vec::new());
    for (i, f) in unnamed.into_iter().zip(named) {
        frames[i] = f;
    }
    frames
}

/// Every address of a log placed: its frames (inlined ones first), as the census's
/// frame table holds them; and for each address the allocator returned to, the family
/// its call reached ([`calls`]).
#[derive(Default)]
pub(crate) struct Placer {
    /// The frame table (`[0]` stands for the root, as in DHAT's).
    frames: Vec<Option<Placed>>,
    /// Each address's frames in the table, innermost first.
    at: HashMap<u64, Vec<usize>>,
    /// For each address the allocator returned to: the family, and the frame of the
    /// function that jumped on to the allocator (lost from the stack), if any.
    reached: HashMap<u64, (std::result::Result<Family, Untold>, Option<usize>)>,
}

impl Placer {
    pub(crate) fn new(
        log: &Log,
        addresses: impl Iterator<Item = u64>,
        returns: &super::log::FastSet<u64>,
        symbolizer: &mut FileSymbolizer,
    ) -> Placer {
        let mut placer = Placer { frames: vec![None], ..Placer::default() };
        let mut by_file: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        let mut unknown = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for ip in addresses.filter(|&ip| ip != 0) {
            if !seen.insert(ip) {
                continue;
            }
            match log.mapping(ip).filter(|m| m.path.starts_with('/')) {
                Some(m) => {
                    let offset = ip - 1 - m.range.start + m.offset;
                    by_file.entry(m.path.clone()).or_default().push((ip, offset));
                }
                None => unknown.push(ip),
            }
        }
        for (path, ips) in by_file {
            placer.place_file(log, &path, &ips, returns, symbolizer);
        }
        for ip in unknown {
            placer.add(ip, Vec::new(), "");
            placer.reached.insert(ip, (Err(Untold::NoCode), None));
        }
        placer
    }

    /// Places the addresses `ips` (each with its file offset) of the file at `path`, and
    /// tells the family of those among `returns`.
    fn place_file(
        &mut self,
        log: &Log,
        path: &str,
        ips: &[(u64, u64)],
        returns: &super::log::FastSet<u64>,
        symbolizer: &mut FileSymbolizer,
    ) {
        let placer = self;
        let module =
            Path::new(path).file_name().map_or(path.to_owned(), |n| n.to_string_lossy().into());
        let offsets: Vec<u64> = ips.iter().map(|p| p.1).collect();
        let resolved = resolve(symbolizer, Path::new(path), &offsets, &module);
        let data = sites::mapped(Path::new(path));
        let file = data.as_ref().and_then(|d| object::File::parse(&**d).ok());
        let exports = file.as_ref().map(Exports::of);
        let symbols = file.as_ref().map(Exports::symbols);
        let mut code = file.as_ref().map(calls::CodeFile::new);
        let mut tails: HashMap<u64, usize> = HashMap::new();
        for (i, (ip, _)) in ips.iter().enumerate() {
            let mapping = log.mapping(*ip);
            if returns.contains(ip) {
                let here = file
                    .as_ref()
                    .zip(mapping)
                    .and_then(|(f, m)| crate::maps::file_address(f, m, *ip));
                let verdict = match (code.as_mut(), file.as_ref(), here) {
                    (Some(code), Some(f), Some(here)) => {
                        let reach = code.reached(here);
                        let family = settle(&reach, f, Path::new(path), symbolizer);
                        let tail = reach.tail.filter(|_| family.is_ok()).map(|start| {
                            *tails.entry(start).or_insert_with(|| {
                                let raw = code.function_at(start).map_or("???", |f| f.2);
                                let named = file_offset(f, start)
                                    .and_then(|o| {
                                        let path = Path::new(path);
                                        symbolizer.resolve_with(path, &[o], &module, true).ok()
                                    })
                                    .and_then(|mut v| v.pop()?.pop()?.function);
                                placer.tail_frame(start, raw, named, &module)
                            })
                        });
                        (family, tail)
                    }
                    _ => (Err(Untold::NoCode), None),
                };
                placer.reached.insert(*ip, verdict);
            }
            let mut frames = resolved.get(i).cloned().unwrap_or_default();
            // The outermost frame at the address is the function the code is in.
            let at = file
                .as_ref()
                .zip(mapping)
                .and_then(|(file, mapping)| crate::maps::file_address(file, mapping, ip - 1));
            let exported = exports.as_ref().zip(at).and_then(|(e, at)| e.name(at));
            let full = symbols.as_ref().zip(at).and_then(|(e, at)| e.qualified_name(at));
            if let Some(outer) = frames.last_mut() {
                let rust = outer.file.as_deref().is_some_and(|f| f.ends_with(".rs"));
                let bare = outer.function.as_deref().is_some_and(|f| !f.contains("::"));
                match (exported, full) {
                    // A mangled export (C++'s) is better said demangled, as found.
                    (Some(name), _) if !rust && !name.starts_with("_Z") => {
                        outer.function = Some(name.to_owned())
                    }
                    (_, Some(name)) if rust && bare => outer.function = Some(name),
                    _ => {}
                }
            }
            placer.add(*ip, frames, &module);
        }
    }

    /// A frame for a function the stack lost (it jumped on to the allocator): its name
    /// demangled, its language as a frame of that name would have.
    fn tail_frame(&mut self, start: u64, raw: &str, named: Option<String>, module: &str) -> usize {
        let demangled = format!("{:#}", rustc_demangle::demangle(raw));
        let function = if demangled != raw {
            crate::symbol::strip_rust_hash(&demangled).to_owned()
        } else {
            named.unwrap_or_else(|| raw.to_owned())
        };
        let frame = Frame {
            function: Some(function.clone()),
            module: Some(module.to_owned()),
            file: None,
            line: None,
            inlined: false,
        };
        self.frames.push(Some(Placed {
            address: start,
            language: classify(start, &frame),
            allocator: is_allocator_frame(&function, None),
            standard_library: sites::is_library_frame(&function, None),
            function,
            module: module.to_owned(),
        }));
        self.frames.len() - 1
    }

    fn add(&mut self, ip: u64, mut frames: Vec<Frame>, module: &str) {
        if frames.is_empty() {
            frames.push(Frame {
                function: None,
                module: None,
                file: None,
                line: None,
                inlined: false,
            });
        }
        let mut indices = Vec::with_capacity(frames.len());
        for frame in frames {
            let function = frame.function.clone().unwrap_or_else(|| "???".into());
            indices.push(self.frames.len());
            self.frames.push(Some(Placed {
                address: ip,
                language: classify(ip, &frame),
                allocator: is_allocator_frame(&function, frame.file.as_deref()),
                standard_library: sites::is_library_frame(&function, frame.file.as_deref()),
                function,
                module: frame.module.clone().unwrap_or_else(|| module.to_owned()),
            }));
        }
        self.at.insert(ip, indices);
    }

    /// The frame-table indices of a stack of return addresses (innermost first), with the
    /// frame of a function that jumped on to the allocator where the code proves one.
    fn indices(&self, ips: &[u64]) -> Vec<usize> {
        let tail = ips.first().and_then(|ip| self.reached.get(ip)?.1);
        let frames = ips.iter().flat_map(|ip| self.at.get(ip).into_iter().flatten().copied());
        tail.into_iter().chain(frames).collect()
    }

    /// The family of the allocator a side went through: C++'s where it came through the
    /// operators, else what its call reached.
    pub(crate) fn family(&self, side: &Side) -> std::result::Result<Family, Untold> {
        if side.cxx {
            return Ok(Family::Cxx);
        }
        self.reached.get(&side.ip).map_or(Err(Untold::NoCode), |r| r.0)
    }

    /// The frames of a stack of return addresses (innermost first), placed.
    pub(crate) fn placed(&self, ips: &[u64]) -> Vec<&Placed> {
        self.indices(ips).into_iter().filter_map(|i| self.frames[i].as_ref()).collect()
    }
}

/// One process's heap and ownership from its log.
pub(crate) struct Process {
    /// Frames and points, for the sites.
    pub(crate) heap: Heap,
    /// Who allocated and freed.
    pub(crate) ownership: Ownership,
    /// Bytes and blocks allocated with no stack kept (unsampled, or not unwound).
    pub(crate) stackless: Figures,
}

/// The side of a block's life, attributed (its stack, else its return address alone),
/// with the family its call reached, or unknown and why.
pub(crate) fn side_of(log: &Log, placer: &Placer, side: &Side) -> (Attributed, Option<Untold>) {
    let ips = log.stacks.get(&side.stack).cloned().unwrap_or_else(|| vec![side.ip]);
    let mut a = attribute_stack(&placer.placed(&ips), side.cxx);
    let family = placer.family(side);
    a.family = family.unwrap_or(Family::Unknown);
    (a, family.err())
}

/// The function a side is told by: its site ([`Attributed::site`]).
fn site_name(a: &Attributed) -> String {
    a.site().map_or_else(|| "???".to_owned(), |p| p.function.clone())
}

/// The ownership census from the replay's pairs and invalid frees. A free is crossed only
/// where both families are told and differ; where one is not, the pair counts as unknown,
/// with why.
fn ownership(log: &Log, placer: &Placer, replayed: &Replayed) -> Ownership {
    let mut memo: HashMap<Side, (Attributed, Option<Untold>)> = HashMap::new();
    let mut attributed = |side: &Side| -> (Attributed, Option<Untold>) {
        memo.entry(*side).or_insert_with(|| side_of(log, placer, side)).clone()
    };
    let mut frees: BTreeMap<(Family, Family), Count> = BTreeMap::new();
    type CrossKey = (Family, Family, String, Option<String>, String, Option<String>);
    let mut crossed: BTreeMap<CrossKey, Count> = BTreeMap::new();
    let mut unknown: BTreeMap<(UnknownSide, Untold), Count> = BTreeMap::new();
    for ((by, freed), count) in &replayed.pairs {
        let ((a, a_why), (f, f_why)) = (attributed(by), attributed(freed));
        let sum = frees.entry((a.family, f.family)).or_default();
        (sum.blocks, sum.bytes) = (sum.blocks + count.blocks, sum.bytes + count.bytes);
        let whys = [(UnknownSide::Allocation, a_why), (UnknownSide::Free, f_why)];
        for (side, why) in whys.into_iter().filter_map(|(s, w)| Some((s, w?))) {
            let sum = unknown.entry((side, why)).or_default();
            (sum.blocks, sum.bytes) = (sum.blocks + count.blocks, sum.bytes + count.bytes);
        }
        if a.family != f.family && a_why.is_none() && f_why.is_none() {
            let key =
                (a.family, f.family, site_name(&a), a.rust_caller, site_name(&f), f.rust_caller);
            let sum = crossed.entry(key).or_default();
            (sum.blocks, sum.bytes) = (sum.blocks + count.blocks, sum.bytes + count.bytes);
        }
    }
    let mut invalid: BTreeMap<(InvalidFreeKind, String, Option<String>), u64> = BTreeMap::new();
    for ((kind, side), n) in &replayed.invalid {
        let (a, _) = attributed(side);
        let kind = match kind {
            Invalid::DoubleFree => InvalidFreeKind::DoubleFree,
            Invalid::NeverAllocated => InvalidFreeKind::NeverAllocated,
        };
        *invalid.entry((kind, site_name(&a), a.rust_caller)).or_default() += n;
    }
    Ownership {
        frees: frees
            .into_iter()
            .map(|((allocated_by, freed_by), c)| FamilyPair {
                allocated_by,
                freed_by,
                blocks: c.blocks,
                bytes: c.bytes,
            })
            .collect(),
        crossed_frees: crossed
            .into_iter()
            .map(|((allocated_by, freed_by, af, ar, ff, fr), c)| CrossedFree {
                allocated_by,
                freed_by,
                alloc_function: af,
                alloc_rust_caller: ar,
                free_function: ff,
                free_rust_caller: fr,
                blocks: c.blocks,
                bytes: c.bytes,
            })
            .collect(),
        invalid_frees: invalid
            .into_iter()
            .map(|((kind, function, rust_caller), count)| InvalidFree {
                kind,
                function,
                rust_caller,
                count,
            })
            .collect(),
        unknown: unknown
            .into_iter()
            .map(|((side, reason), c)| UnknownFamily {
                side,
                reason,
                blocks: c.blocks,
                bytes: c.bytes,
            })
            .collect(),
    }
}

/// One log replayed, symbolized and attributed.
pub(crate) fn process(log: &Log, sample_bytes: u64, symbolizer: &mut FileSymbolizer) -> Process {
    // One pass over the log: the replay, and the return addresses its events carry.
    let mut returns: super::log::FastSet<u64> = Default::default();
    let events = log.events().inspect(|e| {
        returns.insert(e.ip());
    });
    let replayed = replay::replay(events, sample_bytes);
    let stack_ips = log.stacks.values().flatten().copied();
    let placer = Placer::new(log, stack_ips.chain(returns.iter().copied()), &returns, symbolizer);
    let (mut points, mut families) = (Vec::new(), Vec::new());
    let mut stackless = Figures::default();
    for (stack, figures) in &replayed.points {
        let ips = log.stacks.get(stack).map(Vec::as_slice).unwrap_or(&[]);
        if ips.is_empty() {
            stackless.add(figures);
            continue;
        }
        points.push(super::dhat::Point {
            tb: figures.bytes,
            tbk: figures.blocks,
            gb: figures.bytes_at_peak,
            gbk: figures.blocks_at_peak,
            eb: figures.bytes_at_exit,
            ebk: figures.blocks_at_exit,
            fs: placer.indices(ips),
        });
        let cxx = replayed.cxx_stacks.contains(stack);
        let side = Side { stack: *stack, ip: ips[0], cxx };
        families.push(placer.family(&side).unwrap_or(Family::Unknown));
    }
    let ownership = ownership(log, &placer, &replayed);
    let heap = Heap {
        pid: log.pid,
        command: log.command.clone(),
        frames: placer.frames,
        points,
        families,
        totals: Some(replayed.totals),
    };
    Process { heap, ownership, stackless }
}

/// The processes' ownership censuses as one: sums of the same pairs, most bytes first.
pub(crate) fn merge(all: Vec<Ownership>) -> Ownership {
    let mut frees: BTreeMap<(Family, Family), (u64, u64)> = BTreeMap::new();
    let mut crossed: Vec<CrossedFree> = Vec::new();
    let mut invalid: Vec<InvalidFree> = Vec::new();
    let mut unknown: BTreeMap<(UnknownSide, Untold), (u64, u64)> = BTreeMap::new();
    for o in all {
        for u in o.unknown {
            let e = unknown.entry((u.side, u.reason)).or_default();
            (e.0, e.1) = (e.0 + u.blocks, e.1 + u.bytes);
        }
        for f in o.frees {
            let e = frees.entry((f.allocated_by, f.freed_by)).or_default();
            (e.0, e.1) = (e.0 + f.blocks, e.1 + f.bytes);
        }
        for c in o.crossed_frees {
            let same = |x: &&mut CrossedFree| {
                (x.allocated_by, x.freed_by, &x.alloc_function, &x.alloc_rust_caller)
                    == (c.allocated_by, c.freed_by, &c.alloc_function, &c.alloc_rust_caller)
                    && (&x.free_function, &x.free_rust_caller)
                        == (&c.free_function, &c.free_rust_caller)
            };
            match crossed.iter_mut().find(same) {
                Some(x) => (x.blocks, x.bytes) = (x.blocks + c.blocks, x.bytes + c.bytes),
                None => crossed.push(c),
            }
        }
        for i in o.invalid_frees {
            match invalid.iter_mut().find(|x| {
                (x.kind, &x.function, &x.rust_caller) == (i.kind, &i.function, &i.rust_caller)
            }) {
                Some(x) => x.count += i.count,
                None => invalid.push(i),
            }
        }
    }
    crossed.sort_by(|a, b| {
        b.bytes.cmp(&a.bytes).then_with(|| a.alloc_function.cmp(&b.alloc_function))
    });
    Ownership {
        frees: frees
            .into_iter()
            .map(|((allocated_by, freed_by), (blocks, bytes))| FamilyPair {
                allocated_by,
                freed_by,
                blocks,
                bytes,
            })
            .collect(),
        crossed_frees: crossed,
        invalid_frees: invalid,
        unknown: unknown
            .into_iter()
            .map(|((side, reason), (blocks, bytes))| UnknownFamily { side, reason, blocks, bytes })
            .collect(),
    }
}
