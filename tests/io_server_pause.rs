//! `gevent::server` accept control on both backends: `stop_accepting` and
//! `start_accepting` on `StreamServer` and `DatagramServer` (connections
//! and datagrams wait in the kernel meanwhile, none is lost to a pause),
//! and a full pool leaving new connections in the backlog.

mod io_common;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gevent::server::{DatagramServer, StreamServer};
use gevent::socket::{TcpStream, UdpSocket};
use gevent::Greenlet;
use io_common::{
    assert_refused_soon, both, both_exclusive, echo, fd_count, fds_shared, join_ok, ms, scaled, settle_fds, wait_until,
    LOCAL,
};

/// Generous: only a hung test waits this long.
const LONG: Duration = Duration::from_secs(10);

/// One round trip of `msg` on `c`.
fn round_trip(c: &mut TcpStream, msg: &[u8]) {
    c.write_all(msg).unwrap();
    let mut got = vec![0u8; msg.len()];
    c.read_exact(&mut got).unwrap();
    assert_eq!(got, msg);
}

/// A client connected to `addr`, reads bounded by [`LONG`].
fn connect(addr: SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    c
}

/// Connections waiting in the accept queues of the listeners on
/// 127.0.0.1:`addr.port()` (several with `SO_REUSEPORT`): a listening
/// socket's `rx_queue` in `/proc/net/tcp` is the kernel's count of
/// connections not accepted yet.
fn accept_queue(addr: SocketAddr) -> usize {
    // The address as the kernel prints it: the raw (network order) word in
    // hex, read little-endian on the hosts tested; the port in host order.
    let local = format!("0100007F:{:04X}", addr.port());
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let queues: Vec<usize> = table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 4 && f[1] == local && f[3] == "0A")
        .map(|f| usize::from_str_radix(f[4].split(':').nth(1).expect("tx_queue:rx_queue"), 16).unwrap())
        .collect();
    assert!(!queues.is_empty(), "no listener on {addr} in /proc/net/tcp");
    queues.iter().sum()
}

/// A server echoing on each connection, counting the connections handled.
fn counting_echo_server() -> (StreamServer, Rc<Cell<usize>>) {
    let handled = Rc::new(Cell::new(0usize));
    let h = handled.clone();
    let server = StreamServer::new(LOCAL, move |conn: TcpStream, _| {
        h.set(h.get() + 1);
        echo(conn)
    })
    .unwrap();
    (server, handled)
}

#[test]
fn a_paused_server_leaves_new_connections_in_the_backlog_until_resumed() {
    both(|| {
        let (server, handled) = counting_echo_server();
        server.start().unwrap();
        assert!(server.is_accepting());
        let addr = server.local_addr();
        // Served once: the accept loop then waits in an accept, which the
        // pause must end.
        let mut first = connect(addr);
        round_trip(&mut first, b"before");
        server.stop_accepting();
        assert!(server.started() && !server.is_accepting());
        let mut queued = connect(addr); // the kernel completes it into the backlog
        queued.write_all(b"queued").unwrap();
        assert!(wait_until(LONG, || accept_queue(addr) == 1), "the connection never reached the backlog");
        gevent::sleep(ms(20));
        assert_eq!(handled.get(), 1, "a connection was handled while paused");
        assert_eq!(accept_queue(addr), 1, "a connection was accepted while paused");
        // Parked, not polling: nothing runnable, no timer armed.
        let stats = gevent::hub::stats();
        assert_eq!((stats.ready, stats.timers), (0, 0), "the paused server polls: {stats:?}");
        server.stop_accepting(); // again: no change
        assert!(!server.is_accepting());
        server.start_accepting();
        assert!(server.is_accepting());
        let mut got = [0u8; 6];
        queued.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"queued");
        assert_eq!(handled.get(), 2);
        assert_eq!(accept_queue(addr), 0);
        round_trip(&mut first, b"after");
        drop((first, queued));
        server.stop();
    });
}

