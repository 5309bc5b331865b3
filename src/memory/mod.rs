//! `ffiprof memory -- PROGRAM`: the heap on both sides of the boundary, and who
//! allocated and who freed each block.
//!
//! dhat-rs and jemalloc's statistics see Rust's global allocator only; C libraries call
//! `malloc` themselves. heaptrack and valgrind's DHAT see every `malloc`, but know
//! nothing of languages, and none keeps who freed a block. The native engine ([`native`],
//! the default) preloads ffiprof's interposer into the program, which runs at its own
//! speed, and replays its log ([`log`], [`replay`]) as DHAT counts; `--dhat` runs the
//! program under DHAT instead (through the one valgrind runner, [`crate::valgrind`]) and
//! reads the JSON DHAT writes ([`dhat`]: every figure is DHAT's own). Either way each
//! allocation point gets its site, language, Rust caller and allocator ([`sites`]), and
//! the census ([`schema`]) its words, flamegraphs and pprof profile ([`render`]); two
//! censuses compare exactly ([`compare`]). The stages, in the order data flows:
//! [`Options`] -> the run (`native`, or `execute` under DHAT, or `--from` files) -> `log`
//! and `replay`, or `dhat` -> `sites` -> `build` (the census) -> `schema` -> `render` ->
//! `compare`.

pub(crate) mod build;
pub(crate) mod calls;
pub(crate) mod compare;
pub(crate) mod dhat;
pub(crate) mod execute;
pub(crate) mod log;
pub(crate) mod native;
pub(crate) mod render;
pub(crate) mod replay;
pub(crate) mod schema;
pub(crate) mod sites;

use std::path::{Path, PathBuf};
use std::time::Instant;

pub use crate::source::Source;
pub use compare::{compare_paths, MemoryComparison};
pub use schema::{
    is_memory_census, CrossedFree, Engine, Family, FamilyPair, Figures, InvalidFree,
    InvalidFreeKind, MemoryCensus, Ownership, Process, Site, StackFrame, StackTable, UnknownFamily,
    UnknownSide, Untold, MEMORY_FILE,
};

use crate::error::{Error, Result};
use crate::output::{write_under, Staging};

/// What to census and where to write it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The program, or the files.
    pub source: Source,
    /// The census directory (replaced whole when complete).
    pub out: PathBuf,
    /// Follow child processes (each one's heap is counted; figures are summed).
    pub trace_children: bool,
    /// How a program is run: the interposer (default) or DHAT.
    pub engine: Engine,
    /// Native engine: keep the stack of about one allocation per this many bytes (0:
    /// every one), scaling the sites' figures; totals and ownership stay exact.
    pub sample_bytes: u64,
}

impl Options {
    /// Options for `source`, writing to `out`: the native engine for a program, DHAT's for
    /// DHAT's files.
    pub fn new(source: Source, out: PathBuf) -> Options {
        let engine = match source {
            Source::Run(_) => Engine::Native,
            Source::Files(_) => Engine::Dhat,
        };
        Options { source, out, trace_children: false, engine, sample_bytes: 0 }
    }

    /// Keep the stack of about one allocation per `bytes` (`--sample-bytes`); 0 samples
    /// nothing and is the user's to fix.
    pub fn sample_every(&mut self, bytes: u64) -> Result<()> {
        if bytes == 0 {
            return Err(Error::InvalidOption(
                "--sample-bytes 0 samples nothing: give a number of bytes (524288 keeps about \
                 one stack per 512 KiB allocated), or leave it out to keep every stack"
                    .into(),
            ));
        }
        self.sample_bytes = bytes;
        Ok(())
    }
}

/// A finished census.
pub struct Outcome {
    /// The census.
    pub census: MemoryCensus,
    /// Its directory.
    pub out: PathBuf,
}

fn check(options: &Options) -> Result<()> {
    match &options.source {
        Source::Run(command) if command.is_empty() => Err(Error::InvalidOption(
            "give the program after `--` (ffiprof memory -- PROGRAM [ARGS...]), or DHAT's \
             files with --from"
                .into(),
        )),
        Source::Files(files) if files.is_empty() => {
            Err(Error::InvalidOption("--from needs at least one DHAT file".into()))
        }
        _ => Ok(()),
    }
}

