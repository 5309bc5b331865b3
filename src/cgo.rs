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

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::flame;
use crate::measure::Interval;
use crate::report::{fmt_ns, ReportCase};
use crate::stacks::{classify_go, BoundarySummary, Language, NamedStack, Profile};
use crate::workload::Role;

/// What to do without Go.
pub const INSTALL_HINT: &str =
    "cgo reference skipped: no `go` on PATH; install Go (Debian: apt-get install golang-go) to add it";

/// Go's default CPU profiling rate, Hz.
const GO_PROFILE_HZ: u64 = 100;

/// One variant measured from Go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgoVariant {
    /// Variant name.
    pub name: String,
    /// Baseline or per-call.
    pub role: Role,
    /// Median ns per call over the runs, with the fastest and slowest run as its range.
    pub ns_per_call: Interval,
    /// ns_per_call minus the baseline's (ranges combined in quadrature).
    pub overhead_ns_per_call: Option<Interval>,
    /// ns_per_call over the baseline's.
    pub ratio: Option<Interval>,
}

/// One workload at one input, from Go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgoCase {
    /// Workload.
    pub name: String,
    /// Input.
    pub input: String,
    /// Baseline variant.
    pub baseline: String,
    /// Variants, baseline first.
    pub variants: Vec<CgoVariant>,
}

/// Go's own profile of a variant, converted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgoProfile {
    /// Variant of pow/chain.
    pub variant: String,
    /// Go's profile as it wrote it, relative to the run directory.
    pub original: PathBuf,
    /// Flamegraph rendered by ffiprof, relative to the run directory.
    pub flamegraph: PathBuf,
    /// Folded stacks, relative to the run directory.
    pub folded: PathBuf,
    /// Where Go's samples fall, computed as for ffiprof's own samplers.
    pub summary: BoundarySummary,
}

/// The cgo reference of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgoReference {
    /// "measured", "skipped" (no Go) or "failed".
    pub status: String,
    /// What happened, in words.
    pub message: String,
    /// `go version`'s runtime version.
    pub go_version: Option<String>,
    /// How ns_per_call was made.
    pub statistic: String,
    /// The measured cases.
    pub workloads: Vec<CgoCase>,
    /// Go's profiles.
    pub profiles: Vec<CgoProfile>,
    /// Per-call overhead of cgo against Rust's, in words.
    pub verdict: String,
}

impl CgoReference {
    /// The reference when no Go toolchain is on PATH.
    pub fn skipped() -> CgoReference {
        CgoReference {
            status: "skipped".into(),
            message: INSTALL_HINT.into(),
            go_version: None,
            statistic: String::new(),
            workloads: Vec::new(),
            profiles: Vec::new(),
            verdict: String::new(),
        }
    }

    fn failed(message: String) -> CgoReference {
        CgoReference { status: "failed".into(), message, ..Self::skipped() }
    }
}

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

/// Parses the Go program's JSON into cases with overheads and ratios (variant against
/// the case's baseline, as for the Rust rows).
pub fn parse(json: &str) -> Result<GoResults> {
    let out: GoOutput =
        serde_json::from_str(json).map_err(|e| Error::InvalidOption(format!("cgo output: {e}")))?;
    if out.schema_version != 1 {
        return Err(Error::InvalidOption(format!(
            "cgo output: schema_version {} unknown",
            out.schema_version
        )));
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

/// Converts Go's gzipped CPU profile into a [`Profile`] with Go's language rules.
pub fn go_profile(gz: &[u8]) -> Result<Profile> {
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut raw)
        .map_err(|source| Error::Render { what: "Go profile".into(), source })?;
    let stacks = flame::pprof_stacks(&raw)?;
    let named: Vec<(Vec<String>, u64)> = stacks
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(mut frames, n)| {
            frames.reverse();
            (frames, n as u64)
        })
        .collect();
    let stacks: Vec<NamedStack<'_>> = named
        .iter()
        .map(|(frames, n)| (frames.iter().map(|f| (f.as_str(), "", classify_go(f))).collect(), *n))
        .collect();
    Ok(Profile::from_named_stacks(&stacks))
}

