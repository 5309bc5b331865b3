//! `ffiprof crossings -- PROGRAM`: an exact census of a program's Rust/C crossings, what
//! each costs, and whether batching would pay.
//!
//! Samples see time, not calls. The census counts calls: it runs the program under
//! callgrind (every thread; child processes with `--trace-children`), reads the call
//! graph callgrind writes ([`callgrind`]), gives every function its language and keeps
//! the edges that cross the boundary, glue looked through ([`census`]). For each crossing:
//! calls, instructions per call inside the callee, the caller's own instructions per
//! crossing, the share of the program's instructions below it, and a verdict (chatty or
//! fine, from the counts alone, so that it is the same on every run). What crossings
//! cost in time comes from the paired engine, measured at the start on the other core
//! while callgrind runs, or read from a run's report ([`cost`]); the program's own time
//! from one native run before the census. Two censuses compare exactly ([`compare`]).
//!
//! In the order data flows: [`Options`] -> native run -> callgrind run (beside the cost
//! measurement) -> [`callgrind::parse`] per process -> [`census::crossings`] ->
//! [`Census`] -> `crossings.json`, `crossings.md`, the terminal text.

pub(crate) mod callgrind;
pub(crate) mod census;
pub(crate) mod compare;
pub(crate) mod cost;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use census::{Direction, Thresholds, Verdict};
pub use compare::{compare_paths, CensusComparison};
pub use cost::{CallKind, CostModel};

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::fmt::{self, pct};
use crate::measure::Interval;
use crate::output::{write_under, Staging};
use crate::stacks::Language;

/// Version of `crossings.json`; documented in results/README.md.
pub const CENSUS_SCHEMA_VERSION: u32 = 1;

/// The census file's name in its directory.
pub const CENSUS_FILE: &str = "crossings.json";

/// Where the crossings' cost per call comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum CostSource {
    /// The paired engine, at the start of the census, each kind's case in this long.
    Measure(Duration),
    /// A run's report.json (or its directory).
    Report(PathBuf),
}

/// What to count and where to write it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The program and its arguments.
    pub command: Vec<OsString>,
    /// The census directory (replaced whole when complete).
    pub out: PathBuf,
    /// Follow child processes (valgrind's `--trace-children=yes`). Default: false.
    pub trace_children: bool,
    /// When a crossing is chatty.
    pub thresholds: Thresholds,
    /// Where the cost per call comes from. Default: measured, 0.6 s per kind.
    pub costs: CostSource,
    /// Native runs of the program for its own time (0: not timed). Default: 1.
    pub native_runs: usize,
    /// Callgrind files to read instead of running a program. Default: none.
    pub from: Vec<PathBuf>,
}

impl Options {
    /// Options with the defaults for `command`, writing to `out`.
    pub fn new(command: Vec<OsString>, out: PathBuf) -> Options {
        Options {
            command,
            out,
            trace_children: false,
            thresholds: Thresholds::default(),
            costs: CostSource::Measure(Duration::from_millis(600)),
            native_runs: 1,
            from: Vec::new(),
        }
    }

    /// Checks the settings before anything runs.
    pub fn validate(&self) -> Result<()> {
        if self.command.is_empty() == self.from.is_empty() {
            return Err(Error::InvalidOption(
                "give the program to count after `--` (ffiprof crossings -- PROGRAM [ARGS...]), \
                 or callgrind files with --from, not both"
                    .into(),
            ));
        }
        let t = &self.thresholds;
        if t.min_calls == 0 || !(t.max_instructions.is_finite() && t.max_instructions >= 0.0) {
            return Err(Error::InvalidOption(
                "--chatty-calls must be at least 1 and --chatty-instructions a number of at least 0"
                    .into(),
            ));
        }
        if self.native_runs > 100 {
            return Err(Error::InvalidOption("--native-runs is at most 100".into()));
        }
        Ok(())
    }
}

