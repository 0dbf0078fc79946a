//! Cooperative sockets shaped like `std::net` and `std::os::unix::net`
//! (gevent's `socket`): the same names and signatures, `io::Result`
//! everywhere, `Read`/`Write` for each stream and for `&` it, but a call
//! that would block parks only the calling greenlet.
//!
//! Timeouts set with `set_read_timeout` / `set_write_timeout` bound each
//! call and give an error of kind `TimedOut`; a timed-out read on io_uring
//! whose data arrived meanwhile returns that data instead. A greenlet
//! killed (or leaving a `with_timeout` scope) during a read unwinds without
//! it, and a stream loses nothing: bytes the kernel had already received
//! for that read (io_uring; epoll leaves them in the kernel) are returned
//! first by the socket's next read or peek, or a clone's. They are the
//! socket's, not the kernel's: `wait_read` and `select` on its fd do not
//! see them (read first), and they are lost if the fd is taken out
//! (`into_raw_fd`). A blocking read that starts while another reader of
//! the same socket on the same thread is being killed (`kill_nowait`, then
//! a read at once) first lets that reader unwind, so the bytes it leaves
//! come first. Not so through a clone (another fd), nor for a read that
//! was waiting already when the other reader was killed: with two
//! greenlets reading one stream at once, the bytes kept from one that is
//! killed go to the next read that starts, after what the waiting one
//! receives. A datagram received for a killed reader on io_uring is
//! dropped with it. Host names resolve on the thread pool,
//! never blocking the hub; addresses, typed or written as strings
//! (`"127.0.0.1:80"`, `("::1", 80)`), resolve at once.
//!
//! Whether a call switches depends on the backend. On epoll, a read or
//! write that can complete at once returns without switching, as in
//! gevent: a loop over ready data runs on until it blocks, or for 128
//! operations in a row, whichever comes first: the 129th yields before it
//! starts, so one peer that keeps a greenlet fed cannot keep the others
//! (other connections, timers, timeouts) waiting (gevent has no such
//! bound; tokio has the same one). On io_uring a receive goes through the
//! ring, so each one switches, except one right after a receive that
//! filled its buffer (more data is most likely queued), which tries the
//! syscall first, as sends do; those are bounded as on epoll. Code that
//! must let the others run at a given point (a loop handing every line it
//! reads to other greenlets' queues) yields with
//! `gevent::sleep(Duration::ZERO)`, as it would in gevent.
//!
//! On the epoll backend (edge-triggered), a read that returns less than
//! asked counts as draining the socket, as in tokio; data behind a TCP
//! urgent mark or behind a Unix message carrying ancillary data
//! (`SCM_RIGHTS`) is then read when more data arrives. A writer blocked on
//! a full Unix stream is not woken when the peer shuts down its read side,
//! nor when its own side is shut down for writing through another handle
//! (a `try_clone`) or from another thread (the same handle's `shutdown` on
//! its own thread does wake it); a write timeout bounds that wait. The
//! io_uring backend has neither limit.
//!
//! ```
//! use std::io::{Read, Write};
//! use gevent::socket::{TcpListener, TcpStream};
//!
//! let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//! let addr = listener.local_addr().unwrap();
//! let server = gevent::spawn(move || {
//!     let (mut conn, _) = listener.accept().unwrap();
//!     let mut buf = [0u8; 5];
//!     conn.read_exact(&mut buf).unwrap();
//!     conn.write_all(&buf).unwrap();
//! });
//! let mut client = TcpStream::connect(addr).unwrap();
//! client.write_all(b"hello").unwrap();
//! let mut echo = String::new();
//! client.read_to_string(&mut echo).unwrap();
//! assert_eq!(echo, "hello");
//! server.join();
//! ```
#![forbid(unsafe_code)]

mod tcp;
mod udp;
mod unix;
mod unix_datagram;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use socket2::{SockAddr, SockRef, Socket};

use crate::driver::op::{self, Op, Target};
use crate::driver::posted;
use crate::driver::{Interest, Source};

pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixIncoming, UnixListener, UnixStream};
pub use unix_datagram::UnixDatagram;

