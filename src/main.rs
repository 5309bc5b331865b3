//! The `ffiprof` command line: parses flags, calls the library, prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ffiprof::measure::{self, Options};
use ffiprof::output::AtomicFile;
use ffiprof::sample::{PerfUnwind, SamplerKind};
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
    /// The main job: benchmark and profile every workload and write a report
    /// (report.json, report.md, index.html, flamegraphs) into a run directory.
    Run {
        /// Workloads to run (default: all).
        workloads: Vec<String>,
        /// Short benchmarks and profiles (about a minute and a half).
        #[arg(long)]
        quick: bool,
        /// Run directory (default: results/<date>-<host>, with results/latest pointing at it).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare two runs (directories or report.json files): changes per variant, judged
    /// against each run's measured drift.
    Compare {
        /// The older run.
        old: PathBuf,
        /// The newer run.
        new: PathBuf,
        /// Changes below this many percent are never significant.
        #[arg(long, default_value_t = 5.0)]
        threshold: f64,
        /// Exit with status 1 when a significant slowdown exceeds the threshold.
        #[arg(long)]
        fail_on_regression: bool,
        /// Where compare.md, compare.json and the differential flamegraphs go (default:
        /// <NEW>/compare-vs-<OLD's name>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Sample a workload's variants with pprof and perf_event_open; write flamegraphs,
    /// folded stacks, pprof profiles and summary.json.
    Profile(ProfileArgs),
    /// Measure what sampling costs: slowdown of a workload under each sampler,
    /// effective rate, and post-processing time.
    SamplerCost(CostArgs),
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

#[derive(Clone, Copy, clap::ValueEnum)]
enum SamplerArg {
    Pprof,
    Perf,
    Both,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum UnwindArg {
    Dwarf,
    Fp,
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
                Some(ffiprof::Error::UnknownWorkload { .. } | ffiprof::Error::InvalidOption(_))
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
    let w = workload::find(name)?;
    let known_variants = || w.variants.iter().map(|v| v.name).collect::<Vec<_>>().join(", ");
    let v = w.variant(variant).ok_or_else(|| {
        UsageError(format!(
            "workload `{name}` has no variant `{variant}`; its variants: {}",
            known_variants()
        ))
    })?;
    let input = pick_input(&w, input)?;
    let mut runner = (v.prepare)(input).with_context(|| format!("preparing {name}/{variant}"))?;
    println!("{}", runner.run(n));
    Ok(())
}

#[derive(clap::Args)]
struct ProfileArgs {
    /// Workload name (`ffiprof list`; also `calibrate`).
    workload: String,
    /// Variant to profile (default: all); the baseline is profiled too, for the
    /// differential flamegraph.
    #[arg(long)]
    variant: Option<String>,
    /// Input name (default: the workload's first).
    #[arg(long)]
    input: Option<String>,
    /// Sampler.
    #[arg(long, value_enum, default_value_t = SamplerArg::Both)]
    sampler: SamplerArg,
    /// Samples per second to ask for (1 to 100000).
    #[arg(long, default_value_t = 1000)]
    frequency: u64,
    /// Sampling window per variant and sampler, seconds.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// How the perf sampler unwinds: DWARF CFI over a stack copy (exact), or the
    /// kernel's frame-pointer callchain (cheaper, skips callers of frameless code).
    #[arg(long, value_enum, default_value_t = UnwindArg::Dwarf)]
    perf_unwind: UnwindArg,
    /// Output directory (default: results/profile-<workload>).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn profile(args: ProfileArgs) -> anyhow::Result<()> {
    let w = workload::find(&args.workload)?;
    let variants: Vec<&str> = match &args.variant {
        None => w.variants.iter().map(|v| v.name).collect(),
        Some(v) => {
            let variant = w.variant(v).ok_or_else(|| {
                let known = w.variants.iter().map(|v| v.name).collect::<Vec<_>>().join(", ");
                UsageError(format!(
                    "workload `{}` has no variant `{v}`; its variants: {known}",
                    w.name
                ))
            })?;
            let baseline = w.baseline().name;
            if variant.name == baseline {
                vec![baseline]
            } else {
                vec![baseline, variant.name]
            }
        }
    };
    let input = pick_input(&w, args.input.as_deref())?;
    let duration = seconds("--duration", args.duration)?;
    let mut options = ffiprof::profile::Options::default();
    options.samplers = samplers(args.sampler);
    options.sample.frequency = args.frequency;
    options.sample.perf_unwind = match args.perf_unwind {
        UnwindArg::Dwarf => PerfUnwind::Dwarf,
        UnwindArg::Fp => PerfUnwind::FramePointer,
    };
    options.duration = duration;
    options.validate()?;
    let out =
        args.out.unwrap_or_else(|| PathBuf::from("results").join(format!("profile-{}", w.name)));
    let summary = ffiprof::profile::profile_workload(&w, &variants, input, &options, &out)?;
    print!("{}", summary.table());
    for p in &summary.profiles {
        for note in &p.notes {
            eprintln!("note: {} / {}: {note}", p.variant, p.sampler);
        }
    }
    for f in &summary.failures {
        eprintln!("warning: the {} sampler did not run: {}", f.sampler, f.error);
    }
    println!("wrote {}", ffiprof::profile::write_summary(&summary, &out)?.display());
    if summary.profiles.is_empty() {
        anyhow::bail!("no sampler could run");
    }
    Ok(())
}

fn pick_input<'w>(
    w: &'w workload::Workload,
    name: Option<&str>,
) -> anyhow::Result<&'w workload::Input> {
    match name {
        None => Ok(&w.inputs[0]),
        Some(i) => w.input(i).ok_or_else(|| {
            let known = w.inputs.iter().map(|i| i.name).collect::<Vec<_>>().join(", ");
            UsageError(format!("workload `{}` has no input `{i}`; its inputs: {known}", w.name))
                .into()
        }),
    }
}

fn samplers(arg: SamplerArg) -> Vec<SamplerKind> {
    match arg {
        SamplerArg::Pprof => vec![SamplerKind::Pprof],
        SamplerArg::Perf => vec![SamplerKind::Perf],
        SamplerArg::Both => SamplerKind::ALL.to_vec(),
    }
}

fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    if !(value.is_finite() && value > 0.0 && value <= 3600.0) {
        return Err(UsageError(format!(
            "{flag} {value} is out of range: give more than 0 and at most 3600 seconds"
        ))
        .into());
    }
    Ok(Duration::from_secs_f64(value))
}

