//! What one crossing costs on this machine, measured, and what a program's crossings cost
//! in all.
//!
//! The model (results/README.md, "crossings.json"): a crossing costs what the same work
//! costs done one call per item from the other side, minus what it costs done in one
//! call that loops on the callee's side. The catalogue measures exactly that difference
//! with the paired engine, per kind of call:
//! - **direct**: Rust calling a C function linked into the same object
//!   (`plusone/int`, `per-call` against `batched`);
//! - **shared library**: Rust calling into another object, through a pointer as through
//!   the PLT (`dylib/int`, `per-call-dylib` against `batched`);
//! - **callback**: C calling back into Rust through a function pointer
//!   (`callback/u64`, `raw-pointer` against `batched`).
//!
//! A census's crossing of a kind costs its calls times that kind's overhead per call,
//! with the interval carried through, but only where the overhead is measurable: clear
//! of the case's noise floor and of its placement floor (what code placement alone does
//! to identical work), and above zero. Otherwise the crossing has no measurable cost
//! beyond a call, and is charged 0 with the measurement's upper bound as "at most": a
//! call never saves time, so no census gives a cost below zero. What the model keeps
//! apart: the work the compiler would save if the loop and the callee met in one
//! language (the call itself, inlining): `plusone/int`'s per-call minus its
//! `per-call-xlto` (cross-language LTO) where that was measured, else minus
//! `rust-inlined`, labelled with which.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::census::Direction;
use crate::error::{Error, Result};
use crate::measure::paired::{Judgement, PairedSummary, PlacementRange};
use crate::measure::{self, Interval};
use crate::report::Report;
use crate::workload::per_call_xlto;
use crate::workload::{self, Role};

/// The kind of call a crossing is, for its cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallKind {
    /// Within one object.
    Direct,
    /// Into another object (a shared library).
    SharedLibrary,
    /// C into Rust through a function pointer.
    Callback,
}

impl CallKind {
    /// The kind of a crossing from `caller_module` to `callee_module` going `direction`.
    pub fn of(direction: Direction, caller_module: &str, callee_module: &str) -> CallKind {
        if direction.is_callback() {
            CallKind::Callback
        } else if caller_module == callee_module {
            CallKind::Direct
        } else {
            CallKind::SharedLibrary
        }
    }

    /// The catalogue case and variant that measure it: (workload, input, variant).
    pub fn case(self) -> (&'static str, &'static str, &'static str) {
        match self {
            CallKind::Direct => ("plusone", "int", "per-call"),
            CallKind::SharedLibrary => ("dylib", "int", "per-call-dylib"),
            CallKind::Callback => ("callback", "u64", "raw-pointer"),
        }
    }

    /// Every kind.
    pub const ALL: [CallKind; 3] = [CallKind::Direct, CallKind::SharedLibrary, CallKind::Callback];
}

/// The catalogue's variant that does a direct call's work inlined in Rust.
const INLINED: &str = "rust-inlined";

/// One kind's cost per call, as measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindCost {
    /// The kind.
    pub kind: CallKind,
    /// `workload/input variant` of the catalogue that measured it.
    pub measured_by: String,
    /// ns per call of the per-call variant minus the batched baseline's, median over
    /// paired rounds with its 95% interval, as measured.
    pub overhead_ns_per_call: Interval,
    /// True when that overhead clears the case's floors (noise and placement) and is
    /// above zero: only then is a crossing charged it.
    #[serde(default = "measurable_by_default")]
    pub measurable: bool,
    /// What a crossing is charged per call: the overhead where measurable, else 0 with
    /// the overhead's upper bound (at least 0) as "at most". Never below zero.
    #[serde(default)]
    pub charged_ns_per_call: Option<Interval>,
    /// For direct calls: what the call itself costs against the same work inlined into
    /// the loop: what a crossing loses that a loop and callee in one language (or
    /// cross-language LTO) would not pay. `call_measured_by` says which. Held at zero or
    /// above, as [`KindCost::charged_ns_per_call`] is: a saving below zero is no saving.
    #[serde(default)]
    pub call_ns_per_call: Option<Interval>,
    /// `plusone/int per-call - per-call-xlto` (measured with cross-language LTO) or
    /// `plusone/int per-call - rust-inlined`.
    #[serde(default)]
    pub call_measured_by: Option<String>,
    /// The case's noise floor (the A/A control's reach from 1).
    pub noise_floor: f64,
    /// The case's placement floor (the A/A control's reach from 1 across code
    /// placements).
    #[serde(default)]
    pub placement_floor: f64,
    /// The control called identical work different: the figure is not to be trusted.
    pub too_noisy: bool,
}

/// What crossings cost here, per kind, and where the figures come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostModel {
    /// `measured` (paired rounds at the start of the census) or the report read.
    pub source: String,
    /// One per kind the source had.
    pub kinds: Vec<KindCost>,
}

fn measurable_by_default() -> bool {
    true
}

