//! Where threads wait (`record --off-cpu`), pure: each thread's time on and off CPU from
//! its [`OffCpuLog`], the table of places where threads block (where they left user
//! space, the C function below Rust, the Rust caller), and what recording it cost.

use std::collections::{BTreeSet, HashMap};

use crate::stacks::{FrameId, Language, Profile};

use super::collect::{Cost, CostByKind, Kind, OffCpu};
use super::intern::Collected;
use super::offcpu::OffCpuLog;
use super::schema::{OffCpuFiles, OffCpuRecording, ThreadTime, Wait};
use crate::profile::drawn_files;

/// The stem of the off-CPU files of all threads.
pub(crate) const OFF_CPU: &str = "off-cpu";
/// The stem of the wall-clock files of all threads.
pub(crate) const WALL: &str = "wall";

/// The off-CPU files: flamegraph, folded stacks, pprof; and the wall-clock ones.
pub(crate) fn off_cpu_files() -> OffCpuFiles {
    let (flamegraph, folded) = drawn_files(OFF_CPU);
    let (wall_flamegraph, wall_folded) = drawn_files(WALL);
    OffCpuFiles {
        flamegraph,
        folded,
        pprof: std::path::PathBuf::from("profiles").join(format!("{OFF_CPU}.pb.gz")),
        wall_flamegraph,
        wall_folded,
    }
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// A thread's time on and off CPU.
pub(crate) fn thread_time(log: &OffCpuLog) -> ThreadTime {
    ThreadTime {
        on_cpu_seconds: seconds(log.on_ns),
        off_cpu_seconds: seconds(log.blocked_ns),
        off_cpu_waits: log.waits,
        off_cpu_with_stack_seconds: seconds(log.blocked_ns - log.without_stack_ns),
        runnable_seconds: seconds(log.runnable_ns),
    }
}

/// Whether `function` is in Rust's standard library (`std`, `core`, `alloc`, or one of
/// their trait implementations).
pub(crate) fn in_rust_std(function: &str) -> bool {
    let f = function.trim_start_matches('<');
    ["std::", "core::", "alloc::"].iter().any(|p| f.starts_with(p))
}

/// Where a wait is: [`Wait`]'s fields that place it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Place {
    function: String,
    c_function: Option<String>,
    c_library_function: Option<String>,
    rust_caller: Option<String>,
    through_std: Option<String>,
}

/// A wait's place in its stack (root first): where it left user space, the C function
/// below the innermost Rust frame and the innermost frame of a C library, the Rust caller
/// and the standard library's frame it went through. None for a stack without code.
fn place(profile: &Profile, frames: &[FrameId]) -> Option<Place> {
    let code: Vec<FrameId> =
        frames.iter().copied().filter(|&i| profile.frame(i).language.is_code()).collect();
    let name = |i: FrameId| profile.frame(i).function.clone();
    let language = |k: usize| profile.frame(code[k]).language;
    let function = name(*code.last()?);
    let innermost = (0..code.len()).rev().find(|&k| language(k) == Language::Rust);
    let below = innermost.map_or(0, |r| r + 1);
    let c_library_function =
        (below..code.len()).rev().find(|&k| language(k).is_c_library()).map(|k| name(code[k]));
    let Some(innermost) = innermost else {
        return Some(Place { function, c_library_function, ..Place::default() });
    };
    let own = (0..=innermost)
        .rev()
        .find(|&k| language(k) == Language::Rust && !in_rust_std(&name(code[k])));
    let caller = own.unwrap_or(innermost);
    Some(Place {
        function,
        c_function: code.get(innermost + 1).map(|&i| name(i)),
        c_library_function,
        rust_caller: Some(name(code[caller])),
        through_std: (caller != innermost).then(|| name(code[innermost])),
    })
}

