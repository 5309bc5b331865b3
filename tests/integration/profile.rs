//! `ffiprof profile` through the real binary, and its bad-input paths.

use crate::common::{ffiprof, run, usage_error};
use std::io::Read;

#[test]
fn profile_writes_flamegraphs_profiles_and_summary_for_both_samplers() {
    let dir = tempfile::tempdir().unwrap();
    run(ffiprof()
        .args(["profile", "pow", "--variant", "per-call", "--input", "chain", "--sampler", "both"])
        .args(["--duration", "1", "--out"])
        .arg(dir.path()))
    .success()
    .stdout_has("per-call")
    .stdout_has("perf");
    for sampler in ["pprof", "perf"] {
        let svg = std::fs::read_to_string(
            dir.path().join(format!("flamegraphs/pow.chain.per-call.{sampler}.svg")),
        )
        .unwrap();
        for needle in ["ffiprof::workload::pow::per_call_loop", "__pow", "colours: rust = orange"] {
            assert!(svg.contains(needle), "{sampler} flamegraph lacks {needle}");
        }
        let batched = std::fs::read_to_string(
            dir.path().join(format!("flamegraphs/pow.chain.batched.{sampler}.svg")),
        )
        .unwrap();
        assert!(batched.contains("ffiprof_pow_loop"), "the C loop shows in the batched flamegraph");
        assert!(dir
            .path()
            .join(format!("flamegraphs/pow.chain.per-call.diff.{sampler}.svg"))
            .exists());
        let folded = std::fs::read_to_string(
            dir.path().join(format!("folded/pow.chain.per-call.{sampler}.folded")),
        )
        .unwrap();
        assert!(folded.lines().all(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().is_ok()));
        let gz =
            std::fs::read(dir.path().join(format!("profiles/pow.chain.per-call.{sampler}.pb.gz")))
                .unwrap();
        let mut pb = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut pb).unwrap();
        let stats = ffiprof::decode_pprof(&pb).unwrap();
        assert!(
            stats.samples() > 0 && stats.functions.iter().any(|f| f == "__pow"),
            "{sampler}: {stats:?}"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["schema_version"], 1);
    let profiles = summary["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 4, "batched and per-call under two samplers");
    for p in profiles {
        let s = &p["summary"];
        assert!(s["samples"].as_u64().unwrap() > 0);
        assert!(s["c_side_share"].as_f64().unwrap() > 0.5, "pow's time is in libm");
        assert!(s["leaf_share"].is_object() && s["effective_hz"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn bad_profile_inputs_exit_2_with_a_message() {
    let cases: &[(&[&str], &str)] = &[
        (&["profile", "nosuch"], "unknown workload"),
        (&["profile", "pow", "--variant", "nosuch"], "batched, per-call"),
        (&["profile", "pow", "--input", "nosuch"], "cube-from-0, chain"),
        (&["profile", "pow", "--sampler", "gdb"], "possible values"),
        (&["profile", "pow", "--frequency", "0"], "frequency 0 Hz is out of range"),
        (&["profile", "pow", "--frequency", "100001"], "out of range"),
        (&["profile", "pow", "--duration", "0"], "--duration 0 is out of range"),
        (&["profile", "pow", "--duration=-1"], "out of range"),
    ];
    for (args, message) in cases {
        usage_error(args, message);
    }
}
