//! `UnixListener` and `UnixStream`.
#![forbid(unsafe_code)]

use std::io;
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::Path;

use socket2::{Domain, SockAddr, Socket, Type};

use super::{fd_traits, options, stream_io, timeouts, Sock};

/// A Unix socket's local or peer address, through std (which represents
/// unnamed and abstract addresses; socket2 has no std value for them).
fn unix_addr(fd: std::os::fd::BorrowedFd<'_>, peer: bool) -> io::Result<SocketAddr> {
    let s = std::os::unix::net::UnixStream::from(fd.try_clone_to_owned()?);
    if peer {
        s.peer_addr()
    } else {
        s.local_addr()
    }
}

/// A Unix-domain listening socket.
#[derive(Debug)]
pub struct UnixListener {
    pub(crate) sock: Sock,
}

impl UnixListener {
    /// Binds to `path` and listens.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        let a = SockAddr::unix(path)?;
        let sock = Sock::for_addr(&a, Type::STREAM)?;
        sock.sock().bind(&a)?;
        sock.sock().listen(super::tcp::BACKLOG)?;
        Ok(UnixListener { sock })
    }

    /// Accepts a connection.
    ///
    /// # Blocking
    /// Parks until a peer connects.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (sock, _) = self.sock.accept()?;
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
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        Ok(UnixListener { sock: self.sock.try_clone()? })
    }

    /// The bound address.
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
#[derive(Debug)]
pub struct UnixStream {
    pub(crate) sock: Sock,
}

impl UnixStream {
    /// Connects to the socket at `path`.
    ///
    /// # Blocking
    /// Parks while connecting.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let a = SockAddr::unix(path)?;
        let sock = Sock::for_addr(&a, Type::STREAM)?;
        sock.connect(&a, None)?;
        Ok(UnixStream { sock })
    }

    /// Two connected streams.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM.cloexec(), None)?;
        Ok((UnixStream { sock: Sock::new(a.into())? }, UnixStream { sock: Sock::new(b.into())? }))
    }

    /// Shuts down the read half, the write half or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.sock().shutdown(how)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        unix_addr(self.sock.as_fd(), true)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        unix_addr(self.sock.as_fd(), false)
    }

    /// A second handle on the same stream (a dup'd fd), sharing its
    /// timeouts.
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(UnixStream { sock: self.sock.try_clone()? })
    }
}

stream_io!(UnixStream);
timeouts!(UnixStream);
fd_traits!(UnixStream);
fd_traits!(UnixListener);
options!(UnixStream);
options!(UnixListener);
