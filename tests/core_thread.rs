//! One hub per thread: independent, and torn down at thread exit, which
//! unwinds the greenlets still alive so their destructors run.

mod core_common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use core_common::{ms, SendGuard, Trace};
use gevent::Greenlet;

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn thread_exit_unwinds_greenlets_blocked_forever() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let t = Instant::now();
    let expected = std::thread::spawn(move || {
        let mut n = 0;
        for _ in 0..10 {
            let g = SendGuard(d.clone());
            gevent::spawn(move || {
                let _g = g;
                gevent::sleep(HOUR);
            });
            n += 1;
        }
        gevent::yield_now();
        n
    })
    .join()
    .expect("the thread ended normally");
    assert_eq!(drops.load(Ordering::SeqCst), expected, "every blocked greenlet's guard dropped");
    assert!(t.elapsed() < Duration::from_secs(60));
}

#[test]
fn thread_exit_drops_greenlets_in_every_state() {
    let drops = Arc::new(AtomicUsize::new(0));
    let linked = Arc::new(AtomicBool::new(false));
    let (d, l) = (drops.clone(), linked.clone());
    let expected = std::thread::spawn(move || {
        let guard = || SendGuard(d.clone());
        let mut n = 0;
        // Never started: only its closure holds the guard.
        let g = guard();
        let never = Greenlet::new(move || drop(g));
        n += 1;
        // Blocked joining the never-started one.
        let g = guard();
        let joiner = gevent::spawn(move || {
            let _g = g;
            never.join();
        });
        n += 1;
        // Its link runs during teardown.
        joiner.link(move |_| l.store(true, Ordering::SeqCst));
        // Starts in an hour.
        let g = guard();
        gevent::spawn_later(HOUR, move || drop(g));
        n += 1;
        // Yields forever.
        let g = guard();
        gevent::spawn(move || {
            let _g = g;
            loop {
                gevent::yield_now();
            }
        });
        n += 1;
        // A destructor that blocks while unwinding.
        struct SlowDrop {
            _guard: SendGuard,
        }
        impl Drop for SlowDrop {
            fn drop(&mut self) {
                gevent::sleep(ms(1));
            }
        }
        let g = guard();
        gevent::spawn(move || {
            let _s = SlowDrop { _guard: g };
            gevent::sleep(HOUR);
        });
        n += 1;
        // Inside a timeout scope.
        let g = guard();
        gevent::spawn(move || {
            let _ = gevent::with_timeout(HOUR, move || {
                let _g = g;
                gevent::sleep(HOUR);
            });
        });
        n += 1;
        gevent::yield_now();
        gevent::yield_now();
        // Spawned but not run yet when the thread ends.
        let g = guard();
        gevent::spawn(move || drop(g));
        n += 1;
        n
    })
    .join()
    .expect("the thread ended normally");
    assert_eq!(drops.load(Ordering::SeqCst), expected);
    assert!(linked.load(Ordering::SeqCst), "links of greenlets killed at thread exit run");
}

#[test]
fn hubs_of_different_threads_are_independent() {
    let threads: Vec<_> = (0..4)
        .map(|k| {
            std::thread::spawn(move || {
                let trace = Trace::new();
                let gs: Vec<Greenlet<()>> = (0..3)
                    .map(|i| {
                        let t = trace.clone();
                        gevent::spawn(move || {
                            for r in 0..100 {
                                t.push((k, r, i));
                                gevent::yield_now();
                            }
                        })
                    })
                    .collect();
                gevent::joinall(&gs);
                let s = gevent::hub::stats();
                (trace.get(), s.greenlets, gevent::getcurrent().name())
            })
        })
        .collect();
    for (k, t) in threads.into_iter().enumerate() {
        let (trace, greenlets, main) = t.join().unwrap();
        let expect: Vec<(usize, usize, usize)> = (0..100).flat_map(|r| (0..3).map(move |i| (k, r, i))).collect();
        assert_eq!(trace, expect);
        assert_eq!(greenlets, 1);
        assert_eq!(main, "main");
    }
}

#[test]
fn a_thread_that_sleeps_in_gevent_does_not_block_others() {
    let t0 = Instant::now();
    let a = std::thread::spawn(|| gevent::sleep(ms(30)));
    let b = std::thread::spawn(|| {
        let g = gevent::spawn(|| {
            gevent::sleep(ms(5));
            Instant::now()
        });
        g.get().unwrap()
    });
    let b_done = b.join().unwrap();
    a.join().unwrap();
    assert!(b_done.duration_since(t0) >= ms(5));
    assert!(t0.elapsed() >= ms(30));
}

