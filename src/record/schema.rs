//! `summary.json`'s schema (results/README.md documents it): what the summarize stage
//! finds ([`Recording`], [`ThreadSummary`]) and the file the write stage completes with
//! what writing cost ([`RecordSummary`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::ids::{Pid, Tid};
use crate::sample::{Event, Unwind};
use crate::stacks::{BoundarySummary, Language};

/// Version of `summary.json` written by `ffiprof record`.
pub(crate) const RECORD_SCHEMA_VERSION: u32 = 1;

/// Where samples fall and how trustworthy their stacks are: a thread's or all threads'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Language shares, C side, crossings, stacks reaching the thread root, unknown
    /// frames, lost samples.
    #[serde(flatten)]
    pub boundary: BoundarySummary,
    /// Samples whose stack was cut short by the stack-copy size.
    pub truncated_samples: u64,
    /// Their share.
    pub truncated: f64,
    /// Samples with a frame in a C or C++ library (language `c` or `c++`: not the C
    /// runtime).
    pub c_samples: u64,
    /// Share of those with a Rust frame as an ancestor of their outermost C frame.
    pub c_with_rust_caller: f64,
    /// Samples with a frame found where no unwind information covered the code (by the
    /// frame-pointer chain or a stack scan), and their share.
    #[serde(default)]
    pub recovered_samples: u64,
    /// Their share.
    #[serde(default)]
    pub recovered: f64,
    /// Frames found so by the frame-pointer chain.
    #[serde(default)]
    pub recovered_by_frame_pointer: u64,
    /// Frames found so by scanning the stack for a return address.
    #[serde(default)]
    pub recovered_by_scan: u64,
}

/// Files drawn for one busy thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadFiles {
    /// Flamegraph.
    pub flamegraph: PathBuf,
    /// Folded stacks.
    pub folded: PathBuf,
}

/// One thread of the recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadSummary {
    /// Thread id.
    pub tid: Tid,
    /// Process id.
    pub pid: Pid,
    /// Name (comm).
    pub name: String,
    /// Its process's command (the name of the process's main thread).
    #[serde(default)]
    pub process: String,
    /// Its samples.
    #[serde(flatten)]
    pub health: Health,
    /// Its own flamegraph, when it was busy enough to get one.
    pub files: Option<ThreadFiles>,
    /// Its time on and off CPU, with `--off-cpu`.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub time: Option<ThreadTime>,
}

/// A thread's time on and off CPU, from the kernel's switch records (`--off-cpu`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadTime {
    /// Seconds on a CPU: from each switch-in (or its exec) to the next switch-out (or its
    /// end).
    pub on_cpu_seconds: f64,
    /// Seconds off CPU blocked (sleeping, reading, waiting on a lock): from each
    /// switch-out while not runnable to the next switch-in.
    pub off_cpu_seconds: f64,
    /// How many times it blocked.
    pub off_cpu_waits: u64,
    /// Of `off_cpu_seconds`, those with a stack (a context-switch sample).
    pub off_cpu_with_stack_seconds: f64,
    /// Seconds runnable but off CPU: preempted, waiting for a CPU (not in
    /// `off_cpu_seconds`).
    pub runnable_seconds: f64,
}

/// A place where threads wait: where they left user space, the C function below the
/// Rust code that led there, and that Rust code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wait {
    /// Where the thread left user space (the stack's innermost frame).
    pub function: String,
    /// The outermost C-side frame below the innermost Rust frame (where Rust handed the
    /// wait to C or the C runtime), if the wait is below Rust.
    pub c_function: Option<String>,
    /// The innermost frame of a C or C++ library below the Rust caller (where the
    /// library itself waited: its lock, its read), if the wait is in one; libc's own
    /// frames are the C runtime, not a library.
    pub c_library_function: Option<String>,
    /// The Rust caller: the innermost Rust frame above `c_function` outside Rust's
    /// standard library (`std`, `core`, `alloc`), else the innermost Rust frame.
    pub rust_caller: Option<String>,
    /// The standard library's innermost frame, when the Rust caller reached C through it
    /// (`std::thread::sleep`, a `Condvar` wait).
    pub through_std: Option<String>,
    /// Seconds blocked there, all threads.
    pub seconds: f64,
    /// Their share of all the seconds blocked with a stack.
    pub share: f64,
    /// How many waits.
    pub waits: u64,
    /// How many threads waited there.
    pub threads: usize,
}

/// How off-CPU time was recorded (`--off-cpu`), and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffCpuRecording {
    /// `stacks` (a context-switch sample at each switch-out) or `switch-records` (time
    /// only: perf refused the samples; a note says why).
    pub mode: String,
    /// Seconds blocked, all threads.
    pub off_cpu_seconds: f64,
    /// Of which with a stack.
    pub with_stack_seconds: f64,
    /// Seconds runnable but off CPU (preempted), all threads.
    pub runnable_seconds: f64,
    /// Waits: switches off a CPU while blocked, each ended in the window (the thread ran
    /// again, or recording ended while it was blocked).
    pub waits: u64,
    /// Switches off a CPU (blocked or preempted) that ended in the window (the thread ran
    /// again, or recording ended while it was blocked), from switch records.
    pub switches_out: u64,
    /// Context-switch samples received.
    pub off_cpu_samples: u64,
    /// Switch records received (out and in).
    pub switch_records: u64,
    /// Records the kernel could not write (its rings full), all kinds, all threads.
    pub records_lost: u64,
    /// ffiprof's CPU time per CPU sample, microseconds (see `cost_basis`).
    pub recorder_cpu_per_cpu_sample_us: Option<f64>,
    /// ffiprof's CPU time per switch off a CPU (its sample and its two switch records),
    /// microseconds.
    pub recorder_cpu_per_off_cpu_event_us: Option<f64>,
    /// How those two are measured.
    pub cost_basis: String,
    /// The off-CPU files (with stacks).
    pub files: Option<OffCpuFiles>,
}

