//! `xlto.json`'s types (results/README.md documents them), assembled from the stages, and
//! the experiment in words: the terminal text and `xlto.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::diff::{self, Objects, Remaining, Removed};
use crate::cargo::{Build, Target};
use crate::crossings::{CallKind, Census};
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::fmt::{self, pct};
use crate::measure::paired::Judgement;
use crate::measure::programs::{Duel, Measure};
use crate::measure::Interval;

/// Version of `xlto.json`.
pub const XLTO_SCHEMA_VERSION: u32 = 2;

/// Rows of each table on the terminal; the files have every one.
const TERMINAL_ROWS: usize = 15;

/// The file's name in its directory.
pub const XLTO_FILE: &str = "xlto.json";

/// The two builds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Builds {
    /// As cargo builds it in release.
    pub release: Build,
    /// With cross-language LTO.
    pub xlto: Build,
}

/// The compiler control: the C built by the same clang without LTO, Rust as released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Control {
    /// Its build.
    pub build: Build,
    /// The whole program's instructions, exact.
    pub instructions: u64,
    /// Calls from Rust into C and the C runtime.
    pub rust_to_c_calls: u64,
    /// Its census's directory.
    pub census: String,
}

/// The experiment: `xlto.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Xlto {
    /// [`XLTO_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `ffiprof <version>`.
    pub tool: String,
    /// The machine.
    pub environment: Environment,
    /// What was built.
    pub target: Target,
    /// rustc, clang and lld, first lines of their `--version`.
    pub toolchain: Vec<String>,
    /// The two builds.
    pub builds: Builds,
    /// The C and C++ objects that reached the LTO link: bitcode or machine code.
    pub c_objects: Objects,
    /// The program's arguments.
    pub args: Vec<String>,
    /// The release build's exit status under callgrind (ffiprof exits with it).
    pub exit_status: i32,
    /// The LTO build's.
    pub xlto_exit_status: i32,
    /// Calls from Rust into C and the C runtime, release build.
    pub rust_to_c_calls_before: u64,
    /// The same, LTO build.
    pub rust_to_c_calls_after: u64,
    /// Instructions of the whole program (every process counted), release build, exact.
    pub instructions_before: u64,
    /// The same, LTO build.
    pub instructions_after: u64,
    /// Crossings of the release build that the LTO build does not make.
    pub crossings_removed: Vec<Removed>,
    /// Crossings the LTO build makes, and why each remains.
    pub crossings_remaining: Vec<Remaining>,
    /// The LTO build's CPU time over the release build's, per paired round.
    pub time_ratio: Interval,
    /// The A/A control's (the release build against itself).
    pub control_ratio: Interval,
    /// The same two for wall time.
    pub wall_ratio: Interval,
    /// The control's wall-time ratio.
    pub wall_control_ratio: Interval,
    /// The paired timing in full.
    pub timing: Duel,
    /// The two censuses' directories, release then LTO (each `crossings.json`).
    pub censuses: [String; 2],
    /// The compiler control, where built (absent with `--no-compiler-control`).
    pub compiler_control: Option<Control>,
    /// What the reader should know.
    pub notes: Vec<String>,
}

/// What [`assemble`] is made from.
pub(crate) struct Parts<'a> {
    pub(crate) environment: Environment,
    pub(crate) target: Target,
    pub(crate) toolchain: Vec<String>,
    pub(crate) builds: Builds,
    pub(crate) objects: Objects,
    pub(crate) args: Vec<String>,
    pub(crate) before: &'a Census,
    pub(crate) after: &'a Census,
    pub(crate) control: Option<Control>,
    pub(crate) timing: Duel,
    /// The LTO build's machine code, where it can be read.
    pub(crate) code: Option<&'a diff::Code>,
}

