//! The seeds' own experiment as a reference row: the same C code (csrc) called from Go
//! through cgo. `scripts/cgo` is a small Go program that links the project's C files,
//! runs pow, plusone and callback as Go benchmarks, and records Go's own CPU profile
//! (runtime/pprof) of pow per-call and batched. `ffiprof run` builds and runs it when a Go
//! toolchain is on PATH, converts Go's profiles into flamegraphs with ffiprof's renderer
//! and language rules, and compares per-call overheads across the two languages. Without
//! Go, the run says the reference was skipped and how to install Go.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::measure::Interval;
use crate::output::write_under;
use crate::pprof_proto;
use crate::profile::draw;
use crate::report::{CgoCase, CgoProfile, CgoReference, CgoStatus, CgoVariant, ReportCase};
use crate::stacks::{classify_go, BoundarySummary, NamedStack, Profile};
use crate::workload::Role;

/// Go's default CPU profiling rate, Hz.
const GO_PROFILE_HZ: u64 = 100;

/// The Go program and the C files it includes, embedded so that an installed ffiprof
/// needs no source tree: written out in the same layout (`scripts/cgo` beside `csrc`) to
/// build. Paths are relative to the crate's root.
const SOURCES: &[(&str, &str)] = &[
    ("scripts/cgo/go.mod", include_str!("../scripts/cgo/go.mod")),
    ("scripts/cgo/main.go", include_str!("../scripts/cgo/main.go")),
    ("scripts/cgo/csrc.go", include_str!("../scripts/cgo/csrc.go")),
    ("scripts/cgo/export.go", include_str!("../scripts/cgo/export.go")),
    ("csrc/ffiprof.h", include_str!("../csrc/ffiprof.h")),
    ("csrc/pow.c", include_str!("../csrc/pow.c")),
    ("csrc/plusone.c", include_str!("../csrc/plusone.c")),
    ("csrc/callback.c", include_str!("../csrc/callback.c")),
];

#[derive(Deserialize)]
struct GoOutput {
    schema_version: u32,
    go_version: String,
    runs: u32,
    workloads: Vec<GoWorkload>,
    #[serde(default)]
    profiles: Vec<GoProfileFile>,
}

#[derive(Deserialize)]
struct GoWorkload {
    name: String,
    input: String,
    baseline: String,
    variants: Vec<GoVariant>,
}

#[derive(Deserialize)]
struct GoVariant {
    name: String,
    role: Role,
    ns_per_call: Interval,
}

#[derive(Deserialize)]
struct GoProfileFile {
    variant: String,
    path: PathBuf,
    seconds: f64,
}

/// `go` on PATH, if any.
pub fn go_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("go")).find(|p| p.is_file())
}

/// What the Go program reported.
pub struct GoResults {
    /// Cases with overheads and ratios.
    pub cases: Vec<CgoCase>,
    /// Go's runtime version.
    pub go_version: String,
    /// Benchmark runs per variant.
    pub runs: u32,
    /// Go's CPU profiles: (variant, file, seconds profiled).
    pub profiles: Vec<(String, PathBuf, f64)>,
}

fn bad_output(detail: String) -> Error {
    Error::Cgo { what: "reading the cgo program's output".into(), detail }
}

/// Parses the Go program's JSON into cases with overheads and ratios (variant against
/// the case's baseline, as for the Rust rows).
pub fn parse(json: &str) -> Result<GoResults> {
    let out: GoOutput = serde_json::from_str(json).map_err(|e| bad_output(e.to_string()))?;
    if out.schema_version != 1 {
        return Err(bad_output(format!("schema_version {} unknown", out.schema_version)));
    }
    let cases = out
        .workloads
        .into_iter()
        .map(|w| {
            let base = w.variants.iter().find(|v| v.name == w.baseline).map(|v| v.ns_per_call);
            let variants = w
                .variants
                .into_iter()
                .map(|v| {
                    let is_base = v.name == w.baseline;
                    let rel = |f: fn(&Interval, &Interval) -> Interval| {
                        base.filter(|_| !is_base).map(|b| f(&v.ns_per_call, &b))
                    };
                    CgoVariant {
                        overhead_ns_per_call: rel(Interval::minus),
                        ratio: rel(Interval::ratio),
                        name: v.name,
                        role: v.role,
                        ns_per_call: v.ns_per_call,
                    }
                })
                .collect();
            CgoCase { name: w.name, input: w.input, baseline: w.baseline, variants }
        })
        .collect();
    Ok(GoResults {
        cases,
        go_version: out.go_version,
        runs: out.runs,
        profiles: out.profiles.into_iter().map(|p| (p.variant, p.path, p.seconds)).collect(),
    })
}

