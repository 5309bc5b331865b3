//! The paired engine in a bench target of your own crate: a `harness = false` bench that
//! compares its own closures (per-item calls into C against one batched call, say) and
//! prints the table `ffiprof bench` prints, with the A/A control, intervals and marks.
//!
//! ```text
//! # Cargo.toml
//! [dev-dependencies]
//! ffiprof = "0.1"
//!
//! [[bench]]
//! name = "paired"
//! harness = false
//! ```
//!
//! ```text
//! // benches/paired.rs
//! use ffiprof::harness::Harness;
//! use ffiprof::measure::paired::Case;
//! use ffiprof::workload::Role;
//!
//! fn main() {
//!     let data: Vec<u64> = (0..4096).collect();
//!     let mut bench = Harness::from_args();
//!     bench.case("mix", "4096", |options| {
//!         Case::new("batched", options, || |n| mix_all(&data, n))
//!             .variant("per-call", Role::PerCall, |n| mix_each(&data, n))
//!     });
//!     bench.finish();
//! }
//! ```
//!
//! `cargo bench --bench paired` measures every case; `cargo bench --bench paired -- mix`
//! those whose `name/input` contains `mix`; `-- --quick` shortly; `-- --json FILE` also
//! writes the results as `ffiprof bench --json` does (the same schema); `-- --processes N`
//! sets how many processes measure each case (3 by default, as `ffiprof bench`: each
//! process is this bench's own executable, started again with the same arguments, which
//! measures the one case and returns). Criterion's flags are accepted and skipped, so one
//! `cargo bench -- ARGS` serves criterion's targets and this one; under criterion's
//! `--profile-time` and `--list` nothing is measured here. Without `--bench` (as `cargo
//! test --benches` runs bench targets) each case runs a few short rounds, a check that its
//! closures run, and nothing is judged.
//!
//! After the timed cases, each variant's instructions and crossings per call (under
//! callgrind, where valgrind is installed) and allocations per call (under ffiprof's heap
//! interposer) are counted in two more runs of this executable (`FFIPROF_HARNESS_COUNT`
//! says which), never inside a timed round, and shown beside the timings.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::measure::instructions::{self, ffiprof_counted_batch, Label};
use crate::measure::paired::{self, Case, PairedCase};
use crate::measure::results::{BenchResults, CaseHeader, CaseResult};
use crate::measure::{allocations, Options, PROCESSES};
use crate::output::write_atomic;

/// Criterion 0.8's flags that take a value, skipped with their values.
pub const CRITERION_FLAGS_WITH_VALUE: &[&str] = &[
    "--save-baseline",
    "--baseline",
    "--baseline-lenient",
    "--load-baseline",
    "--profile-time",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--color",
    "--output-format",
    "--plotting-backend",
    "--format",
    "-b",
    "-c",
    "-s",
];

/// What a bench target run by cargo is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// `cargo bench`: measure.
    Measure,
    /// `cargo test --benches`: run each case briefly, judge nothing.
    Test,
    /// Criterion's `--profile-time` or `--list`: nothing to do here.
    Skip,
}

/// The arguments cargo passes to a `harness = false` bench target.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchArgs {
    /// What to do.
    pub mode: RunMode,
    /// Only the cases whose key contains this.
    pub filter: Option<String>,
    /// Where to write the results as JSON.
    pub json: Option<PathBuf>,
    /// `--quick`.
    pub quick: bool,
    /// `--processes N`.
    pub processes: usize,
}

impl BenchArgs {
    /// Reads `args` (the program's arguments, its name left out).
    pub fn parse(args: &[String]) -> Result<BenchArgs> {
        let mut parsed = BenchArgs {
            mode: RunMode::Test,
            filter: None,
            json: None,
            quick: false,
            processes: PROCESSES,
        };
        let mut skip = false;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |flag: &str| {
                it.next().cloned().ok_or_else(|| {
                    Error::InvalidOption(format!("{flag} needs a value (bench arguments)"))
                })
            };
            match arg.as_str() {
                "--bench" => parsed.mode = RunMode::Measure,
                "--quick" => parsed.quick = true,
                "--json" => parsed.json = Some(value("--json")?.into()),
                "--processes" => {
                    let v = value("--processes")?;
                    parsed.processes = v.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        Error::InvalidOption(format!(
                            "--processes {v}: give a whole number of processes, at least 1"
                        ))
                    })?;
                }
                "--profile-time" | "--list" => {
                    skip = true;
                    if arg == "--profile-time" {
                        value(arg)?;
                    }
                }
                a if CRITERION_FLAGS_WITH_VALUE.contains(&a) => {
                    value(a)?;
                }
                a if a.starts_with('-') => {}
                a => {
                    parsed.filter.get_or_insert_with(|| a.to_owned());
                }
            }
        }
        if skip {
            parsed.mode = RunMode::Skip;
        }
        Ok(parsed)
    }

    /// Whether the case `key` is one to run.
    pub fn selects(&self, key: &str) -> bool {
        self.mode != RunMode::Skip && self.filter.as_deref().is_none_or(|f| key.contains(f))
    }

    /// The measurement options these arguments give.
    pub fn options(&self) -> Options {
        let mut options = Options::new(self.quick);
        options.processes = self.processes;
        options
    }
}