/// The off-CPU profile's files, relative to the recording's directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffCpuFiles {
    /// Flamegraph of the time blocked, all threads, microseconds.
    pub flamegraph: PathBuf,
    /// Its folded stacks (microseconds).
    pub folded: PathBuf,
    /// Gzipped pprof protobuf, sample types `waits` and `off_cpu` (nanoseconds).
    pub pprof: PathBuf,
    /// Flamegraph of where the time went, on CPU and off, all threads, microseconds.
    pub wall_flamegraph: PathBuf,
    /// Its folded stacks (microseconds).
    pub wall_folded: PathBuf,
}

/// A place where C calls back into Rust (a `qsort` comparator, a C library's callback):
/// the C function Rust called, the C function that made the call back, the Rust function
/// called, and the samples spent below it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Callback {
    /// The C-side function Rust called (the first below the Rust caller).
    pub c_entry: String,
    /// The C-side function that called back.
    pub c_caller: String,
    /// The Rust function it called.
    pub rust: String,
    /// Samples below the Rust function (itself included).
    pub samples: u64,
    /// Their share of all samples.
    pub share: f64,
}

/// One process of the recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSummary {
    /// Process id.
    pub pid: Pid,
    /// The process that forked it, when that was recorded too.
    pub ppid: Option<Pid>,
    /// The command it started with, then each program it executed.
    pub commands: Vec<String>,
    /// Its threads seen.
    pub threads: usize,
    /// Their samples.
    pub samples: u64,
}

/// A Rust function and the samples it accounts for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Caller {
    /// Function.
    pub function: String,
    /// Samples.
    pub samples: u64,
}

/// A C-side function where samples land, with the Rust functions that called into C
/// above it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CFunction {
    /// Function.
    pub function: String,
    /// Module file name.
    pub module: String,
    /// Language (`c` or `c-runtime`).
    pub language: Language,
    /// Samples with it as the leaf (self time).
    pub samples: u64,
    /// Their share of all samples.
    pub share: f64,
    /// The nearest Rust frame above it, most samples first (at most 3).
    pub rust_callers: Vec<Caller>,
}

/// A place where Rust calls into C: the Rust function, the C function it calls, and the
/// samples spent on the C side below it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossing {
    /// The Rust caller.
    pub rust: String,
    /// The first C-side function below it.
    pub c_entry: String,
    /// Samples with their leaf on the C side below this crossing.
    pub samples: u64,
    /// Their share of all samples.
    pub share: f64,
}

/// Paths of the recording's files, relative to its directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordFiles {
    /// Flamegraph of all threads, each under its thread's name.
    pub flamegraph: PathBuf,
    /// Folded stacks of all threads.
    pub folded: PathBuf,
    /// Gzipped pprof protobuf of all threads.
    pub pprof: PathBuf,
    /// Gzipped Firefox Profiler profile (open at profiler.firefox.com).
    pub firefox: PathBuf,
}

/// What the recording says, as the summarize stage finds it: `summary.json` but for its
/// threads (which travel with their profiles until written) and what only writing
/// knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    /// [`RECORD_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The command, when ffiprof started the program.
    pub command: Option<Vec<String>>,
    /// The program's (first) process.
    pub pid: Pid,
    /// Its exit code, if it ended while recording.
    pub exit_code: Option<i32>,
    /// Event sampled.
    pub event: Event,
    /// How stacks were unwound.
    pub unwind: Unwind,
    /// Samples per second per thread asked for.
    pub requested_hz: u64,
    /// Length of the recording, seconds.
    pub window_seconds: f64,
    /// CPU time ffiprof itself used while recording (draining, ordering and unwinding;
    /// the kernel's sampling and stack copies are charged to the program), seconds.
    pub recorder_cpu_seconds: f64,
    /// Where.
    pub environment: Environment,
    /// All threads together.
    pub overall: Health,
    /// Every process seen while recording, sampled or not, by pid.
    #[serde(default)]
    pub processes: Vec<ProcessSummary>,
    /// The C-side functions with the most self samples.
    pub hottest_c_functions: Vec<CFunction>,
    /// Where Rust calls into C, by C-side samples below.
    pub crossings: Vec<Crossing>,
    /// Where C calls back into Rust, by samples below.
    #[serde(default)]
    pub callbacks: Vec<Callback>,
    /// Where threads wait, the most seconds first (with `--off-cpu` and stacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_cpu: Option<Vec<Wait>>,
    /// How off-CPU time was recorded, with `--off-cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_cpu_recording: Option<OffCpuRecording>,
    /// Files.
    pub files: RecordFiles,
    /// Things to know.
    pub notes: Vec<String>,
}

/// `summary.json` of `ffiprof record`: the recording, its threads, and what writing the
/// files cost. Its fields read as the recording's too (`summary.overall`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordSummary {
    /// Everything the summarize stage found.
    #[serde(flatten)]
    pub recording: Recording,
    /// Each thread that ran while recording.
    pub threads: Vec<ThreadSummary>,
    /// Seconds from the end of recording to all files written.
    pub post_processing_seconds: f64,
    /// The most memory ffiprof itself had resident, from recording to the last file
    /// written (VmHWM; the program's own is not counted), bytes.
    #[serde(default)]
    pub recorder_peak_memory_bytes: Option<u64>,
}

impl std::ops::Deref for RecordSummary {
    type Target = Recording;

    fn deref(&self) -> &Recording {
        &self.recording
    }
}
