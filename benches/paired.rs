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

use ffiprof::measure::{self, Options};
use ffiprof::workload;

/// Criterion's flags that take a value (criterion 0.8's command line).
const WITH_VALUE: &[&str] = &[
    "--save-baseline",
    "--baseline",
    "--baseline-lenient",
    "--load-baseline",
    "--profile-time",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--color",
    "--output-format",
    "--plotting-backend",
    "--format",
    "-b",
    "-c",
    "-s",
];

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
    if args.iter().any(|a| a == "--profile-time" || a == "--list" || a == "--test") {
        return;
    }
    let mut filter: Option<&str> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if WITH_VALUE.contains(&arg.as_str()) {
            it.next();
        } else if !arg.starts_with('-') {
            filter.get_or_insert(arg);
        }
    }
    let mut options = Options::default();
    // Three processes per case, as `ffiprof bench` does, pooled: see measure::paired::pool.
    // They are this bench's own (`serve_child` above).
    options.processes = 3;
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
    // Instructions per call under callgrind, as `ffiprof bench` counts them, so that the
    // two tables mark every case alike (`=` and `!` need the counts).
    let measured: Vec<workload::Workload> = workload::catalogue()
        .into_iter()
        .filter(|w| cases.iter().any(|c| c.header.name == w.name))
        .collect();
    if let Err(why) = measure::attach_instruction_counts(&mut cases, &measured, &options) {
        eprintln!("note: instructions per call not counted: {why}");
    }
    println!("\nPaired rounds (ffiprof's figures: every variant and a control instance of the");
    println!(
        "baseline, interleaved on one shared input; medians, 95% distribution-free intervals):\n"
    );
    print!("{}", measure::table(&cases));
}
