//! `WaitList`: the one list of parked greenlets. A FIFO whose nodes live in
//! the hub's single `slab::Slab` (`WaitNodes`), linked by index, each stamped
//! with a generation, so a list costs no allocation of its own (the slab's
//! slots are reused, so a steady state allocates nothing). The oldest waiter
//! of a list that was empty sits inline in the list itself, so the common
//! single waiter (a join, a lock hand-off) touches no slab at all. The key
//! a waiter holds goes stale once its node is popped: removing by a stale
//! key is a no-op, never the removal of somebody else's node.
#![forbid(unsafe_code)]

use std::cell::Cell;

use slab::Slab;

const NIL: usize = usize::MAX;

/// The `slot` of a key naming a list's inline waiter.
const INLINE: usize = usize::MAX;

/// Names one waiter's node; stale after it was popped or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaitKey {
    slot: usize,
    generation: u64,
}

#[derive(Debug)]
struct Node {
    greenlet: usize,
    /// The waiter's own word (a queue's slot for its item).
    tag: usize,
    generation: u64,
    prev: usize,
    next: usize,
}

/// The node storage shared by every `WaitList` of one hub.
///
/// The waiter count is derived: every push takes the next generation, every
/// pop or removal bumps `left`, so the waiters are `generation - left`. That
/// is one counter bump per push and one per pop (a separate count would add
/// one more to each, on the path of every wake and wait).
///
/// `repr(C)` keeps the two counters apart: adjacent, the compiler bumps them
/// with one 16-byte load and store, and that load stalls on the 8-byte
/// store just before it (a wake followed by a wait, as in every
/// ping-pong), which cost a third of an Event hop.
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct WaitNodes {
    generation: u64,
    nodes: Slab<Node>,
    /// Waiters that left a list (popped or removed), inline ones included.
    left: u64,
}

impl WaitNodes {
    #[inline]
    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// Counts a waiter leaving its list.
    #[inline]
    fn leave(&mut self) {
        self.left += 1;
    }

    /// Waiters across all lists.
    pub(crate) fn len(&self) -> usize {
        (self.generation - self.left) as usize
    }
}

/// A list's state as [`WaitList::seen`] read it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen {
    first: usize,
    nodes: bool,
}

/// A FIFO of parked greenlets (by hub key) with O(1) removal by [`WaitKey`].
///
/// Its fields are `Cell`s: a list is touched only inside one hub access (with
/// the nodes borrowed mutably), never across a switch, so it needs no borrow
/// flag of its own.
///
/// Invariant: the inline waiter, when present, is the oldest: a waiter goes
/// inline only into a list that is empty.
#[derive(Debug)]
pub(crate) struct WaitList {
    first: Cell<usize>,
    first_tag: Cell<usize>,
    first_generation: Cell<u64>,
    head: Cell<usize>,
    tail: Cell<usize>,
    len: Cell<usize>,
}

impl Default for WaitList {
    fn default() -> Self {
        WaitList::new()
    }
}

impl WaitList {
    /// An empty list (a `const fn`: a list can live in a thread-local
    /// without a destructor).
    pub(crate) const fn new() -> WaitList {
        WaitList {
            first: Cell::new(NIL),
            first_tag: Cell::new(0),
            first_generation: Cell::new(0),
            head: Cell::new(NIL),
            tail: Cell::new(NIL),
            len: Cell::new(0),
        }
    }

    /// Appends a waiter.
    #[inline]
    pub(crate) fn push_back(&self, n: &mut WaitNodes, greenlet: usize) -> WaitKey {
        self.push_tagged(n, greenlet, 0)
    }

    /// Appends a waiter carrying `tag` (returned by `pop_first`).
    #[inline]
    pub(crate) fn push_tagged(&self, n: &mut WaitNodes, greenlet: usize, tag: usize) -> WaitKey {
        let generation = n.next_generation();
        if self.is_empty() {
            self.first.set(greenlet);
            self.first_tag.set(tag);
            self.first_generation.set(generation);
            return WaitKey { slot: INLINE, generation };
        }
        let tail = self.tail.get();
        let slot = n.nodes.insert(Node { greenlet, tag, generation, prev: tail, next: NIL });
        match tail {
            NIL => self.head.set(slot),
            t => n.nodes[t].next = slot,
        }
        self.tail.set(slot);
        self.len.set(self.len.get() + 1);
        WaitKey { slot, generation }
    }

