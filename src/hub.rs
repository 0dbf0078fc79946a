//! The hub: one per thread, created on first use. It owns the greenlets'
//! control blocks (a slab), the FIFO run queue, the timers and the stack pool,
//! and is itself a context on its own stack. `park` suspends the current
//! greenlet and switches *directly* to the next ready one; only when none is
//! ready (or a loop callback is next) does control go to the hub loop, which
//! runs callbacks, fires timers and sleeps until the next deadline.
//!
//! The public part is the per-thread configuration; the rest is the
//! runtime's internals. Re-entrancy rule: every access to hub state is a short closure passed to
//! [`with`] that never switches; all switches happen outside any borrow.

use std::any::Any;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::arch::{self, Context};
use crate::greenlet::{self, GreenletError, GreenletRef, KillUnwind, Life};
use crate::stack::{Stack, StackPool, DEFAULT_STACK_SIZE};
use crate::timer::{Action, TimerKey, Timers};
use crate::timeout::TimeoutUnwind;

/// The pseudo key of the hub's own context.
const HUB: usize = usize::MAX;

/// Stack size of the hub's own context (link callbacks run there).
const HUB_STACK_SIZE: usize = 256 * 1024;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A process-wide unique greenlet id.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

thread_local! {
    /// The current thread's hub, null until first use. Deliberately a plain
    /// pointer without a destructor, so it stays readable while the hub is
    /// torn down (greenlets unwinding at thread exit still reach it) and from
    /// the stack-overflow signal handler.
    static CURRENT: Cell<*const Hub> = const { Cell::new(ptr::null()) };
    /// Owns the hub: its destructor tears the hub down at thread exit.
    static OWNER: HubOwner = const { HubOwner };
}

/// Scheduling state of one greenlet. Legal transitions:
/// `New -> Scheduled | Queued`, `Scheduled -> Queued`, `Queued -> Running`,
/// `Running -> Suspended | Ready (yield)`, `Suspended -> Ready`,
/// `Ready -> Running`, `Queued -> Zombie` (killed before it ever ran; the
/// slot is freed when its run-queue entry comes up). Death removes the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    New,
    Scheduled,
    Queued,
    Running,
    Suspended,
    Ready,
    Zombie,
}

/// Why a parked greenlet must unwind instead of resuming normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Interrupt {
    Kill,
    Timeout(u64),
    LoopExit(String),
}

/// A greenlet's control block.
struct Gcb {
    state: State,
    ctx: Context,
    /// The start record's address (passed on every switch; read only on the
    /// first one).
    data: usize,
    stack: Option<Stack>,
    pending: Option<Interrupt>,
    shared: GreenletRef,
    locals: Vec<(u64, Option<Box<dyn Any>>)>,
    start_timer: Option<TimerKey>,
}

/// An entry of the run queue: a greenlet to resume, or loop callbacks.
enum RunItem {
    Greenlet(usize),
    Links(GreenletRef),
}

/// One thread's scheduler.
pub(crate) struct Hub {
    greenlets: RefCell<Slab<Gcb>>,
    ready: RefCell<VecDeque<RunItem>>,
    /// Run-queue entries left in the current pass; at 0 the timers are
    /// checked before the next entry, so a yield loop never starves them.
    pass_left: Cell<usize>,
    current: Cell<usize>,
    main_key: usize,
    timers: RefCell<Timers>,
    stacks: RefCell<StackPool>,
    default_stack: Cell<usize>,
    /// The main greenlet's saved-sp and link slots (it has no stack of ours).
    _main_slots: Box<UnsafeCell<[usize; 2]>>,
    hub_ctx: Context,
    hub_data: usize,
    hub_stack: RefCell<Option<Stack>>,
    next_token: Cell<u64>,
    tearing_down: Cell<bool>,
    alt_stack: Option<crate::stack::AltStack>,
}

struct HubOwner;

