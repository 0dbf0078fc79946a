//! `Waiters`: how a synchronization primitive parks greenlets on its
//! `WaitList` and wakes them. A wake-up *hands over* something (an event, a
//! permit, an item): the notifier pops the waiter, so a wake never lands on
//! a waiter that has left, and a waiter that is killed or times out after
//! being handed something passes it on (the primitive's `pass_on`), so
//! nothing is lost.

use std::cell::Cell;
use std::fmt;
use std::time::Duration;

use super::sched::{HUB, HUB_BLOCKING};
use super::{with, TimerGuard};
use crate::timer::Action;
use crate::wait::{WaitKey, WaitList};

/// A FIFO of parked greenlets for one primitive.
pub(crate) struct Waiters {
    list: WaitList,
    /// The run queue's push position after the last `notify_all` that
    /// woke anyone (0: none did): until the queue has popped that far,
    /// some greenlet it woke has not run yet.
    woken_until: Cell<usize>,
}

impl fmt::Debug for Waiters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiters").field("len", &self.len()).finish()
    }
}

impl Default for Waiters {
    fn default() -> Self {
        Waiters::new()
    }
}

impl Waiters {
    /// An empty list (a `const fn`: see the hub's idle list).
    pub(crate) const fn new() -> Waiters {
        Waiters { list: WaitList::new(), woken_until: Cell::new(0) }
    }

    /// Greenlets waiting.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// True when nobody waits.
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
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

    /// Waits on this list, woken by every notify, until `done()` holds or
    /// `d` has passed (one bound for all the waits); whether `done()`
    /// holds at the end. (A group's or a joinable queue's `join_timeout`.)
    ///
    /// # Panics
    /// As [`wait`](Self::wait).
    pub(crate) fn wait_until(&self, d: Duration, done: impl Fn() -> bool) -> bool {
        let deadline = crate::timer::after(std::time::Instant::now(), d);
        while !done() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || !self.wait(Some(left), &|| {}) {
                return done();
            }
        }
        true
    }

    /// [`wait`](Self::wait) without a timeout, with nothing to pass on: an
    /// `Event`'s wait, the hot path of a ping-pong, kept small enough to
    /// inline.
    #[inline(always)]
    pub(crate) fn wait_untimed(&self) {
        let (me, key, interrupted) = super::sched::park_enlisted(|nodes, me| self.list.push_back(nodes, me));
        if interrupted {
            self.interrupted(me, key, &|| {});
        }
    }

    /// The slow end of an untimed wait that resumed with an interrupt: the
    /// interrupt is raised with the waiter's place guarded (the unwind leaves
    /// the list, or passes on what was handed); if it must wait (a kill
    /// while the greenlet unwinds in a destructor), the greenlet waits on
    /// until a notifier pops it.
    #[cold]
    #[inline(never)]
    fn interrupted(&self, me: usize, key: WaitKey, pass_on: &dyn Fn()) {
        let mut place = Place { waiters: self, key, pass_on, done: false };
        super::interrupt::raise_pending(me);
        while place.listed() {
            super::park();
        }
        place.done = true;
    }

    /// As [`wait`](Self::wait), leaving `tag` with the waiter for the
    /// notifier (see [`notify_one_tag`](Self::notify_one_tag)).
    pub(crate) fn wait_tagged(&self, tag: usize, timeout: Option<Duration>, pass_on: &dyn Fn()) -> bool {
        let Some(d) = timeout else {
            // Without a timer, only a notifier (which popped us) wakes us
            // normally; kills and timeouts unwind out of the park, and the
            // guard then leaves the list (or passes on what was handed).
            let (me, key, interrupted) = super::sched::park_enlisted(|nodes, me| self.list.push_tagged(nodes, me, tag));
            if interrupted {
                self.interrupted(me, key, pass_on);
            }
            return true;
        };
        let (me, key) = with(|h| {
            let mut core = h.core.borrow_mut();
            let me = core.current;
            assert!(me != HUB, "{HUB_BLOCKING}");
            (me, self.list.push_tagged(&mut core.waits, me, tag))
        });
        let mut place = Place { waiters: self, key, pass_on, done: false };
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
    #[inline(always)]
    pub(crate) fn notify_one_tag(&self) -> Option<usize> {
        // Nobody waits (an uncontended release, a put with no getter): no
        // hub access at all, and no call (the rest is out of line: inlined
        // whole, its register saves were paid on the empty path too).
        if self.list.is_empty() {
            return None;
        }
        self.notify_one_waiting()
    }

    /// [`notify_one_tag`](Self::notify_one_tag) with somebody waiting.
    #[inline(never)]
    fn notify_one_waiting(&self) -> Option<usize> {
        with(|h| {
            let mut core = h.core.borrow_mut();
            let core = &mut *core;
            let next = self.list.pop_first(&mut core.waits, takes_a_notify(&core.hot, &core.greenlets));
            next.map(|(g, tag)| {
                core.unpark(g);
                tag
            })
        })
    }

    /// The tag of the waiter the next [`notify_one_tag`](Self::notify_one_tag)
    /// would serve, which keeps its place.
    pub(crate) fn first_served_tag(&self) -> Option<usize> {
        if self.list.is_empty() {
            return None;
        }
        with(|h| {
            let core = h.core.borrow();
            self.list.find_first(&core.waits, takes_a_notify(&core.hot, &core.greenlets)).map(|(_, _, tag)| tag)
        })
    }

    /// Wakes every greenlet waiting now, in FIFO order; returns how many.
    /// (Inlined: an `Event::set`, half of a ping-pong hop.)
    #[inline(always)]
    pub(crate) fn notify_all(&self) -> usize {
        let Some(seen) = self.list.seen() else {
            return 0;
        };
        // SAFETY: `h` is used within this function only, which never switches.
        let h = unsafe { super::hub_ref() };
        let mut core = h.core.borrow_mut();
        let core = &mut *core;
        let n = self
            .list
            .drain_seen(&mut core.waits, seen, |k| super::sched::unpark(&mut core.hot, &mut core.ready, k, false));
        self.woken_until.set(core.ready.pushed());
        n
    }

    /// Wakes every greenlet waiting now, in FIFO order, from the hub loop
    /// (which holds the core already).
    pub(super) fn notify_all_in(&self, core: &mut super::sched::Core) -> usize {
        let core = &mut *core;
        self.list.drain(&mut core.waits, |k| super::sched::unpark(&mut core.hot, &mut core.ready, k, false))
    }

    /// True once a `notify_all` woke anyone (then a wait that finds its
    /// condition met checks [`behind_woken`](Self::behind_woken)).
    #[inline(always)]
    pub(crate) fn woke_any(&self) -> bool {
        self.woken_until.get() != 0
    }

    /// For a wait that finds its condition met at once: if greenlets the
    /// last [`notify_all`](Self::notify_all) woke have not all run yet,
    /// yields (as woken: a timeout due meanwhile waits a pass), so this one
    /// resumes after them (gevent's waiter on a ready event joins the end
    /// of the notification in progress). Not in a hub callback, which may
    /// not switch.
    #[cold]
    #[inline(never)]
    pub(crate) fn behind_woken(&self) {
        let until = self.woken_until.get();
        if until != 0 && with(|h| h.core.borrow().ready.popped() < until) {
            super::sched::yield_woken_in_greenlet();
        }
    }
}

