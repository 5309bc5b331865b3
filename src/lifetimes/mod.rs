//! `ffiprof lifetimes -- PROGRAM`: memory kept past the call. C reading what Rust freed,
//! Rust reading what C freed, writes past a buffer, pointers into a `Vec` that moved: each
//! said with the side that touched the block, the side whose allocator owned it and the
//! side that freed it.
//!
//! valgrind's memcheck finds these errors on an unmodified program and gives three stacks
//! for each (the access, the free, the allocation), but no word of languages or owners.
//! ffiprof runs the program under memcheck (through the one valgrind runner,
//! [`crate::valgrind`]) or reads its XML files (`--from`), reads them in order
//! ([`memcheck`]), tells each error's sides and families as the heap census tells them
//! ([`attribute`]), and writes the census ([`schema`]): `lifetimes.json`,
//! `lifetimes.md` and a flamegraph of where the memory was touched.

pub(crate) mod attribute;
pub(crate) mod guard;
pub(crate) mod memcheck;
pub(crate) mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use schema::{
    is_lifetimes_census, Access, ErrorKind, LifetimeCensus, LifetimeError, Process, Stacks,
    LIFETIMES_FILE,
};

use crate::error::{Error, Result};
use crate::language::Language;
use crate::output::{write_under, Staging};
use crate::source::Source;
use crate::stacks::{NamedStack, Profile};
use crate::valgrind::{self, Tool};

/// Frames memcheck keeps per stack (its default, 12, cuts a C library's stacks before the
/// Rust that called in).
const NUM_CALLERS: usize = 100;

/// What to census and where to write it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The program, or memcheck's XML files.
    pub source: Source,
    /// The census directory (replaced whole when complete).
    pub out: PathBuf,
    /// Follow child processes.
    pub trace_children: bool,
    /// 0: run the program under memcheck. N: run it at its own speed, about one
    /// allocation in N on guard pages ([`guard`]).
    pub guard: u64,
}

impl Options {
    /// Options for `source`, writing to `out`, under memcheck.
    pub fn new(source: Source, out: PathBuf) -> Options {
        Options { source, out, trace_children: false, guard: 0 }
    }
}

/// A finished census.
pub struct Outcome {
    /// The census.
    pub census: LifetimeCensus,
    /// Its directory.
    pub out: PathBuf,
}

struct Ran {
    files: Vec<memcheck::File>,
    status: i32,
    seconds: f64,
    valgrind: String,
    command: Vec<String>,
    /// What valgrind's own logs say that the reader should know.
    notes: Vec<String>,
}

/// What valgrind's messages say of a run the program would not have had bare.
fn valgrind_notes(files: &[memcheck::File]) -> Vec<String> {
    let mut notes = Vec::new();
    // valgrind's operator new cannot throw std::bad_alloc: it ends the program instead.
    if files.iter().flat_map(|f| &f.messages).any(|m| m.contains("cannot throw exceptions")) {
        notes.push(
            "an operator new failed, and memcheck cannot throw std::bad_alloc: it ended the \
             program (status 1) where the program would have caught it; run with --guard to \
             keep the program's own behaviour"
                .into(),
        );
    }
    notes
}

