//! The catalogue's measured loops time the crossing, not the harness: read from their
//! machine code (every placement of ffiprof's Rust loops, csrc's batched C loops and the
//! cross-language LTO library's), none goes through a stack slot on every item where the
//! workload does not ask for memory. It reads code, not time, so it holds on any CPU.

use crate::common::{self, ffiprof, run};

#[test]
fn no_measured_loop_keeps_its_value_in_memory() {
    let catalogue = ffiprof::workload::catalogue();
    let (read, missing) = ffiprof::workload::audit::audit(&catalogue).unwrap();
    if !missing.is_empty() {
        // Only the LTO library's loops may be missing, where its compilers are.
        assert!(missing.iter().all(|m| m.variant.ends_with("per-call-xlto")), "{missing:?}");
        common::xlto_here("no_measured_loop_keeps_its_value_in_memory (the LTO library's loops)");
    }
    let placements = ffiprof::workload::PLACEMENTS;
    let loops: usize = catalogue.iter().map(|w| w.loops.len()).sum();
    assert_eq!(read.len(), (loops - missing.len()) * placements, "every placement read");
    for a in &read {
        assert!(
            !a.loops.is_empty(),
            "{}/{} #{}: no loop found in its code",
            a.workload,
            a.function,
            a.placement
        );
        assert!(
            a.harness_round_trips().is_empty(),
            "{}/{} at placement {} ({}): {}",
            a.workload,
            a.function,
            a.placement,
            a.symbol,
            a.sentence()
        );
    }
    // The C loops and the Rust loops were both read, from their own symbols.
    assert!(read.iter().any(|a| a.symbol == "ffiprof_plusone_loop_p3"));
    assert!(read.iter().any(|a| a.symbol.starts_with("ffiprof::workload::plusone::rust_inlined")));
}

#[test]
fn the_binary_reads_its_own_loops() {
    let out = run(ffiprof().args(["list", "plusone", "--machine-code"])).success();
    out.stdout_has("ffiprof_plusone_loop")
        .stdout_has("plusone::per_call_loop")
        .stdout_has("its values stay in registers")
        .stdout_has("; 0 time a memory round trip of the harness");
}
