//! From a recording to files: frames symbolized from the modules' files, a profile per
//! thread and one of all threads, and the outputs `ffiprof profile` writes (flamegraphs
//! coloured by language, folded stacks, pprof), plus the Firefox Profiler profile and
//! `summary.json` with the boundary summary per thread and overall.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::output::write_under;
use crate::profile::{draw, unix_nanos_now, Drawn};
use crate::sample::{Event, Unwind};
use crate::stacks::{BoundarySummary, Frame, FrameInfo, Language, Profile, ProfileBuilder};
use crate::symbol::FileSymbolizer;
use crate::{flame, fmt, pprof_proto};

use super::firefox::{self, ThreadPart};
use super::symbols::{resolve_module, unknown_in};
use super::table::{StackId, StackTable};
use super::target::Loc;
use super::{Collected, ThreadLog};

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
    /// Samples with a frame in a C library (language `c`: not the C runtime).
    pub c_samples: u64,
    /// Share of those with a Rust frame as an ancestor of their outermost C frame.
    pub c_with_rust_caller: f64,
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
    /// Its samples.
    #[serde(flatten)]
    pub health: Health,
    /// Its own flamegraph, when it was busy enough to get one.
    pub files: Option<ThreadFiles>,
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
    /// Where.
    pub environment: Environment,
    /// All threads together.
    pub overall: Health,
    /// Each thread that ran while recording.
    pub threads: Vec<ThreadSummary>,
    /// The C-side functions with the most self samples.
    pub hottest_c_functions: Vec<CFunction>,
    /// Where Rust calls into C, by C-side samples below.
    pub crossings: Vec<Crossing>,
    /// Files.
    pub files: RecordFiles,
    /// Things to know.
    pub notes: Vec<String>,
}

fn unknown() -> Frame {
    unknown_in(None)
}

/// Runs `f` on every job, on all cores, each worker with its own `state`; results in
/// the jobs' order.
fn on_all_cores<J: Sync, S, T: Send>(
    jobs: &[J],
    state: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &J) -> T + Sync,
) -> Vec<T> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.min(jobs.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut st = state();
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        out.push((i, f(&mut st, job)));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, t)| t).collect()
}

/// Symbolizes every location of the recording that was not symbolized while recording,
/// from the modules' files. The offsets of each module are cut into contiguous runs,
/// symbolized on all cores at once.
fn symbolize(c: &Collected, notes: &mut Vec<String>) -> HashMap<Loc, Vec<Frame>> {
    let mut wanted: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for l in c.stacks.all_locs().filter(|l| !c.symbols.contains_key(l)) {
        wanted.entry(l.module).or_default().push(l.offset);
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let mut jobs: Vec<(u32, Vec<u64>)> = Vec::new();
    for (module, mut offsets) in wanted {
        offsets.sort_unstable();
        offsets.dedup();
        let per = offsets.len().div_ceil(workers).max(256);
        jobs.extend(offsets.chunks(per).map(|chunk| (module, chunk.to_vec())));
    }
    // Largest first, so that no core is left with a big run at the end.
    jobs.sort_by_key(|j| std::cmp::Reverse(j.1.len()));
    let results = on_all_cores(&jobs, FileSymbolizer::default, |symbolizer, (module, offsets)| {
        let file = c.targets.modules.files.get(*module as usize);
        let (frames, note) = resolve_module(
            symbolizer,
            file.and_then(|f| f.file.as_deref()),
            &file.map(|f| f.name()).unwrap_or_default(),
            offsets,
        );
        let at: Vec<(Loc, Vec<Frame>)> = offsets
            .iter()
            .zip(frames)
            .map(|(&offset, f)| (Loc { module: *module, offset }, f))
            .collect();
        (at, note)
    });
    let mut out = HashMap::new();
    let mut failed = Vec::new();
    for (frames, note) in results {
        out.extend(frames);
        failed.extend(note);
    }
    failed.sort();
    failed.dedup();
    notes.append(&mut failed);
    out
}

/// A thread's profile (one stack per distinct stack of its samples, weighted by how many
/// samples have it), and where each of the recording's stacks is in it.
struct ThreadProfile {
    profile: Profile,
    stacks: HashMap<StackId, Option<usize>>,
}

fn thread_profile(
    log: &ThreadLog,
    table: &StackTable,
    frames: &HashMap<Loc, Vec<Frame>>,
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
        let at = builder.push_ids(ids, 0);
        if let Some(i) = at {
            builder.add_weight(i, weight.samples);
        }
        stacks.insert(stack, at);
    }
    ThreadProfile { profile: builder.finish(), stacks }
}

