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
//! Code placement is measured too. At a few nanoseconds per item, where a loop sits in
//! the binary (its alignment, the branch-predictor entries it shares, how it falls in the
//! decoded-instruction cache) moves its speed by more than a crossing costs, and an A/A
//! control of one function cannot see it: both instances run the same code at the same
//! address. So a subject may come as several *placements*, copies of its code at
//! different offsets (the catalogue's loops: [`crate::workload::Placement`]); each round
//! draws one per subject. Rounds are grouped by the pair (variant's placement,
//! baseline's placement), and the median ratio of each group says how far placement
//! alone moves the variant ([`PlacementRange`]). The control's groups give the case's
//! *placement floor*: identical work, at different places. A difference counts only
//! where it clears the noise floor and the placement floor, and holds at every placement
//! pair ([`PairedSummary::judge`]); otherwise it is "within placement" (Curtsinger and
//! Berger, "Stabilizer", ASPLOS 2013: layout is a distribution to sample, not a
//! constant).
//!
//! The engine works on plain closures ([`Case`]), so a crate wrapping a C library can
//! measure its own per-call vs batched pair; the catalogue's workloads go through
//! [`measure_workload`]. Time comes from a [`Clock`], a fake one in tests.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::stats::{median_interval, Shuffle};
use super::{Interval, CONFIDENCE_LEVEL};
use crate::error::{Error, Result};
use crate::workload::{Input, Role, Runner, Variant, Workload};

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

/// Crossings of the boundary per call of one variant, counted under callgrind beside its
/// instructions (the C runtime counts as C: libm's `pow`, `malloc`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CrossingsPerCall {
    /// Calls from Rust into C, C++ or the C runtime.
    pub rust_to_c: f64,
    /// Calls from C, C++ or the C runtime into Rust (callbacks).
    pub c_to_rust: f64,
    /// Of `rust_to_c`, the calls into the C runtime (libc's `malloc`, `memchr`, libm).
    #[serde(default)]
    pub into_c_runtime: f64,
}

impl CrossingsPerCall {
    /// Both ways.
    pub fn total(&self) -> f64 {
        self.rust_to_c + self.c_to_rust
    }

    /// For a table: `1`, or `1 + 1 back` with callbacks.
    pub fn cell(&self) -> String {
        let n = |x: f64| crate::fmt::per_call_count(x);
        if self.c_to_rust == 0.0 {
            n(self.rust_to_c)
        } else {
            format!("{} + {} back", n(self.rust_to_c), n(self.c_to_rust))
        }
    }
}

/// Blocks and bytes per call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BlocksPerCall {
    /// Allocations (a `realloc` is one).
    pub blocks: f64,
    /// Bytes asked for.
    pub bytes: f64,
}

/// Allocations per call of one variant, by the allocator that served them, counted with
/// the heap interposer in a run apart from the timed ones ([`super::allocations`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AllocationsPerCall {
    /// Rust's global allocator.
    pub rust: BlocksPerCall,
    /// C's malloc, called from any language.
    pub c: BlocksPerCall,
    /// C++'s operator new.
    #[serde(rename = "c++")]
    pub cxx: BlocksPerCall,
    /// Served by an allocator the machine code does not tell.
    #[serde(default)]
    pub unknown: BlocksPerCall,
}

impl AllocationsPerCall {
    /// Blocks per call, every allocator.
    pub fn blocks(&self) -> f64 {
        self.rust.blocks + self.c.blocks + self.cxx.blocks + self.unknown.blocks
    }

    /// Each allocator with its blocks per call, those with none left out.
    pub fn by_family(&self) -> Vec<(&'static str, BlocksPerCall)> {
        [("rust", self.rust), ("c", self.c), ("c++", self.cxx), ("unknown", self.unknown)]
            .into_iter()
            .filter(|(_, b)| b.blocks != 0.0)
            .collect()
    }

    /// For a table: `0`, `1 rust`, `1 rust, 2 c`.
    pub fn cell(&self) -> String {
        let parts: Vec<String> = self
            .by_family()
            .iter()
            .map(|(f, b)| format!("{} {f}", crate::fmt::per_call_count(b.blocks)))
            .collect();
        if parts.is_empty() {
            "0".into()
        } else {
            parts.join(", ")
        }
    }
}

