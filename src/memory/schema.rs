//! `memory.json`'s types (results/README.md documents them), read back and written.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::stacks::Language;

/// Version of `memory.json`.
pub(crate) const MEMORY_SCHEMA_VERSION: u32 = 1;

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
    /// DHAT's allocation points (distinct stacks) gathered here.
    pub points: usize,
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

/// One process DHAT followed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// Its pid under valgrind.
    pub pid: u32,
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
    /// Its exit status under DHAT (128 + signal when killed).
    pub exit_status: i32,
    /// valgrind's version line.
    pub valgrind: String,
    /// Child processes followed.
    pub trace_children: bool,
    /// Wall seconds of the DHAT run.
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
    /// False where the program's Rust allocations are not seen (a global allocator that
    /// does not call malloc): then the Rust side's figures are not a fact.
    pub rust_heap_seen: bool,
    /// Sites, the most bytes at the peak first.
    pub sites: Vec<Site>,
    /// What the reader should know.
    pub notes: Vec<String>,
}

impl MemoryCensus {
    /// Reads `memory.json`, or `<dir>/memory.json`.
    pub fn load(path: &Path) -> Result<MemoryCensus> {
        crate::output::load_versioned(path, MEMORY_FILE, MEMORY_SCHEMA_VERSION)
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
