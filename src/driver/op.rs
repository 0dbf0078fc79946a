//! Operations, each one type carrying both its io_uring entry and its
//! non-blocking syscall, and the one generic loop that runs any of them on
//! either backend ([`run`]).

use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types};
use socket2::{SockAddr, SockAddrStorage};

use super::{sys, timed_out, Interest};
use crate::hub::{current_key, park, with_driver, TimerGuard};
use crate::timer::Action;

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
    /// A result the caller will not see (it was killed meanwhile): release
    /// what it carries (an accepted fd).
    fn release(_res: usize) {}
    /// True when a result of `n` shows the fd's readiness used up: a
    /// stream read that got less than asked (the receive buffer is empty),
    /// a write that took less than given (the send buffer is full).
    fn drained(&self, _n: usize) -> bool {
        false
    }
}

/// The fd an operation runs on, with the id of the socket object owning it
/// (0 for a raw fd; see `epoll.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    pub(crate) fd: RawFd,
    pub(crate) id: u64,
}

/// Runs `op` to completion on the current hub's backend, parking the
/// current greenlet while it cannot proceed. `timeout` bounds the whole
/// operation: past it, `TimedOut` (an io_uring operation is cancelled first
/// and, if it completed anyway, its result is returned instead).
///
/// # Blocking
/// Until the operation completes; kills and timeouts unwind out of it,
/// after an in-flight io_uring operation was cancelled and completed.
pub(crate) fn run<O: Op>(t: Target, op: &mut O, timeout: Option<Duration>) -> io::Result<usize> {
    let deadline = timeout.map(|d| Instant::now() + d);
    if with_driver(|d| d.uring().is_some()) {
        run_uring(t, op, deadline)
    } else {
        run_epoll(t, op, deadline)
    }
}

fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

fn run_epoll<O: Op>(t: Target, op: &mut O, deadline: Option<Instant>) -> io::Result<usize> {
    let epoll = |f: &dyn Fn(&super::epoll::Epoll)| with_driver(|d| f(d.epoll().expect("epoll backend")));
    let mut wait_first = with_driver(|d| d.epoll().expect("epoll backend").known_unready(t.fd, t.id, O::INTEREST));
    loop {
        if wait_first {
            wait_ready(t, O::INTEREST, deadline)?;
        }
        wait_first = true;
        match op.attempt(t.fd) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => epoll(&|e| e.clear_ready(t.fd, t.id, O::INTEREST)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => wait_first = false,
            Ok(n) => {
                if op.drained(n) {
                    // The buffer was emptied (or filled): the next call
                    // waits for the next edge without trying first.
                    epoll(&|e| e.clear_ready(t.fd, t.id, O::INTEREST));
                }
                return Ok(n);
            }
            Err(e) => return Err(e),
        }
    }
}

/// epoll: waits for the next edge of `interest` on the target.
fn wait_ready(t: Target, interest: Interest, deadline: Option<Instant>) -> io::Result<()> {
    if remaining(deadline).is_some_and(|d| d.is_zero()) {
        return Err(timed_out());
    }
    let me = current_key();
    let (reg, wk) = with_driver(|d| d.epoll().expect("epoll backend").enlist(t.fd, t.id, interest, me))?;
    struct Delist(usize, Interest, crate::wait::WaitKey);
    impl Drop for Delist {
        fn drop(&mut self) {
            with_driver(|d| d.epoll().expect("epoll backend").delist(self.0, self.1, self.2));
        }
    }
    let _delist = Delist(reg, interest, wk);
    let timer = remaining(deadline).map(|d| TimerGuard::arm(d, Action::Wake(me)));
    loop {
        park();
        if !with_driver(|d| d.epoll().expect("epoll backend").listed(reg, interest, wk)) {
            return Ok(());
        }
        if timer.as_ref().is_some_and(|t| t.fired()) {
            return Err(timed_out());
        }
    }
}

fn run_uring<O: Op>(t: Target, op: &mut O, deadline: Option<Instant>) -> io::Result<usize> {
    loop {
        let res = submit_and_wait(t.fd, op, deadline)?;
        if res == -libc::EAGAIN {
            // A kernel that does not arm a poll for non-blocking files:
            // wait for readiness, then submit again.
            submit_and_wait(t.fd, &mut Poll(O::INTEREST), deadline)?;
            continue;
        }
        return sys::cvt_res(res);
    }
}

