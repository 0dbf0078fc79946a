//! Ports of cases from gevent's own I/O-side test suite
//! (`src/gevent/tests/*.py`, gevent master 04752c48) to this crate's public
//! API: one `#[test]` per gevent case, each naming the gevent file and
//! method it ports and what gevent expects there. The sync/greenlet side is
//! in `gevent_suite_port.rs`.
//!
//! Conventions of the port:
//! - Every I/O body runs on both backends ([`io_common::both`]), each on a
//!   fresh thread (a fresh hub) under the helper's watchdog.
//! - gevent's `socket.makefile()` is a `BufReader` over `&TcpStream`;
//!   `sock.close()` while another handle is still in use is a `try_clone`
//!   dropped (Rust cannot close a socket another greenlet borrows).
//! - `subprocess.Popen([sys.executable, '-c', ...])` becomes `sh -c ...`.
//! - gevent's timing bounds become generous ones: at least the timeout
//!   (less 1 ms), at most two seconds more.
//! - Where this crate differs on purpose (a Rust idiom, or a documented
//!   choice), the test asserts ours and says so (`DOCUMENTED DIFFERENCE`).
//!   Where it differs in a way a porting user would trip over, the test
//!   asserts gevent's behaviour and is `#[ignore = "divergence: ..."]`.
//! - Left out: SSL, monkey-patching, `Waiter`, the loop/watcher interface
//!   (`test__core_timer.py::test_main`), the monitoring thread, Python
//!   type checks (`TypeError` for a bad handler or port), the server's
//!   `stop_accepting`/`start_accepting`/`started`/`backlog=` (no such API
//!   here), `ThreadPool.map`/`imap`/`join`/`kill`/`maxsize` (no such API),
//!   and DNS cases that need a network (only `localhost` is resolved).

mod io_common;

use std::cell::{Cell, RefCell};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gevent::event::Event;
use gevent::server::StreamServer;
use gevent::socket::{wait_read, TcpListener, TcpStream, UdpSocket, UnixStream};
use gevent::subprocess::{Command, Stdio};
use gevent::threadpool::ThreadPool;
use gevent::{with_timeout, Greenlet, GreenletError, Timeout};
use io_common::{
    assert_refused_soon, both, both_exclusive, emulated, fd_count, join_ok, ms, settle_fds, wait_until, LOCAL,
};

// ------------------------------------------------------------------ helpers

const ZERO: Duration = Duration::ZERO;

/// gevent.testing.timing.LARGE_TICK
const LARGE_TICK: Duration = Duration::from_millis(200);

/// A generous bound for a request that must succeed.
const OK_TIMEOUT: Duration = Duration::from_secs(5);

/// gevent's `_check_delay_bounds`, with a generous upper bound.
#[track_caller]
fn assert_took(start: Instant, timeout: Duration) {
    let took = start.elapsed();
    assert!(took + ms(1) >= timeout, "returned after {took:?}, before the timeout {timeout:?}");
    assert!(took < timeout + ms(2000), "returned after {took:?}, far past the timeout {timeout:?}");
}

/// `support.find_unused_port()`: a port on 127.0.0.1 nothing listens on.
fn unused_port() -> SocketAddr {
    TcpListener::bind(LOCAL).unwrap().local_addr().unwrap()
}

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

/// A pipe (read end, write end), both close-on-exec.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the live array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0, "pipe2");
    // SAFETY: both fds were just opened and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Sends `sig` to this process from another thread after `delay` (as
/// `signal.alarm` would, but sooner).
fn signal_self_later(sig: i32, delay: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        // SAFETY: kill has no memory effects.
        unsafe { libc::kill(libc::getpid(), sig) };
    });
}

/// gevent's `SimpleStreamServer.handle` (test__server.py): reads a request
/// line; `/ping` answers PONG, `/long` and `/short` send `hello` and read
/// until EOF, anything else is a 404.
fn simple_handle(conn: TcpStream, _peer: SocketAddr) {
    let mut line = String::new();
    if BufReader::new(&conn).read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split(' ').nth(1).unwrap_or("").to_owned();
    match path.as_str() {
        "/ping" => {
            let _ = (&conn).write_all(b"HTTP/1.0 200 OK\r\n\r\nPONG");
        }
        "/long" | "/short" => {
            let _ = (&conn).write_all(b"hello");
            let mut b = [0u8; 1];
            while let Ok(1..) = (&conn).read(&mut b) {}
        }
        _ => {
            let _ = (&conn).write_all(b"HTTP/1.0 404 WTF?\r\n\r\n");
        }
    }
}

/// test__server.py's `makefile` + `send_request_to_fd`: connects, sends
/// `GET url`, returns the stream (read timeout `timeout`).
fn send_request(addr: SocketAddr, url: &str, timeout: Duration) -> TcpStream {
    let conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(timeout)).unwrap();
    (&conn).write_all(format!("GET {url} HTTP/1.0\r\n\r\n").as_bytes()).unwrap();
    conn
}

/// `assertRequestSucceeded`: `/ping` gets `...\r\n\r\nPONG`.
#[track_caller]
fn assert_request_succeeded(addr: SocketAddr) {
    let conn = send_request(addr, "/ping", OK_TIMEOUT);
    let mut result = Vec::new();
    (&conn).read_to_end(&mut result).unwrap();
    assert!(result.ends_with(b"\r\n\r\nPONG"), "{:?}", String::from_utf8_lossy(&result));
}

/// `assertNotAccepted`: the connection is made (the kernel's backlog takes
/// it) but nobody answers: the read times out with nothing read.
#[track_caller]
fn assert_not_accepted(addr: SocketAddr) {
    let conn = send_request(addr, "/", ms(100));
    let mut b = [0u8; 64];
    match (&conn).read(&mut b) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}"),
        Ok(n) => panic!("an unserved listener answered {:?}", String::from_utf8_lossy(&b[..n])),
    }
}

/// `assertPoolFull`: a request with a 10 ms timeout times out.
#[track_caller]
fn assert_pool_full(addr: SocketAddr) {
    let conn = send_request(addr, "/ping", ms(10));
    let mut result = Vec::new();
    let e = (&conn).read_to_end(&mut result).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    assert!(result.is_empty());
}

/// `assert500` / `assertAcceptedConnectionError` for a StreamServer: the
/// connection is accepted and closed without an answer (EOF, or a reset
/// when the request was left unread).
#[track_caller]
fn assert_closed_without_answer(conn: &TcpStream) {
    let mut result = Vec::new();
    match (&*conn).read_to_end(&mut result) {
        Ok(_) => assert!(result.is_empty(), "{:?}", String::from_utf8_lossy(&result)),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
    }
}

// ========================================================== test__server.py

/// test__server.py::TestDefaultSpawn::test_subclass_just_create — a server
/// made on a listener and never started does not serve it.
#[test]
fn server_subclass_just_create() {
    both(|| {
        let listener = TcpListener::bind(LOCAL).unwrap();
        let server = StreamServer::from_listener(listener, simple_handle);
        assert_not_accepted(server.local_addr());
    });
}

/// test__server.py::TestDefaultSpawn::test_subclass_with_socket — not
/// accepted before `start`; two requests succeed after it; refused after
/// `stop`. (gevent's `stop_accepting`/`start_accepting` part has no
/// counterpart here.)
#[test]
fn server_subclass_with_socket() {
    both(|| {
        check_start_serve_stop(StreamServer::from_listener(TcpListener::bind(LOCAL).unwrap(), simple_handle));
    });
}

