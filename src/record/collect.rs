//! The collect stage: perf events on another program, one per CPU and thread given,
//! inherited by every thread and process they start, all of a CPU's events writing into
//! one ring buffer. Samples carry the user registers and a copy of the user stack; the
//! kernel's mmap, comm (exec, thread names), fork and exit records come in the same
//! rings, stamped on CLOCK_MONOTONIC, and leave this stage in time order across CPUs
//! ([`Session::in_order`]), for the intern stage ([`super::intern`]).
//!
//! Off CPU ([`OffCpu`]): the kernel's switch records say when each thread leaves a CPU and
//! when it runs again; where perf allows kernel-mode samples, a context-switch sample
//! (period 1) taken as the thread leaves carries its user registers and stack at the
//! place where it left user space. Both share each CPU's ring with the CPU samples, told
//! apart by the event's identifier.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use libc::ESRCH;
use perf_event::data::Record as Parsed;
use perf_event::events::{Hardware, Software};
use perf_event::{Builder, Clock, Counter, SampleFlag, Sampler as Ring};

use crate::error::{Error, Result};
use crate::ids::{Pid, Tid};
use crate::maps::Mapping;
use crate::sample::perf::{fix_for, map_ring, probe_hardware, UNWIND_REGS};
use crate::sample::Event;

/// Ring buffer per CPU tried in turn: the large one needs root or a raised
/// perf_event_mlock_kb; the small one fits the default unprivileged limit.
const RING_BYTES: [usize; 2] = [16 << 20, 512 << 10];

/// PERF_RECORD_MISC_COMM_EXEC: this comm record is an exec.
const MISC_COMM_EXEC: u16 = 1 << 13;
/// PERF_RECORD_SWITCH: a thread left a CPU or ran again.
const PERF_RECORD_SWITCH: u32 = 14;
/// PERF_RECORD_MISC_SWITCH_OUT: this switch record is the thread leaving the CPU.
const MISC_SWITCH_OUT: u16 = 1 << 13;
/// PERF_RECORD_MISC_SWITCH_OUT_PREEMPT: ... while still runnable (preempted, not waiting).
const MISC_SWITCH_OUT_PREEMPT: u16 = 1 << 14;

/// Whether and how a recording sees the time threads spend off CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OffCpu {
    /// Not recorded.
    Off,
    /// Switch records only: each thread's time off CPU, without stacks (perf refuses
    /// kernel-mode samples to this user).
    Switches,
    /// Switch records, and a context-switch sample with the user stack at each
    /// switch-out.
    Sampled,
}

/// One sample, copied out of the ring.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// Process.
    pub pid: Pid,
    /// Thread.
    pub tid: Tid,
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
    /// Taken as the thread left the CPU (a context-switch sample), not on CPU.
    pub off_cpu: bool,
}

/// What a ring said, owned.
#[derive(Debug, Clone)]
pub(crate) enum Happened {
    /// A sample.
    Sample(Sample),
    /// An executable mapping appeared in a process.
    Map {
        /// Process.
        pid: Pid,
        /// The mapping.
        mapping: Mapping,
    },
    /// A thread was named, or a process executed a new program (`exec`).
    Comm {
        /// Process.
        pid: Pid,
        /// Thread.
        tid: Tid,
        /// The name.
        name: String,
        /// True for an exec.
        exec: bool,
    },
    /// A thread or process was started (a process when `pid != ppid`).
    Fork {
        /// New process (or the same, for a thread).
        pid: Pid,
        /// Parent process.
        ppid: Pid,
        /// New thread.
        tid: Tid,
    },
    /// Samples the kernel could not write (the ring was full).
    Lost {
        /// Thread, when the record says.
        tid: Option<Tid>,
        /// How many.
        count: u64,
    },
    /// The kernel lowered the rate.
    Throttle,
    /// A thread left a CPU (`out`), or ran again.
    Switch {
        /// Process.
        pid: Pid,
        /// Thread.
        tid: Tid,
        /// It left the CPU.
        out: bool,
        /// It left while still runnable: preempted, waiting for a CPU, not blocked.
        preempted: bool,
    },
    /// A thread ended.
    Exit {
        /// Thread.
        tid: Tid,
    },
}

