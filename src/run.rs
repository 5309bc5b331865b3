//! `ffiprof run`: the whole question in one command. Benchmarks every workload and
//! variant, profiles every variant with both samplers, measures the cgo reference where
//! Go is installed, and writes the run directory: `report.json`, `report.md`,
//! `index.html`, flamegraphs, folded stacks and pprof profiles.
//!
//! The directory is built in a staging directory and renamed into place when complete
//! (atomic directories); partial reports are written into the staging directory as each
//! workload finishes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::environment::Environment;
use crate::error::Result;
use crate::measure::{self, counters, instructions, CaseResult, Statistic};
use crate::output::{point_latest, write_atomic, Staging};
use crate::profile::beside::Beside;
use crate::profile::{self, ProfileSummary};
use crate::report::{
    self, CgoReference, CgoStatus, Report, ReportCase, ReportVariant, RunEnvironment,
    SamplerSettings, REPORT_SCHEMA_VERSION,
};
use crate::sample::{self, SamplerKind};
use crate::workload::{Input, Role, Workload};

/// How a run measures, and where it writes.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Options {
    /// Short benchmarks and profiles. Default: false.
    pub quick: bool,
    /// Sampler settings. Default: [`sample::Options::default`].
    pub sample: sample::Options,
    /// The run directory. Default: `results/<date>-<host>`, with `results/latest`
    /// pointing at it.
    pub out: Option<PathBuf>,
    /// The ffiprof binary to run under callgrind for instruction counts and to measure
    /// cases in child processes (it must have the hidden `__count-instructions` and
    /// `__paired-case` commands). Default: this process's executable.
    pub counting_exe: Option<PathBuf>,
    /// Processes each case is measured in ([`measure::Options::processes`]; 0 or 1: this
    /// process). Default: 0.
    pub processes: usize,
    /// Leave out the cgo reference even where Go is installed. Default: false.
    pub no_cgo: bool,
}

impl Options {
    /// Options for a quick or a full run into the default directory.
    pub fn new(quick: bool) -> Self {
        Options { quick, ..Default::default() }
    }

    /// Sampling window per variant and sampler.
    pub fn profile_window(&self) -> Duration {
        if self.quick {
            Duration::from_millis(200)
        } else {
            Duration::from_millis(500)
        }
    }

    /// Time for all paired measurements of the run, shared among the cases: a case that
    /// reaches its precision early leaves its time to the cases after it. (54 s in full:
    /// with the profiles, instruction counts and the cgo reference, the run stays under
    /// two minutes on a 2-core VM.)
    pub fn bench_budget(&self) -> Duration {
        if self.quick {
            Duration::from_secs(14)
        } else {
            Duration::from_secs(54)
        }
    }
}

/// What a run is doing, for a progress display.
#[derive(Debug, Clone)]
pub enum Step {
    /// Measuring a case in paired rounds.
    Bench(String),
    /// Profiling a workload at an input.
    Profile(String),
    /// Counting instructions under callgrind.
    Instructions,
    /// Measuring the cgo reference.
    Cgo,
    /// One step finished.
    Done,
}

/// Steps `run` will report as done, for a progress bar's length.
pub fn step_count(workloads: &[Workload]) -> u64 {
    workloads.iter().map(|w| 2 * w.inputs.len() as u64).sum::<u64>() + 2
}

/// The default run directory: `results/<date>-<host>`.
pub fn default_dir() -> PathBuf {
    let env = Environment::detect();
    let day = env.date.get(..10).unwrap_or("undated").to_owned();
    PathBuf::from("results").join(format!("{day}-{}", env.host))
}

fn environment(options: &Options) -> RunEnvironment {
    RunEnvironment {
        machine: Environment::detect(),
        hardware_counters: counters::availability(),
        instruction_counts: instructions::availability(),
        frame_pointers: "csrc built with -fno-omit-frame-pointer; Rust built with rustc's \
                         default (no forced frame pointers); the distribution's libc and libm \
                         without frame pointers"
            .to_owned(),
        samplers: SamplerSettings {
            frequency_hz: options.sample.frequency,
            duration_seconds: options.profile_window().as_secs_f64(),
            perf_unwind: options.sample.perf_unwind,
            stack_bytes: options.sample.stack_bytes,
        },
    }
}

fn write_report(report: &Report, dir: &Path) -> Result<()> {
    write_atomic(&dir.join("report.json"), report.to_json().as_bytes())?;
    write_atomic(&dir.join("report.md"), report::markdown::render(report).as_bytes())?;
    write_atomic(&dir.join("index.html"), report::html::render(report).as_bytes())
}

/// What the control row stands for.
const CONTROL_ABOUT: &str = "a second, independent instance of the baseline, timed like a \
variant on the same input: the case's noise floor (A/A control)";