/// Not served before `start`, served twice after it, refused after `stop`.
fn check_start_serve_stop(server: StreamServer) {
    let addr = server.local_addr();
    assert_not_accepted(addr);
    server.start().unwrap();
    assert_request_succeeded(addr);
    assert_request_succeeded(addr);
    server.stop();
    assert_refused_soon(addr);
}

/// test__server.py::TestDefaultSpawn::test_subclass_with_address — gevent:
/// a server made from an address refuses connections until `start` (it
/// binds there). DOCUMENTED DIFFERENCE: `StreamServer::new` binds at once
/// (its errors come from `new`, as std's `bind`, and `local_addr` is known
/// before `start`), so before `start` a connection is queued, not refused,
/// and not served. The rest as gevent: served after `start`, refused after
/// `stop`.
#[test]
fn server_subclass_with_address() {
    both(|| {
        check_start_serve_stop(StreamServer::new(LOCAL, simple_handle).unwrap());
    });
}

/// test__server.py::TestDefaultSpawn::test_serve_forever — `serve_forever`
/// in a greenlet serves; `stop` makes it return (normally) and the address
/// refuses.
#[test]
fn server_serve_forever() {
    both(|| {
        let server = StreamServer::new(LOCAL, simple_handle).unwrap();
        let addr = server.local_addr();
        let s = server.clone();
        let g = gevent::spawn(move || s.serve_forever());
        gevent::sleep(ZERO);
        assert_request_succeeded(addr);
        server.stop();
        assert_refused_soon(addr);
        g.kill();
        join_ok(g).unwrap();
        server.stop();
    });
}

/// test__server.py::TestDefaultSpawn::test_serve_forever_after_start —
/// `serve_forever` on a started server serves on, until `stop`.
#[test]
fn server_serve_forever_after_start() {
    both(|| {
        let server = StreamServer::new(LOCAL, simple_handle).unwrap();
        let addr = server.local_addr();
        server.start().unwrap();
        let s = server.clone();
        let g = gevent::spawn(move || s.serve_forever());
        gevent::sleep(ZERO);
        assert_request_succeeded(addr);
        server.stop();
        assert_refused_soon(addr);
        join_ok(g).unwrap();
    });
}

/// test__server.py::TestDefaultSpawn::test_server_closes_client_sockets —
/// a handler that returns at once: the client's read ends (EOF or reset),
/// it does not hang.
#[test]
fn server_closes_client_sockets() {
    both(|| {
        let server = StreamServer::new(LOCAL, |_conn, _peer| {}).unwrap();
        server.start().unwrap();
        let conn = send_request(server.local_addr(), "/", OK_TIMEOUT);
        assert_closed_without_answer(&conn);
        server.stop();
        assert_refused_soon(server.local_addr());
    });
}

/// test__server.py::TestDefaultSpawn::test_invalid_callback (and
/// `test_error_in_spawn`) — a handler that fails (in Rust: panics) is
/// reported; its connection closes without an answer; the server goes on
/// serving.
#[test]
fn server_handler_error_closes_connection() {
    both(|| {
        let server = StreamServer::new(LOCAL, |conn, _peer| {
            let mut b = [0u8; 1];
            if (&conn).read(&mut b).unwrap_or(0) == 1 && b[0] == b'G' {
                panic!("expected error in a handler (test_invalid_callback)");
            }
            simple_handle(conn, _peer)
        })
        .unwrap();
        server.start().unwrap();
        let conn = send_request(server.local_addr(), "/", OK_TIMEOUT);
        assert_closed_without_answer(&conn);
        let conn = send_request(server.local_addr(), "/", OK_TIMEOUT);
        assert_closed_without_answer(&conn);
        server.stop();
    });
}

/// test__server.py::TestPoolSpawn::test_pool_full — with a pool of 2 held
/// by a `/long` and a `/short` request, a third request is not served (a
/// 10 ms read times out), three times; once both are closed, a request
/// succeeds.
#[test]
fn server_pool_full() {
    both(|| {
        let server = StreamServer::new(LOCAL, simple_handle).unwrap().with_pool(2);
        server.start().unwrap();
        let addr = server.local_addr();
        {
            let long_request = send_request(addr, "/long", OK_TIMEOUT);
            let short_request = send_request(addr, "/short", OK_TIMEOUT);
            // Both handlers are running (each sent its hello).
            for c in [&long_request, &short_request] {
                let mut b = [0u8; 5];
                (&*c).read_exact(&mut b).unwrap();
                assert_eq!(&b, b"hello");
            }
            assert_eq!(server.connections(), 2);
            assert_pool_full(addr);
            assert_pool_full(addr);
            assert_pool_full(addr);
        }
        assert_request_succeeded(addr);
        server.stop();
    });
}

// ========================================================== test__socket.py

/// gevent's `TestTCP.long_data`.
fn long_data() -> Vec<u8> {
    (0..20000).map(|x| x.to_string()).collect::<Vec<_>>().join(", ").into_bytes()
}

/// test__socket.py::TestTCP::_test_sendall — a server greenlet accepts and
/// reads to EOF; the client waits until accepted, sends `data` with
/// `client_method`, shuts down and closes; the server read exactly `data`.
fn test_sendall(data: Vec<u8>, configure: impl FnOnce(&TcpStream), send: impl FnOnce(&TcpStream, &[u8])) {
    let listener = TcpListener::bind(LOCAL).unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Event::new();
    let a = accepted.clone();
    let server = gevent::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        a.set();
        let mut got = Vec::new();
        BufReader::new(&conn).read_to_end(&mut got).unwrap();
        got
    });
    let client = TcpStream::connect(addr).unwrap();
    configure(&client);
    accepted.wait();
    send(&client, &data);
    let _ = client.shutdown(Shutdown::Both);
    drop(client);
    assert!(server.join_timeout(Duration::from_secs(10)));
    let read = join_ok(server);
    let (read, want): (Vec<&[u8]>, Vec<&[u8]>) =
        (read.split(|&b| b == b',').collect(), data.split(|&b| b == b',').collect());
    assert_eq!(read.first(), want.first());
    assert_eq!(read.len(), want.len());
    assert!(read == want, "the data read differs");
}

fn sendall(c: &TcpStream, data: &[u8]) {
    let mut c = c;
    c.write_all(data).unwrap();
}

/// test__socket.py::TestTCP::test_sendall_str (and `test_sendall_array`:
/// the same bytes in Rust).
#[test]
fn socket_sendall_str() {
    both(|| test_sendall(long_data(), |_| (), sendall));
}

/// test__socket.py::TestTCP::test_sendall_empty.
#[test]
fn socket_sendall_empty() {
    both(|| test_sendall(Vec::new(), |_| (), sendall));
}

/// test__socket.py::TestTCP::test_sendall_empty_with_timeout (issue 719).
#[test]
fn socket_sendall_empty_with_timeout() {
    both(|| {
        test_sendall(
            Vec::new(),
            |c| {
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
            },
            sendall,
        )
    });
}

/// test__socket.py::TestTCP::test_sendall_nonblocking (gunicorn 1282): a
/// non-blocking socket makes at least one attempt to send.
#[test]
fn socket_sendall_nonblocking() {
    both(|| test_sendall(b"hi\n".to_vec(), |c| c.set_nonblocking(true).unwrap(), sendall));
}

/// test__socket.py::TestTCP::test_empty_send (issue 719): `send(b'')`.
#[test]
fn socket_empty_send() {
    both(|| {
        test_sendall(
            Vec::new(),
            |_| (),
            |c, data| {
                let mut c = c;
                assert_eq!(c.write(data).unwrap(), 0);
            },
        )
    });
}