/// The experiment's record from its parts.
pub(crate) fn assemble(p: Parts<'_>) -> Xlto {
    let (removed, remaining) = diff::diff(p.before, p.after, &p.objects, p.code);
    let mut x = Xlto {
        schema_version: XLTO_SCHEMA_VERSION,
        tool: format!("ffiprof {}", env!("CARGO_PKG_VERSION")),
        environment: p.environment,
        target: p.target,
        toolchain: p.toolchain,
        builds: p.builds,
        c_objects: p.objects,
        args: p.args,
        exit_status: p.before.exit_status,
        xlto_exit_status: p.after.exit_status,
        rust_to_c_calls_before: diff::rust_to_c_calls(p.before),
        rust_to_c_calls_after: diff::rust_to_c_calls(p.after),
        instructions_before: p.before.totals.program_instructions,
        instructions_after: p.after.totals.program_instructions,
        crossings_removed: removed,
        crossings_remaining: remaining,
        time_ratio: p.timing.cpu.ratio,
        control_ratio: p.timing.cpu.control_ratio,
        wall_ratio: p.timing.wall.ratio,
        wall_control_ratio: p.timing.wall.control_ratio,
        timing: p.timing,
        censuses: [super::CENSUS_DIRS[0].to_owned(), super::CENSUS_DIRS[1].to_owned()],
        compiler_control: p.control,
        notes: Vec::new(),
    };
    x.notes = notes(&x);
    x
}

fn notes(x: &Xlto) -> Vec<String> {
    let mut notes = Vec::new();
    if x.c_objects.bitcode == 0 {
        notes.push(
            "no C or C++ object reached the LTO link as bitcode: the package's C is prebuilt, \
             or its build script ignores CC and CFLAGS, so there is nothing to inline"
                .to_owned(),
        );
    }
    if x.crossings_removed.is_empty() && x.rust_to_c_calls_after >= x.rust_to_c_calls_before {
        notes.push(
            "cross-language LTO inlined no crossing here; each remaining one says why".to_owned(),
        );
    }
    if x.exit_status != 0 || x.xlto_exit_status != 0 {
        notes.push(format!(
            "the program exited with status {} (release build) and {} (LTO build) under \
             callgrind; the counts are of what ran",
            x.exit_status, x.xlto_exit_status
        ));
    }
    if x.timing.statuses != [0, 0] {
        notes.push(format!(
            "while timed, the release build's runs last exited with status {} and the LTO \
             build's with {}",
            x.timing.statuses[0], x.timing.statuses[1]
        ));
    }
    notes
}

/// A relative change of `after` from `before`, as a share (`-0.023`).
fn change(before: u64, after: u64) -> f64 {
    if before == 0 {
        0.0
    } else {
        after as f64 / before as f64 - 1.0
    }
}

/// What a measure says in the answer sentence: `1.8% [1.1, 2.6] less CPU time (control …)`.
fn time_words(m: &Measure, what: &str) -> String {
    let c = &m.control_ratio;
    let control = format!("control {:.3} [{:.3}, {:.3}]", c.estimate, c.lower, c.upper);
    let r = &m.ratio;
    match m.judgement {
        Judgement::Measurable => {
            let (less, a, b) = if r.estimate < 1.0 {
                ("less", 1.0 - r.upper, 1.0 - r.lower)
            } else {
                ("more", r.lower - 1.0, r.upper - 1.0)
            };
            format!(
                "{} [{:.1}, {:.1}] {less} {what} ({control})",
                pct((r.estimate - 1.0).abs(), 1),
                a * 100.0,
                b * 100.0
            )
        }
        Judgement::TooNoisy => {
            format!("{what} not judged: the machine was too noisy ({control}, identical work)")
        }
        Judgement::WithinNoise | Judgement::WithinPlacement => format!(
            "no measurable difference in {what} ({}, 95% interval {:.3} .. {:.3}x, within the \
             ±{} floor; {control})",
            fmt::signed_pct(r.estimate - 1.0),
            r.lower,
            r.upper,
            pct(m.floor, 1)
        ),
    }
}

