//! What sampling costs: the slowdown of a workload under each sampler, the rate a sampler
//! really reaches, and the time from the end of sampling to all files written. Measured,
//! never asserted: `ffiprof sampler-cost` prints them.
//!
//! Slowdown: measured with the paired engine ([`crate::measure::paired`]). The workload
//! unprofiled (the baseline), a second unprofiled instance (the A/A control) and the
//! workload under the sampler are timed in shuffled rounds of one window each, on one
//! shared input; the sampler starts before its window and stops after it, outside the
//! timing. The slowdown is the median over rounds of (profiled time per call / the same
//! round's unprofiled time per call - 1), with its distribution-free interval; the
//! control's spread is the noise floor, below which no slowdown can be told apart.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fmt;
use crate::measure::paired::{self, Case, Subject};
use crate::measure::Interval;
use crate::profile::{unix_nanos_now, write_profile_files};
use crate::sample::{self, Event, RawProfile, Sampler, SamplerKind};
use crate::symbol::ProcessSymbolizer;
use crate::workload::{Input, Placement, Role, Runner, Workload};

/// Costs of one sampler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerCost {
    /// Which sampler.
    pub sampler: SamplerKind,
    /// Event sampled.
    pub event: Event,
    /// Frequency asked for.
    pub requested_hz: u64,
    /// Samples per second reached over all profiled windows.
    pub effective_hz: f64,
    /// Slowdown of the workload (0.01 = 1%): median over rounds, 95% interval.
    pub slowdown: Interval,
    /// How far the unprofiled control's ratio reached from 1: slowdowns inside it cannot
    /// be told from noise.
    pub noise_floor: f64,
    /// Rounds measured.
    pub rounds: usize,
    /// Samples of the last round.
    pub samples: u64,
    /// Seconds from the end of the last round's sampling to its files written.
    pub post_processing_seconds: f64,
}

/// How long to measure: `rounds` rounds of an unprofiled, a control and a profiled
/// window.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Length of each window.
    pub window: Duration,
    /// Rounds.
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
            "slowdown [95% CI]",
            "noise",
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
                    format!(
                        "{:+.2}% [{:+.2}%, {:+.2}%]",
                        c.slowdown.estimate * 100.0,
                        c.slowdown.lower * 100.0,
                        c.slowdown.upper * 100.0
                    ),
                    format!("±{}", fmt::pct(c.noise_floor, 2)),
                    c.samples.to_string(),
                    format!("{:.3}", c.post_processing_seconds),
                ]
            })
            .collect();
        format!(
            "{}{}: {} paired rounds of {} s windows: unprofiled, an unprofiled control, \
             profiled, in shuffled order\n",
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
            Err(e @ (Error::PerfOpen { .. } | Error::PerfSetup { .. } | Error::Pprof(_))) => {
                table.failures.push((kind, e.to_string()))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(table)
}

/// What the profiled subject keeps between its windows.
#[derive(Default)]
struct Sampled {
    running: Option<(Box<dyn Sampler>, i64)>,
    last: Option<(RawProfile, i64)>,
    samples: u64,
    window: Duration,
    error: Option<Error>,
}

/// The workload under a sampler: started before each timed window, stopped after it.
struct Profiled<'a> {
    runner: Box<dyn Runner>,
    kind: SamplerKind,
    options: &'a sample::Options,
    state: Rc<RefCell<Sampled>>,
}

impl Subject for Profiled<'_> {
    fn run(&mut self, n: u64) -> u64 {
        self.runner.run(n)
    }

    fn before_batch(&mut self) {
        let mut state = self.state.borrow_mut();
        if state.error.is_some() {
            return;
        }
        let started = sample::sampler(self.kind, self.options).and_then(|mut s| {
            s.start()?;
            Ok(s)
        });
        match started {
            Ok(s) => state.running = Some((s, unix_nanos_now())),
            Err(e) => state.error = Some(e),
        }
    }

    fn after_batch(&mut self) {
        let mut state = self.state.borrow_mut();
        let Some((mut sampler, begun)) = state.running.take() else { return };
        match sampler.stop() {
            Ok(raw) => {
                state.samples += raw.total_weight();
                state.window += raw.window;
                state.last = Some((raw, begun));
            }
            Err(e) => state.error = Some(e),
        }
    }
}

/// Measures `kind` on `variant` of `workload` at `input` as `plan` says; the files of
/// the last profiled window are written under `scratch`.
pub fn measure(
    workload: &Workload,
    variant: &str,
    input: &Input,
    kind: SamplerKind,
    options: &sample::Options,
    plan: Plan,
    scratch: &Path,
) -> Result<SamplerCost> {
    let v = workload.variant(variant)?;
    let shared = (workload.share)(input);
    let mut unprofiled = vec![
        (v.prepare)(input, &shared, Placement::default())?,
        (v.prepare)(input, &shared, Placement::default())?,
    ];
    let state = Rc::new(RefCell::new(Sampled::default()));
    let profiled = Profiled {
        runner: (v.prepare)(input, &shared, Placement::default())?,
        kind,
        options,
        state: state.clone(),
    };
    let rounds = plan.rounds.max(6);
    let engine = paired::Options {
        batch_target: plan.window,
        min_rounds: rounds,
        max_rounds: rounds,
        budget: Duration::MAX,
        precision: 0.0,
        ..paired::Options::default()
    };
    let case = Case::new("unprofiled", engine, || {
        let mut runner = unprofiled.pop().expect("two unprofiled instances");
        move |n| runner.run(n)
    })
    .variant(&format!("under {kind}"), Role::PerCall, profiled)
    .run();
    let mut state = state.take();
    if let Some(e) = state.error.take() {
        return Err(e);
    }
    let (raw, begun) = state
        .last
        .take()
        .ok_or_else(|| Error::Internal(format!("the {kind} sampler recorded no window")))?;
    let done = Instant::now();
    let name = format!("{}.{}.{}", workload.name, variant, kind);
    let mut symbolizer = ProcessSymbolizer::new();
    write_profile_files(&raw, &name, &name, begun, scratch, &mut symbolizer)?;
    let post = done.elapsed().as_secs_f64();
    let ratio = case.variants.last().and_then(|v| v.ratio).expect("the profiled variant");
    Ok(SamplerCost {
        sampler: kind,
        event: raw.event,
        requested_hz: options.frequency,
        effective_hz: state.samples as f64 / state.window.as_secs_f64().max(f64::MIN_POSITIVE),
        slowdown: Interval::new(ratio.estimate - 1.0, ratio.lower - 1.0, ratio.upper - 1.0),
        noise_floor: case.summary.noise_floor,
        rounds: case.summary.rounds,
        samples: raw.total_weight(),
        post_processing_seconds: post,
    })
}