/// test__socket.py::TestTCP::test_fullduplex — the server reads while a
/// second greenlet writes 100000 bytes on the same socket; the client reads
/// them in one greenlet while writing in another; closing the client's own
/// handle while its reader is blocked does not hang.
#[test]
fn socket_fullduplex() {
    both(|| {
        const N: usize = 100_000;
        let listener = TcpListener::bind(LOCAL).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = gevent::spawn(move || {
            let (remote, _) = listener.accept().unwrap();
            let remote = Rc::new(remote);
            let r = remote.clone();
            let sender = gevent::spawn(move || (&*r).write_all(&vec![b't'; N]));
            let mut buf = vec![0u8; 1000];
            let n = (&*remote).read(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"hello world");
            join_ok(sender).unwrap();
        });
        let client = TcpStream::connect(addr).unwrap();
        let client_file = client.try_clone().unwrap();
        let reader = gevent::spawn(move || {
            let mut v = vec![0u8; N];
            (&client_file).read_exact(&mut v).map(|_| v)
        });
        gevent::sleep(ms(20));
        (&client).write_all(b"hello world").unwrap();
        gevent::sleep(ms(20));
        drop(client);
        join_ok(server);
        let got = join_ok(reader).unwrap();
        assert!(got.iter().all(|&b| b == b't'));
    });
}

/// test__socket.py::TestTCP::test_recv_timeout — `recv` on a socket with a
/// timeout (gevent: 1 s; here LARGE_TICK) raises `socket.timeout` after
/// about the timeout.
#[test]
fn socket_recv_timeout() {
    both(|| {
        let listener = TcpListener::bind(LOCAL).unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = gevent::spawn(move || listener.accept().unwrap().0);
        let client = TcpStream::connect(addr).unwrap();
        client.set_read_timeout(Some(LARGE_TICK)).unwrap();
        let start = Instant::now();
        let e = (&client).read(&mut [0u8; 1024]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        assert_took(start, LARGE_TICK);
        drop(join_ok(acceptor));
    });
}

/// test__socket.py::TestTCP::test_sendall_timeout — `sendall` of more than
/// the socket buffers hold, to a peer that does not read, with a 0.1 s
/// timeout raises `socket.timeout` after about 0.1 s.
#[test]
fn socket_sendall_timeout() {
    both(|| {
        let listener = TcpListener::bind(LOCAL).unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = gevent::spawn(move || listener.accept().unwrap().0);
        let client = TcpStream::connect(addr).unwrap();
        let peer = join_ok(acceptor);
        client.set_write_timeout(Some(ms(100))).unwrap();
        let data = vec![b'h'; 64 << 20];
        let start = Instant::now();
        let e = (&client).write_all(&data).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        assert_took(start, ms(90));
        drop(peer);
    });
}

/// test__socket.py::TestTCP::test_makefile — closing the socket does not
/// close the file made from it: `readline` gives `hello\n`, then `read`
/// gives b''. (A `try_clone` is the file; the original is dropped.)
#[test]
fn socket_makefile() {
    both(|| {
        let listener = TcpListener::bind(LOCAL).unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = gevent::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            (&conn).write_all(b"hello\n").unwrap();
        });
        let client = TcpStream::connect(addr).unwrap();
        let mut client_file = BufReader::new(client.try_clone().unwrap());
        drop(client);
        let mut line = String::new();
        client_file.read_line(&mut line).unwrap();
        assert_eq!(line, "hello\n");
        let mut rest = Vec::new();
        client_file.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        join_ok(acceptor);
    });
}

/// test__socket.py::TestTCP::test_makefile_timeout — `readline` on a file
/// of a socket with a 0.1 s timeout, from a peer silent for 0.3 s, raises
/// `socket.timeout`.
#[test]
fn socket_makefile_timeout() {
    both(|| {
        let listener = TcpListener::bind(LOCAL).unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = gevent::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            gevent::sleep(ms(300));
            drop(conn);
        });
        let client = TcpStream::connect(addr).unwrap();
        client.set_read_timeout(Some(ms(100))).unwrap();
        let mut line = String::new();
        let e = BufReader::new(&client).read_line(&mut line).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        join_ok(acceptor);
    });
}

/// test__socket.py::TestCreateConnection::test_refuses,
/// test__socket.py::TestTCP::test_connect_ex_nonblocking_bad_connection and
/// test__socket_errors.py::TestSocketErrors::test_connection_refused —
/// connecting to an unused port fails with ECONNREFUSED, "refused" in the
/// message.
#[test]
fn socket_connection_refused() {
    both(|| {
        let addr = unused_port();
        let e = TcpStream::connect(addr).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
        assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED));
        assert!(e.to_string().to_lowercase().contains("refused"), "{e}");
        let e = TcpStream::connect_timeout(&addr, Duration::from_secs(30)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    });
}

/// test__socket.py::TestFunctions::test_wait_timeout (issue 635) — waiting
/// on a watcher that never fires, with a 0.01 s timeout, raises
/// `socket.timeout`.
#[test]
fn socket_wait_timeout() {
    both(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        let start = Instant::now();
        let e = wait_read(a.as_raw_fd(), Some(ms(10))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        assert_took(start, ms(10));
    });
}

/// test__socketpair.py::TestSocketpair::test_makefile — `x.sendall(msg);
/// x.close()`, then reading `y` to the end gives `msg`.
#[test]
fn socketpair_makefile() {
    both(|| {
        let (x, y) = UnixStream::pair().unwrap();
        (&x).write_all(b"hello world").unwrap();
        drop(x);
        let mut read = Vec::new();
        BufReader::new(&y).read_to_end(&mut read).unwrap();
        assert_eq!(read, b"hello world");
    });
}

/// test__socketpair.py::TestSocketpair::test_fromfd — sockets remade from
/// the fds of a pair (`socket.fromfd`) work as the originals.
#[test]
fn socketpair_fromfd() {
    both(|| {
        let (x, y) = UnixStream::pair().unwrap();
        let xx = UnixStream::from(OwnedFd::from(x));
        let yy = UnixStream::from(OwnedFd::from(y));
        (&xx).write_all(b"hello world").unwrap();
        drop(xx);
        let mut read = Vec::new();
        (&yy).read_to_end(&mut read).unwrap();
        assert_eq!(read, b"hello world");
    });
}

// ==================================================== test__socket_close.py

/// test__socket_close.py::Test::test_recv_closed — gevent: closing a socket
/// another greenlet is receiving on wakes that greenlet within 0.1 s with
/// EBADF. Rust cannot close a socket another greenlet borrows; the
/// counterpart is `shutdown(Both)`. DOCUMENTED DIFFERENCE (a Rust idiom):
/// the receiver wakes as promptly, with EOF (`Ok(0)`) instead of EBADF.
#[test]
fn socket_close_recv_closed() {
    both(|| {
        let server = StreamServer::new(LOCAL, |conn, _| while let Ok(1..) = (&conn).read(&mut [0u8; 1024]) {}).unwrap();
        server.start().unwrap();
        let sock = Rc::new(TcpStream::connect(server.local_addr()).unwrap());
        let s = sock.clone();
        let receiver = gevent::spawn(move || (&*s).read(&mut [0u8; 25]).map_err(|e| e.kind()));
        gevent::sleep(ms(1));
        sock.shutdown(Shutdown::Both).unwrap();
        assert!(receiver.join_timeout(ms(100)), "the receiver is still blocked");
        assert_eq!(receiver.value(), Some(Ok(0)));
        server.stop();
    });
}

