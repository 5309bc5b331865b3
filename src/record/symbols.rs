//! Symbols while recording: each new code location is sent, as the recording finds it,
//! to a thread in SCHED_IDLE (it runs only on CPU time the program leaves unused), which
//! symbolizes it from the module's file. When recording ends the thread stops after its
//! current job; what it did not reach is symbolized on all cores with the rest of the
//! post-processing. On a machine with spare CPU little is left by then; on a busy one the
//! thread took no CPU time from the program.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::stacks::Frame;
use crate::symbol::FileSymbolizer;

use super::target::{Loc, Modules};

/// Offsets of one module to symbolize.
struct Job {
    module: u32,
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
    handle: JoinHandle<Resolved>,
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
        let handle =
            std::thread::Builder::new().name("ffiprof-symbols".into()).spawn(move || {
                let _ = crate::ffi::set_idle_priority(crate::ffi::thread_id());
                let mut symbolizer = FileSymbolizer::default();
                let mut out = Resolved::default();
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
                        out.frames.insert(Loc { module: job.module, offset: *offset }, f);
                    }
                }
                out
            })?;
        Ok(Background { jobs: Some(jobs), stop, handle })
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
            let file = modules.files.get(module as usize);
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
        self.stop.store(true, Ordering::Relaxed);
        self.jobs = None;
        let mut resolved = self.handle.join().unwrap_or_default();
        resolved.notes.sort();
        resolved.notes.dedup();
        resolved
    }
}
