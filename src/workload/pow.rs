//! `pow`: the seeds' experiment. libm `pow` called from a Rust loop once per iteration,
//! against one call into a C loop that calls `pow`.

use std::hint::black_box;

use super::{
    per_call_xlto, placed, runner, Input, LoopCode, MeasuredLoop, Placed, Role, Variant, Workload,
};
use crate::ffi;

/// `a = pow(a, 3)` from `a = 0`: the seeds' chain, which stays at 0 (a fast path in libm).
const CUBE_FROM_ZERO: u64 = 0;
/// `a = pow(a, 0.9999999)` from 1.5: no overflow, no special case, real work every call.
const CHAIN: u64 = 1;

fn start(input: &Input) -> (f64, f64) {
    match input.value {
        CUBE_FROM_ZERO => (0.0, 3.0),
        _ => (1.5, 0.999_999_9),
    }
}

/// The per-call loop: one FFI call to libm per iteration, at placement `K`. Never
/// inlined, so profiles show it by this name between the runner and `pow`.
#[inline(never)]
pub(super) fn per_call_loop<const K: usize>(mut a: f64, e: f64, n: u64) -> f64 {
    ffi::place::<K>();
    for _ in 0..n {
        a = ffi::libm_pow(a, e);
    }
    a
}

const PER_CALL: Placed<fn(f64, f64, u64) -> f64> = placed!(per_call_loop);

pub(super) fn workload() -> Workload {
    Workload {
        name: "pow",
        about: "libm pow once per Rust loop iteration vs one call into a C loop (the seeds' cgo experiment)",
        inputs: vec![
            Input { name: "cube-from-0", value: CUBE_FROM_ZERO, calls_per_iteration: 2_000 },
            Input { name: "chain", value: CHAIN, calls_per_iteration: 1_000 },
        ],
        share: super::nothing_shared,
        variants: vec![
            Variant {
                name: "batched",
                role: Role::Baseline,
                about: "one call into a C loop that calls pow n times",
                prepare: |input, _, at| {
                    let (a, e) = black_box(start(input));
                    runner(move |n| ffi::pow_loop(at.index(), a, e, n).to_bits())
                },
                placed: true,
                needs: None,
            },
            Variant {
                name: "per-call",
                role: Role::PerCall,
                about: "a Rust loop calling libm pow through FFI n times",
                prepare: |input, _, at| {
                    let ((a, e), f) = (black_box(start(input)), PER_CALL[at.index()]);
                    runner(move |n| f(a, e, n).to_bits())
                },
                placed: true,
                needs: None,
            },
            per_call_xlto::variant(
                "the same Rust loop built with cross-language LTO into a shared library; pow \
                 is glibc's libm, loaded at run time, which no LTO reaches",
                |input, _, at| {
                    let (lib, (a, e)) = (per_call_xlto::library()?, black_box(start(input)));
                    runner(move |n| lib.pow(at, a, e, n).to_bits())
                },
            ),
        ],
        loops: vec![
            MeasuredLoop::new("ffiprof_pow_loop", &["batched"], LoopCode::C),
            MeasuredLoop::new(
                "pow::per_call_loop",
                &["per-call"],
                LoopCode::Rust(|| PER_CALL.map(|f| f as usize)),
            ),
            MeasuredLoop::new("ffiprof_xlto_pow", &[per_call_xlto::NAME], LoopCode::CrossLanguageLto),
        ],
    }
}
