//! Operations, each one type carrying both its io_uring entry and its
//! non-blocking syscall (`kinds.rs`), and the one generic loop that runs
//! any of them on either backend ([`run`]).

/// An `io::Error` that is no OS error but an outcome of the runtime's own:
/// a marker type `$ty` (displayed as `$msg`), `$make()` making the error
/// and `$is(e)` recognising it.
macro_rules! marker_error {
    ($ty:ident, $msg:literal, $(#[$make_doc:meta])* $make:ident, $(#[$is_doc:meta])* $is:ident) => {
        #[derive(Debug)]
        struct $ty;

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($msg)
            }
        }

        impl std::error::Error for $ty {}

        $(#[$make_doc])*
        pub(crate) fn $make() -> io::Error {
            io::Error::other($ty)
        }

        $(#[$is_doc])*
        pub(crate) fn $is(e: &io::Error) -> bool {
            e.get_ref().is_some_and(|inner| inner.is::<$ty>())
        }
    };
}

mod cancel;
mod kinds;

pub(crate) use cancel::{cancelled, is_cancelled, Cancel};
pub(crate) use kinds::{accept, Connect, KeptConns, Read, ReadOrder, Recv, RecvFrom, Salvage, Send, SendTo, Write};

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types};

use super::{sys, timed_out, Interest};
use crate::hub::{park, with_driver, with_driver_current, TimerGuard};
use crate::timer::{Action, Backoff};

/// One I/O operation on one fd.
///
/// # Safety
/// The entry from [`entry`](Op::entry) may name memory (buffers, addresses)
/// only inside `self` or borrowed by `self` for its whole life: [`run`]
/// keeps `self` in place until the kernel completed the operation.
pub(crate) unsafe trait Op {
    /// Readiness the epoll backend waits for before retrying.
    const INTEREST: Interest;
    /// io_uring: the operation itself.
    fn entry(&mut self, fd: RawFd) -> squeue::Entry;
    /// epoll: the non-blocking syscall (`WouldBlock` to wait).
    fn attempt(&mut self, fd: RawFd) -> io::Result<usize>;
    /// io_uring: try the non-blocking syscall first, and go through the ring
    /// only if it would block. For sends: one usually completes at once
    /// (the socket buffer has room), and the syscall saves the ring's
    /// completion, a wake-up and a switch, half the ring traffic of an echo
    /// round trip. Always for a [`syscall_only`](Self::syscall_only) one.
    fn try_first(&self) -> bool {
        self.syscall_only()
    }
    /// io_uring (implies [`try_first`](Self::try_first)): once the syscall
    /// would block, wait for readiness and try it again rather than hand
    /// the operation to the ring. A datagram send: the kernel copies the
    /// datagram before it finds the peer's queue full, and the ring's retry
    /// of that send then goes out empty.
    fn syscall_only(&self) -> bool {
        false
    }
    /// A receive that ends when its socket's read half is shut down, yet
    /// would block: a datagram one, which the kernel answers `EAGAIN` when
    /// non-blocking where a blocking one returns 0. After readiness, the
    /// read half is checked ([`sys::read_shut`]); if so, the result is
    /// [`shut_result`](Self::shut_result).
    fn ends_when_shut(&self) -> bool {
        false
    }
    /// What a receive shut down returns (see
    /// [`ends_when_shut`](Self::ends_when_shut)): 0 bytes.
    fn shut_result(&mut self) -> usize {
        0
    }
    /// An `EAGAIN` right after readiness was reported is retried after a
    /// pause (1 ms, doubling to 64 ms) rather than after another wait: an
    /// unconnected Unix datagram send to a full receiver, whose own socket
    /// stays writable (each failed send even reports it writable again),
    /// so no readiness tells when the receiver has room; std's blocking
    /// send sleeps in the kernel instead.
    fn back_off(&self) -> bool {
        false
    }
    /// io_uring: the flags of the operation's completion (`IORING_CQE_F_*`).
    fn completed(&mut self, _flags: u32) {}
    /// Whether the entry may name its fd as a fixed file (the fd is its
    /// only file, and a source's: see `uring.rs`).
    const FIXED: bool = false;
    /// A result the caller will not see (it was killed meanwhile): keep
    /// what it carries for the next caller (an accepted connection, see
    /// [`KeptConns`]; received bytes, see [`Salvage`]).
    fn release(&mut self, _res: usize) {}
    /// io_uring: the greenlet unwinds with the operation in flight; called
    /// before it is cancelled, and [`left`](Self::left) once it completed
    /// (after any [`release`](Self::release)). A stream read marks itself
    /// dying meanwhile (see [`ReadOrder`]).
    fn leaving(&mut self) {}
    /// See [`leaving`](Self::leaving).
    fn left(&mut self) {}
    /// True when a result of `n` shows the fd's readiness used up: a
    /// stream read that got less than asked (the receive buffer is empty),
    /// a write that took less than given (the send buffer is full).
    fn drained(&self, _n: usize) -> bool {
        false
    }
    /// `EAGAIN` is no readiness to wait for but the operation's own
    /// outcome ([`again`]): a Unix-socket connect to a listener whose
    /// backlog is full, which no poll reports the end of.
    const AGAIN_IS_FINAL: bool = false;
}

