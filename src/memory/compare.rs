//! Two heap censuses compared, exactly: DHAT counts bytes and blocks, so the same build on
//! the same input gives the same figures, and any change is a change. A site is the same
//! site in both when its function, language and Rust caller match (modules may change
//! version). A regression (what `--fail-on-regression` fails on): a new site, more bytes
//! or blocks live at the peak or at exit, or more blocks allocated (an allocation added
//! per call, say). Bytes allocated in all are shown, not judged: a buffer that grows
//! differently moves them without a leak or a larger peak. With ownership (the native
//! engine), a new pair of crossed allocator families (Rust's block freed by C, say) or
//! more blocks in one, and more invalid frees, are regressions too.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::schema::{Figures, MemoryCensus, Ownership};
use crate::error::Result;
use crate::fmt;
use crate::stacks::Language;

/// Version of a heap comparison's compare.json.
pub(crate) const MEMORY_COMPARE_SCHEMA_VERSION: u32 = 1;

/// One site of either census whose figures differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteChange {
    /// The function that asked.
    pub function: String,
    /// Its language.
    pub language: Language,
    /// Its Rust caller.
    pub rust_caller: Option<String>,
    /// Before (absent: a new site).
    pub old: Option<Figures>,
    /// After (absent: the site is gone).
    pub new: Option<Figures>,
    /// What makes it a regression, in words; empty for an improvement or a change that is
    /// not judged.
    pub regressions: Vec<String>,
}

/// A comparison of two heap censuses: compare.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryComparison {
    /// [`MEMORY_COMPARE_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The older census.
    pub old: String,
    /// The newer.
    pub new: String,
    /// Both totals, old then new.
    pub totals: (Figures, Figures),
    /// Sites with the same figures in both.
    pub unchanged: usize,
    /// The rest, regressions first.
    pub changes: Vec<SiteChange>,
    /// Crossed and invalid frees whose counts differ (censuses with ownership).
    #[serde(default)]
    pub ownership_changes: Vec<OwnershipChange>,
}

/// A crossed free or an invalid one whose count differs between the censuses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnershipChange {
    /// What it is, in words.
    pub what: String,
    /// Blocks (or invalid frees) before.
    pub old: u64,
    /// After.
    pub new: u64,
    /// True where it is a regression: new, or more.
    pub regression: bool,
}

/// Crossed frees and invalid frees by what they are, in words.
fn ownership_counts(o: Option<&Ownership>) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    let Some(o) = o else { return m };
    let under = |r: &Option<String>| r.as_ref().map_or(String::new(), |r| format!(" under {r}"));
    for c in &o.crossed_frees {
        let what = format!(
            "allocated by {} in {}{}, freed by {} in {}{}",
            c.allocated_by.name(),
            c.alloc_function,
            under(&c.alloc_rust_caller),
            c.freed_by.name(),
            c.free_function,
            under(&c.free_rust_caller)
        );
        *m.entry(what).or_default() += c.blocks;
    }
    for i in &o.invalid_frees {
        let kind = match i.kind {
            super::schema::InvalidFreeKind::DoubleFree => "double free",
            super::schema::InvalidFreeKind::NeverAllocated => "free of what was never allocated",
        };
        *m.entry(format!("{kind} in {}{}", i.function, under(&i.rust_caller))).or_default() +=
            i.count;
    }
    m
}

fn ownership_changes(old: &MemoryCensus, new: &MemoryCensus) -> Vec<OwnershipChange> {
    let (a, b) =
        (ownership_counts(old.ownership.as_ref()), ownership_counts(new.ownership.as_ref()));
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut changes: Vec<OwnershipChange> = keys
        .into_iter()
        .filter_map(|k| {
            let (o, n) = (a.get(k).copied().unwrap_or(0), b.get(k).copied().unwrap_or(0));
            // A census without ownership (DHAT's) says nothing either way.
            let judged = old.ownership.is_some() && new.ownership.is_some();
            (o != n).then(|| OwnershipChange {
                what: k.clone(),
                old: o,
                new: n,
                regression: judged && n > o,
            })
        })
        .collect();
    changes.sort_by_key(|c| !c.regression);
    changes
}

type Key = (String, Language, Option<String>);

fn regressions(old: Option<&Figures>, new: &Figures) -> Vec<String> {
    let Some(o) = old else {
        return vec!["a new site".into()];
    };
    let mut why = Vec::new();
    let mut more = |what: &str, a: u64, b: u64| {
        if b > a {
            why.push(format!("{what} {} -> {}", fmt::count(a), fmt::count(b)));
        }
    };
    more("bytes at the peak", o.bytes_at_peak, new.bytes_at_peak);
    more("blocks at the peak", o.blocks_at_peak, new.blocks_at_peak);
    more("bytes at exit", o.bytes_at_exit, new.bytes_at_exit);
    more("blocks at exit", o.blocks_at_exit, new.blocks_at_exit);
    more("blocks allocated", o.blocks, new.blocks);
    why
}

