//! The library's errors. Each variant names the workload, file or setting it is about, so
//! that the message alone tells a person what to fix.

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
    /// The shared library of the `dylib` workload could not be loaded.
    #[error(
        "cannot load the shared library {path} for the dylib workload: {source}; \
         rebuild with `cargo build` or point FFIPROF_DYLIB at libffiprof_dyn.so"
    )]
    DylibLoad {
        /// Where it was looked for.
        path: PathBuf,
        /// What dlopen or dlsym said.
        source: libloading::Error,
    },
    /// A file or directory could not be created or written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A file of criterion's could not be parsed.
    #[error("cannot parse criterion's {path}: {source}")]
    CriterionData {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        source: serde_json::Error,
    },
    /// Criterion finished without estimates for a benchmark that was asked for.
    #[error("criterion left no estimates for {id} in {dir}")]
    MissingEstimates {
        /// The benchmark id (`workload/variant/input`).
        id: String,
        /// Criterion's output directory.
        dir: PathBuf,
    },
    /// A setting out of range or unknown (frequency, duration, sampler, variant).
    #[error("{0}")]
    InvalidOption(String),
    /// The kernel refused perf_event_open.
    #[error("perf_event_open refused ({event}): {source}; {fix}")]
    PerfOpen {
        /// The event asked for.
        event: String,
        /// The kernel's reason.
        source: std::io::Error,
        /// What to do about it.
        fix: String,
    },
    /// The pprof crate failed.
    #[error("pprof sampler: {0}")]
    Pprof(String),
    /// Symbolization failed.
    #[error("symbolization failed: {0}")]
    Symbolize(String),
    /// A flamegraph or profile could not be rendered.
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
}

/// Result with ffiprof's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