impl KindCost {
    /// What a crossing of this kind is charged per call ([`KindCost::charged_ns_per_call`],
    /// or for a census written before it, the overhead with its bounds held at zero or
    /// above).
    pub fn charge(&self) -> Interval {
        self.charged_ns_per_call
            .unwrap_or_else(|| charged(&self.overhead_ns_per_call, self.measurable))
    }
}

/// What a crossing is charged per call for an `overhead`: itself where `measurable` and
/// above zero, else nothing measurable, at most its upper bound (at least 0).
pub(crate) fn charged(overhead: &Interval, measurable: bool) -> Interval {
    if measurable && overhead.lower > 0.0 {
        *overhead
    } else {
        Interval::new(0.0, 0.0, overhead.upper.max(0.0))
    }
}

/// The per-call variant's figures in a case, in the census's terms: its overhead, whether
/// it is measurable, and what inlining would save against `per-call-xlto` or the
/// reference (labelled).
struct Measured {
    overhead: Interval,
    measurable: bool,
    call: Option<(Interval, String)>,
}

/// Reads a case's variant `variant` against its baseline. `find` gives a variant's
/// (overhead, ratio, placement range).
fn read_case(
    key: &str,
    variant: &str,
    summary: &PairedSummary,
    find: impl Fn(&str) -> Option<(Interval, Interval, Option<PlacementRange>)>,
) -> Option<Measured> {
    let (overhead, ratio, placement) = find(variant)?;
    let measurable = summary.judge(&ratio, placement.as_ref()) == Judgement::Measurable;
    let call =
        [(per_call_xlto::NAME, "cross-language LTO"), (INLINED, "the same work inlined in Rust")]
            .into_iter()
            .find_map(|(name, what)| {
                let (inlined, _, _) = find(name)?;
                Some((overhead.minus(&inlined), format!("{key} {variant} - {name} ({what})")))
            });
    Some(Measured { overhead, measurable, call })
}

impl CostModel {
    /// The cost per call of `kind`, if known.
    pub fn per_call(&self, kind: CallKind) -> Option<&KindCost> {
        self.kinds.iter().find(|k| k.kind == kind)
    }
}

/// Processes each kind's case is measured in (child processes of this executable, which
/// must be ffiprof: its hidden `__paired-case` command).
const PROCESSES: usize = 3;

/// Measures every kind with the paired engine, each case in `budget` shared among
/// [`PROCESSES`] child processes of this executable.
pub(crate) fn measure(budget: Duration) -> Result<CostModel> {
    let mut kinds = Vec::new();
    for kind in CallKind::ALL {
        let (w, input, variant) = kind.case();
        let mut workload = workload::find(w)?;
        // The baseline and the one per-call variant: the others are not needed here.
        workload.variants.retain(|v| {
            v.role == Role::Baseline || [variant, INLINED, per_call_xlto::NAME].contains(&v.name)
        });
        let input = workload.input(Some(input))?.clone();
        let mut options = measure::Options::new(true);
        options.budget_per_case = Some(budget);
        // Pooled over processes, as `bench` and `run` do: within one process two call
        // sites can differ steadily by a fraction of a nanosecond, differently in the
        // next, and only the spread over layouts shows it.
        options.processes = PROCESSES;
        let case = measure::measure_case(&workload, &input, &options)?;
        let key = format!("{w}/{}", input.name);
        let m = read_case(&key, variant, &case.header.paired, |name| {
            let v = case.variants.iter().find(|v| v.name == name)?;
            Some((v.overhead_ns_per_call?, v.ratio?, v.placement))
        })
        .ok_or_else(|| Error::Internal(format!("{key} left no overhead for {variant}")))?;
        kinds.push(kind_cost(kind, &key, variant, m, &case.header.paired));
    }
    Ok(CostModel { source: "measured".into(), kinds })
}

/// Reads the kinds' costs from a run's report (`ffiprof run`'s report.json or its
/// directory): whatever cases it has.
pub(crate) fn from_report(path: &std::path::Path) -> Result<CostModel> {
    let report = Report::load(path)?;
    let mut kinds = Vec::new();
    for kind in CallKind::ALL {
        let (w, input, variant) = kind.case();
        let Some(case) =
            report.workloads.iter().find(|c| c.header.name == w && c.header.input == input)
        else {
            continue;
        };
        let key = format!("{w}/{input}");
        let Some(m) = read_case(&key, variant, &case.header.paired, |name| {
            let t = &case.variants.iter().find(|v| v.timing.name == name)?.timing;
            Some((t.overhead_ns_per_call?, t.ratio?, t.placement))
        }) else {
            continue;
        };
        kinds.push(kind_cost(kind, &key, variant, m, &case.header.paired));
    }
    if kinds.is_empty() {
        return Err(Error::ReportCorrupt {
            path: path.to_owned(),
            reason: "it has none of plusone/int, dylib/int or callback/u64, whose per-call \
                     overheads the census needs; give a full run's report"
                .into(),
        });
    }
    Ok(CostModel { source: path.display().to_string(), kinds })
}