impl Drop for HubOwner {
    fn drop(&mut self) {
        let p = CURRENT.with(|c| c.get());
        if p.is_null() {
            return;
        }
        // SAFETY: the pointer came from Box::into_raw in `create_hub` and is
        // freed only here, once.
        let hub = unsafe { &*p };
        if hub.current.get() != hub.main_key {
            // The thread exits from inside a greenlet (process::exit): its
            // stack is in use, so nothing can be unwound or unmapped safely.
            return;
        }
        teardown();
        CURRENT.with(|c| c.set(ptr::null()));
        // SAFETY: as above; no greenlet is left that could reach the hub.
        drop(unsafe { Box::from_raw(p as *mut Hub) });
    }
}

/// Runs `f` with the current thread's hub, creating it on first use.
pub(crate) fn with<R>(f: impl FnOnce(&Hub) -> R) -> R {
    let mut p = CURRENT.with(|c| c.get());
    if p.is_null() {
        p = create_hub();
    }
    // SAFETY: the hub lives until the thread's OWNER destructor, which runs
    // after all user code of the thread; `f` cannot outlive this call.
    f(unsafe { &*p })
}

/// The hub if this thread has one, without creating it.
fn existing() -> Option<&'static Hub> {
    let p = CURRENT.try_with(|c| c.get()).ok()?;
    // SAFETY: see `with`; callers use the reference only briefly.
    (!p.is_null()).then(|| unsafe { &*p })
}

fn create_hub() -> *const Hub {
    crate::stack::install_overflow_handler(overflow_report);
    install_panic_hook();
    let mut stacks = StackPool::new();
    let hub_stack = stacks.take(HUB_STACK_SIZE).expect("gevent: cannot map the hub's stack");
    let (hub_ctx, hub_data) = new_context(&hub_stack, greenlet::HubRecord::new(hub_loop));
    let main_slots = Box::new(UnsafeCell::new([0usize; 2]));
    let main_ctx = Context::at(main_slots.get().cast());
    let main = GreenletRef::new_inner::<()>(next_id());
    *main.name.borrow_mut() = Some("main".to_owned());
    main.started.set(true);
    main.life.set(Life::Started);
    let mut greenlets = Slab::new();
    let main_key = greenlets.insert(Gcb::new(main_ctx, 0, None, GreenletRef(main)));
    greenlets[main_key].state = State::Running;
    greenlets[main_key].shared.0.key.set(main_key);
    let hub = Box::new(Hub {
        greenlets: RefCell::new(greenlets),
        ready: RefCell::new(VecDeque::new()),
        pass_left: Cell::new(0),
        current: Cell::new(main_key),
        main_key,
        timers: RefCell::new(Timers::default()),
        stacks: RefCell::new(stacks),
        default_stack: Cell::new(DEFAULT_STACK_SIZE),
        _main_slots: main_slots,
        hub_ctx,
        hub_data,
        hub_stack: RefCell::new(Some(hub_stack)),
        next_token: Cell::new(0),
        tearing_down: Cell::new(false),
        alt_stack: crate::stack::AltStack::ensure(),
    });
    let p = Box::into_raw(hub) as *const Hub;
    CURRENT.with(|c| c.set(p));
    OWNER.with(|_| ());
    p
}

/// Lays out a fresh context on `stack` that will run `record` first.
fn new_context<R>(stack: &Stack, record: R) -> (Context, usize) {
    let room = std::mem::size_of::<R>() + std::mem::align_of::<R>() + 16 + arch::SLOT_BYTES + 64;
    assert!(room < stack.size() / 2, "gevent: the greenlet's closure ({} bytes) does not fit its stack", room);
    // SAFETY: the top `room` bytes of the stack are ours and unused (the
    // stack is fresh from the pool); place_record keeps 16-byte alignment and
    // init_frame writes only the frame words below the slots.
    unsafe {
        let data = greenlet::place_record(stack.top(), record);
        let slots = (data - arch::SLOT_BYTES) as *mut usize;
        let sp = arch::init_frame(slots);
        let ctx = Context::at(slots);
        *ctx.sp_slot = sp;
        (ctx, data)
    }
}

