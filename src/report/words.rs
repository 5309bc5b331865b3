//! Words made from a report's figures: the verdicts and the cgo section's sentences, the
//! same in report.md, index.html and on the terminal.

use super::{Answers, CgoReference, CrossLanguage, Crossing, ReportCase, Verdict, VerdictKind};
use crate::fmt::{ns, pct, signed_pct};

fn instructions(v: &Verdict) -> String {
    v.instructions.map_or(String::new(), |(variant, base)| {
        format!(" ({:+.1} instructions per call)", variant - base)
    })
}

/// What the machine, not more work, is named for: where a variant with no call left, or
/// with fewer instructions than its baseline, is measurably slower.
const MACHINES_DOING: &str =
    "the machine's doing (memory, code placement, branch prediction, the CPU's front end)";

/// What the overhead of a per-call variant is: one plain crossing, or (where it crosses
/// more than once or allocates per item, as a real library's calls do) all it does beyond
/// the baseline.
fn extra(v: &Verdict) -> &'static str {
    let crosses_more = v.crossings.is_some_and(|(c, _)| c.total() > 1.0);
    let allocates = v.allocations.is_some_and(|(a, _)| a.blocks() > 0.0);
    if crosses_more || allocates {
        "what it does beyond that (its crossings, allocations and the library's own work)"
    } else {
        "the crossing"
    }
}

/// A measurable difference in words: what it costs or saves, and whose doing it is.
fn measured(v: &Verdict, name: &str, baseline: &str) -> String {
    let (o, r) = (&v.overhead_ns_per_call, &v.ratio);
    let inlined = v.crossing == Crossing::Inlined;
    let bounds = format!("[{} .. {}]", ns(o.lower), ns(o.upper));
    match v.kind {
        VerdictKind::Costs if inlined => format!(
            "{name} measured {} more per call than {baseline} {bounds}, {:.2}x{}: with no \
             call left, that is the inlined loop's own code and where it sits, not a crossing",
            ns(o.estimate),
            r.estimate,
            instructions(v),
        ),
        VerdictKind::Costs => format!(
            "{name} costs {} more per call than {baseline} {bounds}, {:.2}x{}; {} is {} of \
             each per-call item, so batching pays off wherever calls are many",
            ns(o.estimate),
            r.estimate,
            instructions(v),
            extra(v),
            pct(v.crossing_share, 0)
        ),
        VerdictKind::SlowerOnFewerInstructions => format!(
            "{name} executes fewer instructions per call than {baseline}{}, yet measured {} \
             more per call {bounds}, {:.2}x: not more work but {MACHINES_DOING}",
            instructions(v),
            ns(o.estimate),
            r.estimate,
        ),
        _ if inlined => format!(
            "{name} measured {} faster per call than {baseline} ({:.2}x){}: inlining removed \
             the call and what it kept the optimiser from",
            ns(-o.estimate),
            r.estimate,
            instructions(v)
        ),
        _ => format!(
            "{name} measured {} faster per call than {baseline} ({:.2}x){}: no cost to batch \
             away",
            ns(-o.estimate),
            r.estimate,
            instructions(v)
        ),
    }
}

/// What a variant does per item beside its time, where counted: its crossings and
/// allocations, against the baseline's (`; per item: 4 crossings (3 into the C runtime)
/// and 1 Rust allocation, against 0 and 0 for batched`).
fn per_item(v: &Verdict, baseline: &str) -> String {
    let count = crate::fmt::per_call_count;
    let crossings = |c: &crate::measure::paired::CrossingsPerCall| {
        let mut s =
            format!("{} crossing{}", count(c.total()), if c.total() == 1.0 { "" } else { "s" });
        if c.into_c_runtime > 0.0 {
            s.push_str(&format!(" ({} into the C runtime)", count(c.into_c_runtime)));
        }
        s
    };
    let allocations = |a: &crate::measure::paired::AllocationsPerCall| {
        let parts: Vec<String> = a
            .by_family()
            .iter()
            .map(|(f, b)| {
                let who = match *f {
                    "rust" => "Rust",
                    "c" => "C",
                    "c++" => "C++",
                    _ => "unknown",
                };
                format!("{} {who}", count(b.blocks))
            })
            .collect();
        if parts.is_empty() {
            "no allocation".to_owned()
        } else {
            format!(
                "{} allocation{}",
                parts.join(" and "),
                if a.blocks() == 1.0 { "" } else { "s" }
            )
        }
    };
    match (&v.crossings, &v.allocations) {
        (Some((c, bc)), Some((a, ba))) => format!(
            "; per item: {} and {}, against {} and {} for {baseline}",
            crossings(c),
            allocations(a),
            crossings(bc),
            allocations(ba)
        ),
        (Some((c, bc)), None) => {
            format!("; per item: {}, against {} for {baseline}", crossings(c), crossings(bc))
        }
        (None, Some((a, ba))) => {
            format!("; per item: {}, against {} for {baseline}", allocations(a), allocations(ba))
        }
        (None, None) => String::new(),
    }
}

/// One verdict in words, against the baseline `baseline`, with what the variant does per
/// item beside its time. A variant that makes no crossing (its call inlined) is never said
/// to pay for one.
pub(crate) fn verdict(v: &Verdict, baseline: &str) -> String {
    format!("{}{}", judged(v, baseline), per_item(v, baseline))
}