#[derive(clap::Args)]
struct CostArgs {
    /// Workload (default: pow).
    #[arg(long, default_value = "pow")]
    workload: String,
    /// Variant (default: per-call).
    #[arg(long, default_value = "per-call")]
    variant: String,
    /// Input (default: the workload's last, for pow the chain).
    #[arg(long)]
    input: Option<String>,
    /// Samples per second to ask for.
    #[arg(long, default_value_t = 1000)]
    frequency: u64,
    /// Seconds per window.
    #[arg(long, default_value_t = 1.0)]
    window: f64,
    /// Pairs of unprofiled and profiled windows.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Sampler.
    #[arg(long, value_enum, default_value_t = SamplerArg::Both)]
    sampler: SamplerArg,
}

fn sampler_cost(args: CostArgs) -> anyhow::Result<()> {
    let w = workload::find(&args.workload)?;
    let input = match args.input.as_deref() {
        None => w.inputs.last().expect("workloads have inputs"),
        Some(name) => pick_input(&w, Some(name))?,
    };
    let plan =
        ffiprof::cost::Plan { window: seconds("--window", args.window)?, rounds: args.rounds };
    let mut options = ffiprof::sample::Options::default();
    options.frequency = args.frequency;
    options.validate()?;
    let scratch = tempfile::tempdir()?;
    let mut rows = Vec::new();
    for kind in samplers(args.sampler) {
        match ffiprof::cost::measure(&w, &args.variant, input, kind, &options, plan, scratch.path())
        {
            Ok(c) => rows.push(vec![
                c.sampler.to_string(),
                c.event.clone(),
                c.requested_hz.to_string(),
                format!("{:.0}", c.effective_hz),
                format!("{:+.2}%", c.slowdown * 100.0),
                format!(
                    "[{:+.2}%, {:+.2}%]",
                    c.slowdown_range.0 * 100.0,
                    c.slowdown_range.1 * 100.0
                ),
                c.samples.to_string(),
                format!("{:.3}", c.post_processing_seconds),
            ]),
            Err(e) => eprintln!("warning: the {kind} sampler did not run: {e}"),
        }
    }
    let header = [
        "sampler",
        "event",
        "asked Hz",
        "effective Hz",
        "slowdown (median)",
        "range",
        "samples",
        "post-processing s",
    ];
    print!("{}", ffiprof::measure::results::render_table(&header, &rows, 2));
    println!(
        "{} / {} / {}: {} rounds of {} s unprofiled vs profiled",
        w.name, args.variant, input.name, args.rounds, args.window
    );
    Ok(())
}

fn default_run_dir() -> PathBuf {
    let env = ffiprof::environment::Environment::detect();
    let day = env.date.get(..10).unwrap_or("undated").to_owned();
    PathBuf::from("results").join(format!("{day}-{}", env.host))
}

