//! Comparing two reports, in a way that survives a shared machine's drift.
//!
//! Criterion's intervals describe the noise within one run; between runs the whole
//! machine speeds up or slows down (20% on the fastest paths has been seen here), and a
//! fast path can move by 30-50% on its own. So:
//! - every change is taken relative to the median change of all baselines the two
//!   reports share (the machine's overall change in speed);
//! - a change is significant only when the two intervals do not overlap *and* it exceeds
//!   the threshold plus the drift each run measured for that case (the baseline measured
//!   twice, before and after its variants);
//! - a per-call or reference variant must also move its ratio to its own run's baseline
//!   past the floor, in the same direction, and its floor adds how far the case's
//!   baseline moved against the machine between the runs (noise the variant shares).
//!
//! Two runs of the same build on this VM once showed a 6 ns per-call path 28% slower
//! and its ratio to baseline 50% higher while its baseline moved 15% the other way;
//! judging on the ratio alone called that a regression.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Report, ReportCase, ReportVariant};
use crate::error::{Error, Result};
use crate::flame;
use crate::fmt::{ns, pct, signed_pct};
use crate::measure::stats::median;
use crate::measure::Interval;
use crate::output::write_atomic;
use crate::workload::Role;

/// Version of `compare.json`.
pub const COMPARE_SCHEMA_VERSION: u32 = 1;

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
    /// ns per call before.
    pub old_ns_per_call: Interval,
    /// ns per call after.
    pub new_ns_per_call: Interval,
    /// new / old - 1 of ns per call, as measured (includes the machine's drift).
    pub ns_change: f64,
    /// Overhead per call before (not for baselines).
    pub old_overhead_ns: Option<f64>,
    /// Overhead per call after (not for baselines).
    pub new_overhead_ns: Option<f64>,
    /// The change the verdict is made on: ratio to own baseline (variants) or change
    /// against the median baseline change (baselines).
    pub judged_change: f64,
    /// Threshold plus both runs' drift for this case.
    pub noise_floor: f64,
    /// Intervals apart and beyond the noise floor.
    pub significant: bool,
    /// Significant and slower.
    pub regression: bool,
    /// C-side share before and after (perf sampler where present).
    pub c_side: Option<(f64, f64)>,
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
    /// Relative change below which nothing is significant.
    pub threshold: f64,
    /// Median change of the shared baselines (new / old - 1): the machine's drift.
    pub machine_change: f64,
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
    /// Significant slowdowns.
    pub fn regressions(&self) -> impl Iterator<Item = &VariantChange> {
        self.changes.iter().filter(|c| c.regression)
    }
}

/// The method, as compare.md states it.
pub const METHOD: &str = "Every change is judged against the machine's overall change \
(the median change of all shared baselines), which cancels a drift of the whole machine. \
A baseline's change is significant when the two intervals do not overlap and it exceeds \
the threshold plus the drift each run measured for the case (its baseline measured before \
and after its variants). A per-call or reference variant must in addition change its \
ratio to its own run's baseline by as much, in the same direction, and its floor also \
holds how far the case's baseline moved against the machine between the runs.";

fn overlap(a: &Interval, b: &Interval) -> bool {
    a.lower <= b.upper && b.lower <= a.upper
}

fn c_side(v: &ReportVariant) -> Option<f64> {
    v.c_side().map(|(s, _)| s)
}

