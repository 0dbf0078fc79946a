//! The operation types: each carries its io_uring entry and its
//! non-blocking syscall.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use io_uring::{opcode, squeue, types};
use socket2::{SockAddr, SockAddrStorage};

use super::{Op, Target};
use crate::driver::{sys, Interest};

/// `recv(2)` into a buffer.
pub(crate) struct Recv<'a> {
    pub(crate) buf: &'a mut [u8],
    pub(crate) flags: i32,
    /// A stream socket (a short read means the buffer is empty; not so
    /// for datagrams).
    pub(crate) stream: bool,
    /// io_uring: the socket is most likely empty (its last receive was
    /// short), so the kernel should wait for data before it tries the
    /// receive rather than fail a first try ([`RECVSEND_POLL_FIRST`]).
    pub(crate) poll_first: bool,
    /// io_uring: the last receive filled its buffer, so more data is most
    /// likely queued: the syscall is tried first.
    pub(crate) syscall_first: bool,
    /// Where bytes go that the kernel received for a reader killed
    /// meanwhile (a stream's [`Salvage`]; `None`: they are dropped, as a
    /// datagram is).
    pub(crate) salvage: Option<Keep<'a>>,
    /// A stream's readers, which this one's unwind holds up (see
    /// [`ReadOrder`]).
    pub(crate) order: Option<&'a ReadOrder>,
}

impl<'a> Recv<'a> {
    /// A receive with no hints and nothing kept for a killed reader (a
    /// datagram's, a peek behind kept bytes).
    pub(crate) fn plain(buf: &'a mut [u8], flags: i32, stream: bool) -> Recv<'a> {
        Recv { buf, flags, stream, poll_first: false, syscall_first: false, salvage: None, order: None }
    }
}

/// Takes the bytes of a killed reader's receive (see [`Salvage`]).
pub(crate) type Keep<'a> = &'a dyn Fn(&[u8]);

/// Bytes an io_uring receive took from the kernel for a reader that was
/// killed (or left a `with_timeout` scope) before the cancellation reached
/// the kernel: the socket's next read returns them first, so a stream
/// loses nothing to an interrupted read (on epoll the bytes stay in the
/// kernel).
#[derive(Debug, Default)]
pub(crate) struct Salvage {
    /// True while `bytes` holds any (read without the lock).
    any: AtomicBool,
    bytes: std::sync::Mutex<Vec<u8>>,
    /// The stream's readers (a pipe's; a socket keeps its own).
    pub(crate) order: ReadOrder,
}

/// Keeps a stream's reads in order around a killed reader (io_uring): a
/// read that starts while another reader of the stream is being killed
/// waits until that reader's cancelled operation completed and its bytes
/// were kept ([`Salvage`]), so they come first. (`kill_nowait` on a reader,
/// then a read of the same stream at once: the killed reader's receive may
/// already hold the stream's next bytes, unseen.)
#[derive(Debug, Default)]
pub(crate) struct ReadOrder {
    /// Reads under way ([`reading`](Self::reading)).
    readers: AtomicU32,
    /// Readers unwinding with their operation in flight: until it
    /// completed, the bytes it may hold are not kept yet.
    dying: AtomicU32,
    /// The hub of the last reader that started dying
    /// ([`crate::hub::uring_greenlet_hub`]): a read on another thread
    /// does not wait for it (that hub may be busy, or waiting for this
    /// thread).
    dying_hub: AtomicUsize,
}

/// One read of a stream under way, counted until dropped (see
/// [`ReadOrder::reading`]).
pub(crate) struct Reading<'a>(&'a ReadOrder);

impl Drop for Reading<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.readers.fetch_sub(1, Ordering::Release);
    }
}

