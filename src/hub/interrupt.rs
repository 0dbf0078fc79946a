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
    let (why, deferred_kill, was_unwinding) = with(|h| {
        let mut core = h.core.borrow_mut();
        let (why, deferred) =
            core.greenlets[me].rare.as_mut().map_or((None, false), |r| (r.pending.take(), r.deferred_kill));
        // A deferred kill keeps the flag up: every resume looks at it again.
        core.hot[me].interrupted = deferred;
        (why, deferred, core.hot[me].unwinding)
    });
    // Blocked in a destructor while this greenlet is already unwinding: a
    // second unwind out of that destructor would abort the process.
    let unwinding = was_unwinding > 0 && std::thread::panicking();
    // A pending interrupt goes first; a deferred kill comes back after it.
    match why.or(deferred_kill.then_some(Interrupt::Kill)) {
        None => {}
        // Kept for the first resume after this unwind ends.
        Some(Interrupt::Kill) if unwinding => with(|h| {
            let mut core = h.core.borrow_mut();
            core.greenlets[me].rare().deferred_kill = true;
            core.hot[me].interrupted = true;
        }),
        Some(Interrupt::Kill) => {
            with(|h| {
                let mut core = h.core.borrow_mut();
                core.greenlets[me].rare().deferred_kill = false;
                core.hot[me].interrupted = false;
            });
            note_unwind(me, true);
            panic::resume_unwind(Box::new(KillUnwind))
        }
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

/// Records that greenlet `key` started (`true`) or caught (`false`) an
/// unwind of its own. Never panics: the panic hook calls it too.
pub(crate) fn note_unwind(key: usize, started: bool) {
    let Some(h) = super::existing() else { return };
    let Ok(mut core) = h.core.try_borrow_mut() else { return };
    if let Some(hot) = core.hot.get_mut(key) {
        hot.unwinding = if started { hot.unwinding.saturating_add(1) } else { hot.unwinding.saturating_sub(1) };
    }
}