#[test]
fn handlers_in_flight_keep_working_while_paused() {
    both(|| {
        let (server, handled) = counting_echo_server();
        server.start().unwrap();
        let addr = server.local_addr();
        let mut a = connect(addr);
        let mut b = connect(addr);
        round_trip(&mut a, b"a");
        round_trip(&mut b, b"b");
        server.stop_accepting();
        let mut late = connect(addr);
        late.write_all(b"late").unwrap();
        for i in 0..20u8 {
            round_trip(&mut a, &[i; 100]);
            round_trip(&mut b, &[i; 3000]);
        }
        gevent::sleep(ms(10));
        assert_eq!((handled.get(), server.connections()), (2, 2));
        server.start_accepting();
        let mut got = [0u8; 4];
        late.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"late");
        assert_eq!((handled.get(), server.connections()), (3, 3));
        drop((a, b, late));
        server.stop();
    });
}

#[test]
fn stopping_a_paused_server_closes_everything() {
    both_exclusive(|| {
        gevent::sleep(Duration::ZERO); // the hub's own fds first
        let before = fd_count();
        let (server, handled) = counting_echo_server();
        server.start().unwrap();
        let addr = server.local_addr();
        let mut served = connect(addr);
        round_trip(&mut served, b"hi");
        server.stop_accepting();
        let queued: Vec<TcpStream> = (0..3).map(|_| connect(addr)).collect();
        assert!(wait_until(LONG, || accept_queue(addr) == 3), "the connections never reached the backlog");
        drop(served); // its handler ends
        server.stop();
        assert!(server.closed() && !server.started() && !server.is_accepting());
        assert_eq!((handled.get(), server.connections()), (1, 0));
        // The queued connections went with the listener, never handled.
        for mut q in queued {
            match q.read(&mut [0u8; 1]) {
                Ok(0) => {}
                Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
                Ok(n) => panic!("read {n} bytes from a connection never accepted"),
            }
        }
        assert_refused_soon(addr);
        // Stopped: neither switch does anything.
        server.start_accepting();
        assert!(!server.is_accepting());
        server.stop_accepting();
        assert!(!server.is_accepting() && server.start().is_err());
        drop(server);
        assert_eq!(settle_fds(before, Duration::from_secs(5)), before, "an fd leaked");
        assert_eq!(gevent::hub::stats().waiters, 0, "a greenlet still waits");
    });
}

#[test]
fn a_pause_before_start_is_kept_and_a_resume_does_not_start() {
    both(|| {
        let (server, handled) = counting_echo_server();
        let addr = server.local_addr();
        assert!(!server.is_accepting(), "not started");
        server.stop_accepting();
        server.start().unwrap();
        assert!(server.started() && !server.is_accepting(), "started paused");
        let mut c = connect(addr);
        c.write_all(b"x").unwrap();
        assert!(wait_until(LONG, || accept_queue(addr) == 1));
        gevent::sleep(ms(10));
        assert_eq!(handled.get(), 0);
        server.start_accepting();
        let mut got = [0u8; 1];
        c.read_exact(&mut got).unwrap();
        assert_eq!(handled.get(), 1);

        let (other, _) = counting_echo_server();
        other.stop_accepting();
        other.start_accepting();
        assert!(!other.started() && !other.is_accepting(), "a resume does not start the server");
        other.start().unwrap();
        assert!(other.is_accepting());
        round_trip(&mut connect(other.local_addr()), b"y");

        server.close();
        assert!(!server.is_accepting());
        server.start_accepting();
        assert!(!server.is_accepting());
        drop(c);
        other.stop();
        server.stop();
    });
}