/// For the servers' paused loops: an accept or receive another greenlet
/// ends without unwinding the one waiting.
pub(crate) use crate::driver::op::{is_cancelled, Cancel};

/// Waits until `fd` is readable (or has an error or hang-up to report).
///
/// # Errors
/// `EBADF` when `fd` is not an open file descriptor (or is negative);
/// `TimedOut` when `timeout` passes first.
///
/// # Blocking
/// Parks the calling greenlet until then, or until `timeout` passes
/// (`TimedOut`).
///
/// # Examples
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// let (a, mut b) = gevent::socket::UnixStream::pair().unwrap();
/// b.write_all(b"x").unwrap();
/// gevent::socket::wait_read(a.as_raw_fd(), None).unwrap();
/// ```
pub fn wait_read(fd: RawFd, timeout: Option<Duration>) -> io::Result<()> {
    op::wait(Target { fd, id: 0, home: None }, Interest::Read, timeout)
}

/// Waits until `fd` is writable (or has an error to report).
///
/// # Errors
/// As [`wait_read`].
///
/// # Blocking
/// As [`wait_read`].
pub fn wait_write(fd: RawFd, timeout: Option<Duration>) -> io::Result<()> {
    op::wait(Target { fd, id: 0, home: None }, Interest::Write, timeout)
}

/// Resolves `addr`: at once for addresses (typed, or strings that parse as
/// one), else on the thread pool (a host-name lookup blocks).
pub(crate) fn resolve<A: ToSocketAddrs + Sync>(addr: A) -> io::Result<Vec<SocketAddr>> {
    let lookup = || addr.to_socket_addrs().map(Iterator::collect);
    let addrs: Vec<SocketAddr> = match crate::addr::literal(&addr) {
        Some(Some(a)) => vec![a],
        _ if crate::addr::numeric::<A>() => lookup()?,
        _ => crate::spawn_blocking(lookup)?,
    };
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any addresses"));
    }
    Ok(addrs)
}

