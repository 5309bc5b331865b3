//! The census in words: the terminal text and `crossings.md`, each sentence that states
//! a cost true to its interval (never below zero: see [`super::cost`]).

use std::fmt::Write as _;

use super::census::Verdict;
use super::cost::CallKind;
use super::schema::{Census, Crossing};
use crate::fmt::{self, pct};
use crate::measure::Interval;

impl Census {
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
            c.estimated_cost_ns.map_or_else(
                || "-".into(),
                |i| {
                    if i.lower > 0.0 {
                        fmt::ns(i.estimate)
                    } else {
                        format!("≤ {}", fmt::ns(i.upper))
                    }
                },
            ),
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

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crossings::census::{Direction, Thresholds, Verdict};
    use crate::crossings::cost::{CostModel, KindCost};
    use crate::crossings::execute::NativeTime;
    use crate::crossings::schema::{Process, Totals, CENSUS_SCHEMA_VERSION};
    use crate::environment::Environment;
    use crate::output::golden;
    use crate::stacks::Language;

    fn iv(estimate: f64, lower: f64, upper: f64) -> Interval {
        Interval::new(estimate, lower, upper)
    }

    pub(crate) fn crossing(
        caller: &str,
        callee: &str,
        direction: Direction,
        calls: u64,
    ) -> Crossing {
        let (caller_language, callee_language) = match direction {
            Direction::RustToC => (Language::Rust, Language::C),
            Direction::RustToCRuntime => (Language::Rust, Language::CRuntime),
            Direction::CToRust => (Language::C, Language::Rust),
            Direction::CRuntimeToRust => (Language::CRuntime, Language::Rust),
        };
        let kind = CallKind::of(direction, "app", "app");
        let per_call = if calls > 1000 { 6.0 } else { 25_000.0 };
        Crossing {
            caller: caller.into(),
            caller_module: "app".into(),
            caller_language,
            callee: callee.into(),
            callee_module: "app".into(),
            callee_language,
            direction,
            calls,
            instructions_per_call: per_call,
            instructions: (per_call * calls as f64) as u64,
            caller_instructions_per_call: 4.0,
            share: 0.1,
            kind,
            estimated_cost_ns: Some(if kind == CallKind::Callback {
                iv(0.6 * calls as f64, 0.5 * calls as f64, 0.8 * calls as f64)
            } else {
                iv(0.0, 0.0, 0.05 * calls as f64)
            }),
            call_cost_ns: (kind == CallKind::Direct)
                .then(|| iv(1.1 * calls as f64, 1.0 * calls as f64, 1.2 * calls as f64)),
            verdict: Thresholds::default().verdict(calls, per_call),
            through: vec![],
            apportioned: false,
            processes: 1,
        }
    }

    fn kind(kind: CallKind, overhead: Interval, measurable: bool) -> KindCost {
        KindCost {
            kind,
            measured_by: format!("{:?} case", kind),
            overhead_ns_per_call: overhead,
            measurable,
            charged_ns_per_call: Some(crate::crossings::cost::charged(&overhead, measurable)),
            call_ns_per_call: (kind == CallKind::Direct).then(|| iv(1.1, 1.0, 1.2)),
            call_measured_by: (kind == CallKind::Direct)
                .then(|| "plusone/int per-call - per-call-xlto (cross-language LTO)".into()),
            noise_floor: 0.004,
            placement_floor: 0.3,
            too_noisy: false,
        }
    }

    /// A census built by hand: a chatty direct call whose cost is within the floors, an
    /// expensive call, and a callback with a measurable cost.
    pub(crate) fn hand_built() -> Census {
        let crossings = vec![
            crossing("app::hot_loop", "c_cheap", Direction::RustToC, 60_000),
            crossing("c_sort", "app::compare", Direction::CToRust, 20_000),
            crossing("app::main", "c_expensive", Direction::RustToC, 12),
        ];
        let mut calls_by_direction = BTreeMap::new();
        calls_by_direction.insert("rust-to-c".to_owned(), 60_012);
        calls_by_direction.insert("c-to-rust".to_owned(), 20_000);
        let totals = Totals {
            crossings: 3,
            chatty: 2,
            calls: 80_012,
            calls_by_direction,
            program_instructions: 19_361_997,
            estimated_cost_ns: Some(iv(12_000.0, 10_000.0, 19_000.6)),
            call_cost_ns: Some(iv(66_013.2, 60_012.0, 72_014.4)),
        };
        Census {
            schema_version: CENSUS_SCHEMA_VERSION,
            tool: "ffiprof test".into(),
            environment: Environment {
                cpu: "Test CPU".into(),
                cores: 2,
                kernel: "6.0".into(),
                rustc: "rustc 1.95.0".into(),
                c_compiler: "cc 12".into(),
                glibc: "2.36".into(),
                perf_event_paranoid: "2".into(),
                host: "host".into(),
                date: "2026-12-03T00:00:00Z".into(),
            },
            command: vec!["./app".into(), "--items".into(), "60000".into()],
            exit_status: 0,
            valgrind: "valgrind-3.19.0".into(),
            trace_children: false,
            callgrind_seconds: 1.5,
            post_processing_seconds: 0.01,
            processes: vec![Process {
                pid: Some(42),
                command: "./app".into(),
                instructions: 19_361_997,
                unreadable_lines: 0,
            }],
            native: Some(NativeTime { runs: 1, wall_seconds: 0.02, cpu_seconds: 0.019 }),
            thresholds: Thresholds::default(),
            cost_model: Some(CostModel {
                source: "measured".into(),
                kinds: vec![
                    kind(CallKind::Direct, iv(-0.02, -0.05, 0.05), false),
                    kind(CallKind::SharedLibrary, iv(0.3, 0.2, 0.4), true),
                    kind(CallKind::Callback, iv(0.6, 0.5, 0.8), true),
                ],
            }),
            totals,
            crossings,
            notes: vec!["a note".into()],
        }
    }

    #[test]
    fn markdown_and_terminal_text_of_a_hand_built_census_match_golden() {
        let census = hand_built();
        golden("crossings.md", &census.markdown());
        golden("crossings.txt", &census.text());
        assert_eq!(census.crossings[0].verdict, Verdict::Chatty);
    }

    #[test]
    fn no_sentence_states_a_cost_below_zero() {
        let mut census = hand_built();
        // Every crossing within the floors: nothing measurable, an upper bound only.
        for c in &mut census.crossings {
            c.estimated_cost_ns = Some(iv(0.0, 0.0, 30.0));
        }
        census.totals.estimated_cost_ns = Some(iv(0.0, 0.0, 90.0));
        let s = census.cost_sentence();
        assert!(s.contains("no measurable cost beyond a call (at most 90.0 ns"), "{s}");
        assert!(!s.contains('-') || !s.contains("cost about -"), "{s}");
        let text = census.text();
        assert!(!text.contains("cost about -"), "{text}");
        // A saving from inlining that straddles zero says so.
        census.totals.call_cost_ns = Some(iv(5.0, -3.0, 12.0));
        let s = census.cost_sentence();
        assert!(s.contains("at most 12.0 ns (not distinguishable from nothing"), "{s}");
    }
}
