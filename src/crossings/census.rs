//! From call graphs to crossings: each function's language, glue looked through, the
//! edges that cross the Rust/C boundary, their counts, work per call and verdicts.
//!
//! A function's language follows the rules of [`crate::stacks::classify`], given
//! callgrind's name, object and source file. Edges between two functions of one side are
//! not crossings; an edge into glue (a PLT stub, a trampoline, rustc's `main` shim) is
//! followed through it to the function behind. Where one glue function has several
//! callers and several callees, callgrind does not say which caller's calls went where:
//! its calls are apportioned by each caller's share and the crossing is marked
//! `apportioned` (never the case for a PLT stub, which callgrind already skips).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::callgrind::{CallGraph, Edge, FnId};
use crate::stacks::{classify, Frame, Language};

/// Which way a crossing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Rust calling C or C++ (a library's or the project's).
    RustToC,
    /// Rust calling the C runtime (libc, libm, ld.so, ...), shown apart: allocation,
    /// I/O and `memcpy` go this way.
    RustToCRuntime,
    /// C or C++ calling back into Rust.
    CToRust,
    /// The C runtime calling Rust: `qsort` comparators, thread and program start.
    CRuntimeToRust,
}

impl Direction {
    /// The direction of a call from `caller` to `callee`, if it crosses.
    pub fn of(caller: Language, callee: Language) -> Option<Direction> {
        match (caller, callee) {
            (Language::Rust, Language::C | Language::Cpp) => Some(Direction::RustToC),
            (Language::Rust, Language::CRuntime) => Some(Direction::RustToCRuntime),
            (Language::C | Language::Cpp, Language::Rust) => Some(Direction::CToRust),
            (Language::CRuntime, Language::Rust) => Some(Direction::CRuntimeToRust),
            _ => None,
        }
    }

    /// Its name in crossings.json.
    pub fn name(self) -> &'static str {
        match self {
            Direction::RustToC => "rust-to-c",
            Direction::RustToCRuntime => "rust-to-c-runtime",
            Direction::CToRust => "c-to-rust",
            Direction::CRuntimeToRust => "c-runtime-to-rust",
        }
    }

    /// True for calls from C into Rust.
    pub fn is_callback(self) -> bool {
        matches!(self, Direction::CToRust | Direction::CRuntimeToRust)
    }
}

/// The census's word on a crossing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Many calls, little work in each: the crossing's own cost is a large part of the
    /// work, and handing the callee the whole loop would save most of it.
    Chatty,
    /// Few calls, or enough work per call that the crossing's cost is small beside it.
    Fine,
}

/// When a crossing is chatty: at least `min_calls` calls, at most `max_instructions`
/// instructions per call inside the callee.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Calls at or above which a crossing can be chatty.
    pub min_calls: u64,
    /// Instructions per call (inside the callee, inclusive) at or below which it is.
    pub max_instructions: f64,
}

impl Default for Thresholds {
    /// 10 000 calls and 100 instructions: a direct call and return costs a few
    /// instructions and about a nanosecond, a few per cent of 100 instructions' work;
    /// below 10 000 calls even 10 ns each is under 0.1 ms.
    fn default() -> Self {
        Thresholds { min_calls: 10_000, max_instructions: 100.0 }
    }
}

impl Thresholds {
    /// The verdict on `calls` calls of `per_call` instructions each.
    pub fn verdict(&self, calls: u64, per_call: f64) -> Verdict {
        if calls >= self.min_calls && per_call <= self.max_instructions {
            Verdict::Chatty
        } else {
            Verdict::Fine
        }
    }
}

/// One side of a crossing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Side {
    /// The function (demangled).
    pub function: String,
    /// The file name of its object (`libz.so.1`, the program's name).
    pub module: String,
    /// Its language.
    pub language: Language,
}

