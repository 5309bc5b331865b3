//! `calibrate`: planted work on each side of the boundary, for checking that a sampler
//! attributes time to the right side. Each call spins in Rust, then in C, with the same
//! multiply-add chain; the input sets the share of C steps. Not part of the benchmark
//! catalogue; `ffiprof profile calibrate` and the accuracy tests use it.

use std::hint::black_box;

use super::{runner, Input, Role, Variant, Workload};
use crate::ffi;

/// Steps of spin per call, both sides together: enough that what times each side (a clock
/// read, in the C runtime) stays under 1% of the samples, with the spins' values kept in
/// registers (about 4 cycles a step).
pub(crate) const STEPS_PER_CALL: u64 = 8_000;

/// The Rust spin: the chain of csrc/calibrate.c.
#[inline(never)]
pub(crate) fn rust_spin(mut x: u64, iters: u64) -> u64 {
    for _ in 0..iters {
        x = ffi::keep(
            x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407),
        );
    }
    x
}

/// (Rust steps, C steps) per call for an input.
pub(crate) fn split(input: &Input) -> (u64, u64) {
    let c = STEPS_PER_CALL * input.value / 100;
    (STEPS_PER_CALL - c, c)
}

/// The calibration loop with planted work on both sides.
#[inline(never)]
pub fn both_sides_loop(mut x: u64, rust_steps: u64, c_steps: u64, n: u64) -> u64 {
    for _ in 0..n {
        x = rust_spin(x, rust_steps);
        x = ffi::spin(x, c_steps);
    }
    x
}

const fn input(name: &'static str, c_percent: u64) -> Input {
    Input { name, value: c_percent, calls_per_iteration: 100 }
}

pub(super) fn workload() -> Workload {
    Workload {
        name: "calibrate",
        about: "planted Rust and C spins per call, to check samplers' attribution",
        inputs: vec![input("c50", 50), input("c20", 20), input("c80", 80)],
        share: super::nothing_shared,
        variants: vec![
            Variant {
                name: "c-only",
                role: Role::Baseline,
                about: "only the C share of the spin, one call per item",
                prepare: |input, _, _| {
                    let (_, c) = black_box(split(input));
                    runner(move |n| (0..n).fold(1, |x, _| ffi::spin(x, c)))
                },
                placed: false,
                needs: None,
            },
            Variant {
                name: "both",
                role: Role::PerCall,
                about: "the Rust spin then the C spin, per item",
                prepare: |input, _, _| {
                    let (r, c) = black_box(split(input));
                    runner(move |n| both_sides_loop(1, r, c, n))
                },
                placed: false,
                needs: None,
            },
            Variant {
                name: "rust-only",
                role: Role::Reference,
                about: "only the Rust share of the spin",
                prepare: |input, _, _| {
                    let (r, _) = black_box(split(input));
                    runner(move |n| (0..n).fold(1, |x, _| rust_spin(x, r)))
                },
                placed: false,
                needs: None,
            },
        ],
        loops: Vec::new(),
    }
}
