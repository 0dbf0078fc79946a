//! The scheduler core: control blocks, the FIFO run queue and the switch.
//! `park` suspends the current greenlet and switches *directly* to the next
//! ready one; only when none is ready (or a link callback is next) does
//! control go to the hub loop, which runs callbacks, fires timers and sleeps
//! until the next deadline. A greenlet gets its stack on its first run, so a
//! spawned-but-unrun greenlet costs one allocation and no stack.

use std::any::Any;
use std::time::{Duration, Instant};

use slab::Slab;

pub(super) use super::queue::RunQueue;

use super::{with, Hub, HubJob, TimerGuard};
use crate::arch::Context;
use crate::greenlet::{self, GreenletRef, StartRecord};
use crate::stack::Stack;
use crate::timer::{Action, Timers};
use crate::wait::WaitNodes;

/// The pseudo key of the hub's own context.
pub(super) const HUB: usize = usize::MAX;

/// Run-queue marker: run the next entry of `Hub::links` from the hub.
pub(super) const LINKS: usize = usize::MAX - 1;

/// Scheduling state of one greenlet. Legal transitions:
/// - `New -> Scheduled | Queued`, `Scheduled -> Queued`;
/// - `Queued -> Running` (first run: the stack is assigned), or `Queued ->
///   New` when no stack can be mapped (a hub job then ends it, unrun);
/// - `Running -> Suspended | Yielded` (park | yield);
/// - `Suspended -> Ready` (unpark), `Ready | Yielded -> Running`;
/// - `Queued -> Zombie` (killed before it ever ran; the slot is freed when
///   its run-queue entry comes up).
///
/// Death removes the control block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    New,
    Scheduled,
    Queued,
    Running,
    Suspended,
    /// Woken by `unpark`: its wait is over, it waits for its turn.
    Ready,
    /// Yielded: in the run queue, but still in the middle of its work.
    Yielded,
    Zombie,
}

/// Why a parked greenlet must unwind instead of resuming normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Interrupt {
    Kill,
    Timeout(u64),
    /// The main greenlet can never be woken (message in `Hub::loop_exit`).
    LoopExit,
}

/// The hot part of a greenlet's control block, in a dense array beside the
/// slab (same key): everything a switch decision reads.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hot {
    pub(super) state: State,
    /// An interrupt is waiting in `Gcb::pending`.
    pub(super) interrupted: bool,
    /// Unwinds (kills, timeouts, panics) the greenlet started that were not
    /// caught yet, as far as the runtime sees them (`std::thread::panicking()`
    /// alone cannot tell: its count is the thread's, shared by every greenlet).
    pub(super) unwinding: u8,
    /// The context's slots (`arch::Context::at`); null until the first run.
    pub(super) slots: *mut usize,
}

/// The cold part of a greenlet's control block.
pub(super) struct Gcb {
    pub(super) stack: Option<Stack>,
    /// Requested stack size; 0 = the hub's default.
    pub(super) stack_size: u32,
    /// Runs the closure on the first switch in (see `greenlet::run`).
    pub(super) entry: unsafe fn(usize) -> !,
    pub(super) shared: GreenletRef,
    /// What few greenlets need, boxed on first use to keep the block small.
    pub(super) rare: Option<Box<Rare>>,
}

/// Per-greenlet state most greenlets never use.
#[derive(Default)]
pub(super) struct Rare {
    pub(super) pending: Option<Interrupt>,
    /// A kill that came while the greenlet was unwinding (raising it then
    /// would abort): taken at a later resume, once the unwind is over. Kept
    /// apart from `pending` so a timeout opened inside the destructor still
    /// fires meanwhile.
    pub(super) deferred_kill: bool,
    /// The token of a `with_timeout` scope whose timer fired while the
    /// greenlet (seemingly) unwound: raised at a later resume once the
    /// unwind is over, if the scope is still open then (an unwind the user
    /// caught inside it); the scope forgets it when it ends.
    pub(super) deferred_timeout: Option<u64>,
    pub(super) locals: Vec<(u64, Option<Box<dyn Any>>)>,
    pub(super) start_timer: Option<crate::timer::TimerKey>,
}

