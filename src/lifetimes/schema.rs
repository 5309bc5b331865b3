//! `lifetimes.json`'s types (results/README.md documents them), and the census in words.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::language::Language;
use crate::memory::{Family, StackFrame, Untold};

/// Version of `lifetimes.json`.
pub(crate) const LIFETIMES_SCHEMA_VERSION: u32 = 1;

/// The file's name in its directory.
pub const LIFETIMES_FILE: &str = "lifetimes.json";

/// What went wrong with the memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Read or written after its block was freed.
    UseAfterFree,
    /// Read or written after `realloc` moved its block (a growing `Vec`): the pointer was
    /// into the old place.
    UseAfterMove,
    /// Past a block's end.
    Overflow,
    /// Before a block's start.
    Underflow,
    /// A free of what is not a live block's start (a second free among them).
    InvalidFree,
    /// Freed by another allocator than the one that served it, as memcheck tells it
    /// (`malloc` with `delete`, `new` with `free`).
    MismatchedFree,
    /// An address in no block memcheck knows (a null or wild pointer).
    Wild,
    /// A value read before anything was written to it decided a jump or was used.
    Uninitialised,
    /// A system call given unaddressable or undefined memory.
    SyscallParam,
    /// A copy between overlapping source and destination.
    Overlap,
    /// A jump to an address that is no code.
    InvalidJump,
    /// Another of memcheck's errors.
    Other,
}

impl ErrorKind {
    /// Its name in the census.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::UseAfterFree => "use-after-free",
            ErrorKind::UseAfterMove => "use-after-move",
            ErrorKind::Overflow => "overflow",
            ErrorKind::Underflow => "underflow",
            ErrorKind::InvalidFree => "invalid-free",
            ErrorKind::MismatchedFree => "mismatched-free",
            ErrorKind::Wild => "wild",
            ErrorKind::Uninitialised => "uninitialised",
            ErrorKind::SyscallParam => "syscall-param",
            ErrorKind::Overlap => "overlap",
            ErrorKind::InvalidJump => "invalid-jump",
            ErrorKind::Other => "other",
        }
    }
}

/// How the memory was touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Read.
    Read,
    /// Written.
    Write,
    /// Freed.
    Free,
}

/// An error's stacks (its first occurrence's), root first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stacks {
    /// Where the memory was touched.
    pub access: Vec<StackFrame>,
    /// Where the block was allocated, down to the first frame above the allocator.
    pub allocation: Vec<StackFrame>,
    /// Where it was freed, likewise (empty for a block not freed).
    pub free: Vec<StackFrame>,
}

/// One error of the census: memcheck's errors alike in all but their stacks, gathered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifetimeError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// How the memory was touched (none for the kinds that touch no block).
    pub access: Option<Access>,
    /// Bytes read or written at a time.
    pub size: Option<u64>,
    /// The language of the code that touched it: the first frame above the C runtime's
    /// functions (`memcpy`) and Rust's standard library, which act for their caller.
    pub accessed_by: Language,
    /// That frame's function.
    pub access_function: String,
    /// For C code, the first Rust frame above it.
    pub access_rust_caller: Option<String>,
    /// The allocator that served the block, as the heap census tells it (unknown where
    /// nothing proves it).
    pub allocated_by: Option<Family>,
    /// The site that allocated it (the program's own code above the allocator).
    pub alloc_function: Option<String>,
    /// For a C site, the first Rust frame above it.
    pub alloc_rust_caller: Option<String>,
    /// The allocator that took it back (none for a block not freed).
    pub freed_by: Option<Family>,
    /// The site that freed it.
    pub free_function: Option<String>,
    /// For a C site, the first Rust frame above it.
    pub free_rust_caller: Option<String>,
    /// The block's size.
    pub block_size: Option<u64>,
    /// Occurrences (memcheck's counts, summed).
    pub count: u64,
    /// The side that touched the block is not the side whose allocator owned it (for a
    /// free: the side that freed is not the side that allocated); none where either is
    /// not told.
    pub crossed: Option<bool>,
    /// Why a family is not told, where one is not.
    pub untold: Option<Untold>,
    /// memcheck's own words (`Invalid read of size 8`).
    pub what: String,
    /// The first occurrence's stacks.
    pub stacks: Stacks,
}

impl LifetimeError {
    /// What makes two errors one: every field but the count, the stacks and memcheck's
    /// words.
    pub fn key(&self) -> String {
        let o = |s: &Option<String>| s.clone().unwrap_or_default();
        let f = |f: Option<Family>| f.map_or("", Family::name);
        format!(
            "{}|{:?}|{:?}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{:?}",
            self.kind.name(),
            self.access,
            self.size,
            self.accessed_by.name(),
            self.access_function,
            o(&self.access_rust_caller),
            f(self.allocated_by),
            o(&self.alloc_function),
            o(&self.alloc_rust_caller),
            f(self.freed_by),
            o(&self.free_function),
            o(&self.free_rust_caller),
            self.block_size,
        )
    }

