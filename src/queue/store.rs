//! Where a queue keeps its items: FIFO, LIFO or smallest-first.
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Where a queue keeps its items: the order is the store's.
pub(super) trait Store<T>: Default {
    fn push(&mut self, item: T);
    fn pop(&mut self) -> Option<T>;
    fn peek(&self) -> Option<&T>;
    fn len(&self) -> usize;
    /// Puts back an item that was handed to a getter which left before
    /// taking it (FIFO only, see [`TAKE_WHEN_RUN`](Self::TAKE_WHEN_RUN)):
    /// it was the next one out, so it goes first again.
    fn push_front(&mut self, item: T) {
        self.push(item);
    }
    /// A woken getter takes its item from the store when it runs, not the
    /// one put when it was woken: what gevent's getter does, and for LIFO
    /// and smallest-first the item it takes may differ (a later or smaller
    /// one put meanwhile). FIFO hands the very item over: it is the one the
    /// getter would take anyway.
    const TAKE_WHEN_RUN: bool = false;
}

impl<T> Store<T> for VecDeque<T> {
    fn push(&mut self, item: T) {
        self.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.pop_front()
    }
    fn peek(&self) -> Option<&T> {
        self.front()
    }
    fn len(&self) -> usize {
        VecDeque::len(self)
    }
    fn push_front(&mut self, item: T) {
        VecDeque::push_front(self, item);
    }
}

/// Last in, first out.
pub(super) struct Stack<T>(Vec<T>);

impl<T> Default for Stack<T> {
    fn default() -> Self {
        Stack(Vec::new())
    }
}

impl<T> Store<T> for Stack<T> {
    fn push(&mut self, item: T) {
        self.0.push(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn peek(&self) -> Option<&T> {
        self.0.last()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    const TAKE_WHEN_RUN: bool = true;
}

/// Smallest first, as gevent's `PriorityQueue` (heapq).
pub(super) struct MinHeap<T>(BinaryHeap<Reverse<T>>);

impl<T: Ord> Default for MinHeap<T> {
    fn default() -> Self {
        MinHeap(BinaryHeap::new())
    }
}

impl<T: Ord> Store<T> for MinHeap<T> {
    fn push(&mut self, item: T) {
        self.0.push(Reverse(item));
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop().map(|Reverse(t)| t)
    }
    fn peek(&self) -> Option<&T> {
        self.0.peek().map(|Reverse(t)| t)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    const TAKE_WHEN_RUN: bool = true;
}
