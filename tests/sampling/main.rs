//! Tests that sample their own process, in a test crate of their own: pprof's timer and
//! perf's events see every thread of the process, so these tests take turns
//! ([`sampling_alone`]) and no other test's threads run beside them. The crate's
//! counting allocator (`allocation`) is the whole binary's.

use std::sync::{Mutex, MutexGuard};

mod accuracy;
mod allocation;
mod refused;

/// Held while a test samples its own process: only one pprof profiler may run at once,
/// and a sampler of this process would see the other tests' threads.
fn sampling_alone() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
