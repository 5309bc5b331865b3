//! The intern stage: the kernel's records, in time order, folded into what the
//! recording keeps. Each sample is unwound ([`super::unwind`]) into code locations, its
//! stack interned in the [`StackTable`], its thread's weight on that stack counted, and
//! the sample itself appended to the [`SampleFile`]; each location seen for the first
//! time is handed on to be symbolized. Mapping, fork and exec records update the
//! processes' modules.

use std::collections::{BTreeMap, HashSet};

use crate::sample::dwarf::Unwound;
use crate::sample::Event;

use super::collect::{CostByKind, Happened, Sample, Timed};
use super::offcpu::OffCpuLog;
use super::program::{blocked_now, comm_of};
use super::samples::{SampleFile, SampleLog, SampleRecord, Weight};
use super::table::{StackId, StackTable};
use super::unwind::{Loc, Modules, Targets, UserStack};
use crate::ids::{Pid, Tid};

/// One thread's samples: their weight on each distinct stack (the samples themselves, in
/// time order, are in the recording's [`SampleFile`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct ThreadLog {
    /// Its process.
    pub pid: Pid,
    /// Its name (comm), when known.
    pub name: Option<String>,
    /// Weight per stack, in the table's order.
    pub stacks: BTreeMap<StackId, Weight>,
    /// Samples.
    pub samples: u64,
    /// Samples whose stack was cut short by the stack-copy size.
    pub truncated: u64,
    /// When its first sample was taken (CLOCK_MONOTONIC nanoseconds).
    pub first: Option<u64>,
    /// Samples the kernel reported lost for it.
    pub lost: u64,
    /// Frames found where no unwind information covered the code.
    pub recovered: RecoveredFrames,
    /// Its time on and off CPU and its off-CPU samples (with `--off-cpu`).
    pub off_cpu: OffCpuLog,
}

/// Callers found without unwind information ([`crate::sample::recover`]), counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RecoveredFrames {
    /// Samples with at least one such frame.
    pub samples: u64,
    /// Found by the frame-pointer chain.
    pub by_frame_pointer: u64,
    /// Found by scanning the stack.
    pub by_scan: u64,
}

impl RecoveredFrames {
    /// Both counts together.
    pub(crate) fn plus(self, o: RecoveredFrames) -> RecoveredFrames {
        RecoveredFrames {
            samples: self.samples + o.samples,
            by_frame_pointer: self.by_frame_pointer + o.by_frame_pointer,
            by_scan: self.by_scan + o.by_scan,
        }
    }

    /// Counts one sample's.
    pub(crate) fn add(&mut self, u: &Unwound) {
        self.samples += u64::from(u.recovered() > 0);
        self.by_frame_pointer += u64::from(u.by_frame_pointer);
        self.by_scan += u64::from(u.by_scan);
    }
}

impl ThreadLog {
    /// A thread of process `pid`, with no sample yet.
    pub(crate) fn new(pid: Pid, name: Option<String>) -> ThreadLog {
        ThreadLog { pid, name, ..ThreadLog::default() }
    }

    /// Counts one sample.
    pub(crate) fn add(&mut self, s: &SampleRecord) {
        let w = self.stacks.entry(s.stack).or_default();
        w.samples += 1;
        w.period += s.period;
        self.samples += 1;
        self.truncated += u64::from(s.truncated);
        self.first.get_or_insert(s.time);
    }
}

/// One process seen while recording, whether or not it was ever sampled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProcessLog {
    /// The process that forked it (unknown for the one launched or attached to).
    pub ppid: Option<Pid>,
    /// Its command: the one it started with, then each program it executed.
    pub commands: Vec<String>,
}

/// Everything a recording collected, before symbolization.
pub(crate) struct Collected {
    /// Threads by tid.
    pub threads: BTreeMap<Tid, ThreadLog>,
    /// Every process seen, by pid.
    pub processes: BTreeMap<Pid, ProcessLog>,
    /// The processes' modules.
    pub targets: Targets,
    /// Event sampled.
    pub event: Event,
    /// CLOCK_MONOTONIC at the start and end of the window.
    pub window: (u64, u64),
    /// Samples lost in records that named no thread.
    pub lost_unattributed: u64,
    /// Things to know.
    pub notes: Vec<String>,
    /// Every sample's stack.
    pub stacks: StackTable,
    /// Every sample, in time order (an off-CPU sample at the time its thread ran again).
    pub samples: SampleFile,
    /// What draining and interning each kind of record took.
    pub cost: CostByKind,
}

