//! Review tests (I/O driver): each demonstrates a suspected bug, on both
//! backends. A test that fails names the bug in its assertion message.

mod io_common;

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use gevent::hub::{backend, prefer_backend};
use gevent::socket::{wait_read, TcpListener, TcpStream, UdpSocket, UnixStream};
use gevent::threadpool::ThreadPool;
use io_common::{both, both_exclusive, fd_count, join_ok, ms};

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the live array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds are fresh and ours.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn raw_write(fd: RawFd, b: &[u8]) {
    // SAFETY: reads b.len() bytes of a live slice.
    assert_eq!(unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) }, b.len() as isize);
}

/// Fairness: "the backend is polled without blocking at least once per
/// pass over the run queue, so a `sleep(ZERO)` loop never starves I/O".
/// A thread-pool result comes back through the remote eventfd; while a
/// greenlet spins on `yield_now`, `Driver::busy()` ignores open remote
/// waits, so the result is never collected.
#[test]
fn yield_loop_does_not_starve_a_threadpool_result() {
    both(|| {
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        let g = gevent::spawn(move || {
            gevent::spawn_blocking(|| std::thread::sleep(ms(5)));
            d.set(true);
        });
        let start = Instant::now();
        while !done.get() && start.elapsed() < Duration::from_secs(10) {
            gevent::yield_now();
        }
        let seen = done.get();
        if !seen {
            // Let the hub block once so the greenlet can finish.
            gevent::sleep(ms(1));
        }
        join_ok(g);
        assert!(seen, "a yield_now loop starved the thread-pool completion for 10 s (busy() ignores remote waits)");
    });
}

/// `ThreadPool`'s Drop closes the pool only if `Arc::strong_count == 1`,
/// but every worker holds a clone of the Arc: workers never exit.
#[test]
fn dropped_threadpool_lets_its_workers_exit() {
    both(|| {
        struct OnExit(mpsc::Sender<()>);
        impl Drop for OnExit {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        thread_local! { static GUARD: std::cell::RefCell<Option<OnExit>> = const { std::cell::RefCell::new(None) }; }
        let (tx, rx) = mpsc::channel();
        let pool = ThreadPool::new(1);
        pool.apply(move || GUARD.with(|g| *g.borrow_mut() = Some(OnExit(tx))));
        drop(pool);
        let exited = rx.recv_timeout(Duration::from_secs(10)).is_ok();
        assert!(exited, "the worker of a dropped ThreadPool is still alive after 10 s (Drop checks strong_count == 1)");
    });
}

/// A pool of 2 with one idle worker: two jobs submitted back to back must
/// run at the same time. `submit` counts the idle worker for both jobs (it
/// has not woken to decrement `idle` yet) and starts no second thread.
#[test]
fn threadpool_of_two_runs_two_jobs_at_once() {
    both(|| {
        let pool = Rc::new(ThreadPool::new(2));
        pool.apply(|| ()); // one worker, now idle
        std::thread::sleep(ms(20)); // let it reach its condvar wait
        let (tx, rx) = mpsc::channel::<()>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let p1 = pool.clone();
        let waiter =
            gevent::spawn(move || p1.apply(move || rx.lock().unwrap().recv_timeout(Duration::from_secs(10)).is_ok()));
        let p2 = pool.clone();
        let sender = gevent::spawn(move || p2.apply(move || tx.send(()).is_ok()));
        let got = join_ok(waiter);
        join_ok(sender);
        assert!(got, "the second job ran only after the first one gave up: a pool of 2 ran them one at a time");
    });
}

/// epoll: a socket waited on by this hub, then dropped on another thread,
/// leaves its registration (fd number -> key) behind. A raw wait (id 0) on
/// a new fd that reuses the number takes the stale registration, which the
/// kernel no longer has: the wait never wakes. `select` uses raw waits.
#[test]
fn raw_wait_on_a_reused_fd_number_after_a_socket_dropped_elsewhere() {
    // Alone: it closes an fd number and dup3()s onto it, which would close
    // whatever a concurrent test got that number for.
    both_exclusive(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        a.set_read_timeout(Some(ms(5))).unwrap();
        let mut buf = [0u8; 1];
        assert!((&a).read(&mut buf).is_err(), "nothing to read: timed out (and registered)");
        let old = a.as_raw_fd();
        std::thread::spawn(move || drop(a)).join().unwrap();
        let (r, w) = pipe();
        // Put the pipe's read end on the old number.
        let r = if r.as_raw_fd() == old {
            r
        } else {
            // SAFETY: `old` is closed; dup3 makes it a copy of `r`.
            assert_eq!(unsafe { libc::dup3(r.as_raw_fd(), old, libc::O_CLOEXEC) }, old);
            drop(r);
            // SAFETY: `old` is now ours.
            unsafe { OwnedFd::from_raw_fd(old) }
        };
        let wfd = w.as_raw_fd();
        let writer = gevent::spawn(move || {
            gevent::sleep(ms(10));
            raw_write(wfd, b"x");
        });
        let res = wait_read(r.as_raw_fd(), Some(Duration::from_secs(10)));
        join_ok(writer);
        assert!(res.is_ok(), "[{:?}] wait_read on a reused fd number missed the data: {res:?}", backend());
        // select goes the same way.
        let mut b = [0u8; 1];
        // SAFETY: reads one byte into a live buffer.
        assert_eq!(unsafe { libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1) }, 1);
        let writer = gevent::spawn(move || {
            gevent::sleep(ms(10));
            raw_write(wfd, b"y");
        });
        let (rl, _) = gevent::select::select(&[r.as_raw_fd()], &[], Some(Duration::from_secs(10))).unwrap();
        join_ok(writer);
        assert_eq!(rl, vec![r.as_raw_fd()], "select on a reused fd number missed the data");
        drop(w);
    });
}

