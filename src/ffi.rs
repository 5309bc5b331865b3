//! Every `extern "C"` declaration and every `unsafe` block of ffiprof.
//!
//! The rest of the crate calls the safe functions and types here. C-owned memory (nodes,
//! arenas, copied buffers) lives in types that free it in `Drop`; callbacks from C into
//! Rust go through trampolines that never let a panic unwind into C.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::ptr::{self, NonNull};

/// Opaque list node owned by C.
#[repr(C)]
pub(crate) struct RawNode {
    _private: [u8; 0],
}

/// Opaque arena owned by C.
#[repr(C)]
pub(crate) struct RawArena {
    _private: [u8; 0],
}

type StepFn = unsafe extern "C" fn(user: *mut c_void, x: u64, out: *mut u64) -> c_int;

#[link(name = "m")]
extern "C" {
    /// libm's `pow`, called directly: the seeds' per-call experiment.
    fn pow(x: f64, y: f64) -> f64;
}

extern "C" {
    fn malloc(size: usize) -> *mut c_void;
    fn free(p: *mut c_void);
}

// The static library built by build.rs from csrc/*.c.
extern "C" {
    fn ffiprof_pow_loop(a: f64, e: f64, n: u64) -> f64;
    fn ffiprof_plusone(x: c_int) -> c_int;
    fn ffiprof_plusone_loop(x: c_int, n: u64) -> c_int;
    fn ffiprof_buf_digest(p: *const u8, len: usize, seed: u64) -> u64;
    fn ffiprof_buf_digest_repeat(p: *const u8, len: usize, n: u64, seed: u64) -> u64;
    fn ffiprof_cstr_digest(s: *const c_char, seed: u64) -> u64;
    fn ffiprof_cstr_digest_many(strs: *const *const c_char, k: usize, n: u64, seed: u64) -> u64;
    fn ffiprof_for_each(
        step: StepFn,
        user: *mut c_void,
        n: u64,
        x0: u64,
        result: *mut u64,
        done: *mut u64,
    ) -> c_int;
    fn ffiprof_c_step(user: *mut c_void, x: u64, out: *mut u64) -> c_int;
    fn ffiprof_node_push(head: *mut RawNode, value: u64) -> *mut RawNode;
    fn ffiprof_node_pop(head: *mut RawNode, value: *mut u64) -> *mut RawNode;
    fn ffiprof_nodes_batched(n: u64, seed: u64) -> u64;
    fn ffiprof_arena_new(capacity_nodes: usize) -> *mut RawArena;
    fn ffiprof_arena_push(arena: *mut RawArena, head: *mut RawNode, value: u64) -> *mut RawNode;
    fn ffiprof_list_sum(head: *const RawNode) -> u64;
    fn ffiprof_arena_free(arena: *mut RawArena);
    fn ffiprof_spin(x: u64, iters: u64) -> u64;
    // The other placements of the batched loops (csrc/ffiprof.h, FFIPROF_PLACED).
    fn ffiprof_pow_loop_p1(a: f64, e: f64, n: u64) -> f64;
    fn ffiprof_pow_loop_p2(a: f64, e: f64, n: u64) -> f64;
    fn ffiprof_pow_loop_p3(a: f64, e: f64, n: u64) -> f64;
    fn ffiprof_plusone_loop_p1(x: c_int, n: u64) -> c_int;
    fn ffiprof_plusone_loop_p2(x: c_int, n: u64) -> c_int;
    fn ffiprof_plusone_loop_p3(x: c_int, n: u64) -> c_int;
    fn ffiprof_buf_digest_repeat_p1(p: *const u8, len: usize, n: u64, seed: u64) -> u64;
    fn ffiprof_buf_digest_repeat_p2(p: *const u8, len: usize, n: u64, seed: u64) -> u64;
    fn ffiprof_buf_digest_repeat_p3(p: *const u8, len: usize, n: u64, seed: u64) -> u64;
    fn ffiprof_for_each_p1(
        step: StepFn,
        user: *mut c_void,
        n: u64,
        x0: u64,
        result: *mut u64,
        done: *mut u64,
    ) -> c_int;
    fn ffiprof_for_each_p2(
        step: StepFn,
        user: *mut c_void,
        n: u64,
        x0: u64,
        result: *mut u64,
        done: *mut u64,
    ) -> c_int;
    fn ffiprof_for_each_p3(
        step: StepFn,
        user: *mut c_void,
        n: u64,
        x0: u64,
        result: *mut u64,
        done: *mut u64,
    ) -> c_int;
}

/// How many code placements each measured loop has: csrc/ffiprof.h's
/// `FFIPROF_PLACEMENTS`, and the length of each table of copies below.
pub(crate) const PLACEMENTS: usize = 4;

type ForEachFn = unsafe extern "C" fn(StepFn, *mut c_void, u64, u64, *mut u64, *mut u64) -> c_int;

