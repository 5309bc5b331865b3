//! `cstring`: passing Rust strings to C, which wants them NUL-terminated.

use std::ffi::{CStr, CString};
use std::hint::black_box;

use std::rc::Rc;

use super::{runner, shared_as, Input, Role, Shared, Variant, Workload};
use crate::ffi::{self, CStrTable};

const SEED: u64 = 0xc0ffee;
const STRINGS: usize = 64;

/// The strings a program would hold: Rust `String`s of 9 to 30 bytes (keys, short
/// paths), no NUL inside.
fn strings(_: &Input) -> Shared {
    Rc::new((0..STRINGS).map(|i| format!("user-{i:04}{}", "/ab".repeat(i % 8))).collect::<Vec<_>>())
}

pub(super) fn workload() -> Workload {
    Workload {
        name: "cstring",
        about: "Rust strings to C: a new CString per call vs one reused buffer vs batched",
        inputs: vec![Input { name: "9-30B", value: 0, calls_per_iteration: 2_000 }],
        share: strings,
        variants: vec![
            Variant {
                name: "batched",
                role: Role::Baseline,
                about: "C strings built once, one call digests n of them",
                prepare: |_, shared, _| {
                    let owned: Vec<CString> = shared_as::<Vec<String>>(shared)
                        .iter()
                        .map(|s| CString::new(s.as_str()).expect("catalogue strings have no NUL"))
                        .collect();
                    let table = CStrTable::new(owned);
                    let seed = black_box(SEED);
                    runner(move |n| table.digest_many(n, seed))
                },
                placed: false,
                needs: None,
            },
            Variant {
                name: "new-cstring",
                role: Role::PerCall,
                about: "per-call CString::new (allocate, copy, check, free)",
                prepare: |_, shared, _| {
                    let strs = shared_as::<Vec<String>>(shared);
                    let seed = black_box(SEED);
                    runner(move |n| {
                        let mut h = seed;
                        for s in strs.iter().cycle().take(n as usize) {
                            let s =
                                CString::new(s.as_str()).expect("catalogue strings have no NUL");
                            h = ffi::cstr_digest(&s, h);
                        }
                        h
                    })
                },
                placed: false,
                needs: None,
            },
            Variant {
                name: "reuse-buffer",
                role: Role::PerCall,
                about: "per-call copy into one reused Vec plus NUL, checked, no allocation",
                prepare: |_, shared, _| {
                    let strs = shared_as::<Vec<String>>(shared);
                    let mut buf: Vec<u8> = Vec::with_capacity(128);
                    let seed = black_box(SEED);
                    runner(move |n| {
                        let mut h = seed;
                        for s in strs.iter().cycle().take(n as usize) {
                            buf.clear();
                            buf.extend_from_slice(s.as_bytes());
                            buf.push(0);
                            let s = CStr::from_bytes_with_nul(&buf)
                                .expect("catalogue strings have no NUL");
                            h = ffi::cstr_digest(s, h);
                        }
                        h
                    })
                },
                placed: false,
                needs: None,
            },
        ],
        loops: Vec::new(),
    }
}