/// The program run with guard pages: its processes and what their logs found.
fn guarded(
    command: &[std::ffi::OsString],
    raw: &Path,
    options: &Options,
) -> Result<LifetimeCensus> {
    use crate::memory::native;
    let ran = native::run(command, raw, options.trace_children, 0, options.guard, &[])?;
    crate::progress::stage("telling each fault's sides and allocators");
    let mut symbolizer = crate::symbol::FileSymbolizer::default();
    let mut processes = Vec::new();
    let mut all = Vec::new();
    for log in &ran.logs {
        let errors = guard::errors(log, &mut symbolizer);
        processes.push(Process {
            pid: u64::from(log.pid.0),
            command: log.command.split(' ').map(str::to_owned).collect(),
            errors: errors.iter().map(|e| e.count).sum(),
            cut: log.ending != crate::memory::log::Ending::Exit,
        });
        all.extend(errors);
    }
    let _ = std::fs::remove_dir_all(raw);
    let errors = attribute::gather(all);
    let mut notes = vec![format!(
        "guard pages: about one allocation in {} of at most 4096 bytes was guarded; errors \
         in the others are not seen, and each guarded page reports its first fault (the page \
         is then opened for the program to go on)",
        options.guard
    )];
    notes.extend(ran.left_out.iter().cloned());
    Ok(census_of(
        command.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
        ran.status,
        ran.seconds,
        "guard".into(),
        Some(options.guard),
        processes,
        errors,
        None,
        notes,
    ))
}

/// Runs the program under memcheck into `raw` (XML, one file per process).
fn run(command: &[std::ffi::OsString], raw: &Path, trace_children: bool) -> Result<Ran> {
    let valgrind = valgrind::version("the lifetimes census runs the program under memcheck")?;
    let program = crate::record::resolve_program(&command[0])?;
    std::fs::create_dir_all(raw).map_err(|source| Error::Write { path: raw.to_owned(), source })?;
    let tool = Tool {
        args: vec![
            "--tool=memcheck".into(),
            "--xml=yes".into(),
            format!("--xml-file={}", raw.join("memcheck.%p.xml").display()),
            // Whole source paths: Rust's standard library is known by its files.
            "--fullpath-after=".into(),
            format!("--num-callers={NUM_CALLERS}"),
            "--leak-check=no".into(),
            // Every error, however many: the counts are the census.
            "--error-limit=no".into(),
            "--keep-stacktraces=alloc-and-free".into(),
        ],
        dir: raw,
        trace_children,
        env: vec![],
    };
    let finished = tool.run(&program, &command[1..])?;
    let paths = valgrind::files_in(raw, "memcheck.")?;
    if paths.is_empty() {
        return Err(Error::Internal(format!(
            "memcheck wrote no file (status {}): {}",
            finished.status,
            tool.log_tail()
        )));
    }
    // A process memcheck left unfinished (an exec: the file of the image it left) holds
    // what it saw; a file that is not XML at all is said and left out.
    let files: Vec<memcheck::File> = paths.iter().filter_map(|p| memcheck::read(p).ok()).collect();
    Ok(Ran {
        notes: valgrind_notes(&files),
        files,
        status: finished.status,
        seconds: finished.seconds,
        valgrind,
        command: command.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
    })
}

fn check(options: &Options) -> Result<()> {
    if options.guard > 0 && matches!(options.source, Source::Files(_)) {
        return Err(Error::InvalidOption(
            "--guard runs the program: give it after `--`, not memcheck's files".into(),
        ));
    }
    match &options.source {
        Source::Run(command) if command.is_empty() => Err(Error::InvalidOption(
            "give the program after `--` (ffiprof lifetimes -- PROGRAM [ARGS...]), or \
             memcheck's XML files with --from"
                .into(),
        )),
        Source::Files(files) if files.is_empty() => {
            Err(Error::InvalidOption("--from needs at least one memcheck XML file".into()))
        }
        _ => Ok(()),
    }
}

