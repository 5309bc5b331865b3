//! Reading what criterion wrote: `<dir>/**/new/benchmark.json` names a benchmark and
//! `estimates.json` beside it holds its bootstrap estimates. Only the fields ffiprof uses
//! are declared, so newer criterion files with more fields still parse.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Deserialize)]
struct BenchmarkFile {
    group_id: String,
    function_id: Option<String>,
    value_str: Option<String>,
}

/// A confidence interval as criterion writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfidenceInterval {
    /// For example 0.95.
    pub confidence_level: f64,
    /// Lower bound, nanoseconds per iteration.
    pub lower_bound: f64,
    /// Upper bound, nanoseconds per iteration.
    pub upper_bound: f64,
}

/// One statistic of criterion's.
#[derive(Debug, Clone, Deserialize)]
pub struct Estimate {
    /// Its interval.
    pub confidence_interval: ConfidenceInterval,
    /// Its value, nanoseconds per iteration.
    pub point_estimate: f64,
}

/// The statistics ffiprof reads from `estimates.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Estimates {
    /// Mean time per iteration.
    pub mean: Estimate,
    /// Median time per iteration.
    pub median: Estimate,
}

/// `group/function/value` of a benchmark, as criterion prints it.
pub fn benchmark_key(group: &str, function: &str, value: &str) -> String {
    format!("{group}/{function}/{value}")
}

fn parse<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| Error::Read { path: path.to_owned(), source })?;
    serde_json::from_str(&text)
        .map_err(|source| Error::CriterionData { path: path.to_owned(), source })
}

fn benchmark_files(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).map_err(|source| Error::Read { path: dir.to_owned(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::Read { path: dir.to_owned(), source })?;
        let path = entry.path();
        if path.is_dir() {
            benchmark_files(&path, found)?;
        } else if path.file_name().is_some_and(|n| n == "benchmark.json")
            && path.parent().and_then(Path::file_name).is_some_and(|n| n == "new")
        {
            found.push(path);
        }
    }
    Ok(())
}

/// Every benchmark criterion finished under `dir`, by [`benchmark_key`].
pub fn read_all(dir: &Path) -> Result<HashMap<String, Estimates>> {
    let mut files = Vec::new();
    if dir.exists() {
        benchmark_files(dir, &mut files)?;
    }
    let mut out = HashMap::new();
    for file in files {
        let id: BenchmarkFile = parse(&file)?;
        let estimates: Estimates = parse(&file.with_file_name("estimates.json"))?;
        let key = benchmark_key(
            &id.group_id,
            id.function_id.as_deref().unwrap_or(""),
            id.value_str.as_deref().unwrap_or(""),
        );
        out.insert(key, estimates);
    }
    Ok(out)
}
