//! `gevent::server` on both backends: the pool cap, stopping with a grace
//! period, `serve_forever`, running out of fds (in a child process: the fd
//! limit is process-wide), `DatagramServer`, `serve_threads` (in child
//! processes: its server threads never end) and `start_threads`.

mod io_common;

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gevent::hub::Backend;
use gevent::server::{DatagramServer, StreamServer, MAX_ACCEPT};
use gevent::socket::{TcpListener, TcpStream, UdpSocket};
use gevent::Greenlet;
use io_common::{assert_refused_soon, both, child_ok, child_scenario, echo, join_ok, ms, run_child, wait_until, LOCAL};

/// One round trip of `msg` on `c`.
fn round_trip(c: &mut TcpStream, msg: &[u8]) {
    c.write_all(msg).unwrap();
    let mut got = vec![0u8; msg.len()];
    c.read_exact(&mut got).unwrap();
    assert_eq!(got, msg);
}

/// Counts its drops.
struct DropCount(Rc<Cell<usize>>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn pool_caps_concurrent_handlers() {
    both(|| {
        const SIZE: usize = 3;
        const CLIENTS: usize = 30;
        let active = Rc::new(Cell::new(0usize));
        let peak = Rc::new(Cell::new(0usize));
        let served = Rc::new(Cell::new(0usize));
        let (a, p, s) = (active.clone(), peak.clone(), served.clone());
        let server = StreamServer::new(LOCAL, move |mut conn: TcpStream, _| {
            a.set(a.get() + 1);
            p.set(p.get().max(a.get()));
            struct Leave(Rc<Cell<usize>>);
            impl Drop for Leave {
                fn drop(&mut self) {
                    self.0.set(self.0.get() - 1);
                }
            }
            let _leave = Leave(a.clone());
            let mut b = [0u8; 1];
            conn.read_exact(&mut b).unwrap();
            gevent::sleep(ms(2)); // hold the slot a while
            conn.write_all(&b).unwrap();
            s.set(s.get() + 1);
        })
        .unwrap()
        .with_pool(SIZE);
        server.start().unwrap();
        let addr = server.local_addr();
        let srv = server.clone();
        let clients: Vec<Greenlet<()>> = (0..CLIENTS)
            .map(|i| {
                let srv = srv.clone();
                gevent::spawn(move || {
                    let mut c = TcpStream::connect(addr).unwrap();
                    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    round_trip(&mut c, &[i as u8]);
                    assert!(srv.connections() <= SIZE, "{} connections handled at once", srv.connections());
                })
            })
            .collect();
        for c in clients {
            join_ok(c);
        }
        assert_eq!(served.get(), CLIENTS);
        assert_eq!(peak.get(), SIZE, "the pool of {SIZE} ran {} handlers at once", peak.get());
        assert!(wait_until(Duration::from_secs(5), || server.connections() == 0));
        server.stop_timeout(ms(100));
    });
}

#[test]
fn stop_timeout_kills_handlers_that_outlive_the_grace() {
    both(|| {
        let killed = Rc::new(Cell::new(0usize));
        let finished = Rc::new(Cell::new(0usize));
        let (k, f) = (killed.clone(), finished.clone());
        let server = StreamServer::new(LOCAL, move |mut conn: TcpStream, _| {
            let mut b = [0u8; 1];
            conn.read_exact(&mut b).unwrap();
            if b[0] == b's' {
                // Slow: waits for more, forever; only a kill ends it.
                let _guard = DropCount(k.clone());
                let mut rest = [0u8; 1];
                let _ = conn.read(&mut rest);
                panic!("a slow handler was not killed");
            }
            gevent::sleep(ms(20)); // quick: done well within the grace
            conn.write_all(b"done").unwrap();
            f.set(f.get() + 1);
        })
        .unwrap();
        server.start().unwrap();
        let addr = server.local_addr();
        let mut slow = Vec::new();
        let mut quick = Vec::new();
        for i in 0..5 {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c.write_all(if i % 2 == 0 { b"s" } else { b"q" }).unwrap();
            if i % 2 == 0 {
                slow.push(c)
            } else {
                quick.push(c)
            }
        }
        assert!(
            wait_until(Duration::from_secs(5), || server.connections() == 5),
            "{} connections",
            server.connections()
        );
        let t = Instant::now();
        server.stop_timeout(ms(100));
        let took = t.elapsed();
        assert!(took >= ms(100), "stop_timeout(100 ms) returned after {took:?} with handlers still running");
        assert_eq!(killed.get(), 3, "slow handlers unwound");
        assert_eq!(finished.get(), 2, "quick handlers finished");
        assert_eq!(server.connections(), 0);
        for mut c in quick {
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap();
            assert_eq!(got, b"done");
        }
        for mut c in slow {
            let mut b = [0u8; 4];
            // The killed handler dropped its connection: EOF.
            assert_eq!(c.read(&mut b).unwrap(), 0);
        }
        // The listener is closed.
        assert_refused_soon(addr);
    });
}

#[test]
fn stop_returns_early_once_handlers_finish() {
    both(|| {
        let server = StreamServer::new(LOCAL, |mut conn: TcpStream, _| {
            gevent::sleep(ms(10));
            conn.write_all(b"bye").unwrap();
        })
        .unwrap();
        server.start().unwrap();
        let mut c = TcpStream::connect(server.local_addr()).unwrap();
        assert!(wait_until(Duration::from_secs(5), || server.connections() == 1));
        let t = Instant::now();
        server.stop_timeout(Duration::from_secs(30));
        // Generous: the handler needs 10 ms, the grace is 30 s.
        assert!(t.elapsed() < Duration::from_secs(10), "stop waited {:?} for a 10 ms handler", t.elapsed());
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"bye");
    });
}

