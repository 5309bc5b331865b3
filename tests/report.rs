//! Report rendering and comparison from fixed, hand-made reports (no timing), golden
//! files for the Markdown (re-bless with FFIPROF_BLESS=1), and the significance logic on
//! hand-made intervals.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::links;
use ffiprof::measure::counters::Availability;
use ffiprof::measure::{CaseHeader, CaseResult, Interval, Mode, Statistic, VariantResult};
use ffiprof::profile::{ProfileFiles, SamplerProfile};
use ffiprof::report::compare::compare;
use ffiprof::report::{
    self, words, Report, ReportCase, ReportVariant, RunEnvironment, SamplerSettings, VerdictKind,
};
use ffiprof::sample::{Event, PerfUnwind, SamplerKind, Unwind};
use ffiprof::stacks::{BoundarySummary, Language};
use ffiprof::workload::Role;
use ffiprof::Environment;

fn iv(e: f64, half: f64) -> Interval {
    Interval::new(e, e - half, e + half)
}

fn variant(name: &str, role: Role, ns: Interval, base: Option<Interval>) -> ReportVariant {
    let summary = BoundarySummary {
        samples: 1000,
        requested_hz: 1000,
        effective_hz: 999.0,
        window_seconds: 1.0,
        lost: 0,
        leaf_share: BTreeMap::from([(Language::CRuntime, 0.75), (Language::Rust, 0.25)]),
        c_side_share: 0.75,
        crossings_per_stack: 2.0,
        reaches_root: 1.0,
        with_unknown_frames: 0.0,
    };
    ReportVariant {
        timing: VariantResult {
            name: name.into(),
            role,
            ns_per_call: ns,
            mean_ns_per_call: ns,
            overhead_ns_per_call: base.map(|b| ns.minus(&b)),
            ratio: base.map(|b| ns.ratio(&b)),
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

/// A report with one case: baseline `base` ns, per-call `per_call` ns, given drift.
fn report(base: Interval, per_call: Interval, drift: f64) -> Report {
    let variants = vec![
        variant("batched", Role::Baseline, base, None),
        variant("per-call", Role::PerCall, per_call, Some(base)),
    ];
    let header = CaseHeader {
        name: "pow".into(),
        input: "chain".into(),
        baseline: "batched".into(),
        calls_per_iteration: 1000,
        baseline_repeat_ns_per_call: base,
        drift,
    };
    let case = CaseResult {
        header: header.clone(),
        variants: variants.iter().map(|v| v.timing.clone()).collect(),
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
            frame_pointers: "csrc only".into(),
            samplers: SamplerSettings {
                frequency_hz: 1000,
                duration_seconds: 1.0,
                perf_unwind: PerfUnwind::Dwarf,
                stack_bytes: 16384,
            },
        },
        workloads: vec![ReportCase {
            header,
            about: "libm pow".into(),
            verdict: report::verdicts(&case),
            variants,
        }],
        notes: vec!["a note".into()],
        cgo: None,
    }
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    if std::env::var_os("FFIPROF_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with FFIPROF_BLESS=1", path.display()));
    assert_eq!(actual, expected, "{name} differs from its golden file (FFIPROF_BLESS=1 to accept)");
}

#[test]
fn markdown_matches_golden() {
    golden("report.md", &report::markdown::render(&report(iv(10.0, 0.1), iv(15.0, 0.2), 0.01)));
}

#[test]
fn verdicts_say_cost_or_no_difference() {
    let in_words = |r: &Report| words::case_verdict(&r.workloads[0]);
    let costly = report(iv(10.0, 0.1), iv(15.0, 0.2), 0.01);
    assert!(
        in_words(&costly).contains("per-call costs 5.00 ns more per call"),
        "{}",
        in_words(&costly)
    );
    assert_eq!(costly.workloads[0].verdict[0].kind, VerdictKind::Costs, "the verdict is data");
    // Inside the drift: no measurable difference, even with tight intervals.
    let drifting = report(iv(10.0, 0.1), iv(10.5, 0.1), 0.08);
    assert!(in_words(&drifting).contains("no measurable difference"));
    // Intervals overlapping zero overhead: no measurable difference.
    let noisy = report(iv(10.0, 2.0), iv(11.0, 2.0), 0.0);
    assert!(in_words(&noisy).contains("no measurable difference"));
    assert_eq!(noisy.workloads[0].verdict[0].kind, VerdictKind::NoMeasurableDifference);
}

#[test]
fn json_round_trips_and_is_versioned() {
    let r = report(iv(10.0, 0.1), iv(15.0, 0.2), 0.01);
    // Also the fixture the CLI tests read.
    golden("report.json", &r.to_json());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    std::fs::write(&path, r.to_json()).unwrap();
    assert_eq!(Report::load(dir.path()).unwrap(), r);
    let value: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(value["schema_version"], 2);
    assert_eq!(value["environment"]["cpu"], "Test CPU", "the machine block is flat in environment");
    let v = &value["workloads"][0]["variants"][1];
    assert_eq!(v["name"], "per-call");
    assert!(
        v["ns_per_call"]["estimate"].is_f64()
            && v["profiles"][0]["summary"]["c_side_share"].is_f64()
    );
}

#[test]
fn html_references_only_what_the_report_lists() {
    let r = report(iv(10.0, 0.1), iv(15.0, 0.2), 0.01);
    let html = report::html::render(&r);
    assert!(html.contains("<svg"), "charts are inline SVG");
    let without_namespaces =
        html.replace("http://www.w3.org/2000/svg", "").replace("http://www.w3.org/1999/xlink", "");
    assert!(!without_namespaces.contains("http"), "the page loads nothing from the network");
    let listed: Vec<String> =
        report::html::linked_files(&r).iter().map(|p| p.to_string_lossy().into_owned()).collect();
    for link in links(&html) {
        assert!(link.starts_with('#') || listed.contains(&link), "{link} is not a file of the run");
    }
}

fn changes(old: &Report, new: &Report, threshold: f64) -> ffiprof::report::compare::Comparison {
    compare(old, "old".into(), new, "new".into(), threshold).unwrap()
}

#[test]
fn identical_reports_change_nothing() {
    let r = report(iv(10.0, 0.1), iv(15.0, 0.2), 0.01);
    let c = changes(&r, &r, 0.05);
    assert!(c.changes.iter().all(|ch| !ch.significant && ch.judged_change == 0.0));
}

#[test]
fn a_real_slowdown_of_the_per_call_variant_is_a_regression() {
    let old = report(iv(10.0, 0.1), iv(15.0, 0.2), 0.01);
    let new = report(iv(10.0, 0.1), iv(20.0, 0.2), 0.01);
    let c = changes(&old, &new, 0.05);
    let per_call = c.changes.iter().find(|ch| ch.variant == "per-call").unwrap();
    assert!(per_call.significant && per_call.regression, "{per_call:?}");
    assert!((per_call.judged_change - (2.0 / 1.5 - 1.0)).abs() < 1e-9);
    assert_eq!(c.regressions().count(), 1);
    assert!(report::compare::markdown(&c).contains("**slower**"));
    golden("compare.md", &report::compare::markdown(&c));
}

#[test]
fn a_whole_machine_slowdown_is_not_a_regression() {
    // Everything 25% slower, ratios unchanged: drift of the machine, not of the code.
    let old = report(iv(10.0, 0.1), iv(15.0, 0.2), 0.01);
    let new = report(iv(12.5, 0.1), iv(18.75, 0.2), 0.01);
    let c = changes(&old, &new, 0.05);
    assert!((c.machine_change - 0.25).abs() < 1e-9);
    assert_eq!(c.regressions().count(), 0, "{:?}", c.changes);
}

#[test]
fn a_fast_path_moving_against_its_baseline_between_runs_is_not_a_regression() {
    // Seen in CI: two quick runs of the same build; pow cube-from-0's batched baseline
    // went 9.96 -> 8.48 ns while per-call went 6.10 -> 7.81 ns (ratio 0.61 -> 0.92), with
    // about 13% drift measured in each run.
    // The chain case, steady in both runs, is the second case the runs shared.
    let with_steady_case = |mut r: Report| {
        r.workloads[0].header.input = "cube-from-0".into();
        r.workloads.push(report(iv(29.8, 0.1), iv(29.3, 0.1), 0.05).workloads.remove(0));
        r
    };
    let old = with_steady_case(report(iv(9.96, 0.1), iv(6.10, 0.05), 0.134));
    let new = with_steady_case(report(iv(8.48, 0.1), iv(7.81, 0.05), 0.134));
    let c = changes(&old, &new, 0.05);
    assert_eq!(c.regressions().count(), 0, "{:?}", c.changes);
}

#[test]
fn overlapping_intervals_or_changes_inside_the_drift_are_not_significant() {
    let old = report(iv(10.0, 0.1), iv(15.0, 3.0), 0.01);
    let new = report(iv(10.0, 0.1), iv(17.0, 3.0), 0.01);
    assert_eq!(changes(&old, &new, 0.05).regressions().count(), 0, "intervals overlap");
    let old = report(iv(10.0, 0.1), iv(15.0, 0.1), 0.10);
    let new = report(iv(10.0, 0.1), iv(17.0, 0.1), 0.10);
    let c = changes(&old, &new, 0.05);
    let ch = c.changes.iter().find(|ch| ch.variant == "per-call").unwrap();
    assert!((ch.noise_floor - 0.25).abs() < 1e-9, "threshold plus both drifts");
    assert!(!ch.significant, "13% is inside a 25% noise floor");
}

#[test]
fn reports_without_common_cases_cannot_be_compared() {
    let old = report(iv(10.0, 0.1), iv(15.0, 0.2), 0.01);
    let mut new = old.clone();
    new.workloads[0].header.name = "plusone".into();
    let err = compare(&old, "a".into(), &new, "b".into(), 0.05).unwrap_err();
    assert!(err.to_string().contains("no workload and input in common"));
}
