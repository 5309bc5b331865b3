//! The paired engine: alternatives measured against each other in interleaved rounds.
//!
//! On a shared machine the speed moves 20-50% between windows seconds apart, and each
//! allocation lands elsewhere in memory, so timing A for a while and then B measures the
//! machine as much as the code (Mytkowicz et al., "Producing wrong data without doing
//! anything obviously wrong!", ASPLOS 2009). The engine does what paired and interleaved
//! benchmarking do (tango-bench; Google Benchmark's random interleaving; Bulej et al.'s
//! "duet" benchmarking):
//!
//! - every subject of a case (the baseline, its variants, and an A/A *control*: a second,
//!   independent instance of the baseline) runs on the same prepared input;
//! - each *round* times every subject once, on a batch of calls sized to a short target
//!   (about a millisecond), in an order shuffled anew each round;
//! - a subject's time per call, its ratio to the baseline and its overhead over it are
//!   computed per round against the baseline of the same round, and reported as the
//!   median over rounds with the distribution-free interval of a median
//!   ([`stats`](super::stats));
//! - rounds go on until every ratio's interval is as narrow as asked, or the case's time
//!   budget is spent, and the result says which.
//!
//! The control's interval is the case's noise floor: a variant's difference counts only
//! where its interval clears both 1 and the control's spread; where the control itself
//! differs from 1, the machine was too noisy for the case. Two instances of identical
//! code can differ steadily by a few tenths of a percent (where each one's state landed
//! in memory), so each round draws which instance is the baseline and which the
//! control: that difference becomes spread that every interval carries, not a bias.
//!
//! The engine works on plain closures ([`Case`]), so a crate wrapping a C library can
//! measure its own per-call vs batched pair; the catalogue's workloads go through
//! [`measure_workload`]. Time comes from a [`Clock`], a fake one in tests.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::stats::{median_interval, Shuffle};
use super::{Interval, CONFIDENCE_LEVEL};
use crate::error::{Error, Result};
use crate::workload::{Input, Role, Runner, Workload};

/// Something timed in rounds: does `n` calls' worth of work and returns a checksum.
pub trait Subject {
    /// Does the work of `n` calls; its time is measured.
    fn run(&mut self, n: u64) -> u64;
    /// Called before each timed batch, outside the timing (starts a sampler, say).
    fn before_batch(&mut self) {}
    /// Called after each timed batch, outside the timing.
    fn after_batch(&mut self) {}
}

impl<F: FnMut(u64) -> u64> Subject for F {
    fn run(&mut self, n: u64) -> u64 {
        self(n)
    }
}

/// Where the engine reads the time.
pub trait Clock {
    /// Nanoseconds since an arbitrary origin.
    fn now_ns(&mut self) -> f64;
}

/// The monotonic clock (`std::time::Instant`).
pub struct RealClock(Instant);

impl Default for RealClock {
    fn default() -> Self {
        RealClock(Instant::now())
    }
}

impl Clock for RealClock {
    fn now_ns(&mut self) -> f64 {
        self.0.elapsed().as_nanos() as f64
    }
}

/// How the engine measures one case.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Options {
    /// Target duration of one subject's batch in a round. Default: 1 ms.
    pub batch_target: Duration,
    /// Batches are whole multiples of this many calls (a workload's unit of work, so
    /// that a batch never changes what one call does). Default: 1.
    pub batch_multiple: u64,
    /// Rounds before any stopping rule applies. Default: 30.
    pub min_rounds: usize,
    /// Rounds at most. Default: 100 000.
    pub max_rounds: usize,
    /// Time for the case, calibration included. Default: 2 s.
    pub budget: Duration,
    /// Stop once every ratio's interval has a half-width at most this share of its
    /// estimate. Default: 0.002 (0.2%).
    pub precision: f64,
    /// Smallest relative difference ever called measurable, whatever the control says.
    /// Default: 0.01 (1%).
    pub min_effect: f64,
    /// Run an A/A control (a second instance of the baseline). Default: true.
    pub control: bool,
    /// Draw each round which of the two baseline instances is the baseline and which the
    /// control, so that a steady difference between instances is spread, not bias.
    /// Default: true.
    pub draw_control: bool,
    /// Seed of the round order. Default: a fixed constant, so runs repeat their order.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_target: Duration::from_millis(1),
            batch_multiple: 1,
            min_rounds: 30,
            max_rounds: 100_000,
            budget: Duration::from_secs(2),
            precision: 0.002,
            min_effect: 0.01,
            control: true,
            draw_control: true,
            seed: 0x5eed_f00d,
        }
    }
}

