//! Timers ordered by (deadline, creation sequence): a binary heap of keys over
//! a slab of entries. The ordering deadline is computed from the hub's loop
//! time (read once per pass, as libev's `ev_now`), so timers armed in one pass
//! fire in (duration, creation) order even if the thread was preempted in
//! between; each timer also keeps its real due time, and fires only once that
//! has passed, so a sleep never ends early. Cancel is O(1) (the entry goes, its heap key goes stale
//! and is skipped); stale keys are compacted away once they outnumber the live
//! ones, so a cancel-heavy program does not grow the heap.
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use slab::Slab;

/// Waits longer than this count as forever: a deadline is at most this far
/// ahead (100 years), so adding any `Duration` (even `Duration::MAX`) to
/// now never overflows.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + d`, with `d` capped at [`FOREVER`].
pub(crate) fn after(now: Instant, d: Duration) -> Instant {
    now + d.min(FOREVER)
}

/// Pauses that double from `next` up to `max`: for waits no readiness
/// ends (a child without a pidfd, a full Unix listener or receiver).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { next: first, max }
    }

    /// Sleeps the next pause, at most `left` (`None`: no bound), and
    /// doubles it.
    ///
    /// # Blocking
    /// For the pause.
    pub(crate) fn sleep(&mut self, left: Option<Duration>) {
        crate::sleep(left.map_or(self.next, |l| l.min(self.next)));
        self.next = (self.next * 2).min(self.max);
    }
}

/// What a timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Make the parked greenlet ready.
    Wake(usize),
    /// Unwind the greenlet out of the `with_timeout` scope with this token.
    Interrupt(usize, u64),
    /// Start a greenlet created with `start_later`.
    Start(usize),
}

/// Names one armed timer; stale once it fired or was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey {
    slot: usize,
    seq: u64,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    due: Instant,
    action: Action,
    /// Passed over by `pop_due`'s `defer` before.
    held: bool,
}

/// The timer queue of one hub.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    /// Due timers passed over by `pop_due`'s `defer`, put back when it ends.
    postponed: Vec<(Instant, u64, usize)>,
    entries: Slab<Entry>,
    seq: u64,
}

impl Timers {
    /// Arms a timer ordered by `deadline` that fires no earlier than `due`
    /// (`due >= deadline`); timers with equal deadlines fire in creation
    /// order, and none fires before all those ordered before it.
    pub(crate) fn add(&mut self, deadline: Instant, due: Instant, action: Action) -> TimerKey {
        self.seq += 1;
        let seq = self.seq;
        let slot = self.entries.insert(Entry { seq, due, action, held: false });
        self.heap.push(Reverse((deadline, seq, slot)));
        TimerKey { slot, seq }
    }

    /// Disarms a timer; a no-op if it already fired or was cancelled.
    pub(crate) fn cancel(&mut self, key: TimerKey) {
        if self.entries.get(key.slot).is_some_and(|e| e.seq == key.seq) {
            self.entries.remove(key.slot);
            if self.heap.len() > 64 && self.heap.len() > 2 * self.entries.len() {
                self.compact();
            }
        }
    }

    /// True while the timer is armed.
    pub(crate) fn armed(&self, key: TimerKey) -> bool {
        self.entries.get(key.slot).is_some_and(|e| e.seq == key.seq)
    }

    /// When the first timer in order is due.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        self.skip_stale();
        self.heap.peek().map(|Reverse((_, _, slot))| self.entries[*slot].due)
    }

    /// A lower bound of every armed timer's due time (the earliest ordering
    /// deadline; a cancelled timer's stale key may make it lower still).
    #[inline]
    pub(crate) fn earliest_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((deadline, _, _))| *deadline)
    }

    /// Number of armed timers.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Removes and returns the action of the earliest timer due at `now`.
    /// Timers for which `defer` says so (given the action and whether it
    /// was deferred before) stay armed, in their place, and come up again at
    /// the next call.
    pub(crate) fn pop_due(&mut self, now: Instant, defer: impl Fn(&Action, bool) -> bool) -> Option<Action> {
        loop {
            self.skip_stale();
            let head = self.heap.peek().copied();
            let Some(Reverse(item @ (_, _, slot))) = head.filter(|Reverse((_, _, s))| self.entries[*s].due <= now)
            else {
                self.heap.extend(self.postponed.drain(..).map(Reverse));
                return None;
            };
            self.heap.pop();
            let entry = &mut self.entries[slot];
            if defer(&entry.action, entry.held) {
                entry.held = true;
                self.postponed.push(item);
                continue;
            }
            return Some(self.entries.remove(slot).action);
        }
    }

    fn skip_stale(&mut self) {
        while let Some(Reverse((_, seq, slot))) = self.heap.peek() {
            if self.entries.get(*slot).is_some_and(|e| e.seq == *seq) {
                return;
            }
            self.heap.pop();
        }
    }

    fn compact(&mut self) {
        let entries = &self.entries;
        self.heap.retain(|Reverse((_, seq, slot))| entries.get(*slot).is_some_and(|e| e.seq == *seq));
    }
}

/// Tells cheaply that a time has surely not come yet: the coarse monotonic
/// clock (a few ns to read, a tick behind) against one precise reading
/// taken together with it. A pass boundary with timers armed asks it first
/// and reads the precise clock (about 20 ns on this VM) only when the
/// earliest timer may be due.
#[derive(Debug)]
pub(crate) struct CoarseClock {
    anchor: Instant,
    anchor_ns: u64,
    /// Twice the coarse resolution: the estimate is off by less than one
    /// resolution either way.
    slack: Duration,
}