/// Pauses land while connections arrive (on io_uring, a connect and the
/// cancellation of the waiting accept go to the kernel together): every
/// connection is served once accepting resumes, none is dropped.
#[test]
fn pausing_while_connections_arrive_drops_none() {
    both(|| {
        let rounds = scaled(300, 60);
        let (server, handled) = counting_echo_server();
        server.start().unwrap();
        let addr = server.local_addr();
        let mut clients: Vec<Greenlet<TcpStream>> = Vec::new();
        for i in 0..rounds {
            let srv = server.clone();
            clients.push(gevent::spawn(move || {
                let mut c = connect(addr);
                // On io_uring the server's accept often completed in the
                // same poll as this connect, and its greenlet has not run.
                if i % 2 == 0 {
                    srv.stop_accepting();
                }
                c.write_all(&(i as u32).to_le_bytes()).unwrap();
                c
            }));
            if i % 4 == 1 {
                gevent::sleep(Duration::ZERO); // its connect is under way
                server.stop_accepting();
            }
            let c = clients.last().unwrap();
            c.join();
            server.start_accepting();
        }
        for (i, c) in clients.into_iter().enumerate() {
            let mut c = join_ok(c);
            let mut got = [0u8; 4];
            c.read_exact(&mut got).unwrap_or_else(|e| panic!("client {i} was dropped: {e}"));
            assert_eq!(u32::from_le_bytes(got), i as u32);
        }
        assert_eq!(handled.get(), rounds);
        server.stop();
    });
}

/// gevent's `_do_read` stops accepting while the pool is full: ours waits
/// for a free slot before it accepts, so the peers beyond the pool stay in
/// the kernel's backlog until a handler finishes.
#[test]
fn a_full_pool_accepts_only_after_a_handler_finished() {
    both(|| {
        let handled = Rc::new(Cell::new(0usize));
        let h = handled.clone();
        let server = StreamServer::new(LOCAL, move |mut conn: TcpStream, _| {
            h.set(h.get() + 1);
            let mut b = [0u8; 1];
            conn.read_exact(&mut b).unwrap();
            conn.write_all(&b).unwrap();
        })
        .unwrap()
        .with_pool(2);
        server.start().unwrap();
        let addr = server.local_addr();
        let mut a = connect(addr);
        let mut b = connect(addr);
        assert!(wait_until(LONG, || handled.get() == 2));
        let mut c = connect(addr);
        assert!(wait_until(LONG, || accept_queue(addr) == 1), "the third peer never reached the backlog");
        gevent::sleep(ms(20));
        assert_eq!(accept_queue(addr), 1, "accepted beyond the pool");
        assert_eq!((handled.get(), server.connections()), (2, 2));
        assert!(server.is_accepting(), "a full pool is no pause");
        round_trip(&mut a, b"a"); // its handler returns: a slot frees
        assert!(wait_until(LONG, || handled.get() == 3), "not accepted once a slot freed");
        assert_eq!(accept_queue(addr), 0);
        round_trip(&mut c, b"c");
        round_trip(&mut b, b"b");
        server.stop();
    });
}

/// A datagram server that records each datagram and echoes it.
fn recording_datagram_server() -> (DatagramServer, Rc<RefCell<Vec<Vec<u8>>>>) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let server = DatagramServer::new(LOCAL, move |data: &[u8], peer: SocketAddr, srv: &DatagramServer| {
        s.borrow_mut().push(data.to_vec());
        if data == b"slow" {
            gevent::sleep(ms(30)); // still running across the pause
        }
        srv.send_to(data, peer).unwrap();
    })
    .unwrap();
    (server, seen)
}

/// The next datagram on `c`.
fn recv(c: &UdpSocket) -> Vec<u8> {
    let mut buf = [0u8; 64];
    let (n, _) = c.recv_from(&mut buf).unwrap();
    buf[..n].to_vec()
}

#[test]
fn a_paused_datagram_server_handles_the_queued_datagrams_in_order() {
    both(|| {
        let (server, seen) = recording_datagram_server();
        server.start().unwrap();
        let addr = server.local_addr();
        let c = UdpSocket::bind(LOCAL).unwrap();
        c.set_read_timeout(Some(LONG)).unwrap();
        c.send_to(b"first", addr).unwrap();
        assert_eq!(recv(&c), b"first"); // the receive loop now waits
        c.send_to(b"slow", addr).unwrap();
        assert!(wait_until(LONG, || seen.borrow().len() == 2));
        server.stop_accepting();
        assert!(server.started() && !server.is_accepting());
        let msgs: Vec<Vec<u8>> = (0..20).map(|i| format!("datagram {i}").into_bytes()).collect();
        for m in &msgs {
            c.send_to(m, addr).unwrap();
        }
        assert_eq!(recv(&c), b"slow", "a handler running across the pause answers");
        gevent::sleep(ms(20));
        assert_eq!(seen.borrow().len(), 2, "a datagram was handled while paused");
        server.start_accepting();
        assert!(server.is_accepting());
        for m in &msgs {
            assert_eq!(&recv(&c), m);
        }
        assert_eq!(seen.borrow()[2..], msgs[..]);
        server.stop();
        assert!(!server.is_accepting());
        server.start_accepting();
        assert!(!server.is_accepting());
    });
}

