//! `gevent::socket::UnixDatagram` on both backends (paths, pairs,
//! connected sockets, unnamed and abstract addresses, peeks, parking,
//! timeouts, kills, truncation), and `UdpSocket`'s peeks and multicast
//! options.

mod io_common;

use std::cell::Cell;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use gevent::socket::{UdpSocket, UnixDatagram};
use io_common::{both, both_exclusive, fd_count, join_ok, ms, settle_fds, TempDir, LOCAL};

/// A socket bound at `path` whose receives give up after 10 s (a hang
/// fails the test instead of the watchdog).
fn bound(path: &Path) -> UnixDatagram {
    let s = UnixDatagram::bind(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// A name in the abstract namespace unique to this process and `tag`.
fn abstract_addr(tag: &str) -> SocketAddr {
    let name = format!("gevent-io-dgram-{}-{tag}", std::process::id());
    SocketAddr::from_abstract_name(name.as_bytes()).unwrap()
}

#[test]
fn send_to_and_recv_from_by_path() {
    both(|| {
        let dir = TempDir::new();
        let (a_path, b_path) = (dir.path("a"), dir.path("b"));
        let (a, b) = (bound(&a_path), bound(&b_path));
        assert_eq!(a.local_addr().unwrap().as_pathname(), Some(a_path.as_path()));
        assert_eq!(a.send_to(b"hello", &b_path).unwrap(), 5);
        let mut buf = [0u8; 16];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(from.as_pathname(), Some(a_path.as_path()));
        // A reply to the sender's address, as std's `send_to_addr`.
        assert_eq!(b.send_to_addr(b"back", &from).unwrap(), 4);
        assert_eq!(a.recv(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"back");
        // Nothing bound at the path: refused, as std.
        let e = a.send_to(b"x", dir.path("nobody")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(a.take_error().unwrap().is_none());
    });
}

#[test]
fn pair_sends_both_ways() {
    both(|| {
        let (a, b) = UnixDatagram::pair().unwrap();
        b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for i in 0..5u8 {
            assert_eq!(a.send(&[i; 3]).unwrap(), 3);
        }
        let mut buf = [0u8; 8];
        for i in 0..5u8 {
            assert_eq!(b.recv(&mut buf).unwrap(), 3, "datagram boundaries kept");
            assert_eq!(&buf[..3], &[i; 3]);
        }
        b.send(b"back").unwrap();
        assert_eq!(a.recv(&mut buf).unwrap(), 4);
        assert!(a.peer_addr().unwrap().is_unnamed());
        assert!(a.local_addr().unwrap().is_unnamed());
    });
}

#[test]
fn connect_then_send_and_recv() {
    both(|| {
        let dir = TempDir::new();
        let (a_path, b_path) = (dir.path("a"), dir.path("b"));
        let (a, b) = (bound(&a_path), bound(&b_path));
        assert_eq!(a.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
        assert_eq!(a.send(b"x").unwrap_err().kind(), ErrorKind::NotConnected);
        a.connect(&b_path).unwrap();
        b.connect_addr(&a.local_addr().unwrap()).unwrap();
        assert_eq!(a.peer_addr().unwrap().as_pathname(), Some(b_path.as_path()));
        assert_eq!(a.send(b"to b").unwrap(), 4);
        let mut buf = [0u8; 8];
        assert_eq!(b.recv(&mut buf).unwrap(), 4);
        assert_eq!(b.send(b"to a!").unwrap(), 5);
        let (n, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.as_pathname()), (&b"to a!"[..], Some(b_path.as_path())));
        // A connected socket takes datagrams from its peer only.
        let c = bound(&dir.path("c"));
        let e = c.send_to(b"stranger", &a_path).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    });
}

#[test]
fn an_unbound_sender_is_unnamed() {
    both(|| {
        let dir = TempDir::new();
        let b_path = dir.path("b");
        let b = bound(&b_path);
        let a = UnixDatagram::unbound().unwrap();
        assert!(a.local_addr().unwrap().is_unnamed());
        a.send_to(b"anon", &b_path).unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = b.peek_from(&mut buf).unwrap();
        assert_eq!(n, 4);
        assert!(from.is_unnamed(), "peek_from: {from:?}");
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"anon");
        assert!(from.is_unnamed(), "recv_from: {from:?}");
        assert_eq!(from.as_pathname(), None);
        // Which cannot be replied to.
        assert_eq!(b.send_to_addr(b"x", &from).unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(b.connect_addr(&from).unwrap_err().kind(), ErrorKind::InvalidInput);
        // Connected, it sends without naming the path, still unnamed.
        a.connect(&b_path).unwrap();
        assert_eq!(a.peer_addr().unwrap().as_pathname(), Some(b_path.as_path()));
        a.send(b"again").unwrap();
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.is_unnamed()), (&b"again"[..], true));
    });
}

#[test]
fn abstract_names() {
    both(|| {
        let (a_addr, b_addr) = (abstract_addr("a"), abstract_addr("b"));
        let a = UnixDatagram::bind_addr(&a_addr).unwrap();
        let b = UnixDatagram::bind_addr(&b_addr).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(a.local_addr().unwrap().as_abstract_name(), a_addr.as_abstract_name());
        assert_eq!(UnixDatagram::bind_addr(&a_addr).unwrap_err().kind(), ErrorKind::AddrInUse);
        a.send_to_addr(b"abstract", &b_addr).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"abstract");
        assert_eq!(from.as_abstract_name(), a_addr.as_abstract_name());
        a.connect_addr(&b_addr).unwrap();
        assert_eq!(a.peer_addr().unwrap().as_abstract_name(), b_addr.as_abstract_name());
        a.send(b"again").unwrap();
        let (n, from) = b.peek_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.as_abstract_name()), (&b"again"[..], a_addr.as_abstract_name()));
    });
}

