//! `report.md`: the headline table and a verdict per workload, for a pull request or a
//! terminal.

use std::fmt::Write as _;

use super::{words, CgoReference, CgoStatus, Report, ReportVariant};
use crate::fmt::{ns, pct};
use crate::measure::results::case_note;
use crate::measure::Interval;

fn interval(i: &Interval) -> String {
    format!("{} [{}, {}]", ns(i.estimate), ns(i.lower), ns(i.upper))
}

fn ratio(r: Option<&Interval>) -> String {
    r.map_or("1".to_owned(), |r| format!("{:.2}", r.estimate))
}

fn ratio_interval(r: Option<&Interval>) -> String {
    r.map_or("1".to_owned(), |r| format!("{:.3} [{:.3}, {:.3}]", r.estimate, r.lower, r.upper))
}

/// Instructions per call, or `-` where not counted.
pub(crate) fn instructions(v: &ReportVariant) -> String {
    v.timing.instructions.map_or("-".to_owned(), |i| format!("{:.1}", i.per_call))
}

/// Renders the report as Markdown.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    header(&mut out, report);
    headline(&mut out, report);
    let _ = writeln!(out, "## Verdicts\n");
    for case in &report.workloads {
        let h = &case.header;
        let _ = writeln!(
            out,
            "- **{} / {}** ({}): {}",
            h.name,
            h.input,
            case_note(h),
            words::case_verdict(case)
        );
    }
    answers(&mut out, report);
    if let Some(cgo) = report.cgo.as_ref().filter(|c| c.status == CgoStatus::Measured) {
        cgo_section(&mut out, cgo);
    }
    if !report.notes.is_empty() {
        let _ = writeln!(out, "\n## Notes\n");
        for note in &report.notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    out
}

fn header(out: &mut String, report: &Report) {
    let env = &report.environment;
    let m = &env.machine;
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
}

fn headline(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "| workload | input | variant | ns/call [95% CI] | overhead/call | ratio [95% CI] | instr/call | crossings/call | allocs/call | C side |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for case in &report.workloads {
        for v in &case.variants {
            let t = &v.timing;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                case.header.name,
                case.header.input,
                t.name,
                interval(&t.ns_per_call),
                t.overhead_ns_per_call.as_ref().map_or("baseline".to_owned(), interval),
                ratio_interval(t.ratio.as_ref()),
                instructions(v),
                t.crossings_per_call.map_or("-".to_owned(), |c| c.cell()),
                t.allocations_per_call.map_or("-".to_owned(), |a| a.cell()),
                v.c_side().map_or("-".to_owned(), |(s, _)| pct(s, 0))
            );
        }
    }
    let _ = writeln!(
        out,
        "\nns/call: {} over paired rounds (every variant, and a control instance of the \
         baseline, timed once per round in shuffled order on one shared input), with its {} \
         distribution-free interval; overhead and ratio per round against the same round's \
         baseline; the control's spread is the case's noise floor. instr/call: {}. \
         crossings/call: calls from Rust into C or the C runtime (and back into Rust, `back`) \
         per call, under callgrind; allocs/call: blocks allocated per call by the allocator \
         that served them, with the heap interposer; both counted in runs apart from the \
         timed ones, at two run lengths. C side: share of samples whose innermost non-glue frame is C or the C runtime (perf sampler \
         where it ran, else pprof).\n",
        report.statistic,
        pct(report.confidence_level, 0),
        report.environment.instruction_counts.detail
    );
}

fn answers(out: &mut String, report: &Report) {
    let rows = words::answers_rows(&report.workloads);
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n## Batched, per-call, or inlined across the boundary\n");
    let _ = writeln!(out, "| {} |", words::ANSWERS_HEADER.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(words::ANSWERS_HEADER.len()));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    let _ = writeln!(
        out,
        "\nTime per call, medians over paired rounds. Placement floor: how far the A/A \
         control's ratio moved between code placements of the same loop; a difference \
         smaller than it is not called measurable."
    );
}

fn cgo_section(out: &mut String, cgo: &CgoReference) {
    let _ = writeln!(
        out,
        "\n## cgo reference: the same C called from Go\n\n{}\n",
        words::cgo_summary(cgo)
    );
    let _ =
        writeln!(out, "| workload | input | variant | ns/call [range] | overhead/call | ratio |");
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
                ratio(v.ratio.as_ref())
            );
        }
    }
    let _ =
        writeln!(out, "\n{}. {}.", words::cgo_statistic(cgo), words::cross_language(&cgo.verdict));
}
