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
