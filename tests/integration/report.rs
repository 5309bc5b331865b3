//! Report rendering and comparison from fixed, hand-made reports (no timing), golden
//! files for the Markdown (re-bless with FFIPROF_BLESS=1), and the significance logic on
//! hand-made intervals.

use crate::common::{self, links};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ffiprof::measure::paired::{
    AllocationsPerCall, CrossingsPerCall, PairedSummary, PairedVariant, PlacementRange, Stop,
};
use ffiprof::measure::{Availability, InstructionCount};
use ffiprof::measure::{CaseHeader, Interval, Mode, Statistic};
use ffiprof::profile::{ProfileFiles, SamplerProfile};
use ffiprof::report::compare::{compare, Change, Metric};
use ffiprof::report::{
    self, Report, ReportCase, ReportVariant, RunEnvironment, SamplerSettings, VerdictKind,
};
use ffiprof::sample::{Event, PerfUnwind, SamplerKind, Unwind};
use ffiprof::workload::Role;
use ffiprof::Environment;

fn iv(e: f64, half: f64) -> Interval {
    Interval::new(e, e - half, e + half)
}

/// One variant: `ns` per call, its ratio to a baseline of `base` ns, instructions.
fn variant(
    name: &str,
    role: Role,
    ns: f64,
    ratio: Option<Interval>,
    instr: Option<f64>,
) -> ReportVariant {
    let summary = ffiprof::stacks::BoundarySummary {
        samples: 1000,
        requested_hz: 1000,
        effective_hz: 999.0,
        window_seconds: 1.0,
        lost: 0,
        leaf_share: BTreeMap::from([
            (ffiprof::stacks::Language::CRuntime, 0.75),
            (ffiprof::stacks::Language::Rust, 0.25),
        ]),
        c_side_share: 0.75,
        crossings_per_stack: 2.0,
        reaches_root: 1.0,
        with_unknown_frames: 0.0,
    };
    let base_ns = ratio.map_or(ns, |r| ns / r.estimate);
    ReportVariant {
        timing: PairedVariant {
            name: name.into(),
            role,
            batch: 1000,
            ns_per_call: iv(ns, ns * 0.01),
            overhead_ns_per_call: ratio.map(|r| {
                Interval::new(ns - base_ns, base_ns * (r.lower - 1.0), base_ns * (r.upper - 1.0))
            }),
            ratio,
            instructions: instr
                .map(|per_call| InstructionCount { per_call, overhead_per_call: None }),
            // Counted where instructions are: one crossing per item for a per-call variant.
            crossings_per_call: instr.map(|_| CrossingsPerCall {
                rust_to_c: if role == Role::PerCall { 1.0 } else { 0.0 },
                c_to_rust: 0.0,
                into_c_runtime: 0.0,
            }),
            allocations_per_call: instr.map(|_| AllocationsPerCall::default()),
            placements: 1,
            placement: None,
        },
        about: format!("{name} variant"),
        counters: None,
        profiles: vec![SamplerProfile {
            sampler: SamplerKind::Perf,
            event: Event::CpuClock,
            unwind: Unwind::Dwarf { stack_bytes: 16384 },
            summary,
            files: ProfileFiles {
                flamegraph: PathBuf::from(format!("flamegraphs/w.{name}.perf.svg")),
                folded: PathBuf::from(format!("folded/w.{name}.perf.folded")),
                pprof: PathBuf::from(format!("profiles/w.{name}.perf.pb.gz")),
                differential: None,
            },
            notes: vec![],
        }],
    }
}

/// What one hand-made case looks like.
#[derive(Clone, Copy)]
struct Figures {
    /// Baseline ns per call.
    base: f64,
    /// The per-call variant's ratio to the baseline.
    ratio: Interval,
    /// The control's ratio.
    control: Interval,
    /// Instructions per call: baseline, per-call.
    instructions: Option<(f64, f64)>,
}

fn figures(base: f64, ratio: Interval) -> Figures {
    Figures { base, ratio, control: iv(1.0, 0.002), instructions: Some((6.0, 9.0)) }
}