/// One crossing of the census.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossing {
    /// The calling function.
    pub caller: String,
    /// Its object's file name.
    pub caller_module: String,
    /// Its language.
    pub caller_language: Language,
    /// The called function.
    pub callee: String,
    /// Its object's file name.
    pub callee_module: String,
    /// Its language.
    pub callee_language: Language,
    /// `rust-to-c`, `rust-to-c-runtime`, `c-to-rust` or `c-runtime-to-rust`.
    pub direction: Direction,
    /// Calls, exact.
    pub calls: u64,
    /// Instructions per call inside the callee, what it calls included (inclusive).
    pub instructions_per_call: f64,
    /// Instructions inside all the calls.
    pub instructions: u64,
    /// The caller's own instructions (its calls excluded) per crossing it makes, over all
    /// its crossings: for a wrapper that crosses once per call, the wrapper's own work.
    pub caller_instructions_per_call: f64,
    /// Share of the program's instructions inside these calls.
    pub share: f64,
    /// The kind of call, for its cost.
    pub kind: CallKind,
    /// What the crossings themselves cost, ns in all, where the cost per call is known.
    pub estimated_cost_ns: Option<Interval>,
    /// For calls from Rust: what the calls themselves cost against the same work inlined
    /// (the direct call's figure), ns in all: what batching could save beyond
    /// `estimated_cost_ns` if the callee then inlined into the loop.
    #[serde(default)]
    pub call_cost_ns: Option<Interval>,
    /// Chatty or fine.
    pub verdict: Verdict,
    /// Glue passed through (trampolines).
    #[serde(default)]
    pub through: Vec<String>,
    /// Calls apportioned among the callers of shared glue, not counted exactly.
    #[serde(default)]
    pub apportioned: bool,
    /// Processes it was seen in.
    pub processes: u32,
}

impl Crossing {
    /// `caller -> callee`.
    pub fn label(&self) -> String {
        format!("{} -> {}", self.caller, self.callee)
    }
}

/// One process that callgrind followed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    /// Its pid under callgrind.
    pub pid: Option<u32>,
    /// Its command line.
    pub command: String,
    /// Instructions it executed.
    pub instructions: u64,
    /// Lines of its callgrind file that could not be read.
    pub unreadable_lines: u64,
}

/// The program's own time, natively.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NativeTime {
    /// Runs.
    pub runs: usize,
    /// Wall seconds, median of the runs.
    pub wall_seconds: f64,
    /// CPU seconds (user + system, every thread and child), median of the runs.
    pub cpu_seconds: f64,
}

/// The census as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Crossings (distinct caller -> callee pairs).
    pub crossings: usize,
    /// Chatty ones.
    pub chatty: usize,
    /// Calls over every crossing.
    pub calls: u64,
    /// Calls per direction, by its name.
    pub calls_by_direction: std::collections::BTreeMap<String, u64>,
    /// Instructions of the program, every process.
    pub program_instructions: u64,
    /// What every crossing costs in all, ns, where costs are known.
    pub estimated_cost_ns: Option<Interval>,
    /// What the calls from Rust cost against the same work inlined, ns in all.
    #[serde(default)]
    pub call_cost_ns: Option<Interval>,
}

/// A census: `crossings.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Census {
    /// [`CENSUS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `ffiprof <version>`.
    pub tool: String,
    /// The machine.
    pub environment: Environment,
    /// The program and its arguments as given.
    pub command: Vec<String>,
    /// Its exit status under callgrind (128 + signal when killed).
    pub exit_status: i32,
    /// valgrind's version line.
    pub valgrind: String,
    /// Child processes followed.
    pub trace_children: bool,
    /// Wall seconds of the callgrind run.
    pub callgrind_seconds: f64,
    /// Seconds spent reading callgrind's files and building the census.
    pub post_processing_seconds: f64,
    /// Every process counted.
    pub processes: Vec<Process>,
    /// The program's own time, natively, where timed.
    pub native: Option<NativeTime>,
    /// When a crossing is chatty.
    pub thresholds: Thresholds,
    /// What a crossing costs per call, where known.
    pub cost_model: Option<CostModel>,
    /// Sums.
    pub totals: Totals,
    /// Crossings: chatty first, then by calls.
    pub crossings: Vec<Crossing>,
    /// What the reader should know.
    pub notes: Vec<String>,
}

