//! Comparing two reports, in a way that survives a shared machine.
//!
//! Absolute times move 20-50% between runs on a shared VM, so no verdict rests on them:
//! - **time**: a variant is judged on its ratio to its own run's baseline, measured in
//!   paired rounds. Its change is significant when the two ratio intervals do not overlap
//!   and the change exceeds the threshold plus the larger of the two runs' noise floors
//!   (each case's A/A control) and placement floors (the control across code
//!   placements: what placement alone does to identical work, which a rebuild may
//!   redraw). A case too noisy in either run is not judged. Baselines and controls have
//!   no time verdict: their ratio is 1 by construction.
//! - **instructions**: instructions per call under callgrind do not drift; a change
//!   beyond [`INSTRUCTION_THRESHOLD`] is a change, for every variant, baselines included.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Report, ReportCase, ReportVariant};
use crate::error::{Error, Result};
use crate::flame;
use crate::fmt::{ns, pct, signed_pct};
use crate::measure::Interval;
use crate::output::write_atomic;
use crate::workload::Role;

/// Version of `compare.json`.
pub const COMPARE_SCHEMA_VERSION: u32 = 2;

/// Instruction counts within this share of each other are unchanged (the per-call
/// division and allocator paths leave fractions of an instruction).
pub const INSTRUCTION_THRESHOLD: f64 = 0.005;

/// What changed in one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// Significantly slower, or more instructions.
    Slower,
    /// Significantly faster, or fewer instructions.
    Faster,
    /// No significant change.
    Unchanged,
    /// Not judged: no figure in one of the runs, a baseline's time, or a case too noisy.
    NotJudged,
}

/// Which metric `--fail-on-regression` looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Paired time ratios.
    Time,
    /// Instructions per call.
    Instructions,
    /// Either.
    Both,
}

/// One variant present in both reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantChange {
    /// Workload.
    pub workload: String,
    /// Input.
    pub input: String,
    /// Variant.
    pub variant: String,
    /// Role.
    pub role: Role,
    /// ns per call before (as measured: includes the machine's change).
    pub old_ns_per_call: Interval,
    /// ns per call after.
    pub new_ns_per_call: Interval,
    /// Ratio to the baseline before (not for baselines).
    pub old_ratio: Option<Interval>,
    /// Ratio to the baseline after.
    pub new_ratio: Option<Interval>,
    /// new ratio / old ratio - 1.
    pub ratio_change: Option<f64>,
    /// Threshold plus the largest of the two runs' noise and placement floors for this
    /// case.
    pub noise_floor: f64,
    /// The time verdict.
    pub time: Change,
    /// Instructions per call before.
    pub old_instructions: Option<f64>,
    /// Instructions per call after.
    pub new_instructions: Option<f64>,
    /// new / old - 1 of the instructions per call.
    pub instruction_change: Option<f64>,
    /// The instructions verdict.
    pub instructions: Change,
    /// C-side share before and after (perf sampler where present).
    pub c_side: Option<(f64, f64)>,
    /// Crossings per call before and after (both ways), where both runs counted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossings_per_call: Option<(f64, f64)>,
    /// Allocations per call before and after (blocks, every allocator), where both runs
    /// counted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocations_per_call: Option<(f64, f64)>,
}

impl VariantChange {
    /// More crossings or allocations per call than before: counted, so any increase (past
    /// rounding) is one.
    pub fn counts_more(&self) -> bool {
        let more = |p: Option<(f64, f64)>| p.is_some_and(|(a, b)| b > a + 0.005);
        more(self.crossings_per_call) || more(self.allocations_per_call)
    }

    /// True when the metric says slower; counted work (instructions, crossings,
    /// allocations per call) is what `instructions` judges.
    pub fn regressed(&self, metric: Metric) -> bool {
        let time = self.time == Change::Slower;
        let instructions = self.instructions == Change::Slower || self.counts_more();
        match metric {
            Metric::Time => time,
            Metric::Instructions => instructions,
            Metric::Both => time || instructions,
        }
    }
}

/// The comparison of two reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// [`COMPARE_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The older report.
    pub old: PathBuf,
    /// The newer report.
    pub new: PathBuf,
    /// Relative change of a ratio below which nothing is significant.
    pub threshold: f64,
    /// Relative change of instructions per call below which nothing changed.
    pub instruction_threshold: f64,
    /// How changes are judged.
    pub method: String,
    /// Variants in both.
    pub changes: Vec<VariantChange>,
    /// Cases only in the old report.
    pub only_in_old: Vec<String>,
    /// Cases only in the new report.
    pub only_in_new: Vec<String>,
}