/// test__socket_close.py::Test::test_recv_twice — gevent: a second `recv`
/// while another greenlet is in `recv` on the same socket raises
/// AssertionError ("already used by another greenlet"). DOCUMENTED
/// DIFFERENCE (socket module docs): two greenlets may read one stream at
/// once; the second parks too, and each gets a share of what arrives.
#[test]
fn socket_close_recv_twice() {
    both(|| {
        let (client, server) = io_common::tcp_pair();
        let client = Rc::new(client);
        let readers: Vec<Greenlet<Vec<u8>>> = (0..2)
            .map(|_| {
                let c = client.clone();
                gevent::spawn(move || {
                    let mut b = [0u8; 25];
                    let n = (&*c).read(&mut b).unwrap();
                    b[..n].to_vec()
                })
            })
            .collect();
        gevent::sleep(ms(1));
        assert!(readers.iter().all(|r| !r.dead()), "a reader did not park");
        (&server).write_all(b"x").unwrap();
        gevent::sleep(ms(20));
        drop(server); // EOF for the other one
        let mut got: Vec<Vec<u8>> = readers.into_iter().map(join_ok).collect();
        got.sort();
        assert_eq!(got, [b"".to_vec(), b"x".to_vec()]);
    });
}

// ================================================== test__socket_timeout.py

/// test__socket_timeout.py::Test::test_timeout — `recv` with a 0.1 s
/// timeout raises an error whose text is "timed out". (Ours: kind
/// `TimedOut`, the text "gevent: operation timed out".)
#[test]
fn socket_timeout_text() {
    both(|| {
        let (client, _server) = io_common::tcp_pair();
        client.set_read_timeout(Some(ms(100))).unwrap();
        let e = (&client).read(&mut [0u8; 1024]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        assert!(e.to_string().ends_with("timed out"), "{e}");
    });
}

// ========================================================== test__select.py

/// test__select.py::TestSelect::test_returns_none_after_timeout —
/// `select([], [], [], timeout)` returns (nothing) after the timeout.
#[test]
fn select_empty_returns_after_timeout() {
    both(|| {
        let start = Instant::now();
        let r = gevent::select::select(&[], &[], Some(LARGE_TICK)).unwrap();
        assert_eq!(r, (vec![], vec![]));
        assert_took(start, LARGE_TICK);
    });
}

/// test__select.py::TestSelect::test_outer_timeout_is_not_lost.
#[test]
fn select_empty_outer_timeout_is_not_lost() {
    both(|| {
        let r = with_timeout(ms(1), || gevent::select::select(&[], &[], Some(Duration::from_secs(1))));
        assert!(matches!(r, Err(Timeout)), "{r:?}");
    });
}

/// test__select.py::TestSelectRead::test_returns_none_after_timeout — a
/// select on the read end of an idle pipe returns after the timeout.
#[test]
fn select_read_returns_after_timeout() {
    both(|| {
        let (r, _w) = pipe();
        let start = Instant::now();
        let got = gevent::select::select(&[r.as_raw_fd()], &[], Some(LARGE_TICK)).unwrap();
        assert_eq!(got, (vec![], vec![]));
        assert_took(start, LARGE_TICK);
    });
}

/// test__select.py::TestSelectRead::test_outer_timeout_is_not_lost.
#[test]
fn select_read_outer_timeout_is_not_lost() {
    both(|| {
        let (r, _w) = pipe();
        let got = with_timeout(ms(1), || gevent::select::select(&[r.as_raw_fd()], &[], Some(Duration::from_secs(1))));
        assert!(matches!(got, Err(Timeout)), "{got:?}");
    });
}

/// test__select.py::TestSelectRead::test_errno — select on a closed fd
/// raises OSError(EBADF). (An fd number surely not open stands for the
/// closed one: another test thread may reuse a number just closed.)
#[test]
fn select_errno() {
    both(|| {
        let e = gevent::select::select(&[999_999], &[], Some(ZERO)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}");
        let e = gevent::select::select(&[999_999], &[], Some(ms(10))).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}");
    });
}

/// test__select.py::TestSelectTypes::test_int — select on a socket's fd
/// with a 1 ms timeout works.
#[test]
fn select_int() {
    both(|| {
        let sock = UdpSocket::bind(LOCAL).unwrap();
        let got = gevent::select::select(&[sock.as_raw_fd()], &[], Some(ms(1))).unwrap();
        assert_eq!(got, (vec![], vec![]));
    });
}

/// After a select on `fd` whose socket went away meanwhile: the hub still
/// works, also for a new socket that got the same fd number.
fn check_fd_reuse_after(fd: RawFd) {
    let (a, b) = UnixStream::pair().unwrap();
    let (a, b) = if b.as_raw_fd() == fd { (b, a) } else { (a, b) };
    let reader = gevent::spawn(move || {
        wait_read(a.as_raw_fd(), Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        let n = (&a).read(&mut buf).map_err(|e| e.to_string())?;
        Ok::<_, String>((buf[..n].to_vec(), a))
    });
    gevent::sleep(ms(2));
    (&b).write_all(b"ping").unwrap();
    let (got, _a) = join_ok(reader).unwrap();
    assert_eq!(got, b"ping");
    let got = gevent::select::select(&[b.as_raw_fd()], &[b.as_raw_fd()], Some(ms(10))).unwrap();
    assert_eq!(got, (vec![], vec![b.as_raw_fd()]));
}

/// test__select.py::TestPossibleCrashes::test_closing_object_while_selecting
/// (gevent issue 2100) — a greenlet closes (drops) the socket a select is
/// waiting on: the select ends (nothing ready, or EBADF), nothing crashes,
/// and the hub goes on working.
#[test]
fn select_closing_object_while_selecting() {
    both(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        let sock = Rc::new(RefCell::new(Some(a)));
        let s = sock.clone();
        gevent::spawn(move || drop(s.borrow_mut().take()));
        match gevent::select::select(&[fd], &[], Some(ms(10))) {
            Ok(got) => assert_eq!(got.1, vec![]),
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}"),
        }
        assert!(sock.borrow().is_none());
        check_fd_reuse_after(fd);
    });
}

/// test__select.py::TestPossibleCrashes::test_closing_fd_while_selecting —
/// a greenlet closes the fd itself (`os.close`) while a select waits on
/// it: no crash, no hang.
#[test]
fn select_closing_fd_while_selecting() {
    both(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = a.into_raw_fd();
        gevent::spawn(move || {
            // SAFETY: this greenlet owns the fd (taken out of the socket).
            drop(unsafe { OwnedFd::from_raw_fd(fd) })
        });
        match gevent::select::select(&[fd], &[], Some(ms(10))) {
            Ok(got) => assert_eq!(got.1, vec![]),
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}"),
        }
        check_fd_reuse_after(fd);
    });
}

/// test__select.py::TestPossibleCrashes::test_closing_fd_before_selecting —
/// select on an fd closed before: nothing ready, or OSError (EBADF).
#[test]
fn select_closing_fd_before_selecting() {
    both(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        // Registered with the hub (a wait), then closed behind its back.
        let _ = wait_read(a.as_raw_fd(), Some(ms(1)));
        let fd = a.into_raw_fd();
        // SAFETY: the fd was taken out of the socket; nobody else owns it.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        // The number may be reused by another test thread meanwhile: then
        // the select sees that fd (open, maybe ready); else EBADF.
        if let Err(e) = gevent::select::select(&[fd], &[], Some(ms(10))) {
            assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}");
        }
        check_fd_reuse_after(fd);
    });
}

// ====================================================== test__subprocess.py

/// test__subprocess.py::TestPopen::test_exit — `wait()` gives the exit code.
#[test]
fn subprocess_exit() {
    both(|| {
        let mut child = sh("exit 10").spawn().unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(10));
    });
}