    /// The error in a sentence: who touched what, whose it was, who freed it, how often,
    /// and what that means.
    pub fn sentence(&self) -> String {
        let who = format!("{}'s {}", language_word(self.accessed_by), self.access_function);
        let under =
            self.access_rust_caller.as_ref().map(|r| format!(" (under {r})")).unwrap_or_default();
        let owner = self.allocated_by.map_or("an allocator", family_word);
        let alloc_at = self.alloc_function.as_deref().unwrap_or("???");
        let times = match self.count {
            1 => "once".to_owned(),
            n => format!("{} times", crate::fmt::count(n)),
        };
        let size = self.size.map_or(String::new(), |s| format!("{s} byte{} ", plural(s)));
        let verb = match self.access {
            Some(Access::Write) => "wrote",
            _ => "read",
        };
        let freed_in = match (&self.free_function, &self.alloc_function) {
            (Some(f), Some(a)) if f == a && f != "???" => "freed in the same function".to_owned(),
            (Some(f), _) => format!("freed in {f}"),
            (None, _) => "freed".to_owned(),
        };
        let block = self.block_size.map_or(String::new(), |b| format!("{b}-byte "));
        let meaning = self.meaning();
        match self.kind {
            ErrorKind::UseAfterFree => format!(
                "{who}{under} {verb} {size}of a {block}block {owner} allocated in {alloc_at} \
                 and {freed_in}, {times}: {meaning}"
            ),
            ErrorKind::UseAfterMove => format!(
                "{who}{under} {verb} {size}of a {block}block {owner} allocated in {alloc_at} \
                 after it moved when {} grew it (realloc), {times}: {meaning}",
                self.free_function.as_deref().unwrap_or("???")
            ),
            ErrorKind::Overflow | ErrorKind::Underflow => format!(
                "{who}{under} {verb} {size}{} a {block}block {owner} allocated in {alloc_at}, \
                 {times}: {meaning}",
                if self.kind == ErrorKind::Overflow {
                    "past the end of"
                } else {
                    "before the start of"
                }
            ),
            ErrorKind::InvalidFree if self.free_function.is_some() => format!(
                "{who}{under} freed again a block {owner} allocated in {alloc_at} and {freed_in}, \
                 {times}: {meaning}"
            ),
            ErrorKind::InvalidFree => {
                format!("{who}{under} freed what is no heap block's start, {times}")
            }
            ErrorKind::MismatchedFree => format!(
                "{who}{under} freed with {} a block {owner} allocated in {alloc_at}, {times}: \
                 {meaning}",
                self.freed_by.map_or("another allocator", family_word)
            ),
            _ => format!("{who}{under}: {} ({}), {times}", self.what, self.kind.name()),
        }
    }

    /// What the error means for the boundary.
    fn meaning(&self) -> &'static str {
        let c_touched = self.accessed_by.is_c_side();
        match (self.kind, self.crossed) {
            (ErrorKind::UseAfterFree, Some(true)) if c_touched => {
                "C kept the pointer past the call"
            }
            (ErrorKind::UseAfterFree, Some(true)) => {
                "Rust kept a pointer into C's block after handing it back"
            }
            (ErrorKind::UseAfterMove, Some(true)) if c_touched => {
                "C kept a pointer into the buffer past the call, and the buffer moved"
            }
            (ErrorKind::UseAfterMove, _) => "a pointer into the buffer outlived its place",
            (ErrorKind::UseAfterFree, _) => "a pointer outlived its block",
            (ErrorKind::Overflow | ErrorKind::Underflow, Some(true)) => {
                "the code that wrote it assumed a bigger buffer than its owner sized"
            }
            (ErrorKind::Overflow | ErrorKind::Underflow, _) => "an index or a length is off",
            (ErrorKind::InvalidFree, _) => "a block freed twice",
            (ErrorKind::MismatchedFree, _) => "each side must free what its own allocator served",
            _ => "",
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A language as a sentence names it.
pub(crate) fn language_word(l: Language) -> &'static str {
    match l {
        Language::Rust => "Rust",
        Language::C => "C",
        Language::Cpp => "C++",
        Language::CRuntime => "the C runtime",
        Language::Go => "Go",
        Language::Kernel => "the kernel",
        Language::Glue => "glue",
        Language::Unknown => "unknown code",
    }
}

/// A family as a sentence names its owner.
fn family_word(f: Family) -> &'static str {
    match f {
        Family::Rust => "Rust",
        Family::C => "C's malloc",
        Family::Cxx => "C++'s new",
        Family::Unknown => "an allocator not told",
    }
}

