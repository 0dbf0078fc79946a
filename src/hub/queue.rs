//! The run queue: a FIFO of greenlet keys (and `LINKS` markers).
#![forbid(unsafe_code)]

/// The FIFO run queue: a power-of-two ring of keys with free-running
/// head/tail counters (never reset), so push and pop are a mask and a
/// store.
pub(super) struct RunQueue {
    buf: Vec<usize>,
    head: usize,
    tail: usize,
}

impl RunQueue {
    pub(super) fn new() -> RunQueue {
        RunQueue { buf: vec![0; 64], head: 0, tail: 0 }
    }

    #[inline]
    pub(super) fn push_back(&mut self, key: usize) {
        if self.tail - self.head == self.buf.len() {
            self.grow();
        }
        let mask = self.buf.len() - 1;
        self.buf[self.tail & mask] = key;
        self.tail += 1;
    }

    #[inline]
    pub(super) fn front(&self) -> Option<usize> {
        (self.head != self.tail).then(|| self.buf[self.head & (self.buf.len() - 1)])
    }

    #[inline]
    pub(super) fn pop_front(&mut self) -> Option<usize> {
        let key = self.front()?;
        self.head += 1;
        Some(key)
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        self.tail - self.head
    }

    /// The entries, front first.
    pub(super) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (self.head..self.tail).map(|i| self.buf[i & (self.buf.len() - 1)])
    }

    pub(super) fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    /// Entries ever pushed: the position the next push takes.
    pub(super) fn pushed(&self) -> usize {
        self.tail
    }

    /// Entries ever popped: every entry pushed at a position below this
    /// has left the queue.
    pub(super) fn popped(&self) -> usize {
        self.head
    }

    /// Doubles the ring. The counters keep running (each entry moves to
    /// its position modulo the new size), so positions taken before stay
    /// comparable (`pushed`, `popped`).
    #[cold]
    fn grow(&mut self) {
        let new = self.buf.len() * 2;
        let mut buf = vec![0; new];
        for i in self.head..self.tail {
            buf[i & (new - 1)] = self.buf[i & (self.buf.len() - 1)];
        }
        self.buf = buf;
    }
}

#[cfg(test)]
mod tests {
    use super::RunQueue;

    /// Growing keeps the order and the running positions (`pushed`,
    /// `popped`), which a waiter compares with a position taken earlier.
    #[test]
    fn growing_keeps_order_and_positions() {
        let mut q = RunQueue::new();
        for k in 0..10 {
            q.push_back(k);
        }
        for k in 0..7 {
            assert_eq!(q.pop_front(), Some(k));
        }
        let mark = q.pushed();
        for k in 10..300 {
            q.push_back(k);
        }
        assert_eq!((q.pushed(), q.popped(), q.len()), (300, 7, 293));
        assert!(q.popped() < mark);
        for k in 7..300 {
            assert_eq!(q.pop_front(), Some(k));
        }
        assert!(q.popped() >= mark);
        assert_eq!(q.pop_front(), None);
    }
}
