//! The run stage of `memory`: the program under DHAT (through the one valgrind runner,
//! [`crate::valgrind`]), or DHAT's files given; what the run gave ([`Ran`]); and what
//! valgrind's logs say of it (DHAT's own summary, the objects each process loaded). The
//! native engine's run is [`super::native`]'s.

use std::path::{Path, PathBuf};

use super::schema::Figures;
use super::{Options, Source};
use crate::error::{Error, Result};
use crate::ids::Pid;
use crate::valgrind::{self, Tool};

/// Frames DHAT keeps per stack (valgrind's default, 12, cuts a C library's deep stacks
/// before they reach the Rust that called in).
const NUM_CALLERS: usize = 100;

/// What a run gave: DHAT's files (none for the native engine), the program's status and
/// time, valgrind's version.
pub(crate) struct Ran {
    pub(crate) files: Vec<PathBuf>,
    pub(crate) status: i32,
    pub(crate) seconds: f64,
    pub(crate) valgrind: String,
    pub(crate) command: Vec<String>,
    pub(crate) program: Option<PathBuf>,
    /// Where valgrind's logs are (absent for files given).
    pub(crate) log_dir: Option<PathBuf>,
}

/// Runs the program under DHAT into `raw`, or takes the files given.
pub(crate) fn dhat_files(options: &Options, raw: &Path) -> Result<Ran> {
    let command = match &options.source {
        Source::Files(files) => {
            return Ok(Ran {
                files: files.clone(),
                status: 0,
                seconds: 0.0,
                valgrind: "(DHAT files given)".into(),
                command: Vec::new(),
                program: None,
                log_dir: None,
            })
        }
        Source::Run(command) => command,
    };
    let valgrind = valgrind::version("the heap census runs the program under DHAT")?;
    let program = crate::record::resolve_program(&command[0])?;
    std::fs::create_dir_all(raw).map_err(|source| Error::Write { path: raw.to_owned(), source })?;
    let tool = Tool {
        // Whole source paths (inlined frames of Rust's allocator are known by theirs), and
        // -v for the objects each process loaded.
        args: vec![
            "--tool=dhat".into(),
            "-v".into(),
            "--fullpath-after=".into(),
            format!("--num-callers={NUM_CALLERS}"),
            format!("--dhat-out-file={}", raw.join("dhat.out.%p").display()),
        ],
        dir: raw,
        trace_children: options.trace_children,
        env: vec![],
    };
    let finished = tool.run(&program, &command[1..])?;
    let files = valgrind::files_in(raw, "dhat.out")?;
    if files.is_empty() {
        return Err(Error::Internal(format!(
            "DHAT wrote no profile (status {}): {}",
            finished.status,
            tool.log_tail()
        )));
    }
    Ok(Ran {
        files,
        status: finished.status,
        seconds: finished.seconds,
        valgrind,
        command: command.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
        program: Some(program),
        log_dir: Some(raw.to_owned()),
    })
}

/// DHAT's summary lines in valgrind's logs under `dir` (`Total:`, `At t-gmax:`, `At
/// t-end:`), summed over processes; `None` where none were found.
pub(crate) fn dhat_summary(dir: &Path) -> Option<Figures> {
    let number = |s: &str| s.replace(',', "").parse::<u64>().ok();
    // "At t-gmax: 1,006 bytes in 11 blocks"
    let figures = |line: &str, label: &str| -> Option<(u64, u64)> {
        let rest = line.split_once(label)?.1.trim();
        let (bytes, rest) = rest.split_once(" bytes in ")?;
        Some((number(bytes)?, number(rest.split_whitespace().next()?)?))
    };
    let mut total = Figures::default();
    let mut found = false;
    for path in valgrind::files_in(dir, "valgrind.log").ok()? {
        let text = std::fs::read_to_string(path).ok()?;
        for line in text.lines() {
            if let Some((b, k)) = figures(line, "Total:") {
                (total.bytes, total.blocks, found) = (total.bytes + b, total.blocks + k, true);
            } else if let Some((b, k)) = figures(line, "At t-gmax:") {
                (total.bytes_at_peak, total.blocks_at_peak) =
                    (total.bytes_at_peak + b, total.blocks_at_peak + k);
            } else if let Some((b, k)) = figures(line, "At t-end:") {
                (total.bytes_at_exit, total.blocks_at_exit) =
                    (total.bytes_at_exit + b, total.blocks_at_exit + k);
            }
        }
    }
    found.then_some(total)
}

/// The objects valgrind read symbols from for process `pid` (`Reading syms from PATH` in
/// its `-v` log under `dir`), in load order: its executable first, then the libraries it
/// loaded, `dlopen`ed ones too.
pub(crate) fn loaded(dir: Option<&Path>, pid: Pid) -> Vec<PathBuf> {
    let Some(dir) = dir else { return Vec::new() };
    let text = std::fs::read_to_string(dir.join(format!("valgrind.log.{pid}"))).unwrap_or_default();
    let mut found: Vec<PathBuf> = Vec::new();
    for line in text.lines() {
        if let Some((_, p)) = line.split_once("Reading syms from ") {
            let p = PathBuf::from(p.trim());
            if !p.starts_with("/usr/libexec/valgrind") && !found.contains(&p) {
                found.push(p);
            }
        }
    }
    found
}
