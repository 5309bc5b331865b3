//! ffiprof's criterion profiler in a user's crate: every bench target of the copy of
//! `examples/wrapper` (`a_users_crate`), as a user runs them, with `--profile-time`. A
//! module of its own so that it starts after the first tests of the copy, once its build
//! of ffiprof is under way or done (libtest starts tests in the order of their names).

use crate::a_users_crate::cargo;
use crate::common::run;

/// Samples (by weight) of folded `stacks` with a frame named `leaf`, and of those, the
/// ones with a frame starting with `ancestor` before it.
fn under(folded: &str, leaf: &str, ancestor: &str) -> (u64, u64) {
    let (mut with_leaf, mut under) = (0, 0);
    for line in folded.lines() {
        let Some((stack, weight)) = line.rsplit_once(' ') else { continue };
        let weight: u64 = weight.parse().unwrap();
        let frames: Vec<&str> = stack.split(';').collect();
        if let Some(at) = frames.iter().position(|f| *f == leaf) {
            with_leaf += weight;
            if frames[..at].iter().any(|f| f.starts_with(ancestor)) {
                under += weight;
            }
        }
    }
    (with_leaf, under)
}

#[test]
fn criterion_benches_of_a_users_crate_get_boundary_flamegraphs() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("criterion");
    // Every bench target, as a user runs them: criterion's profiles, and the paired
    // bench, which measures nothing under --profile-time.
    let ran =
        run(cargo(&["bench", "--", "--profile-time", "1"]).env("CRITERION_HOME", &home)).success();
    assert!(!ran.stdout.contains("Paired rounds"), "{}", ran.stdout);
    for (id, c_function) in [("per-call", "mix"), ("batched", "mix_all")] {
        let dir = home.join("mix").join(id).join("4096").join("profile");
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
        let profile = &summary["profile"];
        let folded = dir.join(profile["files"]["folded"].as_str().unwrap());
        let flamegraph = dir.join(profile["files"]["flamegraph"].as_str().unwrap());
        assert!(std::fs::read_to_string(&flamegraph).unwrap().contains("<svg"));
        let (in_c, under_closure) =
            under(&std::fs::read_to_string(&folded).unwrap(), c_function, "profiled::main::");
        assert!(in_c > 100, "{id}: {in_c} samples in {c_function}; {}", ran.stderr);
        assert!(
            under_closure as f64 >= 0.99 * in_c as f64,
            "{id}: {under_closure} of {in_c} samples in {c_function} under the bench closure"
        );
        let share = profile["summary"]["c_side_share"].as_f64().unwrap();
        assert!(share > 0.5, "{id}: C side {share}");
        assert!(ran.stderr.contains(&format!("mix/{id}/4096: ")), "{}", ran.stderr);
    }
}
