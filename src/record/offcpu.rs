//! One thread's time on and off CPU, from the kernel's switch records, and its off-CPU
//! samples: the context-switch sample taken as the thread leaves a CPU is held until the
//! thread runs again, then weighted by the time between (see [`super::collect::OffCpu`]).
//! Pure: the intern stage feeds it records in time order.

use std::collections::BTreeMap;

use super::samples::{SampleRecord, Weight};
use super::table::StackId;

/// Where a thread is, as far as its records tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// No record has said yet (a thread already running when recording began).
    #[default]
    Unknown,
    /// On a CPU since then.
    On(u64),
    /// Off CPU since then: preempted (still runnable) or blocked, with the sample taken
    /// as it left, if there was one.
    Off { since: u64, preempted: bool, sample: Option<Held> },
    /// Ended.
    Exited,
}

/// A context-switch sample, unwound, waiting for its weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    stack: StackId,
    truncated: bool,
}

/// One thread's time on and off CPU, and its off-CPU samples' weight per stack.
#[derive(Debug, Clone, Default)]
pub(crate) struct OffCpuLog {
    /// Off-CPU samples per stack: how many, and their nanoseconds off CPU.
    pub stacks: BTreeMap<StackId, Weight>,
    /// Nanoseconds blocked: switched out while not runnable (sleeping, reading, waiting
    /// on a lock), until it ran again.
    pub blocked_ns: u64,
    /// How many times it blocked.
    pub waits: u64,
    /// Of the nanoseconds blocked, those without a stack (no context-switch sample).
    pub without_stack_ns: u64,
    /// Nanoseconds waiting for a CPU after being preempted (runnable, not blocked).
    pub runnable_ns: u64,
    /// Preemptions per stack (where the thread was when it was preempted): how many, and
    /// their nanoseconds waiting for a CPU.
    pub runnable_stacks: BTreeMap<StackId, Weight>,
    /// How many times it was preempted.
    pub preemptions: u64,
    /// Nanoseconds on a CPU, between switches (from its first record that says).
    pub on_ns: u64,
    state: State,
    /// The last context-switch sample, until its switch-out record.
    sample: Option<Held>,
}

impl OffCpuLog {
    /// A record says the thread is running at `time` (its exec, or its first sample):
    /// the start of its on-CPU time, if nothing said so before.
    pub(crate) fn running(&mut self, time: u64) {
        if self.state == State::Unknown {
            self.state = State::On(time);
        }
    }

    /// The thread was found blocked at `time` (attaching to a running process, where no
    /// switch record says since when): blocked from then on, without a stack, until it
    /// runs again.
    pub(crate) fn blocked_since(&mut self, time: u64) {
        if self.state == State::Unknown {
            self.state = State::Off { since: time, preempted: false, sample: None };
        }
    }

    /// The context-switch sample taken as the thread leaves a CPU (its switch-out record
    /// follows).
    pub(crate) fn sampled(&mut self, stack: StackId, truncated: bool) {
        self.sample = Some(Held { stack, truncated });
    }

    /// The thread left the CPU at `time`.
    pub(crate) fn switched_out(&mut self, time: u64, preempted: bool) {
        if let State::On(since) = self.state {
            self.on_ns += time.saturating_sub(since);
        }
        if self.state != State::Exited {
            self.state = State::Off { since: time, preempted, sample: self.sample.take() };
        }
        self.sample = None;
    }

    /// The thread runs again at `time`: the interval off CPU ends, and its sample, if
    /// it has one, is returned weighted by the interval (its time the switch-out's).
    pub(crate) fn switched_in(&mut self, time: u64) -> Option<SampleRecord> {
        let ended = self.end_interval(time);
        if self.state != State::Exited {
            self.state = State::On(time);
        }
        ended
    }

    /// The thread ended at `time`.
    pub(crate) fn exited(&mut self, time: u64) {
        if let State::On(since) = self.state {
            self.on_ns += time.saturating_sub(since);
        }
        self.state = State::Exited;
    }

