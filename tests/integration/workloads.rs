//! Every variant of every workload does the same work as its baseline: same checksum for
//! several n, at every input. Also run under valgrind by .ci/run, so a leak or invalid
//! access on the C side fails.

use ffiprof::workload::{
    self, register, run_by_handle, run_closure, unregister, CallbackError, Handle, HandleRegistry,
};

/// n = 0 and 1 are the edge cases; the others cross loop-unrolling boundaries.
fn ns_for(bytes_per_call: u64) -> &'static [u64] {
    if bytes_per_call >= 64 * 1024 {
        &[0, 1, 2, 5]
    } else {
        &[0, 1, 2, 3, 17, 100, 1000]
    }
}

#[test]
fn every_variant_matches_its_baseline() {
    let catalogue = workload::catalogue();
    assert!(catalogue.len() >= 7, "the catalogue lost workloads");
    let mut checked = 0;
    for w in &catalogue {
        assert!(w.variants.len() >= 2, "{} needs a baseline and a variant", w.name);
        for input in &w.inputs {
            let bytes = if w.name == "buffer" { input.value } else { 0 };
            for &n in ns_for(bytes) {
                let mut baseline = w.prepare(w.baseline().name, input).unwrap();
                let want = baseline.run(n);
                // Every variant this machine can run, at every placement of its code (the
                // baseline's copies too): each copy does the same work.
                let (here, _) = w.available_variants();
                for v in here {
                    for at in v.placements() {
                        let mut runner = (v.prepare)(input, &(w.share)(input), at).unwrap();
                        let got = runner.run(n);
                        let what = format!("{}/{}/{} at {at:?}", w.name, v.name, input.name);
                        assert_eq!(got, want, "{what}, n = {n}");
                        // A runner can be run again and gives the same answer.
                        assert_eq!(runner.run(n), want, "{what}: second run");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 100);
}

#[test]
fn checksums_depend_on_n() {
    // A variant that ignored its work would give the same checksum for every n.
    for w in workload::catalogue() {
        for v in w.available_variants().0 {
            // pow's first input stays at 0 by design; its last one moves.
            let input = w.inputs.last().unwrap();
            let mut r = w.prepare(v.name, input).unwrap();
            assert_ne!(r.run(3), r.run(4), "{}/{} ignores n", w.name, v.name);
        }
    }
}

#[test]
fn pow_chain_does_real_work_and_cube_stays_at_zero() {
    let w = workload::select(&["pow".to_owned()]).unwrap().remove(0);
    let mut cube = w.prepare("per-call", w.input(Some("cube-from-0")).unwrap()).unwrap();
    assert_eq!(f64::from_bits(cube.run(1000)), 0.0);
    let mut chain = w.prepare("per-call", w.input(Some("chain")).unwrap()).unwrap();
    let a = f64::from_bits(chain.run(1000));
    assert!(a > 1.0 && a < 1.5, "the chain must neither overflow nor settle: {a}");
}

#[test]
fn unknown_workload_lists_the_known_ones() {
    let err = workload::select(&["nosuch".to_owned()]).err().expect("an error");
    let msg = err.to_string();
    assert!(msg.contains("nosuch") && msg.contains("pow") && msg.contains("arena"), "{msg}");
}

#[test]
fn registry_rejects_a_stale_handle() {
    let handle = register(3);
    // x * 3 + 1 on x ^ i: 1 ^ 0 = 1 -> 4, 4 ^ 1 = 5 -> 16.
    assert_eq!(run_by_handle(handle, 2, 1), Ok(16));
    unregister(handle).unwrap();
    assert_eq!(run_by_handle(handle, 5, 1), Err(CallbackError::StaleHandle(handle.id())));
    assert_eq!(unregister(handle), Err(CallbackError::StaleHandle(handle.id())));
    // A handle that never existed is rejected the same way.
    let bogus = Handle::from_id(u64::MAX);
    assert_eq!(run_by_handle(bogus, 1, 0), Err(CallbackError::StaleHandle(u64::MAX)));
}

#[test]
fn registry_never_reuses_ids() {
    let registry: HandleRegistry<u32> = HandleRegistry::default();
    let a = registry.insert(1);
    registry.remove(a).unwrap();
    let b = registry.insert(2);
    assert_ne!(a, b);
    assert_eq!(registry.with(a, |v| *v), Err(CallbackError::StaleHandle(a.id())));
    assert_eq!(registry.with(b, |v| *v), Ok(2));
}

#[test]
fn a_panicking_callback_stops_the_c_loop_without_unwinding_into_c() {
    let mut calls = 0u64;
    let mut f = |x: u64| {
        calls += 1;
        if calls == 4 {
            panic!("callback failed on purpose");
        }
        x + 1
    };
    let err = run_closure(&mut f, 10, 0).unwrap_err();
    assert_eq!(
        err,
        CallbackError::Panicked { done: 3, message: "callback failed on purpose".to_owned() }
    );
    assert_eq!(calls, 4, "the C loop must stop at the panic");
    // The boundary is usable again afterwards.
    let mut g = |x: u64| x + 2;
    // The C loop passes x ^ i: 0 -> 2, 2 ^ 1 = 3 -> 5, 5 ^ 2 = 7 -> 9.
    assert_eq!(run_closure(&mut g, 3, 0), Ok(9));
}
