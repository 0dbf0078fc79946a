//! `WaitList`: the one list of parked greenlets. A FIFO whose nodes live in a
//! `slab::Slab`, linked by index, each stamped with a generation so that the
//! key a waiter holds goes stale once its node is popped: removing by a stale
//! key is a no-op, never the removal of somebody else's node.

use slab::Slab;

const NIL: usize = usize::MAX;

/// Names one waiter's node; stale after it was popped or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaitKey {
    slot: usize,
    generation: u64,
}

#[derive(Debug)]
struct Node {
    greenlet: usize,
    generation: u64,
    prev: usize,
    next: usize,
}

/// A FIFO of parked greenlets (by hub key) with O(1) removal by [`WaitKey`].
#[derive(Debug)]
pub(crate) struct WaitList {
    nodes: Slab<Node>,
    head: usize,
    tail: usize,
    generation: u64,
}

impl Default for WaitList {
    fn default() -> Self {
        WaitList { nodes: Slab::new(), head: NIL, tail: NIL, generation: 0 }
    }
}

impl WaitList {
    /// Appends a waiter.
    pub(crate) fn push_back(&mut self, greenlet: usize) -> WaitKey {
        self.generation += 1;
        let generation = self.generation;
        let slot = self.nodes.insert(Node { greenlet, generation, prev: self.tail, next: NIL });
        match self.tail {
            NIL => self.head = slot,
            t => self.nodes[t].next = slot,
        }
        self.tail = slot;
        WaitKey { slot, generation }
    }

    /// Takes the longest-waiting greenlet.
    pub(crate) fn pop_front(&mut self) -> Option<usize> {
        if self.head == NIL {
            return None;
        }
        Some(self.unlink(self.head))
    }

    /// Removes a waiter by key; false if it was no longer waiting.
    pub(crate) fn remove(&mut self, key: WaitKey) -> bool {
        if !self.contains(key) {
            return false;
        }
        self.unlink(key.slot);
        true
    }

    /// True while the waiter named by `key` is still in the list.
    pub(crate) fn contains(&self, key: WaitKey) -> bool {
        self.nodes.get(key.slot).is_some_and(|n| n.generation == key.generation)
    }

    /// Number of waiters.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when nobody waits.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn unlink(&mut self, slot: usize) -> usize {
        let node = self.nodes.remove(slot);
        match node.prev {
            NIL => self.head = node.next,
            p => self.nodes[p].next = node.next,
        }
        match node.next {
            NIL => self.tail = node.prev,
            n => self.nodes[n].prev = node.prev,
        }
        node.greenlet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order() {
        let mut w = WaitList::default();
        for g in [5, 6, 7] {
            w.push_back(g);
        }
        assert_eq!(w.pop_front(), Some(5));
        assert_eq!(w.pop_front(), Some(6));
        assert_eq!(w.pop_front(), Some(7));
        assert_eq!(w.pop_front(), None);
        assert!(w.is_empty());
    }

    #[test]
    fn removal_from_middle_head_and_tail() {
        let mut w = WaitList::default();
        let keys: Vec<_> = (0..5).map(|g| w.push_back(g)).collect();
        assert!(w.remove(keys[2]));
        assert!(w.remove(keys[0]));
        assert!(w.remove(keys[4]));
        assert_eq!(w.len(), 2);
        assert_eq!(w.pop_front(), Some(1));
        assert_eq!(w.pop_front(), Some(3));
        assert_eq!(w.pop_front(), None);
    }

    #[test]
    fn stale_keys_do_not_remove_new_waiters() {
        let mut w = WaitList::default();
        let a = w.push_back(1);
        assert_eq!(w.pop_front(), Some(1));
        let b = w.push_back(2); // reuses a's slot
        assert!(!w.remove(a), "a stale key removes nothing");
        assert!(w.contains(b));
        assert!(w.remove(b));
        assert!(!w.remove(b));
    }
}