/// Tries `f` on each address in turn; the first success, else the last
/// error.
pub(crate) fn each_addr<T>(addrs: &[SocketAddr], mut f: impl FnMut(&SocketAddr) -> io::Result<T>) -> io::Result<T> {
    let mut last = None;
    for a in addrs {
        match f(a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no addresses")))
}

const NO_TIMEOUT: u64 = u64::MAX;

/// What every socket type is: a non-blocking fd on the hub, and its timeouts.
#[derive(Debug)]
pub(crate) struct Sock {
    src: Source,
    /// The timeouts, salvaged bytes and kept connections, made when a
    /// timeout is first set, the socket cloned, a stream read interrupted
    /// or a listener first accepts (none until then),
    /// and shared by every clone (as the kernel's own options and receive
    /// queue are shared by dup'd fds).
    timeouts: OnceLock<Arc<Timeouts>>,
    /// A listener's: its last accept left connections queued.
    backlog: AtomicBool,
    /// A stream's: its last receive was short, so the receive buffer is
    /// most likely empty (a hint for the next one, see `op::Recv`).
    drained: AtomicBool,
    /// A stream's: its last receive filled the buffer (more is likely
    /// queued: the next one tries the syscall first).
    full: AtomicBool,
    /// A stream's readers through this handle, kept in order around a
    /// killed one (clones each have their own).
    order: op::ReadOrder,
    /// A stream's posted sends (io_uring with ring sends on): its entry in
    /// its home hub's table, made by its first posted send.
    posted: OnceLock<posted::PostRef>,
    /// A stream's write half was shut down through this handle: no send
    /// is posted any more (the kernel's own error comes at once).
    write_shut: AtomicBool,
}

/// A socket's read and write timeouts, in nanoseconds (`NO_TIMEOUT`: none),
/// and the bytes an interrupted stream read took from the kernel on
/// io_uring (`op::Salvage`), which the next read returns first.
#[derive(Debug)]
struct Timeouts {
    read: AtomicU64,
    write: AtomicU64,
    salvage: op::Salvage,
    /// A listener's connections accepted for acceptors killed meanwhile
    /// (io_uring), which its next accept returns first.
    kept: op::KeptConns,
    /// Non-blocking mode (`set_nonblocking`).
    nonblocking: AtomicBool,
}

impl Timeouts {
    fn new(read: u64, write: u64) -> Timeouts {
        Timeouts {
            read: AtomicU64::new(read),
            write: AtomicU64::new(write),
            salvage: op::Salvage::default(),
            kept: op::KeptConns::default(),
            nonblocking: AtomicBool::new(false),
        }
    }
}

fn to_nanos(d: Option<Duration>) -> io::Result<u64> {
    match d {
        None => Ok(NO_TIMEOUT),
        Some(d) if d.is_zero() => Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot set a 0 duration timeout")),
        Some(d) => Ok(d.as_nanos().min(NO_TIMEOUT as u128 - 1) as u64),
    }
}

fn from_nanos(n: u64) -> Option<Duration> {
    (n != NO_TIMEOUT).then(|| Duration::from_nanos(n))
}

impl Sock {
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Sock> {
        Ok(Sock::of(Source::new(fd)?))
    }

    fn of(src: Source) -> Sock {
        Sock {
            src,
            timeouts: OnceLock::new(),
            backlog: AtomicBool::new(false),
            drained: AtomicBool::new(false),
            full: AtomicBool::new(false),
            order: op::ReadOrder::default(),
            posted: OnceLock::new(),
            write_shut: AtomicBool::new(false),
        }
    }

    /// The timeouts, made if need be (one `OnceLock` is the only way to
    /// them, so a set racing a clone is never lost).
    fn timeouts(&self) -> &Arc<Timeouts> {
        self.timeouts.get_or_init(|| Arc::new(Timeouts::new(NO_TIMEOUT, NO_TIMEOUT)))
    }

    /// A fresh socket of `ty` for addresses like `addr`.
    pub(crate) fn for_addr(addr: &SockAddr, ty: socket2::Type) -> io::Result<Sock> {
        Sock::for_domain(addr.domain(), ty)
    }

    /// A fresh socket of `ty` in `domain`, made non-blocking at once.
    pub(crate) fn for_domain(domain: socket2::Domain, ty: socket2::Type) -> io::Result<Sock> {
        Ok(Sock::of(Source::from_nonblocking(Socket::new(domain, ty.nonblocking().cloexec(), None)?.into())))
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.src.raw()
    }

    pub(crate) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self.src.fd())
    }

    /// The fd, out of the hub (what was posted on it sent first).
    pub(crate) fn into_owned(mut self) -> OwnedFd {
        let _ = self.settle(None);
        self.src.take_owned()
    }

    /// socket2's view, for options and addresses.
    pub(crate) fn sock(&self) -> SockRef<'_> {
        SockRef::from(self.src.fd())
    }

    /// `shutdown(2)`, then the halves shut stop waiting for readiness on
    /// this hub (see `hub::shut_down`).
    pub(crate) fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        if how != std::net::Shutdown::Read {
            // What was posted goes before the FIN (its error, if any, is
            // the kernel's to report again).
            let _ = self.flush();
            self.write_shut.store(true, Ordering::Relaxed);
        }
        self.sock().shutdown(how)?;
        let t = self.target();
        crate::hub::shut_down(t.fd, t.id, how);
        Ok(())
    }

    pub(crate) fn target(&self) -> Target<'_> {
        self.src.target()
    }

    pub(crate) fn read_timeout(&self) -> Option<Duration> {
        from_nanos(self.timeouts.get().map_or(NO_TIMEOUT, |t| t.read.load(Ordering::Relaxed)))
    }

    pub(crate) fn write_timeout(&self) -> Option<Duration> {
        from_nanos(self.timeouts.get().map_or(NO_TIMEOUT, |t| t.write.load(Ordering::Relaxed)))
    }

    pub(crate) fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.timeouts().read.store(to_nanos(d)?, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.timeouts().write.store(to_nanos(d)?, Ordering::Relaxed);
        Ok(())
    }

    /// Receives from a stream socket. An empty buffer reads 0 bytes at once
    /// (non-blocking, the kernel would say `EAGAIN`, and the call would wait
    /// for data it cannot take).
    pub(crate) fn recv(&self, buf: &mut [u8], flags: i32) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let peek = flags & libc::MSG_PEEK != 0;
        if !self.nonblocking() {
            self.order.settle();
        }
        if let Some(n) = self.timeouts.get().and_then(|t| t.salvage.take(buf, peek)) {
            if peek && n < buf.len() {
                // A peek sees what the kernel holds behind the kept bytes
                // too (a caller peeks until a header is complete).
                let mut behind = op::Recv::plain(&mut buf[n..], flags, true);
                return Ok(n + op::run_once(self.target(), &mut behind).unwrap_or(0));
            }
            return Ok(n);
        }
        let poll_first = self.drained.load(Ordering::Relaxed);
        let len = buf.len();
        let _reading = self.order.reading();
        // Called only when a kill left received bytes behind (io_uring):
        // the store for them is made then.
        let keep = |b: &[u8]| self.timeouts().salvage.keep(b);
        let mut recv = op::Recv {
            buf,
            flags,
            stream: true,
            poll_first,
            syscall_first: self.full.load(Ordering::Relaxed),
            salvage: Some(&keep),
            order: Some(&self.order),
        };
        let n = self.run(&mut recv, self.read_timeout())?;
        if !peek {
            self.drained.store(recv.drained(n), Ordering::Relaxed);
            self.full.store(n == len, Ordering::Relaxed);
        }
        Ok(n)
    }

    /// Receives one datagram.
    pub(crate) fn recv_dgram(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.run(&mut op::Recv::plain(buf, 0, false), self.read_timeout())
    }

    /// Sends on a stream socket: posted where it can be (see
    /// `driver::posted`), else once what was posted went.
    pub(crate) fn send(&self, buf: &[u8]) -> io::Result<usize> {
        if !buf.is_empty() && buf.len() <= posted::MAX_SEND && self.may_post() {
            if let Some(r) = posted::post(self.target(), &self.posted, buf, self.write_timeout()) {
                return r;
            }
        }
        self.flush()?;
        self.run(&mut op::Send { buf, datagram: false }, self.write_timeout())
    }

    /// Whether a send may be posted: ring sends are on, and the socket is
    /// in blocking mode, has no clone (whose sends could overtake) and its
    /// write half is open.
    fn may_post(&self) -> bool {
        crate::driver::ring_sends()
            && !self.write_shut.load(Ordering::Relaxed)
            && self.timeouts.get().map_or(true, |t| Arc::strong_count(t) == 1 && !t.nonblocking.load(Ordering::Relaxed))
    }

    /// Waits until what was posted on this stream went (see
    /// `posted::settle`); its error, if a posted send met one.
    ///
    /// # Blocking
    /// Until then, at most `timeout`.
    fn settle(&self, timeout: Option<Duration>) -> io::Result<()> {
        posted::settle(self.target(), &self.posted, timeout, self.nonblocking())
    }

    /// `Write::flush`: waits until what was posted went (its error, if a
    /// posted send met one). Also what every send, shutdown and clone does
    /// first, so bytes keep their order.
    pub(crate) fn flush(&self) -> io::Result<()> {
        // Nothing ever posted (the default): no timeout to read, no hub to
        // ask, on every send.
        if self.posted.get().is_none() {
            return Ok(());
        }
        self.settle(self.write_timeout())
    }

    /// Sends one datagram to the connected peer.
    pub(crate) fn send_dgram(&self, buf: &[u8]) -> io::Result<usize> {
        self.run(&mut op::Send { buf, datagram: true }, self.write_timeout())
    }

    /// Reads the next datagram without taking it off the queue.
    pub(crate) fn peek_dgram(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.run(&mut op::Recv::plain(buf, libc::MSG_PEEK, false), self.read_timeout())
    }

    /// Accepts a connection; `cancel` may end the wait (see `op::Cancel`).
    pub(crate) fn accept(&self, cancel: Option<&op::Cancel>) -> io::Result<(Sock, SockAddr)> {
        let kept = &self.timeouts().kept;
        let (src, peer) =
            op::accept(self.target(), self.read_timeout(), &self.backlog, kept, self.nonblocking(), cancel)?;
        Ok((Sock::of(src), peer))
    }

    /// Connects, waiting at most `timeout`. A Unix listener whose backlog
    /// is full refuses with `EAGAIN`, and no readiness tells when it has
    /// room: the connect is tried again after pauses of 1, 2, 4, ... (at
    /// most 64) ms, as std's blocking connect waits. (For other families
    /// `EAGAIN` is an error, as with std.)
    pub(crate) fn connect(&self, addr: &SockAddr, timeout: Option<Duration>) -> io::Result<()> {
        let deadline = timeout.map(|d| crate::timer::after(Instant::now(), d));
        let mut left = timeout;
        let mut pause = crate::timer::Backoff::new(Duration::from_millis(1), Duration::from_millis(64));
        loop {
            match op::run(self.target(), &mut op::Connect { addr, started: false }, left) {
                Err(e) if op::is_again(&e) && addr.is_unix() => pause.sleep(left),
                Err(e) if op::is_again(&e) => return Err(io::Error::from_raw_os_error(libc::EAGAIN)),
                r => return r.map(drop),
            }
            left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|d| d.is_zero()) {
                return Err(crate::driver::timed_out());
            }
        }
    }

    pub(crate) fn send_to(&self, buf: &[u8], addr: &SockAddr) -> io::Result<usize> {
        self.run(&mut op::SendTo::new(buf, addr), self.write_timeout())
    }

    /// Receives one datagram and its sender; with `MSG_PEEK` in `flags`,
    /// leaves it queued.
    pub(crate) fn recv_from(&self, buf: &mut [u8], flags: i32) -> io::Result<(usize, SockAddr)> {
        self.recv_from_as(buf, flags, None)
    }

    /// [`recv_from`](Self::recv_from), the wait ended by `cancel` if given.
    fn recv_from_as(&self, buf: &mut [u8], flags: i32, cancel: Option<&op::Cancel>) -> io::Result<(usize, SockAddr)> {
        let mut r = op::RecvFrom::new(buf, flags);
        let n = op::run_as(self.target(), &mut r, self.read_timeout(), self.nonblocking(), cancel)?;
        Ok((n, r.peer()))
    }

    /// [`recv_from`](Self::recv_from) without flags, the wait ended by
    /// `cancel` (see `op::Cancel`).
    pub(crate) fn recv_from_cancellable(&self, buf: &mut [u8], cancel: &op::Cancel) -> io::Result<(usize, SockAddr)> {
        self.recv_from_as(buf, 0, Some(cancel))
    }

    /// Runs `op`: once, the caller taking `WouldBlock`, in non-blocking
    /// mode; else parking the greenlet until it completes or `timeout`.
    fn run<O: op::Op>(&self, op: &mut O, timeout: Option<Duration>) -> io::Result<usize> {
        op::run_as(self.target(), op, timeout, self.nonblocking(), None)
    }

    /// Non-blocking mode, as std's: reads, writes and accepts that would
    /// wait fail with `WouldBlock` instead (a connect still waits).
    /// Shared with clones, as `O_NONBLOCK` is by dup'd fds.
    pub(crate) fn set_nonblocking(&self, on: bool) {
        self.timeouts().nonblocking.store(on, Ordering::Relaxed);
    }

    fn nonblocking(&self) -> bool {
        self.timeouts.get().is_some_and(|t| t.nonblocking.load(Ordering::Relaxed))
    }

    pub(crate) fn try_clone(&self) -> io::Result<Sock> {
        // The clone's sends must not overtake what was posted (neither
        // handle posts while the other lives).
        let _ = self.flush();
        let s = Sock::new(self.sock().try_clone()?.into())?;
        let _ = s.timeouts.set(self.timeouts().clone());
        Ok(s)
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        if let Some(r) = self.posted.get() {
            posted::close(&mut self.src, r);
        }
    }
}