impl CoarseClock {
    /// `None` where the kernel has no coarse clock, or only a very coarse
    /// one (then every check would read the precise clock anyway).
    pub(crate) fn new() -> Option<CoarseClock> {
        let res = crate::driver::sys::coarse_monotonic_res()?;
        if res > Duration::from_millis(20) {
            return None;
        }
        let anchor_ns = crate::driver::sys::coarse_monotonic_ns()?;
        Some(CoarseClock { anchor: Instant::now(), anchor_ns, slack: 2 * res })
    }

    /// True when the real now is surely before `t` (false when unsure).
    #[inline]
    pub(crate) fn surely_before(&self, t: Instant) -> bool {
        crate::driver::sys::coarse_monotonic_ns()
            .is_some_and(|ns| self.anchor + Duration::from_nanos(ns.saturating_sub(self.anchor_ns)) + self.slack < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_by_deadline_then_creation_order() {
        let mut t = Timers::default();
        let now = Instant::now();
        t.add(now + Duration::from_millis(2), now + Duration::from_millis(2), Action::Wake(1));
        t.add(now + Duration::from_millis(1), now + Duration::from_millis(1), Action::Wake(2));
        t.add(now + Duration::from_millis(1), now + Duration::from_millis(1), Action::Wake(3));
        let later = now + Duration::from_millis(5);
        let order: Vec<_> = std::iter::from_fn(|| t.pop_due(later, |_, _| false)).collect();
        assert_eq!(order, [Action::Wake(2), Action::Wake(3), Action::Wake(1)]);
    }

    #[test]
    fn cancelled_timers_never_fire_and_keys_go_stale() {
        let mut t = Timers::default();
        let now = Instant::now();
        let a = t.add(now, now, Action::Wake(1));
        let b = t.add(now, now, Action::Wake(2));
        t.cancel(a);
        t.cancel(a);
        assert!(!t.armed(a) && t.armed(b));
        assert_eq!(t.pop_due(now, |_, _| false), Some(Action::Wake(2)));
        assert!(!t.armed(b));
        assert_eq!(t.pop_due(now, |_, _| false), None);
        // The slot of `a` is reused; the old key must not cancel the new timer.
        let c = t.add(now, now, Action::Wake(3));
        t.cancel(a);
        assert!(t.armed(c));
    }

    #[test]
    fn order_by_deadline_but_never_before_due() {
        let mut t = Timers::default();
        let now = Instant::now();
        let ms = Duration::from_millis;
        // Armed in one pass: ordered by loop time, though `b`'s real due
        // time is earlier than `a`'s.
        t.add(now + ms(1), now + ms(3), Action::Wake(1));
        t.add(now + ms(2), now + ms(2), Action::Wake(2));
        assert_eq!(t.pop_due(now + ms(2), |_, _| false), None, "the head is not due yet, so nothing fires");
        assert_eq!(t.pop_due(now + ms(3), |_, _| false), Some(Action::Wake(1)));
        assert_eq!(t.pop_due(now + ms(3), |_, _| false), Some(Action::Wake(2)));
    }

    #[test]
    fn deferred_timers_stay_armed_in_place() {
        let mut t = Timers::default();
        let now = Instant::now();
        let a = t.add(now, now, Action::Interrupt(1, 9));
        t.add(now, now, Action::Wake(2));
        let defer = |a: &Action, _held: bool| matches!(a, Action::Interrupt(..));
        assert_eq!(t.pop_due(now, defer), Some(Action::Wake(2)));
        assert_eq!(t.pop_due(now, defer), None);
        assert!(t.armed(a), "a deferred timer is still armed and cancellable");
        // `defer` learns that it held the timer before.
        assert_eq!(t.pop_due(now, |_, held| !held), Some(Action::Interrupt(1, 9)));
    }

    #[test]
    fn not_due_yet_stays() {
        let mut t = Timers::default();
        let now = Instant::now();
        t.add(now + Duration::from_secs(1), now + Duration::from_secs(1), Action::Start(4));
        assert_eq!(t.pop_due(now, |_, _| false), None);
        assert_eq!(t.next_deadline(), Some(now + Duration::from_secs(1)));
    }

    #[test]
    fn heavy_cancellation_compacts_the_heap() {
        let mut t = Timers::default();
        let now = Instant::now();
        for i in 0..10_000 {
            let k = t.add(now + Duration::from_secs(60), now + Duration::from_secs(60), Action::Wake(i));
            t.cancel(k);
        }
        assert_eq!(t.len(), 0);
        assert!(t.heap.len() <= 130, "heap kept {} stale keys", t.heap.len());
    }

    #[test]
    fn the_coarse_clock_is_never_sure_of_a_time_that_came() {
        let Some(clock) = CoarseClock::new() else { return };
        let now = Instant::now();
        assert!(!clock.surely_before(now), "now has come");
        assert!(!clock.surely_before(now - Duration::from_millis(1)));
        assert!(!clock.surely_before(now + clock.slack / 4), "within the slack: unsure");
        assert!(clock.surely_before(now + Duration::from_secs(5)), "5 s ahead is surely not yet");
    }
}
