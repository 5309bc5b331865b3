//! How a command ends, and the one mapping from that to the process's exit status. An
//! error's status is [`Error::exit_code`](crate::Error::exit_code): 2 for what the user can
//! fix, 1 for ffiprof's own failures. A command that did its work ends with an
//! [`Outcome`]: done (0), a regression found by `compare --fail-on-regression` (3), or,
//! for the commands that run a program (`record`, `crossings`, `memory`, `xlto`), the
//! program's own status once ffiprof's files are written.

use std::path::{Path, PathBuf};

/// The exit status of a regression found by `compare --fail-on-regression` (0 is done, 1
/// an internal failure, 2 the user's to fix).
pub const EXIT_REGRESSION: u8 = 3;

/// What a command that did its work ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The work is done.
    Done,
    /// `compare --fail-on-regression` found a regression.
    Regression,
    /// `lifetimes --fail-on-error` found this many memory errors (status
    /// [`EXIT_REGRESSION`], 3).
    Errors(u64),
    /// The program ffiprof ran ended with this status (128 + the signal when one ended
    /// it); ffiprof ends with it too.
    Program(i32),
}

impl Outcome {
    /// The process's exit status: 0, [`EXIT_REGRESSION`], or the program's, within what a
    /// status can hold (0 to 255).
    pub fn status(self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::Regression | Outcome::Errors(_) => EXIT_REGRESSION,
            Outcome::Program(status) => status.clamp(0, 255) as u8,
        }
    }

    /// The line that says a status is the program's, not ffiprof's (none for 0).
    pub fn last_line(self) -> Option<String> {
        match self {
            Outcome::Program(status) if status != 0 => {
                Some(format!("ffiprof: the program exited with status {status}; so does ffiprof"))
            }
            Outcome::Errors(n) => Some(format!(
                "ffiprof: {n} memory error{} found (--fail-on-error): status {EXIT_REGRESSION}",
                if n == 1 { "" } else { "s" }
            )),
            _ => None,
        }
    }
}

/// The directory a command writes to when `--out` is not given: `results/<kind>-<name>`.
pub fn default_out(kind: &str, name: &str) -> PathBuf {
    Path::new("results").join(format!("{kind}-{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_has_its_status_and_a_programs_is_said() {
        assert_eq!(Outcome::Done.status(), 0);
        assert_eq!(Outcome::Regression.status(), 3);
        assert_eq!(Outcome::Program(0).status(), 0);
        assert_eq!(Outcome::Program(7).status(), 7);
        assert_eq!(Outcome::Program(137).status(), 137);
        assert_eq!(Outcome::Program(300).status(), 255);
        assert_eq!(Outcome::Program(-1).status(), 0);
        assert_eq!(Outcome::Program(0).last_line(), None);
        assert_eq!(Outcome::Done.last_line(), None);
        let line = Outcome::Program(134).last_line().unwrap();
        assert_eq!(line, "ffiprof: the program exited with status 134; so does ffiprof");
    }

    #[test]
    fn default_directories_are_under_results() {
        assert_eq!(default_out("memory", "prog"), Path::new("results/memory-prog"));
        assert_eq!(default_out("record", "pid-12"), Path::new("results/record-pid-12"));
    }
}
