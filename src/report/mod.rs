//! The report of a run: the versioned JSON record (`report.json`) that everything else is
//! rendered from, its Markdown and HTML forms, and the comparison of two reports.
//! `results/README.md` documents the JSON.
//!
//! The report holds data only: figures, states and verdicts as typed values. Words are
//! made from them in one place ([`words`]), which report.md and index.html share.

pub mod compare;
pub(crate) mod html;
pub(crate) mod markdown;
pub(crate) mod words;

pub use html::{linked_files, render as render_html};
pub use markdown::render as render_markdown;
pub use words::case_verdict;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::error::{Error, Result, Unavailability};
use crate::measure::counters::{Availability, Counters};
use crate::measure::instructions::same_work;
use crate::measure::paired::{AllocationsPerCall, CrossingsPerCall};
use crate::measure::paired::{Judgement, PairedVariant, PlacementRange};
use crate::measure::{CaseHeader, Interval, Mode, Statistic};
use crate::profile::SamplerProfile;
use crate::sample::{PerfUnwind, SamplerKind};
use crate::stacks::{BoundarySummary, Language};
use crate::workload::per_call_xlto::{self, Inlining};
use crate::workload::Role;
use crate::workload::Unavailable;

/// Version of `report.json`.
pub const REPORT_SCHEMA_VERSION: u32 = 5;

/// Older versions [`Report::load`] still reads: versions 4 and 5 only added fields, each
/// with a default (and 5 a verdict kind older files never hold).
const READABLE_SCHEMA_VERSIONS: [u32; 3] = [3, 4, REPORT_SCHEMA_VERSION];

/// How the samplers were set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerSettings {
    /// Samples per second asked for.
    pub frequency_hz: u64,
    /// Window per profile, seconds.
    pub duration_seconds: f64,
    /// perf's unwinding.
    pub perf_unwind: PerfUnwind,
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
    /// Instruction counts under callgrind: the valgrind found, or why there are none.
    pub instruction_counts: Availability,
    /// Frame pointers in the code ffiprof profiles.
    pub frame_pointers: String,
    /// Sampler settings.
    pub samplers: SamplerSettings,
}

/// One variant of one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportVariant {
    /// Timing, from the paired rounds.
    #[serde(flatten)]
    pub timing: PairedVariant,
    /// What it does.
    pub about: String,
    /// Hardware counters per call, where the machine has them.
    pub counters: Option<Counters>,
    /// Profiles, one per sampler that ran.
    pub profiles: Vec<SamplerProfile>,
}

impl ReportVariant {
    /// C-side share of the variant's samples: perf's where it ran, else pprof's.
    pub fn c_side(&self) -> Option<(f64, SamplerKind)> {
        [SamplerKind::Perf, SamplerKind::Pprof].into_iter().find_map(|k| {
            self.profiles.iter().find(|p| p.sampler == k).map(|p| (p.summary.c_side_share, k))
        })
    }
}

/// What a per-call variant's figures say against its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictKind {
    /// Measurably slower than the baseline: the crossing costs.
    Costs,
    /// Measurably faster than the baseline.
    Faster,
    /// Within the noise floor: no measurable difference.
    NoMeasurableDifference,
    /// Not clear of what code placement alone does to this case: no measurable
    /// difference, where placement moves the case more than noise does.
    WithinPlacement,
    /// Measurably different in time, yet the same instructions per call (within 0.5%):
    /// memory, placement or noise, not a cost of the call.
    SameWork,
    /// Measurably slower, yet fewer instructions per call than the baseline: not more
    /// work but the machine's doing (memory, placement, branch prediction, the CPU's
    /// front end).
    SlowerOnFewerInstructions,
    /// The control (identical work) measured as different: nothing in the case is judged.
    TooNoisy,
}

/// Whether a variant still crosses the boundary on every item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Crossing {
    /// A call into C (or back) per item.
    #[default]
    PerItem,
    /// None left: cross-language LTO inlined the call, by the variant's machine code.
    Inlined,
}

