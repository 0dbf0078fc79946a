//! `UdpSocket`.
#![forbid(unsafe_code)]

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use socket2::{SockAddr, Type};

use super::{each_addr, fd_traits, inet, options, resolve, timeouts, Sock};

/// A UDP socket whose sends and receives park only the calling greenlet.
///
/// # Examples
/// ```
/// use gevent::socket::UdpSocket;
/// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
/// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
/// a.send_to(b"ping", b.local_addr().unwrap()).unwrap();
/// let mut buf = [0u8; 8];
/// let (n, from) = b.recv_from(&mut buf).unwrap();
/// assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr().unwrap()));
/// ```
#[derive(Debug)]
pub struct UdpSocket {
    pub(crate) sock: Sock,
}

impl UdpSocket {
    /// Binds to `addr` (host names resolve on the thread pool).
    ///
    /// # Blocking
    /// Only while a host name resolves (on the thread pool).
    pub fn bind<A: ToSocketAddrs + Sync>(addr: A) -> io::Result<UdpSocket> {
        each_addr(&resolve(addr)?, |a| {
            let a = SockAddr::from(*a);
            let sock = Sock::for_addr(&a, Type::DGRAM)?;
            sock.sock().bind(&a)?;
            Ok(UdpSocket { sock })
        })
    }

    /// Sets the default peer for [`send`](Self::send) and [`recv`](Self::recv).
    ///
    /// # Blocking
    /// Only while a host name resolves (on the thread pool).
    pub fn connect<A: ToSocketAddrs + Sync>(&self, addr: A) -> io::Result<()> {
        each_addr(&resolve(addr)?, |a| self.sock.connect(&SockAddr::from(*a), None))
    }

    /// Sends `buf` to `addr` (its first resolved address).
    ///
    /// # Blocking
    /// Parks while a host name resolves (on the thread pool; an address,
    /// typed or written as a string, resolves at once) and while the send
    /// buffer is full (bounded by the write timeout).
    pub fn send_to<A: ToSocketAddrs + Sync>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let a = resolve(addr)?[0];
        self.sock.send_to(buf, &SockAddr::from(a))
    }

    /// Receives one datagram and its sender.
    ///
    /// # Blocking
    /// Parks until a datagram arrives (bounded by the read timeout).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, a) = self.sock.recv_from(buf)?;
        Ok((n, inet(a)?))
    }

    /// Sends to the connected peer.
    ///
    /// # Blocking
    /// As [`send_to`](Self::send_to).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock.send(buf)
    }

    /// Receives from the connected peer.
    ///
    /// # Blocking
    /// As [`recv_from`](Self::recv_from).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.recv_dgram(buf)
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        inet(self.sock.sock().local_addr()?)
    }

    /// Sets `SO_BROADCAST` (sending to a broadcast address allowed).
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.sock.sock().set_broadcast(on)
    }

    /// Whether `SO_BROADCAST` is set.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.sock.sock().broadcast()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        inet(self.sock.sock().peer_addr()?)
    }

    /// A second handle on the same socket (a dup'd fd), sharing its
    /// timeouts.
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket { sock: self.sock.try_clone()? })
    }
}

timeouts!(UdpSocket);
fd_traits!(UdpSocket);
options!(UdpSocket, ip);
