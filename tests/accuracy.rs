//! Sampler accuracy, as proportions (never timings):
//! - boundary exactness: samples whose leaf is in libm have the Rust per-call loop among
//!   their ancestors, for both samplers (perf in DWARF mode);
//! - attribution: with planted work on each side of the boundary, the sampled C share is
//!   within 5 percentage points of the split measured by timing each side alone.
//!
//! pprof samples the whole process, so these tests take turns (one lock).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ffiprof::sample::{self, SamplerKind};
use ffiprof::stacks::ProcessSymbolizer;
use ffiprof::stacks::{self, BoundarySummary, Language, Profile};
use ffiprof::workload::{self, Input, Workload};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

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

fn boundary_exactness(kind: SamplerKind, hz: u64, seconds: f64) {
    let w = workload::find("pow").unwrap();
    let (profile, summary) =
        sample_variant(&w, "per-call", w.input(Some("chain")).unwrap(), kind, hz, seconds);
    let (mut in_libm, mut with_loop) = (0u64, 0u64);
    for stack in &profile.stacks {
        let leaf = &profile.frames[*stack.frames.last().unwrap()];
        if !leaf.module.starts_with("libm") {
            continue;
        }
        in_libm += stack.weight;
        if stack
            .frames
            .iter()
            .any(|&i| profile.frames[i].function == "ffiprof::workload::pow::per_call_loop")
        {
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
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    boundary_exactness(SamplerKind::Pprof, 250, 3.0);
}

#[test]
fn libm_samples_keep_their_rust_caller_perf() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    boundary_exactness(SamplerKind::Perf, 1000, 1.5);
}

/// Seconds for `rounds` rounds of a calibration variant, median of 5 alternating trials.
fn timed(w: &Workload, input: &Input, rounds: u64) -> (f64, f64) {
    let mut rust = w.prepare("rust-only", input).unwrap();
    let mut c = w.prepare("c-only", input).unwrap();
    let n = input.calls_per_iteration;
    let (mut tr, mut tc) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        for (runner, times) in [(&mut rust, &mut tr), (&mut c, &mut tc)] {
            let t = Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(runner.run(n));
            }
            times.push(t.elapsed().as_secs_f64());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(&mut tr), median(&mut tc))
}

fn attribution(kind: SamplerKind, hz: u64, seconds: f64, input: &str) {
    let w = workload::find("calibrate").unwrap();
    let input = w.input(Some(input)).unwrap();
    let (tr, tc) = timed(&w, input, 200);
    let expected = tc / (tr + tc);
    let (_, summary) = sample_variant(&w, "both", input, kind, hz, seconds);
    assert!(summary.samples >= 1000, "{kind}: only {} samples", summary.samples);
    let sampled = summary.c_side_share;
    eprintln!(
        "{kind} {}: C share sampled {:.1}% vs timed {:.1}% ({} samples)",
        input.name,
        sampled * 100.0,
        expected * 100.0,
        summary.samples
    );
    assert!(
        (sampled - expected).abs() <= 0.05,
        "{kind}: sampled C share {:.1}% vs timed {:.1}%",
        sampled * 100.0,
        expected * 100.0
    );
    let leaf_c = summary.leaf_share.get(&Language::C).copied().unwrap_or(0.0);
    assert!((leaf_c - sampled).abs() < 0.02, "the C side of calibrate is the project's C spin");
}

#[test]
fn planted_split_is_attributed_pprof() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    attribution(SamplerKind::Pprof, 250, 5.0, "c50");
}

#[test]
fn planted_split_is_attributed_perf() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    attribution(SamplerKind::Perf, 2000, 1.0, "c50");
    attribution(SamplerKind::Perf, 2000, 1.0, "c20");
}
