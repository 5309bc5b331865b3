//! Timing. `ffiprof bench` and `ffiprof run` measure every case with the paired engine
//! ([`paired`]): all variants of a case and an A/A control in interleaved rounds on one
//! shared input, figures as medians over rounds with distribution-free intervals
//! ([`stats`]). `cargo bench` (the `benches` package) keeps criterion, the ecosystem's
//! convention, with its baselines and `--profile-time` flamegraphs, and ends with the
//! paired table. Where the machine has hardware counters, [`counters`] counts
//! instructions and cycles per call.

pub(crate) mod allocations;
pub(crate) mod counters;
pub(crate) mod instructions;
pub mod paired;
pub mod programs;
pub(crate) mod results;
pub(crate) mod stats;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::output::AtomicFile;
use crate::workload::{Input, Workload};

pub use counters::Availability;
pub use instructions::{
    count as count_instructions, run_batches, CrossingCounter, InstructionCount,
};
pub use results::{
    case_note, case_notes, table, BenchResults, CaseHeader, CaseResult, Interval, Nanos,
};

/// How long a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `--quick`: a short budget per case, wider intervals.
    Quick,
    /// The default.
    Full,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        })
    }
}

/// Which statistic a time per call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Statistic {
    /// The median.
    Median,
}

impl std::fmt::Display for Statistic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("median")
    }
}

/// How long and how carefully to measure.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Short runs: the whole catalogue in about twenty seconds, with wider intervals.
    /// Default: false.
    pub quick: bool,
    /// Time per case; `None` for the mode's default (1.2 s quick, 5 s full).
    pub budget_per_case: Option<Duration>,
    /// Measure each case in this many processes, the budget shared among them, and pool
    /// them ([`paired::pool`]): the spread between address-space layouts then shows in
    /// every interval. 1 measures in this process. Default: 1.
    pub processes: usize,
    /// The ffiprof binary to start for each process (it must have the hidden
    /// `__paired-case` command). Default: this process's executable.
    pub exe: Option<PathBuf>,
    /// Seed of the round order. Default: the engine's.
    pub seed: Option<u64>,
    /// `bench`: also count instructions per call under callgrind, running [`Options::exe`]
    /// (or this executable) with its hidden `__count-instructions` command. Default: false.
    pub count_instructions: bool,
    /// `bench`: with the instructions, the crossings per call, counted by this (the
    /// crossings census's [`crate::crossings::boundary_calls`]). Default: none.
    pub count_crossings: Option<instructions::CrossingCounter>,
}

#[allow(clippy::derivable_impls)] // written out so each default is stated once, here
impl Default for Options {
    fn default() -> Self {
        Options {
            quick: false,
            budget_per_case: None,
            processes: 1,
            exe: None,
            seed: None,
            count_instructions: false,
            count_crossings: None,
        }
    }
}

impl Options {
    /// Options for a quick or a full run.
    pub fn new(quick: bool) -> Self {
        Options { quick, ..Default::default() }
    }

    /// Quick or full.
    pub fn mode(&self) -> Mode {
        if self.quick {
            Mode::Quick
        } else {
            Mode::Full
        }
    }

    /// The paired engine's settings: a case stops when its ratios are known to 0.3%
    /// (quick) or 0.1% (full), or when its budget is spent.
    pub fn paired(&self) -> paired::Options {
        let (budget, precision) = if self.quick {
            (Duration::from_millis(1200), 0.003)
        } else {
            (Duration::from_secs(5), 0.001)
        };
        let defaults = paired::Options::default();
        paired::Options {
            budget: self.budget_per_case.unwrap_or(budget),
            precision,
            seed: self.seed.unwrap_or(defaults.seed),
            ..defaults
        }
    }
}

/// Processes each case is measured in by `ffiprof bench`, `ffiprof run`, the paired bench
/// and [`crate::harness::Harness`], pooled ([`paired::pool`]).
pub const PROCESSES: usize = 3;

/// Confidence level of every interval ffiprof reports.
pub const CONFIDENCE_LEVEL: f64 = 0.95;

/// Counts instructions per call of every variant of `workloads` under callgrind (the
/// executable, `options.exe` or this one, serving [`serve_child`]) and attaches them to
/// `cases`: what `bench` does with `count_instructions`, for a program that measures case
/// by case (the paired bench). Fails, saying why, without valgrind.
pub fn attach_instruction_counts(
    cases: &mut [CaseResult],
    workloads: &[Workload],
    options: &Options,
) -> Result<()> {
    let available = instructions::availability();
    if !available.available {
        return Err(Error::Internal(available.detail));
    }
    let exe = ffiprof_exe(options.exe.as_deref())?;
    let counts = instructions::count(&exe, workloads, options.count_crossings)?;
    for case in cases {
        instructions::attach(&counts, &case.header, case.variants.iter_mut());
    }
    Ok(())
}