/// One case of the report: the paired timing of `result`, the profiles of `summary`, and
/// hardware counters where the machine has them.
fn report_case(
    workload: &Workload,
    input: &Input,
    result: CaseResult,
    summary: &ProfileSummary,
    counters_on: bool,
) -> ReportCase {
    let CaseResult { header, variants, unavailable, inlining } = result;
    let variants: Vec<ReportVariant> = variants
        .into_iter()
        .map(|timing| {
            let v = workload.variant(&timing.name).unwrap_or(workload.baseline());
            let about =
                if timing.role == Role::Control { CONTROL_ABOUT } else { v.about }.to_owned();
            let counters =
                counters_on.then(|| workload.prepare(v.name, input).ok()).flatten().and_then(
                    |mut r| counters::per_call(r.as_mut(), input.calls_per_iteration, 20).ok(),
                );
            let profiles = summary
                .profiles
                .iter()
                .filter(|p| p.variant == timing.name)
                .map(|p| p.profile.clone())
                .collect();
            ReportVariant { timing, about, counters, profiles }
        })
        .collect();
    let verdict = report::verdicts(&header, &variants, inlining.as_ref());
    let mut case = ReportCase {
        header,
        about: workload.about.to_owned(),
        verdict,
        variants,
        unavailable,
        inlining,
        answers: None,
    };
    case.answers = report::answers(&case);
    case
}

/// Adds instructions per call to every variant of `report` and judges its cases again
/// with them.
fn add_instructions(report: &mut Report, counts: &[instructions::Counted]) {
    for case in &mut report.workloads {
        let variants = case.variants.iter_mut().map(|v| &mut v.timing);
        instructions::attach(counts, &case.header, variants);
        case.verdict = report::verdicts(&case.header, &case.variants, case.inlining.as_ref());
        case.answers = report::answers(case);
    }
}

/// Adds allocations per call to every variant of `report` and judges its cases again
/// with them.
fn add_allocations(report: &mut Report, counts: &[crate::measure::allocations::Counted]) {
    for case in &mut report.workloads {
        let variants = case.variants.iter_mut().map(|v| &mut v.timing);
        crate::measure::allocations::attach(counts, &case.header, variants);
        case.verdict = report::verdicts(&case.header, &case.variants, case.inlining.as_ref());
        case.answers = report::answers(case);
    }
}

fn add_note(report: &mut Report, note: String) {
    if !report.notes.contains(&note) {
        report.notes.push(note);
    }
}

fn new_report(options: &Options) -> Report {
    let mut report = Report {
        schema_version: REPORT_SCHEMA_VERSION,
        tool: format!("ffiprof {}", env!("CARGO_PKG_VERSION")),
        mode: measure::Options::new(options.quick).mode(),
        statistic: Statistic::Median,
        confidence_level: measure::CONFIDENCE_LEVEL,
        environment: environment(options),
        workloads: Vec::new(),
        notes: Vec::new(),
        cgo: None,
    };
    let counters = &report.environment.hardware_counters;
    if !counters.available {
        let note = format!("No hardware counters: {}", counters.detail);
        report.notes.push(note);
    }
    report
}

/// Times every case, each alone on the machine, the run's budget shared among them.
fn time_cases<'w>(
    workloads: &'w [Workload],
    options: &Options,
    on_step: &mut dyn FnMut(Step),
) -> Result<Vec<(&'w Workload, &'w Input, CaseResult)>> {
    let budget = options.bench_budget();
    let per_case = measure::Options::new(options.quick).paired().budget;
    let mut cases_left: u32 = workloads.iter().map(|w| w.inputs.len() as u32).sum();
    let mut spent = Duration::ZERO;
    let mut timed = Vec::new();
    for w in workloads {
        for input in &w.inputs {
            on_step(Step::Bench(format!("{}/{}", w.name, input.name)));
            let mut bench_options = measure::Options::new(options.quick);
            bench_options.processes = options.processes;
            bench_options.exe = options.counting_exe.clone();
            // The run's time left, shared among the cases left, and never more than a
            // case gets in `bench` (1.2 s quick, 5 s full): a run of one workload takes
            // seconds, not the whole run's budget.
            let share = (budget.saturating_sub(spent) / cases_left.max(1)).min(per_case);
            bench_options.budget_per_case = Some(share.max(Duration::from_millis(300)));
            let case = measure::measure_case(w, input, &bench_options)?;
            spent += Duration::from_secs_f64(case.header.paired.seconds);
            cases_left = cases_left.saturating_sub(1);
            on_step(Step::Done);
            timed.push((w, input, case));
        }
    }
    Ok(timed)
}

/// The instruction counts of the thread started beside the profiles, or why there are
/// none, as a note.
fn joined_counts(
    counting: Option<Result<std::thread::JoinHandle<Result<Vec<instructions::Counted>>>>>,
    unavailable: &str,
) -> Result<Vec<instructions::Counted>, String> {
    match counting {
        None => Err(unavailable.to_owned()),
        Some(spawned) => spawned
            .map_err(|e| e.to_string())
            .and_then(|t| t.join().map_err(|_| "the counting thread panicked".to_owned()))
            .and_then(|counted| counted.map_err(|e| e.to_string())),
    }
    .map_err(|e| format!("instructions per call not counted: {e}"))
}

