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
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{fmt_ns, Report, ReportCase, ReportVariant};
use crate::measure::Interval;
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

/// Why two reports cannot be compared.
#[derive(Debug, thiserror::Error)]
#[error("{old} and {new} have no workload and input in common")]
pub struct NothingInCommon {
    /// The older report.
    pub old: PathBuf,
    /// The newer report.
    pub new: PathBuf,
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
    super::markdown::c_side(v).map(|(s, _)| s)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Compares `new` against `old`.
pub fn compare(
    old: &Report,
    old_path: PathBuf,
    new: &Report,
    new_path: PathBuf,
    threshold: f64,
) -> Result<Comparison, NothingInCommon> {
    let old_cases: HashMap<String, &ReportCase> =
        old.workloads.iter().map(|c| (c.key(), c)).collect();
    let new_cases: HashMap<String, &ReportCase> =
        new.workloads.iter().map(|c| (c.key(), c)).collect();
    let shared: Vec<(&ReportCase, &ReportCase)> =
        old.workloads.iter().filter_map(|o| new_cases.get(&o.key()).map(|n| (o, *n))).collect();
    if shared.is_empty() {
        return Err(NothingInCommon { old: old_path, new: new_path });
    }
    let machine_change = median(
        shared
            .iter()
            .filter_map(|(o, n)| Some((o.baseline_variant()?, n.baseline_variant()?)))
            .map(|(o, n)| n.timing.ns_per_call.estimate / o.timing.ns_per_call.estimate - 1.0)
            .collect(),
    );
    let normalized = |old_ns: f64, new_ns: f64| (new_ns / old_ns) / (1.0 + machine_change) - 1.0;
    let mut changes = Vec::new();
    for (o, n) in &shared {
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
                    let floor = threshold + o.drift + n.drift + case_instability;
                    let ratio_change = nr.estimate / or.estimate - 1.0;
                    let apart = !overlap(or, nr) && !overlap(&ot.ns_per_call, &nt.ns_per_call);
                    let clear = judged.abs() > floor && ratio_change.abs() > floor;
                    (floor, apart && clear && judged.signum() == ratio_change.signum())
                }
                _ => {
                    let floor = threshold + o.drift + n.drift;
                    (floor, !overlap(&ot.ns_per_call, &nt.ns_per_call) && judged.abs() > floor)
                }
            };
            changes.push(VariantChange {
                workload: o.name.clone(),
                input: o.input.clone(),
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
        a.workloads.iter().map(ReportCase::key).filter(|k| !b.contains_key(k)).collect()
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
        "The machine's overall change (median of the baselines): {:+.1}%. Threshold: {:.1}%.\n\n{}\n",
        c.machine_change * 100.0,
        c.threshold * 100.0,
        c.method
    );
    let _ = writeln!(out, "| workload | input | variant | ns/call old -> new | overhead old -> new | judged change | noise floor | verdict | C side old -> new |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for ch in &c.changes {
        let overhead = match (ch.old_overhead_ns, ch.new_overhead_ns) {
            (Some(a), Some(b)) => format!("{} -> {}", fmt_ns(a), fmt_ns(b)),
            _ => "baseline".to_owned(),
        };
        let verdict = match (ch.significant, ch.regression) {
            (true, true) => "**slower**",
            (true, false) => "faster",
            _ => "no significant change",
        };
        let c_side = ch
            .c_side
            .map_or("-".to_owned(), |(a, b)| format!("{:.0}% -> {:.0}%", a * 100.0, b * 100.0));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} -> {} | {} | {:+.1}% | {:.1}% | {} | {} |",
            ch.workload,
            ch.input,
            ch.variant,
            fmt_ns(ch.old_ns_per_call.estimate),
            fmt_ns(ch.new_ns_per_call.estimate),
            overhead,
            ch.judged_change * 100.0,
            ch.noise_floor * 100.0,
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
