//! Edge cases of select, raw fd waits, servers and Unix sockets found by
//! review; each test body runs on both backends.

mod io_common;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::net::SocketAddr as UnixAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use gevent::server::{DatagramServer, StreamServer};
use gevent::socket::{wait_read, wait_write, TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use io_common::{assert_refused_soon, both, both_exclusive, join_ok, ms, nofile_limit, set_nofile_soft};

const LOCAL: &str = "127.0.0.1:0";

/// A fresh socket path in the temp dir (removed if it exists).
fn sock_path(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!(
        "gevent-edges-{}-{tag}-{:?}.sock",
        std::process::id(),
        gevent::hub::backend()
    ));
    let _ = std::fs::remove_file(&p);
    p
}

/// A negative fd in `select` is refused (Python raises `ValueError`); it
/// used to spin, with a timeout until it passed, without one forever (and
/// on epoll without ever parking, hanging the hub).
#[test]
fn select_refuses_a_negative_fd() {
    both(|| {
        for (r, w, timeout) in [(&[-1][..], &[][..], Some(ms(500))), (&[], &[-5], None), (&[-1], &[], None)] {
            let t = Instant::now();
            let e = gevent::select::select(r, w, timeout).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            assert!(t.elapsed() < Duration::from_secs(5), "select waited {:?} before refusing", t.elapsed());
        }
    });
}

/// A raw wait on an fd that is not open fails with `EBADF` on both
/// backends (epoll's poll counted `POLLNVAL` as ready: `Ok`).
#[test]
fn waiting_on_a_closed_fd_is_ebadf() {
    both(|| {
        let closed = std::fs::File::open("/dev/null").unwrap().into_raw_fd();
        // SAFETY: the fd was just opened and is ours to close.
        unsafe { libc::close(closed) };
        for fd in [closed, 1_000_000, -1] {
            for r in [wait_read(fd, Some(ms(100))), wait_write(fd, Some(ms(100)))] {
                let e = r.expect_err("a wait on a closed fd");
                assert_eq!(e.raw_os_error(), Some(libc::EBADF), "fd {fd}: {e}");
            }
        }
    });
}

/// However `serve_forever`'s caller leaves (killed, timed out), the server
/// stops, as gevent's (its `finally` stops the server): it used to go on
/// accepting, and `start` then said `AlreadyExists`.
#[test]
fn a_killed_serve_forever_stops_its_server() {
    both(|| {
        let server = StreamServer::new(LOCAL, |_c, _p| {}).unwrap();
        let serving = gevent::spawn({
            let server = server.clone();
            move || server.serve_forever()
        });
        gevent::sleep(ms(20));
        serving.kill();
        assert!(serving.dead());
        assert_refused_soon(server.local_addr());
        assert_eq!(server.start().unwrap_err().kind(), ErrorKind::NotConnected);

        let server = StreamServer::new(LOCAL, |_c, _p| {}).unwrap();
        assert!(gevent::with_timeout(ms(20), || server.serve_forever()).is_err());
        assert_refused_soon(server.local_addr());

        let echo = DatagramServer::new(LOCAL, |b: &[u8], peer, s: &DatagramServer| {
            s.send_to(b, peer).unwrap();
        })
        .unwrap();
        assert!(gevent::with_timeout(ms(20), || echo.serve_forever()).is_err());
        let client = UdpSocket::bind(LOCAL).unwrap();
        client.set_read_timeout(Some(ms(100))).unwrap();
        client.send_to(b"anyone?", echo.local_addr()).unwrap();
        let e = client.recv_from(&mut [0u8; 8]).expect_err("nobody echoes");
        assert!(matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::ConnectionRefused), "{e}");
    });
}