/// Which waiters a notify serves. Passed over: a waiter about to unwind (an
/// interrupt pending). Served: one blocked in a destructor while it unwinds
/// (a count left by a caught panic is no unwind:
/// `interrupt::is_unwinding`), and one holding only a kill or timeout
/// deferred during an unwind that is over: it resumes, takes it, and
/// passes on what it got (passed over, nothing would ever wake it).
fn takes_a_notify<'a>(
    hot: &'a [super::sched::Hot],
    gcbs: &'a slab::Slab<super::sched::Gcb>,
) -> impl Fn(usize) -> bool + 'a {
    move |g: usize| {
        !hot[g].interrupted
            || (hot[g].unwinding > 0 && std::thread::panicking())
            || gcbs
                .get(g)
                .and_then(|b| b.rare.as_ref())
                .is_some_and(|r| (r.deferred_kill || r.deferred_timeout.is_some()) && r.pending.is_none())
    }
}

/// A waiter's place in the list, left on every exit path.
struct Place<'a> {
    waiters: &'a Waiters,
    key: WaitKey,
    pass_on: &'a dyn Fn(),
    /// Returned normally after being handed something.
    done: bool,
}

impl Place<'_> {
    fn listed(&self) -> bool {
        with(|h| self.waiters.list.contains(&h.core.borrow().waits, self.key))
    }
}

impl Drop for Place<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let left = with(|h| self.waiters.list.remove(&mut h.core.borrow_mut().waits, self.key));
        if !left {
            // Handed something, then unwound (or timed out) before taking it.
            (self.pass_on)();
        }
    }
}