const POW_LOOPS: [unsafe extern "C" fn(f64, f64, u64) -> f64; PLACEMENTS] =
    [ffiprof_pow_loop, ffiprof_pow_loop_p1, ffiprof_pow_loop_p2, ffiprof_pow_loop_p3];
const PLUSONE_LOOPS: [unsafe extern "C" fn(c_int, u64) -> c_int; PLACEMENTS] = [
    ffiprof_plusone_loop,
    ffiprof_plusone_loop_p1,
    ffiprof_plusone_loop_p2,
    ffiprof_plusone_loop_p3,
];
const DIGEST_REPEATS: [unsafe extern "C" fn(*const u8, usize, u64, u64) -> u64; PLACEMENTS] = [
    ffiprof_buf_digest_repeat,
    ffiprof_buf_digest_repeat_p1,
    ffiprof_buf_digest_repeat_p2,
    ffiprof_buf_digest_repeat_p3,
];
const FOR_EACHES: [ForEachFn; PLACEMENTS] =
    [ffiprof_for_each, ffiprof_for_each_p1, ffiprof_for_each_p2, ffiprof_for_each_p3];

/// Where each placement of a C batched loop starts in this process, by the loop's C name:
/// for reading the loops' machine code ([`crate::workload::audit`]).
pub(crate) fn c_loop_addresses(name: &str) -> Option<[usize; PLACEMENTS]> {
    match name {
        "ffiprof_pow_loop" => Some(POW_LOOPS.map(|f| f as usize)),
        "ffiprof_plusone_loop" => Some(PLUSONE_LOOPS.map(|f| f as usize)),
        "ffiprof_buf_digest_repeat" => Some(DIGEST_REPEATS.map(|f| f as usize)),
        "ffiprof_for_each" => Some(FOR_EACHES.map(|f| f as usize)),
        _ => None,
    }
}

/// Marks a copy of a function as placement `K` without emitting any instruction: an empty
/// assembler block whose text names `K`, so that the optimiser does not merge otherwise
/// identical copies (a callback called per item, which cannot take [`place`]'s padding)
/// into one function at one address.
#[inline(always)]
pub(crate) fn mark<const K: usize>() {
    // SAFETY: an empty assembler block (a comment): no instruction, register or memory.
    unsafe {
        std::arch::asm!("/* ffiprof placement {k} */", k = const K, options(nomem, nostack, preserves_flags));
    }
}

/// Placement `K` of a Rust loop, the first thing in its body: pads the code to a 64-byte
/// boundary and then `16 * K` bytes further, with no-ops that run once per call of the
/// function, not per item, so that what follows (the loop) sits at the same offset in
/// every binary, as csrc/ffiprof.h's `FFIPROF_PLACE` does for the C loops. The padding
/// directive also raises the function's section to 64-byte alignment.
#[inline(always)]
pub(crate) fn place<const K: usize>() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: assembler directives only: no-op padding, touching no register, memory,
    // stack or flag.
    unsafe {
        std::arch::asm!(
            ".balign 64",
            ".if {k}",
            ".skip {k} * 16, 0x90",
            ".endif",
            k = const K,
            options(nomem, nostack, preserves_flags)
        );
    }
}

/// A value the optimiser must treat as unknown after each item of a measured loop, kept
/// in a register: an empty assembler statement that takes the value in and hands it back
/// ([`keep`]). `std::hint::black_box` does the same job through memory: the value is
/// stored to the stack and loaded again, and every item then waits for the store to be
/// forwarded to the load (about 6 cycles on recent Intel cores, about 1 on AMD's Zen
/// with its memory renaming), which times the harness instead of the crossing.
pub(crate) trait InRegister: Copy {
    /// The value, passed through an empty assembler statement in a register.
    fn keep(self) -> Self;
}

/// [`InRegister`] for integer types: `$x86` and `$arm` name the register at the width of
/// the type in the statement's comment (the assembler operand must be used).
macro_rules! in_general_register {
    ($($t:ty: $x86:literal, $arm:literal;)*) => {$(
        impl InRegister for $t {
            #[inline(always)]
            fn keep(mut self) -> Self {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: an empty assembler statement: the value stays in its register,
                // no instruction runs, no memory, stack or flag is touched.
                unsafe {
                    std::arch::asm!($x86, inout(reg) self, options(nomem, nostack, preserves_flags));
                }
                #[cfg(target_arch = "aarch64")]
                // SAFETY: as on x86_64.
                unsafe {
                    std::arch::asm!($arm, inout(reg) self, options(nomem, nostack, preserves_flags));
                }
                #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
                {
                    self = std::hint::black_box(self);
                }
                self
            }
        }
    )*};
}
in_general_register! {
    i32: "/* {0:e} */", "/* {0:w} */";
    u64: "/* {0:r} */", "/* {0:x} */";
}

/// `x`, unknown to the optimiser from here on, without leaving its register: the per-item
/// barrier of every measured loop ([`InRegister`]). It stops what the optimiser would
/// otherwise do to a loop whose work it can see (a closed form, hoisting, folding items
/// together) and costs no instruction.
#[inline(always)]
pub(crate) fn keep<T: InRegister>(x: T) -> T {
    x.keep()
}