/// One line on per-call overhead across the two languages.
pub fn verdict(cgo: &[CgoCase], rust: &[ReportCase]) -> String {
    let mut parts = Vec::new();
    for case in cgo {
        let Some(r) = rust.iter().find(|r| r.name == case.name && r.input == case.input) else {
            continue;
        };
        for v in case.variants.iter().filter(|v| v.role == Role::PerCall) {
            let Some(go) = &v.overhead_ns_per_call else { continue };
            let rust_per_call = r.variants.iter().filter(|rv| rv.timing.role == Role::PerCall);
            let Some((rv, ro)) =
                rust_per_call.filter_map(|rv| Some((rv, rv.timing.overhead_ns_per_call?))).next()
            else {
                continue;
            };
            parts.push(format!(
                "{}/{}: crossing once per item costs {} per call more than batched from Go ({}, range {} .. {}) \
                 and {} from Rust ({}, 95% CI {} .. {})",
                case.name,
                case.input,
                fmt_ns(go.estimate),
                v.name,
                fmt_ns(go.lower),
                fmt_ns(go.upper),
                fmt_ns(ro.estimate),
                rv.timing.name,
                fmt_ns(ro.lower),
                fmt_ns(ro.upper),
            ));
        }
    }
    parts.join("; ")
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
/// `dir`. Never fails the run: problems become a "failed" reference with the reason.
pub fn run(go: &Path, dir: &Path, quick: bool, rust: &[ReportCase]) -> CgoReference {
    match try_run(go, dir, quick, rust) {
        Ok(r) => r,
        Err(e) => CgoReference::failed(format!("cgo reference failed: {e}")),
    }
}

/// Runs `cmd` (the program at `program`) to completion; a failure carries its stderr.
fn succeed(mut cmd: Command, program: &Path, what: &str) -> Result<()> {
    let out = cmd.output().map_err(|source| Error::Read { path: program.to_owned(), source })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::InvalidOption(format!(
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

fn try_run(go: &Path, dir: &Path, quick: bool, rust: &[ReportCase]) -> Result<CgoReference> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cgo");
    let scratch = tempfile::tempdir()
        .map_err(|source| Error::Write { path: std::env::temp_dir(), source })?;
    let exe = scratch.path().join("ffiprof-cgo");
    let mut build = go_command(go, scratch.path());
    build.arg("build").arg("-o").arg(&exe).arg(".").current_dir(&source);
    succeed(build, go, &format!("go build in {}", source.display()))?;
    let json = scratch.path().join("cgo.json");
    let profiles = dir.join("profiles");
    let (runs, benchtime, profiletime) =
        if quick { ("3", "100ms", "500ms") } else { ("5", "300ms", "1500ms") };
    let mut bench = Command::new(&exe);
    bench
        .args(["-runs", runs, "-benchtime", benchtime, "-profiletime", profiletime, "-json"])
        .arg(&json)
        .arg("-profile")
        .arg(&profiles);
    succeed(bench, &exe, "the cgo program")?;
    let text = std::fs::read_to_string(&json)
        .map_err(|source| Error::Read { path: json.clone(), source })?;
    let GoResults { cases: workloads, go_version, runs: n, profiles: files } = parse(&text)?;
    let mut converted = Vec::new();
    for (variant, path, seconds) in files {
        let gz =
            std::fs::read(&path).map_err(|source| Error::Read { path: path.clone(), source })?;
        let profile = go_profile(&gz)?;
        let window = Duration::from_secs_f64(seconds);
        let summary = BoundarySummary::from_parts(&profile, GO_PROFILE_HZ, window, 0);
        let stem = format!("cgo.pow.chain.{variant}.go-pprof");
        let flamegraph = PathBuf::from("flamegraphs").join(format!("{stem}.svg"));
        let folded = PathBuf::from("folded").join(format!("{stem}.folded"));
        let title = format!("Go runtime/pprof: cgo pow / chain / {variant}");
        crate::profile::write_in(dir, &flamegraph, &flame::flamegraph(&profile, &title)?)?;
        crate::profile::write_in(dir, &folded, profile.folded().as_bytes())?;
        let original = PathBuf::from("profiles").join(path.file_name().unwrap_or_default());
        converted.push(CgoProfile { variant, original, flamegraph, folded, summary });
    }
    let blind = converted.iter().find(|p| p.variant == "per-call").map(|p| {
        let c = p.summary.c_side_share * 100.0;
        let glue = p.summary.leaf_share.get(&Language::Glue).copied().unwrap_or(0.0) * 100.0;
        format!(" Go's profiler put {c:.0}% of per-call pow's samples in C frames and {glue:.0}% on cgo's call machinery.")
    });
    Ok(CgoReference {
        status: "measured".into(),
        message: format!("cgo reference measured with {go_version}.{}", blind.unwrap_or_default()),
        verdict: verdict(&workloads, rust),
        go_version: Some(go_version),
        statistic: format!("median of {n} Go benchmark runs; range = fastest and slowest run"),
        workloads,
        profiles: converted,
    })
}