impl Gcb {
    fn new(ctx: Context, data: usize, stack: Option<Stack>, shared: GreenletRef) -> Gcb {
        Gcb { state: State::New, ctx, data, stack, pending: None, shared, locals: Vec::new(), start_timer: None }
    }
}

impl Hub {
    fn ctx(&self, key: usize) -> (Context, usize) {
        if key == HUB {
            return (self.hub_ctx, self.hub_data);
        }
        let g = self.greenlets.borrow();
        (g[key].ctx, g[key].data)
    }

    fn state(&self, key: usize) -> State {
        self.greenlets.borrow()[key].state
    }

    fn set_state(&self, key: usize, state: State) {
        self.greenlets.borrow_mut()[key].state = state;
    }

    /// Makes a suspended greenlet ready; anything else is left alone (a
    /// greenlet is queued at most once).
    pub(crate) fn unpark(&self, key: usize) {
        let mut g = self.greenlets.borrow_mut();
        if g[key].state == State::Suspended {
            g[key].state = State::Ready;
            self.ready.borrow_mut().push_back(RunItem::Greenlet(key));
        }
    }

    /// Asks greenlet `key` to unwind at its blocking point.
    fn interrupt(&self, key: usize, why: Interrupt) {
        {
            let mut g = self.greenlets.borrow_mut();
            let pending = &mut g[key].pending;
            // A kill outranks a timeout; the first timeout wins over later ones.
            if pending.is_none() || why == Interrupt::Kill {
                *pending = Some(why);
            }
        }
        self.unpark(key);
    }

    fn push_ready(&self, item: RunItem) {
        self.ready.borrow_mut().push_back(item);
    }

    /// Fires every due timer (their greenlets join the back of the queue).
    fn fire_timers(&self) {
        if self.timers.borrow().len() == 0 {
            return;
        }
        let now = Instant::now();
        loop {
            let due = self.timers.borrow_mut().pop_due(now);
            match due {
                Some(Action::Wake(k)) => self.unpark(k),
                Some(Action::Interrupt(k, token)) => self.interrupt(k, Interrupt::Timeout(token)),
                Some(Action::Start(k)) => self.enqueue_new(k),
                None => return,
            }
        }
    }

    fn enqueue_new(&self, key: usize) {
        let mut g = self.greenlets.borrow_mut();
        g[key].state = State::Queued;
        g[key].start_timer = None;
        self.ready.borrow_mut().push_back(RunItem::Greenlet(key));
    }

    /// Picks whom `me` (about to suspend) switches to: the next ready greenlet
    /// if it heads the queue, else the hub. Runs the pass-boundary check.
    fn next_for(&self, me: usize) -> usize {
        if self.pass_left.get() == 0 {
            self.fire_timers();
            self.pass_left.set(self.ready.borrow().len());
        }
        loop {
            let mut ready = self.ready.borrow_mut();
            let key = match ready.front() {
                Some(RunItem::Greenlet(k)) => *k,
                _ => return HUB,
            };
            ready.pop_front();
            drop(ready);
            self.pass_left.set(self.pass_left.get().saturating_sub(1));
            if self.reap_zombie(key) {
                continue;
            }
            let _ = me;
            return key;
        }
    }

    /// Frees the slot of a greenlet killed before it ran; true if it was one.
    fn reap_zombie(&self, key: usize) -> bool {
        let mut g = self.greenlets.borrow_mut();
        if g[key].state != State::Zombie {
            return false;
        }
        g.remove(key);
        true
    }

    /// Marks `to` running and returns the contexts for the switch.
    fn prepare_switch(&self, from: usize, to: usize) -> (Context, Context, usize) {
        self.current.set(to);
        if to != HUB {
            self.set_state(to, State::Running);
        }
        let (from_ctx, _) = self.ctx(from);
        let (to_ctx, data) = self.ctx(to);
        (from_ctx, to_ctx, data)
    }

    fn current_key(&self) -> usize {
        self.current.get()
    }

    fn take_pending(&self, key: usize) -> Option<Interrupt> {
        self.greenlets.borrow_mut()[key].pending.take()
    }