    /// Takes every waiter, oldest first, handing each to `wake`; returns how
    /// many.
    #[inline(always)]
    pub(crate) fn drain(&self, n: &mut WaitNodes, wake: impl FnMut(usize)) -> usize {
        self.seen().map_or(0, |seen| self.drain_seen(n, seen, wake))
    }

    /// The list's state, read once; `None` when nobody waits. For a caller
    /// that checks emptiness before it borrows the nodes (to skip the hub
    /// when nobody waits), then drains with [`drain_seen`](Self::drain_seen)
    /// without reading the list again.
    #[inline(always)]
    pub(crate) fn seen(&self) -> Option<Seen> {
        let seen = Seen { first: self.first.get(), nodes: self.len.get() != 0 };
        (seen.first != NIL || seen.nodes).then_some(seen)
    }

    /// [`drain`](Self::drain) with the state [`seen`](Self::seen) read just
    /// before (nothing may have touched the list since). The inline waiter
    /// (the common lone one) costs no loop.
    #[inline(always)]
    pub(crate) fn drain_seen(&self, n: &mut WaitNodes, seen: Seen, mut wake: impl FnMut(usize)) -> usize {
        let mut count = 0;
        if seen.first != NIL {
            self.first.set(NIL);
            n.leave();
            wake(seen.first);
            count = 1;
        }
        if seen.nodes {
            // The inline slot is empty now: only nodes are left.
            while self.head.get() != NIL {
                wake(self.unlink(n, self.head.get()));
                count += 1;
            }
        }
        count
    }

    /// Takes the longest-waiting greenlet that `eligible` accepts, with its
    /// tag; the ones it passes over keep their places.
    pub(crate) fn pop_first(&self, n: &mut WaitNodes, eligible: impl Fn(usize) -> bool) -> Option<(usize, usize)> {
        let (slot, greenlet, tag) = self.find_first(n, eligible)?;
        self.take_out(n, slot);
        Some((greenlet, tag))
    }

    /// The longest-waiting greenlet that `eligible` accepts: its node's
    /// slot ([`INLINE`] for the inline waiter), its greenlet's hub key and
    /// its tag; the list is left as it is.
    pub(crate) fn find_first(&self, n: &WaitNodes, eligible: impl Fn(usize) -> bool) -> Option<(usize, usize, usize)> {
        let first = self.first.get();
        if first != NIL && eligible(first) {
            return Some((INLINE, first, self.first_tag.get()));
        }
        let mut slot = self.head.get();
        while slot != NIL {
            let node = &n.nodes[slot];
            if eligible(node.greenlet) {
                return Some((slot, node.greenlet, node.tag));
            }
            slot = node.next;
        }
        None
    }

    /// Removes a waiter by key; false if it was no longer waiting.
    #[inline]
    pub(crate) fn remove(&self, n: &mut WaitNodes, key: WaitKey) -> bool {
        if !self.contains(n, key) {
            return false;
        }
        self.take_out(n, key.slot);
        true
    }

    /// Takes the waiter in `slot` ([`INLINE`]: the inline one) out of the
    /// list.
    fn take_out(&self, n: &mut WaitNodes, slot: usize) {
        if slot == INLINE {
            n.leave();
            self.first.set(NIL);
        } else {
            self.unlink(n, slot);
        }
    }

    /// True while the waiter named by `key` is still in this list.
    #[inline]
    pub(crate) fn contains(&self, n: &WaitNodes, key: WaitKey) -> bool {
        if key.slot == INLINE {
            return self.first.get() != NIL && self.first_generation.get() == key.generation;
        }
        n.nodes.get(key.slot).is_some_and(|node| node.generation == key.generation)
    }

