//! The `perf_event_open` sampler (crate `perf-event2`).
//!
//! It samples the calling thread on hardware cycles where the machine has them, else on
//! the cpu-clock software event, and says which. In DWARF mode (the default) each sample
//! carries the user registers and a copy of the user stack, which a reader thread unwinds
//! at once with [`StackUnwinder`], so the ring buffer never holds more than a few
//! milliseconds of samples. In frame-pointer mode the kernel's callchain is used as is,
//! which skips the caller of any function without a frame pointer.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use libc::{EACCES, EINVAL, EMFILE, ENOSYS, EPERM};
use perf_event::data::Record as Parsed;
use perf_event::events::{Hardware, Software};
use perf_event::{Builder, SampleFlag, Sampler as PerfEventSampler};

use super::dwarf::StackUnwinder;
use super::{Event, Options, PerfUnwind, RawProfile, RawSample, Sampler, SamplerKind, Unwind};
use crate::error::{Error, Result};

/// x86_64 perf register numbers (arch/x86/include/uapi/asm/perf_regs.h).
const PERF_REG_X86_BP: u64 = 6;
const PERF_REG_X86_SP: u64 = 7;
const PERF_REG_X86_IP: u64 = 8;
const REGS_MASK: u64 = (1 << PERF_REG_X86_BP) | (1 << PERF_REG_X86_SP) | (1 << PERF_REG_X86_IP);

/// Callchain entries at or above this are context markers, not addresses
/// (PERF_CONTEXT_MAX in linux/perf_event.h).
const PERF_CONTEXT_MAX: u64 = -4095i64 as u64;

/// Ring buffer sizes tried in turn: the large one needs root or a raised
/// perf_event_mlock_kb; 512 KiB fits the default unprivileged limit.
const RING_BYTES: [usize; 2] = [8 << 20, 512 << 10];

/// Samples with perf_event_open.
pub(crate) struct PerfSampler {
    options: Options,
    /// Whether the machine lets us sample hardware cycles, and if not, why.
    hardware: std::result::Result<(), String>,
    running: Option<Running>,
}

struct Running {
    sampler: Arc<Mutex<PerfEventSampler>>,
    stop: Arc<AtomicBool>,
    reader: JoinHandle<Collected>,
    started: Instant,
    event: Event,
    /// Modules without unwind information: stacks stop where they enter one.
    no_unwind_info: Vec<String>,
}

#[derive(Default)]
struct Collected {
    samples: Vec<RawSample>,
    lost: u64,
    throttled: u64,
    unparsable: u64,
}

/// What a perf session could not use or see, told the same way by `profile`'s perf
/// sampler and by `record`.
#[derive(Debug, Default)]
pub(crate) struct Troubles {
    /// Why hardware cycles are not sampled, if they are not.
    pub hardware: Option<String>,
    /// Times the kernel throttled sampling.
    pub throttled: u64,
    /// Records that could not be parsed.
    pub unparsable: u64,
    /// Modules without unwind information that ffiprof could read.
    pub no_unwind_info: Vec<String>,
    /// Threads that ended before an event could be opened on them.
    pub vanished: u64,
}

impl Troubles {
    /// One note per trouble there was.
    pub(crate) fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self.hardware.iter().cloned().collect();
        if self.throttled > 0 {
            notes.push(format!(
                "the kernel throttled sampling {} times: the frequency is above what \
                 kernel.perf_event_max_sample_rate allows",
                self.throttled
            ));
        }
        if !self.no_unwind_info.is_empty() {
            notes.push(format!(
                "no unwind information could be read for {}: stacks stop where they enter it",
                self.no_unwind_info.join(", ")
            ));
        }
        if self.unparsable > 0 {
            notes.push(format!("{} records could not be parsed", self.unparsable));
        }
        if self.vanished > 0 {
            notes.push(format!("{} threads ended while ffiprof attached", self.vanished));
        }
        notes
    }
}

/// What to tell a person whose perf_event_open failed.
pub fn fix_for(err: &io::Error) -> String {
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    match err.raw_os_error() {
        Some(EACCES | EPERM) => format!(
            "kernel.perf_event_paranoid is {paranoid}: set it to 2 or lower \
             (sysctl kernel.perf_event_paranoid=2), or run with CAP_PERFMON; \
             inside a container, seccomp may also block perf_event_open"
        ),
        Some(EMFILE) => "too many open files (EMFILE): raise the limit with ulimit -n".to_owned(),
        Some(EINVAL) => {
            let max = std::fs::read_to_string("/proc/sys/kernel/perf_event_max_sample_rate")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into());
            format!("the kernel rejected the settings (EINVAL); kernel.perf_event_max_sample_rate is {max}: ask for a lower --frequency")
        }
        Some(ENOSYS) => "this kernel has no perf_event_open (ENOSYS)".to_owned(),
        _ => format!("kernel.perf_event_paranoid is {paranoid}"),
    }
}