impl Xlto {
    /// The answer in one sentence.
    pub fn answer(&self) -> String {
        let (before, after) = (self.rust_to_c_calls_before, self.rust_to_c_calls_after);
        let calls = if after <= before {
            format!(
                "cross-language LTO inlined {} of {} Rust->C calls",
                fmt::count(before - after),
                fmt::count(before)
            )
        } else {
            format!(
                "cross-language LTO made more Rust->C calls ({} against {})",
                fmt::count(after),
                fmt::count(before)
            )
        };
        let c = change(self.instructions_before, self.instructions_after);
        let instructions = if c == 0.0 {
            "the same number of instructions".to_owned()
        } else {
            format!("{} {} instructions", pct(c.abs(), 1), if c < 0.0 { "fewer" } else { "more" })
        };
        let mut s = format!(
            "{calls}; the program ran {instructions} and {}",
            time_words(&self.timing.cpu, "CPU time")
        );
        if let Some(c) = &self.compiler_control {
            let _ = write!(
                s,
                ". Of the instructions, changing the C compiler alone (clang without LTO) \
                 accounts for {} and LTO itself for {}",
                fmt::signed_pct(change(self.instructions_before, c.instructions)),
                fmt::signed_pct(change(c.instructions, self.instructions_after))
            );
        }
        s
    }

    fn removed_rows(&self, width: usize) -> Vec<Vec<String>> {
        let names = |v: &[String]| {
            let shown: Vec<String> = v.iter().take(2).map(|n| fmt::short_name(n, width)).collect();
            let more = v.len().saturating_sub(2);
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            format!("{}{more}", shown.join(", "))
        };
        self.crossings_removed
            .iter()
            .map(|r| {
                let mut what = if r.still_called_from.is_empty() {
                    "inlined".to_owned()
                } else {
                    format!(
                        "the caller was inlined; still called from {}",
                        names(&r.still_called_from)
                    )
                };
                if !r.now_crossing_to.is_empty() {
                    let moved: Vec<String> = r
                        .now_crossing_to
                        .iter()
                        .map(|(callee, calls)| {
                            format!(
                                "{} ({} calls)",
                                fmt::short_name(&plain(callee), width),
                                fmt::count(*calls)
                            )
                        })
                        .collect();
                    let _ =
                        write!(what, "; the caller now crosses to {} instead", moved.join(", "));
                }
                vec![
                    fmt::short_name(&format!("{} -> {}", r.caller, r.callee), width),
                    fmt::count(r.calls_before),
                    what,
                ]
            })
            .collect()
    }

