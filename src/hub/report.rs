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
        super::interrupt::note_unwind(me, true);
    }
}

type Hook = Box<dyn Fn(&panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Reports a panic of a greenlet with its name; others go to `previous`.
fn report(info: &panic::PanicHookInfo<'_>, previous: &Hook) {
    let who = match who_panicked() {
        Some(Panicker::Greenlet(name)) => format!("greenlet '{name}'"),
        // Not the thread's main code, as std's hook would say.
        Some(Panicker::Hub) => "a gevent hub callback (a link, or a destructor the hub runs)".to_owned(),
        None => return previous(info),
    };
    let msg = super::life::panic_message(info.payload());
    let loc = info.location().map(|l| format!(" at {l}")).unwrap_or_default();
    report!("{who} panicked{loc}:\n{msg}{}", backtrace());
}

/// Stack a backtrace needs to be taken and printed (symbolized) in the
/// hook, on the panicking greenlet's stack.
const BACKTRACE_STACK: usize = 32 * 1024;

/// The backtrace std's hook would print: asked for by `RUST_BACKTRACE`
/// (any value but `0`), empty otherwise. Taken only where enough of the
/// stack is left: on a small or nearly full one, taking it would overflow
/// the stack (and abort) instead of reporting the panic.
fn backtrace() -> String {
    match std::env::var_os("RUST_BACKTRACE") {
        Some(v) if v != "0" => match stack_left() {
            Some(left) if left >= BACKTRACE_STACK => {
                format!("\nstack backtrace:\n{}", std::backtrace::Backtrace::force_capture())
            }
            _ => "\nnote: no backtrace: too little of this stack is left to take one (a larger stack_size shows it)"
                .to_owned(),
        },
        _ => String::new(),
    }
}

/// Bytes left below the stack pointer on the running greenlet's (or the
/// hub's) stack; `None` on another stack (a raw coroutine's).
fn stack_left() -> Option<usize> {
    let marker = 0u8;
    let sp = std::hint::black_box(&marker) as *const u8 as usize;
    let h = existing()?;
    let left = |s: &crate::stack::Stack| {
        let bottom = s.top() - s.size();
        (bottom..s.top()).contains(&sp).then(|| sp - bottom)
    };
    let core = h.core.try_borrow().ok()?;
    if core.current == HUB {
        return h.hub_stack.try_borrow().ok()?.as_ref().and_then(left);
    }
    core.greenlets.get(core.current)?.stack.as_ref().and_then(left)
}

enum Panicker {
    Greenlet(String),
    Hub,
}

/// Who runs: a greenlet (by name) or the hub; `None` for the main
/// greenlet (std's hook reports it as the thread).
fn who_panicked() -> Option<Panicker> {
    let h = existing()?;
    let core = h.core.try_borrow().ok()?;
    let me = core.current;
    if me == HUB {
        return Some(Panicker::Hub);
    }
    if me == core.main_key {
        return None;
    }
    let shared = core.greenlets.get(me)?.shared.clone();
    drop(core);
    Some(Panicker::Greenlet(shared.name()))
}

/// Fills `buf` with the overflow report if `addr` is in the guard page of
/// one of this thread's greenlet stacks (or the hub's); returns the message
/// length. Runs in the SIGSEGV handler: no allocation, no panics. The guard
/// check reads the stack pool only, so a fault inside the scheduler itself
/// (hub state borrowed) is still recognized; the name is best effort.
pub(super) fn overflow_report(addr: usize, buf: &mut [u8]) -> Option<usize> {
    use std::fmt::Write;
    let h = existing()?;
    // The guard list, not the pool: the pool is borrowed while a stack is
    // carved (system calls, on a greenlet's possibly nearly full stack).
    if !h.guards.is_guard(addr)? {
        return None;
    }
    let hits = |s: &crate::stack::Stack| {
        let (lo, hi) = s.guard_range();
        addr >= lo && addr < hi
    };
    let mut out = crate::stack::MsgBuf::new(buf);
    let in_hub = h.hub_stack.try_borrow().ok().and_then(|s| s.as_ref().map(hits)).unwrap_or(false);
    let core = h.core.try_borrow().ok();
    let owner = core.as_ref().and_then(|c| c.greenlets.iter().find(|(_, g)| g.stack.as_ref().is_some_and(hits)));
    // A stack no greenlet owns is a raw coroutine's: the greenlet running
    // it is the current one.
    let in_coroutine = owner.is_none();
    let owner = owner.or_else(|| core.as_ref().and_then(|c| Some((c.current, c.greenlets.get(c.current)?))));
    let extra = owner.and_then(|(_, g)| g.shared.0.extra.try_borrow().ok());
    let _ = match (in_hub, owner, extra.as_ref().and_then(|e| e.as_deref()?.name.as_deref())) {
        (true, _, _) => write!(out, "greenlet 'hub'"),
        (_, Some(_), Some(name)) => write!(out, "greenlet '{name}'"),
        (_, Some((_, g)), None) => write!(out, "greenlet 'Greenlet-{}'", g.shared.0.id),
        (_, None, _) => write!(out, "a greenlet (running the scheduler)"),
    };
    let _ = write!(out, " has overflowed its stack");
    if in_coroutine && owner.is_some() && !in_hub {
        let _ = write!(out, " (in a coroutine it runs)");
    }
    let _ = write!(out, "\nfatal runtime error: stack overflow, aborting\n");
    Some(out.len())
}
