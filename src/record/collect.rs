//! The collect stage: perf events on another program, one per CPU and thread given,
//! inherited by every thread and process they start, all of a CPU's events writing into
//! one ring buffer. Samples carry the user registers and a copy of the user stack; the
//! kernel's mmap, comm (exec, thread names), fork and exit records come in the same
//! rings, stamped on CLOCK_MONOTONIC, and leave this stage in time order across CPUs
//! ([`Session::in_order`]), for the intern stage ([`super::intern`]).

use std::io;
use std::os::fd::AsRawFd;

use libc::ESRCH;
use perf_event::data::Record as Parsed;
use perf_event::events::{Hardware, Software};
use perf_event::{Builder, Clock, Counter, SampleFlag, Sampler as Ring};

use crate::error::{Error, Result};
use crate::sample::perf::{fix_for, map_ring, probe_hardware, UNWIND_REGS};
use crate::sample::unwind::Mapping;
use crate::sample::Event;

/// Ring buffer per CPU tried in turn: the large one needs root or a raised
/// perf_event_mlock_kb; the small one fits the default unprivileged limit.
const RING_BYTES: [usize; 2] = [16 << 20, 512 << 10];

/// PERF_RECORD_MISC_COMM_EXEC: this comm record is an exec.
const MISC_COMM_EXEC: u16 = 1 << 13;

/// One sample, copied out of the ring.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// Process.
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// Period since the thread's previous sample (nanoseconds of CPU time for cpu-clock).
    pub period: u64,
    /// Instruction pointer.
    pub ip: u64,
    /// Stack pointer.
    pub sp: u64,
    /// Frame pointer.
    pub bp: u64,
    /// The stack copy from `sp`, as long as the kernel could copy.
    pub stack: Vec<u8>,
}

/// What a ring said, owned.
#[derive(Debug, Clone)]
pub(crate) enum Happened {
    /// A sample.
    Sample(Sample),
    /// An executable mapping appeared in a process.
    Map {
        /// Process.
        pid: u32,
        /// The mapping.
        mapping: Mapping,
    },
    /// A thread was named, or a process executed a new program (`exec`).
    Comm {
        /// Process.
        pid: u32,
        /// Thread.
        tid: u32,
        /// The name.
        name: String,
        /// True for an exec.
        exec: bool,
    },
    /// A thread or process was started (a process when `pid != ppid`).
    Fork {
        /// New process (or the same, for a thread).
        pid: u32,
        /// Parent process.
        ppid: u32,
        /// New thread.
        tid: u32,
    },
    /// Samples the kernel could not write (the ring was full).
    Lost {
        /// Thread, when the record says.
        tid: Option<u32>,
        /// How many.
        count: u64,
    },
    /// The kernel lowered the rate.
    Throttle,
}

/// A record with its time (CLOCK_MONOTONIC, nanoseconds).
#[derive(Debug, Clone)]
pub(crate) struct Timed {
    /// When.
    pub time: u64,
    /// What.
    pub what: Happened,
}

/// The events of one recording.
pub(crate) struct Session {
    rings: Vec<Ring>,
    /// The CPU of each ring.
    ring_cpus: Vec<usize>,
    others: Vec<Counter>,
    settings: Settings,
    /// The event sampled.
    pub event: Event,
    /// Why hardware cycles are not sampled, if they are not.
    pub hardware_note: Option<String>,
    /// Records that could not be parsed.
    pub unparsable: u64,
    /// Threads that ended before an event could be opened on them.
    pub vanished: u64,
    /// Stack-copy buffers to reuse (see [`Session::recycle`]).
    spare: Vec<Vec<u8>>,
    /// Records drained and not yet handed on: stamped after the last drain began.
    pending: Vec<Timed>,
}

/// CPUs the kernel has online (`/sys/devices/system/cpu/online`, as `0-3,5`).
pub(crate) fn online_cpus() -> Vec<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
            cpus.extend(a..=b);
        }
    }
    if cpus.is_empty() {
        cpus.extend(0..std::thread::available_parallelism().map_or(1, |n| n.get()));
    }
    cpus
}

/// What every event of a session is.
#[derive(Debug, Clone, Copy)]
struct Settings {
    event: Event,
    frequency: u64,
    stack_bytes: u32,
    on_exec: bool,
}

impl Settings {
    fn builder(&self, tid: u32, cpu: usize) -> Builder<'static> {
        let mut builder = match self.event {
            Event::Cycles => Builder::new(Hardware::CPU_CYCLES),
            _ => Builder::new(Software::CPU_CLOCK),
        };
        builder
            .observe_pid(tid as i32)
            .one_cpu(cpu)
            .inherit(true)
            .enable_on_exec(self.on_exec)
            .exclude_kernel(true)
            .exclude_hv(true)
            .sample_frequency(self.frequency)
            .sample(
                SampleFlag::IP
                    | SampleFlag::TID
                    | SampleFlag::TIME
                    | SampleFlag::PERIOD
                    | SampleFlag::REGS_USER
                    | SampleFlag::STACK_USER,
            )
            .sample_regs_user(UNWIND_REGS)
            .sample_stack_user(self.stack_bytes)
            .mmap(true)
            .mmap2(true)
            .comm(true)
            .comm_exec(true)
            .task(true)
            .sample_id_all(true)
            .clockid(Clock::MONOTONIC);
        builder
    }

    /// The error for a refused perf_event_open on `tid`, with its fix.
    fn refused(&self, source: io::Error, tid: u32) -> Error {
        let fix = match source.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => format!(
                "process {tid} may not be observed by this user: record it as its owner, \
                 or allow it: {}",
                fix_for(&source)
            ),
            _ => fix_for(&source),
        };
        Error::PerfOpen { event: self.event.to_string(), source, fix }
    }
}