    fn shared(&self, key: usize) -> GreenletRef {
        self.greenlets.borrow()[key].shared.clone()
    }

    fn blocked_names(&self) -> Vec<String> {
        let g = self.greenlets.borrow();
        g.iter()
            .filter(|(k, b)| *k != self.main_key && b.state == State::Suspended)
            .map(|(_, b)| format!("'{}'", b.shared.name()))
            .collect()
    }
}

/// Switches from the current context to `to` (outside any borrow).
fn switch(from: Context, to: Context, data: usize) {
    // SAFETY: `from` is the running context (the hub's `current` before
    // prepare_switch), `to` a suspended or fresh one whose stack is alive (it
    // is in the slab or is the hub's); no RefCell borrow is held here.
    unsafe { from.switch_to(to, data) };
}

/// Suspends the current greenlet until [`Hub::unpark`] makes it ready.
///
/// Returns normally when woken; unwinds (kill, timeout) or panics (nothing
/// can ever wake the main greenlet) when interrupted.
///
/// # Panics
/// When called from a hub callback (link callbacks run in the hub).
pub(crate) fn park() {
    let me = with(|h| h.current_key());
    assert!(me != HUB, "gevent: a blocking call inside a hub callback (link callbacks must not block)");
    let next = with(|h| {
        h.set_state(me, State::Suspended);
        let to = h.next_for(me);
        if to == me {
            h.set_state(me, State::Running);
            return None;
        }
        Some(h.prepare_switch(me, to))
    });
    if let Some((from, to, data)) = next {
        switch(from, to, data);
    }
    check_interrupt(me);
}

/// Yields: the current greenlet goes to the back of the run queue.
pub(crate) fn yield_now() {
    let me = with(|h| {
        let me = h.current_key();
        assert!(me != HUB, "gevent: a blocking call inside a hub callback (link callbacks must not block)");
        h.set_state(me, State::Ready);
        h.push_ready(RunItem::Greenlet(me));
        me
    });
    let next = with(|h| {
        let to = h.next_for(me);
        if to == me {
            h.set_state(me, State::Running);
            return None;
        }
        Some(h.prepare_switch(me, to))
    });
    if let Some((from, to, data)) = next {
        switch(from, to, data);
    }
    check_interrupt(me);
}

fn check_interrupt(me: usize) {
    match with(|h| h.take_pending(me)) {
        None => {}
        Some(Interrupt::Kill) => panic::resume_unwind(Box::new(KillUnwind)),
        Some(Interrupt::Timeout(token)) => panic::resume_unwind(Box::new(TimeoutUnwind(token))),
        Some(Interrupt::LoopExit(msg)) => panic!("{msg}"),
    }
}

/// The key of the running greenlet.
pub(crate) fn current_key() -> usize {
    with(|h| h.current_key())
}

/// A handle to the running greenlet (the main greenlet included).
///
/// # Panics
/// When called from a hub callback.
pub(crate) fn current_ref() -> GreenletRef {
    with(|h| {
        let me = h.current_key();
        assert!(me != HUB, "gevent: getcurrent() inside a hub callback");
        h.shared(me)
    })
}

/// Registers a freshly built greenlet (state New) with its start record.
pub(crate) fn create<R>(r: &GreenletRef, stack_size: Option<usize>, record: R) {
    with(|h| {
        let size = stack_size.unwrap_or(h.default_stack.get());
        let stack = h.stacks.borrow_mut().take(size).expect("gevent: cannot map a greenlet stack");
        let (ctx, data) = new_context(&stack, record);
        let key = h.greenlets.borrow_mut().insert(Gcb::new(ctx, data, Some(stack), r.clone()));
        r.0.key.set(key);
    });
}

/// Starts a New greenlet now or after `delay`; anything else is a no-op.
pub(crate) fn start(r: &GreenletRef, delay: Option<Duration>) {
    if r.0.life.get() != Life::Created {
        return;
    }
    r.0.life.set(Life::Started);
    r.0.started.set(true);
    with(|h| {
        let key = r.0.key.get();
        match delay {
            None => h.enqueue_new(key),
            Some(d) => {
                let t = h.timers.borrow_mut().add(Instant::now() + d, Action::Start(key));
                let mut g = h.greenlets.borrow_mut();
                g[key].state = State::Scheduled;
                g[key].start_timer = Some(t);
            }
        }
    });
}

