//! The library's errors. Each variant names the workload, file or setting it is about, so
//! that the message alone tells a person what to fix.
//!
//! [`Error::is_usage`] splits them in two: input the user can fix (a name, a setting, a
//! path to write to, a report to read), for which the command line exits with status 2,
//! and everything else, which is ffiprof's or the machine's failure (status 1).

use crate::ids::Pid;
use std::path::PathBuf;

/// Everything that can go wrong in ffiprof's library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A workload name that the catalogue does not have.
    #[error("unknown workload `{name}`; known workloads: {known}")]
    UnknownWorkload {
        /// The name asked for.
        name: String,
        /// The catalogue's names, comma-separated.
        known: String,
    },
    /// A variant name that the workload does not have.
    #[error("workload `{workload}` has no variant `{name}`; its variants: {known}")]
    UnknownVariant {
        /// The workload.
        workload: String,
        /// The name asked for.
        name: String,
        /// The workload's variants, comma-separated.
        known: String,
    },
    /// An input name that the workload does not have.
    #[error("workload `{workload}` has no input `{name}`; its inputs: {known}")]
    UnknownInput {
        /// The workload.
        workload: String,
        /// The name asked for.
        name: String,
        /// The workload's inputs, comma-separated.
        known: String,
    },
    /// A setting out of range (frequency, duration, threshold, sampler list).
    #[error("{0}")]
    InvalidOption(String),
    /// An output path the user gave cannot be written; found before any work is done.
    #[error("cannot write {path}: {source}")]
    Destination {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A file the user gave does not exist or cannot be read: a run or a census to
    /// compare, a census's cost source, a callgrind file for `crossings --from`.
    #[error("{path}: cannot read: {source}")]
    InputUnreadable {
        /// The path.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// A report to compare is not JSON, or not a report.
    #[error("{path}: not a valid ffiprof report: {reason}")]
    ReportCorrupt {
        /// The path.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A report of a schema this ffiprof does not read.
    #[error(
        "{path}: schema_version {found} is not supported (this ffiprof reads version {supported})"
    )]
    ReportSchema {
        /// The path.
        path: PathBuf,
        /// The version found.
        found: String,
        /// The version this ffiprof reads.
        supported: u32,
    },
    /// Two reports share no workload at an input.
    #[error("{old} and {new} have no workload and input in common")]
    NothingInCommon {
        /// The older report.
        old: PathBuf,
        /// The newer report.
        new: PathBuf,
    },
    /// The shared library of the `dylib` workload could not be loaded.
    #[error(
        "cannot load the shared library {path} for the dylib workload: {source}; \
         point FFIPROF_DYLIB at a libffiprof_dyn.so built by this version"
    )]
    DylibLoad {
        /// Where it was loaded from.
        path: PathBuf,
        /// What dlopen or dlsym said.
        source: libloading::Error,
    },
    /// A variant that cannot be built on this machine (a compiler it needs is missing);
    /// the paired engine leaves it out of its case and says why.
    #[error("{variant} not measured: {why}")]
    VariantUnavailable {
        /// The variant.
        variant: String,
        /// Why, and what would make it available.
        why: Unavailability,
    },
    /// A file or directory could not be created or written while working (a full disk, a
    /// directory taken away): the machine's, so the user's to fix (exit status 2).
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A file ffiprof wrote itself, or one the system keeps (`/proc`), could not be read:
    /// ffiprof's to fix (exit status 1). A file the user gave is [`Error::InputUnreadable`].
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The kernel refused perf_event_open: a setting of the machine, or a process the user
    /// may not observe; the message says which and how to allow it.
    #[error("perf_event_open refused ({event}): {source}; {fix}")]
    PerfOpen {
        /// The event asked for.
        event: String,
        /// The kernel's reason.
        source: std::io::Error,
        /// What to do about it.
        fix: String,
    },
    /// perf_event_open succeeded but setting the event up afterwards failed (mapping its
    /// ring buffer, enabling or disabling it): not a setting the user was told to change,
    /// so an internal failure.
    #[error("perf event {event}: {step} failed: {source}{hint}")]
    PerfSetup {
        /// The event.
        event: String,
        /// What was being done.
        step: &'static str,
        /// The kernel's reason.
        source: std::io::Error,
        /// Anything that might help, with its leading separator, or empty.
        hint: String,
    },
    /// The program to record cannot be found or started.
    #[error("cannot start `{program}`: {reason}")]
    NoSuchProgram {
        /// The program as given.
        program: String,
        /// Why, and what to do.
        reason: String,
    },
    /// The process to attach to does not exist.
    #[error("no process {pid} to attach to: {reason}")]
    NoSuchProcess {
        /// The pid asked for.
        pid: Pid,
        /// Why.
        reason: String,
    },
    /// A tool a command needs is not installed.
    #[error("`{tool}` is not installed; {install}")]
    MissingTool {
        /// The tool.
        tool: String,
        /// How to install it.
        install: String,
    },
    /// A census's crossings.json cannot be read, or is not one.
    #[error("{path}: not a crossings census: {reason}")]
    CensusCorrupt {
        /// The path.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A file given to `crossings --from` is not callgrind's output.
    #[error(
        "{path}: not callgrind output ({reason}); give the callgrind.out.* files that \
         valgrind --tool=callgrind writes"
    )]
    NotCallgrind {
        /// The path.
        path: PathBuf,
        /// What was missing.
        reason: String,
    },
    /// An input file whose own totals say it is not whole: cut short, or its parts do not
    /// add up to what it states.
    #[error("{path}: {what}; give the whole file as the tool wrote it")]
    InputIncomplete {
        /// The path.
        path: PathBuf,
        /// What it states against what it holds.
        what: String,
    },
    /// The user's package failed to build (its own error, its last lines shown).
    #[error("the build failed (status {status}): {command}\n{tail}")]
    UserBuild {
        /// The command, environment first.
        command: String,
        /// cargo's status.
        status: i32,
        /// Its last lines.
        tail: String,
    },
    /// The compilers cross-language LTO needs are missing or do not match rustc.
    #[error("{0}")]
    Toolchain(NoToolchain),
    /// A file given to `memory --from` is not DHAT's JSON.
    #[error(
        "{path}: not DHAT's JSON ({reason}); give the files that valgrind --tool=dhat writes \
         (dhat.out.<pid>)"
    )]
    NotDhat {
        /// The path.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A file given to `lifetimes --from` is not memcheck's XML.
    #[error(
        "{path}: not memcheck's XML ({reason}); give the files that valgrind --tool=memcheck \
         --xml=yes --xml-file=FILE writes"
    )]
    NotMemcheck {
        /// The path.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The pprof crate failed.
    #[error("pprof sampler: {0}")]
    Pprof(String),
    /// Symbolization failed.
    #[error("symbolization failed: {0}")]
    Symbolize(String),
    /// A flamegraph or profile could not be rendered or decoded.
    #[error("rendering {what} failed: {source}")]
    Render {
        /// What was being rendered.
        what: String,
        /// The reason.
        source: std::io::Error,
    },
    /// JSON could not be produced.
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        /// What was being serialized.
        what: &'static str,
        /// serde_json's reason.
        source: serde_json::Error,
    },
    /// The Go toolchain or the cgo program failed, or wrote what ffiprof cannot read.
    #[error("{what} failed: {detail}")]
    Cgo {
        /// The step: `go build`, the program, its output.
        what: String,
        /// What it said.
        detail: String,
    },
    /// A program the heap interposer cannot be preloaded into (statically linked, setuid).
    #[error("cannot census the heap of `{program}` natively: {reason}; run it under DHAT instead (ffiprof memory --dhat -- PROGRAM)")]
    CannotPreload {
        /// The program.
        program: String,
        /// Why not.
        reason: String,
    },
    /// `profile`: no sampler could run, each for the reason given.
    #[error("no sampler could run: {why}")]
    NoSampler {
        /// Each sampler's reason.
        why: String,
        /// Whether every one was refused by a setting the user can change (perf_event_open
        /// and `kernel.perf_event_paranoid`): then the user's to fix.
        user_fixable: bool,
    },
    /// A bug or a broken invariant inside ffiprof (a helper thread panicked, a sampler
    /// stopped before it started).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// True when the user can fix this by changing what they asked for (exit status 2);
    /// false for failures of ffiprof or of the machine (exit status 1).
    pub fn is_usage(&self) -> bool {
        // Every variant decided here, on purpose: a new one does not compile until
        // someone says whose fault it is.
        match self {
            Error::UnknownWorkload { .. }
            | Error::UnknownVariant { .. }
            | Error::UnknownInput { .. }
            | Error::InvalidOption(_)
            | Error::Destination { .. }
            | Error::InputUnreadable { .. }
            | Error::ReportCorrupt { .. }
            | Error::ReportSchema { .. }
            | Error::NothingInCommon { .. }
            | Error::NoSuchProgram { .. }
            | Error::NoSuchProcess { .. }
            | Error::PerfOpen { .. }
            | Error::MissingTool { .. }
            | Error::VariantUnavailable { .. }
            | Error::CensusCorrupt { .. }
            | Error::NotCallgrind { .. }
            | Error::InputIncomplete { .. }
            | Error::UserBuild { .. }
            | Error::NotDhat { .. }
            | Error::NotMemcheck { .. }
            | Error::CannotPreload { .. }
            | Error::Toolchain(_)
            | Error::Write { .. } => true,
            Error::DylibLoad { .. }
            | Error::Read { .. }
            | Error::PerfSetup { .. }
            | Error::Pprof(_)
            | Error::Symbolize(_)
            | Error::Render { .. }
            | Error::Serialize { .. }
            | Error::Cgo { .. }
            | Error::Internal(_) => false,
            Error::NoSampler { user_fixable, .. } => *user_fixable,
        }
    }

    /// The status a program ends with for this error: 2 for what the user can fix
    /// ([`Error::is_usage`]), 1 for ffiprof's own failures.
    pub fn exit_code(&self) -> i32 {
        if self.is_usage() {
            2
        } else {
            1
        }
    }
}

