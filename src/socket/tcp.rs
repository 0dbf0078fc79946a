//! `TcpListener` and `TcpStream`.
#![forbid(unsafe_code)]

use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use socket2::{SockAddr, Type};

use super::{each_addr, fd_traits, inet, options, resolve, stream_io, timeouts, Sock};

/// A TCP listening socket whose `accept` parks only the calling greenlet.
#[derive(Debug)]
pub struct TcpListener {
    pub(crate) sock: Sock,
}

/// Backlog of every listener (the kernel caps it at `somaxconn`).
pub(crate) const BACKLOG: i32 = 4096;

impl TcpListener {
    /// Binds to `addr` (host names resolve on the thread pool) with
    /// `SO_REUSEADDR`, as std does, and listens.
    ///
    /// # Errors
    /// Resolution and `bind`/`listen` errors (`AddrInUse`, ...); with
    /// several addresses, the last one's.
    ///
    /// # Blocking
    /// Only while a host name resolves (on the thread pool); plain
    /// addresses bind at once.
    pub fn bind<A: ToSocketAddrs + Sync>(addr: A) -> io::Result<TcpListener> {
        each_addr(&resolve(addr)?, |a| TcpListener::bind_addr(a, false))
    }

    /// As [`bind`](Self::bind), with `SO_REUSEPORT` too: several listeners
    /// (one per hub thread) share the port and the kernel spreads the
    /// connections among them.
    ///
    /// # Errors
    /// As [`bind`](Self::bind).
    ///
    /// # Blocking
    /// Only while a host name resolves (on the thread pool); plain
    /// addresses bind at once.
    pub fn bind_reuse_port<A: ToSocketAddrs + Sync>(addr: A) -> io::Result<TcpListener> {
        each_addr(&resolve(addr)?, |a| TcpListener::bind_addr(a, true))
    }

    fn bind_addr(addr: &SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
        let a = SockAddr::from(*addr);
        let sock = Sock::for_addr(&a, Type::STREAM)?;
        sock.sock().set_reuse_address(true)?;
        if reuse_port {
            sock.sock().set_reuse_port(true)?;
        }
        sock.sock().bind(&a)?;
        sock.sock().listen(BACKLOG)?;
        Ok(TcpListener { sock })
    }

    /// Accepts a connection.
    ///
    /// # Errors
    /// `TimedOut` once the read timeout passes
    /// ([`set_read_timeout`](Self::set_read_timeout)); `WouldBlock` in
    /// non-blocking mode when no connection is queued; else the OS error of
    /// `accept4(2)` (`EMFILE` or `ENFILE` when out of file descriptors,
    /// `ConnectionAborted` for a peer gone before it was accepted, ...).
    ///
    /// # Blocking
    /// Parks until a peer connects (bounded by the read timeout, if set).
    /// Killed or timed out meanwhile, it loses no connection: one the
    /// kernel had already accepted for it goes to the listener's next
    /// `accept`.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.accept_cancellable(None)
    }

    /// [`accept`](Self::accept), the wait ended by `cancel` if given (see
    /// `op::Cancel`): a server's paused accept loop.
    pub(crate) fn accept_cancellable(&self, cancel: Option<&super::Cancel>) -> io::Result<(TcpStream, SocketAddr)> {
        let (sock, peer) = self.sock.accept(cancel)?;
        Ok((TcpStream { sock }, inet(peer)?))
    }

    /// An endless iterator of accepted connections.
    ///
    /// # Blocking
    /// Each `next` parks as [`accept`](Self::accept) does.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The bound address.
    ///
    /// # Errors
    /// The OS error of `getsockname(2)` (not expected on an open socket);
    /// `InvalidData` for a socket that is not an IP one (made from another
    /// family's fd).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        inet(self.sock.sock().local_addr()?)
    }

    /// A second handle on the same socket (a dup'd fd), sharing its
    /// timeouts.
    ///
    /// # Errors
    /// The OS error of duplicating the fd (`fcntl(2)`): `EMFILE` or
    /// `ENFILE` when out of file descriptors.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener { sock: self.sock.try_clone()? })
    }
}

/// The iterator of [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    /// The next accepted connection (never `None`).
    ///
    /// # Blocking
    /// As [`TcpListener::accept`].
    fn next(&mut self) -> Option<Self::Item> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A TCP connection whose reads and writes park only the calling greenlet.
