//! `UnixDatagram`, shaped like std's: every address it returns is std's
//! `SocketAddr` (a path, an abstract name or unnamed), converted without a
//! dup of the fd.
#![forbid(unsafe_code)]

use std::io;
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;

use socket2::{Domain, SockAddr, Socket, Type};

use super::unix::std_addr;
use super::{fd_traits, options, timeouts, Sock};
use crate::driver::sys::{unix_addr, unix_path};

/// A Unix-domain datagram socket whose sends and receives park only the
/// calling greenlet.
///
/// Each send is one datagram and each receive takes one whole datagram
/// (the part that does not fit the buffer is dropped, as with std).
///
/// # Examples
/// ```
/// use gevent::socket::UnixDatagram;
/// let dir = std::env::temp_dir().join(format!("gevent-doc-dgram-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let (a_path, b_path) = (dir.join("a"), dir.join("b"));
/// let _ = (std::fs::remove_file(&a_path), std::fs::remove_file(&b_path));
/// let a = UnixDatagram::bind(&a_path).unwrap();
/// let b = UnixDatagram::bind(&b_path).unwrap();
/// // The receiver parks in its own greenlet until the datagram arrives.
/// let receiver = gevent::spawn(move || {
///     let mut buf = [0u8; 16];
///     let (n, from) = b.recv_from(&mut buf).unwrap();
///     (buf[..n].to_vec(), from.as_pathname().map(|p| p.to_owned()))
/// });
/// a.send_to(b"ping", &b_path).unwrap();
/// let (got, from) = receiver.get().unwrap();
/// assert_eq!((got.as_slice(), from), (&b"ping"[..], Some(a_path)));
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug)]
pub struct UnixDatagram {
    pub(crate) sock: Sock,
}

