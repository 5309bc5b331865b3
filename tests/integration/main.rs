//! ffiprof's integration tests, one test crate: the real binary, the library's sections
//! end to end, and the helpers they share (`common`). Tests that sample their own
//! process are the `sampling` crate's: they need the process to themselves.

#[path = "../common/mod.rs"]
mod common;

mod callgrind;
mod cargo_targets;
mod cgo;
mod cli;
mod crossings;
mod installed;
mod machine_code;
mod memory;
mod memory_ownership;
mod per_call_xlto;
mod profile;
mod record;
mod record_off_cpu;
mod report;
mod run_cli;
mod user_package;
mod workloads;
mod xlto_command;
