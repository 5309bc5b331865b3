//! What sampling costs: the slowdown of a workload under each sampler, the rate a sampler
//! really reaches, and the time from the end of sampling to all files written. Measured,
//! never asserted: `ffiprof sampler-cost` prints them.
//!
//! Slowdown: windows of the same length alternate unprofiled and profiled, in the same
//! process on the same runner; each window's calls per second are counted, and the
//! slowdown is the median over rounds of (unprofiled rate / profiled rate - 1). The median
//! of paired rounds keeps a drift of the machine's speed (a shared VM) from reading as
//! overhead.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fmt;
use crate::measure::stats::median;
use crate::profile::{unix_nanos_now, write_profile_files};
use crate::sample::{self, Event, SamplerKind};
use crate::symbol::ProcessSymbolizer;
use crate::workload::{Input, Workload};

/// Costs of one sampler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerCost {
    /// Which sampler.
    pub sampler: SamplerKind,
    /// Event sampled.
    pub event: Event,
    /// Frequency asked for.
    pub requested_hz: u64,
    /// Samples per second reached (median over rounds).
    pub effective_hz: f64,
    /// Slowdown of the workload, median over rounds (0.01 = 1%).
    pub slowdown: f64,
    /// Smallest and largest slowdown of a round.
    pub slowdown_range: (f64, f64),
    /// Samples of the last round.
    pub samples: u64,
    /// Seconds from the end of the last round's sampling to its files written.
    pub post_processing_seconds: f64,
}

/// How long to measure: `rounds` pairs of unprofiled and profiled windows.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Length of each window.
    pub window: Duration,
    /// Pairs of windows.
    pub rounds: usize,
}

/// `ffiprof sampler-cost`: each sampler's costs, and the samplers that could not run.
#[derive(Debug, Clone, PartialEq)]
pub struct CostTable {
    /// `workload / variant / input` measured.
    pub case: String,
    /// The plan measured with.
    pub rounds: usize,
    /// Window length, seconds.
    pub window_seconds: f64,
    /// One row per sampler that ran.
    pub costs: Vec<SamplerCost>,
    /// Samplers that could not run, with the reason.
    pub failures: Vec<(SamplerKind, String)>,
}

impl CostTable {
    /// The table as plain text, with a line saying what was measured.
    pub fn table(&self) -> String {
        let header = [
            "sampler",
            "event",
            "asked Hz",
            "effective Hz",
            "slowdown (median)",
            "range",
            "samples",
            "post-processing s",
        ];
        let rows: Vec<Vec<String>> = self
            .costs
            .iter()
            .map(|c| {
                vec![
                    c.sampler.to_string(),
                    c.event.to_string(),
                    c.requested_hz.to_string(),
                    format!("{:.0}", c.effective_hz),
                    format!("{:+.2}%", c.slowdown * 100.0),
                    format!(
                        "[{:+.2}%, {:+.2}%]",
                        c.slowdown_range.0 * 100.0,
                        c.slowdown_range.1 * 100.0
                    ),
                    c.samples.to_string(),
                    format!("{:.3}", c.post_processing_seconds),
                ]
            })
            .collect();
        format!(
            "{}{}: {} rounds of {} s unprofiled vs profiled\n",
            fmt::table(&header, &rows, 2),
            self.case,
            self.rounds,
            self.window_seconds
        )
    }
}

/// Measures every sampler of `samplers` on `variant` of `workload` at `input` (default:
/// the workload's last input, for pow the chain). A sampler that cannot run is listed in
/// [`CostTable::failures`]; the others go on.
pub fn measure_all(
    workload: &str,
    variant: &str,
    input: Option<&str>,
    samplers: &[SamplerKind],
    options: &sample::Options,
    plan: Plan,
) -> Result<CostTable> {
    let w = crate::workload::find(workload)?;
    let input = match input {
        None => w.inputs.last().expect("workloads have inputs"),
        Some(name) => w.input(Some(name))?,
    };
    w.variant(variant)?;
    options.validate()?;
    let scratch = tempfile::tempdir()
        .map_err(|source| Error::Write { path: std::env::temp_dir(), source })?;
    let mut table = CostTable {
        case: format!("{} / {variant} / {}", w.name, input.name),
        rounds: plan.rounds,
        window_seconds: plan.window.as_secs_f64(),
        costs: Vec::new(),
        failures: Vec::new(),
    };
    for &kind in samplers {
        match measure(&w, variant, input, kind, options, plan, scratch.path()) {
            Ok(cost) => table.costs.push(cost),
            Err(e @ (Error::PerfOpen { .. } | Error::Pprof(_))) => {
                table.failures.push((kind, e.to_string()))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(table)
}

/// Measures `kind` on `variant` of `workload` at `input` as `plan` says; the files of
/// the last round are written under `scratch`.
pub fn measure(
    workload: &Workload,
    variant: &str,
    input: &Input,
    kind: SamplerKind,
    options: &sample::Options,
    plan: Plan,
    scratch: &Path,
) -> Result<SamplerCost> {
    let Plan { window, rounds } = plan;
    let mut runner = workload.prepare(variant, input)?;
    let n = input.calls_per_iteration;
    runner.run(n);
    let (mut slowdowns, mut rates) = (Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        let mut calls = 0u64;
        while start.elapsed() < window {
            std::hint::black_box(runner.run(n));
            calls += n;
        }
        let plain_rate = calls as f64 / start.elapsed().as_secs_f64();
        let mut sampler = sample::sampler(kind, options)?;
        let begun = unix_nanos_now();
        let (raw, profiled_calls) = sample::record(sampler.as_mut(), runner.as_mut(), n, window)?;
        let profiled_rate = profiled_calls as f64 / raw.window.as_secs_f64();
        slowdowns.push(plain_rate / profiled_rate - 1.0);
        rates.push(raw.total_weight() as f64 / raw.window.as_secs_f64());
        last = Some((raw, begun));
    }
    let (raw, begun) = last.expect("at least one round");
    let done = Instant::now();
    let name = format!("{}.{}.{}", workload.name, variant, kind);
    let mut symbolizer = ProcessSymbolizer::new();
    write_profile_files(&raw, &name, &name, begun, scratch, &mut symbolizer)?;
    let median = |v: &[f64]| median(v).expect("at least one round");
    let post = done.elapsed().as_secs_f64();
    let range = (
        slowdowns.iter().copied().fold(f64::INFINITY, f64::min),
        slowdowns.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    Ok(SamplerCost {
        sampler: kind,
        event: raw.event,
        requested_hz: options.frequency,
        effective_hz: median(&rates),
        slowdown: median(&slowdowns),
        slowdown_range: range,
        samples: raw.total_weight(),
        post_processing_seconds: post,
    })
}
