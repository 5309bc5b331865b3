//! `ffiprof record`: the boundary-aware profile of any program, every thread.
//!
//! A program given as a command is forked, held at a gate while perf events are opened on
//! it (one per CPU, inherited by every thread and child process, enabled on exec), then
//! released: sampling starts at its first instruction. A running process (`--pid`) gets
//! the same events on each of its threads. Each sample carries the user registers and a
//! copy of the user stack; a loop in ffiprof drains the rings every few milliseconds,
//! puts the records of all CPUs back in time order, follows each process's executable
//! mappings ([`target`]) and unwinds every sample at once with the target's modules read
//! from disk, keeping only module and file offset per frame. After recording, those are
//! symbolized from the files (so symbols survive a program that has exited), classified
//! by language, and written as `ffiprof profile` writes its profiles, per thread and
//! overall, plus a Firefox Profiler profile ([`mod@write`]).
//!
//! Recording ends when the program exits, `--duration` passes or Ctrl-C is pressed. The
//! outputs are then written; ffiprof never kills the program, and passes its exit status
//! through once it ends.

pub(crate) mod firefox;
pub(crate) mod samples;
pub(crate) mod session;
pub(crate) mod symbols;
pub(crate) mod table;
pub(crate) mod target;
pub(crate) mod write;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::ffi::{self, GatedChild};
use crate::output::Staging;
use crate::sample::unwind::Unwound;
use crate::sample::{Event, MAX_FREQUENCY};
use samples::{SampleFile, SampleLog, SampleRecord};
use session::{Happened, Session, Timed};
use table::{StackId, StackTable};
use target::{Loc, Targets, UserStack};

pub use write::{RecordSummary, ThreadSummary};

/// What to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Start this command (program and arguments) and record it from its first
    /// instruction.
    Command(Vec<OsString>),
    /// Attach to this running process, all of its threads.
    Pid(u32),
}

/// Settings of one recording.
#[derive(Debug, Clone)]
pub struct Options {
    /// What to record.
    pub target: Target,
    /// Samples per second per thread.
    pub frequency: u64,
    /// Stop recording after this long (the program keeps running).
    pub duration: Option<Duration>,
    /// Bytes of user stack copied per sample: stacks deeper than this are cut short
    /// (and counted as truncated).
    pub stack_bytes: u32,
    /// Output directory.
    pub out: PathBuf,
}

/// How often the rings are drained: often enough that a ring (16 MiB per CPU) never
/// fills, rarely enough that ffiprof's own wake-ups cost the program nothing measurable.
pub(crate) const DRAIN_EVERY: Duration = Duration::from_millis(10);

/// Largest stack copy the kernel accepts (a multiple of 8 below 64 KiB).
pub const MAX_STACK_BYTES: u32 = 65528;

impl Options {
    /// Defaults: 1000 Hz, 16 KiB of stack (twice perf's default), until the program
    /// exits.
    pub fn new(target: Target, out: PathBuf) -> Options {
        Options { target, frequency: 1000, duration: None, stack_bytes: 16 << 10, out }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_FREQUENCY).contains(&self.frequency) {
            return Err(Error::InvalidOption(format!(
                "--frequency {} is out of range: give 1 to {MAX_FREQUENCY} samples per second",
                self.frequency
            )));
        }
        if self.stack_bytes < 512 || self.stack_bytes > MAX_STACK_BYTES || self.stack_bytes % 8 != 0
        {
            return Err(Error::InvalidOption(format!(
                "--stack-bytes {} is out of range: give a multiple of 8 from 512 to \
                 {MAX_STACK_BYTES}",
                self.stack_bytes
            )));
        }
        if let Target::Command(cmd) = &self.target {
            if cmd.is_empty() {
                return Err(Error::InvalidOption(
                    "no program given: ffiprof record -- PROGRAM [ARGS...], or --pid PID".into(),
                ));
            }
        }
        Ok(())
    }
}

/// What one thread's samples weigh on one stack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Weight {
    /// Samples.
    pub samples: u64,
    /// The sum of their periods (CPU nanoseconds for cpu-clock, cycles for cycles).
    pub period: u64,
}

/// One thread's samples: their weight on each distinct stack (the samples themselves, in
/// time order, are in the recording's [`SampleFile`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct ThreadLog {
    /// Its process.
    pub pid: u32,
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
}

