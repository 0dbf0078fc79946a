//! A greenlet's life as the hub sees it: creation, start, join, kill,
//! death (joiners woken FIFO, links scheduled as loop callbacks), locals, and
//! the teardown of every survivor when the thread exits.
#![forbid(unsafe_code)]

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::sched::{self, State, HUB, HUB_BLOCKING, LINKS};
use super::{with, HubJob, TimerGuard};
use crate::greenlet::{GreenletError, GreenletRef, KillUnwind, Life};
use crate::timer::Action;
use crate::wait::WaitKey;

/// Creates a greenlet's shared state with `make(id)` and registers it (state
/// New), starting it at once if `start`; it gets a stack only when it first
/// runs. `make` only allocates: it runs no user code.
pub(crate) fn create(
    make: impl FnOnce(u64) -> GreenletRef,
    stack_size: Option<usize>,
    entry: unsafe fn(usize) -> !,
    start: bool,
) -> GreenletRef {
    let size = stack_size.map_or(0, crate::stack::check_size);
    with(|h| {
        let r = make(h.next_id());
        let mut core = h.core.borrow_mut();
        let key = core.insert(r.clone(), size, entry);
        r.0.key.set(key);
        if start {
            core.enqueue_new(key);
            r.0.life.set(Life::Started);
            r.0.started.set(true);
        }
        r
    })
}

/// Starts a New greenlet now or after `delay`; anything else is a no-op.
pub(crate) fn start(r: &GreenletRef, delay: Option<Duration>) {
    if r.0.life.get() != Life::Created {
        return;
    }
    r.0.life.set(Life::Started);
    r.0.started.set(true);
    let key = r.0.key.get();
    with(|h| match delay {
        None => h.core.borrow_mut().enqueue_new(key),
        Some(d) => {
            let t = h.arm(d, Action::Start(key));
            let mut core = h.core.borrow_mut();
            core.set_state(key, State::Scheduled);
            core.greenlets[key].rare().start_timer = Some(t);
        }
    });
}

/// Kills `r` (see `GreenletRef::kill_nowait`).
pub(crate) fn kill(r: &GreenletRef) {
    if r.dead() {
        return;
    }
    let key = r.0.key.get();
    let (me, main, state) = with(|h| {
        let core = h.core.borrow();
        (core.current, core.main_key, core.state(key))
    });
    if key == main {
        panic!("gevent: the main greenlet cannot be killed");
    }
    if key == me {
        super::interrupt::kill_self(me);
        return;
    }
    match state {
        State::New | State::Scheduled | State::Queued => kill_unrun(r, key, state),
        _ => with(|h| h.core.borrow_mut().interrupt(key, super::sched::Interrupt::Kill)),
    }
}

/// Frees a never-started greenlet whose last user handle is going away.
pub(crate) fn discard_unstarted(r: &GreenletRef) {
    // Only while the hub is alive and not busy (a handle dropped by the hub
    // itself is never the last user handle of a Created greenlet).
    if super::existing().is_some_and(|h| h.core.try_borrow_mut().is_ok()) {
        kill(r);
    }
}

/// Kills a greenlet that never ran: its closure is dropped, it never runs.
fn kill_unrun(r: &GreenletRef, key: usize, state: State) {
    end_unrun(r, key, state, GreenletError::Killed);
}

/// Ends a greenlet that never ran with `error`: its closure is dropped, it
/// never runs.
fn end_unrun(r: &GreenletRef, key: usize, state: State, error: GreenletError) {
    // Dead before its control block (and the reference it holds) goes, so
    // that reference's drop does not see an unstarted greenlet.
    r.0.life.set(Life::Dead);
    with(|h| {
        let mut core = h.core.borrow_mut();
        if let Some(t) = core.greenlets[key].rare.as_mut().and_then(|r| r.start_timer.take()) {
            core.timers.cancel(t);
        }
        if state == State::Queued {
            // Its run-queue entry frees the slot when it comes up.
            core.set_state(key, State::Zombie);
        } else {
            core.greenlets.remove(key);
        }
    });
    // User Drop code: outside any borrow. A panic in it is reported: the
    // greenlet still dies killed, and its joiners and links hear of it.
    run_reporting("the closure of a greenlet that never ran", || r.0.slot.drop_closure());
    r.0.set_exception(error);
    finish(r);
}

/// Marks `r` dead, wakes its joiners (FIFO) and schedules its links.
fn finish(r: &GreenletRef) {
    r.0.life.set(Life::Dead);
    if r.0.has_links() {
        schedule_links(r.clone());
    } else {
        with(|h| wake_joiners(&mut h.core.borrow_mut(), r));
    }
}