#[test]
fn thread_exit_with_no_greenlets_left() {
    std::thread::spawn(|| {
        gevent::spawn(|| ()).join();
        gevent::sleep(ms(1));
    })
    .join()
    .unwrap();
    std::thread::spawn(|| ()).join().unwrap();
}

/// Thread exit tells every greenlet to unwind before it waits for any: a
/// greenlet whose destructor needs a lock another one holds (and releases
/// only as it unwinds) no longer blocks the thread's exit forever.
#[test]
fn thread_exit_unwinds_greenlets_that_wait_on_each_other() {
    struct NeedsLock(gevent::lock::Lock);
    impl Drop for NeedsLock {
        fn drop(&mut self) {
            let _g = self.0.guard();
        }
    }
    let t = std::thread::spawn(|| {
        let lock = gevent::lock::Lock::new();
        let (a, b) = gevent::socket::UnixStream::pair().unwrap();
        let l = lock.clone();
        // Killed first: its destructor waits for the lock.
        let _first = gevent::spawn(move || {
            let _n = NeedsLock(l);
            gevent::sleep(HOUR);
        });
        // Holds the lock while blocked in I/O (which keeps LoopExit away).
        let _second = gevent::spawn(move || {
            let _g = lock.guard();
            let _ = std::io::Read::read(&mut &a, &mut [0u8; 1]);
        });
        gevent::sleep(ms(5));
        // The peer stays open: the read never ends on its own.
        std::mem::forget(b);
    });
    // The join itself would hang: it runs on a watcher thread.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(t.join().is_ok()));
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(true), "the thread never finished exiting");
}

/// A child forked from a thread that runs a hub cannot use it (its epoll
/// or io_uring instance and thread pool are the parent's): any gevent call
/// there panics with a clear message instead of hanging or corrupting the
/// parent's ring.
#[test]
fn a_forked_child_cannot_use_its_parents_hub() {
    std::thread::spawn(|| {
        gevent::sleep(Duration::ZERO); // this thread has a hub
                                       // SAFETY: the child only runs the code below and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            std::panic::set_hook(Box::new(|_| {}));
            let r = std::panic::catch_unwind(|| gevent::sleep(Duration::ZERO));
            let clear = r.err().and_then(|p| p.downcast_ref::<&str>().map(|s| s.contains("forked"))).unwrap_or(false)
                && gevent::hub::prefer_backend(gevent::hub::Backend::Epoll).is_err();
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(if clear { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "status {status:#x}");
        gevent::sleep(Duration::ZERO); // the parent's hub is fine
    })
    .join()
    .unwrap();
}

/// A greenlet whose code swallows the kill thread exit sends it (a
/// `catch_unwind` around a blocking call, in a loop) does not hold the
/// thread for ever: thread exit gives up on it a second after the kill,
/// while the others it killed are unwound as usual.
#[test]
fn thread_exit_gives_up_on_a_greenlet_that_swallows_its_kill() {
    for yields in [false, true] {
        let (killed, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (k, d) = (killed.clone(), done.clone());
        let t = Instant::now();
        // Not joined: the teardown runs in the thread's exit, after its
        // code; main's local values go last in it, and tell.
        std::thread::spawn(move || {
            gevent::spawn(move || loop {
                let _ = std::panic::catch_unwind(|| {
                    if yields {
                        gevent::sleep(Duration::ZERO)
                    } else {
                        gevent::sleep(ms(20))
                    }
                });
            });
            gevent::spawn(move || {
                let _guard = SendGuard(k);
                gevent::sleep(HOUR);
            });
            let local: gevent::local::Local<Option<SendGuard>> = gevent::local::Local::new();
            local.with(|v| *v = Some(SendGuard(d)));
            std::mem::forget(local);
            gevent::sleep(Duration::ZERO);
        });
        while done.load(Ordering::SeqCst) == 0 && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(ms(10));
        }
        assert_eq!(done.load(Ordering::SeqCst), 1, "thread exit still blocked after {:?}", t.elapsed());
        assert_eq!(killed.load(Ordering::SeqCst), 1, "the other greenlet was not unwound");
    }
}