/// Converts Go's CPU profile (gzipped pprof protobuf) into a [`Profile`] with Go's
/// language rules.
pub fn go_profile(bytes: &[u8]) -> Result<Profile> {
    let decoded = pprof_proto::decode(bytes)?;
    let named: Vec<(Vec<String>, u64)> = decoded
        .stacks
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(mut frames, n)| {
            frames.reverse(); // root first
            (frames, n as u64)
        })
        .collect();
    let stacks: Vec<NamedStack<'_>> = named
        .iter()
        .map(|(frames, n)| (frames.iter().map(|f| (f.as_str(), "", classify_go(f))).collect(), *n))
        .collect();
    Ok(Profile::from_named_stacks(&stacks))
}

fn go_command(go: &Path, scratch: &Path) -> Command {
    let mut cmd = Command::new(go);
    if std::env::var_os("HOME").is_none() && std::env::var_os("GOCACHE").is_none() {
        cmd.env("GOCACHE", scratch.join("gocache"));
    }
    cmd.env("GO111MODULE", "on");
    cmd
}

/// Builds and runs the Go program, writing Go's profiles and their flamegraphs under
/// `dir`, and pairs Go's overheads with `rust`'s. Never fails the run: problems become a
/// failed reference with the reason.
pub fn run(go: &Path, dir: &Path, quick: bool, rust: &[ReportCase]) -> CgoReference {
    match try_run(go, dir, quick) {
        Ok(mut r) => {
            r.verdict = crate::report::cross_language(&r.workloads, rust);
            r
        }
        Err(e) => CgoReference::failed(e.to_string()),
    }
}

/// Runs `cmd` to completion; a failure carries its stderr.
fn succeed(mut cmd: Command, what: &str) -> Result<()> {
    let out = cmd.output().map_err(|e| Error::Cgo { what: what.into(), detail: e.to_string() })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Cgo {
        what: what.into(),
        detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

/// Writes the embedded sources under `root`; returns the Go program's directory.
fn write_sources(root: &Path) -> Result<PathBuf> {
    for (rel, text) in SOURCES {
        write_under(root, Path::new(rel), text.as_bytes())?;
    }
    Ok(root.join("scripts/cgo"))
}

/// Converts one of Go's profiles and writes its flamegraph and folded stacks.
fn convert(dir: &Path, variant: String, path: &Path, seconds: f64) -> Result<CgoProfile> {
    let gz = std::fs::read(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    let profile = go_profile(&gz)?;
    let window = Duration::from_secs_f64(seconds);
    let summary = BoundarySummary::from_parts(&profile, GO_PROFILE_HZ, window, 0);
    let stem = format!("cgo.pow.chain.{variant}.go-pprof");
    let title = format!("Go runtime/pprof: cgo pow / chain / {variant}");
    let drawn = draw(&profile, &stem, &title, dir)?;
    let original = PathBuf::from("profiles").join(path.file_name().unwrap_or_default());
    Ok(CgoProfile {
        variant,
        original,
        flamegraph: drawn.flamegraph_file,
        folded: drawn.folded_file,
        summary,
    })
}

fn try_run(go: &Path, dir: &Path, quick: bool) -> Result<CgoReference> {
    let scratch = tempfile::tempdir()
        .map_err(|source| Error::Write { path: std::env::temp_dir(), source })?;
    let source = write_sources(&scratch.path().join("src"))?;
    let exe = scratch.path().join("ffiprof-cgo");
    let mut build = go_command(go, scratch.path());
    build.arg("build").arg("-o").arg(&exe).arg(".").current_dir(&source);
    succeed(build, "go build of the cgo program")?;
    let json = scratch.path().join("cgo.json");
    let (runs, benchtime, profiletime) =
        if quick { ("3", "100ms", "500ms") } else { ("3", "300ms", "1000ms") };
    let mut bench = Command::new(&exe);
    bench
        .args(["-runs", runs, "-benchtime", benchtime, "-profiletime", profiletime, "-json"])
        .arg(&json)
        .arg("-profile")
        .arg(dir.join("profiles"));
    succeed(bench, "the cgo program")?;
    let text = std::fs::read_to_string(&json)
        .map_err(|source| Error::Read { path: json.clone(), source })?;
    let GoResults { cases, go_version, runs, profiles } = parse(&text)?;
    let profiles = profiles
        .into_iter()
        .map(|(variant, path, seconds)| convert(dir, variant, &path, seconds))
        .collect::<Result<_>>()?;
    Ok(CgoReference {
        status: CgoStatus::Measured,
        message: format!("cgo reference measured with {go_version}"),
        go_version: Some(go_version),
        runs,
        workloads: cases,
        profiles,
        ..CgoReference::skipped()
    })
}
