//! Where a recording's files go: their names under the output directory, decided once
//! for summary.json, the write stage and the terminal.

use std::path::PathBuf;

use super::schema::{RecordFiles, ThreadFiles};
use crate::ids::Tid;
use crate::profile::drawn_files;

/// The stem of the files of all threads together.
pub(crate) const ALL_THREADS: &str = "all-threads";

/// The stem of a thread's own files.
pub(crate) fn file_stem(tid: Tid, name: &str) -> String {
    let clean: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect();
    format!("thread-{tid}-{clean}")
}

/// A thread's own files, from its stem.
pub(crate) fn thread_files(stem: &str) -> ThreadFiles {
    let (flamegraph, folded) = drawn_files(stem);
    ThreadFiles { flamegraph, folded }
}

/// The files of all threads together.
pub(crate) fn record_files() -> RecordFiles {
    let (flamegraph, folded) = drawn_files(ALL_THREADS);
    RecordFiles {
        flamegraph,
        folded,
        pprof: PathBuf::from("profiles").join(format!("{ALL_THREADS}.pb.gz")),
        firefox: PathBuf::from("firefox-profile.json.gz"),
    }
}