/// A crossing as counted, before costs: what [`crossings`] returns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Counted {
    /// The calling function.
    pub caller: Side,
    /// The called function.
    pub callee: Side,
    /// Which way.
    pub direction: Direction,
    /// Calls.
    pub calls: u64,
    /// Instructions inside the calls (the callee, what it calls, glue on the way).
    pub inclusive: u64,
    /// Glue functions passed through (PLT stubs, trampolines).
    pub through: Vec<String>,
    /// Calls apportioned among a glue function's callers (see the module docs).
    pub apportioned: bool,
    /// Processes it was seen in.
    pub processes: u32,
}

/// Language of a call graph's function.
pub(crate) fn language(function: &super::callgrind::Function) -> Language {
    if function.name.starts_with("0x") {
        return Language::Unknown;
    }
    let module = Path::new(&function.object)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|m| !m.is_empty());
    let frame = Frame {
        function: Some(function.name.clone()),
        module,
        file: function.file.clone(),
        line: None,
        inlined: false,
    };
    match classify(0, &frame) {
        // A trampoline whose source is Rust (profiles draw ffiprof's own as glue) is the
        // Rust code C calls back: the call into it crosses.
        Language::Glue if function.file.as_deref().is_some_and(|f| f.ends_with(".rs")) => {
            Language::Rust
        }
        language => language,
    }
}

/// valgrind's own objects preloaded into the program: not the program's code.
fn is_valgrinds(object: &str) -> bool {
    Path::new(object).file_name().is_some_and(|n| n.to_string_lossy().starts_with("vgpreload_"))
}

fn module(object: &str) -> String {
    Path::new(object)
        .file_name()
        .map_or_else(|| object.to_owned(), |n| n.to_string_lossy().into_owned())
}

/// How deep a chain of glue is followed.
const GLUE_DEPTH: usize = 4;

struct Graph {
    lang: Vec<Language>,
    out: Vec<Vec<Edge>>,
    calls_in: Vec<u64>,
}

/// An edge from a non-glue caller to a non-glue callee, glue looked through.
struct Resolved {
    callee: FnId,
    calls: f64,
    inclusive: f64,
    through: Vec<FnId>,
    apportioned: bool,
}

impl Graph {
    /// Follows `calls` calls (with `inclusive` instructions) into `glue` to the functions
    /// it calls; `share` is the part of the glue's calls they stand for.
    fn through(
        &self,
        glue: FnId,
        calls: f64,
        inclusive: f64,
        path: &mut Vec<FnId>,
        out: &mut Vec<Resolved>,
        apportioned: bool,
    ) {
        let edges = &self.out[glue];
        let into = self.calls_in[glue] as f64;
        if into == 0.0 || edges.is_empty() || path.len() >= GLUE_DEPTH || path.contains(&glue) {
            return;
        }
        path.push(glue);
        let one_to_one = edges.len() == 1 && edges[0].calls == self.calls_in[glue];
        let out_inclusive: f64 = edges.iter().map(|e| e.inclusive as f64).sum();
        // This caller's part of the glue's calls.
        let share = calls / into;
        for e in edges {
            let (c, incl, approx) = if one_to_one {
                (calls, inclusive, apportioned)
            } else {
                let incl_share =
                    if out_inclusive > 0.0 { e.inclusive as f64 / out_inclusive } else { 0.0 };
                (e.calls as f64 * share, inclusive * incl_share, apportioned || share < 1.0)
            };
            if self.lang[e.callee] == Language::Glue {
                self.through(e.callee, c, incl, path, out, approx);
            } else {
                out.push(Resolved {
                    callee: e.callee,
                    calls: c,
                    inclusive: incl,
                    through: path.clone(),
                    apportioned: approx,
                });
            }
        }
        path.pop();
    }
}