impl ThreadLog {
    /// A thread of process `pid`, with no sample yet.
    pub(crate) fn new(pid: u32, name: Option<String>) -> ThreadLog {
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

/// Everything a recording collected, before symbolization.
pub(crate) struct Collected {
    /// Threads by tid.
    pub threads: BTreeMap<u32, ThreadLog>,
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
    /// Every sample, in time order.
    pub samples: SampleFile,
    /// Frames of the locations symbolized while recording (see [`symbols`]).
    pub symbols: HashMap<Loc, Vec<crate::stacks::Frame>>,
}

/// The recorded program, still running or ended.
pub struct Program {
    child: Option<GatedChild>,
    exit_code: Option<i32>,
}

impl Program {
    /// The exit code, if the program ended while recording.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_code
    }

    /// Its pid, when ffiprof started it and it is still running.
    pub fn running_pid(&self) -> Option<i32> {
        self.child.as_ref().filter(|_| self.exit_code.is_none()).map(GatedChild::pid)
    }

    /// Waits for a program ffiprof started to end; its exit code (128 + signal when a
    /// signal ended it). None for a process ffiprof attached to.
    pub fn wait(&mut self) -> Result<Option<i32>> {
        if self.exit_code.is_some() {
            return Ok(self.exit_code);
        }
        let Some(child) = self.child.as_mut() else { return Ok(None) };
        loop {
            match child.wait() {
                Ok(code) => {
                    self.exit_code = Some(code);
                    return Ok(Some(code));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Internal(format!("waiting for the program: {e}"))),
            }
        }
    }
}

/// What [`record`] produced.
pub struct Recorded {
    /// summary.json's content.
    pub summary: RecordSummary,
    /// The output directory.
    pub out: PathBuf,
    /// The program.
    pub program: Program,
}

/// A flag that Ctrl-C sets (instead of ending ffiprof): pass it to [`record`].
pub fn interrupt_flag() -> &'static AtomicBool {
    ffi::interrupt_flag()
}

/// Finds the program as execvp would: a path containing `/` as is, else the first
/// executable file of that name on PATH.
pub fn resolve_program(program: &std::ffi::OsStr) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let shown = program.to_string_lossy().into_owned();
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.as_bytes().contains(&b'/') {
        let p = PathBuf::from(program);
        return match std::fs::metadata(&p) {
            Err(e) => {
                Err(Error::NoSuchProgram { program: shown, reason: format!("{e}; check the path") })
            }
            Ok(_) if !executable(&p) => Err(Error::NoSuchProgram {
                program: shown,
                reason: "not an executable file; check the path and its permissions (chmod +x)"
                    .into(),
            }),
            Ok(_) => Ok(p),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| executable(p)).ok_or_else(
        || Error::NoSuchProgram {
            program: shown,
            reason: "not found on PATH; give its path (./prog) or install it".into(),
        },
    )
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesized name: Z (zombie) and X (dead) have ended.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

fn threads_of(pid: u32) -> Vec<u32> {
    let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect::<Vec<u32>>()
        })
        .unwrap_or_default();
    tids.sort_unstable();
    tids
}

fn comm_of(pid: u32, tid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_owned())
}

/// Folds the kernel's records into thread logs and process maps, in time order.
struct Collector {
    threads: BTreeMap<u32, ThreadLog>,
    targets: Targets,
    locs: Vec<Loc>,
    stacks: StackTable,
    log: SampleLog,
    lost_unattributed: u64,
    throttled: u64,
    asked: usize,
    /// Locations seen so far, and those not yet sent to be symbolized.
    seen: HashSet<Loc>,
    fresh: Vec<Loc>,
    /// Stack copies done with, to hand back to the session.
    spare: Vec<Vec<u8>>,
    /// Processes whose `/proc/<pid>/maps` has been read since their last exec.
    maps_read: HashSet<u32>,
}

impl Collector {
    fn thread(&mut self, pid: u32, tid: u32) -> &mut ThreadLog {
        self.threads.entry(tid).or_insert_with(|| ThreadLog::new(pid, comm_of(pid, tid)))
    }

