//! The interposer's log replayed as DHAT counts (valgrind's `dhat/dh_main.c`), so that the
//! native census and `--dhat`'s agree figure for figure:
//! - a request of 0 bytes counts as 1;
//! - a `realloc` keeps the block's allocation stack, and counts as one more block of the
//!   new size in the totals, its live bytes moving by the difference;
//! - the heap's peak is the last moment the live bytes equal their maximum, taken when
//!   they are about to fall (a free, a shrinking `realloc`) and at the end; each stack's
//!   figure at the peak is what it held then.
//!
//! Each block also keeps who allocated it (stack, return address, C++ or not), so that
//! every free pairs an allocating side with a freeing one: the ownership census.
//!
//! Under sampling (`--sample-bytes N`) only some allocations have a stack: one of `s`
//! bytes had one with probability `1 - exp(-s/N)`, and counts `1 / that` times in its
//! stack's figures (as tcmalloc and jemalloc scale their samples). The totals, block
//! counts and the ownership census stay exact: every event is in the log.

use std::collections::BTreeMap;

use super::log::{flag, Event, Fast, FastSet};
use super::schema::Figures;

/// One side of a block's life: where it was allocated or freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Side {
    /// Its stack (0: none kept).
    pub(crate) stack: u64,
    /// The return address into the code that called the allocator.
    pub(crate) ip: u64,
    /// Called through C++'s operator new or delete.
    pub(crate) cxx: bool,
}

/// What is wrong with a free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Invalid {
    /// The block was freed before.
    DoubleFree,
    /// No allocation returned the address.
    NeverAllocated,
}

/// Blocks and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Count {
    pub(crate) blocks: u64,
    pub(crate) bytes: u64,
}

/// One stack's figures, weighted (1 each without sampling).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Point {
    bytes: f64,
    blocks: f64,
    at_peak: (f64, f64),
    live: (f64, f64),
    /// The peak last taken when this point was last changed.
    epoch: u64,
}

#[derive(Debug, Clone, Copy)]
struct Block {
    size: u64,
    weight: f64,
    by: Side,
}

/// The replay's result.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    /// Figures per stack (rounded where sampled); stack 0 holds what has none.
    pub(crate) points: BTreeMap<u64, Figures>,
    /// The whole heap, exact.
    pub(crate) totals: Figures,
    /// Frees of known blocks, by (allocating side, freeing side).
    pub(crate) pairs: Fast<(Side, Side), Count>,
    /// Invalid frees, by kind and freeing side.
    pub(crate) invalid: BTreeMap<(Invalid, Side), u64>,
    /// Stacks of allocations that came through C++'s operator new.
    pub(crate) cxx_stacks: FastSet<u64>,
}

type ByAddress<V> = Fast<u64, V>;

#[derive(Default)]
struct Heap {
    points: ByAddress<Point>,
    blocks: ByAddress<Block>,
    /// Blocks `realloc` released from their old address, by token, until they arrive.
    moving: ByAddress<Block>,
    live: (u64, u64),
    max: (u64, u64),
    epoch: u64,
    out: Replayed,
}

impl Heap {
    /// The heap is about to fall: at its maximum, that is the peak (the latest of equal
    /// ones).
    fn falling(&mut self) {
        if self.live.0 == self.max.0 {
            self.epoch += 1;
        }
    }

    fn rising(&mut self) {
        if self.live.0 > self.max.0 {
            self.max = self.live;
        }
    }

    /// The point of `stack`, its figure at the last peak brought up to date.
    fn point(&mut self, stack: u64) -> &mut Point {
        let epoch = self.epoch;
        let p = self.points.entry(stack).or_insert(Point { epoch, ..Point::default() });
        if p.epoch < epoch {
            p.at_peak = p.live;
            p.epoch = epoch;
        }
        p
    }

    fn alloc(&mut self, ptr: u64, size: u64, weight: f64, by: Side) {
        let size = size.max(1);
        self.blocks.insert(ptr, Block { size, weight, by });
        self.live = (self.live.0 + size, self.live.1 + 1);
        self.out.totals.bytes += size;
        self.out.totals.blocks += 1;
        self.rising();
        let p = self.point(by.stack);
        p.bytes += weight * size as f64;
        p.blocks += weight;
        p.live = (p.live.0 + weight * size as f64, p.live.1 + weight);
    }