/// libm `pow(x, y)`.
#[inline]
pub(crate) fn libm_pow(x: f64, y: f64) -> f64 {
    // SAFETY: pow takes two doubles by value and touches no memory of ours.
    unsafe { pow(x, y) }
}

/// C spin: `iters` steps of a multiply-add chain from `x`.
#[inline]
pub(crate) fn spin(x: u64, iters: u64) -> u64 {
    // SAFETY: plain values in and out.
    unsafe { ffiprof_spin(x, iters) }
}

/// C loop: `a = pow(a, e)` n times, the copy at `placement` (< [`PLACEMENTS`]).
pub(crate) fn pow_loop(placement: usize, a: f64, e: f64, n: u64) -> f64 {
    // SAFETY: plain values in and out.
    unsafe { POW_LOOPS[placement](a, e, n) }
}

/// C `plusone(x)`: `x + 1`, wrapping.
#[inline]
pub(crate) fn plusone(x: i32) -> i32 {
    // SAFETY: plain values in and out.
    unsafe { ffiprof_plusone(x) }
}

/// C loop calling `plusone` n times, the copy at `placement` (< [`PLACEMENTS`]).
pub(crate) fn plusone_loop(placement: usize, x: i32, n: u64) -> i32 {
    // SAFETY: plain values in and out.
    unsafe { PLUSONE_LOOPS[placement](x, n) }
}

/// C digest of a byte buffer, borrowed for the duration of the call.
#[inline]
pub(crate) fn buf_digest(bytes: &[u8], seed: u64) -> u64 {
    // SAFETY: the pointer and length come from a live slice that C only reads, and C keeps
    // no reference after returning.
    unsafe { ffiprof_buf_digest(bytes.as_ptr(), bytes.len(), seed) }
}

/// C loop digesting the same buffer n times.
pub(crate) fn buf_digest_repeat(placement: usize, bytes: &[u8], n: u64, seed: u64) -> u64 {
    // SAFETY: as in `buf_digest`.
    unsafe { DIGEST_REPEATS[placement](bytes.as_ptr(), bytes.len(), n, seed) }
}

/// A byte buffer in C's heap (`malloc`), freed with `free` on drop.
pub(crate) struct CBuffer {
    ptr: NonNull<u8>,
    len: usize,
}

impl CBuffer {
    /// Copies `bytes` into a fresh `malloc` block, as cgo's `C.CBytes` does. Aborts like
    /// any Rust allocation when memory runs out. Inlined where a measured loop copies per
    /// item, as are `digest` and `drop`.
    #[inline]
    pub(crate) fn copy_from(bytes: &[u8]) -> CBuffer {
        let size = bytes.len().max(1);
        // SAFETY: malloc may be called with any size; the result is checked for null.
        let raw = unsafe { malloc(size) }.cast::<u8>();
        let Some(ptr) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(std::alloc::Layout::array::<u8>(size).unwrap());
        };
        // SAFETY: ptr points to at least bytes.len() writable bytes that do not overlap
        // `bytes`, which is a live slice.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr(), bytes.len()) };
        CBuffer { ptr, len: bytes.len() }
    }

    /// C digest of this buffer.
    #[inline]
    pub(crate) fn digest(&self, seed: u64) -> u64 {
        // SAFETY: ptr/len describe the initialised block this value owns.
        unsafe { ffiprof_buf_digest(self.ptr.as_ptr(), self.len, seed) }
    }
}

impl Drop for CBuffer {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: ptr came from malloc and is freed exactly once, here.
        unsafe { free(self.ptr.as_ptr().cast()) }
    }
}

/// C digest of a NUL-terminated string.
#[inline]
pub(crate) fn cstr_digest(s: &CStr, seed: u64) -> u64 {
    // SAFETY: a CStr is a live, NUL-terminated string that C only reads.
    unsafe { ffiprof_cstr_digest(s.as_ptr(), seed) }
}