/// An IP socket address from socket2's, or an error naming the family.
pub(crate) fn inet(a: SockAddr) -> io::Result<SocketAddr> {
    a.as_socket().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP socket address"))
}

/// `Read`, `Write` and the fd traits for a socket type and `&` it.
macro_rules! stream_io {
    ($t:ty) => {
        impl std::io::Read for $t {
            /// Reads what has arrived, at most `buf.len()` bytes; 0 at the
            /// end of the stream (or for an empty `buf`).
            ///
            /// # Blocking
            /// Until data or the end of the stream arrives, at most the
            /// read timeout (then `TimedOut`).
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.sock.recv(buf, 0)
            }
        }
        impl std::io::Read for &$t {
            /// Reads what has arrived, at most `buf.len()` bytes; 0 at the
            /// end of the stream (or for an empty `buf`).
            ///
            /// # Blocking
            /// Until data or the end of the stream arrives, at most the
            /// read timeout (then `TimedOut`).
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.sock.recv(buf, 0)
            }
        }
        impl std::io::Write for $t {
            /// Writes what the socket buffer takes, at least one byte of a
            /// non-empty `buf`.
            ///
            /// # Blocking
            /// While the socket buffer is full, at most the write timeout
            /// (then `TimedOut`).
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.sock.send(buf)
            }
            /// Waits until every byte written went to the kernel (io_uring
            /// with ring sends on: small writes are posted, see
            /// [`hub::set_ring_sends`](crate::hub::set_ring_sends)); the
            /// error a posted write met, if any. Nothing to wait for
            /// otherwise.
            ///
            /// # Blocking
            /// Until then, at most the write timeout (then `TimedOut`).
            fn flush(&mut self) -> std::io::Result<()> {
                self.sock.flush()
            }
        }
        impl std::io::Write for &$t {
            /// Writes what the socket buffer takes, at least one byte of a
            /// non-empty `buf`.
            ///
            /// # Blocking
            /// While the socket buffer is full, at most the write timeout
            /// (then `TimedOut`).
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.sock.send(buf)
            }
            /// Waits until every byte written went to the kernel (io_uring
            /// with ring sends on: small writes are posted, see
            /// [`hub::set_ring_sends`](crate::hub::set_ring_sends)); the
            /// error a posted write met, if any. Nothing to wait for
            /// otherwise.
            ///
            /// # Blocking
            /// Until then, at most the write timeout (then `TimedOut`).
            fn flush(&mut self) -> std::io::Result<()> {
                self.sock.flush()
            }
        }
    };
}