/// The census of its parts, with its totals and the notes every census has.
#[allow(clippy::too_many_arguments)]
fn census_of(
    command: Vec<String>,
    exit_status: i32,
    seconds: f64,
    engine: String,
    guard: Option<u64>,
    processes: Vec<Process>,
    errors: Vec<LifetimeError>,
    memcheck_total: Option<u64>,
    mut notes: Vec<String>,
) -> LifetimeCensus {
    let total = errors.iter().map(|e| e.count).sum();
    let crossed = errors.iter().filter(|e| e.crossed == Some(true)).map(|e| e.count).sum();
    let mut cut: Vec<u64> = processes.iter().filter(|p| p.cut).map(|p| p.pid).collect();
    cut.dedup();
    if !cut.is_empty() {
        let pids: Vec<String> = cut.iter().map(u64::to_string).collect();
        notes.push(format!(
            "the record of process{} {} ends early (killed, or exec'd another program): what \
             it held is counted",
            if cut.len() == 1 { "" } else { "es" },
            pids.join(", ")
        ));
    }
    let mut untold: BTreeMap<String, u64> = BTreeMap::new();
    for e in errors.iter() {
        if let Some(why) = e.untold {
            *untold.entry(why.to_string()).or_default() += e.count;
        }
    }
    for (why, n) in untold {
        notes.push(format!(
            "{} error{} name no owner, or no side that freed: {why}",
            crate::fmt::count(n),
            if n == 1 { "" } else { "s" }
        ));
    }
    LifetimeCensus {
        schema_version: schema::LIFETIMES_SCHEMA_VERSION,
        command,
        exit_status,
        engine,
        guard,
        valgrind: String::new(),
        seconds,
        processes,
        errors,
        total,
        memcheck_total,
        crossed,
        notes,
    }
}

/// The census of what memcheck's `files` hold.
fn build(ran: Ran) -> LifetimeCensus {
    let errors = attribute::tell_all(&ran.files);
    let processes: Vec<Process> = ran
        .files
        .iter()
        .map(|f| Process {
            pid: f.pid,
            command: f.command.clone(),
            errors: f.errors.iter().map(|e| f.count(e)).sum(),
            cut: f.cut,
        })
        .collect();
    let memcheck_total = ran
        .files
        .iter()
        .map(|f| if f.counts.is_empty() { f.errors.len() as u64 } else { f.counts.values().sum() })
        .sum();
    let mut notes = ran.notes.clone();
    notes.extend(ran.files.iter().filter(|f| f.fatal_signal.is_some()).map(|f| {
        let signal = f.fatal_signal.as_deref().unwrap_or("a signal");
        format!("process {} ended with {signal}", f.pid)
    }));
    let mut census = census_of(
        ran.command,
        ran.status,
        ran.seconds,
        "memcheck".into(),
        None,
        processes,
        errors,
        Some(memcheck_total),
        notes,
    );
    census.valgrind = ran.valgrind;
    census
}

/// A flamegraph of where memory was touched, weighted by the errors' counts, coloured by
/// language.
fn access_flamegraph(census: &LifetimeCensus) -> Result<(Vec<u8>, String)> {
    let named: Vec<NamedStack<'_>> = census
        .errors
        .iter()
        .map(|e| {
            let mut frames: Vec<(&str, &str, crate::language::Language)> = e
                .stacks
                .access
                .iter()
                .map(|f| (f.function.as_str(), f.module.as_str(), f.language))
                .collect();
            if frames.is_empty() {
                // Slack found written at a free: who wrote it is not known.
                frames.push(("[not known: found at the block's free]", "", Language::Unknown));
            }
            (frames, e.count)
        })
        .collect();
    let profile = Profile::from_named_stacks(&named);
    let folded = profile.folded();
    let svg = crate::flame::flamegraph_of(&profile, &folded, "where memory was touched", "errors")?;
    Ok((svg, folded))
}

/// Runs the census (see the module docs). Bad input (no program, a file that is not
/// memcheck's, no valgrind, an unwritable `--out`) is found before anything is written.
pub fn census(options: &Options) -> Result<Outcome> {
    check(options)?;
    let given: Option<Vec<memcheck::File>> = match &options.source {
        Source::Files(files) => {
            Some(files.iter().map(|f| memcheck::read(f)).collect::<Result<_>>()?)
        }
        Source::Run(_) => None,
    };
    let staging = Staging::new(&options.out)?;
    if let (Source::Run(command), true) = (&options.source, options.guard > 0) {
        let census = guarded(command, &staging.path().join("heap"), options)?;
        return write(census, staging);
    }
    let ran = match (&options.source, given) {
        (_, Some(files)) => Ran {
            command: files.first().map(|f| f.command.clone()).unwrap_or_default(),
            notes: valgrind_notes(&files),
            files,
            status: 0,
            seconds: 0.0,
            valgrind: "(memcheck files given)".into(),
        },
        (Source::Run(command), None) => {
            let raw = staging.path().join("memcheck");
            run(command, &raw, options.trace_children)?
        }
        (Source::Files(_), None) => unreachable!("files given are read above"),
    };
    crate::progress::stage("telling each error's sides and allocators");
    write(build(ran), staging)
}

