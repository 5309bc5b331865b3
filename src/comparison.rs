//! `ffiprof compare OLD NEW`: two runs, two crossings censuses or two heap censuses, told
//! apart by the files they hold, each compared by its own section, and whether the newer
//! one regressed.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::report::compare::{self, Metric};

/// What two paths hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Two runs (`report.json`, or its directory).
    Runs,
    /// Two crossings censuses (`crossings.json`).
    Crossings,
    /// Two heap censuses (`memory.json`).
    Heap,
    /// Two lifetimes censuses (`lifetimes.json`).
    Lifetimes,
}

impl Kind {
    /// The census `path` is, if it is one.
    pub fn census_of(path: &Path) -> Option<Kind> {
        if crate::memory::is_memory_census(path) {
            Some(Kind::Heap)
        } else if crate::lifetimes::is_lifetimes_census(path) {
            Some(Kind::Lifetimes)
        } else if crate::crossings::is_census(path) {
            Some(Kind::Crossings)
        } else {
            None
        }
    }

    /// What `old` and `new` are: two censuses of one kind, or (neither a census) two runs.
    /// A census beside something else is the user's to fix.
    pub fn of_pair(old: &Path, new: &Path) -> Result<Kind> {
        match (Kind::census_of(old), Kind::census_of(new)) {
            (None, None) => Ok(Kind::Runs),
            (Some(a), Some(b)) if a == b => Ok(a),
            (a, b) => {
                let kind = a.or(b).expect("one of them is a census");
                let other = if a.is_some() { new } else { old };
                Err(Error::InvalidOption(format!(
                    "{} is not a {kind} census (no {}): compare two {kind} censuses, or two runs",
                    other.display(),
                    kind.file()
                )))
            }
        }
    }

    /// The file that makes a directory one of this kind.
    pub fn file(self) -> &'static str {
        match self {
            Kind::Runs => "report.json",
            Kind::Crossings => crate::crossings::CENSUS_FILE,
            Kind::Heap => crate::memory::MEMORY_FILE,
            Kind::Lifetimes => crate::lifetimes::LIFETIMES_FILE,
        }
    }

    /// What a regression of this kind is, in words.
    pub fn regression(self) -> &'static str {
        match self {
            Kind::Runs => "significant slowdown",
            Kind::Crossings => "more crossings or more work per crossing",
            Kind::Heap => {
                "a new site, more memory live or allocated, or more blocks freed by another \
                 allocator than the one that served them"
            }
            Kind::Lifetimes => "a new memory error, or one found more often",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Runs => "run",
            Kind::Crossings => "crossings",
            Kind::Heap => "heap",
            Kind::Lifetimes => "lifetimes",
        })
    }
}

/// How to compare.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Runs: changes of a time ratio below this many percent are never significant.
    /// Default: 5.
    pub threshold_percent: f64,
    /// Runs: which slowdowns are regressions. Default: both. (A census's regression is
    /// exact, whatever this says.)
    pub metric: Metric,
    /// Where compare.md and compare.json go. Default: `<NEW>/compare-vs-<OLD's name>`.
    pub out: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options { threshold_percent: 5.0, metric: Metric::Both, out: None }
    }
}

/// What `compare` produced.
#[derive(Debug, Clone)]
pub struct Compared {
    /// What was compared.
    pub kind: Kind,
    /// compare.md's text.
    pub markdown: String,
    /// The directory written.
    pub out: PathBuf,
    /// Differential flamegraphs written (runs only).
    pub differentials: Option<usize>,
    /// Whether the newer one regressed.
    pub regressed: bool,
}

/// Compares `old` with `new`, whatever kind they are, and writes compare.md and
/// compare.json.
pub fn compare(old: &Path, new: &Path, options: &Options) -> Result<Compared> {
    let kind = Kind::of_pair(old, new)?;
    let out = options.out.as_deref();
    match kind {
        Kind::Runs => {
            let o = compare::Options {
                threshold_percent: options.threshold_percent,
                out: options.out.clone(),
            };
            let c = compare::compare_runs(old, new, &o)?;
            let regressed = c.comparison.regressions(options.metric).next().is_some();
            let differentials = Some(c.differentials);
            Ok(Compared { kind, markdown: c.markdown, out: c.out, differentials, regressed })
        }
        Kind::Crossings => {
            let (c, dir) = crate::crossings::compare_paths(old, new, out)?;
            let regressed = c.regressions().next().is_some();
            Ok(Compared { kind, markdown: c.markdown(), out: dir, differentials: None, regressed })
        }
        Kind::Heap => {
            let (c, dir) = crate::memory::compare_paths(old, new, out)?;
            let regressed = c.regressed();
            Ok(Compared { kind, markdown: c.markdown(), out: dir, differentials: None, regressed })
        }
        Kind::Lifetimes => {
            let (c, dir) = crate::lifetimes::compare_paths(old, new, out)?;
            let regressed = c.regressions().next().is_some();
            Ok(Compared { kind, markdown: c.markdown(), out: dir, differentials: None, regressed })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holding(dir: &Path, file: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(file), "{}").unwrap();
        dir.to_owned()
    }

    #[test]
    fn two_paths_are_told_apart_by_what_they_hold() {
        let tmp = tempfile::tempdir().unwrap();
        let heap = holding(&tmp.path().join("h"), "memory.json");
        let heap2 = holding(&tmp.path().join("h2"), "memory.json");
        let cross = holding(&tmp.path().join("c"), "crossings.json");
        let run = holding(&tmp.path().join("r"), "report.json");
        assert_eq!(Kind::of_pair(&heap, &heap2).unwrap(), Kind::Heap);
        assert_eq!(Kind::of_pair(&cross, &cross).unwrap(), Kind::Crossings);
        assert_eq!(Kind::of_pair(&run, &run).unwrap(), Kind::Runs);
        let e = Kind::of_pair(&heap, &cross).unwrap_err();
        assert!(e.to_string().contains("is not a heap census (no memory.json)"), "{e}");
        let e = Kind::of_pair(&run, &cross).unwrap_err();
        assert!(e.to_string().contains("r is not a crossings census"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }
}