/// An accept error that no retry can cure (the listener was shut down:
/// `EINVAL`) closes the server and ends `serve_forever`, as gevent's
/// `fatal_errors`; it used to be retried every 5 ms forever.
#[test]
fn a_fatal_accept_error_ends_serve_forever() {
    both(|| {
        let listener = TcpListener::bind(LOCAL).unwrap();
        let fd = listener.as_raw_fd();
        let server = StreamServer::from_listener(listener, |_c, _p| {});
        let serving = gevent::spawn({
            let server = server.clone();
            move || server.serve_forever()
        });
        gevent::sleep(ms(20));
        // SAFETY: shuts down (does not close) the listener the server owns.
        assert_eq!(unsafe { libc::shutdown(fd, libc::SHUT_RDWR) }, 0);
        assert!(serving.join_timeout(Duration::from_secs(10)), "serve_forever still running");
        join_ok(serving).unwrap();
        assert!(server.accept_errors() >= 1);
        assert!(server.accept_errors() < 10, "{} accept errors: the error was retried", server.accept_errors());
        assert_eq!(server.start().unwrap_err().kind(), ErrorKind::NotConnected);
        server.stop();
    });
}

/// A Unix accept with one fd left to the process succeeds, as std's: the
/// peer's address used to be read through a dup of the new fd, which
/// failed with `EMFILE` and lost the connection.
#[test]
fn a_unix_accept_needs_one_fd_only() {
    both_exclusive(|| {
        let path = sock_path("emfile");
        let listener = UnixListener::bind(&path).unwrap();
        let mut client = UnixStream::connect(&path).unwrap();
        client.write_all(b"hi").unwrap();
        let (soft, _) = nofile_limit();
        let mut fill = Vec::new();
        let highest = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .unwrap();
        set_nofile_soft(highest + 64);
        let accepted = {
            while let Ok(f) = std::fs::File::open("/dev/null") {
                fill.push(f);
            }
            fill.pop(); // exactly one fd free
            listener.accept()
        };
        drop(fill);
        set_nofile_soft(soft);
        let (mut conn, _peer) = accepted.expect("accept with one fd free");
        let mut b = [0u8; 2];
        conn.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hi");
        assert!(conn.peer_addr().unwrap().is_unnamed());
        let _ = std::fs::remove_file(&path);
    });
}

/// A Unix path with a NUL byte is refused, as std refuses it; the kernel
/// used to get the path cut at the NUL (binding or reaching another
/// socket), or a leading NUL made it abstract.
#[test]
fn unix_paths_with_nul_bytes_are_refused() {
    both(|| {
        let path = sock_path("nul");
        let _real = UnixListener::bind(&path).unwrap();
        let mut with_nul = path.clone().into_os_string();
        with_nul.push("\0zzz");
        for p in [std::path::PathBuf::from(with_nul), "\0abstract".into()] {
            assert_eq!(UnixListener::bind(&p).unwrap_err().kind(), ErrorKind::InvalidInput, "{p:?}");
            assert_eq!(UnixStream::connect(&p).unwrap_err().kind(), ErrorKind::InvalidInput, "{p:?}");
        }
        let _ = std::fs::remove_file(&path);
    });
}

/// Abstract names (Linux), as std's `bind_addr` / `connect_addr`.
#[test]
fn unix_abstract_addresses() {
    use std::os::linux::net::SocketAddrExt;
    both(|| {
        let name = format!("gevent-edges-{}-{:?}", std::process::id(), gevent::hub::backend());
        let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixListener::bind_addr(&addr).unwrap();
        assert_eq!(listener.local_addr().unwrap().as_abstract_name(), Some(name.as_bytes()));
        let mut client = UnixStream::connect_addr(&addr).unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        client.write_all(b"abs").unwrap();
        let mut b = [0u8; 3];
        conn.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"abs");
        assert_eq!(conn.local_addr().unwrap().as_abstract_name(), Some(name.as_bytes()));
        let e = UnixListener::bind_addr(&addr).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
        // Paths work through the address form too; unnamed ones cannot.
        let path = sock_path("addr");
        let by_path = UnixListener::bind_addr(&UnixAddr::from_pathname(&path).unwrap()).unwrap();
        drop(UnixStream::connect_addr(&UnixAddr::from_pathname(&path).unwrap()).unwrap());
        drop(by_path.accept().unwrap());
        let unnamed = client.local_addr().unwrap();
        assert_eq!(UnixStream::connect_addr(&unnamed).unwrap_err().kind(), ErrorKind::InvalidInput);
        let _ = std::fs::remove_file(&path);
    });
}