/// The verdict on one per-call variant of a case, with the figures it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The variant judged.
    pub variant: String,
    /// What its figures say.
    pub kind: VerdictKind,
    /// Its overhead per call against the baseline, ns.
    pub overhead_ns_per_call: Interval,
    /// Its time over the baseline's.
    pub ratio: Interval,
    /// Overhead over the variant's time per call: the crossing's share of each item,
    /// where the variant crosses ([`Crossing::PerItem`]).
    pub crossing_share: f64,
    /// Whether the variant still crosses on every item.
    #[serde(default)]
    pub crossing: Crossing,
    /// The relative difference the ratio had to clear for noise: the control's noise
    /// floor, or the smallest effect ffiprof calls measurable, whichever is larger.
    pub floor: f64,
    /// What code placement alone does to this case (the control's placement floor).
    #[serde(default)]
    pub placement_floor: f64,
    /// How far the variant's own ratio moved between placement pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementRange>,
    /// The control's ratio, for a case too noisy to judge.
    pub control_ratio: Option<Interval>,
    /// Instructions per call of the variant and of the baseline, where counted.
    pub instructions: Option<(f64, f64)>,
    /// Crossings per call of the variant and of the baseline, where counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossings: Option<(CrossingsPerCall, CrossingsPerCall)>,
    /// Allocations per call of the variant and of the baseline, where counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocations: Option<(AllocationsPerCall, AllocationsPerCall)>,
}

/// Judges every per-call variant of a case against its baseline: measurable where the
/// ratio's interval clears 1, the noise floor and the placement floor
/// ([`PairedSummary::judge`](crate::measure::paired::PairedSummary::judge)); "within
/// placement" where it does not and placement moves the case more than noise; "same
/// work" where a measurable difference comes with the same instructions per call, and
/// "slower on fewer instructions" where a variant is measurably slower while executing
/// fewer; nothing judged where the control failed. `inlining` is what the LTO library's
/// machine code says of `per-call-xlto`, which then makes no crossing.
pub fn verdicts(
    header: &CaseHeader,
    variants: &[ReportVariant],
    inlining: Option<&Inlining>,
) -> Vec<Verdict> {
    let p = &header.paired;
    let base_instructions =
        variants.first().and_then(|b| b.timing.instructions).map(|i| i.per_call);
    let base_crossings = variants.first().and_then(|b| b.timing.crossings_per_call);
    let base_allocations = variants.first().and_then(|b| b.timing.allocations_per_call);
    let control_ratio =
        variants.iter().find(|v| v.timing.role == Role::Control).and_then(|v| v.timing.ratio);
    variants
        .iter()
        .filter(|v| v.timing.role == Role::PerCall)
        .filter_map(|v| {
            let t = &v.timing;
            let (o, r) = (t.overhead_ns_per_call?, t.ratio?);
            let instructions = t.instructions.map(|i| i.per_call).zip(base_instructions);
            let same_work = instructions.is_some_and(|(a, b)| same_work(a, b));
            let fewer = instructions.is_some_and(|(a, b)| a < b);
            let kind = match p.judge(&r, t.placement.as_ref()) {
                Judgement::TooNoisy => VerdictKind::TooNoisy,
                Judgement::WithinNoise => VerdictKind::NoMeasurableDifference,
                Judgement::WithinPlacement => VerdictKind::WithinPlacement,
                Judgement::Measurable if same_work => VerdictKind::SameWork,
                Judgement::Measurable if r.estimate > 1.0 && fewer => {
                    VerdictKind::SlowerOnFewerInstructions
                }
                Judgement::Measurable if r.estimate > 1.0 => VerdictKind::Costs,
                Judgement::Measurable => VerdictKind::Faster,
            };
            let inlined = t.name == per_call_xlto::NAME && inlining.is_some_and(|i| i.inlined);
            Some(Verdict {
                variant: t.name.clone(),
                kind,
                overhead_ns_per_call: o,
                ratio: r,
                crossing_share: o.estimate / t.ns_per_call.estimate,
                crossing: if inlined { Crossing::Inlined } else { Crossing::PerItem },
                floor: p.noise_threshold(),
                placement_floor: p.placement_floor,
                placement: t.placement,
                control_ratio: control_ratio.filter(|_| p.too_noisy),
                instructions,
                crossings: t.crossings_per_call.zip(base_crossings),
                allocations: t.allocations_per_call.zip(base_allocations),
            })
        })
        .collect()
}

/// One workload at one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportCase {
    /// Which case, and how its paired rounds went.
    #[serde(flatten)]
    pub header: CaseHeader,
    /// What the workload shows.
    pub about: String,
    /// One verdict per per-call variant.
    pub verdict: Vec<Verdict>,
    /// Variants, baseline first.
    pub variants: Vec<ReportVariant>,
    /// Variants this machine could not run, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<Unavailable>,
    /// What the cross-language LTO library's machine code says of `per-call-xlto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inlining: Option<Inlining>,
    /// Batched, per-call, per-call with cross-language LTO and the Rust reference, side
    /// by side, with what each saves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<Answers>,
}