impl UnixDatagram {
    /// A socket bound to `path`.
    ///
    /// # Errors
    /// As std's: `AddrInUse` when the path exists, `InvalidInput` when it
    /// holds a NUL byte.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::bind_to(&unix_path(path.as_ref())?)
    }

    /// A socket bound to `addr` (a path, or an abstract name made with
    /// `std::os::linux::net::SocketAddrExt::from_abstract_name`), as std's
    /// `UnixDatagram::bind_addr`.
    ///
    /// # Errors
    /// `InvalidInput` for an unnamed address; else as [`bind`](Self::bind).
    ///
    /// # Examples
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use std::os::unix::net::SocketAddr;
    /// use gevent::socket::UnixDatagram;
    /// let name = format!("gevent-doc-dgram-{}", std::process::id());
    /// let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    /// let server = UnixDatagram::bind_addr(&addr).unwrap();
    /// UnixDatagram::unbound().unwrap().send_to_addr(b"hi", &addr).unwrap();
    /// let mut buf = [0u8; 4];
    /// assert_eq!(server.recv(&mut buf).unwrap(), 2);
    /// ```
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        UnixDatagram::bind_to(&std_addr(addr)?)
    }

    fn bind_to(a: &SockAddr) -> io::Result<UnixDatagram> {
        let sock = Sock::for_addr(a, Type::DGRAM)?;
        sock.sock().bind(a)?;
        Ok(UnixDatagram { sock })
    }

    /// A socket bound to no address: it can send (its datagrams come from
    /// an unnamed address, which cannot be replied to) and, once
    /// connected, receive from its peer.
    ///
    /// # Errors
    /// The OS error of `socket(2)`: `EMFILE` or `ENFILE` when out of file
    /// descriptors.
    pub fn unbound() -> io::Result<UnixDatagram> {
        Ok(UnixDatagram { sock: Sock::for_domain(Domain::UNIX, Type::DGRAM)? })
    }

    /// Two sockets connected to each other.
    ///
    /// # Errors
    /// The OS error of `socketpair(2)`: `EMFILE` or `ENFILE` when out of
    /// file descriptors.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::DGRAM.cloexec(), None)?;
        Ok((UnixDatagram { sock: Sock::new(a.into())? }, UnixDatagram { sock: Sock::new(b.into())? }))
    }

    /// Sets the default peer for [`send`](Self::send), and receives from
    /// it only.
    ///
    /// # Errors
    /// As std's; `InvalidInput` when the path holds a NUL byte.
    ///
    /// # Blocking
    /// Does not wait for the peer (a datagram connect completes at once),
    /// though on io_uring it goes through the ring and may let other
    /// greenlets run first.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.sock.connect(&unix_path(path.as_ref())?, None)
    }

    /// As [`connect`](Self::connect), to a path or abstract name, as std's
    /// `UnixDatagram::connect_addr`.
    ///
    /// # Errors
    /// `InvalidInput` for an unnamed address; else as [`connect`](Self::connect).
    ///
    /// # Blocking
    /// As [`connect`](Self::connect).
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        self.sock.connect(&std_addr(addr)?, None)
    }

    /// Sends `buf` as one datagram to the connected peer.
    ///
    /// # Errors
    /// As std's: `NotConnected` unconnected, `ConnectionRefused` once the
    /// peer is closed, `EMSGSIZE` for a datagram larger than the socket's
    /// send buffer; `TimedOut` once the write timeout passes;
    /// `WouldBlock` in non-blocking mode while the peer's queue is full.
    ///
    /// # Blocking
    /// Parks while the peer's receive queue is full, at most the write
    /// timeout (then `TimedOut`). A kill or timeout leaves nothing sent.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock.send_dgram(buf)
    }

    /// Sends `buf` as one datagram to the socket bound at `path`.
    ///
    /// # Errors
    /// As std's (`ENOENT`, `ECONNREFUSED` when nothing is bound there);
    /// `InvalidInput` when the path holds a NUL byte; `TimedOut` and
    /// `WouldBlock` as [`send`](Self::send).
    ///
    /// # Blocking
    /// As [`send`](Self::send).
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        self.sock.send_to(buf, &unix_path(path.as_ref())?)
    }

    /// As [`send_to`](Self::send_to), to a path or abstract name, as std's
    /// `UnixDatagram::send_to_addr`.
    ///
    /// # Errors
    /// `InvalidInput` for an unnamed address; else as [`send_to`](Self::send_to).
    ///
    /// # Blocking
    /// As [`send_to`](Self::send_to).
    pub fn send_to_addr(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        self.sock.send_to(buf, &std_addr(addr)?)
    }

    /// Receives one datagram: its length, at most `buf.len()` (the rest of
    /// a longer one is dropped).
    ///
    /// # Errors
    /// `TimedOut` once the read timeout passes
    /// ([`set_read_timeout`](Self::set_read_timeout)); `WouldBlock` in
    /// non-blocking mode when no datagram is queued (even with receiving
    /// shut down, where a blocking receive returns 0, as with std); else
    /// the OS error of `recv(2)`.
    ///
    /// # Blocking
    /// Parks until a datagram arrives, at most the read timeout (then
    /// `TimedOut`). A greenlet killed while parked here unwinds without the
    /// datagram: on io_uring one the kernel had already delivered to it is
    /// dropped with it; otherwise it stays queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.recv_dgram(buf)
    }

    /// Receives one datagram, as [`recv`](Self::recv), and its sender's
    /// address (unnamed for an unbound sender).
    ///
    /// # Errors
    /// As [`recv`](Self::recv), the OS error being `recvmsg(2)`'s.
    ///
    /// # Blocking
    /// As [`recv`](Self::recv).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, from) = self.sock.recv_from(buf, 0)?;
        Ok((n, std_from(&from)?))
    }

    /// Reads the next datagram without taking it: the next receive gets it
    /// again.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    ///
    /// # Blocking
    /// As [`recv`](Self::recv); a kill or timeout leaves the queue
    /// untouched.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.peek_dgram(buf)
    }

    /// As [`peek`](Self::peek), with the sender's address.
    ///
    /// # Errors
    /// As [`recv_from`](Self::recv_from).
    ///
    /// # Blocking
    /// As [`peek`](Self::peek).
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, from) = self.sock.recv_from(buf, libc::MSG_PEEK)?;
        Ok((n, std_from(&from)?))
    }

    /// The bound address (unnamed when unbound).
    ///
    /// # Errors
    /// The OS error of `getsockname(2)` (not expected on an open socket).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        unix_addr(self.sock.as_fd(), false)
    }

    /// The connected peer's address.
    ///
    /// # Errors
    /// `NotConnected` when unconnected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        unix_addr(self.sock.as_fd(), true)
    }

    /// Shuts down receiving, sending or both; sends fail with `BrokenPipe`
    /// once sending is shut down.
    ///
    /// Receiving shut down, a receive (and one parked meanwhile on this
    /// thread) returns 0, as std's blocking one does.
    ///
    /// # Errors
    /// The OS error of `shutdown(2)` (not expected on an open socket,
    /// connected or not).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.shutdown(how)
    }

    /// A second handle on the same socket (a dup'd fd), sharing its
    /// timeouts.
    ///
    /// # Errors
    /// The OS error of duplicating the fd (`fcntl(2)`): `EMFILE` or
    /// `ENFILE` when out of file descriptors.
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram { sock: self.sock.try_clone()? })
    }
}

/// A sender's address as std's. The kernel reports an unbound sender with
/// an empty address (length 0), which std reads as unnamed.
fn std_from(a: &SockAddr) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    if let Some(path) = a.as_pathname() {
        SocketAddr::from_pathname(path)
    } else if let Some(name) = a.as_abstract_namespace() {
        SocketAddr::from_abstract_name(name)
    } else if a.len() == 0 || a.is_unnamed() {
        unnamed()
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "gevent: a datagram from a sender whose address is not a Unix one",
        ))
    }
}

/// std's unnamed address: std makes one only as a socket's address, so it
/// is read once from a throwaway unbound socket and kept.
fn unnamed() -> io::Result<SocketAddr> {
    static UNNAMED: OnceLock<SocketAddr> = OnceLock::new();
    if let Some(a) = UNNAMED.get() {
        return Ok(a.clone());
    }
    let a = std::os::unix::net::UnixDatagram::unbound()?.local_addr()?;
    Ok(UNNAMED.get_or_init(|| a).clone())
}

timeouts!(UnixDatagram);
fd_traits!(UnixDatagram);
options!(UnixDatagram);
