//! `ffiprof run`: the whole question in one command. Benchmarks every workload and
//! variant, profiles every variant with both samplers, and writes the run directory:
//! `report.json`, `report.md`, `index.html`, flamegraphs, folded stacks and pprof
//! profiles.
//!
//! A run is built in a hidden staging directory beside its destination and renamed into
//! place when complete, so an interrupted run (Ctrl-C, a panic in a workload) leaves no
//! half-written file under the run's name and earlier runs intact, and re-running into an
//! existing directory replaces it whole instead of mixing two runs' files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::measure::{self, counters, Progress};
use crate::output::write_atomic;
use crate::profile::{self, ProfileSummary};
use crate::report::{
    self, Report, ReportCase, ReportVariant, RunEnvironment, SamplerProfile, SamplerSettings,
    REPORT_SCHEMA_VERSION,
};
use crate::sample::{self, PerfUnwind, SamplerKind};
use crate::workload::Workload;

/// How a run measures.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Options {
    /// Short benchmarks and profiles. Default: false.
    pub quick: bool,
    /// Sampler settings. Default: [`sample::Options::default`].
    pub sample: sample::Options,
}

impl Options {
    /// Options for a quick or a full run.
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

/// A directory being filled, renamed into place on [`Staging::commit`] and removed if
/// dropped before.
pub struct Staging {
    dir: tempfile::TempDir,
    dest: PathBuf,
}

impl Staging {
    /// Creates the staging directory beside `dest` (creating `dest`'s parent if needed):
    /// an unwritable destination fails here, before any work.
    pub fn new(dest: &Path) -> Result<Staging> {
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let write_err = |source| Error::Write { path: dest.to_owned(), source };
        if dest.exists() && !dest.is_dir() {
            return Err(write_err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists and is not a directory",
            )));
        }
        std::fs::create_dir_all(&parent).map_err(write_err)?;
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{name}.partial-"))
            .tempdir_in(&parent)
            .map_err(write_err)?;
        Ok(Staging { dir, dest: dest.to_owned() })
    }

    /// Where files go until commit.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Moves the complete run into place, replacing an earlier run of the same name.
    pub fn commit(self) -> Result<PathBuf> {
        let write_err = |source| Error::Write { path: self.dest.clone(), source };
        let staged = self.dir.keep();
        if self.dest.exists() {
            let parent = staged.parent().unwrap_or(Path::new("."));
            let old = tempfile::Builder::new()
                .prefix(".replaced-")
                .tempdir_in(parent)
                .map_err(write_err)?;
            let old_path = old.path().join("run");
            std::fs::rename(&self.dest, &old_path).map_err(write_err)?;
            std::fs::rename(&staged, &self.dest).map_err(write_err)?;
            drop(old); // removes the replaced run
        } else {
            std::fs::rename(&staged, &self.dest).map_err(write_err)?;
        }
        Ok(self.dest)
    }
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
            perf_unwind: match options.sample.perf_unwind {
                PerfUnwind::Dwarf => "dwarf".into(),
                PerfUnwind::FramePointer => "frame-pointer".into(),
            },
            stack_bytes: options.sample.stack_bytes,
        },
    }
}

fn sampler_profiles(summary: &ProfileSummary, variant: &str) -> Vec<SamplerProfile> {
    summary
        .profiles
        .iter()
        .filter(|p| p.variant == variant)
        .map(|p| SamplerProfile {
            sampler: p.sampler,
            event: p.event.clone(),
            unwind: p.unwind.clone(),
            summary: p.summary.clone(),
            flamegraph: p.files.flamegraph.clone(),
            folded: p.files.folded.clone(),
            pprof: p.files.pprof.clone(),
            differential: p.files.differential.clone(),
            notes: p.notes.clone(),
        })
        .collect()
}

fn write_report(report: &Report, dir: &Path) -> Result<()> {
    write_atomic(&dir.join("report.json"), report.to_json().as_bytes())?;
    write_atomic(&dir.join("report.md"), report::markdown::render(report).as_bytes())?;
    write_atomic(&dir.join("index.html"), report::html::render(report).as_bytes())
}