// The error of an operation that must be tried again later (see
// [`Op::AGAIN_IS_FINAL`]).
marker_error!(
    Again,
    "resource temporarily unavailable (EAGAIN): try again later",
    /// The [`Op::AGAIN_IS_FINAL`] outcome.
    again,
    /// True for [`again`]'s error.
    is_again
);

/// The fd an operation runs on, with the id of the socket object owning it
/// (0 for a raw fd; see `epoll.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) fd: RawFd,
    pub(crate) id: u64,
    /// The source's home hub (`None`: a raw fd, never a fixed file).
    pub(crate) home: Option<&'a super::Home>,
}

/// Runs `op` to completion on the current hub's backend, parking the
/// current greenlet while it cannot proceed. `timeout` bounds the whole
/// operation from its first wait (an attempt that completes at once never
/// times out): past it, `TimedOut` (an io_uring operation is cancelled first
/// and, if it completed anyway, its result is returned instead).
///
/// # Blocking
/// Until the operation completes; kills and timeouts unwind out of it,
/// after an in-flight io_uring operation was cancelled and completed.
pub(crate) fn run<O: Op>(t: Target<'_>, op: &mut O, timeout: Option<Duration>) -> io::Result<usize> {
    run_until(t, op, &Deadline::new(timeout, None))
}

/// Runs `op` as a socket asks: one attempt in non-blocking mode (`once`:
/// `WouldBlock` rather than a wait), else [`run_cancellable`] with
/// `cancel` if given, else [`run`].
///
/// # Blocking
/// As [`run`] (not at all when `once`).
pub(crate) fn run_as<O: Op>(
    t: Target<'_>,
    op: &mut O,
    timeout: Option<Duration>,
    once: bool,
    cancel: Option<&Cancel>,
) -> io::Result<usize> {
    match cancel {
        _ if once => run_once(t, op),
        Some(c) => run_cancellable(t, op, timeout, c),
        None => run(t, op, timeout),
    }
}

/// [`run`], ended early by `cancel` (see [`Cancel`]): with its error when
/// the switch is on as the operation starts or waits, with the result
/// when the operation completed before its cancellation reached the
/// kernel.
///
/// # Blocking
/// As [`run`], or until `cancel` is turned on.
pub(crate) fn run_cancellable<O: Op>(
    t: Target<'_>,
    op: &mut O,
    timeout: Option<Duration>,
    cancel: &Cancel,
) -> io::Result<usize> {
    if cancel.requested() {
        return Err(cancelled());
    }
    let _entered = cancel.enter(crate::hub::current_key());
    run_until(t, op, &Deadline::new(timeout, Some(cancel)))
}

fn run_until<O: Op>(t: Target<'_>, op: &mut O, deadline: &Deadline<'_>) -> io::Result<usize> {
    let (uring, spent) = with_driver(|d| (d.uring().is_some(), d.spend()));
    if spent {
        crate::hub::yield_in_greenlet();
        if deadline.cancelled() {
            return Err(cancelled());
        }
    }
    if uring {
        run_uring(t, op, deadline)
    } else {
        run_epoll(t, op, deadline)
    }
}

