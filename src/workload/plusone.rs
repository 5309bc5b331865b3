//! `plusone`: the cheapest C function there is, so the call is all there is to measure.

use std::hint::black_box;

use super::{
    per_call_xlto, placed, runner, Input, LoopCode, MeasuredLoop, Placed, Role, Variant, Workload,
};
use crate::ffi;

const START: i32 = 7;

/// The per-call loop: the statically linked C `plusone` once per iteration (also the
/// `dylib` workload's `per-call-static`), at placement `K`. Never inlined, so profiles
/// show it by name.
#[inline(never)]
pub(super) fn per_call_loop<const K: usize>(mut x: i32, n: u64) -> i32 {
    ffi::place::<K>();
    for _ in 0..n {
        x = ffi::keep(ffi::plusone(x));
    }
    x
}

/// The per-call loop at every placement.
pub(super) const PER_CALL: Placed<fn(i32, u64) -> i32> = placed!(per_call_loop);

/// The same `+1` in Rust, inlined; [`ffi::keep`] keeps one add per item, in a register.
#[inline(never)]
fn rust_inlined<const K: usize>(mut x: i32, n: u64) -> i32 {
    ffi::place::<K>();
    for _ in 0..n {
        x = ffi::keep(x.wrapping_add(1));
    }
    x
}

const RUST_INLINED: Placed<fn(i32, u64) -> i32> = placed!(rust_inlined);

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
                prepare: |_, _, at| {
                    let start = black_box(START);
                    runner(move |n| ffi::plusone_loop(at.index(), start, n) as u32 as u64)
                },
                placed: true,
                needs: None,
            },
            Variant {
                name: "per-call",
                role: Role::PerCall,
                about: "a Rust loop calling the C plusone through FFI n times",
                prepare: |_, _, at| {
                    let (start, f) = (black_box(START), PER_CALL[at.index()]);
                    runner(move |n| f(start, n) as u32 as u64)
                },
                placed: true,
                needs: None,
            },
            per_call_xlto::variant(
                "the same Rust loop and C plusone, built with cross-language LTO into a \
                 shared library: the optimiser may inline plusone into the loop",
                |_, _, at| {
                    let (lib, start) = (per_call_xlto::library()?, black_box(START));
                    runner(move |n| lib.plusone(at, start, n) as u32 as u64)
                },
            ),
            Variant {
                name: "rust-inlined",
                role: Role::Reference,
                about: "the same +1 written in Rust and inlined; an empty asm statement keeps one add per item",
                prepare: |_, _, at| {
                    let (start, f) = (black_box(START), RUST_INLINED[at.index()]);
                    runner(move |n| f(start, n) as u32 as u64)
                },
                placed: true,
                needs: None,
            },
        ],
        loops: vec![
            MeasuredLoop::new("ffiprof_plusone_loop", &["batched"], LoopCode::C),
            MeasuredLoop::new(
                "plusone::per_call_loop",
                &["per-call"],
                LoopCode::Rust(|| PER_CALL.map(|f| f as usize)),
            ),
            MeasuredLoop::new("ffiprof_xlto_plusone", &[per_call_xlto::NAME], LoopCode::CrossLanguageLto),
            MeasuredLoop::new(
                "plusone::rust_inlined",
                &["rust-inlined"],
                LoopCode::Rust(|| RUST_INLINED.map(|f| f as usize)),
            ),
        ],
    }
}
