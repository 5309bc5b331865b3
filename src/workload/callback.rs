//! `callback`: a C loop calling back into Rust once per element, with the Rust state
//! reached through a raw pointer or through a handle registry (the seeds' map of handles
//! behind a lock, for when C may hold on to the handle longer than the object lives).

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};

use super::{
    placed, runner, Input, LoopCode, MeasuredLoop, Placed, Placement, Role, Variant, Workload,
};
use crate::ffi::{self, CallbackStop, HandleStep};

const MULT: u64 = 0x2545_f491_4f6c_dd1d;
const X0: u64 = 1;

/// A handle C holds instead of a Rust address. Ids are never reused, so a handle that
/// outlived its object is detected rather than pointing at someone else's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handle(u64);

impl Handle {
    /// The integer handed to C.
    pub fn id(self) -> u64 {
        self.0
    }

    /// A handle from an integer C handed back.
    pub fn from_id(id: u64) -> Handle {
        Handle(id)
    }
}

/// What can stop a loop over Rust callbacks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallbackError {
    /// The handle's object was removed (or never existed).
    #[error("stale handle {0}: its object was removed from the registry")]
    StaleHandle(u64),
    /// The callback panicked; the panic was caught before it reached C.
    #[error("callback panicked after {done} elements: {message}")]
    Panicked {
        /// Elements completed before the panic.
        done: u64,
        /// The panic message.
        message: String,
    },
}

/// The registry's map: std's SipHash with fixed keys instead of per-process random ones,
/// so the work per callback (and its instruction count) is the same in every run.
type Objects<T> = HashMap<u64, T, BuildHasherDefault<DefaultHasher>>;

/// Objects reachable from C by [`Handle`]: a map behind a lock, as in the seeds.
pub struct HandleRegistry<T> {
    next: AtomicU64,
    objects: Mutex<Objects<T>>,
}

impl<T> Default for HandleRegistry<T> {
    fn default() -> Self {
        HandleRegistry { next: AtomicU64::new(1), objects: Mutex::new(Objects::default()) }
    }
}

impl<T> HandleRegistry<T> {
    #[inline]
    fn objects(&self) -> MutexGuard<'_, Objects<T>> {
        // A panic while holding the lock cannot leave the map half-updated (every update
        // is one insert or remove), so a poisoned lock is still safe to use.
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `object` and returns its new handle.
    pub fn insert(&self, object: T) -> Handle {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.objects().insert(id, object);
        Handle(id)
    }

    /// Removes and returns the object; later lookups of the handle fail.
    pub fn remove(&self, handle: Handle) -> Result<T, CallbackError> {
        self.objects().remove(&handle.0).ok_or(CallbackError::StaleHandle(handle.0))
    }

    /// Runs `f` on the object under the lock (per item, in the handle callbacks).
    #[inline]
    pub fn with<R>(&self, handle: Handle, f: impl FnOnce(&T) -> R) -> Result<R, CallbackError> {
        self.objects().get(&handle.0).map(f).ok_or(CallbackError::StaleHandle(handle.0))
    }
}

/// What a callback needs: the multiplier of `x * mult + 1`.
#[derive(Debug, Clone, Copy)]
struct StepState {
    mult: u64,
}

#[inline]
fn step(state: &StepState, x: u64) -> u64 {
    x.wrapping_mul(state.mult).wrapping_add(1)
}

static REGISTRY: LazyLock<HandleRegistry<StepState>> = LazyLock::new(HandleRegistry::default);

/// The registry-backed callback: C passes the handle, Rust looks it up per element.
struct ByHandle;

impl HandleStep for ByHandle {
    type Error = CallbackError;
    fn step(handle: u64, x: u64) -> Result<u64, CallbackError> {
        REGISTRY.with(Handle(handle), |state| step(state, x))
    }
}

fn into_error(stop: CallbackStop<CallbackError>, done: u64) -> CallbackError {
    match stop {
        CallbackStop::Error(e) => e,
        CallbackStop::Panicked(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_owned());
            CallbackError::Panicked { done, message }
        }
    }
}

/// Registers a callback object with multiplier `mult` in the workload's registry.
pub fn register(mult: u64) -> Handle {
    REGISTRY.insert(StepState { mult })
}

/// Removes a callback object from the workload's registry.
pub fn unregister(handle: Handle) -> Result<(), CallbackError> {
    REGISTRY.remove(handle).map(drop)
}

/// C loop over n elements calling back into Rust by `handle`.
pub fn run_by_handle(handle: Handle, n: u64, x0: u64) -> Result<u64, CallbackError> {
    run_by_handle_at(Placement::default(), handle, n, x0)
}

/// [`run_by_handle`] with the C loop's copy at `at`.
fn run_by_handle_at(at: Placement, handle: Handle, n: u64, x0: u64) -> Result<u64, CallbackError> {
    ffi::for_each_handle::<ByHandle>(at.index(), handle.0, n, x0)
        .map_err(|(stop, done)| into_error(stop, done))
}

