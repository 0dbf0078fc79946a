//! Review of the read ordering around a killed reader (`op::ReadOrder`,
//! commit 5e73dc9): a read started right after `kill_nowait` on another
//! reader of the same stream must return the killed reader's kept bytes
//! first (sockets, Unix streams, child pipes, two killed readers); the
//! reader count must not leak (kills, timeouts, peeks, non-blocking mode);
//! the wait for a killed reader must not break the non-blocking and hub
//! callback contracts, nor tie one thread's read to another thread's hub.

mod io_common;

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gevent::hub::{backend, prefer_backend, Backend};
use gevent::socket::{TcpListener, TcpStream, UnixStream};
use gevent::subprocess::{Command, Stdio};
use io_common::{both, join_ok, ms, LOCAL};

/// A connected pair: (ours, the peer's).
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(LOCAL).unwrap();
    let b = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (a, _) = listener.accept().unwrap();
    (a, b)
}

/// Yields once, right after a wake-up from the hub: the yield starts a new
/// pass, whose non-blocking poll reaps the completions already there (a
/// reader's receive that got bytes becomes ready, queued behind the caller,
/// but has not run yet).
fn reap() {
    gevent::sleep(Duration::ZERO);
}

/// A flag set by a greenlet spawned now: it tells whether the caller
/// switched since.
fn switch_detector() -> Rc<Cell<bool>> {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    gevent::spawn(move || r.set(true));
    ran
}

/// A greenlet that reads `s` (any `&T: Read`) once, and is to be killed
/// in its read: it panics if the read returned.
fn spawn_reader<T: 'static>(s: &Rc<T>) -> gevent::Greenlet<()>
where
    for<'a> &'a T: Read,
{
    let s = s.clone();
    gevent::spawn(move || {
        let mut buf = [0u8; 64];
        let r = (&*s).read(&mut buf).map(|n| buf[..n].to_vec());
        panic!("test setup: the victim's read returned {r:?} before its kill");
    })
}

/// Joins a killed victim: it must have been killed in its read.
fn join_killed(g: gevent::Greenlet<()>) {
    g.join();
    assert!(matches!(g.get(), Err(gevent::GreenletError::Killed)), "{:?}", g.get().err());
}

/// A Unix stream: the same ordering as TCP (the victim's receive had
/// completed, reaped but unseen, when it was killed).
#[test]
fn unix_stream_read_right_after_kill_nowait_keeps_the_order() {
    both(|| {
        for round in 0..10 {
            let (a, mut b) = UnixStream::pair().unwrap();
            let a = Rc::new(a);
            let victim = spawn_reader(&a);
            gevent::sleep(ms(5)); // its receive is in flight
            b.write_all(b"ab").unwrap();
            reap(); // its receive completed: "ab", unseen
            victim.kill_nowait();
            b.write_all(b"cdef").unwrap();
            a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut all = [0u8; 6];
            (&*a).read_exact(&mut all).unwrap();
            assert_eq!(&all, b"abcdef", "round {round}: {:?}", String::from_utf8_lossy(&all));
            join_killed(victim);
        }
    });
}

/// Rounds of the ordering check on a child's output pipe, fed through
/// `stdin` (a plain blocking fd: writing it never switches) by `cat`.
fn pipe_rounds<T: 'static>(out: Rc<T>, mut stdin: std::fs::File)
where
    for<'a> &'a T: Read,
{
    for round in 0..5 {
        let victim = spawn_reader(&out);
        gevent::sleep(ms(5)); // its read is in flight
        stdin.write_all(b"ab").unwrap();
        std::thread::sleep(ms(30)); // cat echoes it (the hub does not run)
        reap(); // the victim's read completed: "ab", unseen
        victim.kill_nowait();
        stdin.write_all(b"cdef").unwrap();
        std::thread::sleep(ms(30)); // cat echoes it
        let mut all = [0u8; 6];
        gevent::with_timeout(Duration::from_secs(5), || (&*out).read_exact(&mut all).unwrap())
            .expect("the read waited for ever");
        assert_eq!(&all, b"abcdef", "round {round}: {:?}", String::from_utf8_lossy(&all));
        join_killed(victim);
    }
}

