//! Criterion's benchmarks of mixsum's two ways through C, with ffiprof's profiler:
//! `cargo bench --bench profiled -- --profile-time 5` writes, per benchmark, a flamegraph
//! coloured by language, folded stacks, a pprof profile and a summary (the C side's share,
//! the Rust functions calling into C) under `target/criterion/<group>/<id>/profile/`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};

fn main() {
    let mut c = Criterion::default()
        .with_profiler(ffiprof::criterion::Profiler::default())
        .configure_from_args();
    let xs: Vec<u64> = (0..4096).collect();
    let mut group = c.benchmark_group("mix");
    group.throughput(Throughput::Elements(xs.len() as u64));
    group.bench_function(BenchmarkId::new("per-call", xs.len()), |b| {
        b.iter(|| mixsum::mix_each(black_box(&xs)))
    });
    group.bench_function(BenchmarkId::new("batched", xs.len()), |b| {
        b.iter(|| mixsum::mix_all(black_box(&xs)))
    });
    group.finish();
    c.final_summary();
}
