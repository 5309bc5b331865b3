//! The census's record: `crossings.json`'s types (results/README.md documents them),
//! read back and written. Every stage after the counting fills one of them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::census::{Direction, Thresholds, Verdict};
use super::cost::{CallKind, CostModel};
use super::execute::NativeTime;
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::measure::Interval;
use crate::stacks::Language;

/// Version of `crossings.json`.
pub const CENSUS_SCHEMA_VERSION: u32 = 1;

/// The census file's name in its directory.
pub const CENSUS_FILE: &str = "crossings.json";

/// One crossing of the census.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossing {
    /// The calling function.
    pub caller: String,
    /// Its object's file name.
    pub caller_module: String,
    /// Its language.
    pub caller_language: Language,
    /// The called function.
    pub callee: String,
    /// Its object's file name.
    pub callee_module: String,
    /// Its language.
    pub callee_language: Language,
    /// `rust-to-c`, `rust-to-c-runtime`, `c-to-rust` or `c-runtime-to-rust`.
    pub direction: Direction,
    /// Calls, exact.
    pub calls: u64,
    /// Instructions per call inside the callee, what it calls included (inclusive).
    pub instructions_per_call: f64,
    /// Instructions inside all the calls.
    pub instructions: u64,
    /// The caller's own instructions (its calls excluded) per crossing it makes, over all
    /// its crossings: for a wrapper that crosses once per call, the wrapper's own work.
    pub caller_instructions_per_call: f64,
    /// Share of the program's instructions inside these calls.
    pub share: f64,
    /// The kind of call, for its cost.
    pub kind: CallKind,
    /// What the crossings themselves cost, ns in all, where the cost per call is known.
    pub estimated_cost_ns: Option<Interval>,
    /// For direct calls from Rust (the callee in the caller's own object, where
    /// cross-language LTO reaches): what the calls themselves cost against the same work
    /// inlined (the direct call's figure), ns in all: what inlining across the boundary
    /// would save beyond `estimated_cost_ns`.
    #[serde(default)]
    pub call_cost_ns: Option<Interval>,
    /// Chatty or fine.
    pub verdict: Verdict,
    /// Glue passed through (trampolines).
    #[serde(default)]
    pub through: Vec<String>,
    /// Calls apportioned among the callers of shared glue, not counted exactly.
    #[serde(default)]
    pub apportioned: bool,
    /// Processes it was seen in.
    pub processes: u32,
}

impl Crossing {
    /// `caller -> callee`.
    pub fn label(&self) -> String {
        format!("{} -> {}", self.caller, self.callee)
    }
}

/// One process that callgrind followed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    /// Its pid under callgrind.
    pub pid: Option<u32>,
    /// Its command line.
    pub command: String,
    /// Instructions it executed.
    pub instructions: u64,
    /// Lines of its callgrind file that could not be read.
    pub unreadable_lines: u64,
}

/// The census as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Crossings (distinct caller -> callee pairs).
    pub crossings: usize,
    /// Chatty ones.
    pub chatty: usize,
    /// Calls over every crossing.
    pub calls: u64,
    /// Calls per direction, by its name.
    pub calls_by_direction: std::collections::BTreeMap<String, u64>,
    /// Instructions of the program, every process.
    pub program_instructions: u64,
    /// What every crossing costs in all, ns, where costs are known.
    pub estimated_cost_ns: Option<Interval>,
    /// What the calls from Rust cost against the same work inlined, ns in all.
    #[serde(default)]
    pub call_cost_ns: Option<Interval>,
}

/// A census: `crossings.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Census {
    /// [`CENSUS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `ffiprof <version>`.
    pub tool: String,
    /// The machine.
    pub environment: Environment,
    /// The program and its arguments as given.
    pub command: Vec<String>,
    /// Its exit status under callgrind (128 + signal when killed).
    pub exit_status: i32,
    /// valgrind's version line.
    pub valgrind: String,
    /// Child processes followed.
    pub trace_children: bool,
    /// Wall seconds of the callgrind run.
    pub callgrind_seconds: f64,
    /// Seconds spent reading callgrind's files and building the census.
    pub post_processing_seconds: f64,
    /// Every process counted.
    pub processes: Vec<Process>,
    /// The program's own time, natively, where timed.
    pub native: Option<NativeTime>,
    /// When a crossing is chatty.
    pub thresholds: Thresholds,
    /// What a crossing costs per call, where known.
    pub cost_model: Option<CostModel>,
    /// Sums.
    pub totals: Totals,
    /// Crossings: chatty first, then by calls.
    pub crossings: Vec<Crossing>,
    /// What the reader should know.
    pub notes: Vec<String>,
}

impl Census {
    /// Reads `crossings.json`, or `<dir>/crossings.json`.
    pub fn load(path: &Path) -> Result<Census> {
        crate::output::load_versioned(path, CENSUS_FILE, CENSUS_SCHEMA_VERSION)
    }

    /// The census as pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|source| Error::Serialize { what: "crossings.json", source })
    }
}