/// C strings built once, with the pointer array C's batched loop reads.
pub(crate) struct CStrTable {
    /// Owned only to keep the strings `ptrs` points into alive.
    _strings: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl CStrTable {
    /// Takes ownership of the strings and collects their pointers.
    pub(crate) fn new(strings: Vec<CString>) -> Self {
        let ptrs = strings.iter().map(|s| s.as_ptr()).collect();
        CStrTable { _strings: strings, ptrs }
    }

    /// C loop digesting `strings[i % k]` for i in 0..n.
    pub(crate) fn digest_many(&self, n: u64, seed: u64) -> u64 {
        // SAFETY: every pointer points into a CString that self owns and does not move
        // (a CString's bytes are on the heap), and k = ptrs.len().
        unsafe { ffiprof_cstr_digest_many(self.ptrs.as_ptr(), self.ptrs.len(), n, seed) }
    }
}

/// Why a C loop over Rust callbacks stopped early.
#[derive(Debug)]
pub(crate) enum CallbackStop<E> {
    /// The callback returned an error.
    Error(E),
    /// The callback panicked; the panic was caught before it could reach C.
    Panicked(Box<dyn Any + Send>),
}

const STEP_OK: c_int = 0;
const STEP_ERROR: c_int = 1;
const STEP_PANIC: c_int = 2;

/// C loop calling the C callback `x * mult + 1` per element: no language crossing inside.
/// `placement` picks the C loop's copy (< [`PLACEMENTS`]), here and in the other
/// `for_each_` functions.
pub(crate) fn for_each_c(placement: usize, mult: u64, n: u64, x0: u64) -> u64 {
    let mut mult = mult;
    let (mut result, mut done) = (0u64, 0u64);
    // SAFETY: ffiprof_c_step reads a u64 through user, which points to `mult`, alive for
    // the whole call; result and done point to live locals.
    let status = unsafe {
        FOR_EACHES[placement](
            ffiprof_c_step,
            (&raw mut mult).cast(),
            n,
            x0,
            &raw mut result,
            &raw mut done,
        )
    };
    debug_assert_eq!(status, STEP_OK);
    result
}

struct ClosureCall<'f, F, E> {
    f: &'f mut F,
    stop: Option<CallbackStop<E>>,
}

/// Runs `f` behind `catch_unwind` and turns its outcome into a C status. `stop` receives
/// the error or panic payload; `out` receives the value.
fn guarded_step<E>(
    step: impl FnOnce() -> Result<u64, E>,
    out: *mut u64,
    stop: &mut Option<CallbackStop<E>>,
) -> c_int {
    match catch_unwind(AssertUnwindSafe(step)) {
        Ok(Ok(v)) => {
            // SAFETY: out points to the `next` local of ffiprof_for_each, valid for writes.
            unsafe { out.write(v) };
            STEP_OK
        }
        Ok(Err(e)) => {
            *stop = Some(CallbackStop::Error(e));
            STEP_ERROR
        }
        Err(payload) => {
            *stop = Some(CallbackStop::Panicked(payload));
            STEP_PANIC
        }
    }
}

unsafe extern "C" fn closure_trampoline<F, E>(user: *mut c_void, x: u64, out: *mut u64) -> c_int
where
    F: FnMut(u64) -> Result<u64, E>,
{
    // SAFETY: user is the &mut ClosureCall that for_each_closure passed to C, and C hands
    // it back only during that call, from the same thread.
    let call = unsafe { &mut *user.cast::<ClosureCall<'_, F, E>>() };
    let f = &mut *call.f;
    guarded_step(|| f(x), out, &mut call.stop)
}

/// C loop calling back into the Rust closure `f` per element, the closure's address
/// passed through C as the user-data pointer. Returns the final value, or why it stopped
/// (with how many elements were done).
pub(crate) fn for_each_closure<F, E>(
    placement: usize,
    f: &mut F,
    n: u64,
    x0: u64,
) -> Result<u64, (CallbackStop<E>, u64)>
where
    F: FnMut(u64) -> Result<u64, E>,
{
    let mut call = ClosureCall { f, stop: None };
    let (mut result, mut done) = (0u64, 0u64);
    // SAFETY: the trampoline is instantiated for exactly this F and E, and `call` outlives
    // the C loop, which does not keep the pointer.
    let status = unsafe {
        FOR_EACHES[placement](
            closure_trampoline::<F, E>,
            (&raw mut call).cast(),
            n,
            x0,
            &raw mut result,
            &raw mut done,
        )
    };
    finish(status, call.stop, result, done)
}

/// A callback that C reaches by handle: user data is an integer, not a Rust address, so
/// C may hold it after the object is gone and the lookup says so.
pub(crate) trait HandleStep {
    /// Why a lookup or step failed.
    type Error;
    /// Does one element's work for the object behind `handle`.
    fn step(handle: u64, x: u64) -> Result<u64, Self::Error>;
}

thread_local! {
    // Handle callbacks have no Rust address to report through, so the stop reason waits
    // here for for_each_handle on the same thread.
    static HANDLE_STOP: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

unsafe extern "C" fn handle_trampoline<H: HandleStep + 'static>(
    user: *mut c_void,
    x: u64,
    out: *mut u64,
) -> c_int
where
    H::Error: 'static,
{
    let mut stop: Option<CallbackStop<H::Error>> = None;
    let status = guarded_step(|| H::step(user as u64, x), out, &mut stop);
    if let Some(stop) = stop {
        HANDLE_STOP.with(|slot| *slot.borrow_mut() = Some(Box::new(stop)));
    }
    status
}

/// C loop calling back into `H::step(handle, x)` per element.
pub(crate) fn for_each_handle<H: HandleStep + 'static>(
    placement: usize,
    handle: u64,
    n: u64,
    x0: u64,
) -> Result<u64, (CallbackStop<H::Error>, u64)>
where
    H::Error: 'static,
{
    let (mut result, mut done) = (0u64, 0u64);
    // SAFETY: the handle travels as an integer in the pointer slot and is never
    // dereferenced; result and done point to live locals.
    let status = unsafe {
        FOR_EACHES[placement](
            handle_trampoline::<H>,
            handle as *mut c_void,
            n,
            x0,
            &raw mut result,
            &raw mut done,
        )
    };
    let stop = HANDLE_STOP
        .with(|slot| slot.borrow_mut().take())
        .and_then(|boxed| boxed.downcast::<CallbackStop<H::Error>>().ok())
        .map(|b| *b);
    finish(status, stop, result, done)
}

