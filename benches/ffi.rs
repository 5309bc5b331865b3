//! `cargo bench`: the whole workload catalogue under criterion, with the settings
//! `ffiprof bench` uses. `cargo bench -- pow` runs one workload.

use ffiprof::measure::{self, Options};
use ffiprof::workload;

fn main() {
    // With `-- --profile-time SECONDS`, each benchmark is sampled and gets a flamegraph in
    // target/criterion/<group>/<id>/profile/.
    let mut c = measure::criterion(&Options::default())
        .with_profiler(measure::profiler::BenchProfiler::default())
        .configure_from_args();
    let workloads = workload::catalogue();
    if let Err(e) = measure::register(&mut c, &workloads) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    c.final_summary();
}
