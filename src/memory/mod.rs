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
//! [`Options`] -> run (or `--from` files) -> `log` and `replay`, or `dhat` -> `sites` ->
//! `schema` -> `render` -> `compare`.

pub(crate) mod compare;
pub(crate) mod dhat;
pub(crate) mod log;
pub(crate) mod native;
pub(crate) mod render;
pub(crate) mod replay;
pub(crate) mod schema;
pub(crate) mod sites;

use crate::ids::Pid;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use crate::source::Source;
pub use compare::{compare_paths, MemoryComparison};
pub use schema::{
    is_memory_census, CrossedFree, Engine, Family, FamilyPair, Figures, InvalidFree,
    InvalidFreeKind, MemoryCensus, Ownership, Process, Site, MEMORY_FILE,
};

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::output::{write_under, Staging};
use crate::valgrind::{self, Tool};

/// Frames DHAT keeps per stack (valgrind's default, 12, cuts a C library's deep stacks
/// before they reach the Rust that called in).
const NUM_CALLERS: usize = 100;

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
    /// Options for `source`, writing to `out`, with the native engine.
    pub fn new(source: Source, out: PathBuf) -> Options {
        Options { source, out, trace_children: false, engine: Engine::Native, sample_bytes: 0 }
    }
}

/// A finished census.
pub struct Outcome {
    /// The census.
    pub census: MemoryCensus,
    /// Its directory.
    pub out: PathBuf,
}

