//! `cargo bench` ends here: after criterion's benchmarks (`benches/ffi.rs`), the paired
//! table of the same cases, the figures ffiprof stands behind. Criterion times each
//! variant in its own window; on a machine whose speed drifts between windows, their
//! ratios carry that drift. Here every variant of a case and an A/A control of its
//! baseline are timed in interleaved rounds on one shared input (see
//! `ffiprof::measure::paired`).
//!
//! `cargo bench -- pow` measures the cases whose criterion id (`workload/variant/input`)
//! contains `pow`; with `--profile-time` or `--list`, criterion's own modes, nothing is
//! measured here.

use ffiprof::harness::{BenchArgs, RunMode};
use ffiprof::measure;
use ffiprof::workload;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Each case is measured in child processes of this bench (the hidden command).
    if let Some(measured) = measure::serve_child(&args) {
        match measured {
            Ok(json) => print!("{json}"),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    // Criterion's flags are skipped; under its `--profile-time` and `--list`, or without
    // `--bench`, nothing is measured here.
    let parsed = match BenchArgs::parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code());
        }
    };
    if parsed.mode != RunMode::Measure {
        return;
    }
    let filter = parsed.filter.as_deref();
    // Processes per case (three, as `ffiprof bench`), pooled: see measure::paired::pool.
    // They are this bench's own (`serve_child` above).
    let options = parsed.options();
    let mut cases = Vec::new();
    for w in workload::catalogue() {
        for input in &w.inputs {
            let ids = w.variants.iter().map(|v| format!("{}/{}/{}", w.name, v.name, input.name));
            if filter.is_some_and(|f| !ids.into_iter().any(|id| id.contains(f))) {
                continue;
            }
            match measure::measure_case(&w, input, &options) {
                Ok(case) => cases.push(case),
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
    if cases.is_empty() {
        return;
    }
    // Instructions and crossings per call under callgrind, and allocations per call under
    // the heap interposer, as `ffiprof bench` counts them (in runs of this bench apart
    // from the timed ones), so that the two tables show every case alike (`=` and `!`
    // need the instruction counts).
    let measured: Vec<workload::Workload> = workload::catalogue()
        .into_iter()
        .filter(|w| cases.iter().any(|c| c.header.name == w.name))
        .collect();
    let mut options = options;
    options.count_crossings = Some(ffiprof::crossings::boundary_calls);
    if let Err(why) = measure::attach_instruction_counts(&mut cases, &measured, &options) {
        eprintln!("note: instructions and crossings per call not counted: {why}");
    }
    if let Err(why) = measure::attach_allocation_counts(&mut cases, &measured, &options) {
        eprintln!("note: allocations per call not counted: {why}");
    }
    println!("\nPaired rounds (ffiprof's figures: every variant and a control instance of the");
    println!(
        "baseline, interleaved on one shared input; medians, 95% distribution-free intervals):\n"
    );
    print!("{}", measure::table(&cases));
}
