//! Instructions per call, exactly, under callgrind (valgrind's instruction counter).
//!
//! Timings drift; instruction counts do not: callgrind counts every instruction executed,
//! the same for the same binary and inputs whatever else the machine does. ffiprof runs
//! itself once under callgrind (`ffiprof __count-instructions`), which runs every variant
//! of every case (the control instance too) at two lengths, n and 2n calls, each inside
//! [`ffiprof_counted_batch`]. Callgrind dumps its counters before and after every call of
//! that function (`--dump-before`, `--dump-after`), so each "after" part holds exactly
//! one batch; the difference of the two lengths divided by n is the instructions per
//! call, with the batch's own entry and exit and anything done once cancelled.

use std::ffi::OsString;
use std::path::Path;

use super::counters::Availability;
use super::paired::CrossingsPerCall;
pub use super::paired::InstructionCount;
use super::paired::PairedVariant;
use super::CaseHeader;
use crate::error::{Error, Result};
use crate::valgrind::Tool;
use crate::workload::{Input, Placement, Workload};

/// Two instruction counts within this share of each other are the same work.
pub(crate) const SAME_WORK: f64 = 0.005;

/// True when `a` and `b` instructions per call are the same work ([`SAME_WORK`]).
pub(crate) fn same_work(a: f64, b: f64) -> bool {
    (a / b - 1.0).abs() <= SAME_WORK
}

/// The function whose every call callgrind dumps separately.
pub(crate) const COUNTED: &str = "ffiprof_counted_batch";

/// The name of the hidden command that runs the batches under callgrind.
pub(crate) const COMMAND: &str = "__count-instructions";

/// One batch, kept out of line so callgrind sees its calls.
#[no_mangle]
#[inline(never)]
pub(crate) fn ffiprof_counted_batch(run: &mut dyn FnMut(u64) -> u64, n: u64) -> u64 {
    std::hint::black_box(run(std::hint::black_box(n)))
}

/// Whether valgrind can count here, and which.
pub(crate) fn availability() -> Availability {
    match crate::valgrind::version("instructions per call are counted under callgrind") {
        Ok(version) => Availability {
            available: true,
            detail: format!("{version} (callgrind), two run lengths per variant"),
        },
        Err(_) => Availability {
            available: false,
            detail: "valgrind is not on PATH, so instructions per call are not counted \
                     (apt-get install valgrind)"
                .into(),
        },
    }
}

/// Calls per counted batch: a tenth of an iteration, at least one.
pub(crate) fn length(input: &Input) -> u64 {
    (input.calls_per_iteration / 10).max(1)
}

/// One subject counted: its case (`name`, `input`), its name (the control named as the
/// paired engine names it) and the length `n` of its shorter batch. A counting run runs
/// each subject at n and then 2n calls, the subjects of a case one after the other, the
/// baseline first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Label {
    pub(crate) workload: String,
    pub(crate) input: String,
    pub(crate) variant: String,
    pub(crate) n: u64,
}

impl Label {
    /// Whether this label and `other` are subjects of one case.
    fn same_case(&self, other: &Label) -> bool {
        self.workload == other.workload && self.input == other.input
    }
}

/// Labels of the batches [`run_batches`] runs, in order: every subject of every case,
/// each run twice (n, then 2n).
pub(crate) fn labels(workloads: &[Workload]) -> Vec<Label> {
    let mut out = Vec::new();
    for w in workloads {
        for input in &w.inputs {
            let base = w.baseline().name;
            let names = std::iter::once(base.to_owned())
                .chain(std::iter::once(super::paired::control_name(base)))
                .chain(w.available_variants().0.into_iter().skip(1).map(|v| v.name.to_owned()));
            for variant in names {
                out.push(Label {
                    workload: w.name.to_owned(),
                    input: input.name.to_owned(),
                    variant,
                    n: length(input),
                });
            }
        }
    }
    out
}

/// The first label of the case each label belongs to (its baseline), by index.
pub(crate) fn baselines(labels: &[Label]) -> Vec<usize> {
    let mut first = 0;
    (0..labels.len())
        .map(|i| {
            if !labels[i].same_case(&labels[first]) {
                first = i;
            }
            first
        })
        .collect()
}

/// Runs every variant of `workloads` (and a control instance of each baseline) at n and
/// 2n calls, each batch through `batch`, on one shared input per case, in the order
/// [`labels`] gives: what the counting commands run.
pub(crate) fn each_batch(
    workloads: &[Workload],
    batch: &mut super::paired::CountBatch<'_>,
) -> Result<()> {
    for w in workloads {
        for input in &w.inputs {
            let shared = (w.share)(input);
            let base = w.baseline();
            let at = Placement::default();
            let mut runners =
                vec![(base.prepare)(input, &shared, at)?, (base.prepare)(input, &shared, at)?];
            for v in w.available_variants().0.into_iter().skip(1) {
                runners.push((v.prepare)(input, &shared, at)?);
            }
            let n = length(input);
            for runner in &mut runners {
                let mut run = |n| runner.run(n);
                // Warm at the longer length: first-call effects and heap growth out.
                std::hint::black_box(run(2 * n));
                batch(&mut run, n);
                batch(&mut run, 2 * n);
            }
        }
    }
    Ok(())
}

/// Every batch through [`ffiprof_counted_batch`]: what `ffiprof __count-instructions`
/// does under callgrind.
pub fn run_batches(workloads: &[Workload]) -> Result<()> {
    each_batch(workloads, &mut |run, n| {
        ffiprof_counted_batch(run, n);
    })
}