#[test]
fn serve_forever_returns_after_stop_from_another_greenlet() {
    both(|| {
        let server = StreamServer::new(LOCAL, |conn, _| echo(conn)).unwrap();
        let (srv, addr) = (server.clone(), server.local_addr());
        let stopper = gevent::spawn(move || {
            gevent::sleep(ms(10));
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            round_trip(&mut c, b"served");
            drop(c);
            srv.stop();
        });
        server.serve_forever().unwrap();
        join_ok(stopper);
        assert_eq!(server.start().unwrap_err().kind(), ErrorKind::NotConnected);
        assert_refused_soon(addr);
        // serve_forever on a started server blocks too; start twice is refused.
        let listener = TcpListener::bind(LOCAL).unwrap();
        let server = StreamServer::from_listener(listener, |conn, _| echo(conn));
        server.start().unwrap();
        assert_eq!(server.start().unwrap_err().kind(), ErrorKind::AlreadyExists);
        let srv = server.clone();
        let stopper = gevent::spawn_later(ms(10), move || srv.stop_timeout(ms(50)));
        server.serve_forever().unwrap();
        join_ok(stopper);
    });
}

#[test]
fn a_burst_of_connections_is_handled_in_turns_of_max_accept() {
    both(|| {
        const BURST: usize = 2 * MAX_ACCEPT + 50;
        let listener = TcpListener::bind(LOCAL).unwrap();
        let addr = listener.local_addr().unwrap();
        // Blocking connects from the test's own thread: the kernel completes
        // each handshake and queues the connection before the server starts,
        // so every accept of the burst finds its connection at once.
        let clients: Vec<std::net::TcpStream> =
            (0..BURST).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        let handled = Rc::new(Cell::new(0usize));
        let peak = Rc::new(Cell::new(0usize));
        let (h, p) = (handled.clone(), peak.clone());
        let server = StreamServer::from_listener(listener, move |_conn, _| {
            // Alive now: main, the accept loop, and the handlers spawned
            // and not yet finished.
            p.set(p.get().max(gevent::hub::stats().greenlets));
            h.set(h.get() + 1);
        });
        server.start().unwrap();
        assert!(wait_until(Duration::from_secs(10), || handled.get() == BURST), "{} of {BURST} handled", handled.get());
        server.stop_timeout(ms(100));
        drop(clients);
        assert!(
            peak.get() <= MAX_ACCEPT + 3,
            "{} greenlets alive at once: the accept loop took more than {MAX_ACCEPT} connections before yielding",
            peak.get()
        );
    });
}

