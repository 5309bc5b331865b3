//! Whole programs timed against each other in paired, interleaved rounds (`ffiprof duel`,
//! and `ffiprof xlto`'s before-and-after).
//!
//! hyperfine runs every run of one command, then every run of the other: on a machine
//! whose speed drifts by 20-50% over seconds, that compares the two windows as much as
//! the two programs. Here each round runs the baseline, an A/A control (the baseline
//! again, as a second arm) and the variant once each, in an order shuffled anew every
//! round; each round's ratio is taken against the same round's baseline, and which of the
//! two baseline arms is the baseline is drawn per round, as the paired engine does
//! ([`super::paired`]). CPU time (user + system of the process and everything it waited
//! for) and wall time are both taken from every run. The figures, intervals and verdict
//! come from the engine's own summary, so they read as the catalogue's do: a difference
//! counts only where it clears the control's noise floor and the smallest effect ever
//! called measurable.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::paired::{self, Judgement, PairedCase, Stop};
use super::stats::Shuffle;
use super::Interval;
use crate::error::{Error, Result};
use crate::fmt::{pct, signed_pct};
use crate::workload::Role;

/// One program to time: a name for the tables and its command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    /// Its name in tables and sentences.
    pub name: String,
    /// The executable, then its arguments.
    pub argv: Vec<OsString>,
}

/// The two programs of a duel, A then B, from their command lines as hyperfine takes them,
/// named by `names` (at most two: A's, then B's) or by their commands. Two of one name
/// cannot be told apart in a table: the user's to fix.
pub fn pair(names: Vec<String>, commands: &[String; 2], shell: bool) -> Result<[Program; 2]> {
    if names.len() > 2 {
        return Err(Error::InvalidOption("--name is given at most twice (A, B)".into()));
    }
    let mut names = names.into_iter();
    let mut program = |line: &str| Program::from_command_line(names.next(), line, shell);
    let programs = [program(&commands[0])?, program(&commands[1])?];
    if programs[0].name == programs[1].name {
        return Err(Error::InvalidOption(
            "the two commands have the same name: tell them apart with -n NAME -n NAME".into(),
        ));
    }
    Ok(programs)
}

impl Program {
    /// A program from a command line as hyperfine takes one, a single string: split into
    /// words (quotes and backslashes as a POSIX shell reads them) and run directly, or run
    /// by `sh -c` where it uses the shell (pipes, redirections, variables, globs,
    /// assignments) or where `shell` asks for it.
    pub fn from_command_line(name: Option<String>, line: &str, shell: bool) -> Result<Program> {
        let words = if shell { None } else { split_words(line) };
        let argv: Vec<OsString> = match words {
            Some(words) if !words.is_empty() => words.into_iter().map(OsString::from).collect(),
            Some(_) => {
                return Err(Error::InvalidOption("a command to time is empty".into()));
            }
            None => vec!["sh".into(), "-c".into(), line.into()],
        };
        Ok(Program { name: name.unwrap_or_else(|| line.to_owned()), argv })
    }
}

/// `line` split into words as a POSIX shell would, or `None` where it needs the shell
/// (an unquoted `|&;<>()$\`*?[~#` or an assignment in the first word).
fn split_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        q => w.push(q),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '$' | '`' => return None,
                        '\\' => w.push(chars.next()?),
                        q => w.push(q),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).push(chars.next()?),
            '|' | '&' | ';' | '<' | '>' | '(' | ')' | '$' | '`' | '*' | '?' | '[' | '~' | '#' => {
                return None
            }
            '=' if words.is_empty() => return None,
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Some(words)
}

