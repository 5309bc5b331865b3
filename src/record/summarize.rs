//! The summarize stage, pure: the recording's stack table, thread logs and symbols in,
//! the profiles and `summary.json`'s content out. Each thread's profile has one stack per
//! distinct stack it was sampled in; from them come each thread's health (languages,
//! crossings, stacks reaching a root, truncation), the hottest C functions with their
//! Rust callers, the places where Rust crosses into C, and the names of the files the
//! write stage ([`super::write`]) draws. With `--off-cpu`, each thread also has an
//! off-CPU profile (its waits, weighted by their time) and a wall-clock one, and
//! [`super::waits`] finds where threads wait. Nothing here reads a file, a clock or the
//! machine.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::environment::Environment;
use crate::fmt;
use crate::sample::{Event, Unwind};
use crate::stacks::{
    boundary_marks, BoundarySummary, Entered, Frame, FrameId, FrameInfo, Language, Profile,
    ProfileBuilder, ProfileStackId,
};

use super::collect::OffCpu;
use super::intern::{Collected, RecoveredFrames, ThreadLog};
use super::layout;
use super::samples::Weight;
use super::schema::{
    CFunction, Callback, Caller, Crossing, Health, ProcessSummary, Recording, ThreadSummary,
    RECORD_SCHEMA_VERSION,
};
use super::symbolize::unknown_in;
use super::table::{StackId, StackTable};
use super::unwind::Loc;
use super::waits;
use crate::ids::{Pid, Tid};

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
    pub pid: Pid,
    /// Its exit code, if it ended while recording.
    pub exit_code: Option<i32>,
    /// Samples per second asked for.
    pub frequency: u64,
    /// Stack bytes copied per sample.
    pub stack_bytes: u32,
    /// CPU time ffiprof used while recording.
    pub recorder_cpu_seconds: f64,
    /// Of it, the recording thread's (draining, ordering, unwinding), nanoseconds.
    pub recording_thread_cpu_ns: u64,
    /// How off-CPU time was recorded.
    pub off_cpu: OffCpu,
    /// Where.
    pub environment: Environment,
}

fn unknown() -> Frame {
    unknown_in(None)
}

/// A thread's profile (one stack per distinct stack of its samples, weighted by how many
/// samples have it), and where each of the recording's stacks is in it.
pub(crate) struct ThreadProfile {
    /// Its thread.
    pub tid: Tid,
    /// Symbolized.
    pub profile: Profile,
    /// The profile's stack of each of the recording's stacks (None: nothing was left).
    pub stacks: HashMap<StackId, Option<ProfileStackId>>,
    /// The stem of its own files, when it is busy enough to get them.
    pub stem: Option<String>,
}

