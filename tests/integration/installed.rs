//! An installed `ffiprof` (`cargo install --path .`) needs no source tree and no build
//! directory: a copy of the binary runs every kind of command from an empty directory
//! while the crate's directory and the build's target directory are hidden under empty
//! mounts (a private mount namespace, `unshare --mount`), so any path compiled into the
//! binary that points there would fail.

use crate::common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Installed {
    _root: tempfile::TempDir,
    bin: PathBuf,
    cwd: PathBuf,
    cache: PathBuf,
}

impl Installed {
    fn new() -> Installed {
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("bin/ffiprof");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_ffiprof"), &bin).unwrap();
        let (cwd, cache) = (root.path().join("work"), root.path().join("cache"));
        std::fs::create_dir_all(&cwd).unwrap();
        Installed { bin, cwd, cache, _root: root }
    }

    /// Runs the copied binary with `args`, the build's directories hidden.
    fn run(&self, args: &[&str]) -> Output {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        // <target>/<profile>/ffiprof
        let target = Path::new(env!("CARGO_BIN_EXE_ffiprof")).ancestors().nth(2).unwrap();
        // The target directory first: it may lie inside the crate's directory.
        let script = r#"set -e
mount -t tmpfs tmpfs "$2"
mount -t tmpfs tmpfs "$1"
test ! -e "$1/Cargo.toml" && test ! -e "$3"
cd "$4"
shift 4
exec "$@""#;
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(manifest)
            .arg(target)
            .arg(env!("CARGO_BIN_EXE_ffiprof"))
            .arg(&self.cwd)
            .arg(&self.bin)
            .args(args)
            .env("XDG_CACHE_HOME", &self.cache)
            .env_remove("FFIPROF_DYLIB")
            .output()
            .expect("unshare runs")
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether this machine lets the test hide directories (root, or user namespaces).
fn can_hide_directories() -> bool {
    let ok = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs tmpfs \"$0\"")
        .arg(std::env::temp_dir())
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        common::skip(
            "the_installed_binary_runs_without_the_source_tree",
            "`unshare --mount` is refused here (needs root or user namespaces)",
        );
    }
    ok
}

#[test]
fn the_installed_binary_runs_without_the_source_tree() {
    if !can_hide_directories() {
        return;
    }
    let installed = Installed::new();

    let list = installed.run(&["list"]);
    assert!(
        list.status.success() && String::from_utf8_lossy(&list.stdout).contains("dylib"),
        "list: {}",
        text(&list)
    );

    // The shared library of the dylib workload comes out of the binary.
    let checksum = |variant: &str| {
        let out = installed.run(&["exec", "dylib", variant, "--n", "1000"]);
        assert!(out.status.success(), "exec dylib {variant}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(checksum("per-call-dylib"), checksum("batched"));
    let cached: Vec<PathBuf> = std::fs::read_dir(installed.cache.join("ffiprof"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        cached.iter().any(|p| p.to_string_lossy().ends_with(".so")),
        "the library is written to the cache directory: {cached:?}"
    );

    // ... and is unwound and symbolized from there by the perf sampler.
    let out = installed.run(&[
        "profile",
        "dylib",
        "--variant",
        "per-call-dylib",
        "--sampler",
        "perf",
        "--duration",
        "0.5",
        "--out",
        "prof",
    ]);
    assert!(out.status.success(), "profile: {}", text(&out));
    let folded =
        std::fs::read_to_string(installed.cwd.join("prof/folded/dylib.per-call-dylib.perf.folded"))
            .unwrap();
    assert!(folded.contains("ffiprof_dyn_plusone"), "the library's frames are named:\n{folded}");

    // The main job, with the cgo reference where Go is installed: its sources come out of
    // the binary too.
    let out = installed.run(&["run", "dylib", "--quick", "--out", "run"]);
    assert!(out.status.success(), "run: {}", text(&out));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(installed.cwd.join("run/report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["workloads"][0]["variants"].as_array().unwrap().len(), 5, "and the control");
    let go = common::tool_available(
        "the_installed_binary_runs_without_the_source_tree (cgo part)",
        "go",
        "version",
        "apt-get install golang-go",
    );
    let expected = if go { "measured" } else { "skipped" };
    assert_eq!(report["cgo"]["status"], expected, "{}", report["cgo"]);
}