fn run(names: &[String], quick: bool, out: Option<PathBuf>) -> anyhow::Result<()> {
    use ffiprof::run::{self as runner, Step};
    let workloads = workload::select(names)?;
    let default_dir = out.is_none();
    let dest = out.unwrap_or_else(default_run_dir);
    // Fails on an unwritable destination before any benchmark starts.
    let staging = runner::Staging::new(&dest).map_err(|e| UsageError(e.to_string()))?;
    let bar = indicatif::ProgressBar::new(runner::step_count(&workloads));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let options = runner::Options::new(quick);
    let mut on_step = |step: Step| match step {
        Step::Bench(w) => bar.set_message(format!("benchmarking {w}")),
        Step::Profile(w) => bar.set_message(format!("profiling {w}")),
        Step::Cgo => bar.set_message("the cgo reference (Go calling the same C)"),
        Step::Done => bar.inc(1),
    };
    let (report, dir) = runner::run(&workloads, &options, staging, &mut on_step)?;
    bar.finish_and_clear();
    if let Some(cgo) = report.cgo.as_ref().filter(|c| c.status != "measured") {
        eprintln!("note: {}", cgo.message);
    }
    if default_dir {
        runner::point_latest(&dir)?;
    }
    print!("{}", ffiprof::report::markdown::render(&report));
    println!("\nwrote {} (open index.html)", dir.display());
    Ok(())
}

fn compare(
    old: &Path,
    new: &Path,
    threshold: f64,
    fail: bool,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    use ffiprof::report::{compare as cmp, Report};
    if !(threshold.is_finite() && threshold >= 0.0) {
        return Err(
            UsageError(format!("--threshold {threshold} must be a percentage, 0 or more")).into()
        );
    }
    let load = |p: &Path| Report::load(p).map_err(|e| UsageError(e.to_string()));
    let (old_report, new_report) = (load(old)?, load(new)?);
    let comparison =
        cmp::compare(&old_report, old.to_owned(), &new_report, new.to_owned(), threshold / 100.0)
            .map_err(|e| UsageError(e.to_string()))?;
    let run_dir = |p: &Path| {
        if p.is_dir() {
            p.to_owned()
        } else {
            p.parent().map(Path::to_owned).unwrap_or_default()
        }
    };
    let old_name = run_dir(old)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "old".into());
    let out = out.unwrap_or_else(|| run_dir(new).join(format!("compare-vs-{old_name}")));
    std::fs::create_dir_all(&out)
        .map_err(|e| UsageError(format!("cannot write {}: {e}", out.display())))?;
    let md = cmp::markdown(&comparison);
    ffiprof::output::write_atomic(&out.join("compare.md"), md.as_bytes())?;
    ffiprof::output::write_atomic(
        &out.join("compare.json"),
        serde_json::to_string_pretty(&comparison)?.as_bytes(),
    )?;
    // Differential flamegraphs OLD -> NEW from the runs' folded stacks.
    let mut diffs = 0;
    for case in &new_report.workloads {
        let Some(old_case) = old_report.workloads.iter().find(|c| c.key() == case.key()) else {
            continue;
        };
        for v in &case.variants {
            let Some(ov) = old_case.variants.iter().find(|o| o.timing.name == v.timing.name) else {
                continue;
            };
            for p in &v.profiles {
                let Some(op) = ov.profiles.iter().find(|o| o.sampler == p.sampler) else {
                    continue;
                };
                let (Ok(before), Ok(after)) = (
                    std::fs::read_to_string(run_dir(old).join(&op.folded)),
                    std::fs::read_to_string(run_dir(new).join(&p.folded)),
                ) else {
                    continue;
                };
                let title = format!(
                    "{} / {} / {} ({}): old -> new",
                    case.name, case.input, v.timing.name, p.sampler
                );
                let svg = ffiprof::flame::differential_folded(&before, &after, &title)?;
                let name =
                    format!("{}.{}.{}.{}.svg", case.name, case.input, v.timing.name, p.sampler);
                ffiprof::output::write_atomic(&out.join(name), &svg)?;
                diffs += 1;
            }
        }
    }
    print!("{md}");
    println!("\nwrote {} ({diffs} differential flamegraphs)", out.display());
    if fail && comparison.regressions().next().is_some() {
        eprintln!("error: significant slowdown beyond {threshold}% (see compare.md)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn try_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Compare { old, new, threshold, fail_on_regression, out } => {
            compare(&old, &new, threshold, fail_on_regression, out)
        }
        Command::Run { workloads, quick, out } => done(run(&workloads, quick, out)),
        Command::List => {
            list();
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { workloads, quick, json } => done(bench(&workloads, quick, json)),
        Command::Profile(args) => done(profile(args)),
        Command::SamplerCost(args) => done(sampler_cost(args)),
        Command::Exec { workload, variant, input, n } => {
            done(exec(&workload, &variant, input.as_deref(), n))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match try_main(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}
