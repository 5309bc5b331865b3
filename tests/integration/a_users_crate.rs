//! ffiprof in a user's own crate: a fresh copy of `examples/wrapper` (a package wrapping a
//! C function of its own, depending on ffiprof by path as a user's would) through `cargo
//! bench` with ffiprof's criterion profiler and its paired harness, and through `cargo
//! ffiprof crossings|record|memory --bin`.
//!
//! The copy's benches build in the workspace's own target directory, with the profile
//! settings and resolved features of the workspace's build, so cargo reuses ffiprof's
//! dependencies as the README's commands built them (see `SAME_BUILD`). Its binary, which
//! needs nothing of ffiprof's, builds in a directory of its own: cargo locks a target
//! directory while it builds, and that test would wait on the benches' build of ffiprof.
//! The criterion test is `criterion_profiles`, a module named to start while the first
//! build of the copy is under way, not beside it, waiting on its lock.

use crate::common::{self, run};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ffiprof::crossings::Census;
use ffiprof::measure::BenchResults;
use ffiprof::memory::MemoryCensus;

/// What the copy gets beyond examples/wrapper's lines, so that cargo reuses the
/// workspace's build: the workspace's release profile in place of the example's own (see
/// `profile_sections`), and hashbrown's feature, which the examples' SQLite turns on there
/// (features then resolve alike, so every dependency of ffiprof is reused). ffiprof
/// itself cannot be: cargo names a path dependency outside the workspace by its absolute
/// path, so the copy compiles its own, here unoptimised and without debug information
/// (about 20 s instead of 85 on a 2-core VM). The samplers' own dependencies, which do the
/// unwinding, stay optimised.
const SAME_BUILD: &str = r#"
[profile.release.package.ffiprof]
debug = false
opt-level = 0
"#;

/// The sections of a Cargo.toml whose header passes `keep` (a section runs from its
/// `[header]` line to the next), in order.
fn sections(manifest: &str, keep: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    let mut kept = true;
    for line in manifest.lines() {
        if line.starts_with('[') {
            kept = keep(line);
        }
        if kept {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The workspace's `[profile.release…]` sections: every dependency is compiled with
/// these settings (debug information, LTO, optimisation), and a build with other settings
/// would compile them all again.
fn profile_sections() -> String {
    let ours = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    // ffiprof's own section is the copy's (SAME_BUILD).
    let profile = sections(&ours, |h| {
        h.starts_with("[profile.release") && h != "[profile.release.package.ffiprof]"
    });
    assert!(profile.contains("[profile.release]"), "the workspace has a release profile");
    profile
}

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace's target directory (integration tests get `target/tmp`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target/tmp has a parent").to_owned()
}

/// A fresh copy of examples/wrapper, made once per test run; its Cargo.toml.
fn package() -> &'static Path {
    static MADE: OnceLock<PathBuf> = OnceLock::new();
    MADE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("user-package");
        let _ = std::fs::remove_dir_all(&dir);
        let from = workspace().join("examples/wrapper");
        for sub in ["", "c", "src", "benches"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
            for entry in std::fs::read_dir(from.join(sub)).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() {
                    std::fs::copy(&path, dir.join(sub).join(path.file_name().unwrap())).unwrap();
                }
            }
        }
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let ours = format!("path = {:?}", workspace().display().to_string());
        let criterion_line = manifest
            .lines()
            .find(|l| l.starts_with("criterion = "))
            .expect("the example names criterion");
        let manifest = manifest
            .replace("path = \"../..\"", &ours)
            .replace(
                criterion_line,
                &format!(
                    "{criterion_line}\nhashbrown = {{ version = \"0.17\", default-features = false, features = \
                     [\"default-hasher\"] }}"
                ),
            );
        assert!(manifest.contains(&ours), "the example depends on ffiprof by `../..`");
        let manifest = sections(&manifest, |h| !h.starts_with("[profile."));
        std::fs::write(dir.join("Cargo.toml"), manifest + &profile_sections() + SAME_BUILD)
            .unwrap();
        std::fs::copy(workspace().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
        dir.join("Cargo.toml")
    })
}

/// `cargo ARGS` in the package, in the workspace's target directory.
pub(crate) fn cargo(args: &[&str]) -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.args(args)
        .current_dir(package().parent().unwrap())
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("CARGO_MAKEFLAGS");
    c
}