/// Why a case stopped measuring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stop {
    /// Every ratio's interval reached the precision asked.
    Precise,
    /// The time budget was spent first.
    Budget,
    /// The most rounds allowed were run.
    MaxRounds,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stop::Precise => "precise",
            Stop::Budget => "budget spent",
            Stop::MaxRounds => "round limit",
        })
    }
}

/// Instructions per call of one variant, counted under callgrind
/// ([`super::instructions`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InstructionCount {
    /// Instructions per call: (count at 2n - count at n) / n.
    pub per_call: f64,
    /// Per call minus the baseline's; absent for the baseline.
    pub overhead_per_call: Option<f64>,
}

/// One subject's figures over the rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedVariant {
    /// Its name.
    pub name: String,
    /// Baseline, control, per-call or reference.
    pub role: Role,
    /// Calls per timed batch.
    pub batch: u64,
    /// Time per call: median over rounds, with its interval.
    pub ns_per_call: Interval,
    /// Time per call minus the same round's baseline's; absent for the baseline.
    pub overhead_ns_per_call: Option<Interval>,
    /// Time per call over the same round's baseline's; absent for the baseline.
    pub ratio: Option<Interval>,
    /// Instructions per call under callgrind, where counted ([`super::instructions`]);
    /// the engine leaves it empty.
    #[serde(default)]
    pub instructions: Option<InstructionCount>,
}

/// How a case's paired rounds went, and how far its figures can be trusted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedSummary {
    /// Rounds run.
    pub rounds: usize,
    /// Why it stopped.
    pub stop: Stop,
    /// Time spent, seconds, calibration included.
    pub seconds: f64,
    /// How far the control's ratio interval reaches from 1 (0 without a control): the
    /// smallest difference distinguishable from noise in this case.
    pub noise_floor: f64,
    /// The smallest relative difference ever called measurable ([`Options::min_effect`]).
    pub min_effect: f64,
    /// True when the control's interval excludes 1: identical work measured as
    /// different, so no difference in this case can be trusted.
    pub too_noisy: bool,
}

impl PairedSummary {
    /// True when `ratio` clears 1 and the noise floor (and the smallest effect): the
    /// difference is measurable. Never true in a case too noisy to judge.
    pub fn measurable(&self, ratio: &Interval) -> bool {
        let floor = self.noise_floor.max(self.min_effect);
        !self.too_noisy && (ratio.lower > 1.0 + floor || ratio.upper < 1.0 - floor)
    }
}

/// A case measured in paired rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedCase {
    /// How the rounds went.
    #[serde(flatten)]
    pub summary: PairedSummary,
    /// Baseline first, then the control (if any), then the variants in order.
    pub variants: Vec<PairedVariant>,
}

impl PairedCase {
    /// The control, if the case ran one.
    pub fn control(&self) -> Option<&PairedVariant> {
        self.variants.iter().find(|v| v.role == Role::Control)
    }

    /// See [`PairedSummary::measurable`].
    pub fn measurable(&self, ratio: &Interval) -> bool {
        self.summary.measurable(ratio)
    }
}

/// A case to measure: a baseline, variants, and optionally a control.
pub struct Case<'a> {
    subjects: Vec<(String, Role, Box<dyn Subject + 'a>)>,
    options: Options,
}

/// What the control of a baseline named `name` is called.
pub fn control_name(name: &str) -> String {
    format!("{name} (control)")
}

impl<'a> Case<'a> {
    /// A case whose baseline `name` is made by `make`, called twice when the options ask
    /// for a control: the second instance is the A/A control, measured like a variant.
    pub fn new<S: Subject + 'a>(name: &str, options: Options, mut make: impl FnMut() -> S) -> Self {
        let mut subjects: Vec<(String, Role, Box<dyn Subject + 'a>)> =
            vec![(name.to_owned(), Role::Baseline, Box::new(make()))];
        if options.control {
            subjects.push((control_name(name), Role::Control, Box::new(make())));
        }
        Case { subjects, options }
    }

    /// Adds a variant (a per-call alternative, or a reference with no crossing).
    pub fn variant(mut self, name: &str, role: Role, subject: impl Subject + 'a) -> Self {
        self.subjects.push((name.to_owned(), role, Box::new(subject)));
        self
    }

    /// Adds a boxed variant.
    pub fn boxed_variant(mut self, name: &str, role: Role, subject: Box<dyn Subject + 'a>) -> Self {
        self.subjects.push((name.to_owned(), role, subject));
        self
    }