/// `AsRawFd`, `AsFd`, `IntoRawFd`, `From<OwnedFd>` (the fd made
/// non-blocking; panics if `fcntl` fails on it, as on a closed fd).
macro_rules! fd_traits {
    ($t:ident) => {
        impl std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.sock.raw()
            }
        }
        impl std::os::fd::AsFd for $t {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.sock.as_fd()
            }
        }
        /// The fd, out of the hub; it stays non-blocking (a std socket
        /// made from it wants `set_nonblocking(false)` before it blocks).
        impl std::os::fd::IntoRawFd for $t {
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                std::os::fd::IntoRawFd::into_raw_fd(self.sock.into_owned())
            }
        }
        /// As `IntoRawFd`.
        impl From<$t> for std::os::fd::OwnedFd {
            fn from(s: $t) -> std::os::fd::OwnedFd {
                s.sock.into_owned()
            }
        }
        impl From<std::os::fd::OwnedFd> for $t {
            fn from(fd: std::os::fd::OwnedFd) -> $t {
                $t { sock: $crate::socket::Sock::new(fd).expect("gevent: cannot make the fd non-blocking") }
            }
        }
    };
}

/// Timeout accessors shared by every socket type.
/// std's socket options, for each socket type: `take_error` for all; with
/// `ip`, `ttl` and `set_ttl` too.
macro_rules! options {
    ($t:ident) => {
        impl $t {
            /// Takes the socket's pending error (`SO_ERROR`), as std's.
            ///
            /// # Errors
            /// The OS error of `getsockopt(2)` (not expected on an open
            /// socket); the pending error itself is the `Ok(Some(_))` value.
            pub fn take_error(&self) -> std::io::Result<Option<std::io::Error>> {
                self.sock.sock().take_error()
            }
        }
    };
    ($t:ident, ip) => {
        options!($t);
        impl $t {
            /// The IP time-to-live of outgoing packets (`IP_TTL`).
            ///
            /// # Errors
            /// The OS error of `getsockopt(2)` (not expected on an open
            /// socket).
            pub fn ttl(&self) -> std::io::Result<u32> {
                self.sock.sock().ttl_v4()
            }

            /// Sets the IP time-to-live of outgoing packets (`IP_TTL`).
            ///
            /// # Errors
            /// `InvalidInput` for a `ttl` the kernel refuses (0, or above
            /// 255); else the OS error of `setsockopt(2)`.
            pub fn set_ttl(&self, ttl: u32) -> std::io::Result<()> {
                self.sock.sock().set_ttl_v4(ttl)
            }
        }
    };
}