const _: () = assert!(std::mem::size_of::<Gcb>() <= 56, "a control block is moved on every spawn and death");

impl Gcb {
    /// The rare part, created on first use.
    pub(super) fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }
}

/// The scheduling state behind one `RefCell`: one borrow per decision.
pub(super) struct Core {
    pub(super) greenlets: Slab<Gcb>,
    pub(super) hot: Vec<Hot>,
    pub(super) ready: RunQueue,
    /// Run-queue entries left in the current pass; at 0 the timers are
    /// checked before the next entry, so a yield loop never starves them.
    pass_left: usize,
    pub(super) current: usize,
    pub(super) main_key: usize,
    /// The nodes of every wait list (behind the same borrow as the run
    /// queue: a wake-up pops a waiter and readies it in one access).
    pub(crate) waits: WaitNodes,
    /// The armed timers (checked at every pass boundary, in the same access).
    pub(super) timers: Timers,
    /// Greenlets holding a kill or timeout deferred while they unwound
    /// (`interrupt::defer`): at a pass boundary with no unwind in progress
    /// on the thread, each is interrupted again, so an interrupt whose
    /// unwind the user caught (or whose greenlet only looked unwinding
    /// while another one was) is not lost while it blocks.
    pub(super) deferred: Vec<usize>,
}

/// A decided switch: the slots of the context to suspend and of the one to
/// resume, and the word passed (the start record on a first run, else 1 if
/// an interrupt is pending).
pub(super) type Plan = (*mut usize, *mut usize, usize);

/// The main greenlet's entry point, which nothing calls: it runs on the
/// thread's own stack from the start.
///
/// # Safety
/// None needed (it only panics); `unsafe` to fit the entry type.
unsafe fn never_run(_: usize) -> ! {
    unreachable!("the main greenlet has no entry point")
}

impl Core {
    pub(super) fn new(main_slots: *mut usize, main: GreenletRef) -> Core {
        let mut core = Core {
            greenlets: Slab::new(),
            hot: Vec::new(),
            ready: RunQueue::new(),
            pass_left: 0,
            current: 0,
            main_key: 0,
            waits: WaitNodes::default(),
            timers: Timers::default(),
            deferred: Vec::new(),
        };
        let key = core.insert(main.clone(), 0, never_run);
        core.hot[key] = Hot { state: State::Running, interrupted: false, unwinding: 0, slots: main_slots };
        main.0.key.set(key);
        core.current = key;
        core.main_key = key;
        core
    }

    pub(super) fn insert(&mut self, shared: GreenletRef, stack_size: u32, entry: unsafe fn(usize) -> !) -> usize {
        let gcb = Gcb { stack: None, stack_size, entry, shared, rare: None };
        let key = self.greenlets.insert(gcb);
        let hot = Hot { state: State::New, interrupted: false, unwinding: 0, slots: std::ptr::null_mut() };
        if key == self.hot.len() {
            self.hot.push(hot);
        } else {
            self.hot[key] = hot;
        }
        key
    }

    #[inline]
    pub(super) fn state(&self, key: usize) -> State {
        self.hot[key].state
    }

    #[inline]
    pub(super) fn set_state(&mut self, key: usize, state: State) {
        self.hot[key].state = state;
    }

    /// Makes a suspended greenlet ready; anything else is left alone (a
    /// greenlet is queued at most once).
    #[inline]
    pub(super) fn unpark(&mut self, key: usize) {
        unpark(&mut self.hot, &mut self.ready, key, false);
    }

    /// [`unpark`](Self::unpark) for an I/O completion: among thousands of
    /// connections the greenlet's context is likely cold, so fetching it
    /// starts now, while the greenlets ahead of it run. (Not for wake-ups
    /// between running greenlets, whose contexts are hot: there the
    /// prefetch only costs.)
    #[inline]
    pub(super) fn unpark_io(&mut self, key: usize) {
        unpark(&mut self.hot, &mut self.ready, key, true);
    }