/// The places where threads wait, the most seconds first (at most `top`), from each
/// thread's off-CPU profile (stack weights in nanoseconds as `cpu_nanos`) and its waits
/// per stack.
pub(crate) fn waits(threads: &[(&Profile, &[u64])], top: usize) -> Vec<Wait> {
    let mut found: HashMap<Place, (u64, u64, BTreeSet<usize>)> = HashMap::new();
    for (t, (profile, waits)) in threads.iter().enumerate() {
        for (stack, &n) in profile.stacks().iter().zip(waits.iter()) {
            let Some(key) = place(profile, &stack.frames) else { continue };
            let e = found.entry(key).or_default();
            e.0 += stack.cpu_nanos;
            e.1 += n;
            e.2.insert(t);
        }
    }
    let total: u64 = found.values().map(|v| v.0).sum();
    let mut out: Vec<Wait> = found
        .into_iter()
        .map(|(p, (ns, waits, threads))| Wait {
            function: p.function,
            c_function: p.c_function,
            c_library_function: p.c_library_function,
            rust_caller: p.rust_caller,
            through_std: p.through_std,
            seconds: seconds(ns),
            share: if total == 0 { 0.0 } else { ns as f64 / total as f64 },
            waits,
            threads: threads.len(),
        })
        .collect();
    out.sort_by(|a, b| b.seconds.total_cmp(&a.seconds).then_with(|| a.function.cmp(&b.function)));
    out.truncate(top);
    out
}

/// What recording cost per CPU sample and per switch off a CPU, in microseconds of
/// ffiprof's CPU: the recording thread's CPU time (`thread_cpu_ns`) shared out by the
/// time that draining and interning each kind of record took, and what is left (the
/// loop, ordering records) evenly per record. Where preemption made the measured time
/// exceed the CPU time, the measured times are scaled down to it.
pub(crate) fn per_event_cost(cost: &CostByKind, thread_cpu_ns: u64) -> (Option<f64>, Option<f64>) {
    let Cost { records, nanos: measured } = cost.total();
    if records == 0 {
        return (None, None);
    }
    let scale = if measured > thread_cpu_ns { thread_cpu_ns as f64 / measured as f64 } else { 1.0 };
    let rest = thread_cpu_ns.saturating_sub(measured) as f64 / records as f64;
    let cpu_of = |(n, ns): (u64, u64)| ns as f64 * scale + n as f64 * rest;
    let (samples, _) = cost.of(Kind::CpuSample);
    let per_sample = (samples > 0).then(|| cpu_of(cost.of(Kind::CpuSample)) / samples as f64 / 1e3);
    // A switch off a CPU is two switch records, and its sample where there are samples.
    let switches = cost.of(Kind::Switch);
    let events = switches.0 / 2;
    let per_switch = (events > 0)
        .then(|| (cpu_of(cost.of(Kind::OffCpuSample)) + cpu_of(switches)) / events as f64 / 1e3);
    (per_sample, per_switch)
}

