//! `cargo bench`: the whole workload catalogue under criterion, with the settings
//! `ffiprof bench` uses. `cargo bench -- pow` runs one workload. With `-- --profile-time
//! SECONDS`, each benchmark is sampled by the public `ffiprof::criterion::Profiler` (the one
//! a user's benches take) and gets a flamegraph, folded stacks, a pprof profile and a
//! summary in `target/criterion/<group>/<id>/profile/`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use ffiprof::workload::{self, Placement, Workload};

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .nresamples(50_000)
        .confidence_level(ffiprof::measure::CONFIDENCE_LEVEL)
        .without_plots()
        .with_profiler(ffiprof::criterion::Profiler::default())
        .configure_from_args();
    if let Err(e) = register(&mut c, &workload::catalogue()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    c.final_summary();
}

/// Registers (and, as criterion does, runs) one benchmark per workload, input and variant:
/// group = workload, id = `variant/input`, throughput = calls per iteration, so criterion
/// reports time per call.
fn register(c: &mut Criterion, workloads: &[Workload]) -> ffiprof::Result<()> {
    for workload in workloads {
        let mut group = c.benchmark_group(workload.name);
        for input in &workload.inputs {
            let n = input.calls_per_iteration;
            group.throughput(Throughput::Elements(n));
            let shared = (workload.share)(input);
            // Placement 0 of each variant: criterion times one copy of each loop; the
            // paired table that follows draws among all of them.
            for variant in workload.available_variants().0 {
                let mut runner = (variant.prepare)(input, &shared, Placement::default())?;
                group.bench_function(BenchmarkId::new(variant.name, input.name), |b| {
                    b.iter(|| runner.run(black_box(n)))
                });
            }
        }
        group.finish();
    }
    Ok(())
}
