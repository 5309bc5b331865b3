//! The `ffiprof` command line: parses flags into the library's options, calls the
//! library, prints what it returns.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ffiprof::report::compare;
use ffiprof::sample::{PerfUnwind, SamplerKind};
use ffiprof::{comparison, measure, profile, run, sampler_cost, workload, Outcome};

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
    List {
        /// Workloads to list (default: all).
        workloads: Vec<String>,
        /// Read each measured loop's machine code in this binary (every placement, the
        /// cross-language LTO library's too) and say whether it keeps its running value
        /// in registers or goes through a stack slot on every item.
        #[arg(long)]
        machine_code: bool,
    },
    /// Benchmark workloads with the paired engine and print ns per call against the
    /// batched baseline.
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
        /// Short benchmarks and profiles (about half a minute on 2 cores).
        #[arg(long)]
        quick: bool,
        /// Run directory (default: results/<date>-<host>, with results/latest pointing at it).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Leave out the cgo reference even where Go is installed.
        #[arg(long)]
        no_cgo: bool,
    },
    /// Compare two runs (directories or report.json files): time changes judged on the
    /// paired ratios against both runs' controls, instruction counts exactly. Given two
    /// crossings censuses (crossings.json), compares their calls and instructions per
    /// crossing exactly; given two heap censuses (memory.json), their bytes and blocks per
    /// site exactly. --threshold and --metric apply to runs only: censuses are exact.
    Compare {
        /// The older run, crossings census or heap census (a directory, or its
        /// report.json, crossings.json or memory.json).
        old: PathBuf,
        /// The newer one, of the same kind.
        new: PathBuf,
        /// Changes of a time ratio below this many percent are never significant (runs
        /// only).
        #[arg(long, default_value_t = 5.0)]
        threshold: f64,
        /// Exit with status 3 on a regression: for runs, a significant slowdown by
        /// --metric; for censuses, a new or busier crossing, a new site, more memory, or
        /// more blocks freed by another allocator than the one that served them.
        #[arg(long)]
        fail_on_regression: bool,
        /// Which slowdowns --fail-on-regression fails on (runs only; a census's regression
        /// is exact: a new or busier crossing, a new site or more live bytes or blocks).
        #[arg(long, value_enum, default_value_t = MetricArg::Both)]
        metric: MetricArg,
        /// Where compare.md, compare.json and the differential flamegraphs go (default:
        /// <NEW>/compare-vs-<OLD's name>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Sample a workload's variants with pprof and perf_event_open; write flamegraphs,
    /// folded stacks, pprof profiles and summary.json.
    Profile(ProfileArgs),
    /// Record any program, every thread and child process, from its first instruction
    /// (`record -- PROGRAM [ARGS...]`), or attach to a running process (`record --pid
    /// PID`): flamegraphs coloured by language, folded stacks, pprof, a Firefox Profiler
    /// profile and summary.json with the boundary summary per thread. Exits with the
    /// program's status.
    Record(RecordArgs),
    /// Count every Rust/C crossing of a program exactly, under callgrind: calls and
    /// instructions per call at each caller -> callee edge, the caller's own work, what
    /// the crossings cost on this machine, and which are chatty. Writes crossings.json
    /// and crossings.md; exits with the program's status.
    Crossings(CrossingsArgs),
    /// The heap on both sides of the boundary, by ffiprof's preloaded interposer (or
    /// valgrind's DHAT with --dhat): each allocation site with its language and the Rust
    /// caller above C's, bytes and blocks allocated, live at the heap's peak and never
    /// freed, and who freed what another allocator served. Writes memory.json, memory.md,
    /// flamegraphs and a pprof heap profile; exits with the program's status.
    Memory(MemoryArgs),
    /// Memory kept past the call, under valgrind's memcheck: C reading what Rust freed, Rust
    /// reading what C freed, writes past a buffer, pointers into a Vec that moved, frees
    /// by the wrong side; each with the side that touched the block, the allocator that
    /// owned it and the one that freed it. Writes lifetimes.json, lifetimes.md and a
    /// flamegraph of the accesses; exits with the program's status (3 with
    /// --fail-on-error when any error was found).
    Lifetimes(LifetimesArgs),
    /// Time two programs against each other, whole runs in paired, interleaved rounds
    /// (`duel 'CMD A' 'CMD B'`, A the baseline): CPU and wall time, each ratio to A with
    /// its interval, and an A/A control (A run again as a third arm) for the noise floor.
    Duel(DuelArgs),
    /// Build a cargo package's binary twice, as cargo would and with cross-language LTO,
    /// then count both builds' crossings exactly and time them against each other: which
    /// Rust/C calls the compiler inlined, which remain and why. Writes xlto.json, xlto.md
    /// and both censuses; exits with the program's status.
    Xlto(XltoArgs),
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

#[derive(clap::Args)]
struct RecordArgs {
    /// Samples per second per thread.
    #[arg(long, default_value_t = ffiprof::sample::Options::default().frequency)]
    frequency: u64,
    /// Stop recording after this many seconds (the program keeps running).
    #[arg(long)]
    duration: Option<f64>,
    /// Output directory (default: results/record-<program>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Bytes of user stack copied per sample (a multiple of 8, at most 65528); deeper
    /// stacks are cut short and counted as truncated.
    #[arg(long, default_value_t = ffiprof::sample::Options::default().stack_bytes)]
    stack_bytes: u32,
    /// Attach to this running process (all of its threads) instead of starting one.
    #[arg(long, conflicts_with = "command")]
    pid: Option<u32>,
    /// Record where threads wait too: each switch off a CPU with its user stack (where
    /// perf allows kernel-mode samples; else time from switch records alone), weighted by
    /// the time until the thread runs again.
    #[arg(long)]
    off_cpu: bool,
    #[command(flatten)]
    cargo: CargoArgs,
    /// The program and its arguments, after `--` (with --bin or --example: the
    /// arguments of the program built).
    #[arg(last = true, value_name = "PROGRAM")]
    command: Vec<std::ffi::OsString>,
}

#[derive(clap::Args)]
struct CrossingsArgs {
    /// Output directory (default: results/crossings-<program>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Follow child processes too (each is counted; their crossings are summed).
    #[arg(long)]
    trace_children: bool,
    /// A crossing is chatty with at least this many calls...
    #[arg(long, default_value_t = ffiprof::crossings::Thresholds::default().min_calls)]
    chatty_calls: u64,
    /// ...of at most this many instructions each inside the callee.
    #[arg(long, default_value_t = ffiprof::crossings::Thresholds::default().max_instructions)]
    chatty_instructions: f64,
    /// Read the cost per call from this run's report.json (or run directory) instead of
    /// measuring it.
    #[arg(long, value_name = "REPORT")]
    costs: Option<PathBuf>,
    /// Native runs of the program for its own time, before the census (0: none; the
    /// program then runs only once, under callgrind).
    #[arg(long, default_value_t = ffiprof::crossings::DEFAULT_NATIVE_RUNS)]
    native_runs: usize,
    /// Read these callgrind output files (one per process) instead of running a program.
    #[arg(long, value_name = "CALLGRIND_OUT", num_args = 1..)]
    from: Vec<PathBuf>,
    #[command(flatten)]
    cargo: CargoArgs,
    /// The program and its arguments, after `--` (with --bin or --example: the
    /// arguments of the program built).
    #[arg(last = true, value_name = "PROGRAM")]
    command: Vec<std::ffi::OsString>,
}

/// The package target a command builds and runs, as cargo's own flags say it.
#[derive(clap::Args)]
struct CargoArgs {
    /// The package's Cargo.toml (default: cargo's own search from the current directory).
    #[arg(long, value_name = "PATH")]
    manifest_path: Option<PathBuf>,
    /// The package to build, in a workspace of several.
    #[arg(long, short = 'p', value_name = "NAME")]
    package: Option<String>,
    /// Build this binary in release and run it (the arguments after `--` are its own).
    #[arg(long, value_name = "NAME", conflicts_with = "example")]
    bin: Option<String>,
    /// Build this example instead.
    #[arg(long, value_name = "NAME")]
    example: Option<String>,
    /// Features to build with, as cargo takes them (space or comma separated).
    #[arg(long, short = 'F')]
    features: Vec<String>,
    /// Build with every feature.
    #[arg(long)]
    all_features: bool,
    /// Build without the default features.
    #[arg(long)]
    no_default_features: bool,
}

impl CargoArgs {
    fn selection(self) -> ffiprof::cargo::Selection {
        let mut s = ffiprof::cargo::Selection::default();
        s.manifest_path = self.manifest_path;
        s.package = self.package;
        s.bin = self.bin;
        s.example = self.example;
        s.features = self.features;
        s.all_features = self.all_features;
        s.no_default_features = self.no_default_features;
        s
    }
}

/// `command`, or with cargo's flags the built target and `command` as its arguments.
fn built_program(cargo: CargoArgs, command: Vec<OsString>) -> ffiprof::Result<Vec<OsString>> {
    ffiprof::cargo::program(&cargo.selection(), command, &mut |s| eprintln!("{s}"))
}

/// How `duel` and `xlto` run their rounds.
#[derive(clap::Args)]
struct RoundArgs {
    /// Untimed runs of each program first.
    #[arg(long, default_value_t = ffiprof::measure::programs::Options::default().warmup)]
    warmup: usize,
    /// Rounds at least (each runs A, A again and B once, in a shuffled order).
    #[arg(long, default_value_t = ffiprof::measure::programs::Options::default().min_rounds)]
    min_rounds: usize,
    /// Rounds at most.
    #[arg(long, default_value_t = ffiprof::measure::programs::Options::default().max_rounds)]
    max_rounds: usize,
    /// Seconds for the rounds (the minimum rounds run whatever it says); they stop earlier
    /// once every ratio's interval is within ±0.2%.
    #[arg(long, default_value_t = ffiprof::measure::programs::Options::default().budget.as_secs_f64())]
    budget: f64,
}

impl RoundArgs {
    fn options(&self) -> ffiprof::Result<ffiprof::measure::programs::Options> {
        let mut o = ffiprof::measure::programs::Options::default();
        o.warmup = self.warmup;
        o.min_rounds = self.min_rounds;
        o.max_rounds = self.max_rounds;
        o.budget = ffiprof::seconds("--budget", self.budget)?;
        o.validate()?;
        Ok(o)
    }
}

#[derive(clap::Args)]
struct DuelArgs {
    /// The two commands, A (the baseline) then B, each one string as hyperfine takes them:
    /// run directly when they are plain words, by `sh -c` when they use the shell.
    #[arg(num_args = 2, required = true, value_names = ["COMMAND_A", "COMMAND_B"])]
    commands: Vec<String>,
    /// Names for the two commands in tables (give it twice: A's, then B's).
    #[arg(short = 'n', long = "name", value_name = "NAME")]
    names: Vec<String>,
    /// Run both commands by `sh -c` even where they are plain words.
    #[arg(long)]
    shell: bool,
    #[command(flatten)]
    rounds: RoundArgs,
    /// Also write the result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn duel(args: DuelArgs) -> ffiprof::Result<()> {
    use ffiprof::measure::programs;
    let options = args.rounds.options()?;
    let commands = [args.commands[0].clone(), args.commands[1].clone()];
    let programs = programs::pair(args.names, &commands, args.shell)?;
    let duel = programs::duel(&programs, &options, args.json.as_deref())?;
    print!("{}", duel.table());
    println!("{} rounds ({}), {:.1} s", duel.rounds, duel.stop, duel.seconds);
    for s in duel.sentences() {
        println!("{s}");
    }
    if let Some(path) = args.json {
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[derive(clap::Args)]
struct MemoryArgs {
    /// Output directory (default: results/memory-<program>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Follow child processes too (each one's heap is counted; figures are summed).
    #[arg(long)]
    trace_children: bool,
    /// Read these DHAT files (one per process) instead of running a program.
    #[arg(long, value_name = "DHAT_JSON", num_args = 1..)]
    from: Vec<PathBuf>,
    /// Run the program under valgrind's DHAT instead of ffiprof's interposer: for static
    /// or setuid programs, and as a cross-check (about 70 times slower; no ownership).
    #[arg(long, conflicts_with = "sample_bytes")]
    dhat: bool,
    /// Keep the stack of about one allocation per N bytes (Poisson, as tcmalloc samples)
    /// and scale the sites' figures; totals, block counts and ownership stay exact. For
    /// long programs: the interposer costs less the fewer stacks it unwinds.
    #[arg(long, value_name = "N")]
    sample_bytes: Option<u64>,
    #[command(flatten)]
    cargo: CargoArgs,
    /// The program and its arguments, after `--` (with --bin or --example: the
    /// arguments of the program built).
    #[arg(last = true, value_name = "PROGRAM")]
    command: Vec<std::ffi::OsString>,
}

fn memory(args: MemoryArgs) -> ffiprof::Result<Outcome> {
    use ffiprof::memory;
    let command = built_program(args.cargo, args.command)?;
    let source = ffiprof::Source::from_args(command, args.from, "memory", "DHAT's files")?;
    let out = args.out.unwrap_or_else(|| ffiprof::default_out("memory", &source.name()));
    let mut options = memory::Options::new(source, out);
    options.trace_children = args.trace_children;
    if args.dhat {
        options.engine = memory::Engine::Dhat;
    }
    if let Some(n) = args.sample_bytes {
        options.sample_every(n)?;
    }
    let outcome = memory::census(&options)?;
    eprint!("{}", outcome.census.text());
    let files = match outcome.census.engine {
        memory::Engine::Native => "memory.json, memory.md, peak.svg, exit.svg, memory.pb.gz",
        memory::Engine::Dhat => {
            "memory.json, memory.md, peak.svg, exit.svg, memory.pb.gz; DHAT's files in dhat/"
        }
    };
    Ok(wrote_census(&outcome.out, files, outcome.census.exit_status))
}

#[derive(clap::Args)]
struct LifetimesArgs {
    /// Output directory (default: results/lifetimes-<program>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Follow child processes too.
    #[arg(long)]
    trace_children: bool,
    /// Read these memcheck XML files (`valgrind --tool=memcheck --xml=yes
    /// --xml-file=FILE`, one per process) instead of running a program.
    #[arg(long, value_name = "XML", num_args = 1..)]
    from: Vec<PathBuf>,
    /// Exit with status 3 when any error was found (else the program's status).
    #[arg(long)]
    fail_on_error: bool,
    /// Run the program at its own speed instead of under memcheck, about one allocation in
    /// N (1000 when N is left out) on guard pages: a read or write after its free or past
    /// its end faults and is reported, and the program goes on. For long runs; 1 guards
    /// every allocation that fits a page.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "1000", conflicts_with = "from")]
    guard: Option<u64>,
    #[command(flatten)]
    cargo: CargoArgs,
    /// The program and its arguments, after `--` (with --bin or --example: the
    /// arguments of the program built).
    #[arg(last = true, value_name = "PROGRAM")]
    command: Vec<std::ffi::OsString>,
}

fn lifetimes(args: LifetimesArgs) -> ffiprof::Result<Outcome> {
    use ffiprof::lifetimes;
    let command = built_program(args.cargo, args.command)?;
    let source =
        ffiprof::Source::from_args(command, args.from, "lifetimes", "memcheck's XML files")?;
    let out = args.out.unwrap_or_else(|| ffiprof::default_out("lifetimes", &source.name()));
    let mut options = lifetimes::Options::new(source, out);
    options.trace_children = args.trace_children;
    if let Some(n) = args.guard {
        if n == 0 {
            return Err(ffiprof::Error::InvalidOption(
                "--guard 0 guards nothing: give N to guard about one allocation in N (1 for \
                 every one), or leave --guard out to run under memcheck"
                    .into(),
            ));
        }
        options.guard = n;
    }
    let outcome = lifetimes::census(&options)?;
    eprint!("{}", outcome.census.text());
    let status = outcome.census.exit_status;
    let done = wrote_census(&outcome.out, "lifetimes.json, lifetimes.md, access.svg", status);

    if args.fail_on_error && outcome.census.total > 0 {
        return Ok(Outcome::Errors(outcome.census.total));
    }
    Ok(done)
}

#[derive(clap::Args)]
struct XltoArgs {
    #[command(flatten)]
    cargo: CargoArgs,
    /// Output directory (default: results/xlto-<name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Skip the third build (the C by the same clang without LTO), which tells the
    /// compiler's share of the change from the inlining's.
    #[arg(long)]
    no_compiler_control: bool,
    #[command(flatten)]
    rounds: RoundArgs,
    /// The program's arguments, after `--`.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<std::ffi::OsString>,
}

fn xlto(args: XltoArgs) -> ffiprof::Result<Outcome> {
    use ffiprof::xlto;
    let selection = args.cargo.selection();
    let name = selection.wanted().map_or("program", |(_, name)| name);
    let out = args.out.unwrap_or_else(|| ffiprof::default_out("xlto", name));
    let mut options = xlto::Options::new(out);
    options.selection = selection;
    options.args = args.args;
    options.compiler_control = !args.no_compiler_control;
    options.rounds = args.rounds.options()?;
    options.rounds.fail_on_status = false;
    let outcome = xlto::run(&options, &mut |stage| eprintln!("{stage}..."))?;
    eprint!("{}", outcome.xlto.text());
    let dirs: Vec<String> = xlto::CENSUS_DIRS
        .iter()
        .filter(|d| outcome.out.join(d).is_dir())
        .map(|d| format!("{d}/"))
        .collect();
    let files = format!("xlto.json, xlto.md; the censuses in {}", dirs.join(", "));
    Ok(wrote_census(&outcome.out, &files, outcome.xlto.exit_status))
}

/// The last lines of a census command: where it wrote, and the program's status, which
/// ffiprof exits with.
fn wrote_census(out: &std::path::Path, files: &str, status: i32) -> Outcome {
    eprintln!("wrote {} ({files})", out.display());
    Outcome::Program(status)
}

fn crossings(args: CrossingsArgs) -> ffiprof::Result<Outcome> {
    use ffiprof::crossings::{self, CostSource};
    let command = built_program(args.cargo, args.command)?;
    let source = ffiprof::Source::from_args(command, args.from, "crossings", "callgrind files")?;
    let out = args.out.unwrap_or_else(|| ffiprof::default_out("crossings", &source.name()));
    let mut options = crossings::Options::new(source, out);
    options.trace_children = args.trace_children;
    options.thresholds.min_calls = args.chatty_calls;
    options.thresholds.max_instructions = args.chatty_instructions;
    options.native_runs = args.native_runs;
    if let Some(report) = args.costs {
        options.costs = CostSource::Report(report);
    }
    let outcome = crossings::count(&options)?;
    eprint!("{}", outcome.census.text());
    let files = "crossings.json, crossings.md; callgrind's files in callgrind/";
    Ok(wrote_census(&outcome.out, files, outcome.census.exit_status))
}

fn record(args: RecordArgs) -> ffiprof::Result<Outcome> {
    use ffiprof::record::{self, Target};
    let target = match args.pid {
        Some(pid) => Target::Pid(ffiprof::Pid(pid)),
        None => Target::Command(built_program(args.cargo, args.command)?),
    };
    let out = args.out.unwrap_or_else(|| ffiprof::default_out("record", &target.name()));
    let mut options = record::Options::new(target, out);
    options.frequency = args.frequency;
    options.stack_bytes = args.stack_bytes;
    options.off_cpu = args.off_cpu;
    options.duration = args.duration.map(|d| ffiprof::seconds("--duration", d)).transpose()?;
    let interrupted = record::interrupt_flag();
    let mut recorded = record::record(&options, interrupted)?;
    eprint!("{}", recorded.summary.text());
    eprintln!(
        "wrote {} (open {} at https://profiler.firefox.com)",
        recorded.out.display(),
        recorded.out.join(&recorded.summary.files.firefox).display()
    );
    if let Some(pid) = recorded.program.running_pid() {
        eprintln!("waiting for the program (pid {pid}) to exit; ffiprof exits with its status");
    }
    // ffiprof's own failures ended earlier, with `error:` and status 1 or 2; from here on
    // the status is the program's, said so on the last line.
    Ok(recorded.program.wait()?.map_or(Outcome::Done, Outcome::Program))
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SamplerArg {
    /// The pprof crate in this process: SIGPROF from setitimer, at most one sample per
    /// kernel tick.
    Pprof,
    /// perf_event_open: cycles where the machine has counters, else cpu-clock; user
    /// registers and a stack copy per sample.
    Perf,
    /// Each of them, one after the other.
    Both,
}

impl SamplerArg {
    fn kinds(self) -> Vec<SamplerKind> {
        match self {
            SamplerArg::Pprof => vec![SamplerKind::Pprof],
            SamplerArg::Perf => vec![SamplerKind::Perf],
            SamplerArg::Both => SamplerKind::ALL.to_vec(),
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum MetricArg {
    /// A significant slowdown of a paired time ratio.
    Time,
    /// More instructions per call, exactly counted.
    Instructions,
    /// Either.
    Both,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum UnwindArg {
    /// DWARF CFI over a copy of the user stack (framehop): exact through frameless code.
    Dwarf,
    /// The kernel's frame-pointer callchain: cheaper, loses the callers of frameless code.
    Fp,
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
    /// Which sampler captures the stacks: pprof (setitimer, in-process), perf
    /// (perf_event_open with DWARF unwinding) or both.
    #[arg(long, value_enum, default_value_t = SamplerArg::Both)]
    sampler: SamplerArg,
    /// Samples per second to ask for (1 to 100000).
    #[arg(long, default_value_t = ffiprof::sample::Options::default().frequency)]
    frequency: u64,
    /// Sampling window per variant and sampler, seconds.
    #[arg(long, default_value_t = ffiprof::profile::Options::default().duration.as_secs_f64())]
    duration: f64,
    /// How the perf sampler unwinds: DWARF CFI over a stack copy (exact), or the
    /// kernel's frame-pointer callchain (cheaper, skips callers of frameless code).
    #[arg(long, value_enum, default_value_t = UnwindArg::Dwarf)]
    perf_unwind: UnwindArg,
    /// Output directory (default: results/profile-<workload>).
    #[arg(long)]
    out: Option<PathBuf>,
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
    #[arg(long, default_value_t = ffiprof::sample::Options::default().frequency)]
    frequency: u64,
    /// Seconds per window.
    #[arg(long, default_value_t = 0.25)]
    window: f64,
    /// Paired rounds (each: an unprofiled, a control and a profiled window; at least 6).
    #[arg(long, default_value_t = 21)]
    rounds: usize,
    /// Which sampler captures the stacks: pprof (setitimer, in-process), perf
    /// (perf_event_open with DWARF unwinding) or both.
    #[arg(long, value_enum, default_value_t = SamplerArg::Both)]
    sampler: SamplerArg,
}

/// `text` after `lead`, wrapped at 100 columns, each further line indented to where the
/// text began.
fn wrapped(lead: &str, text: &str) -> String {
    const WIDTH: usize = 100;
    let indent = lead.chars().count();
    let mut out = lead.to_owned();
    let mut column = indent;
    for (i, word) in text.split_whitespace().enumerate() {
        let n = word.chars().count();
        if i > 0 && column + 1 + n > WIDTH {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            column = indent;
        } else if i > 0 {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += n;
    }
    out
}

fn list(names: &[String]) -> ffiprof::Result<()> {
    for w in workload::select(names)? {
        println!("{}", wrapped(&format!("{:<10} ", w.name), w.about));
        let inputs: Vec<&str> = w.inputs.iter().map(|i| i.name).collect();
        println!("{}", wrapped(&format!("{:<10}   inputs: ", ""), &inputs.join(", ")));
        for v in &w.variants {
            let lead = format!("{:<10}   {:<16} {:<9}  ", "", v.name, v.role.to_string());
            println!("{}", wrapped(&lead, v.about));
        }
    }
    Ok(())
}

fn bench(names: &[String], quick: bool, json: Option<PathBuf>) -> ffiprof::Result<()> {
    let workloads = workload::select(names)?;
    let mut options = measure::Options::new(quick);
    options.processes = measure::PROCESSES;
    options.count_instructions = true;
    let mut progress = |case: &measure::CaseResult| {
        let h = &case.header;
        eprintln!("measured {}/{}: {}", h.name, h.input, measure::case_note(h));
    };
    let results = measure::bench(&workloads, &options, json.as_deref(), &mut progress)?;
    print!("{}", results.table());
    if let Some(path) = json {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn profile(args: ProfileArgs) -> ffiprof::Result<()> {
    let w = workload::find(&args.workload)?;
    let variants = profile::variants_to_profile(&w, args.variant.as_deref())?;
    let input = w.input(args.input.as_deref())?;
    let mut options = profile::Options::default();
    options.samplers = args.sampler.kinds();
    options.sample.frequency = args.frequency;
    options.sample.perf_unwind = match args.perf_unwind {
        UnwindArg::Dwarf => PerfUnwind::Dwarf,
        UnwindArg::Fp => PerfUnwind::FramePointer,
    };
    options.duration = ffiprof::seconds("--duration", args.duration)?;
    let out =
        args.out.unwrap_or_else(|| PathBuf::from("results").join(format!("profile-{}", w.name)));
    // Each sampler in a child process of this binary, the samplers at once.
    let exe = measure::ffiprof_exe(None)?;
    let (summary, notes) =
        profile::beside::profile_workload(&exe, &w, &variants, input, &options, &out)?;
    print!("{}", summary.table());
    for note in notes {
        eprintln!("note: {note}");
    }
    for p in &summary.profiles {
        for note in &p.profile.notes {
            eprintln!("note: {} / {}: {note}", p.variant, p.profile.sampler);
        }
    }
    for f in &summary.failures {
        eprintln!("warning: the {} sampler did not run: {}", f.sampler, f.error);
    }
    println!("wrote {}", profile::write_summary(&summary, &out)?.display());
    summary.no_sampler().map_or(Ok(()), Err)
}

fn sampler_cost(args: CostArgs) -> ffiprof::Result<()> {
    let mut options = ffiprof::sample::Options::default();
    options.frequency = args.frequency;
    let plan = sampler_cost::Plan {
        window: ffiprof::seconds("--window", args.window)?,
        rounds: args.rounds,
    };
    let samplers = args.sampler.kinds();
    let table = sampler_cost::measure_all(
        &args.workload,
        &args.variant,
        args.input.as_deref(),
        &samplers,
        &options,
        plan,
    )?;
    for (kind, error) in &table.failures {
        eprintln!("warning: the {kind} sampler did not run: {error}");
    }
    print!("{}", table.table());
    Ok(())
}

fn run(names: &[String], quick: bool, out: Option<PathBuf>, no_cgo: bool) -> ffiprof::Result<()> {
    let workloads = workload::select(names)?;
    let bar = indicatif::ProgressBar::new(run::step_count(&workloads));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut options = run::Options::new(quick);
    options.out = out;
    options.no_cgo = no_cgo;
    options.processes = measure::PROCESSES;
    let mut on_step = |step: run::Step| match step {
        run::Step::Bench(w) => bar.set_message(format!("measuring {w} in paired rounds")),
        run::Step::Profile(w) => bar.set_message(format!("profiling {w}")),
        run::Step::Instructions => bar.set_message("counting instructions under callgrind"),
        run::Step::Cgo => bar.set_message("the cgo reference (Go calling the same C)"),
        run::Step::Done => bar.inc(1),
    };
    let (report, dir) = run::run(&workloads, &options, &mut on_step)?;
    bar.finish_and_clear();
    if let Some(cgo) =
        report.cgo.as_ref().filter(|c| c.status != ffiprof::report::CgoStatus::Measured)
    {
        eprintln!("note: {}", cgo.message);
    }
    print!("{}", ffiprof::report::render_markdown(&report));
    println!("\nwrote {} (open index.html)", dir.display());
    Ok(())
}

fn compare(
    old: &std::path::Path,
    new: &std::path::Path,
    options: &comparison::Options,
    fail_on_regression: bool,
) -> ffiprof::Result<Outcome> {
    let c = comparison::compare(old, new, options)?;
    print!("{}", c.markdown);
    match c.differentials {
        Some(n) => println!("\nwrote {} ({n} differential flamegraphs)", c.out.display()),
        None => println!("\nwrote {}", c.out.display()),
    }
    if fail_on_regression && c.regressed {
        eprintln!("regression: {} (see compare.md)", c.kind.regression());
        return Ok(Outcome::Regression);
    }
    Ok(Outcome::Done)
}

fn try_main(cli: Cli) -> ffiprof::Result<Outcome> {
    let done = |r: ffiprof::Result<()>| r.map(|()| Outcome::Done);
    match cli.command {
        Command::List { workloads, machine_code: false } => done(list(&workloads)),
        Command::List { workloads, machine_code: true } => {
            let (read, missing) = workload::audit::audit(&workload::select(&workloads)?)?;
            print!("{}", workload::audit::table(&read, &missing));
            Ok(Outcome::Done)
        }
        Command::Bench { workloads, quick, json } => done(bench(&workloads, quick, json)),
        Command::Run { workloads, quick, out, no_cgo } => done(run(&workloads, quick, out, no_cgo)),
        Command::Compare { old, new, threshold, fail_on_regression, metric, out } => {
            let mut options = comparison::Options::default();
            options.threshold_percent = threshold;
            options.out = out;
            options.metric = match metric {
                MetricArg::Time => compare::Metric::Time,
                MetricArg::Instructions => compare::Metric::Instructions,
                MetricArg::Both => compare::Metric::Both,
            };
            compare(&old, &new, &options, fail_on_regression)
        }
        Command::Profile(args) => done(profile(args)),
        Command::Record(args) => record(args),
        Command::Crossings(args) => crossings(args),
        Command::SamplerCost(args) => done(sampler_cost(args)),
        Command::Duel(args) => done(duel(args)),
        Command::Memory(args) => memory(args),
        Command::Lifetimes(args) => lifetimes(args),
        Command::Xlto(args) => xlto(args),
        Command::Exec { workload, variant, input, n } => {
            println!("{}", workload::exec(&workload, &variant, input.as_deref(), n)?);
            Ok(Outcome::Done)
        }
    }
}

fn main() -> ExitCode {
    // The hidden commands that bench and run start in child processes: one case measured
    // in this process, printed as JSON; the batches callgrind counts; one sampler's
    // profiles, taken beside the other's.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let served = measure::serve_child(&args).or_else(|| profile::beside::serve_child(&args));
    if let Some(measured) = served {
        return match measured {
            Ok(json) => {
                print!("{json}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::from(1)
            }
        };
    }
    // Output piped into a reader that stops early (`| head`) ends ffiprof quietly, as it
    // ends other tools, rather than with a panic at the next line printed.
    // SAFETY: setting a signal's disposition to its default, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // One mapping from how the command ended to the status (ffiprof::Outcome, Error).
    match try_main(Cli::parse()) {
        Ok(outcome) => {
            if let Some(line) = outcome.last_line() {
                eprintln!("{line}");
            }
            ExitCode::from(outcome.status())
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code() as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command, every flag and every value of a flag says what it is in `--help`.
    #[test]
    fn every_command_flag_and_value_has_help() {
        fn check(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            if cmd.get_about().is_none() {
                missing.push(format!("{path}: the command"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
                for value in arg.get_possible_values() {
                    if value.get_help().is_none() && !["true", "false"].contains(&value.get_name())
                    {
                        missing.push(format!("{path} {id}={}", value.get_name()));
                    }
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" {
                    check(sub, &path, missing);
                }
            }
        }
        let mut missing = Vec::new();
        check(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "no help for: {missing:#?}");
    }
}