fn kind_cost(
    kind: CallKind,
    key: &str,
    variant: &str,
    m: Measured,
    summary: &PairedSummary,
) -> KindCost {
    let (saving, call_measured_by) = m.call.unzip();
    // What inlining saves is held at zero or above, as a charge is: an inlined loop that
    // measured slower than the call (a machine's memory or placement at work) saves
    // nothing, at most the interval's upper bound; it is never a saving below zero.
    let call_ns_per_call = saving.map(|s| charged(&s, s.lower > 0.0));
    KindCost {
        kind,
        measured_by: format!("{key} {variant}"),
        overhead_ns_per_call: m.overhead,
        measurable: m.measurable,
        charged_ns_per_call: Some(charged(&m.overhead, m.measurable)),
        call_ns_per_call,
        call_measured_by,
        noise_floor: summary.noise_floor,
        placement_floor: summary.placement_floor,
        too_noisy: summary.too_noisy,
    }
}

/// `calls` crossings at `per_call` ns each, in ns.
pub(crate) fn total(calls: u64, per_call: &Interval) -> Interval {
    let n = calls as f64;
    Interval::new(per_call.estimate * n, per_call.lower * n, per_call.upper * n)
}

/// The sum of several costs: estimates add, and so do the bounds (the figures of one
/// kind come from one measurement, so their errors move together).
pub(crate) fn sum<'a>(costs: impl IntoIterator<Item = &'a Interval>) -> Interval {
    costs.into_iter().fold(Interval::new(0.0, 0.0, 0.0), |a, c| {
        Interval::new(a.estimate + c.estimate, a.lower + c.lower, a.upper + c.upper)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_direction_and_modules() {
        assert_eq!(CallKind::of(Direction::RustToC, "prog", "prog"), CallKind::Direct);
        assert_eq!(CallKind::of(Direction::RustToC, "prog", "libz.so.1"), CallKind::SharedLibrary);
        assert_eq!(
            CallKind::of(Direction::RustToCRuntime, "prog", "libc.so.6"),
            CallKind::SharedLibrary
        );
        assert_eq!(
            CallKind::of(Direction::CRuntimeToRust, "libc.so.6", "prog"),
            CallKind::Callback
        );
    }

    #[test]
    fn a_crossing_is_never_charged_below_zero() {
        let below = Interval::new(-0.5, -0.8, -0.2);
        let c = charged(&below, true);
        assert_eq!((c.estimate, c.lower, c.upper), (0.0, 0.0, 0.0), "a saving is no cost");
        let straddles = Interval::new(0.1, -0.2, 0.4);
        let c = charged(&straddles, false);
        assert_eq!((c.estimate, c.lower, c.upper), (0.0, 0.0, 0.4), "at most its upper bound");
        let real = Interval::new(2.0, 1.5, 2.5);
        assert_eq!(charged(&real, true), real);
        assert_eq!(charged(&real, false).estimate, 0.0, "not clear of the floors: not charged");
    }

    #[test]
    fn what_inlining_saves_is_never_below_zero() {
        let summary = PairedSummary {
            rounds: 100,
            stop: crate::measure::paired::Stop::Precise,
            seconds: 1.0,
            noise_floor: 0.002,
            min_effect: 0.01,
            too_noisy: false,
            placement_floor: 0.05,
        };
        let by = "plusone/int per-call - per-call-xlto (cross-language LTO)".to_owned();
        let measured = |call: Interval| Measured {
            overhead: Interval::new(0.27, 0.2, 0.3),
            measurable: true,
            call: Some((call, by.clone())),
        };
        // The LTO loop slower than the call (a per-item memory round trip on Intel).
        let slower = kind_cost(
            CallKind::Direct,
            "plusone/int",
            "per-call",
            measured(Interval::new(-0.86, -1.1, 0.1)),
            &summary,
        );
        let saved = slower.call_ns_per_call.unwrap();
        assert_eq!((saved.estimate, saved.lower, saved.upper), (0.0, 0.0, 0.1));
        let wholly_below = Interval::new(-0.86, -1.1, -0.6);
        let k = kind_cost(
            CallKind::Direct,
            "plusone/int",
            "per-call",
            measured(wholly_below),
            &summary,
        );
        let saved = k.call_ns_per_call.unwrap();
        assert_eq!((saved.estimate, saved.lower, saved.upper), (0.0, 0.0, 0.0));
        let real = Interval::new(1.09, 1.07, 1.11);
        let k = kind_cost(CallKind::Direct, "plusone/int", "per-call", measured(real), &summary);
        assert_eq!(k.call_ns_per_call, Some(real));
        assert_eq!(k.call_measured_by.as_deref(), Some(by.as_str()));
    }

    #[test]
    fn totals_scale_and_sum_with_their_bounds() {
        let per_call = Interval::new(0.5, 0.25, 1.0);
        let a = total(1000, &per_call);
        assert_eq!((a.estimate, a.lower, a.upper), (500.0, 250.0, 1000.0));
        let s = sum([&a, &Interval::new(1.0, -1.0, 2.0)]);
        assert_eq!((s.estimate, s.lower, s.upper), (501.0, 249.0, 1002.0));
    }
}
