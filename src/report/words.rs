//! Words made from a report's figures: the verdicts and the cgo section's sentences, the
//! same in report.md, index.html and on the terminal.

use super::{CgoReference, CrossLanguage, ReportCase, Verdict, VerdictKind};
use crate::fmt::{ns, pct, signed_pct};

fn instructions(v: &Verdict) -> String {
    v.instructions.map_or(String::new(), |(variant, base)| {
        format!(" ({:+.1} instructions per call)", variant - base)
    })
}

/// One verdict in words, against the baseline `baseline`.
pub(crate) fn verdict(v: &Verdict, baseline: &str) -> String {
    let (o, r) = (&v.overhead_ns_per_call, &v.ratio);
    match v.kind {
        VerdictKind::Costs => format!(
            "{} costs {} more per call than {baseline} [{} .. {}], {:.2}x{}; the crossing is {} \
             of each per-call item, so batching pays off wherever calls are many",
            v.variant,
            ns(o.estimate),
            ns(o.lower),
            ns(o.upper),
            r.estimate,
            instructions(v),
            pct(v.crossing_share, 0)
        ),
        VerdictKind::Faster => format!(
            "{} measured {} faster per call than {baseline} ({:.2}x){}: no cost to batch away",
            v.variant,
            ns(-o.estimate),
            r.estimate,
            instructions(v)
        ),
        VerdictKind::NoMeasurableDifference => format!(
            "{}: no measurable difference from {baseline} ({}, 95% interval {:.3} .. {:.3}x, \
             not clear of the ±{} floor)",
            v.variant,
            signed_pct(r.estimate - 1.0),
            r.lower,
            r.upper,
            pct(v.floor, 1)
        ),
        VerdictKind::SameWork => format!(
            "{} and {baseline} execute the same instructions per call{}, yet {} measured {}: \
             the same work, so memory, placement or noise, not a cost of the call",
            v.variant,
            v.instructions.map_or(String::new(), |(a, _)| format!(" ({a:.0})")),
            v.variant,
            signed_pct(r.estimate - 1.0)
        ),
        VerdictKind::TooNoisy => format!(
            "{}: not judged: machine too noisy for this case (the control, identical work, \
             measured {})",
            v.variant,
            v.control_ratio.map_or("off".to_owned(), |c| format!("{:.3}x", c.estimate))
        ),
    }
}

/// Every verdict of a case, in one line.
pub fn case_verdict(case: &ReportCase) -> String {
    let parts: Vec<String> =
        case.verdict.iter().map(|v| verdict(v, &case.header.baseline)).collect();
    parts.join("; ")
}

/// Per-call overhead from Go against Rust's, in one line.
pub(crate) fn cross_language(pairs: &[CrossLanguage]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .map(|p| {
            let (go, rust) = (&p.go_overhead_ns_per_call, &p.rust_overhead_ns_per_call);
            format!(
                "{}/{}: crossing once per item costs {} per call more than batched from Go \
                 ({}, range {} .. {}) and {} from Rust ({}, 95% CI {} .. {})",
                p.workload,
                p.input,
                ns(go.estimate),
                p.go_variant,
                ns(go.lower),
                ns(go.upper),
                ns(rust.estimate),
                p.rust_variant,
                ns(rust.lower),
                ns(rust.upper),
            )
        })
        .collect();
    parts.join("; ")
}

/// How Go's figures were made.
pub(crate) fn cgo_statistic(cgo: &CgoReference) -> String {
    format!("{} of {} Go benchmark runs; range = fastest and slowest run", cgo.statistic, cgo.runs)
}

/// The cgo reference's status line, with what Go's own profiler saw of per-call pow.
pub(crate) fn cgo_summary(cgo: &CgoReference) -> String {
    match cgo.per_call_profile() {
        Some(p) => format!(
            "{}. Go's profiler put {} of per-call pow's samples in C frames and {} on cgo's \
             call machinery.",
            cgo.message,
            pct(p.summary.c_side_share, 0),
            pct(p.glue_share(), 0)
        ),
        None => cgo.message.clone(),
    }
}
