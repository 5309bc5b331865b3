//! The terminal's summary of a recording: threads, unwind health, and where the program
//! crosses into C and what it pays there.

use std::collections::{BTreeMap, BTreeSet};

use super::schema::{ProcessSummary, RecordSummary, ThreadSummary};
use crate::fmt;
use crate::ids::Pid;

/// Characters of a function name in the terminal's tables (summary.json keeps it whole).
const NAME: usize = 60;

/// At most this many rows in the terminal's thread table; the rest in one line.
pub(crate) const THREAD_ROWS: usize = 30;

/// The line naming the processes that were seen but never sampled (the first five).
fn unsampled_line(processes: &[ProcessSummary]) -> Option<String> {
    let unsampled: Vec<&ProcessSummary> = processes.iter().filter(|p| p.samples == 0).collect();
    if unsampled.is_empty() {
        return None;
    }
    let named: Vec<String> = unsampled
        .iter()
        .take(5)
        .map(|p| {
            let command = p.commands.last().map_or("?", String::as_str);
            format!("{command} ({})", p.pid)
        })
        .collect();
    let more = match unsampled.len() {
        n if n > 5 => format!(" and {} more", n - 5),
        _ => String::new(),
    };
    Some(format!(
        "{} of {} processes ran without a sample (too briefly, or waiting): {}{more}\n",
        unsampled.len(),
        processes.len(),
        named.join(", ")
    ))
}

/// The terminal's thread table: a row per thread, or, with more threads than
/// [`THREAD_ROWS`], a row per process command (threads and processes counted, figures
/// weighted by samples), the busiest first, at most [`THREAD_ROWS`] of them; and the line
/// that sums up the rows left out.
pub(crate) fn thread_rows(threads: &[ThreadSummary]) -> (Vec<Vec<String>>, Option<String>) {
    let row = |label: String, ts: &[&ThreadSummary]| {
        let samples: u64 = ts.iter().map(|t| t.health.boundary.samples).sum();
        let weighted = |f: &dyn Fn(&ThreadSummary) -> f64| {
            let sum: f64 = ts.iter().map(|t| f(t) * t.health.boundary.samples as f64).sum();
            if samples == 0 {
                0.0
            } else {
                sum / samples as f64
            }
        };
        let truncated: u64 = ts.iter().map(|t| t.health.truncated_samples).sum();
        (
            samples,
            vec![
                label,
                samples.to_string(),
                fmt::pct(weighted(&|t| t.health.boundary.c_side_share), 1),
                format!("{:.2}", weighted(&|t| t.health.boundary.crossings_per_stack)),
                fmt::pct(weighted(&|t| t.health.boundary.reaches_root), 1),
                fmt::pct(if samples == 0 { 0.0 } else { truncated as f64 / samples as f64 }, 1),
            ],
        )
    };
    if threads.len() <= THREAD_ROWS {
        let rows = threads.iter().map(|t| row(format!("{} ({})", t.name, t.tid), &[t]).1);
        return (rows.collect(), None);
    }
    let mut groups: BTreeMap<&str, Vec<&ThreadSummary>> = BTreeMap::new();
    for t in threads {
        groups.entry(&t.process).or_default().push(t);
    }
    let mut rows: Vec<(u64, usize, Vec<String>)> = groups
        .into_iter()
        .map(|(process, ts)| {
            let processes: BTreeSet<Pid> = ts.iter().map(|t| t.pid).collect();
            let label = match ts.as_slice() {
                [t] => format!("{} ({})", t.name, t.tid),
                _ => format!(
                    "{process} ×{} {}, {} threads",
                    processes.len(),
                    if processes.len() == 1 { "process" } else { "processes" },
                    ts.len()
                ),
            };
            let (samples, cells) = row(label, &ts);
            (samples, ts.len(), cells)
        })
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2[0].cmp(&b.2[0])));
    let rest: Vec<(u64, usize, Vec<String>)> = rows.split_off(rows.len().min(THREAD_ROWS));
    let total: u64 = threads.iter().map(|t| t.health.boundary.samples).sum();
    let left_out = (!rest.is_empty()).then(|| {
        let samples: u64 = rest.iter().map(|r| r.0).sum();
        let share = if total == 0 { 0.0 } else { samples as f64 / total as f64 };
        format!(
            "... and {} more threads of {} more commands: {} of the samples (every thread is \
             in summary.json)\n",
            rest.iter().map(|r| r.1).sum::<usize>(),
            rest.len(),
            fmt::pct(share, 1)
        )
    });
    (rows.into_iter().map(|r| r.2).collect(), left_out)
}