#[test]
fn a_panicking_handler_does_not_stop_the_server() {
    both(|| {
        let server = StreamServer::new(LOCAL, |mut conn: TcpStream, _| {
            let mut b = [0u8; 1];
            conn.read_exact(&mut b).unwrap();
            if b[0] == b'!' {
                panic!("handler told to panic");
            }
            conn.write_all(&b).unwrap();
        })
        .unwrap();
        server.start().unwrap();
        let addr = server.local_addr();
        for i in 0..5u8 {
            let mut bad = TcpStream::connect(addr).unwrap();
            bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            bad.write_all(b"!").unwrap();
            let mut rest = Vec::new();
            bad.read_to_end(&mut rest).unwrap(); // the panicking handler dropped it
            assert!(rest.is_empty());
            let mut good = TcpStream::connect(addr).unwrap();
            good.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            round_trip(&mut good, &[i]);
        }
        assert!(wait_until(Duration::from_secs(5), || server.connections() == 0));
        server.stop_timeout(ms(100));
    });
}

#[test]
fn serve_forever_returns_when_a_handler_stops_the_server() {
    both(|| {
        let me: Rc<std::cell::RefCell<Option<StreamServer>>> = Rc::default();
        let cell = me.clone();
        let server = StreamServer::new(LOCAL, move |mut conn: TcpStream, _| {
            let mut b = [0u8; 4];
            conn.read_exact(&mut b).unwrap();
            conn.write_all(b"ok").unwrap();
            drop(conn);
            if &b == b"quit" {
                let srv = cell.borrow().clone().expect("the server");
                srv.stop_timeout(ms(50));
            }
        })
        .unwrap();
        *me.borrow_mut() = Some(server.clone());
        let addr = server.local_addr();
        let client = gevent::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c.write_all(b"quit").unwrap();
            let mut got = [0u8; 2];
            c.read_exact(&mut got).unwrap();
            got
        });
        // Bounded: if the server never stops, serve_forever's wait ends in
        // LoopExit once the client is done; the watchdog covers the rest.
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.serve_forever()));
        *me.borrow_mut() = None;
        assert_eq!(&join_ok(client), b"ok");
        match served {
            Ok(r) => r.unwrap(),
            Err(p) => panic!("serve_forever did not return after the handler's stop: {}", io_common::panic_text(&*p)),
        }
    });
}

#[test]
fn datagram_server_echo() {
    both(|| {
        let handled = Rc::new(Cell::new(0usize));
        let h = handled.clone();
        let server = DatagramServer::new(LOCAL, move |data: &[u8], peer: SocketAddr, srv: &DatagramServer| {
            h.set(h.get() + 1);
            let mut reply = data.to_ascii_uppercase();
            reply.extend_from_slice(b"!");
            srv.send_to(&reply, peer).unwrap();
        })
        .unwrap();
        server.start().unwrap();
        assert_eq!(server.start().unwrap_err().kind(), ErrorKind::AlreadyExists);
        let addr = server.local_addr();
        let clients: Vec<Greenlet<()>> = (0..50)
            .map(|i| {
                gevent::spawn(move || {
                    let c = UdpSocket::bind(LOCAL).unwrap();
                    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    for r in 0..3 {
                        let msg = format!("client {i} round {r}");
                        c.send_to(msg.as_bytes(), addr).unwrap();
                        let mut buf = [0u8; 64];
                        let (n, from) = c.recv_from(&mut buf).unwrap();
                        assert_eq!(from, addr);
                        assert_eq!(&buf[..n], format!("{}!", msg.to_ascii_uppercase()).as_bytes());
                    }
                })
            })
            .collect();
        for c in clients {
            join_ok(c);
        }
        assert_eq!(handled.get(), 150);
        server.stop();
        assert_eq!(server.send_to(b"x", addr).unwrap_err().kind(), ErrorKind::NotConnected);
        assert_eq!(server.start().unwrap_err().kind(), ErrorKind::NotConnected);
    });
}