/// Queues `r`'s link callbacks to run from the hub, behind what is ready.
pub(crate) fn schedule_links(r: GreenletRef) {
    with(|h| {
        h.links.borrow_mut().push_back(HubJob::Links(r));
        h.core.borrow_mut().ready.push_back(LINKS);
    });
}

/// Does a job queued for the hub context.
pub(super) fn run_job(job: HubJob) {
    match job {
        HubJob::Links(r) => run_links(r),
        HubJob::StartFailed(r, msg) => {
            // Killed meanwhile: already dead (the failure was reported).
            if !r.dead() {
                let key = r.0.key.get();
                let state = with(|h| h.core.borrow().state(key));
                end_unrun(&r, key, state, GreenletError::Panicked(msg));
            }
        }
    }
}

/// Runs a dead greenlet's link callbacks (in the hub context).
fn run_links(r: GreenletRef) {
    let links = r.0.take_links();
    for (_, link) in links {
        if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| link(&r))) {
            report!("gevent: a link callback of greenlet '{}' panicked: {}", r.name(), panic_message(&*p));
            discard_payload(p);
        }
    }
    // Joiners of a greenlet with links are woken after its links ran.
    with(|h| wake_joiners(&mut h.core.borrow_mut(), &r));
    // This may be the last handle, and with it the result goes: its
    // destructor runs here, in the hub, where it must not block (a panic,
    // blocking included, is reported).
    drop_reporting(r, "a greenlet's result (dropped with its last handle, in the hub)");
}

/// Drops `v`; a panic in its destructor is reported, not propagated (we are
/// at a greenlet's root, where an unwind has nowhere to go).
fn drop_reporting<T>(v: T, what: &str) {
    run_reporting(what, move || drop(v));
}

/// Runs `f` (user drop code); a panic in it is reported, not propagated.
fn run_reporting(what: &str, f: impl FnOnce()) {
    if let Err(p) = panic::catch_unwind(AssertUnwindSafe(f)) {
        report_drop_panic(what, &*p);
        discard_payload(p);
    }
}

/// Drops an unwind payload whose own destructor may panic (a panic there
/// would otherwise escape the greenlet's root and abort); such a second
/// payload is leaked.
pub(crate) fn discard_payload(p: Box<dyn Any + Send>) {
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(p))) {
        std::mem::forget(again);
    }
}

/// Reports a destructor that panicked; one interrupted by a kill or a timeout
/// (the greenlet is ending anyway) is not news. The payload is dropped
/// quietly too: its own destructor may panic.
fn report_drop_panic(what: &str, p: &(dyn Any + Send)) {
    if !p.is::<KillUnwind>() && !p.is::<crate::timeout::TimeoutUnwind>() {
        report!("gevent: the destructor of {what} panicked: {}", panic_message(p));
    }
}

pub(crate) fn panic_message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".to_owned())
}

/// What ending the current greenlet needs next.
enum Leaving {
    /// Its greenlet-local values, to drop as user code first.
    Locals(Vec<(u64, Option<Box<dyn Any>>)>),
    /// Its result, which nobody can read any more, to drop as user code.
    Result(GreenletRef),
    /// Gone: its last reference and the switch away.
    Gone(GreenletRef, super::sched::Plan),
}

/// Ends the current greenlet: drops its locals (and a result nobody can
/// read), wakes its joiners, frees its control block and stack, and
/// switches away for good.
pub(crate) fn exit_current() -> ! {
    loop {
        match with(leave) {
            Leaving::Locals(locals) => drop_reporting(locals, "a greenlet-local value"),
            Leaving::Result(r) => {
                if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| r.0.slot.drop_result())) {
                    report_drop_panic("a greenlet's unread result", &*p);
                    discard_payload(p);
                }
            }
            Leaving::Gone(shared, plan) => {
                // No user code runs in this drop: the result is gone if nobody
                // could read it, and links hold their own reference.
                drop(shared);
                sched::switch_for_good(plan)
            }
        }
    }
}