impl RecordSummary {
    /// The terminal summary: threads, unwind health, and where the program crosses into C
    /// and what it pays there.
    pub fn text(&self) -> String {
        let mut s = self.headline();
        let (rows, left_out) = thread_rows(&self.threads);
        s.push('\n');
        s.push_str(&fmt::table(
            &["thread", "samples", "C side", "crossings/stack", "reach root", "truncated"],
            &rows,
            1,
        ));
        s.push_str(&left_out.unwrap_or_default());
        s.push_str(&unsampled_line(&self.processes).unwrap_or_default());
        s.push_str(&self.c_tables());
        s.push_str(&self.off_cpu_tables());
        s.push_str(&self.footer());
        s
    }

    /// The first lines: threads, samples, and how whole their stacks are.
    fn headline(&self) -> String {
        let o = &self.overall;
        let processes = match self.processes.len() {
            0 | 1 => String::new(),
            n => format!("{n} processes, "),
        };
        let mut s = format!(
            "{processes}{} threads, {} samples in {:.2} s ({}, {} Hz asked, {:.0} Hz per busy thread at most); \
             lost {}; C side {}; stacks reaching a thread root {}, truncated {}, with unknown \
             frames {}\n",
            self.threads.len(),
            o.boundary.samples,
            self.window_seconds,
            self.event,
            self.requested_hz,
            self.threads.iter().map(|t| t.health.boundary.effective_hz).fold(0.0, f64::max),
            o.boundary.lost,
            fmt::pct(o.boundary.c_side_share, 1),
            fmt::pct(o.boundary.reaches_root, 1),
            fmt::pct(o.truncated, 1),
            fmt::pct(o.boundary.with_unknown_frames, 1),
        );
        if o.c_samples > 0 {
            s.push_str(&format!(
                "samples in C libraries with a Rust caller above: {} of {}\n",
                fmt::pct(o.c_with_rust_caller, 1),
                o.c_samples
            ));
        }
        if o.recovered_samples > 0 {
            s.push_str(&format!(
                "samples with callers found where no unwind information covers the code \
                 (assembly, code built without it): {} ({}); frames found by frame pointer {}, \
                 by stack scan {}\n",
                o.recovered_samples,
                fmt::pct(o.recovered, 1),
                o.recovered_by_frame_pointer,
                o.recovered_by_scan
            ));
        }
        s
    }

    /// The hottest C functions, where Rust crosses into C, and where C calls back.
    fn c_tables(&self) -> String {
        let mut s = String::new();
        let short = |name: &str| fmt::short_name(name, NAME);
        if !self.hottest_c_functions.is_empty() {
            s.push_str(
                "\nhottest C functions (self samples), with the Rust functions above them:\n",
            );
            let rows: Vec<Vec<String>> = self
                .hottest_c_functions
                .iter()
                .map(|f| {
                    let callers: Vec<String> = f
                        .rust_callers
                        .iter()
                        .map(|c| format!("{} ({})", short(&c.function), c.samples))
                        .collect();
                    let function = format!("{} [{}]", short(&f.function), f.module);
                    vec![function, callers.join(", "), fmt::pct(f.share, 1)]
                })
                .collect();
            let header = ["C function [module]", "Rust callers (samples)", "self"];
            s.push_str(&fmt::table(&header, &rows, 2));
        }
        if !self.crossings.is_empty() {
            s.push_str("\nwhere Rust crosses into C, by C-side samples below:\n");
            let rows: Vec<Vec<String>> = self
                .crossings
                .iter()
                .map(|c| vec![short(&c.rust), short(&c.c_entry), fmt::pct(c.share, 1)])
                .collect();
            s.push_str(&fmt::table(&["Rust caller", "calls C function", "C below"], &rows, 2));
        }
        if !self.callbacks.is_empty() {
            s.push_str("\nwhere C calls back into Rust, by samples below:\n");
            let rows: Vec<Vec<String>> = self
                .callbacks
                .iter()
                .map(|c| {
                    let entry = short(&c.c_entry);
                    let c_side = if c.c_caller == c.c_entry {
                        entry
                    } else {
                        format!("{entry} via {}", short(&c.c_caller))
                    };
                    vec![c_side, short(&c.rust), fmt::pct(c.share, 1)]
                })
                .collect();
            s.push_str(&fmt::table(&["C function", "calls back Rust function", "below"], &rows, 2));
        }
        s
    }

