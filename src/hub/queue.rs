//! The run queue: a FIFO of greenlet keys (and `LINKS` markers).
#![forbid(unsafe_code)]

/// The FIFO run queue: a power-of-two ring of keys with free-running
/// head/tail counters, so push and pop are a mask and a store.
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

    #[cold]
    fn grow(&mut self) {
        let old = self.buf.len();
        let mut buf = vec![0; old * 2];
        for (i, slot) in buf.iter_mut().enumerate().take(old) {
            *slot = self.buf[(self.head + i) & (old - 1)];
        }
        self.buf = buf;
        self.tail -= self.head;
        self.head = 0;
    }
}