/// Counts allocations per call of every variant of `workloads` with the heap interposer
/// (the executable, `options.exe` or this one, serving [`serve_child`]) and attaches them
/// to `cases`.
pub fn attach_allocation_counts(
    cases: &mut [CaseResult],
    workloads: &[Workload],
    options: &Options,
) -> Result<()> {
    let exe = ffiprof_exe(options.exe.as_deref())?;
    let counts = allocations::count(&exe, workloads)?;
    for case in cases {
        allocations::attach(&counts, &case.header, case.variants.iter_mut());
    }
    Ok(())
}

/// The ffiprof binary to start for hidden commands: `exe` if given, else this process's
/// executable.
pub fn ffiprof_exe(exe: Option<&Path>) -> Result<PathBuf> {
    match exe {
        Some(exe) => Ok(exe.to_owned()),
        None => std::env::current_exe()
            .map_err(|e| Error::Internal(format!("cannot find ffiprof's executable: {e}"))),
    }
}

/// The name of the hidden command that measures one case in a child process.
pub const CASE_COMMAND: &str = "__paired-case";

/// Measures one case of a workload with the paired engine, in this process or in
/// [`Options::processes`] child processes, pooled.
pub fn measure_case(workload: &Workload, input: &Input, options: &Options) -> Result<CaseResult> {
    let case = if options.processes > 1 {
        in_processes(workload, input, options)?
    } else {
        paired::measure_workload(
            workload,
            input,
            &options.paired(),
            &mut paired::RealClock::default(),
        )?
    };
    Ok(CaseResult::new(workload, input, case))
}

/// The case one child process measures: the arguments of [`CASE_COMMAND`].
#[derive(Debug, PartialEq)]
struct ChildCase {
    workload: String,
    input: String,
    budget_ms: u64,
    seed: u64,
    quick: bool,
}

impl ChildCase {
    /// `CASE_COMMAND WORKLOAD INPUT --budget-ms MS --seed SEED [--quick]`.
    fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            CASE_COMMAND.to_owned(),
            self.workload.clone(),
            self.input.clone(),
            "--budget-ms".to_owned(),
            self.budget_ms.to_string(),
            "--seed".to_owned(),
            self.seed.to_string(),
        ];
        if self.quick {
            args.push("--quick".to_owned());
        }
        args
    }

    /// The case `args` (after [`CASE_COMMAND`]) name, or why they do not.
    fn parse(args: &[String]) -> Result<ChildCase> {
        let bad = || Error::InvalidOption(format!("{CASE_COMMAND}: bad arguments {args:?}"));
        let number = |flag: &str| -> Result<u64> {
            let at = args.iter().position(|a| a == flag).ok_or_else(bad)?;
            args.get(at + 1).and_then(|v| v.parse().ok()).ok_or_else(bad)
        };
        let (workload, input) = match args {
            [w, i, ..] if !w.starts_with('-') && !i.starts_with('-') => (w.clone(), i.clone()),
            _ => return Err(bad()),
        };
        let known = ["--budget-ms", "--seed", "--quick"];
        let flags = args[2..].iter().filter(|a| a.starts_with('-'));
        if flags.clone().any(|f| !known.contains(&f.as_str())) {
            return Err(bad());
        }
        Ok(ChildCase {
            workload,
            input,
            budget_ms: number("--budget-ms")?,
            seed: number("--seed")?,
            quick: args.iter().any(|a| a == "--quick"),
        })
    }

    /// Measures the case in this process: its result as JSON.
    fn measure(&self) -> Result<String> {
        let workload = crate::workload::find(&self.workload)?;
        let input = workload.input(Some(&self.input))?;
        let mut options = Options::new(self.quick);
        options.budget_per_case = Some(Duration::from_millis(self.budget_ms));
        options.seed = Some(self.seed);
        let mut clock = paired::RealClock::default();
        let case = paired::measure_workload(&workload, input, &options.paired(), &mut clock)?;
        serde_json::to_string(&case)
            .map_err(|source| Error::Serialize { what: "paired case", source })
    }
}