/// How off-CPU time was recorded and what it cost, from every thread's log.
pub(crate) fn recording(
    c: &Collected,
    mode: OffCpu,
    thread_cpu_ns: u64,
    lost: u64,
) -> OffCpuRecording {
    let logs = || c.threads.values().map(|t| &t.off_cpu);
    let blocked: u64 = logs().map(|l| l.blocked_ns).sum();
    let without: u64 = logs().map(|l| l.without_stack_ns).sum();
    let (per_sample, per_switch) = per_event_cost(&c.cost, thread_cpu_ns);
    OffCpuRecording {
        mode: if mode == OffCpu::Sampled { "stacks" } else { "switch-records" }.into(),
        off_cpu_seconds: seconds(blocked),
        with_stack_seconds: seconds(blocked - without),
        runnable_seconds: seconds(logs().map(|l| l.runnable_ns).sum()),
        waits: logs().map(|l| l.waits).sum(),
        switches_out: logs().map(|l| l.waits + l.preemptions).sum(),
        off_cpu_samples: c.cost.of(Kind::OffCpuSample).0,
        switch_records: c.cost.of(Kind::Switch).0,
        records_lost: lost,
        recorder_cpu_per_cpu_sample_us: per_sample,
        recorder_cpu_per_off_cpu_event_us: per_switch,
        cost_basis: "the recording thread's CPU time, shared out by the time draining and \
                     interning each kind of record took, the rest (the loop, ordering) evenly \
                     per record"
            .into(),
        files: (mode == OffCpu::Sampled).then(off_cpu_files),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Language::*;

    #[test]
    fn a_wait_is_placed_under_its_c_function_and_the_programs_own_rust_caller() {
        let p = Profile::from_named_stacks(&[
            // A Condvar wait: std reaches the C runtime's syscall.
            (
                vec![
                    ("start_thread", "libc.so.6", CRuntime),
                    ("app::waiter", "app", Rust),
                    ("std::sync::Condvar::wait", "app", Rust),
                    ("std::sys::pal::unix::futex::futex_wait", "app", Rust),
                    ("syscall", "libc.so.6", CRuntime),
                ],
                3,
            ),
            // A read called from the program's own Rust.
            (
                vec![
                    ("app::reader", "app", Rust),
                    ("read", "libc.so.6", CRuntime),
                    ("__GI___libc_read", "libc.so.6", CRuntime),
                ],
                1,
            ),
            // A C library's lock under a Rust caller: the library's own frame is named.
            (
                vec![
                    ("app::query", "app", Rust),
                    ("sqlite3_step", "app", C),
                    ("pcache1FetchWithMutex", "app", C),
                    ("__GI___lll_lock_wait", "libc.so.6", CRuntime),
                    ("futex_wait", "libc.so.6", CRuntime),
                ],
                1,
            ),
            // A C thread: no Rust at all.
            (vec![("start_thread", "libc.so.6", CRuntime), ("c_worker", "app", C)], 1),
        ]);
        let ns: Vec<u64> = vec![6_000_000_000, 2_000_000_000, 1_000_000_000, 1_000_000_000];
        let mut weighted = p.clone();
        weighted.set_cpu_nanos(&ns);
        let found = waits(&[(&weighted, &[3, 1, 1, 1])], 10);
        assert_eq!(found.len(), 4);
        let condvar = &found[0];
        assert_eq!(condvar.function, "syscall");
        assert_eq!(condvar.c_function.as_deref(), Some("syscall"));
        assert_eq!(condvar.rust_caller.as_deref(), Some("app::waiter"));
        assert_eq!(condvar.through_std.as_deref(), Some("std::sys::pal::unix::futex::futex_wait"));
        assert_eq!((condvar.seconds, condvar.share, condvar.waits), (6.0, 0.6, 3));
        let read = found.iter().find(|w| w.function == "__GI___libc_read").unwrap();
        assert_eq!(read.c_function.as_deref(), Some("read"));
        assert_eq!(read.rust_caller.as_deref(), Some("app::reader"));
        assert_eq!(read.through_std, None);
        assert_eq!(read.c_library_function, None, "libc is the C runtime, not a library");
        let lock = found.iter().find(|w| w.function == "futex_wait").unwrap();
        assert_eq!(
            (lock.c_function.as_deref(), lock.c_library_function.as_deref()),
            (Some("sqlite3_step"), Some("pcache1FetchWithMutex"))
        );
        let c = found.iter().find(|w| w.function == "c_worker").unwrap();
        assert_eq!((c.c_function.as_deref(), c.rust_caller.as_deref()), (None, None));
        assert_eq!(c.c_library_function.as_deref(), Some("c_worker"));
        assert!(in_rust_std("<std::io::stdio::Stdout as std::io::Write>::write"));
        assert!(!in_rust_std("app::std_like"));
    }

    #[test]
    fn recording_cost_is_shared_out_by_time_per_kind_and_evenly_for_the_rest() {
        // 100 CPU samples took 300 us, 50 switches off a CPU 200 us for their samples and
        // 100 us for their 100 switch records, 50 other records 100 us: 700 us measured
        // of the thread's 1 000 us of CPU.
        let c = |records, nanos| Cost { records, nanos };
        let cost = CostByKind {
            cpu_sample: c(100, 300_000),
            off_cpu_sample: c(50, 200_000),
            switch: c(100, 100_000),
            other: c(50, 100_000),
        };
        let (sample, switch) = per_event_cost(&cost, 1_000_000);
        // The rest, 300 us over 300 records, 1 us each. A CPU sample: 3 + 1 = 4 us.
        assert!((sample.unwrap() - 4.0).abs() < 1e-9, "{sample:?}");
        // A switch: (200 + 100) us + 150 records' 150 us, over 50: 9 us.
        assert!((switch.unwrap() - 9.0).abs() < 1e-9, "{switch:?}");
        // Measured past the CPU time (the thread was preempted): scaled down to it.
        let (sample, _) = per_event_cost(&cost, 350_000);
        assert!((sample.unwrap() - 1.5).abs() < 1e-9, "{sample:?}");
        assert_eq!(per_event_cost(&CostByKind::default(), 0), (None, None));
    }
}