#[test]
fn peeks_leave_the_datagram() {
    both(|| {
        let (a, b) = UnixDatagram::pair().unwrap();
        b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        a.send(b"first").unwrap();
        a.send(b"second").unwrap();
        let mut buf = [0u8; 16];
        for _ in 0..3 {
            assert_eq!(b.peek(&mut buf).unwrap(), 5);
            assert_eq!(&buf[..5], b"first");
            let (n, from) = b.peek_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from.is_unnamed()), (&b"first"[..], true));
        }
        assert_eq!(b.recv(&mut buf).unwrap(), 5);
        assert_eq!(b.peek(&mut buf).unwrap(), 6);
        assert_eq!(b.recv(&mut buf).unwrap(), 6);
        assert_eq!(&buf[..6], b"second");
        // A peek parks until a datagram arrives, then still leaves it.
        let (a, b) = (Rc::new(a), Rc::new(b));
        let peeker = {
            let b = b.clone();
            gevent::spawn(move || {
                let mut buf = [0u8; 16];
                let (n, _) = b.peek_from(&mut buf).unwrap();
                let m = b.peek(&mut buf).unwrap();
                (n, m)
            })
        };
        gevent::sleep(ms(5));
        assert!(!peeker.dead(), "peek_from returned with nothing queued");
        a.send(b"late").unwrap();
        assert_eq!(join_ok(peeker), (4, 4));
        assert_eq!(b.recv(&mut buf).unwrap(), 4);
    });
}

#[test]
fn a_parked_recv_lets_other_greenlets_run() {
    both(|| {
        let dir = TempDir::new();
        let b_path = dir.path("b");
        let b = Rc::new(bound(&b_path));
        let receiver = {
            let b = b.clone();
            gevent::spawn(move || {
                let mut buf = [0u8; 16];
                let (n, from) = b.recv_from(&mut buf).unwrap();
                (buf[..n].to_vec(), from.as_pathname().map(Path::to_owned))
            })
        };
        let ticks = Rc::new(Cell::new(0u32));
        let ticker = {
            let ticks = ticks.clone();
            gevent::spawn(move || {
                for _ in 0..10 {
                    ticks.set(ticks.get() + 1);
                    gevent::sleep(ms(1));
                }
            })
        };
        join_ok(ticker);
        assert_eq!(ticks.get(), 10);
        assert!(!receiver.dead(), "recv returned with nothing sent");
        let a_path = dir.path("a");
        let a = bound(&a_path);
        a.send_to(b"wake", &b_path).unwrap();
        assert_eq!(join_ok(receiver), (b"wake".to_vec(), Some(a_path)));
    });
}