/// The crossings of one process's call graph, glue looked through, in no particular
/// order; and the calls that reached code without a symbol from Rust or C.
pub(crate) fn crossings(g: &CallGraph) -> (Vec<Counted>, u64) {
    let lang: Vec<Language> = g.functions.iter().map(language).collect();
    let mut out = vec![Vec::new(); g.functions.len()];
    let mut calls_in = vec![0u64; g.functions.len()];
    for e in &g.edges {
        out[e.caller].push(*e);
        calls_in[e.callee] = calls_in[e.callee].saturating_add(e.calls);
    }
    let graph = Graph { lang, out, calls_in };
    let mut merged: BTreeMap<(FnId, FnId), Counted> = BTreeMap::new();
    let mut unknown = 0u64;
    for (caller, edges) in graph.out.iter().enumerate() {
        let caller = FnId(caller as u32);
        let from = graph.lang[caller];
        if !(from == Language::Rust || from.is_c_side())
            || is_valgrinds(&g.functions[caller].object)
        {
            continue;
        }
        for e in edges {
            let mut resolved = Vec::new();
            if graph.lang[e.callee] == Language::Glue {
                graph.through(
                    e.callee,
                    e.calls as f64,
                    e.inclusive as f64,
                    &mut Vec::new(),
                    &mut resolved,
                    false,
                );
            } else {
                resolved.push(Resolved {
                    callee: e.callee,
                    calls: e.calls as f64,
                    inclusive: e.inclusive as f64,
                    through: Vec::new(),
                    apportioned: false,
                });
            }
            for r in resolved {
                let to = graph.lang[r.callee];
                if to == Language::Unknown && from == Language::Rust {
                    unknown = unknown.saturating_add(r.calls.round() as u64);
                }
                let Some(direction) = Direction::of(from, to) else { continue };
                if is_valgrinds(&g.functions[r.callee].object) {
                    continue;
                }
                let side = |i: FnId| Side {
                    function: g.functions[i].name.clone(),
                    module: module(&g.functions[i].object),
                    language: graph.lang[i],
                };
                let entry = merged.entry((caller, r.callee)).or_insert_with(|| Counted {
                    caller: side(caller),
                    callee: side(r.callee),
                    direction,
                    calls: 0,
                    inclusive: 0,
                    through: Vec::new(),
                    apportioned: false,
                    processes: 1,
                });
                entry.calls = entry.calls.saturating_add(r.calls.round() as u64);
                entry.inclusive = entry.inclusive.saturating_add(r.inclusive.round() as u64);
                entry.apportioned |= r.apportioned;
                for t in r.through {
                    let name = &g.functions[t].name;
                    if !entry.through.contains(name) {
                        entry.through.push(name.clone());
                    }
                }
            }
        }
    }
    (merged.into_values().filter(|c| c.calls > 0).collect(), unknown)
}

/// The crossings of several processes' call graphs, summed per caller and callee.
pub(crate) fn merge(parts: Vec<Vec<Counted>>) -> Vec<Counted> {
    let mut merged: HashMap<(Side, Side), Counted> = HashMap::new();
    for part in parts {
        for c in part {
            match merged.entry((c.caller.clone(), c.callee.clone())) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(c);
                }
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let m = o.get_mut();
                    m.calls = m.calls.saturating_add(c.calls);
                    m.inclusive = m.inclusive.saturating_add(c.inclusive);
                    m.apportioned |= c.apportioned;
                    m.processes += 1;
                    for t in c.through {
                        if !m.through.contains(&t) {
                            m.through.push(t);
                        }
                    }
                }
            }
        }
    }
    let mut out: Vec<Counted> = merged.into_values().collect();
    out.sort_by(|a, b| {
        b.calls.cmp(&a.calls).then_with(|| (&a.caller, &a.callee).cmp(&(&b.caller, &b.callee)))
    });
    out
}