/// Whether this machine lets a process sample hardware cycles; if not, the note that
/// says so and that the cpu-clock software event is sampled instead.
pub(crate) fn probe_hardware() -> std::result::Result<(), String> {
    match Builder::new(Hardware::CPU_CYCLES).build() {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "hardware cycles unavailable ({e}); sampling the cpu-clock software event instead"
        )),
    }
}

/// x86_64 perf register mask of the registers unwinding needs (bp, sp, ip, in that
/// order in a sample).
pub(crate) const UNWIND_REGS: u64 = REGS_MASK;

impl PerfSampler {
    /// Probes the machine once: hardware cycles or the cpu-clock fallback.
    pub(crate) fn new(options: &Options) -> Result<PerfSampler> {
        Ok(PerfSampler { options: options.clone(), hardware: probe_hardware(), running: None })
    }

    /// The note saying why hardware counters are not used, if they are not.
    pub(crate) fn hardware_note(&self) -> Option<&str> {
        self.hardware.as_ref().err().map(String::as_str)
    }

    fn open(&self) -> Result<(PerfEventSampler, Event)> {
        let (mut builder, event) = match self.hardware {
            Ok(()) => (Builder::new(Hardware::CPU_CYCLES), Event::Cycles),
            Err(_) => (Builder::new(Software::CPU_CLOCK), Event::CpuClock),
        };
        let mut flags = SampleFlag::IP | SampleFlag::TID | SampleFlag::TIME | SampleFlag::PERIOD;
        match self.options.perf_unwind {
            PerfUnwind::Dwarf => {
                flags |= SampleFlag::REGS_USER | SampleFlag::STACK_USER;
                builder.sample_regs_user(REGS_MASK).sample_stack_user(self.options.stack_bytes);
            }
            PerfUnwind::FramePointer => {
                flags |= SampleFlag::CALLCHAIN;
                builder.exclude_callchain_kernel(true);
            }
        }
        builder
            .observe_self()
            .any_cpu()
            .exclude_kernel(true)
            .exclude_hv(true)
            .sample_frequency(self.options.frequency)
            .sample(flags);
        let counter = builder.build().map_err(|source| Error::PerfOpen {
            event: event.to_string(),
            fix: fix_for(&source),
            source,
        })?;
        Ok((map_ring(counter, &builder, event, &RING_BYTES)?, event))
    }
}

/// Maps `counter`'s ring buffer at the first of `sizes` the machine allows (the large
/// ones need root or a raised perf_event_mlock_kb); `sampled` consumes the counter, so it
/// is rebuilt from `builder` for each further try.
pub(crate) fn map_ring(
    counter: perf_event::Counter,
    builder: &Builder<'_>,
    event: Event,
    sizes: &[usize],
) -> Result<PerfEventSampler> {
    let open_err = |source: io::Error| Error::PerfOpen {
        event: event.to_string(),
        fix: fix_for(&source),
        source,
    };
    let mut counter = Some(counter);
    let mut last = None;
    for &bytes in sizes {
        let c = match counter.take() {
            Some(c) => c,
            None => builder.build().map_err(open_err)?,
        };
        match c.sampled(bytes) {
            Ok(ring) => return Ok(ring),
            Err(e) => last = Some(e),
        }
    }
    Err(Error::PerfSetup {
        event: event.to_string(),
        step: "mapping the ring buffer",
        source: last.unwrap_or_else(|| io::Error::other("no ring buffer size worked")),
        hint: "; a larger kernel.perf_event_mlock_kb or ulimit -l may allow it".to_owned(),
    })
}

/// Drains every record in the ring buffer.
fn drain(
    event: Event,
    sampler: &Mutex<PerfEventSampler>,
    unwinder: &mut Option<StackUnwinder>,
    out: &mut Collected,
) -> usize {
    let mut guard = sampler.lock().unwrap_or_else(|e| e.into_inner());
    let mut n = 0;
    while let Some(record) = guard.next_record() {
        n += 1;
        match record.parse_record() {
            Ok(Parsed::Sample(sample)) => {
                let mut addrs = Vec::new();
                match unwinder {
                    Some(unwinder) => {
                        let regs = sample.regs_user().map(|r| r.regs.to_vec()).unwrap_or_default();
                        // Registers come in mask bit order: bp, sp, ip.
                        if let ([bp, sp, ip], Some(stack)) = (regs.as_slice(), sample.stack_user())
                        {
                            unwinder.unwind(*ip, *sp, *bp, stack, stack.len(), &mut addrs);
                        } else if let Some(ip) = sample.ip() {
                            addrs.push(ip);
                        }
                    }
                    None => {
                        if let Some(chain) = sample.callchain() {
                            addrs.extend(chain.iter().copied().filter(|a| *a < PERF_CONTEXT_MAX));
                        }
                    }
                }
                if addrs.is_empty() {
                    if let Some(ip) = sample.ip() {
                        addrs.push(ip);
                    }
                }
                // cpu-clock's period is the CPU time since the thread's last sample.
                let cpu_nanos = match event {
                    Event::CpuClock => sample.period().unwrap_or(0),
                    _ => 0,
                };
                let thread = sample.tid().unwrap_or(0);
                out.samples.push(RawSample { addrs, weight: 1, cpu_nanos, thread });
            }
            Ok(Parsed::Lost(lost)) => out.lost += lost.lost,
            Ok(Parsed::LostSamples(lost)) => out.lost += lost.lost,
            Ok(Parsed::Throttle(_)) => out.throttled += 1,
            Ok(_) => {}
            Err(_) => out.unparsable += 1,
        }
    }
    n
}