/// A writer parked on a full Unix stream is woken by its own side's write
/// shutdown (`EPIPE`): on epoll the kernel reports no edge for it, and the
/// writer waited forever.
#[test]
fn own_write_shutdown_wakes_a_parked_writer() {
    both(|| {
        for how in [Shutdown::Write, Shutdown::Both] {
            let (a, _b) = UnixStream::pair().unwrap();
            a.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
            let a = Rc::new(a);
            let writer = gevent::spawn({
                let a = a.clone();
                move || {
                    let chunk = vec![0u8; 1 << 16];
                    loop {
                        if let Err(e) = (&*a).write(&chunk) {
                            return e.kind();
                        }
                    }
                }
            });
            gevent::sleep(ms(20));
            assert!(!writer.ready(), "the writer filled the buffer and parked");
            a.shutdown(how).unwrap();
            assert_eq!(join_ok(writer), ErrorKind::BrokenPipe, "{how:?}");
        }
    });
}

/// A connected UDP socket that got a port-unreachable reports it once;
/// a later receive waits again (on epoll the error's sticky "closed" mark
/// made every later receive return `Ok(0)` at once).
#[test]
fn a_udp_receive_after_an_icmp_error_waits_again() {
    both(|| {
        let dead = std::net::UdpSocket::bind(LOCAL).unwrap().local_addr().unwrap();
        let s = Rc::new(UdpSocket::bind(LOCAL).unwrap());
        s.connect(dead).unwrap();
        s.set_read_timeout(Some(ms(100))).unwrap();
        let receiver = {
            let s = s.clone();
            gevent::spawn(move || {
                let first = s.recv(&mut [0u8; 8]).map_err(|e| e.kind());
                let t = Instant::now();
                let second = s.recv(&mut [0u8; 8]).map_err(|e| e.kind());
                (first, second, t.elapsed())
            })
        };
        gevent::sleep(ms(10));
        s.send(b"x").unwrap();
        let (first, second, took) = join_ok(receiver);
        assert_eq!(first, Err(ErrorKind::ConnectionRefused));
        assert_eq!(second, Err(ErrorKind::TimedOut));
        assert!(took >= ms(100), "the second receive returned after {took:?}");
    });
}

/// A handler serving its own (started) server forever under a timeout:
/// when the timeout unwinds it, the server stops without waiting for that
/// handler (it waited on itself for ever).
#[test]
fn a_handler_serving_its_own_server_forever_can_time_out() {
    both(|| {
        let slot: Rc<std::cell::RefCell<Option<StreamServer>>> = Default::default();
        let done = gevent::event::AsyncResult::new();
        let server = StreamServer::new(LOCAL, {
            let (slot, done) = (slot.clone(), done.clone());
            move |_c: TcpStream, _p| {
                let server = slot.borrow().clone().unwrap();
                done.set(gevent::with_timeout(ms(20), || server.serve_forever()).is_err());
            }
        })
        .unwrap();
        *slot.borrow_mut() = Some(server.clone());
        server.start().unwrap();
        let _client = TcpStream::connect(server.local_addr()).unwrap();
        assert_eq!(
            done.get_timeout(Duration::from_secs(10)),
            Ok(true),
            "the handler's serve_forever timed out and returned"
        );
        assert_refused_soon(server.local_addr());
        slot.borrow_mut().take();
    });
}

/// Closing a socket ends the raw waits on its fd (`EBADF`, both backends)
/// and nothing else: a `try_clone` of it reading on is untouched. On
/// io_uring the close cancelled by fd, which the kernel matches by *file*,
/// so the clone's receive failed with `ECANCELED`.
#[test]
fn closing_a_socket_leaves_its_clone_reading() {
    both(|| {
        let listener = TcpListener::bind(LOCAL).unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (original, _) = listener.accept().unwrap();
        let clone = original.try_clone().unwrap();
        let fd = original.as_raw_fd();
        let reader = gevent::spawn(move || {
            let mut buf = [0u8; 16];
            (&clone).read(&mut buf).map(|n| buf[..n].to_vec())
        });
        let waiter = gevent::spawn(move || wait_read(fd, Some(Duration::from_secs(10))));
        gevent::sleep(ms(5)); // both are parked
        drop(original);
        let e = join_ok(waiter).expect_err("the raw wait's fd closed");
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}");
        client.write_all(b"hello").unwrap();
        assert_eq!(join_ok(reader).unwrap(), b"hello", "the clone's receive was cancelled");
    });
}

