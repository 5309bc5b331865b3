//! The cgo reference: the Go program's output parses into rows shaped like the Rust ones,
//! Go's frames are classified, and a run without Go on PATH says so and still writes a
//! complete Rust report.

use crate::common::{self, ffiprof, run};
use ffiprof::cgo::parse;
use ffiprof::report::{CgoReference, CgoStatus, INSTALL_HINT};
use ffiprof::stacks::{classify_go, Language};

#[test]
fn go_output_parses_into_rows_with_overhead_and_ratio() {
    let text = include_str!("../data/cgo-output.json");
    let parsed = parse(text).unwrap();
    assert_eq!((parsed.go_version.as_str(), parsed.runs), ("go1.19.8", 3));
    assert!(parsed.profiles.is_empty());
    let cases = parsed.cases;
    let per_call = &cases[0].variants[1];
    assert_eq!(per_call.name, "per-call");
    let overhead = per_call.overhead_ns_per_call.unwrap();
    assert!((overhead.estimate - 60.0).abs() < 1e-9);
    assert!(overhead.lower <= overhead.estimate && overhead.estimate <= overhead.upper);
    assert!((per_call.ratio.unwrap().estimate - 121.0).abs() < 1e-9);
    assert!(cases[0].variants[0].overhead_ns_per_call.is_none(), "no overhead for the baseline");
    assert!(parse("{\"schema_version\": 7}").is_err());
}

#[test]
fn go_frames_are_classified() {
    assert_eq!(classify_go("main.powPerCall"), Language::Go);
    assert_eq!(classify_go("runtime.cgocall"), Language::Glue);
    assert_eq!(classify_go("runtime.asmcgocall"), Language::Glue);
    assert_eq!(classify_go("main._Cfunc_pow"), Language::Glue);
    assert_eq!(classify_go("ffiprof_pow_loop"), Language::C);
    assert_eq!(classify_go("__pow"), Language::CRuntime);
}

#[test]
fn without_go_the_run_is_complete_and_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    run(ffiprof()
        .env("PATH", dir.path()) // an empty directory: no go
        .args(["run", "plusone", "--quick", "--out"])
        .arg(&out))
    .success()
    .stderr_has("apt-get install golang-go");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["cgo"]["status"], "skipped");
    assert_eq!(report["cgo"]["message"], INSTALL_HINT);
    assert_eq!(
        report["workloads"][0]["variants"].as_array().unwrap().len(),
        4,
        "the Rust report is complete: three variants and the control"
    );
    assert!(std::fs::read_to_string(out.join("report.md"))
        .unwrap()
        .contains("cgo reference skipped"));
    assert_eq!(CgoReference::skipped().status, CgoStatus::Skipped);
}

#[test]
fn with_go_the_run_has_cgo_rows_and_go_profiles() {
    let test = "with_go_the_run_has_cgo_rows_and_go_profiles";
    if !common::tool_available(test, "go", "version", "apt-get install golang-go") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    run(ffiprof().args(["run", "plusone", "--quick", "--out"]).arg(&out)).success();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let cgo = &report["cgo"];
    assert_eq!(cgo["status"], "measured", "{cgo}");
    let names: Vec<&str> =
        cgo["workloads"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"pow") && names.contains(&"plusone") && names.contains(&"callback"));
    let verdict = cgo["verdict"].as_array().unwrap();
    assert!(
        verdict.iter().any(|v| v["rust_overhead_ns_per_call"]["estimate"].is_f64()),
        "Go's overheads are paired with Rust's: {verdict:?}"
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("from Rust"), "and worded in report.md");
    for p in cgo["profiles"].as_array().unwrap() {
        let flame = out.join(p["flamegraph"].as_str().unwrap());
        let svg = std::fs::read_to_string(&flame).unwrap();
        assert!(
            svg.contains("runtime.cgocall") || svg.contains("main.powBatched"),
            "Go's frames are drawn"
        );
        assert!(out.join(p["original"].as_str().unwrap()).is_file());
    }
}