impl ReadOrder {
    /// Call before a blocking read of the stream takes kept bytes or
    /// starts its operation. If another read of it is under way, lets a
    /// reader killed just now run (it unwinds at its next turn) and waits
    /// until every killed reader of this hub has its operation completed,
    /// so their bytes are kept before this read looks. Only yields (a
    /// cancellation completes at once). Only on io_uring (on epoll a parked
    /// read holds no bytes) and in a greenlet (a hub callback may not
    /// switch); not for a non-blocking read, which never switches.
    #[inline]
    pub(crate) fn settle(&self) {
        if self.readers.load(Ordering::Acquire) != 0 {
            self.settle_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn settle_slow(&self) {
        let Some(hub) = crate::hub::uring_greenlet_hub() else { return };
        crate::hub::yield_now();
        while self.dying.load(Ordering::Acquire) != 0 && self.dying_hub.load(Ordering::Acquire) == hub {
            crate::hub::yield_now();
        }
    }

    /// Counts a read of the stream as under way until the guard drops
    /// (after its operation completed, or was cancelled and its bytes kept).
    #[inline]
    pub(crate) fn reading(&self) -> Reading<'_> {
        self.readers.fetch_add(1, Ordering::Acquire);
        Reading(self)
    }

    /// A reader unwinds with its operation in flight ([`Op::leaving`]; only
    /// on io_uring, in a greenlet).
    fn leaving(&self) {
        if let Some(hub) = crate::hub::uring_greenlet_hub() {
            self.dying_hub.store(hub, Ordering::Release);
        }
        self.dying.fetch_add(1, Ordering::AcqRel);
    }

    /// That operation completed, its bytes kept ([`Op::left`]).
    fn left(&self) {
        self.dying.fetch_sub(1, Ordering::Release);
    }
}

impl Salvage {
    /// Keeps `b` after any bytes kept before.
    pub(crate) fn keep(&self, b: &[u8]) {
        self.bytes.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(b);
        self.any.store(true, Ordering::Release);
    }

    /// Copies kept bytes into `buf` (taking them unless `peek`): how many,
    /// or `None` when none are kept.
    pub(crate) fn take(&self, buf: &mut [u8], peek: bool) -> Option<usize> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let mut bytes = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        if bytes.is_empty() {
            return None;
        }
        let n = buf.len().min(bytes.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        if !peek {
            bytes.drain(..n);
            if bytes.is_empty() {
                self.any.store(false, Ordering::Release);
            }
        }
        Some(n)
    }
}

/// `IORING_RECVSEND_POLL_FIRST` (`linux/io_uring.h`, Linux 5.19; the
/// `io-uring` crate keeps its constants private): a receive arms its poll
/// first and tries the socket only once it is readable. It only reorders
/// the kernel's work; the result is the same.
const RECVSEND_POLL_FIRST: u16 = 1;

// SAFETY: the entry names `buf`, borrowed for the op's life.
unsafe impl Op for Recv<'_> {
    const INTEREST: Interest = Interest::Read;
    const FIXED: bool = true;
    fn try_first(&self) -> bool {
        self.syscall_first
    }
    fn entry(&mut self, fd: RawFd) -> squeue::Entry {
        let len = self.buf.len().min(u32::MAX as usize) as u32;
        // On a likely empty socket, the kernel's first try would fail and
        // cost a socket lock (measured on the echo benchmark, per server
        // CPU-second: +1.2% at 64 connections, +5.4% at 1,000). Older
        // kernels refuse the flag.
        let prio = if self.poll_first && sys::kernel_at_least(5, 19) { RECVSEND_POLL_FIRST } else { 0 };
        opcode::Recv::new(types::Fd(fd), self.buf.as_mut_ptr(), len).flags(self.flags).ioprio(prio).build()
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
    fn release(&mut self, res: usize) {
        if let Some(keep) = self.salvage.filter(|_| self.flags & libc::MSG_PEEK == 0) {
            keep(&self.buf[..res.min(self.buf.len())]);
        }
    }
    fn leaving(&mut self) {
        self.order.inspect(|o| o.leaving());
    }
    fn left(&mut self) {
        self.order.inspect(|o| o.left());
    }
    fn ends_when_shut(&self) -> bool {
        !self.stream
    }
}

/// `send(2)` from a buffer (never raising SIGPIPE).
pub(crate) struct Send<'a> {
    pub(crate) buf: &'a [u8],
    /// A datagram socket's (see [`Op::syscall_only`]).
    pub(crate) datagram: bool,
}

