//! Each memcheck error told in the heap census's words: its kind (a read after a free, or
//! after a `realloc` moved the block; past a block's end; a second free), the side whose
//! code touched the memory, the allocator that served the block and the one that took it
//! back (proved from the machine code, as the heap census proves them: [`crate::memory::
//! calls`]), each with its site and the Rust caller above C.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::memcheck::{self, Reported};
use super::schema::{Access, ErrorKind, LifetimeError, Stacks};
use crate::language::{classify, Language};
use crate::memory::calls::{self, Untold};
use crate::memory::sites::{self, attribute_stack, is_allocator_frame, Attributed, Placed};
use crate::memory::{Family, StackFrame};
use crate::symbol::{FileSymbolizer, Frame};

/// True for an object of valgrind's own (its replacements of `malloc`, `memcpy`...).
fn is_valgrinds(obj: &str) -> bool {
    obj.contains("/valgrind/")
        || Path::new(obj).file_name().is_some_and(|n| {
            let n = n.to_string_lossy();
            n.starts_with("vgpreload_")
        })
}

fn module_name(obj: &str) -> String {
    Path::new(obj).file_name().map_or_else(|| obj.to_owned(), |n| n.to_string_lossy().into())
}

/// A memcheck frame placed: its module and language, as the census's frames are.
fn placed(f: &memcheck::Frame) -> Placed {
    let function = f.function.clone().unwrap_or_else(|| "???".into());
    let obj = f.obj.as_deref().unwrap_or("");
    let module = module_name(obj);
    let frame = Frame {
        function: f.function.clone(),
        module: Some(module.clone()),
        file: f.file.clone(),
        line: f.line,
        inlined: false,
    };
    let language = if is_valgrinds(obj) { Language::CRuntime } else { classify(f.ip, &frame) };
    Placed {
        address: f.ip,
        allocator: is_allocator_frame(&function, f.file.as_deref()),
        standard_library: sites::is_library_frame(&function, f.file.as_deref()),
        language,
        function,
        module,
    }
}

/// The call an allocator entry of valgrind's returned to, whose machine code tells the
/// family: the object and the return address in the process.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Call {
    obj: String,
    returns_to: u64,
}

/// What the machine code proved of a call: the family or why not, and the function that
/// jumped on to the allocator (lost from the stack), by name.
type Proof = (Result<Family, Untold>, Option<String>);

/// The call to prove for a stack whose innermost frame is valgrind's allocator entry.
fn call_of(stack: &memcheck::Stack) -> Option<Call> {
    let entry = stack.frames.first()?;
    if !entry.obj.as_deref().is_some_and(is_valgrinds) {
        return None;
    }
    let caller = stack.frames.get(1)?;
    let obj = caller.obj.clone().filter(|o| o.starts_with('/'))?;
    Some(Call { obj, returns_to: caller.ip + 1 })
}

/// Where `obj` was loaded in the process: the page-aligned address that puts the most
/// frames named after one of its functions inside that function; a position-independent
/// program valgrind loads at 0x108000 where no frame tells.
fn load_base(file: &object::File<'_>, named: &[(u64, &str)]) -> Option<u64> {
    use object::{Object, ObjectSymbol};
    let mut by_name: HashMap<String, (u64, u64)> = HashMap::new();
    for s in file.symbols().chain(file.dynamic_symbols()) {
        if s.kind() != object::SymbolKind::Text || s.size() == 0 || !s.is_definition() {
            continue;
        }
        let Ok(raw) = s.name() else { continue };
        let demangled = format!("{:#}", rustc_demangle::demangle(raw));
        let name = crate::symbol::strip_rust_hash(&demangled).to_owned();
        by_name.entry(name).or_insert((s.address(), s.size()));
    }
    let mut votes: HashMap<u64, usize> = HashMap::new();
    for &(ip, name) in named {
        let Some(&(at, size)) = by_name.get(name) else { continue };
        let Some(base) = ip.checked_sub(at).map(|b| b & !0xfff) else { continue };
        if (at..at + size).contains(&(ip - base)) {
            *votes.entry(base).or_default() += 1;
        }
    }
    let voted = votes.into_iter().max_by_key(|&(base, n)| (n, std::cmp::Reverse(base)));
    match voted {
        Some((base, _)) => Some(base),
        None if file.kind() == object::ObjectKind::Dynamic && file.entry() != 0 => Some(0x10_8000),
        None if file.kind() == object::ObjectKind::Executable => Some(0),
        None => None,
    }
}

