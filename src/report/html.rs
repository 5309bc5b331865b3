//! `index.html`: one self-contained page (it opens from disk, with no network): the
//! headline table, per workload a bar chart of ns per call and bars of where samples
//! fall by language (both drawn by the plotters charting library as inline SVG), the
//! verdict, and the flamegraphs, which are files of the run linked by relative paths.

use std::fmt::Write as _;
use std::path::PathBuf;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::markdown::instructions;
use super::{words, CgoReference, CgoStatus, Report, ReportCase};
use crate::flame::language_color;
use crate::fmt::{ns, pct};
use crate::measure::results::case_note;
use crate::stacks::Language;

/// Escapes text for HTML.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn rgb(hex: &str) -> RGBColor {
    let c = inferno::flamegraph::color::parse_hex_color(hex).expect("valid colour constants");
    RGBColor(c.r, c.g, c.b)
}

type Plot = Result<(), Box<dyn std::error::Error>>;

fn time_chart(case: &ReportCase, svg: &mut String) -> Plot {
    let names: Vec<String> = case.variants.iter().map(|v| v.timing.name.clone()).collect();
    let n = names.len();
    let max = case.variants.iter().map(|v| v.timing.ns_per_call.upper).fold(0.0, f64::max) * 1.15;
    let root = SVGBackend::with_string(svg, (720, 60 + 34 * n as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(10)
        .caption(
            format!("{} / {}: ns per call (median, 95% CI)", case.header.name, case.header.input),
            ("sans-serif", 15),
        )
        .x_label_area_size(28)
        .y_label_area_size(130)
        .build_cartesian_2d(0.0..max.max(1e-9), (0..n).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("ns per call")
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 13))
        .draw()?;
    chart.draw_series(case.variants.iter().enumerate().map(|(i, v)| {
        let color =
            if v.timing.name == case.header.baseline { rgb("#5b8fd9") } else { rgb("#e8955a") };
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (v.timing.ns_per_call.estimate, SegmentValue::Exact(i + 1)),
            ],
            color.filled(),
        );
        bar.set_margin(6, 6, 0, 0);
        bar
    }))?;
    chart.draw_series(case.variants.iter().enumerate().map(|(i, v)| {
        let t = &v.timing.ns_per_call;
        ErrorBar::new_horizontal(
            SegmentValue::CenterOf(i),
            t.lower,
            t.estimate,
            t.upper,
            BLACK.filled(),
            8,
        )
    }))?;
    root.present()?;
    Ok(())
}