fn finish<E>(
    status: c_int,
    stop: Option<CallbackStop<E>>,
    result: u64,
    done: u64,
) -> Result<u64, (CallbackStop<E>, u64)> {
    match (status, stop) {
        (STEP_OK, None) => Ok(result),
        (_, Some(stop)) => Err((stop, done)),
        (status, None) => unreachable!("C loop stopped with status {status} and no reason"),
    }
}

/// A singly linked list of `malloc`ed C nodes, freed node by node on drop.
pub(crate) struct CList {
    head: *mut RawNode,
}

impl CList {
    /// An empty list.
    pub(crate) fn new() -> Self {
        CList { head: ptr::null_mut() }
    }

    /// Pushes one node (one C call, one malloc).
    #[inline]
    pub(crate) fn push(&mut self, value: u64) {
        // SAFETY: head is null or a list built by ffiprof_node_push that only this value
        // owns.
        let node = unsafe { ffiprof_node_push(self.head, value) };
        if node.is_null() {
            std::alloc::handle_alloc_error(std::alloc::Layout::new::<[u64; 2]>());
        }
        self.head = node;
    }

    /// Pops and frees one node (one C call, one free).
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<u64> {
        if self.head.is_null() {
            return None;
        }
        let mut value = 0;
        // SAFETY: head is a live node this list owns; pop frees it and returns the next.
        self.head = unsafe { ffiprof_node_pop(self.head, &raw mut value) };
        Some(value)
    }
}

impl Default for CList {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for CList {
    fn drop(&mut self) {
        while self.pop().is_some() {}
    }
}

/// C loop that mallocs n nodes and frees them one by one, returning the sum of values.
pub(crate) fn nodes_batched(n: u64, seed: u64) -> u64 {
    // SAFETY: plain values in and out; C frees everything it allocates.
    unsafe { ffiprof_nodes_batched(n, seed) }
}

/// A C arena of list nodes, freed in one call on drop.
pub(crate) struct CArena {
    arena: NonNull<RawArena>,
    head: *mut RawNode,
}

impl CArena {
    /// An arena with room for `capacity` nodes.
    pub(crate) fn with_capacity(capacity: usize) -> CArena {
        // SAFETY: any capacity is accepted; the result is checked for null.
        let raw = unsafe { ffiprof_arena_new(capacity) };
        let Some(arena) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(std::alloc::Layout::new::<[u64; 2]>());
        };
        CArena { arena, head: ptr::null_mut() }
    }

    /// Pushes one node into the arena's list (one C call, no malloc). False when full.
    #[inline]
    pub(crate) fn push(&mut self, value: u64) -> bool {
        // SAFETY: arena is live and head is null or a node of this arena.
        let node = unsafe { ffiprof_arena_push(self.arena.as_ptr(), self.head, value) };
        if node.is_null() {
            return false;
        }
        self.head = node;
        true
    }

    /// Sum of the values in the list (one C call).
    pub(crate) fn sum(&self) -> u64 {
        // SAFETY: head is null or a node of this live arena.
        unsafe { ffiprof_list_sum(self.head) }
    }
}

impl Drop for CArena {
    fn drop(&mut self) {
        // SAFETY: arena came from ffiprof_arena_new and is freed once; its nodes go with it.
        unsafe { ffiprof_arena_free(self.arena.as_ptr()) }
    }
}

/// Functions of the shared library `libffiprof_dyn.so`, resolved with dlopen/dlsym.
pub(crate) struct DynPlusOne {
    lib: libloading::Library,
    plusone: unsafe extern "C" fn(c_int) -> c_int,
    plusone_loop: unsafe extern "C" fn(c_int, u64) -> c_int,
}

/// Symbol of the per-call function in the shared library.
const DYN_PLUSONE: &[u8] = b"ffiprof_dyn_plusone\0";
const DYN_PLUSONE_LOOP: &[u8] = b"ffiprof_dyn_plusone_loop\0";

impl DynPlusOne {
    /// Loads the library at `path` and resolves its two functions.
    pub(crate) fn open(path: &Path) -> Result<DynPlusOne, libloading::Error> {
        // SAFETY: the library is ffiprof's own, built by build.rs; its initialisers do
        // nothing.
        let lib = unsafe { libloading::Library::new(path) }?;
        // SAFETY: the symbols are defined in csrc/dylib with exactly these signatures.
        let (plusone, plusone_loop) = unsafe {
            let f: libloading::Symbol<unsafe extern "C" fn(c_int) -> c_int> =
                lib.get(DYN_PLUSONE)?;
            let g: libloading::Symbol<unsafe extern "C" fn(c_int, u64) -> c_int> =
                lib.get(DYN_PLUSONE_LOOP)?;
            (*f, *g)
        };
        Ok(DynPlusOne { lib, plusone, plusone_loop })
    }

