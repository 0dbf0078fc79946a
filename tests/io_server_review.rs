//! Server and readiness behaviours a review of the socket and server layer
//! reproduced as wrong: a datagram flood starving the hub, a stop that
//! never returned when a handler caught its kill, a zero-timeout readiness
//! check that differed between backends, an accept loop retrying forever on
//! a socket that can never accept. On both backends.

mod io_common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use gevent::server::{DatagramServer, StreamServer};
use gevent::socket::{wait_read, wait_write, TcpListener, TcpStream, UnixStream};
use io_common::{both, ms, LOCAL};

/// A readiness check with a zero timeout polls: ready is `Ok`, not ready
/// is `TimedOut` (io_uring answered `TimedOut` to a ready fd).
#[test]
fn a_zero_timeout_readiness_check_polls() {
    both(|| {
        let (a, mut b) = UnixStream::pair().unwrap();
        let r = wait_read(a.as_raw_fd(), Some(Duration::ZERO));
        assert_eq!(r.map_err(|e| e.kind()), Err(std::io::ErrorKind::TimedOut), "nothing to read yet");
        b.write_all(b"x").unwrap();
        wait_read(a.as_raw_fd(), Some(Duration::ZERO)).expect("readable");
        wait_write(a.as_raw_fd(), Some(Duration::ZERO)).expect("writable");
        let e = wait_read(-1, Some(Duration::ZERO)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
    });
}

/// While datagrams keep arriving, the rest of the hub still runs (gevent
/// reads at most `max_accept` datagrams per loop pass): a 20 ms sleep in
/// the middle of a flood does not last until the flood ends.
#[test]
fn a_datagram_flood_does_not_starve_the_hub() {
    both(|| {
        let handled = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let h = handled.clone();
        let server = DatagramServer::new(LOCAL, move |_: &[u8], _, _: &DatagramServer| h.set(h.get() + 1)).unwrap();
        server.start().unwrap();
        let addr = server.local_addr();
        const FLOOD: Duration = Duration::from_millis(800);
        let blasters: Vec<_> = (0..2)
            .map(|_| {
                std::thread::spawn(move || {
                    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                    let t0 = Instant::now();
                    while t0.elapsed() < FLOOD {
                        for _ in 0..64 {
                            let _ = s.send_to(b"x", addr);
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(ms(50)); // the flood is on, the socket full
        let t0 = Instant::now();
        gevent::sleep(ms(20));
        let slept = t0.elapsed();
        let during = handled.get();
        for b in blasters {
            b.join().unwrap();
        }
        server.stop();
        assert!(during > 0, "no handler ran during the flood");
        assert!(slept < ms(500), "a 20 ms sleep took {slept:?}: the receive loop kept the hub");
    });
}

/// A handler that catches its kill (std's `catch_unwind` around each
/// request, as frameworks answering 500 do) does not keep `stop` waiting
/// for ever: as gevent's, it gives up one second after the kill.
#[test]
fn stop_returns_when_a_handler_swallows_its_kill() {
    both(|| {
        let server = StreamServer::new(LOCAL, |c: TcpStream, _| loop {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut b = [0u8; 16];
                (&c).read(&mut b)
            }));
            if matches!(r, Ok(Ok(0)) | Ok(Err(_))) {
                return;
            }
        })
        .unwrap();
        server.start().unwrap();
        let mut client = TcpStream::connect(server.local_addr()).unwrap();
        gevent::sleep(ms(20));
        let t0 = Instant::now();
        let s2 = server.clone();
        let r = gevent::with_timeout(Duration::from_secs(10), move || s2.stop_timeout(ms(50)));
        assert!(r.is_ok(), "stop_timeout(50 ms) still blocked after {:?}", t0.elapsed());
        assert!(t0.elapsed() >= Duration::from_secs(1), "gave up before the second after the kill");
        // The handler is still there; the client's close ends it.
        client.write_all(b"still served").unwrap();
        drop(client);
        gevent::sleep(ms(20));
    });
}

/// A server on a listener that can never accept (a datagram socket handed
/// over as one: `EOPNOTSUPP`) stops, as on any other fatal accept error,
/// instead of retrying for ever.
#[test]
fn a_server_on_a_socket_that_cannot_accept_stops() {
    both(|| {
        let u = std::net::UdpSocket::bind(LOCAL).unwrap();
        let l = TcpListener::from(std::os::fd::OwnedFd::from(u));
        let server = StreamServer::from_listener(l, |_c, _| {});
        let s2 = server.clone();
        let g = gevent::spawn(move || s2.serve_forever());
        let r = gevent::with_timeout(Duration::from_secs(5), || g.join());
        assert!(r.is_ok(), "serve_forever still running after {} accept errors", server.accept_errors());
        assert_eq!(server.accept_errors(), 1);
    });
}

/// `DatagramServer::stop_timeout` honours its grace: a handler still
/// running after it is killed then, not after the default second.
#[test]
fn a_datagram_server_stop_honours_its_grace() {
    both(|| {
        let server =
            DatagramServer::new(LOCAL, |_: &[u8], _, _: &DatagramServer| gevent::sleep(Duration::from_secs(60)))
                .unwrap();
        server.start().unwrap();
        let c = std::net::UdpSocket::bind(LOCAL).unwrap();
        c.send_to(b"x", server.local_addr()).unwrap();
        gevent::sleep(ms(20)); // the handler sleeps
        let t0 = Instant::now();
        server.stop_timeout(ms(30));
        let took = t0.elapsed();
        assert!(took >= ms(30), "stop returned after {took:?}, before its grace");
        assert!(took < ms(900), "stop took {took:?}: the default grace, not the one given");
    });
}
