//! Per-call results derived from criterion's estimates, and their table and JSON forms.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::criterion_data::{benchmark_key, Estimate, Estimates};
use super::{Mode, Options, Statistic, CONFIDENCE_LEVEL};
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::fmt;
use crate::workload::{Role, Workload};

/// Nanoseconds.
pub type Nanos = f64;

/// Version of the `ffiprof bench --json` format; documented in results/README.md.
pub const BENCH_SCHEMA_VERSION: u32 = 1;

/// A point estimate with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The point estimate.
    pub estimate: f64,
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

impl Interval {
    /// An interval from its parts.
    pub fn new(estimate: f64, lower: f64, upper: f64) -> Interval {
        Interval { estimate, lower, upper }
    }

    /// Criterion's estimate of the time per iteration, divided by the calls per iteration.
    pub fn per_call(e: &Estimate, calls: u64) -> Interval {
        let k = calls as f64;
        Interval::new(
            e.point_estimate / k,
            e.confidence_interval.lower_bound / k,
            e.confidence_interval.upper_bound / k,
        )
    }

    /// `self - other` for two independent estimates. Each side of the interval combines
    /// the two half-widths that push the difference that way in quadrature
    /// (sqrt(a² + b²)), the normal approximation for a difference of independent
    /// estimates; asymmetric bootstrap intervals keep their asymmetry.
    pub fn minus(&self, other: &Interval) -> Interval {
        let estimate = self.estimate - other.estimate;
        let down = (self.estimate - self.lower).hypot(other.upper - other.estimate);
        let up = (self.upper - self.estimate).hypot(other.estimate - other.lower);
        Interval::new(estimate, estimate - down, estimate + up)
    }

    /// `self / other`, with the conservative bounds lower/upper and upper/lower (every
    /// ratio of values inside both intervals lies inside it). Needs `other.lower > 0`.
    pub fn ratio(&self, other: &Interval) -> Interval {
        Interval::new(
            self.estimate / other.estimate,
            self.lower / other.upper,
            self.upper / other.lower,
        )
    }

    /// True when the interval excludes zero.
    pub fn excludes_zero(&self) -> bool {
        self.lower > 0.0 || self.upper < 0.0
    }
}

/// One variant's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantResult {
    /// Variant name.
    pub name: String,
    /// Baseline, per-call or reference.
    pub role: Role,
    /// Median time per call, with criterion's bootstrap interval.
    pub ns_per_call: Interval,
    /// Mean time per call, with criterion's bootstrap interval.
    pub mean_ns_per_call: Interval,
    /// `ns_per_call` minus the baseline's; absent for the baseline itself.
    pub overhead_ns_per_call: Option<Interval>,
    /// `ns_per_call` over the baseline's; absent for the baseline itself.
    pub ratio: Option<Interval>,
}

/// What identifies one workload at one input, and how steady the machine was while it
/// was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseHeader {
    /// Workload name.
    pub name: String,
    /// Input name.
    pub input: String,
    /// Name of the batched baseline variant.
    pub baseline: String,
    /// Calls per measured iteration.
    pub calls_per_iteration: u64,
    /// The baseline measured again after the variants, ns per call.
    pub baseline_repeat_ns_per_call: Interval,
    /// |repeat / baseline - 1|: how far the machine drifted while this case was measured.
    /// Differences smaller than this are not distinguishable from drift.
    pub drift: f64,
}

impl CaseHeader {
    /// `workload/input`, the case's key in comparisons.
    pub fn key(&self) -> String {
        format!("{}/{}", self.name, self.input)
    }
}

/// One workload at one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// Which case, and the machine's drift over it.
    #[serde(flatten)]
    pub header: CaseHeader,
    /// Every variant, baseline first.
    pub variants: Vec<VariantResult>,
}

/// The output of `ffiprof bench`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResults {
    /// [`BENCH_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Quick or full.
    pub mode: Mode,
    /// Which criterion statistic `ns_per_call` is.
    pub statistic: Statistic,
    /// Confidence level of every interval.
    pub confidence_level: f64,
    /// Where it was measured.
    pub environment: Environment,
    /// One entry per workload and input.
    pub workloads: Vec<CaseResult>,
}

