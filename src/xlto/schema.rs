//! `xlto.json`'s types (results/README.md documents them), assembled from the stages, and
//! read back. The words are `render`'s.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::diff::{self, Objects, Remaining, Removed};
use crate::cargo::{Build, Target};
use crate::crossings::Census;
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::measure::programs::Duel;
use crate::measure::Interval;

/// Version of `xlto.json`.
pub const XLTO_SCHEMA_VERSION: u32 = 2;

/// Rows of each table on the terminal; the files have every one.
pub(crate) const TERMINAL_ROWS: usize = 15;

/// The file's name in its directory.
pub const XLTO_FILE: &str = "xlto.json";

/// The two builds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Builds {
    /// As cargo builds it in release.
    pub release: Build,
    /// With cross-language LTO.
    pub xlto: Build,
}

/// The compiler control: the C built by the same clang without LTO, Rust as released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Control {
    /// Its build.
    pub build: Build,
    /// The whole program's instructions, exact.
    pub instructions: u64,
    /// Calls from Rust into C and the C runtime.
    pub rust_to_c_calls: u64,
    /// Its census's directory.
    pub census: String,
}

/// The experiment: `xlto.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Xlto {
    /// [`XLTO_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `ffiprof <version>`.
    pub tool: String,
    /// The machine.
    pub environment: Environment,
    /// What was built.
    pub target: Target,
    /// rustc, clang and lld, first lines of their `--version`.
    pub toolchain: Vec<String>,
    /// The two builds.
    pub builds: Builds,
    /// The C and C++ objects that reached the LTO link: bitcode or machine code.
    pub c_objects: Objects,
    /// The program's arguments.
    pub args: Vec<String>,
    /// The release build's exit status under callgrind (ffiprof exits with it).
    pub exit_status: i32,
    /// The LTO build's.
    pub xlto_exit_status: i32,
    /// Calls from Rust into C and the C runtime, release build.
    pub rust_to_c_calls_before: u64,
    /// The same, LTO build.
    pub rust_to_c_calls_after: u64,
    /// Instructions of the whole program (every process counted), release build, exact.
    pub instructions_before: u64,
    /// The same, LTO build.
    pub instructions_after: u64,
    /// Crossings of the release build that the LTO build does not make.
    pub crossings_removed: Vec<Removed>,
    /// Crossings the LTO build makes, and why each remains.
    pub crossings_remaining: Vec<Remaining>,
    /// The LTO build's CPU time over the release build's, per paired round.
    pub time_ratio: Interval,
    /// The A/A control's (the release build against itself).
    pub control_ratio: Interval,
    /// The same two for wall time.
    pub wall_ratio: Interval,
    /// The control's wall-time ratio.
    pub wall_control_ratio: Interval,
    /// The paired timing in full.
    pub timing: Duel,
    /// The two censuses' directories, release then LTO (each `crossings.json`).
    pub censuses: [String; 2],
    /// The compiler control, where built (absent with `--no-compiler-control`).
    pub compiler_control: Option<Control>,
    /// What the reader should know.
    pub notes: Vec<String>,
}

/// What [`assemble`] is made from.
pub(crate) struct Parts<'a> {
    pub(crate) environment: Environment,
    pub(crate) target: Target,
    pub(crate) toolchain: Vec<String>,
    pub(crate) builds: Builds,
    pub(crate) objects: Objects,
    pub(crate) args: Vec<String>,
    pub(crate) before: &'a Census,
    pub(crate) after: &'a Census,
    pub(crate) control: Option<Control>,
    pub(crate) timing: Duel,
    /// The LTO build's machine code, where it can be read.
    pub(crate) code: Option<&'a diff::Code>,
}

/// The experiment's record from its parts.
pub(crate) fn assemble(p: Parts<'_>) -> Xlto {
    let (removed, remaining) = diff::diff(p.before, p.after, &p.objects, p.code);
    let mut x = Xlto {
        schema_version: XLTO_SCHEMA_VERSION,
        tool: format!("ffiprof {}", env!("CARGO_PKG_VERSION")),
        environment: p.environment,
        target: p.target,
        toolchain: p.toolchain,
        builds: p.builds,
        c_objects: p.objects,
        args: p.args,
        exit_status: p.before.exit_status,
        xlto_exit_status: p.after.exit_status,
        rust_to_c_calls_before: diff::rust_to_c_calls(p.before),
        rust_to_c_calls_after: diff::rust_to_c_calls(p.after),
        instructions_before: p.before.totals.program_instructions,
        instructions_after: p.after.totals.program_instructions,
        crossings_removed: removed,
        crossings_remaining: remaining,
        time_ratio: p.timing.cpu.ratio,
        control_ratio: p.timing.cpu.control_ratio,
        wall_ratio: p.timing.wall.ratio,
        wall_control_ratio: p.timing.wall.control_ratio,
        timing: p.timing,
        censuses: [super::CENSUS_DIRS[0].to_owned(), super::CENSUS_DIRS[1].to_owned()],
        compiler_control: p.control,
        notes: Vec::new(),
    };
    x.notes = notes(&x);
    x
}

fn notes(x: &Xlto) -> Vec<String> {
    let mut notes = Vec::new();
    if x.c_objects.bitcode == 0 {
        notes.push(
            "no C or C++ object reached the LTO link as bitcode: the package's C is prebuilt, \
             or its build script ignores CC and CFLAGS, so there is nothing to inline"
                .to_owned(),
        );
    }
    if x.crossings_removed.is_empty() && x.rust_to_c_calls_after >= x.rust_to_c_calls_before {
        notes.push(
            "cross-language LTO inlined no crossing here; each remaining one says why".to_owned(),
        );
    }
    if x.exit_status != 0 || x.xlto_exit_status != 0 {
        notes.push(format!(
            "the program exited with status {} (release build) and {} (LTO build) under \
             callgrind; the counts are of what ran",
            x.exit_status, x.xlto_exit_status
        ));
    }
    if x.timing.statuses != [0, 0] {
        notes.push(format!(
            "while timed, the release build's runs last exited with status {} and the LTO \
             build's with {}",
            x.timing.statuses[0], x.timing.statuses[1]
        ));
    }
    notes
}

impl Xlto {
    /// As pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|source| Error::Serialize { what: "xlto.json", source })
    }

    /// Reads `xlto.json` (or the directory holding it) of this schema; anything else is
    /// the user's to fix ([`Error::InputUnreadable`], [`Error::CensusCorrupt`]).
    pub fn load(path: &Path) -> Result<Xlto> {
        crate::output::load_versioned(path, XLTO_FILE, XLTO_SCHEMA_VERSION)
    }
}
