//! ffiprof's integration tests, one test crate: the real binary, the library's sections
//! end to end, and the helpers they share (`common`). Tests that sample their own
//! process are the `sampling` crate's: they need the process to themselves.

#[path = "../common/mod.rs"]
mod common;

// libtest starts tests in the order of their names, one per core; the modules with the
// longest tests (cargo packages of their own built, whole quick runs) are named to start
// early, beside the short tests, rather than last and alone (on 2 cores that was 6 s of
// one core idle at the end). ffiprof in a user's crate (a copy of
// examples/wrapper, built and benchmarked as theirs):
mod a_users_crate;
mod callgrind;
mod cargo_targets;
mod cgo;
mod cli;
// The criterion test of the user's crate, started once the copy's first build is under way:
mod criterion_profiles;
// `ffiprof xlto` (three builds of a package, their censuses, a timing) and `duel`:
mod cross_language_lto;
mod crossings;
mod installed;
mod lifetimes;
mod machine_code;
// `ffiprof run` and `compare`, the README's main job:
mod main_job;
mod memory;
mod memory_correct;
mod memory_ownership;
mod per_call_xlto;
mod profile;
mod readme;
mod record;
mod record_off_cpu;
mod report;
mod workloads;
