//! Interrupts: what a greenlet does when it resumes with a kill, a timeout
//! or a LoopExit pending, and the per-greenlet count of unwinds in progress
//! that decides whether raising it now is safe.
#![forbid(unsafe_code)]

use std::panic;

use super::sched::Interrupt;
use super::with;
use crate::greenlet::KillUnwind;
use crate::timeout::TimeoutUnwind;

#[cold]
pub(super) fn raise_pending(me: usize) {
    let (why, deferred_kill, deferred_timeout) = with(|h| {
        let mut core = h.core.borrow_mut();
        let (why, kill, timeout) = core.greenlets[me]
            .rare
            .as_mut()
            .map_or((None, false, None), |r| (r.pending.take(), r.deferred_kill, r.deferred_timeout));
        // A deferred interrupt keeps the flag up: every resume looks at it
        // again.
        core.hot[me].interrupted = kill || timeout.is_some();
        (why, kill, timeout)
    });
    // Blocked in a destructor while this greenlet is already unwinding: a
    // second unwind out of that destructor would abort the process.
    let depth = unwind_depth(me);
    let unwinding = depth > 0;
    // A pending interrupt goes first; a deferred kill comes back after it,
    // then a deferred timeout.
    match why.or(deferred_kill.then_some(Interrupt::Kill)).or(deferred_timeout.map(Interrupt::Timeout)) {
        None => {}
        // Kept for the first resume after this unwind ends.
        Some(Interrupt::Kill) if unwinding => defer(me, Interrupt::Kill),
        Some(Interrupt::Kill) => raise_kill(me),
        // A scope opened inside a destructor, at this unwind depth, catches
        // its own timeout, so that one is raised; one opened outside the
        // unwind in progress (or outside a nested one that started since)
        // waits for it to end (if the unwind leaves the scope, the scope
        // forgets it).
        Some(Interrupt::Timeout(token)) if depth > crate::timeout::opened_at_depth(token) => {
            defer(me, Interrupt::Timeout(token))
        }
        Some(Interrupt::Timeout(token)) => {
            forget_deferred_timeout(me, token);
            resume_unwind(me, Box::new(TimeoutUnwind(token)))
        }
        Some(Interrupt::LoopExit) => {
            let msg = with(|h| h.loop_exit.borrow_mut().take()).unwrap_or_default();
            if unwinding {
                report!("{msg}");
                std::process::abort();
            }
            panic!("{msg}")
        }
    }
}

/// Keeps a kill or timeout for the first resume after greenlet `me`'s
/// unwind ended (a scope catching it raises a kill, and a pass boundary
/// with no unwind left on the thread interrupts again: `Core::deferred`).
fn defer(me: usize, why: Interrupt) {
    with(|h| {
        let mut core = h.core.borrow_mut();
        let rare = core.greenlets[me].rare();
        match why {
            Interrupt::Kill => rare.deferred_kill = true,
            // Of two scopes due, the outer one (made first: the smaller
            // token) is kept: its unwind leaves the inner one too, which
            // would otherwise forget it as it ends.
            Interrupt::Timeout(token) => {
                let outer = rare.deferred_timeout.filter(|&t| crate::timeout::older(t, token)).unwrap_or(token);
                rare.deferred_timeout = Some(outer);
            }
            Interrupt::LoopExit => unreachable!("LoopExit is never deferred"),
        }
        core.hot[me].interrupted = true;
        if !core.deferred.contains(&me) {
            core.deferred.push(me);
        }
    })
}

/// A `with_timeout` scope of greenlet `me` ends: a timeout of its deferred
/// during an unwind has nothing left to interrupt.
pub(crate) fn forget_deferred_timeout(me: usize, token: u64) {
    with(|h| {
        let mut core = h.core.borrow_mut();
        let Some(r) = core.greenlets.get_mut(me).and_then(|g| g.rare.as_mut()) else { return };
        if r.deferred_timeout == Some(token) {
            r.deferred_timeout = None;
            refresh_interrupted(&mut core, me);
        }
    })
}

