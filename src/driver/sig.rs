//! The async-signal side of `gevent::signal`: one `sigaction` handler that,
//! for each hub subscribed to the signal, bumps a pending counter and writes
//! the hub's eventfd. Everything it touches is a static atomic.
//!
//! Invariant: a subscriber slot's fd is cleared, and handlers running on
//! other threads are waited out, before the slot is released, so a handler
//! never writes to an fd after its hub stopped listening.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};

use super::sys;

/// Signal numbers are `1..NSIG` (64 on Linux, real-time ones included).
pub(crate) const NSIG: usize = 65;
/// Hubs (threads) that can subscribe to one signal at a time.
pub(crate) const SUBSCRIBERS: usize = 32;

/// No subscriber in this slot.
const FREE: RawFd = -1;

struct Slot {
    /// The subscribing hub's eventfd, or [`FREE`].
    fd: AtomicI32,
    /// Deliveries since the hub last looked.
    pending: AtomicU32,
}

struct Row {
    /// Handlers currently running for this signal (on any thread).
    in_handler: AtomicU32,
    slots: [Slot; SUBSCRIBERS],
}

// Array-repeat initializers of the static tables below.
#[allow(clippy::declare_interior_mutable_const)]
const SLOT: Slot = Slot { fd: AtomicI32::new(FREE), pending: AtomicU32::new(0) };
#[allow(clippy::declare_interior_mutable_const)]
const ROW: Row = Row { in_handler: AtomicU32::new(0), slots: [SLOT; SUBSCRIBERS] };

static TABLE: [Row; NSIG] = [ROW; NSIG];

/// The action each caught signal had before ours (`None`: not caught by
/// us). Subscribing and unsubscribing hold this lock; the handler never does.
static PREVIOUS: Mutex<[Option<libc::sigaction>; NSIG]> = Mutex::new([None; NSIG]);

fn previous() -> MutexGuard<'static, [Option<libc::sigaction>; NSIG]> {
    PREVIOUS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Subscribes eventfd `fd` to `signum` (in `1..NSIG`), catching the signal
/// if nobody did yet; returns the slot to pass to [`take_pending`] and
/// [`unsubscribe`].
///
/// # Errors
/// When all [`SUBSCRIBERS`] slots of the signal are taken, or `sigaction`
/// refuses the signal.
pub(crate) fn subscribe(signum: i32, fd: RawFd) -> io::Result<usize> {
    let row = &TABLE[signum as usize];
    let mut previous = previous();
    let slot = row
        .slots
        .iter()
        .position(|s| s.fd.load(SeqCst) == FREE)
        .ok_or_else(|| io::Error::other(format!("gevent: more than {SUBSCRIBERS} hubs handle signal {signum}")))?;
    row.slots[slot].pending.store(0, SeqCst);
    row.slots[slot].fd.store(fd, SeqCst);
    if previous[signum as usize].is_none() {
        match catch(signum) {
            Ok(old) => previous[signum as usize] = Some(old),
            Err(e) => {
                release(row, slot);
                return Err(e);
            }
        }
    }
    Ok(slot)
}

/// Ends subscription `slot` of `signum`; the last one restores the action
/// the signal had before it was first caught.
pub(crate) fn unsubscribe(signum: i32, slot: usize) {
    let row = &TABLE[signum as usize];
    let mut previous = previous();
    release(row, slot);
    if row.slots.iter().all(|s| s.fd.load(SeqCst) == FREE) {
        if let Some(old) = previous[signum as usize].take() {
            // SAFETY: `old` is an action the kernel handed us for this signal.
            unsafe { libc::sigaction(signum, &old, std::ptr::null_mut()) };
        }
    }
}

/// Deliveries of `signum` to subscriber `slot` since the last call.
pub(crate) fn take_pending(signum: i32, slot: usize) -> u32 {
    TABLE[signum as usize].slots[slot].pending.swap(0, SeqCst)
}

/// Clears the slot, then waits until no handler can still hold its fd.
/// (A handler interrupting this thread finishes before we resume, so the
/// wait is only ever for handlers on other threads: a few instructions.)
fn release(row: &Row, slot: usize) {
    row.slots[slot].fd.store(FREE, SeqCst);
    while row.in_handler.load(SeqCst) != 0 {
        std::hint::spin_loop();
    }
    row.slots[slot].pending.store(0, SeqCst);
}

/// Installs [`on_signal`] for `signum`; returns the action it replaced.
fn catch(signum: i32) -> io::Result<libc::sigaction> {
    // SAFETY: sigaction is plain data; all-zero is a valid value, and
    // sigemptyset writes the one mask it is given.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
    // ONSTACK: a greenlet's stack may be nearly full when the signal comes.
    action.sa_flags = libc::SA_RESTART | libc::SA_ONSTACK;
    // SAFETY: `action.sa_mask` is a live sigset_t.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: a valid action whose handler is async-signal-safe (it only
    // touches static atomics and calls write(2)); `old` is a live out-value.
    sys::cvt(unsafe { libc::sigaction(signum, &action, &mut old) })?;
    Ok(old)
}

/// The signal handler: counts the delivery for every subscribed hub and
/// wakes it. Async-signal-safe: atomics and `write(2)`, errno preserved.
extern "C" fn on_signal(signum: libc::c_int) {
    let Some(row) = usize::try_from(signum).ok().and_then(|s| TABLE.get(s)) else { return };
    // SAFETY: __errno_location returns this thread's errno, always valid.
    let errno = unsafe { *libc::__errno_location() };
    row.in_handler.fetch_add(1, SeqCst);
    for slot in &row.slots {
        let fd = slot.fd.load(SeqCst);
        if fd != FREE {
            slot.pending.fetch_add(1, SeqCst);
            sys::eventfd_wake(fd);
        }
    }
    row.in_handler.fetch_sub(1, SeqCst);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}
