//! `ffiprof run`: the whole question in one command. Benchmarks every workload and
//! variant, profiles every variant with both samplers, measures the cgo reference where
//! Go is installed, and writes the run directory: `report.json`, `report.md`,
//! `index.html`, flamegraphs, folded stacks and pprof profiles.
//!
//! The directory is built in a staging directory and renamed into place when complete
//! ([`Staging`]); partial reports are written into the staging directory as each
//! workload finishes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::measure::{self, counters, CaseResult, Progress, Statistic};
use crate::output::{point_latest, write_atomic, Staging};
use crate::profile::{self, ProfileSummary};
use crate::report::{
    self, CgoReference, CgoStatus, Report, ReportCase, ReportVariant, RunEnvironment,
    SamplerSettings, REPORT_SCHEMA_VERSION,
};
use crate::sample::{self, SamplerKind};
use crate::workload::{Input, Workload};

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
}

impl Options {
    /// Options for a quick or a full run into the default directory.
    pub fn new(quick: bool) -> Self {
        Options { quick, ..Default::default() }
    }

    /// Sampling window per variant and sampler.
    pub fn profile_window(&self) -> Duration {
        if self.quick {
            Duration::from_millis(300)
        } else {
            Duration::from_millis(1000)
        }
    }
}

/// What a run is doing, for a progress display.
#[derive(Debug, Clone)]
pub enum Step {
    /// Benchmarking a workload.
    Bench(String),
    /// Profiling a workload at an input.
    Profile(String),
    /// Measuring the cgo reference.
    Cgo,
    /// One step finished.
    Done,
}

/// Steps `run` will report as done, for a progress bar's length.
pub fn step_count(workloads: &[Workload]) -> u64 {
    workloads.iter().map(|w| 1 + w.inputs.len() as u64).sum::<u64>() + 1
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

/// One case of the report: the timing of `result`, the profiles of `summary`, and
/// hardware counters where the machine has them.
fn report_case(
    workload: &Workload,
    input: &Input,
    result: CaseResult,
    summary: &ProfileSummary,
    counters_on: bool,
) -> ReportCase {
    let verdict = report::verdicts(&result);
    let CaseResult { header, variants } = result;
    let variants = variants
        .into_iter()
        .zip(&workload.variants)
        .map(|(timing, v)| ReportVariant {
            counters: counters_on.then(|| (v.prepare)(input).ok()).flatten().and_then(|mut r| {
                counters::per_call(r.as_mut(), input.calls_per_iteration, 20).ok()
            }),
            about: v.about.to_owned(),
            profiles: summary
                .profiles
                .iter()
                .filter(|p| p.variant == timing.name)
                .map(|p| p.profile.clone())
                .collect(),
            timing,
        })
        .collect();
    ReportCase { header, about: workload.about.to_owned(), verdict, variants }
}

fn add_note(report: &mut Report, note: String) {
    if !report.notes.contains(&note) {
        report.notes.push(note);
    }
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
    let bench_options = measure::Options::new(options.quick);
    let profile_options = profile::Options {
        sample: options.sample.clone(),
        duration: options.profile_window(),
        ..Default::default()
    };
    let mut report = Report {
        schema_version: REPORT_SCHEMA_VERSION,
        tool: format!("ffiprof {}", env!("CARGO_PKG_VERSION")),
        mode: bench_options.mode(),
        statistic: Statistic::Median,
        confidence_level: measure::CONFIDENCE_LEVEL,
        environment: environment(options),
        workloads: Vec::new(),
        notes: Vec::new(),
        cgo: None,
    };
    let counters = &report.environment.hardware_counters;
    let counters_on = counters.available;
    if !counters_on {
        let note = format!("No hardware counters: {}", counters.detail);
        report.notes.push(note);
    }
    let scratch = tempfile::tempdir()
        .map_err(|source| Error::Write { path: std::env::temp_dir(), source })?;
    for w in workloads {
        on_step(Step::Bench(w.name.to_owned()));
        let one = std::slice::from_ref(w);
        let bench = measure::run_with(one, &bench_options, scratch.path(), Progress::Silent)?;
        on_step(Step::Done);
        for (case, input) in bench.workloads.into_iter().zip(&w.inputs) {
            on_step(Step::Profile(format!("{}/{}", w.name, input.name)));
            let names: Vec<&str> = w.variants.iter().map(|v| v.name).collect();
            let summary = profile::profile_workload(w, &names, input, &profile_options, &dir)?;
            on_step(Step::Done);
            for f in &summary.failures {
                add_note(&mut report, format!("{} sampler did not run: {}", f.sampler, f.error));
            }
            report.workloads.push(report_case(w, input, case, &summary, counters_on));
        }
        write_report(&report, &dir)?;
    }
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
    let cgo = match crate::cgo::go_binary() {
        Some(go) => crate::cgo::run(&go, &dir, options.quick, &report.workloads),
        None => CgoReference::skipped(),
    };
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
