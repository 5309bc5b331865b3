//! `cargo ffiprof ...`: cargo runs `cargo-ffiprof ffiprof ARGS` for it, and this runs the
//! `ffiprof` installed beside it with ARGS, so that `cargo ffiprof record --bin NAME --
//! ARGS` is `ffiprof record --bin NAME -- ARGS` (as cargo-flamegraph makes `cargo
//! flamegraph`).

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1).peekable();
    if args.peek().is_some_and(|a| a == "ffiprof") {
        args.next();
    }
    let beside = std::env::current_exe().ok().map(|exe| exe.with_file_name("ffiprof"));
    let ffiprof = beside.filter(|p| p.is_file()).unwrap_or_else(|| "ffiprof".into());
    let error = Command::new(&ffiprof).args(args).exec();
    eprintln!(
        "error: cannot run {}: {error}; install ffiprof (cargo install --path . installs both)",
        ffiprof.display()
    );
    ExitCode::from(1)
}
