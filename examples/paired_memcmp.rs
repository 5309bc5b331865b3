//! Measuring your own per-call vs batched pair with ffiprof's paired engine, on a case
//! that is not in ffiprof's catalogue: comparing two arrays of `u32` with libc's
//! `memcmp`, once per element across the boundary, or in one call for the whole range.
//!
//! The engine takes plain closures: a baseline (made twice, for the A/A control) and the
//! variants, all reading the same data. Run with `cargo run --release --example
//! paired_memcmp`.

use std::ffi::{c_int, c_void};
use std::time::Duration;

use ffiprof::measure::paired::{Case, Options};
use ffiprof::workload::Role;

extern "C" {
    fn memcmp(a: *const c_void, b: *const c_void, n: usize) -> c_int;
}

/// `memcmp` over two equally long slices of `u32`.
fn c_memcmp(a: &[u32], b: &[u32]) -> c_int {
    assert_eq!(a.len(), b.len());
    // SAFETY: both pointers are valid for reads of the whole length of their slices,
    // which is the byte count passed.
    unsafe { memcmp(a.as_ptr().cast(), b.as_ptr().cast(), std::mem::size_of_val(a)) }
}

/// The elements an item `i` compares: the data are used round and round.
const LEN: usize = 4096;

fn main() {
    let a: Vec<u32> = (0..LEN as u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
    let b = a.clone();
    let (a, b) = (&a, &b);

    // Batched: n items in as few C calls as the data allow (one per pass over them).
    let batched = || {
        move |n: u64| {
            let mut equal = 0u64;
            let mut left = n as usize;
            while left > 0 {
                let k = left.min(LEN);
                equal += u64::from(c_memcmp(&a[..k], &b[..k]) == 0) * k as u64;
                left -= k;
            }
            equal
        }
    };
    // Per-call: one C call per element.
    let per_call = move |n: u64| {
        let mut equal = 0u64;
        for i in 0..n as usize {
            let j = i % LEN;
            equal += u64::from(c_memcmp(&a[j..j + 1], &b[j..j + 1]) == 0);
        }
        equal
    };
    // Reference: the same comparison in Rust, no crossing, pass by pass like batched.
    let in_rust = move |n: u64| {
        let mut equal = 0u64;
        let mut left = n as usize;
        while left > 0 {
            let k = left.min(LEN);
            equal += a[..k].iter().zip(&b[..k]).filter(|(x, y)| x == y).count() as u64;
            left -= k;
        }
        equal
    };

    let mut options = Options::default();
    options.budget = Duration::from_secs(3);
    let case = Case::new("batched", options, batched)
        .variant("per-call", Role::PerCall, per_call)
        .variant("in-rust", Role::Reference, in_rust)
        .run();

    let s = &case.summary;
    println!("{} rounds ({}), noise floor ±{:.2}%", s.rounds, s.stop, s.noise_floor * 100.0);
    for v in &case.variants {
        let ns = v.ns_per_call;
        print!("{:<18} {:>8.3} ns/call [{:.3}, {:.3}]", v.name, ns.estimate, ns.lower, ns.upper);
        if let Some(r) = v.ratio {
            let verdict =
                if case.measurable(&r) { "measurable" } else { "no measurable difference" };
            print!("  ratio {:.3} [{:.3}, {:.3}]  {verdict}", r.estimate, r.lower, r.upper);
        }
        println!();
    }
    if s.too_noisy {
        println!("the control differed from the baseline: the machine was too noisy for this case");
    }
}