/// `Epoll::drop_reg`'s doc: "Forgets a registration, waking whoever still
/// waits on it". It pops the waiters without waking them: a greenlet in
/// `wait_read` on a socket's fd stays parked after the socket is closed.
#[test]
fn closing_a_socket_wakes_a_raw_waiter_on_its_fd() {
    // Alone: once woken, the waiter re-polls the fd number, which a test
    // running meanwhile could have been given by then.
    both_exclusive(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        // Register the socket (as an owner) first.
        a.set_read_timeout(Some(ms(5))).unwrap();
        assert!((&a).read(&mut [0u8; 1]).is_err());
        let waiter = gevent::spawn(move || {
            let t = Instant::now();
            let r = wait_read(fd, Some(Duration::from_secs(10)));
            (r.map_err(|e| e.kind()), t.elapsed())
        });
        gevent::sleep(ms(10));
        drop(a);
        let (r, took) = join_ok(waiter);
        // Woken by the close, not by its timeout: how long that took on a
        // loaded machine does not matter.
        assert_ne!(
            r,
            Err(ErrorKind::TimedOut),
            "[{:?}] a raw waiter on a closed socket's fd was not woken: {r:?} after {took:?}",
            backend()
        );
    });
}

/// Thread exit with greenlets blocked in every kind of I/O: the hub tears
/// down (cancels, drains) and returns every fd; the thread ends.
#[test]
fn thread_exit_with_greenlets_blocked_in_io_returns_every_fd() {
    both_exclusive(|| {
        let b = backend();
        let (peer_tx, peer_rx) = mpsc::channel::<Vec<OwnedFd>>();
        let before = fd_count();
        let t = std::thread::spawn(move || {
            prefer_backend(b).unwrap();
            assert_eq!(backend(), b);
            let (a, pa) = UnixStream::pair().unwrap();
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let (r, w) = pipe();
            let (s, ps) = UnixStream::pair().unwrap();
            let u = UdpSocket::bind("127.0.0.1:0").unwrap();
            let _g1 = gevent::spawn(move || {
                let _ = (&a).read(&mut [0u8; 16]);
            });
            let _g2 = gevent::spawn(move || {
                let _ = l.accept();
            });
            let rfd = r.as_raw_fd();
            let _g3 = gevent::spawn(move || {
                let _r = r;
                let _ = wait_read(rfd, None);
            });
            let _g4 = gevent::spawn(move || {
                let big = vec![7u8; 4 << 20];
                let _ = (&s).write_all(&big);
            });
            let _g5 = gevent::spawn(move || {
                let _ = u.recv_from(&mut [0u8; 16]);
            });
            let _g6 = gevent::spawn(|| gevent::spawn_blocking(|| std::thread::sleep(ms(30))));
            gevent::sleep(ms(20)); // all of them block
                                   // SAFETY: fresh from into_raw_fd, owned by nobody else.
            let own = |f: RawFd| unsafe { OwnedFd::from_raw_fd(f) };
            peer_tx.send(vec![own(pa.into_raw_fd()), own(ps.into_raw_fd()), w]).unwrap();
        });
        let peers = peer_rx.recv().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(ms(5));
        }
        assert!(t.is_finished(), "[{b:?}] a thread with greenlets blocked in I/O did not exit in 10 s");
        t.join().unwrap();
        drop(peers);
        // At most as many as before, not exactly as many: an fd something
        // else in the process was closing when `before` was counted must not
        // fail the test.
        let settled = io_common::wait_until(Duration::from_secs(10), || fd_count() <= before);
        let after = fd_count();
        assert!(settled, "[{b:?}] fds left open after the thread exited: {after} open, {before} before");
    });
}

/// `select` with the same fd in both lists, and repeated: no hang, no
/// panic, every ready entry reported.
#[test]
fn select_same_fd_in_both_lists_and_repeated() {
    both(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        let w = gevent::spawn(move || {
            gevent::sleep(ms(10));
            (&b).write_all(b"x").unwrap();
            b
        });
        // Writable at once.
        let (r, wl) = gevent::select::select(&[fd, fd], &[fd], Some(Duration::from_secs(10))).unwrap();
        assert_eq!((r, wl), (vec![], vec![fd]));
        // Readable later, waited twice on the same fd.
        let (r, wl) = gevent::select::select(&[fd, fd], &[], Some(Duration::from_secs(10))).unwrap();
        assert_eq!((r, wl), (vec![fd, fd], vec![]));
        let _b = join_ok(w);
        drop(a);
    });
}