/// The room a heap log is kept in where memory has plenty: a directory of `/dev/shm`
/// (tmpfs) with at least this much free.
const LOG_ROOM_IN_MEMORY: u64 = 4 << 30;

/// A directory for the heap logs in `/dev/shm` where it is a tmpfs with room: the program
/// writes its log to pages that are only cleared, where a disk's file system fills each
/// one with zeros first and then writes it out (about 2% of the SQLite example's CPU time
/// with `--sample-bytes 524288`, paired, on an Intel Xeon VM). Elsewhere, or where the
/// logs may need more room than memory has, they go beside the census's output.
fn log_dir_in_memory() -> Option<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let (room, tmpfs) = crate::ffi::file_system_room(shm)?;
    if !tmpfs || room < LOG_ROOM_IN_MEMORY {
        return None;
    }
    tempfile::Builder::new().prefix("ffiprof-heap-").tempdir_in(shm).ok()
}

/// Runs the census (see the module docs). Bad input (no such program, one the interposer
/// cannot reach, no valgrind for `--dhat`, an unwritable `--out`, a `--from` file that is
/// not DHAT's) is found before the program runs and before anything is written; a program
/// that fails still gets its census, with its status in [`MemoryCensus::exit_status`].
pub fn census(options: &Options) -> Result<Outcome> {
    check(options)?;
    // Files given are read (and checked) before anything is written; a run's, after it.
    let given: Option<Vec<dhat::File>> = match &options.source {
        Source::Files(files) => Some(files.iter().map(|f| dhat::read(f)).collect::<Result<_>>()?),
        Source::Run(_) => None,
    };
    let staging = Staging::new(&options.out)?;
    let (census, stacks) = match (&options.source, options.engine) {
        (Source::Run(command), Engine::Native) => {
            let in_memory = log_dir_in_memory();
            let raw = match &in_memory {
                Some(dir) => dir.path().to_owned(),
                None => staging.path().join("heap"),
            };
            let run =
                native::run(command, &raw, options.trace_children, options.sample_bytes, 0, &[])?;
            let post = Instant::now();
            crate::progress::stage("replaying the heap log and naming the sites");
            let ran = execute::Ran {
                files: Vec::new(),
                status: run.status,
                seconds: run.seconds,
                valgrind: String::new(),
                command: command.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
                program: Some(run.program.clone()),
                log_dir: None,
            };
            let (heaps, ownership, notes) = build::native_heaps(&run, options);
            let (mut census, stacks) = build::build(&ran, &heaps, options);
            census.notes.extend(notes);
            census.ownership = Some(ownership);
            census.post_processing_seconds = post.elapsed().as_secs_f64();
            // The logs are big and read once: the census is what stays.
            let _ = std::fs::remove_dir_all(&raw);
            (census, stacks)
        }
        _ => {
            let raw = staging.path().join("dhat");
            let ran = execute::dhat_files(options, &raw)?;
            let post = Instant::now();
            crate::progress::stage("reading DHAT's files and naming the sites");
            let files = match given {
                Some(files) => files,
                None => ran.files.iter().map(|f| dhat::read(f)).collect::<Result<_>>()?,
            };
            let heaps: Vec<sites::Heap> =
                files.into_iter().map(|f| build::dhat_heap(f, &ran)).collect();
            let (mut census, stacks) = build::build(&ran, &heaps, options);
            census.dhat_summary = execute::dhat_summary(&raw);
            if let Some(d) = census.dhat_summary.filter(|d| *d != census.totals) {
                census.notes.push(format!(
                    "the sites add up to {} bytes at the peak and {} at exit; DHAT's own \
                     summary says {} and {}",
                    census.totals.bytes_at_peak,
                    census.totals.bytes_at_exit,
                    d.bytes_at_peak,
                    d.bytes_at_exit
                ));
            }
            census.post_processing_seconds = post.elapsed().as_secs_f64();
            (census, stacks)
        }
    };
    for (name, bytes) in render::files(&census, &stacks)? {
        write_under(staging.path(), Path::new(name), &bytes)?;
    }
    let out = staging.commit()?;
    Ok(Outcome { census, out })
}