/// A report with one case: a baseline, its control and a per-call variant.
fn report(f: Figures) -> Report {
    let (bi, vi) = (f.instructions.map(|i| i.0), f.instructions.map(|i| i.1));
    let variants = vec![
        variant("batched", Role::Baseline, f.base, None, bi),
        variant(
            "batched (control)",
            Role::Control,
            f.base * f.control.estimate,
            Some(f.control),
            bi,
        ),
        variant("per-call", Role::PerCall, f.base * f.ratio.estimate, Some(f.ratio), vi),
    ];
    let too_noisy = f.control.lower > 1.0 || f.control.upper < 1.0;
    let header = CaseHeader {
        name: "pow".into(),
        input: "chain".into(),
        baseline: "batched".into(),
        paired: PairedSummary {
            rounds: 200,
            stop: Stop::Precise,
            seconds: 1.5,
            noise_floor: (f.control.upper - 1.0).max(1.0 - f.control.lower).max(0.0),
            min_effect: 0.01,
            too_noisy,
            placement_floor: 0.0,
        },
    };
    Report {
        schema_version: report::REPORT_SCHEMA_VERSION,
        tool: "ffiprof test".into(),
        mode: Mode::Quick,
        statistic: Statistic::Median,
        confidence_level: 0.95,
        environment: RunEnvironment {
            machine: Environment {
                cpu: "Test CPU".into(),
                cores: 2,
                kernel: "6.0".into(),
                rustc: "rustc 1.95.0".into(),
                c_compiler: "cc 12".into(),
                glibc: "2.36".into(),
                perf_event_paranoid: "2".into(),
                host: "host".into(),
                date: "2026-11-22T00:00:00Z".into(),
            },
            hardware_counters: Availability { available: false, detail: "none in this VM".into() },
            instruction_counts: Availability { available: true, detail: "valgrind-3.19.0".into() },
            frame_pointers: "csrc only".into(),
            samplers: SamplerSettings {
                frequency_hz: 1000,
                duration_seconds: 1.0,
                perf_unwind: PerfUnwind::Dwarf,
                stack_bytes: 16384,
            },
        },
        workloads: vec![with_answers(ReportCase {
            verdict: report::verdicts(&header, &variants, None),
            header,
            about: "libm pow".into(),
            variants,
            unavailable: vec![],
            inlining: None,
            answers: None,
        })],
        notes: vec!["a note".into()],
        cgo: None,
    }
}

fn with_answers(mut case: ReportCase) -> ReportCase {
    case.answers = report::answers(&case);
    case
}

#[test]
fn markdown_matches_golden() {
    common::golden("report.md", &report::render_markdown(&report(figures(10.0, iv(1.5, 0.02)))));
}

#[test]
fn verdicts_are_data_worded_once() {
    let kind = |r: &Report| r.workloads[0].verdict[0].kind;
    let in_words = |r: &Report| report::case_verdict(&r.workloads[0]);
    let costly = report(figures(10.0, iv(1.5, 0.02)));
    assert_eq!(kind(&costly), VerdictKind::Costs);
    assert!(
        in_words(&costly).contains("per-call costs 5.00 ns more per call"),
        "{}",
        in_words(&costly)
    );
    assert!(in_words(&costly).contains("+3.0 instructions per call"));
    // Inside the 1% smallest effect, even with a tight interval.
    let close = report(figures(10.0, iv(1.005, 0.001)));
    assert_eq!(kind(&close), VerdictKind::NoMeasurableDifference);
    assert!(in_words(&close).contains("no measurable difference"));
    // Clear of 1 but not of a wide control: the control's spread is the floor.
    let wide = Figures { control: iv(1.0, 0.04), ..figures(10.0, iv(1.03, 0.005)) };
    assert_eq!(kind(&report(wide)), VerdictKind::NoMeasurableDifference);
    // The same instructions per call, a measurable difference in time: same work.
    let same =
        Figures { instructions: Some((327_697.0, 327_696.0)), ..figures(10.0, iv(1.087, 0.003)) };
    assert_eq!(kind(&report(same)), VerdictKind::SameWork);
    assert!(report::case_verdict(&report(same).workloads[0]).contains("memory, placement or noise"));
    // The control itself differs: nothing is judged.
    let noisy = Figures { control: iv(1.05, 0.01), ..figures(10.0, iv(1.5, 0.02)) };
    assert_eq!(kind(&report(noisy)), VerdictKind::TooNoisy);
    assert!(report::case_verdict(&report(noisy).workloads[0]).contains("machine too noisy"));
    assert!(report::render_markdown(&report(noisy)).contains("machine too noisy for this case"));
}

#[test]
fn json_round_trips_and_is_versioned() {
    let r = report(figures(10.0, iv(1.5, 0.02)));
    // Also the fixture the CLI tests read.
    common::golden("report.json", &r.to_json());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    std::fs::write(&path, r.to_json()).unwrap();
    assert_eq!(Report::load(dir.path()).unwrap(), r);
    let value: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(value["schema_version"], 5);
    assert_eq!(value["environment"]["cpu"], "Test CPU", "the machine block is flat in environment");
    let case = &value["workloads"][0];
    assert_eq!(case["rounds"], 200);
    assert_eq!(case["too_noisy"], false);
    let v = &case["variants"][2];
    assert_eq!(v["name"], "per-call");
    assert_eq!(case["variants"][1]["role"], "control");
    assert!(v["ns_per_call"]["estimate"].is_f64() && v["ratio"]["upper"].is_f64());
    assert!(v["instructions"]["per_call"].is_f64());
    assert!(v["profiles"][0]["summary"]["c_side_share"].is_f64());
}

