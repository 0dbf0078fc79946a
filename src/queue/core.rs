//! The core of every queue: a store of items, a getter list and a putter
//! list. Hand-offs are direct and exact, as gevent's `_unlock`: a put with a
//! getter waiting writes the item into *that* getter's slot; a slot that
//! frees in a full queue moves the oldest waiting putter's item into the
//! store at once. So nobody can barge past a woken waiter, items keep their
//! order, and an item handed to a getter that is killed or times out before
//! it runs goes on to the next getter (or back to the front of the store).
//! A waiter about to unwind (an interrupt pending) is passed over.
//!
//! LIFO and smallest-first stores (`Store::TAKE_WHEN_RUN`) promise a woken
//! getter *an* item instead: the item stays stored, and the getter takes the
//! store's next one when it runs, as gevent's getter does (so a smaller or
//! later item put meanwhile comes first); a promise whose getter leaves goes
//! to the next getter. Promised items are not taken by `get_nowait`.
//!
//! Invariants: items are stored only while no getter waits; a putter waits
//! only while the queue is full; every waiter's tag is its slot in `slots`.
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use slab::Slab;

use super::store::Store;
use super::{Empty, Full};
use crate::hub::Waiters;

/// The shared state of one queue.
pub(super) struct Core<T, S> {
    items: RefCell<S>,
    /// `None`: unbounded; `Some(0)`: a rendezvous (`Channel`).
    pub(super) maxsize: Option<usize>,
    pub(super) getters: Waiters,
    pub(super) putters: Waiters,
    /// Items in flight: handed to a getter, or waiting with their putter.
    slots: RefCell<Slab<Option<T>>>,
    /// Slots of getters handed an item they have not taken yet, in the
    /// order they were handed (so in the order of their items).
    handed: RefCell<VecDeque<usize>>,
    closed: Cell<bool>,
    /// Items that ever entered the queue (a `JoinableQueue`'s tasks).
    placed: Cell<u64>,
}

/// The tag of a getter-list waiter that only peeks (a getter's tag is its
/// slot, never this high): woken as an item comes, it takes nothing, and
/// the item goes on to the next getter; it looks when it runs.
const PEEK: usize = usize::MAX;

/// A waiter's slot, freed on every exit path (a kill included).
struct Slot<'a, T, S> {
    core: &'a Core<T, S>,
    key: usize,
}

impl<T, S> Drop for Slot<'_, T, S> {
    fn drop(&mut self) {
        let left = self.core.slots.borrow_mut().try_remove(self.key);
        drop(left);
    }
}

impl<T, S> Core<T, S> {
    /// Items that ever entered the queue: put at once, or moved in from a
    /// waiting putter (whether or not that putter resumes normally).
    pub(super) fn placed(&self) -> u64 {
        self.placed.get()
    }
}

impl<T, S: Store<T>> Core<T, S> {
    pub(super) fn new(maxsize: Option<usize>) -> Core<T, S> {
        Core {
            items: RefCell::new(S::default()),
            maxsize,
            getters: Waiters::default(),
            putters: Waiters::default(),
            slots: RefCell::new(Slab::new()),
            handed: RefCell::new(VecDeque::new()),
            closed: Cell::new(false),
            placed: Cell::new(0),
        }
    }

    fn enter(&self) {
        self.placed.set(self.placed.get() + 1);
    }

    /// Items in the queue: stored, or handed to getters that have not run
    /// yet (gevent's `qsize`).
    pub(super) fn len(&self) -> usize {
        if S::TAKE_WHEN_RUN {
            // Promised items stay in the store until taken.
            return self.items.borrow().len();
        }
        self.items.borrow().len() + self.handed.borrow().len()
    }

    /// Stored items not promised to a woken getter.
    fn unpromised(&self) -> usize {
        let stored = self.items.borrow().len();
        if S::TAKE_WHEN_RUN {
            stored - self.handed.borrow().len()
        } else {
            stored
        }
    }

    /// Items stored (not handed to a getter).
    pub(super) fn stored(&self) -> usize {
        self.items.borrow().len()
    }

    /// Room counts handed items too (they are still in the queue).
    pub(super) fn has_room(&self) -> bool {
        match self.maxsize {
            None => true,
            Some(max) => self.len() < max,
        }
    }

