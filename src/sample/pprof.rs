//! The in-process sampler of the `pprof` crate: `setitimer(ITIMER_PROF)` delivers SIGPROF,
//! and its handler unwinds with the default (DWARF, libgcc) unwinder, which keeps the leaf
//! and frameless C frames exact. Its `frame-pointer` feature would lose the leaf frame, so
//! it is not used. The timer fires each time the process has used one interval of CPU
//! (rounded up to the kernel's tick), so each sample stands for the process's CPU time
//! over the window divided by all its samples, whatever the frequency asked.

use std::time::Instant;

use super::{Event, Options, RawProfile, RawSample, Sampler, SamplerKind, Unwind};
use crate::error::{Error, Result};

/// Samples with pprof-rs.
pub(crate) struct PprofSampler {
    frequency: u64,
    guard: Option<(::pprof::ProfilerGuard<'static>, Instant, u64, u64)>,
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
        let cpu = crate::ffi::process_cpu_ns();
        self.guard = Some((guard, Instant::now(), crate::ffi::current_pthread(), cpu));
        Ok(())
    }

    fn stop(&mut self) -> Result<RawProfile> {
        let (guard, started, thread, cpu_at_start) = self
            .guard
            .take()
            .ok_or_else(|| Error::Internal("pprof sampler stopped before it started".into()))?;
        let window = started.elapsed();
        let cpu = crate::ffi::process_cpu_ns().saturating_sub(cpu_at_start);
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
                cpu_nanos: 0,
                thread: frames.thread_id as u32,
            });
        }
        let all = samples.iter().map(|s| s.weight).sum::<u64>() + other_threads;
        for s in &mut samples {
            s.cpu_nanos = (cpu as u128 * s.weight as u128 / all.max(1) as u128) as u64;
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
