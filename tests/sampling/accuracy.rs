//! Sampler accuracy, as proportions (never timings):
//! - boundary exactness: samples whose leaf is in libm have the Rust per-call loop among
//!   their ancestors, for both samplers (perf in DWARF mode);
//! - attribution: with planted work on each side of the boundary, the sampled C share is
//!   within 5 percentage points of the split measured by timing each side alone (thread
//!   CPU time), in the same windows as the sampling (interleaved), so a busy machine
//!   moves both alike.
//!
//! pprof samples the whole process, so these tests take turns (one lock).

use std::time::{Duration, Instant};

use ffiprof::sample::{self, SamplerKind};
use ffiprof::stacks::ProcessSymbolizer;
use ffiprof::stacks::{self, BoundarySummary, Language, Profile};
use ffiprof::workload::{self, Input, Runner, Workload};

fn sample_variant(
    w: &Workload,
    variant: &str,
    input: &Input,
    kind: SamplerKind,
    hz: u64,
    seconds: f64,
) -> (Profile, BoundarySummary) {
    let mut options = sample::Options::default();
    options.frequency = hz;
    let mut runner = w.prepare(variant, input).unwrap();
    runner.run(input.calls_per_iteration);
    let mut sampler = sample::sampler(kind, &options).unwrap();
    let (raw, _) = sample::record(
        sampler.as_mut(),
        runner.as_mut(),
        input.calls_per_iteration,
        Duration::from_secs_f64(seconds),
    )
    .unwrap();
    let profile = stacks::build(&raw, &mut ProcessSymbolizer::new()).unwrap();
    let summary = BoundarySummary::new(&profile, &raw);
    (profile, summary)
}

/// Whether a demangled name is `function`: v0 mangling (`-C symbol-mangling-version=v0`,
/// nightly's default) names a generic function's arguments after it, `per_call_loop::<0>`
/// (the placement), where the legacy mangling names `per_call_loop` alone.
fn is_function(name: &str, function: &str) -> bool {
    name.strip_prefix(function).is_some_and(|rest| rest.is_empty() || rest.starts_with("::<"))
}

fn boundary_exactness(kind: SamplerKind, hz: u64, seconds: f64) {
    let w = workload::find("pow").unwrap();
    let (profile, summary) =
        sample_variant(&w, "per-call", w.input(Some("chain")).unwrap(), kind, hz, seconds);
    let (mut in_libm, mut with_loop) = (0u64, 0u64);
    for stack in profile.stacks() {
        let leaf = profile.frame(*stack.frames.last().unwrap());
        if !leaf.module.starts_with("libm") {
            continue;
        }
        in_libm += stack.weight;
        if stack.frames.iter().any(|&i| {
            is_function(&profile.frame(i).function, "ffiprof::workload::pow::per_call_loop")
        }) {
            with_loop += stack.weight;
        }
    }
    assert!(in_libm >= 200, "{kind}: only {in_libm} samples in libm of {}", summary.samples);
    let share = with_loop as f64 / in_libm as f64;
    eprintln!("{kind}: {with_loop}/{in_libm} libm samples under the Rust per-call loop");
    assert!(
        share >= 0.99,
        "{kind}: {:.2}% of libm samples keep the Rust loop as ancestor",
        share * 100.0
    );
}

#[test]
fn libm_samples_keep_their_rust_caller_pprof() {
    let _turn = crate::sampling_alone();
    boundary_exactness(SamplerKind::Pprof, 250, 3.0);
}

#[test]
fn libm_samples_keep_their_rust_caller_perf() {
    let _turn = crate::sampling_alone();
    boundary_exactness(SamplerKind::Perf, 1000, 1.5);
}

/// The sampled runner: each call does `n` items of `both`, then times `n / 4` items of
/// `rust-only` and of `c-only`. The reference split is thus timed in the same windows as
/// the samples are taken, whatever the rest of the machine does meanwhile; samples taken
/// in the timed parts are told apart by their stacks (no `both_sides_loop` frame).
struct Interleaved {
    both: Box<dyn Runner>,
    rust: Box<dyn Runner>,
    c: Box<dyn Runner>,
    rust_seconds: f64,
    c_seconds: f64,
}