    /// Number of waiters.
    pub(crate) fn len(&self) -> usize {
        self.len.get() + (self.first.get() != NIL) as usize
    }

    /// True when nobody waits.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.seen().is_none()
    }

    fn unlink(&self, n: &mut WaitNodes, slot: usize) -> usize {
        n.leave();
        let node = n.nodes.remove(slot);
        match node.prev {
            NIL => self.head.set(node.next),
            p => n.nodes[p].next = node.next,
        }
        match node.next {
            NIL => self.tail.set(node.prev),
            x => n.nodes[x].prev = node.prev,
        }
        self.len.set(self.len.get() - 1);
        node.greenlet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest waiter, as a notifier takes it.
    fn pop(w: &WaitList, n: &mut WaitNodes) -> Option<usize> {
        w.pop_first(n, |_| true).map(|(g, _)| g)
    }

    #[test]
    fn fifo_order() {
        let mut n = WaitNodes::default();
        let w = WaitList::default();
        for g in [5, 6, 7] {
            w.push_back(&mut n, g);
        }
        assert_eq!(pop(&w, &mut n), Some(5));
        assert_eq!(pop(&w, &mut n), Some(6));
        assert_eq!(pop(&w, &mut n), Some(7));
        assert_eq!(pop(&w, &mut n), None);
        assert!(w.is_empty());
        assert_eq!(n.len(), 0);
    }

    #[test]
    fn the_inline_waiter_stays_the_oldest() {
        let mut n = WaitNodes::default();
        let w = WaitList::default();
        let a = w.push_back(&mut n, 1); // inline
        w.push_back(&mut n, 2);
        assert!(w.remove(&mut n, a));
        w.push_back(&mut n, 3); // not inline: the list is not empty
        assert_eq!(w.len(), 2);
        assert_eq!(pop(&w, &mut n), Some(2));
        assert_eq!(pop(&w, &mut n), Some(3));
        let b = w.push_back(&mut n, 4); // inline again
        assert_eq!(n.nodes.len(), 0, "a lone waiter takes no node");
        assert_eq!(n.len(), 1);
        assert!(w.contains(&n, b));
        assert_eq!(pop(&w, &mut n), Some(4));
        assert!(!w.remove(&mut n, b), "a popped inline key is stale");
        assert!(!w.remove(&mut n, a));
    }

    #[test]
    fn removal_from_middle_head_and_tail() {
        let mut n = WaitNodes::default();
        let w = WaitList::default();
        let keys: Vec<_> = (0..5).map(|g| w.push_back(&mut n, g)).collect();
        assert!(w.remove(&mut n, keys[2]));
        assert!(w.remove(&mut n, keys[0]));
        assert!(w.remove(&mut n, keys[4]));
        assert_eq!(w.len(), 2);
        assert_eq!(pop(&w, &mut n), Some(1));
        assert_eq!(pop(&w, &mut n), Some(3));
        assert_eq!(pop(&w, &mut n), None);
    }

    #[test]
    fn lists_share_nodes_without_mixing() {
        let mut n = WaitNodes::default();
        let (a, b) = (WaitList::default(), WaitList::default());
        a.push_back(&mut n, 1);
        b.push_back(&mut n, 2);
        a.push_back(&mut n, 3);
        assert_eq!(pop(&b, &mut n), Some(2));
        assert_eq!(pop(&a, &mut n), Some(1));
        assert_eq!(pop(&a, &mut n), Some(3));
        assert!(a.is_empty() && b.is_empty());
    }

    #[test]
    fn stale_keys_do_not_remove_new_waiters() {
        let mut n = WaitNodes::default();
        let w = WaitList::default();
        let a = w.push_back(&mut n, 1);
        assert_eq!(pop(&w, &mut n), Some(1));
        let b = w.push_back(&mut n, 2); // reuses a's slot
        assert!(!w.remove(&mut n, a), "a stale key removes nothing");
        assert!(w.contains(&n, b));
        assert!(w.remove(&mut n, b));
        assert!(!w.remove(&mut n, b));
    }
}
