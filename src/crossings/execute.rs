//! The run stage: the program natively (for its own time), then under callgrind through
//! the one valgrind runner ([`crate::valgrind`]), with other work (the cost measurement)
//! beside it on the other core.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::valgrind::{self, Tool};

/// The program's own time, natively.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NativeTime {
    /// Runs.
    pub runs: usize,
    /// Wall seconds, median of the runs.
    pub wall_seconds: f64,
    /// CPU seconds (user + system, every thread and child), median of the runs.
    pub cpu_seconds: f64,
}

/// Runs the program natively `runs` times, output discarded, for its own time.
fn native_time(program: &Path, args: &[OsString], runs: usize) -> Result<Option<NativeTime>> {
    if runs == 0 {
        return Ok(None);
    }
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let before = crate::ffi::children_cpu_seconds();
        let start = Instant::now();
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| Error::NoSuchProgram {
                program: program.display().to_string(),
                reason: format!("{e}"),
            })?;
        wall.push(start.elapsed().as_secs_f64());
        cpu.push(crate::ffi::children_cpu_seconds() - before);
    }
    let median = |v: &[f64]| crate::measure::stats::median(v).unwrap_or(0.0);
    Ok(Some(NativeTime { runs, wall_seconds: median(&wall), cpu_seconds: median(&cpu) }))
}

/// What the callgrind run gave.
pub(super) struct Ran {
    /// valgrind's version line.
    pub(super) valgrind: String,
    /// The program and its arguments.
    pub(super) command: Vec<String>,
    /// Its exit status, as a shell reports it.
    pub(super) exit_status: i32,
    /// Wall seconds under callgrind.
    pub(super) seconds: f64,
    /// Its own time, natively.
    pub(super) native: Option<NativeTime>,
    /// callgrind's files, one per process.
    pub(super) files: Vec<PathBuf>,
}

/// What to run: the program (resolved) and its command line as given, and how.
pub(super) struct Program<'a> {
    /// The executable.
    pub(super) path: &'a Path,
    /// The command line as the user gave it: the program's name, then its arguments.
    pub(super) command: &'a [OsString],
    /// Native runs before the census.
    pub(super) native_runs: usize,
    /// Follow child processes.
    pub(super) trace_children: bool,
}

/// Runs the program natively, then under callgrind into `raw`, with `beside` running on
/// another thread meanwhile (the cost measurement); returns both.
pub(super) fn under_callgrind<R: Send>(
    program: &Program<'_>,
    raw: &Path,
    valgrind: String,
    beside: impl FnOnce() -> R + Send,
) -> Result<(Ran, R)> {
    let args = &program.command[1..];
    let native = native_time(program.path, args, program.native_runs)?;
    let tool = Tool {
        args: vec![
            "--tool=callgrind".into(),
            format!("--callgrind-out-file={}", raw.join("callgrind.out.%p").display()),
        ],
        dir: raw,
        trace_children: program.trace_children,
        // Symbols bound at load: the first call through a PLT then goes to its function,
        // not through the dynamic linker's resolver, so every call counts on its edge.
        env: vec![("LD_BIND_NOW", "1")],
    };
    let (finished, beside) = std::thread::scope(|s| {
        let beside = s.spawn(beside);
        let finished = tool.run(program.path, args);
        (finished, beside.join())
    });
    let beside =
        beside.map_err(|_| Error::Internal("the work beside callgrind panicked".into()))?;
    let finished = finished?;
    let files = valgrind::files_in(raw, "callgrind.out")?;
    if files.is_empty() {
        return Err(Error::Internal(format!(
            "callgrind wrote no call graph (status {}): {}",
            finished.status,
            tool.log_tail()
        )));
    }
    let command = program.command.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let ran = Ran {
        valgrind,
        command,
        exit_status: finished.status,
        seconds: finished.seconds,
        native,
        files,
    };
    Ok((ran, beside))
}