/// Kills `r` (see `GreenletRef::kill_nowait`).
pub(crate) fn kill(r: &GreenletRef) {
    if r.dead() {
        return;
    }
    let key = r.0.key.get();
    let (me, main, state) = with(|h| (h.current_key(), h.main_key, h.state(key)));
    if key == main {
        panic!("gevent: the main greenlet cannot be killed");
    }
    if key == me {
        panic::resume_unwind(Box::new(KillUnwind));
    }
    match state {
        State::New | State::Scheduled | State::Queued => kill_unrun(r, key, state),
        _ => with(|h| h.interrupt(key, Interrupt::Kill)),
    }
}

/// Kills a greenlet that never ran: its closure is dropped, it never runs.
fn kill_unrun(r: &GreenletRef, key: usize, state: State) {
    let (stack, data) = with(|h| {
        let mut g = h.greenlets.borrow_mut();
        if let Some(t) = g[key].start_timer.take() {
            h.timers.borrow_mut().cancel(t);
        }
        let stack = g[key].stack.take();
        let data = g[key].data;
        if state == State::Queued {
            // Its run-queue entry frees the slot when it comes up.
            g[key].state = State::Zombie;
        } else {
            g.remove(key);
        }
        (stack, data)
    });
    // SAFETY: the record was placed by `create` and has neither run (state
    // was New/Scheduled/Queued) nor been discarded (the state changed above).
    unsafe { greenlet::discard_record(data) };
    with(|h| h.stacks.borrow_mut().give(stack.expect("an unrun greenlet owns its stack")));
    *r.0.exception.borrow_mut() = Some(GreenletError::Killed);
    finish(r);
}

/// Marks `r` dead, wakes its joiners (FIFO) and schedules its links.
fn finish(r: &GreenletRef) {
    r.0.life.set(Life::Dead);
    with(|h| {
        loop {
            let next = r.0.joiners.borrow_mut().pop_front();
            match next {
                Some(k) => h.unpark(k),
                None => break,
            }
        }
    });
    if !r.0.links.borrow().is_empty() {
        schedule_links(r.clone());
    }
}

/// Queues `r`'s link callbacks to run from the hub, behind what is ready.
pub(crate) fn schedule_links(r: GreenletRef) {
    with(|h| h.push_ready(RunItem::Links(r)));
}

/// Ends the current greenlet: drops its locals, frees its stack, wakes its
/// joiners and switches away for good.
pub(crate) fn exit_current() -> ! {
    let me = current_key();
    let locals = with(|h| std::mem::take(&mut h.greenlets.borrow_mut()[me].locals));
    drop(locals);
    let (gcb_ctx, shared, stack) = with(|h| {
        let gcb = h.greenlets.borrow_mut().remove(me);
        (gcb.ctx, gcb.shared, gcb.stack)
    });
    finish(&shared);
    drop(shared);
    let (to, data) = with(|h| {
        // The stack goes back to the pool before the last switch off it: no
        // code runs between here and the switch that could take it.
        h.stacks.borrow_mut().give(stack.expect("a running greenlet owns its stack"));
        let to = h.next_for(me);
        let (_, to_ctx, data) = h.prepare_switch(HUB, to);
        (to_ctx, data)
    });
    switch(gcb_ctx, to, data);
    unreachable!("a dead greenlet was resumed");
}

/// What the hub loop does next.
enum Step {
    Switch(usize),
    Links(GreenletRef),
    Sleep(Instant),
    LoopExit,
}