#[test]
fn a_datagram_server_paused_before_start_starts_paused() {
    both(|| {
        let (server, seen) = recording_datagram_server();
        assert!(!server.is_accepting());
        server.stop_accepting();
        server.start().unwrap();
        assert!(server.started() && !server.is_accepting());
        let c = UdpSocket::bind(LOCAL).unwrap();
        c.set_read_timeout(Some(LONG)).unwrap();
        c.send_to(b"kept", server.local_addr()).unwrap();
        gevent::sleep(ms(10));
        assert!(seen.borrow().is_empty());
        server.start_accepting();
        assert_eq!(recv(&c), b"kept");
        server.stop();
    });
}

/// As `pausing_while_connections_arrive_drops_none`, for datagrams: a
/// pause landing as a datagram arrives leaves it queued, or has it handled
/// at once; either way it is handled once, in order.
#[test]
fn pausing_while_datagrams_arrive_drops_none() {
    both(|| {
        let rounds = scaled(300, 60);
        let (server, seen) = recording_datagram_server();
        server.start().unwrap();
        let addr = server.local_addr();
        let c = UdpSocket::bind(LOCAL).unwrap();
        c.set_read_timeout(Some(LONG)).unwrap();
        // A greenlet whose receive completes just before the server's
        // (they wait together; on io_uring both complete in one poll, the
        // pauser's first): it pauses the server before the receive loop
        // has seen its own completion.
        let trigger = UdpSocket::bind(LOCAL).unwrap();
        let trigger_addr = trigger.local_addr().unwrap();
        let paused = gevent::queue::Queue::new();
        let (srv, p) = (server.clone(), paused.clone());
        let pauser = gevent::spawn(move || {
            while trigger.recv_from(&mut [0u8; 8]).unwrap().0 != 0 {
                srv.stop_accepting();
                p.put(());
            }
        });
        let msgs: Vec<Vec<u8>> = (0..rounds).map(|i| format!("d{i}").into_bytes()).collect();
        for (i, m) in msgs.iter().enumerate() {
            if i % 2 == 0 {
                c.send_to(b"go", trigger_addr).unwrap();
                c.send_to(m, addr).unwrap();
                paused.get();
            } else {
                c.send_to(m, addr).unwrap();
                server.stop_accepting();
            }
            server.start_accepting();
            // Each answer read at once: no socket buffer overflows (UDP
            // drops what does not fit, which is not the server's doing).
            assert_eq!(&recv(&c), m);
        }
        c.send_to(b"", trigger_addr).unwrap();
        join_ok(pauser);
        assert_eq!(seen.borrow()[..], msgs[..]);
        server.stop();
    });
}

/// A `start_threads` handler: echoes 4-byte messages, counting the
/// connections in `handled`.
fn counting_echo_4(handled: Arc<AtomicUsize>) -> impl Fn(TcpStream, SocketAddr) {
    move |mut conn: TcpStream, _| {
        handled.fetch_add(1, Ordering::SeqCst);
        let mut b = [0u8; 4];
        while conn.read_exact(&mut b).is_ok() {
            if conn.write_all(&b).is_err() {
                break;
            }
        }
    }
}

/// A plain std client of `addr` (reads bounded by [`LONG`]) that sent
/// `msg`.
fn std_client(addr: SocketAddr, msg: &[u8; 4]) -> std::net::TcpStream {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    c.write_all(msg).unwrap();
    c
}