/// The child side of [`measure_case`] and of instruction counting: when `args` (a
/// program's arguments, its name left out) are [`CASE_COMMAND`]'s, measures the case they
/// name and returns it as a line of JSON, for standard output; when they are
/// `__count-instructions WORKLOAD...`, runs the counted batches callgrind counts
/// ([`run_batches`]) and returns nothing to print; otherwise `None`. A program that
/// measures in child processes of itself (`ffiprof`, the paired bench) calls this first.
pub fn serve_child(args: &[String]) -> Option<Result<String>> {
    match args {
        [command, rest @ ..] if command == CASE_COMMAND => {
            Some(ChildCase::parse(rest).and_then(|case| case.measure()).map(|json| json + "\n"))
        }
        [command, rest @ ..] if command == instructions::COMMAND => Some(
            crate::workload::select(rest)
                .and_then(|workloads| run_batches(&workloads))
                .map(|()| String::new()),
        ),
        [command, rest @ ..] if command == allocations::COMMAND => Some(
            crate::workload::select(rest)
                .and_then(|workloads| allocations::run_batches(&workloads))
                .map(|()| String::new()),
        ),
        _ => None,
    }
}

fn in_processes(
    workload: &Workload,
    input: &Input,
    options: &Options,
) -> Result<paired::PairedCase> {
    let exe = ffiprof_exe(options.exe.as_deref())?;
    let share = options.paired().budget / options.processes as u32;
    let seed = options.paired().seed;
    let mut cases = Vec::with_capacity(options.processes);
    for k in 0..options.processes as u64 {
        let child = ChildCase {
            workload: workload.name.to_owned(),
            input: input.name.to_owned(),
            budget_ms: share.as_millis().max(1) as u64,
            seed: seed.wrapping_add(k),
            quick: options.quick,
        };
        let out = Command::new(&exe)
            .args(child.to_args())
            .output()
            .map_err(|e| Error::Internal(format!("cannot start {}: {e}", exe.display())))?;
        let failed = |detail: String| {
            Error::Internal(format!(
                "measuring {}/{} in a child process failed: {detail}",
                workload.name, input.name
            ))
        };
        if !out.status.success() {
            return Err(failed(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
        }
        let case = serde_json::from_slice(&out.stdout).map_err(|e| failed(e.to_string()))?;
        cases.push(case);
    }
    paired::pool(&cases).ok_or_else(|| Error::Internal("no process measured".into()))
}

/// Measures every case of `workloads`, calling `on_case` as each finishes.
pub fn measure_all(
    workloads: &[Workload],
    options: &Options,
    on_case: &mut dyn FnMut(&CaseResult),
) -> Result<BenchResults> {
    let mut cases = Vec::new();
    for w in workloads {
        for input in &w.inputs {
            let case = measure_case(w, input, options)?;
            on_case(&case);
            cases.push(case);
        }
    }
    Ok(BenchResults::new(options, cases))
}

/// `ffiprof bench`: measures `workloads` and, when `json` is given, writes the results
/// there. The file is opened before any measurement, so an unwritable path fails at once
/// ([`crate::Error::Destination`]) and an earlier file survives an interrupted run.
pub fn bench(
    workloads: &[Workload],
    options: &Options,
    json: Option<&Path>,
    on_case: &mut dyn FnMut(&CaseResult),
) -> Result<BenchResults> {
    let json_file = json.map(AtomicFile::create).transpose()?;
    let mut results = measure_all(workloads, options, on_case)?;
    let notes = results::case_notes(&results.workloads);
    results.notes.extend(notes);
    if options.count_instructions {
        if let Err(why) = attach_instruction_counts(&mut results.workloads, workloads, options) {
            results.notes.push(format!("instructions per call not counted: {why}"));
        }
        if let Err(why) = attach_allocation_counts(&mut results.workloads, workloads, options) {
            results.notes.push(format!("allocations per call not counted: {why}"));
        }
    }
    if let Some(file) = json_file {
        file.commit(results.to_json()?.as_bytes())?;
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn a_child_case_reads_back_what_it_writes() {
        for quick in [false, true] {
            let case = ChildCase {
                workload: "pow".into(),
                input: "chain".into(),
                budget_ms: 250,
                seed: 7,
                quick,
            };
            let args = case.to_args();
            assert_eq!(args[0], CASE_COMMAND);
            assert_eq!(ChildCase::parse(&args[1..]).unwrap(), case);
        }
    }

    #[test]
    fn bad_child_arguments_are_refused_and_other_commands_ignored() {
        for bad in [
            &["pow"][..],
            &["pow", "chain", "--seed", "1"],
            &["pow", "chain", "--budget-ms", "x", "--seed", "1"],
            &["pow", "chain", "--budget-ms", "5", "--seed", "1", "--frobnicate"],
            &["--budget-ms", "5", "pow", "chain"],
        ] {
            assert!(ChildCase::parse(&strings(bad)).is_err(), "{bad:?}");
        }
        assert!(serve_child(&strings(&["run", "pow"])).is_none());
        assert!(serve_child(&[]).is_none());
        let unknown = strings(&[CASE_COMMAND, "nosuch", "x", "--budget-ms", "1", "--seed", "1"]);
        assert!(serve_child(&unknown).unwrap().is_err());
    }
}