impl Session {
    /// Opens the events on `tids` (threads, or the pid of a gated child) on every CPU,
    /// inherited by what they start. With `on_exec` they start counting when the thread
    /// executes a program; otherwise call [`Session::enable`].
    pub(crate) fn open(
        tids: &[u32],
        on_exec: bool,
        frequency: u64,
        stack_bytes: u32,
    ) -> Result<Session> {
        let hardware = probe_hardware();
        let event = if hardware.is_ok() { Event::Cycles } else { Event::CpuClock };
        let settings = Settings { event, frequency, stack_bytes, on_exec };
        let mut session = Session {
            rings: Vec::new(),
            ring_cpus: Vec::new(),
            others: Vec::new(),
            settings,
            event,
            hardware_note: hardware.err(),
            unparsable: 0,
            vanished: 0,
            spare: Vec::new(),
            pending: Vec::new(),
        };
        for cpu in online_cpus() {
            let mut ring: Option<Ring> = None;
            for &tid in tids {
                let builder = settings.builder(tid, cpu);
                let counter = match builder.build() {
                    Ok(c) => c,
                    Err(e) if e.raw_os_error() == Some(ESRCH) && !on_exec => {
                        session.vanished += 1; // the thread ended meanwhile
                        continue;
                    }
                    Err(e) => return Err(settings.refused(e, tid)),
                };
                match &ring {
                    Some(r) => {
                        crate::ffi::perf_set_output(counter.as_raw_fd(), r.as_raw_fd())
                            .map_err(|e| settings.refused(e, tid))?;
                        session.others.push(counter);
                    }
                    None => ring = Some(map_ring(counter, &builder, event, &RING_BYTES)?),
                }
            }
            if let Some(ring) = ring {
                session.rings.push(ring);
                session.ring_cpus.push(cpu);
            }
        }
        if session.rings.is_empty() {
            return Err(Error::NoSuchProcess {
                pid: tids.first().copied().unwrap_or(0),
                reason: "every thread ended before recording could start".into(),
            });
        }
        Ok(session)
    }

    /// Opens enabled events on every thread of a running process, `threads` telling which
    /// it has now.
    pub(crate) fn attach(
        threads: impl Fn() -> Vec<u32>,
        frequency: u64,
        stack_bytes: u32,
    ) -> Result<Session> {
        let mut tids = threads();
        let mut session = Session::open(&tids, false, frequency, stack_bytes)?;
        session.enable()?;
        // A thread started while the events were being opened, by a thread whose events
        // did not exist yet, inherited none: it is a new thread without a fork record in
        // the rings (the kernel writes one when it clones with inherited events). Add those
        // until none is left.
        for _ in 0..10 {
            session.drain();
            let forked: Vec<u32> = session
                .pending
                .iter()
                .filter_map(|t| match t.what {
                    Happened::Fork { tid, .. } => Some(tid),
                    _ => None,
                })
                .collect();
            let new: Vec<u32> = threads()
                .into_iter()
                .filter(|t| !tids.contains(t) && !forked.contains(t))
                .collect();
            if new.is_empty() {
                break;
            }
            session.follow(&new)?;
            tids.extend(new);
        }
        Ok(session)
    }

    /// Adds enabled events on threads that appeared while the session was being opened
    /// (started by a thread whose events were not open yet, so not inherited). Returns
    /// how many threads were added.
    pub(crate) fn follow(&mut self, tids: &[u32]) -> Result<usize> {
        let mut added = 0;
        for &tid in tids {
            let mut any = false;
            for (ring, &cpu) in self.rings.iter().zip(&self.ring_cpus) {
                let mut counter = match self.settings.builder(tid, cpu).build() {
                    Ok(c) => c,
                    Err(e) if e.raw_os_error() == Some(ESRCH) => break,
                    Err(e) => return Err(self.settings.refused(e, tid)),
                };
                crate::ffi::perf_set_output(counter.as_raw_fd(), ring.as_raw_fd())
                    .map_err(|e| self.settings.refused(e, tid))?;
                counter.enable().map_err(|e| self.settings.refused(e, tid))?;
                self.others.push(counter);
                any = true;
            }
            added += usize::from(any);
        }
        Ok(added)
    }

    /// Starts counting (when not enabled on exec).
    pub(crate) fn enable(&mut self) -> Result<()> {
        let event = self.event;
        let err = |source: io::Error| Error::PerfSetup {
            event: event.to_string(),
            step: "enabling",
            source,
            hint: String::new(),
        };
        for r in &mut self.rings {
            r.enable().map_err(err)?;
        }
        for c in &mut self.others {
            c.enable().map_err(err)?;
        }
        Ok(())
    }