impl Comparison {
    /// Variants slower by `metric`.
    pub fn regressions(&self, metric: Metric) -> impl Iterator<Item = &VariantChange> {
        self.changes.iter().filter(move |c| c.regressed(metric))
    }
}

/// The method, as compare.md states it.
pub const METHOD: &str = "Time: each variant is judged on its ratio to its own run's \
baseline, measured in paired rounds; a change is significant when the two ratio intervals \
do not overlap and it exceeds the threshold plus the largest of the two runs' noise floors \
(the case's A/A control) and placement floors (the control across code placements). Absolute times are shown, not judged: between runs the whole \
machine changes speed. A case too noisy in either run is not judged. Instructions per call \
(callgrind) do not drift: a change beyond 0.5% is a change.";

fn overlap(a: &Interval, b: &Interval) -> bool {
    a.lower <= b.upper && b.lower <= a.upper
}

fn c_side(v: &ReportVariant) -> Option<f64> {
    v.c_side().map(|(s, _)| s)
}

fn key(case: &ReportCase) -> String {
    case.header.key()
}

fn judge_time(
    o: &ReportCase,
    n: &ReportCase,
    ov: &ReportVariant,
    nv: &ReportVariant,
    threshold: f64,
) -> (Option<f64>, f64, Change) {
    let (op, np) = (&o.header.paired, &n.header.paired);
    let floor = threshold
        + op.noise_floor.max(np.noise_floor).max(op.placement_floor).max(np.placement_floor);
    let (Some(or), Some(nr)) = (ov.timing.ratio, nv.timing.ratio) else {
        return (None, floor, Change::NotJudged);
    };
    let change = nr.estimate / or.estimate - 1.0;
    let judged =
        ov.timing.role != Role::Control && !o.header.paired.too_noisy && !n.header.paired.too_noisy;
    let verdict = if !judged {
        Change::NotJudged
    } else if overlap(&or, &nr) || change.abs() <= floor {
        Change::Unchanged
    } else if change > 0.0 {
        Change::Slower
    } else {
        Change::Faster
    };
    (Some(change), floor, verdict)
}

fn judge_instructions(ov: &ReportVariant, nv: &ReportVariant) -> (Option<f64>, Change) {
    let (Some(oi), Some(ni)) = (ov.timing.instructions, nv.timing.instructions) else {
        return (None, Change::NotJudged);
    };
    let change = ni.per_call / oi.per_call - 1.0;
    let verdict = if change.abs() <= INSTRUCTION_THRESHOLD {
        Change::Unchanged
    } else if change > 0.0 {
        Change::Slower
    } else {
        Change::Faster
    };
    (Some(change), verdict)
}

/// Compares `new` against `old`; `threshold` is a fraction (0.05 = 5%).
pub fn compare(
    old: &Report,
    old_path: PathBuf,
    new: &Report,
    new_path: PathBuf,
    threshold: f64,
) -> Result<Comparison> {
    let old_cases: HashMap<String, &ReportCase> =
        old.workloads.iter().map(|c| (key(c), c)).collect();
    let new_cases: HashMap<String, &ReportCase> =
        new.workloads.iter().map(|c| (key(c), c)).collect();
    let shared: Vec<(&ReportCase, &ReportCase)> =
        old.workloads.iter().filter_map(|o| new_cases.get(&key(o)).map(|n| (o, *n))).collect();
    if shared.is_empty() {
        return Err(Error::NothingInCommon { old: old_path, new: new_path });
    }
    let mut changes = Vec::new();
    for (o, n) in &shared {
        for ov in &o.variants {
            let Some(nv) = n.variants.iter().find(|v| v.timing.name == ov.timing.name) else {
                continue;
            };
            let (ratio_change, noise_floor, time) = judge_time(o, n, ov, nv, threshold);
            let (instruction_change, instructions) = judge_instructions(ov, nv);
            changes.push(VariantChange {
                workload: o.header.name.clone(),
                input: o.header.input.clone(),
                variant: ov.timing.name.clone(),
                role: ov.timing.role,
                old_ns_per_call: ov.timing.ns_per_call,
                new_ns_per_call: nv.timing.ns_per_call,
                old_ratio: ov.timing.ratio,
                new_ratio: nv.timing.ratio,
                ratio_change,
                noise_floor,
                time,
                old_instructions: ov.timing.instructions.map(|i| i.per_call),
                new_instructions: nv.timing.instructions.map(|i| i.per_call),
                instruction_change,
                instructions,
                c_side: c_side(ov).zip(c_side(nv)),
                crossings_per_call: ov
                    .timing
                    .crossings_per_call
                    .zip(nv.timing.crossings_per_call)
                    .map(|(a, b)| (a.total(), b.total())),
                allocations_per_call: ov
                    .timing
                    .allocations_per_call
                    .zip(nv.timing.allocations_per_call)
                    .map(|(a, b)| (a.blocks(), b.blocks())),
            });
        }
    }
    let only = |a: &Report, b: &HashMap<String, &ReportCase>| {
        a.workloads.iter().map(key).filter(|k| !b.contains_key(k)).collect()
    };
    Ok(Comparison {
        schema_version: COMPARE_SCHEMA_VERSION,
        only_in_old: only(old, &new_cases),
        only_in_new: only(new, &old_cases),
        old: old_path,
        new: new_path,
        threshold,
        instruction_threshold: INSTRUCTION_THRESHOLD,
        method: METHOD.to_owned(),
        changes,
    })
}