/// How far a variant's ratio moves with code placement: the lowest and highest ratio of
/// a (variant's placement, baseline's placement) pair, from an additive model of the pairs'
/// median ratios (see `placement_range` in this module's source).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlacementRange {
    /// The lowest pair's ratio.
    pub lowest: f64,
    /// The highest pair's ratio.
    pub highest: f64,
    /// Placement pairs with enough rounds to count ([`MIN_PAIR_ROUNDS`]).
    pub pairs: usize,
}

impl PlacementRange {
    /// How far the range reaches from `estimate`, relative to it.
    pub fn spread(&self, estimate: f64) -> f64 {
        (self.highest / estimate - 1.0).max(1.0 - self.lowest / estimate).max(0.0)
    }

    /// The range of two measurements together.
    pub fn union(&self, other: &PlacementRange) -> PlacementRange {
        PlacementRange {
            lowest: self.lowest.min(other.lowest),
            highest: self.highest.max(other.highest),
            pairs: self.pairs.max(other.pairs),
        }
    }
}

/// Rounds a placement pair needs before its median counts in a [`PlacementRange`].
pub const MIN_PAIR_ROUNDS: usize = 5;

/// What a variant's ratio says against the baseline, by [`PairedSummary::judge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Judgement {
    /// Clears the noise floor and the placement floor, at every placement pair.
    Measurable,
    /// Within the noise floor, where placement moves the case less than noise does.
    WithinNoise,
    /// Not clear of what placement alone does (the control's placement floor or the
    /// variant's own range), where placement moves the case more than noise does.
    WithinPlacement,
    /// The control failed: nothing in the case is judged.
    TooNoisy,
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
    /// Crossings per call, where counted (under callgrind, beside the instructions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossings_per_call: Option<CrossingsPerCall>,
    /// Allocations per call by allocator, where counted (with the heap interposer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocations_per_call: Option<AllocationsPerCall>,
    /// How many placements of its code the subject ran at (1: one copy).
    #[serde(default = "one")]
    pub placements: usize,
    /// How far its ratio moved between placement pairs; absent for the baseline and
    /// where neither it nor the baseline has more than one placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementRange>,
}

fn one() -> usize {
    1
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
    /// How far the control's ratio moved from 1 between placement pairs (0 where the
    /// baseline has one placement): what code placement alone does to identical work.
    #[serde(default)]
    pub placement_floor: f64,
}

impl PairedSummary {
    /// The larger of the noise floor and the smallest effect ever called measurable.
    pub fn noise_threshold(&self) -> f64 {
        self.noise_floor.max(self.min_effect)
    }

    /// The relative difference a ratio must clear: noise, smallest effect, placement.
    pub fn floor(&self) -> f64 {
        self.noise_threshold().max(self.placement_floor)
    }

    /// True when `ratio` clears 1 by the noise floor, the smallest effect and the
    /// placement floor. Never true in a case too noisy to judge.
    pub fn measurable(&self, ratio: &Interval) -> bool {
        self.judge(ratio, None) == Judgement::Measurable
    }

    /// Judges a variant's `ratio`, with its own `placement` range where it has one: a
    /// difference is measurable when the interval clears the noise floor and the
    /// placement floor and every placement pair's median lies on the same side, beyond
    /// the noise floor. Otherwise it is within placement where placement moves this case
    /// (the control, or the variant itself) more than noise does, else within noise.
    pub fn judge(&self, ratio: &Interval, placement: Option<&PlacementRange>) -> Judgement {
        if self.too_noisy {
            return Judgement::TooNoisy;
        }
        let noise = self.noise_threshold();
        let clears = |f: f64| ratio.lower > 1.0 + f || ratio.upper < 1.0 - f;
        let every_pair = placement.is_none_or(|p| {
            if ratio.estimate > 1.0 {
                p.lowest > 1.0 + noise
            } else {
                p.highest < 1.0 - noise
            }
        });
        if clears(noise) && clears(self.placement_floor) && every_pair {
            return Judgement::Measurable;
        }
        let own = placement.map_or(0.0, |p| p.spread(ratio.estimate));
        if self.placement_floor.max(own) > noise {
            Judgement::WithinPlacement
        } else {
            Judgement::WithinNoise
        }
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
    /// Variants left out on this machine, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<crate::workload::Unavailable>,
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

    /// See [`PairedSummary::judge`]; `None` for the baseline.
    pub fn judge(&self, variant: &PairedVariant) -> Option<Judgement> {
        Some(self.summary.judge(variant.ratio.as_ref()?, variant.placement.as_ref()))
    }
}

/// What a counting run does with one batch: runs `run` at n calls, counted.
pub(crate) type CountBatch<'a> = dyn FnMut(&mut dyn FnMut(u64) -> u64, u64) + 'a;

/// One subject of a case: its name, its role, and its code at each placement.
struct Slot<'a> {
    name: String,
    role: Role,
    placements: Vec<Box<dyn Subject + 'a>>,
}

