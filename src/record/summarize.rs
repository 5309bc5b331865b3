//! The summarize stage, pure: the recording's stack table, thread logs and symbols in,
//! the profiles and `summary.json`'s content out. Each thread's profile has one stack per
//! distinct stack it was sampled in; from them come each thread's health (languages,
//! crossings, stacks reaching a root, truncation), the hottest C functions with their
//! Rust callers, the places where Rust crosses into C, and the names of the files the
//! write stage ([`super::write`]) draws. Nothing here reads a file, a clock or the
//! machine.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::fmt;
use crate::profile::drawn_files;
use crate::sample::{Event, Unwind};
use crate::stacks::{
    boundary_marks, BoundarySummary, Entered, Frame, FrameInfo, Language, Profile, ProfileBuilder,
};

use super::intern::{Collected, RecoveredFrames, ThreadLog};
use super::symbolize::unknown_in;
use super::table::{StackId, StackTable};
use super::unwind::Loc;

/// The stem of the files of all threads together.
pub(crate) const ALL_THREADS: &str = "all-threads";

/// Version of `summary.json` written by `ffiprof record`.
pub(crate) const RECORD_SCHEMA_VERSION: u32 = 1;

/// A thread is drawn on its own when it has at least this share of all samples (and
/// [`BUSY_MIN_SAMPLES`]).
pub(crate) const BUSY_SHARE: f64 = 0.01;
/// ... and at least this many samples.
pub(crate) const BUSY_MIN_SAMPLES: u64 = 10;

/// What was recorded, for the summary.
pub(crate) struct Described {
    /// The command, when ffiprof started the program.
    pub command: Option<Vec<String>>,
    /// The program's (first) process.
    pub pid: u32,
    /// Its exit code, if it ended while recording.
    pub exit_code: Option<i32>,
    /// Samples per second asked for.
    pub frequency: u64,
    /// Stack bytes copied per sample.
    pub stack_bytes: u32,
    /// CPU time ffiprof used while recording.
    pub recorder_cpu_seconds: f64,
    /// Where.
    pub environment: Environment,
}

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
    pub tid: u32,
    /// Process id.
    pub pid: u32,
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
    pub pid: u32,
    /// The process that forked it, when that was recorded too.
    pub ppid: Option<u32>,
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

/// `summary.json` of `ffiprof record`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordSummary {
    /// [`RECORD_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The command, when ffiprof started the program.
    pub command: Option<Vec<String>>,
    /// The program's (first) process.
    pub pid: u32,
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
    /// Seconds from the end of recording to all files written.
    pub post_processing_seconds: f64,
    /// CPU time ffiprof itself used while recording (draining, ordering and unwinding;
    /// the kernel's sampling and stack copies are charged to the program), seconds.
    pub recorder_cpu_seconds: f64,
    /// The most memory ffiprof itself had resident, from recording to the last file
    /// written (VmHWM; the program's own is not counted), bytes.
    #[serde(default)]
    pub recorder_peak_memory_bytes: Option<u64>,
    /// Where.
    pub environment: Environment,
    /// All threads together.
    pub overall: Health,
    /// Each thread that ran while recording.
    pub threads: Vec<ThreadSummary>,
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
    /// Files.
    pub files: RecordFiles,
    /// Things to know.
    pub notes: Vec<String>,
}

fn unknown() -> Frame {
    unknown_in(None)
}

/// A thread's profile (one stack per distinct stack of its samples, weighted by how many
/// samples have it), and where each of the recording's stacks is in it.
pub(crate) struct ThreadProfile {
    /// Its thread.
    pub tid: u32,
    /// Symbolized.
    pub profile: Profile,
    /// The profile's stack of each of the recording's stacks (None: nothing was left).
    pub stacks: HashMap<StackId, Option<usize>>,
    /// The stem of its own files, when it is busy enough to get them.
    pub stem: Option<String>,
}

