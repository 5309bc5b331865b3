//! ffiprof measures what it costs to cross the Rust/C boundary, and shows where the time
//! goes on both sides.
//!
//! # Why
//!
//! People who wrap C libraries in Rust ask whether calling C once per item costs them, or
//! whether they should hand C the whole loop; whether copying buffers, building C
//! strings, calling back from C into Rust or loading a library at run time hurts. The
//! same questions were asked of Go's cgo, where each call costs tens of nanoseconds.
//! ffiprof answers them for Rust, on the machine at hand, with timings that survive a
//! noisy machine, exact instruction counts, and samplers that see through the boundary.
//!
//! # Sections, in the order data flows
//!
//! - [`workload`]: the catalogue. Each workload has a batched baseline (one call into C
//!   that loops) and per-call variants that do the same work, checked by a checksum. All
//!   `extern "C"` declarations and `unsafe` blocks live below it, in one private module.
//! - [`measure`]: timing and counting. The paired engine ([`measure::paired`]): every
//!   variant of a case and an A/A control timed in shuffled, interleaved rounds on one
//!   shared input, in several processes, figures as medians with distribution-free
//!   intervals; instructions per call under callgrind; criterion for `cargo bench`.
//! - [`sample`]: samplers (the pprof crate; `perf_event_open` with DWARF unwinding) that
//!   return raw addresses only.
//! - [`stacks`]: addresses symbolized once, after sampling; each frame's language
//!   (Rust, C, C runtime, ...), folded stacks and the boundary summary.
//! - [`profile`]: sampling a workload end to end, rendering flamegraphs coloured by
//!   language, differential flamegraphs and pprof protobuf profiles, and `summary.json`.
//!   [`cost`] measures what a sampler costs.
//! - [`record`]: the same for any program (`ffiprof record -- PROGRAM` or `--pid`): every
//!   thread and child process sampled with perf events, unwound with the program's own
//!   modules, symbolized from their files, written per thread and overall, and as a
//!   Firefox Profiler profile.
//! - [`report`]: the versioned record of a run (`report.json`), its Markdown and HTML
//!   forms, and the comparison of two runs.
//! - [`crossings`]: an exact census of any program's crossings (`ffiprof crossings --
//!   PROGRAM`): calls and instructions per caller -> callee edge counted by callgrind,
//!   each function's language by the rules of [`stacks`], what the crossings cost from
//!   the paired engine, and the exact comparison of two censuses.
//! - [`cgo`]: the same C called from Go, as a reference row in the report.
//! - [`run`]: the main job, all of the above into one run directory.
//!
//! No module imports one from a later section. Every output file is written to a
//! temporary name and renamed into place. The `ffiprof` binary maps flags into these
//! sections' options, calls them, and prints what they return; the benches and tests call
//! the same functions.

#![deny(missing_docs)]

mod environment;
mod error;
mod ffi;
mod flame;
mod fmt;
mod output;
mod pprof_proto;
mod symbol;

pub mod cgo;
pub mod cost;
pub mod crossings;
pub mod measure;
pub mod profile;
pub mod record;
pub mod report;
pub mod run;
pub mod sample;
pub mod stacks;
pub mod workload;

pub use environment::Environment;
pub use error::{seconds, Error, Result};
pub use pprof_proto::{decode as decode_pprof, Decoded as DecodedPprof};