/// More operations in one pass than the submission queue (1024) and the
/// completion queue (4096) hold: no hang, all complete.
#[test]
fn five_thousand_operations_in_one_pass() {
    both(|| {
        let rx = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let tx = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let to = rx.local_addr().unwrap();
        let n = 5000;
        let gs: Vec<_> = (0..n)
            .map(|_| {
                let tx = tx.clone();
                gevent::spawn(move || tx.send_to(b"x", to).unwrap())
            })
            .collect();
        for g in gs {
            assert_eq!(join_ok(g), 1);
        }
        drop(rx);
    });
}

/// A child process inherits none of the hub's or sockets' fds.
#[test]
fn child_inherits_no_hub_or_socket_fds() {
    both(|| {
        let _l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (_a, _b) = UnixStream::pair().unwrap();
        gevent::spawn_blocking(|| ()); // the remote eventfd in use
        let list = |out: std::process::Output| -> Vec<String> {
            String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect()
        };
        // What any child inherits here (fds the test harness left open).
        let base = list(std::process::Command::new("sh").args(["-c", "ls /proc/$$/fd"]).output().unwrap());
        let fds = list(gevent::subprocess::Command::new("sh").args(["-c", "ls /proc/$$/fd"]).output().unwrap());
        assert_eq!(fds, base, "[{:?}] the gevent child inherited more fds than a std one", backend());
    });
}

#[allow(dead_code)]
fn _unused(_: TcpStream) {}

/// Two greenlets stop one server at the same time: the second must not
/// panic. `accept_loop` holds `listener.borrow()` across `accept` (a
/// switch); while the first `stop` waits for the killed acceptor to
/// unwind, the second reaches `listener.borrow_mut()`.
#[test]
fn two_concurrent_stops_of_one_server() {
    both(|| {
        let server = gevent::server::StreamServer::new("127.0.0.1:0", |_c, _p| {}).unwrap();
        server.start().unwrap();
        gevent::sleep(ms(5)); // the acceptor is parked in accept
        let (s1, s2) = (server.clone(), server.clone());
        let a = gevent::spawn(move || s1.stop_timeout(ms(10)));
        let b = gevent::spawn(move || s2.stop_timeout(ms(10)));
        let (ra, rb) = (a.into_result(), b.into_result());
        assert!(ra.is_ok() && rb.is_ok(), "[{:?}] concurrent stops: {ra:?} / {rb:?}", backend());
        // DatagramServer::stop has the same shape.
        let d =
            gevent::server::DatagramServer::new("127.0.0.1:0", |_: &[u8], _, _: &gevent::server::DatagramServer| {})
                .unwrap();
        d.start().unwrap();
        gevent::sleep(ms(5));
        let (d1, d2) = (d.clone(), d.clone());
        let a = gevent::spawn(move || d1.stop());
        let b = gevent::spawn(move || d2.stop());
        let (ra, rb) = (a.into_result(), b.into_result());
        assert!(ra.is_ok() && rb.is_ok(), "[{:?}] concurrent DatagramServer stops: {ra:?} / {rb:?}", backend());
    });
}

/// A thread that binds a listener by a string address ("127.0.0.1:0")
/// resolves it on its default thread pool; when the thread exits, the
/// default pool's workers should end too (they outlive it forever: the
/// same `strong_count` check as `dropped_threadpool_lets_its_workers_exit`).
#[test]
fn default_pool_workers_end_with_their_thread() {
    both(|| {
        let b = backend();
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            prefer_backend(b).unwrap();
            struct OnExit(mpsc::Sender<()>);
            impl Drop for OnExit {
                fn drop(&mut self) {
                    let _ = self.0.send(());
                }
            }
            thread_local! { static G: std::cell::RefCell<Option<OnExit>> = const { std::cell::RefCell::new(None) }; }
            let _l = TcpListener::bind("127.0.0.1:0").unwrap(); // a &str: resolved on the pool
            gevent::spawn_blocking(move || G.with(|g| *g.borrow_mut() = Some(OnExit(tx))));
        })
        .join()
        .unwrap();
        assert!(
            rx.recv_timeout(Duration::from_secs(10)).is_ok(),
            "[{b:?}] the exited thread's default-pool worker is still alive after 10 s"
        );
    });
}

/// A signal handler cancelled before the dispatcher ever ran, then a new
/// one registered at once: the new one still runs.
#[test]
fn signal_cancel_then_register_again_before_dispatch() {
    both(|| {
        let hits = Rc::new(Cell::new(0));
        let h = gevent::signal::signal(gevent::signal::SIGUSR2, || {}).unwrap();
        h.cancel();
        let c = hits.clone();
        let h = gevent::signal::signal(gevent::signal::SIGUSR2, move || c.set(c.get() + 1)).unwrap();
        // SAFETY: raise only sends a signal to this thread.
        unsafe { libc::raise(libc::SIGUSR2) };
        let ok = io_common::wait_until(Duration::from_secs(10), || hits.get() > 0);
        h.cancel();
        assert!(ok, "[{:?}] the handler registered right after a cancel never ran", backend());
    });
}