#[test]
fn html_references_only_what_the_report_lists() {
    let r = report(figures(10.0, iv(1.5, 0.02)));
    let html = report::render_html(&r);
    assert!(html.contains("<svg"), "charts are inline SVG");
    let without_namespaces =
        html.replace("http://www.w3.org/2000/svg", "").replace("http://www.w3.org/1999/xlink", "");
    assert!(!without_namespaces.contains("http"), "the page loads nothing from the network");
    let listed: Vec<String> =
        report::linked_files(&r).iter().map(|p| p.to_string_lossy().into_owned()).collect();
    for link in links(&html) {
        assert!(link.starts_with('#') || listed.contains(&link), "{link} is not a file of the run");
    }
}

fn changes(old: &Report, new: &Report) -> ffiprof::report::compare::Comparison {
    compare(old, "old".into(), new, "new".into(), 0.05).unwrap()
}

fn per_call(c: &ffiprof::report::compare::Comparison) -> &ffiprof::report::compare::VariantChange {
    c.changes.iter().find(|ch| ch.variant == "per-call").unwrap()
}

#[test]
fn identical_reports_change_nothing_in_either_metric() {
    let r = report(figures(10.0, iv(1.5, 0.02)));
    let c = changes(&r, &r);
    assert_eq!(c.regressions(Metric::Both).count(), 0);
    assert!(c.changes.iter().all(|ch| ch.time != Change::Slower && ch.time != Change::Faster));
    assert!(c.changes.iter().all(|ch| ch.instructions == Change::Unchanged));
}

#[test]
fn a_slower_ratio_is_a_time_regression() {
    let old = report(figures(10.0, iv(1.5, 0.02)));
    let new = report(figures(10.0, iv(2.0, 0.02)));
    let c = changes(&old, &new);
    assert_eq!(per_call(&c).time, Change::Slower);
    assert!((per_call(&c).ratio_change.unwrap() - (2.0 / 1.5 - 1.0)).abs() < 1e-9);
    assert_eq!(c.regressions(Metric::Time).count(), 1);
    assert_eq!(c.regressions(Metric::Instructions).count(), 0, "same instructions");
    assert!(report::compare::markdown(&c).contains("**slower**"));
    common::golden("compare.md", &report::compare::markdown(&c));
}

#[test]
fn a_whole_machine_slowdown_is_not_a_regression() {
    // Everything 25% slower, ratios unchanged: the machine changed, not the code.
    let old = report(figures(10.0, iv(1.5, 0.02)));
    let new = report(figures(12.5, iv(1.5, 0.02)));
    assert_eq!(changes(&old, &new).regressions(Metric::Both).count(), 0);
}

#[test]
fn more_instructions_are_a_regression_whatever_the_time() {
    let old = report(figures(10.0, iv(1.5, 0.02)));
    let new = report(Figures { instructions: Some((6.0, 12.0)), ..figures(9.0, iv(1.5, 0.02)) });
    let c = changes(&old, &new);
    assert_eq!(per_call(&c).instructions, Change::Slower);
    assert_eq!(c.regressions(Metric::Instructions).count(), 1);
    assert_eq!(c.regressions(Metric::Time).count(), 0);
    assert_eq!(c.regressions(Metric::Both).count(), 1);
}

