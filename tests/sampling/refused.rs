//! The library's behaviour when perf_event_open is refused: a sampler factory that
//! refuses, since the kernel setting cannot be changed from a test.

use ffiprof::profile::{profile_workload_with, Options};
use ffiprof::sample::{self, SamplerKind};

/// A perf sampler the kernel refused: what the real one returns on EACCES.
fn refusing(
    kind: SamplerKind,
    options: &sample::Options,
) -> ffiprof::Result<Box<dyn sample::Sampler>> {
    match kind {
        SamplerKind::Perf => Err(ffiprof::Error::PerfOpen {
            event: "cpu-clock".into(),
            source: std::io::Error::from_raw_os_error(13),
            fix: sample::fix_for(&std::io::Error::from_raw_os_error(13)),
        }),
        SamplerKind::Pprof => sample::sampler(kind, options),
    }
}

#[test]
fn a_refused_perf_sampler_leaves_the_pprof_half() {
    let _turn = crate::sampling_alone();
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