/// Reads the echo of `msg` on `c`.
fn std_echo(c: &mut std::net::TcpStream, msg: &[u8; 4]) {
    let mut got = [0u8; 4];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, msg);
}

/// Sleeps the thread until `done()`, or [`LONG`]; true if done.
fn thread_wait_until(done: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + LONG;
    while !done() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(ms(1));
    }
    true
}

#[test]
fn a_threaded_server_pauses_every_thread() {
    let _fds = fds_shared(); // its clients and server threads open fds
                             // The server threads follow GEVENT_BACKEND: the suite's epoll run
                             // covers the other backend.
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    let server = gevent::server::start_threads(LOCAL, 2, move || counting_echo_4(h.clone())).unwrap();
    let addr = server.local_addr();
    assert!(server.is_accepting());
    // Served first: both accept loops then wait in accepts.
    let mut early: Vec<_> = (0..8).map(|_| std_client(addr, b"old!")).collect();
    for c in &mut early {
        std_echo(c, b"old!");
    }
    server.stop_accepting();
    assert!(!server.is_accepting());
    let before = handled.load(Ordering::SeqCst);
    let mut queued: Vec<_> = (0..8).map(|_| std_client(addr, b"new!")).collect();
    assert!(thread_wait_until(|| accept_queue(addr) == 8), "the connections never reached the backlogs");
    std::thread::sleep(ms(20));
    assert_eq!(handled.load(Ordering::SeqCst), before, "handled while paused");
    assert_eq!(accept_queue(addr), 8, "accepted while paused");
    for c in &mut early {
        c.write_all(b"run!").unwrap();
        std_echo(c, b"run!");
    }
    server.start_accepting();
    assert!(server.is_accepting());
    for c in &mut queued {
        std_echo(c, b"new!");
    }
    assert_eq!(handled.load(Ordering::SeqCst), before + 8);
    drop((early, queued));
    server.stop().unwrap();
}

/// A handler pauses its own one-thread server: its wait is cooperative, so
/// its own thread pauses meanwhile (a wait of the thread would deadlock).
#[test]
fn a_handler_pauses_its_own_threaded_server() {
    let _fds = fds_shared();
    type Slot = Arc<Mutex<Option<Arc<gevent::server::ThreadedServer>>>>;
    let slot: Slot = Default::default();
    let handled = Arc::new(AtomicUsize::new(0));
    let (s, h) = (slot.clone(), handled.clone());
    let server = gevent::server::start_threads(LOCAL, 1, move || {
        let (slot, handled) = (s.clone(), h.clone());
        move |mut conn: TcpStream, _: SocketAddr| {
            handled.fetch_add(1, Ordering::SeqCst);
            let mut b = [0u8; 4];
            conn.read_exact(&mut b).unwrap();
            if &b == b"stop" {
                let server = slot.lock().unwrap().clone().expect("the handle");
                server.stop_accepting();
                assert!(!server.is_accepting());
            }
            conn.write_all(&b).unwrap();
        }
    })
    .unwrap();
    let addr = server.local_addr();
    let server = Arc::new(server);
    *slot.lock().unwrap() = Some(server.clone());
    let mut pauser = std_client(addr, b"stop");
    std_echo(&mut pauser, b"stop"); // answered once paused
    let mut queued = std_client(addr, b"wait");
    assert!(thread_wait_until(|| accept_queue(addr) == 1), "the connection never reached the backlog");
    std::thread::sleep(ms(20));
    assert_eq!(handled.load(Ordering::SeqCst), 1, "handled while paused");
    server.start_accepting();
    std_echo(&mut queued, b"wait");
    assert_eq!(handled.load(Ordering::SeqCst), 2);
    slot.lock().unwrap().take();
    // The pausing handler drops its handle as it returns, after its answer.
    assert!(thread_wait_until(|| Arc::strong_count(&server) == 1), "a handler kept its handle");
    let server = Arc::try_unwrap(server).expect("the only handle");
    server.stop().unwrap();
}