impl Hub {
    fn hub_step(&self) -> Step {
        loop {
            if self.pass_left.get() == 0 {
                self.fire_timers();
                self.pass_left.set(self.ready.borrow().len());
            }
            let item = self.ready.borrow_mut().pop_front();
            match item {
                Some(RunItem::Greenlet(k)) => {
                    self.pass_left.set(self.pass_left.get().saturating_sub(1));
                    if !self.reap_zombie(k) {
                        return Step::Switch(k);
                    }
                }
                Some(RunItem::Links(r)) => {
                    self.pass_left.set(self.pass_left.get().saturating_sub(1));
                    return Step::Links(r);
                }
                None => {
                    self.fire_timers();
                    if !self.ready.borrow().is_empty() {
                        continue;
                    }
                    return match self.timers.borrow_mut().next_deadline() {
                        Some(d) => Step::Sleep(d),
                        None => Step::LoopExit,
                    };
                }
            }
        }
    }

    fn loop_exit(&self) {
        let names = self.blocked_names();
        let msg = format!(
            "gevent: this operation would block forever (LoopExit): the main greenlet waits and \
             nothing can wake it (no ready greenlet, no timer, no I/O); {} other greenlet(s) blocked{}{}",
            names.len(),
            if names.is_empty() { "" } else { ": " },
            names.join(", ")
        );
        self.interrupt(self.main_key, Interrupt::LoopExit(msg));
    }
}

/// The hub context's body: callbacks, timers, idle sleep, LoopExit.
fn hub_loop() {
    loop {
        let step = with(|h| h.hub_step());
        match step {
            Step::Switch(k) => {
                let (from, to, data) = with(|h| h.prepare_switch(HUB, k));
                switch(from, to, data);
            }
            Step::Links(r) => run_links(&r),
            Step::Sleep(deadline) => {
                let now = Instant::now();
                if deadline > now {
                    std::thread::sleep(deadline - now);
                }
                with(|h| h.fire_timers());
            }
            Step::LoopExit => with(|h| h.loop_exit()),
        }
    }
}

fn run_links(r: &GreenletRef) {
    let links = std::mem::take(&mut *r.0.links.borrow_mut());
    for link in links {
        if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| link(r))) {
            eprintln!("gevent: a link callback of greenlet '{}' panicked: {}", r.name(), panic_message(&*p));
        }
    }
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".to_owned())
}

/// Waits for `r` to die, at most `timeout`; true if it is dead.
pub(crate) fn join(r: &GreenletRef, timeout: Option<Duration>) -> bool {
    if r.dead() {
        return true;
    }
    let me = current_key();
    assert!(me != HUB, "gevent: a blocking call inside a hub callback (link callbacks must not block)");
    if r.0.key.get() == me {
        panic!("gevent: greenlet '{}' tried to join itself, which would never return", r.name());
    }
    let deadline = timeout.map(|d| Instant::now() + d);
    while !r.dead() {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        let wait = r.0.joiners.borrow_mut().push_back(me);
        let _leave = WaitGuard { list: r, key: wait };
        let _timer = deadline.map(|d| TimerGuard::arm(d, Action::Wake(me)));
        park();
    }
    true
}

/// Removes a join waiter from its list on every exit path.
struct WaitGuard<'a> {
    list: &'a GreenletRef,
    key: crate::wait::WaitKey,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.list.0.joiners.borrow_mut().remove(self.key);
    }
}

/// An armed timer, cancelled when dropped (a no-op once it fired).
pub(crate) struct TimerGuard(TimerKey);

impl TimerGuard {
    pub(crate) fn arm(deadline: Instant, action: Action) -> TimerGuard {
        TimerGuard(with(|h| h.timers.borrow_mut().add(deadline, action)))
    }

    /// True once the timer fired.
    pub(crate) fn fired(&self) -> bool {
        with(|h| !h.timers.borrow().armed(self.0))
    }
}

impl Drop for TimerGuard {
    fn drop(&mut self) {
        with(|h| h.timers.borrow_mut().cancel(self.0));
    }
}

/// Sleeps the current greenlet (see `gevent::sleep`).
pub(crate) fn sleep(d: Duration) {
    if d.is_zero() {
        return yield_now();
    }
    let me = current_key();
    let deadline = Instant::now() + d;
    let timer = TimerGuard::arm(deadline, Action::Wake(me));
    while !timer.fired() {
        park();
    }
}