/// More crossings or allocations per call are counted work, as instructions are: any
/// increase is a regression, whatever the time; fewer is none.
#[test]
fn more_crossings_or_allocations_per_call_are_a_regression() {
    let old = report(figures(10.0, iv(1.5, 0.02)));
    fn per_call_variant(r: &mut Report) -> &mut PairedVariant {
        let v = r.workloads[0].variants.iter_mut().find(|v| v.timing.name == "per-call");
        &mut v.unwrap().timing
    }
    let mut crossing = old.clone();
    per_call_variant(&mut crossing).crossings_per_call.as_mut().unwrap().rust_to_c = 2.0;
    let mut allocating = old.clone();
    per_call_variant(&mut allocating).allocations_per_call.as_mut().unwrap().rust.blocks = 1.0;
    for new in [&crossing, &allocating] {
        let c = changes(&old, new);
        assert!(per_call(&c).counts_more(), "{:?}", per_call(&c));
        assert_eq!(c.regressions(Metric::Instructions).count(), 1);
        assert_eq!(c.regressions(Metric::Time).count(), 0);
        let md = ffiprof::report::compare::markdown(&c);
        assert!(md.contains("Per call, counted: pow/chain/per-call:"), "{md}");
        // The other way round, fewer: no regression.
        assert_eq!(changes(new, &old).regressions(Metric::Both).count(), 0);
    }
    // The verdict says what a variant does per item beside its time.
    let case = &mut allocating.workloads[0];
    case.verdict = ffiprof::report::verdicts(&case.header, &case.variants, None);
    let verdict = ffiprof::report::case_verdict(case);
    assert!(verdict.contains("per item: 1 crossing and 1 Rust allocation"), "{verdict}");
}

#[test]
fn overlapping_ratios_changes_inside_the_floor_or_noisy_cases_are_not_significant() {
    let old = report(figures(10.0, iv(1.5, 0.1)));
    let new = report(figures(10.0, iv(1.6, 0.1)));
    assert_eq!(per_call(&changes(&old, &new)).time, Change::Unchanged, "intervals overlap");
    let wide = |r| Figures { control: iv(1.0, 0.10), ..figures(10.0, r) };
    let c = changes(&report(wide(iv(1.5, 0.01))), &report(wide(iv(1.65, 0.01))));
    let ch = per_call(&c);
    assert!((ch.noise_floor - 0.15).abs() < 1e-9, "threshold plus the larger control spread");
    assert_eq!(ch.time, Change::Unchanged, "10% is inside a 15% floor");
    let noisy = Figures { control: iv(1.08, 0.01), ..figures(10.0, iv(3.0, 0.01)) };
    let c = changes(&report(figures(10.0, iv(1.5, 0.01))), &report(noisy));
    assert_eq!(per_call(&c).time, Change::NotJudged, "a case too noisy is not judged");
}

#[test]
fn reports_without_common_cases_cannot_be_compared() {
    let old = report(figures(10.0, iv(1.5, 0.02)));
    let mut new = old.clone();
    new.workloads[0].header.name = "plusone".into();
    let err = compare(&old, "a".into(), &new, "b".into(), 0.05).unwrap_err();
    assert!(err.to_string().contains("no workload and input in common"));
}

#[test]
fn a_version_3_report_still_loads_with_the_new_fields_defaulted() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/report-v3.json");
    let old = Report::load(&path).unwrap();
    let case = &old.workloads[0];
    assert_eq!(case.header.paired.placement_floor, 0.0);
    assert!(case.variants.iter().all(|v| v.timing.placements == 1 && v.timing.placement.is_none()));
    assert!(case.answers.is_none() && case.inlining.is_none() && case.unavailable.is_empty());
}

/// The case of [`report`] with a placement floor and the per-call variant's placement range
/// set, judged again.
fn placed(f: Figures, floor: f64, range: Option<(f64, f64)>) -> Report {
    let mut r = report(f);
    let case = &mut r.workloads[0];
    case.header.paired.placement_floor = floor;
    case.variants[2].timing.placement =
        range.map(|(lowest, highest)| PlacementRange { lowest, highest, pairs: 16 });
    case.verdict = report::verdicts(&case.header, &case.variants, case.inlining.as_ref());
    case.answers = report::answers(case);
    r
}

#[test]
fn a_difference_inside_the_placement_floor_is_worded_within_placement() {
    // 15% slower, clear of a ±0.2% noise floor, not of a ±30% placement floor.
    let r = placed(figures(10.0, iv(1.15, 0.01)), 0.30, Some((1.05, 1.25)));
    let v = &r.workloads[0].verdict[0];
    assert_eq!(v.kind, VerdictKind::WithinPlacement);
    let md = report::render_markdown(&r);
    assert!(md.contains("within placement"), "{md}");
    assert!(
        md.contains("batching saves nothing measurable here (within what code placement does)"),
        "{md}"
    );
    // The same ratio with placement that agrees at every pair and a small floor: a cost.
    let r = placed(figures(10.0, iv(1.15, 0.01)), 0.02, Some((1.12, 1.18)));
    assert_eq!(r.workloads[0].verdict[0].kind, VerdictKind::Costs);
    let a = r.workloads[0].answers.as_ref().unwrap();
    assert!(a.batching_saves_ns.is_some_and(|s| s.estimate > 1.0), "{a:?}");
    // Clear of both floors on the median, but one placement pair reads no difference.
    let r = placed(figures(10.0, iv(1.15, 0.01)), 0.02, Some((0.99, 1.20)));
    assert_eq!(r.workloads[0].verdict[0].kind, VerdictKind::WithinPlacement);
}