/// The instruction total of each part callgrind dumped after a counted batch, with its
/// file, in order.
fn after_parts(dir: &Path) -> Result<Vec<(u64, std::path::PathBuf)>> {
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .map_err(|source| Error::Read { path: path.to_owned(), source })
    };
    let mut parts: Vec<(u64, u64, std::path::PathBuf)> = Vec::new();
    for entry in
        std::fs::read_dir(dir).map_err(|source| Error::Read { path: dir.to_owned(), source })?
    {
        let path = entry.map_err(|source| Error::Read { path: dir.to_owned(), source })?.path();
        let text = read(&path)?;
        let field = |key: &str| {
            text.lines().find_map(|l| l.strip_prefix(key)).map(str::trim).map(str::to_owned)
        };
        let after = field("desc: Trigger:").is_some_and(|t| t.starts_with("--dump-after"));
        if !after {
            continue;
        }
        let part = field("part:").and_then(|p| p.parse().ok());
        let total = field("totals:").or_else(|| field("summary:")).and_then(|t| t.parse().ok());
        match (part, total) {
            (Some(part), Some(total)) => parts.push((part, total, path)),
            _ => {
                return Err(Error::Internal(format!(
                    "callgrind part {} has no part number or total",
                    path.display()
                )))
            }
        }
    }
    parts.sort_unstable();
    Ok(parts.into_iter().map(|(_, total, path)| (total, path)).collect())
}

/// Counts the boundary's calls in one part callgrind dumped: (Rust to C, C to Rust, of
/// the first those into the C runtime). The crossings census gives it
/// ([`crate::crossings::boundary_calls`]); measuring stays below the censuses.
pub type CrossingCounter = fn(&Path) -> Result<(u64, u64, u64)>;

/// One count: `(workload, input, variant, instructions, crossings)`.
pub(crate) type Counted = (String, String, String, InstructionCount, Option<CrossingsPerCall>);

/// Puts each count of `counts` that belongs to the case `header` into its variant.
pub(crate) fn attach<'a>(
    counts: &[Counted],
    header: &CaseHeader,
    variants: impl Iterator<Item = &'a mut PairedVariant>,
) {
    for v in variants {
        let found = counts
            .iter()
            .find(|(w, i, name, ..)| *w == header.name && *i == header.input && *name == v.name);
        v.instructions = found.map(|c| c.3);
        v.crossings_per_call = found.and_then(|c| c.4);
    }
}

/// Counts instructions per call of every variant of `workloads` (the control instance
/// too) by running this program under callgrind; returns `(workload, input, variant,
/// count, crossings)` in catalogue order, the crossings per call where `crossings` counts
/// them. `exe` is ffiprof's own binary.
pub fn count(
    exe: &Path,
    workloads: &[Workload],
    crossings: Option<CrossingCounter>,
) -> Result<Vec<Counted>> {
    let args: Vec<OsString> =
        std::iter::once(COMMAND).chain(workloads.iter().map(|w| w.name)).map(Into::into).collect();
    count_labelled(exe, &args, &[], &labels(workloads), crossings)
}

/// Counts instructions (and crossings) per call by running `exe` with `args` and `env`
/// under callgrind: a program that runs the batches `labels` name, in their order, each
/// inside [`ffiprof_counted_batch`].
pub(crate) fn count_labelled(
    exe: &Path,
    args: &[OsString],
    env: &[(&str, &str)],
    labels: &[Label],
    crossings: Option<CrossingCounter>,
) -> Result<Vec<Counted>> {
    let dir = tempfile::tempdir()
        .map_err(|source| Error::Write { path: std::env::temp_dir(), source })?;
    let out_file = dir.path().join("callgrind.out");
    let tool = Tool {
        args: vec![
            "--tool=callgrind".into(),
            format!("--callgrind-out-file={}", out_file.display()),
            format!("--dump-before={COUNTED}"),
            format!("--dump-after={COUNTED}"),
            "--dump-instr=no".into(),
            "--compress-strings=no".into(),
        ],
        dir: dir.path(),
        trace_children: false,
        env: env.to_vec(),
    };
    let finished = tool.run(exe, args)?;
    if finished.status != 0 {
        return Err(Error::Internal(format!(
            "callgrind failed (status {}): {}",
            finished.status,
            tool.log_tail()
        )));
    }
    let totals = after_parts(dir.path())?;
    if totals.len() != 2 * labels.len() {
        return Err(Error::Internal(format!(
            "callgrind dumped {} batches, {} expected",
            totals.len(),
            2 * labels.len()
        )));
    }
    let mut per_call = Vec::with_capacity(labels.len());
    let mut counted = Vec::with_capacity(labels.len());
    for ((pair, label), baseline) in totals.chunks(2).zip(labels).zip(baselines(labels)) {
        let n = label.n as f64;
        let here = (pair[1].0 as f64 - pair[0].0 as f64) / n;
        per_call.push(here);
        // A part that cannot be read leaves the crossings uncounted, not the instructions.
        let crossed = crossings.and_then(|crossings_in| {
            let short = crossings_in(&pair[0].1).ok()?;
            let long = crossings_in(&pair[1].1).ok()?;
            Some(CrossingsPerCall {
                rust_to_c: (long.0 as f64 - short.0 as f64) / n,
                c_to_rust: (long.1 as f64 - short.1 as f64) / n,
                into_c_runtime: (long.2 as f64 - short.2 as f64) / n,
            })
        });
        let overhead_per_call = (baseline != counted.len()).then(|| here - per_call[baseline]);
        counted.push((
            label.workload.clone(),
            label.input.clone(),
            label.variant.clone(),
            InstructionCount { per_call: here, overhead_per_call },
            crossed,
        ));
    }
    Ok(counted)
}
