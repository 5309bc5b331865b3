//! Allocations per call, by the allocator that served them, counted exactly in a run
//! apart from the timed ones.
//!
//! ffiprof runs itself (`ffiprof __count-allocations WORKLOAD...`) with its heap
//! interposer preloaded, keeping no stacks; that process runs every variant (the control
//! instance too) at n and 2n calls, as the instruction count does, and puts a mark in the
//! interposer's log before and after each batch. The allocations between two marks are the
//! batch's; each one's allocator is proved from the machine code at its return address, as
//! the heap census proves it ([`crate::memory::calls`]). The difference of the two lengths
//! divided by n is the allocations per call, with whatever happens once cancelled.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;

use super::instructions::{each_batch, labels, Label};
use super::paired::{AllocationsPerCall, BlocksPerCall, PairedVariant};
use super::CaseHeader;
use crate::error::{Error, Result};
use crate::memory::log::{flag, Event};
use crate::memory::native::Placer;
use crate::memory::replay::Side;
use crate::memory::Family;
use crate::workload::Workload;

/// The hidden command that runs the marked batches.
pub(crate) const COMMAND: &str = "__count-allocations";

/// The interposer's mark, where the interposer is loaded (nothing otherwise).
fn mark(id: u64) {
    type Mark = unsafe extern "C" fn(u64);
    static FOUND: std::sync::OnceLock<Option<Mark>> = std::sync::OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let name = c"ffiprof_heap_mark";
        // SAFETY: dlsym with a NUL-terminated name; the symbol, where present, is the
        // interposer's `void ffiprof_heap_mark(uint64_t)`.
        let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
        (!f.is_null()).then(|| unsafe { std::mem::transmute::<*mut libc::c_void, Mark>(f) })
    });
    if let Some(f) = found {
        // SAFETY: the interposer's mark takes any id.
        unsafe { f(id) }
    }
}

/// Every batch between two marks: what `ffiprof __count-allocations` does under the
/// interposer.
pub(crate) fn run_batches(workloads: &[Workload]) -> Result<()> {
    let mut k = 0u64;
    each_batch(workloads, &mut |run, n| marked(&mut k, run, n))
}

/// One batch between the marks `2k` and `2k + 1`, then the next `k`.
pub(crate) fn marked(k: &mut u64, run: &mut dyn FnMut(u64) -> u64, n: u64) {
    mark(2 * *k);
    std::hint::black_box(run(std::hint::black_box(n)));
    mark(2 * *k + 1);
    *k += 1;
}

/// One count: `(workload, input, variant, allocations per call)`.
pub(crate) type Counted = (String, String, String, AllocationsPerCall);

/// Puts each count of `counts` that belongs to the case `header` into its variant.
pub(crate) fn attach<'a>(
    counts: &[Counted],
    header: &CaseHeader,
    variants: impl Iterator<Item = &'a mut PairedVariant>,
) {
    for v in variants {
        v.allocations_per_call = counts
            .iter()
            .find(|(w, i, name, _)| *w == header.name && *i == header.input && *name == v.name)
            .map(|c| c.3);
    }
}

/// Blocks and bytes of one batch, by family.
#[derive(Default, Clone, Copy)]
struct Batch {
    rust: (u64, u64),
    c: (u64, u64),
    cxx: (u64, u64),
    unknown: (u64, u64),
}

/// Counts the allocations per call of every variant of `workloads` (the control instance
/// too) by running `exe` (ffiprof) under its heap interposer; in catalogue order.
pub(crate) fn count(exe: &Path, workloads: &[Workload]) -> Result<Vec<Counted>> {
    let command: Vec<OsString> = std::iter::once(exe.as_os_str().to_owned())
        .chain(std::iter::once(COMMAND.into()))
        .chain(workloads.iter().map(|w| w.name.into()))
        .collect();
    count_labelled(&command, &[], &labels(workloads))
}

/// Counts allocations per call by running `command` with `env` under the heap
/// interposer: a program that runs the batches `labels` name, in their order, each between
/// its two marks ([`marked`]).
pub(crate) fn count_labelled(
    command: &[OsString],
    env: &[(&str, String)],
    labels: &[Label],
) -> Result<Vec<Counted>> {
    let dir = tempfile::tempdir()
        .map_err(|source| Error::Write { path: std::env::temp_dir(), source })?;
    // No stacks: one allocation per 2^62 bytes keeps none.
    let ran = crate::memory::native::run(command, dir.path(), false, 1 << 62, 0, env)?;
    if ran.status != 0 {
        return Err(Error::Internal(format!(
            "counting allocations: {} exited with status {}",
            command[0].to_string_lossy(),
            ran.status
        )));
    }
    let log = ran
        .logs
        .iter()
        .find(|l| l.pid == ran.pid)
        .ok_or_else(|| Error::Internal("counting allocations: no heap log".into()))?;
    // Each batch's allocations: (batch, return address, bytes, through C++'s operators).
    let mut at: Option<u64> = None;
    let mut seen: Vec<(u64, u64, u64, bool)> = Vec::new();
    let mut batches = 0u64;
    for e in log.events() {
        match e {
            Event::Mark { id } if id % 2 == 0 => at = Some(id / 2),
            Event::Mark { .. } => {
                at = None;
                batches += 1;
            }
            Event::Alloc { size, ip, flags, .. } | Event::Realloc { size, ip, flags, .. } => {
                if let Some(b) = at {
                    seen.push((b, ip, size, flags & flag::CXX != 0));
                }
            }
            _ => {}
        }
    }
    if batches != 2 * labels.len() as u64 {
        return Err(Error::Internal(format!(
            "counting allocations: {batches} batches marked, {} expected",
            2 * labels.len()
        )));
    }
    let returns: crate::memory::log::FastSet<u64> = seen.iter().map(|s| s.1).collect();
    let mut symbolizer = crate::symbol::FileSymbolizer::default();
    let placer = Placer::new(log, returns.iter().copied(), &returns, &mut symbolizer);
    let mut families: HashMap<(u64, bool), Family> = HashMap::new();
    let mut per_batch = vec![Batch::default(); batches as usize];
    for (b, ip, size, cxx) in seen {
        let family = *families.entry((ip, cxx)).or_insert_with(|| {
            placer.family(&Side { stack: 0, ip, cxx }).unwrap_or(Family::Unknown)
        });
        let slot = &mut per_batch[b as usize];
        let sum = match family {
            Family::Rust => &mut slot.rust,
            Family::C => &mut slot.c,
            Family::Cxx => &mut slot.cxx,
            Family::Unknown => &mut slot.unknown,
        };
        *sum = (sum.0 + 1, sum.1 + size);
    }
    let per = |short: (u64, u64), long: (u64, u64), n: f64| BlocksPerCall {
        blocks: (long.0 as f64 - short.0 as f64) / n,
        bytes: (long.1 as f64 - short.1 as f64) / n,
    };
    let counted = per_batch
        .chunks(2)
        .zip(labels)
        .map(|(pair, label)| {
            let (short, long, n) = (pair[0], pair[1], label.n as f64);
            let allocations = AllocationsPerCall {
                rust: per(short.rust, long.rust, n),
                c: per(short.c, long.c, n),
                cxx: per(short.cxx, long.cxx, n),
                unknown: per(short.unknown, long.unknown, n),
            };
            (label.workload.clone(), label.input.clone(), label.variant.clone(), allocations)
        })
        .collect();
    Ok(counted)
}