/// A child's stdout pipe (`cat` echoing its stdin): the killed reader's
/// bytes come first.
#[test]
fn child_stdout_read_right_after_kill_nowait_keeps_the_order() {
    both(|| {
        let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let stdin = std::fs::File::from(std::os::fd::OwnedFd::from(child.stdin.take().unwrap()));
        pipe_rounds(Rc::new(child.stdout.take().unwrap()), stdin);
        child.wait().unwrap();
    });
}

/// The same on a child's stderr pipe.
#[test]
fn child_stderr_read_right_after_kill_nowait_keeps_the_order() {
    both(|| {
        let mut child = Command::new("sh")
            .args(["-c", "exec cat 1>&2"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = std::fs::File::from(std::os::fd::OwnedFd::from(child.stdin.take().unwrap()));
        pipe_rounds(Rc::new(child.stderr.take().unwrap()), stdin);
        child.wait().unwrap();
    });
}

/// Two readers killed at once, each with bytes its receive got (the first
/// one's completion reaped, the second one's not yet): a read started right
/// after gets both, in stream order.
#[test]
fn two_readers_killed_at_once_then_a_read_keeps_the_order() {
    both(|| {
        for round in 0..10 {
            let (a, mut b) = pair();
            let a = Rc::new(a);
            let first = spawn_reader(&a);
            gevent::sleep(ms(5));
            let second = spawn_reader(&a);
            gevent::sleep(ms(5)); // both receives in flight
            b.write_all(b"ab").unwrap(); // the first one's
            reap();
            b.write_all(b"cd").unwrap(); // the second one's, if it runs
            first.kill_nowait();
            second.kill_nowait();
            b.write_all(b"ef").unwrap();
            a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut all = [0u8; 6];
            (&*a).read_exact(&mut all).unwrap();
            assert_eq!(&all, b"abcdef", "round {round}: {:?}", String::from_utf8_lossy(&all));
            join_killed(first);
            join_killed(second);
        }
    });
}

/// `n` sockets with a byte each to read, and a reader greenlet for each,
/// which has run: its receive is queued for the ring, not yet submitted
/// (the caller has not let the hub poll since). At the next poll they all
/// complete at once, ahead of anything completing later in that poll; the
/// hub reaps 32 completions a poll.
fn fillers(n: usize) -> (Vec<gevent::Greenlet<()>>, Vec<TcpStream>) {
    let (mut ours, mut peers) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let (a, mut b) = pair();
        b.write_all(b"f").unwrap();
        ours.push(a);
        peers.push(b);
    }
    let readers = ours
        .into_iter()
        .map(|a| {
            gevent::spawn(move || {
                let mut buf = [0u8; 8];
                assert_eq!((&a).read(&mut buf).unwrap(), 1);
            })
        })
        .collect();
    gevent::sleep(Duration::ZERO); // they run, and queue their receives
    (readers, peers)
}

/// A killed reader whose receive completed (it got "ab") but whose
/// completion the hub has not reaped when the reader unwinds (100
/// completions came before it in the same poll, and the hub reaps 32 a
/// poll): its cancellation comes too late, and it waits for its
/// completion through several polls. A read started meanwhile waits for
/// that (`dying`), however many turns it takes, and gets "ab" first.
#[test]
fn a_read_waits_for_a_killed_readers_completion_through_several_polls() {
    both(|| {
        for round in 0..3 {
            let (a, mut b) = pair();
            let a = Rc::new(a);
            // One short receive: the next ones wait for data first (hint).
            b.write_all(b"x").unwrap();
            let mut buf = [0u8; 64];
            assert_eq!((&*a).read(&mut buf).unwrap(), 1);
            let victim = spawn_reader(&a);
            gevent::sleep(ms(10)); // its receive is in flight
            let (readers, _peers) = fillers(100);
            b.write_all(b"ab").unwrap(); // the victim's receive gets it at the next poll, after theirs
            victim.kill_nowait(); // it runs first after that poll
            reap();
            b.write_all(b"cdef").unwrap();
            a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut all = [0u8; 6];
            (&*a).read_exact(&mut all).unwrap();
            assert_eq!(&all, b"abcdef", "round {round}: {:?}", String::from_utf8_lossy(&all));
            join_killed(victim);
            for r in readers {
                join_ok(r);
            }
        }
    });
}

/// The same on a child's stdout pipe.
#[test]
fn a_pipe_read_waits_for_a_killed_readers_completion_through_several_polls() {
    both(|| {
        let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut stdin = std::fs::File::from(std::os::fd::OwnedFd::from(child.stdin.take().unwrap()));
        let out = Rc::new(child.stdout.take().unwrap());
        for round in 0..3 {
            let victim = spawn_reader(&out);
            gevent::sleep(ms(10)); // its read is in flight
            let (readers, _peers) = fillers(100);
            stdin.write_all(b"ab").unwrap();
            std::thread::sleep(ms(30)); // cat echoes it (the hub does not run)
            victim.kill_nowait();
            reap();
            stdin.write_all(b"cdef").unwrap();
            std::thread::sleep(ms(30)); // cat echoes it
            let mut all = [0u8; 6];
            gevent::with_timeout(Duration::from_secs(5), || (&*out).read_exact(&mut all).unwrap())
                .expect("the read waited for ever");
            assert_eq!(&all, b"abcdef", "round {round}: {:?}", String::from_utf8_lossy(&all));
            join_killed(victim);
            for r in readers {
                join_ok(r);
            }
        }
        drop(stdin);
        child.wait().unwrap();
    });
}

/// The reader count goes back to 0 after every way a read ends: at once,
/// after a wait, killed in flight (its bytes kept), a peek, a read timeout,
/// a `with_timeout`, non-blocking `WouldBlock`, kept bytes taken. With no
/// other read under way, a non-blocking read then never switches (it would
/// if the count leaked: it lets another reader unwind first).
#[test]
fn the_reader_count_does_not_leak() {
    both(|| {
        let (a, mut b) = pair();
        let a = Rc::new(a);
        let mut buf = [0u8; 64];
        let hang = Duration::from_secs(5);
        let assert_no_switch = |what: &str| {
            a.set_nonblocking(true).unwrap();
            let ran = switch_detector();
            let mut buf = [0u8; 64];
            let r = (&*a).read(&mut buf).map_err(|e| e.kind());
            assert_eq!(r, Err(ErrorKind::WouldBlock), "after {what}");
            assert!(!ran.get(), "after {what}: a non-blocking read with no other reader switched");
            gevent::sleep(Duration::ZERO);
            a.set_nonblocking(false).unwrap();
        };
        a.set_read_timeout(Some(hang)).unwrap();
        assert_no_switch("nothing");
        // At once.
        b.write_all(b"x").unwrap();
        gevent::sleep(ms(5));
        assert_eq!((&*a).read(&mut buf).unwrap(), 1);
        assert_no_switch("a read that completed");
        // After a wait.
        let late = {
            let mut b = b.try_clone().unwrap();
            gevent::spawn(move || {
                gevent::sleep(ms(10));
                b.write_all(b"y").unwrap();
            })
        };
        assert_eq!((&*a).read(&mut buf).unwrap(), 1);
        late.join();
        assert_no_switch("a read that waited");
        // Killed in flight, with bytes kept (io_uring).
        let victim = spawn_reader(&a);
        gevent::sleep(ms(5));
        b.write_all(b"kept").unwrap();
        reap();
        victim.kill();
        join_killed(victim);
        assert_eq!((&*a).read(&mut buf).unwrap(), 4, "the kept bytes");
        assert_eq!(&buf[..4], b"kept");
        assert_no_switch("a killed read, then taking its kept bytes");
        // A peek that waited.
        let late = {
            let mut b = b.try_clone().unwrap();
            gevent::spawn(move || {
                gevent::sleep(ms(10));
                b.write_all(b"p").unwrap();
            })
        };
        assert_eq!(a.peek(&mut buf).unwrap(), 1);
        late.join();
        assert_eq!((&*a).read(&mut buf).unwrap(), 1);
        assert_no_switch("a peek");
        // A read timeout.
        a.set_read_timeout(Some(ms(20))).unwrap();
        assert_eq!((&*a).read(&mut buf).map_err(|e| e.kind()), Err(ErrorKind::TimedOut));
        a.set_read_timeout(Some(hang)).unwrap();
        assert_no_switch("a read timeout");
        // `with_timeout`.
        assert!(gevent::with_timeout(ms(20), || (&*a).read(&mut buf)).is_err());
        assert_no_switch("a with_timeout");
        // A read killed by a panic in another greenlet is not possible;
        // a greenlet that catches its kill around a read and reads again.
        let catcher = {
            let a = a.clone();
            gevent::spawn(move || {
                let mut buf = [0u8; 8];
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (&*a).read(&mut buf)));
                assert!(r.is_err());
            })
        };
        gevent::sleep(ms(5));
        catcher.kill();
        assert_no_switch("a read whose kill was caught");
    });
}