    /// Stops counting; what is in the rings can still be drained.
    pub(crate) fn disable(&mut self) {
        for r in &mut self.rings {
            let _ = r.disable();
        }
        for c in &mut self.others {
            let _ = c.disable();
        }
    }

    /// Takes back the stack copies of samples that have been unwound, for the next
    /// samples: no allocation per sample.
    pub(crate) fn recycle(&mut self, buffers: &mut Vec<Vec<u8>>) {
        self.spare.append(buffers);
    }

    /// The records of every ring that are complete, oldest first: those stamped before
    /// this drain began (each was in its ring when the drain read it, so nothing older can
    /// still arrive). After [`Session::disable`], give `all` to have the rest.
    pub(crate) fn in_order(&mut self, all: bool) -> Vec<Timed> {
        let horizon = crate::ffi::monotonic_ns();
        self.drain();
        self.pending.sort_by_key(|t| t.time);
        let cut = if all {
            self.pending.len()
        } else {
            self.pending.partition_point(|t| t.time < horizon)
        };
        self.pending.drain(..cut).collect()
    }

    /// Moves every record in the rings to the pending ones.
    fn drain(&mut self) {
        for ring in &mut self.rings {
            while let Some(record) = ring.next_record() {
                match owned(&record, &mut self.spare) {
                    Some(Ok(t)) => self.pending.push(t),
                    Some(Err(())) => self.unparsable += 1,
                    None => {}
                }
            }
        }
    }
}

/// The sample_id trailer (`sample_id_all` with TID and TIME): pid, tid, time.
fn trailer(bytes: &[u8]) -> Option<(u32, u32, u64)> {
    let n = bytes.len();
    let tail = bytes.get(n.checked_sub(16)?..)?;
    let pid = u32::from_ne_bytes(tail[0..4].try_into().ok()?);
    let tid = u32::from_ne_bytes(tail[4..8].try_into().ok()?);
    let time = u64::from_ne_bytes(tail[8..16].try_into().ok()?);
    Some((pid, tid, time))
}

/// The record as an owned [`Timed`]; None for records ffiprof does not use.
fn owned(record: &perf_event::Record<'_>, spare: &mut Vec<Vec<u8>>) -> Option<Result<Timed, ()>> {
    let parsed = match record.parse_record() {
        Ok(p) => p,
        Err(_) => return Some(Err(())),
    };
    let bytes = record.to_contiguous();
    let side_time = || trailer(&bytes).map_or(0, |t| t.2);
    let what = match parsed {
        Parsed::Sample(s) => {
            let regs = s.regs_user().map(|r| r.regs.to_vec()).unwrap_or_default();
            let ip = s.ip().unwrap_or(0);
            let (bp, sp, ip) = match regs.as_slice() {
                [bp, sp, ip] => (*bp, *sp, *ip),
                _ => (0, 0, ip),
            };
            return Some(Ok(Timed {
                time: s.time().unwrap_or(0),
                what: Happened::Sample(Sample {
                    pid: s.pid().unwrap_or(0),
                    tid: s.tid().unwrap_or(0),
                    period: s.period().unwrap_or(0),
                    ip,
                    sp,
                    bp,
                    stack: {
                        let mut buf = spare.pop().unwrap_or_default();
                        buf.clear();
                        buf.extend_from_slice(s.stack_user().unwrap_or_default());
                        buf
                    },
                }),
            }));
        }
        Parsed::Mmap2(m) => {
            if m.prot & libc::PROT_EXEC as u32 == 0 {
                return None;
            }
            Happened::Map {
                pid: m.pid,
                mapping: Mapping {
                    range: m.addr..m.addr.saturating_add(m.len),
                    offset: m.pgoff,
                    path: String::from_utf8_lossy(&m.filename).into_owned(),
                },
            }
        }
        Parsed::Comm(c) => Happened::Comm {
            pid: c.pid,
            tid: c.tid,
            name: String::from_utf8_lossy(&c.comm).into_owned(),
            exec: record.misc() & MISC_COMM_EXEC != 0,
        },
        Parsed::Fork(f) => Happened::Fork { pid: f.pid, ppid: f.ppid, tid: f.tid },
        Parsed::Lost(l) => Happened::Lost { tid: trailer(&bytes).map(|t| t.1), count: l.lost },
        Parsed::LostSamples(l) => {
            Happened::Lost { tid: trailer(&bytes).map(|t| t.1), count: l.lost }
        }
        Parsed::Throttle(_) => Happened::Throttle,
        _ => return None,
    };
    Some(Ok(Timed { time: side_time(), what }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_sample_id_trailer() {
        let mut bytes = vec![0xaa; 5];
        bytes.extend(7u32.to_ne_bytes());
        bytes.extend(9u32.to_ne_bytes());
        bytes.extend(123_456u64.to_ne_bytes());
        assert_eq!(trailer(&bytes), Some((7, 9, 123_456)));
        assert_eq!(trailer(&[0; 8]), None);
    }
}
