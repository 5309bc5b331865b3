//! `memory.json`'s types (results/README.md documents them), read back and written.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::ids::Pid;
use crate::stacks::Language;

/// Version of `memory.json` (2: the native engine, ownership, who asked and who served;
/// version 1 files still load).
pub(crate) const MEMORY_SCHEMA_VERSION: u32 = 2;

pub use super::calls::Untold;
pub use super::sites::Family;

/// The file's name in its directory.
pub const MEMORY_FILE: &str = "memory.json";

/// Bytes and blocks: allocated in all, live at the heap's peak, live at exit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    /// Bytes allocated in all.
    pub bytes: u64,
    /// Blocks allocated in all.
    pub blocks: u64,
    /// Bytes live at the heap's peak (DHAT's t-gmax).
    pub bytes_at_peak: u64,
    /// Blocks live at the peak.
    pub blocks_at_peak: u64,
    /// Bytes live at exit: never freed.
    pub bytes_at_exit: u64,
    /// Blocks live at exit.
    pub blocks_at_exit: u64,
}

impl Figures {
    /// Adds `other` to these.
    pub fn add(&mut self, other: &Figures) {
        self.bytes += other.bytes;
        self.blocks += other.blocks;
        self.bytes_at_peak += other.bytes_at_peak;
        self.blocks_at_peak += other.blocks_at_peak;
        self.bytes_at_exit += other.bytes_at_exit;
        self.blocks_at_exit += other.blocks_at_exit;
    }
}

/// One allocation site: the frame that asked for the memory, and where Rust asked C.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    /// The function that asked (the first frame above the allocator).
    pub function: String,
    /// Its object's file name (empty where unknown).
    pub module: String,
    /// Its language.
    pub language: Language,
    /// For a C, C++ or C-runtime site, the first Rust frame above it; none for a Rust
    /// site, a C thread, or C's own initialisation.
    pub rust_caller: Option<String>,
    /// The figures, summed over DHAT's allocation points with this site.
    #[serde(flatten)]
    pub figures: Figures,
    /// Allocation points (distinct stacks) gathered here.
    pub points: usize,
    /// The allocator that served it (absent in version 1 files).
    #[serde(default)]
    pub allocator: Option<Family>,
    /// The language of the code that asked: the site's own, or for a Rust function called
    /// straight from C to allocate (an allocator callback, as mlua hands Lua), C's.
    #[serde(default)]
    pub requested_by: Option<Language>,
    /// Its whole stacks, as indices into [`MemoryCensus::stack_table`]'s stacks (absent
    /// in files written before the table).
    #[serde(default)]
    pub stacks: Vec<usize>,
}

/// One frame of the stack table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StackFrame {
    /// Its function.
    pub function: String,
    /// Its object's file name (empty where unknown).
    pub module: String,
    /// Its language.
    pub language: Language,
}

/// Every site's whole stacks, each frame and each stack once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackTable {
    /// The frames.
    pub frames: Vec<StackFrame>,
    /// The stacks: frame indices, root first, the first frame above the allocator last
    /// (the site is that frame, or the first of the program's own code above it).
    pub stacks: Vec<Vec<usize>>,
}

impl StackTable {
    /// The index of `stack` (root first), added with its frames where new.
    pub(crate) fn intern(
        &mut self,
        stack: impl Iterator<Item = StackFrame>,
        frames: &mut std::collections::HashMap<StackFrame, usize>,
        stacks: &mut std::collections::HashMap<Vec<usize>, usize>,
    ) -> usize {
        let ids: Vec<usize> = stack
            .map(|f| {
                *frames.entry(f.clone()).or_insert_with(|| {
                    self.frames.push(f);
                    self.frames.len() - 1
                })
            })
            .collect();
        *stacks.entry(ids.clone()).or_insert_with(|| {
            self.stacks.push(ids);
            self.stacks.len() - 1
        })
    }

    /// The functions of stack `i`, root first.
    pub fn functions(&self, i: usize) -> Vec<&str> {
        self.stacks
            .get(i)
            .into_iter()
            .flatten()
            .map(|&f| self.frames[f].function.as_str())
            .collect()
    }
}

impl Site {
    /// `function` or `function (under rust_caller)`.
    pub fn label(&self) -> String {
        match &self.rust_caller {
            Some(r) => format!("{} under {r}", self.function),
            None => self.function.clone(),
        }
    }
}

/// How the heap was watched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// ffiprof's interposer, preloaded into the program.
    Native,
    /// valgrind's DHAT (the program on valgrind's synthetic CPU), or DHAT's files.
    #[default]
    Dhat,
}