#[test]
fn datagram_serve_forever_returns_when_a_handler_stops_it() {
    both(|| {
        let server = DatagramServer::new(LOCAL, |data: &[u8], peer: SocketAddr, srv: &DatagramServer| {
            srv.send_to(b"bye", peer).unwrap();
            if data == b"quit" {
                srv.stop();
            }
        })
        .unwrap();
        let addr = server.local_addr();
        let client = gevent::spawn(move || {
            let c = UdpSocket::bind(LOCAL).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c.send_to(b"quit", addr).unwrap();
            let mut buf = [0u8; 8];
            let (n, _) = c.recv_from(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.serve_forever()));
        assert_eq!(join_ok(client), b"bye");
        match served {
            Ok(r) => r.unwrap(),
            Err(p) => panic!("serve_forever did not return after the handler's stop: {}", io_common::panic_text(&*p)),
        }
    });
}

/// The highest open fd of this process.
fn max_fd() -> i32 {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .max()
        .unwrap()
}

/// A TCP socket, not connected yet (made while fds are plentiful).
fn raw_tcp_socket() -> OwnedFd {
    // SAFETY: a new socket, owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: just created, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Connects `fd` to `addr` (IPv4) with a blocking connect, which completes
/// at once against a loopback listener with room in its backlog, even if
/// nobody accepts. Needs no new fd.
fn raw_connect(fd: &OwnedFd, addr: SocketAddr) {
    use std::os::fd::AsRawFd;
    let SocketAddr::V4(v4) = addr else { panic!("IPv4 only") };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: connect reads `len` bytes of the live address.
    let r = unsafe { libc::connect(fd.as_raw_fd(), (&sin as *const libc::sockaddr_in).cast(), len) };
    assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
}

/// The EMFILE scenario, in a child process (both backends there).
fn emfile_scenario() {
    let server = StreamServer::new(LOCAL, |conn, _| echo(conn)).unwrap();
    server.start().unwrap();
    let addr = server.local_addr();
    // Connections made while fds are plentiful.
    let mut existing: Vec<TcpStream> = (0..4)
        .map(|i| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            round_trip(&mut c, &[b'a', i]);
            c
        })
        .collect();
    let later: Vec<OwnedFd> = (0..4).map(|_| raw_tcp_socket()).collect();
    assert_eq!(server.accept_errors(), 0);
    // A low limit, filled up with placeholders.
    let (old_soft, _) = io_common::nofile_limit();
    io_common::set_nofile_soft(max_fd() as u64 + 32);
    let mut placeholders = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => placeholders.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("open: {e}"),
        }
        assert!(placeholders.len() < 10_000);
    }
    // New peers connect (the kernel's backlog takes them); the server cannot
    // accept them.
    let mut later: Vec<TcpStream> = later
        .into_iter()
        .map(|fd| {
            raw_connect(&fd, addr);
            let c = TcpStream::from(fd);
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c
        })
        .collect();
    for (i, c) in later.iter_mut().enumerate() {
        c.write_all(&[b'l', i as u8]).unwrap();
    }
    // The connections it has are still served, throughout the back-off.
    let t = Instant::now();
    let mut rounds = 0u8;
    while t.elapsed() < ms(300) {
        for (i, c) in existing.iter_mut().enumerate() {
            round_trip(c, &[b'e', i as u8, rounds]);
        }
        rounds = rounds.wrapping_add(1);
        gevent::sleep(ms(10));
    }
    let errors = server.accept_errors();
    println!("{:?}: {errors} accept errors in {:?} out of fds", gevent::hub::backend(), t.elapsed());
    assert!(errors >= 1, "the accept loop never met EMFILE");
    assert!(errors < 100, "the accept loop spins on EMFILE: {errors} errors in 300 ms");
    // Not every new peer got in. (On io_uring, one accept submitted before
    // the limit was lowered may still succeed: the kernel reads the limit
    // when it prepares the accept, and the fds above the new limit are free.)
    let during = server.connections();
    assert!((4..8).contains(&during), "{during} connections handled while out of fds");
    // Fds freed: the server accepts the waiting peers (after at most one
    // back-off period, 500 ms) and answers what they sent.
    drop(placeholders);
    for (i, c) in later.iter_mut().enumerate() {
        let mut got = [0u8; 2];
        c.read_exact(&mut got).unwrap();
        assert_eq!(got, [b'l', i as u8]);
        round_trip(c, b"again");
    }
    for (i, c) in existing.iter_mut().enumerate() {
        round_trip(c, &[b'z', i as u8]);
    }
    assert_eq!(server.connections(), 8);
    io_common::set_nofile_soft(old_soft);
    for c in existing.iter().chain(later.iter()) {
        c.shutdown(Shutdown::Write).unwrap();
    }
    assert!(wait_until(Duration::from_secs(5), || server.connections() == 0));
    server.stop_timeout(ms(100));
}

