//! `buffer`: handing a byte slice to C: borrowed, copied into C memory per call
//! (the seeds' "copy, copy, copy"), or all calls batched.

use std::hint::black_box;
use std::rc::Rc;

use super::{
    placed, runner, shared_as, Input, LoopCode, MeasuredLoop, Placed, Role, Shared, Variant,
    Workload,
};
use crate::ffi::{self, CBuffer};

const SEED: u64 = 0x5eed;
const KIB: u64 = 1024;

/// Items per iteration: about 1 MiB of bytes read, at least 4 and at most 4096 calls.
const fn calls_for(size: u64) -> u64 {
    let n = (1024 * KIB) / size;
    if n < 4 {
        4
    } else if n > 4096 {
        4096
    } else {
        n
    }
}

const fn input(name: &'static str, size: u64) -> Input {
    Input { name, value: size, calls_per_iteration: calls_for(size) }
}

/// Deterministic bytes of the input's size (a xorshift stream): the case's shared data.
fn bytes(input: &Input) -> Shared {
    let size = input.value;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let data = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect::<Vec<u8>>();
    Rc::new(data)
}

/// The borrowing per-call loop at placement `K`: pointer and length of the slice per call.
#[inline(never)]
fn borrow_loop<const K: usize>(buf: &[u8], seed: u64, n: u64) -> u64 {
    ffi::place::<K>();
    let mut h = seed;
    for _ in 0..n {
        h = ffi::keep(ffi::buf_digest(buf, h));
    }
    h
}

/// The copying per-call loop at placement `K`: malloc, copy, digest, free per call.
#[inline(never)]
fn copy_loop<const K: usize>(buf: &[u8], seed: u64, n: u64) -> u64 {
    ffi::place::<K>();
    let mut h = seed;
    for _ in 0..n {
        h = CBuffer::copy_from(buf).digest(h);
    }
    h
}

type Loop = fn(&[u8], u64, u64) -> u64;
const BORROW: Placed<Loop> = placed!(borrow_loop);
const COPY: Placed<Loop> = placed!(copy_loop);

pub(super) fn workload() -> Workload {
    Workload {
        name: "buffer",
        about: "a byte slice handed to C per call: borrowed vs copied into C memory vs batched",
        inputs: vec![
            input("16B", 16),
            input("256B", 256),
            input("4KiB", 4 * KIB),
            input("64KiB", 64 * KIB),
            input("1MiB", 1024 * KIB),
        ],
        share: bytes,
        variants: vec![
            Variant {
                name: "batched",
                role: Role::Baseline,
                about: "one call: C digests the buffer n times",
                prepare: |_, shared, at| {
                    let buf = shared_as::<Vec<u8>>(shared);
                    let seed = black_box(SEED);
                    runner(move |n| ffi::buf_digest_repeat(at.index(), &buf, n, seed))
                },
                placed: true,
                needs: None,
            },
            Variant {
                name: "borrow",
                role: Role::PerCall,
                about: "per-call with pointer and length of the Rust slice, no copy",
                prepare: |_, shared, at| {
                    let (buf, f) = (shared_as::<Vec<u8>>(shared), BORROW[at.index()]);
                    let seed = black_box(SEED);
                    runner(move |n| f(&buf, seed, n))
                },
                placed: true,
                needs: None,
            },
            Variant {
                name: "copy",
                role: Role::PerCall,
                about: "per-call malloc in C, copy the slice in, digest, free (cgo's C.CBytes)",
                prepare: |_, shared, at| {
                    let (buf, f) = (shared_as::<Vec<u8>>(shared), COPY[at.index()]);
                    let seed = black_box(SEED);
                    runner(move |n| f(&buf, seed, n))
                },
                placed: true,
                needs: None,
            },
        ],
        loops: vec![
            MeasuredLoop::new("ffiprof_buf_digest_repeat", &["batched"], LoopCode::C),
            MeasuredLoop::new(
                "buffer::borrow_loop",
                &["borrow"],
                LoopCode::Rust(|| BORROW.map(|f| f as usize)),
            ),
            MeasuredLoop::new(
                "buffer::copy_loop",
                &["copy"],
                LoopCode::Rust(|| COPY.map(|f| f as usize)),
            ),
        ],
    }
}