impl Sampler for PerfSampler {
    fn kind(&self) -> SamplerKind {
        SamplerKind::Perf
    }

    fn start(&mut self) -> Result<()> {
        let mut unwinder = match self.options.perf_unwind {
            PerfUnwind::Dwarf => Some(
                StackUnwinder::for_this_process()
                    .map_err(|source| Error::Read { path: "/proc/self/maps".into(), source })?,
            ),
            PerfUnwind::FramePointer => None,
        };
        let no_unwind_info = unwinder.as_ref().map(|u| u.unreadable.clone()).unwrap_or_default();
        let (sampler, event) = self.open()?;
        let sampler = Arc::new(Mutex::new(sampler));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (sampler, stop) = (sampler.clone(), stop.clone());
            std::thread::Builder::new()
                .name("ffiprof-perf-reader".into())
                .spawn(move || {
                    let mut out = Collected::default();
                    loop {
                        let stopping = stop.load(Ordering::Acquire);
                        if drain(event, &sampler, &mut unwinder, &mut out) == 0 {
                            if stopping {
                                break;
                            }
                            std::thread::sleep(Duration::from_micros(500));
                        }
                    }
                    out
                })
                .map_err(|e| Error::Internal(format!("cannot start the perf reader thread: {e}")))?
        };
        // Enabled last, on this thread's own counter: the window starts here.
        sampler.lock().unwrap_or_else(|e| e.into_inner()).enable().map_err(|source| {
            Error::PerfSetup {
                event: event.to_string(),
                step: "enabling",
                source,
                hint: String::new(),
            }
        })?;
        self.running =
            Some(Running { sampler, stop, reader, started: Instant::now(), event, no_unwind_info });
        Ok(())
    }

    fn stop(&mut self) -> Result<RawProfile> {
        let running = self
            .running
            .take()
            .ok_or_else(|| Error::Internal("perf sampler stopped before it started".into()))?;
        let disabled = running.sampler.lock().unwrap_or_else(|e| e.into_inner()).disable();
        let window = running.started.elapsed();
        running.stop.store(true, Ordering::Release);
        let collected = running
            .reader
            .join()
            .map_err(|_| Error::Internal("the perf reader thread panicked".into()))?;
        disabled.map_err(|source| Error::PerfSetup {
            event: running.event.to_string(),
            step: "disabling",
            source,
            hint: String::new(),
        })?;
        let mut notes = Troubles {
            hardware: self.hardware_note().map(str::to_owned),
            throttled: collected.throttled,
            unparsable: collected.unparsable,
            no_unwind_info: running.no_unwind_info.clone(),
            vanished: 0,
        }
        .notes();
        let unwind = match self.options.perf_unwind {
            PerfUnwind::Dwarf => Unwind::Dwarf { stack_bytes: self.options.stack_bytes },
            PerfUnwind::FramePointer => {
                notes.push(
                    "frame-pointer callchains skip the caller of functions without a frame \
                     pointer (libm's pow, for one)"
                        .to_owned(),
                );
                Unwind::KernelFramePointer
            }
        };
        Ok(RawProfile {
            sampler: SamplerKind::Perf,
            event: running.event,
            unwind,
            requested_hz: self.options.frequency,
            window,
            lost: collected.lost,
            notes,
            samples: collected.samples,
            has_signal_frames: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_their_fix() {
        let eacces = fix_for(&io::Error::from_raw_os_error(EACCES));
        assert!(eacces.contains("kernel.perf_event_paranoid") && eacces.contains("CAP_PERFMON"));
        let eperm = fix_for(&io::Error::from_raw_os_error(EPERM));
        assert!(eperm.contains("seccomp"));
        assert!(fix_for(&io::Error::from_raw_os_error(EMFILE)).contains("ulimit -n"));
        assert!(
            fix_for(&io::Error::from_raw_os_error(EINVAL)).contains("perf_event_max_sample_rate")
        );
    }
}