    /// Measures the case with the monotonic clock.
    pub fn run(self) -> PairedCase {
        self.run_with_clock(&mut RealClock::default())
    }

    /// Measures the case with `clock`.
    pub fn run_with_clock(mut self, clock: &mut dyn Clock) -> PairedCase {
        let o = self.options.clone();
        let start = clock.now_ns();
        let target = o.batch_target.as_nanos() as f64;
        let unit = o.batch_multiple.max(1);
        let batches: Vec<u64> = self
            .subjects
            .iter_mut()
            .map(|(_, _, s)| calibrate(s.as_mut(), target, unit, clock))
            .collect();
        let k = self.subjects.len();
        let mut per_call: Vec<Vec<f64>> = vec![Vec::new(); k];
        let mut order: Vec<usize> = (0..k).collect();
        let mut shuffle = Shuffle::new(o.seed);
        let draw = o.draw_control && self.subjects.get(1).is_some_and(|s| s.1 == Role::Control);
        let budget = o.budget.as_nanos() as f64;
        let stop = loop {
            shuffle.shuffle(&mut order);
            for &i in &order {
                let s = &mut self.subjects[i].2;
                s.before_batch();
                let t0 = clock.now_ns();
                std::hint::black_box(s.run(std::hint::black_box(batches[i])));
                let t1 = clock.now_ns();
                s.after_batch();
                per_call[i].push((t1 - t0) / batches[i] as f64);
            }
            if draw && shuffle.coin() {
                let round = per_call[0].len() - 1;
                let (base, control) = per_call.split_at_mut(1);
                std::mem::swap(&mut base[0][round], &mut control[0][round]);
            }
            let rounds = per_call[0].len();
            if rounds >= o.max_rounds {
                break Stop::MaxRounds;
            }
            if rounds >= o.min_rounds {
                if clock.now_ns() - start >= budget {
                    break Stop::Budget;
                }
                if rounds % 8 == 0 && precise(&per_call, o.precision) {
                    break Stop::Precise;
                }
            }
        };
        let seconds = (clock.now_ns() - start) / 1e9;
        summarize(&self.subjects, &batches, &per_call, stop, seconds, &o)
    }
}

/// Calls per batch for `subject` to take about `target` ns, a whole multiple of `unit`:
/// batches of 1, 8, 64, ... units until one is long enough to time (a 64th of the
/// target), then scaled to the target. The batches run here also warm the subject up.
fn calibrate(subject: &mut dyn Subject, target: f64, unit: u64, clock: &mut dyn Clock) -> u64 {
    let mut n = unit;
    loop {
        subject.before_batch();
        let t0 = clock.now_ns();
        std::hint::black_box(subject.run(n));
        let elapsed = clock.now_ns() - t0;
        subject.after_batch();
        if elapsed >= target || n >= 1 << 40 {
            return n;
        }
        if elapsed > target / 64.0 {
            let units = (n as f64 * target / elapsed / unit as f64).ceil() as u64;
            return units.max(1) * unit;
        }
        n *= 8;
    }
}

fn ratios(per_call: &[Vec<f64>], i: usize) -> Vec<f64> {
    per_call[i].iter().zip(&per_call[0]).map(|(v, b)| v / b).collect()
}

/// True when every ratio's interval (or, for a case of one subject, its time's) is as
/// narrow as `precision` asks.
fn precise(per_call: &[Vec<f64>], precision: f64) -> bool {
    let narrow = |values: &[f64]| {
        median_interval(values, CONFIDENCE_LEVEL)
            .is_some_and(|r| (r.upper - r.lower) / 2.0 <= precision * r.estimate.abs())
    };
    if per_call.len() == 1 {
        return narrow(&per_call[0]);
    }
    (1..per_call.len()).all(|i| narrow(&ratios(per_call, i)))
}

/// How far the control's ratio interval reaches from 1 (0 without a control).
fn noise_floor(control: Option<Interval>) -> f64 {
    control.map_or(0.0, |c| (c.upper - 1.0).max(1.0 - c.lower).max(0.0))
}

/// True when the control's ratio interval excludes 1.
fn too_noisy(control: Option<Interval>) -> bool {
    control.is_some_and(|c| !c.contains(1.0))
}