#[test]
fn read_timeout_gives_timed_out() {
    both(|| {
        let (a, b) = UnixDatagram::pair().unwrap();
        assert_eq!(b.read_timeout().unwrap(), None);
        assert_eq!(b.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(), ErrorKind::InvalidInput);
        b.set_read_timeout(Some(ms(30))).unwrap();
        assert_eq!(b.read_timeout().unwrap(), Some(ms(30)));
        let mut buf = [0u8; 8];
        type Call = fn(&UnixDatagram, &mut [u8]) -> std::io::Result<()>;
        let calls: [(&str, Call); 4] = [
            ("recv", |b, buf| b.recv(buf).map(drop)),
            ("recv_from", |b, buf| b.recv_from(buf).map(drop)),
            ("peek", |b, buf| b.peek(buf).map(drop)),
            ("peek_from", |b, buf| b.peek_from(buf).map(drop)),
        ];
        for (name, op) in calls {
            let t = Instant::now();
            let e = op(&b, &mut buf).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut, "{name}: {e}");
            assert!(t.elapsed() >= ms(30), "{name} gave up after {:?}", t.elapsed());
        }
        // The socket still works after the timeouts; a clone shares them.
        a.send(b"ok").unwrap();
        assert_eq!(b.try_clone().unwrap().read_timeout().unwrap(), Some(ms(30)));
        assert_eq!(b.recv(&mut buf).unwrap(), 2);
    });
}

