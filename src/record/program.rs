//! The recorded program, in the states it goes through. A command is [`Launched`]: forked
//! and held at a gate before its first instruction while the events are opened, then
//! released into a [`Running`] program. A process given by pid is [`Attached`] to as it
//! runs, and is [`Running`] from the start. Recording asks a running program only
//! whether it has ended; once recording is over it is a [`Program`], whose exit status
//! ffiprof passes through.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::ffi::{self, GatedChild};
use crate::ids::{Pid, Tid};

/// Finds the program as execvp would: a path containing `/` as is, else the first
/// executable file of that name on PATH.
pub fn resolve_program(program: &OsStr) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let shown = program.to_string_lossy().into_owned();
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.as_bytes().contains(&b'/') {
        let p = PathBuf::from(program);
        return match std::fs::metadata(&p) {
            Err(e) => {
                Err(Error::NoSuchProgram { program: shown, reason: format!("{e}; check the path") })
            }
            Ok(_) if !executable(&p) => Err(Error::NoSuchProgram {
                program: shown,
                reason: "not an executable file; check the path and its permissions (chmod +x)"
                    .into(),
            }),
            Ok(_) => Ok(p),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| executable(p)).ok_or_else(
        || Error::NoSuchProgram {
            program: shown,
            reason: "not found on PATH; give its path (./prog) or install it".into(),
        },
    )
}

/// Whether process `pid` exists and has not ended.
pub(crate) fn alive(pid: Pid) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesized name: Z (zombie) and X (dead) have ended.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// The threads of process `pid` now, in tid order.
pub(crate) fn threads_of(pid: Pid) -> Vec<Tid> {
    let mut tids: Vec<Tid> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(|e| Some(Tid(e.ok()?.file_name().to_str()?.parse().ok()?)))
                .collect::<Vec<Tid>>()
        })
        .unwrap_or_default();
    tids.sort_unstable();
    tids
}

/// A thread's name (comm), if it still exists.
pub(crate) fn comm_of(pid: Pid, tid: Tid) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_owned())
}

/// Whether a thread is blocked now (state `S` or `D` in `/proc/<pid>/task/<tid>/stat`,
/// after the command's closing parenthesis); None if it is gone.
pub(crate) fn blocked_now(pid: Pid, tid: Tid) -> Option<bool> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
    Some(matches!(state, "S" | "D"))
}

/// A command forked and held before its first instruction.
pub(crate) struct Launched {
    child: GatedChild,
    shown: String,
}

impl Launched {
    /// Forks `command` (program and arguments), held at its gate.
    pub(crate) fn fork(command: &[OsString]) -> Result<Launched> {
        let program = command.first().ok_or_else(|| {
            Error::InvalidOption(
                "no program given: ffiprof record -- PROGRAM [ARGS...], or --pid PID".into(),
            )
        })?;
        let path = resolve_program(program)?;
        let cstr = |s: &OsStr| {
            CString::new(s.as_bytes()).map_err(|_| {
                Error::InvalidOption(format!("{}: contains a NUL byte", s.to_string_lossy()))
            })
        };
        let path = cstr(path.as_os_str())?;
        let argv = command.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
        let child = ffi::fork_gated(&path, &argv)
            .map_err(|e| Error::Internal(format!("cannot fork: {e}")))?;
        Ok(Launched { child, shown: program.to_string_lossy().into_owned() })
    }

    /// Its pid.
    pub(crate) fn pid(&self) -> Pid {
        Pid(self.child.pid() as u32)
    }

    /// Lets it exec: it runs from here on.
    pub(crate) fn release(mut self) -> Result<Running> {
        match self.child.release() {
            Ok(Ok(())) => Ok(Running { pid: self.pid(), child: Some(self.child) }),
            Ok(Err(errno)) => Err(Error::NoSuchProgram {
                program: self.shown,
                reason: format!("{}", std::io::Error::from_raw_os_error(errno)),
            }),
            Err(e) => Err(Error::Internal(format!("cannot start the program: {e}"))),
        }
    }
}

/// A process given by pid, running already.
pub(crate) struct Attached {
    pid: Pid,
}

impl Attached {
    /// Process `pid`, if it is running.
    pub(crate) fn to(pid: Pid) -> Result<Attached> {
        if !alive(pid) {
            return Err(Error::NoSuchProcess {
                pid,
                reason: "it does not exist (or has ended); check the pid with ps".into(),
            });
        }
        Ok(Attached { pid })
    }

    /// Its pid.
    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// Recording starts.
    pub(crate) fn running(self) -> Running {
        Running { pid: self.pid, child: None }
    }
}

/// The program while it is recorded.
pub(crate) struct Running {
    pid: Pid,
    /// The child, when ffiprof started it.
    child: Option<GatedChild>,
}

impl Running {
    /// Its (first) process.
    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// Whether it has ended: `Some(exit code)` for a program ffiprof started (reaped
    /// here), `Some(None)` for a process it attached to.
    pub(crate) fn ended(&mut self) -> Option<Option<i32>> {
        match self.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().map(Some),
            None => (!alive(self.pid)).then_some(None),
        }
    }

    /// Recording is over: the program, ended with `exit_code` or still running.
    pub(crate) fn into_program(self, exit_code: Option<i32>) -> Program {
        Program { child: self.child, exit_code }
    }
}

/// The recorded program once recording is over, still running or ended.
pub struct Program {
    child: Option<GatedChild>,
    exit_code: Option<i32>,
}

impl Program {
    /// The exit code, if the program ended while recording.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_code
    }

    /// Its pid, when ffiprof started it and it is still running.
    pub fn running_pid(&self) -> Option<i32> {
        self.child.as_ref().filter(|_| self.exit_code.is_none()).map(GatedChild::pid)
    }

    /// Waits for a program ffiprof started to end; its exit code (128 + signal when a
    /// signal ended it). None for a process ffiprof attached to.
    pub fn wait(&mut self) -> Result<Option<i32>> {
        if self.exit_code.is_some() {
            return Ok(self.exit_code);
        }
        let Some(child) = self.child.as_mut() else { return Ok(None) };
        loop {
            match child.wait() {
                Ok(code) => {
                    self.exit_code = Some(code);
                    return Ok(Some(code));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Internal(format!("waiting for the program: {e}"))),
            }
        }
    }
}