/// Builds the results from criterion's estimates. Every benchmark of `workloads` must be
/// present.
pub fn collect(
    workloads: &[Workload],
    options: &Options,
    estimates: &HashMap<String, Estimates>,
    dir: &Path,
) -> Result<BenchResults> {
    let mut cases = Vec::new();
    for workload in workloads {
        for input in &workload.inputs {
            let n = input.calls_per_iteration;
            let mut variants: Vec<VariantResult> = Vec::new();
            for variant in &workload.variants {
                let key = benchmark_key(workload.name, variant.name, input.name);
                let e = estimates.get(&key).ok_or_else(|| Error::MissingEstimates {
                    id: key.clone(),
                    dir: dir.to_owned(),
                })?;
                let ns = Interval::per_call(&e.median, n);
                let (overhead, ratio) = match variants.first() {
                    Some(base) => {
                        (Some(ns.minus(&base.ns_per_call)), Some(ns.ratio(&base.ns_per_call)))
                    }
                    None => (None, None),
                };
                variants.push(VariantResult {
                    name: variant.name.to_owned(),
                    role: variant.role,
                    ns_per_call: ns,
                    mean_ns_per_call: Interval::per_call(&e.mean, n),
                    overhead_ns_per_call: overhead,
                    ratio,
                });
            }
            let key = benchmark_key(
                workload.name,
                &format!("{}{}", workload.baseline().name, super::REPEAT_SUFFIX),
                input.name,
            );
            let e = estimates
                .get(&key)
                .ok_or_else(|| Error::MissingEstimates { id: key.clone(), dir: dir.to_owned() })?;
            let repeat = Interval::per_call(&e.median, n);
            let first = variants[0].ns_per_call.estimate;
            let header = CaseHeader {
                name: workload.name.to_owned(),
                input: input.name.to_owned(),
                baseline: workload.baseline().name.to_owned(),
                calls_per_iteration: n,
                baseline_repeat_ns_per_call: repeat,
                drift: (repeat.estimate / first - 1.0).abs(),
            };
            cases.push(CaseResult { header, variants });
        }
    }
    Ok(BenchResults {
        schema_version: BENCH_SCHEMA_VERSION,
        mode: options.mode(),
        statistic: Statistic::Median,
        confidence_level: CONFIDENCE_LEVEL,
        environment: Environment::detect(),
        workloads: cases,
    })
}

fn with_interval(i: &Interval) -> String {
    let ns = fmt::ns_figure;
    format!("{} [{}, {}]", ns(i.estimate), ns(i.lower), ns(i.upper))
}

impl BenchResults {
    /// The results as JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|source| Error::Serialize { what: "bench results", source })
    }

    /// A plain-text table: one row per variant.
    pub fn table(&self) -> String {
        let header = [
            "workload",
            "input",
            "variant",
            "ns/call [95% CI]",
            "overhead ns/call [95% CI]",
            "x baseline",
            "drift",
        ];
        let mut rows: Vec<Vec<String>> = Vec::new();
        for case in &self.workloads {
            let head = &case.header;
            for v in &case.variants {
                rows.push(vec![
                    head.name.clone(),
                    head.input.clone(),
                    v.name.clone(),
                    with_interval(&v.ns_per_call),
                    v.overhead_ns_per_call.as_ref().map_or("baseline".to_owned(), with_interval),
                    v.ratio.as_ref().map_or("1".to_owned(), |r| format!("{:.2}", r.estimate)),
                    if v.role == Role::Baseline { fmt::pct(head.drift, 1) } else { String::new() },
                ]);
            }
        }
        let mut out = fmt::table(&header, &rows, 3);
        let _ = writeln!(
            out,
            "\n{} of criterion's samples, 95% bootstrap intervals; overhead = variant - baseline \
             (half-widths in quadrature); drift = how far a second measurement of the baseline, \
             taken after the variants, moved; {} run on {}",
            self.statistic, self.mode, self.environment.cpu
        );
        out
    }
}
