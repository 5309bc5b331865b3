//! The `ffiprof` command line: parses flags into the library's options, calls the
//! library, prints what it returns.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ffiprof::report::compare;
use ffiprof::sample::PerfUnwind;
use ffiprof::{comparison, measure, profile, run, sampler_cost, workload, Outcome};

mod args;
use args::*;

/// `command`, or with cargo's flags the built target and `command` as its arguments.
fn built_program(cargo: CargoArgs, command: Vec<OsString>) -> ffiprof::Result<Vec<OsString>> {
    ffiprof::cargo::program(&cargo.selection(), command, &mut |s| ffiprof::progress::say(s))
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
    ffiprof::progress::finish();
    eprint!("{}", outcome.census.text());
    let files = match outcome.census.engine {
        memory::Engine::Native => "memory.json, memory.md, peak.svg, exit.svg, memory.pb.gz",
        memory::Engine::Dhat => {
            "memory.json, memory.md, peak.svg, exit.svg, memory.pb.gz; DHAT's files in dhat/"
        }
    };
    Ok(wrote_census(&outcome.out, files, outcome.census.exit_status))
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
    ffiprof::progress::finish();
    eprint!("{}", outcome.census.text());
    let status = outcome.census.exit_status;
    let done = wrote_census(&outcome.out, "lifetimes.json, lifetimes.md, access.svg", status);

    if args.fail_on_error && outcome.census.total > 0 {
        return Ok(Outcome::Errors(outcome.census.total));
    }
    Ok(done)
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
    let outcome = xlto::run(&options, &mut |stage| ffiprof::progress::stage(stage))?;
    ffiprof::progress::finish();
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
    ffiprof::progress::finish();
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
    ffiprof::progress::finish();
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
    options.count_crossings = Some(ffiprof::crossings::boundary_calls);
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
    // The commands that run a program, or build one, say where they are on a terminal.
    if matches!(
        cli.command,
        Command::Record(_)
            | Command::Crossings(_)
            | Command::Memory(_)
            | Command::Lifetimes(_)
            | Command::Xlto(_)
    ) {
        ffiprof::progress::enable();
    }
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
            ffiprof::progress::finish();
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
