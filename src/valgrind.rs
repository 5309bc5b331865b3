//! Running a program under a valgrind tool: the one runner that the crossings census
//! (callgrind), the heap census (DHAT) and instruction counting (callgrind over
//! ffiprof's own batches) use. It checks that valgrind is
//! installed (an error that says how, otherwise), writes the tool's files and valgrind's
//! own logs into a directory the caller stages, follows child processes when asked,
//! lets Ctrl-C reach the program rather than end ffiprof, and passes the program's exit
//! status on as a shell reports it (128 + the signal when one ended it).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::error::{Error, Result};

/// valgrind's version line, or the error that says how to install it; `purpose` says what
/// needs it ("the census runs the program under callgrind").
pub(crate) fn version(purpose: &str) -> Result<String> {
    match Command::new("valgrind").arg("--version").output() {
        Ok(out) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
        _ => Err(Error::MissingTool {
            tool: "valgrind".into(),
            install: format!("{purpose}: apt-get install valgrind"),
        }),
    }
}

/// A program to run under a valgrind tool.
pub(crate) struct Tool<'a> {
    /// `--tool=` and the tool's own options, `%p` in a file name standing for the pid.
    pub(crate) args: Vec<String>,
    /// Where valgrind writes its logs (`valgrind.log.<pid>`); the tool's files go where
    /// `args` say, usually here too.
    pub(crate) dir: &'a Path,
    /// Follow child processes.
    pub(crate) trace_children: bool,
    /// Environment variables for the program.
    pub(crate) env: Vec<(&'a str, &'a str)>,
}

/// How the program ended under valgrind.
pub(crate) struct Finished {
    /// Its exit status as a shell reports it.
    pub(crate) status: i32,
    /// Wall seconds under valgrind.
    pub(crate) seconds: f64,
}

impl Tool<'_> {
    /// Runs `program` with `args` under the tool, to its end. Ctrl-C reaches the program
    /// and valgrind, which write what ran; ffiprof stays to read it.
    pub(crate) fn run(&self, program: &Path, args: &[OsString]) -> Result<Finished> {
        let mut cmd = Command::new("valgrind");
        // Without vgdb, valgrind leaves no FIFOs and shared-memory file named after the
        // pid in the temporary directory, and maps none into the program: what a program
        // reads of its own memory map (the C runtime does, at start) does not name its pid.
        cmd.arg("--vgdb=no")
            .args(&self.args)
            .arg(format!("--log-file={}", self.dir.join("valgrind.log.%p").display()))
            .arg(format!("--trace-children={}", if self.trace_children { "yes" } else { "no" }))
            .envs(self.env.iter().copied())
            .arg(program)
            .args(args);
        let _ = crate::ffi::interrupt_flag();
        let tool = self.args.iter().find_map(|a| a.strip_prefix("--tool=")).unwrap_or("valgrind");
        let name = program.file_name().map_or(program.as_os_str(), |n| n).to_string_lossy();
        crate::progress::running(format!("running {name} under {tool}"));
        let start = Instant::now();
        let status =
            cmd.status().map_err(|e| Error::Internal(format!("cannot start valgrind: {e}")))?;
        Ok(Finished {
            status: crate::ffi::shell_status(status),
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// The last lines of valgrind's logs, for an error message.
    pub(crate) fn log_tail(&self) -> String {
        let mut lines = Vec::new();
        for path in files_in(self.dir, "valgrind.log").unwrap_or_default() {
            if let Ok(text) = std::fs::read_to_string(path) {
                lines.extend(text.lines().map(str::to_owned));
            }
        }
        let start = lines.len().saturating_sub(4);
        lines[start..].join(" / ")
    }
}

/// The files in `dir` whose names start with `prefix`, in name order.
pub(crate) fn files_in(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| Error::Read { path: dir.to_owned(), source })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_runs_under_a_tool_and_its_status_passes_through() {
        if version("test").is_err() {
            return; // the integration tests fail under CI without valgrind
        }
        let dir = tempfile::tempdir().unwrap();
        let tool = Tool {
            args: vec!["--tool=none".into()],
            dir: dir.path(),
            trace_children: false,
            env: vec![],
        };
        let done = tool.run(Path::new("/bin/sh"), &["-c".into(), "exit 7".into()]).unwrap();
        assert_eq!(done.status, 7);
        let killed = tool.run(Path::new("/bin/sh"), &["-c".into(), "kill -9 $$".into()]).unwrap();
        assert_eq!(killed.status, 128 + 9);
        assert!(!files_in(dir.path(), "valgrind.log").unwrap().is_empty());
    }
}