fn summarize(
    subjects: &[(String, Role, Box<dyn Subject + '_>)],
    batches: &[u64],
    per_call: &[Vec<f64>],
    stop: Stop,
    seconds: f64,
    o: &Options,
) -> PairedCase {
    let interval = |v: &[f64]| median_interval(v, CONFIDENCE_LEVEL).expect("at least one round");
    let variants: Vec<PairedVariant> = subjects
        .iter()
        .enumerate()
        .map(|(i, (name, role, _))| {
            let relative = (i > 0).then(|| {
                let overhead: Vec<f64> =
                    per_call[i].iter().zip(&per_call[0]).map(|(v, b)| v - b).collect();
                (interval(&overhead), interval(&ratios(per_call, i)))
            });
            PairedVariant {
                name: name.clone(),
                role: *role,
                batch: batches[i],
                ns_per_call: interval(&per_call[i]),
                overhead_ns_per_call: relative.map(|r| r.0),
                ratio: relative.map(|r| r.1),
                instructions: None,
            }
        })
        .collect();
    let control = variants.iter().find(|v| v.role == Role::Control).and_then(|v| v.ratio);
    let summary = PairedSummary {
        rounds: per_call[0].len(),
        stop,
        seconds,
        noise_floor: noise_floor(control),
        min_effect: o.min_effect,
        too_noisy: too_noisy(control),
    };
    PairedCase { summary, variants }
}

/// A runner driven in its workload's unit: `n` calls as runs of `unit` calls each, so
/// that what one run builds (a list, an arena) is as large whatever the batch.
fn in_units(mut runner: Box<dyn Runner>, unit: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        let mut checksum = 0u64;
        let mut left = n;
        while left > 0 {
            let k = left.min(unit);
            checksum = checksum.wrapping_add(runner.run(k));
            left -= k;
        }
        checksum
    }
}

/// Measures every variant of `workload` at `input` in paired rounds, all on one shared
/// preparation of the input, with a control instance of the baseline. Batches are whole
/// multiples of the input's calls per iteration, run one iteration at a time.
pub fn measure_workload(
    workload: &Workload,
    input: &Input,
    options: &Options,
    clock: &mut dyn Clock,
) -> Result<PairedCase> {
    let shared = (workload.share)(input);
    let base = workload.baseline();
    let unit = input.calls_per_iteration.max(1);
    let options = Options { batch_multiple: unit, ..options.clone() };
    let mut made = Vec::new();
    for _ in 0..1 + usize::from(options.control) {
        made.push((base.prepare)(input, &shared)?);
    }
    let mut case = Case::new(base.name, options, || {
        in_units(made.pop().expect("one runner per instance"), unit)
    });
    for v in workload.variants.iter().skip(1) {
        case = case.variant(v.name, v.role, in_units((v.prepare)(input, &shared)?, unit));
    }
    let result = case.run_with_clock(clock);
    if result.summary.rounds == 0 {
        return Err(Error::Internal(format!("{} / {}: no round ran", workload.name, input.name)));
    }
    Ok(result)
}

/// Pools measurements of one case made in separate processes (the same subjects in the
/// same order). Within one process two call sites or two instances of identical code can
/// differ steadily by a few percent, and differently in the next process, where the
/// address-space layout (code, stack, heap) is drawn anew; one process's intervals cannot
/// show that. Pooled, each figure's estimate is the median of the processes' estimates and
/// its interval the union of their intervals (lowest lower bound to highest upper
/// bound): it covers the noise within each process and the spread between them. The
/// control, noise floor and "too noisy" mark are recomputed from the pooled control.
/// `None` for no measurements.
pub fn pool(cases: &[PairedCase]) -> Option<PairedCase> {
    let first = cases.first()?;
    let union = |intervals: Vec<Interval>| {
        let mut estimates: Vec<f64> = intervals.iter().map(|i| i.estimate).collect();
        estimates.sort_by(f64::total_cmp);
        Interval::new(
            estimates[estimates.len() / 2],
            intervals.iter().map(|i| i.lower).fold(f64::INFINITY, f64::min),
            intervals.iter().map(|i| i.upper).fold(f64::NEG_INFINITY, f64::max),
        )
    };
    let variants: Vec<PairedVariant> = (0..first.variants.len())
        .map(|k| {
            let all: Vec<&PairedVariant> = cases.iter().filter_map(|c| c.variants.get(k)).collect();
            let optional = |f: fn(&PairedVariant) -> Option<Interval>| {
                all.iter().map(|v| f(v)).collect::<Option<Vec<_>>>().map(union)
            };
            let mut batches: Vec<u64> = all.iter().map(|v| v.batch).collect();
            batches.sort_unstable();
            PairedVariant {
                name: all[0].name.clone(),
                role: all[0].role,
                batch: batches[batches.len() / 2],
                ns_per_call: union(all.iter().map(|v| v.ns_per_call).collect()),
                overhead_ns_per_call: optional(|v| v.overhead_ns_per_call),
                ratio: optional(|v| v.ratio),
                instructions: None,
            }
        })
        .collect();
    let control = variants.iter().find(|v| v.role == Role::Control).and_then(|v| v.ratio);
    let stops: Vec<Stop> = cases.iter().map(|c| c.summary.stop).collect();
    let summary = PairedSummary {
        rounds: cases.iter().map(|c| c.summary.rounds).sum(),
        stop: [Stop::Budget, Stop::MaxRounds]
            .into_iter()
            .find(|s| stops.contains(s))
            .unwrap_or(Stop::Precise),
        seconds: cases.iter().map(|c| c.summary.seconds).sum(),
        noise_floor: noise_floor(control),
        min_effect: first.summary.min_effect,
        too_noisy: too_noisy(control),
    };
    Some(PairedCase { summary, variants })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// A clock that only moves when synthetic work is done.
    #[derive(Clone, Default)]
    struct FakeTime(Rc<Cell<f64>>);

    impl Clock for FakeTime {
        fn now_ns(&mut self) -> f64 {
            self.0.get()
        }
    }

    /// Work of `cost` ns per call at the machine's starting speed, on a machine that
    /// slows down steadily: by `drift` (0.5 = 50%) per second of fake time.
    fn synthetic(time: &FakeTime, cost: f64, drift: f64) -> impl FnMut(u64) -> u64 {
        let time = time.0.clone();
        move |n| {
            let now = time.get();
            let speed = 1.0 + drift * now / 1e9;
            time.set(now + n as f64 * cost * speed);
            n
        }
    }

    fn options() -> Options {
        Options { budget: Duration::from_secs(3), min_rounds: 50, ..Options::default() }
    }

    #[test]
    fn sequential_comparison_on_a_drifting_machine_reports_a_difference_paired_does_not() {
        let time = FakeTime::default();
        let alone = |name| {
            let mut clock = time.clone();
            let o = Options { control: false, ..options() };
            Case::new(name, o, || synthetic(&time, 100.0, 0.5)).run_with_clock(&mut clock)
        };
        // A then B, each in its own window: the same work, measured apart.
        let (a, b) = (alone("a"), alone("b"));
        let (a, b) = (a.variants[0].ns_per_call, b.variants[0].ns_per_call);
        assert!(b.lower > a.upper, "sequential: B {b:?} looks slower than A {a:?}");
        assert!(b.estimate / a.estimate > 1.5);

        // The same two in paired rounds, with the control.
        let mut clock = time.clone();
        let paired = Case::new("a", options(), || synthetic(&time, 100.0, 0.5))
            .variant("b", Role::PerCall, synthetic(&time, 100.0, 0.5))
            .run_with_clock(&mut clock);
        assert!(!paired.summary.too_noisy, "the control holds: {:?}", paired.control());
        let b = &paired.variants[2];
        let r = b.ratio.unwrap();
        assert!(r.lower <= 1.0 && 1.0 <= r.upper, "paired: no difference, got {r:?}");
        assert!(!paired.measurable(&r));
    }

    #[test]
    fn a_planted_difference_is_found_with_its_sign() {
        for (cost, slower) in [(105.0, true), (90.0, false)] {
            let time = FakeTime::default();
            let mut clock = time.clone();
            let case = Case::new("base", options(), || synthetic(&time, 100.0, 0.5))
                .variant("planted", Role::PerCall, synthetic(&time, cost, 0.5))
                .run_with_clock(&mut clock);
            let v = &case.variants[2];
            let r = v.ratio.unwrap();
            assert!(case.measurable(&r), "{cost}: {r:?}");
            assert_eq!(r.estimate > 1.0, slower);
            assert!((r.estimate - cost / 100.0).abs() < 0.01, "{r:?}");
            let o = v.overhead_ns_per_call.unwrap();
            assert_eq!(o.estimate > 0.0, slower, "{o:?}");
        }
    }

    #[test]
    fn stops_when_precise_or_when_the_budget_is_spent() {
        let time = FakeTime::default();
        let mut clock = time.clone();
        // No noise at all: every round gives ratio 1 exactly, so it is precise at once.
        let steady = Case::new("a", options(), || synthetic(&time, 100.0, 0.0))
            .variant("b", Role::PerCall, synthetic(&time, 100.0, 0.0))
            .run_with_clock(&mut clock);
        assert_eq!(steady.summary.stop, Stop::Precise);
        assert_eq!(steady.summary.rounds, 56, "the first check after min_rounds");
        assert_eq!(steady.variants[0].batch, 10_000, "1 ms of 100 ns calls");

        // A variant whose cost alternates: never precise to 0.2%, so the budget ends it.
        let flip = Rc::new(Cell::new(false));
        let noisy = {
            let time = time.0.clone();
            let flip = flip.clone();
            move |n: u64| {
                flip.set(!flip.get());
                let cost = if flip.get() { 80.0 } else { 125.0 };
                time.set(time.get() + n as f64 * cost);
                n
            }
        };
        let o = Options { budget: Duration::from_millis(500), ..options() };
        let spent = Case::new("a", o, || synthetic(&time, 100.0, 0.0))
            .variant("noisy", Role::PerCall, noisy)
            .run_with_clock(&mut clock);
        assert_eq!(spent.summary.stop, Stop::Budget);
        assert!(spent.summary.seconds >= 0.5);
    }

    /// A case whose two baseline instances differ steadily by 3% (identical code measured
    /// differently, as a placement effect makes it), and a variant 50% slower.
    fn instances_apart(draw_control: bool) -> PairedCase {
        let time = FakeTime::default();
        let mut clock = time.clone();
        let mut instances = vec![103.0, 100.0];
        let o = Options { draw_control, ..options() };
        Case::new("a", o, || synthetic(&time, instances.pop().unwrap(), 0.0))
            .variant("b", Role::PerCall, synthetic(&time, 150.0, 0.0))
            .run_with_clock(&mut clock)
    }

    #[test]
    fn pooled_processes_keep_the_spread_between_them() {
        let case = |ratio: f64, control: f64, rounds| {
            let iv = |e: f64| Interval::new(e, e - 0.002, e + 0.002);
            let v = |name: &str, role, r: Option<f64>| PairedVariant {
                name: name.into(),
                role,
                batch: 10,
                ns_per_call: iv(10.0 * r.unwrap_or(1.0)),
                overhead_ns_per_call: r.map(|r| iv(10.0 * (r - 1.0))),
                ratio: r.map(iv),
                instructions: None,
            };
            PairedCase {
                summary: PairedSummary {
                    rounds,
                    stop: Stop::Precise,
                    seconds: 1.0,
                    noise_floor: 0.002,
                    min_effect: 0.01,
                    too_noisy: false,
                },
                variants: vec![
                    v("a", Role::Baseline, None),
                    v("a (control)", Role::Control, Some(control)),
                    v("b", Role::PerCall, Some(ratio)),
                ],
            }
        };
        // One process reads b 10% slower, two read it as the same: placement, not code.
        let pooled = pool(&[case(1.10, 1.0, 100), case(1.00, 1.0, 120), case(1.001, 1.0, 90)]);
        let pooled = pooled.unwrap();
        let b = pooled.variants[2].ratio.unwrap();
        assert_eq!(b.estimate, 1.001, "the median process");
        assert!(b.contains(1.0) && b.upper >= 1.10, "{b:?}");
        assert!(!pooled.measurable(&b));
        assert_eq!(pooled.summary.rounds, 310);
        assert!(!pooled.summary.too_noisy);
        // A real difference in every process stays measurable.
        let real =
            pool(&[case(1.5, 1.0, 100), case(1.45, 1.0, 100), case(1.52, 1.0, 100)]).unwrap();
        assert!(real.measurable(&real.variants[2].ratio.unwrap()));
        assert!(pool(&[]).is_none());
    }

    #[test]
    fn a_control_that_differs_marks_the_case_too_noisy() {
        let case = instances_apart(false);
        assert!(case.summary.too_noisy);
        assert!(!case.measurable(&case.variants[2].ratio.unwrap()), "no verdict when too noisy");
    }

    #[test]
    fn drawing_the_control_turns_an_instance_difference_into_spread() {
        let case = instances_apart(true);
        assert!(!case.summary.too_noisy, "{:?}", case.control());
        let control = case.control().unwrap().ratio.unwrap();
        assert!(control.contains(1.0), "{control:?}");
        assert!(case.summary.noise_floor >= 0.025, "the 3% shows as the floor: {:?}", case.summary);
        assert!(case.measurable(&case.variants[2].ratio.unwrap()), "50% still clears it");
    }
}
