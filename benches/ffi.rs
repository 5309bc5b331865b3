//! `cargo bench`: the whole workload catalogue under criterion, with the settings
//! `ffiprof bench` uses. `cargo bench -- pow` runs one workload. With `-- --profile-time
//! SECONDS`, each benchmark is sampled and gets a flamegraph in
//! `target/criterion/<group>/<id>/profile/`.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::profiler::Profiler;
use criterion::{BenchmarkId, Criterion, Throughput};
use ffiprof::profile::{unix_nanos_now, write_profile_files};
use ffiprof::sample::{self, Sampler, SamplerKind};
use ffiprof::stacks::ProcessSymbolizer;
use ffiprof::workload::{self, Placement, Workload};

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .nresamples(50_000)
        .confidence_level(ffiprof::measure::CONFIDENCE_LEVEL)
        .without_plots()
        .with_profiler(BenchProfiler::default())
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

/// `--profile-time SECONDS`: criterion runs each benchmark for that long between
/// `start_profiling` and `stop_profiling`; this samples the window with ffiprof's perf
/// sampler (or pprof where perf_event_open is refused) and writes a flamegraph, folded
/// stacks and a pprof profile into the benchmark's `profile/` directory.
#[derive(Default)]
struct BenchProfiler {
    options: sample::Options,
    running: Option<(Box<dyn Sampler>, i64)>,
    symbolizer: ProcessSymbolizer,
}

fn started(kind: SamplerKind, options: &sample::Options) -> ffiprof::Result<Box<dyn Sampler>> {
    let mut s = sample::sampler(kind, options)?;
    s.start()?;
    Ok(s)
}

impl Profiler for BenchProfiler {
    fn start_profiling(&mut self, benchmark_id: &str, _benchmark_dir: &Path) {
        let sampler = started(SamplerKind::Perf, &self.options).or_else(|perf_err| {
            eprintln!("ffiprof: {benchmark_id}: {perf_err}; sampling with pprof instead");
            started(SamplerKind::Pprof, &self.options)
        });
        match sampler {
            Ok(s) => self.running = Some((s, unix_nanos_now())),
            Err(e) => eprintln!("ffiprof: {benchmark_id}: no sampler could start: {e}"),
        }
    }

    fn stop_profiling(&mut self, benchmark_id: &str, benchmark_dir: &Path) {
        let Some((mut sampler, start)) = self.running.take() else { return };
        let written = sampler.stop().and_then(|raw| {
            let name = format!("{}.{}", benchmark_id.replace('/', "."), raw.sampler);
            write_profile_files(
                &raw,
                &name,
                benchmark_id,
                start,
                benchmark_dir,
                &mut self.symbolizer,
            )
        });
        match written {
            Ok(w) => eprintln!(
                "ffiprof: {benchmark_id}: {} samples, C side {:.1}%, flamegraph {}",
                w.profile.summary.samples,
                w.profile.summary.c_side_share * 100.0,
                benchmark_dir.join(&w.profile.files.flamegraph).display()
            ),
            Err(e) => eprintln!("ffiprof: {benchmark_id}: profiling failed: {e}"),
        }
    }
}
