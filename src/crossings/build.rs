//! The census from the counts: every process's crossings merged, each given its kind,
//! cost (where the cost model has one) and verdict, and the totals.

use std::collections::{BTreeMap, HashMap};

use super::callgrind::CallGraph;
use super::census::{self, Counted, Thresholds, Verdict};
use super::cost::{self, CallKind, CostModel};
use super::schema::{Crossing, Process, Totals};

/// What the census is built into.
pub(super) struct Built {
    /// Sums over the crossings.
    pub(super) totals: Totals,
    /// Chatty first, then by calls.
    pub(super) crossings: Vec<Crossing>,
    /// Every process counted.
    pub(super) processes: Vec<Process>,
    /// What the reader should know.
    pub(super) notes: Vec<String>,
}

/// What every crossing's figures are computed against.
struct Context<'a> {
    thresholds: Thresholds,
    cost_model: Option<&'a CostModel>,
    /// Each caller's own instructions, its calls excluded.
    own: HashMap<(String, String), u64>,
    /// The calls each caller makes across the boundary.
    caller_calls: HashMap<(String, String), u64>,
    /// The program's instructions, every process.
    program: u64,
}

impl Context<'_> {
    fn crossing(&self, c: Counted) -> Crossing {
        let key = (c.caller.module.clone(), c.caller.function.clone());
        let own = self.own.get(&key).copied().unwrap_or(0) as f64;
        let made = self.caller_calls.get(&key).copied().unwrap_or(1).max(1) as f64;
        let per_call = c.inclusive as f64 / c.calls.max(1) as f64;
        let kind = CallKind::of(c.direction, &c.caller.module, &c.callee.module);
        let model = self.cost_model;
        let estimated_cost_ns =
            model.and_then(|m| m.per_call(kind)).map(|k| cost::total(c.calls, &k.charge()));
        // What inlining would save: only where the callee is in the caller's own object,
        // which cross-language LTO can reach (not a shared library, not a callback).
        let call_cost_ns = (kind == CallKind::Direct)
            .then(|| model.and_then(|m| m.per_call(CallKind::Direct)))
            .flatten()
            .and_then(|k| k.call_ns_per_call)
            .map(|per_call| cost::total(c.calls, &per_call));
        let share = if self.program > 0 { c.inclusive as f64 / self.program as f64 } else { 0.0 };
        Crossing {
            caller: c.caller.function,
            caller_module: c.caller.module,
            caller_language: c.caller.language,
            callee: c.callee.function,
            callee_module: c.callee.module,
            callee_language: c.callee.language,
            direction: c.direction,
            calls: c.calls,
            instructions_per_call: per_call,
            instructions: c.inclusive,
            caller_instructions_per_call: own / made,
            share,
            kind,
            estimated_cost_ns,
            call_cost_ns,
            verdict: self.thresholds.verdict(c.calls, per_call),
            through: c.through,
            apportioned: c.apportioned,
            processes: c.processes,
        }
    }
}

/// Every process's crossings, merged; a note when calls went into code without a symbol.
fn counted(graphs: &[CallGraph]) -> (Vec<Counted>, Option<String>) {
    let mut parts = Vec::new();
    let mut unknown = 0u64;
    for g in graphs {
        let (c, u) = census::crossings(g);
        parts.push(c);
        unknown += u;
    }
    let note = (unknown > 0).then(|| {
        format!(
            "{unknown} calls from Rust went into code without a symbol; they are not counted \
             as crossings"
        )
    });
    (census::merge(parts), note)
}

fn totals(crossings: &[Crossing], program: u64, cost_model: Option<&CostModel>) -> Totals {
    let mut calls_by_direction = BTreeMap::new();
    for c in crossings {
        *calls_by_direction.entry(c.direction.name().to_owned()).or_insert(0u64) += c.calls;
    }
    let costs = crossings.iter().filter_map(|c| c.estimated_cost_ns.as_ref());
    Totals {
        crossings: crossings.len(),
        chatty: crossings.iter().filter(|c| c.verdict == Verdict::Chatty).count(),
        calls: crossings.iter().map(|c| c.calls).sum(),
        calls_by_direction,
        program_instructions: program,
        estimated_cost_ns: cost_model.map(|_| cost::sum(costs)),
        call_cost_ns: crossings
            .iter()
            .any(|c| c.call_cost_ns.is_some())
            .then(|| cost::sum(crossings.iter().filter_map(|c| c.call_cost_ns.as_ref()))),
    }
}

/// Builds the census from the call graphs of every process.
pub(super) fn build(
    graphs: &[CallGraph],
    thresholds: Thresholds,
    cost_model: Option<&CostModel>,
) -> Built {
    let (counted, unknown) = counted(graphs);
    let mut notes: Vec<String> = unknown.into_iter().collect();
    let mut caller_calls: HashMap<(String, String), u64> = HashMap::new();
    for c in &counted {
        *caller_calls.entry((c.caller.module.clone(), c.caller.function.clone())).or_default() +=
            c.calls;
    }
    let context = Context {
        thresholds,
        cost_model,
        own: census::self_instructions(graphs),
        caller_calls,
        program: graphs.iter().map(|g| g.total).fold(0u64, u64::saturating_add),
    };
    let mut crossings: Vec<Crossing> = counted.into_iter().map(|c| context.crossing(c)).collect();
    crossings.sort_by(|a, b| {
        (b.verdict == Verdict::Chatty)
            .cmp(&(a.verdict == Verdict::Chatty))
            .then(b.calls.cmp(&a.calls))
            .then_with(|| a.label().cmp(&b.label()))
    });
    if crossings.iter().any(|c| c.apportioned) {
        notes.push(
            "calls marked `apportioned` went through glue shared by several callers: they are \
             split by each caller's share, not counted per caller"
                .into(),
        );
    }
    let totals = totals(&crossings, context.program, cost_model);
    let processes = graphs
        .iter()
        .map(|g| Process {
            pid: g.pid,
            command: g.command.clone(),
            instructions: g.total,
            unreadable_lines: g.unreadable_lines,
        })
        .collect();
    Built { totals, crossings, processes, notes }
}
