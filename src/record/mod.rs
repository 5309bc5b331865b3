//! `ffiprof record`: the boundary-aware profile of any program, every thread.
//!
//! A program given as a command is forked, held at a gate while perf events are opened on
//! it (one per CPU, inherited by every thread and child process, enabled on exec), then
//! released: sampling starts at its first instruction. A running process (`--pid`) gets
//! the same events on each of its threads. Each sample carries the user registers and a
//! copy of the user stack. Recording ends when the program exits, `--duration` passes or
//! Ctrl-C is pressed; ffiprof never kills the program, and passes its exit status through
//! once it ends.
//!
//! A sample goes one way through the stages, one module each, in this order:
//! - [`program`]: the program, launched (gated, then running) or attached to;
//! - [`collect`]: the perf events and their rings, drained every few milliseconds, the
//!   records of all CPUs put back in time order;
//! - [`unwind`]: each process's executable mappings, and each sample's stack unwound with
//!   the modules read from disk into code locations (module and file offset), so that
//!   symbols survive a program that has exited;
//! - [`intern`]: the sample's stack interned in the [`table`] (a prefix tree shared by all
//!   threads), its thread's weight on that stack counted, the sample itself appended to
//!   the [`samples`] file; so memory grows with distinct stacks, not with samples. With
//!   `--off-cpu`, each thread's switches ([`offcpu`]) time its waits, and a wait's
//!   context-switch sample is weighted by it;
//! - [`symbolize`]: each distinct location to its frames, mostly while recording on CPU
//!   the program leaves idle, the rest on all cores when recording ends;
//! - [`summarize`]: pure, from the table, the thread logs and the symbols to the profiles
//!   and `summary.json`'s content ([`waits`]: where threads wait);
//! - [`write`]: the files (flamegraphs, folded stacks, pprof, the [`firefox`] profile,
//!   `summary.json`), into a staging directory renamed into place when complete.

pub(crate) mod collect;
pub(crate) mod firefox;
pub(crate) mod intern;
pub(crate) mod layout;
pub(crate) mod offcpu;
pub(crate) mod program;
pub(crate) mod samples;
pub(crate) mod schema;
pub(crate) mod summarize;
pub(crate) mod symbolize;
pub(crate) mod table;
pub(crate) mod terminal;
pub(crate) mod unwind;
pub(crate) mod waits;
pub(crate) mod write;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::ffi;
use crate::ids::Pid;
use crate::output::Staging;
use crate::sample::perf::Troubles;
use crate::sample::MAX_FREQUENCY;
use collect::Session;
use intern::Collector;
use program::{threads_of, Attached, Launched, Running};
use samples::SampleLog;
use summarize::Described;

pub use program::{resolve_program, Program};
pub use schema::{OffCpuRecording, RecordSummary, Recording, ThreadSummary, ThreadTime, Wait};

/// What to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Start this command (program and arguments) and record it from its first
    /// instruction.
    Command(Vec<OsString>),
    /// Attach to this running process, all of its threads.
    Pid(Pid),
}

impl Target {
    /// The name a recording of it takes by default: `pid-N`, or the program's file name.
    pub fn name(&self) -> String {
        match self {
            Target::Pid(pid) => format!("pid-{pid}"),
            Target::Command(command) => crate::source::Source::Run(command.clone()).name(),
        }
    }
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
    /// Record where threads wait too: each switch off a CPU, with its stack where perf
    /// allows, weighted by the time until the thread runs again.
    pub off_cpu: bool,
}

/// How often the rings are drained: often enough that a ring (16 MiB per CPU) never
/// fills, rarely enough that ffiprof's own wake-ups cost the program nothing measurable.
pub(crate) const DRAIN_EVERY: Duration = Duration::from_millis(10);

pub use crate::sample::MAX_STACK_BYTES;