    fn slot(&self, item: Option<T>) -> Slot<'_, T, S> {
        Slot { core: self, key: self.slots.borrow_mut().insert(item) }
    }

    fn take_slot(&self, key: usize) -> Option<T> {
        self.slots.borrow_mut().get_mut(key).and_then(Option::take)
    }

    /// Gives `item` to the getter whose slot is `key` (just popped): into
    /// its slot, or (`TAKE_WHEN_RUN`) into the store with a promise of one
    /// item, taken when the getter runs.
    fn hand(&self, key: usize, item: T) {
        if S::TAKE_WHEN_RUN {
            self.items.borrow_mut().push(item);
        } else {
            self.slots.borrow_mut()[key] = Some(item);
        }
        self.handed.borrow_mut().push_back(key);
    }

    /// Gives `item` to the longest-waiting getter, else stores it (at the
    /// front when it is one a getter could not take).
    fn offer(&self, item: T, front: bool) {
        if let Some(key) = self.next_getter() {
            self.hand(key, item);
        } else if front {
            self.items.borrow_mut().push_front(item);
        } else {
            self.items.borrow_mut().push(item);
        }
    }

    /// Pops the longest-waiting getter that takes an item; the peekers
    /// waiting before it are woken on the way (in gevent they run, and
    /// look, before that getter takes the item: here they run first, in
    /// FIFO order, and look then).
    #[inline]
    fn next_getter(&self) -> Option<usize> {
        match self.getters.notify_one_tag()? {
            PEEK => self.next_getter_after_peekers(),
            key => Some(key),
        }
    }

    /// [`next_getter`](Self::next_getter) once a peeker was woken: the
    /// rest of the line, up to a getter.
    #[cold]
    #[inline(never)]
    fn next_getter_after_peekers(&self) -> Option<usize> {
        loop {
            let tag = self.getters.notify_one_tag()?;
            if tag != PEEK {
                return Some(tag);
            }
        }
    }

    /// Takes the oldest waiting putter's item (it is done waiting).
    fn take_from_putter(&self) -> Option<T> {
        let key = self.putters.notify_one_tag()?;
        self.take_slot(key)
    }

    /// After an item left the store: waiting putters move theirs in while
    /// there is room.
    fn admit_putters(&self) {
        while self.has_room() {
            match self.take_from_putter() {
                Some(item) => {
                    self.enter();
                    self.offer(item, false);
                }
                None => return,
            }
        }
    }

    /// An item if one is there now: stored, or, for a rendezvous, from a
    /// waiting putter. (A bounded queue's putters can wait while its store
    /// is empty, when its items are all handed to getters: theirs enter in
    /// turn, as those getters take theirs.)
    #[inline]
    pub(super) fn try_get(&self) -> Option<T> {
        // Items promised to woken getters are theirs.
        let stored = if S::TAKE_WHEN_RUN {
            if self.unpromised() > 0 {
                self.items.borrow_mut().pop()
            } else {
                None
            }
        } else {
            self.items.borrow_mut().pop()
        };
        match stored {
            Some(item) => {
                if !self.putters.is_empty() {
                    self.admit_putters();
                }
                Some(item)
            }
            None if self.maxsize == Some(0) => {
                let item = self.take_from_putter()?;
                self.enter();
                Some(item)
            }
            None => None,
        }
    }

    /// A copy of the queue's front item: the one handed to the getter
    /// woken first, if it has not run yet, else the store's next (promised
    /// or not: it counts in `len`, as in gevent's `qsize`).
    pub(super) fn peek(&self) -> Option<T>
    where
        T: Clone,
    {
        if !S::TAKE_WHEN_RUN {
            if let Some(&key) = self.handed.borrow().front() {
                return self.slots.borrow()[key].clone();
            }
        }
        self.items.borrow().peek().cloned()
    }

    /// A copy of the item a `try_get` of a rendezvous would take now: one
    /// left stored (the getter it was handed to left), else the oldest
    /// waiting putter's (one about to unwind is passed over, as the
    /// `try_get` would).
    pub(super) fn peek_handoff(&self) -> Option<T>
    where
        T: Clone,
    {
        if let Some(item) = self.items.borrow().peek() {
            return Some(item.clone());
        }
        let key = self.putters.first_served_tag()?;
        self.slots.borrow().get(key).and_then(Option::clone)
    }

    /// A copy of the front item, waiting at most `timeout` (`None`: without
    /// bound) for one to come. A peeker waits among the getters, in FIFO
    /// order, and looks when it runs: an item put is seen by every peeker
    /// that waited before the getter that takes it.
    pub(super) fn peek_wait(&self, timeout: Option<Duration>) -> Result<T, Empty>
    where
        T: Clone,
    {
        if let Some(item) = self.peek() {
            return Ok(item);
        }
        let deadline = timeout.map(|d| crate::timer::after(Instant::now(), d));
        let mut left = timeout;
        loop {
            // Nothing to pass on: a peeker takes nothing.
            if !self.getters.wait_tagged(PEEK, left, &|| {}) {
                return Err(Empty);
            }
            // Woken by an item (or by `close`, with none): look; with
            // nothing there, wait on for what is left of the time.
            if let Some(item) = self.peek() {
                return Ok(item);
            }
            left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|d| d.is_zero()) {
                return Err(Empty);
            }
        }
    }

    /// Puts without waiting; gives the item back when there is no room.
    pub(super) fn try_put(&self, item: T) -> Result<(), T> {
        if self.maxsize == Some(0) {
            // A rendezvous has no room: only a getter that takes the item
            // now (one about to unwind is passed over, and then nobody is).
            // (A `Channel` has no `peek`: its getters all take.)
            return match self.getters.notify_one_tag() {
                Some(key) => {
                    self.enter();
                    self.hand(key, item);
                    Ok(())
                }
                None => Err(item),
            };
        }
        if self.has_room() {
            self.enter();
            self.offer(item, false);
            return Ok(());
        }
        Err(item)
    }

    /// A woken getter takes what it was handed (`None`: woken by `close`).
    fn collect(&self, key: usize) -> Option<T> {
        let mut handed = self.handed.borrow_mut();
        let promised = handed.iter().position(|&k| k == key).map(|i| handed.remove(i)).is_some();
        drop(handed);
        let item = if S::TAKE_WHEN_RUN {
            // What gevent's getter takes when it runs: the store's next.
            promised.then(|| self.items.borrow_mut().pop().expect("a promised item is stored"))
        } else {
            self.take_slot(key)
        };
        // The item has left the queue: a slot may be free for a putter.
        self.admit_putters();
        item
    }

    /// A getter handed an item left before taking it: the items handed after
    /// it each move one getter up, so every getter still gets them in order,
    /// and the last one goes to the next getter (or back to the store).
    fn pass_on_item(&self, key: usize) {
        if S::TAKE_WHEN_RUN {
            // The promise goes to the next getter; the item stays stored.
            let mut handed = self.handed.borrow_mut();
            let Some(i) = handed.iter().position(|&k| k == key) else { return };
            handed.remove(i);
            drop(handed);
            if let Some(next) = self.next_getter() {
                self.handed.borrow_mut().push_back(next);
            }
            return;
        }
        let Some(mut carry) = self.take_slot(key) else { return };
        let mut handed = self.handed.borrow_mut();
        let Some(i) = handed.iter().position(|&k| k == key) else { return };
        handed.remove(i);
        let later: Vec<usize> = handed.iter().skip(i).copied().collect();
        drop(handed);
        for k in later {
            let mut slots = self.slots.borrow_mut();
            let next = slots[k].replace(carry).expect("a handed getter holds its item");
            drop(slots);
            carry = next;
        }
        self.offer(carry, true);
    }

    /// Waits as a getter: `Ok(None)` when woken by `close`.
    fn wait_get(&self, timeout: Option<Duration>) -> Result<Option<T>, Empty> {
        let slot = self.slot(None);
        let key = slot.key;
        if self.getters.wait_tagged(key, timeout, &|| self.pass_on_item(key)) {
            return Ok(self.collect(key));
        }
        Err(Empty)
    }

    #[inline]
    pub(super) fn get(&self, timeout: Option<Duration>) -> Result<T, Empty> {
        match self.try_get() {
            Some(item) => Ok(item),
            None => self.get_waiting(timeout),
        }
    }

    /// [`get`](Self::get) with no item there now: waits as a getter.
    #[inline(never)]
    fn get_waiting(&self, timeout: Option<Duration>) -> Result<T, Empty> {
        let deadline = timeout.map(|d| crate::timer::after(Instant::now(), d));
        let mut left = timeout;
        loop {
            if let Some(item) = self.wait_get(left)? {
                return Ok(item);
            }
            if let Some(item) = self.try_get() {
                return Ok(item);
            }
            // Woken by `close` with no item: a plain get waits on, a timed
            // one for what is left of its time.
            left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|d| d.is_zero()) {
                return Err(Empty);
            }
        }
    }

    #[inline]
    pub(super) fn put(&self, item: T, timeout: Option<Duration>) -> Result<(), Full<T>> {
        // Nobody waits to get and there is room: the item is stored (what
        // `try_put` ends in then, without its checks for the other cases).
        if self.getters.is_empty() && self.maxsize != Some(0) && self.has_room() {
            self.enter();
            self.items.borrow_mut().push(item);
            return Ok(());
        }
        self.put_slow(item, timeout)
    }

    /// [`put`](Self::put) with a getter waiting or a bound to respect.
    #[inline(never)]
    fn put_slow(&self, item: T, timeout: Option<Duration>) -> Result<(), Full<T>> {
        let item = match self.try_put(item) {
            Ok(()) => {
                if self.maxsize == Some(0) {
                    // Handed to a waiting getter: as in gevent, the putter
                    // resumes after the getter ran (not in a hub callback,
                    // which may not switch).
                    crate::hub::yield_woken_in_greenlet();
                }
                return Ok(());
            }
            Err(item) => item,
        };
        if timeout == Some(Duration::ZERO) {
            return Err(Full(item));
        }
        let slot = self.slot(Some(item));
        // A woken putter's item was already stored: nothing to pass on.
        if self.putters.wait_tagged(slot.key, timeout, &|| {}) {
            return Ok(());
        }
        let item = self.take_slot(slot.key).expect("a putter that timed out still has its item");
        Err(Full(item))
    }

    /// The next item, or `None` once the queue is closed and drained.
    pub(super) fn next_until_closed(&self) -> Option<T> {
        loop {
            if let Some(item) = self.try_get() {
                return Some(item);
            }
            if self.closed.get() {
                return None;
            }
            if let Ok(Some(item)) = self.wait_get(None) {
                return Some(item);
            }
        }
    }

    /// Marks the queue closed and wakes every getter waiting (with no item).
    pub(super) fn close(&self) {
        self.closed.set(true);
        while self.getters.notify_one() {}
    }
}
