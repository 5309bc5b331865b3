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

use super::log::{self, Log};
use super::replay::{self, Count, Invalid, Replayed, Side};
use super::schema::{
    CrossedFree, Family, FamilyPair, Figures, InvalidFree, InvalidFreeKind, Ownership,
};
use super::sites::{
    self, attribute_stack, is_allocator_frame, Attributed, Heap, Placed, C_ENTRIES,
};
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

/// Runs `command` with the interposer preloaded, its logs into `raw`.
pub(crate) fn run(
    command: &[OsString],
    raw: &Path,
    trace_children: bool,
    sample_bytes: u64,
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
    // Ctrl-C reaches the program; ffiprof stays to read what it logged.
    let _ = crate::ffi::interrupt_flag();
    let start = Instant::now();
    let status = cmd.status().map_err(|e| Error::NoSuchProgram {
        program: program.display().to_string(),
        reason: e.to_string(),
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let mut logs = Vec::new();
    for path in crate::valgrind::files_in(raw, "heap.")? {
        logs.push(log::read(&path)?);
    }
    if logs.is_empty() {
        return Err(Error::Internal(format!(
            "the heap interposer wrote no log (the program's status {}): the program may \
             clear LD_PRELOAD; run it under DHAT instead (--dhat)",
            crate::ffi::shell_status(status)
        )));
    }
    logs.sort_by_key(|l| l.pid);
    Ok(Ran { logs, status: crate::ffi::shell_status(status), seconds, program })
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

    /// The function `address` is in: its start and end.
    fn range(&self, address: u64) -> Option<(u64, u64)> {
        let i = self.functions.partition_point(|f| f.0 <= address).checked_sub(1)?;
        let (start, end, _) = &self.functions[i];
        (*start <= address && address < *end).then_some((*start, *end))
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

/// Names of Rust's allocator shims (any crate's mangling holds them).
const SHIM_NAMES: &[&str] =
    &["__rust_alloc", "__rust_realloc", "__rust_dealloc", "__rdl_", "__rg_"];

/// Where Rust's allocator shims lie in a file (`__rust_alloc` and kin, `__rdl_*`,
/// `__rg_*`), by file virtual address, and the GOT slots that hold their addresses (Rust
/// calls through the GOT, `call *slot(%rip)`, where the shim is another crate's symbol).
#[derive(Default)]
struct Shims {
    ranges: Vec<(u64, u64)>,
    slots: std::collections::HashSet<u64>,
}

impl Shims {
    /// True for a shim's name.
    fn named(&self, name: &str) -> bool {
        SHIM_NAMES.iter().any(|x| name.contains(x))
    }

    /// True for an address inside a shim.
    fn contains(&self, address: u64) -> bool {
        self.ranges.iter().any(|&(lo, hi)| (lo..hi).contains(&address))
    }

    fn of(file: &object::File<'_>) -> Shims {
        use object::{Object, ObjectSymbol};
        let named = |n: &str| SHIM_NAMES.iter().any(|x| n.contains(x));
        let ranges: Vec<(u64, u64)> = file
            .symbols()
            .chain(file.dynamic_symbols())
            .filter(|s| s.kind() == object::SymbolKind::Text && s.size() > 0)
            .filter(|s| s.name().is_ok_and(named))
            .map(|s| (s.address(), s.address() + s.size()))
            .collect();
        let inside = |at: u64| ranges.iter().any(|&(lo, hi)| (lo..hi).contains(&at));
        let mut slots = std::collections::HashSet::new();
        for (slot, r) in file.dynamic_relocations().into_iter().flatten() {
            let shim = match r.target() {
                object::RelocationTarget::Absolute => inside(r.addend() as u64),
                object::RelocationTarget::Symbol(i) => file
                    .symbol_by_index(i)
                    .ok()
                    .and_then(|s| s.name().ok().map(|n| named(n) || inside(s.address())))
                    .unwrap_or(false),
                _ => false,
            };
            if shim {
                slots.insert(slot);
            }
        }
        Shims { ranges, slots }
    }

    /// True where the call that returns to `ip` goes into one of Rust's allocator shims,
    /// directly (`call rel32`) or through its GOT slot (`call *slot(%rip)`): the shim's
    /// own frame is gone when it jumped on to malloc or free (a tail call), but the call
    /// says whose allocator it was.
    fn called_before(
        &self,
        data: &[u8],
        file: &object::File<'_>,
        m: &crate::maps::Mapping,
        ip: u64,
    ) -> bool {
        if self.ranges.is_empty() && self.slots.is_empty() {
            return false;
        }
        let offset = (ip - m.range.start + m.offset) as usize;
        let Some(code) = offset.checked_sub(6).and_then(|at| data.get(at..offset)) else {
            return false;
        };
        let Some(here) = crate::maps::file_address(file, m, ip) else { return false };
        let rel = |b: &[u8]| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        if code[1] == 0xE8 {
            let target = here.wrapping_add_signed(rel(&code[2..]));
            if self.ranges.iter().any(|&(lo, hi)| (lo..hi).contains(&target)) {
                return true;
            }
        }
        code[0] == 0xFF
            && code[1] == 0x15
            && self.slots.contains(&here.wrapping_add_signed(rel(&code[2..])))
    }
}

/// Where the call that returns to `ip` went, when it is a direct call (`call rel32`): the
/// callee's start, by file virtual address.
fn direct_callee(
    data: &[u8],
    file: &object::File<'_>,
    m: &crate::maps::Mapping,
    ip: u64,
) -> Option<u64> {
    let offset = (ip - m.range.start + m.offset) as usize;
    let code = data.get(offset.checked_sub(5)?..offset)?;
    let here = crate::maps::file_address(file, m, ip)?;
    (code[0] == 0xE8).then(|| {
        here.wrapping_add_signed(i64::from(i32::from_le_bytes([
            code[1], code[2], code[3], code[4],
        ])))
    })
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

/// True where the function `[start, end)` of `path` ends in Rust's allocator by tail
/// jumps (a Rust drop whose last act is to free): a jump into one of Rust's shims, or to
/// C's allocator with Rust's allocator inlined at the jump (its frames say so), directly or
/// through the functions it jumps to in turn (a few deep). A free reached that way
/// returns to the first function's caller, and no frame of Rust's allocator is left to
/// tell whose free it was.
fn tails_into_rust_allocator(
    file: &object::File<'_>,
    path: &Path,
    function: (u64, u64),
    symbols: &Exports,
    shims: &Shims,
    symbolizer: &mut FileSymbolizer,
) -> bool {
    use crate::machine_code::Leaves;
    let mut todo = vec![(function, 0)];
    let mut seen = std::collections::HashSet::new();
    while let Some(((start, end), depth)) = todo.pop() {
        if depth > 4 || !seen.insert(start) {
            continue;
        }
        let mut into_c = Vec::new();
        for (at, to) in crate::machine_code::tail_jumps(file, start, end - start) {
            match to {
                Leaves::Import(name)
                    if C_ENTRIES.contains(&name.split('@').next().unwrap_or("")) =>
                {
                    into_c.extend(file_offset(file, at))
                }
                Leaves::Import(name) if shims.named(&name) => return true,
                Leaves::Code(t) if shims.contains(t) => return true,
                Leaves::Code(t) => todo.extend(symbols.range(t).map(|r| (r, depth + 1))),
                Leaves::Import(_) => {}
            }
        }
        if into_c.is_empty() {
            continue;
        }
        let frames = symbolizer.resolve_with(path, &into_c, "", true).unwrap_or_default();
        let rust = frames.iter().flatten().any(|f| {
            let name = f.function.as_deref().unwrap_or("");
            is_allocator_frame(name, f.file.as_deref()) && !C_ENTRIES.contains(&name)
        });
        if rust {
            return true;
        }
    }
    false
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
/// frame table holds them.
#[derive(Default)]
struct Placer {
    /// The frame table (`[0]` stands for the root, as in DHAT's).
    frames: Vec<Option<Placed>>,
    /// Each address's frames in the table, innermost first.
    at: HashMap<u64, Vec<usize>>,
    /// Addresses returned to from a direct call of Rust's allocator shims.
    rust_call: std::collections::HashSet<u64>,
    /// Addresses whose code has no line tables: no inlined frame can show there.
    unlined: std::collections::HashSet<u64>,
    /// The frame that stands for such a shim, where a stack begins with such an address.
    shim_frame: usize,
}

impl Placer {
    fn new(
        log: &Log,
        addresses: impl Iterator<Item = u64>,
        symbolizer: &mut FileSymbolizer,
    ) -> Placer {
        let shim = Placed {
            address: 0,
            function: "__rust_alloc".into(),
            module: String::new(),
            language: crate::stacks::Language::Rust,
            allocator: true,
        };
        let mut placer = Placer {
            frames: vec![None, Some(shim)],
            at: HashMap::new(),
            rust_call: Default::default(),
            unlined: Default::default(),
            shim_frame: 1,
        };
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
            placer.place_file(log, &path, &ips, symbolizer);
        }
        for ip in unknown {
            placer.add(ip, Vec::new(), "");
        }
        placer
    }

    /// Places the addresses `ips` (each with its file offset) of the file at `path`.
    fn place_file(
        &mut self,
        log: &Log,
        path: &str,
        ips: &[(u64, u64)],
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
        let shims = file.as_ref().map(Shims::of).unwrap_or_default();
        let mut tails: HashMap<(u64, u64), bool> = HashMap::new();
        for (i, (ip, _)) in ips.iter().enumerate() {
            if let (Some(d), Some(f), Some(m)) = (data.as_ref(), file.as_ref(), log.mapping(*ip)) {
                let mut tail = || {
                    let callee = direct_callee(d, f, m, *ip)?;
                    let symbols = symbols.as_ref()?;
                    let range = symbols.range(callee)?;
                    Some(*tails.entry(range).or_insert_with(|| {
                        let path = Path::new(path);
                        tails_into_rust_allocator(f, path, range, symbols, &shims, symbolizer)
                    }))
                };
                if shims.called_before(d, f, m, *ip) || tail().unwrap_or(false) {
                    placer.rust_call.insert(*ip);
                }
            }
            let mut frames = resolved.get(i).cloned().unwrap_or_default();
            // The outermost frame at the address is the function the code is in.
            let at = file
                .as_ref()
                .zip(log.mapping(*ip))
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
        if frames.iter().all(|f| f.file.is_none()) {
            self.unlined.insert(ip);
        }
        let mut indices = Vec::with_capacity(frames.len());
        for frame in frames {
            let function = frame.function.clone().unwrap_or_else(|| "???".into());
            indices.push(self.frames.len());
            self.frames.push(Some(Placed {
                address: ip,
                language: classify(ip, &frame),
                allocator: is_allocator_frame(&function, frame.file.as_deref()),
                function,
                module: frame.module.clone().unwrap_or_else(|| module.to_owned()),
            }));
        }
        self.at.insert(ip, indices);
    }

    /// The frame-table indices of a stack of return addresses (innermost first); one that
    /// begins where a call of Rust's allocator shim returns begins with the shim.
    fn indices(&self, ips: &[u64]) -> Vec<usize> {
        let shim = ips.first().filter(|ip| self.rust_call.contains(ip)).map(|_| self.shim_frame);
        let frames = ips.iter().flat_map(|ip| self.at.get(ip).into_iter().flatten().copied());
        shim.into_iter().chain(frames).collect()
    }

    fn placed(&self, ips: &[u64]) -> Vec<&Placed> {
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
    /// Rust's blocks said freed by C where the free was called from code without line
    /// tables (see [`ownership`]).
    pub(crate) untold: Count,
}

/// The side of a block's life, attributed (its stack, else its return address alone).
fn side_of(log: &Log, placer: &Placer, side: &Side) -> Attributed {
    let ips = log.stacks.get(&side.stack).cloned().unwrap_or_else(|| vec![side.ip]);
    attribute_stack(&placer.placed(&ips), side.cxx)
}

/// The function a side is told by: its site, or for a Rust site inside Rust's own
/// libraries (`format!`'s closure, a `drop_in_place`), the first frame above it that is
/// not, where the user's code decided.
fn site_name(a: &Attributed) -> String {
    const LIBRARIES: &[&str] = &["core::", "alloc::", "std::", "<core::", "<alloc::", "<std::"];
    let library = |p: &&Placed| {
        p.language == crate::stacks::Language::Rust
            && LIBRARIES.iter().any(|l| p.function.starts_with(l))
    };
    let Some(site) = a.stack.last() else { return "???".to_owned() };
    if !library(&site) {
        return site.function.clone();
    }
    let user =
        a.stack.iter().rev().find(|p| !library(p) && p.language == crate::stacks::Language::Rust);
    user.unwrap_or(site).function.clone()
}

/// The ownership census from the replay's pairs and invalid frees, and the blocks among
/// its Rust-freed-by-C ones whose free was called from code without line tables: there
/// Rust's inlined free cannot be told from C's `free()`.
fn ownership(log: &Log, placer: &Placer, replayed: &Replayed) -> (Ownership, Count) {
    let mut memo: HashMap<Side, Attributed> = HashMap::new();
    let mut attributed = |side: &Side| -> Attributed {
        memo.entry(*side).or_insert_with(|| side_of(log, placer, side)).clone()
    };
    let mut frees: BTreeMap<(Family, Family), Count> = BTreeMap::new();
    type CrossKey = (Family, Family, String, Option<String>, String, Option<String>);
    let mut crossed: BTreeMap<CrossKey, Count> = BTreeMap::new();
    let mut untold = Count::default();
    for ((by, freed), count) in &replayed.pairs {
        let (a, f) = (attributed(by), attributed(freed));
        let sum = frees.entry((a.family, f.family)).or_default();
        (sum.blocks, sum.bytes) = (sum.blocks + count.blocks, sum.bytes + count.bytes);
        if (a.family, f.family) == (Family::Rust, Family::C) && placer.unlined.contains(&freed.ip) {
            (untold.blocks, untold.bytes) =
                (untold.blocks + count.blocks, untold.bytes + count.bytes);
        }
        if a.family != f.family {
            let key =
                (a.family, f.family, site_name(&a), a.rust_caller, site_name(&f), f.rust_caller);
            let sum = crossed.entry(key).or_default();
            (sum.blocks, sum.bytes) = (sum.blocks + count.blocks, sum.bytes + count.bytes);
        }
    }
    let mut invalid: BTreeMap<(InvalidFreeKind, String, Option<String>), u64> = BTreeMap::new();
    for ((kind, side), n) in &replayed.invalid {
        let a = attributed(side);
        let kind = match kind {
            Invalid::DoubleFree => InvalidFreeKind::DoubleFree,
            Invalid::NeverAllocated => InvalidFreeKind::NeverAllocated,
        };
        *invalid.entry((kind, site_name(&a), a.rust_caller)).or_default() += n;
    }
    let ownership = Ownership {
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
    };
    (ownership, untold)
}

/// One log replayed, symbolized and attributed.
pub(crate) fn process(log: &Log, sample_bytes: u64, symbolizer: &mut FileSymbolizer) -> Process {
    let replayed = replay::replay(&log.events, sample_bytes);
    let event_ips = log.events.iter().map(|e| match *e {
        log::Event::Alloc { ip, .. }
        | log::Event::Free { ip, .. }
        | log::Event::Realloc { ip, .. } => ip,
    });
    let stack_ips = log.stacks.values().flatten().copied();
    let placer = Placer::new(log, stack_ips.chain(event_ips), symbolizer);
    let mut points = Vec::new();
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
    }
    let (ownership, untold) = ownership(log, &placer, &replayed);
    let heap = Heap {
        pid: log.pid,
        command: log.command.clone(),
        frames: placer.frames,
        points,
        totals: Some(replayed.totals),
    };
    Process { heap, ownership, stackless, untold }
}

/// The processes' ownership censuses as one: sums of the same pairs, most bytes first.
pub(crate) fn merge(all: Vec<Ownership>) -> Ownership {
    let mut frees: BTreeMap<(Family, Family), (u64, u64)> = BTreeMap::new();
    let mut crossed: Vec<CrossedFree> = Vec::new();
    let mut invalid: Vec<InvalidFree> = Vec::new();
    for o in all {
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
    }
}