    /// `plusone` through the pointer resolved once at load time.
    #[inline]
    pub(crate) fn plusone(&self, x: i32) -> i32 {
        // SAFETY: the pointer stays valid while self.lib is loaded, which self guarantees.
        unsafe { (self.plusone)(x) }
    }

    /// The library's own loop.
    pub(crate) fn plusone_loop(&self, x: i32, n: u64) -> i32 {
        // SAFETY: as in `plusone`.
        unsafe { (self.plusone_loop)(x, n) }
    }

    /// `plusone` looked up with dlsym on every call, then called.
    #[inline]
    pub(crate) fn plusone_lookup(&self, x: i32) -> Result<i32, libloading::Error> {
        // SAFETY: the symbol has this signature (csrc/dylib) and the library is loaded for
        // the duration of the call.
        unsafe {
            let f: libloading::Symbol<unsafe extern "C" fn(c_int) -> c_int> =
                self.lib.get(DYN_PLUSONE)?;
            Ok(f(x))
        }
    }
}

/// The cross-language LTO library's loops (csrc/xlto/loops.rs), every placement of each,
/// resolved once at load time.
pub(crate) struct XltoLoops {
    _lib: libloading::Library,
    plusone: [unsafe extern "C" fn(c_int, u64) -> c_int; PLACEMENTS],
    pow: [unsafe extern "C" fn(f64, f64, u64) -> f64; PLACEMENTS],
}

/// Resolves `{prefix}_p0` .. `_p3` in `lib` as functions of type `F`.
///
/// # Safety
/// Each symbol must be a function of type `F`, and the pointers must not outlive `lib`.
unsafe fn placed_symbols<F: Copy>(
    lib: &libloading::Library,
    prefix: &str,
) -> Result<[F; PLACEMENTS], libloading::Error> {
    let mut found = Vec::with_capacity(PLACEMENTS);
    for k in 0..PLACEMENTS {
        let name = format!("{prefix}_p{k}\0");
        // SAFETY: the caller guarantees the type.
        found.push(*unsafe { lib.get::<F>(name.as_bytes()) }?);
    }
    Ok(std::array::from_fn(|k| found[k]))
}

impl XltoLoops {
    /// Loads the library at `path` and resolves every loop at every placement.
    pub(crate) fn open(path: &Path) -> Result<XltoLoops, libloading::Error> {
        // SAFETY: the library is ffiprof's own, built from csrc/xlto/loops.rs and csrc's C;
        // its initialisers do nothing.
        let lib = unsafe { libloading::Library::new(path) }?;
        // SAFETY: loops.rs defines these symbols with exactly these signatures, and the
        // pointers live in the same struct as the library, which stays loaded while they
        // exist.
        unsafe {
            Ok(XltoLoops {
                plusone: placed_symbols(&lib, "ffiprof_xlto_plusone")?,
                pow: placed_symbols(&lib, "ffiprof_xlto_pow")?,
                _lib: lib,
            })
        }
    }

    /// Where each placement of a loop starts in this process, by the loop's exported
    /// name before `_pK`.
    pub(crate) fn addresses(&self, name: &str) -> Option<[usize; PLACEMENTS]> {
        match name {
            "ffiprof_xlto_plusone" => Some(self.plusone.map(|f| f as usize)),
            "ffiprof_xlto_pow" => Some(self.pow.map(|f| f as usize)),
            _ => None,
        }
    }

    /// The per-call plusone loop at `placement`.
    pub(crate) fn plusone(&self, placement: usize, x: i32, n: u64) -> i32 {
        // SAFETY: plain values in and out; the library is loaded while self lives.
        unsafe { self.plusone[placement](x, n) }
    }

    /// The per-call pow loop at `placement`.
    pub(crate) fn pow(&self, placement: usize, a: f64, e: f64, n: u64) -> f64 {
        // SAFETY: as in `plusone`.
        unsafe { self.pow[placement](a, e, n) }
    }
}

