//! Timing with criterion. `cargo bench` and `ffiprof bench` register the same benchmarks
//! with the same settings ([`Options`], [`criterion`], [`register`]); `ffiprof bench` then
//! reads criterion's own estimates back ([`criterion_data`]) and derives per-call figures
//! from them ([`results`]). ffiprof computes no statistics of its own beyond dividing by
//! the calls per iteration and combining two criterion intervals.

pub mod counters;
pub mod criterion_data;
pub mod profiler;
pub mod results;
pub mod stats;

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::output::AtomicFile;
use crate::workload::Workload;

pub use results::{BenchResults, CaseHeader, CaseResult, Interval, Nanos, VariantResult};

/// How long a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `--quick`: short windows, wider intervals.
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
    /// Short runs: the whole catalogue in about a minute, with wider intervals. Default:
    /// false.
    pub quick: bool,
}

#[allow(clippy::derivable_impls)] // written out so each default is stated once, here
impl Default for Options {
    fn default() -> Self {
        Options { quick: false }
    }
}

impl Options {
    /// Options for a quick or a full run.
    pub fn new(quick: bool) -> Self {
        Options { quick }
    }

    /// Warm-up time per benchmark.
    pub fn warm_up(&self) -> Duration {
        if self.quick {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(1)
        }
    }

    /// Measurement time per benchmark.
    pub fn measurement(&self) -> Duration {
        if self.quick {
            Duration::from_millis(800)
        } else {
            Duration::from_secs(3)
        }
    }

    /// Samples (timed batches of iterations) per benchmark.
    pub fn sample_size(&self) -> usize {
        if self.quick {
            20
        } else {
            50
        }
    }

    /// Bootstrap resamples for the confidence intervals.
    pub fn resamples(&self) -> usize {
        if self.quick {
            10_000
        } else {
            50_000
        }
    }

    /// Quick or full.
    pub fn mode(&self) -> Mode {
        if self.quick {
            Mode::Quick
        } else {
            Mode::Full
        }
    }
}

/// Confidence level of every interval ffiprof reports.
pub const CONFIDENCE_LEVEL: f64 = 0.95;

/// A criterion configured as `options` says: no plots, 95% intervals.
pub fn criterion(options: &Options) -> Criterion {
    Criterion::default()
        .warm_up_time(options.warm_up())
        .measurement_time(options.measurement())
        .sample_size(options.sample_size())
        .nresamples(options.resamples())
        .confidence_level(CONFIDENCE_LEVEL)
        .without_plots()
}

/// Name of the second measurement of the baseline, taken after the variants.
pub const REPEAT_SUFFIX: &str = "#repeat";

/// Registers (and, as criterion does, runs) one benchmark per workload, input and variant:
/// group = workload, id = `variant/input`, throughput = calls per iteration, so criterion
/// reports time per call. After the variants, the baseline is measured once more
/// (`batched#repeat`): how far the two baseline measurements differ is the drift of the
/// machine over that stretch, the noise floor the results carry.
pub fn register(c: &mut Criterion, workloads: &[Workload]) -> Result<()> {
    for workload in workloads {
        let mut group = c.benchmark_group(workload.name);
        for input in &workload.inputs {
            let n = input.calls_per_iteration;
            group.throughput(Throughput::Elements(n));
            let baseline = workload.baseline();
            let repeat = format!("{}{REPEAT_SUFFIX}", baseline.name);
            let runs =
                workload.variants.iter().map(|v| (v, v.name)).chain([(baseline, repeat.as_str())]);
            for (variant, id) in runs {
                let mut runner = (variant.prepare)(input)?;
                group.bench_function(BenchmarkId::new(id, input.name), |b| {
                    b.iter(|| runner.run(black_box(n)))
                });
            }
        }
        group.finish();
    }
    Ok(())
}

/// Where criterion's progress lines go while ffiprof benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// To stderr, leaving stdout to ffiprof's results.
    Stderr,
    /// Nowhere (a progress bar of ffiprof's shows progress).
    Silent,
}

/// `ffiprof bench`: benchmarks `workloads` and, when `json` is given, writes the results
/// there. The file is opened before any benchmark runs, so an unwritable path fails at
/// once ([`Error::Destination`]) and an earlier file survives an interrupted run.
pub fn bench(
    workloads: &[Workload],
    options: &Options,
    json: Option<&Path>,
) -> Result<BenchResults> {
    let json_file = json.map(AtomicFile::create).transpose()?;
    let results = run(workloads, options, &std::env::temp_dir())?;
    if let Some(file) = json_file {
        file.commit(results.to_json()?.as_bytes())?;
    }
    Ok(results)
}

/// Benchmarks `workloads` in this process and returns per-call results. Criterion's files
/// go to a fresh directory under `scratch`, so no earlier run's estimates can be read by
/// mistake; criterion's progress lines go to stderr.
pub fn run(workloads: &[Workload], options: &Options, scratch: &Path) -> Result<BenchResults> {
    run_with(workloads, options, scratch, Progress::Stderr)
}

/// [`run`], with criterion's progress lines sent where `progress` says.
pub fn run_with(
    workloads: &[Workload],
    options: &Options,
    scratch: &Path,
    progress: Progress,
) -> Result<BenchResults> {
    let dir = tempfile::Builder::new()
        .prefix("criterion-")
        .tempdir_in(scratch)
        .map_err(|source| Error::Write { path: scratch.to_owned(), source })?;
    {
        use crate::ffi::FdRedirect;
        let _redirects = match progress {
            Progress::Stderr => vec![FdRedirect::stdout_to_stderr()],
            Progress::Silent => vec![FdRedirect::silence_stdout(), FdRedirect::silence_stderr()],
        };
        let mut c = criterion(options).output_directory(dir.path());
        register(&mut c, workloads)?;
        c.final_summary();
    }
    let estimates = criterion_data::read_all(dir.path())?;
    results::collect(workloads, options, &estimates, dir.path())
}