/// Frees of blocks one allocator family served, by the family that took them back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyPair {
    /// Who served the blocks.
    pub allocated_by: Family,
    /// Who took them back.
    pub freed_by: Family,
    /// Blocks.
    pub blocks: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Blocks one family allocated and another freed, by allocation and free site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrossedFree {
    /// Who served the blocks.
    pub allocated_by: Family,
    /// Who took them back.
    pub freed_by: Family,
    /// The function that asked for them.
    pub alloc_function: String,
    /// The first Rust frame above a C-side allocation site.
    pub alloc_rust_caller: Option<String>,
    /// The function that freed them.
    pub free_function: String,
    /// The first Rust frame above a C-side free site.
    pub free_rust_caller: Option<String>,
    /// Blocks.
    pub blocks: u64,
    /// Bytes.
    pub bytes: u64,
}

/// What is wrong with a free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvalidFreeKind {
    /// The block had been freed before.
    DoubleFree,
    /// The address was never returned by an allocation the census saw.
    NeverAllocated,
}

/// Invalid frees at one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidFree {
    /// What is wrong.
    pub kind: InvalidFreeKind,
    /// The function that freed.
    pub function: String,
    /// The first Rust frame above a C-side site.
    pub rust_caller: Option<String>,
    /// How many times.
    pub count: u64,
}

/// The side of a block's life whose family could not be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownSide {
    /// The allocation.
    Allocation,
    /// The free.
    Free,
}

/// Freed blocks one side of which went through an allocator that could not be told, by
/// side and reason: none of them is claimed crossed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownFamily {
    /// Which side.
    pub side: UnknownSide,
    /// Why.
    pub reason: Untold,
    /// Blocks.
    pub blocks: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Who allocated and who freed each block (the native engine only: DHAT keeps no stack
/// for a free).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    /// Every free, by the families on both sides.
    pub frees: Vec<FamilyPair>,
    /// Blocks freed by another family than the one that served them, most bytes first.
    pub crossed_frees: Vec<CrossedFree>,
    /// Double frees and frees of what was never allocated.
    pub invalid_frees: Vec<InvalidFree>,
    /// Frees one side of which could not be told (counted as `unknown` in `frees`).
    #[serde(default)]
    pub unknown: Vec<UnknownFamily>,
}

/// One process DHAT followed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// Its pid under valgrind.
    pub pid: Pid,
    /// Its command line.
    pub command: String,
    /// Its figures, the sum of its points.
    #[serde(flatten)]
    pub figures: Figures,
}

/// The heap census: `memory.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryCensus {
    /// [`MEMORY_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `ffiprof <version>`.
    pub tool: String,
    /// The machine.
    pub environment: Environment,
    /// The program and its arguments as given.
    pub command: Vec<String>,
    /// Its exit status (128 + signal when killed).
    pub exit_status: i32,
    /// How the heap was watched (version 1 files: DHAT).
    #[serde(default)]
    pub engine: Engine,
    /// With the native engine, about one allocation per this many bytes kept its stack
    /// (the sites' figures are scaled); none: every one.
    #[serde(default)]
    pub sample_bytes: Option<u64>,
    /// valgrind's version line (empty for the native engine).
    pub valgrind: String,
    /// Child processes followed.
    pub trace_children: bool,
    /// Wall seconds of the program's run, under DHAT or the interposer.
    pub dhat_seconds: f64,
    /// Seconds spent reading DHAT's files and building the census.
    pub post_processing_seconds: f64,
    /// Every process, with its figures.
    pub processes: Vec<Process>,
    /// The whole heap: every site summed (with several processes, each one's peak).
    pub totals: Figures,
    /// DHAT's own summary lines (`Total`, `At t-gmax`, `At t-end`), summed over processes,
    /// where its log was read: the same figures, counted by DHAT itself.
    pub dhat_summary: Option<Figures>,
    /// Sums per language of the site.
    pub by_language: BTreeMap<String, Figures>,
    /// Sums per allocator family that served.
    #[serde(default)]
    pub by_allocator: BTreeMap<String, Figures>,
    /// Sums per language of the code that asked (through allocator callbacks).
    #[serde(default)]
    pub by_requester: BTreeMap<String, Figures>,
    /// Who allocated and who freed (native engine).
    #[serde(default)]
    pub ownership: Option<Ownership>,
    /// False where the program's Rust allocations are not seen (a global allocator that
    /// does not call malloc): then the Rust side's figures are not a fact.
    pub rust_heap_seen: bool,
    /// Sites, the most bytes at the peak first.
    pub sites: Vec<Site>,
    /// Every site's whole stacks ([`Site::stacks`] index them).
    #[serde(default)]
    pub stack_table: StackTable,
    /// What the reader should know.
    pub notes: Vec<String>,
}

impl MemoryCensus {
    /// Reads `memory.json`, or `<dir>/memory.json`.
    pub fn load(path: &Path) -> Result<MemoryCensus> {
        crate::output::load_versions(path, MEMORY_FILE, 1..=MEMORY_SCHEMA_VERSION)
    }

    /// As pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|source| Error::Serialize { what: "memory.json", source })
    }
}

/// True when `path` is a heap census: a `memory.json`, or a directory holding one.
pub fn is_memory_census(path: &Path) -> bool {
    crate::output::holds(path, MEMORY_FILE)
}
