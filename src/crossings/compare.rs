//! Comparing two censuses. Calls and instructions are counted, not timed: the same build
//! on the same input gives the same counts, so a change beyond a small threshold
//! ([`THRESHOLD`]) is a real change, whatever the machine was doing. A crossing is the
//! same crossing in both when its caller, callee and direction match (the modules may
//! change version).
//!
//! A regression (what `--fail-on-regression` fails on): a crossing that is new, or that
//! makes more calls, or does more instructions per call inside the callee or in the
//! caller around it, by enough to move [`MATERIAL`] of the program's instructions. Fewer calls and less work are improvements; a crossing gone is one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::census::Direction;
use super::schema::{Census, Crossing};
use crate::error::Result;
use crate::fmt::signed_pct;

/// Version of a census comparison's compare.json.
pub(crate) const CENSUS_COMPARE_SCHEMA_VERSION: u32 = 1;

/// Relative change of a count below which it is unchanged: counts repeat exactly for the
/// same build and input, and a program that hashes with a random seed or meets another
/// thread at a lock moves a few of them by a few in a thousand.
pub(crate) const THRESHOLD: f64 = 0.005;

/// Changes below this many instructions per call are unchanged whatever their share (a
/// crossing of 2 instructions per call moving to 2.005 is the same work).
pub(crate) const MIN_INSTRUCTIONS: f64 = 0.5;

/// A change that moves fewer instructions than this share of the program's is not judged:
/// between two runs of one build, thread scheduling and the allocator's state move a few
/// small crossings (seen: `malloc` from `Thread::new`, 2 calls, 155 then 182 instructions
/// each, in a program of 1.5 million). A wrapper that grows by 40 instructions on 60 000
/// calls moves 2.4 million. Whatever the program's size, a change must also move at least
/// [`MIN_MOVED`] instructions.
pub(crate) const MATERIAL: f64 = 1e-4;

/// Instructions a change must move at least: a thread that joins after, not before, its
/// peer finished costs `pthread_join` about 100 instructions more, `malloc` under
/// another thread's arena some 10 more per call.
pub(crate) const MIN_MOVED: f64 = 5000.0;

/// What changed in one metric of one crossing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// More (a regression).
    More,
    /// Fewer or less.
    Less,
    /// Within the threshold.
    Unchanged,
}

/// One crossing of either census.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossingChange {
    /// `caller -> callee`.
    pub crossing: String,
    /// Its direction.
    pub direction: Direction,
    /// Calls before (absent: the crossing is new).
    pub old_calls: Option<u64>,
    /// Calls after (absent: the crossing is gone).
    pub new_calls: Option<u64>,
    /// Calls.
    pub calls: Change,
    /// Instructions per call inside the callee, before and after.
    pub instructions_per_call: (Option<f64>, Option<f64>),
    /// Their change.
    pub instructions: Change,
    /// The caller's own instructions per call, before and after.
    pub caller_instructions_per_call: (Option<f64>, Option<f64>),
    /// Their change.
    pub caller_instructions: Change,
    /// True when this is a regression.
    pub regression: bool,
}

/// Two censuses compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CensusComparison {
    /// [`CENSUS_COMPARE_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The older census.
    pub old: PathBuf,
    /// The newer census.
    pub new: PathBuf,
    /// [`THRESHOLD`].
    pub threshold: f64,
    /// Program instructions before and after.
    pub program_instructions: (u64, u64),
    /// Every crossing that changed, regressions first; unchanged ones are counted only.
    pub changes: Vec<CrossingChange>,
    /// Crossings in both with nothing changed.
    pub unchanged: usize,
}

impl CensusComparison {
    /// The regressions.
    pub fn regressions(&self) -> impl Iterator<Item = &CrossingChange> {
        self.changes.iter().filter(|c| c.regression)
    }

    /// compare.md.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ =
            writeln!(out, "# Crossings: {} against {}\n", self.new.display(), self.old.display());
        let (o, n) = self.program_instructions;
        let _ = writeln!(
            out,
            "Program instructions {o} -> {n} ({}). {} crossings unchanged, {} changed, {} regressions. Counts are exact; a change beyond {} is real.\n",
            signed_pct(n as f64 / o.max(1) as f64 - 1.0),
            self.unchanged,
            self.changes.len(),
            self.regressions().count(),
            crate::fmt::pct(self.threshold, 1)
        );
        if self.changes.is_empty() {
            out.push_str("No crossing changed.\n");
            return out;
        }
        out.push_str("| crossing | direction | calls | instr/call | caller instr/call | verdict |\n|---|---|---|---|---|---|\n");
        let count = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| v.to_string());
        let per = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.1}"));
        for c in &self.changes {
            let verdict = match (c.old_calls, c.new_calls) {
                (None, _) => "new crossing",
                (_, None) => "gone",
                _ if c.regression => "regression",
                _ => "improvement",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} -> {} | {} -> {} | {} -> {} | {} |",
                c.crossing.replace('|', "\\|"),
                c.direction.name(),
                count(c.old_calls),
                count(c.new_calls),
                per(c.instructions_per_call.0),
                per(c.instructions_per_call.1),
                per(c.caller_instructions_per_call.0),
                per(c.caller_instructions_per_call.1),
                verdict
            );
        }
        out
    }
}