/// What a run gave: DHAT's files (none for the native engine), the program's status and
/// time, valgrind's version.
struct Ran {
    files: Vec<PathBuf>,
    status: i32,
    seconds: f64,
    valgrind: String,
    command: Vec<String>,
    program: Option<PathBuf>,
    /// Where valgrind's logs are (absent for files given).
    log_dir: Option<PathBuf>,
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

/// Runs the program under DHAT into `raw`, or takes the files given.
fn dhat_files(options: &Options, raw: &Path) -> Result<Ran> {
    let command = match &options.source {
        Source::Files(files) => {
            return Ok(Ran {
                files: files.clone(),
                status: 0,
                seconds: 0.0,
                valgrind: "(DHAT files given)".into(),
                command: Vec::new(),
                program: None,
                log_dir: None,
            })
        }
        Source::Run(command) => command,
    };
    let valgrind = valgrind::version("the heap census runs the program under DHAT")?;
    let program = crate::record::resolve_program(&command[0])?;
    std::fs::create_dir_all(raw).map_err(|source| Error::Write { path: raw.to_owned(), source })?;
    let tool = Tool {
        // Whole source paths (inlined frames of Rust's allocator are known by theirs), and
        // -v for the objects each process loaded.
        args: vec![
            "--tool=dhat".into(),
            "-v".into(),
            "--fullpath-after=".into(),
            format!("--num-callers={NUM_CALLERS}"),
            format!("--dhat-out-file={}", raw.join("dhat.out.%p").display()),
        ],
        dir: raw,
        trace_children: options.trace_children,
        env: vec![],
    };
    let finished = tool.run(&program, &command[1..])?;
    let files = valgrind::files_in(raw, "dhat.out")?;
    if files.is_empty() {
        return Err(Error::Internal(format!(
            "DHAT wrote no profile (status {}): {}",
            finished.status,
            tool.log_tail()
        )));
    }
    Ok(Ran {
        files,
        status: finished.status,
        seconds: finished.seconds,
        valgrind,
        command: command.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
        program: Some(program),
        log_dir: Some(raw.to_owned()),
    })
}

/// DHAT's summary lines in valgrind's logs under `dir` (`Total:`, `At t-gmax:`, `At
/// t-end:`), summed over processes; `None` where none were found.
fn dhat_summary(dir: &Path) -> Option<Figures> {
    let number = |s: &str| s.replace(',', "").parse::<u64>().ok();
    // "At t-gmax: 1,006 bytes in 11 blocks"
    let figures = |line: &str, label: &str| -> Option<(u64, u64)> {
        let rest = line.split_once(label)?.1.trim();
        let (bytes, rest) = rest.split_once(" bytes in ")?;
        Some((number(bytes)?, number(rest.split_whitespace().next()?)?))
    };
    let mut total = Figures::default();
    let mut found = false;
    for path in valgrind::files_in(dir, "valgrind.log").ok()? {
        let text = std::fs::read_to_string(path).ok()?;
        for line in text.lines() {
            if let Some((b, k)) = figures(line, "Total:") {
                (total.bytes, total.blocks, found) = (total.bytes + b, total.blocks + k, true);
            } else if let Some((b, k)) = figures(line, "At t-gmax:") {
                (total.bytes_at_peak, total.blocks_at_peak) =
                    (total.bytes_at_peak + b, total.blocks_at_peak + k);
            } else if let Some((b, k)) = figures(line, "At t-end:") {
                (total.bytes_at_exit, total.blocks_at_exit) =
                    (total.bytes_at_exit + b, total.blocks_at_exit + k);
            }
        }
    }
    found.then_some(total)
}

/// The objects valgrind read symbols from for process `pid` (`Reading syms from PATH` in
/// its `-v` log under `dir`), in load order: its executable first, then the libraries it
/// loaded, `dlopen`ed ones too.
fn loaded(dir: Option<&Path>, pid: Pid) -> Vec<PathBuf> {
    let Some(dir) = dir else { return Vec::new() };
    let text = std::fs::read_to_string(dir.join(format!("valgrind.log.{pid}"))).unwrap_or_default();
    let mut found: Vec<PathBuf> = Vec::new();
    for line in text.lines() {
        if let Some((_, p)) = line.split_once("Reading syms from ") {
            let p = PathBuf::from(p.trim());
            if !p.starts_with("/usr/libexec/valgrind") && !found.contains(&p) {
                found.push(p);
            }
        }
    }
    found
}

/// True where the program links a global allocator that does not call malloc (jemalloc,
/// mimalloc, by their symbols): DHAT then sees C's heap but not Rust's.
fn custom_allocator(program: &Path) -> Option<&'static str> {
    use object::{Object, ObjectSymbol};
    use sites::mapped;
    let data = mapped(program)?;
    let file = object::File::parse(&*data).ok()?;
    let found = file.symbols().find_map(|s| {
        let name = s.name().ok()?;
        if name.contains("_rjem_") || name.contains("jemalloc") {
            Some("jemalloc")
        } else if name.starts_with("mi_malloc") || name.contains("mimalloc") {
            Some("mimalloc")
        } else {
            None
        }
    });
    found
}

/// The modules the frames of `file`'s process are placed in: its executable and the
/// libraries it loaded (from valgrind's log for that process, else the program its command
/// names and `ldd`). Each process has its own: the programs of a process tree all load at
/// the same address.
fn modules(file: &dhat::File, ran: &Ran) -> sites::Modules {
    let mut objects = loaded(ran.log_dir.as_deref(), file.pid);
    if objects.is_empty() {
        // No log (files given): the program its command names, and what ldd says it loads.
        let named = file.cmd.split_whitespace().next().map(PathBuf::from);
        let program = named.filter(|p| p.is_file()).or_else(|| ran.program.clone());
        objects.extend(program.iter().cloned());
        objects.extend(program.iter().flat_map(|p| sites::libraries(p)));
    }
    match objects.split_first() {
        Some((program, libraries)) => sites::Modules::of(program, libraries),
        None => sites::Modules::default(),
    }
}

/// DHAT's file as a heap: its frames placed in their modules.
fn dhat_heap(file: dhat::File, ran: &Ran) -> sites::Heap {
    let frames = sites::place_all(&file.ftbl, &mut modules(&file, ran));
    sites::Heap { pid: file.pid, command: file.cmd, frames, points: file.pps, totals: None }
}

