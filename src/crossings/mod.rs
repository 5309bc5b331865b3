//! `ffiprof crossings -- PROGRAM`: an exact census of a program's Rust/C crossings, what
//! each costs, and whether batching would pay.
//!
//! Samples see time, not calls. The census counts calls: it runs the program under
//! callgrind (every thread; child processes with `--trace-children`), reads the call
//! graph callgrind writes ([`callgrind`]), gives every function its language and keeps
//! the edges that cross the boundary, glue looked through ([`census`]). For each crossing:
//! calls, instructions per call inside the callee, the caller's own instructions per
//! crossing, the share of the program's instructions below it, and a verdict (chatty or
//! fine, from the counts alone, so that it is the same on every run). What crossings
//! cost in time comes from the paired engine, measured at the start on the other core
//! while callgrind runs, or read from a run's report ([`cost`]); the program's own time
//! from one native run before the census. Two censuses compare exactly ([`compare`]).
//!
//! One module per stage, in the order data flows, none importing a later one:
//! [`Options`] (the [`Source`]: a program to run, or callgrind's files) -> `execute` (the
//! program natively, then under callgrind through the one valgrind runner, beside the
//! cost measurement) -> `callgrind` (each file read into a call graph) -> `census` (each
//! function's language, the edges that cross) -> `cost` (what a crossing costs) ->
//! `schema` (`crossings.json`'s types) -> `build` (the census from the counts and the
//! cost) -> `render` (the terminal text and `crossings.md`) -> `compare` (two censuses).

pub(crate) mod build;
pub(crate) mod callgrind;
pub(crate) mod census;
pub(crate) mod compare;
pub(crate) mod cost;
pub(crate) mod execute;
pub(crate) mod render;
pub(crate) mod schema;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use crate::source::Source;
pub use census::{Direction, Thresholds, Verdict};
pub use compare::{compare_paths, CensusComparison};
pub use cost::{CallKind, CostModel};
pub use execute::NativeTime;
pub use schema::{Census, Crossing, Process, Totals, CENSUS_FILE, CENSUS_SCHEMA_VERSION};

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::output::{write_under, Staging};

/// Native runs of the program for its own time, unless the options say otherwise.
pub const DEFAULT_NATIVE_RUNS: usize = 1;

/// How long each kind of crossing's cost is measured, unless the options say otherwise.
pub const DEFAULT_COST_BUDGET: Duration = Duration::from_millis(600);

/// Where the crossings' cost per call comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum CostSource {
    /// The paired engine, at the start of the census, each kind's case in this long.
    Measure(Duration),
    /// A run's report.json (or its directory).
    Report(PathBuf),
    /// A model already measured or read (another census's).
    Given(CostModel),
}

/// What to count and where to write it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The program to run, or the files to read.
    pub source: Source,
    /// The census directory (replaced whole when complete).
    pub out: PathBuf,
    /// Follow child processes (valgrind's `--trace-children=yes`). Default: false.
    pub trace_children: bool,
    /// When a crossing is chatty.
    pub thresholds: Thresholds,
    /// Where the cost per call comes from. Default: measured, 0.6 s per kind.
    pub costs: CostSource,
    /// Native runs of the program for its own time (0: not timed). Default: 1.
    pub native_runs: usize,
}

impl Options {
    /// Options with the defaults for `source`, writing to `out`.
    pub fn new(source: Source, out: PathBuf) -> Options {
        Options {
            source,
            out,
            trace_children: false,
            thresholds: Thresholds::default(),
            costs: CostSource::Measure(DEFAULT_COST_BUDGET),
            native_runs: DEFAULT_NATIVE_RUNS,
        }
    }

    /// Checks the settings before anything runs.
    pub fn validate(&self) -> Result<()> {
        if self.source.is_empty() {
            return Err(Error::InvalidOption(
                "give the program to count after `--` (ffiprof crossings -- PROGRAM [ARGS...]), \
                 or callgrind files with --from"
                    .into(),
            ));
        }
        let t = &self.thresholds;
        if t.min_calls == 0 || !(t.max_instructions.is_finite() && t.max_instructions >= 0.0) {
            return Err(Error::InvalidOption(
                "--chatty-calls must be at least 1 and --chatty-instructions a number of at least 0"
                    .into(),
            ));
        }
        if self.native_runs > 100 {
            return Err(Error::InvalidOption("--native-runs is at most 100".into()));
        }
        Ok(())
    }
}

/// A finished census.
pub struct Outcome {
    /// The census.
    pub census: Census,
    /// Its directory.
    pub out: PathBuf,
}

/// What the census is made from, once checked: the program resolved, or the files.
enum Checked {
    Run { valgrind: String, program: PathBuf, command: Vec<OsString> },
    Files(Vec<PathBuf>),
}

/// Checks everything the user gave before anything runs or is written: valgrind and the
/// program, or that each file is callgrind's output.
fn check(options: &Options) -> Result<Checked> {
    options.validate()?;
    match &options.source {
        Source::Run(command) => Ok(Checked::Run {
            valgrind: crate::valgrind::version("the census runs the program under callgrind")?,
            program: crate::record::resolve_program(&command[0])?,
            command: command.clone(),
        }),
        Source::Files(files) => {
            for f in files {
                callgrind::check_file(f)?;
            }
            Ok(Checked::Files(files.clone()))
        }
    }
}

