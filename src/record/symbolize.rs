//! The symbolize stage: every code location of the recording to its frames (function,
//! inlined functions, file and line), read from the module's file.
//!
//! Symbols while recording: each new code location is sent, as the recording finds it,
//! to a thread in SCHED_IDLE (it runs only on CPU time the program leaves unused), which
//! symbolizes it from the module's file. When recording ends the thread gets the normal
//! priority back (on a busy machine it would otherwise wait for an idle CPU that never
//! comes) and stops after its current job; what it did not reach is symbolized on all cores with the rest of the
//! post-processing. On a machine with spare CPU little is left by then; on a busy one the
//! thread took no CPU time from the program.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::stacks::Frame;
use crate::symbol::FileSymbolizer;

use super::intern::Collected;
use super::unwind::{Loc, ModuleIndex, Modules};

/// Offsets of one module to symbolize.
struct Job {
    module: ModuleIndex,
    file: Option<PathBuf>,
    name: String,
    offsets: Vec<u64>,
}

/// What the symbolizing thread produced: frames per location, and notes on modules it
/// could not read.
#[derive(Default)]
pub(crate) struct Resolved {
    /// Frames at each location, innermost first.
    pub frames: HashMap<Loc, Vec<Frame>>,
    /// Modules whose symbols could not be read.
    pub notes: Vec<String>,
}

/// The symbolizing thread.
pub(crate) struct Background {
    jobs: Option<Sender<Job>>,
    stop: Arc<AtomicBool>,
    /// The thread's kernel id while it is in SCHED_IDLE.
    idle: Arc<Mutex<Option<crate::ids::Tid>>>,
    handle: JoinHandle<Kept>,
}

/// A string of [`Kept`], by its index, or [`StringIndex::NONE`] for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StringIndex(u32);

impl StringIndex {
    /// No string (`None`).
    const NONE: StringIndex = StringIndex(u32::MAX);
}

/// A line number of [`KeptFrame`] that is not known.
const NO_LINE: u32 = u32::MAX;

/// A frame as [`Kept`] holds it: its strings by index, 20 bytes.
#[derive(Debug, Clone, Copy)]
struct KeptFrame {
    function: StringIndex,
    module: StringIndex,
    file: StringIndex,
    /// [`NO_LINE`] when unknown.
    line: u32,
    inlined: bool,
}

/// What the symbolizing thread resolved, kept small while recording goes on: each
/// distinct string once (a module's functions and files repeat across its locations),
/// a frame in a few words. Made into [`Resolved`] when recording ends.
#[derive(Default)]
struct Kept {
    strings: Vec<Arc<str>>,
    index: HashMap<Arc<str>, StringIndex>,
    frames: HashMap<Loc, Box<[KeptFrame]>>,
    notes: Vec<String>,
}

impl Kept {
    fn string(&mut self, s: Option<&str>) -> StringIndex {
        let Some(s) = s else { return StringIndex::NONE };
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = StringIndex(self.strings.len() as u32);
        let shared: Arc<str> = Arc::from(s);
        self.strings.push(shared.clone());
        self.index.insert(shared, i);
        i
    }

    fn keep(&mut self, loc: Loc, frames: &[Frame]) {
        let kept: Box<[KeptFrame]> = frames
            .iter()
            .map(|f| KeptFrame {
                function: self.string(f.function.as_deref()),
                module: self.string(f.module.as_deref()),
                file: self.string(f.file.as_deref()),
                line: f.line.unwrap_or(NO_LINE),
                inlined: f.inlined,
            })
            .collect();
        self.frames.insert(loc, kept);
    }

    fn resolved(self) -> Resolved {
        let text = |i: StringIndex| {
            (i != StringIndex::NONE).then(|| self.strings[i.0 as usize].to_string())
        };
        let frames = self
            .frames
            .iter()
            .map(|(&loc, kept)| {
                let frames = kept
                    .iter()
                    .map(|k| Frame {
                        function: text(k.function),
                        module: text(k.module),
                        file: text(k.file),
                        line: (k.line != NO_LINE).then_some(k.line),
                        inlined: k.inlined,
                    })
                    .collect();
                (loc, frames)
            })
            .collect();
        Resolved { frames, notes: self.notes }
    }
}

/// A frame without a name, in `module` if known.
pub(crate) fn unknown_in(module: Option<String>) -> Frame {
    Frame { function: None, module, file: None, line: None, inlined: false }
}

/// The frames at `offsets` of a module read from `file` (None: a module without a file),
/// and a note when the file's symbols could not be read (its frames are then unnamed).
pub(crate) fn resolve_module(
    symbolizer: &mut FileSymbolizer,
    file: Option<&std::path::Path>,
    name: &str,
    offsets: &[u64],
) -> (Vec<Vec<Frame>>, Option<String>) {
    match file {
        Some(path) => match symbolizer.resolve(path, offsets, name) {
            Ok(frames) => (frames, None),
            Err(e) => (
                vec![vec![unknown_in(Some(name.to_owned()))]; offsets.len()],
                Some(format!("{e}: its frames are unnamed")),
            ),
        },
        None => (vec![vec![unknown_in(None)]; offsets.len()], None),
    }
}