fn language_chart(case: &ReportCase, svg: &mut String) -> Plot {
    let rows: Vec<(String, &crate::stacks::BoundarySummary)> = case
        .variants
        .iter()
        .flat_map(|v| {
            v.profiles
                .iter()
                .map(move |p| (format!("{} ({})", v.timing.name, p.sampler), &p.summary))
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let root = SVGBackend::with_string(svg, (720, 80 + 26 * n as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(10)
        .caption(
            format!(
                "{} / {}: leaf frame language, share of samples",
                case.header.name, case.header.input
            ),
            ("sans-serif", 15),
        )
        .x_label_area_size(28)
        .y_label_area_size(170)
        .build_cartesian_2d(0.0..100.0, (0..n).into_segmented())?;
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("% of samples")
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 13))
        .draw()?;
    for language in Language::ALL {
        let color = rgb(language_color(language));
        let series = rows.iter().enumerate().map(|(i, (_, s))| {
            let before: f64 = Language::ALL
                .iter()
                .take_while(|l| **l != language)
                .map(|l| s.leaf_share.get(l).copied().unwrap_or(0.0))
                .sum();
            let share = s.leaf_share.get(&language).copied().unwrap_or(0.0);
            let mut bar = Rectangle::new(
                [
                    (before * 100.0, SegmentValue::Exact(i)),
                    ((before + share) * 100.0, SegmentValue::Exact(i + 1)),
                ],
                color.filled(),
            );
            bar.set_margin(4, 4, 0, 0);
            bar
        });
        chart
            .draw_series(series)?
            .label(language.name())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Every file the page links to, relative to the run directory.
pub fn linked_files(report: &Report) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for p in report.cgo.iter().flat_map(|c| &c.profiles) {
        files.push(p.flamegraph.clone());
        files.push(p.original.clone());
    }
    for case in &report.workloads {
        for v in &case.variants {
            for p in &v.profiles {
                files.push(p.files.flamegraph.clone());
                files.push(p.files.pprof.clone());
                files.extend(p.files.differential.clone());
            }
        }
    }
    files
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}\
table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px}\
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f2f2f2}\
section{margin-top:2em;border-top:1px solid #ddd}img.flame{width:100%;border:1px solid #ddd}\
.verdict{background:#f7f7ef;padding:.5em 1em}small{color:#666}";

/// Renders the page.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    header(&mut out, report);
    headline(&mut out, report);
    answers(&mut out, report);
    for case in &report.workloads {
        case_section(&mut out, case);
    }
    if let Some(cgo) = report.cgo.as_ref().filter(|c| c.status == CgoStatus::Measured) {
        cgo_section(&mut out, cgo);
    }
    if !report.notes.is_empty() {
        out.push_str("<section><h2>Notes</h2><ul>");
        for n in &report.notes {
            let _ = write!(out, "<li>{}</li>", escape(n));
        }
        out.push_str("</ul></section>");
    }
    out.push_str("</body></html>\n");
    out
}

fn header(out: &mut String, report: &Report) {
    let m = &report.environment.machine;
    let _ = write!(
        out,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>ffiprof report {}</title><style>{STYLE}</style></head><body>",
        escape(&m.date)
    );
    let _ = write!(
        out,
        "<h1>ffiprof: what crossing the Rust/C boundary costs</h1><p>{} run, {}, on {} ({} cores), kernel {}, {}, {}, glibc {}. Hardware counters: {}.</p>",
        report.mode,
        escape(&m.date),
        escape(&m.cpu),
        m.cores,
        escape(&m.kernel),
        escape(&m.rustc),
        escape(&m.c_compiler),
        escape(&m.glibc),
        escape(&report.environment.hardware_counters.detail)
    );
}

fn ratio(r: Option<&crate::measure::Interval>) -> String {
    r.map_or("1".into(), |r| format!("{:.2}", r.estimate))
}

fn headline(out: &mut String, report: &Report) {
    out.push_str("<table><tr><th>workload</th><th>input</th><th>variant</th><th>ns/call [95% CI]</th><th>overhead/call</th><th>ratio [95% CI]</th><th>instr/call</th><th>crossings/call</th><th>allocs/call</th><th>C side</th></tr>");
    for case in &report.workloads {
        let (name, input) = (escape(&case.header.name), escape(&case.header.input));
        for v in &case.variants {
            let t = &v.timing;
            let i = &t.ns_per_call;
            let _ = write!(
                out,
                "<tr><td><a href=\"#{name}-{input}\">{name}</a></td><td>{input}</td><td>{}</td><td class=n>{} [{}, {}]</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td><td class=n>{}</td></tr>",
                escape(&t.name),
                ns(i.estimate),
                ns(i.lower),
                ns(i.upper),
                t.overhead_ns_per_call.as_ref().map_or("baseline".into(), |o| ns(o.estimate)),
                t.ratio.as_ref().map_or("1".into(), |r| format!(
                    "{:.3} [{:.3}, {:.3}]",
                    r.estimate, r.lower, r.upper
                )),
                instructions(v),
                t.crossings_per_call.map_or("-".to_owned(), |c| c.cell()),
                escape(&t.allocations_per_call.map_or("-".to_owned(), |a| a.cell())),
                v.c_side().map_or("-".into(), |(s, _)| pct(s, 0))
            );
        }
    }
    out.push_str("</table>");
}

fn answers(out: &mut String, report: &Report) {
    let rows = words::answers_rows(&report.workloads);
    if rows.is_empty() {
        return;
    }
    out.push_str("<h2>Batched, per-call, or inlined across the boundary</h2><table><tr>");
    for h in words::ANSWERS_HEADER {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let class = if (1..6).contains(&i) { " class=n" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str(
        "</table><p><small>Time per call, medians over paired rounds. Placement floor: how \
         far the A/A control's ratio moved between code placements of the same loop; a \
         difference smaller than it is not called measurable.</small></p>",
    );
}

fn chart(out: &mut String, draw: impl FnOnce(&mut String) -> Plot) {
    let mut svg = String::new();
    match draw(&mut svg) {
        Ok(()) => out.push_str(&svg),
        Err(e) => {
            let _ = write!(out, "<p>chart failed: {}</p>", escape(&e.to_string()));
        }
    }
}

fn case_section(out: &mut String, case: &ReportCase) {
    let h = &case.header;
    let (name, input) = (escape(&h.name), escape(&h.input));
    let _ = write!(
        out,
        "<section id=\"{name}-{input}\"><h2>{name} / {input}</h2><p>{}</p><p class=verdict>{}</p><p><small>{}</small></p>",
        escape(&case.about),
        escape(&words::case_verdict(case)),
        escape(&case_note(h))
    );
    chart(out, |svg| time_chart(case, svg));
    chart(out, |svg| language_chart(case, svg));
    for v in &case.variants {
        let variant = escape(&v.timing.name);
        for p in &v.profiles {
            let flame = escape(&p.files.flamegraph.to_string_lossy());
            let _ = write!(
                out,
                "<h3>{variant} — {} ({}, {} samples, C side {})</h3><a href=\"{flame}\"><img class=flame src=\"{flame}\" alt=\"flamegraph of {variant} under {}\"></a><p><small><a href=\"{}\">pprof profile</a>",
                p.sampler,
                escape(p.event.name()),
                p.summary.samples,
                pct(p.summary.c_side_share, 1),
                p.sampler,
                escape(&p.files.pprof.to_string_lossy())
            );
            if let Some(d) = &p.files.differential {
                let _ = write!(
                    out,
                    " · <a href=\"{}\">differential flamegraph against {}</a>",
                    escape(&d.to_string_lossy()),
                    escape(&h.baseline)
                );
            }
            out.push_str("</small></p>");
        }
    }
    out.push_str("</section>");
}

fn cgo_section(out: &mut String, cgo: &CgoReference) {
    let _ = write!(
        out,
        "<section id=cgo><h2>cgo reference: the same C called from Go</h2><p>{}</p>",
        escape(&words::cgo_summary(cgo))
    );
    out.push_str("<table><tr><th>workload</th><th>input</th><th>variant</th><th>ns/call [range]</th><th>overhead/call</th><th>ratio</th></tr>");
    for case in &cgo.workloads {
        for v in &case.variants {
            let i = &v.ns_per_call;
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=n>{} [{}, {}]</td><td class=n>{}</td><td class=n>{}</td></tr>",
                escape(&case.name),
                escape(&case.input),
                escape(&v.name),
                ns(i.estimate),
                ns(i.lower),
                ns(i.upper),
                v.overhead_ns_per_call.as_ref().map_or("baseline".into(), |o| ns(o.estimate)),
                ratio(v.ratio.as_ref())
            );
        }
    }
    let _ = write!(
        out,
        "</table><p><small>{}</small></p><p class=verdict>{}</p>",
        escape(&words::cgo_statistic(cgo)),
        escape(&words::cross_language(&cgo.verdict))
    );
    for p in &cgo.profiles {
        let flame = escape(&p.flamegraph.to_string_lossy());
        let variant = escape(&p.variant);
        let _ = write!(
            out,
            "<h3>Go's own profiler (runtime/pprof): pow / chain / {variant} — C side {}</h3><a href=\"{flame}\"><img class=flame src=\"{flame}\" alt=\"Go profile of {variant}\"></a><p><small><a href=\"{}\">Go's profile</a></small></p>",
            pct(p.summary.c_side_share, 1),
            escape(&p.original.to_string_lossy())
        );
    }
    out.push_str("</section>");
}