    fn apply(&mut self, t: Timed) {
        match t.what {
            Happened::Sample(s) => {
                // A process's first sample (after its exec): its maps now hold what no
                // record announces, such as the vDSO.
                if self.maps_read.insert(s.pid) {
                    let _ = self.targets.read_proc_maps(s.pid);
                }
                let regs =
                    UserStack { ip: s.ip, sp: s.sp, bp: s.bp, stack: &s.stack, asked: self.asked };
                let mut locs = std::mem::take(&mut self.locs);
                let Unwound { truncated } = self.targets.unwind(s.pid, &regs, &mut locs);
                for l in &locs {
                    if self.seen.insert(*l) {
                        self.fresh.push(*l);
                    }
                }
                let record = SampleRecord {
                    time: t.time,
                    period: s.period,
                    stack: self.stacks.intern(&locs),
                    truncated,
                };
                self.locs = locs;
                self.thread(s.pid, s.tid).add(&record);
                self.log.push(s.tid, &record);
                self.spare.push(s.stack);
            }
            Happened::Map { pid, mapping } => self.targets.map(pid, mapping),
            Happened::Comm { pid, tid, name, exec } => {
                if exec {
                    self.maps_read.remove(&pid);
                    self.targets.exec(pid);
                }
                self.thread(pid, tid).name = Some(name);
            }
            Happened::Fork { pid, ppid, tid } => {
                if pid != ppid {
                    self.targets.fork(ppid, pid);
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

    /// Applies every pending record older than `horizon` (all of them when None) in time
    /// order, keeping the rest: a record stamped before the drain began was in its ring
    /// when the drain read it, so nothing older can still arrive.
    fn apply_until(&mut self, pending: &mut Vec<Timed>, horizon: Option<u64>) {
        pending.sort_by_key(|t| t.time);
        let cut = match horizon {
            Some(h) => pending.partition_point(|t| t.time < h),
            None => pending.len(),
        };
        let ready: Vec<Timed> = pending.drain(..cut).collect();
        for t in ready {
            self.apply(t);
        }
    }
}

/// Why recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Exited,
    Duration,
    Interrupted,
}

/// Records the target as `options` say and writes the outputs into `options.out`.
/// `interrupted` (see [`interrupt_flag`]) ends recording early; the outputs are written
/// all the same.
pub fn record(options: &Options, interrupted: &AtomicBool) -> Result<Recorded> {
    options.validate()?;
    // An unwritable destination fails here, before the program starts.
    let staging = Staging::new(&options.out)?;
    let asked = options.stack_bytes as usize;
    let mut pending: Vec<Timed> = Vec::new();
    let (mut session, mut child, pid) = match &options.target {
        Target::Command(cmd) => {
            let path = resolve_program(&cmd[0])?;
            let cstr = |s: &std::ffi::OsStr| {
                CString::new(s.as_bytes()).map_err(|_| {
                    Error::InvalidOption(format!("{}: contains a NUL byte", s.to_string_lossy()))
                })
            };
            let program = cstr(path.as_os_str())?;
            let argv = cmd.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
            let child = ffi::fork_gated(&program, &argv)
                .map_err(|e| Error::Internal(format!("cannot fork: {e}")))?;
            let pid = child.pid() as u32;
            let session = Session::open(&[pid], true, options.frequency, options.stack_bytes)?;
            (session, Some(child), pid)
        }
        Target::Pid(pid) => {
            let pid = *pid;
            if !alive(pid) {
                return Err(Error::NoSuchProcess {
                    pid,
                    reason: "it does not exist (or has ended); check the pid with ps".into(),
                });
            }
            let mut tids = threads_of(pid);
            let mut session = Session::open(&tids, false, options.frequency, options.stack_bytes)?;
            session.enable()?;
            // A thread started while the events were being opened, by a thread whose
            // events did not exist yet, inherited none: it is a new thread without a fork
            // record in the rings (the kernel writes one when it clones with inherited
            // events). Add those until none is left.
            for _ in 0..10 {
                session.drain(&mut pending);
                let forked: HashSet<u32> = pending
                    .iter()
                    .filter_map(|t| match t.what {
                        Happened::Fork { tid, .. } => Some(tid),
                        _ => None,
                    })
                    .collect();
                let now = threads_of(pid);
                let new: Vec<u32> = now
                    .iter()
                    .copied()
                    .filter(|t| !tids.contains(t) && !forked.contains(t))
                    .collect();
                if new.is_empty() {
                    break;
                }
                session.follow(&new)?;
                tids.extend(new);
            }
            (session, None, pid)
        }
    };
    let mut collector = Collector {
        threads: BTreeMap::new(),
        targets: Targets::new(),
        locs: Vec::new(),
        stacks: StackTable::default(),
        log: SampleLog::create_in(staging.path())
            .map_err(|source| Error::Destination { path: options.out.clone(), source })?,
        lost_unattributed: 0,
        throttled: 0,
        asked,
        seen: HashSet::new(),
        fresh: Vec::new(),
        spare: Vec::new(),
        maps_read: HashSet::new(),
    };
    let background = symbols::Background::start().ok();
    let mut notes = Vec::new();
    if let Some(note) = &session.hardware_note {
        notes.push(note.clone());
    }
    if let Some(c) = child.as_mut() {
        match c.release() {
            Ok(Ok(())) => {}
            Ok(Err(errno)) => {
                return Err(Error::NoSuchProgram {
                    program: match &options.target {
                        Target::Command(cmd) => cmd[0].to_string_lossy().into_owned(),
                        Target::Pid(_) => String::new(),
                    },
                    reason: format!("{}", std::io::Error::from_raw_os_error(errno)),
                })
            }
            Err(e) => return Err(Error::Internal(format!("cannot start the program: {e}"))),
        }
    } else {
        for tid in threads_of(pid) {
            let _ = collector.thread(pid, tid);
        }
    }
    let start = ffi::monotonic_ns();
    let started = Instant::now();
    let cpu_at_start = ffi::own_cpu_seconds();
    if matches!(options.target, Target::Pid(_)) {
        let _ = collector.targets.read_proc_maps(pid);
        collector.maps_read.insert(pid);
    }

    let mut exit_code = None;
    let ended = loop {
        let horizon = ffi::monotonic_ns();
        session.drain(&mut pending);
        collector.apply_until(&mut pending, Some(horizon));
        session.recycle(&mut collector.spare);
        if let Some(b) = &background {
            b.send(&mut collector.fresh, &collector.targets.modules);
        }
        if let Some(c) = child.as_mut() {
            if let Ok(Some(code)) = c.try_wait() {
                exit_code = Some(code);
                break Ended::Exited;
            }
        } else if !alive(pid) {
            break Ended::Exited;
        }
        if interrupted.load(Ordering::SeqCst) {
            break Ended::Interrupted;
        }
        if options.duration.is_some_and(|d| started.elapsed() >= d) {
            break Ended::Duration;
        }
        std::thread::sleep(DRAIN_EVERY);
    };
    session.disable();
    let end = ffi::monotonic_ns();
    session.drain(&mut pending);
    collector.apply_until(&mut pending, None);
    let done_recording = Instant::now();
    let recorder_cpu = ffi::own_cpu_seconds() - cpu_at_start;
    let resolved = match background {
        Some(b) => b.finish(),
        None => symbols::Resolved::default(),
    };

    match ended {
        Ended::Exited => {}
        Ended::Duration => notes.push(format!(
            "recording stopped after --duration {:.1} s; the program kept running",
            started.elapsed().as_secs_f64()
        )),
        Ended::Interrupted => {
            notes.push("recording stopped by Ctrl-C; the program was not killed".into())
        }
    }
    if collector.throttled > 0 {
        notes.push(format!(
            "the kernel throttled sampling {} times: the frequency is above what \
             kernel.perf_event_max_sample_rate allows",
            collector.throttled
        ));
    }
    if session.unparsable > 0 {
        notes.push(format!("{} records could not be parsed", session.unparsable));
    }
    if session.vanished > 0 {
        notes.push(format!("{} threads ended while ffiprof attached", session.vanished));
    }
    let no_info = collector.targets.without_unwind_info();
    if !no_info.is_empty() {
        notes.push(format!(
            "no unwind information could be read for {}: stacks stop where they enter it",
            no_info.join(", ")
        ));
    }
    let event = session.event;
    drop(session);
    let collected = Collected {
        threads: collector.threads,
        targets: collector.targets,
        event,
        window: (start, end),
        lost_unattributed: collector.lost_unattributed,
        notes: notes.into_iter().chain(resolved.notes).collect(),
        stacks: collector.stacks,
        samples: collector
            .log
            .finish()
            .map_err(|source| Error::Write { path: options.out.clone(), source })?,
        symbols: resolved.frames,
    };
    let described = write::Described {
        command: match &options.target {
            Target::Command(cmd) => {
                Some(cmd.iter().map(|a| a.to_string_lossy().into_owned()).collect())
            }
            Target::Pid(_) => None,
        },
        pid,
        exit_code,
        frequency: options.frequency,
        stack_bytes: options.stack_bytes,
        recorder_cpu_seconds: recorder_cpu,
    };
    let summary = write::write_all(collected, &described, staging.path(), done_recording)?;
    let out = staging.commit()?;
    Ok(Recorded { summary, out, program: Program { child, exit_code } })
}