impl Options {
    /// Defaults: the samplers' frequency and stack copy ([`crate::sample::Options`]'s:
    /// 1000 Hz, 16 KiB of stack, twice perf's default), until the program exits.
    pub fn new(target: Target, out: PathBuf) -> Options {
        let sampling = crate::sample::Options::default();
        Options {
            target,
            frequency: sampling.frequency,
            duration: None,
            stack_bytes: sampling.stack_bytes,
            out,
            off_cpu: false,
        }
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

/// Why recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Exited(Option<i32>),
    Duration,
    Interrupted,
}

/// How recording starts: the program, and the events on it.
enum Start {
    /// A command, forked and gated, with events enabled when it execs.
    Launch(Launched),
    /// A running process, its threads' events enabled already.
    Attach(Attached),
}

/// Opens the perf events: the program forked and held at its start, or the process
/// attached.
fn open(options: &Options) -> Result<(Start, Session)> {
    let (frequency, stack_bytes, off) = (options.frequency, options.stack_bytes, options.off_cpu);
    Ok(match &options.target {
        Target::Command(command) => {
            let launched = Launched::fork(command)?;
            let session =
                Session::open(&[launched.pid().main_thread()], true, frequency, stack_bytes, off)?;
            (Start::Launch(launched), session)
        }
        Target::Pid(pid) => {
            let attached = Attached::to(*pid)?;
            let session = Session::attach(|| threads_of(*pid), frequency, stack_bytes, off)?;
            (Start::Attach(attached), session)
        }
    })
}

/// Whether recording ends now, and why.
fn ended(
    running: &mut Running,
    interrupted: &AtomicBool,
    options: &Options,
    started: Instant,
) -> Option<Ended> {
    if let Some(code) = running.ended() {
        return Some(Ended::Exited(code));
    }
    if interrupted.load(Ordering::SeqCst) {
        return Some(Ended::Interrupted);
    }
    options.duration.is_some_and(|d| started.elapsed() >= d).then_some(Ended::Duration)
}

impl Ended {
    /// What the reader should know of how recording ended, after `seconds`.
    fn note(&self, seconds: f64) -> Option<String> {
        match self {
            Ended::Exited(_) => None,
            Ended::Duration => Some(format!(
                "recording stopped after --duration {seconds:.1} s; the program kept running"
            )),
            Ended::Interrupted => {
                Some("recording stopped by Ctrl-C; the program was not killed".into())
            }
        }
    }
}

impl Target {
    /// The program and its arguments, for a program ffiprof started.
    fn command_line(&self) -> Option<Vec<String>> {
        match self {
            Target::Command(cmd) => {
                Some(cmd.iter().map(|a| a.to_string_lossy().into_owned()).collect())
            }
            Target::Pid(_) => None,
        }
    }
}

/// Records the target as `options` say and writes the outputs into `options.out`.
/// `interrupted` (see [`interrupt_flag`]) ends recording early; the outputs are written
/// all the same.
pub fn record(options: &Options, interrupted: &AtomicBool) -> Result<Recorded> {
    options.validate()?;
    // An unwritable destination fails here, before the program starts.
    let staging = Staging::new(&options.out)?;
    let (frequency, stack_bytes) = (options.frequency, options.stack_bytes);
    let (start, mut session) = open(options)?;
    let log = SampleLog::create_in(staging.path())
        .map_err(|source| Error::Destination { path: options.out.clone(), source })?;
    let mut collector = Collector::new(stack_bytes, log);
    let background = symbolize::Background::start().ok();
    let mut running: Running = match start {
        Start::Launch(launched) => launched.release()?,
        Start::Attach(attached) => {
            collector.attached(attached.pid(), &threads_of(attached.pid()));
            attached.running()
        }
    };
    crate::progress::running(match options.target.command_line() {
        Some(command) => format!("recording {}", command.join(" ")),
        None => format!("recording process {}", running.pid()),
    });
    let start = ffi::monotonic_ns();
    let started = Instant::now();
    let cpu_at_start = ffi::own_cpu_seconds();
    let thread_cpu_at_start = ffi::thread_cpu_ns();

    let ended = loop {
        collector.apply_all(session.in_order(false));
        session.recycle(&mut collector.spare);
        if let Some(b) = &background {
            let (fresh, modules) = collector.fresh();
            b.send(fresh, modules);
        }
        if let Some(ended) = ended(&mut running, interrupted, options, started) {
            break ended;
        }
        std::thread::sleep(DRAIN_EVERY);
    };
    session.disable();
    let end = ffi::monotonic_ns();
    collector.apply_all(session.in_order(true));
    let done_recording = Instant::now();
    crate::progress::stage("symbolizing the stacks, writing flamegraphs and profiles");
    let recorder_cpu = ffi::own_cpu_seconds() - cpu_at_start;
    let recording_thread_cpu_ns = ffi::thread_cpu_ns().saturating_sub(thread_cpu_at_start);
    let resolved = background.map(symbolize::Background::finish).unwrap_or_default();

    let mut notes = Troubles {
        hardware: session.hardware_note.clone(),
        throttled: collector.throttled,
        unparsable: session.unparsable,
        no_unwind_info: collector.targets().without_unwind_info(),
        vanished: session.vanished,
    }
    .notes();
    let window_seconds = Duration::from_nanos(end.saturating_sub(start)).as_secs_f64();
    notes.extend(ended.note(window_seconds));
    notes.extend(session.off_cpu_note.clone());
    let (event, off_cpu, drain_cost) = (session.event, session.off_cpu(), session.drain_cost);
    drop(session);
    let collected = collector
        .finish(event, (start, end), notes, drain_cost)
        .map_err(|source| Error::Write { path: options.out.clone(), source })?;
    let exit_code = match ended {
        Ended::Exited(code) => code,
        _ => None,
    };
    let described = Described {
        command: options.target.command_line(),
        pid: running.pid(),
        exit_code,
        frequency,
        stack_bytes,
        recorder_cpu_seconds: recorder_cpu,
        recording_thread_cpu_ns,
        off_cpu,
        environment: Environment::detect(),
    };
    let symbols = symbolize::finish(&collected, resolved);
    let notes = collected.notes.iter().cloned().chain(symbols.notes).collect();
    let summarized = summarize::summarize(&collected, &symbols.frames, notes, &described);
    let summary = write::write_all(&collected, summarized, staging.path(), done_recording)?;
    let out = staging.commit()?;
    Ok(Recorded { summary, out, program: running.into_program(exit_code) })
}