/// test__subprocess.py::TestPopen::test_wait — `gevent.wait([popen])`, then
/// `poll()` gives the code. (A `Child` is no `Waitable` here: `wait`, then
/// `try_wait`.)
#[test]
fn subprocess_wait() {
    both(|| {
        let mut child = sh("exit 11").spawn().unwrap();
        child.wait().unwrap();
        assert_eq!(child.try_wait().unwrap().and_then(|s| s.code()), Some(11));
    });
}

/// Spawning `program`, which does not exist, fails with ENOENT. Under
/// qemu-user (the aarch64 run) std's `posix_spawn` cannot report it:
/// qemu runs its vfork as a fork, so the failed exec shows as the child
/// exiting with 127 instead.
fn assert_missing_program(program: &str) {
    match Command::new(program).spawn() {
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}"),
        Ok(mut child) if cfg!(target_arch = "aarch64") => {
            assert_eq!(child.wait().unwrap().code(), Some(127), "qemu: the exec failed in the child");
        }
        Ok(child) => panic!("{program} spawned: {child:?}"),
    }
}

/// test__subprocess.py::TestPopen::test_child_exception — `Popen(['*'])`
/// raises OSError with errno 2.
#[test]
fn subprocess_child_exception() {
    both(|| {
        assert_missing_program("*");
    });
}

/// test__subprocess.py::TestPopen::test_issue148 — seven times in a row,
/// a missing program raises ENOENT.
#[test]
fn subprocess_issue148() {
    both(|| {
        for _ in 0..7 {
            assert_missing_program("this_name_must_not_exist");
        }
    });
}

/// test__subprocess.py::TestPopen::test_leak — a child with a stdout pipe,
/// waited for and dropped, leaves no fd open.
#[test]
fn subprocess_leak() {
    both_exclusive(|| {
        gevent::sleep(ZERO);
        let before = fd_count();
        let mut child = sh("echo").stdout(Stdio::piped()).spawn().unwrap();
        child.wait().unwrap();
        drop(child.stdout.take());
        drop(child);
        assert_eq!(settle_fds(before, Duration::from_secs(2)), before);
    });
}

/// test__subprocess.py::TestPopen::test_communicate — stdin in, stdout and
/// stderr out.
#[test]
fn subprocess_communicate() {
    both(|| {
        let child = sh("printf pineapple >&2; cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.as_ref().unwrap().write_all(b"banana").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.stdout, b"banana");
        assert_eq!(out.stderr, b"pineapple");
    });
}

/// test__subprocess.py::TestPopen::test_nonblock_removed (issue 134) — a
/// child given one of our cooperative pipe ends as stdin must not see it
/// non-blocking: `grep text` on a pipe nobody writes yet keeps running.
#[test]
fn subprocess_nonblock_removed() {
    both(|| {
        let mut writer = Command::new("sleep").arg("10").stdout(Stdio::piped()).spawn().unwrap();
        let stdin = writer.stdout.take().unwrap();
        let mut p = Command::new("grep").arg("text").stdin(stdin).spawn().unwrap();
        gevent::sleep(ms(100));
        let status = p.try_wait().unwrap();
        for c in [&mut p, &mut writer] {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        assert_eq!(status, None, "grep saw a non-blocking stdin and exited");
    });
}

/// test__subprocess.py::TestPopen::test_nonblock_removed, with a
/// cooperative socket as the child's stdin (`Popen(cmd, stdin=sock)`):
/// gevent's `Popen` clears O_NONBLOCK on the child's fds 0-2 after the
/// fork, so `grep text` blocks reading it. A clone of the socket the
/// parent kept shares the (now blocking) open file, and its reads still
/// only park the greenlet: one with a timeout times out.
#[test]
fn subprocess_nonblock_removed_socket() {
    both(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        let kept = a.try_clone().unwrap();
        let mut p = Command::new("grep").arg("text").stdin(OwnedFd::from(a)).stderr(Stdio::null()).spawn().unwrap();
        gevent::sleep(ms(100));
        let status = p.try_wait().unwrap();
        kept.set_read_timeout(Some(ms(10))).unwrap();
        let read = (&kept).read(&mut [0u8; 4]).map_err(|e| e.kind());
        if status.is_none() {
            p.kill().unwrap();
            p.wait().unwrap();
        }
        assert_eq!(status, None, "grep saw a non-blocking stdin and exited");
        assert_eq!(read, Err(ErrorKind::TimedOut));
    });
}

/// test__subprocess.py::TestPopen::test_check_output_keyword_error — the
/// exit code 44 is reported (Rust: `Output::status`, not an exception).
#[test]
fn subprocess_check_output_keyword_error() {
    both(|| {
        assert_eq!(sh("exit 44").output().unwrap().status.code(), Some(44));
    });
}

/// test__subprocess.py::TestPopen::test_subprocess_in_native_thread —
/// gevent: `Popen` in a native thread raises TypeError ("child watchers
/// are only available on the default loop"). DOCUMENTED DIFFERENCE: every
/// thread has its own hub here, and a child waits on a pidfd, not on a
/// SIGCHLD watcher of the default loop: it works on any thread.
#[test]
fn subprocess_in_native_thread() {
    both(|| {
        let t = std::thread::spawn(|| sh("echo 123").output().map(|o| o.stdout));
        assert_eq!(t.join().unwrap().unwrap(), b"123\n");
    });
}

/// test__subprocess.py::TestPopen::test_default_mode_no_output_is_always_str
/// — no output gives empty bytes; stderr not captured gives nothing.
#[test]
fn subprocess_default_mode_no_output() {
    both(|| {
        let child = sh(":").stdout(Stdio::piped()).spawn().unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"");
        assert_eq!(out.stderr, b"");
    });
}

/// test__subprocess.py::RunFuncTestCase::test_returncode and
/// `test_check_zero`.
#[test]
fn subprocess_run_returncode() {
    both(|| {
        assert_eq!(sh("exit 47").status().unwrap().code(), Some(47));
        assert!(!sh("exit 47").status().unwrap().success());
        assert_eq!(sh("exit 0").status().unwrap().code(), Some(0));
    });
}

/// test__subprocess.py::RunFuncTestCase::test_timeout — `run(...,
/// timeout=...)` on a child that never ends raises TimeoutExpired, and the
/// child is killed (else the call would deadlock waiting for it).
#[test]
fn subprocess_run_timeout() {
    both(|| {
        let dir = io_common::TempDir::new();
        let pidfile = dir.path("pid");
        let script = format!("echo $$ > {}; exec sleep 60", pidfile.display());
        let start = Instant::now();
        let r = with_timeout(ms(300), || sh(&script).output());
        assert!(matches!(r, Err(Timeout)), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(5));
        if let Ok(pid) = std::fs::read_to_string(&pidfile) {
            let pid: i32 = pid.trim().parse().unwrap();
            // Killed and reaped: the pid is gone (not even a zombie).
            assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "child {pid} still exists");
        }
    });
}

/// test__subprocess.py::RunFuncTestCase::test_capture_stdout and
/// `test_capture_stderr`.
#[test]
fn subprocess_run_capture() {
    both(|| {
        let out = sh("echo BDFL").output().unwrap();
        assert!(out.stdout.windows(4).any(|w| w == b"BDFL"));
        let out = sh("printf BDFL >&2").output().unwrap();
        assert!(out.stderr.windows(4).any(|w| w == b"BDFL"));
    });
}