fn thread_profile(
    log: &ThreadLog,
    table: &StackTable,
    frames: &HashMap<Loc, Vec<Frame>>,
    event: Event,
) -> ThreadProfile {
    let mut builder = ProfileBuilder::default();
    let none: Vec<Frame> = vec![unknown()];
    // Each location is classified and interned once, and each distinct stack built once.
    let mut ids_at: HashMap<Loc, Vec<usize>> = HashMap::new();
    let mut stacks: HashMap<StackId, Option<usize>> = HashMap::new();
    for (&stack, weight) in &log.stacks {
        let mut ids = Vec::new();
        for l in table.locs(stack) {
            let at = ids_at
                .entry(l)
                .or_insert_with(|| builder.frame_ids(l.offset, frames.get(&l).unwrap_or(&none)));
            ids.extend(at.iter().rev());
        }
        let at = builder.push_ids(ids, 0, 0);
        if let Some(i) = at {
            let cpu = if event == Event::CpuClock { weight.period } else { 0 };
            builder.add_weight(i, weight.samples, cpu);
        }
        stacks.insert(stack, at);
    }
    ThreadProfile { tid: 0, profile: builder.finish(), stacks, stem: None }
}

/// The health figures of a profile whose stacks are one per sample, `truncated` of them
/// cut short, `recovered` of them with frames found without unwind information.
fn health(
    profile: &Profile,
    truncated: u64,
    recovered: RecoveredFrames,
    hz: u64,
    window: Duration,
    lost: u64,
) -> Health {
    let boundary = BoundarySummary::from_parts(profile, hz, window, lost);
    let (mut c, mut c_rust) = (0u64, 0u64);
    for stack in &profile.stacks {
        let langs: Vec<Language> =
            stack.frames.iter().map(|&i| profile.frames[i].language).collect();
        if let Some(first_c) = langs.iter().position(|l| l.is_c_library()) {
            c += stack.weight;
            if langs[..first_c].contains(&Language::Rust) {
                c_rust += stack.weight;
            }
        }
    }
    let samples = boundary.samples.max(truncated);
    Health {
        boundary,
        truncated_samples: truncated,
        truncated: if samples == 0 { 0.0 } else { truncated as f64 / samples as f64 },
        c_samples: c,
        c_with_rust_caller: if c == 0 { 0.0 } else { c_rust as f64 / c as f64 },
        recovered_samples: recovered.samples,
        recovered: if samples == 0 { 0.0 } else { recovered.samples as f64 / samples as f64 },
        recovered_by_frame_pointer: recovered.by_frame_pointer,
        recovered_by_scan: recovered.by_scan,
    }
}

/// Hottest C-side leaves with their nearest Rust callers, and the crossings above them.
fn hot_c(profile: &Profile, top: usize) -> (Vec<CFunction>, Vec<Crossing>) {
    let total = profile.total().max(1) as f64;
    let mut functions: HashMap<(usize, Option<usize>), u64> = HashMap::new();
    let mut crossings: HashMap<(String, String), u64> = HashMap::new();
    for stack in &profile.stacks {
        let code: Vec<usize> = stack
            .frames
            .iter()
            .copied()
            .filter(|&i| profile.frames[i].language.is_code())
            .collect();
        let Some(&leaf) = code.last() else { continue };
        if !profile.frames[leaf].language.is_c_side() {
            continue;
        }
        let rust = code.iter().rposition(|&i| profile.frames[i].language == Language::Rust);
        let caller = rust.map(|r| code[r]);
        *functions.entry((leaf, caller)).or_default() += stack.weight;
        if let Some(r) = rust {
            let entry = code[r + 1];
            let key =
                (profile.frames[code[r]].function.clone(), profile.frames[entry].function.clone());
            *crossings.entry(key).or_default() += stack.weight;
        }
    }
    let mut by_function: HashMap<usize, (u64, Vec<Caller>)> = HashMap::new();
    for ((leaf, caller), n) in functions {
        let e = by_function.entry(leaf).or_default();
        e.0 += n;
        let name = caller
            .map_or_else(|| "(no Rust caller)".to_owned(), |c| profile.frames[c].function.clone());
        e.1.push(Caller { function: name, samples: n });
    }
    let mut hottest: Vec<CFunction> = by_function
        .into_iter()
        .map(|(leaf, (samples, mut callers))| {
            callers.sort_by(|a, b| b.samples.cmp(&a.samples).then(a.function.cmp(&b.function)));
            callers.truncate(3);
            let f = &profile.frames[leaf];
            CFunction {
                function: f.function.clone(),
                module: f.module.clone(),
                language: f.language,
                samples,
                share: samples as f64 / total,
                rust_callers: callers,
            }
        })
        .collect();
    hottest.sort_by(|a, b| b.samples.cmp(&a.samples).then(a.function.cmp(&b.function)));
    hottest.truncate(top);
    let mut crossings: Vec<Crossing> = crossings
        .into_iter()
        .map(|((rust, c_entry), samples)| Crossing {
            rust,
            c_entry,
            samples,
            share: samples as f64 / total,
        })
        .collect();
    crossings.sort_by(|a, b| b.samples.cmp(&a.samples).then(a.rust.cmp(&b.rust)));
    crossings.truncate(top);
    (hottest, crossings)
}

