//! The report of a run: the versioned JSON record (`report.json`) that everything else is
//! rendered from, its Markdown and HTML forms, and the comparison of two reports.
//! `results/README.md` documents the JSON.

pub mod compare;
pub mod html;
pub mod markdown;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::measure::{CaseResult, Interval, VariantResult};
use crate::sample::SamplerKind;
use crate::stacks::BoundarySummary;
use crate::workload::Role;

/// Version of `report.json`.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// Whether something is available, and if not, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Availability {
    /// Available.
    pub available: bool,
    /// What was found, or why not.
    pub detail: String,
}

/// How the samplers were set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerSettings {
    /// Samples per second asked for.
    pub frequency_hz: u64,
    /// Window per profile, seconds.
    pub duration_seconds: f64,
    /// perf's unwinding ("dwarf" or "frame-pointer").
    pub perf_unwind: String,
    /// Bytes of user stack copied per perf sample.
    pub stack_bytes: u32,
}

/// The machine and the settings of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEnvironment {
    /// CPU, cores, kernel, compilers, glibc, paranoid level, host, date.
    #[serde(flatten)]
    pub machine: Environment,
    /// Hardware performance counters.
    pub hardware_counters: Availability,
    /// Frame pointers in the code ffiprof profiles.
    pub frame_pointers: String,
    /// Sampler settings.
    pub samplers: SamplerSettings,
}

/// Hardware counter figures per call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Instructions per call.
    pub instructions: f64,
    /// Cycles per call.
    pub cycles: f64,
    /// Branch misses per call.
    pub branch_misses: f64,
}

/// One variant under one sampler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerProfile {
    /// Sampler.
    pub sampler: SamplerKind,
    /// Event sampled.
    pub event: String,
    /// Unwinding.
    pub unwind: String,
    /// Where the samples fall.
    pub summary: BoundarySummary,
    /// Flamegraph, relative to the run directory.
    pub flamegraph: PathBuf,
    /// Folded stacks, relative to the run directory.
    pub folded: PathBuf,
    /// pprof protobuf, relative to the run directory.
    pub pprof: PathBuf,
    /// Differential flamegraph against the baseline, relative to the run directory.
    pub differential: Option<PathBuf>,
    /// Notes of the sampler.
    pub notes: Vec<String>,
}

/// One variant of one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportVariant {
    /// Timing, from criterion.
    #[serde(flatten)]
    pub timing: VariantResult,
    /// What it does.
    pub about: String,
    /// Hardware counters per call, where the machine has them.
    pub counters: Option<Counters>,
    /// Profiles, one per sampler that ran.
    pub profiles: Vec<SamplerProfile>,
}

/// One workload at one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportCase {
    /// Workload.
    pub name: String,
    /// Input.
    pub input: String,
    /// What the workload shows.
    pub about: String,
    /// Baseline variant.
    pub baseline: String,
    /// Calls per measured iteration.
    pub calls_per_iteration: u64,
    /// The baseline measured again after the variants.
    pub baseline_repeat_ns_per_call: Interval,
    /// Drift of the machine while this case was measured (|repeat / baseline - 1|).
    pub drift: f64,
    /// Plain-language verdict.
    pub verdict: String,
    /// Variants, baseline first.
    pub variants: Vec<ReportVariant>,
}

impl ReportCase {
    /// `workload/input`, the case's key in comparisons.
    pub fn key(&self) -> String {
        format!("{}/{}", self.name, self.input)
    }

    /// The baseline's variant.
    pub fn baseline_variant(&self) -> Option<&ReportVariant> {
        self.variants.iter().find(|v| v.timing.name == self.baseline)
    }
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `ffiprof <version>`.
    pub tool: String,
    /// "quick" or "full".
    pub mode: String,
    /// Statistic of `ns_per_call` ("median").
    pub statistic: String,
    /// Confidence level of every interval.
    pub confidence_level: f64,
    /// Machine and settings.
    pub environment: RunEnvironment,
    /// Workloads at their inputs.
    pub workloads: Vec<ReportCase>,
    /// Things the reader should know about the run as a whole.
    pub notes: Vec<String>,
    /// The same C code called from Go through cgo, when a Go toolchain was found.
    #[serde(default)]
    pub cgo: Option<crate::cgo::CgoReference>,
}

/// Why a report could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No such file or directory.
    #[error("{path}: cannot read: {source}")]
    Missing {
        /// The path.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// Not JSON, or not a report.
    #[error("{path}: not a valid ffiprof report: {reason}")]
    Corrupt {
        /// The path.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A schema this ffiprof does not know.
    #[error("{path}: schema_version {found} is not supported (this ffiprof reads version {REPORT_SCHEMA_VERSION})")]
    UnknownSchema {
        /// The path.
        path: PathBuf,
        /// The version found.
        found: String,
    },
}

impl Report {
    /// Reads `report.json`, or `<dir>/report.json` when given a directory.
    pub fn load(path: &Path) -> Result<Report, ReportError> {
        let file = if path.is_dir() { path.join("report.json") } else { path.to_owned() };
        let text = std::fs::read_to_string(&file)
            .map_err(|source| ReportError::Missing { path: file.clone(), source })?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ReportError::Corrupt { path: file.clone(), reason: e.to_string() })?;
        match value.get("schema_version") {
            Some(v) if v.as_u64() == Some(u64::from(REPORT_SCHEMA_VERSION)) => {}
            Some(v) => return Err(ReportError::UnknownSchema { path: file, found: v.to_string() }),
            None => {
                return Err(ReportError::Corrupt { path: file, reason: "no schema_version".into() })
            }
        }
        serde_json::from_value(value)
            .map_err(|e| ReportError::Corrupt { path: file, reason: e.to_string() })
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialize")
    }
}

/// Formats nanoseconds for people.
pub fn fmt_ns(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.2} µs", v / 1e3)
    } else if a >= 10.0 {
        format!("{v:.1} ns")
    } else {
        format!("{v:.2} ns")
    }
}

/// The plain-language verdict of a case: for each per-call variant, what it costs against
/// the batched baseline. A difference smaller than the case's drift, or whose interval
/// contains zero, is "no measurable difference".
pub fn verdict(case: &CaseResult) -> String {
    let base = &case.variants[0];
    let mut parts = Vec::new();
    for v in case.variants.iter().filter(|v| v.role == Role::PerCall) {
        let (Some(o), Some(r)) = (&v.overhead_ns_per_call, &v.ratio) else { continue };
        let beyond_drift = (r.estimate - 1.0).abs() > case.drift;
        if o.excludes_zero() && beyond_drift && o.estimate > 0.0 {
            let share = o.estimate / v.ns_per_call.estimate * 100.0;
            parts.push(format!(
                "{} costs {} more per call than {} [{} .. {}], {:.2}x; the crossing is {:.0}% \
                 of each per-call item, so batching pays off wherever calls are many",
                v.name,
                fmt_ns(o.estimate),
                base.name,
                fmt_ns(o.lower),
                fmt_ns(o.upper),
                r.estimate,
                share
            ));
        } else if o.excludes_zero() && beyond_drift {
            parts.push(format!(
                "{} measured {} faster per call than {} ({:.2}x): no cost to batch away",
                v.name,
                fmt_ns(-o.estimate),
                base.name,
                r.estimate
            ));
        } else {
            parts.push(format!(
                "{}: no measurable difference from {} ({:+.1}% with a drift of {:.1}%)",
                v.name,
                base.name,
                (r.estimate - 1.0) * 100.0,
                case.drift * 100.0
            ));
        }
    }
    parts.join("; ")
}