/// Runs `workloads` into the staging directory and commits it to its destination.
pub fn run(
    workloads: &[Workload],
    options: &Options,
    staging: Staging,
    on_step: &mut dyn FnMut(Step),
) -> Result<(Report, PathBuf)> {
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
        mode: bench_options.mode().to_owned(),
        statistic: "median".to_owned(),
        confidence_level: measure::CONFIDENCE_LEVEL,
        environment: environment(options),
        workloads: Vec::new(),
        notes: Vec::new(),
        cgo: None,
    };
    let counters_on = report.environment.hardware_counters.available;
    if !counters_on {
        report
            .notes
            .push(format!("No hardware counters: {}", report.environment.hardware_counters.detail));
    }
    let scratch = tempfile::tempdir()
        .map_err(|source| Error::Write { path: std::env::temp_dir(), source })?;
    for w in workloads {
        on_step(Step::Bench(w.name.to_owned()));
        let bench = measure::run_with(
            std::slice::from_ref(w),
            &bench_options,
            scratch.path(),
            Progress::Silent,
        )?;
        on_step(Step::Done);
        for (case, input) in bench.workloads.iter().zip(&w.inputs) {
            on_step(Step::Profile(format!("{}/{}", w.name, input.name)));
            let names: Vec<&str> = w.variants.iter().map(|v| v.name).collect();
            let summary = profile::profile_workload(w, &names, input, &profile_options, &dir)?;
            on_step(Step::Done);
            for failure in &summary.failures {
                let note = format!("{} sampler did not run: {}", failure.sampler, failure.error);
                if !report.notes.contains(&note) {
                    report.notes.push(note);
                }
            }
            let variants = case
                .variants
                .iter()
                .zip(&w.variants)
                .map(|(timing, v)| {
                    let counters = if counters_on {
                        (v.prepare)(input).ok().and_then(|mut r| {
                            counters::per_call(r.as_mut(), input.calls_per_iteration, 20).ok()
                        })
                    } else {
                        None
                    };
                    ReportVariant {
                        timing: timing.clone(),
                        about: v.about.to_owned(),
                        counters,
                        profiles: sampler_profiles(&summary, v.name),
                    }
                })
                .collect();
            report.workloads.push(ReportCase {
                name: case.name.clone(),
                input: case.input.clone(),
                about: w.about.to_owned(),
                baseline: case.baseline.clone(),
                calls_per_iteration: case.calls_per_iteration,
                baseline_repeat_ns_per_call: case.baseline_repeat_ns_per_call,
                drift: case.drift,
                verdict: report::verdict(case),
                variants,
            });
        }
        // Partial results, inside the staging directory, as each workload finishes.
        write_report(&report, &dir)?;
    }
    for kind in SamplerKind::ALL {
        let profiled = report
            .workloads
            .iter()
            .any(|c| c.variants.iter().any(|v| v.profiles.iter().any(|p| p.sampler == kind)));
        if !profiled {
            report.notes.push(format!("no profile from the {kind} sampler in this run"));
        }
    }
    on_step(Step::Cgo);
    let cgo = match crate::cgo::go_binary() {
        Some(go) => crate::cgo::run(&go, &dir, options.quick, &report.workloads),
        None => crate::cgo::CgoReference::skipped(),
    };
    if cgo.status != "measured" {
        report.notes.push(cgo.message.clone());
    }
    report.cgo = Some(cgo);
    on_step(Step::Done);
    write_report(&report, &dir)?;
    let dest = staging.commit()?;
    Ok((report, dest))
}

/// Points `<results>/latest` at `run_dir` (a relative symlink, replaced atomically).
pub fn point_latest(run_dir: &Path) -> Result<()> {
    let Some(parent) = run_dir.parent() else { return Ok(()) };
    let Some(name) = run_dir.file_name() else { return Ok(()) };
    let latest = parent.join("latest");
    let temp = parent.join(format!(".latest.{}", std::process::id()));
    let err = |source| Error::Write { path: latest.clone(), source };
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(name, &temp).map_err(err)?;
    std::fs::rename(&temp, &latest).map_err(err)
}