/// A child process measuring one case for its parent: named by the environment.
const CHILD_CASE: &str = "FFIPROF_HARNESS_CASE";
const CHILD_OUT: &str = "FFIPROF_HARNESS_OUT";
const CHILD_BUDGET_MS: &str = "FFIPROF_HARNESS_BUDGET_MS";
const CHILD_SEED: &str = "FFIPROF_HARNESS_SEED";

/// A counting run of this executable, started by its parent after the timed cases:
/// `instructions` (under callgrind) or `allocations` (under the heap interposer), and the
/// calls per batch of each case, one `name/input<TAB>n` per line.
const COUNT_MODE: &str = "FFIPROF_HARNESS_COUNT";
const COUNT_LENGTHS: &str = "FFIPROF_HARNESS_COUNT_LENGTHS";

/// What a counting run does: every case its parent measured, each subject at n and 2n
/// calls, inside callgrind's counted function or between the interposer's marks.
#[derive(Debug)]
struct Counting {
    allocations: bool,
    lengths: Vec<(String, u64)>,
    marks: u64,
}

impl Counting {
    fn from_env() -> Option<Counting> {
        let allocations = match std::env::var(COUNT_MODE).ok()?.as_str() {
            "allocations" => true,
            "instructions" => false,
            _ => return None,
        };
        let lengths = std::env::var(COUNT_LENGTHS).ok()?;
        let lengths = lengths
            .lines()
            .filter_map(|l| l.rsplit_once('\t'))
            .filter_map(|(key, n)| Some((key.to_owned(), n.parse().ok()?)))
            .collect();
        Some(Counting { allocations, lengths, marks: 0 })
    }

    /// The calls per batch of the case `key`, where the parent measured it.
    fn length(&self, key: &str) -> Option<u64> {
        self.lengths.iter().find(|(k, _)| k == key).map(|&(_, n)| n)
    }

    /// Runs one batch as this run counts it.
    fn batch(&mut self, run: &mut dyn FnMut(u64) -> u64, n: u64) {
        if self.allocations {
            allocations::marked(&mut self.marks, run, n);
        } else {
            ffiprof_counted_batch(run, n);
        }
    }
}

/// Calls per counted batch of a measured case: a tenth of its smallest timed batch, at
/// least one (as `ffiprof bench` counts a tenth of an iteration).
fn counted_length(case: &CaseResult) -> u64 {
    (case.variants.iter().map(|v| v.batch).min().unwrap_or(1) / 10).max(1)
}

#[derive(Debug)]
struct Child {
    case: String,
    out: PathBuf,
    budget: Duration,
    seed: u64,
}

impl Child {
    fn from_env() -> Option<Child> {
        let var = |name| std::env::var(name).ok();
        Some(Child {
            case: var(CHILD_CASE)?,
            out: var(CHILD_OUT)?.into(),
            budget: Duration::from_millis(var(CHILD_BUDGET_MS)?.parse().ok()?),
            seed: var(CHILD_SEED)?.parse().ok()?,
        })
    }
}

/// A bench target's cases, measured as they are given, and the table at the end.
pub struct Harness {
    args: BenchArgs,
    child: Option<Child>,
    counting: Option<Counting>,
    cases: Vec<CaseResult>,
}

impl Harness {
    /// The harness for this program's arguments; bad arguments end the program with
    /// their error and status 2.
    pub fn from_args() -> Harness {
        let args: Vec<String> = std::env::args().skip(1).collect();
        match BenchArgs::parse(&args) {
            Ok(parsed) => Harness::new(parsed),
            Err(e) => exit_with(&e),
        }
    }

    /// The harness for `args`.
    pub fn new(args: BenchArgs) -> Harness {
        Harness {
            args,
            child: Child::from_env(),
            counting: Counting::from_env(),
            cases: Vec::new(),
        }
    }

