//! `cargo bench -- --profile-time SECONDS`: criterion runs each benchmark for that long
//! between `start_profiling` and `stop_profiling`; this adapter samples the window with
//! ffiprof's perf sampler (or pprof where perf_event_open is refused) and writes a
//! flamegraph, folded stacks and a pprof profile into criterion's `profile/` directory
//! of the benchmark.

use std::path::Path;

use criterion::profiler::Profiler;

use crate::profile::{unix_nanos_now, write_profile_files};
use crate::sample::{self, Sampler, SamplerKind};
use crate::symbol::ProcessSymbolizer;

/// The criterion profiler of ffiprof.
#[derive(Default)]
pub struct BenchProfiler {
    options: sample::Options,
    running: Option<(Box<dyn Sampler>, i64)>,
    symbolizer: ProcessSymbolizer,
}

fn started(kind: SamplerKind, options: &sample::Options) -> crate::Result<Box<dyn Sampler>> {
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
