//! Samplers: stacks of raw addresses taken while a workload runs.
//!
//! A sampler covers one window: [`Sampler::start`] right before the workload's first
//! iteration, [`Sampler::stop`] right after its last. It returns addresses only; turning
//! them into functions and languages ([`crate::stacks`]) happens once,
//! after sampling, outside any signal handler.
//!
//! Two samplers:
//! - [`pprof`]: the `pprof` crate, in-process, on `SIGPROF` from
//!   `setitimer`. Its rate is capped by the kernel tick (250 Hz on a 250 Hz kernel).
//! - [`perf`]: `perf_event_open` on hardware cycles where the machine has them,
//!   else on the cpu-clock software event; each sample carries the user registers and a
//!   copy of the user stack, unwound with DWARF CFI ([`dwarf`]), so frameless C code
//!   keeps its caller.

pub(crate) mod dwarf;
pub(crate) mod perf;
pub(crate) mod pprof;
pub(crate) mod recover;

pub use perf::fix_for;

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::workload::Runner;

/// One sampled stack: addresses leaf first. `addrs[0]` is the exact instruction pointer;
/// every later address is a return address (the instruction after a call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSample {
    /// Leaf first.
    pub addrs: Vec<u64>,
    /// How many samples this stack stands for.
    pub weight: u64,
    /// The CPU time they stand for, nanoseconds (0 where the event does not measure it).
    pub cpu_nanos: u64,
    /// Thread id.
    pub thread: u32,
}

/// Which sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerKind {
    /// The pprof crate, in-process.
    Pprof,
    /// perf_event_open.
    Perf,
}

impl SamplerKind {
    /// Every sampler.
    pub const ALL: [SamplerKind; 2] = [SamplerKind::Pprof, SamplerKind::Perf];

    /// Its name on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            SamplerKind::Pprof => "pprof",
            SamplerKind::Perf => "perf",
        }
    }
}

impl fmt::Display for SamplerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The event a sampler samples on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// Hardware CPU cycles (perf, where the machine has a PMU).
    #[serde(rename = "cycles")]
    Cycles,
    /// The cpu-clock software event (perf, without hardware counters).
    #[serde(rename = "cpu-clock")]
    CpuClock,
    /// SIGPROF from `setitimer(ITIMER_PROF)` (pprof).
    #[serde(rename = "setitimer(ITIMER_PROF)")]
    Setitimer,
}

impl Event {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Event::Cycles => "cycles",
            Event::CpuClock => "cpu-clock",
            Event::Setitimer => "setitimer(ITIMER_PROF)",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a profile's stacks were unwound. Written in reports as a phrase
/// (`"DWARF CFI (framehop) over 16384 bytes of copied user stack"`), read back from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Unwind {
    /// perf: user registers and a copy of the user stack, unwound with DWARF CFI.
    Dwarf {
        /// Bytes of user stack copied per sample.
        stack_bytes: u32,
    },
    /// perf: the kernel's frame-pointer callchain.
    KernelFramePointer,
    /// pprof: libgcc's DWARF unwinder, inside the signal handler.
    SignalHandler,
}

const DWARF_PREFIX: &str = "DWARF CFI (framehop) over ";
const DWARF_SUFFIX: &str = " bytes of copied user stack";
const KERNEL_FP: &str = "kernel frame-pointer callchain";
const SIGNAL_HANDLER: &str = "libgcc DWARF unwinder in the SIGPROF handler";

impl fmt::Display for Unwind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unwind::Dwarf { stack_bytes } => write!(f, "{DWARF_PREFIX}{stack_bytes}{DWARF_SUFFIX}"),
            Unwind::KernelFramePointer => f.write_str(KERNEL_FP),
            Unwind::SignalHandler => f.write_str(SIGNAL_HANDLER),
        }
    }
}

impl From<Unwind> for String {
    fn from(u: Unwind) -> String {
        u.to_string()
    }
}

impl TryFrom<String> for Unwind {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Unwind, String> {
        match s.as_str() {
            KERNEL_FP => Ok(Unwind::KernelFramePointer),
            SIGNAL_HANDLER => Ok(Unwind::SignalHandler),
            _ => s
                .strip_prefix(DWARF_PREFIX)
                .and_then(|rest| rest.strip_suffix(DWARF_SUFFIX))
                .and_then(|n| n.parse().ok())
                .map(|stack_bytes| Unwind::Dwarf { stack_bytes })
                .ok_or_else(|| format!("unknown unwinding `{s}`")),
        }
    }
}