/// A socket handed over as an `OwnedFd` (and taken back) stays open: a raw
/// wait on its fd goes on. On io_uring the hand-over cancelled it.
#[test]
fn an_fd_round_trip_leaves_raw_waits_alone() {
    both(|| {
        let listener = TcpListener::bind(LOCAL).unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (conn, _) = listener.accept().unwrap();
        let fd = conn.as_raw_fd();
        let waiter = gevent::spawn(move || wait_read(fd, Some(Duration::from_secs(10))));
        gevent::sleep(ms(5));
        let owned: std::os::fd::OwnedFd = conn.into();
        let conn = TcpStream::from(owned);
        client.write_all(b"x").unwrap();
        join_ok(waiter).expect("the wait goes on, and sees the data");
        let mut buf = [0u8; 1];
        assert_eq!((&conn).read(&mut buf).unwrap(), 1);
    });
}

/// After a short read the next receive expects an empty socket (io_uring
/// asks the kernel to wait for data before trying): data that is already
/// there, sent while the reader was busy, is still read at once, and data
/// sent later wakes it. A peek after a short read sees the data too.
#[test]
fn a_receive_after_a_short_one_sees_data_already_queued() {
    both(|| {
        let listener = TcpListener::bind(LOCAL).unwrap();
        let mut b = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut a, _) = listener.accept().unwrap();
        a.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 64];
        for round in 0..50u8 {
            b.write_all(&[round; 3]).unwrap();
            // Short: 3 of 64 bytes.
            assert_eq!(a.read(&mut buf).unwrap(), 3);
            assert_eq!(&buf[..3], &[round; 3]);
            // Queued before the next receive starts.
            b.write_all(&[round; 5]).unwrap();
            let t = Instant::now();
            if round % 2 == 0 {
                assert_eq!(a.peek(&mut buf).unwrap(), 5);
            }
            assert_eq!(a.read(&mut buf).unwrap(), 5);
            assert_eq!(&buf[..5], &[round; 5]);
            assert!(t.elapsed() < Duration::from_secs(1), "round {round}: waited {:?}", t.elapsed());
        }
        // Sent while the reader waits (after a short read).
        let mut b2 = b.try_clone().unwrap();
        let writer = gevent::spawn(move || {
            gevent::sleep(ms(5));
            b2.write_all(b"late").unwrap();
        });
        assert_eq!(a.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"late");
        join_ok(writer);
    });
}

/// A greenlet whose reads all complete at once (its peer keeps it fed)
/// still lets the others run: every so many operations in a row, it yields
/// before the next one.
#[test]
fn a_reader_that_never_waits_still_lets_others_run() {
    both(|| {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        b.write_all(&[7u8; 4096]).unwrap();
        let ran = Rc::new(std::cell::Cell::new(None));
        let other = {
            let ran = ran.clone();
            gevent::spawn(move || ran.set(Some(())))
        };
        let mut byte = [0u8; 1];
        let mut reads = 0;
        while ran.get().is_none() && reads < 4096 {
            assert_eq!(a.read(&mut byte).unwrap(), 1);
            reads += 1;
        }
        assert!(ran.get().is_some(), "the other greenlet never ran during {reads} reads");
        assert!(reads < 4096, "it ran only once the data ran out");
        join_ok(other);
    });
}