fn judge(old: f64, new: f64, min_abs: f64) -> Change {
    let delta = new - old;
    if delta.abs() < min_abs || delta.abs() <= THRESHOLD * old.abs().max(f64::MIN_POSITIVE) {
        Change::Unchanged
    } else if delta > 0.0 {
        Change::More
    } else {
        Change::Less
    }
}

type Key = (String, String, Direction);

fn key(c: &Crossing) -> Key {
    (c.caller.clone(), c.callee.clone(), c.direction)
}

/// Compares two censuses.
pub(crate) fn compare(
    old: &Census,
    new: &Census,
    old_path: &Path,
    new_path: &Path,
) -> CensusComparison {
    let olds: BTreeMap<Key, &Crossing> = old.crossings.iter().map(|c| (key(c), c)).collect();
    let news: BTreeMap<Key, &Crossing> = new.crossings.iter().map(|c| (key(c), c)).collect();
    let mut keys: Vec<&Key> = olds.keys().chain(news.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut changes = Vec::new();
    let mut unchanged = 0;
    for k in keys {
        let (o, n) = (olds.get(k), news.get(k));
        // What a crossing's change moves, in instructions: below [`MATERIAL`] of the
        // program it is not judged.
        let program = old.totals.program_instructions.max(new.totals.program_instructions);
        let floor = (MATERIAL * program as f64).max(MIN_MOVED);
        let work = |c: &Crossing| c.instructions_per_call + c.caller_instructions_per_call;
        let material =
            |moved: f64, change: Change| if moved >= floor { change } else { Change::Unchanged };
        let calls = match (o, n) {
            (Some(o), Some(n)) => material(
                (n.calls as f64 - o.calls as f64).abs() * work(o).max(work(n)).max(1.0),
                judge(o.calls as f64, n.calls as f64, 1.0),
            ),
            (None, Some(n)) => material(n.calls as f64 * work(n).max(1.0), Change::More),
            (Some(o), None) => material(o.calls as f64 * work(o).max(1.0), Change::Less),
            (None, None) => Change::Unchanged,
        };
        let both = |f: fn(&Crossing) -> f64| match (o, n) {
            (Some(o), Some(n)) => material(
                (f(n) - f(o)).abs() * o.calls.max(n.calls) as f64,
                judge(f(o), f(n), MIN_INSTRUCTIONS),
            ),
            _ => Change::Unchanged,
        };
        let instructions = both(|c| c.instructions_per_call);
        let caller_instructions = both(|c| c.caller_instructions_per_call);
        if [calls, instructions, caller_instructions].iter().all(|c| *c == Change::Unchanged) {
            unchanged += 1;
            continue;
        }
        let regression = [calls, instructions, caller_instructions].contains(&Change::More);
        changes.push(CrossingChange {
            crossing: format!("{} -> {}", k.0, k.1),
            direction: k.2,
            old_calls: o.map(|c| c.calls),
            new_calls: n.map(|c| c.calls),
            calls,
            instructions_per_call: (
                o.map(|c| c.instructions_per_call),
                n.map(|c| c.instructions_per_call),
            ),
            instructions,
            caller_instructions_per_call: (
                o.map(|c| c.caller_instructions_per_call),
                n.map(|c| c.caller_instructions_per_call),
            ),
            caller_instructions,
            regression,
        });
    }
    changes.sort_by_key(|c| std::cmp::Reverse(c.regression));
    CensusComparison {
        schema_version: CENSUS_COMPARE_SCHEMA_VERSION,
        old: old_path.to_owned(),
        new: new_path.to_owned(),
        threshold: THRESHOLD,
        program_instructions: (old.totals.program_instructions, new.totals.program_instructions),
        changes,
        unchanged,
    }
}

/// Loads two censuses, compares them and writes compare.md and compare.json into `out`
/// (default: `<NEW>/compare-vs-<OLD's name>` when NEW is a directory, else beside it).
pub fn compare_paths(
    old: &Path,
    new: &Path,
    out: Option<&Path>,
) -> Result<(CensusComparison, PathBuf)> {
    let (o, n) = (Census::load(old)?, Census::load(new)?);
    let comparison = compare(&o, &n, old, new);
    let out = crate::output::write_comparison(old, new, out, &comparison, &comparison.markdown())?;
    Ok((comparison, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crossings::census::Verdict;
    use crate::crossings::cost::CallKind;
    use crate::crossings::schema::{Totals, CENSUS_SCHEMA_VERSION};
    use crate::stacks::Language;

    fn crossing(callee: &str, calls: u64, per_call: f64) -> Crossing {
        Crossing {
            caller: "prog::work".into(),
            caller_module: "prog".into(),
            caller_language: Language::Rust,
            callee: callee.into(),
            callee_module: "prog".into(),
            callee_language: Language::C,
            direction: Direction::RustToC,
            calls,
            instructions_per_call: per_call,
            instructions: (calls as f64 * per_call) as u64,
            caller_instructions_per_call: 5.0,
            share: 0.0,
            kind: CallKind::Direct,
            estimated_cost_ns: None,
            call_cost_ns: None,
            verdict: Verdict::Fine,
            through: Vec::new(),
            apportioned: false,
            processes: 1,
        }
    }

    fn census(program: u64, crossings: Vec<Crossing>) -> Census {
        Census {
            schema_version: CENSUS_SCHEMA_VERSION,
            tool: "ffiprof".into(),
            environment: crate::environment::Environment::detect(),
            command: vec!["prog".into()],
            exit_status: 0,
            valgrind: "valgrind".into(),
            trace_children: false,
            callgrind_seconds: 0.0,
            post_processing_seconds: 0.0,
            processes: Vec::new(),
            native: None,
            thresholds: Default::default(),
            cost_model: None,
            totals: Totals {
                crossings: crossings.len(),
                chatty: 0,
                calls: 0,
                calls_by_direction: Default::default(),
                program_instructions: program,
                estimated_cost_ns: None,
                call_cost_ns: None,
            },
            crossings,
            notes: Vec::new(),
        }
    }

    #[test]
    fn material_changes_are_judged_and_scheduling_noise_is_not() {
        let p = Path::new("x");
        let old =
            census(1_500_000, vec![crossing("cheap", 40_000, 2.0), crossing("malloc", 2, 155.0)]);
        // The same, but for malloc's 2 calls doing 27 more instructions: 54 of 1.5 million.
        let noise =
            census(1_500_100, vec![crossing("cheap", 40_000, 2.0), crossing("malloc", 2, 182.0)]);
        let c = compare(&old, &noise, p, p);
        assert_eq!((c.changes.len(), c.unchanged), (0, 2));
        // Twice the calls, a wrapper grown by 40 instructions, a new crossing: regressions.
        let twice =
            census(1_800_000, vec![crossing("cheap", 80_000, 2.0), crossing("malloc", 2, 155.0)]);
        assert_eq!(compare(&old, &twice, p, p).regressions().count(), 1);
        let grown =
            census(3_000_000, vec![crossing("cheap", 40_000, 42.0), crossing("malloc", 2, 155.0)]);
        let g = compare(&old, &grown, p, p);
        assert_eq!(g.changes[0].instructions, Change::More);
        let new = census(
            1_700_000,
            vec![
                crossing("cheap", 40_000, 2.0),
                crossing("malloc", 2, 155.0),
                crossing("step", 1000, 200.0),
            ],
        );
        let n = compare(&old, &new, p, p);
        assert!(n.regressions().any(|c| c.old_calls.is_none()));
        // Fewer calls is an improvement.
        assert_eq!(compare(&twice, &old, p, p).regressions().count(), 0);
    }

    #[test]
    fn counts_judged_exactly_with_a_small_threshold() {
        assert_eq!(judge(20000.0, 20000.0, 1.0), Change::Unchanged);
        assert_eq!(judge(20000.0, 20050.0, 1.0), Change::Unchanged);
        assert_eq!(judge(20000.0, 40000.0, 1.0), Change::More);
        assert_eq!(judge(20000.0, 10000.0, 1.0), Change::Less);
        assert_eq!(judge(3.0, 4.0, 1.0), Change::More);
        assert_eq!(judge(2.0, 2.2, MIN_INSTRUCTIONS), Change::Unchanged);
        assert_eq!(judge(17.0, 57.0, MIN_INSTRUCTIONS), Change::More);
    }
}