/// Folds the kernel's records into thread logs and process maps, in time order.
pub(crate) struct Collector {
    threads: BTreeMap<Tid, ThreadLog>,
    processes: BTreeMap<Pid, ProcessLog>,
    targets: Targets,
    locs: Vec<Loc>,
    stacks: StackTable,
    log: SampleLog,
    lost_unattributed: u64,
    /// Times the kernel throttled sampling.
    pub throttled: u64,
    asked: usize,
    /// Locations seen so far.
    seen: HashSet<Loc>,
    /// Locations seen for the first time, not yet sent to be symbolized.
    fresh: Vec<Loc>,
    /// Stack copies done with, to hand back to the session.
    pub spare: Vec<Vec<u8>>,
    /// Processes whose `/proc/<pid>/maps` has been read since their last exec.
    maps_read: HashSet<Pid>,
    cost: CostByKind,
}

impl Collector {
    /// A collector of samples whose stacks were copied `stack_bytes` at a time, writing
    /// them to `log`.
    pub(crate) fn new(stack_bytes: u32, log: SampleLog) -> Collector {
        Collector {
            threads: BTreeMap::new(),
            processes: BTreeMap::new(),
            targets: Targets::new(),
            locs: Vec::new(),
            stacks: StackTable::default(),
            log,
            lost_unattributed: 0,
            throttled: 0,
            asked: stack_bytes as usize,
            seen: HashSet::new(),
            fresh: Vec::new(),
            spare: Vec::new(),
            maps_read: HashSet::new(),
            cost: CostByKind::default(),
        }
    }

    /// The locations seen for the first time since the last call (for the symbolizing
    /// thread, which takes them), with the modules they are in.
    pub(crate) fn fresh(&mut self) -> (&mut Vec<Loc>, &Modules) {
        (&mut self.fresh, &self.targets.modules)
    }

    /// The processes' modules so far.
    pub(crate) fn targets(&self) -> &Targets {
        &self.targets
    }

    /// A process ffiprof attached to: its threads now (those blocked now are off CPU
    /// from now on, as far as switch records can tell), and its mappings.
    pub(crate) fn attached(&mut self, pid: Pid, threads: &[Tid]) {
        let now = crate::ffi::monotonic_ns();
        for &tid in threads {
            let blocked = blocked_now(pid, tid) == Some(true);
            let thread = self.thread(pid, tid);
            if blocked {
                thread.off_cpu.blocked_since(now);
            }
        }
        let _ = self.targets.read_proc_maps(pid);
        self.maps_read.insert(pid);
    }

    /// Folds `records` (in time order) in, timing each kind.
    pub(crate) fn apply_all(&mut self, records: Vec<Timed>) {
        for t in records {
            let start = std::time::Instant::now();
            let kind = t.what.kind();
            self.apply(t);
            self.cost.add(kind, start.elapsed().as_nanos() as u64);
        }
    }

    /// Everything collected, with what the session says of itself (its notes, and what
    /// draining the rings took). Threads still off CPU when the `window` ended were so
    /// until its end.
    pub(crate) fn finish(
        mut self,
        event: Event,
        window: (u64, u64),
        notes: Vec<String>,
        drain_cost: CostByKind,
    ) -> std::io::Result<Collected> {
        for (&tid, thread) in &mut self.threads {
            if let Some(record) = thread.off_cpu.window_ended(window.1) {
                self.log.push(tid, &record);
            }
        }
        Ok(Collected {
            threads: self.threads,
            processes: self.processes,
            targets: self.targets,
            event,
            window,
            lost_unattributed: self.lost_unattributed,
            notes,
            stacks: self.stacks,
            samples: self.log.finish()?,
            cost: drain_cost.then(self.cost),
        })
    }

    fn thread(&mut self, pid: Pid, tid: Tid) -> &mut ThreadLog {
        self.processes.entry(pid).or_insert_with(|| ProcessLog {
            ppid: None,
            commands: comm_of(pid, pid.main_thread()).into_iter().collect(),
        });
        self.threads.entry(tid).or_insert_with(|| ThreadLog::new(pid, comm_of(pid, tid)))
    }

    /// Unwinds and interns a sample: on CPU, counted now; off CPU, held by its thread
    /// until the thread runs again.
    fn sample(&mut self, time: u64, s: Sample) {
        // A process's first sample (after its exec): its maps now hold what no record
        // announces, such as the vDSO.
        if self.maps_read.insert(s.pid) {
            let _ = self.targets.read_proc_maps(s.pid);
        }
        let regs = UserStack { ip: s.ip, sp: s.sp, bp: s.bp, stack: &s.stack, asked: self.asked };
        let mut locs = std::mem::take(&mut self.locs);
        let unwound = self.targets.unwind(s.pid, &regs, &mut locs);
        for l in &locs {
            if self.seen.insert(*l) {
                self.fresh.push(*l);
            }
        }
        let record = SampleRecord {
            time,
            period: s.period,
            stack: self.stacks.intern(&locs),
            truncated: unwound.truncated,
            off_cpu: false,
        };
        self.locs = locs;
        let thread = self.thread(s.pid, s.tid);
        if s.off_cpu {
            thread.off_cpu.sampled(record.stack, record.truncated);
        } else {
            thread.off_cpu.running(time);
            thread.add(&record);
            thread.recovered.add(&unwound);
            self.log.push(s.tid, &record);
        }
        self.spare.push(s.stack);
    }

