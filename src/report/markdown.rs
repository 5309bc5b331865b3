//! `report.md`: the headline table and a verdict per workload, for a pull request or a
//! terminal.

use std::fmt::Write as _;

use super::{fmt_ns, Report, ReportVariant};
use crate::sample::SamplerKind;

/// C-side share of a variant's profile: perf's where it ran, else pprof's.
pub fn c_side(v: &ReportVariant) -> Option<(f64, SamplerKind)> {
    [SamplerKind::Perf, SamplerKind::Pprof].into_iter().find_map(|k| {
        v.profiles.iter().find(|p| p.sampler == k).map(|p| (p.summary.c_side_share, k))
    })
}

fn interval(i: &crate::measure::Interval) -> String {
    format!("{} [{}, {}]", fmt_ns(i.estimate), fmt_ns(i.lower), fmt_ns(i.upper))
}

/// Renders the report as Markdown.
pub fn render(report: &Report) -> String {
    let env = &report.environment;
    let m = &env.machine;
    let mut out = String::new();
    let _ = writeln!(out, "# ffiprof report\n");
    let _ = writeln!(
        out,
        "{} run of {} on {} ({} cores), {}, {}; {}, {}, glibc {}. Hardware counters: {}.\n",
        report.mode,
        m.date,
        m.cpu,
        m.cores,
        m.kernel,
        m.host,
        m.rustc,
        m.c_compiler,
        m.glibc,
        if env.hardware_counters.available { "yes" } else { "no" }
    );
    let _ = writeln!(
        out,
        "| workload | input | variant | ns/call [95% CI] | overhead/call | ratio | C side |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for case in &report.workloads {
        for v in &case.variants {
            let t = &v.timing;
            let overhead = t.overhead_ns_per_call.as_ref().map_or("baseline".to_owned(), interval);
            let ratio = t.ratio.as_ref().map_or("1".to_owned(), |r| format!("{:.2}", r.estimate));
            let c = c_side(v).map_or("-".to_owned(), |(s, _)| format!("{:.0}%", s * 100.0));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                case.name,
                case.input,
                t.name,
                interval(&t.ns_per_call),
                overhead,
                ratio,
                c
            );
        }
    }
    let _ = writeln!(
        out,
        "\nns/call: criterion's {} with its {:.0}% bootstrap interval; overhead = variant - \
         baseline; C side: share of samples whose innermost non-glue frame is C or the C \
         runtime (perf sampler where it ran, else pprof).\n",
        report.statistic,
        report.confidence_level * 100.0
    );
    let _ = writeln!(out, "## Verdicts\n");
    for case in &report.workloads {
        let _ = writeln!(
            out,
            "- **{} / {}** (drift {:.1}%): {}",
            case.name,
            case.input,
            case.drift * 100.0,
            case.verdict
        );
    }
    if let Some(cgo) = report.cgo.as_ref().filter(|c| c.status == "measured") {
        let _ = writeln!(out, "\n## cgo reference: the same C called from Go\n\n{}\n", cgo.message);
        let _ = writeln!(
            out,
            "| workload | input | variant | ns/call [range] | overhead/call | ratio |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for case in &cgo.workloads {
            for v in &case.variants {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} |",
                    case.name,
                    case.input,
                    v.name,
                    interval(&v.ns_per_call),
                    v.overhead_ns_per_call.as_ref().map_or("baseline".to_owned(), interval),
                    v.ratio.as_ref().map_or("1".to_owned(), |r| format!("{:.2}", r.estimate))
                );
            }
        }
        let _ = writeln!(out, "\n{}. {}.", cgo.statistic, cgo.verdict);
    }
    if !report.notes.is_empty() {
        let _ = writeln!(out, "\n## Notes\n");
        for note in &report.notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    out
}
