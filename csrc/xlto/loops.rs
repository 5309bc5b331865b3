//! The Rust side of the cross-language LTO library (`src/workload/per_call_xlto.rs` builds it):
//! the per-call loops of the catalogue, written as in `src/workload/`, compiled by rustc
//! with `-Clinker-plugin-lto` and linked by clang and lld with csrc's C compiled to LLVM
//! bitcode, into a shared library ffiprof loads. LLVM then sees both sides of each call
//! and may inline the C function into the Rust loop. Each loop exists at every code
//! placement, as ffiprof's own do (`place` mirrors `ffi::place`).
#![no_std]

use core::ffi::c_int;

extern "C" {
    fn ffiprof_plusone(x: c_int) -> c_int;
    fn pow(x: f64, y: f64) -> f64;
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[inline(always)]
fn place<const K: usize>() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: assembler directives only: no-op padding.
    unsafe {
        core::arch::asm!(
            ".balign 64",
            ".if {k}",
            ".skip {k} * 16, 0x90",
            ".endif",
            k = const K,
            options(nomem, nostack, preserves_flags)
        );
    }
}

/// The per-item barrier of the measured loops, in a register (`ffi::keep` in ffiprof):
/// the optimiser must take the value as unknown, and no store or load is made.
#[inline(always)]
fn keep(mut x: c_int) -> c_int {
    // SAFETY: an empty assembler statement: the value stays in its register.
    unsafe {
        core::arch::asm!("/* {0:e} */", inout(reg) x, options(nomem, nostack, preserves_flags));
    }
    x
}

#[inline(always)]
fn plusone_loop<const K: usize>(mut x: c_int, n: u64) -> c_int {
    place::<K>();
    for _ in 0..n {
        // SAFETY: plain values in and out.
        x = keep(unsafe { ffiprof_plusone(x) });
    }
    x
}

#[inline(always)]
fn pow_loop<const K: usize>(mut a: f64, e: f64, n: u64) -> f64 {
    place::<K>();
    for _ in 0..n {
        // SAFETY: plain values in and out.
        a = unsafe { pow(a, e) };
    }
    a
}

macro_rules! exported {
    ($($name:ident = $f:ident::<$k:literal>($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {$(
        #[no_mangle]
        pub extern "C" fn $name($($arg: $ty),*) -> $ret {
            $f::<$k>($($arg),*)
        }
    )*};
}

exported! {
    ffiprof_xlto_plusone_p0 = plusone_loop::<0>(x: c_int, n: u64) -> c_int;
    ffiprof_xlto_plusone_p1 = plusone_loop::<1>(x: c_int, n: u64) -> c_int;
    ffiprof_xlto_plusone_p2 = plusone_loop::<2>(x: c_int, n: u64) -> c_int;
    ffiprof_xlto_plusone_p3 = plusone_loop::<3>(x: c_int, n: u64) -> c_int;
    ffiprof_xlto_pow_p0 = pow_loop::<0>(a: f64, e: f64, n: u64) -> f64;
    ffiprof_xlto_pow_p1 = pow_loop::<1>(a: f64, e: f64, n: u64) -> f64;
    ffiprof_xlto_pow_p2 = pow_loop::<2>(a: f64, e: f64, n: u64) -> f64;
    ffiprof_xlto_pow_p3 = pow_loop::<3>(a: f64, e: f64, n: u64) -> f64;
}
