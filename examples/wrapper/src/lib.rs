//! A safe wrapper of a small C library (`c/mix.c`): a 64-bit mixing function called once
//! per item ([`mix`]) or once for a whole slice ([`mix_all`]), and a description string
//! that C allocates and Rust frees ([`describe`]).

use std::ffi::{c_char, c_void, CStr};

extern "C" {
    #[link_name = "mix"]
    fn c_mix(x: u64) -> u64;
    #[link_name = "mix_all"]
    fn c_mix_all(xs: *const u64, n: usize) -> u64;
    #[link_name = "mix_describe"]
    fn c_mix_describe(x: u64) -> *mut c_char;
    fn free(p: *mut c_void);
}

/// One item mixed by C: one call across the boundary.
pub fn mix(x: u64) -> u64 {
    // SAFETY: `mix` reads nothing but its argument.
    unsafe { c_mix(x) }
}

/// The sum of every item mixed, in one call into C.
pub fn mix_all(xs: &[u64]) -> u64 {
    // SAFETY: the pointer is valid for reads of `xs.len()` items.
    unsafe { c_mix_all(xs.as_ptr(), xs.len()) }
}

/// The same sum, one call into C per item.
pub fn mix_each(xs: &[u64]) -> u64 {
    xs.iter().map(|&x| mix(x)).fold(0, u64::wrapping_add)
}

/// The same sum in Rust, no crossing: the reference.
pub fn mix_in_rust(xs: &[u64]) -> u64 {
    xs.iter()
        .map(|&x| {
            let x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
            let x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
            x ^ (x >> 31)
        })
        .fold(0, u64::wrapping_add)
}

/// C's description of `x` (a string C allocates), copied into Rust's heap; C's copy is
/// freed with C's `free`, as its documentation asks.
pub fn describe(x: u64) -> String {
    // SAFETY: `mix_describe` returns a NUL-terminated string from malloc (or null), which
    // is read once and freed once, with free.
    unsafe {
        let p = c_mix_describe(x);
        assert!(!p.is_null(), "mix_describe: out of memory");
        let s = CStr::from_ptr(p).to_string_lossy().into_owned();
        free(p.cast());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_gives_the_same_sum() {
        let xs: Vec<u64> = (0..1000).collect();
        assert_eq!(mix_all(&xs), mix_each(&xs));
        assert_eq!(mix_all(&xs), mix_in_rust(&xs));
        assert_eq!(describe(7).len(), 16);
    }
}