    fn free(&mut self, ptr: u64, by: Side, flags: u32) {
        let invalid = if flags & flag::DOUBLE_FREE != 0 {
            Some(Invalid::DoubleFree)
        } else if flags & flag::NEVER_ALLOCATED != 0 {
            Some(Invalid::NeverAllocated)
        } else {
            None
        };
        if let Some(kind) = invalid {
            *self.out.invalid.entry((kind, by)).or_default() += 1;
            return;
        }
        // A block allocated before the log began (a forked child's inheritance) is
        // nobody's in this census.
        let Some(block) = self.blocks.remove(&ptr) else { return };
        self.falling();
        self.live = (self.live.0 - block.size, self.live.1 - 1);
        let (size, weight) = (block.size as f64, block.weight);
        let p = self.point(block.by.stack);
        p.live = (p.live.0 - weight * size, p.live.1 - weight);
        let pair = self.out.pairs.entry((block.by, by)).or_default();
        pair.blocks += 1;
        pair.bytes += block.size;
    }

    fn realloc(&mut self, old: u64, new: u64, size: u64, by: Side, token: u64) {
        let block = if token != 0 { self.moving.remove(&token) } else { self.blocks.remove(&old) };
        let Some(mut block) = block else {
            // Its allocation was not seen: counted from here, with no stack.
            self.alloc(new, size, 1.0, Side { stack: 0, ..by });
            return;
        };
        let size = size.max(1);
        if size < block.size {
            self.falling();
        }
        self.live.0 = self.live.0 - block.size + size;
        self.out.totals.bytes += size;
        self.out.totals.blocks += 1;
        self.rising();
        let (weight, delta) = (block.weight, size as f64 - block.size as f64);
        let p = self.point(block.by.stack);
        p.bytes += weight * size as f64;
        p.blocks += weight;
        p.live.0 += weight * delta;
        block.size = size;
        self.blocks.insert(new, block);
    }

    fn finish(mut self) -> Replayed {
        self.falling();
        let stacks: Vec<u64> = self.points.keys().copied().collect();
        for s in stacks {
            self.point(s);
        }
        let round = |x: f64| x.round().max(0.0) as u64;
        for (stack, p) in &self.points {
            self.out.points.insert(
                *stack,
                Figures {
                    bytes: round(p.bytes),
                    blocks: round(p.blocks),
                    bytes_at_peak: round(p.at_peak.0),
                    blocks_at_peak: round(p.at_peak.1),
                    bytes_at_exit: round(p.live.0),
                    blocks_at_exit: round(p.live.1),
                },
            );
        }
        let t = &mut self.out.totals;
        (t.bytes_at_peak, t.blocks_at_peak) = self.max;
        (t.bytes_at_exit, t.blocks_at_exit) = self.live;
        self.out
    }
}

/// The weight of a sampled allocation of `size` bytes when about one per `every` bytes is
/// sampled (`every` 0: all are).
pub(crate) fn weight(size: u64, every: u64) -> f64 {
    if every == 0 {
        return 1.0;
    }
    1.0 / -(-(size.max(1) as f64) / every as f64).exp_m1()
}