impl Census {
    /// Reads `crossings.json`, or `<dir>/crossings.json`.
    pub fn load(path: &Path) -> Result<Census> {
        let file = if path.is_dir() { path.join(CENSUS_FILE) } else { path.to_owned() };
        let text = std::fs::read_to_string(&file)
            .map_err(|source| Error::ReportMissing { path: file.clone(), source })?;
        let corrupt = |reason: String| Error::CensusCorrupt { path: file.clone(), reason };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        match value.get("schema_version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(CENSUS_SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(corrupt(format!(
                    "schema_version {v} is not supported (this ffiprof reads version {CENSUS_SCHEMA_VERSION})"
                )))
            }
            None => return Err(corrupt("no schema_version".into())),
        }
        serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))
    }

    /// The census as pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|source| Error::Serialize { what: "crossings.json", source })
    }

    /// One sentence on what the crossings cost against the program's time. Costs are
    /// never below zero ([`cost::charged`]); a total of nothing measurable says so, with
    /// its upper bound.
    pub fn cost_sentence(&self) -> String {
        let Some(cost) = &self.totals.estimated_cost_ns else {
            return "what the crossings cost in time is not known (no cost per call)".into();
        };
        if cost.lower <= 0.0 && cost.estimate <= 0.0 {
            let mut s = format!(
                "crossings have no measurable cost beyond a call (at most {}; the catalogue's \
                 per-call against batched is within its floors)",
                fmt::ns(cost.upper)
            );
            self.call_cost_words(&mut s);
            return s;
        }
        let mut s = format!("crossings cost about {}", interval_ns(cost));
        if cost.contains(0.0) {
            s.push_str(" (not distinguishable from nothing)");
        }
        match &self.native {
            Some(n) => {
                let cpu_ns = n.cpu_seconds * 1e9;
                let _ = write!(
                    s,
                    " of the program's {:.1} ms of CPU time ({:.1} ms wall, median of {} native run{})",
                    n.cpu_seconds * 1e3,
                    n.wall_seconds * 1e3,
                    n.runs,
                    if n.runs == 1 { "" } else { "s" }
                );
                if cpu_ns > 0.0 {
                    let _ = write!(
                        s,
                        ": {} [{}, {}]",
                        pct(cost.estimate / cpu_ns, 2),
                        pct(cost.lower / cpu_ns, 2),
                        pct(cost.upper / cpu_ns, 2)
                    );
                }
            }
            None => s.push_str(" (the program's own time was not measured)"),
        }
        self.call_cost_words(&mut s);
        s
    }

    /// What inlining the calls would save, true to its interval, with its source.
    fn call_cost_words(&self, s: &mut String) {
        let Some(call) = &self.totals.call_cost_ns else { return };
        let by = self
            .cost_model
            .as_ref()
            .and_then(|m| m.per_call(CallKind::Direct))
            .and_then(|k| k.call_measured_by.clone())
            .map_or(String::new(), |by| format!(", from {by}"));
        if call.upper <= 0.0 {
            let _ = write!(s, "; inlining the calls would save nothing measurable{by}");
        } else if call.lower <= 0.0 {
            let _ = write!(
                s,
                "; inlining the calls would save at most {} (not distinguishable from nothing{by})",
                fmt::ns(call.upper)
            );
        } else {
            let _ = write!(s, "; inlining the calls would save {}{by}", interval_ns(call));
        }
    }

    fn row(c: &Crossing, width: usize) -> Vec<String> {
        vec![
            format!("{} -> {}", shorten(&c.caller, width), shorten(&c.callee, width)),
            c.callee_module.clone(),
            c.direction.name().to_owned(),
            c.calls.to_string(),
            format!("{:.1}", c.instructions_per_call),
            format!("{:.1}", c.caller_instructions_per_call),
            pct(c.share, 2),
            c.estimated_cost_ns.map_or_else(|| "-".into(), |i| fmt::ns(i.estimate)),
            match c.verdict {
                Verdict::Chatty => "chatty".into(),
                Verdict::Fine => "fine".into(),
            },
        ]
    }

    const HEADER: [&'static str; 9] = [
        "caller -> callee",
        "callee module",
        "direction",
        "calls",
        "instr/call",
        "caller instr/call",
        "share",
        "est. cost",
        "verdict",
    ];

    fn headline(&self) -> String {
        let t = &self.totals;
        format!(
            "{} crossings, {} calls ({}), {} chatty; {} instructions in {} process{}",
            t.crossings,
            t.calls,
            t.calls_by_direction
                .iter()
                .map(|(d, n)| format!("{d} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            t.chatty,
            t.program_instructions,
            self.processes.len(),
            if self.processes.len() == 1 { "" } else { "es" }
        )
    }

    /// The terminal summary: chatty crossings first, then the largest by calls and by
    /// estimated cost, each with its verdict.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "crossings of `{}`: {}", self.command.join(" "), self.headline());
        let _ = writeln!(out, "{}", self.cost_sentence());
        let chatty: Vec<&Crossing> =
            self.crossings.iter().filter(|c| c.verdict == Verdict::Chatty).collect();
        let t = &self.thresholds;
        let section = |out: &mut String, title: String, rows: &[&Crossing]| {
            if rows.is_empty() {
                return;
            }
            let rows: Vec<Vec<String>> = rows.iter().map(|c| Census::row(c, 36)).collect();
            let _ = writeln!(out, "\n{title}");
            out.push_str(&fmt::table(&Census::HEADER, &rows, 3));
        };
        if chatty.is_empty() {
            let _ = writeln!(
                out,
                "\nno chatty crossing (at least {} calls of at most {} instructions each)",
                t.min_calls, t.max_instructions
            );
        } else {
            for c in chatty.iter().take(5) {
                let _ = writeln!(
                    out,
                    "\nchatty: {} -> {} ({}): {} calls doing {:.1} instructions each in {}, {:.1} in the caller around each{}",
                    shorten(&c.caller, 60),
                    shorten(&c.callee, 60),
                    c.callee_module,
                    c.calls,
                    c.instructions_per_call,
                    c.callee_language.name(),
                    c.caller_instructions_per_call,
                    c.estimated_cost_ns.map_or_else(String::new, |i| format!(
                        "; {}{}",
                        cost_words(&i),
                        c.call_cost_ns
                            .filter(|call| call.lower > 0.0)
                            .map_or_else(String::new, |call| format!(
                                ", inlining would save {}",
                                interval_ns(&call)
                            ))
                    ))
                );
            }
            if chatty.len() > 5 {
                let _ = writeln!(
                    out,
                    "\nand {} more chatty crossings (crossings.md lists every crossing)",
                    chatty.len() - 5
                );
            }
        }
        let mut by_calls: Vec<&Crossing> = self.crossings.iter().collect();
        by_calls.sort_by_key(|c| std::cmp::Reverse(c.calls));
        section(
            &mut out,
            "largest by calls:".into(),
            &by_calls.into_iter().take(5).collect::<Vec<_>>(),
        );
        let mut by_cost: Vec<&Crossing> =
            self.crossings.iter().filter(|c| c.estimated_cost_ns.is_some()).collect();
        by_cost.sort_by(|a, b| {
            let e = |c: &Crossing| c.estimated_cost_ns.map_or(0.0, |i| i.estimate);
            e(b).total_cmp(&e(a))
        });
        section(
            &mut out,
            "largest by estimated cost:".into(),
            &by_cost.into_iter().take(5).collect::<Vec<_>>(),
        );
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }

    /// `crossings.md`: the headline and every crossing in one table, for a pull request.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Crossings of `{}`\n", self.command.join(" "));
        let _ = writeln!(out, "{}.\n", self.headline());
        let _ = writeln!(out, "{}.\n", self.cost_sentence());
        let _ = writeln!(
            out,
            "Counted by callgrind ({}), exit status {}; chatty: at least {} calls of at most {} instructions each. `{}`, {} cores, {}.\n",
            self.valgrind,
            self.exit_status,
            self.thresholds.min_calls,
            self.thresholds.max_instructions,
            self.environment.cpu,
            self.environment.cores,
            self.environment.date
        );
        let _ = writeln!(out, "| {} |", Census::HEADER.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(Census::HEADER.len()));
        for c in &self.crossings {
            let mut cells: Vec<String> =
                Census::row(c, usize::MAX).into_iter().map(|s| s.replace('|', "\\|")).collect();
            // Code spans: Rust's `<T as Trait>` would read as HTML otherwise.
            let code = |name: &str| name.replace('`', "'").replace('|', "\\|");
            cells[0] = format!("`{}` -> `{}`", code(&c.caller), code(&c.callee));
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        if let Some(model) = &self.cost_model {
            let _ = writeln!(out, "\nCost per call ({}):\n", model.source);
            for k in &model.kinds {
                let o = &k.overhead_ns_per_call;
                let _ = writeln!(
                    out,
                    "- {:?}: {} [{}, {}] ({}{}){}",
                    k.kind,
                    fmt::ns(o.estimate),
                    fmt::ns(o.lower),
                    fmt::ns(o.upper),
                    k.measured_by,
                    if k.too_noisy { ", too noisy to trust" } else { "" },
                    if k.measurable && o.lower > 0.0 {
                        String::new()
                    } else {
                        format!(
                            ": not clear of the case's floors (noise ±{}, placement ±{}), so \
                             no measurable cost beyond a call is charged",
                            pct(k.noise_floor, 1),
                            pct(k.placement_floor, 1)
                        )
                    }
                );
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "\nNote: {note}");
        }
        out
    }
}

