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
    let (why, deferred_kill) = with(|h| {
        let mut core = h.core.borrow_mut();
        let (why, deferred) =
            core.greenlets[me].rare.as_mut().map_or((None, false), |r| (r.pending.take(), r.deferred_kill));
        // A deferred kill keeps the flag up: every resume looks at it again.
        core.hot[me].interrupted = deferred;
        (why, deferred)
    });
    // Blocked in a destructor while this greenlet is already unwinding: a
    // second unwind out of that destructor would abort the process.
    let unwinding = is_unwinding(me);
    // A pending interrupt goes first; a deferred kill comes back after it.
    match why.or(deferred_kill.then_some(Interrupt::Kill)) {
        None => {}
        // Kept for the first resume after this unwind ends.
        Some(Interrupt::Kill) if unwinding => defer_kill(me),
        Some(Interrupt::Kill) => raise_kill(me),
        // A scope the unwind is leaving anyway; a scope opened inside the
        // destructor catches its own timeout, so that one is raised.
        Some(Interrupt::Timeout(token)) if unwinding && !crate::timeout::opened_while_unwinding(token) => {}
        Some(Interrupt::Timeout(token)) => {
            note_unwind(me, true);
            panic::resume_unwind(Box::new(TimeoutUnwind(token)))
        }
        Some(Interrupt::LoopExit) => {
            let msg = with(|h| h.loop_exit.borrow_mut().take()).unwrap_or_default();
            if unwinding {
                eprintln!("{msg}");
                std::process::abort();
            }
            panic!("{msg}")
        }
    }
}

/// Keeps a kill for the first resume after greenlet `me`'s unwind ended
/// (a scope catching it raises it, and so does a pass boundary with no
/// unwind left on the thread: `Core::deferred_kills`).
fn defer_kill(me: usize) {
    with(|h| {
        let mut core = h.core.borrow_mut();
        core.greenlets[me].rare().deferred_kill = true;
        core.hot[me].interrupted = true;
        if !core.deferred_kills.contains(&me) {
            core.deferred_kills.push(me);
        }
    })
}

/// Unwinds greenlet `me` (running) with a kill.
fn raise_kill(me: usize) -> ! {
    with(|h| {
        let mut core = h.core.borrow_mut();
        if let Some(r) = core.greenlets[me].rare.as_mut() {
            r.deferred_kill = false;
        }
        core.hot[me].interrupted = false;
    });
    note_unwind(me, true);
    panic::resume_unwind(Box::new(KillUnwind))
}

/// A greenlet killing itself: it unwinds at once, unless it is unwinding
/// already (the kill is then deferred, as one from outside would be).
pub(crate) fn kill_self(me: usize) {
    if is_unwinding(me) {
        defer_kill(me);
    } else {
        raise_kill(me);
    }
}

/// Raises a kill deferred while greenlet `me` was unwinding, once that
/// unwind is over (a scope caught it).
pub(crate) fn raise_deferred_kill(me: usize) {
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
        let deferred = core.greenlets[me].rare.as_mut().is_some_and(|r| std::mem::take(&mut r.deferred_kill));
        if deferred {
            core.hot[me].interrupted = false;
        }
        deferred
    })
}

/// True while greenlet `me` is in the middle of an unwind, as far as the
/// runtime can tell: an unwind it started (a kill, a timeout, a panic) that
/// was not caught yet. A panic the user caught (`catch_unwind`) leaves its
/// count behind; when no unwind at all is in progress on the thread, the
/// count is stale and goes. (While another greenlet of the thread is
/// unwinding, a stale count still reads as unwinding.)
pub(crate) fn is_unwinding(me: usize) -> bool {
    // The hub context (a link callback, a destructor the hub runs) has no
    // count of its own.
    let count = with(|h| h.core.borrow().hot.get(me).map_or(0, |h| h.unwinding));
    if count == 0 {
        return false;
    }
    if !std::thread::panicking() {
        with(|h| h.core.borrow_mut().hot[me].unwinding = 0);
        return false;
    }
    true
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