#[test]
fn nul_bytes_in_paths_are_refused() {
    both(|| {
        let dir = TempDir::new();
        let bad = dir.path("a\0b");
        let e = UnixDatagram::bind(&bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(!dir.path("a").exists(), "bound at the path cut at the NUL");
        let s = UnixDatagram::unbound().unwrap();
        assert_eq!(s.connect(&bad).unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(s.send_to(b"x", &bad).unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(s.send_to(b"x", "\0abstract-looking").unwrap_err().kind(), ErrorKind::InvalidInput);
    });
}

#[test]
fn a_killed_receiver_leaves_no_fd_and_the_socket_works() {
    both_exclusive(|| {
        let (a, b) = UnixDatagram::pair().unwrap();
        let b = Rc::new(b);
        b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let base = fd_count();
        for i in 0..20 {
            let s = b.clone();
            let victim = gevent::spawn(move || {
                // A clone of its own, closed as the kill unwinds.
                let mine = s.try_clone().unwrap();
                let mut buf = [0u8; 16];
                if i % 2 == 0 {
                    mine.recv(&mut buf).map(drop)
                } else {
                    mine.peek_from(&mut buf).map(drop)
                }
            });
            gevent::sleep(ms(1));
            assert!(!victim.dead(), "iteration {i}: the receiver returned with nothing sent");
            victim.kill();
            assert!(victim.dead(), "iteration {i}: kill returned before the victim died");
            assert_eq!(settle_fds(base, ms(1000)), base, "iteration {i}: fd count");
            // Sent after the kill: intact for the next receive.
            a.send(&[i as u8; 5]).unwrap();
            let mut buf = [0u8; 16];
            assert_eq!(b.recv(&mut buf).unwrap(), 5, "iteration {i}");
            assert_eq!(&buf[..5], &[i as u8; 5], "iteration {i}");
        }
    });
}

#[test]
fn a_datagram_longer_than_the_buffer_is_truncated() {
    both(|| {
        let (a, b) = UnixDatagram::pair().unwrap();
        b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let long: Vec<u8> = (0..100u8).collect();
        for _ in 0..3 {
            a.send(&long).unwrap();
        }
        a.send(b"next").unwrap();
        let mut small = [0u8; 10];
        assert_eq!(b.peek(&mut small).unwrap(), 10, "peek");
        assert_eq!(b.peek_from(&mut small).unwrap().0, 10, "peek_from");
        assert_eq!(b.recv(&mut small).unwrap(), 10, "recv returns the buffer's length");
        assert_eq!(small, long[..10]);
        assert_eq!(b.recv_from(&mut small).unwrap().0, 10, "recv_from");
        assert_eq!(b.recv(&mut []).unwrap(), 0, "an empty buffer takes a whole datagram");
        // The rest of each was dropped: the next datagram is whole.
        assert_eq!(b.recv(&mut small).unwrap(), 4);
        assert_eq!(&small[..4], b"next");
    });
}

/// std's blocking receive on a datagram socket shut down for reading
/// returns 0, where a non-blocking one says `EAGAIN`: ours return 0 on
/// both backends, parked ones included.
#[test]
fn shutdown_read_ends_receives() {
    both(|| {
        let (_a, b) = UnixDatagram::pair().unwrap();
        let b = Rc::new(b);
        b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let receiver = {
            let b = b.clone();
            gevent::spawn(move || b.recv(&mut [0u8; 8]))
        };
        let receiver_from = {
            let b = b.clone();
            gevent::spawn(move || b.recv_from(&mut [0u8; 8]))
        };
        gevent::sleep(ms(5));
        b.shutdown(Shutdown::Read).unwrap();
        assert_eq!(join_ok(receiver).unwrap(), 0, "parked receive");
        let (n, from) = join_ok(receiver_from).unwrap();
        assert!(n == 0 && from.is_unnamed(), "parked recv_from: {n}, {from:?}");
        assert_eq!(b.recv(&mut [0u8; 8]).unwrap(), 0, "receive after the shutdown");
        assert_eq!(b.peek(&mut [0u8; 8]).unwrap(), 0, "peek after the shutdown");
        for (what, r) in [("recv_from", b.recv_from(&mut [0u8; 8])), ("peek_from", b.peek_from(&mut [0u8; 8]))] {
            let (n, from) = r.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(n == 0 && from.is_unnamed(), "{what} after the shutdown: {n}, {from:?}, as std's");
        }
    });
}

/// An unconnected send to a full receiver waits without spinning: its own
/// socket stays writable (no readiness says when the receiver has room),
/// and it used to retry at once, burning the core for the whole wait.
#[test]
fn an_unconnected_send_to_a_full_receiver_does_not_spin() {
    both(|| {
        let dir = TempDir::new();
        let path = dir.path("full");
        let receiver = Rc::new(bound(&path));
        let filler = std::os::unix::net::UnixDatagram::unbound().unwrap();
        filler.set_nonblocking(true).unwrap();
        let mut queued = 0;
        while filler.send_to(b"fill", &path).is_ok() {
            queued += 1;
        }
        let sender = UnixDatagram::unbound().unwrap();
        sender.set_write_timeout(Some(ms(300))).unwrap();
        let (t, cpu) = (Instant::now(), thread_cpu());
        let e = sender.send_to(b"x", &path).unwrap_err();
        let (took, used) = (t.elapsed(), thread_cpu() - cpu);
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        assert!(took >= ms(300), "timed out after {took:?}");
        assert!(used < took / 3, "{used:?} of CPU in a {took:?} wait: it spun");
        // Once the receiver makes room, the send goes through.
        sender.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let drain = {
            let receiver = receiver.clone();
            gevent::spawn(move || {
                gevent::sleep(ms(20));
                receiver.recv(&mut [0u8; 8]).unwrap()
            })
        };
        assert_eq!(sender.send_to(b"x", &path).unwrap(), 1);
        assert_eq!(join_ok(drain), 4);
        for _ in 1..queued {
            receiver.recv(&mut [0u8; 8]).unwrap();
        }
        assert_eq!(receiver.recv(&mut [0u8; 8]).unwrap(), 1, "the parked send's datagram, last");
    });
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the live struct.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) }, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
fn shutdown_write_fails_sends() {
    both(|| {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.shutdown(Shutdown::Write).unwrap();
        assert_eq!(a.send(b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
        b.send(b"still").unwrap();
        assert_eq!(a.recv(&mut [0u8; 8]).unwrap(), 5, "the read side still works");
    });
}

#[test]
fn fd_conversions_round_trip() {
    both(|| {
        use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
        let (a, b) = UnixDatagram::pair().unwrap();
        assert_eq!(a.as_fd().as_raw_fd(), a.as_raw_fd());
        let owned: OwnedFd = b.into();
        let b = UnixDatagram::from(owned);
        a.send(b"via fd").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(b.recv(&mut buf).unwrap(), 6);
        let raw = b.into_raw_fd();
        assert!(raw >= 0);
        // SAFETY: `raw` was just given up by `b` and is owned by nobody else.
        drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) });
    });
}

#[test]
fn udp_peeks_leave_the_datagram() {
    both(|| {
        let a = UdpSocket::bind(LOCAL).unwrap();
        let b = Rc::new(UdpSocket::bind(LOCAL).unwrap());
        b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        // Parked in peek_from before anything is sent.
        let peeker = {
            let b = b.clone();
            gevent::spawn(move || {
                let mut buf = [0u8; 4];
                let (n, from) = b.peek_from(&mut buf).unwrap();
                (buf[..n].to_vec(), from)
            })
        };
        gevent::sleep(ms(5));
        assert!(!peeker.dead());
        a.send_to(b"datagram", b_addr).unwrap();
        assert_eq!(join_ok(peeker), (b"data".to_vec(), a_addr), "truncated to the buffer, as std");
        let mut buf = [0u8; 16];
        assert_eq!(b.peek(&mut buf).unwrap(), 8);
        assert_eq!(b.recv_from(&mut buf).unwrap(), (8, a_addr));
        assert_eq!(&buf[..8], b"datagram");
        b.set_read_timeout(Some(ms(20))).unwrap();
        assert_eq!(b.peek(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
        assert_eq!(b.peek_from(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
    });
}

#[test]
fn udp_multicast_options_and_loopback() {
    both(|| {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_multicast_loop_v4(false).unwrap();
        assert!(!s.multicast_loop_v4().unwrap());
        s.set_multicast_loop_v4(true).unwrap();
        assert!(s.multicast_loop_v4().unwrap());
        s.set_multicast_ttl_v4(7).unwrap();
        assert_eq!(s.multicast_ttl_v4().unwrap(), 7);
        if let Ok(s6) = UdpSocket::bind("[::1]:0") {
            s6.set_multicast_loop_v6(false).unwrap();
            assert!(!s6.multicast_loop_v6().unwrap());
            s6.set_multicast_loop_v6(true).unwrap();
            assert!(s6.multicast_loop_v6().unwrap());
            let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x1234);
            if s6.join_multicast_v6(&group, 0).is_ok() {
                s6.leave_multicast_v6(&group, 0).unwrap();
            }
        }
        // Not a multicast group: refused by the kernel.
        assert!(s.join_multicast_v4(&Ipv4Addr::LOCALHOST, &Ipv4Addr::LOCALHOST).is_err());
        multicast_loopback(&s);
    });
}

/// Sends to a group joined on 127.0.0.1 and receives the datagram looped
/// back, where the machine allows it (joining on the loopback interface and
/// sending through it); else says so and checks no more.
fn multicast_loopback(s: &UdpSocket) {
    let group = Ipv4Addr::new(239, 255, 43, 21);
    if let Err(e) = s.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST) {
        eprintln!("note: joining {group} on 127.0.0.1 failed ({e}): loopback not tested");
        return;
    }
    let port = s.local_addr().unwrap().port();
    let tx = UdpSocket::bind(LOCAL).unwrap();
    // (qemu-user does not emulate IP_MULTICAST_IF.)
    if let Err(e) = socket2::SockRef::from(&tx).set_multicast_if_v4(&Ipv4Addr::LOCALHOST) {
        eprintln!("note: choosing 127.0.0.1 for multicast failed ({e}): loopback not tested");
        return;
    }
    tx.set_multicast_loop_v4(true).unwrap();
    if let Err(e) = tx.send_to(b"group", (group, port)) {
        eprintln!("note: sending to {group} through 127.0.0.1 failed ({e}): loopback not tested");
        return;
    }
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 8];
    let (n, from) = s.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"group"[..], tx.local_addr().unwrap()));
    s.leave_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap();
}