/// How the rounds go.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Options {
    /// Untimed runs of each program before the rounds (the page cache, the dynamic
    /// linker's first look-ups). Default: 1.
    pub warmup: usize,
    /// Rounds before any stopping rule applies (at least 6: fewer give no 95% interval of
    /// a median). Default: 10.
    pub min_rounds: usize,
    /// Rounds at most. Default: 1000.
    pub max_rounds: usize,
    /// Time for the rounds; the minimum rounds run whatever it says. Default: 30 s.
    pub budget: Duration,
    /// Stop once every ratio's interval, CPU and wall, has a half-width at most this share
    /// of its estimate. Default: 0.002.
    pub precision: f64,
    /// Smallest relative difference ever called measurable. Default: 0.01.
    pub min_effect: f64,
    /// A run's non-zero status ends the timing with an error (`duel`), or is recorded
    /// (`xlto`, which passes the program's status through). Default: true.
    pub fail_on_status: bool,
    /// Seed of the round order.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            warmup: 1,
            min_rounds: 10,
            max_rounds: 1000,
            budget: Duration::from_secs(30),
            precision: 0.002,
            min_effect: 0.01,
            fail_on_status: true,
            seed: 0x5eed_f00d,
        }
    }
}

impl Options {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.min_rounds < 6 || self.max_rounds < self.min_rounds {
            return Err(Error::InvalidOption(
                "--min-rounds must be at least 6 (fewer give no 95% interval of a median) and \
                 --max-rounds at least --min-rounds"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// One run's time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timed {
    /// Wall seconds.
    pub wall_seconds: f64,
    /// CPU seconds: user + system, of the program and the children it waited for.
    pub cpu_seconds: f64,
    /// Its exit status, as a shell reports it (128 + signal when killed).
    pub status: i32,
}

/// What runs the programs and reads the clock: processes and the monotonic clock, or a
/// synthetic runner in tests.
pub trait Runner {
    /// Runs program `index` once, output discarded.
    fn run(&mut self, index: usize) -> Result<Timed>;
    /// Seconds since an arbitrary origin.
    fn now(&mut self) -> f64;
}

/// Runs the programs as processes.
pub struct Processes<'a> {
    programs: &'a [Program],
    origin: Instant,
}

impl<'a> Processes<'a> {
    /// A runner of `programs`.
    pub fn new(programs: &'a [Program]) -> Self {
        Processes { programs, origin: Instant::now() }
    }

    /// Runs program `index` with its standard error kept, for the warm-up: a program that
    /// fails shows why.
    fn warm(&mut self, index: usize) -> Result<(i32, String)> {
        let p = &self.programs[index];
        let out = Command::new(&p.argv[0])
            .args(&p.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| no_such(p, e))?;
        let tail = crate::fmt::last_lines(&String::from_utf8_lossy(&out.stderr), 10);
        Ok((crate::ffi::shell_status(out.status), tail))
    }
}

fn no_such(p: &Program, e: std::io::Error) -> Error {
    Error::NoSuchProgram {
        program: p.argv[0].to_string_lossy().into_owned(),
        reason: e.to_string(),
    }
}

impl Runner for Processes<'_> {
    fn run(&mut self, index: usize) -> Result<Timed> {
        let p = &self.programs[index];
        let cpu = crate::ffi::children_cpu_seconds();
        let start = Instant::now();
        let status = Command::new(&p.argv[0])
            .args(&p.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| no_such(p, e))?;
        Ok(Timed {
            wall_seconds: start.elapsed().as_secs_f64(),
            cpu_seconds: crate::ffi::children_cpu_seconds() - cpu,
            status: crate::ffi::shell_status(status),
        })
    }

    fn now(&mut self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }
}

/// One measure (CPU or wall time) of the two programs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measure {
    /// The baseline's seconds per run: median over rounds, with its interval.
    pub baseline_seconds: Interval,
    /// The variant's.
    pub variant_seconds: Interval,
    /// The variant's time over the same round's baseline's.
    pub ratio: Interval,
    /// The control's (the baseline run again as a second arm) over the baseline's.
    pub control_ratio: Interval,
    /// The relative difference a ratio must clear: the control's reach from 1, or the
    /// smallest effect ever called measurable, whichever is larger.
    pub floor: f64,
    /// The verdict.
    pub judgement: Judgement,
}

impl Measure {
    fn from_case(case: &PairedCase) -> Measure {
        let [base, control, variant] = [0, 1, 2].map(|i| &case.variants[i]);
        let ratio = variant.ratio.expect("a variant has a ratio");
        Measure {
            baseline_seconds: base.ns_per_call,
            variant_seconds: variant.ns_per_call,
            ratio,
            control_ratio: control.ratio.expect("the control has a ratio"),
            floor: case.summary.floor(),
            judgement: case.summary.judge(&ratio, None),
        }
    }