impl Background {
    /// Starts the thread.
    pub(crate) fn start() -> std::io::Result<Background> {
        let (jobs, rx) = channel::<Job>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let idle = Arc::new(Mutex::new(None));
        let own_idle = idle.clone();
        let handle =
            std::thread::Builder::new().name("ffiprof-symbols".into()).spawn(move || {
                // Under the lock that finish takes: the thread goes idle only if it is not
                // stopping, and finish then sees it.
                if let Ok(mut idle) = own_idle.lock() {
                    let tid = crate::ffi::thread_id();
                    if !stopping.load(Ordering::SeqCst)
                        && crate::ffi::set_idle_priority(tid).is_ok()
                    {
                        *idle = Some(tid);
                    }
                }
                let mut symbolizer = FileSymbolizer::default();
                let mut out = Kept::default();
                for job in rx {
                    if stopping.load(Ordering::Relaxed) {
                        break;
                    }
                    let (frames, note) = resolve_module(
                        &mut symbolizer,
                        job.file.as_deref(),
                        &job.name,
                        &job.offsets,
                    );
                    out.notes.extend(note);
                    for (offset, f) in job.offsets.iter().zip(frames) {
                        out.keep(Loc { module: job.module, offset: *offset }, &f);
                    }
                }
                out
            })?;
        Ok(Background { jobs: Some(jobs), stop, idle, handle })
    }

    /// Queues `locs` (new ones only; the caller keeps track) for symbolization.
    pub(crate) fn send(&self, locs: &mut Vec<Loc>, modules: &Modules) {
        if locs.is_empty() {
            return;
        }
        locs.sort_unstable();
        let Some(jobs) = &self.jobs else { return };
        for chunk in locs.chunk_by(|a, b| a.module == b.module) {
            let module = chunk[0].module;
            let file = module.get().and_then(|m| modules.files.get(m));
            let _ = jobs.send(Job {
                module,
                file: file.and_then(|f| f.file.clone()),
                name: file.map(|f| f.name()).unwrap_or_default(),
                offsets: chunk.iter().map(|l| l.offset).collect(),
            });
        }
        locs.clear();
    }

    /// Stops the thread after its current job and returns what it resolved.
    pub(crate) fn finish(mut self) -> Resolved {
        if let Ok(idle) = self.idle.lock() {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(tid) = *idle {
                let _ = crate::ffi::set_normal_priority(tid);
            }
        }
        self.stop.store(true, Ordering::SeqCst);
        self.jobs = None;
        let mut resolved = self.handle.join().map(Kept::resolved).unwrap_or_default();
        resolved.notes.sort();
        resolved.notes.dedup();
        resolved
    }
}

/// Runs `f` on every job, on all cores, each worker with its own `state`; results in
/// the jobs' order.
pub(crate) fn on_all_cores<J: Sync, S, T: Send>(
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

/// Every location of the recording symbolized: those done while recording (`resolved`),
/// and the rest from the modules' files, whose offsets are cut into contiguous runs,
/// symbolized on all cores at once. Notes name the modules whose symbols could not be
/// read.
pub(crate) fn finish(c: &Collected, resolved: Resolved) -> Resolved {
    let Resolved { frames: done, mut notes } = resolved;
    let mut wanted: BTreeMap<ModuleIndex, Vec<u64>> = BTreeMap::new();
    for l in c.stacks.all_locs().filter(|l| !done.contains_key(l)) {
        wanted.entry(l.module).or_default().push(l.offset);
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let mut jobs: Vec<(ModuleIndex, Vec<u64>)> = Vec::new();
    for (module, mut offsets) in wanted {
        offsets.sort_unstable();
        offsets.dedup();
        let per = offsets.len().div_ceil(workers).max(256);
        jobs.extend(offsets.chunks(per).map(|chunk| (module, chunk.to_vec())));
    }
    // Largest first, so that no core is left with a big run at the end.
    jobs.sort_by_key(|j| std::cmp::Reverse(j.1.len()));
    let results = on_all_cores(&jobs, FileSymbolizer::default, |symbolizer, (module, offsets)| {
        let file = module.get().and_then(|m| c.targets.modules.files.get(m));
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
    let mut frames = done;
    for (at, note) in results {
        frames.extend(at);
        notes.extend(note);
    }
    notes.sort();
    notes.dedup();
    Resolved { frames, notes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_frames_come_back_as_they_were_resolved() {
        let frame = |function: Option<&str>, file: Option<&str>, line, inlined| Frame {
            function: function.map(str::to_owned),
            module: Some("libsqlite3.so".into()),
            file: file.map(str::to_owned),
            line,
            inlined,
        };
        let a = vec![
            frame(Some("inner"), Some("sqlite3.c"), Some(10), true),
            frame(Some("outer"), Some("sqlite3.c"), Some(0), false),
        ];
        let b = vec![frame(None, None, None, false)];
        let mut kept = Kept::default();
        kept.keep(Loc { module: ModuleIndex(1), offset: 0x10 }, &a);
        kept.keep(Loc { module: ModuleIndex(1), offset: 0x20 }, &b);
        assert_eq!(kept.strings.len(), 4, "each distinct string once");
        let resolved = kept.resolved();
        assert_eq!(resolved.frames[&Loc { module: ModuleIndex(1), offset: 0x10 }], a);
        assert_eq!(resolved.frames[&Loc { module: ModuleIndex(1), offset: 0x20 }], b);
    }
}