/// Characters of a function name in the terminal's tables (summary.json keeps it whole).
const NAME: usize = 60;

/// Where C calls back into Rust, the most samples below first (at most `top`); a stack
/// with the same callback twice (recursion) counts once.
fn callbacks(profile: &Profile, top: usize) -> Vec<Callback> {
    let total = profile.total().max(1) as f64;
    let mut found: HashMap<(usize, usize, usize), u64> = HashMap::new();
    let mut in_stack = std::collections::HashSet::new();
    for stack in &profile.stacks {
        let langs: Vec<Language> =
            stack.frames.iter().map(|&i| profile.frames[i].language).collect();
        let marks = boundary_marks(&langs);
        let (mut entry, mut caller) = (None, None);
        in_stack.clear();
        for (k, &f) in stack.frames.iter().enumerate() {
            match marks[k] {
                Some(Entered::FromRust) => entry = Some(f),
                Some(Entered::CalledBack) => {
                    if let (Some(e), Some(c)) = (entry, caller) {
                        if in_stack.insert((e, c, f)) {
                            *found.entry((e, c, f)).or_default() += stack.weight;
                        }
                    }
                }
                None => {}
            }
            if langs[k].is_code() {
                caller = Some(f);
            }
        }
    }
    let name = |i: usize| profile.frames[i].function.clone();
    let mut out: Vec<Callback> = found
        .into_iter()
        .map(|((e, c, r), samples)| Callback {
            c_entry: name(e),
            c_caller: name(c),
            rust: name(r),
            samples,
            share: samples as f64 / total,
        })
        .collect();
    out.sort_by(|a, b| b.samples.cmp(&a.samples).then_with(|| a.rust.cmp(&b.rust)));
    out.truncate(top);
    out
}

fn file_stem(tid: u32, name: &str) -> String {
    let clean: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect();
    format!("thread-{tid}-{clean}")
}

/// What the summary is made from, beside the summary: the profiles the files are drawn
/// from.
pub(crate) struct Summarized {
    /// `summary.json`'s content (post-processing time still 0: writing is not done).
    pub summary: RecordSummary,
    /// The profile of each thread in `summary.threads`, in the same order.
    pub threads: Vec<ThreadProfile>,
    /// All threads in one profile, each under its thread's name.
    pub labelled: Profile,
    /// The program's name, for titles.
    pub program: String,
    /// Each process's name, by pid.
    pub process_names: HashMap<u32, String>,
}

/// At most this many rows in the terminal's thread table; the rest in one line.
pub(crate) const THREAD_ROWS: usize = 30;

/// The threads whose stacks were cut short, the most cut first (five named), and what to
/// do about it.
fn truncation_note(threads: &[ThreadSummary], stack_bytes: u32) -> Option<String> {
    let mut cut: Vec<&ThreadSummary> =
        threads.iter().filter(|t| t.health.truncated_samples > 0).collect();
    if cut.is_empty() {
        return None;
    }
    cut.sort_by(|a, b| b.health.truncated.total_cmp(&a.health.truncated).then(a.tid.cmp(&b.tid)));
    let named: Vec<String> = cut
        .iter()
        .take(5)
        .map(|t| format!("{} ({}) {}", t.name, t.tid, fmt::pct(t.health.truncated, 1)))
        .collect();
    let more = if cut.len() > 5 { format!(" and {} more", cut.len() - 5) } else { String::new() };
    let what = if stack_bytes >= super::MAX_STACK_BYTES {
        format!("{stack_bytes} bytes is the kernel's limit, so deeper stacks cannot be copied")
    } else {
        format!(
            "raise --stack-bytes (up to {}, the kernel's limit) to unwind them whole",
            super::MAX_STACK_BYTES
        )
    };
    Some(format!(
        "stacks deeper than the {stack_bytes} bytes copied per sample were cut short in {} \
         {}: {}{more}; {what}",
        cut.len(),
        if cut.len() == 1 { "thread" } else { "threads" },
        named.join(", ")
    ))
}