/// An operation in flight; dropped before its completion (the greenlet
/// unwinds), it cancels the operation and waits for the completion, so no
/// kernel write outlives the memory it names.
struct InFlight {
    slot: usize,
    release: fn(usize),
    done: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        with_driver(|d| d.uring().expect("uring backend").cancel(self.slot));
        loop {
            if let Some(res) = with_driver(|d| d.uring().expect("uring backend").take(self.slot)) {
                if res >= 0 {
                    (self.release)(res as usize);
                }
                return;
            }
            // Unwinding already: a second kill is deferred, timeouts of
            // the scopes being left are dropped (hub::interrupt).
            park();
        }
    }
}

/// Submits `op` and waits for its completion; `Err(TimedOut)` only if the
/// deadline passed and the cancellation won.
fn submit_and_wait<O: Op>(fd: RawFd, op: &mut O, deadline: Option<Instant>) -> io::Result<i32> {
    if remaining(deadline).is_some_and(|d| d.is_zero()) {
        return Err(timed_out());
    }
    let me = current_key();
    let entry = op.entry(fd);
    let slot = with_driver(|d| d.uring().expect("uring backend").start(entry, me));
    let mut flight = InFlight { slot, release: O::release, done: false };
    let timer = remaining(deadline).map(|d| TimerGuard::arm(d, Action::Wake(me)));
    let mut cancelled = false;
    let res = loop {
        park();
        if let Some(res) = with_driver(|d| d.uring().expect("uring backend").take(slot)) {
            break res;
        }
        if !cancelled && timer.as_ref().is_some_and(|t| t.fired()) {
            with_driver(|d| d.uring().expect("uring backend").cancel(slot));
            cancelled = true;
        }
    };
    flight.done = true;
    if cancelled && res == -libc::ECANCELED {
        return Err(timed_out());
    }
    Ok(res)
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

/// Runs a readiness wait: `Poll`'s interest varies per call, so it gets
/// its own entry point.
pub(crate) fn wait(t: Target, interest: Interest, timeout: Option<Duration>) -> io::Result<()> {
    let deadline = timeout.map(|d| Instant::now() + d);
    let mut p = Poll(interest);
    if with_driver(|d| d.uring().is_some()) {
        let res = submit_and_wait(t.fd, &mut p, deadline)?;
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

/// `recv(2)` into a buffer.
pub(crate) struct Recv<'a> {
    pub(crate) buf: &'a mut [u8],
    pub(crate) flags: i32,
    /// A stream socket (a short read means the buffer is empty; not so
    /// for datagrams).
    pub(crate) stream: bool,
}

// SAFETY: the entry names `buf`, borrowed for the op's life.
unsafe impl Op for Recv<'_> {
    const INTEREST: Interest = Interest::Read;
    fn entry(&mut self, fd: RawFd) -> squeue::Entry {
        let len = self.buf.len().min(u32::MAX as usize) as u32;
        opcode::Recv::new(types::Fd(fd), self.buf.as_mut_ptr(), len).flags(self.flags).build()
    }
    fn attempt(&mut self, fd: RawFd) -> io::Result<usize> {
        // SAFETY: writes at most `len` bytes into the live buffer.
        let n =
            unsafe { libc::recv(fd, self.buf.as_mut_ptr().cast(), self.buf.len(), self.flags | libc::MSG_DONTWAIT) };
        sys::cvt(n).map(|n| n as usize)
    }
    fn drained(&self, n: usize) -> bool {
        self.stream && n > 0 && n < self.buf.len() && self.flags & libc::MSG_PEEK == 0
    }
}

/// `send(2)` from a buffer (never raising SIGPIPE).
pub(crate) struct Send<'a> {
    pub(crate) buf: &'a [u8],
}

// SAFETY: the entry names `buf`, borrowed for the op's life.
unsafe impl Op for Send<'_> {
    const INTEREST: Interest = Interest::Write;
    fn entry(&mut self, fd: RawFd) -> squeue::Entry {
        let len = self.buf.len().min(u32::MAX as usize) as u32;
        opcode::Send::new(types::Fd(fd), self.buf.as_ptr(), len).flags(libc::MSG_NOSIGNAL).build()
    }
    fn attempt(&mut self, fd: RawFd) -> io::Result<usize> {
        let flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
        // SAFETY: reads at most `len` bytes of the live buffer.
        let n = unsafe { libc::send(fd, self.buf.as_ptr().cast(), self.buf.len(), flags) };
        sys::cvt(n).map(|n| n as usize)
    }
    fn drained(&self, n: usize) -> bool {
        n < self.buf.len()
    }
}

/// `read(2)` (pipes, ttys, eventfds).
pub(crate) struct Read<'a> {
    pub(crate) buf: &'a mut [u8],
}