    /// Interrupts again each greenlet still holding a kill (or else a
    /// timeout) deferred during an unwind, once no unwind is in progress on
    /// the thread (see `deferred`).
    #[cold]
    #[inline(never)]
    fn retry_deferred(&mut self) {
        if std::thread::panicking() {
            return; // some greenlet still unwinds: at a later pass
        }
        for key in std::mem::take(&mut self.deferred) {
            let Some(r) = self.greenlets.get_mut(key).and_then(|g| g.rare.as_mut()) else { continue };
            let why = match (r.deferred_kill, r.deferred_timeout.take()) {
                (true, _) => Interrupt::Kill,
                (false, Some(token)) => Interrupt::Timeout(token),
                (false, None) => continue,
            };
            self.interrupt(key, why);
        }
    }

    /// Asks greenlet `key` to unwind at its blocking point.
    pub(super) fn interrupt(&mut self, key: usize, why: Interrupt) {
        // A timer of a greenlet that is gone (a `with_timeout` scope left
        // open in a raw coroutine that was never resumed) interrupts nobody.
        let Some(gcb) = self.greenlets.get_mut(key) else { return };
        let pending = &mut gcb.rare().pending;
        // A kill outranks a timeout; the first timeout wins over later ones
        // (the timers hold a second one back a pass), except that of two
        // timeouts the outer scope's (the older token) wins: its unwind
        // leaves the inner scope too (a deferred one, retried in the pass
        // an inner one fired).
        let outer = |p: &Option<Interrupt>| match (*p, why) {
            (Some(Interrupt::Timeout(p)), Interrupt::Timeout(t)) => crate::timeout::older(t, p),
            _ => false,
        };
        if pending.is_none() || why == Interrupt::Kill || outer(pending) {
            *pending = Some(why);
        }
        self.hot[key].interrupted = true;
        self.unpark(key);
    }

    #[inline]
    pub(super) fn enqueue_new(&mut self, key: usize) {
        self.hot[key].state = State::Queued;
        self.ready.push_back(key);
    }

    /// Takes the next run-queue entry (for the hub), freeing zombies.
    pub(super) fn pop(&mut self) -> Option<usize> {
        loop {
            let key = self.ready.pop_front()?;
            self.pass_left = self.pass_left.saturating_sub(1);
            if key != LINKS && self.hot[key].state == State::Zombie {
                reap(self, key);
                continue;
            }
            return Some(key);
        }
    }
}

impl Hub {
    /// Fires every due timer (their greenlets join the back of the queue).
    #[inline]
    pub(super) fn fire_timers(&self, core: &mut Core) {
        if core.timers.len() != 0 {
            self.fire_due_timers(core);
        }
    }

    #[inline(never)]
    fn fire_due_timers(&self, core: &mut Core) {
        if let (Some(clock), Some(first)) = (&self.coarse, core.timers.earliest_deadline()) {
            if clock.surely_before(first) {
                return;
            }
        }
        let now = Instant::now();
        // A timeout whose greenlet was already woken (its wait completed, it
        // is about to run) waits one pass: in gevent the woken greenlet runs
        // first, and leaving the scope cancels the timeout. One pass only:
        // woken again at the next check, it ran meanwhile and stayed in the
        // scope (else a greenlet whose waits complete every pass could never
        // time out). A greenlet that merely yielded is `Yielded`, and
        // interruptible. A timeout for a greenlet that already has an
        // interrupt to take waits too, so nested scopes due together each
        // get theirs, in turn (a deferred kill does not count: it waits for
        // the unwind to end, and a scope opened in the destructor must time
        // out meanwhile).
        let wait_a_pass = |hot: &[Hot], gcbs: &Slab<Gcb>, a: &Action, held: bool| match *a {
            Action::Interrupt(k, _) => {
                (hot[k].state == State::Ready && !held)
                    || gcbs.get(k).and_then(|g| g.rare.as_ref()).is_some_and(|r| r.pending.is_some())
            }
            _ => false,
        };
        while let Some(action) = core.timers.pop_due(now, |a, held| wait_a_pass(&core.hot, &core.greenlets, a, held)) {
            match action {
                Action::Wake(k) => core.unpark(k),
                Action::Interrupt(k, token) => core.interrupt(k, Interrupt::Timeout(token)),
                Action::Start(k) => {
                    core.greenlets[k].rare().start_timer = None;
                    core.enqueue_new(k)
                }
            }
        }
    }