/// Why there is no cross-language LTO toolchain here (the `per-call-xlto` variant, `ffiprof
/// xlto`): data, worded once by `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoToolchain {
    /// rustc (or `RUSTC`) does not run.
    NoRustc {
        /// The rustc tried.
        rustc: PathBuf,
    },
    /// `rustc -vV` names no LLVM version.
    NoLlvmVersion {
        /// The rustc asked.
        rustc: PathBuf,
    },
    /// A tool named by its environment variable does not run.
    GivenDoesNotRun {
        /// The variable (`FFIPROF_XLTO_CLANG`).
        env: &'static str,
        /// What it names.
        path: PathBuf,
        /// rustc's LLVM major version.
        major: u32,
    },
    /// A tool named by its environment variable is of another LLVM version.
    GivenOtherVersion {
        /// The variable.
        env: &'static str,
        /// What it names.
        path: PathBuf,
        /// The first line of its `--version`.
        version: String,
        /// rustc's LLVM major version.
        major: u32,
    },
    /// None of the names on PATH is of rustc's LLVM version.
    NotOnPath {
        /// The names looked for (`clang-22`, `clang`).
        names: Vec<String>,
        /// rustc's LLVM major version.
        major: u32,
    },
}

impl std::fmt::Display for NoToolchain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let major = match self {
            NoToolchain::NoRustc { rustc } => {
                return write!(f, "cannot run {} (set RUSTC)", rustc.display())
            }
            NoToolchain::NoLlvmVersion { rustc } => {
                return write!(f, "{} -vV names no LLVM version", rustc.display())
            }
            NoToolchain::GivenDoesNotRun { env, path, major } => {
                write!(f, "{env}={} does not run", path.display())?;
                major
            }
            NoToolchain::GivenOtherVersion { env, path, version, major } => {
                write!(f, "{env}={} is `{version}`, not LLVM {major}", path.display())?;
                major
            }
            NoToolchain::NotOnPath { names, major } => {
                write!(f, "no {} of LLVM {major} on PATH", names.join(" or "))?;
                major
            }
        };
        write!(
            f,
            ": cross-language LTO needs the clang and lld of rustc's LLVM {major} (Debian: \
             apt-get install clang-{major} lld-{major}; or set FFIPROF_XLTO_CLANG and \
             FFIPROF_XLTO_LLD)"
        )
    }
}