// SAFETY: the entry names `buf`, borrowed for the op's life.
unsafe impl Op for Send<'_> {
    const INTEREST: Interest = Interest::Write;
    fn try_first(&self) -> bool {
        true
    }
    fn syscall_only(&self) -> bool {
        self.datagram
    }
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
    /// Where bytes read for a reader killed meanwhile go (as [`Recv`]'s).
    pub(crate) salvage: &'a Salvage,
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
    fn release(&mut self, res: usize) {
        self.salvage.keep(&self.buf[..res.min(self.buf.len())]);
    }
    fn leaving(&mut self) {
        self.salvage.order.leaving();
    }
    fn left(&mut self) {
        self.salvage.order.left();
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
pub(crate) struct Accept<'a> {
    addr: SockAddrStorage,
    len: libc::socklen_t,
    /// io_uring: the listener had more connections queued after the last
    /// accept (`IORING_CQE_F_SOCK_NONEMPTY`, or an accept that succeeded
    /// without waiting).
    backlog: bool,
    /// Where a connection goes that the kernel accepted for an acceptor
    /// killed meanwhile (the listener's [`KeptConns`]).
    kept: &'a KeptConns,
}

/// Connections an io_uring accept took from the kernel for an acceptor
/// that was killed (or left a `with_timeout` scope) before the cancellation
/// reached the kernel: the listener's next accept returns them first,
/// oldest first, so no connection is lost to an interrupted accept (on
/// epoll they stay in the kernel's backlog). Dropped with the listener,
/// they are closed.
#[derive(Debug, Default)]
pub(crate) struct KeptConns {
    /// True while `conns` holds any (read without the lock).
    any: AtomicBool,
    conns: Mutex<VecDeque<(OwnedFd, SockAddr)>>,
}

impl KeptConns {
    fn conns(&self) -> MutexGuard<'_, VecDeque<(OwnedFd, SockAddr)>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn keep(&self, fd: OwnedFd, peer: SockAddr) {
        self.conns().push_back((fd, peer));
        self.any.store(true, Ordering::Release);
    }

    /// The oldest kept connection, if any.
    fn take(&self) -> Option<(OwnedFd, SockAddr)> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let mut conns = self.conns();
        let conn = conns.pop_front();
        self.any.store(!conns.is_empty(), Ordering::Release);
        conn
    }
}

impl<'a> Accept<'a> {
    fn new(backlog: bool, kept: &'a KeptConns) -> Accept<'a> {
        let addr = SockAddrStorage::zeroed();
        Accept { len: addr.size_of(), addr, backlog, kept }
    }

    /// The peer's address, once the accept completed.
    pub(crate) fn peer(&self) -> SockAddr {
        // SAFETY: `SockAddrStorage` is a transparent `sockaddr_storage`,
        // plain bytes, so a bitwise copy is a valid one; the kernel
        // initialized its first `len` bytes (a zeroed storage is valid for
        // any prefix it left).
        unsafe { SockAddr::new(std::ptr::read(&self.addr), self.len) }
    }

    fn addr_ptr(&mut self) -> *mut libc::sockaddr {
        // `SockAddrStorage` is a transparent `sockaddr_storage`.
        (&mut self.addr as *mut SockAddrStorage).cast()
    }
}

const ACCEPT_FLAGS: i32 = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;

// SAFETY: the entry names `addr` and `len`, fields of `self`.
unsafe impl Op for Accept<'_> {
    const INTEREST: Interest = Interest::Read;
    /// While the listener has connections queued (a burst of connects),
    /// they are taken at once, as epoll's accept loop does: through the
    /// ring, each accept would wait for its completion behind every other
    /// completion queued (with 1,000 clients connecting at once, the last
    /// waited up to 1.6 s). Without a backlog the ring waits, with no
    /// syscall bound to fail first.
    fn try_first(&self) -> bool {
        self.backlog
    }
    fn completed(&mut self, flags: u32) {
        // Kernels before 6.10 do not report the queue on accepts: there any
        // accept through the ring may be the first of a burst.
        self.backlog = io_uring::cqueue::sock_nonempty(flags) || !sys::kernel_at_least(6, 10);
    }
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
    fn release(&mut self, res: usize) {
        // SAFETY: an accepted fd nobody else owns (its caller unwound).
        let fd = unsafe { OwnedFd::from_raw_fd(res as RawFd) };
        self.kept.keep(fd, self.peer());
    }
}

