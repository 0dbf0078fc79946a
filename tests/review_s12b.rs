//! Review of 9eb10dd/ee38105 (server pause, op::Cancel), bbf203c
//! (KeptConns) and 04fb425 (ring sends), on both backends.

mod io_common;

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use gevent::hub::{backend, set_ring_sends};
use gevent::socket::{TcpListener, TcpStream};
use io_common::{both, both_exclusive, fd_count, ms, settle_fds, tcp_pair, LOCAL};

/// Bytes available now on `s` (non-blocking peek), 0 when none.
fn pending(s: &TcpStream) -> usize {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 64];
    let n = match s.peek(&mut b) {
        Ok(n) => n,
        Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
        Err(e) => panic!("{e}"),
    };
    s.set_nonblocking(false).unwrap();
    n
}

/// A `with_timeout` around a small `write` whose deadline passes while
/// the send is in flight. The syscall path returns Ok(n) (a send that
/// completes at once never parks). Through the ring (io_uring with ring
/// sends) the sender parks, the timeout lands, and the bytes may have gone
/// out all the same (documented on `set_ring_sends`): then all of them,
/// once.
#[test]
fn ring_send_timed_out_after_the_bytes_went_out() {
    both(|| {
        for ring in [false, true] {
            set_ring_sends(ring);
            let (a, b) = tcp_pair();
            let r = gevent::with_timeout(Duration::from_micros(1), || {
                // The deadline passes before the send starts.
                let until = Instant::now() + ms(2);
                while Instant::now() < until {}
                (&a).write(b"hello")
            });
            gevent::sleep(ms(20));
            let got = pending(&b);
            set_ring_sends(false);
            let through_ring = ring && backend() == gevent::hub::Backend::IoUring;
            match r {
                Ok(Ok(n)) => assert_eq!(got, n, "ring={ring}"),
                Ok(Err(e)) => assert_eq!(got, 0, "ring={ring}: write failed ({e}) yet the peer got {got} bytes"),
                Err(_) if through_ring => assert!(got == 0 || got == 5, "a timed-out ring send delivered {got} bytes"),
                Err(_) => panic!("[{:?}] ring={ring}: a send that completes at once timed out", backend()),
            }
        }
    });
}

/// As above with a kill: a writer killed right after its ring send was
/// submitted. Report only (kill gives no result to anyone).
#[test]
fn ring_send_killed_in_flight() {
    both(|| {
        set_ring_sends(true);
        let (a, b) = tcp_pair();
        let returned = Rc::new(Cell::new(false));
        let r2 = returned.clone();
        let w = gevent::spawn(move || {
            let _ = (&a).write(b"hello");
            r2.set(true);
        });
        gevent::sleep(Duration::ZERO); // the writer submits and parks
        w.kill();
        gevent::sleep(ms(20));
        let got = pending(&b);
        set_ring_sends(false);
        println!("[{:?}] killed writer returned={} peer got {got}", backend(), returned.get());
    });
}

/// A kept connection (an acceptor killed after the kernel handed it one)
/// is returned by a non-blocking accept, by `incoming()`, by a clone on
/// another thread, and closed (no fd leak) when the listener drops.
fn keep_one(listener: &Rc<TcpListener>) -> std::net::TcpStream {
    let l = listener.clone();
    let victim = gevent::spawn(move || {
        let _ = l.accept();
    });
    gevent::sleep(ms(2)); // parked in its accept
    let c = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    victim.kill();
    c
}

#[test]
fn kept_connection_reaches_nonblocking_accept_and_clones() {
    both(|| {
        let listener = Rc::new(TcpListener::bind(LOCAL).unwrap());
        // Non-blocking accept.
        let mut c = keep_one(&listener);
        listener.set_nonblocking(true).unwrap();
        let got = listener.accept();
        listener.set_nonblocking(false).unwrap();
        let (mut s, _) = got.unwrap_or_else(|e| panic!("[{:?}] nonblocking accept: {e}", backend()));
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        // A clone on another thread.
        let _c2 = keep_one(&listener);
        let clone = listener.try_clone().unwrap();
        let t = std::thread::spawn(move || {
            clone.set_read_timeout(Some(ms(2000))).unwrap();
            clone.accept().map(|_| ()).map_err(|e| e.to_string())
        });
        let r = gevent::spawn_blocking(move || t.join().unwrap());
        assert!(r.is_ok(), "[{:?}] clone's accept on another thread: {r:?}", backend());
    });
}

#[test]
fn kept_connections_are_closed_with_the_listener() {
    both_exclusive(|| {
        let base = fd_count();
        let listener = Rc::new(TcpListener::bind(LOCAL).unwrap());
        let mut clients = Vec::new();
        for _ in 0..5 {
            clients.push(keep_one(&listener));
        }
        drop(listener);
        for c in &mut clients {
            c.set_read_timeout(Some(ms(2000))).unwrap();
            let mut b = [0u8; 1];
            match c.read(&mut b) {
                Ok(0) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                r => panic!("[{:?}] client of a dropped listener: {r:?}", backend()),
            }
        }
        drop(clients);
        assert_eq!(settle_fds(base, ms(2000)), base, "[{:?}] fds leaked", backend());
    });
}

