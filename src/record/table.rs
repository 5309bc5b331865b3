//! The recording's stack table, filled while recording: a prefix tree of code locations
//! (each node a location and its caller's node), so that a stack is one index and a
//! sample a few words. Memory grows with the distinct stacks a program has, not with how
//! long it runs; each distinct location appears once, so it is symbolized once.

use std::collections::HashMap;

use super::unwind::Loc;

/// A stack in the table: the node of its leaf. [`StackTable::EMPTY`] is the stack with
/// no frame. Its own type, so that no other index (a frame's, a profile's stack's) is
/// taken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct StackId(u32);

impl StackId {
    /// The id as stored in a sample record (4 bytes).
    pub(crate) fn to_raw(self) -> u32 {
        self.0
    }

    /// The id a sample record stored.
    pub(crate) fn from_raw(raw: u32) -> StackId {
        StackId(raw)
    }

    /// The node's position in the table, for a stack that is not [`StackTable::EMPTY`].
    fn node(self) -> usize {
        self.0 as usize
    }
}

/// Stacks as a prefix tree of locations, shared by every thread of a recording.
#[derive(Debug, Default)]
pub(crate) struct StackTable {
    /// Node i: its location and its caller's node ([`StackTable::EMPTY`] at the root).
    nodes: Vec<(Loc, StackId)>,
    /// The node of each (caller node, location).
    index: HashMap<(StackId, Loc), StackId>,
}

impl StackTable {
    /// The stack with no frame.
    pub(crate) const EMPTY: StackId = StackId(u32::MAX);

    /// The id of the stack `leaf_first` (its leaf first, its root last), added if new.
    pub(crate) fn intern(&mut self, leaf_first: &[Loc]) -> StackId {
        let mut node = Self::EMPTY;
        for &loc in leaf_first.iter().rev() {
            node = match self.index.get(&(node, loc)) {
                Some(&known) => known,
                None => {
                    let id = u32::try_from(self.nodes.len())
                        .ok()
                        .map(StackId)
                        .filter(|&id| id != Self::EMPTY)
                        .expect("fewer than 2^32 - 1 distinct stack nodes");
                    self.nodes.push((loc, node));
                    self.index.insert((node, loc), id);
                    id
                }
            };
        }
        node
    }

    /// The locations of stack `id`, leaf first.
    pub(crate) fn locs(&self, id: StackId) -> impl Iterator<Item = Loc> + '_ {
        let mut node = id;
        std::iter::from_fn(move || {
            let &(loc, caller) = self.nodes.get(node.node())?;
            node = caller;
            Some(loc)
        })
    }

    /// Every distinct location in the table, each once per node that holds it.
    pub(crate) fn all_locs(&self) -> impl Iterator<Item = Loc> + '_ {
        self.nodes.iter().map(|&(loc, _)| loc)
    }

    /// How many nodes the table holds.
    #[cfg(test)]
    pub(crate) fn nodes(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::unwind::ModuleIndex;

    fn loc(module: u32, offset: u64) -> Loc {
        Loc { module: ModuleIndex(module), offset }
    }

    #[test]
    fn stacks_read_back_leaf_first_and_share_their_callers() {
        let mut t = StackTable::default();
        let a = [loc(0, 30), loc(0, 20), loc(1, 10)];
        let b = [loc(0, 31), loc(0, 20), loc(1, 10)];
        let (ia, ib) = (t.intern(&a), t.intern(&b));
        assert_ne!(ia, ib);
        assert_eq!(t.intern(&a), ia, "the same stack, the same id");
        assert_eq!(t.locs(ia).collect::<Vec<_>>(), a);
        assert_eq!(t.locs(ib).collect::<Vec<_>>(), b);
        assert_eq!(t.nodes(), 4, "the two callers are shared");
        // A stack that is another's caller part is a node already there.
        let caller = t.intern(&a[1..]);
        assert_eq!(t.locs(caller).collect::<Vec<_>>(), &a[1..]);
        assert_eq!(t.nodes(), 4);
    }

    #[test]
    fn the_empty_stack_has_no_frames_and_repeats_add_nothing() {
        let mut t = StackTable::default();
        assert_eq!(t.intern(&[]), StackTable::EMPTY);
        assert_eq!(t.locs(StackTable::EMPTY).count(), 0);
        let s = [loc(2, 5), loc(2, 9)];
        for _ in 0..1000 {
            t.intern(&s);
        }
        assert_eq!(t.nodes(), 2);
        assert_eq!(t.all_locs().count(), 2);
    }
}
