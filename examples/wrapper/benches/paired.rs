//! The paired table of mixsum's pair: one call into C per item against one call for the
//! whole slice (and the same work in Rust), timed in interleaved rounds with an A/A
//! control, as `ffiprof bench` times its catalogue. `cargo bench --bench paired` prints
//! the table; `-- --json FILE` writes it as JSON too; `-- --quick` is shorter.

use ffiprof::harness::Harness;
use ffiprof::measure::paired::Case;
use ffiprof::workload::Role;

/// Items per pass: a closure asked for `n` items goes round the data as often as needed.
const LEN: usize = 4096;

/// `n` items' worth of `f` over `xs`, pass by pass.
fn passes(xs: &[u64], n: u64, f: impl Fn(&[u64]) -> u64) -> u64 {
    let mut left = n as usize;
    let mut sum = 0u64;
    while left > 0 {
        let k = left.min(xs.len());
        sum = sum.wrapping_add(f(&xs[..k]));
        left -= k;
    }
    sum
}

fn main() {
    let xs: Vec<u64> = (0..LEN as u64).collect();
    let xs = &xs;
    let mut bench = Harness::from_args();
    bench.case("mix", "4096", |options| {
        Case::new("batched", options, || move |n| passes(xs, n, mixsum::mix_all))
            .variant("per-call", Role::PerCall, move |n| passes(xs, n, mixsum::mix_each))
            .variant("in-rust", Role::Reference, move |n| passes(xs, n, mixsum::mix_in_rust))
    });
    bench.finish();
}
