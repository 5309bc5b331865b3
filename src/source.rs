//! What a census counts, for `crossings` and `memory` alike: a program to run, or the
//! files a tool wrote before (callgrind's, DHAT's).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A program to run, or files to read.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A program and its arguments.
    Run(Vec<OsString>),
    /// A tool's files, one per process, written before.
    Files(Vec<PathBuf>),
}

impl Source {
    /// The source a command line names: a program after `--`, or files with `--from`;
    /// exactly one of the two. `command_name` is ffiprof's command (`crossings`), `files`
    /// what `--from` takes (`callgrind files`), for the message.
    pub fn from_args(
        command: Vec<OsString>,
        from: Vec<PathBuf>,
        command_name: &str,
        files: &str,
    ) -> Result<Source> {
        match (command.is_empty(), from.is_empty()) {
            (false, true) => Ok(Source::Run(command)),
            (true, false) => Ok(Source::Files(from)),
            _ => Err(Error::InvalidOption(format!(
                "give the program after `--` (ffiprof {command_name} -- PROGRAM [ARGS...]), or \
                 {files} with --from, not both"
            ))),
        }
    }

    /// The name a census of it takes by default: the program's file name, or the first
    /// file's; `program` when there is neither.
    pub fn name(&self) -> String {
        let first = match self {
            Source::Run(command) => command.first().map(Path::new),
            Source::Files(files) => files.first().map(PathBuf::as_path),
        };
        first
            .and_then(Path::file_name)
            .map_or_else(|| "program".into(), |n| n.to_string_lossy().into_owned())
    }

    /// Nothing to run and nothing to read.
    pub fn is_empty(&self) -> bool {
        match self {
            Source::Run(command) => command.is_empty(),
            Source::Files(files) => files.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_of_a_program_and_files() {
        let prog = || vec![OsString::from("/usr/bin/true"), OsString::from("x")];
        let files = || vec![PathBuf::from("dir/callgrind.out.12")];
        let run = Source::from_args(prog(), vec![], "crossings", "callgrind files").unwrap();
        assert_eq!(run.name(), "true");
        let read = Source::from_args(vec![], files(), "crossings", "callgrind files").unwrap();
        assert_eq!(read.name(), "callgrind.out.12");
        for (command, from) in [(prog(), files()), (vec![], vec![])] {
            let e = Source::from_args(command, from, "memory", "DHAT's files").unwrap_err();
            assert!(e.to_string().contains("ffiprof memory -- PROGRAM"), "{e}");
            assert!(e.to_string().contains("DHAT's files with --from"), "{e}");
            assert_eq!(e.exit_code(), 2);
        }
        assert_eq!(Source::Run(vec![]).name(), "program");
        assert!(Source::Files(vec![]).is_empty());
    }
}