/// `12.3 µs [10.1 µs, 14.2 µs]`.
/// A crossing's cost in words, true to its interval: a cost where it is above zero,
/// else none measurable, with its upper bound.
fn cost_words(i: &Interval) -> String {
    if i.lower > 0.0 {
        format!("the crossings cost about {}", interval_ns(i))
    } else {
        format!("no measurable cost beyond a call (at most {})", fmt::ns(i.upper))
    }
}

fn interval_ns(i: &Interval) -> String {
    format!("{} [{}, {}]", fmt::ns(i.estimate), fmt::ns(i.lower), fmt::ns(i.upper))
}

/// A long function name cut to `width` characters, its start and end kept.
fn shorten(name: &str, width: usize) -> String {
    let n = name.chars().count();
    if n <= width {
        return name.to_owned();
    }
    let keep = width.saturating_sub(1) / 2;
    let head: String = name.chars().take(keep).collect();
    let tail: String = name.chars().skip(n - keep).collect();
    format!("{head}…{tail}")
}

/// Builds the census from the call graphs of every process.
pub(crate) fn build(
    graphs: &[callgrind::CallGraph],
    thresholds: Thresholds,
    cost_model: Option<&CostModel>,
) -> (Totals, Vec<Crossing>, Vec<Process>, Vec<String>) {
    let mut notes = Vec::new();
    let mut parts = Vec::new();
    let mut unknown = 0u64;
    for g in graphs {
        let (c, u) = census::crossings(g);
        parts.push(c);
        unknown += u;
    }
    if unknown > 0 {
        notes.push(format!(
            "{unknown} calls from Rust went into code without a symbol; they are not counted as crossings"
        ));
    }
    let counted = census::merge(parts);
    let own = census::self_instructions(graphs);
    let program: u64 = graphs.iter().map(|g| g.total).fold(0u64, u64::saturating_add);
    // The calls each caller makes across the boundary, for its own work per crossing.
    let mut caller_calls: std::collections::HashMap<(String, String), u64> = Default::default();
    for c in &counted {
        *caller_calls.entry((c.caller.module.clone(), c.caller.function.clone())).or_default() +=
            c.calls;
    }
    let mut crossings: Vec<Crossing> = counted
        .into_iter()
        .map(|c| {
            let key = (c.caller.module.clone(), c.caller.function.clone());
            let own = own.get(&key).copied().unwrap_or(0) as f64;
            let made = caller_calls.get(&key).copied().unwrap_or(1).max(1) as f64;
            let per_call = c.inclusive as f64 / c.calls.max(1) as f64;
            let kind = CallKind::of(c.direction, &c.caller.module, &c.callee.module);
            let estimated_cost_ns = cost_model
                .and_then(|m| m.per_call(kind))
                .map(|k| cost::total(c.calls, &k.charge()));
            let call_cost_ns = (!c.direction.is_callback())
                .then(|| cost_model.and_then(|m| m.per_call(CallKind::Direct)))
                .flatten()
                .and_then(|k| k.call_ns_per_call)
                .map(|per_call| cost::total(c.calls, &per_call));
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
                share: if program > 0 { c.inclusive as f64 / program as f64 } else { 0.0 },
                kind,
                estimated_cost_ns,
                call_cost_ns,
                verdict: thresholds.verdict(c.calls, per_call),
                through: c.through,
                apportioned: c.apportioned,
                processes: c.processes,
            }
        })
        .collect();
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
    let mut calls_by_direction = std::collections::BTreeMap::new();
    for c in &crossings {
        *calls_by_direction.entry(c.direction.name().to_owned()).or_insert(0u64) += c.calls;
    }
    let costs: Vec<Interval> = crossings.iter().filter_map(|c| c.estimated_cost_ns).collect();
    let costs = costs.iter();
    let totals = Totals {
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
    };
    let processes = graphs
        .iter()
        .map(|g| Process {
            pid: g.pid,
            command: g.command.clone(),
            instructions: g.total,
            unreadable_lines: g.unreadable_lines,
        })
        .collect();
    (totals, crossings, processes, notes)
}