/// A non-blocking read in a link callback (run by the hub, which may not
/// switch) while another greenlet waits in a read of the same socket: it
/// returns `WouldBlock` rather than try to let that reader run first.
#[test]
fn a_nonblocking_read_in_a_link_callback_while_another_greenlet_reads() {
    both(|| {
        let (a, _b) = pair();
        let a = Rc::new(a);
        let reader = spawn_reader(&a);
        gevent::sleep(ms(5)); // it waits in its read
        let got = Rc::new(Cell::new(None));
        let (g2, a2) = (got.clone(), a.clone());
        let g = gevent::spawn(|| ());
        g.link(move |_| {
            a2.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 8];
            g2.set(Some((&*a2).read(&mut buf).map_err(|e| e.kind())));
            a2.set_nonblocking(false).unwrap();
        });
        g.join();
        gevent::sleep(ms(1)); // links run from the hub
        assert_eq!(got.get(), Some(Err(ErrorKind::WouldBlock)));
        reader.kill();
    });
}

// ---------------------------------------------------------------------
// Bugs the review found in 5e73dc9 (these failed there; fixed since).
// ---------------------------------------------------------------------

/// Documented (`set_nonblocking`): a read that would wait fails at once
/// with `WouldBlock` "and never switches". While another greenlet waits in
/// a read of the same socket, `settle` yields first.
#[test]

