//! Tests that sample their own process, in a test crate of their own: pprof's timer and
//! perf's events see every thread of the process, so these tests take turns
//! ([`sampling_alone`]) and no other test's threads run beside them. The crate's
//! counting allocator (`allocation`) is the whole binary's.

use std::sync::{Mutex, MutexGuard};

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod accuracy;
mod allocation;
mod offcpu;
mod refused;

/// CPU time this thread has used, seconds: what the tests measure their windows in, so
/// that a busy machine (which stretches wall time) gives them the same work to sample.
fn thread_cpu_seconds() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: t is a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Held while a test samples its own process: only one pprof profiler may run at once,
/// and a sampler of this process would see the other tests' threads.
fn sampling_alone() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