/// Proves the family of every call, one object at a time.
fn prove(calls: &[Call], frames: &[&memcheck::Frame]) -> HashMap<Call, Proof> {
    let mut proofs = HashMap::new();
    let mut by_obj: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
    for c in calls {
        by_obj.entry(c.obj.as_str()).or_default().push(c);
    }
    let mut symbolizer = FileSymbolizer::default();
    for (obj, calls) in by_obj {
        let data = sites::mapped(Path::new(obj));
        let file = data.as_ref().and_then(|d| object::File::parse(&**d).ok());
        let Some(file) = file else {
            for c in calls {
                proofs.insert(c.clone(), (Err(Untold::NoCode), None));
            }
            continue;
        };
        let named: Vec<(u64, &str)> = frames
            .iter()
            .filter(|f| f.obj.as_deref() == Some(obj))
            .filter_map(|f| Some((f.ip, f.function.as_deref()?)))
            .collect();
        let base = load_base(&file, &named);
        let mut code = calls::CodeFile::new(&file);
        for c in calls {
            let Some(here) = base.and_then(|b| c.returns_to.checked_sub(b)) else {
                proofs.insert(c.clone(), (Err(Untold::NoCode), None));
                continue;
            };
            let reach = code.reached(here);
            let family =
                crate::memory::native::settle(&reach, &file, Path::new(obj), &mut symbolizer);
            let tail = reach.tail.filter(|_| family.is_ok()).and_then(|start| {
                let raw = code.function_at(start)?.2;
                let demangled = format!("{:#}", rustc_demangle::demangle(raw));
                Some(crate::symbol::strip_rust_hash(&demangled).to_owned())
            });
            proofs.insert(c.clone(), (family, tail));
        }
    }
    proofs
}

/// A stack of the allocator (an allocation's or a free's) attributed: its site, the Rust
/// caller above it, and the family, told by the frames where they show Rust's or C++'s
/// allocator, else by the machine code of the call.
pub(crate) struct Told {
    pub(crate) attributed: Attributed,
    pub(crate) family: Result<Family, Untold>,
}

fn tell(stack: &memcheck::Stack, proofs: &HashMap<Call, Proof>) -> Told {
    let mut frames: Vec<Placed> = stack.frames.iter().map(placed).collect();
    let by_frames = attribute_stack(&frames.iter().collect::<Vec<_>>(), false).family;
    let (family, tail) = match by_frames {
        Family::Rust | Family::Cxx => (Ok(by_frames), None),
        _ => match call_of(stack).and_then(|c| proofs.get(&c)) {
            Some((family, tail)) => (*family, tail.clone()),
            None => (Err(Untold::NoCode), None),
        },
    };
    if let (Some(name), Some(caller)) = (tail, frames.get(1)) {
        let module = caller.module.clone();
        let frame = Frame {
            function: Some(name.clone()),
            module: Some(module.clone()),
            file: None,
            line: None,
            inlined: false,
        };
        let lost = Placed {
            address: caller.address,
            language: classify(caller.address, &frame),
            allocator: is_allocator_frame(&name, None),
            standard_library: sites::is_library_frame(&name, None),
            function: name,
            module,
        };
        frames.insert(1, lost);
    }
    let attributed = attribute_stack(&frames.iter().collect::<Vec<_>>(), false);
    Told { attributed, family }
}

/// The frame whose code touched the memory: the first above the C runtime's functions
/// (`memcpy`, `strlen`) and Rust's standard library (a slice's index), which act for
/// their caller; and the Rust caller above it where it is C's.
pub(crate) fn toucher(frames: &[Placed]) -> (usize, Option<String>) {
    let at = frames
        .iter()
        .position(|f| {
            !(f.language == Language::CRuntime
                || f.language == Language::Glue
                || (f.language == Language::Rust && f.standard_library))
        })
        .unwrap_or(0);
    let rest: Vec<&Placed> = frames[at..].iter().collect();
    let caller = attribute_stack(&rest, false).rust_caller;
    (at, caller)
}