/// A case to measure: a baseline, variants, and optionally a control.
pub struct Case<'a> {
    subjects: Vec<Slot<'a>>,
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
        Case::placed(name, options, 1, |_| Box::new(make()))
    }

    /// A case whose baseline exists at `placements` placements, `make(p)` making the one
    /// at `p`; the control gets its own instance of each.
    pub fn placed(
        name: &str,
        options: Options,
        placements: usize,
        mut make: impl FnMut(usize) -> Box<dyn Subject + 'a>,
    ) -> Self {
        let mut instance = || (0..placements.max(1)).map(&mut make).collect::<Vec<_>>();
        let mut subjects =
            vec![Slot { name: name.to_owned(), role: Role::Baseline, placements: instance() }];
        if options.control {
            subjects.push(Slot {
                name: control_name(name),
                role: Role::Control,
                placements: instance(),
            });
        }
        Case { subjects, options }
    }

    /// Adds a variant (a per-call alternative, or a reference with no crossing).
    pub fn variant(self, name: &str, role: Role, subject: impl Subject + 'a) -> Self {
        self.placed_variant(name, role, vec![Box::new(subject)])
    }

    /// Adds a boxed variant.
    pub fn boxed_variant(self, name: &str, role: Role, subject: Box<dyn Subject + 'a>) -> Self {
        self.placed_variant(name, role, vec![subject])
    }

    /// Adds a variant with its code at each of several placements (at least one).
    pub fn placed_variant(
        mut self,
        name: &str,
        role: Role,
        placements: Vec<Box<dyn Subject + 'a>>,
    ) -> Self {
        assert!(!placements.is_empty(), "a variant needs at least one placement");
        self.subjects.push(Slot { name: name.to_owned(), role, placements });
        self
    }

    /// Runs each subject (at its first placement) at `n` and then `2n` calls through
    /// `batch`, after a warming run at 2n, the baseline first, in the order the measured
    /// case lists them: what a counting run does with the case, timing nothing.
    pub(crate) fn count_batches(mut self, n: u64, batch: &mut CountBatch<'_>) {
        for slot in &mut self.subjects {
            let subject = &mut slot.placements[0];
            let mut run = |n| subject.run(n);
            std::hint::black_box(run(2 * n));
            batch(&mut run, n);
            batch(&mut run, 2 * n);
        }
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
            .map(|slot| {
                let batch = calibrate(slot.placements[0].as_mut(), target, unit, clock);
                // Every other placement runs once before the rounds, untimed.
                for s in slot.placements.iter_mut().skip(1) {
                    s.before_batch();
                    std::hint::black_box(s.run(std::hint::black_box(batch)));
                    s.after_batch();
                }
                batch
            })
            .collect();
        let k = self.subjects.len();
        let mut per_call: Vec<Vec<f64>> = vec![Vec::new(); k];
        let mut at: Vec<Vec<usize>> = vec![Vec::new(); k];
        let mut order: Vec<usize> = (0..k).collect();
        let mut shuffle = Shuffle::new(o.seed);
        let draw = o.draw_control && self.subjects.get(1).is_some_and(|s| s.role == Role::Control);
        let budget = o.budget.as_nanos() as f64;
        let stop = loop {
            shuffle.shuffle(&mut order);
            for &i in &order {
                let placements = &mut self.subjects[i].placements;
                let p = if placements.len() > 1 { shuffle.below(placements.len()) } else { 0 };
                let s = &mut placements[p];
                s.before_batch();
                let t0 = clock.now_ns();
                std::hint::black_box(s.run(std::hint::black_box(batches[i])));
                let t1 = clock.now_ns();
                s.after_batch();
                per_call[i].push((t1 - t0) / batches[i] as f64);
                at[i].push(p);
            }
            if draw && shuffle.coin() {
                let round = per_call[0].len() - 1;
                let (base, control) = per_call.split_at_mut(1);
                std::mem::swap(&mut base[0][round], &mut control[0][round]);
                let (base, control) = at.split_at_mut(1);
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
        let rounds = Rounds { per_call: &per_call, at: &at };
        let subjects: Vec<(&str, Role, usize)> =
            self.subjects.iter().map(|s| (s.name.as_str(), s.role, s.placements.len())).collect();
        summarize(&subjects, &batches, &rounds, stop, seconds, &o)
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
pub(crate) fn precise(per_call: &[Vec<f64>], precision: f64) -> bool {
    let narrow = |values: &[f64]| {
        median_interval(values, CONFIDENCE_LEVEL)
            .is_some_and(|r| (r.upper - r.lower) / 2.0 <= precision * r.estimate.abs())
    };
    if per_call.len() == 1 {
        return narrow(&per_call[0]);
    }
    (1..per_call.len()).all(|i| narrow(&ratios(per_call, i)))
}

/// What the rounds measured: each subject's time per call and placement, per round.
struct Rounds<'r> {
    per_call: &'r [Vec<f64>],
    at: &'r [Vec<usize>],
}

/// Subject `i`'s ratio across placements. Rounds are grouped by the pair (its placement
/// `v`, the baseline's placement `b`), and each pair with enough rounds gives the log of
/// its median ratio, `m[v][b]`. Placement is taken as additive in logs, `m[v][b] = d +
/// V(v) - E(b)` plus noise, and the effects are read from row and column means (each
/// over several pairs) rather than from the single most extreme pair, which with 16 pairs
/// would be the noisiest: a pair's ratio is predicted as `row(v) + col(b) - mean(col)`,
/// and the range is the lowest and highest prediction. `None` where every round ran at
/// one pair.
fn placement_range(rounds: &Rounds<'_>, i: usize) -> Option<PlacementRange> {
    use std::collections::BTreeMap;
    let mut groups: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    for (r, ratio) in ratios(rounds.per_call, i).into_iter().enumerate() {
        groups.entry((rounds.at[i][r], rounds.at[0][r])).or_default().push(ratio);
    }
    if groups.len() < 2 {
        return None;
    }
    let logs: Vec<((usize, usize), f64)> = groups
        .into_iter()
        .filter(|(_, g)| g.len() >= MIN_PAIR_ROUNDS)
        .filter_map(|(pair, g)| Some((pair, super::stats::median(&g)?.ln())))
        .collect();
    if logs.is_empty() {
        return None;
    }
    let means = |key: fn(&(usize, usize)) -> usize| {
        let mut sums: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
        for (pair, m) in &logs {
            let e = sums.entry(key(pair)).or_default();
            *e = (e.0 + m, e.1 + 1.0);
        }
        sums.into_values().map(|(sum, n)| sum / n).collect::<Vec<f64>>()
    };
    let (rows, cols) = (means(|p| p.0), means(|p| p.1));
    let centre = cols.iter().sum::<f64>() / cols.len() as f64;
    let low = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let high = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some(PlacementRange {
        lowest: (low(&rows) + low(&cols) - centre).exp(),
        highest: (high(&rows) + high(&cols) - centre).exp(),
        pairs: logs.len(),
    })
}

/// How far the control's placement range reaches from 1 (0 without one).
fn placement_floor(control: Option<&PlacementRange>) -> f64 {
    control.map_or(0.0, |p| (p.highest - 1.0).max(1.0 - p.lowest).max(0.0))
}

/// How far the control's ratio interval reaches from 1 (0 without a control).
fn noise_floor(control: Option<Interval>) -> f64 {
    control.map_or(0.0, |c| (c.upper - 1.0).max(1.0 - c.lower).max(0.0))
}

/// True when the control's ratio interval excludes 1.
fn too_noisy(control: Option<Interval>) -> bool {
    control.is_some_and(|c| !c.contains(1.0))
}

/// A case's figures from its rounds: `subjects` are (name, role, placements), the
/// baseline first.
fn summarize(
    subjects: &[(&str, Role, usize)],
    batches: &[u64],
    rounds: &Rounds<'_>,
    stop: Stop,
    seconds: f64,
    o: &Options,
) -> PairedCase {
    let per_call = rounds.per_call;
    let interval = |v: &[f64]| median_interval(v, CONFIDENCE_LEVEL).expect("at least one round");
    let variants: Vec<PairedVariant> = subjects
        .iter()
        .enumerate()
        .map(|(i, &(name, role, placements))| {
            let relative = (i > 0).then(|| {
                let overhead: Vec<f64> =
                    per_call[i].iter().zip(&per_call[0]).map(|(v, b)| v - b).collect();
                (interval(&overhead), interval(&ratios(per_call, i)))
            });
            PairedVariant {
                name: name.to_owned(),
                role,
                batch: batches[i],
                ns_per_call: interval(&per_call[i]),
                overhead_ns_per_call: relative.map(|r| r.0),
                ratio: relative.map(|r| r.1),
                instructions: None,
                crossings_per_call: None,
                allocations_per_call: None,
                placements,
                placement: (i > 0).then(|| placement_range(rounds, i)).flatten(),
            }
        })
        .collect();
    let control = variants.iter().find(|v| v.role == Role::Control);
    let summary = PairedSummary {
        rounds: per_call[0].len(),
        stop,
        seconds,
        noise_floor: noise_floor(control.and_then(|v| v.ratio)),
        min_effect: o.min_effect,
        too_noisy: too_noisy(control.and_then(|v| v.ratio)),
        placement_floor: placement_floor(control.and_then(|v| v.placement.as_ref())),
    };
    PairedCase { summary, variants, unavailable: Vec::new() }
}

/// A case's figures from rounds measured elsewhere, one value per subject and round
/// (whole programs timed in rounds: [`super::programs`]), each subject at one placement,
/// batches of one. `subjects` are (name, role), the baseline first, then its control.
pub(crate) fn summarize_rounds(
    subjects: &[(&str, Role)],
    per_round: &[Vec<f64>],
    stop: Stop,
    seconds: f64,
    o: &Options,
) -> PairedCase {
    let at: Vec<Vec<usize>> = per_round.iter().map(|v| vec![0; v.len()]).collect();
    let rounds = Rounds { per_call: per_round, at: &at };
    let described: Vec<(&str, Role, usize)> = subjects.iter().map(|&(n, r)| (n, r, 1)).collect();
    summarize(&described, &vec![1; subjects.len()], &rounds, stop, seconds, o)
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
    let (here, unavailable) = workload.available_variants();
    let placed = |v: &Variant| -> Result<Vec<Box<dyn Subject>>> {
        v.placements()
            .map(|at| {
                let runner = (v.prepare)(input, &shared, at)?;
                Ok(Box::new(in_units(runner, unit)) as Box<dyn Subject>)
            })
            .collect()
    };
    let mut made = Vec::new();
    for _ in 0..1 + usize::from(options.control) {
        made.extend(placed(base)?);
    }
    made.reverse();
    let count = base.placements().count();
    let mut case = Case::placed(base.name, options, count, |_| {
        made.pop().expect("one runner per instance and placement")
    });
    for v in here.into_iter().skip(1) {
        case = case.placed_variant(v.name, v.role, placed(v)?);
    }
    let mut result = case.run_with_clock(clock);
    if result.summary.rounds == 0 {
        return Err(Error::Internal(format!("{} / {}: no round ran", workload.name, input.name)));
    }
    result.unavailable = unavailable;
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
                crossings_per_call: None,
                allocations_per_call: None,
                placements: all[0].placements,
                placement: all.iter().filter_map(|v| v.placement).reduce(|a, b| a.union(&b)),
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
        placement_floor: cases.iter().map(|c| c.summary.placement_floor).fold(0.0, f64::max),
    };
    Some(PairedCase { summary, variants, unavailable: first.unavailable.clone() })
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
                crossings_per_call: None,
                allocations_per_call: None,
                placements: 1,
                placement: None,
            };
            PairedCase {
                unavailable: Vec::new(),
                summary: PairedSummary {
                    rounds,
                    stop: Stop::Precise,
                    seconds: 1.0,
                    noise_floor: 0.002,
                    min_effect: 0.01,
                    too_noisy: false,
                    placement_floor: 0.0,
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

    /// A subject whose placements cost `costs[p]` ns per call each.
    fn placed_subjects<'a>(time: &'a FakeTime, costs: &[f64]) -> Vec<Box<dyn Subject + 'a>> {
        costs.iter().map(|&c| Box::new(synthetic(time, c, 0.0)) as Box<dyn Subject + 'a>).collect()
    }

    /// A case whose baseline's four placements run at 100, 100, 130 and 100 ns per call
    /// (one placement of identical code 30% slower), with a variant that costs `variant`
    /// at every placement.
    fn placed_case(variant: &[f64]) -> PairedCase {
        let time = FakeTime::default();
        let mut clock = time.clone();
        let base = [100.0, 100.0, 130.0, 100.0];
        let o = Options { budget: Duration::from_secs(20), min_rounds: 400, ..options() };
        Case::placed("a", o, base.len(), |p| Box::new(synthetic(&time, base[p], 0.0)))
            .placed_variant("b", Role::PerCall, placed_subjects(&time, variant))
            .run_with_clock(&mut clock)
    }

    #[test]
    fn placement_moves_the_control_and_sets_the_floor() {
        let case = placed_case(&[100.0; 4]);
        let p = &case.summary;
        // The control is identical code: at a pair (slow, fast) its ratio is 1.3, at
        // (fast, slow) 1/1.3; the floor is how far that reaches.
        assert!((p.placement_floor - 0.3).abs() < 0.01, "{p:?}");
        let control = case.control().unwrap();
        assert_eq!(control.placements, 4);
        let range = control.placement.unwrap();
        assert!((range.highest - 1.3).abs() < 0.01 && (range.lowest - 1.0 / 1.3).abs() < 0.01);
        assert_eq!(range.pairs, 16, "every pair of four placements ran often enough");
        // The same code as a variant: within placement, never measurable.
        let b = &case.variants[2];
        assert_eq!(case.judge(b), Some(Judgement::WithinPlacement));
    }

    #[test]
    fn a_difference_smaller_than_placement_is_within_placement_a_larger_one_measurable() {
        // 15% slower at every placement: clear of noise, not of the 30% placement floor.
        let small = placed_case(&[115.0; 4]);
        let b = &small.variants[2];
        assert!(b.ratio.unwrap().lower > 1.02, "clear of noise: {:?}", b.ratio);
        assert_eq!(small.judge(b), Some(Judgement::WithinPlacement));
        assert!(!small.measurable(&b.ratio.unwrap()));
        // Three times slower: clear of everything, at every pair.
        let large = placed_case(&[300.0; 4]);
        assert_eq!(large.judge(&large.variants[2]), Some(Judgement::Measurable));
    }

    #[test]
    fn a_variant_whose_own_placements_disagree_is_not_measurable() {
        let time = FakeTime::default();
        let mut clock = time.clone();
        let o = Options { budget: Duration::from_secs(20), min_rounds: 400, ..options() };
        // The baseline is steady; the variant is 40% faster at two placements and the
        // same at the other two: its median may clear the floors, but not every pair.
        let case = Case::placed("a", o, 4, |_| Box::new(synthetic(&time, 100.0, 0.0)))
            .placed_variant("b", Role::PerCall, placed_subjects(&time, &[60.0, 60.0, 100.0, 60.0]))
            .run_with_clock(&mut clock);
        assert_eq!(case.summary.placement_floor, 0.0, "the baseline's copies are alike");
        let b = &case.variants[2];
        let range = b.placement.unwrap();
        assert!((range.lowest - 0.6).abs() < 0.01 && (range.highest - 1.0).abs() < 0.01);
        assert!(b.ratio.unwrap().upper < 0.9, "the median alone looks faster: {:?}", b.ratio);
        assert_eq!(case.judge(b), Some(Judgement::WithinPlacement));
    }

    #[test]
    fn one_placement_has_no_range_and_no_floor() {
        let time = FakeTime::default();
        let mut clock = time.clone();
        let case = Case::new("a", options(), || synthetic(&time, 100.0, 0.0))
            .variant("b", Role::PerCall, synthetic(&time, 100.0, 0.0))
            .run_with_clock(&mut clock);
        assert_eq!(case.summary.placement_floor, 0.0);
        assert!(case.variants.iter().all(|v| v.placement.is_none() && v.placements == 1));
    }

    #[test]
    fn noise_alone_does_not_become_a_placement_floor() {
        // Four identical copies, each batch ±5% at random: the pairs' medians scatter,
        // but no copy is slower than another.
        let time = FakeTime::default();
        let mut clock = time.clone();
        let seed = Rc::new(Cell::new(0x1234_5678_9abc_def1u64));
        let jittery = |time: &FakeTime| {
            let (time, seed) = (time.0.clone(), seed.clone());
            Box::new(move |n: u64| {
                let mut x = seed.get();
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                seed.set(x);
                let jitter = 0.95 + 0.1 * (x % 1000) as f64 / 1000.0;
                time.set(time.get() + n as f64 * 100.0 * jitter);
                n
            }) as Box<dyn Subject>
        };
        let o = Options { budget: Duration::from_secs(60), min_rounds: 600, ..options() };
        let case = Case::placed("a", o, 4, |_| jittery(&time)).run_with_clock(&mut clock);
        let floor = case.summary.placement_floor;
        assert!(floor < 0.02, "±5% noise read as a {floor} placement floor");
    }
}