macro_rules! timeouts {
    ($t:ident) => {
        impl $t {
            /// Bounds each later read (`None`: no bound). A zero duration is
            /// refused with `InvalidInput`, as in std.
            ///
            /// # Errors
            /// `InvalidInput` for `Some(Duration::ZERO)`; nothing else
            /// (gevent keeps the timeout, not the kernel).
            pub fn set_read_timeout(&self, d: Option<std::time::Duration>) -> std::io::Result<()> {
                self.sock.set_read_timeout(d)
            }
            /// Bounds each later write (see [`set_read_timeout`](Self::set_read_timeout)).
            ///
            /// # Errors
            /// As [`set_read_timeout`](Self::set_read_timeout).
            pub fn set_write_timeout(&self, d: Option<std::time::Duration>) -> std::io::Result<()> {
                self.sock.set_write_timeout(d)
            }
            /// The read timeout (`None`: reads wait without bound).
            ///
            /// # Errors
            /// None (the `Result` is std's shape).
            pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
                Ok(self.sock.read_timeout())
            }
            /// The write timeout (`None`: writes wait without bound).
            ///
            /// # Errors
            /// None (the `Result` is std's shape).
            pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
                Ok(self.sock.write_timeout())
            }
            /// Moves into or out of non-blocking mode, as std's: in it, a
            /// read, write or accept that would wait fails at once with an
            /// error of kind `WouldBlock` (and never switches) instead of
            /// parking the greenlet; a connect still waits. Clones share
            /// the mode, as dup'd fds share `O_NONBLOCK`.
            ///
            /// # Errors
            /// None on Linux (the `Result` is std's shape).
            pub fn set_nonblocking(&self, nonblocking: bool) -> std::io::Result<()> {
                self.sock.set_nonblocking(nonblocking);
                Ok(())
            }
        }
    };
}