/// The line naming the processes that were seen but never sampled (the first five).
fn unsampled_line(processes: &[ProcessSummary]) -> Option<String> {
    let unsampled: Vec<&ProcessSummary> = processes.iter().filter(|p| p.samples == 0).collect();
    if unsampled.is_empty() {
        return None;
    }
    let named: Vec<String> = unsampled
        .iter()
        .take(5)
        .map(|p| {
            let command = p.commands.last().map_or("?", String::as_str);
            format!("{command} ({})", p.pid)
        })
        .collect();
    let more = match unsampled.len() {
        n if n > 5 => format!(" and {} more", n - 5),
        _ => String::new(),
    };
    Some(format!(
        "{} of {} processes ran without a sample (too briefly, or waiting): {}{more}\n",
        unsampled.len(),
        processes.len(),
        named.join(", ")
    ))
}

/// The terminal's thread table: a row per thread, or, with more threads than
/// [`THREAD_ROWS`], a row per process command (threads and processes counted, figures
/// weighted by samples), the busiest first, at most [`THREAD_ROWS`] of them; and the line
/// that sums up the rows left out.
fn thread_rows(threads: &[ThreadSummary]) -> (Vec<Vec<String>>, Option<String>) {
    let row = |label: String, ts: &[&ThreadSummary]| {
        let samples: u64 = ts.iter().map(|t| t.health.boundary.samples).sum();
        let weighted = |f: &dyn Fn(&ThreadSummary) -> f64| {
            let sum: f64 = ts.iter().map(|t| f(t) * t.health.boundary.samples as f64).sum();
            if samples == 0 {
                0.0
            } else {
                sum / samples as f64
            }
        };
        let truncated: u64 = ts.iter().map(|t| t.health.truncated_samples).sum();
        (
            samples,
            vec![
                label,
                samples.to_string(),
                fmt::pct(weighted(&|t| t.health.boundary.c_side_share), 1),
                format!("{:.2}", weighted(&|t| t.health.boundary.crossings_per_stack)),
                fmt::pct(weighted(&|t| t.health.boundary.reaches_root), 1),
                fmt::pct(if samples == 0 { 0.0 } else { truncated as f64 / samples as f64 }, 1),
            ],
        )
    };
    if threads.len() <= THREAD_ROWS {
        let rows = threads.iter().map(|t| row(format!("{} ({})", t.name, t.tid), &[t]).1);
        return (rows.collect(), None);
    }
    let mut groups: BTreeMap<&str, Vec<&ThreadSummary>> = BTreeMap::new();
    for t in threads {
        groups.entry(&t.process).or_default().push(t);
    }
    let mut rows: Vec<(u64, usize, Vec<String>)> = groups
        .into_iter()
        .map(|(process, ts)| {
            let processes: BTreeSet<u32> = ts.iter().map(|t| t.pid).collect();
            let label = match ts.as_slice() {
                [t] => format!("{} ({})", t.name, t.tid),
                _ => format!(
                    "{process} ×{} {}, {} threads",
                    processes.len(),
                    if processes.len() == 1 { "process" } else { "processes" },
                    ts.len()
                ),
            };
            let (samples, cells) = row(label, &ts);
            (samples, ts.len(), cells)
        })
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2[0].cmp(&b.2[0])));
    let rest: Vec<(u64, usize, Vec<String>)> = rows.split_off(rows.len().min(THREAD_ROWS));
    let total: u64 = threads.iter().map(|t| t.health.boundary.samples).sum();
    let left_out = (!rest.is_empty()).then(|| {
        let samples: u64 = rest.iter().map(|r| r.0).sum();
        let share = if total == 0 { 0.0 } else { samples as f64 / total as f64 };
        format!(
            "... and {} more threads of {} more commands: {} of the samples (every thread is \
             in summary.json)\n",
            rest.iter().map(|r| r.1).sum::<usize>(),
            rest.len(),
            fmt::pct(share, 1)
        )
    });
    (rows.into_iter().map(|r| r.2).collect(), left_out)
}