/// The file of the loaded object that defines `symbol` in this process (libm's path for
/// `pow`), by `dlsym` and `dladdr`.
pub(crate) fn library_of(symbol: &str) -> Option<std::path::PathBuf> {
    let name = CString::new(symbol).ok()?;
    // SAFETY: a NUL-terminated name and the default search order; nothing is called.
    let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    if address.is_null() {
        return None;
    }
    // SAFETY: Dl_info is plain data (pointers and integers), valid when zeroed.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: info is a valid out-parameter for dladdr.
    if unsafe { libc::dladdr(address, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string the loader keeps while the object is
    // loaded; it is copied at once.
    let file = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(file.to_string_lossy().into_owned().into())
}

extern "C" {
    fn gnu_get_libc_version() -> *const c_char;
    fn pthread_self() -> std::ffi::c_ulong;
    fn getuid() -> u32;
}

/// glibc's version string, for example "2.36".
pub(crate) fn glibc_version() -> String {
    // SAFETY: gnu_get_libc_version returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(gnu_get_libc_version()) }.to_string_lossy().into_owned()
}

/// `pthread_self()` of the calling thread, as the pprof crate records thread ids.
pub(crate) fn current_pthread() -> u64 {
    // SAFETY: pthread_self has no preconditions.
    unsafe { pthread_self() as u64 }
}

/// The real user id of this process.
pub(crate) fn user_id() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { getuid() }
}

// ---- Processes, signals and perf_event ioctls, for `ffiprof record` ----

/// A forked child that waits at a gate (a pipe) before it execs the program: the
/// recorder opens its perf events on the child's pid first, so that the counters are
/// enabled on exec and see the program's first instruction.
pub(crate) struct GatedChild {
    pid: i32,
    gate: Option<std::os::fd::OwnedFd>,
    errors: std::os::fd::OwnedFd,
    released: bool,
    reaped: bool,
}

fn pipe_cloexec() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as c_int; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
    Ok(unsafe {
        (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    })
}

/// Forks a child that, once [`GatedChild::release`]d, execs `program` (a path) with
/// `argv`. Until then it waits; if the gate is closed unreleased it exits with 127.
pub(crate) fn fork_gated(program: &CStr, argv: &[CString]) -> std::io::Result<GatedChild> {
    use std::os::fd::AsRawFd;
    let (gate_r, gate_w) = pipe_cloexec()?;
    let (err_r, err_w) = pipe_cloexec()?;
    let mut ptrs: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(ptr::null());
    let (gate_fd, err_fd) = (gate_r.as_raw_fd(), err_w.as_raw_fd());
    let (parent_gate, parent_err) = (gate_w.as_raw_fd(), err_r.as_raw_fd());
    // SAFETY: between fork and exec the child calls only async-signal-safe functions
    // (read, execv, write, _exit) on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above; the child never returns from this block.
        unsafe {
            // The parent's ends: with the gate's write end closed here, the read below
            // sees end-of-file when the parent closes its own.
            libc::close(parent_gate);
            libc::close(parent_err);
            let mut byte = 0u8;
            loop {
                let n = libc::read(gate_fd, (&mut byte as *mut u8).cast(), 1);
                if n == 1 {
                    break;
                }
                if n < 0 && *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                libc::_exit(127);
            }
            libc::execv(program.as_ptr(), ptrs.as_ptr());
            let errno: c_int = *libc::__errno_location();
            libc::write(err_fd, (&errno as *const c_int).cast(), std::mem::size_of::<c_int>());
            libc::_exit(127);
        }
    }
    drop((gate_r, err_w));
    Ok(GatedChild { pid, gate: Some(gate_w), errors: err_r, released: false, reaped: false })
}

/// An exit status as a shell reports it: the code, or 128 plus the signal.
fn exit_code(status: c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

impl GatedChild {
    /// The child's pid.
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Lets the child exec. Returns the errno of a failed exec (the child has then exited).
    pub(crate) fn release(&mut self) -> std::io::Result<Result<(), i32>> {
        use std::io::{Read, Write};
        let gate = self.gate.take().ok_or_else(|| std::io::Error::other("released twice"))?;
        std::fs::File::from(gate).write_all(&[1])?;
        self.released = true;
        let mut buf = Vec::new();
        std::fs::File::from(self.errors.try_clone()?).read_to_end(&mut buf)?;
        match <[u8; 4]>::try_from(buf.as_slice()) {
            Ok(bytes) => {
                self.wait()?;
                Ok(Err(c_int::from_ne_bytes(bytes)))
            }
            Err(_) => Ok(Ok(())),
        }
    }

    fn waitpid(&mut self, flags: c_int) -> std::io::Result<Option<i32>> {
        let mut status: c_int = 0;
        loop {
            // SAFETY: status is a valid place for waitpid to write to.
            let r = unsafe { libc::waitpid(self.pid, &mut status, flags) };
            if r == self.pid {
                self.reaped = true;
                return Ok(Some(exit_code(status)));
            }
            if r == 0 {
                return Ok(None);
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(err);
            }
        }
    }

    /// The exit code if the program has ended (reaping it), else None.
    pub(crate) fn try_wait(&mut self) -> std::io::Result<Option<i32>> {
        self.waitpid(libc::WNOHANG)
    }

    /// Waits for the program to end; its exit code (128 + signal when killed).
    pub(crate) fn wait(&mut self) -> std::io::Result<i32> {
        Ok(self.waitpid(0)?.unwrap_or(1))
    }
}

impl Drop for GatedChild {
    fn drop(&mut self) {
        // Never released: closing the gate makes the child exit; reap it. A released
        // program is left to run: ffiprof never kills what it records.
        if !self.released && !self.reaped {
            self.gate = None;
            let _ = self.wait();
        }
    }
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(_: c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Catches SIGINT (Ctrl-C) into a flag instead of dying, and returns the flag. The
/// handler is reset in programs this process execs.
pub(crate) fn interrupt_flag() -> &'static std::sync::atomic::AtomicBool {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_interrupt as *const () as libc::sighandler_t);
    }
    &INTERRUPTED
}

/// Sends `fd`'s samples into the ring buffer of `ring` (PERF_EVENT_IOC_SET_OUTPUT).
pub(crate) fn perf_set_output(
    fd: std::os::fd::RawFd,
    ring: std::os::fd::RawFd,
) -> std::io::Result<()> {
    const PERF_EVENT_IOC_SET_OUTPUT: libc::c_ulong = 0x2405; // _IO('$', 5)
                                                             // SAFETY: the ioctl takes two perf event descriptors and reads nothing else.
    if unsafe { libc::ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT as _, ring) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A copy of this process's vDSO image, which the kernel maps into every process of this
/// architecture alike; `range` is its mapping from /proc/self/maps.
pub(crate) fn own_vdso(range: std::ops::Range<u64>) -> Option<Vec<u8>> {
    // SAFETY: getauxval has no preconditions.
    let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) };
    if base == 0 || base != range.start || range.end <= range.start {
        return None;
    }
    // SAFETY: the range is the vDSO's readable mapping, present for the process's life.
    let bytes = unsafe {
        std::slice::from_raw_parts(base as *const u8, (range.end - range.start) as usize)
    };
    Some(bytes.to_vec())
}