/// A finished census.
pub struct Outcome {
    /// The census.
    pub census: Census,
    /// Its directory.
    pub out: PathBuf,
}

/// valgrind's version line, or the error that says how to install it.
fn valgrind_version() -> Result<String> {
    match Command::new("valgrind").arg("--version").output() {
        Ok(out) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
        _ => Err(Error::MissingTool {
            tool: "valgrind".into(),
            install: "the census runs the program under callgrind: apt-get install valgrind".into(),
        }),
    }
}

/// The exit status a shell would report: the code, or 128 + the signal.
fn shell_status(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}

/// Runs the program natively `runs` times, output discarded, for its own time.
fn native_time(program: &Path, args: &[OsString], runs: usize) -> Result<Option<NativeTime>> {
    if runs == 0 {
        return Ok(None);
    }
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let before = crate::ffi::children_cpu_seconds();
        let start = Instant::now();
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| Error::NoSuchProgram {
                program: program.display().to_string(),
                reason: format!("{e}"),
            })?;
        wall.push(start.elapsed().as_secs_f64());
        cpu.push(crate::ffi::children_cpu_seconds() - before);
    }
    let median = |v: &[f64]| crate::measure::stats::median(v).unwrap_or(0.0);
    Ok(Some(NativeTime { runs, wall_seconds: median(&wall), cpu_seconds: median(&cpu) }))
}

