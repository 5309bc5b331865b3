//! ffiprof measures what it costs to cross the Rust/C boundary, and shows where the time
//! goes on both sides.
//!
//! # Why
//!
//! People who wrap C libraries in Rust ask whether calling C once per item costs them, or
//! whether they should hand C the whole loop; whether copying buffers, building C
//! strings, calling back from C into Rust or loading a library at run time hurts. The
//! same questions were asked of Go's cgo, where each call costs tens of nanoseconds.
//! ffiprof answers them for Rust with criterion's statistics, on the machine at hand.
//!
//! # Sections
//!
//! - [`workload`]: the catalogue. Each workload has a batched baseline (one call into C
//!   that loops) and per-call variants that do the same work, checked by a checksum.
//! - [`measure`]: criterion configuration shared by `cargo bench` and `ffiprof bench`,
//!   and the per-call figures derived from criterion's estimates.
//! - [`ffi`]: every `extern "C"` and every `unsafe` block of the crate.
//! - [`environment`]: the machine a figure was measured on.
//! - [`output`]: files written atomically.
//!
//! The `ffiprof` binary only parses flags and prints; the benches and tests call the same
//! functions it calls.

#![deny(missing_docs)]

pub mod cgo;
pub mod cost;
pub mod environment;
pub mod error;
pub mod ffi;
pub mod flame;
pub mod measure;
pub mod output;
pub mod profile;
pub mod report;
pub mod run;
pub mod sample;
pub mod stacks;
pub mod symbol;
pub mod workload;

pub use error::{Error, Result};