    /// Time off CPU: each thread's, then where threads wait, by Rust caller and the C
    /// function below it, and what recording it cost.
    fn off_cpu_tables(&self) -> String {
        let Some(r) = &self.off_cpu_recording else { return String::new() };
        let short = |name: &str| fmt::short_name(name, NAME);
        let how = match r.files {
            Some(_) => "switch records, stacks from context-switch samples",
            None => "switch records alone: no stacks (see the note)",
        };
        let mut s = format!(
            "\noff CPU ({how}): blocked {:.3} s in {} waits; preempted {}, runnable {:.3} s\n",
            r.off_cpu_seconds,
            r.waits,
            match r.switches_out - r.waits {
                1 => "once".to_owned(),
                n => format!("{n} times"),
            },
            r.runnable_seconds
        );
        let rows: Vec<Vec<String>> = self
            .threads
            .iter()
            .filter_map(|t| Some((t, t.time.as_ref()?)))
            .map(|(t, time)| {
                vec![
                    format!("{} ({})", t.name, t.tid),
                    format!("{:.3}", time.on_cpu_seconds),
                    format!("{:.3}", time.off_cpu_seconds),
                    time.off_cpu_waits.to_string(),
                    format!("{:.3}", time.runnable_seconds),
                ]
            })
            .collect();
        let header = ["thread", "on CPU s", "blocked s", "waits", "runnable s"];
        s.push_str(&fmt::table(&header, &rows, 1));
        if let Some(waits) = self.off_cpu.as_ref().filter(|w| !w.is_empty()) {
            s.push_str("\nwhere threads wait, by Rust caller and the C function below it:\n");
            let none = || "-".to_owned();
            let rows: Vec<Vec<String>> = waits
                .iter()
                .map(|w| {
                    let caller = w.rust_caller.as_deref().map_or_else(none, short);
                    let caller = match &w.through_std {
                        Some(via) => format!("{caller} via {}", short(via)),
                        None => caller,
                    };
                    let c_function = match (&w.c_function, &w.c_library_function) {
                        (Some(c), Some(l)) if c != l => format!("{} … {}", short(c), short(l)),
                        (Some(c), _) => short(c),
                        (None, l) => l.as_deref().map_or_else(none, short),
                    };
                    vec![
                        caller,
                        c_function,
                        short(&w.function),
                        format!("{:.3}", w.seconds),
                        fmt::pct(w.share, 1),
                        w.waits.to_string(),
                    ]
                })
                .collect();
            let header =
                ["Rust caller", "C function", "left user space in", "blocked s", "share", "waits"];
            s.push_str(&fmt::table(&header, &rows, 3));
        }
        let us = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} µs"));
        s.push_str(&format!(
            "recording off-CPU time cost ffiprof {} of CPU per switch off a CPU ({} per CPU \
             sample); records lost: {}\n",
            us(r.recorder_cpu_per_off_cpu_event_us),
            us(r.recorder_cpu_per_cpu_sample_us),
            r.records_lost
        ));
        s
    }

    /// What ffiprof itself cost, and the notes.
    fn footer(&self) -> String {
        let memory = self
            .recorder_peak_memory_bytes
            .map(|b| format!(", at most {:.0} MB resident", b as f64 / 1e6))
            .unwrap_or_default();
        let mut s = format!(
            "\nffiprof used {:.3} s of CPU while recording ({} of the window); symbols, \
             profiles and files took {:.3} s after it ended{memory}\n",
            self.recorder_cpu_seconds,
            fmt::pct(self.recorder_cpu_seconds / self.window_seconds.max(1e-9), 1),
            self.post_processing_seconds
        );
        for note in &self.notes {
            s.push_str(&format!("note: {note}\n"));
        }
        s
    }
}