/// test__subprocess.py::RunFuncTestCase::test_check_output_stdin_arg — a
/// file as the child's stdin.
#[test]
fn subprocess_run_stdin_file() {
    both(|| {
        let dir = io_common::TempDir::new();
        let path = dir.path("pear");
        std::fs::write(&path, b"pear").unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let out = Command::new("tr").args(["a-z", "A-Z"]).stdin(f).output().unwrap();
        assert!(out.stdout.windows(4).any(|w| w == b"PEAR"), "{:?}", out);
    });
}

/// test__subprocess.py::RunFuncTestCase::test_check_output_input_arg —
/// `input=b'pear'`.
#[test]
fn subprocess_run_input() {
    both(|| {
        let child =
            Command::new("tr").args(["a-z", "A-Z"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        child.stdin.as_ref().unwrap().write_all(b"pear").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.stdout.windows(4).any(|w| w == b"PEAR"));
    });
}

/// test__subprocess.py::RunFuncTestCase::test_check_output_timeout — after
/// the timeout, the output written so far (`BDFL`) is still there
/// (`TimeoutExpired.output`). Ours has no run-with-timeout returning the
/// partial output: read in a greenlet, `wait_timeout`, then kill.
#[test]
fn subprocess_run_check_output_timeout() {
    both(|| {
        let mut child = sh("printf BDFL; exec sleep 60").stdout(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let out = Rc::new(RefCell::new(Vec::new()));
        let o = out.clone();
        let reader = gevent::spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok(n @ 1..) = (&stdout).read(&mut buf) {
                o.borrow_mut().extend_from_slice(&buf[..n]);
            }
        });
        assert!(wait_until(Duration::from_secs(10), || out.borrow().as_slice() == b"BDFL"));
        // The "timeout": the child is still running.
        assert_eq!(child.wait_timeout(ms(10)).unwrap(), None);
        child.kill().unwrap();
        child.wait().unwrap();
        join_ok(reader);
        assert_eq!(out.borrow().as_slice(), b"BDFL");
    });
}

/// test__subprocess.py::RunFuncTestCase::test_run_kwargs — `env=`.
#[test]
fn subprocess_run_kwargs() {
    both(|| {
        let status = sh(r#"[ "$FRUIT" = banana ] && exit 33; exit 31"#).env("FRUIT", "banana").status().unwrap();
        assert_eq!(status.code(), Some(33));
    });
}

/// test__subprocess.py::RunFuncTestCase::test_run_with_shell_timeout_and_capture_output
/// — capturing output after a timeout must not hang on pipes a grandchild
/// (the shell's `sleep`) still holds: the call returns soon after the
/// timeout.
#[test]
fn subprocess_run_shell_timeout_and_capture_output() {
    both(|| {
        let start = Instant::now();
        let r = with_timeout(ms(100), || sh("sleep 3; true").output());
        assert!(matches!(r, Err(Timeout)), "{r:?}");
        let took = start.elapsed();
        assert!(took < Duration::from_millis(2000), "took {took:?}: waited for the grandchild's pipes");
    });
}

// ====================================================== test__threadpool.py

/// test__threadpool.py::PoolBasicTests::test_execute_async — `spawn`
/// returns at once and the jobs run. DOCUMENTED DIFFERENCE: gevent's
/// `r == [1]` right after each `apply_async` holds because the GIL keeps
/// its workers from running until the caller blocks; ours are queued at
/// once and run in parallel, so that is not asserted.
#[test]
fn threadpool_execute_async() {
    both(|| {
        let pool = ThreadPool::new(2);
        let r = Arc::new(Mutex::new(Vec::new()));
        let push = |v| {
            let r = r.clone();
            move || r.lock().unwrap().push(v)
        };
        let first = pool.spawn(push(1));
        first.get().unwrap();
        assert_eq!(*r.lock().unwrap(), [1]);
        gevent::sleep(ZERO);
        for v in 2..=4 {
            drop(pool.spawn(push(v)));
        }
        assert!(wait_until(Duration::from_secs(5), || r.lock().unwrap().len() == 4));
        let mut got = r.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, [1, 2, 3, 4]);
    });
}

/// test__threadpool.py::PoolBasicTests::test_apply and TestPool::test_apply.
#[test]
fn threadpool_apply() {
    both(|| {
        let pool = ThreadPool::new(1);
        assert_eq!(pool.apply(|| ("foo", 1)), ("foo", 1));
        assert_eq!(pool.apply(|| 5 * 5), 25);
    });
}

/// test__threadpool.py::PoolBasicTests::test_apply_raises — an exception in
/// the job is raised in the caller (a panic resumes there).
#[test]
fn threadpool_apply_raises() {
    both(|| {
        let pool = ThreadPool::new(1);
        let r = catch_unwind(AssertUnwindSafe(|| pool.apply(|| -> i32 { panic!("ExpectedException") })));
        let p = r.unwrap_err();
        assert_eq!(io_common::panic_text(&*p), "ExpectedException");
        assert_eq!(pool.apply(|| 1), 1, "the pool still works");
    });
}

/// `sqr(x, wait)` of test__threadpool.py: blocks its worker thread.
fn sqr(x: u64, wait: Duration) -> u64 {
    std::thread::sleep(wait);
    x * x
}

/// test__threadpool.py::TestPool::test_async — `apply_async(sqr, (7,
/// TIMEOUT1))`: `get()` gives 49 after about TIMEOUT1.
#[test]
fn threadpool_async() {
    both(|| {
        let pool = ThreadPool::new(1);
        let start = Instant::now();
        let res = pool.spawn(|| sqr(7, ms(82)));
        assert_eq!(res.get(), Ok(49));
        assert_took(start, ms(82));
    });
}

/// test__threadpool.py::TestPool::test_async_timeout — `get(timeout=
/// TIMEOUT2)` on a job that takes longer raises Timeout after about
/// TIMEOUT2.
#[test]
fn threadpool_async_timeout() {
    both(|| {
        let pool = ThreadPool::new(1);
        let res = pool.spawn(|| sqr(6, ms(35 + 200)));
        let start = Instant::now();
        assert_eq!(res.get_timeout(ms(35)), Err(GreenletError::Timeout));
        assert_took(start, ms(35));
        assert_eq!(res.get(), Ok(36));
    });
}

/// test__threadpool.py::TestPool::test_imap_unordered_sleep — results in
/// completion order: with one worker `['10', '1', '2']`, with more
/// `['1', '2', '10']`. (No `imap_unordered` here: `spawn` and `iwait`.)
#[test]
fn threadpool_imap_unordered_sleep() {
    both(|| {
        for (size, want) in [(1, ["10", "1", "2"]), (3, ["1", "2", "10"])] {
            let pool = ThreadPool::new(size);
            // gevent sleeps x/10 s; here gaps of 250 ms at least, which a
            // late worker thread on a loaded machine does not bridge.
            let d = |x: u64| {
                ms(match x {
                    10 => 600,
                    1 => 50,
                    _ => 300,
                })
            };
            let results: Vec<_> = [10u64, 1, 2].iter().map(|&x| pool.spawn(move || sqr(x, d(x)).to_string())).collect();
            let waitables: Vec<&dyn gevent::Waitable> = results.iter().map(|r| r as &dyn gevent::Waitable).collect();
            let order: Vec<String> = gevent::iwait(&waitables, None).map(|i| ["10", "1", "2"][i].to_owned()).collect();
            assert_eq!(order, want, "pool of {size}");
        }
    });
}

/// test__threadpool.py::TestPool2::test_recursive_apply — a job applies
/// another job to the same pool, which itself sleeps cooperatively.
#[test]
fn threadpool_recursive_apply() {
    both(|| {
        let p = ThreadPool::new(2);
        let p2 = p.clone();
        let result = p.apply(move || {
            p2.apply(|| {
                gevent::sleep(ZERO);
                gevent::sleep(ms(1));
                "B"
            })
        });
        assert_eq!(result, "B");
    });
}