/// One process memcheck watched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// Its pid.
    pub pid: u64,
    /// Its command line.
    pub command: Vec<String>,
    /// Errors memcheck counted in it.
    pub errors: u64,
    /// memcheck's file ends before its counts (the process was killed).
    pub cut: bool,
}

/// `lifetimes.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifetimeCensus {
    /// [`LIFETIMES_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The program and its arguments (empty for files given).
    pub command: Vec<String>,
    /// The program's exit status.
    pub exit_status: i32,
    /// How the errors were found: `memcheck` (every access checked), or `guard` (guard
    /// pages on about one allocation in [`LifetimeCensus::guard`], at the program's speed).
    pub engine: String,
    /// Guard mode: about one allocation in this many was guarded.
    pub guard: Option<u64>,
    /// valgrind's version (memcheck).
    pub valgrind: String,
    /// Wall seconds under memcheck.
    pub seconds: f64,
    /// Each process.
    pub processes: Vec<Process>,
    /// The errors, the most frequent first.
    pub errors: Vec<LifetimeError>,
    /// Occurrences in all: the errors' counts summed.
    pub total: u64,
    /// memcheck's own total (its per-error counts, summed over processes); none in guard
    /// mode.
    pub memcheck_total: Option<u64>,
    /// Occurrences where the side that touched a block is not the side that owned it.
    pub crossed: u64,
    /// What the reader should know.
    pub notes: Vec<String>,
}

impl LifetimeCensus {
    /// Reads `lifetimes.json`, or `<dir>/lifetimes.json`.
    pub fn load(path: &Path) -> Result<LifetimeCensus> {
        let path = if path.is_dir() { path.join(LIFETIMES_FILE) } else { path.to_owned() };
        let text = std::fs::read_to_string(&path)
            .map_err(|source| Error::InputUnreadable { path: path.clone(), source })?;
        serde_json::from_str(&text).map_err(|e| Error::CensusCorrupt {
            path: path.clone(),
            reason: format!("not a lifetimes census: {e}"),
        })
    }

    /// The JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|source| Error::Serialize { what: "lifetimes.json", source })
    }

    /// The first line: how many errors, how many crossed.
    pub fn headline(&self) -> String {
        let finder = if self.guard.is_some() { "guard pages found" } else { "memcheck found" };
        if self.total == 0 {
            return format!(
                "{finder} no error: no block was touched after its free, past its end or \
                 freed twice"
            );
        }
        format!(
            "{finder} {} error{} at {} site{}; {} of them crossed the boundary (the side \
             that touched a block is not the side that owned it)",
            crate::fmt::count(self.total),
            plural(self.total),
            self.errors.len(),
            plural(self.errors.len() as u64),
            crate::fmt::count(self.crossed),
        )
    }

    /// The terminal's summary: the headline, the errors in sentences (the 20 most
    /// frequent), the notes.
    pub fn text(&self) -> String {
        let mut s = format!("{}\n", self.headline());
        for e in self.errors.iter().take(20) {
            let _ = writeln!(s, "  - {}", e.sentence());
        }
        if self.errors.len() > 20 {
            let _ = writeln!(s, "  ... and {} more in lifetimes.md", self.errors.len() - 20);
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }

    /// `lifetimes.md`.
    pub fn markdown(&self) -> String {
        let mut s = String::from("# Memory kept past the call\n\n");
        if !self.command.is_empty() {
            let _ = writeln!(
                s,
                "`{}` under memcheck ({}), exit status {}, {:.1} s.\n",
                self.command.join(" "),
                self.valgrind,
                self.exit_status,
                self.seconds
            );
        }
        let _ = writeln!(s, "{}.\n", self.headline());
        if !self.errors.is_empty() {
            s.push_str("| kind | access | touched by | function | allocated by | freed by | count | crossed |\n");
            s.push_str("| --- | --- | --- | --- | --- | --- | ---: | --- |\n");
            for e in &self.errors {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | `{}` | {} | {} | {} | {} |",
                    e.kind.name(),
                    e.access.map_or("", |a| match a {
                        Access::Read => "read",
                        Access::Write => "write",
                        Access::Free => "free",
                    }),
                    e.accessed_by.name(),
                    e.access_function,
                    e.allocated_by.map_or("", Family::name),
                    e.freed_by.map_or("", Family::name),
                    crate::fmt::count(e.count),
                    match e.crossed {
                        Some(true) => "yes",
                        Some(false) => "no",
                        None => "not told",
                    }
                );
            }
            s.push_str("\n## In sentences\n\n");
            for e in &self.errors {
                let _ = writeln!(s, "- {}", e.sentence());
            }
        }
        if !self.notes.is_empty() {
            s.push_str("\n## Notes\n\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }
}

/// True where `path` is a lifetimes census (its file, or a directory holding it).
pub fn is_lifetimes_census(path: &Path) -> bool {
    crate::output::holds(path, LIFETIMES_FILE)
}
