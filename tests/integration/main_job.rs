//! `ffiprof run` and `ffiprof compare` through the real binary: a quick run of one
//! workload, twice, compared; the HTML links only files that exist; re-running replaces a
//! run whole; and every bad-input path exits 2 naming the file and the problem.

use crate::common::{self, ffiprof, links, run};
use std::path::Path;

/// A quick run of pow; the cgo reference is the cgo tests' (`cgo.rs`).
fn quick_run(dir: &Path) {
    run(ffiprof().args(["run", "pow", "--quick", "--no-cgo", "--out"]).arg(dir))
        .success()
        .stdout_has("## Verdicts");
}

#[test]
fn two_quick_runs_compare_without_calling_noise_a_regression() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("A"), root.path().join("B"));
    quick_run(&a);
    // A run into a directory that exists replaces it whole: a stray file from before is
    // gone.
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(b.join("stray.txt"), "from an earlier run").unwrap();
    quick_run(&b);
    assert!(!b.join("stray.txt").exists(), "two runs' files mixed");

    // The run directory: reports, and every file the page links to.
    for name in ["report.json", "report.md", "index.html"] {
        assert!(a.join(name).is_file(), "{name} missing");
    }
    let html = std::fs::read_to_string(a.join("index.html")).unwrap();
    let linked = links(&html);
    assert!(linked.iter().any(|l| l.ends_with(".svg")), "flamegraphs are linked");
    for link in linked.iter().filter(|l| !l.starts_with('#')) {
        assert!(a.join(link).is_file(), "index.html links {link}, which does not exist");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["schema_version"], 5);
    assert_eq!(report["cgo"]["status"], "skipped");
    assert_eq!(report["cgo"]["message"], "cgo reference skipped: --no-cgo");
    assert!(report["environment"]["hardware_counters"]["detail"].is_string());
    let case = &report["workloads"][1];
    assert_eq!(case["input"], "chain");
    let variants = case["variants"].as_array().unwrap();
    let per_call = variants.iter().find(|v| v["name"] == "per-call").unwrap();
    assert_eq!(per_call["profiles"].as_array().unwrap().len(), 2, "both samplers profiled it");
    assert_eq!(variants[1]["role"], "control", "the control follows the baseline");
    assert!(case["rounds"].as_u64().unwrap() >= 30 && case["noise_floor"].is_f64());
    // Instructions per call are exact: the same in both runs, for every variant.
    let report_b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("report.json")).unwrap()).unwrap();
    if report["environment"]["instruction_counts"]["available"] == true {
        for (case_a, case_b) in report["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .zip(report_b["workloads"].as_array().unwrap())
        {
            for (va, vb) in case_a["variants"]
                .as_array()
                .unwrap()
                .iter()
                .zip(case_b["variants"].as_array().unwrap())
            {
                let count = va["instructions"]["per_call"].as_f64();
                assert!(count.is_some_and(|c| c > 0.0), "{}: {}", va["name"], va["instructions"]);
                assert_eq!(
                    count,
                    vb["instructions"]["per_call"].as_f64(),
                    "{} differs",
                    va["name"]
                );
            }
        }
    } else {
        assert!(!common::under_ci(), "CI installs valgrind");
    }
    // No staging directory is left beside the runs.
    let names: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "only A and B: {names:?}");

    run(ffiprof().args(["compare"]).arg(&a).arg(&b).args([
        "--fail-on-regression",
        "--metric",
        "both",
    ]))
    .success()
    .stdout_has("ratio change");
    let out = b.join("compare-vs-A");
    assert!(out.join("compare.md").is_file() && out.join("compare.json").is_file());
    assert!(
        std::fs::read_dir(&out).unwrap().any(|e| e
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "svg")),
        "differential flamegraphs old -> new"
    );
}

#[test]
fn compare_rejects_bad_reports_naming_the_file() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("nosuch");
    let corrupt = root.path().join("corrupt.json");
    let version = ffiprof::report::REPORT_SCHEMA_VERSION;
    std::fs::write(&corrupt, format!("{{\"schema_version\": {version}, \"workloads\": [")).unwrap();
    let truncated = root.path().join("truncated.json");
    std::fs::write(&truncated, format!("{{\"schema_version\": {version}}}")).unwrap();
    let future = root.path().join("future.json");
    std::fs::write(&future, "{\"schema_version\": 99}").unwrap();
    let cases: [(&Path, &str); 4] = [
        (&missing, "cannot read"),
        (&corrupt, "not a valid ffiprof report"),
        (&truncated, "not a valid ffiprof report"),
        (&future, "schema_version 99 is not supported"),
    ];
    for (path, message) in cases {
        run(ffiprof().arg("compare").arg(path).arg(path))
            .usage_error(&path.to_string_lossy())
            .stderr_has(message);
    }
}

#[test]
fn compare_of_reports_with_nothing_in_common_exits_2() {
    let root = tempfile::tempdir().unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/report.json");
    let text = std::fs::read_to_string(&fixture).unwrap();
    let (a, b) = (root.path().join("a.json"), root.path().join("b.json"));
    std::fs::write(&a, &text).unwrap();
    std::fs::write(&b, text.replace("\"name\": \"pow\"", "\"name\": \"plusone\"")).unwrap();
    run(ffiprof().arg("compare").arg(&a).arg(&b).arg("--out").arg(root.path().join("cmp")))
        .usage_error("no workload and input in common");
}

#[test]
fn run_fails_before_benchmarking_when_the_output_cannot_be_written() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    run(ffiprof().args(["run", "pow", "--quick", "--out"]).arg(&file))
        .usage_error("not a directory");
    run(ffiprof().args(["run", "pow", "--quick", "--out", "/proc/ffiprof-run"]))
        .usage_error("/proc/ffiprof-run");
    run(ffiprof().args(["run", "nosuch"])).usage_error("unknown workload");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory", "the file is untouched");
}
