//! The in-process sampler of the `pprof` crate: `setitimer(ITIMER_PROF)` delivers SIGPROF,
//! and its handler unwinds with the default (DWARF, libgcc) unwinder, which keeps the leaf
//! and frameless C frames exact. Its `frame-pointer` feature would lose the leaf frame, so
//! it is not used.

use std::time::Instant;

use super::{Event, Options, RawProfile, RawSample, Sampler, SamplerKind, Unwind};
use crate::error::{Error, Result};

/// Samples with pprof-rs.
pub(crate) struct PprofSampler {
    frequency: u64,
    guard: Option<(::pprof::ProfilerGuard<'static>, Instant, u64)>,
}

impl PprofSampler {
    /// A sampler at `options.frequency` (the kernel tick caps the rate it reaches).
    pub(crate) fn new(options: &Options) -> Self {
        PprofSampler { frequency: options.frequency, guard: None }
    }
}

impl Sampler for PprofSampler {
    fn kind(&self) -> SamplerKind {
        SamplerKind::Pprof
    }

    fn start(&mut self) -> Result<()> {
        let hz = i32::try_from(self.frequency).unwrap_or(i32::MAX);
        let guard = ::pprof::ProfilerGuardBuilder::default()
            .frequency(hz)
            .build()
            .map_err(|e| Error::Pprof(e.to_string()))?;
        self.guard = Some((guard, Instant::now(), crate::ffi::current_pthread()));
        Ok(())
    }

    fn stop(&mut self) -> Result<RawProfile> {
        let (guard, started, thread) = self
            .guard
            .take()
            .ok_or_else(|| Error::Internal("pprof sampler stopped before it started".into()))?;
        let window = started.elapsed();
        let report = guard.report().build_unresolved().map_err(|e| Error::Pprof(e.to_string()))?;
        drop(guard);
        // setitimer(ITIMER_PROF) interrupts whichever thread is on the CPU; keep the
        // samples of the thread that runs the workload.
        let mut other_threads = 0u64;
        let mut samples = Vec::new();
        for (frames, count) in report.data.iter().filter(|(_, count)| **count > 0) {
            if frames.thread_id != thread {
                other_threads += *count as u64;
                continue;
            }
            samples.push(RawSample {
                addrs: frames.frames.iter().map(|f| f.ip() as u64).collect(),
                weight: *count as u64,
                thread: frames.thread_id as u32,
            });
        }
        let mut notes = tick_note(self.frequency);
        if other_threads > 0 {
            notes.push(format!("{other_threads} samples of other threads left out"));
        }
        Ok(RawProfile {
            sampler: SamplerKind::Pprof,
            event: Event::Setitimer,
            unwind: Unwind::SignalHandler,
            requested_hz: self.frequency,
            window,
            lost: 0,
            notes,
            samples,
            has_signal_frames: true,
        })
    }
}

/// setitimer cannot fire more often than the kernel ticks: say so when asked for more.
fn tick_note(frequency: u64) -> Vec<String> {
    if frequency > 250 {
        vec![format!(
            "pprof samples on setitimer, which fires at most once per kernel tick \
             (CONFIG_HZ, often 250): asked for {frequency} Hz"
        )]
    } else {
        Vec::new()
    }
}