/// CLOCK_MONOTONIC now, in nanoseconds: the clock `ffiprof record` has the kernel stamp
/// its records with.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The calling thread's kernel id.
pub(crate) fn thread_id() -> crate::ids::Tid {
    // SAFETY: gettid has no preconditions.
    crate::ids::Tid(unsafe { libc::gettid() } as u32)
}

/// Puts thread `tid` of this process in SCHED_IDLE: it runs only on a CPU nothing else
/// wants.
pub(crate) fn set_idle_priority(tid: crate::ids::Tid) -> std::io::Result<()> {
    set_policy(tid, libc::SCHED_IDLE)
}

/// Puts thread `tid` of this process back in the normal policy (SCHED_OTHER).
pub(crate) fn set_normal_priority(tid: crate::ids::Tid) -> std::io::Result<()> {
    set_policy(tid, libc::SCHED_OTHER)
}

fn set_policy(tid: crate::ids::Tid, policy: libc::c_int) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: param is a valid sched_param; tid names a thread or the call fails.
    if unsafe { libc::sched_setscheduler(tid.0 as libc::pid_t, policy, &param) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: usage is a valid rusage for getrusage to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(who, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// CPU time this process has used so far (CLOCK_PROCESS_CPUTIME_ID), nanoseconds; 0 where
/// the clock cannot be read.
pub(crate) fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a pointer to a timespec we own.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } == 0;
    if ok {
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    } else {
        0
    }
}

/// CPU time the calling thread has used so far (CLOCK_THREAD_CPUTIME_ID), nanoseconds.
pub(crate) fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The most memory this process has had resident so far (VmHWM), in bytes; its children
/// are not counted. None where /proc does not tell.
pub(crate) fn own_peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time (user plus system) this process has used so far, in seconds; its children
/// are not counted.
pub(crate) fn own_cpu_seconds() -> f64 {
    cpu_seconds(libc::RUSAGE_SELF)
}

/// CPU time (user plus system) of this process's children that have ended and been
/// waited for, in seconds, their own children included.
/// The exit status a shell would report: the code, or 128 + the signal.
pub(crate) fn shell_status(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}

pub(crate) fn children_cpu_seconds() -> f64 {
    cpu_seconds(libc::RUSAGE_CHILDREN)
}

/// `file` mapped read-only into memory: only the pages read are loaded, and they are the
/// page cache's, shared with the program that runs the file. The unwinder maps the
/// executables and libraries of the programs it unwinds rather than copying their
/// sections (a compiler's `.text` is a hundred megabytes).
pub(crate) fn map_file(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: a private read-only mapping, never written through. Were another process
    // to truncate the file while it is mapped, reading the lost pages would fault; the
    // files mapped are those of running programs, which are not rewritten in place.
    unsafe { memmap2::Mmap::map(file) }
}

/// The bytes an unprivileged process may still write to the file system holding `path`,
/// and whether that file system keeps its files in memory (tmpfs); `None` where it cannot
/// be asked.
pub(crate) fn file_system_room(path: &Path) -> Option<(u64, bool)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut fs = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call, and `fs` is
    // writable memory of the size statfs fills; it is read only where the call succeeded.
    let fs = unsafe {
        if libc::statfs(c_path.as_ptr(), fs.as_mut_ptr()) != 0 {
            return None;
        }
        fs.assume_init()
    };
    let room = (fs.f_bavail as u64).saturating_mul(fs.f_bsize as u64);
    Some((room, fs.f_type == libc::TMPFS_MAGIC))
}
