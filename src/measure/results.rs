//! Per-call results of the paired engine, and their table and JSON forms.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::paired::{PairedCase, PairedSummary, PairedVariant};
use super::{Mode, Options, Statistic, CONFIDENCE_LEVEL};
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::fmt;
use crate::workload::{Input, Role, Workload};

/// Nanoseconds.
pub type Nanos = f64;

/// Version of the `ffiprof bench --json` format; documented in results/README.md.
pub(crate) const BENCH_SCHEMA_VERSION: u32 = 2;

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

    /// `self - other` for two independent estimates. Each side of the interval combines
    /// the two half-widths that push the difference that way in quadrature
    /// (sqrt(a² + b²)), the normal approximation for a difference of independent
    /// estimates; asymmetric intervals keep their asymmetry.
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

    /// True when the interval contains `v`.
    pub fn contains(&self, v: f64) -> bool {
        self.lower <= v && v <= self.upper
    }
}

/// Which case, and how its paired rounds went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseHeader {
    /// Workload name.
    pub name: String,
    /// Input name.
    pub input: String,
    /// Name of the batched baseline variant.
    pub baseline: String,
    /// Rounds, stop reason, noise floor, and whether the machine was too noisy.
    #[serde(flatten)]
    pub paired: PairedSummary,
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
    /// Which case, and how its rounds went.
    #[serde(flatten)]
    pub header: CaseHeader,
    /// Every variant: baseline first, then its control, then the others.
    pub variants: Vec<PairedVariant>,
}

impl CaseResult {
    /// The result of `workload` at `input` from its paired measurement.
    pub fn new(workload: &Workload, input: &Input, case: PairedCase) -> CaseResult {
        let header = CaseHeader {
            name: workload.name.to_owned(),
            input: input.name.to_owned(),
            baseline: workload.baseline().name.to_owned(),
            paired: case.summary,
        };
        CaseResult { header, variants: case.variants }
    }
}

/// The output of `ffiprof bench`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResults {
    /// [`BENCH_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Quick or full.
    pub mode: Mode,
    /// Which statistic over rounds `ns_per_call` and `ratio` are.
    pub statistic: Statistic,
    /// Confidence level of every interval.
    pub confidence_level: f64,
    /// Where it was measured.
    pub environment: Environment,
    /// One entry per workload and input.
    pub workloads: Vec<CaseResult>,
    /// Things the reader should know (instructions not counted, and why).
    #[serde(default)]
    pub notes: Vec<String>,
}

impl BenchResults {
    /// Results of a measurement with `options`.
    pub fn new(options: &Options, workloads: Vec<CaseResult>) -> BenchResults {
        BenchResults {
            schema_version: BENCH_SCHEMA_VERSION,
            mode: options.mode(),
            statistic: Statistic::Median,
            confidence_level: CONFIDENCE_LEVEL,
            environment: Environment::detect(),
            workloads,
            notes: Vec::new(),
        }
    }

    /// The results as JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|source| Error::Serialize { what: "bench results", source })
    }

    /// A plain-text table: one row per variant, and a line on the method.
    pub fn table(&self) -> String {
        let mut out = table(&self.workloads);
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        let _ = writeln!(
            out,
            "\n{} over paired rounds (every variant and a control instance of the baseline \
             timed once per round, in shuffled order, on one shared input), 95% \
             distribution-free intervals; ratio and overhead per round against the same \
             round's baseline; noise = how far the control's ratio reaches from 1; {} run \
             on {}",
            self.statistic, self.mode, self.environment.cpu
        );
        out
    }
}

fn with_interval(i: &Interval, figure: fn(f64) -> String) -> String {
    format!("{} [{}, {}]", figure(i.estimate), figure(i.lower), figure(i.upper))
}

fn ratio_figure(v: f64) -> String {
    format!("{v:.3}")
}

/// What a case's baseline row says of the case as a whole.
pub fn case_note(h: &CaseHeader) -> String {
    let p = &h.paired;
    let mut note =
        format!("{} rounds ({}), noise ±{}", p.rounds, p.stop, fmt::pct(p.noise_floor, 2));
    if p.too_noisy {
        note.push_str(": machine too noisy for this case");
    }
    note
}

/// The paired table of `cases`: one row per variant.
pub fn table(cases: &[CaseResult]) -> String {
    let header = [
        "workload",
        "input",
        "variant",
        "ns/call [95% CI]",
        "overhead ns/call [95% CI]",
        "ratio [95% CI]",
        "instr/call",
        "batch",
        "case",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for case in cases {
        let head = &case.header;
        let base_instructions = case.variants.first().and_then(|b| b.instructions);
        for v in &case.variants {
            let measurable = v.ratio.is_some_and(|r| head.paired.measurable(&r));
            let same = v
                .instructions
                .zip(base_instructions)
                .is_some_and(|(a, b)| super::instructions::same_work(a.per_call, b.per_call));
            rows.push(vec![
                head.name.clone(),
                head.input.clone(),
                v.name.clone(),
                with_interval(&v.ns_per_call, fmt::ns_figure),
                v.overhead_ns_per_call
                    .as_ref()
                    .map_or("baseline".to_owned(), |o| with_interval(o, fmt::ns_figure)),
                v.ratio.as_ref().map_or("1".to_owned(), |r| {
                    let mark = match (measurable && v.role != Role::Control, same) {
                        (true, true) => " =",
                        (true, false) => " *",
                        (false, _) => "",
                    };
                    format!("{}{mark}", with_interval(r, ratio_figure))
                }),
                v.instructions.map_or("-".to_owned(), |i| format!("{:.1}", i.per_call)),
                v.batch.to_string(),
                if v.role == Role::Baseline { case_note(head) } else { String::new() },
            ]);
        }
    }
    let mut out = fmt::table(&header, &rows, 3);
    out.push_str(
        "* measurable: the ratio's interval clears 1 and the case's noise floor\n\
         = measurable in time, yet the same instructions per call (within 0.5%): the same \
         work, so memory, placement or noise, not a cost of the call\n",
    );
    out
}
