//! `ffiprof profile` through the real binary, its bad-input paths, and the library's
//! behaviour when perf_event_open is refused (a sampler factory that refuses, since the
//! kernel setting cannot be changed from a test).

use std::io::Read;

use assert_cmd::Command;
use ffiprof::profile::{profile_workload_with, Options};
use ffiprof::sample::{self, SamplerKind};
use predicates::prelude::*;

fn ffiprof() -> Command {
    Command::cargo_bin("ffiprof").unwrap()
}

#[test]
fn profile_writes_flamegraphs_profiles_and_summary_for_both_samplers() {
    let dir = tempfile::tempdir().unwrap();
    ffiprof()
        .args(["profile", "pow", "--variant", "per-call", "--input", "chain", "--sampler", "both"])
        .args(["--duration", "1", "--out"])
        .arg(dir.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("per-call").and(predicate::str::contains("perf")));
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
        ffiprof().args(*args).assert().code(2).stderr(predicate::str::contains(*message));
    }
}

/// A perf sampler the kernel refused: what the real one returns on EACCES.
fn refusing(
    kind: SamplerKind,
    options: &sample::Options,
) -> ffiprof::Result<Box<dyn sample::Sampler>> {
    match kind {
        SamplerKind::Perf => Err(ffiprof::Error::PerfOpen {
            event: "cpu-clock".into(),
            source: std::io::Error::from_raw_os_error(13),
            fix: sample::perf::fix_for(&std::io::Error::from_raw_os_error(13)),
        }),
        SamplerKind::Pprof => sample::sampler(kind, options),
    }
}

#[test]
fn a_refused_perf_sampler_leaves_the_pprof_half() {
    let dir = tempfile::tempdir().unwrap();
    let w = ffiprof::workload::find("plusone").unwrap();
    let mut options = Options::default();
    options.duration = std::time::Duration::from_millis(300);
    let summary = profile_workload_with(
        &w,
        &["batched", "per-call"],
        &w.inputs[0],
        &options,
        dir.path(),
        &refusing,
    )
    .unwrap();
    assert_eq!(summary.failures.len(), 1);
    assert_eq!(summary.failures[0].sampler, SamplerKind::Perf);
    assert!(summary.failures[0].error.contains("kernel.perf_event_paranoid"));
    assert!(summary.profiles.iter().all(|p| p.profile.sampler == SamplerKind::Pprof));
    assert_eq!(summary.profiles.len(), 2);
    assert!(dir.path().join("flamegraphs/plusone.per-call.pprof.svg").exists());
    let written = ffiprof::profile::write_summary(&summary, dir.path()).unwrap();
    let json = std::fs::read_to_string(written).unwrap();
    assert!(json.contains("perf_event_paranoid"), "the failure is in summary.json");
}