/// A handler pauses its own server, toggles it quickly (stop, start,
/// stop, start with no turn between), and every connection made meanwhile
/// is still served; then stop after a pause from a handler ends cleanly.
#[test]
fn handler_toggles_its_own_server_rapidly() {
    use gevent::server::StreamServer;
    both(|| {
        let slot: Rc<std::cell::RefCell<Option<StreamServer>>> = Rc::default();
        let s2 = slot.clone();
        let server = StreamServer::new(LOCAL, move |mut conn: TcpStream, _| {
            let srv = s2.borrow().clone().unwrap();
            let mut b = [0u8; 1];
            if conn.read_exact(&mut b).is_err() {
                return;
            }
            if b[0] == b'p' {
                srv.stop_accepting();
                srv.stop_accepting(); // twice
                srv.start_accepting();
                srv.stop_accepting();
                srv.start_accepting();
                srv.stop_accepting();
                assert!(!srv.is_accepting());
                gevent::sleep(ms(5));
                srv.start_accepting();
            }
            let _ = conn.write_all(&b);
        })
        .unwrap();
        *slot.borrow_mut() = Some(server.clone());
        server.start().unwrap();
        let addr = server.local_addr();
        let mut cs: Vec<TcpStream> = Vec::new();
        for i in 0..20 {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(ms(5000))).unwrap();
            c.write_all(if i % 3 == 0 { b"p" } else { b"x" }).unwrap();
            cs.push(c);
            if i % 4 == 0 {
                gevent::sleep(Duration::ZERO);
            }
        }
        for (i, c) in cs.iter_mut().enumerate() {
            let mut b = [0u8; 1];
            c.read_exact(&mut b).unwrap_or_else(|e| panic!("[{:?}] client {i}: {e}", backend()));
        }
        server.stop_accepting();
        server.stop();
        server.stop_accepting(); // after stop: nothing
        server.start_accepting();
        assert!(!server.is_accepting());
        slot.borrow_mut().take();
    });
}

/// DatagramServer: a handler pauses and resumes its own server while
/// datagrams arrive; none is lost.
#[test]
fn datagram_handler_toggles_its_own_server() {
    use gevent::server::DatagramServer;
    use gevent::socket::UdpSocket;
    both(|| {
        let seen = Rc::new(Cell::new(0usize));
        let s2 = seen.clone();
        let server = DatagramServer::new(LOCAL, move |d: &[u8], peer, srv: &DatagramServer| {
            s2.set(s2.get() + 1);
            srv.stop_accepting();
            srv.start_accepting();
            srv.stop_accepting();
            gevent::sleep(ms(1));
            srv.start_accepting();
            let _ = srv.send_to(d, peer);
        })
        .unwrap();
        server.start().unwrap();
        let c = UdpSocket::bind(LOCAL).unwrap();
        c.set_read_timeout(Some(ms(5000))).unwrap();
        for i in 0..30u8 {
            c.send_to(&[i], server.local_addr()).unwrap();
            if i % 5 == 0 {
                gevent::sleep(Duration::ZERO);
            }
        }
        let mut b = [0u8; 4];
        for i in 0..30 {
            c.recv_from(&mut b).unwrap_or_else(|e| panic!("[{:?}] reply {i}: {e} (seen {})", backend(), seen.get()));
        }
        server.stop();
    });
}

/// A link callback (run from the hub) that sends a few bytes on a stream
/// with room: the syscall path completes it at once; with ring sends the
/// send would park in the hub.
#[test]
fn ring_send_from_a_link_callback() {
    both(|| {
        for ring in [false, true] {
            set_ring_sends(ring);
            let (a, b) = tcp_pair();
            let res = Rc::new(std::cell::RefCell::new(None));
            let r2 = res.clone();
            let g = gevent::spawn(|| {});
            g.link(move |_| {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    (&a).write(b"hi").map_err(|e| e.to_string())
                }));
                *r2.borrow_mut() = Some(r.map_err(|p| io_common::panic_text(&*p)));
            });
            g.join();
            gevent::sleep(ms(10));
            set_ring_sends(false);
            let got = pending(&b);
            let r = res.borrow_mut().take();
            // From a hub callback a ring send takes the syscall path (it
            // may not park): done at once, as with ring sends off; never an
            // abort.
            assert!(matches!(r, Some(Ok(Ok(2)))), "[{:?}] ring={ring}: link callback's write: {r:?}", backend());
            assert_eq!(got, 2);
        }
    });
}

/// `shutdown(Write)` by another greenlet while a ring send waits on a
/// full buffer: the send ends (EPIPE or a count), no hang.
#[test]
fn shutdown_during_a_ring_send() {
    both(|| {
        set_ring_sends(true);
        let (a, _b) = tcp_pair();
        let a = Rc::new(a);
        let a2 = a.clone();
        let w = gevent::spawn(move || {
            let big = vec![7u8; 8 << 20];
            let mut sent = 0;
            loop {
                match (&*a2).write(&big) {
                    Ok(n) => sent += n,
                    Err(e) => return (sent, Some(e.kind())),
                }
            }
        });
        gevent::sleep(ms(20));
        a.shutdown(std::net::Shutdown::Write).unwrap();
        let r = gevent::with_timeout(ms(3000), || w.join());
        set_ring_sends(false);
        assert!(r.is_ok(), "[{:?}] the ring send hung after shutdown", backend());
    });
}