/// What an `<auxwhat>` says of the address: how far from which block, and whether the
/// block was freed (`Address 0x4a5fce0 is 0 bytes inside a block of size 64 free'd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    offset: u64,
    relation: Relation,
    block_size: u64,
    freed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    Inside,
    After,
    Before,
}

fn place(said: &str) -> Option<Place> {
    let rest = said.split_once(" is ")?.1;
    let (offset, rest) = rest.split_once(" bytes ")?;
    let (relation, rest) = if let Some(r) = rest.strip_prefix("inside ") {
        (Relation::Inside, r)
    } else if let Some(r) = rest.strip_prefix("after ") {
        (Relation::After, r)
    } else if let Some(r) = rest.strip_prefix("before ") {
        (Relation::Before, r)
    } else {
        return None;
    };
    let rest = rest.strip_prefix("a block of size ")?;
    let (size, state) = rest.split_once(' ')?;
    Some(Place {
        offset: offset.trim().replace(',', "").parse().ok()?,
        relation,
        block_size: size.replace(',', "").parse().ok()?,
        freed: state.starts_with("free'd"),
    })
}

/// `Invalid read of size 8` -> 8.
fn access_size(what: &str) -> Option<u64> {
    what.rsplit_once("of size ")?.1.trim().replace(',', "").parse().ok()
}

fn stack_frames(frames: &[Placed]) -> Vec<StackFrame> {
    frames
        .iter()
        .rev()
        .map(|p| StackFrame {
            function: p.function.clone(),
            module: p.module.clone(),
            language: p.language,
        })
        .collect()
}

/// The site's name: the function of [`Attributed::site`].
fn site_name(a: &Attributed) -> Option<String> {
    a.site().map(|s| s.function.clone())
}

/// Errors alike in every field but their stacks and count made one, their counts summed;
/// the most frequent first.
pub(crate) fn gather(errors: impl IntoIterator<Item = LifetimeError>) -> Vec<LifetimeError> {
    let mut gathered: BTreeMap<String, LifetimeError> = BTreeMap::new();
    for entry in errors {
        let key = entry.key();
        match gathered.get_mut(&key) {
            Some(known) => known.count += entry.count,
            None => {
                gathered.insert(key, entry);
            }
        }
    }
    let mut errors: Vec<LifetimeError> = gathered.into_values().collect();
    errors.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key().cmp(&b.key())));
    errors
}

/// Every error of every file, told and gathered (memcheck's own per-stack counts summed).
pub(crate) fn tell_all(files: &[memcheck::File]) -> Vec<LifetimeError> {
    let reported: Vec<(&memcheck::File, &Reported)> =
        files.iter().flat_map(|f| f.errors.iter().map(move |e| (f, e))).collect();
    let mut calls: Vec<Call> =
        reported.iter().flat_map(|(_, e)| e.stacks.iter().filter_map(call_of)).collect();
    calls.sort();
    calls.dedup();
    let frames: Vec<&memcheck::Frame> =
        reported.iter().flat_map(|(_, e)| e.stacks.iter().flat_map(|s| s.frames.iter())).collect();
    let proofs = prove(&calls, &frames);
    gather(reported.into_iter().map(|(file, e)| one(e, &proofs, file.count(e))))
}

/// Where the memory was touched: an access's stack (innermost first), or a free's, told
/// as a free is.
pub(crate) enum Touched {
    Access(Vec<Placed>),
    Free(Told),
}

/// What an error is made of, however it was found (memcheck's report, a guard page's
/// fault).
pub(crate) struct Parts {
    pub(crate) kind: ErrorKind,
    pub(crate) access: Option<Access>,
    pub(crate) size: Option<u64>,
    pub(crate) touched: Touched,
    /// The block's allocation, and its earlier free where it was freed.
    pub(crate) alloc: Option<Told>,
    pub(crate) free: Option<Told>,
    pub(crate) block_size: Option<u64>,
    pub(crate) count: u64,
    pub(crate) what: String,
}