/// This thread's CPU time, seconds: what cpu-clock samples count, so that time the
/// thread spends preempted by other work on the machine weighs on neither figure.
impl Runner for Interleaved {
    fn run(&mut self, n: u64) -> u64 {
        let x = self.both.run(n);
        let part = (n / 4).max(1);
        let t = crate::thread_cpu_seconds();
        let r = std::hint::black_box(self.rust.run(part));
        let mid = crate::thread_cpu_seconds();
        let c = std::hint::black_box(self.c.run(part));
        self.rust_seconds += mid - t;
        self.c_seconds += crate::thread_cpu_seconds() - mid;
        x ^ r ^ c
    }
}

const BOTH_LOOP: &str = "ffiprof::workload::calibrate::both_sides_loop";

fn attribution(kind: SamplerKind, hz: u64, cpu_seconds: f64, input: &str) {
    let w = workload::find("calibrate").unwrap();
    let input = w.input(Some(input)).unwrap();
    let mut runner = Interleaved {
        both: w.prepare("both", input).unwrap(),
        rust: w.prepare("rust-only", input).unwrap(),
        c: w.prepare("c-only", input).unwrap(),
        rust_seconds: 0.0,
        c_seconds: 0.0,
    };
    let n = input.calls_per_iteration;
    runner.run(n);
    let (rust_warm, c_warm) = (runner.rust_seconds, runner.c_seconds);
    let mut options = sample::Options::default();
    options.frequency = hz;
    let mut sampler = sample::sampler(kind, &options).unwrap();
    // The window is CPU time of this thread, not wall time: on a busy machine it takes
    // longer, with as many samples.
    sampler.start().unwrap();
    let (cpu_start, wall_start) = (crate::thread_cpu_seconds(), Instant::now());
    while crate::thread_cpu_seconds() - cpu_start < cpu_seconds
        && wall_start.elapsed() < Duration::from_secs_f64(cpu_seconds * 4.0)
    {
        runner.run(n);
    }
    let raw = sampler.stop().unwrap();
    let (tr, tc) = (runner.rust_seconds - rust_warm, runner.c_seconds - c_warm);
    let expected = tc / (tr + tc);
    let profile = stacks::build(&raw, &mut ProcessSymbolizer::new()).unwrap();
    let (mut in_both, mut c_side) = (0u64, 0u64);
    for stack in profile.stacks() {
        if !stack.frames.iter().any(|&i| profile.frame(i).function == BOTH_LOOP) {
            continue;
        }
        in_both += stack.weight;
        let leaf = profile.frame(*stack.frames.last().unwrap());
        if leaf.language.is_c_side() {
            c_side += stack.weight;
        }
    }
    assert!(
        in_both >= 800,
        "{kind}: only {in_both} samples in {BOTH_LOOP} of {}",
        raw.samples.len()
    );
    let sampled = c_side as f64 / in_both as f64;
    eprintln!(
        "{kind} {}: C share sampled {:.1}% vs timed in the same windows {:.1}% ({in_both} samples)",
        input.name,
        sampled * 100.0,
        expected * 100.0,
    );
    assert!(
        (sampled - expected).abs() <= 0.05,
        "{kind}: sampled C share {:.1}% vs timed {:.1}%",
        sampled * 100.0,
        expected * 100.0
    );
    let summary = BoundarySummary::new(&profile, &raw);
    let leaf_c = summary.leaf_share.get(&Language::C).copied().unwrap_or(0.0);
    assert!(
        (leaf_c - summary.c_side_share).abs() < 0.02,
        "{kind}: the C side of calibrate is the project's C spin: C leaves {leaf_c:.3}, C side \
         {:.3}, leaves by language {:?}",
        summary.c_side_share,
        summary.leaf_share
    );
}

#[test]
fn planted_split_is_attributed_pprof() {
    let _turn = crate::sampling_alone();
    attribution(SamplerKind::Pprof, 250, 7.0, "c50");
}

#[test]
fn planted_split_is_attributed_perf() {
    let _turn = crate::sampling_alone();
    attribution(SamplerKind::Perf, 2000, 1.0, "c50");
    attribution(SamplerKind::Perf, 2000, 1.0, "c20");
}