/// Every heap's points attributed and summed into sites (sorted, the most bytes at the
/// peak first) and processes, with the stacks for the pictures.
fn sites_of(heaps: &[sites::Heap]) -> (Vec<Site>, Vec<Process>, render::Stacks) {
    let mut stacks = render::Stacks::default();
    let mut all: BTreeMap<sites::SiteKey, Site> = BTreeMap::new();
    let mut processes = Vec::new();
    for heap in heaps {
        let mut process = Figures::default();
        let attributed = heap.points.iter().map(|p| (p, sites::attribute(p, &heap.frames)));
        for (key, points) in sites::group(attributed) {
            let site = all.entry(key.clone()).or_insert_with(|| Site {
                function: key.function.clone(),
                module: key.module.clone(),
                language: key.language,
                rust_caller: key.rust_caller.clone(),
                figures: Figures::default(),
                points: 0,
                allocator: Some(key.family),
                requested_by: Some(key.requested_by),
            });
            for (p, a) in points {
                let f = Figures {
                    bytes: p.tb,
                    blocks: p.tbk,
                    bytes_at_peak: p.gb,
                    blocks_at_peak: p.gbk,
                    bytes_at_exit: p.eb,
                    blocks_at_exit: p.ebk,
                };
                site.figures.add(&f);
                site.points += 1;
                process.add(&f);
                stacks.push(a.stack, f);
            }
        }
        let figures = heap.totals.unwrap_or(process);
        processes.push(Process { pid: heap.pid, command: heap.command.clone(), figures });
    }
    let mut sites: Vec<Site> = all.into_values().collect();
    sites.sort_by(|a, b| {
        (b.figures.bytes_at_peak, b.figures.bytes_at_exit, b.figures.bytes)
            .cmp(&(a.figures.bytes_at_peak, a.figures.bytes_at_exit, a.figures.bytes))
            .then_with(|| a.label().cmp(&b.label()))
    });
    (sites, processes, stacks)
}

/// Sums of the sites' figures by a name each site is given.
fn sums(sites: &[Site], name: impl Fn(&Site) -> Option<String>) -> BTreeMap<String, Figures> {
    let mut by: BTreeMap<String, Figures> = BTreeMap::new();
    for s in sites {
        if let Some(n) = name(s) {
            by.entry(n).or_default().add(&s.figures);
        }
    }
    by
}

/// The census from the heaps.
fn build(ran: &Ran, heaps: &[sites::Heap], options: &Options) -> (MemoryCensus, render::Stacks) {
    let program = ran.program.clone().or_else(|| {
        let first = heaps.first()?.command.split_whitespace().next()?.to_owned();
        Path::new(&first).is_file().then(|| PathBuf::from(first))
    });
    let (sites, processes, stacks) = sites_of(heaps);
    let mut totals = Figures::default();
    for p in &processes {
        totals.add(&p.figures);
    }
    let mut notes = Vec::new();
    let allocator = program.as_deref().and_then(custom_allocator);
    if let Some(a) = allocator {
        notes.push(format!(
            "the program links {a}: Rust's heap is not seen (its allocator does not call \
             malloc); C's is"
        ));
    }
    if ran.status != 0 {
        notes.push(format!(
            "the program exited with status {}; the census is of what it allocated",
            ran.status
        ));
    }
    let native = ran.valgrind.is_empty();
    let census = MemoryCensus {
        schema_version: schema::MEMORY_SCHEMA_VERSION,
        tool: format!("ffiprof {}", env!("CARGO_PKG_VERSION")),
        environment: Environment::detect(),
        command: if ran.command.is_empty() {
            heaps.first().map(|h| vec![h.command.clone()]).unwrap_or_default()
        } else {
            ran.command.clone()
        },
        exit_status: ran.status,
        engine: if native { Engine::Native } else { Engine::Dhat },
        sample_bytes: (native && options.sample_bytes > 0).then_some(options.sample_bytes),
        valgrind: ran.valgrind.clone(),
        trace_children: options.trace_children,
        dhat_seconds: ran.seconds,
        post_processing_seconds: 0.0,
        processes,
        totals,
        dhat_summary: None,
        by_language: sums(&sites, |s| Some(s.language.name().to_owned())),
        by_allocator: sums(&sites, |s| s.allocator.map(|f| f.name().to_owned())),
        by_requester: sums(&sites, |s| s.requested_by.map(|l| l.name().to_owned())),
        ownership: None,
        rust_heap_seen: allocator.is_none(),
        sites,
        notes,
    };
    (census, stacks)
}