fn key(case: &ReportCase) -> String {
    case.header.key()
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
    let baseline_changes: Vec<f64> = shared
        .iter()
        .filter_map(|(o, n)| Some((o.baseline_variant()?, n.baseline_variant()?)))
        .map(|(o, n)| n.timing.ns_per_call.estimate / o.timing.ns_per_call.estimate - 1.0)
        .collect();
    let machine_change = median(&baseline_changes).unwrap_or(0.0);
    let normalized = |old_ns: f64, new_ns: f64| (new_ns / old_ns) / (1.0 + machine_change) - 1.0;
    let mut changes = Vec::new();
    for (o, n) in &shared {
        let (od, nd) = (o.header.drift, n.header.drift);
        // How far this case's baseline (the same C loop in both runs) moved against the
        // machine: noise of this case between runs, which the per-call variants inherit.
        let case_instability = match (o.baseline_variant(), n.baseline_variant()) {
            (Some(ob), Some(nb)) => {
                normalized(ob.timing.ns_per_call.estimate, nb.timing.ns_per_call.estimate).abs()
            }
            _ => 0.0,
        };
        for ov in &o.variants {
            let Some(nv) = n.variants.iter().find(|v| v.timing.name == ov.timing.name) else {
                continue;
            };
            let (ot, nt) = (&ov.timing, &nv.timing);
            let ns_change = nt.ns_per_call.estimate / ot.ns_per_call.estimate - 1.0;
            let judged = normalized(ot.ns_per_call.estimate, nt.ns_per_call.estimate);
            let (floor, significant) = match (&ot.ratio, &nt.ratio) {
                (Some(or), Some(nr)) => {
                    // A variant: both its own change and its ratio to its run's baseline
                    // must clear the floor, in the same direction.
                    let floor = threshold + od + nd + case_instability;
                    let ratio_change = nr.estimate / or.estimate - 1.0;
                    let apart = !overlap(or, nr) && !overlap(&ot.ns_per_call, &nt.ns_per_call);
                    let clear = judged.abs() > floor && ratio_change.abs() > floor;
                    (floor, apart && clear && judged.signum() == ratio_change.signum())
                }
                _ => {
                    let floor = threshold + od + nd;
                    (floor, !overlap(&ot.ns_per_call, &nt.ns_per_call) && judged.abs() > floor)
                }
            };
            changes.push(VariantChange {
                workload: o.header.name.clone(),
                input: o.header.input.clone(),
                variant: ot.name.clone(),
                role: ot.role,
                old_ns_per_call: ot.ns_per_call,
                new_ns_per_call: nt.ns_per_call,
                ns_change,
                old_overhead_ns: ot.overhead_ns_per_call.map(|i| i.estimate),
                new_overhead_ns: nt.overhead_ns_per_call.map(|i| i.estimate),
                judged_change: judged,
                noise_floor: floor,
                significant,
                regression: significant && judged > 0.0,
                c_side: c_side(ov).zip(c_side(nv)),
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
        machine_change,
        method: METHOD.to_owned(),
        changes,
    })
}

/// compare.md.
pub fn markdown(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# ffiprof compare\n\n{} -> {}\n", c.old.display(), c.new.display());
    let _ = writeln!(
        out,
        "The machine's overall change (median of the baselines): {}. Threshold: {}.\n\n{}\n",
        signed_pct(c.machine_change),
        pct(c.threshold, 1),
        c.method
    );
    let _ = writeln!(out, "| workload | input | variant | ns/call old -> new | overhead old -> new | judged change | noise floor | verdict | C side old -> new |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for ch in &c.changes {
        let overhead = match (ch.old_overhead_ns, ch.new_overhead_ns) {
            (Some(a), Some(b)) => format!("{} -> {}", ns(a), ns(b)),
            _ => "baseline".to_owned(),
        };
        let verdict = match (ch.significant, ch.regression) {
            (true, true) => "**slower**",
            (true, false) => "faster",
            _ => "no significant change",
        };
        let c_side =
            ch.c_side.map_or("-".to_owned(), |(a, b)| format!("{} -> {}", pct(a, 0), pct(b, 0)));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} -> {} | {} | {} | {} | {} | {} |",
            ch.workload,
            ch.input,
            ch.variant,
            ns(ch.old_ns_per_call.estimate),
            ns(ch.new_ns_per_call.estimate),
            overhead,
            signed_pct(ch.judged_change),
            pct(ch.noise_floor, 1),
            verdict,
            c_side
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
    let regressions: Vec<String> =
        c.regressions().map(|r| format!("{}/{}/{}", r.workload, r.input, r.variant)).collect();
    let _ = writeln!(
        out,
        "\n{}",
        if regressions.is_empty() {
            "No significant slowdown.".to_owned()
        } else {
            format!("Significant slowdowns: {}.", regressions.join(", "))
        }
    );
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