fn bug_a_nonblocking_read_switches_while_another_greenlet_reads() {
    both(|| {
        let (a, _b) = pair();
        let a = Rc::new(a);
        let reader = spawn_reader(&a);
        gevent::sleep(ms(5)); // it waits in its (blocking) read
        a.set_nonblocking(true).unwrap();
        let ran = switch_detector();
        let mut buf = [0u8; 8];
        assert_eq!((&*a).read(&mut buf).map_err(|e| e.kind()), Err(ErrorKind::WouldBlock));
        assert!(!ran.get(), "a non-blocking read switched to another greenlet");
        a.set_nonblocking(false).unwrap();
        reader.kill();
    });
}

/// A socket shared by two threads: a reader killed on this thread unwinds
/// (its receive is being cancelled) and then this hub is busy (a CPU-bound
/// greenlet) for 1.5 s before it runs that reader again. A read on the
/// other thread, which has nothing to do with the killed reader's bytes
/// (there are none: the peer sent nothing), spins in `settle` until this
/// hub runs again: its 200 ms read timeout is not honoured (and a hub that
/// waits for the other thread's read would never run again: a deadlock).
#[test]

fn bug_a_read_on_another_thread_waits_for_this_hub_to_run() {
    both(|| {
        let here = backend();
        let (a, _b) = pair();
        let a = Arc::new(a);
        let victim = {
            let a = a.clone();
            gevent::spawn(move || {
                let mut buf = [0u8; 64];
                let _ = (&*a).read(&mut buf);
            })
        };
        gevent::sleep(ms(5)); // its receive is in flight
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let other = {
            let a = a.clone();
            std::thread::spawn(move || {
                let _ = prefer_backend(here);
                go_rx.recv().unwrap();
                let t = Instant::now();
                let mut buf = [0u8; 8];
                // Its own timeout, not the victim's (read at its start).
                a.set_read_timeout(Some(ms(200))).unwrap();
                let r = (&*a).read(&mut buf).map_err(|e| e.kind());
                (r, t.elapsed())
            })
        };
        victim.kill_nowait();
        // Runs after the victim started unwinding (queued behind it).
        let hog = gevent::spawn(move || {
            go_tx.send(()).unwrap();
            let t = Instant::now();
            while t.elapsed() < ms(1500) {
                std::hint::spin_loop();
            }
        });
        hog.join();
        join_killed(victim);
        let (r, took) = other.join().unwrap();
        assert_eq!(r, Err(ErrorKind::TimedOut));
        assert!(took < ms(1000), "the other thread's 200 ms read took {took:?}");
    });
}