fn is_code(l: Language) -> bool {
    matches!(l, Language::Rust | Language::Go | Language::C | Language::CRuntime)
}

/// The health figures of a profile whose stacks are one per sample, `truncated` of them
/// cut short.
fn health(profile: &Profile, truncated: u64, hz: u64, window: Duration, lost: u64) -> Health {
    let boundary = BoundarySummary::from_parts(profile, hz, window, lost);
    let (mut c, mut c_rust) = (0u64, 0u64);
    for stack in &profile.stacks {
        let langs: Vec<Language> =
            stack.frames.iter().map(|&i| profile.frames[i].language).collect();
        if let Some(first_c) = langs.iter().position(|&l| l == Language::C) {
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
    }
}

/// Hottest C-side leaves with their nearest Rust callers, and the crossings above them.
fn hot_c(profile: &Profile, top: usize) -> (Vec<CFunction>, Vec<Crossing>) {
    let total = profile.total().max(1) as f64;
    let mut functions: HashMap<(usize, Option<usize>), u64> = HashMap::new();
    let mut crossings: HashMap<(String, String), u64> = HashMap::new();
    for stack in &profile.stacks {
        let code: Vec<usize> =
            stack.frames.iter().copied().filter(|&i| is_code(profile.frames[i].language)).collect();
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

fn file_stem(tid: u32, name: &str) -> String {
    let clean: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect();
    format!("thread-{tid}-{clean}")
}

/// Symbolizes, summarizes and writes every file of a recording under `out`; returns the
/// summary (also written as `summary.json`). `done_recording` is when sampling ended.
pub(crate) fn write_all(
    mut collected: Collected,
    d: &Described,
    out: &Path,
    done_recording: Instant,
) -> Result<RecordSummary> {
    let mut notes = collected.notes.clone();
    let missing = symbolize(&collected, &mut notes);
    let mut frames = std::mem::take(&mut collected.symbols);
    frames.extend(missing);
    let c = &collected;
    let window = Duration::from_nanos(c.window.1.saturating_sub(c.window.0));
    let start_unix =
        unix_nanos_now() - (crate::ffi::monotonic_ns().saturating_sub(c.window.0)) as i64;
    let threads: Vec<(u32, &ThreadLog, ThreadProfile)> = c
        .threads
        .iter()
        .map(|(&tid, log)| (tid, log, thread_profile(log, &c.stacks, &frames)))
        .collect();
    let name_of =
        |tid: u32, log: &ThreadLog| log.name.clone().unwrap_or_else(|| format!("tid {tid}"));

    let total: u64 = threads.iter().map(|t| t.1.samples).sum();
    // Threads that never ran while recording are left out.
    let ran: Vec<&(u32, &ThreadLog, ThreadProfile)> =
        threads.iter().filter(|(_, log, _)| log.samples > 0 || log.lost > 0).collect();
    let busy = |log: &ThreadLog| {
        log.samples >= BUSY_MIN_SAMPLES && log.samples as f64 >= BUSY_SHARE * total as f64
    };

    let all = Profile::merged(ran.iter().map(|t| (&t.2.profile, None)));
    let truncated: u64 = ran.iter().map(|t| t.1.truncated).sum();
    let lost = c.threads.values().map(|t| t.lost).sum::<u64>() + c.lost_unattributed;
    let overall = health(&all, truncated, d.frequency, window, lost);
    if overall.boundary.samples == 0 {
        notes.push(
            "no samples: the program ended (or recording stopped) before the first sample was \
             due, or it did not run on a CPU; record longer or raise --frequency"
                .into(),
        );
    }
    let (hottest_c_functions, crossings) = hot_c(&all, 10);

    // All threads in one flamegraph and one pprof profile, each under its thread.
    let labelled = Profile::merged(ran.iter().map(|(tid, log, tp)| {
        let root = FrameInfo {
            function: format!("{} (tid {tid})", name_of(*tid, log)),
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
    let mut process_names = HashMap::new();
    for (tid, log, _) in &threads {
        if *tid == log.pid {
            process_names.insert(log.pid, name_of(*tid, log));
        }
    }
    let parts: Vec<ThreadPart<'_>> = ran
        .iter()
        .map(|(tid, log, tp)| ThreadPart {
            tid: *tid,
            log,
            profile: &tp.profile,
            stacks: &tp.stacks,
        })
        .collect();
    let pprof = PathBuf::from("profiles").join("all-threads.pb.gz");
    let firefox_file = PathBuf::from("firefox-profile.json.gz");

    // The files, on all cores: each busy thread's flamegraph, all threads', the Firefox
    // profile.
    enum Job {
        Thread(usize),
        All,
        Firefox,
    }
    let mut jobs = vec![Job::Firefox, Job::All];
    jobs.extend((0..ran.len()).filter(|&i| busy(ran[i].1)).map(Job::Thread));
    let drawn = on_all_cores(
        &jobs,
        || (),
        |_, job| -> Result<Option<Drawn>> {
            match job {
                Job::Thread(i) => {
                    let (tid, log, tp) = ran[*i];
                    let name = name_of(*tid, log);
                    let title = format!("{name} (tid {tid}) — {} samples", log.samples);
                    draw(&tp.profile, &file_stem(*tid, &name), &title, out).map(Some)
                }
                Job::All => {
                    let title = format!(
                        "{program}: all threads — {} ({} samples, {})",
                        c.event,
                        overall.boundary.samples,
                        flame::legend()
                    );
                    let drawn = draw(&labelled, "all-threads", &title, out)?;
                    let comment = format!("ffiprof record {program}; {}", flame::legend());
                    let window_ns = window.as_nanos() as i64;
                    let bytes = pprof_proto::encode(&labelled, window_ns, start_unix, &comment)?;
                    write_under(out, &pprof, &bytes)?;
                    Ok(Some(drawn))
                }
                Job::Firefox => {
                    let mut samples = c.samples.reader();
                    let fx = firefox::build(
                        &format!("ffiprof record {program}"),
                        &parts,
                        samples.by_ref(),
                        &process_names,
                        c.window.0,
                        start_unix,
                        d.frequency,
                        c.event,
                    );
                    let read = samples.read();
                    samples.finish().map_err(|source| {
                        Error::Internal(format!("reading the recorded samples back: {source}"))
                    })?;
                    if read != c.samples.len() {
                        return Err(Error::Internal(format!(
                            "{read} of {} recorded samples read back",
                            c.samples.len()
                        )));
                    }
                    let json = serde_json::to_vec(&fx).map_err(|source| Error::Serialize {
                        what: "the Firefox profile",
                        source,
                    })?;
                    let mut gz =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    gz.write_all(&json).map_err(|source| Error::Render {
                        what: "the Firefox profile".into(),
                        source,
                    })?;
                    let bytes = gz.finish().map_err(|source| Error::Render {
                        what: "the Firefox profile".into(),
                        source,
                    })?;
                    write_under(out, &firefox_file, &bytes)?;
                    Ok(None)
                }
            }
        },
    );
    let mut all_drawn = None;
    let mut thread_files: HashMap<usize, ThreadFiles> = HashMap::new();
    for (job, result) in jobs.iter().zip(drawn) {
        match (job, result?) {
            (Job::Thread(i), Some(d)) => {
                thread_files.insert(
                    *i,
                    ThreadFiles { flamegraph: d.flamegraph_file, folded: d.folded_file },
                );
            }
            (Job::All, Some(d)) => all_drawn = Some(d),
            _ => {}
        }
    }
    let drawn = all_drawn
        .ok_or_else(|| Error::Internal("the all-threads flamegraph was not drawn".into()))?;
    let summaries: Vec<ThreadSummary> = ran
        .iter()
        .enumerate()
        .map(|(i, (tid, log, tp))| {
            let truncated = log.truncated;
            ThreadSummary {
                tid: *tid,
                pid: log.pid,
                name: name_of(*tid, log),
                health: health(&tp.profile, truncated, d.frequency, window, log.lost),
                files: thread_files.remove(&i),
            }
        })
        .collect();

    let summary = RecordSummary {
        schema_version: RECORD_SCHEMA_VERSION,
        command: d.command.clone(),
        pid: d.pid,
        exit_code: d.exit_code,
        event: c.event,
        unwind: Unwind::Dwarf { stack_bytes: d.stack_bytes },
        requested_hz: d.frequency,
        window_seconds: window.as_secs_f64(),
        post_processing_seconds: done_recording.elapsed().as_secs_f64(),
        recorder_cpu_seconds: d.recorder_cpu_seconds,
        environment: Environment::detect(),
        overall,
        threads: summaries,
        hottest_c_functions,
        crossings,
        files: RecordFiles {
            flamegraph: drawn.flamegraph_file,
            folded: drawn.folded_file,
            pprof,
            firefox: firefox_file,
        },
        notes,
    };
    let json = serde_json::to_string_pretty(&summary)
        .map_err(|source| Error::Serialize { what: "summary.json", source })?;
    write_under(out, Path::new("summary.json"), json.as_bytes())?;
    Ok(summary)
}

impl RecordSummary {
    /// The terminal summary: threads, unwind health, and where the program crosses into C
    /// and what it pays there.
    pub fn text(&self) -> String {
        let o = &self.overall;
        let mut s = format!(
            "{} threads, {} samples in {:.2} s ({}, {} Hz asked, {:.0} Hz per busy thread at most); \
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
        let rows: Vec<Vec<String>> = self
            .threads
            .iter()
            .map(|t| {
                vec![
                    format!("{} ({})", t.name, t.tid),
                    t.health.boundary.samples.to_string(),
                    fmt::pct(t.health.boundary.c_side_share, 1),
                    format!("{:.2}", t.health.boundary.crossings_per_stack),
                    fmt::pct(t.health.boundary.reaches_root, 1),
                    fmt::pct(t.health.truncated, 1),
                ]
            })
            .collect();
        s.push('\n');
        s.push_str(&fmt::table(
            &["thread", "samples", "C side", "crossings/stack", "reach root", "truncated"],
            &rows,
            1,
        ));
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
                        .map(|c| format!("{} ({})", c.function, c.samples))
                        .collect::<Vec<_>>()
                        .join(", ");
                    vec![format!("{} [{}]", f.function, f.module), callers, fmt::pct(f.share, 1)]
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
                .map(|c| vec![c.rust.clone(), c.c_entry.clone(), fmt::pct(c.share, 1)])
                .collect();
            s.push_str(&fmt::table(&["Rust caller", "calls C function", "C below"], &rows, 2));
        }
        s.push_str(&format!(
            "\nffiprof used {:.3} s of CPU while recording ({} of the window); symbols, \
             profiles and files took {:.3} s after it ended\n",
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
    use super::super::samples::{SampleLog, SampleRecord};
    use super::super::target::Targets;
    use super::*;
    use Language::*;

    /// A recording built by hand, as the collector would leave it: two threads of one
    /// process, stacks in the table, every location already symbolized (so no file is
    /// read), one sample truncated and two lost.
    fn hand_built() -> Collected {
        let at = |module: u32, offset: u64| Loc { module, offset };
        let frame = |function: &str, module: &str, file: &str| Frame {
            function: Some(function.into()),
            module: Some(module.into()),
            file: Some(file.into()),
            line: Some(1),
            inlined: false,
        };
        let (app, libc) = (0, 1);
        let root = at(libc, 0x10);
        let main = at(app, 0x100);
        let query = at(app, 0x200);
        let step = at(app, 0x300);
        let vdbe = at(app, 0x400);
        let memcpy = at(libc, 0x20);
        let symbols: HashMap<Loc, Vec<Frame>> = [
            (root, frame("start_thread", "libc.so.6", "pthread_create.c")),
            (main, frame("app::main", "app", "src/main.rs")),
            (query, frame("app::query", "app", "src/db.rs")),
            (step, frame("sqlite3_step", "app", "sqlite3.c")),
            (vdbe, frame("sqlite3VdbeExec", "app", "sqlite3.c")),
            (memcpy, frame("memcpy", "libc.so.6", "memcpy.S")),
        ]
        .into_iter()
        .map(|(l, f)| (l, vec![f]))
        .collect();
        let mut stacks = StackTable::default();
        let in_c = stacks.intern(&[vdbe, step, query, main, root]);
        let copying = stacks.intern(&[memcpy, step, query, main, root]);
        let in_rust = stacks.intern(&[query, main, root]);
        let cut = stacks.intern(&[vdbe, step, query]);
        let sample = |time: u64, stack: StackId, truncated: bool| SampleRecord {
            time,
            period: 1_000_000,
            stack,
            truncated,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut log = SampleLog::create_in(dir.path()).unwrap();
        let mut main_thread = ThreadLog::new(100, Some("app".into()));
        main_thread.lost = 2;
        let mut worker = ThreadLog::new(100, Some("worker".into()));
        for i in 0..60 {
            let s = sample(i * 1_000_000, if i % 3 == 0 { in_rust } else { in_c }, false);
            main_thread.add(&s);
            log.push(100, &s);
            if i < 40 {
                let s = sample(i * 1_000_000 + 500, copying, false);
                worker.add(&s);
                log.push(101, &s);
            }
        }
        let s = sample(61_000_000, cut, true);
        worker.add(&s);
        log.push(101, &s);
        Collected {
            threads: [(100, main_thread), (101, worker)].into_iter().collect(),
            targets: Targets::default(),
            event: Event::CpuClock,
            window: (0, 100_000_000),
            lost_unattributed: 0,
            notes: vec!["a note".into()],
            symbols,
            stacks,
            samples: log.finish().unwrap(),
        }
    }

    fn golden(name: &str, actual: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
        if std::env::var_os("FFIPROF_BLESS").is_some() {
            std::fs::write(&path, actual).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} missing: run with FFIPROF_BLESS=1", path.display()));
        assert_eq!(actual, expected, "{name} differs (FFIPROF_BLESS=1 to accept)");
    }

    #[test]
    fn summary_and_terminal_text_of_a_hand_built_recording_match_golden() {
        let described = Described {
            command: Some(vec!["app".into(), "--serve".into()]),
            pid: 100,
            exit_code: Some(0),
            frequency: 1000,
            stack_bytes: 16384,
            recorder_cpu_seconds: 0.5,
        };
        let out = tempfile::tempdir().unwrap();
        let mut summary = write_all(hand_built(), &described, out.path(), Instant::now()).unwrap();
        // What depends on the machine and the moment: not the table's to decide.
        summary.post_processing_seconds = 0.0;
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap())
                .unwrap();
        let mut json = serde_json::to_value(&summary).unwrap();
        json.as_object_mut().unwrap().remove("environment");
        assert_eq!(written["threads"], json["threads"], "summary.json is what was returned");
        golden("record-summary.json", &(serde_json::to_string_pretty(&json).unwrap() + "\n"));
        golden("record-summary.txt", &summary.text());
        for file in [&summary.files.flamegraph, &summary.files.pprof, &summary.files.firefox] {
            assert!(out.path().join(file).is_file(), "{} written", file.display());
        }
        // Every sample, read back from the samples file, on its thread's track.
        let fx: serde_json::Value = serde_json::from_reader(flate2::read::GzDecoder::new(
            std::fs::File::open(out.path().join(&summary.files.firefox)).unwrap(),
        ))
        .unwrap();
        let tracks: Vec<(String, u64)> = fx["threads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["name"].as_str().unwrap().into(), t["samples"]["length"].as_u64().unwrap()))
            .collect();
        assert_eq!(tracks, [("app".into(), 60), ("worker".into(), 41)]);
    }

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
        let h = health(&p, 1, 1000, Duration::from_secs(1), 0);
        // Stacks with a C frame: 6 + 3 + 2; with Rust above: 6 + 3.
        assert_eq!(h.c_samples, 11);
        assert_eq!(h.c_with_rust_caller, 9.0 / 11.0);
        assert_eq!(h.truncated_samples, 1);
    }
}