/// C loop over n elements calling the Rust closure `f`, whose panics are caught.
pub fn run_closure(f: &mut impl FnMut(u64) -> u64, n: u64, x0: u64) -> Result<u64, CallbackError> {
    let mut g = |x| Ok::<u64, CallbackError>(f(x));
    ffi::for_each_closure(0, &mut g, n, x0).map_err(|(stop, done)| into_error(stop, done))
}

/// The raw-pointer variant at placement `K`: the C loop's copy `K`, calling back into a
/// Rust closure whose trampoline is a copy of its own (marked `K`, so that the copies
/// stay distinct functions at distinct addresses; a per-item callee cannot take a
/// placement's padding, so where each copy sits is the linker's choice).
#[inline(never)]
fn raw_pointer<const K: usize>(state: &StepState, x0: u64, n: u64) -> u64 {
    let mut f = |x| {
        ffi::mark::<K>();
        Ok::<u64, Infallible>(step(state, x))
    };
    match ffi::for_each_closure(K, &mut f, n, x0) {
        Ok(v) => v,
        Err((CallbackStop::Panicked(p), _)) => std::panic::resume_unwind(p),
        Err((CallbackStop::Error(never), _)) => match never {},
    }
}

const RAW_POINTER: Placed<fn(&StepState, u64, u64) -> u64> = placed!(raw_pointer);

/// The reference: the same loop and step in plain Rust, at placement `K`.
#[inline(never)]
fn rust_loop<const K: usize>(state: &StepState, x0: u64, n: u64) -> u64 {
    ffi::place::<K>();
    let mut x = x0;
    for i in 0..n {
        x = step(state, x ^ i);
    }
    x
}

const RUST_LOOP: Placed<fn(&StepState, u64, u64) -> u64> = placed!(rust_loop);

/// A registered handle, unregistered when the runner is dropped.
struct Registered(Handle);

impl Drop for Registered {
    fn drop(&mut self) {
        let _ = unregister(self.0);
    }
}

pub(super) fn workload() -> Workload {
    Workload {
        name: "callback",
        about: "a C loop calling back into Rust per element: raw pointer vs handle registry vs plain Rust loop",
        inputs: vec![Input { name: "u64", value: 0, calls_per_iteration: 10_000 }],
        share: super::nothing_shared,
        variants: vec![
            Variant {
                name: "batched",
                role: Role::Baseline,
                about: "the C loop calling a C callback: no crossing per element",
                prepare: |_, _, at| {
                    let (mult, x0) = black_box((MULT, X0));
                    runner(move |n| ffi::for_each_c(at.index(), mult, n, x0))
                },
                placed: true,
                needs: None,
            },
            Variant {
                name: "raw-pointer",
                role: Role::PerCall,
                about: "the C loop calling a Rust extern \"C\" fn, state passed as a raw pointer",
                prepare: |_, _, at| {
                    let (state, x0, f) = (black_box(StepState { mult: MULT }), X0, RAW_POINTER[at.index()]);
                    runner(move |n| f(&state, black_box(x0), n))
                },
                placed: true,
                needs: None,
            },
            Variant {
                name: "handle-registry",
                role: Role::PerCall,
                about: "the C loop calling Rust with a handle, looked up in a locked map per element",
                prepare: |_, _, at| {
                    let registered = Registered(register(black_box(MULT)));
                    let x0 = black_box(X0);
                    runner(move |n| {
                        // Borrowing the whole guard moves it into the closure, which keeps
                        // the handle registered for as long as the runner lives.
                        let Registered(handle) = &registered;
                        run_by_handle_at(at, *handle, n, x0)
                            .expect("the runner keeps its handle registered")
                    })
                },
                placed: true,
                needs: None,
            },
            Variant {
                name: "rust-loop",
                role: Role::Reference,
                about: "the same loop and step in plain Rust: no crossing at all",
                prepare: |_, _, at| {
                    let (state, x0, f) = (black_box(StepState { mult: MULT }), X0, RUST_LOOP[at.index()]);
                    runner(move |n| f(&state, black_box(x0), n))
                },
                placed: true,
                needs: None,
            },
        ],
        loops: vec![
            MeasuredLoop {
                asks_for_memory: Some(
                    "the step function returns its value through a pointer (`uint64_t *out`), \
                     the C API every variant calls through",
                ),
                ..MeasuredLoop::new(
                    "ffiprof_for_each",
                    &["batched", "raw-pointer", "handle-registry"],
                    LoopCode::C,
                )
            },
            MeasuredLoop::new(
                "callback::rust_loop",
                &["rust-loop"],
                LoopCode::Rust(|| RUST_LOOP.map(|f| f as usize)),
            ),
        ],
    }
}
