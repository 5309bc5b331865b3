//! The `ffiprof` command line: parses flags, calls the library, prints.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ffiprof::measure::{self, Options};
use ffiprof::output::AtomicFile;
use ffiprof::workload::{self, Role};

/// Measures what it costs to cross the Rust/C boundary.
#[derive(Parser)]
#[command(name = "ffiprof", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the workloads, their variants and inputs.
    List,
    /// Benchmark workloads with criterion and print ns per call against the batched
    /// baseline.
    Bench {
        /// Workloads to run (default: all).
        workloads: Vec<String>,
        /// Short measurements: the whole catalogue in about a minute.
        #[arg(long)]
        quick: bool,
        /// Also write the results as JSON to this file (see results/README.md).
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Run one variant n times and print its checksum (for callgrind, perf and friends).
    Exec {
        /// Workload name.
        workload: String,
        /// Variant name.
        variant: String,
        /// Input name (default: the workload's first).
        #[arg(long)]
        input: Option<String>,
        /// Number of calls.
        #[arg(long, default_value_t = 1_000_000)]
        n: u64,
    },
}

/// An error that is the user's to fix: exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn exit_code(err: &anyhow::Error) -> u8 {
    let usage = err.chain().any(|e| {
        e.is::<UsageError>()
            || matches!(
                e.downcast_ref::<ffiprof::Error>(),
                Some(ffiprof::Error::UnknownWorkload { .. })
            )
    });
    if usage {
        2
    } else {
        1
    }
}

fn list() {
    for w in workload::catalogue() {
        println!("{:<10} {}", w.name, w.about);
        let inputs: Vec<&str> = w.inputs.iter().map(|i| i.name).collect();
        println!("{:<10}   inputs: {}", "", inputs.join(", "));
        for v in &w.variants {
            let role = match v.role {
                Role::Baseline => "baseline",
                Role::PerCall => "per-call",
                Role::Reference => "reference",
            };
            println!("{:<10}   {:<16} {:<9}  {}", "", v.name, role, v.about);
        }
    }
}

fn bench(names: &[String], quick: bool, json: Option<PathBuf>) -> anyhow::Result<()> {
    let workloads = workload::select(names)?;
    // Open the output first: an unwritable path fails before minutes of benchmarking.
    let json_file = match &json {
        Some(path) => Some(AtomicFile::create(path).map_err(|e| UsageError(e.to_string()))?),
        None => None,
    };
    let scratch = std::env::temp_dir();
    let results = measure::run(&workloads, &Options::new(quick), &scratch)?;
    print!("{}", results.table());
    if let (Some(file), Some(path)) = (json_file, json) {
        file.commit(results.to_json()?.as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn exec(name: &str, variant: &str, input: Option<&str>, n: u64) -> anyhow::Result<()> {
    let w = workload::select(&[name.to_owned()])?.remove(0);
    let known_variants = || w.variants.iter().map(|v| v.name).collect::<Vec<_>>().join(", ");
    let v = w.variant(variant).ok_or_else(|| {
        UsageError(format!(
            "workload `{name}` has no variant `{variant}`; its variants: {}",
            known_variants()
        ))
    })?;
    let input = match input {
        None => &w.inputs[0],
        Some(i) => w.input(i).ok_or_else(|| {
            let known = w.inputs.iter().map(|i| i.name).collect::<Vec<_>>().join(", ");
            UsageError(format!("workload `{name}` has no input `{i}`; its inputs: {known}"))
        })?,
    };
    let mut runner = (v.prepare)(input).with_context(|| format!("preparing {name}/{variant}"))?;
    println!("{}", runner.run(n));
    Ok(())
}

fn try_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::List => {
            list();
            Ok(())
        }
        Command::Bench { workloads, quick, json } => bench(&workloads, quick, json),
        Command::Exec { workload, variant, input, n } => {
            exec(&workload, &variant, input.as_deref(), n)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match try_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}
