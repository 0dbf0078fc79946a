//! What the hub says when things go wrong: panics of greenlets reported with
//! the greenlet's name, and the stack-overflow message the SIGSEGV handler
//! prints (built without allocating).
#![forbid(unsafe_code)]

use std::panic;

use super::existing;
use super::sched::HUB;

/// Reports panics of greenlets with the greenlet's name (the default hook
/// would name the thread); panics elsewhere go to the previous hook.
pub(super) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            note_current_unwind();
            report(info, &previous)
        }));
    });
}

/// A user panic starts an unwind of the running greenlet (see
/// `Hot::unwinding`).
fn note_current_unwind() {
    let current = existing().and_then(|h| h.core.try_borrow().ok().map(|c| c.current));
    if let Some(me) = current.filter(|&k| k != HUB) {
        super::sched::note_unwind(me, true);
    }
}

type Hook = Box<dyn Fn(&panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Reports a panic of a greenlet with its name; others go to `previous`.
fn report(info: &panic::PanicHookInfo<'_>, previous: &Hook) {
    match greenlet_name_for_report() {
        Some(name) => {
            let msg = super::life::panic_message(info.payload());
            let loc = info.location().map(|l| format!(" at {l}")).unwrap_or_default();
            eprintln!("greenlet '{name}' panicked{loc}:\n{msg}");
        }
        None => previous(info),
    }
}

/// The running greenlet's name, unless it is the main greenlet or the hub.
fn greenlet_name_for_report() -> Option<String> {
    let h = existing()?;
    let core = h.core.try_borrow().ok()?;
    let me = core.current;
    if me == core.main_key || me == HUB {
        return None;
    }
    let shared = core.greenlets.get(me)?.shared.clone();
    drop(core);
    Some(shared.name())
}

/// Fills `buf` with the overflow report if `addr` is in (or just below) the
/// guard page of the running greenlet's or the hub's stack; returns the
/// message length. Runs in the SIGSEGV handler: no allocation, no panics.
pub(super) fn overflow_report(addr: usize, buf: &mut [u8]) -> Option<usize> {
    use std::fmt::Write;
    let h = existing()?;
    let core = h.core.try_borrow().ok()?;
    let mut out = crate::stack::MsgBuf::new(buf);
    // A large frame can skip past the guard page: accept faults up to 64 KiB
    // below it too (stack probes make such jumps rare but possible).
    let near = |(lo, hi): (usize, usize)| addr >= lo.saturating_sub(64 * 1024) && addr < hi;
    if core.current == HUB {
        let s = h.hub_stack.try_borrow().ok()?;
        if !near(s.as_ref()?.guard_range()) {
            return None;
        }
        let _ = write!(out, "greenlet 'hub'");
    } else {
        let gcb = core.greenlets.get(core.current)?;
        if !near(gcb.stack.as_ref()?.guard_range()) {
            return None;
        }
        let extra = gcb.shared.0.extra.try_borrow().ok()?;
        let _ = match extra.as_deref().and_then(|e| e.name.as_deref()) {
            Some(n) => write!(out, "greenlet '{n}'"),
            None => write!(out, "greenlet 'Greenlet-{}'", gcb.shared.0.id),
        };
    }
    let _ = write!(out, " has overflowed its stack\nfatal runtime error: stack overflow, aborting\n");
    Some(out.len())
}