pub(crate) use {fd_traits, options, stream_io, timeouts};

#[cfg(test)]
#[allow(clippy::needless_borrows_for_generic_args)] // the references are the types under test
mod tests {
    use super::resolve;

    /// True once this thread's hub started its default thread pool.
    fn pool_started() -> bool {
        crate::hub::with(|h| h.default_pool.borrow().is_some())
    }

    #[test]
    fn address_strings_resolve_without_the_thread_pool() {
        std::thread::spawn(|| {
            let port = String::from("127.0.0.1:7");
            assert_eq!(resolve("127.0.0.1:7").unwrap(), [([127, 0, 0, 1], 7).into()]);
            assert_eq!(resolve(("::1", 7)).unwrap(), [(std::net::Ipv6Addr::LOCALHOST, 7).into()]);
            assert_eq!(resolve(&port).unwrap().len(), 1);
            assert_eq!(resolve(port).unwrap().len(), 1);
            for s in &["127.0.0.1:7", "[::1]:7"] {
                assert_eq!(resolve(s).unwrap().len(), 1, "a &&str");
            }
            assert_eq!(resolve(&("127.0.0.1", 7)).unwrap().len(), 1);
            let typed: std::net::SocketAddr = "127.0.0.1:7".parse().unwrap();
            assert_eq!(resolve(typed).unwrap(), [typed]);
            assert_eq!(resolve(&[typed, typed][..]).unwrap(), [typed, typed]);
            assert!(!pool_started(), "an address string went to the thread pool");
            // A name is looked up there (whatever the lookup finds).
            let _ = resolve(("localhost", 7));
            assert!(pool_started());
        })
        .join()
        .unwrap();
    }
}
