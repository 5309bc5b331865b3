//! The command line's flags: clap's argument structs, one per command, and the flags
//! several commands share (a cargo target to build, the rounds of a timing). `main.rs`
//! parses them, calls the library and prints what it returns.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ffiprof::sample::SamplerKind;

/// Measures what it costs to cross the Rust/C boundary.
#[derive(Parser)]
#[command(name = "ffiprof", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
pub(crate) struct RecordArgs {
    /// Samples per second per thread.
    #[arg(long, default_value_t = ffiprof::sample::Options::default().frequency)]
    pub(crate) frequency: u64,
    /// Stop recording after this many seconds (the program keeps running).
    #[arg(long)]
    pub(crate) duration: Option<f64>,
    /// Output directory (default: results/record-<program>).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Bytes of user stack copied per sample (a multiple of 8, at most 65528); deeper
    /// stacks are cut short and counted as truncated.
    #[arg(long, default_value_t = ffiprof::sample::Options::default().stack_bytes)]
    pub(crate) stack_bytes: u32,
    /// Attach to this running process (all of its threads) instead of starting one.
    #[arg(long, conflicts_with = "command")]
    pub(crate) pid: Option<u32>,
    /// Record where threads wait too: each switch off a CPU with its user stack (where
    /// perf allows kernel-mode samples; else time from switch records alone), weighted by
    /// the time until the thread runs again.
    #[arg(long)]
    pub(crate) off_cpu: bool,
    #[command(flatten)]
    pub(crate) cargo: CargoArgs,
    /// The program and its arguments, after `--` (with --bin or --example: the
    /// arguments of the program built).
    #[arg(last = true, value_name = "PROGRAM")]
    pub(crate) command: Vec<std::ffi::OsString>,
}

#[derive(clap::Args)]
pub(crate) struct CrossingsArgs {
    /// Output directory (default: results/crossings-<program>).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Follow child processes too (each is counted; their crossings are summed).
    #[arg(long)]
    pub(crate) trace_children: bool,
    /// A crossing is chatty with at least this many calls...
    #[arg(long, default_value_t = ffiprof::crossings::Thresholds::default().min_calls)]
    pub(crate) chatty_calls: u64,
    /// ...of at most this many instructions each inside the callee.
    #[arg(long, default_value_t = ffiprof::crossings::Thresholds::default().max_instructions)]
    pub(crate) chatty_instructions: f64,
    /// Read the cost per call from this run's report.json (or run directory) instead of
    /// measuring it.
    #[arg(long, value_name = "REPORT")]
    pub(crate) costs: Option<PathBuf>,
    /// Native runs of the program for its own time, before the census (0: none; the
    /// program then runs only once, under callgrind).
    #[arg(long, default_value_t = ffiprof::crossings::DEFAULT_NATIVE_RUNS)]
    pub(crate) native_runs: usize,
    /// Read these callgrind output files (one per process) instead of running a program.
    #[arg(long, value_name = "CALLGRIND_OUT", num_args = 1..)]
    pub(crate) from: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) cargo: CargoArgs,
    /// The program and its arguments, after `--` (with --bin or --example: the
    /// arguments of the program built).
    #[arg(last = true, value_name = "PROGRAM")]
    pub(crate) command: Vec<std::ffi::OsString>,
}

/// The package target a command builds and runs, as cargo's own flags say it.
#[derive(clap::Args)]
pub(crate) struct CargoArgs {
    /// The package's Cargo.toml (default: cargo's own search from the current directory).
    #[arg(long, value_name = "PATH")]
    pub(crate) manifest_path: Option<PathBuf>,
    /// The package to build, in a workspace of several.
    #[arg(long, short = 'p', value_name = "NAME")]
    pub(crate) package: Option<String>,
    /// Build this binary in release and run it (the arguments after `--` are its own).
    #[arg(long, value_name = "NAME", conflicts_with = "example")]
    pub(crate) bin: Option<String>,
    /// Build this example instead.
    #[arg(long, value_name = "NAME")]
    pub(crate) example: Option<String>,
    /// Features to build with, as cargo takes them (space or comma separated).
    #[arg(long, short = 'F')]
    pub(crate) features: Vec<String>,
    /// Build with every feature.
    #[arg(long)]
    pub(crate) all_features: bool,
    /// Build without the default features.
    #[arg(long)]
    pub(crate) no_default_features: bool,
}