/// One error of memcheck's told.
fn one(e: &Reported, proofs: &HashMap<Call, Proof>, count: u64) -> LifetimeError {
    let first = e.stacks.first().cloned().unwrap_or_default();
    let later = |free: bool| {
        e.stacks.iter().skip(1).find(|s| {
            let said = s.said.as_deref().unwrap_or("");
            if free {
                said.ends_with("free'd")
            } else {
                said.ends_with("alloc'd") || said.starts_with("Block was alloc'd")
            }
        })
    };
    let address = e.auxwhat.iter().find_map(|a| place(a));
    let free_stack = later(true);
    let moved = free_stack
        .and_then(|s| s.frames.first())
        .is_some_and(|f| f.function.as_deref().is_some_and(|n| n.starts_with("realloc")));
    let (kind, access) = match e.kind.as_str() {
        "InvalidRead" | "InvalidWrite" => {
            let access = if e.kind == "InvalidRead" { Access::Read } else { Access::Write };
            let kind = match address {
                Some(p) if p.freed && moved => ErrorKind::UseAfterMove,
                Some(p) if p.freed => ErrorKind::UseAfterFree,
                Some(Place { relation: Relation::After, .. }) => ErrorKind::Overflow,
                Some(Place { relation: Relation::Inside, offset, block_size, .. })
                    if offset >= block_size =>
                {
                    ErrorKind::Overflow
                }
                Some(Place { relation: Relation::Before, .. }) => ErrorKind::Underflow,
                _ => ErrorKind::Wild,
            };
            (kind, Some(access))
        }
        "InvalidFree" => (ErrorKind::InvalidFree, Some(Access::Free)),
        "MismatchedFree" => (ErrorKind::MismatchedFree, Some(Access::Free)),
        "UninitValue" | "UninitCondition" => (ErrorKind::Uninitialised, None),
        "SyscallParam" => (ErrorKind::SyscallParam, None),
        "Overlap" => (ErrorKind::Overlap, None),
        "InvalidJump" => (ErrorKind::InvalidJump, None),
        _ => (ErrorKind::Other, None),
    };
    let touched = if access == Some(Access::Free) {
        Touched::Free(tell(&first, proofs))
    } else {
        Touched::Access(first.frames.iter().map(placed).collect())
    };
    error_of(Parts {
        kind,
        access,
        size: if access == Some(Access::Free) { None } else { access_size(&e.what) },
        touched,
        alloc: later(false).map(|s| tell(s, proofs)),
        free: free_stack.map(|s| tell(s, proofs)),
        block_size: address.map(|p| p.block_size),
        count,
        what: e.what.clone(),
    })
}

fn innermost_last(t: &Told) -> Vec<StackFrame> {
    stack_frames(&t.attributed.stack.iter().rev().cloned().collect::<Vec<_>>())
}

