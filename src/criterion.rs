//! `ffiprof::criterion::Profiler` (cargo feature `criterion`): boundary flamegraphs for any
//! crate's criterion benchmarks.
//!
//! ```text
//! let mut c = Criterion::default().with_profiler(ffiprof::criterion::Profiler::default());
//! ```
//!
//! `cargo bench -- --profile-time SECONDS` then runs each benchmark for that long between
//! `start_profiling` and `stop_profiling`; the window is sampled with ffiprof's perf
//! sampler (DWARF unwinding, exact through frameless C), or with pprof where
//! perf_event_open is refused (said once), and criterion's
//! `target/criterion/<group>/<id>/profile/` gets the flamegraph coloured by language
//! (`flamegraphs/`), folded stacks (`folded/`), a pprof profile (`profiles/`) and
//! `summary.json`: samples, the C side's share, and the Rust functions that call into C
//! with their share of the samples.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::profile::{unix_nanos_now, write_profile_files, SamplerProfile};
use crate::sample::{self, Sampler, SamplerKind};
use crate::stacks::{ProcessSymbolizer, Profile};

/// criterion's profiler hook, sampling across the boundary.
#[derive(Default)]
pub struct Profiler {
    options: sample::Options,
    running: Option<(Box<dyn Sampler>, i64)>,
    symbolizer: ProcessSymbolizer,
    /// Why perf could not sample, once said.
    perf_refused: Option<String>,
}

impl Profiler {
    /// A profiler with these sampler settings.
    pub fn with_options(options: sample::Options) -> Profiler {
        Profiler { options, ..Profiler::default() }
    }
}

/// A Rust function that calls into C, and the share of samples under that call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RustCaller {
    /// The Rust function (the last Rust frame before a C-side one).
    pub function: String,
    /// Share of all samples taken in C under it.
    pub share: f64,
}

/// `summary.json` of one benchmark's profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The benchmark.
    pub benchmark: String,
    /// Where the samples fell, and the files.
    pub profile: SamplerProfile,
    /// The Rust functions calling into C, the most samples first.
    pub rust_callers: Vec<RustCaller>,
}

/// The Rust functions that call into C, weighted by the samples taken on the C side under
/// each (the first Rust-to-C step of each stack, root first).
pub fn rust_callers(profile: &Profile) -> Vec<RustCaller> {
    let total = profile.total().max(1) as f64;
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    for stack in profile.stacks() {
        let frames: Vec<_> = stack.frames.iter().map(|&f| profile.frame(f)).collect();
        let step = frames
            .windows(2)
            .find(|w| w[0].language == crate::stacks::Language::Rust && w[1].language.is_c_side());
        if let Some(w) = step {
            *by.entry(w[0].function.clone()).or_default() += stack.weight;
        }
    }
    let mut callers: Vec<RustCaller> = by
        .into_iter()
        .map(|(function, w)| RustCaller { function, share: w as f64 / total })
        .collect();
    callers.sort_by(|a, b| b.share.total_cmp(&a.share).then_with(|| a.function.cmp(&b.function)));
    callers
}

fn started(kind: SamplerKind, options: &sample::Options) -> crate::Result<Box<dyn Sampler>> {
    let mut s = sample::sampler(kind, options)?;
    s.start()?;
    Ok(s)
}

impl criterion::profiler::Profiler for Profiler {
    fn start_profiling(&mut self, benchmark_id: &str, _benchmark_dir: &Path) {
        let perf = match &self.perf_refused {
            Some(_) => None,
            None => Some(started(SamplerKind::Perf, &self.options)),
        };
        let sampler = match perf {
            Some(Ok(s)) => Ok(s),
            Some(Err(e)) => {
                eprintln!("ffiprof: {e}; sampling every benchmark with pprof instead");
                self.perf_refused = Some(e.to_string());
                started(SamplerKind::Pprof, &self.options)
            }
            None => started(SamplerKind::Pprof, &self.options),
        };
        match sampler {
            Ok(s) => self.running = Some((s, unix_nanos_now())),
            Err(e) => eprintln!("ffiprof: {benchmark_id}: no sampler could start: {e}"),
        }
    }

    fn stop_profiling(&mut self, benchmark_id: &str, benchmark_dir: &Path) {
        let Some((mut sampler, start)) = self.running.take() else { return };
        let written = sampler.stop().and_then(|raw| {
            let name = format!("{}.{}", benchmark_id.replace('/', "."), raw.sampler);
            let w = write_profile_files(
                &raw,
                &name,
                benchmark_id,
                start,
                benchmark_dir,
                &mut self.symbolizer,
            )?;
            let summary = Summary {
                benchmark: benchmark_id.to_owned(),
                profile: w.profile.clone(),
                rust_callers: rust_callers(&w.stacks),
            };
            let json = serde_json::to_string_pretty(&summary).map_err(|source| {
                crate::Error::Serialize { what: "the benchmark's summary.json", source }
            })?;
            crate::output::write_under(benchmark_dir, Path::new("summary.json"), json.as_bytes())?;
            Ok(summary)
        });
        match written {
            Ok(s) => eprintln!(
                "ffiprof: {benchmark_id}: {} samples, C side {:.1}%{}, flamegraph {}",
                s.profile.summary.samples,
                s.profile.summary.c_side_share * 100.0,
                s.rust_callers
                    .first()
                    .map_or(String::new(), |c| format!(" (most under {})", c.function)),
                benchmark_dir.join(&s.profile.files.flamegraph).display()
            ),
            Err(e) => eprintln!("ffiprof: {benchmark_id}: profiling failed: {e}"),
        }
    }
}