/// The cgo reference: Go's run of the same C, or why there is none.
fn cgo_reference(options: &Options, dir: &Path, report: &Report) -> CgoReference {
    if options.no_cgo {
        return CgoReference {
            message: "cgo reference skipped: --no-cgo".into(),
            ..CgoReference::skipped()
        };
    }
    match crate::cgo::go_binary() {
        Some(go) => crate::cgo::run(&go, dir, options.quick, &report.workloads),
        None => CgoReference::skipped(),
    }
}

/// Profiles every timed case under both samplers, each sampler in a child process of its
/// own, beside each other (profile::beside: the two samplers on the two cores), and adds
/// each case to `report`, written out as it goes.
fn profile_cases(
    timed: Vec<(&Workload, &Input, CaseResult)>,
    options: &Options,
    dir: &Path,
    report: &mut Report,
    on_step: &mut dyn FnMut(Step),
) -> Result<()> {
    let profile_options = profile::Options {
        sample: options.sample.clone(),
        duration: options.profile_window(),
        ..Default::default()
    };
    let counters_on = report.environment.hardware_counters.available;
    let names = |w: &Workload| -> Vec<&'static str> {
        w.available_variants().0.iter().map(|v| v.name).collect()
    };
    let cases: Vec<_> = timed.iter().map(|(w, input, _)| (*w, *input, names(w))).collect();
    let mut beside = measure::ffiprof_exe(options.counting_exe.as_deref())
        .ok()
        .and_then(|exe| Beside::start(&exe, &cases, &profile_options, dir));
    for (w, input, case) in timed {
        on_step(Step::Profile(format!("{}/{}", w.name, input.name)));
        let names = names(w);
        let summary = match beside.as_mut() {
            Some(beside) => beside.profile(w, &names, input, &profile_options, dir)?,
            None => profile::profile_workload(w, &names, input, &profile_options, dir)?,
        };
        on_step(Step::Done);
        for f in &summary.failures {
            add_note(report, format!("{} sampler did not run: {}", f.sampler, f.error));
        }
        report.workloads.push(report_case(w, input, case, &summary, counters_on));
        write_report(report, dir)?;
    }
    for note in beside.map(Beside::finish).unwrap_or_default() {
        add_note(report, note);
    }
    Ok(())
}

/// Benchmarks and profiles `workloads` into a run directory and returns the report and
/// the directory. An unwritable destination fails before any benchmark starts.
pub fn run(
    workloads: &[Workload],
    options: &Options,
    on_step: &mut dyn FnMut(Step),
) -> Result<(Report, PathBuf)> {
    let dest = options.out.clone().unwrap_or_else(default_dir);
    let staging = Staging::new(&dest)?;
    let dir = staging.path().to_owned();
    let mut report = new_report(options);
    // Timing first, each case alone on the machine; then the profiles (the two samplers
    // in two processes) and the instruction counts side by side: none of them is a
    // timing (samples are proportions of CPU time, callgrind counts), so they may share
    // the machine.
    let timed = time_cases(workloads, options, on_step)?;
    for note in measure::case_notes(timed.iter().map(|t| &t.2)) {
        add_note(&mut report, note);
    }
    let counting = report.environment.instruction_counts.available.then(|| {
        let workloads = workloads.to_vec();
        measure::ffiprof_exe(options.counting_exe.as_deref()).map(|exe| {
            std::thread::spawn(move || {
                instructions::count(&exe, &workloads, Some(crate::crossings::boundary_calls))
            })
        })
    });
    profile_cases(timed, options, &dir, &mut report, on_step)?;
    on_step(Step::Instructions);
    let unavailable = report.environment.instruction_counts.detail.clone();
    match joined_counts(counting, &unavailable) {
        Ok(counts) => add_instructions(&mut report, &counts),
        Err(note) => report.notes.push(note),
    }
    // Allocations per call: ffiprof's batches once more, under its heap interposer.
    let allocations = measure::ffiprof_exe(options.counting_exe.as_deref())
        .and_then(|exe| crate::measure::allocations::count(&exe, workloads));
    match allocations {
        Ok(counts) => add_allocations(&mut report, &counts),
        Err(e) => report.notes.push(format!("allocations per call not counted: {e}")),
    }
    on_step(Step::Done);
    for kind in SamplerKind::ALL {
        let profiled = report
            .workloads
            .iter()
            .flat_map(|c| &c.variants)
            .any(|v| v.profiles.iter().any(|p| p.sampler == kind));
        if !profiled {
            report.notes.push(format!("no profile from the {kind} sampler in this run"));
        }
    }
    on_step(Step::Cgo);
    let cgo = cgo_reference(options, &dir, &report);
    if cgo.status != CgoStatus::Measured {
        report.notes.push(cgo.message.clone());
    }
    report.cgo = Some(cgo);
    on_step(Step::Done);
    write_report(&report, &dir)?;
    let dest = staging.commit()?;
    if options.out.is_none() {
        point_latest(&dest)?;
    }
    Ok((report, dest))
}