fn name_of(tid: u32, log: &ThreadLog) -> String {
    log.name.clone().unwrap_or_else(|| format!("tid {tid}"))
}

/// Summarizes a recording whose locations are symbolized as `frames`; `notes` are the
/// recording's and symbolization's.
pub(crate) fn summarize(
    c: &Collected,
    frames: &HashMap<Loc, Vec<Frame>>,
    mut notes: Vec<String>,
    d: &Described,
) -> Summarized {
    let window = Duration::from_nanos(c.window.1.saturating_sub(c.window.0));
    let total: u64 = c.threads.values().map(|t| t.samples).sum();
    let busy = |log: &ThreadLog| {
        log.samples >= BUSY_MIN_SAMPLES && log.samples as f64 >= BUSY_SHARE * total as f64
    };
    // Threads that never ran while recording are left out.
    let ran: Vec<(u32, &ThreadLog)> = c
        .threads
        .iter()
        .filter(|(_, log)| log.samples > 0 || log.lost > 0)
        .map(|(&tid, log)| (tid, log))
        .collect();
    let threads: Vec<ThreadProfile> = ran
        .iter()
        .map(|&(tid, log)| ThreadProfile {
            tid,
            stem: busy(log).then(|| file_stem(tid, &name_of(tid, log))),
            ..thread_profile(log, &c.stacks, frames, c.event)
        })
        .collect();

    let all = Profile::merged(threads.iter().map(|t| (&t.profile, None)));
    let truncated: u64 = ran.iter().map(|t| t.1.truncated).sum();
    let lost = c.threads.values().map(|t| t.lost).sum::<u64>() + c.lost_unattributed;
    let recovered =
        ran.iter().map(|t| t.1.recovered).fold(RecoveredFrames::default(), RecoveredFrames::plus);
    let overall = health(&all, truncated, recovered, d.frequency, window, lost);
    if overall.boundary.samples == 0 {
        notes.push(
            "no samples: the program ended (or recording stopped) before the first sample was \
             due, or it did not run on a CPU; record longer or raise --frequency"
                .into(),
        );
    }
    let (hottest_c_functions, crossings) = hot_c(&all, 10);
    let callbacks = callbacks(&all, 10);

    // All threads in one flamegraph and one pprof profile, each under its thread.
    let labelled = Profile::merged(ran.iter().zip(&threads).map(|(&(tid, log), tp)| {
        let root = FrameInfo {
            function: format!("{} (tid {tid})", name_of(tid, log)),
            module: String::new(),
            language: Language::Glue,
            inlined: false,
        };
        (&tp.profile, Some(root))
    }));
    let program = d
        .command
        .as_ref()
        .and_then(|c| c.first())
        .map(|p| Path::new(p).file_name().map_or(p.clone(), |n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| format!("pid {}", d.pid));
    let process_names: HashMap<u32, String> = c
        .threads
        .iter()
        .filter(|(&tid, log)| tid == log.pid)
        .map(|(&tid, log)| (log.pid, name_of(tid, log)))
        .collect();
    let summaries: Vec<ThreadSummary> = ran
        .iter()
        .zip(&threads)
        .map(|(&(tid, log), tp)| ThreadSummary {
            tid,
            pid: log.pid,
            name: name_of(tid, log),
            process: process_names
                .get(&log.pid)
                .cloned()
                .unwrap_or_else(|| format!("pid {}", log.pid)),
            health: health(
                &tp.profile,
                log.truncated,
                log.recovered,
                d.frequency,
                window,
                log.lost,
            ),
            files: tp.stem.as_deref().map(|stem| {
                let (flamegraph, folded) = drawn_files(stem);
                ThreadFiles { flamegraph, folded }
            }),
        })
        .collect();
    notes.extend(truncation_note(&summaries, d.stack_bytes));
    let processes = c
        .processes
        .iter()
        .map(|(&pid, p)| {
            let threads = c.threads.values().filter(|t| t.pid == pid);
            ProcessSummary {
                pid,
                ppid: p.ppid,
                commands: p.commands.clone(),
                threads: threads.clone().count(),
                samples: threads.map(|t| t.samples).sum(),
            }
        })
        .collect();
    let (flamegraph, folded) = drawn_files(ALL_THREADS);
    let summary = RecordSummary {
        schema_version: RECORD_SCHEMA_VERSION,
        command: d.command.clone(),
        pid: d.pid,
        exit_code: d.exit_code,
        event: c.event,
        unwind: Unwind::Dwarf { stack_bytes: d.stack_bytes },
        requested_hz: d.frequency,
        window_seconds: window.as_secs_f64(),
        post_processing_seconds: 0.0,
        recorder_cpu_seconds: d.recorder_cpu_seconds,
        recorder_peak_memory_bytes: None,
        environment: d.environment.clone(),
        overall,
        threads: summaries,
        processes,
        hottest_c_functions,
        crossings,
        callbacks,
        files: RecordFiles {
            flamegraph,
            folded,
            pprof: PathBuf::from("profiles").join(format!("{ALL_THREADS}.pb.gz")),
            firefox: PathBuf::from("firefox-profile.json.gz"),
        },
        notes,
    };
    Summarized { summary, threads, labelled, program, process_names }
}

impl RecordSummary {
    /// The terminal summary: threads, unwind health, and where the program crosses into C
    /// and what it pays there.
    pub fn text(&self) -> String {
        let o = &self.overall;
        let processes = match self.processes.len() {
            0 | 1 => String::new(),
            n => format!("{n} processes, "),
        };
        let mut s = format!(
            "{processes}{} threads, {} samples in {:.2} s ({}, {} Hz asked, {:.0} Hz per busy thread at most); \
             lost {}; C side {}; stacks reaching a thread root {}, truncated {}, with unknown \
             frames {}\n",
            self.threads.len(),
            o.boundary.samples,
            self.window_seconds,
            self.event,
            self.requested_hz,
            self.threads.iter().map(|t| t.health.boundary.effective_hz).fold(0.0, f64::max),
            o.boundary.lost,
            fmt::pct(o.boundary.c_side_share, 1),
            fmt::pct(o.boundary.reaches_root, 1),
            fmt::pct(o.truncated, 1),
            fmt::pct(o.boundary.with_unknown_frames, 1),
        );
        if o.c_samples > 0 {
            s.push_str(&format!(
                "samples in C libraries with a Rust caller above: {} of {}\n",
                fmt::pct(o.c_with_rust_caller, 1),
                o.c_samples
            ));
        }
        if o.recovered_samples > 0 {
            s.push_str(&format!(
                "samples with callers found where no unwind information covers the code \
                 (assembly, code built without it): {} ({}); frames found by frame pointer {}, \
                 by stack scan {}\n",
                o.recovered_samples,
                fmt::pct(o.recovered, 1),
                o.recovered_by_frame_pointer,
                o.recovered_by_scan
            ));
        }
        let (rows, left_out) = thread_rows(&self.threads);
        s.push('\n');
        s.push_str(&fmt::table(
            &["thread", "samples", "C side", "crossings/stack", "reach root", "truncated"],
            &rows,
            1,
        ));
        s.push_str(&left_out.unwrap_or_default());
        s.push_str(&unsampled_line(&self.processes).unwrap_or_default());
        if !self.hottest_c_functions.is_empty() {
            s.push_str(
                "\nhottest C functions (self samples), with the Rust functions above them:\n",
            );
            let rows: Vec<Vec<String>> = self
                .hottest_c_functions
                .iter()
                .map(|f| {
                    let callers = f
                        .rust_callers
                        .iter()
                        .map(|c| format!("{} ({})", fmt::short_name(&c.function, NAME), c.samples))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let function = fmt::short_name(&f.function, NAME);
                    vec![format!("{function} [{}]", f.module), callers, fmt::pct(f.share, 1)]
                })
                .collect();
            s.push_str(&fmt::table(
                &["C function [module]", "Rust callers (samples)", "self"],
                &rows,
                2,
            ));
        }
        if !self.crossings.is_empty() {
            s.push_str("\nwhere Rust crosses into C, by C-side samples below:\n");
            let rows: Vec<Vec<String>> = self
                .crossings
                .iter()
                .map(|c| {
                    let (rust, c_entry) =
                        (fmt::short_name(&c.rust, NAME), fmt::short_name(&c.c_entry, NAME));
                    vec![rust, c_entry, fmt::pct(c.share, 1)]
                })
                .collect();
            s.push_str(&fmt::table(&["Rust caller", "calls C function", "C below"], &rows, 2));
        }
        if !self.callbacks.is_empty() {
            s.push_str("\nwhere C calls back into Rust, by samples below:\n");
            let rows: Vec<Vec<String>> = self
                .callbacks
                .iter()
                .map(|c| {
                    let entry = fmt::short_name(&c.c_entry, NAME);
                    let c_side = if c.c_caller == c.c_entry {
                        entry
                    } else {
                        format!("{entry} via {}", fmt::short_name(&c.c_caller, NAME))
                    };
                    vec![c_side, fmt::short_name(&c.rust, NAME), fmt::pct(c.share, 1)]
                })
                .collect();
            s.push_str(&fmt::table(&["C function", "calls back Rust function", "below"], &rows, 2));
        }
        let memory = self
            .recorder_peak_memory_bytes
            .map(|b| format!(", at most {:.0} MB resident", b as f64 / 1e6))
            .unwrap_or_default();
        s.push_str(&format!(
            "\nffiprof used {:.3} s of CPU while recording ({} of the window); symbols, \
             profiles and files took {:.3} s after it ended{memory}\n",
            self.recorder_cpu_seconds,
            fmt::pct(self.recorder_cpu_seconds / self.window_seconds.max(1e-9), 1),
            self.post_processing_seconds
        ));
        for note in &self.notes {
            s.push_str(&format!("note: {note}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Language::*;

    #[test]
    fn hot_c_names_leaves_and_their_rust_callers() {
        let p = Profile::from_named_stacks(&[
            (
                vec![
                    ("start_thread", "libc.so.6", CRuntime),
                    ("app::query", "app", Rust),
                    ("sqlite3_step", "app", C),
                    ("sqlite3VdbeExec", "app", C),
                ],
                6,
            ),
            (
                vec![
                    ("app::insert", "app", Rust),
                    ("sqlite3_step", "app", C),
                    ("memcpy", "libc.so.6", CRuntime),
                ],
                3,
            ),
            (vec![("app::main", "app", Rust)], 1),
            (vec![("lonely_c", "app", C)], 2),
        ]);
        let (hot, crossings) = hot_c(&p, 10);
        assert_eq!(hot[0].function, "sqlite3VdbeExec");
        assert_eq!(hot[0].samples, 6);
        assert_eq!(hot[0].rust_callers, vec![Caller { function: "app::query".into(), samples: 6 }]);
        assert_eq!(hot[1].function, "memcpy");
        assert_eq!(hot[2].rust_callers[0].function, "(no Rust caller)");
        assert_eq!(crossings[0].rust, "app::query");
        assert_eq!(crossings[0].c_entry, "sqlite3_step");
        assert_eq!(crossings[1].samples, 3);
        let h = health(&p, 1, RecoveredFrames::default(), 1000, Duration::from_secs(1), 0);
        // Stacks with a C frame: 6 + 3 + 2; with Rust above: 6 + 3.
        assert_eq!(h.c_samples, 11);
        assert_eq!(h.c_with_rust_caller, 9.0 / 11.0);
        assert_eq!(h.truncated_samples, 1);
    }

    #[test]
    fn callbacks_name_the_c_function_rust_called_the_one_calling_back_and_the_rust_one() {
        let p = Profile::from_named_stacks(&[
            (
                vec![
                    ("start_thread", "libc.so.6", CRuntime),
                    ("app::sort", "app", Rust),
                    ("qsort", "libc.so.6", CRuntime),
                    ("msort_with_tmp", "libc.so.6", CRuntime),
                    ("app::cmp", "app", Rust),
                ],
                6,
            ),
            (
                vec![
                    ("app::sort", "app", Rust),
                    ("qsort", "libc.so.6", CRuntime),
                    ("msort_with_tmp", "libc.so.6", CRuntime),
                    ("app::cmp", "app", Rust),
                    ("memcmp", "libc.so.6", CRuntime),
                ],
                2,
            ),
            // Recursion through the same callback counts once per sample.
            (
                vec![
                    ("app::walk", "app", Rust),
                    ("tree_walk", "app", C),
                    ("app::visit", "app", Rust),
                    ("tree_walk", "app", C),
                    ("app::visit", "app", Rust),
                ],
                3,
            ),
            // A thread's start is C calling Rust, not a callback.
            (vec![("start_thread", "libc.so.6", CRuntime), ("app::main", "app", Rust)], 9),
        ]);
        let found = callbacks(&p, 10);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            (found[0].c_entry.as_str(), found[0].c_caller.as_str(), found[0].rust.as_str()),
            ("qsort", "msort_with_tmp", "app::cmp")
        );
        assert_eq!(found[0].samples, 8);
        assert_eq!(found[0].share, 8.0 / 20.0);
        assert_eq!(
            (found[1].c_entry.as_str(), found[1].c_caller.as_str(), found[1].rust.as_str()),
            ("tree_walk", "tree_walk", "app::visit")
        );
        assert_eq!(found[1].samples, 3);
        assert_eq!(callbacks(&p, 1).len(), 1);
    }

    fn thread(tid: u32, pid: u32, name: &str, process: &str, samples: u64) -> ThreadSummary {
        let p = Profile::from_named_stacks(&[(
            vec![("app::main", "app", Rust), ("sqlite3_step", "app", C)],
            samples,
        )]);
        ThreadSummary {
            tid,
            pid,
            name: name.into(),
            process: process.into(),
            health: health(&p, 0, RecoveredFrames::default(), 1000, Duration::from_secs(1), 0),
            files: None,
        }
    }

    #[test]
    fn many_threads_are_grouped_by_process_command_within_a_screenful() {
        let mut threads = Vec::new();
        // One process of 200 threads, 25 processes of 2, 50 processes of one thread each.
        threads.extend((0..200).map(|i| thread(1000 + i, 1000, &format!("w-{i}"), "app", 2)));
        for p in 0..25 {
            let pid = 5000 + 10 * p;
            threads.push(thread(pid, pid, "rustc", "rustc", 5));
            threads.push(thread(pid + 1, pid, "opt cgu.0", "rustc", 1));
        }
        threads.extend((0..50).map(|i| thread(9000 + i, 9000 + i, "cc1", &format!("tool-{i}"), 1)));
        assert_eq!(threads.len(), 300);
        let (rows, left_out) = thread_rows(&threads);
        assert_eq!(rows.len(), THREAD_ROWS);
        assert_eq!(rows[0][0], "app ×1 process, 200 threads");
        assert_eq!(rows[0][1], "400");
        assert_eq!(rows[1][0], "rustc ×25 processes, 50 threads");
        assert_eq!(rows[1][1], "150");
        assert_eq!(rows[2][0], "cc1 (9000)", "a command of one thread is shown as its thread");
        let left_out = left_out.expect("22 single-thread commands are summed up");
        assert!(left_out.starts_with("... and 22 more threads of 22 more commands: 3.7% "));
        let lines = fmt::table(&["a", "b", "c", "d", "e", "f"], &rows, 1).lines().count() + 1;
        assert!(lines <= 40, "{lines} lines");
        // Few threads: one row each.
        let (rows, left_out) = thread_rows(&threads[..3]);
        assert_eq!((rows.len(), left_out), (3, None));
    }

    #[test]
    fn the_truncation_note_names_the_threads_cut_short_and_the_flag() {
        let mut a = thread(1, 1, "rustc", "rustc", 10);
        a.health.truncated_samples = 10;
        a.health.truncated = 1.0;
        let mut b = thread(2, 1, "worker", "rustc", 10);
        b.health.truncated_samples = 1;
        b.health.truncated = 0.1;
        let c = thread(3, 1, "idle", "rustc", 10);
        let note = truncation_note(&[c.clone(), b, a], 16384).unwrap();
        assert!(
            note.contains(
                "cut short in 2 threads: rustc (1) 100.0%, worker (2) 10.0%; raise \
                           --stack-bytes (up to 65528"
            ),
            "{note}"
        );
        assert_eq!(truncation_note(&[c], 16384), None);
    }
}