// SAFETY: the entry names `buf`, borrowed for the op's life.
unsafe impl Op for Read<'_> {
    const INTEREST: Interest = Interest::Read;
    fn entry(&mut self, fd: RawFd) -> squeue::Entry {
        let len = self.buf.len().min(u32::MAX as usize) as u32;
        opcode::Read::new(types::Fd(fd), self.buf.as_mut_ptr(), len).offset(u64::MAX).build()
    }
    fn attempt(&mut self, fd: RawFd) -> io::Result<usize> {
        // SAFETY: writes at most `len` bytes into the live buffer.
        let n = unsafe { libc::read(fd, self.buf.as_mut_ptr().cast(), self.buf.len()) };
        sys::cvt(n).map(|n| n as usize)
    }
}

/// `write(2)` (pipes, ttys).
pub(crate) struct Write<'a> {
    pub(crate) buf: &'a [u8],
}

// SAFETY: the entry names `buf`, borrowed for the op's life.
unsafe impl Op for Write<'_> {
    const INTEREST: Interest = Interest::Write;
    fn entry(&mut self, fd: RawFd) -> squeue::Entry {
        let len = self.buf.len().min(u32::MAX as usize) as u32;
        opcode::Write::new(types::Fd(fd), self.buf.as_ptr(), len).offset(u64::MAX).build()
    }
    fn attempt(&mut self, fd: RawFd) -> io::Result<usize> {
        // SAFETY: reads at most `len` bytes of the live buffer.
        let n = unsafe { libc::write(fd, self.buf.as_ptr().cast(), self.buf.len()) };
        sys::cvt(n).map(|n| n as usize)
    }
}

/// `accept4(2)`: a new non-blocking, close-on-exec fd and the peer address.
pub(crate) struct Accept {
    addr: SockAddrStorage,
    len: libc::socklen_t,
}

impl Default for Accept {
    fn default() -> Self {
        let addr = SockAddrStorage::zeroed();
        Accept { len: addr.size_of(), addr }
    }
}

impl Accept {
    /// The peer's address, once the accept completed.
    pub(crate) fn peer(self) -> SockAddr {
        // SAFETY: the kernel initialized the first `len` bytes of `addr`
        // (a zeroed storage is valid for any prefix it left).
        unsafe { SockAddr::new(self.addr, self.len) }
    }

    fn addr_ptr(&mut self) -> *mut libc::sockaddr {
        // `SockAddrStorage` is a transparent `sockaddr_storage`.
        (&mut self.addr as *mut SockAddrStorage).cast()
    }
}

const ACCEPT_FLAGS: i32 = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;

// SAFETY: the entry names `addr` and `len`, fields of `self`.
unsafe impl Op for Accept {
    const INTEREST: Interest = Interest::Read;
    fn entry(&mut self, fd: RawFd) -> squeue::Entry {
        let addr = self.addr_ptr();
        opcode::Accept::new(types::Fd(fd), addr, &mut self.len).flags(ACCEPT_FLAGS).build()
    }
    fn attempt(&mut self, fd: RawFd) -> io::Result<usize> {
        let addr = self.addr_ptr();
        // SAFETY: the kernel writes at most `len` bytes into `addr`.
        let n = unsafe { libc::accept4(fd, addr, &mut self.len, ACCEPT_FLAGS) };
        sys::cvt(n).map(|n| n as usize)
    }
    fn release(res: usize) {
        // SAFETY: an accepted fd nobody else owns (its caller unwound).
        unsafe { libc::close(res as RawFd) };
    }
}

/// Accepts a connection on listener `t`: the new socket (non-blocking
/// already: `SOCK_NONBLOCK`) and the peer's address.
///
/// # Blocking
/// As [`run`].
pub(crate) fn accept(t: Target, timeout: Option<Duration>) -> io::Result<(super::Source, SockAddr)> {
    let mut a = Accept::default();
    let fd = run(t, &mut a, timeout)?;
    // SAFETY: a completed accept's result is a new fd that nobody else
    // owns; `run` returned it to us alone.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as RawFd) };
    Ok((super::Source::from_nonblocking(fd), a.peer()))
}

/// `connect(2)`; on epoll, `EINPROGRESS` waits for writability and reads
/// the outcome from `SO_ERROR`.
pub(crate) struct Connect<'a> {
    pub(crate) addr: &'a SockAddr,
    pub(crate) started: bool,
}