/// The heaps of a native run, with its ownership census and notes.
fn native_heaps(
    logs: &[log::Log],
    options: &Options,
) -> (Vec<sites::Heap>, Ownership, Vec<String>) {
    let mut symbolizer = crate::symbol::FileSymbolizer::default();
    let (mut heaps, mut owned, mut notes) = (Vec::new(), Vec::new(), Vec::new());
    let mut stackless = Figures::default();
    let mut untold = replay::Count::default();
    for log in logs {
        let p = native::process(log, options.sample_bytes, &mut symbolizer);
        if !log.complete {
            notes.push(format!(
                "process {} did not reach exit (killed by a signal, or _exit): the census \
                 holds what it did until then, and its blocks at exit are those live when it \
                 stopped",
                log.pid
            ));
        }
        stackless.add(&p.stackless);
        (untold.blocks, untold.bytes) =
            (untold.blocks + p.untold.blocks, untold.bytes + p.untold.bytes);
        heaps.push(p.heap);
        owned.push(p.ownership);
    }
    if options.sample_bytes > 0 {
        notes.push(format!(
            "sampled: about one allocation per {} bytes kept its stack; the sites' figures \
             are scaled estimates, the totals, the processes' figures and the ownership \
             census are exact",
            options.sample_bytes
        ));
    } else if stackless.blocks > 0 {
        notes.push(format!(
            "{} bytes in {} blocks were allocated where no stack could be unwound; they are \
             in the totals, not in a site",
            stackless.bytes, stackless.blocks
        ));
    }
    if untold.blocks > 0 {
        notes.push(format!(
            "{} of the blocks said allocated by Rust and freed by C ({} bytes) were freed from \
             code without line tables, where Rust's own inlined free cannot be told from C's \
             free(): build with debug information (debug = \"line-tables-only\") to tell them",
            untold.blocks, untold.bytes
        ));
    }
    (heaps, native::merge(owned), notes)
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
            let raw = staging.path().join("heap");
            let run = native::run(command, &raw, options.trace_children, options.sample_bytes)?;
            let post = Instant::now();
            let ran = Ran {
                files: Vec::new(),
                status: run.status,
                seconds: run.seconds,
                valgrind: String::new(),
                command: command.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
                program: Some(run.program),
                log_dir: None,
            };
            let (heaps, ownership, notes) = native_heaps(&run.logs, options);
            let (mut census, stacks) = build(&ran, &heaps, options);
            census.notes.extend(notes);
            census.ownership = Some(ownership);
            census.post_processing_seconds = post.elapsed().as_secs_f64();
            // The logs are big and read once: the census is what stays.
            let _ = std::fs::remove_dir_all(&raw);
            (census, stacks)
        }
        _ => {
            let raw = staging.path().join("dhat");
            let ran = dhat_files(options, &raw)?;
            let post = Instant::now();
            let files = match given {
                Some(files) => files,
                None => ran.files.iter().map(|f| dhat::read(f)).collect::<Result<_>>()?,
            };
            let heaps: Vec<sites::Heap> = files.into_iter().map(|f| dhat_heap(f, &ran)).collect();
            let (mut census, stacks) = build(&ran, &heaps, options);
            census.dhat_summary = dhat_summary(&raw);
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