#[test]
fn out_of_fds_the_server_backs_off_and_recovers() {
    if child_scenario().as_deref() == Some("emfile") {
        both(emfile_scenario);
        return;
    }
    let out = run_child("out_of_fds_the_server_backs_off_and_recovers", "emfile", &[]);
    let stdout = child_ok(&out);
    for line in stdout.lines().filter(|l| l.contains("accept errors")) {
        println!("child: {}", line.rsplit(" ... ").next().unwrap_or(line));
    }
}

/// A `start_threads` handler: answers each 4-byte message with the name
/// of the thread serving it.
fn name_the_thread(mut conn: TcpStream, _peer: SocketAddr) {
    let mut b = [0u8; 4];
    while conn.read_exact(&mut b).is_ok() {
        let reply = format!("{}\n", std::thread::current().name().unwrap_or("?"));
        if conn.write_all(reply.as_bytes()).is_err() {
            break;
        }
    }
}

/// One message on a plain std client; the name of the thread that answered.
fn ask_thread(c: &mut std::net::TcpStream) -> String {
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"ping").unwrap();
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while c.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        reply.push(byte[0]);
    }
    String::from_utf8(reply).unwrap()
}

#[test]
fn start_threads_reports_its_port_and_stops_with_grace() {
    // The server threads follow GEVENT_BACKEND: the suite's epoll run
    // covers the other backend.
    let server = gevent::server::start_threads(LOCAL, 2, || name_the_thread).unwrap();
    assert_eq!(server.threads(), 2);
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0, "the real port of a port 0 request");
    let mut threads = BTreeSet::new();
    for _ in 0..64 {
        threads.insert(ask_thread(&mut std::net::TcpStream::connect(addr).unwrap()));
    }
    let names: BTreeSet<String> = ["gevent-server-0", "gevent-server-1"].map(String::from).into();
    assert_eq!(threads, names, "64 connections were not spread over both threads");
    // A connection left open: its handler waits for it past the grace.
    let mut idle = std::net::TcpStream::connect(addr).unwrap();
    ask_thread(&mut idle);
    let start = Instant::now();
    server.stop_timeout(ms(50)).unwrap();
    let took = start.elapsed();
    assert!(took >= ms(50), "stopped after {took:?}, before the grace was over");
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    let mut rest = Vec::new();
    // Killed after the grace: the connection ends (closed, or reset).
    let end = idle.read_to_end(&mut rest);
    assert!(matches!(end, Ok(0) | Err(_)) && rest.is_empty(), "{end:?} {rest:?}");
    assert_refused_soon(addr); // nobody listens after stop
}

#[test]
fn a_dropped_threaded_server_stops() {
    let server = gevent::server::start_threads(LOCAL, 1, || name_the_thread).unwrap();
    let addr = server.local_addr();
    assert_eq!(ask_thread(&mut std::net::TcpStream::connect(addr).unwrap()), "gevent-server-0");
    drop(server); // does not wait
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::net::TcpStream::connect(addr) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
            // Accepted, or reset by a listener closing during the handshake.
            Ok(_) | Err(_) if Instant::now() < deadline => std::thread::sleep(ms(5)),
            r => panic!("not refused 10 s after the handle was dropped: {r:?}"),
        }
    }
}