/// One step of [`exit_current`], inside the hub.
fn leave(h: &super::Hub) -> Leaving {
    let mut core = h.core.borrow_mut();
    let me = core.current;
    // User destructors run outside any borrow, still as this greenlet (and
    // may create new locals or drop the last handle, hence the loop).
    if let Some(rare) = core.greenlets[me].rare.as_mut() {
        if !rare.locals.is_empty() {
            return Leaving::Locals(std::mem::take(&mut rare.locals));
        }
    }
    let shared = &core.greenlets[me].shared;
    if Rc::strong_count(&shared.0) == 1 && shared.0.slot.has_result() {
        return Leaving::Result(shared.clone());
    }
    let gcb = core.greenlets.remove(me);
    core.hot[me].unwinding = 0; // the slot is free: no count is left in it
    let from = core.hot[me].slots;
    let shared = gcb.shared;
    shared.0.life.set(Life::Dead);
    // With links, the joiners are woken after them, from the hub (gevent
    // notifies links in order, and a group's member leaves by a link that
    // was registered before anyone joined); without, right away.
    if !shared.0.has_links() {
        wake_joiners(&mut core, &shared);
    } else {
        h.links.borrow_mut().push_back(HubJob::Links(shared.clone()));
        core.ready.push_back(LINKS);
    }
    // A greenlet that cannot start is set aside (a job for the hub).
    let (to_ctx, data) = loop {
        let to = h.next_target(&mut core);
        if let Some(plan) = h.plan_to(&mut core, to) {
            break plan;
        }
    };
    // Only now does our stack go back to the pool: the next greenlet's first
    // run (in `plan_to`) must not be handed the stack we still run on, and
    // nothing runs between here and the switch that could take it.
    h.stacks.borrow_mut().give(gcb.stack.expect("a running greenlet owns its stack"));
    Leaving::Gone(shared, (from, to_ctx, data))
}

/// Wakes every joiner of `r`, in the order they started waiting.
fn wake_joiners(core: &mut super::sched::Core, r: &GreenletRef) {
    r.0.joiners_woken.set(true);
    r.0.joiners.drain(&mut core.waits, |k| super::sched::unpark(&mut core.hot, &mut core.ready, k, false));
}

/// Waits for `r` to die, at most `timeout`; true if it is dead.
pub(crate) fn join(r: &GreenletRef, timeout: Option<Duration>) -> bool {
    if r.dead() {
        return true;
    }
    let deadline = timeout.map(|d| crate::timer::after(Instant::now(), d));
    let mut timer = None;
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        let leave = JoinWait::enter(r);
        if let (None, Some(d)) = (&timer, timeout) {
            timer = Some(TimerGuard::arm(d, Action::Wake(leave.me)));
        }
        sched::park();
        drop(leave);
        if r.dead() {
            return true;
        }
    }
}

/// A place in a greenlet's join list, left on every exit path.
struct JoinWait<'a> {
    target: &'a GreenletRef,
    me: usize,
    key: WaitKey,
}

impl<'a> JoinWait<'a> {
    /// Enlists the current greenlet as a joiner of `target`.
    ///
    /// # Panics
    /// From a hub callback, or if `target` is the current greenlet.
    fn enter(target: &'a GreenletRef) -> JoinWait<'a> {
        with(|h| {
            let mut core = h.core.borrow_mut();
            let me = core.current;
            assert!(me != HUB, "{HUB_BLOCKING}");
            if target.0.key.get() == me {
                drop(core);
                panic!("gevent: greenlet '{}' tried to join itself (it cannot die while it waits)", target.name());
            }
            let key = target.0.joiners.push_back(&mut core.waits, me);
            JoinWait { target, me, key }
        })
    }
}

impl Drop for JoinWait<'_> {
    fn drop(&mut self) {
        // Its joiners were all woken (popped): nothing to leave.
        if !self.target.0.joiners_woken.get() {
            with(|h| self.target.0.joiners.remove(&mut h.core.borrow_mut().waits, self.key));
        }
    }
}

/// Takes the current greenlet's value of local `id`; on first access leaves
/// an empty placeholder (so a re-entrant first access is caught too) and
/// returns `None`.
///
/// # Panics
/// When the value is already taken (re-entrant `Local::with`) or from a hub
/// callback.
pub(crate) fn take_local(id: u64) -> Option<Box<dyn Any>> {
    with(|h| {
        let mut core = h.core.borrow_mut();
        let me = core.current;
        assert!(me != HUB, "gevent: greenlet-local storage used from a hub callback");
        let locals = &mut core.greenlets[me].rare().locals;
        match locals.iter_mut().find(|(k, _)| *k == id) {
            Some((_, slot)) => Some(slot.take().expect("gevent: Local::with called re-entrantly for the same local")),
            None => {
                locals.push((id, None));
                None
            }
        }
    })
}

/// Removes the placeholder `take_local` left when the first value could not
/// be made (its `Default` panicked).
pub(crate) fn forget_local(key: usize, id: u64) {
    with(|h| {
        let mut core = h.core.borrow_mut();
        if let Some(g) = core.greenlets.get_mut(key) {
            if let Some(r) = g.rare.as_mut() {
                r.locals.retain(|(k, v)| *k != id || v.is_some());
            }
        }
    });
}