/// Writes the census's files and puts the directory in place.
fn write(census: LifetimeCensus, staging: Staging) -> Result<Outcome> {
    let (svg, folded) = access_flamegraph(&census)?;
    write_under(staging.path(), Path::new(LIFETIMES_FILE), census.to_json()?.as_bytes())?;
    write_under(staging.path(), Path::new("lifetimes.md"), census.markdown().as_bytes())?;
    write_under(staging.path(), Path::new("access.svg"), &svg)?;
    write_under(staging.path(), Path::new("access.folded"), folded.as_bytes())?;
    let out = staging.commit()?;
    Ok(Outcome { census, out })
}

/// Two lifetimes censuses compared: an error that is new, or occurs more often, is a
/// regression.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LifetimesComparison {
    /// Each error of either, by its sentence: (old count, new count).
    pub changes: Vec<Change>,
}

/// One error's counts in two censuses.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    /// The error in words (the newer census's where it has it).
    pub error: String,
    /// Its kind.
    pub kind: ErrorKind,
    /// Occurrences before.
    pub old: u64,
    /// Occurrences after.
    pub new: u64,
}

impl LifetimesComparison {
    /// Compares `old` with `new`.
    pub fn of(old: &LifetimeCensus, new: &LifetimeCensus) -> LifetimesComparison {
        let mut by_key: BTreeMap<String, Change> = BTreeMap::new();
        for (e, newer) in
            old.errors.iter().map(|e| (e, false)).chain(new.errors.iter().map(|e| (e, true)))
        {
            let c = by_key.entry(e.key()).or_insert_with(|| Change {
                error: e.sentence(),
                kind: e.kind,
                old: 0,
                new: 0,
            });
            if newer {
                c.new += e.count;
                c.error = e.sentence();
            } else {
                c.old += e.count;
            }
        }
        let mut changes: Vec<Change> = by_key.into_values().collect();
        changes.sort_by_key(|c| std::cmp::Reverse(c.new.saturating_sub(c.old)));
        LifetimesComparison { changes }
    }

    /// The errors new or more frequent.
    pub fn regressions(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.new > c.old)
    }

    /// `compare.md`.
    pub fn markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::from("# Lifetimes compared\n\n");
        let (worse, better) =
            (self.regressions().count(), self.changes.iter().filter(|c| c.new < c.old).count());
        let _ = writeln!(s, "{worse} error(s) new or more frequent; {better} fewer or gone.\n");
        if !self.changes.is_empty() {
            s.push_str("| before | after | error |\n| ---: | ---: | --- |\n");
            for c in &self.changes {
                let _ = writeln!(s, "| {} | {} | {} |", c.old, c.new, c.error);
            }
        }
        s
    }
}

/// Compares the censuses at `old` and `new`, writing compare.md and compare.json.
pub fn compare_paths(
    old: &Path,
    new: &Path,
    out: Option<&Path>,
) -> Result<(LifetimesComparison, PathBuf)> {
    let (o, n) = (LifetimeCensus::load(old)?, LifetimeCensus::load(new)?);
    let comparison = LifetimesComparison::of(&o, &n);
    let out = crate::output::write_comparison(old, new, out, &comparison, &comparison.markdown())?;
    Ok((comparison, out))
}
