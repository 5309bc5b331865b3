//! The build stage of `memory`: heaps (the native engine's replayed logs, or DHAT's files
//! with their frames placed in their modules) attributed to sites and summed into the
//! census, with its notes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::execute::{loaded, Ran};
use super::schema::{
    self, Engine, Figures, MemoryCensus, Ownership, Process, Site, StackFrame, StackTable,
};
use super::{dhat, log, native, render, sites, Options};
use crate::environment::Environment;

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
pub(crate) fn dhat_heap(file: dhat::File, ran: &Ran) -> sites::Heap {
    let frames = sites::place_all(&file.ftbl, &mut modules(&file, ran));
    let (pid, command, points) = (file.pid, file.cmd, file.pps);
    sites::Heap { pid, command, frames, points, families: Vec::new(), totals: None }
}

/// Every heap's points attributed and summed into sites (sorted, the most bytes at the
/// peak first) and processes, with the stacks for the pictures.
fn sites_of(heaps: &[sites::Heap]) -> (Vec<Site>, Vec<Process>, render::Stacks, StackTable) {
    let mut stacks = render::Stacks::default();
    let mut table = StackTable::default();
    let (mut frame_ids, mut stack_ids) = Default::default();
    let mut all: BTreeMap<sites::SiteKey, Site> = BTreeMap::new();
    let mut processes = Vec::new();
    for heap in heaps {
        let mut process = Figures::default();
        let attributed = heap.points.iter().enumerate().map(|(i, p)| {
            let mut a = sites::attribute(p, &heap.frames);
            if let Some(&family) = heap.families.get(i) {
                a.family = family;
            }
            (p, a)
        });
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
                stacks: Vec::new(),
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
                let frames = a.stack.iter().map(|p| StackFrame {
                    function: p.function.clone(),
                    module: p.module.clone(),
                    language: p.language,
                });
                let id = table.intern(frames, &mut frame_ids, &mut stack_ids);
                if !site.stacks.contains(&id) {
                    site.stacks.push(id);
                }
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
    (sites, processes, stacks, table)
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
pub(crate) fn build(
    ran: &Ran,
    heaps: &[sites::Heap],
    options: &Options,
) -> (MemoryCensus, render::Stacks) {
    let program = ran.program.clone().or_else(|| {
        let first = heaps.first()?.command.split_whitespace().next()?.to_owned();
        Path::new(&first).is_file().then(|| PathBuf::from(first))
    });
    let (sites, processes, stacks, stack_table) = sites_of(heaps);
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
        stack_table,
        notes,
    };
    (census, stacks)
}

/// What the reader should know of how a log ends, if anything: `exec` where the process
/// went on to run another program, `status` for the program's own process.
fn ending_note(log: &log::Log, exec: bool, status: Option<i32>) -> Option<String> {
    let pid = log.pid;
    let how = match log.ending {
        log::Ending::Exit => return None,
        log::Ending::Stopped if exec => "ran another program (exec) without exit()",
        log::Ending::Stopped => match status {
            Some(s) if s > 128 => "was killed by a signal",
            Some(_) => "left through _exit or an exec, without exit()",
            None => "was killed by a signal, or left through _exit or an exec",
        },
        log::Ending::Lost => {
            return Some(format!(
                "process {pid}'s heap log could not grow (a full disk or tmpfs, or the file \
                 size limit) after its first {} events: the program went on unlogged, and \
                 the census holds what it did until then",
                log.event_count
            ))
        }
        log::Ending::Cut => "was stopped as it wrote its heap log (its last record is cut short)",
    };
    Some(format!(
        "process {pid} did not reach exit ({how}): the census holds what it did until then \
         ({} events), and its blocks at exit are those live when it stopped",
        log.event_count
    ))
}

/// The heaps of a native run, with its ownership census and notes.
pub(crate) fn native_heaps(
    run: &native::Ran,
    options: &Options,
) -> (Vec<sites::Heap>, Ownership, Vec<String>) {
    let mut symbolizer = crate::symbol::FileSymbolizer::default();
    let (mut heaps, mut owned, mut notes) = (Vec::new(), Vec::new(), run.left_out.clone());
    let mut stackless = Figures::default();
    for (i, log) in run.logs.iter().enumerate() {
        let p = native::process(log, options.sample_bytes, &mut symbolizer);
        let exec = run.logs.get(i + 1).is_some_and(|next| next.pid == log.pid);
        notes.extend(ending_note(log, exec, (log.pid == run.pid).then_some(run.status)));
        if log.image > 0 {
            notes.push(format!(
                "process {} ran another program (exec): its census is summed with the \
                 first's (`{}`)",
                log.pid, log.command
            ));
        }
        stackless.add(&p.stackless);
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
    (heaps, native::merge(owned), notes)
}