/// A fresh token naming one `with_timeout` scope.
pub(crate) fn new_token() -> u64 {
    with(|h| {
        let t = h.next_token.get() + 1;
        h.next_token.set(t);
        t
    })
}

/// Arms a timer that interrupts the current greenlet with `token`.
pub(crate) fn arm_timeout(d: Duration, token: u64) -> TimerGuard {
    let me = current_key();
    TimerGuard::arm(Instant::now() + d, Action::Interrupt(me, token))
}

/// Sets the stack size of greenlets created from now on by this thread's
/// hub (rounded up to whole pages, at least [`crate::MIN_STACK_SIZE`]).
/// A builder's `stack_size` still wins.
///
/// # Examples
/// ```
/// gevent::hub::set_default_stack_size(256 * 1024);
/// assert_eq!(gevent::hub::default_stack_size(), 256 * 1024);
/// ```
pub fn set_default_stack_size(bytes: usize) {
    with(|h| h.default_stack.set(h.stacks.borrow().round(bytes)));
}

/// The stack size greenlets of this thread get by default
/// ([`crate::DEFAULT_STACK_SIZE`] unless changed).
pub fn default_stack_size() -> usize {
    with(|h| h.default_stack.get())
}

/// Takes the current greenlet's value of local `id` (None on first access).
///
/// # Panics
/// When the value is already taken (re-entrant `Local::with`) or from a hub
/// callback.
pub(crate) fn take_local(id: u64) -> Option<Box<dyn Any>> {
    with(|h| {
        let me = h.current_key();
        assert!(me != HUB, "gevent: greenlet-local storage used from a hub callback");
        let mut g = h.greenlets.borrow_mut();
        let (_, slot) = g[me].locals.iter_mut().find(|(k, _)| *k == id)?;
        Some(slot.take().expect("gevent: Local::with called re-entrantly for the same local"))
    })
}

/// Puts back (or stores for the first time) greenlet `key`'s value of `id`.
pub(crate) fn put_local(key: usize, id: u64, value: Box<dyn Any>) {
    let replaced = with(|h| {
        let mut g = h.greenlets.borrow_mut();
        let locals = &mut g.get_mut(key)?.locals;
        match locals.iter_mut().find(|(k, _)| *k == id) {
            Some((_, slot)) => slot.replace(value),
            None => {
                locals.push((id, Some(value)));
                None
            }
        }
    });
    drop(replaced);
}

/// Tears the hub down at thread exit: kills the greenlets still alive (their
/// destructors run) and drops the main greenlet's locals.
fn teardown() {
    with(|h| h.tearing_down.set(true));
    for _round in 0..3 {
        let alive: Vec<GreenletRef> = with(|h| {
            let g = h.greenlets.borrow();
            g.iter().filter(|(k, b)| *k != h.main_key && b.state != State::Zombie).map(|(_, b)| b.shared.clone()).collect()
        });
        if alive.is_empty() {
            break;
        }
        for g in &alive {
            if panic::catch_unwind(AssertUnwindSafe(|| g.kill())).is_err() {
                eprintln!("gevent: greenlet '{}' could not be unwound at thread exit", g.name());
            }
        }
    }
    // Let queued link callbacks and zombies drain.
    let _ = panic::catch_unwind(AssertUnwindSafe(|| {
        while with(|h| !h.ready.borrow().is_empty()) {
            yield_now();
        }
    }));
    let main_locals = with(|h| std::mem::take(&mut h.greenlets.borrow_mut()[h.main_key].locals));
    drop(main_locals);
}

impl Drop for Hub {
    fn drop(&mut self) {
        let leftover = self.greenlets.get_mut().len() - 1;
        if leftover > 0 {
            // Their stacks stay mapped (leaked) rather than freed under them.
            std::mem::forget(std::mem::replace(self.stacks.get_mut(), StackPool::new()));
            return;
        }
        if let Some(s) = self.hub_stack.get_mut().take() {
            self.stacks.get_mut().give(s);
        }
        let _ = &self.alt_stack;
    }
}

