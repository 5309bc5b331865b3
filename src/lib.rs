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
//!   that loops) and per-call variants that do the same work, checked by a checksum.
//! - [`measure`]: timing and counting. The paired engine ([`measure::paired`], its
//!   [`Case`] for a comparison of your own): every variant of a case and an A/A control
//!   timed in shuffled, interleaved rounds on one shared input, in several processes,
//!   figures as medians with distribution-free intervals; instructions per call under
//!   callgrind. (`cargo bench` is the `benches` package: criterion over the same
//!   catalogue, then the paired table.)
//! - [`sample`]: the samplers ([`sampler`]: the pprof crate; `perf_event_open` with DWARF
//!   unwinding) that return raw addresses only ([`RawProfile`]).
//! - [`language`]: the rules that decide each frame's language (Rust, C, C++, C runtime,
//!   glue, ...), for every section below.
//! - [`stacks`]: addresses symbolized and each frame's language decided, folded stacks
//!   and the boundary summary. A profile is symbolized once, after sampling.
//! - [`profile`]: sampling a workload end to end, rendering flamegraphs coloured by
//!   language, differential flamegraphs and pprof protobuf profiles, and `summary.json`.
//!   [`sampler_cost`] measures what a sampler costs.
//! - [`record`] ([`record()`]): the same for any program (`ffiprof record -- PROGRAM` or
//!   `--pid`): every thread and child process sampled with perf events, unwound with the
//!   program's own modules, symbolized while recording (each location once, on a thread
//!   of its own, while the program's modules are still there to read), written per
//!   thread and overall, and as a Firefox Profiler profile. One module per stage, in the
//!   order a sample goes through them (program, collect, unwind, intern, symbolize,
//!   summarize, write); memory grows with distinct stacks, not with samples.
//! - [`report`]: the versioned record of a run ([`Report`], `report.json`), its Markdown
//!   and HTML forms, and the comparison of two runs.
//! - [`crossings`]: an exact census of any program's crossings (`ffiprof crossings --
//!   PROGRAM`): calls and instructions per caller -> callee edge counted by callgrind,
//!   each function's language by the rules of [`language`], what the crossings cost from
//!   the paired engine (or a run's report), and the exact comparison of two censuses.
//! - [`cgo`]: the same C called from Go, as a reference row in the report.
//! - [`run`]: the main job, all of the above into one run directory.
//! - [`comparison`]: `compare` of two runs, two crossings censuses or two heap censuses,
//!   told apart by the files they hold.
//!
//! Below the sections, private to the crate: the environment a run names, the errors,
//! flamegraph drawing, number formatting, atomic output files, the pprof encoding and
//! the symbolizer. One of them, `ffi`, holds every `extern "C"` declaration and every
//! `unsafe` block of the crate; the catalogue, the samplers, the environment, `record`
//! and `crossings` call C through it.
//!
//! No section imports one from a later section. Every output file is written to a
//! temporary name and renamed into place. The `ffiprof` binary maps flags into these
//! sections' options, calls them, and prints what they return; the benches, examples and
//! tests call the same functions. What the sections export is the crate's interface:
//! the files behind a section (the perf sampler, callgrind's reader, the Firefox
//! profile, ...) are the crate's own.
//!
//! # Exit statuses
//!
//! One mapping decides the status: [`Error::exit_code`] for a command that failed, and
//! [`Outcome::status`] for one that did its work. The binary exits 0 when the work is
//! done; 2 when the user can fix what stopped it ([`Error::is_usage`]: a bad flag, a file
//! given that cannot be read, an output that cannot be written, a tool to install,
//! perf_event_open refused by a setting of the machine); 1 for an internal failure,
//! ffiprof's to fix; 3 when `compare --fail-on-regression` finds a regression.
//! `record` and `crossings` exit with the program's own status once their files are
//! written, and say so on their last line (`ffiprof: the program exited with status N`);
//! ffiprof's own failures there end before that line, with `error:` and status 1 or 2.
//! The program's status is also in `crossings.json` (and in `summary.json` when the
//! program ended while recording).

#![deny(missing_docs)]
#![deny(unreachable_pub)]

mod cache;
mod environment;
mod error;
mod ffi;
mod flame;
mod fmt;
mod ids;
mod machine_code;
mod maps;
mod outcome;
mod output;
mod pprof_proto;
mod source;
mod symbol;
mod valgrind;

pub mod cargo;
pub mod cgo;
pub mod comparison;
#[cfg(feature = "criterion")]
pub mod criterion;
pub mod crossings;
pub mod harness;
pub mod language;
pub mod lifetimes;
pub mod measure;
pub mod memory;
pub mod profile;
pub mod progress;
pub mod record;
pub mod report;
pub mod run;
pub mod sample;
pub mod sampler_cost;
pub mod stacks;
pub mod workload;
pub mod xlto;

pub use environment::Environment;
pub use error::{seconds, Error, Result};
pub use ids::{Pid, Tid};
pub use measure::paired::Case;
pub use outcome::{default_out, Outcome, EXIT_REGRESSION};
pub use pprof_proto::{decode as decode_pprof, Decoded as DecodedPprof};
pub use record::{record, RecordSummary, Target};
pub use report::Report;
pub use sample::{sampler, RawProfile, Sampler, SamplerKind};
pub use source::Source;