/// Compares `old` with `new`, named as given.
pub(crate) fn compare(
    old: &MemoryCensus,
    new: &MemoryCensus,
    old_name: &Path,
    new_name: &Path,
) -> MemoryComparison {
    let index = |c: &MemoryCensus| -> BTreeMap<Key, Figures> {
        let mut m: BTreeMap<Key, Figures> = BTreeMap::new();
        for s in &c.sites {
            m.entry((s.function.clone(), s.language, s.rust_caller.clone()))
                .or_default()
                .add(&s.figures);
        }
        m
    };
    let (o, n) = (index(old), index(new));
    let mut keys: Vec<&Key> = o.keys().chain(n.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut unchanged = 0;
    let mut changes = Vec::new();
    for key in keys {
        let (a, b) = (o.get(key), n.get(key));
        if a == b {
            unchanged += 1;
            continue;
        }
        changes.push(SiteChange {
            function: key.0.clone(),
            language: key.1,
            rust_caller: key.2.clone(),
            old: a.copied(),
            new: b.copied(),
            regressions: b.map(|b| regressions(a, b)).unwrap_or_default(),
        });
    }
    changes.sort_by_key(|c| c.regressions.is_empty());
    MemoryComparison {
        schema_version: MEMORY_COMPARE_SCHEMA_VERSION,
        old: old_name.display().to_string(),
        new: new_name.display().to_string(),
        totals: (old.totals, new.totals),
        unchanged,
        changes,
        ownership_changes: ownership_changes(old, new),
    }
}

impl MemoryComparison {
    /// The sites that regressed.
    pub fn regressions(&self) -> impl Iterator<Item = &SiteChange> {
        self.changes.iter().filter(|c| !c.regressions.is_empty())
    }

    /// True where anything regressed: a site, or ownership.
    pub fn regressed(&self) -> bool {
        self.regressions().next().is_some() || self.ownership_changes.iter().any(|c| c.regression)
    }

    /// compare.md.
    pub fn markdown(&self) -> String {
        let mut s = format!("# Heap census: {} -> {}\n\n", self.old, self.new);
        let (a, b) = &self.totals;
        let _ = writeln!(
            s,
            "At the peak {} -> {} bytes; at exit {} -> {} bytes; {} -> {} blocks allocated.\n",
            fmt::count(a.bytes_at_peak),
            fmt::count(b.bytes_at_peak),
            fmt::count(a.bytes_at_exit),
            fmt::count(b.bytes_at_exit),
            fmt::count(a.blocks),
            fmt::count(b.blocks)
        );
        let regressions = self.regressions().count()
            + self.ownership_changes.iter().filter(|c| c.regression).count();
        let _ = writeln!(
            s,
            "{} sites unchanged, {} changed, {regressions} regression{}.\n",
            self.unchanged,
            self.changes.len(),
            if regressions == 1 { "" } else { "s" }
        );
        if !self.ownership_changes.is_empty() {
            s.push_str("| ownership | before | after | regression |\n|---|---:|---:|---|\n");
            for c in &self.ownership_changes {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} |",
                    c.what.replace('|', "\\|"),
                    fmt::count(c.old),
                    fmt::count(c.new),
                    if c.regression { "more blocks crossed" } else { "" }
                );
            }
            s.push('\n');
        }
        if self.changes.is_empty() {
            return s;
        }
        s.push_str("| site | Rust caller | at peak | at exit | blocks | regression |\n|---|---|---:|---:|---:|---|\n");
        let pair = |a: Option<u64>, b: Option<u64>| {
            let f = |v: Option<u64>| v.map_or("-".to_owned(), fmt::count);
            format!("{} -> {}", f(a), f(b))
        };
        for c in &self.changes {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                c.function.replace('|', "\\|"),
                c.rust_caller.as_deref().unwrap_or("").replace('|', "\\|"),
                pair(c.old.map(|f| f.bytes_at_peak), c.new.map(|f| f.bytes_at_peak)),
                pair(c.old.map(|f| f.bytes_at_exit), c.new.map(|f| f.bytes_at_exit)),
                pair(c.old.map(|f| f.blocks), c.new.map(|f| f.blocks)),
                c.regressions.join("; ")
            );
        }
        s
    }
}

/// Compares the censuses at `old` and `new` (directories or memory.json files), and
/// writes compare.json and compare.md into `out` (default: `NEW/compare-vs-<OLD's name>`).
pub fn compare_paths(
    old: &Path,
    new: &Path,
    out: Option<&Path>,
) -> Result<(MemoryComparison, PathBuf)> {
    let (o, n) = (MemoryCensus::load(old)?, MemoryCensus::load(new)?);
    let comparison = compare(&o, &n, old, new);
    let out = crate::output::write_comparison(old, new, out, &comparison, &comparison.markdown())?;
    Ok((comparison, out))
}
