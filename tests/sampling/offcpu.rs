//! `ffiprof record --off-cpu` on a switch-heavy program: two threads passing a byte back
//! and forth some thousands of times a second. It runs here, with the machine to itself
//! ([`crate::sampling_alone`]), because a recorder that waits for a CPU while the rings
//! fill loses records, and losing none is what is checked.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use ffiprof::record::RecordSummary;

use crate::common;

const SWITCHY_SOURCE: &str = r#"
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

#[inline(never)]
fn spin(us: u64) -> u64 {
    let t = Instant::now();
    let mut x = 1u64;
    while t.elapsed() < Duration::from_micros(us) {
        for _ in 0..100 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
    }
    x
}

#[inline(never)]
fn ping(mut s: UnixStream, rounds: u64, us: u64, first: bool) -> u64 {
    let mut b = [0u8; 1];
    let mut acc = 0;
    for _ in 0..rounds {
        if first {
            s.write_all(&b).unwrap();
            s.read_exact(&mut b).unwrap();
        } else {
            s.read_exact(&mut b).unwrap();
            s.write_all(&b).unwrap();
        }
        acc += spin(us);
    }
    acc
}

fn main() {
    let a: Vec<u64> = std::env::args().skip(1).map(|x| x.parse().unwrap()).collect();
    let (rounds, us) = (a[0], a[1]);
    let (x, y) = UnixStream::pair().unwrap();
    let t = Instant::now();
    let p = std::thread::spawn(move || ping(x, rounds, us, true));
    let q = std::thread::spawn(move || ping(y, rounds, us, false));
    let r = p.join().unwrap() ^ q.join().unwrap();
    println!("{} {}", (2 * rounds) as f64 / t.elapsed().as_secs_f64(), r & 1);
}
"#;

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
        assert!(!common::under_ci(), "{test}: CI runs as root");
        eprintln!("SKIPPED {test}: needs root or perf_event_paranoid 1 or lower");
        return;
    }
    // The recorder must not wait for a CPU while the rings fill: no other test runs.
    let _turn = crate::sampling_alone();
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let program = BUILT.get_or_init(|| {
        common::build_program(
            "record-switchy-program",
            "int ffiprof_unused;\n",
            &[],
            SWITCHY_SOURCE,
        )
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rec");
    let rounds = 8_000u64;
    common::run(
        common::ffiprof()
            .args(["record", "--off-cpu", "--out"])
            .arg(&out)
            .arg("--")
            .arg(program)
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