    /// Starts a new pass when the current one is used up.
    #[inline]
    pub(super) fn pass_boundary(&self, core: &mut Core) {
        if core.pass_left == 0 {
            self.now_fresh.set(false);
            if !core.ready.is_empty() && self.driver.busy() {
                // Once per pass, I/O is collected without blocking, so a
                // yield loop never starves it. (With nothing ready, the hub
                // polls next anyway, blocking.)
                self.driver.poll(Some(Duration::ZERO), &mut |g| core.unpark_io(g));
            }
            self.fire_timers(core);
            if !core.deferred.is_empty() {
                core.retry_deferred();
            }
            core.pass_left = core.ready.len();
        }
    }

    /// The next context to run: the head of the run queue if it is a
    /// greenlet, else the hub (which runs link callbacks, timers, idling).
    #[inline(always)]
    pub(super) fn next_target(&self, core: &mut Core) -> usize {
        self.pass_boundary(core);
        loop {
            match core.ready.front() {
                Some(k) if k != LINKS => {
                    core.ready.pop_front();
                    core.pass_left = core.pass_left.saturating_sub(1);
                    if core.hot[k].state != State::Zombie {
                        return k;
                    }
                    reap(core, k);
                }
                _ => return HUB,
            }
        }
    }

    /// Whom the suspending greenlet `me` (whose slots are `from`) switches
    /// to. `None`: `me` itself is next, no switch needed.
    ///
    /// [`next_target`](Self::next_target) and [`plan_to`](Self::plan_to)
    /// fused, so the chosen greenlet's control block is looked up once: this
    /// is every park's and every yield's path.
    #[inline(always)]
    fn plan_from(&self, core: &mut Core, me: usize, from: *mut usize) -> Option<Plan> {
        self.pass_boundary(core);
        loop {
            let k = match core.ready.front() {
                Some(k) if k != LINKS => k,
                _ => {
                    core.current = HUB;
                    return Some((from, self.hub_slots, self.hub_data));
                }
            };
            core.ready.pop_front();
            core.pass_left = core.pass_left.saturating_sub(1);
            let h = &mut core.hot[k];
            match h.state {
                State::Zombie => reap(core, k),
                _ if k == me => {
                    h.state = State::Running;
                    return None;
                }
                State::Queued => {
                    // None: it could not start (set aside for the hub).
                    if let Some((to, data)) = self.first_run(core, k) {
                        core.current = k;
                        return Some((from, to, data));
                    }
                }
                _ => {
                    h.state = State::Running;
                    core.current = k;
                    return Some((from, h.slots, h.interrupted as usize));
                }
            }
        }
    }

    /// Marks `to` running and returns its slots and the word to pass; on a
    /// first run the greenlet's stack is taken from the pool and its frame
    /// laid out. `None`: `to` could not start (no stack could be mapped); it
    /// was set aside to die from the hub, and nothing else changed.
    #[inline(always)]
    pub(super) fn plan_to(&self, core: &mut Core, to: usize) -> Option<(*mut usize, usize)> {
        if to == HUB {
            core.current = to;
            return Some((self.hub_slots, self.hub_data));
        }
        let h = &mut core.hot[to];
        if h.state == State::Queued {
            let plan = self.first_run(core, to)?;
            core.current = to;
            return Some(plan);
        }
        h.state = State::Running;
        core.current = to;
        Some((h.slots, h.interrupted as usize))
    }