    fn remaining_rows<'a>(
        rows: impl Iterator<Item = &'a Remaining>,
        width: usize,
    ) -> Vec<Vec<String>> {
        rows.map(|r| {
            vec![
                fmt::short_name(&plain(&format!("{} -> {}", r.caller, r.callee)), width),
                fmt::count(r.calls),
                r.calls_before.map_or("(new)".to_owned(), fmt::count),
                plain(&r.reason().to_string()),
            ]
        })
        .collect()
    }

    /// The remaining crossings on the terminal: those within the program one per line with
    /// why, those into shared libraries summed per library (the file lists each).
    fn remaining_text(&self, s: &mut String) {
        let (shared, own): (Vec<&Remaining>, Vec<&Remaining>) =
            self.crossings_remaining.iter().partition(|r| r.kind == CallKind::SharedLibrary);
        if !own.is_empty() {
            let _ = writeln!(s, "\nremaining within the program:");
            let rows = Xlto::remaining_rows(own.iter().copied().take(TERMINAL_ROWS), 60);
            s.push_str(&words_last(&["crossing", "calls", "before"], &rows));
        }
        if own.len() > TERMINAL_ROWS {
            let _ =
                writeln!(s, "(and {} more: xlto.md lists every one)", own.len() - TERMINAL_ROWS);
        }
        let mut by_library: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
        for r in &shared {
            let e = by_library.entry(r.callee_module.as_str()).or_default();
            *e = (e.0 + 1, e.1 + r.calls);
        }
        for (library, (crossings, calls)) in by_library {
            let _ = writeln!(
                s,
                "remaining into {library}: {crossings} crossings, {} calls (a shared library: \
                 link-time optimisation does not reach it)",
                fmt::count(calls)
            );
        }
    }

    fn instructions_line(&self) -> String {
        let mut s = format!(
            "instructions: {} -> {} ({})",
            fmt::count(self.instructions_before),
            fmt::count(self.instructions_after),
            fmt::signed_pct(change(self.instructions_before, self.instructions_after))
        );
        if let Some(c) = &self.compiler_control {
            let _ = write!(
                s,
                "; the C by clang without LTO: {} ({} against release; LTO then {})",
                fmt::count(c.instructions),
                fmt::signed_pct(change(self.instructions_before, c.instructions)),
                fmt::signed_pct(change(c.instructions, self.instructions_after))
            );
        }
        s
    }

    fn builds_line(&self) -> String {
        let b = |name: &str, b: &Build| {
            if b.compiled == 0 {
                format!("{name}: up to date, nothing compiled ({:.1} s)", b.seconds)
            } else {
                format!(
                    "{name}: {} of {} units compiled in {:.1} s",
                    b.compiled, b.units, b.seconds
                )
            }
        };
        format!(
            "{}; {}",
            b("release", &self.builds.release),
            b("cross-language LTO", &self.builds.xlto)
        )
    }

    /// The terminal text.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{} {}: {}", kind_name(self), self.target.name, self.builds_line());
        let _ = writeln!(
            s,
            "C objects at the LTO link: {} bitcode, {} machine code",
            self.c_objects.bitcode, self.c_objects.native
        );
        if !self.crossings_removed.is_empty() {
            let _ = writeln!(s, "\ngone with cross-language LTO:");
            let rows = self.removed_rows(60);
            let shown = &rows[..rows.len().min(TERMINAL_ROWS)];
            s.push_str(&words_last(&["crossing", "calls before"], shown));
            if rows.len() > shown.len() {
                let _ =
                    writeln!(s, "(and {} more: xlto.md lists every one)", rows.len() - shown.len());
            }
        }
        self.remaining_text(&mut s);
        let _ = writeln!(s, "\n{}", self.instructions_line());
        let t = &self.timing;
        let _ = writeln!(s, "time, {} paired rounds ({}):", t.rounds, t.stop);
        s.push_str(&t.table());
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        let _ = writeln!(s, "\n{}", self.answer());
        s
    }

    /// `xlto.md`.
    pub fn markdown(&self) -> String {
        let mut s = format!("# Cross-language LTO: {} {}\n\n", kind_name(self), self.target.name);
        let _ = writeln!(s, "{}.\n", self.answer());
        let _ = writeln!(s, "- Builds: {}.", self.builds_line());
        let _ = writeln!(s, "- Release: `{}`", self.builds.release.command);
        let _ = writeln!(s, "- LTO: `{}`", self.builds.xlto.command);
        if let Some(c) = &self.compiler_control {
            let _ = writeln!(s, "- Compiler control (clang without LTO): `{}`", c.build.command);
        }
        let _ = writeln!(s, "- Toolchain: {}.", self.toolchain.join("; "));
        let _ = writeln!(
            s,
            "- C objects at the LTO link: {} bitcode, {} machine code.",
            self.c_objects.bitcode, self.c_objects.native
        );
        let _ = writeln!(s, "- Arguments: `{}`.", self.args.join(" "));
        let _ = writeln!(s, "\n## Crossings gone\n");
        if self.crossings_removed.is_empty() {
            s.push_str("None.\n");
        } else {
            s.push_str(&md_table(
                &["crossing", "calls before", ""],
                &self.removed_rows(usize::MAX),
            ));
        }
        let _ = writeln!(s, "\n## Crossings remaining\n");
        if self.crossings_remaining.is_empty() {
            s.push_str("None.\n");
        } else {
            let rows = Xlto::remaining_rows(self.crossings_remaining.iter(), usize::MAX);
            s.push_str(&md_table(&["crossing", "calls", "before", "why"], &rows));
        }
        let _ = writeln!(s, "\n## Instructions and time\n");
        let _ =
            writeln!(s, "{} (every process, exact under callgrind).\n", self.instructions_line());
        let t = &self.timing;
        let _ = writeln!(s, "{} paired rounds ({}), {:.1} s:\n", t.rounds, t.stop, t.seconds);
        s.push_str("```\n");
        s.push_str(&t.table());
        s.push_str("```\n\n");
        for line in t.sentences() {
            let _ = writeln!(s, "- {line}");
        }
        let control = self
            .compiler_control
            .as_ref()
            .map_or(String::new(), |c| format!(", the compiler control's `{}/`", c.census));
        let _ = writeln!(
            s,
            "\nEach build's census: `{}/` and `{}/`{control}; `ffiprof compare` compares two \
             of them exactly.",
            self.censuses[0], self.censuses[1]
        );
        if !self.notes.is_empty() {
            let _ = writeln!(s, "\n## Notes\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }

    /// As pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|source| Error::Serialize { what: "xlto.json", source })
    }
}

/// A table of rows whose last cell is words: the other cells aligned as
/// [`fmt::table`] aligns them, the words after them, left-aligned and never padded.
fn words_last(header: &[&str], rows: &[Vec<String>]) -> String {
    let figures: Vec<Vec<String>> = rows.iter().map(|r| r[..r.len() - 1].to_vec()).collect();
    let mut s = String::new();
    for (i, line) in fmt::table(header, &figures, 1).lines().enumerate() {
        let words = i.checked_sub(2).and_then(|k| rows.get(k)).and_then(|r| r.last());
        match words.filter(|w| !w.is_empty()) {
            Some(w) => {
                let _ = writeln!(s, "{line}  {w}");
            }
            None => {
                let _ = writeln!(s, "{line}");
            }
        }
    }
    s
}

/// A function's name without the `.llvm.<hash>` that ThinLTO gives a local function it
/// promotes (`vdbeUnbind.llvm.4854131121453610696` is SQLite's static `vdbeUnbind`).
fn plain(name: &str) -> String {
    let mut out = name.to_owned();
    while let Some(at) = out.find(".llvm.") {
        let digits = out[at + 6..].chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            break;
        }
        out.replace_range(at..at + 6 + digits, "");
    }
    out
}

fn kind_name(x: &Xlto) -> &'static str {
    match x.target.kind {
        super::Kind::Bin => "binary",
        super::Kind::Example => "example",
    }
}

fn md_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n|{}\n", header.join(" | "), " --- |".repeat(header.len()));
    for r in rows {
        let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(s, "| {} |", cells.join(" | "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinlto_suffixes_are_left_out_of_names_shown() {
        assert_eq!(plain("vdbeUnbind.llvm.4854131121453610696"), "vdbeUnbind");
        assert_eq!(plain("a.llvm.1 -> b.llvm.22"), "a -> b");
        assert_eq!(plain("x.llvm.y"), "x.llvm.y");
    }

    #[test]
    fn words_follow_the_aligned_figures() {
        let rows = vec![
            vec!["a -> b".to_owned(), "12".to_owned(), "inlined".to_owned()],
            vec!["long -> callee".to_owned(), "3".to_owned(), String::new()],
        ];
        let t = words_last(&["crossing", "calls"], &rows);
        assert_eq!(
            t,
            "crossing        calls\n--------------  -----\na -> b             12  inlined\nlong -> callee      3\n"
        );
    }
}