/// The kinds of record whose cost a recording tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A sample on CPU.
    CpuSample,
    /// A context-switch sample.
    OffCpuSample,
    /// A switch record.
    Switch,
    /// Any other.
    Other,
}

impl Happened {
    /// Its kind, for costs.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Happened::Sample(s) if s.off_cpu => Kind::OffCpuSample,
            Happened::Sample(_) => Kind::CpuSample,
            Happened::Switch { .. } => Kind::Switch,
            _ => Kind::Other,
        }
    }
}

/// Records of one kind handled, and the nanoseconds (monotonic clock) spent on them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cost {
    /// Records.
    pub records: u64,
    /// Nanoseconds.
    pub nanos: u64,
}

/// The [`Cost`] of each [`Kind`] of record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CostByKind {
    /// Samples on CPU.
    pub cpu_sample: Cost,
    /// Context-switch samples.
    pub off_cpu_sample: Cost,
    /// Switch records.
    pub switch: Cost,
    /// Any other record.
    pub other: Cost,
}

impl CostByKind {
    fn of_mut(&mut self, kind: Kind) -> &mut Cost {
        match kind {
            Kind::CpuSample => &mut self.cpu_sample,
            Kind::OffCpuSample => &mut self.off_cpu_sample,
            Kind::Switch => &mut self.switch,
            Kind::Other => &mut self.other,
        }
    }

    /// Counts one record of `kind` that took `nanos`.
    pub(crate) fn add(&mut self, kind: Kind, nanos: u64) {
        let cost = self.of_mut(kind);
        cost.records += 1;
        cost.nanos += nanos;
    }

    /// The same records, with the time `later` (another stage's, on the same records)
    /// spent on each kind too.
    pub(crate) fn then(self, later: CostByKind) -> CostByKind {
        let mut sum = self;
        for kind in [Kind::CpuSample, Kind::OffCpuSample, Kind::Switch, Kind::Other] {
            sum.of_mut(kind).nanos += later.of(kind).1;
        }
        sum
    }

    /// Records and nanoseconds of every kind together.
    pub(crate) fn total(&self) -> Cost {
        let all = [self.cpu_sample, self.off_cpu_sample, self.switch, self.other];
        Cost {
            records: all.iter().map(|c| c.records).sum(),
            nanos: all.iter().map(|c| c.nanos).sum(),
        }
    }

    /// Records and nanoseconds of `kind`.
    pub(crate) fn of(&self, kind: Kind) -> (u64, u64) {
        let mut all = *self;
        let cost = *all.of_mut(kind);
        (cost.records, cost.nanos)
    }
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
    /// Why off-CPU time is recorded without stacks, when it is.
    pub off_cpu_note: Option<String>,
    /// The identifiers of the context-switch events, to tell their samples.
    switch_ids: HashSet<u64>,
    /// What copying each kind of record out of the rings took.
    pub drain_cost: CostByKind,
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
    off_cpu: OffCpu,
}

impl Settings {
    /// What every sample carries; the same for every event sharing a ring, whose
    /// records are parsed by the ring's first event's settings.
    fn sample_flags(&self) -> SampleFlag {
        let flags = SampleFlag::IP
            | SampleFlag::TID
            | SampleFlag::TIME
            | SampleFlag::PERIOD
            | SampleFlag::REGS_USER
            | SampleFlag::STACK_USER;
        match self.off_cpu {
            OffCpu::Sampled => flags | SampleFlag::IDENTIFIER,
            _ => flags,
        }
    }