    /// The verdict in words, `what` the measure ("CPU time").
    pub fn sentence(&self, what: &str, variant: &str, baseline: &str) -> String {
        let r = &self.ratio;
        let c = &self.control_ratio;
        let control = format!("control {:.3} [{:.3}, {:.3}]", c.estimate, c.lower, c.upper);
        match self.judgement {
            Judgement::Measurable => format!(
                "{variant} took {} {} {what} than {baseline} ({:.3}x [{:.3}, {:.3}]; {control})",
                pct((r.estimate - 1.0).abs(), 1),
                if r.estimate < 1.0 { "less" } else { "more" },
                r.estimate,
                r.lower,
                r.upper
            ),
            Judgement::TooNoisy => format!(
                "{what}: not judged: machine too noisy (the control, the same program, \
                 measured {:.3}x [{:.3}, {:.3}])",
                c.estimate, c.lower, c.upper
            ),
            Judgement::WithinNoise | Judgement::WithinPlacement => format!(
                "{what}: no measurable difference between {variant} and {baseline} ({}, 95% \
                 interval {:.3} .. {:.3}x, not clear of the ±{} floor; {control})",
                signed_pct(r.estimate - 1.0),
                r.lower,
                r.upper,
                pct(self.floor, 1)
            ),
        }
    }
}

/// The two programs timed against each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Duel {
    /// The baseline's name.
    pub baseline: String,
    /// The variant's name.
    pub variant: String,
    /// Rounds run (each: baseline, control and variant once).
    pub rounds: usize,
    /// Why the rounds stopped.
    pub stop: Stop,
    /// Seconds the rounds took, warm-up included.
    pub seconds: f64,
    /// CPU time.
    pub cpu: Measure,
    /// Wall time.
    pub wall: Measure,
    /// The baseline's and the variant's last non-zero exit status (0 when every run
    /// succeeded).
    pub statuses: [i32; 2],
}

impl Duel {
    /// The verdicts, CPU then wall, in words.
    pub fn sentences(&self) -> [String; 2] {
        [
            self.cpu.sentence("CPU time", &self.variant, &self.baseline),
            self.wall.sentence("wall time", &self.variant, &self.baseline),
        ]
    }

    /// A table of the two measures.
    pub fn table(&self) -> String {
        let row = |what: &str, m: &Measure| {
            let s = |i: &Interval| crate::fmt::seconds(i.estimate);
            let i = |i: &Interval| format!("{:.3} [{:.3}, {:.3}]", i.estimate, i.lower, i.upper);
            vec![
                what.to_owned(),
                s(&m.baseline_seconds),
                s(&m.variant_seconds),
                i(&m.ratio),
                i(&m.control_ratio),
                pct(m.floor, 1),
            ]
        };
        crate::fmt::table(
            &["", &self.baseline, &self.variant, "ratio", "control", "floor"],
            &[row("CPU", &self.cpu), row("wall", &self.wall)],
            1,
        )
    }
}

/// Times `programs[1]` (the variant) against `programs[0]` (the baseline, run as two
/// arms) in paired rounds (see the module docs), and writes the result as JSON to `json`
/// where given: staged, then renamed, and checked writable before anything runs.
pub fn duel(programs: &[Program; 2], options: &Options, json: Option<&Path>) -> Result<Duel> {
    options.validate()?;
    let file = json.map(crate::output::AtomicFile::create).transpose()?;
    let duel = timed(programs, options)?;
    if let Some(file) = file {
        let text = serde_json::to_string_pretty(&duel)
            .map_err(|source| Error::Serialize { what: "the duel's JSON", source })?;
        file.commit(text.as_bytes())?;
    }
    Ok(duel)
}