/// How the perf sampler gets a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PerfUnwind {
    /// User registers and a copy of the user stack, unwound with DWARF CFI: exact through
    /// frameless code.
    Dwarf,
    /// The kernel's frame-pointer callchain: cheaper, but skips the caller of a function
    /// that keeps no frame pointer (libm's pow, for one).
    FramePointer,
}

/// Sampler settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Options {
    /// Samples per second asked for. Default: 1000.
    pub frequency: u64,
    /// perf's unwinding. Default: [`PerfUnwind::Dwarf`].
    pub perf_unwind: PerfUnwind,
    /// Bytes of user stack copied with each perf sample (DWARF mode). Default: 16384.
    pub stack_bytes: u32,
}

impl Default for Options {
    /// The one place the samplers' defaults are written: `profile`, `record`, `cost` and
    /// the command line read them from here.
    fn default() -> Self {
        Options { frequency: 1000, perf_unwind: PerfUnwind::Dwarf, stack_bytes: 16 * 1024 }
    }
}

/// Largest stack copy the kernel accepts (a multiple of 8 below 64 KiB).
pub const MAX_STACK_BYTES: u32 = 65528;

/// Highest frequency ffiprof accepts.
pub const MAX_FREQUENCY: u64 = 100_000;

impl Options {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.frequency == 0 || self.frequency > MAX_FREQUENCY {
            return Err(Error::InvalidOption(format!(
                "frequency {} Hz is out of range: give 1 to {MAX_FREQUENCY} Hz",
                self.frequency
            )));
        }
        Ok(())
    }
}

/// What a sampler recorded in one window.
#[derive(Debug, Clone)]
pub struct RawProfile {
    /// Which sampler.
    pub sampler: SamplerKind,
    /// The event sampled.
    pub event: Event,
    /// How stacks were unwound.
    pub unwind: Unwind,
    /// Frequency asked for, Hz.
    pub requested_hz: u64,
    /// Length of the window.
    pub window: Duration,
    /// Samples the kernel reported lost (perf); 0 where the sampler cannot know.
    pub lost: u64,
    /// Things the reader should know (fallbacks, limits).
    pub notes: Vec<String>,
    /// The stacks.
    pub samples: Vec<RawSample>,
    /// True when each stack still starts with the signal handler's own frames, which
    /// symbolization trims (pprof samples from inside its SIGPROF handler).
    pub has_signal_frames: bool,
}

impl RawProfile {
    /// Total weight of all samples.
    pub fn total_weight(&self) -> u64 {
        self.samples.iter().map(|s| s.weight).sum()
    }
}

/// Something that samples this process for one window.
pub trait Sampler {
    /// Which sampler this is.
    fn kind(&self) -> SamplerKind;
    /// Starts sampling.
    fn start(&mut self) -> Result<()>;
    /// Stops sampling and returns what was recorded.
    fn stop(&mut self) -> Result<RawProfile>;
}

/// Creates a sampler.
pub fn sampler(kind: SamplerKind, options: &Options) -> Result<Box<dyn Sampler>> {
    options.validate()?;
    Ok(match kind {
        SamplerKind::Pprof => Box::new(pprof::PprofSampler::new(options)),
        SamplerKind::Perf => Box::new(perf::PerfSampler::new(options)?),
    })
}

/// Runs `runner` in rounds of `calls` until `duration` has passed, under `sampler`; the
/// window covers the workload's iterations only. Returns the profile and the calls made.
pub fn record(
    sampler: &mut dyn Sampler,
    runner: &mut dyn Runner,
    calls: u64,
    duration: Duration,
) -> Result<(RawProfile, u64)> {
    let mut made = 0u64;
    sampler.start()?;
    let start = Instant::now();
    while start.elapsed() < duration {
        std::hint::black_box(runner.run(calls));
        made += calls;
    }
    let profile = sampler.stop()?;
    Ok((profile, made))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwinding_reads_back_what_it_writes() {
        for u in [
            Unwind::Dwarf { stack_bytes: 16384 },
            Unwind::KernelFramePointer,
            Unwind::SignalHandler,
        ] {
            assert_eq!(Unwind::try_from(String::from(u)), Ok(u));
        }
        assert_eq!(
            serde_json::to_string(&Unwind::Dwarf { stack_bytes: 8 }).unwrap(),
            "\"DWARF CFI (framehop) over 8 bytes of copied user stack\""
        );
        assert!(Unwind::try_from("sideways".to_owned()).is_err());
        assert_eq!(serde_json::to_string(&Event::CpuClock).unwrap(), "\"cpu-clock\"");
    }
}