/// test__threadpool.py::TestSpawn::test_basics — a pool of one runs two
/// spawned jobs one after the other: `a` is logged first, `b` only after.
#[test]
fn threadpool_spawn_basics() {
    both(|| {
        let pool = ThreadPool::new(1);
        let log = Arc::new(Mutex::new(Vec::new()));
        let sleep_n_log = |item: &'static str, d: Duration| {
            let log = log.clone();
            move || {
                std::thread::sleep(d);
                log.lock().unwrap().push(item);
            }
        };
        let start = Instant::now();
        let a = pool.spawn(sleep_n_log("a", ms(100)));
        let b = pool.spawn(sleep_n_log("b", ms(200)));
        a.get().unwrap();
        assert_eq!(*log.lock().unwrap(), ["a"]);
        b.get().unwrap();
        assert_eq!(*log.lock().unwrap(), ["a", "b"]);
        assert_took(start, ms(300));
    });
}

/// test__threadpool.py::TestSpawn::test_cannot_spawn_from_other_thread —
/// gevent: `pool2.spawn(...)` from a worker thread of `pool1` raises
/// InvalidThreadUseError (the pool belongs to its creating thread's hub).
/// DOCUMENTED DIFFERENCE: ours lets the call be made (a `ThreadPool` is
/// `Send`), and the job runs: it is queued at once, not by a greenlet of
/// the worker's hub, which never runs again. (It was dropped silently.)
#[test]
fn threadpool_cannot_spawn_from_other_thread() {
    both(|| {
        let pool1 = ThreadPool::new(1);
        let pool2 = ThreadPool::new(2);
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let res = pool1.spawn(move || {
            let r = r.clone();
            drop(pool2.spawn(move || r.fetch_add(1, Ordering::SeqCst)));
        });
        assert_eq!(res.get(), Ok(()));
        assert!(
            wait_until(Duration::from_secs(2), || ran.load(Ordering::SeqCst) == 1),
            "pool2.spawn from a worker thread returned, but its job never ran"
        );
    });
}

/// test__threadpool.py::TestRef::test — the job's arguments and result are
/// not kept by the pool once `apply` returned.
#[test]
fn threadpool_ref() {
    both(|| {
        let pool = ThreadPool::new(2);
        let (arg, kwarg) = (Arc::new(1), Arc::new(2));
        let (a, k) = (arg.clone(), kwarg.clone());
        let result = pool.apply(move || {
            let _keep = (&a, &k);
            Arc::new(3)
        });
        gevent::sleep(ms(10));
        assert_eq!((Arc::strong_count(&arg), Arc::strong_count(&kwarg), Arc::strong_count(&result)), (1, 1, 1));
    });
}

/// test__threadpool.py::TestRefCount::test — spawn, yield, drop the pool:
/// nothing breaks and the job ran.
#[test]
fn threadpool_refcount() {
    both(|| {
        let pool = ThreadPool::new(1);
        let res = pool.spawn(|| 1);
        gevent::sleep(ZERO);
        drop(pool);
        assert_eq!(res.get(), Ok(1));
    });
}

/// test__threadpool.py::TestTPE::test_future (and
/// `test_future_wait_gevent_function`) — `future.result(timeout=0.001)`
/// raises a timeout; a greenlet spawned meanwhile runs while the caller
/// waits for the result; `gevent.wait((future,))` reports it done.
#[test]
fn threadpool_future() {
    both(|| {
        let pool = ThreadPool::new(1);
        let future = pool.spawn(|| sqr(1, ms(100)) * 42);
        assert_eq!(future.get_timeout(ms(1)), Err(GreenletError::Timeout));
        let spawned = gevent::spawn(|| 2016);
        assert_eq!(future.get(), Ok(42));
        assert!(future.ready() && future.successful());
        assert!(spawned.ready());
        assert_eq!(spawned.value(), Some(2016));
        assert_eq!(gevent::wait(&[&future], None), [0]);

        let future = pool.spawn(|| sqr(1, ms(50)) * 42);
        let spawned = gevent::spawn(|| 2016);
        assert_eq!(gevent::wait(&[&future], None), [0]);
        assert_eq!(spawned.value(), Some(2016));
    });
}

// ========================================================== test__signal.py

/// test__signal.py::TestSignal::test_alarm — gevent: a handler raising
/// `Expected` makes `gevent.sleep(2)` in the main greenlet raise it (the
/// hub throws errors without a context into main), twice (the handler stays
/// installed); `ref` is false and can be toggled. DOCUMENTED DIFFERENCE: a
/// handler runs in a greenlet of its own, and a panic there is reported,
/// never unwinding another greenlet (the crate's panic contract): the sleep
/// runs its full time. Asserted: the handler runs on each delivery, and
/// `keep_hub_alive` (gevent's `ref`) toggles.
#[test]
fn signal_alarm() {
    both(|| {
        let ran = Rc::new(Cell::new(0));
        let r = ran.clone();
        let sig = gevent::signal::signal(libc::SIGALRM, move || {
            r.set(r.get() + 1);
            panic!("TestSignal");
        })
        .unwrap();
        sig.keep_hub_alive(true);
        sig.keep_hub_alive(false);
        for n in 1..=2 {
            signal_self_later(libc::SIGALRM, ms(20));
            let start = Instant::now();
            gevent::sleep(ms(300));
            assert_took(start, ms(300));
            assert!(wait_until(Duration::from_secs(5), || ran.get() == n), "the handler did not run");
        }
        sig.cancel();
    });
}

// ============================================================= test__hub.py

/// test__hub.py::TestExceptionInMainloop::test_sleep — an error in a
/// callback run by the loop is reported, and the hub works on: a sleep
/// still takes its time. (The loop callback is a link callback of a
/// greenlet spawned later.)
#[test]
fn hub_exception_in_mainloop() {
    both(|| {
        const DELAY: Duration = Duration::from_millis(100);
        let start = Instant::now();
        gevent::sleep(DELAY);
        assert_took(start, DELAY);
        let g = gevent::spawn_later(ms(1), || ());
        g.link(|_| panic!("TestExceptionInMainloop.test_sleep/fail"));
        let start = Instant::now();
        gevent::sleep(DELAY);
        assert_took(start, DELAY);
        assert!(g.dead());
    });
}

/// test__hub.py::TestSleep::test_returns_none_after_timeout,
/// `test_outer_timeout_is_not_lost` and `test_simple`.
#[test]
fn hub_sleep() {
    both(|| {
        let start = Instant::now();
        gevent::sleep(LARGE_TICK);
        assert_took(start, LARGE_TICK);
        assert_eq!(with_timeout(ms(1), || gevent::sleep(Duration::from_secs(1))), Err(Timeout));
        gevent::sleep(ZERO);
    });
}

/// test__hub.py::TestHandleError::test_exception_in_custom_handle_error_does_not_crash
/// — `gevent.spawn(raises).get()` raises the greenlet's exception (ours:
/// `Err(Panicked(message))`).
#[test]
fn hub_spawn_raises_get() {
    both(|| {
        let g = gevent::spawn(|| -> i32 { panic!("MyException") });
        match g.get() {
            Err(GreenletError::Panicked(m)) => assert!(m.contains("MyException"), "{m}"),
            r => panic!("{r:?}"),
        }
    });
}

// ======================================================= test__core_timer.py