fn change_word(c: Change) -> &'static str {
    match c {
        Change::Slower => "**slower**",
        Change::Faster => "faster",
        Change::Unchanged => "no significant change",
        Change::NotJudged => "-",
    }
}

/// compare.md.
pub fn markdown(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# ffiprof compare\n\n{} -> {}\n", c.old.display(), c.new.display());
    let _ = writeln!(
        out,
        "Threshold: {} on time ratios, {} on instructions.\n\n{}\n",
        pct(c.threshold, 1),
        pct(c.instruction_threshold, 1),
        c.method
    );
    let _ = writeln!(out, "| workload | input | variant | ns/call old -> new | ratio old -> new | ratio change | noise floor | time | instr/call old -> new | instructions | C side old -> new |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for ch in &c.changes {
        let ratios = match (ch.old_ratio, ch.new_ratio) {
            (Some(a), Some(b)) => format!("{:.3} -> {:.3}", a.estimate, b.estimate),
            _ => "baseline".to_owned(),
        };
        let instructions = match (ch.old_instructions, ch.new_instructions) {
            (Some(a), Some(b)) => format!("{a:.1} -> {b:.1}"),
            _ => "-".to_owned(),
        };
        let c_side =
            ch.c_side.map_or("-".to_owned(), |(a, b)| format!("{} -> {}", pct(a, 0), pct(b, 0)));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} -> {} | {ratios} | {} | {} | {} | {instructions} | {} | {c_side} |",
            ch.workload,
            ch.input,
            ch.variant,
            ns(ch.old_ns_per_call.estimate),
            ns(ch.new_ns_per_call.estimate),
            ch.ratio_change.map_or("-".to_owned(), signed_pct),
            pct(ch.noise_floor, 1),
            change_word(ch.time),
            change_word(ch.instructions),
        );
    }
    if !c.only_in_old.is_empty() || !c.only_in_new.is_empty() {
        let _ = writeln!(
            out,
            "\nOnly in the old report: {}. Only in the new report: {}.",
            if c.only_in_old.is_empty() { "none".to_owned() } else { c.only_in_old.join(", ") },
            if c.only_in_new.is_empty() { "none".to_owned() } else { c.only_in_new.join(", ") }
        );
    }
    let count = crate::fmt::per_call_count;
    let counted: Vec<String> = c
        .changes
        .iter()
        .filter_map(|ch| {
            let mut said = Vec::new();
            for (what, pair) in
                [("crossings", ch.crossings_per_call), ("allocations", ch.allocations_per_call)]
            {
                if let Some((a, b)) = pair.filter(|(a, b)| (a - b).abs() > 0.005) {
                    said.push(format!("{what} {} -> {}", count(a), count(b)));
                }
            }
            (!said.is_empty()).then(|| {
                format!("{}/{}/{}: {}", ch.workload, ch.input, ch.variant, said.join(", "))
            })
        })
        .collect();
    if !counted.is_empty() {
        let _ = writeln!(out, "\nPer call, counted: {}.", counted.join("; "));
    }
    let counted_work = "counted work (instructions, crossings or allocations per call)";
    for (metric, name) in [(Metric::Time, "time"), (Metric::Instructions, counted_work)] {
        let slower: Vec<String> = c
            .regressions(metric)
            .map(|r| format!("{}/{}/{}", r.workload, r.input, r.variant))
            .collect();
        let _ = writeln!(
            out,
            "\n{}",
            if slower.is_empty() {
                format!("No significant slowdown in {name}.")
            } else {
                format!("Significant slowdowns in {name}: {}.", slower.join(", "))
            }
        );
    }
    out
}