/// A thread's profile from its weight per stack, each weight as `weigh` makes it a
/// stack's (weight, CPU nanoseconds).
fn thread_profile(
    weights: &std::collections::BTreeMap<StackId, Weight>,
    table: &StackTable,
    frames: &HashMap<Loc, Vec<Frame>>,
    weigh: impl Fn(&Weight) -> (u64, u64),
) -> ThreadProfile {
    let mut builder = ProfileBuilder::default();
    let none: Vec<Frame> = vec![unknown()];
    // Each location is classified and interned once, and each distinct stack built once.
    let mut ids_at: HashMap<Loc, Vec<FrameId>> = HashMap::new();
    let mut stacks: HashMap<StackId, Option<ProfileStackId>> = HashMap::new();
    for (&stack, weight) in weights {
        let mut ids = Vec::new();
        for l in table.locs(stack) {
            let at = ids_at
                .entry(l)
                .or_insert_with(|| builder.frame_ids(l.offset, frames.get(&l).unwrap_or(&none)));
            ids.extend(at.iter().rev());
        }
        let at = builder.push_ids(ids, 0, 0);
        if let Some(i) = at {
            let (weight, cpu) = weigh(weight);
            builder.add_weight(i, weight, cpu);
        }
        stacks.insert(stack, at);
    }
    ThreadProfile { tid: Tid(0), profile: builder.finish(), stacks, stem: None }
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
    for stack in profile.stacks() {
        let langs: Vec<Language> =
            stack.frames.iter().map(|&i| profile.frame(i).language).collect();
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
    let mut functions: HashMap<(FrameId, Option<FrameId>), u64> = HashMap::new();
    let mut crossings: HashMap<(String, String), u64> = HashMap::new();
    for stack in profile.stacks() {
        let code: Vec<FrameId> =
            stack.frames.iter().copied().filter(|&i| profile.frame(i).language.is_code()).collect();
        let Some(&leaf) = code.last() else { continue };
        if !profile.frame(leaf).language.is_c_side() {
            continue;
        }
        let rust = code.iter().rposition(|&i| profile.frame(i).language == Language::Rust);
        let caller = rust.map(|r| code[r]);
        *functions.entry((leaf, caller)).or_default() += stack.weight;
        if let Some(r) = rust {
            let entry = code[r + 1];
            let key =
                (profile.frame(code[r]).function.clone(), profile.frame(entry).function.clone());
            *crossings.entry(key).or_default() += stack.weight;
        }
    }
    let mut by_function: HashMap<FrameId, (u64, Vec<Caller>)> = HashMap::new();
    for ((leaf, caller), n) in functions {
        let e = by_function.entry(leaf).or_default();
        e.0 += n;
        let name = caller
            .map_or_else(|| "(no Rust caller)".to_owned(), |c| profile.frame(c).function.clone());
        e.1.push(Caller { function: name, samples: n });
    }
    let mut hottest: Vec<CFunction> = by_function
        .into_iter()
        .map(|(leaf, (samples, mut callers))| {
            callers.sort_by(|a, b| b.samples.cmp(&a.samples).then(a.function.cmp(&b.function)));
            callers.truncate(3);
            let f = &profile.frame(leaf);
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

/// Where C calls back into Rust, the most samples below first (at most `top`); a stack
/// with the same callback twice (recursion) counts once.
fn callbacks(profile: &Profile, top: usize) -> Vec<Callback> {
    let total = profile.total().max(1) as f64;
    let mut found: HashMap<(FrameId, FrameId, FrameId), u64> = HashMap::new();
    let mut in_stack = std::collections::HashSet::new();
    for stack in profile.stacks() {
        let langs: Vec<Language> =
            stack.frames.iter().map(|&i| profile.frame(i).language).collect();
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
    let name = |i: FrameId| profile.frame(i).function.clone();
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

/// What the summarize stage finds: the recording's summary, each thread's summary with
/// its profile, and what the files are drawn from. Complete: nothing in it waits for a
/// later stage.
pub(crate) struct Analysis {
    /// `summary.json`'s content but for the threads and what writing costs.
    pub recording: Recording,
    /// Each thread that ran, its summary and its profile together.
    pub threads: Vec<Thread>,
    /// All threads in one profile, each under its thread's name.
    pub labelled: Profile,
    /// All threads' off-CPU profiles in one, each under its thread's name, with the
    /// waits of each stack (when off-CPU samples were taken).
    pub off_cpu: Option<(Profile, Vec<u64>)>,
    /// All threads' wall-clock profiles in one, each under its thread's name (when
    /// off-CPU samples were taken).
    pub wall: Option<Profile>,
    /// The program's name, for titles.
    pub program: String,
    /// Each process's name, by pid.
    pub process_names: HashMap<Pid, String>,
}

/// One thread: what summary.json says of it, and the profile its files are drawn from.
pub(crate) struct Thread {
    /// Its summary.
    pub summary: ThreadSummary,
    /// Its profile.
    pub profile: ThreadProfile,
    /// Its off-CPU profile (weights in microseconds blocked, CPU nanoseconds the
    /// nanoseconds blocked), when off-CPU samples were taken.
    pub off_cpu: Option<OffCpuProfile>,
}

/// A thread's off-CPU profile, and how many waits each of its stacks stands for; and its
/// wall-clock profile.
pub(crate) struct OffCpuProfile {
    /// The profile.
    pub profile: ThreadProfile,
    /// Waits per stack of the profile, in its order.
    pub waits: Vec<u64>,
    /// Where its time went, on CPU and off, in microseconds: its CPU samples, its waits
    /// under a `[blocked]` frame, its preemptions under `[waiting for a CPU]`.
    pub wall: ThreadProfile,
}

/// A frame that marks what a thread was doing at the leaf of a wall-clock stack.
fn marker(what: &str) -> FrameInfo {
    FrameInfo {
        function: what.into(),
        module: String::new(),
        language: Language::Glue,
        inlined: false,
    }
}

/// A thread's wall-clock profile in microseconds, from its CPU profile (its time on CPU,
/// exact from the switch records, shared among its stacks by their samples: a sample's
/// own period can fall short of the CPU time between samples where the timer is coarse),
/// its off-CPU profile and its preemptions.
fn wall_profile(cpu: &Profile, log: &ThreadLog, off: &Profile, runnable: &Profile) -> Profile {
    let (on_us, samples) = (log.off_cpu.on_ns / 1000, log.samples.max(1));
    let on_cpu = cpu.reweighed(None, |s| on_us * s.weight / samples);
    let micros = |s: &crate::stacks::Stack| s.cpu_nanos / 1000;
    let blocked = off.reweighed(Some(marker("[blocked]")), micros);
    let runnable = runnable.reweighed(Some(marker("[waiting for a CPU]")), micros);
    Profile::merged([(&on_cpu, None), (&blocked, None), (&runnable, None)])
}

/// A thread's off-CPU profile: each stack weighted by its microseconds blocked, with its
/// nanoseconds as CPU nanoseconds.
fn off_cpu_profile(
    log: &ThreadLog,
    table: &StackTable,
    frames: &HashMap<Loc, Vec<Frame>>,
    cpu: &ThreadProfile,
) -> OffCpuProfile {
    let micros = |w: &Weight| (w.period.div_ceil(1000), w.period);
    let weights = &log.off_cpu.stacks;
    let profile = thread_profile(weights, table, frames, micros);
    let mut waits = vec![0; profile.profile.stacks().len()];
    for (stack, w) in weights {
        if let Some(Some(at)) = profile.stacks.get(stack) {
            waits[at.index()] += w.samples;
        }
    }
    let runnable = thread_profile(&log.off_cpu.runnable_stacks, table, frames, micros);
    let wall = ThreadProfile {
        tid: Tid(0),
        profile: wall_profile(&cpu.profile, log, &profile.profile, &runnable.profile),
        stacks: HashMap::new(),
        stem: None,
    };
    OffCpuProfile { profile, waits, wall }
}

/// The threads whose stacks were cut short, the most cut first (five named), and what to
/// do about it.
fn truncation_note(threads: &[&ThreadSummary], stack_bytes: u32) -> Option<String> {
    let mut cut: Vec<&ThreadSummary> =
        threads.iter().copied().filter(|t| t.health.truncated_samples > 0).collect();
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
    let what = if stack_bytes >= crate::sample::MAX_STACK_BYTES {
        format!("{stack_bytes} bytes is the kernel's limit, so deeper stacks cannot be copied")
    } else {
        format!(
            "raise --stack-bytes (up to {}, the kernel's limit) to unwind them whole",
            crate::sample::MAX_STACK_BYTES
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

fn name_of(tid: Tid, log: &ThreadLog) -> String {
    log.name.clone().unwrap_or_else(|| format!("tid {tid}"))
}

/// The program's name for titles: the command's file name, or the pid.
fn program_name(d: &Described) -> String {
    d.command
        .as_ref()
        .and_then(|c| c.first())
        .map(|p| Path::new(p).file_name().map_or(p.clone(), |n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| format!("pid {}", d.pid))
}

/// Every process seen, with its threads and samples.
fn processes(c: &Collected) -> Vec<ProcessSummary> {
    c.processes
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
        .collect()
}

/// Each thread that ran while recording (samples or lost ones), with its profile and
/// summary; busy threads get files of their own.
fn threads(
    c: &Collected,
    frames: &HashMap<Loc, Vec<Frame>>,
    d: &Described,
    process_names: &HashMap<Pid, String>,
) -> Vec<(Thread, String)> {
    let window = Duration::from_nanos(c.window.1.saturating_sub(c.window.0));
    let total: u64 = c.threads.values().map(|t| t.samples).sum();
    let busy = |log: &ThreadLog| {
        log.samples >= BUSY_MIN_SAMPLES && log.samples as f64 >= BUSY_SHARE * total as f64
    };
    let measured = c.event == Event::CpuClock;
    let off_cpu = d.off_cpu != OffCpu::Off;
    c.threads
        .iter()
        .filter(|(_, log)| {
            let t = &log.off_cpu;
            log.samples > 0 || log.lost > 0 || (off_cpu && t.on_ns + t.blocked_ns > 0)
        })
        .map(|(&tid, log)| {
            let name = name_of(tid, log);
            let weigh = |w: &Weight| (w.samples, if measured { w.period } else { 0 });
            let profile = ThreadProfile {
                tid,
                stem: busy(log).then(|| layout::file_stem(tid, &name)),
                ..thread_profile(&log.stacks, &c.stacks, frames, weigh)
            };
            let off_profile = (d.off_cpu == OffCpu::Sampled).then(|| {
                let mut off = off_cpu_profile(log, &c.stacks, frames, &profile);
                (off.profile.tid, off.wall.tid) = (tid, tid);
                off
            });
            let p = &profile.profile;
            let summary = ThreadSummary {
                tid,
                pid: log.pid,
                name: name.clone(),
                process: process_names
                    .get(&log.pid)
                    .cloned()
                    .unwrap_or_else(|| format!("pid {}", log.pid)),
                health: health(p, log.truncated, log.recovered, d.frequency, window, log.lost),
                files: profile.stem.as_deref().map(layout::thread_files),
                time: off_cpu.then(|| waits::thread_time(&log.off_cpu)),
            };
            (Thread { summary, profile, off_cpu: off_profile }, name)
        })
        .collect()
}

/// Summarizes a recording whose locations are symbolized as `frames`; `notes` are the
/// recording's and symbolization's.
pub(crate) fn summarize(
    c: &Collected,
    frames: &HashMap<Loc, Vec<Frame>>,
    mut notes: Vec<String>,
    d: &Described,
) -> Analysis {
    let window = Duration::from_nanos(c.window.1.saturating_sub(c.window.0));
    let process_names: HashMap<Pid, String> = c
        .threads
        .iter()
        .filter(|(&tid, log)| tid == log.pid.main_thread())
        .map(|(&tid, log)| (log.pid, name_of(tid, log)))
        .collect();
    let named = threads(c, frames, d, &process_names);
    let all = Profile::merged(named.iter().map(|(t, _)| (&t.profile.profile, None)));
    let logs = || named.iter().map(|(t, _)| &c.threads[&t.summary.tid]);
    let truncated: u64 = logs().map(|log| log.truncated).sum();
    let lost = c.threads.values().map(|t| t.lost).sum::<u64>() + c.lost_unattributed;
    let recovered =
        logs().map(|log| log.recovered).fold(RecoveredFrames::default(), RecoveredFrames::plus);
    let overall = health(&all, truncated, recovered, d.frequency, window, lost);
    if overall.boundary.samples == 0 {
        notes.push(
            "no samples: the program ended (or recording stopped) before the first sample was \
             due, or it did not run on a CPU; record longer or raise --frequency"
                .into(),
        );
    }
    let (hottest_c_functions, crossings) = hot_c(&all, 10);
    // All threads in one flamegraph and one pprof profile, each under its thread.
    let labelled = under_threads(named.iter().map(|(t, name)| (&t.profile, name.as_str())));
    let offs = || named.iter().filter_map(|(t, name)| Some((t.off_cpu.as_ref()?, name.as_str())));
    let off_cpu = (d.off_cpu == OffCpu::Sampled).then(|| {
        let waits = offs().flat_map(|(o, _)| o.waits.iter().copied()).collect();
        (under_threads(offs().map(|(o, name)| (&o.profile, name))), waits)
    });
    let wall = off_cpu.as_ref().map(|_| under_threads(offs().map(|(o, name)| (&o.wall, name))));
    let wait_table = off_cpu.as_ref().map(|_| {
        let parts: Vec<(&Profile, &[u64])> =
            offs().map(|(o, _)| (&o.profile.profile, o.waits.as_slice())).collect();
        waits::waits(&parts, 10)
    });
    let threads: Vec<Thread> = named.into_iter().map(|(t, _)| t).collect();
    let summaries: Vec<&ThreadSummary> = threads.iter().map(|t| &t.summary).collect();
    notes.extend(truncation_note(&summaries, d.stack_bytes));
    let recording = Recording {
        schema_version: RECORD_SCHEMA_VERSION,
        command: d.command.clone(),
        pid: d.pid,
        exit_code: d.exit_code,
        event: c.event,
        unwind: Unwind::Dwarf { stack_bytes: d.stack_bytes },
        requested_hz: d.frequency,
        window_seconds: window.as_secs_f64(),
        recorder_cpu_seconds: d.recorder_cpu_seconds,
        environment: d.environment.clone(),
        overall,
        processes: processes(c),
        hottest_c_functions,
        crossings,
        callbacks: callbacks(&all, 10),
        off_cpu: wait_table,
        off_cpu_recording: (d.off_cpu != OffCpu::Off)
            .then(|| waits::recording(c, d.off_cpu, d.recording_thread_cpu_ns, lost)),
        files: layout::record_files(),
        notes,
    };
    Analysis {
        recording,
        threads,
        labelled,
        off_cpu,
        wall,
        program: program_name(d),
        process_names,
    }
}

/// Threads' profiles in one, each under a frame naming its thread.
fn under_threads<'a>(parts: impl Iterator<Item = (&'a ThreadProfile, &'a str)>) -> Profile {
    Profile::merged(parts.map(|(t, name)| {
        let root = FrameInfo {
            function: format!("{name} (tid {})", t.tid),
            module: String::new(),
            language: Language::Glue,
            inlined: false,
        };
        (&t.profile, Some(root))
    }))
}

#[cfg(test)]
mod tests {
    use super::super::terminal::{thread_rows, THREAD_ROWS};
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
        let (tid, pid) = (Tid(tid), Pid(pid));
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
            time: None,
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
        let note = truncation_note(&[&c, &b, &a], 16384).unwrap();
        assert!(
            note.contains(
                "cut short in 2 threads: rustc (1) 100.0%, worker (2) 10.0%; raise \
                           --stack-bytes (up to 65528"
            ),
            "{note}"
        );
        assert_eq!(truncation_note(&[&c], 16384), None);
    }
}