impl CargoArgs {
    pub(crate) fn selection(self) -> ffiprof::cargo::Selection {
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

/// How `duel` and `xlto` run their rounds.
#[derive(clap::Args)]
pub(crate) struct RoundArgs {
    /// Untimed runs of each program first.
    #[arg(long, default_value_t = ffiprof::measure::programs::Options::default().warmup)]
    pub(crate) warmup: usize,
    /// Rounds at least (each runs A, A again and B once, in a shuffled order).
    #[arg(long, default_value_t = ffiprof::measure::programs::Options::default().min_rounds)]
    pub(crate) min_rounds: usize,
    /// Rounds at most.
    #[arg(long, default_value_t = ffiprof::measure::programs::Options::default().max_rounds)]
    pub(crate) max_rounds: usize,
    /// Seconds for the rounds (the minimum rounds run whatever it says); they stop earlier
    /// once every ratio's interval is within ±0.2%.
    #[arg(long, default_value_t = ffiprof::measure::programs::Options::default().budget.as_secs_f64())]
    pub(crate) budget: f64,
}

impl RoundArgs {
    pub(crate) fn options(&self) -> ffiprof::Result<ffiprof::measure::programs::Options> {
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
pub(crate) struct DuelArgs {
    /// The two commands, A (the baseline) then B, each one string as hyperfine takes them:
    /// run directly when they are plain words, by `sh -c` when they use the shell.
    #[arg(num_args = 2, required = true, value_names = ["COMMAND_A", "COMMAND_B"])]
    pub(crate) commands: Vec<String>,
    /// Names for the two commands in tables (give it twice: A's, then B's).
    #[arg(short = 'n', long = "name", value_name = "NAME")]
    pub(crate) names: Vec<String>,
    /// Run both commands by `sh -c` even where they are plain words.
    #[arg(long)]
    pub(crate) shell: bool,
    #[command(flatten)]
    pub(crate) rounds: RoundArgs,
    /// Also write the result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct MemoryArgs {
    /// Output directory (default: results/memory-<program>).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Follow child processes too (each one's heap is counted; figures are summed).
    #[arg(long)]
    pub(crate) trace_children: bool,
    /// Read these DHAT files (one per process) instead of running a program.
    #[arg(long, value_name = "DHAT_JSON", num_args = 1..)]
    pub(crate) from: Vec<PathBuf>,
    /// Run the program under valgrind's DHAT instead of ffiprof's interposer: for static
    /// or setuid programs, and as a cross-check (about 70 times slower; no ownership).
    #[arg(long, conflicts_with = "sample_bytes")]
    pub(crate) dhat: bool,
    /// Keep the stack of about one allocation per N bytes (Poisson, as tcmalloc samples)
    /// and scale the sites' figures; totals, block counts and ownership stay exact. For
    /// long programs: the interposer costs less the fewer stacks it unwinds.
    #[arg(long, value_name = "N")]
    pub(crate) sample_bytes: Option<u64>,
    #[command(flatten)]
    pub(crate) cargo: CargoArgs,
    /// The program and its arguments, after `--` (with --bin or --example: the
    /// arguments of the program built).
    #[arg(last = true, value_name = "PROGRAM")]
    pub(crate) command: Vec<std::ffi::OsString>,
}

#[derive(clap::Args)]
pub(crate) struct LifetimesArgs {
    /// Output directory (default: results/lifetimes-<program>).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Follow child processes too.
    #[arg(long)]
    pub(crate) trace_children: bool,
    /// Read these memcheck XML files (`valgrind --tool=memcheck --xml=yes
    /// --xml-file=FILE`, one per process) instead of running a program.
    #[arg(long, value_name = "XML", num_args = 1..)]
    pub(crate) from: Vec<PathBuf>,
    /// Exit with status 3 when any error was found (else the program's status).
    #[arg(long)]
    pub(crate) fail_on_error: bool,
    /// Run the program at its own speed instead of under memcheck, about one allocation in
    /// N (1000 when N is left out) on guard pages: a read or write after its free or past
    /// its end faults and is reported, and the program goes on. For long runs; 1 guards
    /// every allocation that fits a page.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "1000", conflicts_with = "from")]
    pub(crate) guard: Option<u64>,
    #[command(flatten)]
    pub(crate) cargo: CargoArgs,
    /// The program and its arguments, after `--` (with --bin or --example: the
    /// arguments of the program built).
    #[arg(last = true, value_name = "PROGRAM")]
    pub(crate) command: Vec<std::ffi::OsString>,
}

#[derive(clap::Args)]
pub(crate) struct XltoArgs {
    #[command(flatten)]
    pub(crate) cargo: CargoArgs,
    /// Output directory (default: results/xlto-<name>).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Skip the third build (the C by the same clang without LTO), which tells the
    /// compiler's share of the change from the inlining's.
    #[arg(long)]
    pub(crate) no_compiler_control: bool,
    #[command(flatten)]
    pub(crate) rounds: RoundArgs,
    /// The program's arguments, after `--`.
    #[arg(last = true, value_name = "ARGS")]
    pub(crate) args: Vec<std::ffi::OsString>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum SamplerArg {
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
    pub(crate) fn kinds(self) -> Vec<SamplerKind> {
        match self {
            SamplerArg::Pprof => vec![SamplerKind::Pprof],
            SamplerArg::Perf => vec![SamplerKind::Perf],
            SamplerArg::Both => SamplerKind::ALL.to_vec(),
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum MetricArg {
    /// A significant slowdown of a paired time ratio.
    Time,
    /// More instructions per call, exactly counted.
    Instructions,
    /// Either.
    Both,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum UnwindArg {
    /// DWARF CFI over a copy of the user stack (framehop): exact through frameless code.
    Dwarf,
    /// The kernel's frame-pointer callchain: cheaper, loses the callers of frameless code.
    Fp,
}

#[derive(clap::Args)]
pub(crate) struct ProfileArgs {
    /// Workload name (`ffiprof list`; also `calibrate`).
    pub(crate) workload: String,
    /// Variant to profile (default: all); the baseline is profiled too, for the
    /// differential flamegraph.
    #[arg(long)]
    pub(crate) variant: Option<String>,
    /// Input name (default: the workload's first).
    #[arg(long)]
    pub(crate) input: Option<String>,
    /// Which sampler captures the stacks: pprof (setitimer, in-process), perf
    /// (perf_event_open with DWARF unwinding) or both.
    #[arg(long, value_enum, default_value_t = SamplerArg::Both)]
    pub(crate) sampler: SamplerArg,
    /// Samples per second to ask for (1 to 100000).
    #[arg(long, default_value_t = ffiprof::sample::Options::default().frequency)]
    pub(crate) frequency: u64,
    /// Sampling window per variant and sampler, seconds.
    #[arg(long, default_value_t = ffiprof::profile::Options::default().duration.as_secs_f64())]
    pub(crate) duration: f64,
    /// How the perf sampler unwinds: DWARF CFI over a stack copy (exact), or the
    /// kernel's frame-pointer callchain (cheaper, skips callers of frameless code).
    #[arg(long, value_enum, default_value_t = UnwindArg::Dwarf)]
    pub(crate) perf_unwind: UnwindArg,
    /// Output directory (default: results/profile-<workload>).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct CostArgs {
    /// Workload (default: pow).
    #[arg(long, default_value = "pow")]
    pub(crate) workload: String,
    /// Variant (default: per-call).
    #[arg(long, default_value = "per-call")]
    pub(crate) variant: String,
    /// Input (default: the workload's last, for pow the chain).
    #[arg(long)]
    pub(crate) input: Option<String>,
    /// Samples per second to ask for.
    #[arg(long, default_value_t = ffiprof::sample::Options::default().frequency)]
    pub(crate) frequency: u64,
    /// Seconds per window.
    #[arg(long, default_value_t = 0.25)]
    pub(crate) window: f64,
    /// Paired rounds (each: an unprofiled, a control and a profiled window; at least 6).
    #[arg(long, default_value_t = 21)]
    pub(crate) rounds: usize,
    /// Which sampler captures the stacks: pprof (setitimer, in-process), perf
    /// (perf_event_open with DWARF unwinding) or both.
    #[arg(long, value_enum, default_value_t = SamplerArg::Both)]
    pub(crate) sampler: SamplerArg,
}