/// How `ffiprof compare` runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Changes below this many percent are never significant. Default: 5.
    pub threshold_percent: f64,
    /// Where compare.md, compare.json and the differential flamegraphs go. Default:
    /// `<NEW>/compare-vs-<OLD's name>`.
    pub out: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options { threshold_percent: 5.0, out: None }
    }
}

/// What `ffiprof compare` produced.
pub struct Outcome {
    /// The comparison.
    pub comparison: Comparison,
    /// compare.md's text.
    pub markdown: String,
    /// The directory written.
    pub out: PathBuf,
    /// Differential flamegraphs written.
    pub differentials: usize,
}

/// The run directory of a report path (the directory itself, or a report.json's parent).
fn run_dir(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.to_owned()
    } else {
        p.parent().map(Path::to_owned).unwrap_or_default()
    }
}

/// `ffiprof compare`: loads two runs (directories or report.json files), compares them,
/// and writes compare.md, compare.json and an OLD -> NEW differential flamegraph per
/// variant and sampler whose folded stacks both runs kept.
pub fn compare_runs(old: &Path, new: &Path, options: &Options) -> Result<Outcome> {
    let threshold = options.threshold_percent;
    if !(threshold.is_finite() && threshold >= 0.0) {
        return Err(Error::InvalidOption(format!(
            "--threshold {threshold} must be a percentage, 0 or more"
        )));
    }
    let (old_report, new_report) = (Report::load(old)?, Report::load(new)?);
    let comparison =
        compare(&old_report, old.to_owned(), &new_report, new.to_owned(), threshold / 100.0)?;
    let (old_dir, new_dir) = (run_dir(old), run_dir(new));
    let out = options.out.clone().unwrap_or_else(|| {
        let name = old_dir.file_name().map_or("old".into(), |n| n.to_string_lossy());
        new_dir.join(format!("compare-vs-{name}"))
    });
    std::fs::create_dir_all(&out)
        .map_err(|source| Error::Destination { path: out.clone(), source })?;
    let markdown = markdown(&comparison);
    write_atomic(&out.join("compare.md"), markdown.as_bytes())?;
    let json = serde_json::to_string_pretty(&comparison)
        .map_err(|source| Error::Serialize { what: "comparison", source })?;
    write_atomic(&out.join("compare.json"), json.as_bytes())?;
    let differentials = differentials(&old_report, &old_dir, &new_report, &new_dir, &out)?;
    Ok(Outcome { comparison, markdown, out, differentials })
}

/// Writes an OLD -> NEW differential flamegraph for every variant and sampler profiled in
/// both runs; returns how many.
fn differentials(
    old: &Report,
    old_dir: &Path,
    new: &Report,
    new_dir: &Path,
    out: &Path,
) -> Result<usize> {
    let mut written = 0;
    for case in &new.workloads {
        let Some(old_case) = old.workloads.iter().find(|c| c.header.key() == case.header.key())
        else {
            continue;
        };
        for v in &case.variants {
            let Some(ov) = old_case.variants.iter().find(|o| o.timing.name == v.timing.name) else {
                continue;
            };
            for p in &v.profiles {
                let Some(op) = ov.profiles.iter().find(|o| o.sampler == p.sampler) else {
                    continue;
                };
                let (Ok(before), Ok(after)) = (
                    std::fs::read_to_string(old_dir.join(&op.files.folded)),
                    std::fs::read_to_string(new_dir.join(&p.files.folded)),
                ) else {
                    continue;
                };
                let (w, i, name) = (&case.header.name, &case.header.input, &v.timing.name);
                let title = format!("{w} / {i} / {name} ({}): old -> new", p.sampler);
                let svg = flame::differential(&before, &after, &title)?;
                write_atomic(&out.join(format!("{w}.{i}.{name}.{}.svg", p.sampler)), &svg)?;
                written += 1;
            }
        }
    }
    Ok(written)
}
