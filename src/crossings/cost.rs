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
//! with the interval carried through. What the model cannot know: work the compiler
//! would save if the loop and the callee met in one language (inlining, vectorisation);
//! the catalogue's `rust-inlined` variant shows the size of that on a trivial function.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::census::Direction;
use crate::error::{Error, Result};
use crate::measure::{self, Interval};
use crate::report::Report;
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
    /// paired rounds with its 95% interval.
    pub overhead_ns_per_call: Interval,
    /// For direct calls: what the call itself costs against the same work inlined into
    /// the loop (`plusone/int`, `per-call` minus `rust-inlined`): what a crossing loses
    /// that a loop and callee in one language (or cross-language LTO) would not pay.
    #[serde(default)]
    pub call_ns_per_call: Option<Interval>,
    /// The case's noise floor (the A/A control's reach from 1).
    pub noise_floor: f64,
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
        workload
            .variants
            .retain(|v| v.role == Role::Baseline || v.name == variant || v.name == INLINED);
        let input = workload.input(Some(input))?.clone();
        let mut options = measure::Options::new(true);
        options.budget_per_case = Some(budget);
        // Pooled over processes, as `bench` and `run` do: within one process two call
        // sites can differ steadily by a fraction of a nanosecond, differently in the
        // next, and only the spread over layouts shows it.
        options.processes = PROCESSES;
        let case = measure::measure_case(&workload, &input, &options)?;
        let overhead = |name: &str| {
            case.variants.iter().find(|v| v.name == name).and_then(|v| v.overhead_ns_per_call)
        };
        let v = overhead(variant).ok_or_else(|| {
            Error::Internal(format!("{w}/{} left no overhead for {variant}", input.name))
        })?;
        kinds.push(KindCost {
            kind,
            measured_by: format!("{w}/{} {variant}", input.name),
            overhead_ns_per_call: v,
            call_ns_per_call: overhead(INLINED).map(|i| v.minus(&i)),
            noise_floor: case.header.paired.noise_floor,
            too_noisy: case.header.paired.too_noisy,
        });
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
        let Some(v) = case.variants.iter().find(|v| v.timing.name == variant) else { continue };
        let Some(overhead) = v.timing.overhead_ns_per_call else { continue };
        let inlined = case
            .variants
            .iter()
            .find(|v| v.timing.name == INLINED)
            .and_then(|v| v.timing.overhead_ns_per_call);
        kinds.push(KindCost {
            kind,
            measured_by: format!("{w}/{input} {variant}"),
            overhead_ns_per_call: overhead,
            call_ns_per_call: inlined.map(|i| overhead.minus(&i)),
            noise_floor: case.header.paired.noise_floor,
            too_noisy: case.header.paired.too_noisy,
        });
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
    fn totals_scale_and_sum_with_their_bounds() {
        let per_call = Interval::new(0.5, 0.25, 1.0);
        let a = total(1000, &per_call);
        assert_eq!((a.estimate, a.lower, a.upper), (500.0, 250.0, 1000.0));
        let s = sum([&a, &Interval::new(1.0, -1.0, 2.0)]);
        assert_eq!((s.estimate, s.lower, s.upper), (501.0, 249.0, 1002.0));
    }
}
