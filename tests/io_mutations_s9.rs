//! Behaviours first covered when hand mutation testing of the session that
//! added salvaged bytes, the I/O budget, `wait_until` and the bounded
//! thread-exit rounds showed that a bug there would go unnoticed: a killed
//! peek keeps no copy of what it saw, the budget's exact count after a
//! wait, one deadline for a whole `join_timeout`, a greenlet given up on at
//! thread exit is not killed again, and immediate I/O in a link callback
//! past the budget. Plus a read started right after a reader of the same
//! stream was killed with `kill_nowait`, which used to reorder the stream.

mod io_common;

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gevent::socket::{TcpListener, TcpStream};
use io_common::{both, join_ok, ms, LOCAL};

/// A connected pair: (ours, the peer's).
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(LOCAL).unwrap();
    let b = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (a, _) = listener.accept().unwrap();
    (a, b)
}

/// A peek killed after the kernel had received bytes for it (io_uring: its
/// completion came before the cancellation) keeps nothing: the bytes are
/// still the kernel's, so reading them returns them once, not twice.
#[test]
fn a_killed_peek_keeps_no_copy_of_the_bytes_it_saw() {
    both(|| {
        let (a, mut b) = pair();
        let a = Rc::new(a);
        for round in 0..20u8 {
            let peeker = {
                let a = a.clone();
                gevent::spawn(move || {
                    let mut buf = [0u8; 16];
                    let _ = a.peek(&mut buf);
                    unreachable!("killed before it runs again");
                })
            };
            gevent::sleep(Duration::ZERO); // it waits in its peek
            b.write_all(&[round; 3]).unwrap();
            peeker.kill(); // before the hub polls
            a.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 16];
            let n = (&*a).read(&mut buf).expect("the bytes are still to be read");
            assert_eq!(&buf[..n], &[round; 3], "round {round}");
            a.set_nonblocking(true).unwrap();
            let again = (&*a).read(&mut buf).map(|n| buf[..n].to_vec());
            assert_eq!(again.map_err(|e| e.kind()), Err(ErrorKind::WouldBlock), "round {round}: read twice");
            a.set_nonblocking(false).unwrap();
        }
    });
}

/// The budget starts again at every wait: after an operation that parked,
/// 127 more that complete at once run without a switch, and the next one
/// yields before it starts (documented: the 129th operation in a row).
#[test]
fn after_a_wait_the_budget_is_whole_again() {
    both(|| {
        let listener = TcpListener::bind(LOCAL).unwrap();
        // The peer is std's, written from another thread: the budget is
        // the hub's, which counts its greenlets' operations only.
        let b = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (a, _) = listener.accept().unwrap();
        // Use up part of the budget first (one yield on the way).
        for _ in 0..200 {
            assert_eq!((&a).write(b"x").unwrap(), 1);
        }
        // A receive that waits (parks): the peer writes 300 ms later (a
        // shorter delay, outlasted by a stalled hub thread, found the data
        // there and the read did not park).
        let writer = std::thread::spawn(move || {
            std::thread::sleep(ms(300));
            (&b).write_all(b"y").unwrap();
            b
        });
        let mut buf = [0u8; 8];
        assert_eq!((&a).read(&mut buf).unwrap(), 1);
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        gevent::spawn(move || r.set(true));
        for i in 1..=127 {
            assert_eq!((&a).write(b"z").unwrap(), 1);
            assert!(!ran.get(), "operation {i} after the wait yielded");
        }
        assert_eq!((&a).write(b"z").unwrap(), 1);
        assert!(ran.get(), "the 128th operation after the wait did not yield first");
        drop(writer.join().unwrap());
    });
}

/// A link callback (run by the hub, which may not switch) doing more
/// immediate I/O than the budget: the operation the budget would have
/// yielded before runs without yielding, rather than panicking.
#[test]
fn a_link_callback_may_do_more_immediate_io_than_the_budget() {
    both(|| {
        let (a, mut b) = pair();
        let sent = Rc::new(Cell::new(0usize));
        let s = sent.clone();
        let g = gevent::spawn(|| ());
        g.link(move |_| {
            for _ in 0..300 {
                if (&a).write(b"x").is_ok() {
                    s.set(s.get() + 1);
                }
            }
        });
        g.join();
        gevent::sleep(ms(1)); // links run from the hub
        assert_eq!(sent.get(), 300, "the callback's I/O stopped at the budget");
        b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut got = vec![0u8; 300];
        b.read_exact(&mut got).unwrap();
    });
}