/// Drops every greenlet's value of local `id` (its last handle went). A
/// scan of the greenlets: locals are made and dropped rarely, used often.
pub(crate) fn drop_local_everywhere(id: u64) {
    let Some(h) = super::existing() else { return };
    let gone: Vec<Box<dyn Any>> = {
        let Ok(mut core) = h.core.try_borrow_mut() else { return };
        let mut gone = Vec::new();
        for (_, g) in core.greenlets.iter_mut() {
            let Some(r) = g.rare.as_mut() else { continue };
            if let Some(i) = r.locals.iter().position(|(k, _)| *k == id) {
                gone.extend(r.locals.swap_remove(i).1);
            }
        }
        gone
    };
    // Destructors run outside the borrow; one that panics is reported.
    drop_reporting(gone, "a greenlet-local value (its last Local handle was dropped)");
}

/// Puts back (or stores for the first time) greenlet `key`'s value of `id`.
pub(crate) fn put_local(key: usize, id: u64, value: Box<dyn Any>) {
    let mut value = Some(value);
    let replaced = with(|h| {
        let mut core = h.core.borrow_mut();
        let locals = &mut core.greenlets.get_mut(key)?.rare().locals;
        match locals.iter_mut().find(|(k, _)| *k == id) {
            Some((_, slot)) => slot.replace(value.take()?),
            None => {
                locals.push((id, value.take()));
                None
            }
        }
    });
    // Destructors run outside the borrow.
    drop(replaced);
    drop(value);
}

/// How long thread exit waits for the greenlets it killed in one round
/// (greenlets spawned by their destructors are killed in the next, with a
/// wait of their own): one still alive then (its code swallowed the kill,
/// in a `catch_unwind` around a blocking call, or a destructor blocks that
/// long) is reported and left suspended, rather than holding the thread
/// (and, on the main thread, the process) for ever.
const TEARDOWN_WAIT: Duration = Duration::from_secs(1);

/// Tears the hub down at thread exit: kills the greenlets still alive (their
/// destructors run) and drops the main greenlet's locals. A greenlet still
/// alive [`TEARDOWN_WAIT`] after its kill is reported and left suspended:
/// its frames are never resumed, as if forgotten.
pub(super) fn teardown() {
    let mut given_up: Vec<GreenletRef> = Vec::new();
    for _round in 0..3 {
        let deadline = Instant::now() + TEARDOWN_WAIT;
        let alive: Vec<GreenletRef> = with(|h| {
            let core = h.core.borrow();
            core.greenlets
                .iter()
                .filter(|(k, _)| *k != core.main_key && core.state(*k) != State::Zombie)
                .map(|(_, b)| b.shared.clone())
                .filter(|g| !given_up.contains(g))
                .collect()
        });
        if alive.is_empty() {
            break;
        }
        // Every one is told first, then each is waited for: one whose
        // destructor needs what another's unwinding releases (a lock it
        // holds) would otherwise wait forever for one not yet told.
        for g in &alive {
            g.kill_nowait();
        }
        for g in &alive {
            let left = deadline.saturating_duration_since(Instant::now());
            match panic::catch_unwind(AssertUnwindSafe(|| g.join_timeout(left))) {
                Ok(true) => {}
                Ok(false) => {
                    report!(
                        "gevent: greenlet '{}' still running {TEARDOWN_WAIT:?} after being killed at thread exit (a \
                         catch_unwind swallowed the kill, or a destructor blocks); left suspended",
                        g.name()
                    );
                    given_up.push(g.clone());
                }
                Err(_) => report!("gevent: greenlet '{}' could not be unwound at thread exit", g.name()),
            }
        }
    }
    // Let queued link callbacks run and zombies be freed (for a bounded
    // time: a greenlet given up on may keep yielding).
    let links_until = Instant::now() + TEARDOWN_WAIT;
    let _ = panic::catch_unwind(AssertUnwindSafe(|| {
        while with(|h| !h.core.borrow().ready.is_empty()) && Instant::now() < links_until {
            sched::yield_now();
        }
    }));
    let main_locals = with(|h| {
        let mut core = h.core.borrow_mut();
        let main = core.main_key;
        core.greenlets[main].rare.as_mut().map(|r| std::mem::take(&mut r.locals))
    });
    drop(main_locals);
    // User closures (signal handlers) and the default pool go while the
    // hub is still there for whatever their destructors do; what such a
    // destructor registers again goes in the next round.
    for _round in 0..3 {
        let (signals, pool) = with(|h| (std::mem::take(&mut *h.signals.borrow_mut()), h.default_pool.take()));
        let last = signals.is_empty() && pool.is_none();
        drop(signals);
        drop(pool);
        if last {
            break;
        }
    }
}