///
/// # Examples
/// A read timeout ends a read that waits too long with `TimedOut`:
/// ```
/// use std::io::{ErrorKind, Read};
/// use std::time::Duration;
/// use gevent::socket::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
/// let (_conn, _peer) = listener.accept().unwrap(); // sends nothing
/// client.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
/// let err = client.read(&mut [0u8; 16]).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::TimedOut);
/// ```
#[derive(Debug)]
pub struct TcpStream {
    pub(crate) sock: Sock,
}

impl TcpStream {
    /// Connects to the first address of `addr` that accepts (host names
    /// resolve on the thread pool).
    ///
    /// # Errors
    /// The last address's error (`ConnectionRefused`, ...), or the
    /// resolution's.
    ///
    /// # Blocking
    /// Parks while resolving and connecting.
    pub fn connect<A: ToSocketAddrs + Sync>(addr: A) -> io::Result<TcpStream> {
        each_addr(&resolve(addr)?, |a| TcpStream::connect_addr(a, None))
    }

    /// Connects to `addr`, giving up after `d` (`TimedOut`).
    ///
    /// # Errors
    /// `InvalidInput` for a zero `d`; `TimedOut` once `d` passes; else the
    /// OS error of `connect(2)` (`ConnectionRefused`, ...).
    ///
    /// # Blocking
    /// Parks for at most `d`.
    pub fn connect_timeout(addr: &SocketAddr, d: Duration) -> io::Result<TcpStream> {
        if d.is_zero() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot set a 0 duration timeout"));
        }
        TcpStream::connect_addr(addr, Some(d))
    }

    fn connect_addr(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
        let a = SockAddr::from(*addr);
        let sock = Sock::for_addr(&a, Type::STREAM)?;
        sock.connect(&a, timeout)?;
        Ok(TcpStream { sock })
    }

    /// The remote address.
    ///
    /// # Errors
    /// `NotConnected` once the connection is closed (reset by the peer,
    /// say); else the OS error of `getpeername(2)`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        inet(self.sock.sock().peer_addr()?)
    }

    /// The local address.
    ///
    /// # Errors
    /// The OS error of `getsockname(2)` (not expected on an open socket);
    /// `InvalidData` for a socket that is not an IP one (made from another
    /// family's fd).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        inet(self.sock.sock().local_addr()?)
    }

    /// Shuts down the read half, the write half or both. Reads of a shut
    /// read half then return 0 (the end of the stream) once the data
    /// already received is read; writes on a shut write half fail with
    /// `BrokenPipe`.
    ///
    /// # Errors
    /// `NotConnected` once the connection is closed (reset by the peer,
    /// say); else the OS error of `shutdown(2)`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.shutdown(how)
    }

    /// Sets `TCP_NODELAY` (no Nagle delay for small writes).
    ///
    /// # Errors
    /// The OS error of `setsockopt(2)` (not expected on an open TCP
    /// socket).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.sock.sock().set_tcp_nodelay(on)
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    /// The OS error of `getsockopt(2)` (not expected on an open TCP
    /// socket).
    pub fn nodelay(&self) -> io::Result<bool> {
        self.sock.sock().tcp_nodelay()
    }

    /// Reads without consuming (`MSG_PEEK`): the next read or peek gets
    /// the same bytes. 0 at the end of the stream (or for an empty `buf`).
    ///
    /// # Errors
    /// As a read: `TimedOut` once the read timeout passes
    /// ([`set_read_timeout`](Self::set_read_timeout)); `WouldBlock` in
    /// non-blocking mode when nothing has arrived; else the OS error of
    /// `recv(2)` (`ConnectionReset`, ...).
    ///
    /// # Blocking
    /// As a read.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.recv(buf, libc::MSG_PEEK)
    }

    /// A second handle on the same connection (a dup'd fd). The handles
    /// share their timeouts, as std's do: one set on either applies to both.
    ///
    /// # Errors
    /// The OS error of duplicating the fd (`fcntl(2)`): `EMFILE` or
    /// `ENFILE` when out of file descriptors.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream { sock: self.sock.try_clone()? })
    }
}

stream_io!(TcpStream);
timeouts!(TcpStream);
timeouts!(TcpListener);
fd_traits!(TcpStream);
fd_traits!(TcpListener);
options!(TcpStream, ip);
options!(TcpListener, ip);

impl From<std::net::TcpStream> for TcpStream {
    fn from(s: std::net::TcpStream) -> TcpStream {
        TcpStream::from(std::os::fd::OwnedFd::from(s))
    }
}

impl From<std::net::TcpListener> for TcpListener {
    fn from(s: std::net::TcpListener) -> TcpListener {
        TcpListener::from(std::os::fd::OwnedFd::from(s))
    }
}
