//! Helpers shared by the integration tests (each test crate uses some of them).
#![allow(dead_code)]

use std::io::Write;
use std::process::Command;

/// The values of the href and src attributes of an HTML page.
pub fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            out.push(rest[..rest.find('"').unwrap_or(rest.len())].to_owned());
        }
    }
    out
}

/// True under CI (`CI` set, and not to `false` or `0`), where no test may skip.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Whether the optional tool `program` runs here (`program version_arg` succeeds). When it
/// does not, under CI the test fails; elsewhere the test should return early, and this
/// says so on the terminal (written past the test harness's capture, so `cargo test`
/// shows it) with the command that installs it.
pub fn tool_available(test: &str, program: &str, version_arg: &str, install: &str) -> bool {
    let runs = Command::new(program).arg(version_arg).output().is_ok_and(|o| o.status.success());
    if runs {
        return true;
    }
    assert!(!under_ci(), "{test}: `{program}` is not installed ({install}); CI must install it");
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: `{program}` is not installed ({install} to run it)"
    );
    false
}

/// Runs `cmd`, fails the test unless it succeeds, and returns its standard output.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds a test program in Cargo's scratch directory for integration tests (rebuilt on
/// every run, never left in the system's temporary directory): `c_source` compiled by gcc
/// with `-O2 -g` and `c_flags` into a static library, linked into `rust_source` built
/// with `rustc -O -g`. Returns the program's path.
pub fn build_program(
    name: &str,
    c_source: &str,
    c_flags: &[&str],
    rust_source: &str,
) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("lib.c"), c_source).unwrap();
    std::fs::write(dir.join("main.rs"), rust_source).unwrap();
    run_ok(
        Command::new("gcc")
            .current_dir(&dir)
            .args(["-O2", "-g"])
            .args(c_flags)
            .args(["-c", "lib.c", "-o", "lib.o"]),
    );
    run_ok(Command::new("ar").current_dir(&dir).args(["rcs", "libtest.a", "lib.o"]));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    run_ok(Command::new(rustc).current_dir(&dir).args([
        "--edition",
        "2021",
        "-O",
        "-g",
        "main.rs",
        "-L",
        ".",
        "-l",
        "static=test",
        "-o",
        "prog",
    ]));
    dir.join("prog")
}

/// An example of this crate. `cargo test` builds the examples beside the tests; a run of
/// one test file alone (`--test record`) does not, so it is built here then.
pub fn example(name: &str) -> std::path::PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("examples").join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        run_ok(Command::new(cargo).args(["build", "--example", name]));
    }
    assert!(path.exists(), "{} missing after building it", path.display());
    path
}