    fn apply(&mut self, t: Timed) {
        match t.what {
            Happened::Sample(s) => self.sample(t.time, s),
            Happened::Switch { pid, tid, out: true, preempted } => {
                self.thread(pid, tid).off_cpu.switched_out(t.time, preempted);
            }
            Happened::Switch { pid, tid, out: false, .. } => {
                if let Some(record) = self.thread(pid, tid).off_cpu.switched_in(t.time) {
                    self.log.push(tid, &record);
                }
            }
            Happened::Exit { tid } => {
                if let Some(thread) = self.threads.get_mut(&tid) {
                    thread.off_cpu.exited(t.time);
                }
            }
            Happened::Map { pid, mapping } => self.targets.map(pid, mapping),
            Happened::Comm { pid, tid, name, exec } => {
                if exec {
                    self.maps_read.remove(&pid);
                    self.targets.exec(pid);
                    self.thread(pid, tid).off_cpu.running(t.time);
                }
                self.thread(pid, tid).name = Some(name.clone());
                let commands = &mut self.processes.entry(pid).or_default().commands;
                if exec || (commands.is_empty() && tid == pid.main_thread()) {
                    commands.push(name);
                }
            }
            Happened::Fork { pid, ppid, tid } => {
                if pid != ppid {
                    self.targets.fork(ppid, pid);
                    // A forked process goes by its parent's command until it executes.
                    let inherited = self.processes.get(&ppid).and_then(|p| p.commands.last());
                    let commands = inherited.cloned().into_iter().collect();
                    self.processes.insert(pid, ProcessLog { ppid: Some(ppid), commands });
                }
                let _ = self.thread(pid, tid);
            }
            Happened::Lost { tid: Some(tid), count } if self.threads.contains_key(&tid) => {
                if let Some(t) = self.threads.get_mut(&tid) {
                    t.lost += count;
                }
            }
            Happened::Lost { count, .. } => self.lost_unattributed += count,
            Happened::Throttle => self.throttled += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Pids above the kernel's largest (2^22), so that /proc knows none of them.
    const ROOT: u32 = 5_000_000;

    fn event(what: Happened) -> Timed {
        Timed { time: 0, what }
    }

    #[test]
    fn every_process_is_kept_with_its_parent_and_commands_sampled_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Collector::new(16384, SampleLog::create_in(dir.path()).unwrap());
        let comm = |pid, tid, name: &str, exec| Happened::Comm {
            pid: Pid(pid),
            tid: Tid(tid),
            name: name.into(),
            exec,
        };
        let fork =
            |pid, ppid, tid| Happened::Fork { pid: Pid(pid), ppid: Pid(ppid), tid: Tid(tid) };
        c.apply_all(vec![
            event(comm(ROOT, ROOT, "cargo", true)),
            // A thread of the root, named, then a child that executes two programs in turn
            // (as rustup's proxy does), and a grandchild that never executes.
            event(fork(ROOT, ROOT, ROOT + 1)),
            event(comm(ROOT, ROOT + 1, "jobserver", false)),
            event(fork(ROOT + 2, ROOT, ROOT + 2)),
            event(comm(ROOT + 2, ROOT + 2, "rustup", true)),
            event(comm(ROOT + 2, ROOT + 2, "rustc", true)),
            event(fork(ROOT + 3, ROOT + 2, ROOT + 3)),
        ]);
        let collected =
            c.finish(Event::CpuClock, (0, 1), Vec::new(), CostByKind::default()).unwrap();
        let p = |ppid: Option<Pid>, commands: &[&str]| ProcessLog {
            ppid,
            commands: commands.iter().map(|c| c.to_string()).collect(),
        };
        let expected: BTreeMap<Pid, ProcessLog> = [
            (Pid(ROOT), p(None, &["cargo"])),
            (Pid(ROOT + 2), p(Some(Pid(ROOT)), &["cargo", "rustup", "rustc"])),
            (Pid(ROOT + 3), p(Some(Pid(ROOT + 2)), &["rustc"])),
        ]
        .into_iter()
        .collect();
        assert_eq!(collected.processes, expected);
        assert_eq!(collected.threads.len(), 4);
        assert_eq!(collected.threads[&Tid(ROOT + 1)].pid, Pid(ROOT));
    }
}
