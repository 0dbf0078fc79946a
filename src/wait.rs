//! `WaitList`: the one list of parked greenlets. A FIFO whose nodes live in
//! the hub's single `slab::Slab` (`WaitNodes`), linked by index, each stamped
//! with a generation, so a list is three words and costs no allocation of its
//! own (the slab's slots are reused, so a steady state allocates nothing). The key a waiter holds goes stale once its node is popped: removing
//! by a stale key is a no-op, never the removal of somebody else's node.
#![forbid(unsafe_code)]

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

/// The node storage shared by every `WaitList` of one hub.
#[derive(Debug, Default)]
pub(crate) struct WaitNodes {
    nodes: Slab<Node>,
    generation: u64,
}

impl WaitNodes {
    /// Nodes in use across all lists.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }
}

/// A FIFO of parked greenlets (by hub key) with O(1) removal by [`WaitKey`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitList {
    head: usize,
    tail: usize,
    len: usize,
}

impl Default for WaitList {
    fn default() -> Self {
        WaitList { head: NIL, tail: NIL, len: 0 }
    }
}

impl WaitList {
    /// Appends a waiter.
    pub(crate) fn push_back(&mut self, n: &mut WaitNodes, greenlet: usize) -> WaitKey {
        n.generation += 1;
        let generation = n.generation;
        let slot = n.nodes.insert(Node { greenlet, generation, prev: self.tail, next: NIL });
        match self.tail {
            NIL => self.head = slot,
            t => n.nodes[t].next = slot,
        }
        self.tail = slot;
        self.len += 1;
        WaitKey { slot, generation }
    }

    /// Takes the longest-waiting greenlet.
    pub(crate) fn pop_front(&mut self, n: &mut WaitNodes) -> Option<usize> {
        if self.head == NIL {
            return None;
        }
        Some(self.unlink(n, self.head))
    }

    /// Removes a waiter by key; false if it was no longer waiting.
    pub(crate) fn remove(&mut self, n: &mut WaitNodes, key: WaitKey) -> bool {
        if !Self::contains(n, key) {
            return false;
        }
        self.unlink(n, key.slot);
        true
    }

    /// True while the waiter named by `key` is still in its list.
    pub(crate) fn contains(n: &WaitNodes, key: WaitKey) -> bool {
        n.nodes.get(key.slot).is_some_and(|node| node.generation == key.generation)
    }

    /// Number of waiters.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when nobody waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn unlink(&mut self, n: &mut WaitNodes, slot: usize) -> usize {
        let node = n.nodes.remove(slot);
        match node.prev {
            NIL => self.head = node.next,
            p => n.nodes[p].next = node.next,
        }
        match node.next {
            NIL => self.tail = node.prev,
            x => n.nodes[x].prev = node.prev,
        }
        self.len -= 1;
        node.greenlet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order() {
        let mut n = WaitNodes::default();
        let mut w = WaitList::default();
        for g in [5, 6, 7] {
            w.push_back(&mut n, g);
        }
        assert_eq!(w.pop_front(&mut n), Some(5));
        assert_eq!(w.pop_front(&mut n), Some(6));
        assert_eq!(w.pop_front(&mut n), Some(7));
        assert_eq!(w.pop_front(&mut n), None);
        assert!(w.is_empty());
        assert_eq!(n.len(), 0);
    }

    #[test]
    fn removal_from_middle_head_and_tail() {
        let mut n = WaitNodes::default();
        let mut w = WaitList::default();
        let keys: Vec<_> = (0..5).map(|g| w.push_back(&mut n, g)).collect();
        assert!(w.remove(&mut n, keys[2]));
        assert!(w.remove(&mut n, keys[0]));
        assert!(w.remove(&mut n, keys[4]));
        assert_eq!(w.len(), 2);
        assert_eq!(w.pop_front(&mut n), Some(1));
        assert_eq!(w.pop_front(&mut n), Some(3));
        assert_eq!(w.pop_front(&mut n), None);
    }

    #[test]
    fn lists_share_nodes_without_mixing() {
        let mut n = WaitNodes::default();
        let (mut a, mut b) = (WaitList::default(), WaitList::default());
        a.push_back(&mut n, 1);
        b.push_back(&mut n, 2);
        a.push_back(&mut n, 3);
        assert_eq!(b.pop_front(&mut n), Some(2));
        assert_eq!(a.pop_front(&mut n), Some(1));
        assert_eq!(a.pop_front(&mut n), Some(3));
        assert!(a.is_empty() && b.is_empty());
    }

    #[test]
    fn stale_keys_do_not_remove_new_waiters() {
        let mut n = WaitNodes::default();
        let mut w = WaitList::default();
        let a = w.push_back(&mut n, 1);
        assert_eq!(w.pop_front(&mut n), Some(1));
        let b = w.push_back(&mut n, 2); // reuses a's slot
        assert!(!w.remove(&mut n, a), "a stale key removes nothing");
        assert!(WaitList::contains(&n, b));
        assert!(w.remove(&mut n, b));
        assert!(!w.remove(&mut n, b));
    }
}
