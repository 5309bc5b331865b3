//! The sampling path does not allocate on the sampled thread: a counting global allocator
//! sees no allocation on the workload's thread between a sampler's start and stop, while
//! its signal handler (pprof) or the kernel (perf) takes hundreds of samples.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ffiprof::sample::{self, SamplerKind};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a const-initialised
// thread-local Cell, which needs no allocation and no lock.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn no_allocation_while_sampling(kind: SamplerKind) {
    let w = ffiprof::workload::find("pow").unwrap();
    let input = w.input(Some("chain")).unwrap();
    let mut runner = w.prepare("per-call", input).unwrap();
    runner.run(10);
    let mut sampler = sample::sampler(kind, &sample::Options::default()).unwrap();
    sampler.start().unwrap();
    let before = allocations();
    // One second of this thread's CPU time, however busy the machine is.
    let start = crate::thread_cpu_seconds();
    while crate::thread_cpu_seconds() - start < 1.0 {
        std::hint::black_box(runner.run(1000));
    }
    let during = allocations() - before;
    let raw = sampler.stop().unwrap();
    assert!(raw.total_weight() >= 100, "{kind}: only {} samples", raw.total_weight());
    assert_eq!(during, 0, "{kind}: {during} allocations on the sampled thread while sampling");
}

#[test]
fn sampling_does_not_allocate_on_the_sampled_thread() {
    let _turn = crate::sampling_alone();
    // One test, both samplers in turn: pprof's timer samples the whole process.
    no_allocation_while_sampling(SamplerKind::Pprof);
    no_allocation_while_sampling(SamplerKind::Perf);
}
