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
