//! The experiment in words: the answer sentence, the terminal text and `xlto.md`, from
//! `xlto.json`'s types (`schema`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::diff::Remaining;
use super::schema::{Xlto, TERMINAL_ROWS};
use crate::cargo::Build;
use crate::crossings::CallKind;
use crate::fmt::{self, pct};
use crate::measure::paired::Judgement;
use crate::measure::programs::Measure;

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