/// Documented (module docs): on epoll, a read that can complete at once
/// returns without switching. With another greenlet waiting in a read of
/// the same socket (its readiness just reported, it is queued), `settle`
/// yields first: the other greenlet runs and takes the bytes, and this
/// read, which had them at hand, waits instead.
#[test]

fn bug_on_epoll_a_read_of_ready_bytes_switches_while_another_greenlet_reads() {
    both(|| {
        if backend() != Backend::Epoll {
            return; // on io_uring the other reader's receive takes the bytes
        }
        let (a, mut b) = pair();
        let a = Rc::new(a);
        let other = {
            let a = a.clone();
            gevent::spawn(move || {
                let mut buf = [0u8; 64];
                let _ = (&*a).read(&mut buf);
            })
        };
        gevent::sleep(ms(5)); // it waits for readiness
        b.write_all(b"hi").unwrap();
        reap(); // readiness reported: it is queued, behind us
        let ran = switch_detector();
        a.set_read_timeout(Some(ms(500))).unwrap();
        let mut buf = [0u8; 8];
        let r = (&*a).read(&mut buf).map(|n| buf[..n].to_vec()).map_err(|e| e.kind());
        assert!(!ran.get(), "a read of bytes at hand switched first");
        assert_eq!(r, Ok(b"hi".to_vec()), "the bytes at hand went to the other reader");
        other.kill();
    });
}

/// The same, as a hang: this hub's main greenlet waits (std-blocking, as
/// a thread join does) for another thread whose read of the shared socket
/// is non-blocking, so returns `WouldBlock` at once, documented. A reader
/// of the socket killed here just before (its cancellation not yet seen
/// through) makes that read spin until this hub runs again: it never does.
#[test]

fn bug_a_nonblocking_read_on_another_thread_hangs_while_this_hub_waits_for_it() {
    both(|| {
        let here = backend();
        let (a, _b) = pair();
        let a = Arc::new(a);
        let victim = {
            let a = a.clone();
            gevent::spawn(move || {
                let mut buf = [0u8; 64];
                let _ = (&*a).read(&mut buf);
            })
        };
        gevent::sleep(ms(5)); // its receive is in flight
        victim.kill_nowait();
        gevent::sleep(Duration::ZERO); // it starts unwinding: cancels, waits
        let (tx, rx) = std::sync::mpsc::channel();
        let other = {
            let a = a.clone();
            std::thread::spawn(move || {
                let _ = prefer_backend(here);
                a.set_nonblocking(true).unwrap();
                let mut buf = [0u8; 8];
                tx.send((&*a).read(&mut buf).map_err(|e| e.kind())).unwrap();
            })
        };
        // As `other.join()` would, bounded: the hub does not run meanwhile.
        let r = rx.recv_timeout(Duration::from_secs(3));
        join_killed(victim); // this hub runs again: the other thread goes on
        other.join().unwrap();
        assert_eq!(r, Ok(Err(ErrorKind::WouldBlock)), "the other thread's non-blocking read did not return");
    });
}

/// Sanity for the cross-thread test: the same read on the other thread,
/// with no reader killed here, times out in about 200 ms while this hub is
/// busy.
#[test]
fn a_read_on_another_thread_is_independent_of_this_hub() {
    both(|| {
        let here = backend();
        let (a, _b) = pair();
        let a = Arc::new(a);
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let other = {
            let a = a.clone();
            std::thread::spawn(move || {
                let _ = prefer_backend(here);
                go_rx.recv().unwrap();
                let t = Instant::now();
                let mut buf = [0u8; 8];
                a.set_read_timeout(Some(ms(200))).unwrap();
                let r = (&*a).read(&mut buf).map_err(|e| e.kind());
                (r, t.elapsed())
            })
        };
        go_tx.send(()).unwrap();
        let t = Instant::now();
        while t.elapsed() < ms(1500) {
            std::hint::spin_loop();
        }
        let (r, took) = other.join().unwrap();
        assert_eq!(r, Err(ErrorKind::TimedOut));
        assert!(took < ms(1000), "the other thread's 200 ms read took {took:?}");
    });
}
