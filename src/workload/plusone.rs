//! `plusone`: the cheapest C function there is, so the call is all there is to measure.

use std::hint::black_box;

use super::{runner, Input, Role, Variant, Workload};
use crate::ffi;

const START: i32 = 7;

/// The per-call loop: the statically linked C `plusone` once per iteration (also the
/// `dylib` workload's `per-call-static`). Never inlined, so profiles show it by name.
#[inline(never)]
pub(super) fn per_call_loop(mut x: i32, n: u64) -> i32 {
    for _ in 0..n {
        x = ffi::plusone(x);
    }
    x
}

pub(super) fn workload() -> Workload {
    Workload {
        name: "plusone",
        about: "a trivial non-inlinable C function: per-call from Rust vs a C loop vs an inlined Rust loop",
        inputs: vec![Input { name: "int", value: 0, calls_per_iteration: 10_000 }],
        share: super::nothing_shared,
        variants: vec![
            Variant {
                name: "batched",
                role: Role::Baseline,
                about: "one call into a C loop that calls plusone n times",
                prepare: |_, _| {
                    let start = black_box(START);
                    runner(move |n| ffi::plusone_loop(start, n) as u32 as u64)
                },
            },
            Variant {
                name: "per-call",
                role: Role::PerCall,
                about: "a Rust loop calling the C plusone through FFI n times",
                prepare: |_, _| {
                    let start = black_box(START);
                    runner(move |n| per_call_loop(start, n) as u32 as u64)
                },
            },
            Variant {
                name: "rust-inlined",
                role: Role::Reference,
                about: "the same +1 written in Rust and inlined; black_box keeps one add per item",
                prepare: |_, _| {
                    let start = black_box(START);
                    runner(move |n| {
                        let mut x = start;
                        for _ in 0..n {
                            x = black_box(x.wrapping_add(1));
                        }
                        x as u32 as u64
                    })
                },
            },
        ],
    }
}