/// Fills `buf` with the overflow report if `addr` is in (or just below) the
/// guard page of the running greenlet's or the hub's stack; returns the
/// message length. Runs in the SIGSEGV handler: no allocation, no panics.
fn overflow_report(addr: usize, buf: &mut [u8]) -> Option<usize> {
    use std::fmt::Write;
    let h = existing()?;
    let me = h.current.get();
    let mut out = crate::stack::MsgBuf::new(buf);
    let near = |(lo, hi): (usize, usize)| addr >= lo.saturating_sub(64 * 1024) && addr < hi;
    if me == HUB {
        let s = h.hub_stack.try_borrow().ok()?;
        if !near(s.as_ref()?.guard_range()) {
            return None;
        }
        let _ = write!(out, "greenlet 'hub'");
    } else {
        let g = h.greenlets.try_borrow().ok()?;
        let gcb = g.get(me)?;
        if !near(gcb.stack.as_ref()?.guard_range()) {
            return None;
        }
        let name = gcb.shared.0.name.try_borrow().ok()?;
        let _ = match &*name {
            Some(n) => write!(out, "greenlet '{n}'"),
            None => write!(out, "greenlet 'Greenlet-{}'", gcb.shared.0.id),
        };
    }
    let _ = write!(out, " has overflowed its stack\nfatal runtime error: stack overflow, aborting\n");
    Some(out.len())
}

/// Reports panics of greenlets with the greenlet's name (the default hook
/// would name the thread); panics elsewhere go to the previous hook.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| match greenlet_name_for_report() {
            Some(name) => {
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "Box<dyn Any>".to_owned());
                let loc = info.location().map(|l| format!(" at {l}")).unwrap_or_default();
                eprintln!("greenlet '{name}' panicked{loc}:\n{msg}");
            }
            None => previous(info),
        }));
    });
}

/// The running greenlet's name, unless it is the main greenlet or the hub.
fn greenlet_name_for_report() -> Option<String> {
    let h = existing()?;
    let me = h.current.get();
    if me == h.main_key || me == HUB {
        return None;
    }
    let g = h.greenlets.try_borrow().ok()?;
    let shared = g.get(me)?.shared.clone();
    drop(g);
    Some(shared.name())
}

/// A stack from this thread's pool (for raw coroutines).
pub(crate) fn take_stack(size: Option<usize>) -> Stack {
    with(|h| {
        let size = size.unwrap_or(h.default_stack.get());
        h.stacks.borrow_mut().take(size).expect("gevent: cannot map a coroutine stack")
    })
}

/// Returns a stack taken with [`take_stack`].
pub(crate) fn give_stack(stack: Stack) {
    with(|h| h.stacks.borrow_mut().give(stack));
}

/// A snapshot of this thread's hub, for tests and monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Greenlets that exist (created and not dead), the main one included.
    pub greenlets: usize,
    /// Entries in the run queue.
    pub ready: usize,
    /// Armed timers.
    pub timers: usize,
    /// Stack chunks mapped so far (one `mmap` each; flat in the steady state).
    pub stack_chunks: usize,
    /// Stacks free in the pool.
    pub free_stacks: usize,
}

/// Counts of this thread's hub: greenlets, run queue, timers, stacks.
///
/// # Examples
/// ```
/// let before = gevent::hub::stats();
/// gevent::spawn(|| ()).join();
/// let after = gevent::hub::stats();
/// assert_eq!(before.greenlets, after.greenlets);
/// ```
pub fn stats() -> Stats {
    with(|h| {
        let stacks = h.stacks.borrow();
        Stats {
            greenlets: h.greenlets.borrow().iter().filter(|(_, b)| b.state != State::Zombie).count(),
            ready: h.ready.borrow().len(),
            timers: h.timers.borrow().len(),
            stack_chunks: stacks.chunks_mapped(),
            free_stacks: stacks.free_stacks(),
        }
    })
}
