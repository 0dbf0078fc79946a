//! `UnixListener` and `UnixStream`.
#![forbid(unsafe_code)]

use std::io;
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::Path;

use socket2::{Domain, Socket, Type};

use super::{fd_traits, options, stream_io, timeouts, Sock};
use crate::driver::sys::{unix_addr, unix_path};

/// std's address as socket2's: a path, or an abstract name (a leading
/// NUL byte, which socket2 takes for the abstract namespace).
pub(super) fn std_addr(addr: &SocketAddr) -> io::Result<socket2::SockAddr> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    if let Some(path) = addr.as_pathname() {
        return unix_path(path);
    }
    match addr.as_abstract_name() {
        Some(name) => socket2::SockAddr::unix(std::ffi::OsStr::from_bytes(&[&[0], name].concat())),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "gevent: an unnamed Unix address names no socket (to bind, connect or send to)",
        )),
    }
}

/// A Unix-domain listening socket.
#[derive(Debug)]
pub struct UnixListener {
    pub(crate) sock: Sock,
}

impl UnixListener {
    /// Binds to `path` and listens.
    ///
    /// # Errors
    /// As std's: `AddrInUse` when the path exists, `InvalidInput` when it
    /// holds a NUL byte.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::listen_on(&unix_path(path.as_ref())?)
    }

    /// Binds to `addr` (a path, or on Linux an abstract name made with
    /// `std::os::linux::net::SocketAddrExt::from_abstract_name`) and
    /// listens, as std's `UnixListener::bind_addr`.
    ///
    /// # Errors
    /// `InvalidInput` for an unnamed address; else as [`bind`](Self::bind).
    ///
    /// # Examples
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use std::os::unix::net::SocketAddr;
    /// let name = format!("gevent-doc-{}", std::process::id());
    /// let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    /// let listener = gevent::socket::UnixListener::bind_addr(&addr).unwrap();
    /// let _client = gevent::socket::UnixStream::connect_addr(&addr).unwrap();
    /// let (_conn, _peer) = listener.accept().unwrap();
    /// ```
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        UnixListener::listen_on(&std_addr(addr)?)
    }

    fn listen_on(a: &socket2::SockAddr) -> io::Result<UnixListener> {
        let sock = Sock::for_addr(a, Type::STREAM)?;
        sock.sock().bind(a)?;
        sock.sock().listen(super::tcp::BACKLOG)?;
        Ok(UnixListener { sock })
    }

    /// Accepts a connection.
    ///
    /// # Errors
    /// `TimedOut` once the read timeout (`set_read_timeout`) passes;
    /// `WouldBlock` in non-blocking mode when no connection is queued;
    /// else the OS error of `accept4(2)` (`EMFILE` or `ENFILE` when out of
    /// file descriptors, ...).
    ///
    /// # Blocking
    /// Parks until a peer connects. Killed or timed out meanwhile, it
    /// loses no connection (see [`TcpListener::accept`](super::TcpListener::accept)).
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (sock, _) = self.sock.accept(None)?;
        let peer = unix_addr(sock.as_fd(), true)?;
        Ok((UnixStream { sock }, peer))
    }

    /// An endless iterator of accepted connections.
    ///
    /// # Blocking
    /// Each `next` parks as [`accept`](Self::accept) does.
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// A second handle on the same socket (a dup'd fd).
    ///
    /// # Errors
    /// The OS error of duplicating the fd (`fcntl(2)`): `EMFILE` or
    /// `ENFILE` when out of file descriptors.
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        Ok(UnixListener { sock: self.sock.try_clone()? })
    }

    /// The bound address.
    ///
    /// # Errors
    /// The OS error of `getsockname(2)` (not expected on an open socket).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        unix_addr(self.sock.as_fd(), false)
    }
}

/// The iterator of [`UnixListener::incoming`].
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;

    /// The next accepted connection (never `None`).
    ///
    /// # Blocking
    /// As [`UnixListener::accept`].
    fn next(&mut self) -> Option<Self::Item> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A Unix-domain stream whose reads and writes park only the calling
/// greenlet.
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use gevent::socket::UnixStream;
///
/// let (mut a, mut b) = UnixStream::pair().unwrap();
/// // The reader parks in its own greenlet until `a` is closed.
/// let reader = gevent::spawn(move || {
///     let mut text = String::new();
///     b.read_to_string(&mut text).unwrap();
///     text
/// });
/// a.write_all(b"hello").unwrap();
/// drop(a);
/// assert_eq!(reader.get().unwrap(), "hello");
/// ```
#[derive(Debug)]
pub struct UnixStream {
    pub(crate) sock: Sock,
}

impl UnixStream {
    /// Connects to the socket at `path`.
    ///
    /// # Errors
    /// As std's; `InvalidInput` when the path holds a NUL byte.
    ///
    /// # Blocking
    /// Parks while connecting.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        UnixStream::connect_to(&unix_path(path.as_ref())?)
    }

    /// Connects to `addr` (a path or an abstract name), as std's
    /// `UnixStream::connect_addr`; see [`UnixListener::bind_addr`].
    ///
    /// # Errors
    /// `InvalidInput` for an unnamed address; else as [`connect`](Self::connect).
    ///
    /// # Blocking
    /// Parks while connecting.
    pub fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        UnixStream::connect_to(&std_addr(addr)?)
    }

    fn connect_to(a: &socket2::SockAddr) -> io::Result<UnixStream> {
        let sock = Sock::for_addr(a, Type::STREAM)?;
        sock.connect(a, None)?;
        Ok(UnixStream { sock })
    }

    /// Two connected streams.
    ///
    /// # Errors
    /// The OS error of `socketpair(2)`: `EMFILE` or `ENFILE` when out of
    /// file descriptors.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM.cloexec(), None)?;
        Ok((UnixStream { sock: Sock::new(a.into())? }, UnixStream { sock: Sock::new(b.into())? }))
    }

    /// Shuts down the read half, the write half or both. Reads of a shut
    /// read half then return 0 (the end of the stream) once the data
    /// already received is read; writes on a shut write half fail with
    /// `BrokenPipe`.
    ///
    /// # Errors
    /// The OS error of `shutdown(2)` (not expected on an open socket, even
    /// once the peer is gone).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.shutdown(how)
    }

    /// The peer's address (unnamed for an unbound peer, as a
    /// [`pair`](Self::pair)'s).
    ///
    /// # Errors
    /// The OS error of `getpeername(2)`: `NotConnected` for a socket that
    /// never connected (made from such an fd).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        unix_addr(self.sock.as_fd(), true)
    }

    /// The local address.
    ///
    /// # Errors
    /// The OS error of `getsockname(2)` (not expected on an open socket).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        unix_addr(self.sock.as_fd(), false)
    }

    /// A second handle on the same stream (a dup'd fd), sharing its
    /// timeouts.
    ///
    /// # Errors
    /// The OS error of duplicating the fd (`fcntl(2)`): `EMFILE` or
    /// `ENFILE` when out of file descriptors.
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(UnixStream { sock: self.sock.try_clone()? })
    }
}

stream_io!(UnixStream);
timeouts!(UnixStream);
timeouts!(UnixListener);
fd_traits!(UnixStream);
fd_traits!(UnixListener);
options!(UnixStream);
options!(UnixListener);
