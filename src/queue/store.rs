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
    /// taking it: it is older than every stored item, so it goes where the
    /// oldest goes (FIFO: out first again; LIFO: at the bottom).
    fn push_front(&mut self, item: T) {
        self.push(item);
    }
    /// What a getter handed `item` takes when it runs, closer to what
    /// gevent's getter takes from the queue then: FIFO gives `item` (it is
    /// older than every stored item: items are stored only while no getter
    /// waits); LIFO the top of the store, `item` going to the bottom;
    /// smallest-first the smaller of `item` and the smallest stored. (Items
    /// handed to other getters not run yet are not compared: with several
    /// getters waiting, gevent may give them out in another order.)
    fn exchange(&mut self, item: T) -> T {
        item
    }
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

/// Last in, first out (the top is the back; the bottom takes the older
/// items an exchange gives back).
pub(super) struct Stack<T>(VecDeque<T>);

impl<T> Default for Stack<T> {
    fn default() -> Self {
        Stack(VecDeque::new())
    }
}

impl<T> Store<T> for Stack<T> {
    fn push(&mut self, item: T) {
        self.0.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_back()
    }
    fn peek(&self) -> Option<&T> {
        self.0.back()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    /// An item given back is older than every stored one (see
    /// [`Store::exchange`]): it goes to the bottom.
    fn push_front(&mut self, item: T) {
        self.0.push_front(item);
    }
    fn exchange(&mut self, item: T) -> T {
        match self.0.pop_back() {
            Some(top) => {
                self.0.push_front(item);
                top
            }
            None => item,
        }
    }
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
    fn exchange(&mut self, item: T) -> T {
        match self.0.peek_mut() {
            Some(mut top) if top.0 < item => std::mem::replace(&mut top.0, item),
            _ => item,
        }
    }
}