// SAFETY: the entry names `addr`, borrowed for the op's life.
unsafe impl Op for Connect<'_> {
    const INTEREST: Interest = Interest::Write;
    fn entry(&mut self, fd: RawFd) -> squeue::Entry {
        opcode::Connect::new(types::Fd(fd), self.addr.as_ptr().cast(), self.addr.len()).build()
    }
    fn attempt(&mut self, fd: RawFd) -> io::Result<usize> {
        if self.started {
            return match sys::socket_error(fd)? {
                None => Ok(0),
                Some(e) => Err(e),
            };
        }
        self.started = true;
        // SAFETY: the kernel reads `len` bytes of the live address.
        match sys::cvt(unsafe { libc::connect(fd, self.addr.as_ptr().cast(), self.addr.len()) }) {
            // Interrupted, a connect goes on asynchronously, as one in progress.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINPROGRESS | libc::EINTR)) => {
                Err(io::ErrorKind::WouldBlock.into())
            }
            r => r.map(|_| 0),
        }
    }
}

/// `recvmsg(2)` with a source address (UDP `recv_from`).
pub(crate) struct RecvFrom<'a> {
    buf: &'a mut [u8],
    addr: SockAddrStorage,
    iov: libc::iovec,
    msg: libc::msghdr,
}

impl<'a> RecvFrom<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        let iov = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
        // SAFETY: msghdr is a plain C struct; all-zero is valid.
        RecvFrom { buf, addr: SockAddrStorage::zeroed(), iov, msg: unsafe { std::mem::zeroed() } }
    }

    /// Points the msghdr at this op's own fields (they do not move while
    /// the op runs: `run` holds `&mut self`).
    fn prepare(&mut self) -> *mut libc::msghdr {
        self.iov = libc::iovec { iov_base: self.buf.as_mut_ptr().cast(), iov_len: self.buf.len() };
        self.msg.msg_name = (&mut self.addr as *mut SockAddrStorage).cast();
        self.msg.msg_namelen = self.addr.size_of();
        self.msg.msg_iov = &mut self.iov;
        self.msg.msg_iovlen = 1;
        &mut self.msg
    }

    /// The sender's address, once the receive completed.
    pub(crate) fn peer(self) -> SockAddr {
        // SAFETY: the kernel initialized `msg_namelen` bytes of `addr`.
        unsafe { SockAddr::new(self.addr, self.msg.msg_namelen) }
    }
}

// SAFETY: the entry names `msg`, which names `iov`, `addr` (fields of
// `self`) and `buf` (borrowed for the op's life).
unsafe impl Op for RecvFrom<'_> {
    const INTEREST: Interest = Interest::Read;
    fn entry(&mut self, fd: RawFd) -> squeue::Entry {
        let msg = self.prepare();
        opcode::RecvMsg::new(types::Fd(fd), msg).build()
    }
    fn attempt(&mut self, fd: RawFd) -> io::Result<usize> {
        let msg = self.prepare();
        // SAFETY: `msg` names live buffers of the sizes it states.
        sys::cvt(unsafe { libc::recvmsg(fd, msg, libc::MSG_DONTWAIT) }).map(|n| n as usize)
    }
}

/// `sendmsg(2)` to an address (UDP `send_to`).
pub(crate) struct SendTo<'a> {
    buf: &'a [u8],
    addr: &'a SockAddr,
    iov: libc::iovec,
    msg: libc::msghdr,
}

impl<'a> SendTo<'a> {
    pub(crate) fn new(buf: &'a [u8], addr: &'a SockAddr) -> Self {
        let iov = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
        // SAFETY: msghdr is a plain C struct; all-zero is valid.
        SendTo { buf, addr, iov, msg: unsafe { std::mem::zeroed() } }
    }

    fn prepare(&mut self) -> *mut libc::msghdr {
        self.iov = libc::iovec { iov_base: self.buf.as_ptr() as *mut _, iov_len: self.buf.len() };
        self.msg.msg_name = self.addr.as_ptr() as *mut _;
        self.msg.msg_namelen = self.addr.len();
        self.msg.msg_iov = &mut self.iov;
        self.msg.msg_iovlen = 1;
        &mut self.msg
    }
}

// SAFETY: as `RecvFrom`; the kernel only reads through this msghdr.
unsafe impl Op for SendTo<'_> {
    const INTEREST: Interest = Interest::Write;
    fn entry(&mut self, fd: RawFd) -> squeue::Entry {
        let msg = self.prepare();
        opcode::SendMsg::new(types::Fd(fd), msg).flags(libc::MSG_NOSIGNAL as u32).build()
    }
    fn attempt(&mut self, fd: RawFd) -> io::Result<usize> {
        let msg = self.prepare();
        // SAFETY: `msg` names live buffers of the sizes it states.
        sys::cvt(unsafe { libc::sendmsg(fd, msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) }).map(|n| n as usize)
    }
}