/// The yield a long run of operations makes comes before the next
/// operation: a greenlet killed there has done nothing it did not report.
/// (Writes: on io_uring a send is tried at once, as every operation on
/// epoll, where a receive goes to the ring and waits.)
#[test]
fn a_writer_killed_in_its_budget_yield_sent_what_it_counted() {
    both(|| {
        let (a, mut b) = UnixStream::pair().unwrap();
        let a = Rc::new(a);
        let sent = Rc::new(std::cell::Cell::new(0usize));
        let writer = {
            let (a, sent) = (a.clone(), sent.clone());
            gevent::spawn(move || loop {
                assert_eq!((&*a).write(&[1]).unwrap(), 1);
                sent.set(sent.get() + 1);
            })
        };
        // The writer runs until it yields (the socket has room for far
        // more than it sends before that), and is killed in that yield.
        gevent::sleep(Duration::ZERO);
        let before = sent.get();
        assert!(before > 0 && before < 4096, "the writer sent {before} bytes before yielding");
        writer.kill();
        assert!(writer.dead());
        drop(a);
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), sent.get(), "bytes sent but not counted, or counted but not sent");
    });
}

/// A reader killed just after its data arrived, before it ran again: on
/// io_uring the kernel completes the receive before the cancellation
/// reaches it, so the bytes were taken; the socket's next read returns
/// them (and a peek sees them), as on epoll, where they never left the
/// kernel. The same for a read left by a `with_timeout` scope.
#[test]
fn bytes_received_for_a_killed_reader_are_read_next() {
    both(|| {
        let listener = TcpListener::bind(LOCAL).unwrap();
        let mut b = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (a, _) = listener.accept().unwrap();
        let a = Rc::new(a);
        a.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        for round in 0..20u8 {
            let reader = {
                let a = a.clone();
                gevent::spawn(move || {
                    let mut buf = [0u8; 16];
                    let _ = (&*a).read(&mut buf);
                    unreachable!("killed before it runs again");
                })
            };
            gevent::sleep(Duration::ZERO); // it waits in its read
            b.write_all(&[round, round, round]).unwrap();
            reader.kill(); // before the hub polls
            let mut buf = [0u8; 16];
            if round % 2 == 0 {
                assert_eq!(a.peek(&mut buf).expect("the bytes are still to be read"), 3);
            }
            let n = (&*a).read(&mut buf[..2]).expect("the bytes are still to be read");
            assert_eq!(&buf[..n], &[round, round]);
            let n = (&*a).read(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[round]);
        }
        // A with_timeout scope around a read: the same.
        let reader = {
            let a = a.clone();
            gevent::spawn(move || {
                let mut buf = [0u8; 16];
                gevent::with_timeout(ms(1), || (&*a).read(&mut buf).map(|n| buf[..n].to_vec()))
            })
        };
        gevent::sleep(Duration::ZERO);
        std::thread::sleep(ms(5)); // its timer is due at the next poll
        b.write_all(b"late").unwrap();
        match join_ok(reader) {
            Ok(got) => assert_eq!(got.unwrap(), b"late"),
            Err(_) => {
                let mut buf = [0u8; 16];
                let n = (&*a).read(&mut buf).expect("the bytes are still to be read");
                assert_eq!(&buf[..n], b"late");
            }
        }
    });
}

/// As for sockets: a reader of a child's output killed after the output
/// arrived, before it ran again, leaves the bytes to the next read.
#[test]
fn a_child_pipe_keeps_the_bytes_of_a_killed_reader() {
    use gevent::subprocess::{Command, Stdio};
    both(|| {
        let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let stdout = Rc::new(child.stdout.take().unwrap());
        for round in 0..5u8 {
            let reader = {
                let stdout = stdout.clone();
                gevent::spawn(move || {
                    let mut buf = [0u8; 16];
                    let _ = (&*stdout).read(&mut buf);
                    unreachable!("killed before it runs again");
                })
            };
            gevent::sleep(Duration::ZERO); // it waits in its read
            stdin.write_all(&[b'a' + round; 4]).unwrap();
            // `cat` echoes meanwhile; the hub does not poll.
            std::thread::sleep(ms(30));
            reader.kill();
            let mut buf = [0u8; 16];
            let n = (&*stdout).read(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[b'a' + round; 4], "round {round}");
        }
        drop(stdin);
        let mut rest = Vec::new();
        (&*stdout).read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        assert!(child.wait().unwrap().success());
    });
}