    /// Recording ended at `time`: a thread still on CPU was so until then, and one still
    /// blocked was blocked until then (its sample weighted so, and returned).
    pub(crate) fn window_ended(&mut self, time: u64) -> Option<SampleRecord> {
        if let State::On(since) = self.state {
            self.on_ns += time.saturating_sub(since);
        }
        let ended = self.end_interval(time);
        self.state = State::Exited;
        ended
    }

    fn end_interval(&mut self, time: u64) -> Option<SampleRecord> {
        let State::Off { since, preempted, sample } = self.state else { return None };
        let off = time.saturating_sub(since);
        if preempted {
            self.runnable_ns += off;
            self.preemptions += 1;
            if let Some(held) = sample {
                let w = self.runnable_stacks.entry(held.stack).or_default();
                w.samples += 1;
                w.period += off;
            }
            return None;
        }
        self.blocked_ns += off;
        self.waits += 1;
        let Some(held) = sample else {
            self.without_stack_ns += off;
            return None;
        };
        let w = self.stacks.entry(held.stack).or_default();
        w.samples += 1;
        w.period += off;
        Some(SampleRecord {
            time: since,
            period: off,
            stack: held.stack,
            truncated: held.truncated,
            off_cpu: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_between_switches_are_on_blocked_or_runnable_and_samples_get_their_weight() {
        let stack = StackId::from_raw(7);
        let mut t = OffCpuLog::default();
        t.running(1_000);
        // Blocks at 5 000 with a sample, runs again at 9 000.
        t.sampled(stack, false);
        t.switched_out(5_000, false);
        let s = t.switched_in(9_000).expect("the sample, weighted");
        assert_eq!((s.time, s.period, s.stack, s.off_cpu), (5_000, 4_000, stack, true));
        // Preempted at 10 000, back at 10 500: waiting for a CPU, not blocked.
        t.sampled(stack, false);
        t.switched_out(10_000, true);
        assert_eq!(t.switched_in(10_500), None);
        // Blocks without a sample (it was lost) from 11 000 to 12 000.
        t.switched_out(11_000, false);
        assert_eq!(t.switched_in(12_000), None);
        t.exited(12_250);
        assert_eq!(t.on_ns, 4_000 + 1_000 + 500 + 250);
        assert_eq!((t.blocked_ns, t.waits, t.without_stack_ns), (5_000, 2, 1_000));
        assert_eq!((t.runnable_ns, t.preemptions), (500, 1));
        assert_eq!(t.runnable_stacks[&stack], Weight { samples: 1, period: 500 });
        assert_eq!(t.stacks[&stack], Weight { samples: 1, period: 4_000 });
        // Nothing after its end counts.
        t.switched_out(13_000, false);
        assert_eq!(t.switched_in(14_000), None);
        assert_eq!(t.blocked_ns, 5_000);
    }

    #[test]
    fn a_thread_blocked_when_recording_ends_was_blocked_until_then() {
        let stack = StackId::from_raw(3);
        let mut t = OffCpuLog::default();
        // Already running when recording began: its first switch-out starts the count.
        t.sampled(stack, true);
        t.switched_out(2_000, false);
        let s = t.window_ended(7_000).unwrap();
        assert_eq!((s.period, s.truncated), (5_000, true));
        assert_eq!((t.on_ns, t.blocked_ns), (0, 5_000));
        // Found blocked when recording attached: blocked from then, without a stack.
        let mut v = OffCpuLog::default();
        v.blocked_since(1_000);
        assert_eq!(v.switched_in(4_000), None);
        assert_eq!((v.blocked_ns, v.without_stack_ns, v.waits), (3_000, 3_000, 1));
        let mut u = OffCpuLog::default();
        u.running(100);
        assert_eq!(u.window_ended(600), None);
        assert_eq!(u.on_ns, 500);
    }
}