/// Greenlet `me` is interrupted exactly while something is pending or
/// deferred for it (notifiers pass over an interrupted waiter: a flag left
/// up with nothing behind it would leave that waiter unserved).
fn refresh_interrupted(core: &mut super::Core, me: usize) {
    let left = core.greenlets[me]
        .rare
        .as_ref()
        .is_some_and(|r| r.pending.is_some() || r.deferred_kill || r.deferred_timeout.is_some());
    core.hot[me].interrupted = left;
}

/// Unwinds greenlet `me` (running) with a kill.
fn raise_kill(me: usize) -> ! {
    with(|h| {
        let mut core = h.core.borrow_mut();
        if let Some(r) = core.greenlets[me].rare.as_mut() {
            r.deferred_kill = false;
        }
        refresh_interrupted(&mut core, me);
    });
    resume_unwind(me, Box::new(KillUnwind))
}

/// A greenlet killing itself: it unwinds at once, unless it is unwinding
/// already (the kill is then deferred, as one from outside would be).
pub(crate) fn kill_self(me: usize) {
    if is_unwinding(me) {
        defer(me, Interrupt::Kill);
    } else {
        raise_kill(me);
    }
}

/// Greenlet `me` caught an unwind of its own for good (a `with_timeout`
/// scope its timeout, `catch_panic` a panic): the unwind is over, and a
/// kill deferred while it went on is raised now.
pub(crate) fn unwind_caught(me: usize) {
    note_unwind(me, false);
    raise_deferred_kill(me);
}

/// Raises a kill deferred while greenlet `me` was unwinding, once that
/// unwind is over (a scope caught it).
fn raise_deferred_kill(me: usize) {
    let deferred = with(|h| h.core.borrow().greenlets[me].rare.as_ref().is_some_and(|r| r.deferred_kill));
    if deferred && !is_unwinding(me) {
        raise_kill(me);
    }
}

/// Takes a kill deferred while greenlet `me` was unwinding (at its root,
/// where it ends as killed).
pub(crate) fn take_deferred_kill(me: usize) -> bool {
    with(|h| {
        let mut core = h.core.borrow_mut();
        // Every scope is closed at the root: a deferred timeout goes.
        let deferred = core.greenlets[me].rare.as_mut().is_some_and(|r| {
            r.deferred_timeout = None;
            std::mem::take(&mut r.deferred_kill)
        });
        refresh_interrupted(&mut core, me);
        deferred
    })
}

/// True while greenlet `me` is in the middle of an unwind (see
/// [`unwind_depth`]).
pub(crate) fn is_unwinding(me: usize) -> bool {
    unwind_depth(me) > 0
}

/// How many unwinds greenlet `me` is in the middle of, as far as the
/// runtime can tell: unwinds it started (a kill, a timeout, a panic, as
/// counted by gevent's panic hook) that were not caught yet, nested when a
/// destructor of one panics again. A panic the user caught
/// (`catch_unwind`) leaves its count behind; when no unwind at all is in
/// progress on the thread, the count is stale and goes. (While another
/// greenlet of the thread is unwinding, a stale count still reads as
/// unwinding.) The hub context has none.
pub(crate) fn unwind_depth(me: usize) -> u32 {
    let count = with(|h| h.core.borrow().hot.get(me).map_or(0, |h| h.unwinding));
    if count == 0 {
        return 0;
    }
    if !std::thread::panicking() {
        with(|h| h.core.borrow_mut().hot[me].unwinding = 0);
        return 0;
    }
    count as u32
}

/// Unwinds the current greenlet `me` with `payload`, counted as its unwind
/// first: for unwinds no panic hook sees (a kill, a timeout, a panic
/// re-raised from another thread, a coroutine's cancellation).
pub(crate) fn resume_unwind(me: usize, payload: Box<dyn std::any::Any + Send>) -> ! {
    note_unwind(me, true);
    panic::resume_unwind(payload)
}

/// Records that greenlet `key` started (`true`) or caught (`false`) an
/// unwind of its own. Never panics: the panic hook calls it too.
pub(crate) fn note_unwind(key: usize, started: bool) {
    let Some(h) = super::existing() else { return };
    let Ok(mut core) = h.core.try_borrow_mut() else { return };
    if let Some(hot) = core.hot.get_mut(key) {
        hot.unwinding = if started { hot.unwinding.saturating_add(1) } else { hot.unwinding.saturating_sub(1) };
    }
}