/// Runs `op`'s non-blocking syscall once (again after `EINTR`), on either
/// backend: for a socket in non-blocking mode (`set_nonblocking`), whose
/// caller takes the `WouldBlock`.
pub(crate) fn run_once<O: Op>(t: Target<'_>, op: &mut O) -> io::Result<usize> {
    loop {
        match op.attempt(t.fd) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

/// The io_uring backend of the current hub (`run` chose it).
fn with_uring<R>(f: impl FnOnce(&super::uring::Uring) -> R) -> R {
    with_driver(|d| f(d.uring().expect("uring backend")))
}

/// The epoll backend of the current hub (`run` chose it).
fn with_epoll<R>(f: impl FnOnce(&super::epoll::Epoll) -> R) -> R {
    with_driver(|d| f(d.epoll().expect("epoll backend")))
}

/// An operation's time bound, counted from its first wait: an operation
/// that completes at once reads no clock, and each wait reads it once.
/// And the [`Cancel`] that may end its waits, if any.
struct Deadline<'a> {
    timeout: Option<Duration>,
    at: Cell<Option<Instant>>,
    cancel: Option<&'a Cancel>,
}

impl<'a> Deadline<'a> {
    fn new(timeout: Option<Duration>, cancel: Option<&'a Cancel>) -> Deadline<'a> {
        Deadline { timeout, at: Cell::new(None), cancel }
    }

    /// True when the operation's [`Cancel`] is on.
    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(Cancel::requested)
    }

    /// The time left at `now` (`None`: no bound), counted from the first
    /// call; `Err(TimedOut)` once none is.
    fn left(&self, now: Instant) -> io::Result<Option<Duration>> {
        let Some(timeout) = self.timeout else { return Ok(None) };
        let at = *self.at.get().get_or_insert(crate::timer::after(now, timeout));
        self.at.set(Some(at));
        let left = at.saturating_duration_since(now);
        if left.is_zero() {
            return Err(timed_out());
        }
        Ok(Some(left))
    }

    /// Arms the timer of a wait by the current greenlet: `Ok(None)`
    /// without a bound, `Err(TimedOut)` once it passed.
    fn arm(&self) -> io::Result<Option<TimerGuard>> {
        if self.cancelled() {
            return Err(cancelled());
        }
        if self.timeout.is_none() {
            return Ok(None);
        }
        let now = Instant::now();
        let left = self.left(now)?.expect("bounded");
        Ok(Some(TimerGuard::arm_from(now, left, Action::Wake(crate::hub::current_key()))))
    }

    /// Sleeps the next pause of `pause`, at most the time left
    /// ([`Op::back_off`]).
    fn pause(&self, pause: &mut Backoff) -> io::Result<()> {
        let left = self.left(Instant::now())?;
        pause.sleep(left);
        Ok(())
    }
}

/// The pauses of an [`Op::back_off`] operation.
fn back_off_pauses() -> Backoff {
    Backoff::new(Duration::from_millis(1), Duration::from_millis(64))
}

/// After readiness was reported, the syscall would still block: `Some`
/// result when a receive's read half is shut down
/// ([`Op::ends_when_shut`]); else, for an [`Op::back_off`] operation,
/// pauses. `None`: try again.
fn blocked_after_ready<O: Op>(
    op: &mut O,
    fd: RawFd,
    deadline: &Deadline<'_>,
    pause: &mut Backoff,
) -> io::Result<Option<usize>> {
    if op.ends_when_shut() && sys::read_shut(fd) {
        return Ok(Some(op.shut_result()));
    }
    if op.back_off() {
        deadline.pause(pause)?;
    }
    Ok(None)
}

fn run_epoll<O: Op>(t: Target<'_>, op: &mut O, deadline: &Deadline<'_>) -> io::Result<usize> {
    let mut wait_first = with_epoll(|e| e.known_unready(t.fd, t.id, O::INTEREST));
    let mut pause = back_off_pauses();
    loop {
        if wait_first {
            wait_ready(t, O::INTEREST, deadline)?;
        }
        match op.attempt(t.fd) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // A half shut down is sticky in the registration (an
                // `EPOLLRDHUP` edge, an error, the socket's own
                // `shutdown`): only then is it worth asking the kernel.
                let shut = || with_epoll(|e| e.is_shut(t.fd, t.id, O::INTEREST));
                if op.ends_when_shut() && shut() && sys::read_shut(t.fd) {
                    return Ok(op.shut_result());
                }
                if wait_first && op.back_off() {
                    deadline.pause(&mut pause)?;
                    wait_first = false; // paused instead of waiting
                    continue;
                }
                wait_first = true;
                with_epoll(|e| e.clear_ready(t.fd, t.id, O::INTEREST))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => wait_first = false,
            Ok(n) => {
                if op.drained(n) {
                    // The buffer was emptied (or filled): the next call
                    // waits for the next edge without trying first.
                    with_epoll(|e| e.clear_ready(t.fd, t.id, O::INTEREST));
                }
                return Ok(n);
            }
            Err(e) => return Err(e),
        }
    }
}