    /// The settings every event shares: the thread and CPU, inheritance, what a sample
    /// carries, the clock.
    fn common(&self, builder: &mut Builder<'static>, tid: Tid, cpu: usize) {
        builder
            .observe_pid(tid.0 as i32)
            .one_cpu(cpu)
            .inherit(true)
            .enable_on_exec(self.on_exec)
            .exclude_hv(true)
            .sample(self.sample_flags())
            .sample_regs_user(UNWIND_REGS)
            .sample_stack_user(self.stack_bytes)
            .sample_id_all(true)
            .clockid(Clock::MONOTONIC);
    }

    /// The sampled event (cycles or cpu-clock), which also asks for the side records:
    /// mappings, names, forks and exits, and switches when off-CPU time is recorded.
    fn builder(&self, tid: Tid, cpu: usize) -> Builder<'static> {
        let mut builder = match self.event {
            Event::Cycles => Builder::new(Hardware::CPU_CYCLES),
            _ => Builder::new(Software::CPU_CLOCK),
        };
        self.common(&mut builder, tid, cpu);
        builder
            .exclude_kernel(true)
            .sample_frequency(self.frequency)
            .mmap(true)
            .mmap2(true)
            .comm(true)
            .comm_exec(true)
            .task(true)
            .context_switch(self.off_cpu != OffCpu::Off);
        builder
    }

    /// The context-switch event: a sample at every switch-out. The switch happens in the
    /// kernel, so the event must not exclude it; the sample's user registers and stack
    /// are where the thread left user space.
    fn switch_builder(&self, tid: Tid, cpu: usize) -> Builder<'static> {
        let mut builder = Builder::new(Software::CONTEXT_SWITCHES);
        self.common(&mut builder, tid, cpu);
        builder.exclude_kernel(false).sample_period(1);
        builder
    }

    /// The error for a refused perf_event_open on `tid`, with its fix.
    fn refused(&self, source: io::Error, tid: Tid) -> Error {
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
        tids: &[Tid],
        on_exec: bool,
        frequency: u64,
        stack_bytes: u32,
        off_cpu: bool,
    ) -> Result<Session> {
        let hardware = probe_hardware();
        let event = if hardware.is_ok() { Event::Cycles } else { Event::CpuClock };
        let mut settings =
            Settings { event, frequency, stack_bytes, on_exec, off_cpu: OffCpu::Off };
        let mut off_cpu_note = None;
        if off_cpu {
            let first_cpu = online_cpus().first().copied().unwrap_or(0);
            let probe =
                settings.switch_builder(tids.first().copied().unwrap_or_default(), first_cpu);
            let probe = probe.build();
            settings.off_cpu = match probe {
                Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {
                    off_cpu_note = Some(no_stacks_note(&e));
                    OffCpu::Switches
                }
                _ => OffCpu::Sampled,
            };
        }
        let mut session = Session {
            rings: Vec::new(),
            ring_cpus: Vec::new(),
            others: Vec::new(),
            settings,
            event,
            hardware_note: hardware.err(),
            unparsable: 0,
            vanished: 0,
            off_cpu_note,
            switch_ids: HashSet::new(),
            drain_cost: CostByKind::default(),
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
                let r = match ring.take() {
                    Some(r) => {
                        crate::ffi::perf_set_output(counter.as_raw_fd(), r.as_raw_fd())
                            .map_err(|e| settings.refused(e, tid))?;
                        session.others.push(counter);
                        r
                    }
                    None => map_ring(counter, &builder, event, &RING_BYTES)?,
                };
                session.add_switch_event(tid, cpu, r.as_raw_fd())?;
                ring = Some(r);
            }
            if let Some(ring) = ring {
                session.rings.push(ring);
                session.ring_cpus.push(cpu);
            }
        }
        if session.rings.is_empty() {
            return Err(Error::NoSuchProcess {
                pid: Pid(tids.first().copied().unwrap_or_default().0),
                reason: "every thread ended before recording could start".into(),
            });
        }
        Ok(session)
    }

    /// Opens the context-switch event on `tid` and `cpu` into `ring`, when off-CPU
    /// samples are taken. A thread that ended meanwhile is left out.
    fn add_switch_event(&mut self, tid: Tid, cpu: usize, ring: RawFd) -> Result<()> {
        if self.settings.off_cpu != OffCpu::Sampled {
            return Ok(());
        }
        let counter = match self.settings.switch_builder(tid, cpu).build() {
            Ok(c) => c,
            Err(e) if e.raw_os_error() == Some(ESRCH) => return Ok(()),
            Err(e) => return Err(self.settings.refused(e, tid)),
        };
        crate::ffi::perf_set_output(counter.as_raw_fd(), ring)
            .map_err(|e| self.settings.refused(e, tid))?;
        self.switch_ids.insert(counter.id());
        self.others.push(counter);
        Ok(())
    }

    /// How the session records off-CPU time.
    pub(crate) fn off_cpu(&self) -> OffCpu {
        self.settings.off_cpu
    }

    /// Opens enabled events on every thread of a running process, `threads` telling which
    /// it has now.
    pub(crate) fn attach(
        threads: impl Fn() -> Vec<Tid>,
        frequency: u64,
        stack_bytes: u32,
        off_cpu: bool,
    ) -> Result<Session> {
        let mut tids = threads();
        let mut session = Session::open(&tids, false, frequency, stack_bytes, off_cpu)?;
        session.enable()?;
        // A thread started while the events were being opened, by a thread whose events
        // did not exist yet, inherited none: it is a new thread without a fork record in
        // the rings (the kernel writes one when it clones with inherited events). Add those
        // until none is left.
        for _ in 0..10 {
            session.drain();
            let forked: Vec<Tid> = session
                .pending
                .iter()
                .filter_map(|t| match t.what {
                    Happened::Fork { tid, .. } => Some(tid),
                    _ => None,
                })
                .collect();
            let new: Vec<Tid> = threads()
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
    pub(crate) fn follow(&mut self, tids: &[Tid]) -> Result<usize> {
        let mut added = 0;
        for &tid in tids {
            let mut any = false;
            for i in 0..self.rings.len() {
                let cpu = self.ring_cpus[i];
                let mut counter = match self.settings.builder(tid, cpu).build() {
                    Ok(c) => c,
                    Err(e) if e.raw_os_error() == Some(ESRCH) => break,
                    Err(e) => return Err(self.settings.refused(e, tid)),
                };
                crate::ffi::perf_set_output(counter.as_raw_fd(), self.rings[i].as_raw_fd())
                    .map_err(|e| self.settings.refused(e, tid))?;
                let switches = self.others.len();
                self.add_switch_event(tid, cpu, self.rings[i].as_raw_fd())?;
                for c in &mut self.others[switches..] {
                    c.enable().map_err(|e| self.settings.refused(e, tid))?;
                }
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
        let kinds = Kinds {
            identifier: self.settings.off_cpu == OffCpu::Sampled,
            switch_ids: &self.switch_ids,
        };
        for ring in &mut self.rings {
            while let Some(record) = ring.next_record() {
                let start = std::time::Instant::now();
                match owned(&record, &mut self.spare, &kinds) {
                    Some(Ok(t)) => {
                        self.drain_cost.add(t.what.kind(), start.elapsed().as_nanos() as u64);
                        self.pending.push(t);
                    }
                    Some(Err(())) => self.unparsable += 1,
                    None => {}
                }
            }
        }
    }
}

/// Why off-CPU time has no stacks, and how to have them, from perf's refusal.
fn no_stacks_note(refused: &io::Error) -> String {
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "off-CPU time is from switch records alone, without stacks: perf refused the \
         context-switch sample ({refused}), which is taken in the kernel; \
         kernel.perf_event_paranoid is {paranoid}: set it to 1 or lower \
         (sysctl kernel.perf_event_paranoid=1), or run ffiprof with CAP_PERFMON (or as root)"
    )
}

/// How to read the records of a session's rings.
struct Kinds<'a> {
    /// Samples and trailers end with the event's identifier.
    identifier: bool,
    /// The identifiers of the context-switch events.
    switch_ids: &'a HashSet<u64>,
}

/// The sample_id trailer (`sample_id_all` with TID and TIME, and the IDENTIFIER last when
/// `identifier`): pid, tid, time.
fn trailer(bytes: &[u8], identifier: bool) -> Option<(Pid, Tid, u64)> {
    let n = bytes.len().checked_sub(if identifier { 8 } else { 0 })?;
    let tail = bytes.get(n.checked_sub(16)?..n)?;
    let pid = Pid(u32::from_ne_bytes(tail[0..4].try_into().ok()?));
    let tid = Tid(u32::from_ne_bytes(tail[4..8].try_into().ok()?));
    let time = u64::from_ne_bytes(tail[8..16].try_into().ok()?);
    Some((pid, tid, time))
}

/// The record as an owned [`Timed`]; None for records ffiprof does not use.
fn owned(
    record: &perf_event::Record<'_>,
    spare: &mut Vec<Vec<u8>>,
    kinds: &Kinds<'_>,
) -> Option<Result<Timed, ()>> {
    let bytes = record.to_contiguous();
    let trailer = |bytes: &[u8]| trailer(bytes, kinds.identifier);
    // perf-event-data 0.1 does not parse a switch record (it has no body, only the
    // trailer): read it here.
    if record.ty() == PERF_RECORD_SWITCH {
        let Some((pid, tid, time)) = trailer(&bytes) else { return Some(Err(())) };
        let misc = record.misc();
        let (out, preempted) = (misc & MISC_SWITCH_OUT != 0, misc & MISC_SWITCH_OUT_PREEMPT != 0);
        return Some(Ok(Timed { time, what: Happened::Switch { pid, tid, out, preempted } }));
    }
    let parsed = match record.parse_record() {
        Ok(p) => p,
        Err(_) => return Some(Err(())),
    };
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
                    pid: Pid(s.pid().unwrap_or(0)),
                    tid: Tid(s.tid().unwrap_or(0)),
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
                    off_cpu: s.id().is_some_and(|id| kinds.switch_ids.contains(&id)),
                }),
            }));
        }
        Parsed::Mmap2(m) => {
            if m.prot & libc::PROT_EXEC as u32 == 0 {
                return None;
            }
            Happened::Map {
                pid: Pid(m.pid),
                mapping: Mapping {
                    range: m.addr..m.addr.saturating_add(m.len),
                    offset: m.pgoff,
                    path: String::from_utf8_lossy(&m.filename).into_owned(),
                },
            }
        }
        Parsed::Comm(c) => Happened::Comm {
            pid: Pid(c.pid),
            tid: Tid(c.tid),
            name: String::from_utf8_lossy(&c.comm).into_owned(),
            exec: record.misc() & MISC_COMM_EXEC != 0,
        },
        Parsed::Fork(f) => Happened::Fork { pid: Pid(f.pid), ppid: Pid(f.ppid), tid: Tid(f.tid) },
        Parsed::Lost(l) => Happened::Lost { tid: trailer(&bytes).map(|t| t.1), count: l.lost },
        Parsed::LostSamples(l) => {
            Happened::Lost { tid: trailer(&bytes).map(|t| t.1), count: l.lost }
        }
        Parsed::Throttle(_) => Happened::Throttle,
        Parsed::Exit(e) => Happened::Exit { tid: Tid(e.tid) },
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
        assert_eq!(trailer(&bytes, false), Some((Pid(7), Tid(9), 123_456)));
        assert_eq!(trailer(&[0; 8], false), None);
        // With the event's identifier after them.
        bytes.extend(42u64.to_ne_bytes());
        assert_eq!(trailer(&bytes, true), Some((Pid(7), Tid(9), 123_456)));
        assert_eq!(trailer(&[0; 16], true), None);
    }
}