/// Fills `b`'s receive queue from `a` (`send` fails with `TimedOut`): how
/// many datagrams it took.
fn fill(send: impl Fn(&[u8]) -> std::io::Result<usize>) -> usize {
    let mut sent = 0usize;
    loop {
        match send(&[0xee; 64]) {
            Ok(n) => assert_eq!(n, 64),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
                return sent;
            }
        }
        sent += 1;
        assert!(sent < 1_000_000, "the receive queue never filled");
    }
}

/// Drains `b` and checks the last datagram is `want`.
fn drain_expecting(b: &UnixDatagram, queued: usize, want: &[u8]) {
    let mut buf = [0u8; 128];
    for i in 0..queued {
        assert_eq!(b.recv(&mut buf).unwrap(), 64, "filler {i}");
    }
    let n = b.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], want, "the datagram whose send parked");
}

#[test]
fn a_send_parked_on_a_full_receiver_delivers_it_whole() {
    both(|| {
        let dir = TempDir::new();
        let b_path = dir.path("b");
        let b = Rc::new(bound(&b_path));
        for connected in [false, true] {
            let a = UnixDatagram::unbound().unwrap();
            if connected {
                a.connect(&b_path).unwrap();
            }
            a.set_write_timeout(Some(ms(50))).unwrap();
            let send = |buf: &[u8]| if connected { a.send(buf) } else { a.send_to(buf, &b_path) };
            let queued = fill(send);
            a.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
            let reader = {
                let b = b.clone();
                gevent::spawn(move || {
                    gevent::sleep(ms(10));
                    b.peek(&mut [0u8; 8]).unwrap()
                })
            };
            // Parks until the receiver takes one: then all of it is sent.
            let drainer = {
                let b = b.clone();
                gevent::spawn(move || {
                    gevent::sleep(ms(20));
                    b.recv(&mut [0u8; 128]).unwrap()
                })
            };
            let msg: Vec<u8> = (0..64u8).collect();
            assert_eq!(send(&msg).unwrap(), 64, "connected: {connected}");
            assert_eq!(join_ok(reader), 8);
            assert_eq!(join_ok(drainer), 64);
            drain_expecting(&b, queued - 1, &msg);
        }
    });
}