/// The warm-up and the rounds, as processes.
pub(crate) fn timed(programs: &[Program; 2], options: &Options) -> Result<Duel> {
    let mut runner = Processes::new(programs);
    for _ in 0..options.warmup {
        for (index, p) in programs.iter().enumerate() {
            let (status, tail) = runner.warm(index)?;
            if status != 0 && options.fail_on_status {
                return Err(Error::InvalidOption(format!(
                    "{} exited with status {status} (its last lines below); ffiprof times \
                     programs that succeed\n{tail}",
                    p.name
                )));
            }
        }
    }
    let names = [programs[0].name.as_str(), programs[1].name.as_str()];
    rounds(&mut runner, names, options)
}

/// The rounds themselves, on any runner.
pub fn rounds(runner: &mut dyn Runner, names: [&str; 2], o: &Options) -> Result<Duel> {
    let start = runner.now();
    // Arms: 0 the baseline, 1 its control (the same program), 2 the variant.
    let program = [0, 0, 1];
    let (mut cpu, mut wall) = (vec![Vec::new(); 3], vec![Vec::new(); 3]);
    let mut statuses = [0; 2];
    let mut order = [0, 1, 2];
    let mut shuffle = Shuffle::new(o.seed);
    let stop = loop {
        shuffle.shuffle(&mut order);
        for &arm in &order {
            let t = runner.run(program[arm])?;
            if t.status != 0 {
                if o.fail_on_status {
                    return Err(Error::InvalidOption(format!(
                        "{} exited with status {} during the rounds; ffiprof times programs \
                         that succeed",
                        names[program[arm]], t.status
                    )));
                }
                statuses[program[arm]] = t.status;
            }
            cpu[arm].push(t.cpu_seconds);
            wall[arm].push(t.wall_seconds);
        }
        if shuffle.coin() {
            for v in [&mut cpu, &mut wall] {
                let (a, b) = v.split_at_mut(1);
                std::mem::swap(a[0].last_mut().expect("a run"), b[0].last_mut().expect("a run"));
            }
        }
        let n = cpu[0].len();
        if n >= o.max_rounds {
            break Stop::MaxRounds;
        }
        if n >= o.min_rounds {
            if paired::precise(&cpu, o.precision) && paired::precise(&wall, o.precision) {
                break Stop::Precise;
            }
            if runner.now() - start >= o.budget.as_secs_f64() {
                break Stop::Budget;
            }
        }
    };
    let seconds = runner.now() - start;
    let engine = paired::Options { min_effect: o.min_effect, ..paired::Options::default() };
    let subjects = [
        (names[0], Role::Baseline),
        (&*paired::control_name(names[0]), Role::Control),
        (names[1], Role::PerCall),
    ];
    let measure = |per_round: &[Vec<f64>]| {
        let case = paired::summarize_rounds(&subjects, per_round, stop, seconds, &engine);
        Measure::from_case(&case)
    };
    Ok(Duel {
        baseline: names[0].to_owned(),
        variant: names[1].to_owned(),
        rounds: cpu[0].len(),
        stop,
        seconds,
        cpu: measure(&cpu),
        wall: measure(&wall),
        statuses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duel_needs_two_programs_told_apart() {
        let commands = ["true".to_owned(), "true".to_owned()];
        let e = pair(vec![], &commands, false).unwrap_err();
        assert!(e.to_string().contains("-n NAME -n NAME"), "{e}");
        let named = pair(vec!["a".into(), "b".into()], &commands, false).unwrap();
        assert_eq!((named[0].name.as_str(), named[1].name.as_str()), ("a", "b"));
        let three = vec!["a".into(), "b".into(), "c".into()];
        assert!(matches!(pair(three, &commands, false), Err(Error::InvalidOption(_))));
    }

    /// Programs whose runs take `base[i]` seconds, times a drift that moves the machine's
    /// speed by ±30% over the rounds, times ±1% of pseudo-random noise per run.
    struct Synthetic {
        base: [f64; 2],
        runs: u64,
        clock: f64,
        status: i32,
        random: Shuffle,
    }

    impl Runner for Synthetic {
        fn run(&mut self, index: usize) -> Result<Timed> {
            self.runs += 1;
            let drift = 1.0 + 0.3 * (self.runs as f64 / 40.0).sin();
            let noise = 1.0 + 0.02 * (self.random.below(1000) as f64 / 1000.0 - 0.5);
            let t = self.base[index] * drift * noise;
            self.clock += t;
            Ok(Timed {
                wall_seconds: t,
                cpu_seconds: t * 0.9,
                status: if index == 1 { self.status } else { 0 },
            })
        }
        fn now(&mut self) -> f64 {
            self.clock
        }
    }

    fn synthetic(base: [f64; 2]) -> Synthetic {
        Synthetic { base, runs: 0, clock: 0.0, status: 0, random: Shuffle::new(7) }
    }

    #[test]
    fn the_same_program_twice_is_never_called_different_despite_drift() {
        let o = Options::default();
        let d = rounds(&mut synthetic([0.05, 0.05]), ["a", "a again"], &o).unwrap();
        for m in [&d.cpu, &d.wall] {
            assert!(m.control_ratio.contains(1.0), "{:?}", m.control_ratio);
            assert_ne!(m.judgement, Judgement::Measurable, "{m:?}");
        }
        assert!(d.rounds >= o.min_rounds);
        assert!(d.sentences()[0].contains("no measurable difference"), "{}", d.sentences()[0]);
    }

    #[test]
    fn a_program_three_percent_faster_is_measured_as_such_despite_drift() {
        let d =
            rounds(&mut synthetic([0.1, 0.097]), ["before", "after"], &Options::default()).unwrap();
        assert_eq!(d.cpu.judgement, Judgement::Measurable, "{d:?}");
        assert!((d.cpu.ratio.estimate - 0.97).abs() < 0.005, "{:?}", d.cpu.ratio);
        assert!(d.cpu.ratio.upper < 0.99);
        let words = &d.sentences()[0];
        assert!(words.starts_with("after took "), "{words}");
        assert!(words.contains("% less CPU time than before (0.97"), "{words}");
        // Drift of ±30% is in every arm's seconds, not in the ratio.
        assert!(d.cpu.baseline_seconds.upper / d.cpu.baseline_seconds.lower > 1.1);
    }

    #[test]
    fn rounds_stop_at_the_budget_but_not_before_the_minimum() {
        let mut o =
            Options { budget: Duration::from_millis(1), precision: 0.0, ..Options::default() };
        let d = rounds(&mut synthetic([0.1, 0.2]), ["a", "b"], &o).unwrap();
        assert_eq!((d.rounds, d.stop), (o.min_rounds, Stop::Budget));
        o.min_rounds = 3;
        assert!(matches!(o.validate(), Err(Error::InvalidOption(_))));
    }

    #[test]
    fn a_failing_run_ends_the_timing_or_is_recorded() {
        let mut s = synthetic([0.1, 0.1]);
        s.status = 3;
        let err = rounds(&mut s, ["a", "b"], &Options::default()).unwrap_err();
        assert!(err.to_string().contains("b exited with status 3"), "{err}");
        let o = Options { fail_on_status: false, ..Options::default() };
        s.runs = 0;
        assert_eq!(rounds(&mut s, ["a", "b"], &o).unwrap().statuses, [0, 3]);
    }

    #[test]
    fn command_lines_are_split_as_a_shell_would_or_given_to_it() {
        let p = |line: &str| Program::from_command_line(None, line, false).unwrap().argv;
        assert_eq!(p("./prog -n 3"), ["./prog", "-n", "3"]);
        assert_eq!(p(r#"prog 'a b' "c \"d\"" e\ f"#), ["prog", "a b", "c \"d\"", "e f"]);
        assert_eq!(p("prog | wc -l"), ["sh", "-c", "prog | wc -l"]);
        assert_eq!(p("X=1 prog"), ["sh", "-c", "X=1 prog"]);
        assert_eq!(p("prog $HOME"), ["sh", "-c", "prog $HOME"]);
        assert_eq!(p("prog 'unclosed"), ["sh", "-c", "prog 'unclosed"]);
        assert_eq!(
            Program::from_command_line(None, "prog x", true).unwrap().argv,
            ["sh", "-c", "prog x"]
        );
        assert!(Program::from_command_line(None, "  ", false).is_err());
    }
}
