//! `UdpSocket`.
#![forbid(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

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
    /// # Errors
    /// Resolution errors (`InvalidInput` for a string that is no address,
    /// or a name that resolves to none; the lookup's own for an unknown
    /// host), else `bind(2)`'s (`AddrInUse`, `AddrNotAvailable`, ...); with
    /// several addresses, the last one's.
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
    /// # Errors
    /// Resolution errors, as [`bind`](Self::bind)'s, else `connect(2)`'s
    /// (`EAFNOSUPPORT` for an address of the other IP family,
    /// `NetworkUnreachable`, ...); with several addresses, the last one's.
    ///
    /// # Blocking
    /// Only while a host name resolves (on the thread pool); the connect
    /// itself does not wait for the peer, though on io_uring it goes
    /// through the ring and may let other greenlets run first.
    pub fn connect<A: ToSocketAddrs + Sync>(&self, addr: A) -> io::Result<()> {
        each_addr(&resolve(addr)?, |a| self.sock.connect(&SockAddr::from(*a), None))
    }

    /// Sends `buf` to `addr` (its first resolved address).
    ///
    /// # Errors
    /// Resolution errors, as [`bind`](Self::bind)'s; `TimedOut` once the
    /// write timeout passes ([`set_write_timeout`](Self::set_write_timeout));
    /// `WouldBlock` in non-blocking mode while the send buffer is full;
    /// else the OS error of `sendmsg(2)` (`EMSGSIZE` for a datagram too
    /// large, `EAFNOSUPPORT` for an address of the other IP family, ...).
    ///
    /// # Blocking
    /// Parks while a host name resolves (on the thread pool; an address,
    /// typed or written as a string, resolves at once) and while the send
    /// buffer is full (bounded by the write timeout).
    pub fn send_to<A: ToSocketAddrs + Sync>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let a = resolve(addr)?[0];
        self.sock.send_to(buf, &SockAddr::from(a))
    }

    /// Receives one datagram and its sender. A datagram longer than `buf`
    /// fills it; the rest is dropped.
    ///
    /// # Errors
    /// `TimedOut` once the read timeout passes
    /// ([`set_read_timeout`](Self::set_read_timeout)); `WouldBlock` in
    /// non-blocking mode when no datagram is queued; else the OS error of
    /// `recvmsg(2)` (on a connected socket, `ConnectionRefused` when the
    /// peer refused an earlier datagram).
    ///
    /// # Blocking
    /// Parks until a datagram arrives (bounded by the read timeout).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, a) = self.sock.recv_from(buf, 0)?;
        Ok((n, inet(a)?))
    }

    /// [`recv_from`](Self::recv_from), the wait ended by `cancel` (see
    /// `op::Cancel`): a server's paused receive loop.
    pub(crate) fn recv_from_cancellable(
        &self,
        buf: &mut [u8],
        cancel: &super::Cancel,
    ) -> io::Result<(usize, SocketAddr)> {
        let (n, a) = self.sock.recv_from_cancellable(buf, cancel)?;
        Ok((n, inet(a)?))
    }

    /// Sends to the connected peer.
    ///
    /// # Errors
    /// `EDESTADDRREQ` when not connected; `ConnectionRefused` when the peer
    /// refused an earlier datagram; `TimedOut`, `WouldBlock` and the OS
    /// errors of `send(2)` as for [`send_to`](Self::send_to).
    ///
    /// # Blocking
    /// As [`send_to`](Self::send_to).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock.send_dgram(buf)
    }

    /// Receives from the connected peer.
    ///
    /// # Errors
    /// As [`recv_from`](Self::recv_from), the OS error being `recv(2)`'s.
    ///
    /// # Blocking
    /// As [`recv_from`](Self::recv_from).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.recv_dgram(buf)
    }

    /// Reads the next datagram without taking it: the next receive gets it
    /// again. A datagram longer than `buf` fills it (the rest is not lost).
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    ///
    /// # Blocking
    /// As [`recv`](Self::recv). A greenlet killed or timed out while parked
    /// here leaves the queue untouched.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.peek_dgram(buf)
    }

    /// As [`peek`](Self::peek), with the sender's address.
    ///
    /// # Errors
    /// As [`recv_from`](Self::recv_from).
    ///
    /// # Blocking
    /// As [`recv_from`](Self::recv_from); a kill or timeout leaves the
    /// queue untouched.
    ///
    /// # Examples
    /// ```
    /// use gevent::socket::UdpSocket;
    /// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// a.send_to(b"ping", b.local_addr().unwrap()).unwrap();
    /// let mut buf = [0u8; 8];
    /// let peeked = b.peek_from(&mut buf).unwrap();
    /// assert_eq!(peeked, b.recv_from(&mut buf).unwrap());
    /// assert_eq!(peeked.1, a.local_addr().unwrap());
    /// ```
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, a) = self.sock.recv_from(buf, libc::MSG_PEEK)?;
        Ok((n, inet(a)?))
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

    /// Sets `SO_BROADCAST` (sending to a broadcast address allowed).
    ///
    /// # Errors
    /// The OS error of `setsockopt(2)` (not expected on an open socket).
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.sock.sock().set_broadcast(on)
    }

    /// Whether `SO_BROADCAST` is set.
    ///
    /// # Errors
    /// The OS error of `getsockopt(2)` (not expected on an open socket).
    pub fn broadcast(&self) -> io::Result<bool> {
        self.sock.sock().broadcast()
    }

    /// The connected peer's address.
    ///
    /// # Errors
    /// `NotConnected` when not connected; else the OS error of
    /// `getpeername(2)`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        inet(self.sock.sock().peer_addr()?)
    }

    /// A second handle on the same socket (a dup'd fd), sharing its
    /// timeouts.
    ///
    /// # Errors
    /// The OS error of duplicating the fd (`fcntl(2)`): `EMFILE` or
    /// `ENFILE` when out of file descriptors.
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket { sock: self.sock.try_clone()? })
    }
}