/// plusone as an Intel machine measured it with a per-item `black_box`: batched 0.91 ns,
/// per-call 1.18 ns, per-call-xlto 2.04 ns with its call inlined (3 instructions per call
/// against the batched loop's 7), rust-inlined 2.06 ns. `xlto_instructions` is
/// per-call-xlto's count, where counted.
fn inlined_but_slower(xlto_instructions: Option<f64>) -> Report {
    let f = Figures { instructions: Some((7.0, 9.0)), ..figures(0.91, iv(1.297, 0.01)) };
    let mut r = report(f);
    let case = &mut r.workloads[0];
    case.header.name = "plusone".into();
    case.header.input = "int".into();
    let (ratio, reference) = (iv(2.24, 0.02), iv(2.26, 0.02));
    let xlto = ffiprof::workload::per_call_xlto::NAME;
    case.variants.push(variant(xlto, Role::PerCall, 0.91 * 2.24, Some(ratio), xlto_instructions));
    case.variants.push(variant(
        "rust-inlined",
        Role::Reference,
        0.91 * 2.26,
        Some(reference),
        None,
    ));
    case.inlining = Some(ffiprof::workload::per_call_xlto::Inlining {
        loop_symbol: "ffiprof_xlto_plusone".into(),
        callee: "ffiprof_plusone".into(),
        inlined: true,
        calls: vec![],
        why: None,
        placements: 4,
        built_with: vec![],
    });
    case.verdict = report::verdicts(&case.header, &case.variants, case.inlining.as_ref());
    case.answers = report::answers(case);
    r
}

#[test]
fn a_variant_with_no_crossing_is_never_said_to_pay_for_one() {
    for counted in [Some(3.0), None] {
        let r = inlined_but_slower(counted);
        let case = &r.workloads[0];
        let xlto = case.verdict.iter().find(|v| v.variant == "per-call-xlto").unwrap();
        assert_eq!(xlto.crossing, report::Crossing::Inlined);
        let expected = match counted {
            Some(_) => VerdictKind::SlowerOnFewerInstructions,
            None => VerdictKind::Costs,
        };
        assert_eq!(xlto.kind, expected);
        // The per-call variant still crosses, and is worded as a crossing.
        let per_call = &case.verdict[0];
        assert_eq!(
            (per_call.crossing, per_call.kind),
            (report::Crossing::PerItem, VerdictKind::Costs)
        );
        let words = report::case_verdict(case);
        let (per_call_words, xlto_words) = words.split_once("; per-call-xlto").unwrap();
        assert!(per_call_words.contains("the crossing is"), "{per_call_words}");
        for wrong in ["the crossing is", "batching pays off", "costs"] {
            assert!(!xlto_words.contains(wrong), "`{wrong}` in: {xlto_words}");
        }
        assert!(xlto_words.contains("no crossing left"), "{xlto_words}");
        let advice = &case.answers.as_ref().unwrap();
        assert!(advice.xlto_slower_ns.is_some_and(|s| s.lower > 0.0), "{advice:?}");
        assert!(advice.inlining_saves_ns.is_none());
        // The verdict list, the advice table and the page say the same, from one place.
        let md = report::render_markdown(&r);
        let html = report::render_html(&r);
        for text in [&md, &html] {
            assert!(text.contains("no call is left to cost it"), "{text}");
            assert!(!text.contains("to no measurable gain"), "{text}");
            assert!(!text.contains("inlining across the boundary saves"), "{text}");
        }
        assert!(md.contains(&words), "report.md words the verdicts as case_verdict does");
        if counted.is_some() {
            assert!(words.contains("executes fewer instructions"), "{words}");
            assert!(words.contains("the machine's doing"), "{words}");
        }
    }
}

#[test]
fn fewer_instructions_and_more_time_is_the_machines_doing() {
    // A per-call variant measured 20% slower on fewer instructions than its baseline.
    let f = Figures { instructions: Some((9.0, 7.0)), ..figures(10.0, iv(1.2, 0.01)) };
    let r = report(f);
    assert_eq!(r.workloads[0].verdict[0].kind, VerdictKind::SlowerOnFewerInstructions);
    let words = report::case_verdict(&r.workloads[0]);
    assert!(words.contains("the machine's doing") && !words.contains("the crossing is"), "{words}");
    let md = report::render_markdown(&r);
    assert!(
        md.contains("slower than the batched loop on fewer instructions: not more work"),
        "{md}"
    );
}