/// Accepts a connection on listener `t`: the new socket (non-blocking
/// already: `SOCK_NONBLOCK`) and the peer's address. `backlog` is the
/// listener's: whether its last accept left connections queued. `kept`
/// is the listener's too: connections accepted for acceptors killed
/// meanwhile, returned first. `cancel` may end the wait (see
/// [`Cancel`](super::Cancel)).
///
/// # Blocking
/// As [`run`].
pub(crate) fn accept(
    t: Target<'_>,
    timeout: Option<Duration>,
    backlog: &AtomicBool,
    kept: &KeptConns,
    once: bool,
    cancel: Option<&super::Cancel>,
) -> io::Result<(crate::driver::Source, SockAddr)> {
    if let Some((fd, peer)) = kept.take() {
        return Ok((crate::driver::Source::from_nonblocking(fd), peer));
    }
    let mut a = Accept::new(backlog.load(Ordering::Relaxed), kept);
    let done = super::run_as(t, &mut a, timeout, once, cancel);
    backlog.store(a.backlog, Ordering::Relaxed);
    let fd = done?;
    // SAFETY: a completed accept's result is a new fd that nobody else
    // owns; `run` returned it to us alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    Ok((crate::driver::Source::from_nonblocking(fd), a.peer()))
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
    const AGAIN_IS_FINAL: bool = true;
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
            // A Unix listener's backlog is full: not connecting at all.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                self.started = false;
                Err(super::again())
            }
            r => r.map(|_| 0),
        }
    }
}

/// `recvmsg(2)` with a source address (UDP `recv_from`).
pub(crate) struct RecvFrom<'a> {
    buf: &'a mut [u8],
    /// `MSG_PEEK` or 0.
    flags: i32,
    addr: SockAddrStorage,
    iov: libc::iovec,
    msg: libc::msghdr,
}

impl<'a> RecvFrom<'a> {
    pub(crate) fn new(buf: &'a mut [u8], flags: i32) -> Self {
        let iov = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
        // SAFETY: msghdr is a plain C struct; all-zero is valid.
        RecvFrom { buf, flags, addr: SockAddrStorage::zeroed(), iov, msg: unsafe { std::mem::zeroed() } }
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
        opcode::RecvMsg::new(types::Fd(fd), msg).flags(self.flags as u32).build()
    }
    fn attempt(&mut self, fd: RawFd) -> io::Result<usize> {
        let msg = self.prepare();
        // SAFETY: `msg` names live buffers of the sizes it states.
        sys::cvt(unsafe { libc::recvmsg(fd, msg, self.flags | libc::MSG_DONTWAIT) }).map(|n| n as usize)
    }
    /// Datagram sockets only (as every `RecvFrom`).
    fn ends_when_shut(&self) -> bool {
        true
    }
    /// No datagram, and no sender: an empty address (std's unnamed one
    /// for a Unix socket).
    fn shut_result(&mut self) -> usize {
        self.msg.msg_namelen = 0;
        0
    }
    /// A receive through the ring does not end when the read half is
    /// shut down (the ring waits on): the syscall, after a readiness
    /// wait, tells.
    fn syscall_only(&self) -> bool {
        true
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
    /// Datagram sockets only: the ring's retry of a send that found the
    /// peer's queue full can go out empty (see [`Op::syscall_only`]).
    fn syscall_only(&self) -> bool {
        true
    }
    /// Unix sockets only: a UDP socket's own full buffer is reported
    /// writable when it drains.
    fn back_off(&self) -> bool {
        self.addr.is_unix()
    }
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