/// Multicast options, as std's (`IP_MULTICAST_*`, `IP_ADD_MEMBERSHIP`, ...).
impl UdpSocket {
    /// Sets whether multicast datagrams sent from this socket loop back to
    /// local sockets (`IP_MULTICAST_LOOP`).
    ///
    /// # Errors
    /// The OS error of `setsockopt(2)` (not expected on an open socket).
    pub fn set_multicast_loop_v4(&self, multicast_loop_v4: bool) -> io::Result<()> {
        self.sock.sock().set_multicast_loop_v4(multicast_loop_v4)
    }

    /// Whether multicast datagrams loop back (`IP_MULTICAST_LOOP`).
    ///
    /// # Errors
    /// The OS error of `getsockopt(2)` (not expected on an open socket).
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.sock.sock().multicast_loop_v4()
    }

    /// Sets the time-to-live of outgoing multicast datagrams
    /// (`IP_MULTICAST_TTL`; 1 keeps them on the local network).
    ///
    /// # Errors
    /// `InvalidInput` for a TTL above 255; else the OS error of
    /// `setsockopt(2)`.
    pub fn set_multicast_ttl_v4(&self, multicast_ttl_v4: u32) -> io::Result<()> {
        self.sock.sock().set_multicast_ttl_v4(multicast_ttl_v4)
    }

    /// The time-to-live of outgoing multicast datagrams (`IP_MULTICAST_TTL`).
    ///
    /// # Errors
    /// The OS error of `getsockopt(2)` (not expected on an open socket).
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.sock.sock().multicast_ttl_v4()
    }

    /// Sets whether IPv6 multicast datagrams loop back (`IPV6_MULTICAST_LOOP`).
    ///
    /// # Errors
    /// The OS error of `setsockopt(2)`: `ENOPROTOOPT` on an IPv4 socket.
    pub fn set_multicast_loop_v6(&self, multicast_loop_v6: bool) -> io::Result<()> {
        self.sock.sock().set_multicast_loop_v6(multicast_loop_v6)
    }

    /// Whether IPv6 multicast datagrams loop back (`IPV6_MULTICAST_LOOP`).
    ///
    /// # Errors
    /// The OS error of `getsockopt(2)`: `Unsupported` (`EOPNOTSUPP`) on an
    /// IPv4 socket.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.sock.sock().multicast_loop_v6()
    }

    /// Joins the IPv4 multicast group `multiaddr` on the interface with
    /// address `interface` (`UNSPECIFIED`: the kernel picks one by route).
    ///
    /// # Errors
    /// As the kernel's: `ENODEV` when no interface fits (no multicast
    /// route), `EINVAL` when `multiaddr` is not a multicast address.
    pub fn join_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.sock.sock().join_multicast_v4(multiaddr, interface)
    }

    /// Joins the IPv6 multicast group `multiaddr` on interface index
    /// `interface` (0: the kernel picks one).
    ///
    /// # Errors
    /// As the kernel's: `ENODEV` for an unknown interface index (or, with
    /// 0, no multicast route), `EINVAL` when `multiaddr` is not a
    /// multicast address, `ENOPROTOOPT` on an IPv4 socket.
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.sock.sock().join_multicast_v6(multiaddr, interface)
    }

    /// Leaves a group joined with [`join_multicast_v4`](Self::join_multicast_v4).
    ///
    /// # Errors
    /// `AddrNotAvailable` when the group was not joined there; else as
    /// [`join_multicast_v4`](Self::join_multicast_v4).
    pub fn leave_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.sock.sock().leave_multicast_v4(multiaddr, interface)
    }

    /// Leaves a group joined with [`join_multicast_v6`](Self::join_multicast_v6).
    ///
    /// # Errors
    /// `AddrNotAvailable` when the group was not joined there; else as
    /// [`join_multicast_v6`](Self::join_multicast_v6).
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.sock.sock().leave_multicast_v6(multiaddr, interface)
    }
}

timeouts!(UdpSocket);
fd_traits!(UdpSocket);
options!(UdpSocket, ip);