/// The `serve_threads` scenario, in a child process: two server threads
/// on one port answer connections; the threads never end, so the child
/// exits with them running.
fn serve_threads_scenario(expect: Option<Backend>) {
    // The port is found free, then handed to serve_threads: another process
    // may bind it in between (serve_threads then fails with AddrInUse), so
    // the scenario starts over on another port.
    for attempt in 1.. {
        match serve_threads_on_a_free_port(expect) {
            Ok(()) => return,
            Err(e) if e.kind() == ErrorKind::AddrInUse && attempt < 5 => println!("serve_threads: port taken ({e})"),
            Err(e) => panic!("serve_threads failed (attempt {attempt}): {e}"),
        }
    }
}

/// One try of [`serve_threads_scenario`]; serve_threads' error if it
/// returned before the first connection was answered.
fn serve_threads_on_a_free_port(expect: Option<Backend>) -> std::io::Result<()> {
    let port = std::net::TcpListener::bind(LOCAL).unwrap().local_addr().unwrap().port();
    let (tx, returned) = mpsc::channel();
    std::thread::spawn(move || {
        let r = gevent::server::serve_threads(("127.0.0.1", port), 2, || {
            |mut conn: TcpStream, _| {
                let mut b = [0u8; 4];
                if conn.read_exact(&mut b).is_ok() {
                    let me = std::thread::current();
                    let reply = format!("{}|{:?}\n", me.name().unwrap_or("?"), gevent::hub::backend());
                    let _ = conn.write_all(reply.as_bytes());
                }
            }
        });
        // Its threads serve until the process ends: only a failure returns.
        let _ = tx.send(r);
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut threads = BTreeSet::new();
    let mut backends = BTreeSet::new();
    for i in 0..64 {
        // Plain std clients: the servers run in their own threads.
        let reply = if i == 0 {
            first_reply(addr, &returned)?
        } else {
            let c = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {i}: {e}"));
            ask_name_and_backend(c).unwrap_or_else(|e| panic!("connection {i}: {e}"))
        };
        let (thread, backend) = reply.split_once('|').expect("a reply");
        threads.insert(thread.to_owned());
        backends.insert(backend.to_owned());
    }
    println!("serve_threads: threads {threads:?}, backends {backends:?}");
    let names: BTreeSet<String> = ["gevent-server-0", "gevent-server-1"].map(String::from).into();
    assert_eq!(threads, names, "64 connections were not spread over both threads");
    if let Some(b) = expect {
        assert_eq!(backends, [format!("{b:?}")].into(), "the server threads' backend");
    }
    Ok(())
}

/// The first connection of the `serve_threads` scenario: refused until the
/// servers listen; serve_threads' error if it `returned` instead.
fn first_reply(addr: SocketAddr, returned: &mpsc::Receiver<std::io::Result<()>>) -> std::io::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = returned.try_recv() {
            return Err(r.expect_err("serve_threads returned Ok"));
        }
        match std::net::TcpStream::connect(addr) {
            Ok(c) => {
                return ask_name_and_backend(c).map_err(|e| {
                    // Maybe answered by whoever took the port, which makes
                    // serve_threads fail at once.
                    match returned.recv_timeout(Duration::from_secs(10)) {
                        Ok(r) => r.expect_err("serve_threads returned Ok"),
                        Err(_) => panic!("connect 0: {e}"),
                    }
                });
            }
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
                std::thread::sleep(ms(5)); // not listening yet
            }
            Err(e) => panic!("connect 0: {e}"),
        }
    }
}

/// Pings a `serve_threads` scenario server on `c`: its reply,
/// `thread|backend`.
fn ask_name_and_backend(mut c: std::net::TcpStream) -> std::io::Result<String> {
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    c.write_all(b"ping")?;
    let mut reply = String::new();
    c.read_to_string(&mut reply)?;
    match reply.strip_suffix('\n') {
        Some(r) if r.contains('|') => Ok(r.to_owned()),
        _ => Err(std::io::Error::new(ErrorKind::InvalidData, format!("not a server's reply: {reply:?}"))),
    }
}