    /// Gives a greenlet its stack and start record, and marks it running;
    /// returns its slots and the record. If no stack can be had, the
    /// greenlet goes back to `New` (it never ran) and a job for the hub
    /// ends it with the error; `None`.
    #[cold]
    #[inline(never)]
    fn first_run(&self, core: &mut Core, key: usize) -> Option<(*mut usize, usize)> {
        let g = &mut core.greenlets[key];
        let size = if g.stack_size == 0 { self.default_stack.get() } else { g.stack_size as usize };
        let stack = match self.take_stack(size) {
            Ok(stack) => stack,
            Err(e) => {
                let msg = format!("gevent: greenlet '{}' cannot start: no stack of {size} bytes: {e}", g.shared.name());
                // Said now: it may be killed before the hub's job ends it.
                report!("{msg}");
                self.links.borrow_mut().push_back(HubJob::StartFailed(g.shared.clone(), msg));
                core.hot[key].state = State::New;
                core.ready.push_back(LINKS);
                return None;
            }
        };
        let (ctx, data) = greenlet::new_context(&stack, StartRecord::new(g.entry, &g.shared));
        g.stack = Some(stack);
        let h = &mut core.hot[key];
        h.state = State::Running;
        h.slots = ctx.sp_slot;
        Some((ctx.sp_slot, data))
    }
}

/// [`Core::unpark`] on the two fields it touches, for callers that hold
/// another part of the core (a wait list's nodes) at the same time;
/// `prefetch` starts fetching the woken greenlet's context (see
/// [`Core::unpark_io`]).
#[inline(always)]
pub(super) fn unpark(hot: &mut [Hot], ready: &mut RunQueue, key: usize, prefetch: bool) {
    let h = &mut hot[key];
    if h.state == State::Suspended {
        h.state = State::Ready;
        if prefetch {
            crate::arch::prefetch(h.slots);
        }
        ready.push_back(key);
    }
}

/// Frees the slot of a greenlet killed before it ever ran.
#[cold]
#[inline(never)]
fn reap(core: &mut Core, key: usize) {
    core.greenlets.remove(key);
}

/// Makes the planned switch (outside any borrow); returns the word passed.
#[inline(always)]
pub(super) fn switch((from, to, data): Plan) -> usize {
    // SAFETY: `from` holds the slots of the running context (the hub's
    // `current` before the switch was planned), `to` those of a suspended
    // or fresh one whose stack is alive (owned by its control block or the
    // hub); no RefCell borrow is held here.
    unsafe { Context::at(from).switch_to(Context::at(to), data) }
}

/// [`switch`] away from a greenlet that is dead (see
/// [`Context::leave_to`]); never returns.
pub(super) fn switch_for_good((from, to, data): Plan) -> ! {
    // SAFETY: as in `switch`; `from` is never resumed (its control block
    // is gone and its stack back in the pool).
    unsafe { Context::at(from).leave_to(Context::at(to), data) };
    unreachable!("a dead greenlet was resumed")
}

/// After a switch back: `flag` is 1 when an interrupt is pending.
#[inline(always)]
fn resumed(me: usize, flag: usize) {
    if flag != 0 {
        super::interrupt::raise_pending(me);
    }
}

pub(crate) const HUB_BLOCKING: &str = "gevent: a blocking call inside a hub callback (link callbacks must not block)";

/// The one body of [`park`], [`park_enlisted`] and [`yield_now`]: marks the
/// current greenlet `state`, runs `before` (given the core and its key,
/// inside the same hub access), switches to the next one and returns the
/// key, what `before` returned and the word it resumed with (1: an
/// interrupt is pending).
///
/// Always inlined, so no `ret` crosses the switch: returning from an
/// out-of-line body to another greenlet's call site defeats the return
/// predictor (two greenlets yielding from different places took 20.6 ns
/// per yield that way, 5.2 ns inlined).
#[inline(always)]
fn suspend<K>(state: State, before: impl FnOnce(&mut Core, usize) -> K) -> (usize, K, usize) {
    let (me, k, plan) = {
        // SAFETY: `h` is dropped at the end of this block, before the switch.
        let h = unsafe { super::hub_ref() };
        let mut core = h.core.borrow_mut();
        let me = core.current;
        assert!(me != HUB, "{HUB_BLOCKING}");
        let hot = &mut core.hot[me];
        hot.state = state;
        let from = hot.slots;
        let k = before(&mut core, me);
        (me, k, h.plan_from(&mut core, me, from))
    };
    let flag = match plan {
        Some(p) => switch(p),
        None => with(|h| h.core.borrow().hot[me].interrupted as usize),
    };
    (me, k, flag)
}

