//! Two heap censuses compared, exactly: DHAT counts bytes and blocks, so the same build on
//! the same input gives the same figures, and any change is a change. A site is the same
//! site in both when its function, language and Rust caller match (modules may change
//! version). A regression (what `--fail-on-regression` fails on): a new site, more bytes
//! or blocks live at the peak or at exit, or more blocks allocated (an allocation added
//! per call, say). Bytes allocated in all are shown, not judged: a buffer that grows
//! differently moves them without a leak or a larger peak.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::schema::{Figures, MemoryCensus};
use crate::error::{Error, Result};
use crate::fmt;
use crate::output::write_under;
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
    }
}

impl MemoryComparison {
    /// The regressions.
    pub fn regressions(&self) -> impl Iterator<Item = &SiteChange> {
        self.changes.iter().filter(|c| !c.regressions.is_empty())
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
        let regressions = self.regressions().count();
        let _ = writeln!(
            s,
            "{} sites unchanged, {} changed, {regressions} regression{}.\n",
            self.unchanged,
            self.changes.len(),
            if regressions == 1 { "" } else { "s" }
        );
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
    let out = crate::output::compare_dir(old, new, out);
    let json = serde_json::to_string_pretty(&comparison)
        .map_err(|source| Error::Serialize { what: "compare.json", source })?;
    write_under(&out, Path::new("compare.json"), json.as_bytes())?;
    write_under(&out, Path::new("compare.md"), comparison.markdown().as_bytes())?;
    Ok((comparison, out))
}