/// The last lines of valgrind's logs, for an error message.
fn log_tail(dir: &Path) -> String {
    let mut lines = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("valgrind.log") {
                if let Ok(text) = std::fs::read_to_string(e.path()) {
                    lines.extend(text.lines().map(str::to_owned));
                }
            }
        }
    }
    let start = lines.len().saturating_sub(4);
    lines[start..].join(" / ")
}

/// Reads callgrind's files, one call graph each.
fn read_graphs(files: &[PathBuf]) -> Result<Vec<callgrind::CallGraph>> {
    let mut graphs = Vec::with_capacity(files.len());
    for f in files {
        let bytes =
            std::fs::read(f).map_err(|source| Error::ReportMissing { path: f.clone(), source })?;
        graphs.push(callgrind::parse(&bytes));
    }
    Ok(graphs)
}

/// The callgrind files valgrind wrote into `dir`, in name order.
fn written(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| Error::Read { path: dir.to_owned(), source })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("callgrind.out")))
        .collect();
    files.sort();
    Ok(files)
}

/// What the callgrind run gave.
struct Ran {
    valgrind: String,
    command: Vec<String>,
    exit_status: i32,
    seconds: f64,
    native: Option<NativeTime>,
    files: Vec<PathBuf>,
}

/// Runs the program under callgrind into `raw`, the cost measurement (if asked) beside it
/// on the other core, after the native runs.
fn run_program(
    options: &Options,
    program: &Path,
    raw: &Path,
    valgrind: String,
) -> Result<(Ran, Option<Result<CostModel>>)> {
    let args = &options.command[1..];
    let native = native_time(program, args, options.native_runs)?;
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", raw.join("callgrind.out.%p").display()))
        .arg(format!("--log-file={}", raw.join("valgrind.log.%p").display()))
        .arg(format!("--trace-children={}", if options.trace_children { "yes" } else { "no" }))
        // Symbols bound at load: the first call through a PLT then goes to its function,
        // not through the dynamic linker's resolver, so every call counts on its edge.
        .env("LD_BIND_NOW", "1")
        .arg(program)
        .args(args);
    let (status, seconds, measured) = std::thread::scope(|s| {
        let costs = match &options.costs {
            CostSource::Measure(budget) => {
                let budget = *budget;
                Some(s.spawn(move || cost::measure(budget)))
            }
            CostSource::Report(_) => None,
        };
        // Ctrl-C reaches the program and valgrind, which writes what ran; ffiprof stays
        // to read it and pass on the program's status.
        let _ = crate::ffi::interrupt_flag();
        let start = Instant::now();
        let status = cmd.status();
        let seconds = start.elapsed().as_secs_f64();
        let measured = costs.map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(Error::Internal("the cost measurement panicked".into())))
        });
        (status, seconds, measured)
    });
    let status = status.map_err(|e| Error::Internal(format!("cannot start valgrind: {e}")))?;
    let files = written(raw)?;
    if files.is_empty() {
        return Err(Error::Internal(format!(
            "callgrind wrote no call graph ({status}): {}",
            log_tail(raw)
        )));
    }
    let ran = Ran {
        valgrind,
        command: options.command.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
        exit_status: shell_status(status),
        seconds,
        native,
        files,
    };
    Ok((ran, measured))
}

