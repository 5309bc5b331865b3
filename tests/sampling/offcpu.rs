//! `ffiprof record --off-cpu` on a switch-heavy program (the `switch_pingpong` example):
//! two threads passing a byte back and forth some thousands of times a second. It runs
//! here, with the machine to itself ([`crate::sampling_alone`]), because a recorder that
//! waits for a CPU while the rings fill loses records, and losing none is what is
//! checked.

use std::process::Command;

use ffiprof::record::RecordSummary;

use crate::common;

/// Two threads passing a byte back and forth, some thousands of times a second: every
/// switch is counted, none is lost, and what each kind of record cost is reported.
#[test]
fn a_switch_heavy_program_loses_no_record_and_its_cost_is_reported() {
    let test = "a_switch_heavy_program_loses_no_record_and_its_cost_is_reported";
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .unwrap_or(2);
    if !root && paranoid > 1 {
        common::skip(test, "needs root or perf_event_paranoid 1 or lower");
        return;
    }
    // The recorder must not wait for a CPU while the rings fill: no other test runs.
    let _turn = crate::sampling_alone();
    let program = common::example("switch_pingpong");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rec");
    let rounds = 8_000u64;
    common::run(
        common::ffiprof()
            .args(["record", "--off-cpu", "--out"])
            .arg(&out)
            .arg("--")
            .arg(&program)
            .args([&rounds.to_string(), "40"]),
    )
    .success();
    let s: RecordSummary =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let r = s.off_cpu_recording.as_ref().unwrap();
    assert_eq!(r.records_lost, 0, "{r:?}");
    // Each round blocks both threads at least once (each waits for the other's byte).
    assert!(r.switches_out >= rounds, "{r:?}");
    assert!(r.off_cpu_samples >= r.switches_out, "a sample at each switch out: {r:?}");
    assert!(r.switch_records >= 2 * r.switches_out, "a record out and one in: {r:?}");
    let (per_sample, per_switch) =
        (r.recorder_cpu_per_cpu_sample_us.unwrap(), r.recorder_cpu_per_off_cpu_event_us.unwrap());
    assert!(per_sample > 0.0 && per_switch > 0.0, "{r:?}");
}