#[test]
fn a_users_bench_target_prints_the_paired_table_and_its_json() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("paired.json");
    let json_arg = json.to_str().unwrap();
    let args = ["bench", "--bench", "paired", "--", "--quick", "--processes", "2"];
    let ran = run(cargo(&args).args(["--json", json_arg])).success();
    for row in ["batched (control)", "per-call", "in-rust", "noise ±"] {
        assert!(ran.stdout.contains(row), "no `{row}` in\n{}", ran.stdout);
    }
    let results: BenchResults = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let case = &results.workloads[0];
    assert_eq!(case.header.key(), "mix/4096");
    let names: Vec<&str> = case.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["batched", "batched (control)", "per-call", "in-rust"]);
    // Three costs per item, counted in runs of the bench apart from the timed ones: no
    // allocation anywhere; one crossing per item for the per-call loop, none for the
    // others (the batched call's one crossing per pass is below one per item).
    for v in &case.variants {
        let a = v.allocations_per_call.unwrap_or_else(|| panic!("{}: not counted", v.name));
        assert_eq!((a.rust.blocks, a.c.blocks, a.unknown.blocks), (0.0, 0.0, 0.0), "{}", v.name);
    }
    if common::valgrind_here("a_users_crate::a_users_bench_target_prints_the_paired_table") {
        let crossings = |name: &str| {
            let v = case.variants.iter().find(|v| v.name == name).unwrap();
            let c = v.crossings_per_call.unwrap_or_else(|| panic!("{name}: not counted"));
            c.rust_to_c + c.c_to_rust
        };
        assert_eq!(crossings("per-call"), 1.0);
        assert_eq!(crossings("in-rust"), 0.0);
        assert!(crossings("batched") < 0.01, "{}", crossings("batched"));
        assert!(ran.stdout.lines().any(|l| l.contains("per-call") && l.contains(" 1 ")));
    }
    // criterion's modes and a filter matching nothing measure nothing; a bad value is
    // the user's to fix.
    let listed = run(&mut cargo(&["bench", "--bench", "paired", "--", "--list"])).success();
    assert!(!listed.stdout.contains("per-call"), "{}", listed.stdout);
    run(&mut cargo(&["bench", "--bench", "paired", "--", "nothing-here"]))
        .success()
        .stdout_has("no case matched `nothing-here`");
    run(&mut cargo(&["bench", "--bench", "paired", "--", "--processes", "0"]))
        .code(2)
        .stderr_has("--processes 0");
    // `cargo test --benches` (no --bench): each case runs a few rounds, nothing is judged.
    let tried = run(&mut cargo(&["test", "--release", "--bench", "paired"])).success();
    assert!(tried.stdout.contains("Testing mix/4096: "), "{}", tried.stdout);
    assert!(!tried.stdout.contains("Paired rounds"), "{}", tried.stdout);
}

#[test]
fn cargo_ffiprof_counts_records_and_censuses_the_users_binary() {
    let tmp = tempfile::tempdir().unwrap();
    // The binary alone needs none of ffiprof's crates: a target directory of its own.
    let own_target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("user-package-target");
    let ffiprof = |command: &str, out: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cargo-ffiprof"));
        c.args(["ffiprof", command, "--manifest-path"])
            .arg(package())
            .args(["--bin", "mixsum", "--out"])
            .arg(out)
            .env("CARGO_TARGET_DIR", &own_target);
        c
    };
    let mem = tmp.path().join("memory");
    run(ffiprof("memory", &mem).args(["--", "1000", "7"])).success();
    let census = MemoryCensus::load(&mem).unwrap();
    let site = census.sites.iter().find(|s| s.function == "mix_describe").expect("C's site");
    assert_eq!((site.figures.blocks, site.figures.bytes), (7, 7 * 32));
    let ownership = census.ownership.as_ref().expect("the native engine tells ownership");
    assert!(ownership.crossed_frees.is_empty(), "{:?}", ownership.crossed_frees);
    let rec = tmp.path().join("record");
    run(ffiprof("record", &rec).args(["--", "20000000", "1"])).success();
    assert!(rec.join("summary.json").is_file());
    if !common::valgrind_here(
        "a_users_crate::cargo_ffiprof_counts_records_and_censuses_the_users_binary",
    ) {
        return;
    }
    let cross = tmp.path().join("crossings");
    run(ffiprof("crossings", &cross).args(["--native-runs", "0", "--", "1234", "5"])).success();
    let c = Census::load(&cross).unwrap();
    let calls = |callee: &str| -> u64 {
        c.crossings.iter().filter(|x| x.callee == callee).map(|x| x.calls).sum()
    };
    assert_eq!(
        (calls("mix"), calls("mix_all"), calls("mix_describe")),
        (1234, 1, 5),
        "{:#?}",
        c.crossings
    );
}