/// Runs the program (or takes the files), with the cost measurement beside it when asked.
fn counts(
    options: &Options,
    checked: Checked,
    raw: &std::path::Path,
) -> Result<(execute::Ran, Option<Result<CostModel>>)> {
    let measure = || match &options.costs {
        CostSource::Measure(budget) => Some(cost::measure(*budget)),
        CostSource::Report(_) | CostSource::Given(_) => None,
    };
    match checked {
        Checked::Run { valgrind, program, command } => {
            let program = execute::Program {
                path: &program,
                command: &command,
                native_runs: options.native_runs,
                trace_children: options.trace_children,
            };
            execute::under_callgrind(&program, raw, valgrind, measure)
        }
        Checked::Files(files) => {
            let ran = execute::Ran {
                valgrind: "(callgrind files given)".into(),
                command: Vec::new(),
                exit_status: 0,
                seconds: 0.0,
                native: None,
                files,
            };
            Ok((ran, measure()))
        }
    }
}

/// The cost model: the report's, else the measured one; notes on what went wrong.
fn cost_model(
    from_report: Option<CostModel>,
    measured: Option<Result<CostModel>>,
    notes: &mut Vec<String>,
) -> Option<CostModel> {
    let model = match (from_report, measured) {
        (Some(m), _) | (None, Some(Ok(m))) => Some(m),
        (None, Some(Err(e))) => {
            notes.push(format!("the cost per call could not be measured: {e}"));
            None
        }
        (None, None) => None,
    };
    for k in model.iter().flat_map(|m| m.kinds.iter()).filter(|k| k.too_noisy) {
        notes.push(format!(
            "the {:?} cost per call ({}) was too noisy to trust: its A/A control differed",
            k.kind, k.measured_by
        ));
    }
    model
}

/// Counts the crossings of the program (or reads the files): see the module docs. Bad
/// input (no valgrind, no such program, an unwritable `--out`, an unreadable `--costs`
/// report, a file that is not callgrind's) is found before the program runs and before
/// anything is written; Ctrl-C ends the program, not the census. A program that fails
/// still gets its census, with its status in [`Census::exit_status`].
pub fn count(options: &Options) -> Result<Outcome> {
    let checked = check(options)?;
    let from_report = match &options.costs {
        CostSource::Report(path) => Some(cost::from_report(path)?),
        CostSource::Given(model) => Some(model.clone()),
        CostSource::Measure(_) => None,
    };
    let staging = Staging::new(&options.out)?;
    let raw = staging.path().join("callgrind");
    std::fs::create_dir_all(&raw).map_err(|source| Error::Write { path: raw.clone(), source })?;
    let environment = Environment::detect();
    let (ran, measured) = counts(options, checked, &raw)?;
    let post = Instant::now();
    crate::progress::stage("reading callgrind's files and the boundary's edges");
    let graphs = callgrind::read_graphs(&ran.files)?;
    let mut notes = Vec::new();
    let cost_model = cost_model(from_report, measured, &mut notes);
    let built = build::build(&graphs, options.thresholds, cost_model.as_ref());
    notes.extend(built.notes);
    if ran.exit_status != 0 {
        notes.push(format!(
            "the program exited with status {}; the census counts what it ran",
            ran.exit_status
        ));
    }
    let command = if ran.command.is_empty() {
        graphs.first().map(|g| vec![g.command.clone()]).unwrap_or_default()
    } else {
        ran.command
    };
    let mut census = Census {
        schema_version: CENSUS_SCHEMA_VERSION,
        tool: format!("ffiprof {}", env!("CARGO_PKG_VERSION")),
        environment,
        command,
        exit_status: ran.exit_status,
        valgrind: ran.valgrind,
        trace_children: options.trace_children,
        callgrind_seconds: ran.seconds,
        post_processing_seconds: 0.0,
        processes: built.processes,
        native: ran.native,
        thresholds: options.thresholds,
        cost_model,
        totals: built.totals,
        crossings: built.crossings,
        notes,
    };
    census.post_processing_seconds = post.elapsed().as_secs_f64();
    write_under(staging.path(), Path::new(CENSUS_FILE), census.to_json()?.as_bytes())?;
    write_under(staging.path(), Path::new("crossings.md"), census.markdown().as_bytes())?;
    let out = staging.commit()?;
    Ok(Outcome { census, out })
}

/// The boundary's calls in one callgrind file (a part dumped for one batch, as the
/// instruction count dumps them): (Rust to C, C to Rust, of the first those into the C
/// runtime), by the census's own rules. What `bench` and `run` count per call.
pub fn boundary_calls(part: &Path) -> Result<(u64, u64, u64)> {
    use census::Direction;
    let bytes =
        std::fs::read(part).map_err(|source| Error::Read { path: part.to_owned(), source })?;
    let (counted, _) = census::crossings(&callgrind::parse(&bytes));
    let mut calls = (0u64, 0u64, 0u64);
    for c in counted {
        match c.direction {
            Direction::RustToC => calls.0 += c.calls,
            Direction::RustToCRuntime => {
                (calls.0, calls.2) = (calls.0 + c.calls, calls.2 + c.calls)
            }
            Direction::CToRust | Direction::CRuntimeToRust => calls.1 += c.calls,
        }
    }
    Ok(calls)
}

/// True when `path` is a census: a `crossings.json`, or a directory holding one.
pub fn is_census(path: &Path) -> bool {
    crate::output::holds(path, CENSUS_FILE)
}