#[test]
fn serve_threads_two_threads_answer() {
    // Each backend in its own child: the server threads follow GEVENT_BACKEND.
    match child_scenario().as_deref() {
        Some("serve_threads_epoll") => return serve_threads_scenario(Some(Backend::Epoll)),
        Some("serve_threads_default") => {
            // io_uring unless the kernel refuses it (then epoll, as on qemu).
            let probe = std::thread::spawn(gevent::hub::backend).join().unwrap();
            return serve_threads_scenario(Some(probe));
        }
        _ => {}
    }
    let test = "serve_threads_two_threads_answer";
    for (scenario, env) in [("serve_threads_default", None), ("serve_threads_epoll", Some("epoll"))] {
        let out = run_child(test, scenario, &[("GEVENT_BACKEND", env)]);
        let stdout = child_ok(&out);
        for line in stdout.lines().filter_map(|l| l.split_once("serve_threads: ")) {
            println!("child ({scenario}): {}", line.1);
        }
    }
}

/// `start_threads` on a port in use fails as `TcpListener::bind` does (the
/// `SO_REUSEPORT` listeners joined the other server's port silently).
#[test]
fn start_threads_refuses_a_port_in_use() {
    let first = gevent::server::start_threads(LOCAL, 1, || name_the_thread).unwrap();
    let again = gevent::server::start_threads(first.local_addr(), 1, || name_the_thread);
    assert_eq!(again.err().map(|e| e.kind()), Some(std::io::ErrorKind::AddrInUse));
    first.stop().unwrap();
}

/// A handler stops its own threaded server directly: the other threads are
/// waited for, its own is not (it ends once the handler returns); joining
/// its own thread failed with "Resource deadlock avoided".
#[test]
fn a_handler_stops_its_own_threaded_server() {
    type Slot = std::sync::Arc<std::sync::Mutex<Option<gevent::server::ThreadedServer>>>;
    let slot: Slot = Default::default();
    let (tx, rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    let tx = std::sync::Mutex::new(tx);
    let handler_slot = slot.clone();
    let tx = std::sync::Arc::new(tx);
    let server = gevent::server::start_threads(LOCAL, 2, move || {
        let (slot, tx) = (handler_slot.clone(), tx.clone());
        move |_conn: TcpStream, _peer: SocketAddr| {
            if let Some(server) = slot.lock().unwrap().take() {
                let r = server.stop_timeout(ms(20));
                let _ = tx.lock().unwrap().send(r);
            }
        }
    })
    .unwrap();
    let addr = server.local_addr();
    *slot.lock().unwrap() = Some(server);
    let _c = std::net::TcpStream::connect(addr).unwrap();
    let r = rx.recv_timeout(Duration::from_secs(10)).expect("the handler's stop returned");
    assert!(r.is_ok(), "{r:?}");
    // The handler's own thread closes its listener once the handler
    // returns: until then a connect is accepted, or reset by that listener
    // closing during the handshake.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::net::TcpStream::connect(addr) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
            Ok(_) | Err(_) if Instant::now() < deadline => std::thread::sleep(ms(5)),
            r => panic!("not refused 10 s after the handler's stop: {r:?}"),
        }
    }
}

#[inline(never)]
fn echo_with_a_big_stack_buffer(mut c: TcpStream) {
    // 128 KiB on the handler's stack: twice the default stack.
    let mut buf = [0u8; 128 * 1024];
    let n = c.read(std::hint::black_box(&mut buf)).unwrap();
    c.write_all(&buf[..n]).unwrap();
}

#[test]
fn with_stack_size_gives_handlers_the_stack_they_need() {
    both(|| {
        for pool in [None, Some(2)] {
            let mut server = StreamServer::new(LOCAL, |c, _| echo_with_a_big_stack_buffer(c)).unwrap();
            if let Some(n) = pool {
                server = server.with_pool(n);
            }
            let server = server.with_stack_size(512 * 1024);
            server.start().unwrap();
            let clients: Vec<Greenlet<()>> = (0..3)
                .map(|i| {
                    let addr = server.local_addr();
                    gevent::spawn(move || round_trip(&mut TcpStream::connect(addr).unwrap(), &[i as u8; 100]))
                })
                .collect();
            for c in clients {
                join_ok(c);
            }
            server.stop();
        }
        let p = std::panic::catch_unwind(|| StreamServer::new(LOCAL, |_, _| ()).unwrap().with_stack_size(4 << 30));
        assert!(p.is_err(), "4 GiB refused");
    });
}
