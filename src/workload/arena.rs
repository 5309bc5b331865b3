//! `arena`: many small C allocations freed one by one, against the seeds' arena pattern
//! (one C block per batch, freed in one call).

use std::hint::black_box;

use super::{runner, Input, Role, Variant, Workload};
use crate::ffi::{self, CArena, CList};

const SEED: u64 = 0xa7e4a;

/// The value of node i: the formula of csrc/arena.c, computed on the Rust side so that
/// it adds no crossing of its own.
#[inline]
fn node_value(i: u64, seed: u64) -> u64 {
    (i ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

pub(super) fn workload() -> Workload {
    Workload {
        name: "arena",
        about:
            "small C allocations: malloc/free per node across the boundary vs one C arena per batch",
        inputs: vec![Input { name: "16B-nodes", value: 0, calls_per_iteration: 1_000 }],
        share: super::nothing_shared,
        variants: vec![
            Variant {
                name: "batched",
                role: Role::Baseline,
                about: "one call: C mallocs n nodes into a list and frees them one by one",
                prepare: |_, _, _| {
                    let seed = black_box(SEED);
                    runner(move |n| ffi::nodes_batched(n, seed))
                },
                placed: false,
                needs: None,
            },
            Variant {
                name: "per-call-malloc",
                role: Role::PerCall,
                about: "per node, one call to malloc a node and one call to free it",
                prepare: |_, _, _| {
                    let seed = black_box(SEED);
                    runner(move |n| {
                        let mut list = CList::new();
                        for i in 0..n {
                            list.push(node_value(i, seed));
                        }
                        let mut sum = 0u64;
                        while let Some(v) = list.pop() {
                            sum = sum.wrapping_add(v);
                        }
                        sum
                    })
                },
                placed: false,
                needs: None,
            },
            Variant {
                name: "per-call-arena",
                role: Role::PerCall,
                about: "per node, one call to place it in a C arena; one call frees them all",
                prepare: |_, _, _| {
                    let seed = black_box(SEED);
                    runner(move |n| {
                        let mut arena = CArena::with_capacity(n as usize);
                        for i in 0..n {
                            let placed = arena.push(node_value(i, seed));
                            debug_assert!(placed, "the arena has room for n nodes");
                        }
                        arena.sum()
                    })
                },
                placed: false,
                needs: None,
            },
        ],
        loops: Vec::new(),
    }
}