    /// Measures the case `name/input`, when selected: `build` makes it from the engine's
    /// options (the baseline first, then the variants, as [`Case::new`] and
    /// [`Case::variant`] do). A failure ends the program with its error.
    pub fn case<'a>(
        &mut self,
        name: &str,
        input: &str,
        build: impl FnOnce(paired::Options) -> Case<'a>,
    ) -> &mut Self {
        let key = format!("{name}/{input}");
        let engine = self.engine();
        if let Some(counting) = &mut self.counting {
            if let Some(n) = counting.length(&key) {
                build(engine).count_batches(n, &mut |run, n| counting.batch(run, n));
            }
            return self;
        }
        if let Some(child) = &self.child {
            if child.case == key {
                let options =
                    paired::Options { budget: child.budget, seed: child.seed, ..self.engine() };
                let json = serde_json::to_vec(&build(options).run())
                    .map_err(|source| Error::Serialize { what: "a measured case", source });
                match json.and_then(|j| write_atomic(&child.out, &j)) {
                    Ok(()) => std::process::exit(0),
                    Err(e) => exit_with(&e),
                }
            }
            return self;
        }
        if !self.args.selects(&key) {
            return self;
        }
        let measured = match self.args.mode {
            RunMode::Test => {
                let mut options = self.engine();
                options.budget = Duration::from_millis(20);
                options.min_rounds = 3;
                let case = build(options).run();
                println!("Testing {key}: {} rounds, ok", case.summary.rounds);
                return self;
            }
            _ if self.args.processes == 1 => Ok(build(self.engine()).run()),
            _ => self.in_processes(&key),
        };
        match measured {
            Ok(case) => {
                eprintln!("measured {key}: {} rounds ({})", case.summary.rounds, case.summary.stop);
                self.cases.push(result(name, input, case));
            }
            Err(e) => exit_with(&e),
        }
        self
    }

    /// The engine's options for one process.
    fn engine(&self) -> paired::Options {
        self.args.options().paired()
    }

    /// The case `key` measured in child processes of this executable, pooled.
    fn in_processes(&self, key: &str) -> Result<PairedCase> {
        let exe = std::env::current_exe()
            .map_err(|e| Error::Internal(format!("cannot find this bench's executable: {e}")))?;
        let dir = tempfile::tempdir()
            .map_err(|e| Error::Internal(format!("cannot make a temporary directory: {e}")))?;
        let engine = self.engine();
        let share = (engine.budget / self.args.processes as u32).as_millis().max(1);
        let mut cases = Vec::with_capacity(self.args.processes);
        for k in 0..self.args.processes as u64 {
            let out = dir.path().join(format!("case-{k}.json"));
            let status = Command::new(&exe)
                .args(std::env::args_os().skip(1))
                .env(CHILD_CASE, key)
                .env(CHILD_OUT, &out)
                .env(CHILD_BUDGET_MS, share.to_string())
                .env(CHILD_SEED, engine.seed.wrapping_add(k).to_string())
                .status()
                .map_err(|e| Error::Internal(format!("cannot start {}: {e}", exe.display())))?;
            let failed = |detail: String| {
                Error::Internal(format!("measuring {key} in a child process failed: {detail}"))
            };
            if !status.success() {
                return Err(failed(format!("it exited with {status}")));
            }
            let json = std::fs::read(&out).map_err(|e| {
                failed(format!("it wrote no case ({e}); does main reach this case again?"))
            })?;
            cases.push(serde_json::from_slice(&json).map_err(|e| failed(e.to_string()))?);
        }
        paired::pool(&cases).ok_or_else(|| Error::Internal("no process measured".into()))
    }

    /// The cases measured so far, as `ffiprof bench --json` writes them.
    pub fn results(&self) -> BenchResults {
        BenchResults::new(&self.args.options(), self.cases.clone())
    }

    /// Prints the paired table of the cases measured and writes the JSON asked for. A
    /// child process that reaches here never met its case: it ends with status 1.
    pub fn finish(mut self) {
        if self.counting.is_some() {
            return;
        }
        if let Some(child) = &self.child {
            exit_with(&Error::Internal(format!(
                "this process was started to measure {} and the bench never gave it",
                child.case
            )));
        }
        if self.args.mode != RunMode::Measure {
            return;
        }
        if self.cases.is_empty() {
            let filter = self.args.filter.as_deref().unwrap_or_default();
            println!("no case matched `{filter}`");
            return;
        }
        self.count();
        let results = self.results();
        println!("\nPaired rounds (every variant and a control instance of the baseline,");
        println!("interleaved on one shared input; medians, 95% distribution-free intervals):\n");
        print!("{}", results.table());
        let _ = std::io::stdout().flush();
        if let Some(path) = &self.args.json {
            let written = results.to_json().and_then(|j| write_atomic(path, j.as_bytes()));
            if let Err(e) = written {
                exit_with(&e);
            }
            println!("wrote {}", path.display());
        }
    }
}