/// An error told from its parts: the sides, the families, whether it crossed.
pub(crate) fn error_of(p: Parts) -> LifetimeError {
    let Parts { kind, access, size, touched, alloc, free, block_size, count, what } = p;
    // A free's own stack is told as a free is: its site above the allocator, its family.
    let (accessed_by, access_function, access_rust_caller, access_frames, own_free) = match touched
    {
        Touched::Free(told) => {
            let site = told.attributed.site().cloned();
            let language = site.as_ref().map_or(Language::Unknown, |s| s.language);
            let name = site.map_or_else(|| "???".to_owned(), |s| s.function);
            let frames: Vec<Placed> = told.attributed.stack.iter().rev().cloned().collect();
            (language, name, told.attributed.rust_caller.clone(), frames, Some(told.family))
        }
        Touched::Access(frames) => {
            let (at, caller) = toucher(&frames);
            let f = frames.get(at);
            let language = f.map_or(Language::Unknown, |f| f.language);
            let name = f.map_or_else(|| "???".to_owned(), |f| f.function.clone());
            (language, name, caller, frames, None)
        }
    };
    let family = |t: &Told| t.family.unwrap_or(Family::Unknown);
    let allocated_by = alloc.as_ref().map(family);
    // The block's free: the earlier one a second free or a read found, else (a mismatched
    // free) the error's own.
    let freed_by = match (&free, own_free) {
        (Some(t), _) => Some(family(t)),
        (None, Some(f)) if kind == ErrorKind::MismatchedFree => Some(f.unwrap_or(Family::Unknown)),
        _ => None,
    };
    let untold = [alloc.as_ref(), free.as_ref()]
        .into_iter()
        .flatten()
        .find_map(|t| t.family.err())
        .or(own_free.and_then(|f| f.err()));
    let owner_side = |f: Family| match f {
        Family::Rust => Some("rust"),
        Family::C | Family::Cxx => Some("c"),
        Family::Unknown => None,
    };
    let touched_side = match accessed_by {
        Language::Unknown => None,
        Language::Rust => Some("rust"),
        _ => Some("c"),
    };
    let owner = allocated_by.and_then(owner_side);
    let crossed = match kind {
        ErrorKind::MismatchedFree | ErrorKind::InvalidFree => {
            match (owner, own_free.and_then(|f| f.ok()).and_then(owner_side)) {
                (Some(a), Some(b)) => Some(a != b),
                _ => None,
            }
        }
        _ => match (touched_side, owner) {
            (Some(t), Some(o)) => Some(t != o),
            _ => None,
        },
    };
    let stacks = Stacks {
        access: stack_frames(&access_frames),
        allocation: alloc.as_ref().map(innermost_last).unwrap_or_default(),
        free: free.as_ref().map(innermost_last).unwrap_or_default(),
    };
    LifetimeError {
        kind,
        access,
        size,
        accessed_by,
        access_function,
        access_rust_caller,
        allocated_by,
        alloc_function: alloc.as_ref().and_then(|t| site_name(&t.attributed)),
        alloc_rust_caller: alloc.as_ref().and_then(|t| t.attributed.rust_caller.clone()),
        freed_by,
        free_function: free.as_ref().and_then(|t| site_name(&t.attributed)),
        free_rust_caller: free.as_ref().and_then(|t| t.attributed.rust_caller.clone()),
        block_size,
        count,
        crossed,
        untold,
        what,
        stacks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_memcheck_says_of_an_address_is_read() {
        let p = place("Address 0x4a5fce0 is 0 bytes inside a block of size 64 free'd").unwrap();
        assert_eq!((p.offset, p.relation, p.block_size, p.freed), (0, Relation::Inside, 64, true));
        let p = place("Address 0x4a60050 is 0 bytes after a block of size 16 alloc'd").unwrap();
        assert_eq!((p.relation, p.block_size, p.freed), (Relation::After, 16, false));
        let p = place("Address 0x4a6003f is 1 bytes before a block of size 1,024 alloc'd").unwrap();
        assert_eq!((p.offset, p.relation, p.block_size), (1, Relation::Before, 1024));
        assert_eq!(place("Address 0x0 is not stack'd, malloc'd or (recently) free'd"), None);
        assert_eq!(access_size("Invalid write of size 1"), Some(1));
        assert_eq!(access_size("Invalid free() / delete / delete[] / realloc()"), None);
    }

    fn frame(function: &str, language: Language, standard_library: bool) -> Placed {
        Placed {
            address: 0,
            function: function.into(),
            module: "m".into(),
            language,
            allocator: false,
            standard_library,
        }
    }

    #[test]
    fn the_toucher_is_above_the_c_runtime_and_rusts_library() {
        let frames = vec![
            frame("memcpy", Language::CRuntime, false),
            frame("c_read_held", Language::C, false),
            frame("life::c_reads_after_rust_drop", Language::Rust, false),
            frame("life::main", Language::Rust, false),
        ];
        let (at, caller) = toucher(&frames);
        assert_eq!(frames[at].function, "c_read_held");
        assert_eq!(caller.as_deref(), Some("life::c_reads_after_rust_drop"));
        let frames = vec![
            frame("index<u8>", Language::Rust, true),
            frame("life::rust_reads", Language::Rust, false),
        ];
        let (at, caller) = toucher(&frames);
        assert_eq!((frames[at].function.as_str(), caller), ("life::rust_reads", None));
    }
}
