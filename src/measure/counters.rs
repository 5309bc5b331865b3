//! Hardware performance counters per call (instructions, cycles, branch misses), where
//! the machine has them. Virtual machines often expose none: then `perf_event_open` fails
//! (ENOENT here) and the report says so instead of printing zeros.

use perf_event::events::Hardware;
use perf_event::{Builder, Group};
use serde::{Deserialize, Serialize};

use crate::workload::Runner;

/// Whether something is available, and if not, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Availability {
    /// Available.
    pub available: bool,
    /// What was found, or why not.
    pub detail: String,
}

/// Hardware counter figures per call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Instructions per call.
    pub instructions: f64,
    /// Cycles per call.
    pub cycles: f64,
    /// Branch misses per call.
    pub branch_misses: f64,
}

/// Whether this machine lets ffiprof count instructions, and what it said.
pub(crate) fn availability() -> Availability {
    match Builder::new(Hardware::INSTRUCTIONS).build() {
        Ok(_) => {
            Availability { available: true, detail: "instructions, cycles, branch misses".into() }
        }
        Err(e) => Availability {
            available: false,
            detail: format!(
                "perf_event_open(instructions) failed: {e}; the machine (often a virtual machine \
                 without a virtual PMU) exposes no hardware counters, so none are reported"
            ),
        },
    }
}

/// Counts `rounds` runs of `n` calls and divides by the calls made.
pub(crate) fn per_call(runner: &mut dyn Runner, n: u64, rounds: u64) -> std::io::Result<Counters> {
    let mut group = Group::new()?;
    let instructions = Builder::new(Hardware::INSTRUCTIONS).build_with_group(&mut group)?;
    let cycles = Builder::new(Hardware::CPU_CYCLES).build_with_group(&mut group)?;
    let misses = Builder::new(Hardware::BRANCH_MISSES).build_with_group(&mut group)?;
    group.enable()?;
    for _ in 0..rounds {
        std::hint::black_box(runner.run(n));
    }
    group.disable()?;
    let data = group.read()?;
    let calls = (n * rounds).max(1) as f64;
    Ok(Counters {
        instructions: data[&instructions] as f64 / calls,
        cycles: data[&cycles] as f64 / calls,
        branch_misses: data[&misses] as f64 / calls,
    })
}