/// Suspends the current greenlet until `unpark` makes it ready.
///
/// Returns normally when woken; unwinds (kill, timeout) or panics (nothing
/// can ever wake the main greenlet) when interrupted.
///
/// # Panics
/// When called from a hub callback (link callbacks run in the hub).
#[inline(always)]
pub(crate) fn park() {
    let (me, (), flag) = suspend(State::Suspended, |_, _| ());
    resumed(me, flag);
}

/// Enlists the current greenlet with `enlist` (given the wait nodes and its
/// key, inside the same hub access) and parks it. Returns the greenlet's
/// key, what `enlist` returned and whether it resumed with an interrupt to
/// take (then the caller leaves its wait list and calls
/// `interrupt::raise_pending`). The wait-list fast path: one borrow before
/// the switch, no guard.
///
/// # Panics
/// As [`park`]; `enlist` must not switch.
#[inline(always)]
pub(crate) fn park_enlisted<K>(enlist: impl FnOnce(&mut WaitNodes, usize) -> K) -> (usize, K, bool) {
    let (me, k, flag) = suspend(State::Suspended, |core, me| enlist(&mut core.waits, me));
    (me, k, flag != 0)
}

/// Yields: the current greenlet goes to the back of the run queue and every
/// greenlet ready before it runs first.
#[inline(always)]
pub(crate) fn yield_now() {
    let (me, (), flag) = suspend(State::Yielded, |core, me| core.ready.push_back(me));
    resumed(me, flag);
}

/// Yields as a greenlet that was just woken: to the back of the run queue,
/// marked `Ready`, so a timeout due meanwhile waits a pass (see
/// `fire_timers`) and the greenlet returns first (leaving the scope
/// cancels it): for a call whose work is done and that yields only to let
/// others run first (a `Channel::put` that handed its item over, a wait on
/// a set event behind the greenlets its `set` woke), as gevent resumes
/// them before its timers. A kill still lands. In a hub callback (which
/// may not switch) it returns at once.
pub(crate) fn yield_woken_in_greenlet() {
    yield_in_greenlet_as(State::Ready);
}

/// Yields as [`yield_now`], unless called from a hub callback (which may
/// not switch): there, returns at once. For the I/O budget, which a link
/// callback's immediate I/O must not turn into a panic.
pub(crate) fn yield_in_greenlet() {
    yield_in_greenlet_as(State::Yielded);
}

/// The body of both: to the back of the run queue marked `state`, unless
/// in a hub callback.
#[cold]
#[inline(never)]
fn yield_in_greenlet_as(state: State) {
    if with(|h| h.core.borrow().current) != HUB {
        let (me, (), flag) = suspend(state, |core, me| core.ready.push_back(me));
        resumed(me, flag);
    }
}

/// Sleeps the current greenlet (see `gevent::sleep`). Always inlined, as
/// `yield_now` inside it.
#[inline(always)]
pub(crate) fn sleep(d: Duration) {
    if d.is_zero() {
        yield_now()
    } else {
        sleep_timed(d)
    }
}

fn sleep_timed(d: Duration) {
    let timer = TimerGuard::arm(d, Action::Wake(current_key()));
    while !timer.fired() {
        park();
    }
}

/// The key of the running greenlet.
pub(crate) fn current_key() -> usize {
    with(|h| h.core.borrow().current)
}

/// A handle to the running greenlet (the main greenlet included).
///
/// # Panics
/// When called from a hub callback.
pub(crate) fn current_ref() -> GreenletRef {
    with(|h| {
        let core = h.core.borrow();
        assert!(core.current != HUB, "gevent: getcurrent() inside a hub callback");
        core.greenlets[core.current].shared.clone()
    })
}