/// Each function's own instructions, summed over the call graphs, by (object file name,
/// function): what the caller spends around its crossings.
pub(crate) fn self_instructions(graphs: &[CallGraph]) -> HashMap<(String, String), u64> {
    let mut out: HashMap<(String, String), u64> = HashMap::new();
    for g in graphs {
        for f in &g.functions {
            let e = out.entry((module(&f.object), f.name.clone())).or_default();
            *e = e.saturating_add(f.self_instructions);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::callgrind::parse;
    use super::*;

    /// A Rust loop calling a cheap C function through a trampoline-free direct call, an
    /// expensive one, and a C sort calling a Rust comparator through a Rust trampoline.
    const GRAPH: &str = "events: Ir
summary: 100000
ob=(1) /x/prog
fl=(1) src/main.rs
fn=(1) prog::work
0 5000
cfi=(2) cheap.c
cfn=(2) cheap
calls=20000 0
0 40000
cfn=(3) expensive
calls=3 0
0 30000
cob=(2) /lib/x86_64-linux-gnu/libc.so.6
cfi=(3) msort.c
cfn=(4) qsort
calls=1 0
0 9000
fl=(2)
fn=(2)
0 40000
fn=(3)
0 30000
ob=(2)
fl=(3)
fn=(4)
0 1000
cob=(1)
cfi=(1)
cfn=(5) prog::cb_trampoline
calls=400 0
0 8000
ob=(1)
fl=(1)
fn=(5)
0 800
cfn=(6) prog::compare
calls=400 0
0 7200
fn=(6)
0 7200
";

    #[test]
    fn crossings_of_a_known_graph() {
        let g = parse(GRAPH.as_bytes());
        let (mut found, unknown) = crossings(&g);
        assert_eq!(unknown, 0);
        found.sort_by_key(|c| c.callee.function.clone());
        let names: Vec<(&str, &str, Direction, u64, u64)> = found
            .iter()
            .map(|c| {
                (
                    c.caller.function.as_str(),
                    c.callee.function.as_str(),
                    c.direction,
                    c.calls,
                    c.inclusive,
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("prog::work", "cheap", Direction::RustToC, 20000, 40000),
                ("prog::work", "expensive", Direction::RustToC, 3, 30000),
                // The trampoline is Rust, so the crossing ends at it: not glue by name.
                ("qsort", "prog::cb_trampoline", Direction::CRuntimeToRust, 400, 8000),
                ("prog::work", "qsort", Direction::RustToCRuntime, 1, 9000),
            ]
        );
        let t = Thresholds::default();
        assert_eq!(t.verdict(20000, 2.0), Verdict::Chatty);
        assert_eq!(t.verdict(3, 10000.0), Verdict::Fine);
    }

    #[test]
    fn glue_is_looked_through_and_shared_glue_apportioned() {
        let text = "events: Ir
ob=/x/prog
fl=a.rs
fn=prog::a
0 1
cfl=???
cfn=ffiprof::ffi::x_trampoline
calls=30 0
0 300
fn=prog::b
0 1
cfl=???
cfn=ffiprof::ffi::x_trampoline
calls=10 0
0 100
fl=???
fn=ffiprof::ffi::x_trampoline
0 40
cfl=c.c
cfn=cfun
calls=40 0
0 360
fl=c.c
fn=cfun
0 360
";
        let g = parse(text.as_bytes());
        let (found, _) = crossings(&g);
        let a = found.iter().find(|c| c.caller.function == "prog::a").unwrap();
        let b = found.iter().find(|c| c.caller.function == "prog::b").unwrap();
        assert_eq!((a.callee.function.as_str(), a.calls, a.inclusive), ("cfun", 30, 300));
        assert_eq!((b.calls, b.inclusive), (10, 100));
        // One callee that the glue calls once per call: exact, not apportioned.
        assert!(!a.apportioned && !b.apportioned);
        assert_eq!(a.through, vec!["ffiprof::ffi::x_trampoline".to_owned()]);
    }

    #[test]
    fn merging_processes_sums_counts() {
        let g = parse(GRAPH.as_bytes());
        let parts = vec![crossings(&g).0, crossings(&g).0];
        let merged = merge(parts);
        let cheap = merged.iter().find(|c| c.callee.function == "cheap").unwrap();
        assert_eq!((cheap.calls, cheap.processes), (40000, 2));
        assert_eq!(merged[0].callee.function, "cheap");
    }
}