/// `Group::join_timeout(d)` and `JoinableQueue::join_timeout(d)` wait at
/// most `d` in all, however often the wait wakes before the end: here the
/// group (the queue) empties every 100 ms, which wakes it, and is refilled
/// before it runs, for 600 ms; the bound is 250 ms.
#[test]
fn join_timeout_is_one_bound_for_all_the_wakeups() {
    both(|| {
        let group = gevent::pool::Group::new();
        let sleeper = || gevent::spawn(|| gevent::sleep(Duration::from_secs(3600)));
        let mut member = sleeper();
        group.add(&member);
        let g = group.clone();
        let refiller = gevent::spawn(move || {
            for _ in 0..6 {
                gevent::sleep(ms(100));
                let next = sleeper();
                g.discard(&member); // empty: the join wakes
                g.add(&next); // full again before it runs
                member.kill();
                member = next;
            }
            g.discard(&member);
            member.kill();
        });
        let t = Instant::now();
        assert!(!group.join_timeout(ms(250)), "joined after {:?}", t.elapsed());
        assert!(t.elapsed() < ms(550), "the bound was renewed at each wakeup: {:?}", t.elapsed());
        refiller.join();

        let q: gevent::queue::JoinableQueue<u64> = gevent::queue::JoinableQueue::new();
        q.put(1);
        let q2 = q.clone();
        let worker = gevent::spawn(move || loop {
            let i = q2.get();
            gevent::sleep(ms(100));
            q2.task_done(); // none left: the join wakes
            if i < 6 {
                q2.put(i + 1); // one again before it runs
            }
        });
        let t = Instant::now();
        assert!(!q.join_timeout(ms(250)), "joined after {:?}", t.elapsed());
        assert!(t.elapsed() < ms(550), "the bound was renewed at each wakeup: {:?}", t.elapsed());
        worker.kill();
    });
}

/// Thread exit gives up on a greenlet that swallowed its kill: the later
/// rounds (for greenlets spawned by the unwinding) do not kill it again,
/// or wait for it again.
#[test]
fn thread_exit_kills_a_greenlet_it_gave_up_on_only_once() {
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (swallowed, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (s, d) = (swallowed.clone(), done.clone());
    let t = Instant::now();
    // Not joined: the teardown runs in the thread's exit, after its code;
    // main's local values go last in it, and tell.
    std::thread::spawn(move || {
        gevent::spawn(move || loop {
            if std::panic::catch_unwind(|| gevent::sleep(ms(20))).is_err() {
                s.fetch_add(1, Ordering::SeqCst);
            }
        });
        let local: gevent::local::Local<Option<Flag>> = gevent::local::Local::new();
        local.with(|v| *v = Some(Flag(d)));
        std::mem::forget(local);
        gevent::sleep(Duration::ZERO);
    });
    while done.load(Ordering::SeqCst) == 0 && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(ms(10));
    }
    assert_eq!(done.load(Ordering::SeqCst), 1, "thread exit still blocked after {:?}", t.elapsed());
    assert_eq!(swallowed.load(Ordering::SeqCst), 1, "the swallower was killed again in a later round");
}

/// A read started right after `kill_nowait` on another reader of the same
/// stream (before that reader unwound) gets the stream in order. On
/// io_uring the killed reader's receive may already hold the next bytes
/// (its completion came, unseen): they are kept when it unwinds, so the
/// read waits for that first; it used to wait in the kernel, and return
/// later bytes before the kept ones (or wait for ever if the peer sent
/// nothing more). The poll-first hint (the last receive was short, the
/// common case) lets the kernel complete the victim's receive first.
#[test]

fn a_read_right_after_kill_nowait_keeps_the_stream_in_order() {
    both(|| {
        let (a, mut b) = pair();
        let a = Rc::new(a);
        // One short receive: the next ones wait for data first (hint).
        b.write_all(b"x").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!((&*a).read(&mut buf).unwrap(), 1);
        let victim = {
            let a = a.clone();
            gevent::spawn(move || {
                let mut buf = [0u8; 64];
                let _ = (&*a).read(&mut buf);
            })
        };
        gevent::sleep(ms(20)); // the victim's receive is in flight
        b.write_all(b"ab").unwrap();
        victim.kill_nowait();
        b.write_all(b"cdef").unwrap();
        let late = gevent::spawn(move || {
            gevent::sleep(ms(300));
            b.write_all(b"ghi").unwrap();
            b
        });
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut all = [0u8; 9];
        (&*a).read_exact(&mut all).unwrap();
        assert_eq!(&all, b"abcdefghi", "stream reordered: {:?}", String::from_utf8_lossy(&all));
        victim.join();
        let _b = join_ok(late);
    });
}