/// Why a variant cannot be measured on this machine (`per-call-xlto` without its
/// toolchain, say): data, worded once by `Display`. A report keeps the words (its `why` is
/// a string, as it always was); one read back holds them as [`Unavailability::Said`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailability {
    /// No clang and lld of rustc's LLVM version.
    Toolchain(NoToolchain),
    /// The variant's library did not build: the build's own words (a compiler's).
    Build(String),
    /// The variant's library built, and did not load.
    Load {
        /// The library.
        path: PathBuf,
        /// The loader's words (`dlerror`).
        error: String,
    },
    /// The words of a report written earlier.
    Said(String),
}

impl std::fmt::Display for Unavailability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailability::Toolchain(why) => write!(f, "{why}"),
            Unavailability::Build(words) => write!(f, "building its library: {words}"),
            Unavailability::Load { path, error } => {
                write!(f, "cannot load {}: {error}", path.display())
            }
            Unavailability::Said(words) => f.write_str(words),
        }
    }
}

impl serde::Serialize for Unavailability {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Unavailability {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(Unavailability::Said)
    }
}

/// Result with ffiprof's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Seconds given on the command line as a duration: more than 0, at most an hour.
pub fn seconds(flag: &str, value: f64) -> Result<std::time::Duration> {
    if !(value.is_finite() && value > 0.0 && value <= 3600.0) {
        return Err(Error::InvalidOption(format!(
            "{flag} {value} is out of range: give more than 0 and at most 3600 seconds"
        )));
    }
    Ok(std::time::Duration::from_secs_f64(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant, with the status the README's table gives it.
    fn every_variant() -> Vec<(Error, i32)> {
        let io = || std::io::Error::other("x");
        let json = || serde_json::from_str::<u8>("x").unwrap_err();
        let s = || "x".to_owned();
        vec![
            (Error::UnknownWorkload { name: s(), known: s() }, 2),
            (Error::UnknownVariant { workload: s(), name: s(), known: s() }, 2),
            (Error::UnknownInput { workload: s(), name: s(), known: s() }, 2),
            (Error::InvalidOption(s()), 2),
            (Error::Destination { path: "p".into(), source: io() }, 2),
            (Error::InputUnreadable { path: "p".into(), source: io() }, 2),
            (Error::ReportCorrupt { path: "p".into(), reason: s() }, 2),
            (Error::ReportSchema { path: "p".into(), found: s(), supported: 5 }, 2),
            (Error::NothingInCommon { old: "a".into(), new: "b".into() }, 2),
            (Error::DylibLoad { path: "p".into(), source: libloading::Error::DlOpenUnknown }, 1),
            (Error::VariantUnavailable { variant: s(), why: Unavailability::Said(s()) }, 2),
            (Error::Write { path: "p".into(), source: io() }, 2),
            (Error::Read { path: "/proc/self/maps".into(), source: io() }, 1),
            (Error::PerfOpen { event: s(), source: io(), fix: s() }, 2),
            (Error::PerfSetup { event: s(), step: "mapping", source: io(), hint: s() }, 1),
            (Error::NoSuchProgram { program: s(), reason: s() }, 2),
            (Error::NoSuchProcess { pid: Pid(1), reason: s() }, 2),
            (Error::MissingTool { tool: s(), install: s() }, 2),
            (Error::CensusCorrupt { path: "p".into(), reason: s() }, 2),
            (Error::NotCallgrind { path: "p".into(), reason: s() }, 2),
            (Error::InputIncomplete { path: "p".into(), what: s() }, 2),
            (Error::UserBuild { command: s(), status: 101, tail: s() }, 2),
            (Error::Toolchain(NoToolchain::NoRustc { rustc: "rustc".into() }), 2),
            (Error::NotDhat { path: "p".into(), reason: s() }, 2),
            (Error::NotMemcheck { path: "p".into(), reason: s() }, 2),
            (Error::Pprof(s()), 1),
            (Error::Symbolize(s()), 1),
            (Error::Render { what: s(), source: io() }, 1),
            (Error::Serialize { what: "x", source: json() }, 1),
            (Error::Cgo { what: s(), detail: s() }, 1),
            (Error::CannotPreload { program: s(), reason: s() }, 2),
            (Error::NoSampler { why: s(), user_fixable: true }, 2),
            (Error::NoSampler { why: s(), user_fixable: false }, 1),
            (Error::Internal(s()), 1),
        ]
    }

    #[test]
    fn every_variant_exits_with_its_documented_status() {
        for (e, status) in every_variant() {
            assert_eq!(e.exit_code(), status, "{e:?}");
            assert_eq!(e.is_usage(), status == 2, "{e:?}");
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn an_unavailability_is_worded_once_and_a_report_keeps_its_words() {
        let why = Unavailability::Toolchain(NoToolchain::NotOnPath {
            names: vec!["clang-22".to_owned()],
            major: 22,
        });
        let words = why.to_string();
        assert!(words.starts_with("no clang-22 of LLVM 22 on PATH: "), "{words}");
        let json = serde_json::to_string(&why).unwrap();
        assert_eq!(json, serde_json::to_string(&words).unwrap(), "a report's `why` is a string");
        let back: Unavailability = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Unavailability::Said(words.clone()));
        assert_eq!(back.to_string(), words);
        let load = Unavailability::Load { path: "/x/lib.so".into(), error: "bad ELF".into() };
        assert_eq!(load.to_string(), "cannot load /x/lib.so: bad ELF");
        let build = Unavailability::Build("clang failed".into());
        assert_eq!(build.to_string(), "building its library: clang failed");
    }

    #[test]
    fn every_variant_is_in_the_table() {
        // A variant's discriminant is named by its Debug form's first word; a new variant
        // missing from every_variant() shows here (is_usage's match makes it decided).
        let named: std::collections::BTreeSet<String> = every_variant()
            .iter()
            .map(|(e, _)| {
                let debug = format!("{e:?}");
                debug.split(|c: char| !c.is_alphanumeric()).next().unwrap().to_owned()
            })
            .collect();
        let source = include_str!("error.rs");
        let declared: std::collections::BTreeSet<String> = source
            [..source.find("impl Error").unwrap()]
            .lines()
            .filter_map(|l| l.strip_prefix("    "))
            .filter(|l| l.starts_with(|c: char| c.is_ascii_uppercase()))
            .map(|l| l.split(|c: char| !c.is_alphanumeric()).next().unwrap().to_owned())
            .collect();
        assert_eq!(named, declared);
    }
}