/// The case's answers side by side: batching, calling per item, inlining across the
/// boundary, and the same work in Rust, each as time per call, with what batching and
/// inlining save where that clears the case's floors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answers {
    /// The batched baseline's time per call.
    pub batched_ns: Interval,
    /// The per-call variant compared (the first one that is not built with LTO).
    pub per_call: String,
    /// Its time per call.
    pub per_call_ns: Interval,
    /// Its verdict against batched.
    pub per_call_verdict: VerdictKind,
    /// Per-call over batched where that is measurable: what batching saves per call.
    pub batching_saves_ns: Option<Interval>,
    /// `per-call-xlto`'s time per call, where measured.
    pub xlto_ns: Option<Interval>,
    /// Whether its loop's machine code still calls the C function.
    pub xlto_inlined: Option<bool>,
    /// Why it was not measured, where it exists for the workload but not here.
    pub xlto_unavailable: Option<Unavailability>,
    /// Per-call minus per-call-xlto, where it clears the case's floors: what inlining
    /// across the boundary saves per call.
    pub inlining_saves_ns: Option<Interval>,
    /// Per-call-xlto minus per-call, where the LTO loop is slower and that clears the
    /// case's floors: what the inlined loop loses against the call, never a crossing's
    /// cost where the call was inlined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xlto_slower_ns: Option<Interval>,
    /// The reference with no crossing, and its time per call, where the workload has one.
    pub reference: Option<(String, Interval)>,
    /// The case's placement floor.
    pub placement_floor: f64,
}

/// The answers of a case from its variants and verdicts.
pub fn answers(case: &ReportCase) -> Option<Answers> {
    let time = |name: &str| {
        case.variants.iter().find(|v| v.timing.name == name).map(|v| v.timing.ns_per_call)
    };
    let batched_ns = time(&case.header.baseline)?;
    let per_call = case.verdict.iter().find(|v| v.variant != per_call_xlto::NAME)?;
    let per_call_ns = time(&per_call.variant)?;
    let p = &case.header.paired;
    let xlto = case.verdict.iter().find(|v| v.variant == per_call_xlto::NAME);
    let saved = xlto.map(|x| per_call.overhead_ns_per_call.minus(&x.overhead_ns_per_call));
    let clear = p.floor() * per_call_ns.estimate;
    let inlining_saves_ns = saved.filter(|s| s.lower > clear);
    let xlto_slower_ns =
        saved.filter(|s| s.upper < -clear).map(|s| Interval::new(-s.estimate, -s.upper, -s.lower));
    Some(Answers {
        batched_ns,
        per_call: per_call.variant.clone(),
        per_call_ns,
        per_call_verdict: per_call.kind,
        batching_saves_ns: (per_call.kind == VerdictKind::Costs)
            .then_some(per_call.overhead_ns_per_call),
        xlto_ns: time(per_call_xlto::NAME),
        xlto_inlined: case.inlining.as_ref().map(|i| i.inlined),
        xlto_unavailable: case
            .unavailable
            .iter()
            .find(|u| u.variant == per_call_xlto::NAME)
            .map(|u| u.why.clone()),
        inlining_saves_ns,
        xlto_slower_ns,
        reference: case
            .variants
            .iter()
            .find(|v| v.timing.role == Role::Reference)
            .map(|v| (v.timing.name.clone(), v.timing.ns_per_call)),
        placement_floor: p.placement_floor,
    })
}

impl ReportCase {
    /// The baseline's variant.
    pub fn baseline_variant(&self) -> Option<&ReportVariant> {
        self.variants.iter().find(|v| v.timing.name == self.header.baseline)
    }
}

/// What became of the cgo reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CgoStatus {
    /// Go ran the same C; its rows are in the report.
    Measured,
    /// No Go toolchain on PATH.
    Skipped,
    /// Go was found but building or running the program failed; the message says why.
    Failed,
}

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

impl CgoProfile {
    /// Share of the samples on cgo's call machinery (glue leaves).
    pub fn glue_share(&self) -> f64 {
        self.summary.leaf_share.get(&Language::Glue).copied().unwrap_or(0.0)
    }
}

/// Crossing once per item, from Go and from Rust, on one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossLanguage {
    /// Workload.
    pub workload: String,
    /// Input.
    pub input: String,
    /// Go's per-call variant.
    pub go_variant: String,
    /// Its overhead per call against Go's batched call (range of Go's runs).
    pub go_overhead_ns_per_call: Interval,
    /// Rust's per-call variant.
    pub rust_variant: String,
    /// Its overhead per call against Rust's batched call (95% interval).
    pub rust_overhead_ns_per_call: Interval,
}