/// Replays `events`, sampled one per `sample_bytes` bytes (0: every allocation has its
/// stack).
pub(crate) fn replay(events: impl IntoIterator<Item = Event>, sample_bytes: u64) -> Replayed {
    let mut heap = Heap::default();
    let cxx = |flags: u32| flags & flag::CXX != 0;
    for e in events {
        match e {
            Event::Alloc { ptr, size, stack, ip, flags } => {
                let sampled = flags & flag::SAMPLED != 0;
                let (weight, stack) =
                    if sampled { (weight(size, sample_bytes), stack) } else { (0.0, 0) };
                if cxx(flags) && stack != 0 {
                    heap.out.cxx_stacks.insert(stack);
                }
                heap.alloc(ptr, size, weight, Side { stack, ip, cxx: cxx(flags) });
            }
            Event::Free { ptr, stack, ip, flags } => {
                heap.free(ptr, Side { stack, ip, cxx: cxx(flags) }, flags)
            }
            Event::Release { old, token } => {
                if let Some(block) = heap.blocks.remove(&old) {
                    heap.moving.insert(token, block);
                }
            }
            Event::Realloc { old, new, size, ip, flags, token } => {
                heap.realloc(old, new, size, Side { stack: 0, ip, cxx: cxx(flags) }, token)
            }
            // Guard mode's findings: the lifetimes census reads them.
            Event::Fault { .. } | Event::Slack { .. } | Event::Mark { .. } => {}
        }
    }
    heap.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(ptr: u64, size: u64, stack: u64) -> Event {
        Event::Alloc { ptr, size, stack, ip: stack * 10, flags: flag::SAMPLED }
    }

    fn free(ptr: u64) -> Event {
        Event::Free { ptr, stack: 9, ip: 90, flags: 0 }
    }

    fn figures(b: u64, k: u64, pb: u64, pk: u64, eb: u64, ek: u64) -> Figures {
        Figures {
            bytes: b,
            blocks: k,
            bytes_at_peak: pb,
            blocks_at_peak: pk,
            bytes_at_exit: eb,
            blocks_at_exit: ek,
        }
    }

    #[test]
    fn the_peak_is_the_last_of_equal_maxima_and_each_stack_holds_its_share() {
        let events = [
            alloc(1, 100, 1),
            alloc(2, 50, 2),
            free(1), // peak 150: stack 1 holds 100, stack 2 50
            alloc(3, 100, 2),
            free(3),        // 150 again, the later peak: stack 2 holds 150
            alloc(4, 0, 1), // counts as 1 byte
        ];
        let r = replay(events, 0);
        assert_eq!(r.points[&1], figures(101, 2, 0, 0, 1, 1));
        assert_eq!(r.points[&2], figures(150, 2, 150, 2, 50, 1));
        assert_eq!(r.totals, figures(251, 4, 150, 2, 51, 2));
    }

    #[test]
    fn a_peak_at_the_end_is_taken_at_the_end() {
        let r = replay([alloc(1, 10, 1), free(1), alloc(2, 30, 2)], 0);
        assert_eq!(r.points[&1], figures(10, 1, 0, 0, 0, 0));
        assert_eq!(r.points[&2], figures(30, 1, 30, 1, 30, 1));
    }

    #[test]
    fn realloc_keeps_the_stack_and_counts_a_block_of_the_new_size() {
        let grow = Event::Realloc { old: 1, new: 2, size: 300, ip: 5, flags: 0, token: 0 };
        let shrink = Event::Realloc { old: 2, new: 2, size: 20, ip: 5, flags: 0, token: 0 };
        let r = replay([alloc(1, 100, 1), grow, shrink], 0);
        assert_eq!(r.points[&1], figures(420, 3, 300, 1, 20, 1));
        assert_eq!(r.totals, figures(420, 3, 300, 1, 20, 1));
    }

    #[test]
    fn frees_pair_their_sides_and_invalid_ones_are_counted_apart() {
        let double = Event::Free { ptr: 1, stack: 7, ip: 70, flags: flag::DOUBLE_FREE };
        let r = replay([alloc(1, 8, 1), free(1), double, free(42)], 0);
        let by = Side { stack: 1, ip: 10, cxx: false };
        let freed = Side { stack: 9, ip: 90, cxx: false };
        assert_eq!(r.pairs[&(by, freed)], Count { blocks: 1, bytes: 8 });
        let at = Side { stack: 7, ip: 70, cxx: false };
        assert_eq!(r.invalid.get(&(Invalid::DoubleFree, at)), Some(&1));
        // An address the census never saw allocated, unflagged (inherited): ignored.
        assert_eq!(r.pairs.len(), 1);
    }

    #[test]
    fn sampled_allocations_are_scaled_and_the_totals_stay_exact() {
        let every = 1000;
        let unsampled = Event::Alloc { ptr: 2, size: 500, stack: 5, ip: 1, flags: 0 };
        let r = replay([alloc(1, 1000, 1), unsampled], every);
        let w = weight(1000, every);
        assert!((w - 1.0 / (1.0 - (-1.0f64).exp())).abs() < 1e-12);
        assert_eq!(r.points[&1].bytes, (1000.0 * w).round() as u64);
        assert_eq!(r.points[&0].bytes, 0);
        assert_eq!((r.totals.bytes, r.totals.blocks), (1500, 2));
        assert_eq!(weight(10, 0), 1.0);
    }
}
