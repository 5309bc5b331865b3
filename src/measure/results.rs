//! Per-call results of the paired engine, and their table and JSON forms.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::paired::{Judgement, PairedCase, PairedSummary, PairedVariant};
use super::{Mode, Options, Statistic, CONFIDENCE_LEVEL};
use crate::environment::Environment;
use crate::error::{Error, Result, Unavailability};
use crate::fmt;
use crate::workload::per_call_xlto::{self, Inlining};
use crate::workload::{Input, Role, Unavailable, Workload};

/// Nanoseconds.
pub type Nanos = f64;

/// Version of the `ffiprof bench --json` format; documented in results/README.md.
pub(crate) const BENCH_SCHEMA_VERSION: u32 = 3;

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
    /// Variants this machine could not run, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<Unavailable>,
    /// What the cross-language LTO library's machine code says of the case's
    /// `per-call-xlto` loop: inlined, or what it still calls and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inlining: Option<Inlining>,
}

impl CaseResult {
    /// The result of `workload` at `input` from its paired measurement; reads the
    /// cross-language LTO library's code where the case measured its variant.
    pub fn new(workload: &Workload, input: &Input, case: PairedCase) -> CaseResult {
        let header = CaseHeader {
            name: workload.name.to_owned(),
            input: input.name.to_owned(),
            baseline: workload.baseline().name.to_owned(),
            paired: case.summary,
        };
        let inlining = case
            .variants
            .iter()
            .any(|v| v.name == per_call_xlto::NAME)
            .then(per_call_xlto::library)
            .and_then(Result::ok)
            .and_then(|lib| lib.inspect(workload.name))
            .and_then(Result::ok);
        CaseResult { header, variants: case.variants, unavailable: case.unavailable, inlining }
    }
}

/// Lines for the reader about `cases`: each variant left out (once per reason, with the
/// cases it concerns), and what the cross-language LTO library's code says of each loop.
pub fn case_notes<'a>(cases: impl IntoIterator<Item = &'a CaseResult> + Clone) -> Vec<String> {
    let mut left_out: Vec<(&str, &Unavailability, Vec<String>)> = Vec::new();
    for case in cases.clone() {
        for u in &case.unavailable {
            match left_out.iter_mut().find(|(v, why, _)| *v == u.variant && **why == u.why) {
                Some(entry) => entry.2.push(case.header.key()),
                None => left_out.push((&u.variant, &u.why, vec![case.header.key()])),
            }
        }
    }
    let mut notes: Vec<String> = left_out
        .into_iter()
        .map(|(v, why, keys)| format!("{v} not measured in {}: {why}", keys.join(", ")))
        .collect();
    for case in cases {
        if let Some(i) = &case.inlining {
            notes.push(format!("{}: {}: {}", case.header.key(), per_call_xlto::NAME, i.sentence()));
        }
    }
    notes
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
        let placed = self.workloads.iter().any(|c| c.header.paired.placement_floor > 0.0);
        let placement = if placed {
            format!(
                "placement = how far the control's ratio moves between code placements (each \
                 measured loop built at {} offsets from a 64-byte boundary, one drawn per \
                 subject and round)",
                crate::workload::PLACEMENTS
            )
        } else {
            "each subject's code at one place (no placement floor)".to_owned()
        };
        let _ = writeln!(
            out,
            "\n{} over paired rounds (every variant and a control instance of the baseline \
             timed once per round, in shuffled order, on one shared input), 95% \
             distribution-free intervals; ratio and overhead per round against the same \
             round's baseline; noise = how far the control's ratio reaches from 1; \
             {placement}; {} run on {}",
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
    if p.placement_floor > 0.0 {
        let _ = write!(note, ", placement ±{}", fmt::pct(p.placement_floor, 2));
    }
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
        "crossings/call",
        "allocs/call",
        "batch",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut notes = String::new();
    for case in cases {
        let head = &case.header;
        let base_instructions = case.variants.first().and_then(|b| b.instructions);
        for v in &case.variants {
            let judged = v.ratio.map(|r| head.paired.judge(&r, v.placement.as_ref()));
            let measurable = judged == Some(Judgement::Measurable);
            let within_placement = judged == Some(Judgement::WithinPlacement);
            let counts =
                v.instructions.zip(base_instructions).map(|(a, b)| (a.per_call, b.per_call));
            let same = counts.is_some_and(|(a, b)| super::instructions::same_work(a, b));
            let slower_on_fewer =
                counts.is_some_and(|(a, b)| a < b) && v.ratio.is_some_and(|r| r.estimate > 1.0);
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
                        (true, false) if slower_on_fewer => " !",
                        (true, false) => " *",
                        (false, _) if within_placement && v.role != Role::Control => " ~",
                        (false, _) => "",
                    };
                    format!("{}{mark}", with_interval(r, ratio_figure))
                }),
                v.instructions.map_or("-".to_owned(), |i| format!("{:.1}", i.per_call)),
                v.crossings_per_call.map_or("-".to_owned(), |c| c.cell()),
                v.allocations_per_call.map_or("-".to_owned(), |a| a.cell()),
                v.batch.to_string(),
            ]);
        }
        let _ = writeln!(notes, "{}/{}: {}", head.name, head.input, case_note(head));
    }
    let mut out = fmt::table(&header, &rows, 3);
    out.push_str(&notes);
    out.push_str(
        "* measurable: the ratio's interval clears 1, the case's noise floor and its placement \
         floor, and every placement pair's median ratio lies on the same side\n\
         ~ within placement: not clear of what code placement alone does to this case (the \
         control at different placements, or the variant's own placements)\n\
         = measurable in time, yet the same instructions per call (within 0.5%): the same \
         work, so memory, placement or noise, not a cost of the call\n\
         ! measurably slower, yet fewer instructions per call: not more work but the \
         machine's doing (memory, placement, branch prediction, the CPU's front end)\n",
    );
    out
}