/// Counts the crossings of `options.command` (or reads [`Options::from`]): see the
/// module docs. Bad input (no valgrind, no such program, an unwritable `--out`, an
/// unreadable `--costs` report or callgrind file) is found before the program runs;
/// Ctrl-C ends the program, not the census. A program that fails still gets its census,
/// with its status in [`Census::exit_status`].
pub fn count(options: &Options) -> Result<Outcome> {
    options.validate()?;
    let (valgrind, program) = if options.from.is_empty() {
        let valgrind = valgrind_version()?;
        (valgrind, Some(crate::record::resolve_program(&options.command[0])?))
    } else {
        for f in &options.from {
            std::fs::metadata(f)
                .map_err(|source| Error::ReportMissing { path: f.clone(), source })?;
        }
        (String::from("(callgrind files given)"), None)
    };
    let report_model = match &options.costs {
        CostSource::Report(path) => Some(cost::from_report(path)?),
        CostSource::Measure(_) => None,
    };
    let staging = Staging::new(&options.out)?;
    let raw = staging.path().join("callgrind");
    std::fs::create_dir_all(&raw).map_err(|source| Error::Write { path: raw.clone(), source })?;
    let environment = Environment::detect();
    let (ran, measured) = match &program {
        Some(program) => run_program(options, program, &raw, valgrind)?,
        None => {
            let measured = match &options.costs {
                CostSource::Measure(budget) => Some(cost::measure(*budget)),
                CostSource::Report(_) => None,
            };
            let ran = Ran {
                valgrind,
                command: Vec::new(),
                exit_status: 0,
                seconds: 0.0,
                native: None,
                files: options.from.clone(),
            };
            (ran, measured)
        }
    };
    let post = Instant::now();
    let graphs = read_graphs(&ran.files)?;
    let mut notes = Vec::new();
    let cost_model = match (report_model, measured) {
        (Some(m), _) => Some(m),
        (None, Some(Ok(m))) => Some(m),
        (None, Some(Err(e))) => {
            notes.push(format!("the cost per call could not be measured: {e}"));
            None
        }
        (None, None) => None,
    };
    if let Some(m) = &cost_model {
        for k in m.kinds.iter().filter(|k| k.too_noisy) {
            notes.push(format!(
                "the {:?} cost per call ({}) was too noisy to trust: its A/A control differed",
                k.kind, k.measured_by
            ));
        }
    }
    let (totals, crossings, processes, more) =
        build(&graphs, options.thresholds, cost_model.as_ref());
    notes.extend(more);
    if ran.exit_status != 0 {
        notes.push(format!(
            "the program exited with status {}; the census counts what it ran",
            ran.exit_status
        ));
    }
    let command = if ran.command.is_empty() {
        graphs.first().map(|g| vec![g.command.clone()]).unwrap_or_default()
    } else {
        ran.command
    };
    let mut census = Census {
        schema_version: CENSUS_SCHEMA_VERSION,
        tool: format!("ffiprof {}", env!("CARGO_PKG_VERSION")),
        environment,
        command,
        exit_status: ran.exit_status,
        valgrind: ran.valgrind,
        trace_children: options.trace_children,
        callgrind_seconds: ran.seconds,
        post_processing_seconds: 0.0,
        processes,
        native: ran.native,
        thresholds: options.thresholds,
        cost_model,
        totals,
        crossings,
        notes,
    };
    census.post_processing_seconds = post.elapsed().as_secs_f64();
    write_under(staging.path(), Path::new(CENSUS_FILE), census.to_json()?.as_bytes())?;
    write_under(staging.path(), Path::new("crossings.md"), census.markdown().as_bytes())?;
    let out = staging.commit()?;
    Ok(Outcome { census, out })
}

/// True when `path` is a census: a `crossings.json`, or a directory holding one.
pub fn is_census(path: &Path) -> bool {
    if path.is_dir() {
        path.join(CENSUS_FILE).is_file()
    } else {
        path.file_name().is_some_and(|n| n == CENSUS_FILE)
    }
}