impl Harness {
    /// Counts instructions and crossings per call (under callgrind) and allocations per
    /// call (under the heap interposer) of every measured case, in runs of this executable
    /// apart from the timed ones, and puts them beside the timings; what cannot be
    /// counted here is said in a note, and the table shows `-`.
    fn count(&mut self) {
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => return eprintln!("note: nothing counted: cannot find this executable: {e}"),
        };
        let args: Vec<OsString> = std::env::args_os().skip(1).collect();
        let lengths: String = self
            .cases
            .iter()
            .map(|c| format!("{}/{}\t{}\n", c.header.name, c.header.input, counted_length(c)))
            .collect();
        let labels: Vec<Label> = self
            .cases
            .iter()
            .flat_map(|c| {
                c.variants.iter().map(|v| Label {
                    workload: c.header.name.clone(),
                    input: c.header.input.clone(),
                    variant: v.name.clone(),
                    n: counted_length(c),
                })
            })
            .collect();
        let available = instructions::availability();
        if available.available {
            let env = [(COUNT_MODE, "instructions"), (COUNT_LENGTHS, lengths.as_str())];
            let counter = Some(crate::crossings::boundary_calls as instructions::CrossingCounter);
            match instructions::count_labelled(&exe, &args, &env, &labels, counter) {
                Ok(counts) => {
                    for case in &mut self.cases {
                        instructions::attach(&counts, &case.header, case.variants.iter_mut());
                    }
                }
                Err(e) => eprintln!("note: instructions and crossings per call not counted: {e}"),
            }
        } else {
            eprintln!("note: {}", available.detail);
        }
        let command: Vec<OsString> = std::iter::once(exe.into_os_string()).chain(args).collect();
        let env = [(COUNT_MODE, "allocations".to_owned()), (COUNT_LENGTHS, lengths)];
        match allocations::count_labelled(&command, &env, &labels) {
            Ok(counts) => {
                for case in &mut self.cases {
                    allocations::attach(&counts, &case.header, case.variants.iter_mut());
                }
            }
            Err(e) => eprintln!("note: allocations per call not counted: {e}"),
        }
    }
}

/// The row set of one measured case.
fn result(name: &str, input: &str, case: PairedCase) -> CaseResult {
    let baseline = case.variants.first().map(|v| v.name.clone()).unwrap_or_default();
    let header = CaseHeader {
        name: name.to_owned(),
        input: input.to_owned(),
        baseline,
        paired: case.summary,
    };
    CaseResult { header, variants: case.variants, unavailable: case.unavailable, inlining: None }
}

fn exit_with(e: &Error) -> ! {
    eprintln!("error: {e}");
    std::process::exit(e.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<BenchArgs> {
        BenchArgs::parse(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn cargo_bench_measures_and_cargo_test_only_tries() {
        assert_eq!(parse(&["--bench"]).unwrap().mode, RunMode::Measure);
        assert_eq!(parse(&[]).unwrap().mode, RunMode::Test);
        for skip in [&["--bench", "--profile-time", "1"][..], &["--bench", "--list"]] {
            let args = parse(skip).unwrap();
            assert_eq!(args.mode, RunMode::Skip);
            assert!(!args.selects("anything/at-all"));
        }
    }

    #[test]
    fn criterion_flags_and_their_values_are_skipped_and_the_filter_kept() {
        let args = parse(&[
            "--bench",
            "--save-baseline",
            "before",
            "-s",
            "30",
            "--noplot",
            "mix",
            "--json",
            "out.json",
            "--processes",
            "2",
            "--quick",
        ])
        .unwrap();
        assert_eq!(args.filter.as_deref(), Some("mix"));
        assert_eq!(args.json, Some(PathBuf::from("out.json")));
        assert_eq!((args.processes, args.quick), (2, true));
        assert!(args.selects("mix/4096") && !args.selects("pow/chain"));
        assert_eq!(args.options().processes, 2);
    }

    #[test]
    fn bad_values_are_the_users_to_fix() {
        for bad in [&["--bench", "--processes", "0"][..], &["--processes", "many"], &["--json"]] {
            let e = parse(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidOption(_)), "{bad:?}: {e:?}");
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn a_case_becomes_a_row_set_named_by_its_baseline() {
        let options = paired::Options {
            budget: Duration::from_millis(20),
            min_rounds: 3,
            ..Default::default()
        };
        let case = Case::new("batched", options, || |n: u64| n)
            .variant("per-call", crate::workload::Role::PerCall, |n: u64| n + 1)
            .run();
        let r = result("mix", "small", case);
        assert_eq!(r.header.key(), "mix/small");
        assert_eq!(r.header.baseline, "batched");
        let names: Vec<&str> = r.variants.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names[0], "batched");
        assert!(names.contains(&"per-call"));
        assert!(crate::measure::table(&[r]).contains("per-call"));
    }
}