/// epoll: waits for the next edge of `interest` on the target.
fn wait_ready(t: Target<'_>, interest: Interest, deadline: &Deadline<'_>) -> io::Result<()> {
    let timer = deadline.arm()?;
    let (reg, wk) = with_driver_current(|me, d| {
        d.refill();
        d.epoll().expect("epoll backend").enlist(t.fd, t.id, interest, me)
    })?;
    struct Delist(usize, Interest, crate::wait::WaitKey);
    impl Drop for Delist {
        fn drop(&mut self) {
            with_epoll(|e| e.delist(self.0, self.1, self.2));
        }
    }
    let _delist = Delist(reg, interest, wk);
    loop {
        park();
        // Before the readiness: on epoll, a connection or datagram waits
        // in the kernel, and the readiness stays recorded for the next try.
        if deadline.cancelled() {
            return Err(cancelled());
        }
        if !with_epoll(|e| e.listed(reg, interest, wk)) {
            return Ok(());
        }
        if timer.as_ref().is_some_and(|t| t.fired()) {
            return Err(timed_out());
        }
    }
}

fn run_uring<O: Op>(t: Target<'_>, op: &mut O, deadline: &Deadline<'_>) -> io::Result<usize> {
    if op.try_first() {
        let (mut polled, mut pause) = (false, back_off_pauses());
        loop {
            match op.attempt(t.fd) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && op.syscall_only() => {
                    if polled {
                        if let Some(n) = blocked_after_ready(op, t.fd, deadline, &mut pause)? {
                            return Ok(n);
                        }
                        if op.back_off() {
                            continue; // paused instead
                        }
                    }
                    let (res, _) = submit_and_wait(t, &mut Poll(O::INTEREST), deadline)?;
                    sys::cvt_res(res)?;
                    polled = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                r => return r,
            }
        }
    }
    loop {
        let (res, flags) = submit_and_wait(t, op, deadline)?;
        op.completed(flags);
        if res == -libc::EAGAIN && O::AGAIN_IS_FINAL {
            return Err(again());
        }
        if res == -libc::EAGAIN {
            // A kernel that does not arm a poll for non-blocking files:
            // wait for readiness, then submit again.
            submit_and_wait(t, &mut Poll(O::INTEREST), deadline)?;
            continue;
        }
        return sys::cvt_res(res);
    }
}

/// An operation in flight; dropped before its completion (the greenlet
/// unwinds), it cancels the operation and waits for the completion, so no
/// kernel write outlives the memory it names.
struct InFlight<'a, O: Op> {
    slot: usize,
    op: &'a mut O,
    done: bool,
}

impl<O: Op> Drop for InFlight<'_, O> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.op.leaving();
        with_uring(|u| u.cancel(self.slot));
        loop {
            if let Some((res, _)) = with_uring(|u| u.take(self.slot)) {
                if res >= 0 {
                    self.op.release(res as usize);
                }
                self.op.left();
                return;
            }
            // Unwinding already: a second kill is deferred, timeouts of
            // the scopes being left are dropped (hub::interrupt).
            park();
        }
    }
}