/// test__core_timer.py::TestTimerResolution::test_resolution (gevent PR
/// 1194) — with an I/O watcher active, a 1 ms timer still fires within
/// eleven times its duration. Under a loaded test run single rounds may be
/// late: asserted are at least the timer's duration each round, and the
/// bound for the best round.
#[test]
fn core_timer_resolution_with_io_watcher() {
    both(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        let a = Rc::new(a);
        let w = a.clone();
        let watcher = gevent::spawn(move || wait_read(w.as_raw_fd(), None));
        gevent::sleep(ZERO);
        let mut best = Duration::MAX;
        for _ in 0..50 {
            let start = Instant::now();
            gevent::sleep(ms(1));
            let took = start.elapsed();
            assert!(took >= ms(1), "{took:?}");
            best = best.min(took);
        }
        assert!(best < ms(11), "the best of 50 1 ms sleeps took {best:?}");
        watcher.kill();
    });
}

// ========================================================== test__sleep0.py

/// test__sleep0.py — a `Timeout(0.01)` fires in a loop of `sleep(0)`.
#[test]
fn sleep0_loop_times_out() {
    both(|| {
        let r = with_timeout(ms(10), || loop {
            gevent::sleep(ZERO);
        });
        assert_eq!(r, Err(Timeout));
    });
}

// ====================================================== test__socket_dns.py

/// test__socket_dns.py::TestLocalhost / Test127001 (offline part) —
/// `localhost` and `127.0.0.1` resolve, for connecting and binding.
#[test]
fn dns_localhost() {
    both(|| {
        let listener = TcpListener::bind(LOCAL).unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = gevent::spawn(move || listener.accept().map(|(_, peer)| peer));
        let c = TcpStream::connect(("localhost", port)).unwrap();
        assert_eq!(c.peer_addr().unwrap().port(), port);
        assert_eq!(join_ok(acceptor).unwrap(), c.local_addr().unwrap());
        // The listener is gone (a forked child may hold it a moment).
        assert_refused_soon(([127, 0, 0, 1], port).into());
        let u = UdpSocket::bind("localhost:0").unwrap();
        assert!(u.local_addr().unwrap().ip().is_loopback());
    });
}

/// test__socket_dns.py::TestInterrupted_gethostbyname — a `Timeout`
/// interrupts a loop of host-name lookups (each parks the greenlet while
/// the thread pool resolves), well before the loop could finish.
#[test]
fn dns_interrupted_gethostbyname() {
    both(|| {
        let n = Cell::new(0u32);
        // One lookup first, so the resolver's worker thread and the name
        // service are up before the clock runs (under qemu-user starting
        // them took longer than the 50 ms).
        let _ = UdpSocket::bind(("localhost", 0));
        let start = Instant::now();
        let r = with_timeout(ms(50), || {
            for _ in 0..1_000_000 {
                let _ = UdpSocket::bind(("localhost", 0));
                n.set(n.get() + 1);
            }
        });
        assert_eq!(r, Err(Timeout), "the timeout was not raised");
        assert_took(start, ms(50));
        // (Emulated, one lookup may still outlast the 50 ms.)
        assert!(n.get() > 0 || emulated(), "no lookup completed within 50 ms");
    });
}

// ============================================ test__example_echoserver.py

/// gevent's `examples/echoserver.py` handler: a welcome line, then echo
/// each line until EOF or `quit`.
fn echoserver_handle(conn: TcpStream, _peer: SocketAddr) {
    if (&conn).write_all(b"Welcome to the echo server! Type quit to exit.\r\n").is_err() {
        return;
    }
    let mut rfile = BufReader::new(&conn);
    loop {
        let mut line = Vec::new();
        match rfile.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.trim_ascii().eq_ignore_ascii_case(b"quit") {
            break;
        }
        if (&conn).write_all(&line).is_err() {
            break;
        }
    }
}

/// test__example_echoserver.py::Test — two clients at once: each reads the
/// welcome line, sends a line, reads it back, and then a `recv` times out.
#[test]
fn example_echoserver() {
    both(|| {
        let server = StreamServer::new(LOCAL, echoserver_handle).unwrap();
        server.start().unwrap();
        let addr = server.local_addr();
        let client = move |message: &'static [u8]| {
            let conn = TcpStream::connect(addr).unwrap();
            conn.set_read_timeout(Some(ms(100))).unwrap();
            let mut rfile = BufReader::new(&conn);
            let mut welcome = String::new();
            rfile.read_line(&mut welcome).unwrap();
            assert!(welcome.contains("Welcome"), "{welcome:?}");
            (&conn).write_all(message).unwrap();
            let mut received = vec![0u8; message.len()];
            rfile.read_exact(&mut received).unwrap();
            assert_eq!(received, message);
            let e = (&conn).read(&mut [0u8; 1]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut);
        };
        let c1 = gevent::spawn(move || client(b"hello\r\n"));
        let c2 = gevent::spawn(move || client(b"world\r\n"));
        join_ok(c1);
        join_ok(c2);
        server.stop();
    });
}

// ========================================== test__example_portforwarder.py

/// `forward` of gevent's `examples/portforwarder.py`: copies until EOF or
/// an error, then closes both ends (here: shuts them down, which the other
/// direction's clone sees).
fn forward(source: TcpStream, dest: TcpStream) {
    let mut buf = vec![0u8; 1024];
    loop {
        match (&source).read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if (&dest).write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = source.shutdown(Shutdown::Both);
    let _ = dest.shutdown(Shutdown::Both);
}

/// test__example_portforwarder.py::Test — a port forwarder whose SIGTERM
/// handler closes the listener but lets the open connection finish: `msg1`
/// sent before the signal and `msg2` after it both reach the destination;
/// the forwarder's address refuses after the signal; serving ends.
/// (gevent's `server.close()` is `stop_timeout` with a long grace.)
#[test]
fn example_portforwarder() {
    both(|| {
        let log = Rc::new(RefCell::new(Vec::<u8>::new()));
        let l = log.clone();
        let dest = StreamServer::new(LOCAL, move |sock, _| {
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = (&sock).read(&mut buf) {
                l.borrow_mut().extend_from_slice(&buf[..n]);
            }
        })
        .unwrap();
        dest.start().unwrap();
        let dest_addr = dest.local_addr();
        let fwd = StreamServer::new(LOCAL, move |source, _| {
            let Ok(dest) = TcpStream::connect(dest_addr) else { return };
            let (s2, d2) = (source.try_clone().unwrap(), dest.try_clone().unwrap());
            let a = gevent::spawn(move || forward(source, dest));
            let b = gevent::spawn(move || forward(d2, s2));
            gevent::joinall([a.as_ref(), b.as_ref()]);
        })
        .unwrap();
        let addr = fwd.local_addr();
        let closed = Event::new();
        let (f, c) = (fwd.clone(), closed.clone());
        let handle = gevent::signal::signal(libc::SIGTERM, move || {
            c.set();
            f.stop_timeout(Duration::from_secs(3600));
        })
        .unwrap();
        let client = gevent::spawn(move || {
            let conn = TcpStream::connect(addr).unwrap();
            (&conn).write_all(b"msg1").unwrap();
            gevent::sleep(ms(50));
            signal_self_later(libc::SIGTERM, ZERO);
            assert!(closed.wait_timeout(Duration::from_secs(5)), "SIGTERM not handled");
            gevent::sleep(ms(50));
            (&conn).write_all(b"msg2").unwrap();
        });
        fwd.serve_forever().unwrap();
        join_ok(client);
        assert_refused_soon(addr);
        assert!(wait_until(Duration::from_secs(5), || fwd.connections() == 0), "the forwarding did not end");
        assert_eq!(log.borrow().as_slice(), b"msg1msg2");
        handle.cancel();
        dest.stop();
    });
}