/// Pairs each of Go's per-call variants with Rust's first per-call variant of the same
/// case.
pub fn cross_language(cgo: &[CgoCase], rust: &[ReportCase]) -> Vec<CrossLanguage> {
    let mut out = Vec::new();
    for case in cgo {
        let Some(r) =
            rust.iter().find(|r| r.header.name == case.name && r.header.input == case.input)
        else {
            continue;
        };
        let rust_per_call = r
            .variants
            .iter()
            .filter(|v| v.timing.role == Role::PerCall)
            .find_map(|v| Some((v.timing.name.clone(), v.timing.overhead_ns_per_call?)));
        let Some((rust_variant, rust_overhead)) = rust_per_call else { continue };
        for v in case.variants.iter().filter(|v| v.role == Role::PerCall) {
            let Some(go) = v.overhead_ns_per_call else { continue };
            out.push(CrossLanguage {
                workload: case.name.clone(),
                input: case.input.clone(),
                go_variant: v.name.clone(),
                go_overhead_ns_per_call: go,
                rust_variant: rust_variant.clone(),
                rust_overhead_ns_per_call: rust_overhead,
            });
        }
    }
    out
}

/// The cgo reference of a run: the same C code called from Go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgoReference {
    /// Measured, skipped (no Go) or failed.
    pub status: CgoStatus,
    /// What happened: the Go version measured with, or why it was skipped or failed.
    pub message: String,
    /// `go version`'s runtime version.
    pub go_version: Option<String>,
    /// Statistic of `ns_per_call` over Go's benchmark runs.
    pub statistic: Statistic,
    /// Go benchmark runs per variant.
    pub runs: u32,
    /// The measured cases.
    pub workloads: Vec<CgoCase>,
    /// Go's profiles.
    pub profiles: Vec<CgoProfile>,
    /// Per-call overhead from Go against Rust's, case by case.
    pub verdict: Vec<CrossLanguage>,
}

/// What to do without Go.
pub const INSTALL_HINT: &str =
    "cgo reference skipped: no `go` on PATH; install Go (Debian: apt-get install golang-go) to add it";

impl CgoReference {
    /// The reference when no Go toolchain is on PATH.
    pub fn skipped() -> CgoReference {
        CgoReference {
            status: CgoStatus::Skipped,
            message: INSTALL_HINT.into(),
            go_version: None,
            statistic: Statistic::Median,
            runs: 0,
            workloads: Vec::new(),
            profiles: Vec::new(),
            verdict: Vec::new(),
        }
    }

    /// The reference when Go failed, with the reason.
    pub fn failed(reason: String) -> CgoReference {
        CgoReference {
            status: CgoStatus::Failed,
            message: format!("cgo reference failed: {reason}"),
            ..Self::skipped()
        }
    }

    /// Go's profile of pow's per-call variant, if Go's profiler ran.
    pub fn per_call_profile(&self) -> Option<&CgoProfile> {
        self.profiles.iter().find(|p| p.variant == "per-call")
    }
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `ffiprof <version>`.
    pub tool: String,
    /// Quick or full.
    pub mode: Mode,
    /// Statistic of `ns_per_call`.
    pub statistic: Statistic,
    /// Confidence level of every interval.
    pub confidence_level: f64,
    /// Machine and settings.
    pub environment: RunEnvironment,
    /// Workloads at their inputs.
    pub workloads: Vec<ReportCase>,
    /// Things the reader should know about the run as a whole.
    pub notes: Vec<String>,
    /// The same C code called from Go through cgo.
    #[serde(default)]
    pub cgo: Option<CgoReference>,
}

impl Report {
    /// Reads `report.json`, or `<dir>/report.json` when given a directory.
    pub fn load(path: &Path) -> Result<Report> {
        let file = if path.is_dir() { path.join("report.json") } else { path.to_owned() };
        let text = std::fs::read_to_string(&file)
            .map_err(|source| Error::InputUnreadable { path: file.clone(), source })?;
        let corrupt = |reason: String| Error::ReportCorrupt { path: file.clone(), reason };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        match value.get("schema_version") {
            Some(v)
                if READABLE_SCHEMA_VERSIONS.iter().any(|&r| v.as_u64() == Some(u64::from(r))) => {}
            Some(v) => {
                return Err(Error::ReportSchema {
                    path: file,
                    found: v.to_string(),
                    supported: REPORT_SCHEMA_VERSION,
                })
            }
            None => return Err(corrupt("no schema_version".into())),
        }
        serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialize")
    }
}