fn judged(v: &Verdict, baseline: &str) -> String {
    let r = &v.ratio;
    let name = if v.crossing == Crossing::Inlined {
        format!("{} (no crossing left: cross-language LTO inlined the call)", v.variant)
    } else {
        v.variant.clone()
    };
    match v.kind {
        VerdictKind::Costs | VerdictKind::SlowerOnFewerInstructions | VerdictKind::Faster => {
            measured(v, &name, baseline)
        }
        VerdictKind::NoMeasurableDifference => format!(
            "{name}: no measurable difference from {baseline} ({}, 95% interval {:.3} .. \
             {:.3}x, not clear of the ±{} floor)",
            signed_pct(r.estimate - 1.0),
            r.lower,
            r.upper,
            pct(v.floor, 1)
        ),
        VerdictKind::WithinPlacement => format!(
            "{name}: within placement: {} (95% interval {:.3} .. {:.3}x), yet code placement \
             alone moves this case by ±{}{}: no measurable difference",
            signed_pct(r.estimate - 1.0),
            r.lower,
            r.upper,
            pct(v.placement_floor.max(v.floor), 1),
            v.placement.map_or(String::new(), |p| format!(
                " (this variant {:.3} .. {:.3}x across placement pairs)",
                p.lowest, p.highest
            ))
        ),
        VerdictKind::SameWork => format!(
            "{name} and {baseline} execute the same instructions per call{}, yet {} measured \
             {}: the same work, so memory, placement or noise, not a cost of the call",
            v.instructions.map_or(String::new(), |(a, _)| format!(" ({a:.0})")),
            v.variant,
            signed_pct(r.estimate - 1.0)
        ),
        VerdictKind::TooNoisy => format!(
            "{name}: not judged: machine too noisy for this case (the control, identical work, \
             measured {})",
            v.control_ratio.map_or("off".to_owned(), |c| format!("{:.3}x", c.estimate))
        ),
    }
}

/// The case's answers in one sentence of advice: what batching saves, what inlining
/// across the boundary saves (or why the call stays), and the same work in Rust.
pub(crate) fn advice(a: &Answers) -> String {
    let batching = match (a.per_call_verdict, &a.batching_saves_ns) {
        (VerdictKind::Costs, Some(o)) => format!(
            "batching saves {} per call [{} .. {}] against {}",
            ns(o.estimate),
            ns(o.lower),
            ns(o.upper),
            a.per_call
        ),
        (VerdictKind::Faster, _) => format!("{} is faster than the batched loop", a.per_call),
        (VerdictKind::SlowerOnFewerInstructions, _) => format!(
            "{} is {} per call slower than the batched loop on fewer instructions: not more \
             work but {MACHINES_DOING}",
            a.per_call,
            ns(a.per_call_ns.estimate - a.batched_ns.estimate)
        ),
        (VerdictKind::TooNoisy, _) => "the machine was too noisy to judge batching".to_owned(),
        (VerdictKind::WithinPlacement, _) => {
            "batching saves nothing measurable here (within what code placement does)".to_owned()
        }
        _ => "batching saves nothing measurable here".to_owned(),
    };
    let inlining = match (&a.xlto_ns, a.xlto_inlined, &a.inlining_saves_ns, &a.xlto_unavailable) {
        (Some(_), Some(true), Some(s), _) => format!(
            "; inlining across the boundary (cross-language LTO, the call inlined) saves {} \
             per call [{} .. {}]",
            ns(s.estimate),
            ns(s.lower),
            ns(s.upper)
        ),
        (Some(_), Some(true), None, _) => match &a.xlto_slower_ns {
            Some(s) => format!(
                "; cross-language LTO inlined the call, yet its loop measured {} more per call \
                 than the per-call loop [{} .. {}]: no call is left to cost it, so that is \
                 {MACHINES_DOING}, not a crossing",
                ns(s.estimate),
                ns(s.lower),
                ns(s.upper),
            ),
            None => "; cross-language LTO inlined the call, to no measurable gain".to_owned(),
        },
        (Some(x), Some(false), _, _) => {
            format!("; cross-language LTO leaves the call in place ({} per call)", ns(x.estimate))
        }
        (Some(x), None, _, _) => format!("; with cross-language LTO {} per call", ns(x.estimate)),
        (None, _, _, Some(_)) => "; cross-language LTO not measured on this machine".to_owned(),
        _ => String::new(),
    };
    let reference = a.reference.as_ref().map_or(String::new(), |(name, t)| {
        format!(" ({name}, the same work in Rust: {} per call)", ns(t.estimate))
    });
    format!("{batching}{inlining}{reference}")
}

/// The header of the answers table, report.md's and index.html's.
pub(crate) const ANSWERS_HEADER: [&str; 7] = [
    "case",
    "batched",
    "per-call",
    "per-call, cross-language LTO",
    "Rust reference",
    "placement floor",
    "advice",
];

/// One row of the answers table per case that has answers.
pub(crate) fn answers_rows(cases: &[ReportCase]) -> Vec<[String; 7]> {
    let time = |i: &crate::measure::Interval| ns(i.estimate);
    cases
        .iter()
        .filter_map(|case| {
            let a = case.answers.as_ref()?;
            let xlto = match (&a.xlto_ns, a.xlto_inlined, &a.xlto_unavailable) {
                (Some(t), Some(true), _) => format!("{} (inlined)", time(t)),
                (Some(t), Some(false), _) => format!("{} (still a call)", time(t)),
                (Some(t), None, _) => time(t),
                (None, _, Some(_)) => "not measured (see notes)".to_owned(),
                (None, _, None) => "-".to_owned(),
            };
            Some([
                case.header.key(),
                time(&a.batched_ns),
                format!("{} ({})", time(&a.per_call_ns), a.per_call),
                xlto,
                a.reference
                    .as_ref()
                    .map_or("-".to_owned(), |(name, t)| format!("{} ({name})", time(t))),
                if a.placement_floor > 0.0 {
                    format!("±{}", pct(a.placement_floor, 1))
                } else {
                    "-".to_owned()
                },
                advice(a),
            ])
        })
        .collect()
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