/// Submits `op` and waits for its completion: its result and flags;
/// `Err(TimedOut)` only if the deadline passed and the cancellation won
/// (the [`cancelled`] error likewise when its [`Cancel`] was turned on).
fn submit_and_wait<O: Op>(t: Target<'_>, op: &mut O, deadline: &Deadline<'_>) -> io::Result<(i32, u32)> {
    let timer = deadline.arm()?;
    let entry = op.entry(t.fd);
    let slot = with_driver_current(|me, d| {
        // A hub callback may not park: refused before anything is in
        // flight (parking with it in flight, the unwind's InFlight would
        // park again, panicking while panicking: an abort).
        if crate::hub::is_hub(me) {
            return None;
        }
        // The entry names the fd by number, and a fixed file's slot is its
        // number: the flag alone makes it one.
        let entry = if O::FIXED && d.fixed_file(t) { entry.flags(squeue::Flags::FIXED_FILE) } else { entry };
        d.refill();
        Some(d.uring().expect("uring backend").start(entry, me))
    })
    .unwrap_or_else(|| panic!("{}", crate::hub::HUB_BLOCKING));
    let mut flight = InFlight { slot, op, done: false };
    // A wait on a bare fd number is listed while it is in flight: a close
    // of that fd cancels it (`Uring::cancel_raw_waits`).
    let _raw = (t.id == 0).then(|| RawWait::start(t.fd, slot));
    // Why the operation was cancelled: its deadline passed, or its
    // `Cancel` was turned on (which may be off again by its completion).
    let mut stopped: Option<fn() -> io::Error> = None;
    let (res, flags) = loop {
        park();
        if let Some(done) = with_uring(|u| u.take(slot)) {
            break done;
        }
        if stopped.is_some() {
            continue;
        }
        if timer.as_ref().is_some_and(|t| t.fired()) {
            stopped = Some(timed_out);
        } else if deadline.cancelled() {
            stopped = Some(cancelled);
        } else {
            continue;
        }
        with_uring(|u| u.cancel(slot));
    };
    flight.done = true;
    match stopped {
        Some(why) if res == -libc::ECANCELED => Err(why()),
        _ => Ok((res, flags)),
    }
}

/// Waits for readiness only (`wait_read`, `wait_write`, and the io_uring
/// `EAGAIN` fallback).
pub(crate) struct Poll(pub(crate) Interest);

// SAFETY: the entry names no memory.
unsafe impl Op for Poll {
    const INTEREST: Interest = Interest::Read;
    fn entry(&mut self, fd: RawFd) -> squeue::Entry {
        opcode::PollAdd::new(types::Fd(fd), sys::poll_bits(self.0) as u32).build()
    }
    fn attempt(&mut self, fd: RawFd) -> io::Result<usize> {
        match sys::ready_now(fd, self.0)? {
            true => Ok(1),
            false => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// A readiness wait on a bare fd in flight on io_uring (see
/// `Uring::cancel_raw_waits`), listed by its slot until dropped.
struct RawWait(RawFd, usize);

impl RawWait {
    fn start(fd: RawFd, slot: usize) -> RawWait {
        with_uring(|u| u.raw_wait(fd, slot, true));
        RawWait(fd, slot)
    }
}

impl Drop for RawWait {
    fn drop(&mut self) {
        with_uring(|u| u.raw_wait(self.0, self.1, false));
    }
}

/// Runs a readiness wait: `Poll`'s interest varies per call, so it gets
/// its own entry point.
pub(crate) fn wait(t: Target<'_>, interest: Interest, timeout: Option<Duration>) -> io::Result<()> {
    let deadline = &Deadline::new(timeout, None);
    let mut p = Poll(interest);
    if with_driver(|d| d.uring().is_some()) {
        if timeout.is_some_and(|t| t.is_zero()) {
            // A poll, not a wait (as on epoll, which tries first): the
            // ring would see no time left before it asked the kernel.
            return match p.attempt(t.fd) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(timed_out()),
                Err(e) => Err(e),
            };
        }
        // `submit_and_wait` returns, or unwinds, only once the operation
        // completed. A wait on a bare fd cancelled by the fd's close ends
        // as on epoll, where the retry finds the fd closed.
        let (res, _) = submit_and_wait(t, &mut p, deadline)?;
        if res == -libc::ECANCELED && t.id == 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        return sys::cvt_res(res).map(drop);
    }
    loop {
        match p.attempt(t.fd) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_ready(t, interest, deadline)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
