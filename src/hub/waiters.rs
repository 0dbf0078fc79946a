//! `Waiters`: how a synchronization primitive parks greenlets on its
//! `WaitList` and wakes them. A wake-up *hands over* something (an event, a
//! permit, an item): the notifier pops the waiter, so a wake never lands on
//! a waiter that has left, and a waiter that is killed or times out after
//! being handed something passes it on (the primitive's `pass_on`), so
//! nothing is lost.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

use super::sched::HUB;
use super::{with, TimerGuard};
use crate::timer::Action;
use crate::wait::{WaitKey, WaitList};

/// A FIFO of parked greenlets for one primitive.
#[derive(Default)]
pub(crate) struct Waiters {
    list: RefCell<WaitList>,
}

impl fmt::Debug for Waiters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiters").field("len", &self.len()).finish()
    }
}

impl Waiters {
    /// Greenlets waiting.
    pub(crate) fn len(&self) -> usize {
        self.list.borrow().len()
    }

    /// Parks the current greenlet at the back of the list until a notifier
    /// hands it something (`true`) or `timeout` passes first (`false`). If it
    /// is both handed something and timed out before it runs, it was handed
    /// something: `true`.
    ///
    /// Killed or timed out by an enclosing scope while waiting, it unwinds
    /// out of the list; if it had been handed something already, `pass_on`
    /// runs (during the unwind) to give it to somebody else.
    ///
    /// # Panics
    /// From a hub callback; in the main greenlet when nothing can wake it.
    pub(crate) fn wait(&self, timeout: Option<Duration>, pass_on: &dyn Fn()) -> bool {
        self.wait_tagged(0, timeout, pass_on)
    }

    /// [`wait`](Self::wait) without a timeout, with nothing to pass on: an
    /// `Event`'s wait, the hot path of a ping-pong, kept small enough to
    /// inline.
    #[inline(always)]
    pub(crate) fn wait_untimed(&self) {
        let mut place = Place { waiters: self, key: None, pass_on: &|| {}, done: false };
        super::sched::park_enlisted(|h, me| {
            let key = self.list.borrow_mut().push_back(&mut h.waiters.borrow_mut(), me);
            place.key = Some(key);
        });
        if std::thread::panicking() {
            place.wait_out_deferred_kill();
        }
        std::mem::forget(place);
    }

    /// As [`wait`](Self::wait), leaving `tag` with the waiter for the
    /// notifier (see [`notify_one_tag`](Self::notify_one_tag)).
    pub(crate) fn wait_tagged(&self, tag: usize, timeout: Option<Duration>, pass_on: &dyn Fn()) -> bool {
        let Some(d) = timeout else {
            // Without a timer, only a notifier (which popped us) wakes us
            // normally; kills and timeouts unwind out of the park, and the
            // guard then leaves the list (or passes on what was handed).
            let mut place = Place { waiters: self, key: None, pass_on, done: false };
            super::sched::park_enlisted(|h, me| {
                let key = self.list.borrow_mut().push_tagged(&mut h.waiters.borrow_mut(), me, tag);
                place.key = Some(key);
                key
            });
            place.wait_out_deferred_kill();
            place.done = true;
            return true;
        };
        let (me, key) = with(|h| {
            let me = h.core.borrow().current;
            assert!(me != HUB, "gevent: a blocking call inside a hub callback (link callbacks must not block)");
            (me, self.list.borrow_mut().push_tagged(&mut h.waiters.borrow_mut(), me, tag))
        });
        let mut place = Place { waiters: self, key: Some(key), pass_on, done: false };
        let timer = TimerGuard::arm(d, Action::Wake(me));
        loop {
            super::park();
            if !place.listed() {
                place.done = true;
                return true;
            }
            if timer.fired() {
                return false;
            }
        }
    }

    /// Hands something to the longest waiter; false if nobody waits.
    #[inline]
    pub(crate) fn notify_one(&self) -> bool {
        self.notify_one_tag().is_some()
    }

    /// Hands something to the longest waiter that will take it, and returns
    /// that waiter's tag. A waiter with an interrupt to take (it is about to
    /// unwind out of the list) is passed over and keeps its place, unless it
    /// is already unwinding (blocked in a destructor: it stays served).
    #[inline]
    pub(crate) fn notify_one_tag(&self) -> Option<usize> {
        with(|h| {
            let mut core = h.core.borrow_mut();
            let eligible = |g: usize| {
                let hot = &core.hot[g];
                !hot.interrupted || hot.unwinding > 0
            };
            let next = self.list.borrow_mut().pop_first(&mut h.waiters.borrow_mut(), eligible);
            next.map(|(g, tag)| {
                core.unpark(g);
                tag
            })
        })
    }

    /// Wakes every greenlet waiting now, in FIFO order; returns how many.
    /// (Inlined: an `Event::set`, half of a ping-pong hop.)
    #[inline(always)]
    pub(crate) fn notify_all(&self) -> usize {
        if self.list.borrow().is_empty() {
            return 0;
        }
        with(|h| {
            let (mut list, mut nodes, mut core) = (self.list.borrow_mut(), h.waiters.borrow_mut(), h.core.borrow_mut());
            let mut n = 0;
            while let Some(k) = list.pop_front(&mut nodes) {
                core.unpark(k);
                n += 1;
            }
            n
        })
    }
}

/// A waiter's place in the list, left on every exit path.
struct Place<'a> {
    waiters: &'a Waiters,
    /// Set once enlisted.
    key: Option<WaitKey>,
    pass_on: &'a dyn Fn(),
    /// Returned normally after being handed something.
    done: bool,
}

impl Place<'_> {
    /// A kill deferred while this greenlet unwinds in a destructor resumes
    /// it without a hand-off: it waits on.
    #[cold]
    fn wait_out_deferred_kill(&self) {
        while std::thread::panicking() && self.listed() {
            super::park();
        }
    }

    fn listed(&self) -> bool {
        let Some(key) = self.key else { return false };
        with(|h| self.waiters.list.borrow().contains(&h.waiters.borrow(), key))
    }
}

impl Drop for Place<'_> {
    #[inline]
    fn drop(&mut self) {
        let Some(key) = self.key.filter(|_| !self.done) else { return };
        let left = with(|h| self.waiters.list.borrow_mut().remove(&mut h.waiters.borrow_mut(), key));
        if !left {
            // Handed something, then unwound (or timed out) before taking it.
            (self.pass_on)();
        }
    }
}
