//! Block-scoped timeouts: `with_timeout` and `Timeout`.

mod core_common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use core_common::{ms, DropGuard, SleepOnDrop, Trace};
use gevent::{with_timeout, GreenletError, Timeout};

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn completes_in_time() {
    assert_eq!(with_timeout(ms(1000), || 7), Ok(7));
    assert_eq!(
        with_timeout(ms(1000), || {
            gevent::sleep(ms(1));
            "slept"
        }),
        Ok("slept")
    );
    assert_eq!(gevent::hub::stats().timers, 0, "the scope's timer is cancelled");
}

#[test]
fn times_out_at_the_blocking_point_and_runs_destructors() {
    let drops = Rc::new(Cell::new(0));
    let after = Rc::new(Cell::new(false));
    let t = Instant::now();
    let (d, a) = (drops.clone(), after.clone());
    let r = with_timeout(ms(20), move || {
        let _g = DropGuard(d);
        gevent::sleep(HOUR);
        a.set(true);
    });
    assert_eq!(r, Err(Timeout));
    assert!(t.elapsed() >= ms(20));
    assert_eq!(drops.get(), 1);
    assert!(!after.get());
    assert_eq!(gevent::hub::stats().timers, 0, "the sleep's timer is cancelled too");
    // The hub goes on normally: a later sleep is not interrupted.
    let t = Instant::now();
    gevent::sleep(ms(5));
    assert!(t.elapsed() >= ms(5));
}

#[test]
fn works_inside_greenlets() {
    let g = gevent::spawn(|| {
        let a = with_timeout(ms(5), || gevent::sleep(HOUR));
        let b = with_timeout(HOUR, || 3);
        (a, b)
    });
    assert_eq!(g.get(), Ok((Err(Timeout), Ok(3))));
    assert!(g.successful(), "a caught timeout is not the greenlet's failure");
}

#[test]
fn nested_inner_fires_outer_continues() {
    let trace = Trace::new();
    let t = trace.clone();
    let r = with_timeout(ms(1000), move || {
        let inner = with_timeout(ms(5), || gevent::sleep(HOUR));
        t.push(format!("inner {inner:?}"));
        gevent::sleep(ms(1));
        "outer done"
    });
    assert_eq!(r, Ok("outer done"));
    assert_eq!(trace.get(), ["inner Err(Timeout)"]);
}

#[test]
fn nested_outer_fires_while_inside_inner() {
    let drops = Rc::new(Cell::new(0));
    let trace = Trace::new();
    let (t, d) = (trace.clone(), drops.clone());
    let r = with_timeout(ms(5), move || {
        let _outer_guard = DropGuard(d.clone());
        let inner = with_timeout(HOUR, move || {
            let _inner_guard = DropGuard(d);
            gevent::sleep(HOUR);
        });
        // Never reached: the outer timeout unwinds through the inner scope.
        t.push(format!("inner returned {inner:?}"));
    });
    assert_eq!(r, Err(Timeout));
    assert!(trace.get().is_empty(), "{:?}", trace.get());
    assert_eq!(drops.get(), 2);
    assert_eq!(gevent::hub::stats().timers, 0);
}

#[test]
fn three_levels_the_middle_one_fires() {
    let r = with_timeout(HOUR, || {
        let mid = with_timeout(ms(5), || with_timeout(HOUR, || gevent::sleep(HOUR)));
        (mid, 1)
    });
    assert_eq!(r, Ok((Err(Timeout), 1)));
}

#[test]
fn same_deadline_the_earlier_armed_timeout_wins() {
    // Timers fire by (deadline, creation order). The scope's timer is armed
    // before the sleep's, with the same duration, so it is due first (or
    // ties and was created first): the timeout wins over the wake-up.
    for _ in 0..5 {
        assert_eq!(with_timeout(ms(5), || gevent::sleep(ms(5))), Err(Timeout));
    }
    // A sleep that ends before the deadline wins.
    assert_eq!(with_timeout(ms(500), || gevent::sleep(ms(1))), Ok(()));
}

#[test]
fn overdue_wake_up_armed_first_wins_over_a_later_timeout() {
    // Both timers are overdue when the hub next fires timers (the thread was
    // blocked): the sleep's (deadline 10 ms) fires before the scope's (50 ms)
    // and makes the greenlet ready; the timeout must not undo that wake-up,
    // as the earlier timer wins (gevent resumes the sleeper from the first
    // timer's callback before the second one runs).
    let g = gevent::spawn(|| with_timeout(ms(50), || gevent::sleep(ms(10))));
    gevent::yield_now(); // g arms both timers and parks
    std::thread::sleep(ms(80));
    assert_eq!(g.get(), Ok(Ok(())));
}

#[test]
fn timeout_in_the_main_greenlet_while_others_run() {
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let busy = gevent::spawn(move || loop {
        c.set(c.get() + 1);
        gevent::sleep(ms(1));
    });
    let t = Instant::now();
    assert_eq!(with_timeout(ms(10), || busy.join()), Err(Timeout));
    assert!(t.elapsed() >= ms(10));
    assert!(count.get() >= 1);
    busy.kill();
}

#[test]
fn a_yield_loop_is_interrupted() {
    let n = Rc::new(Cell::new(0u64));
    let m = n.clone();
    let r = with_timeout(ms(5), move || loop {
        m.set(m.get() + 1);
        gevent::yield_now();
    });
    assert_eq!(r, Err(Timeout));
    assert!(n.get() > 0);
}

#[test]
fn no_preemption_without_a_blocking_call() {
    // Computing past the deadline without yielding is not interrupted.
    let r = with_timeout(ms(2), || {
        let t = Instant::now();
        while t.elapsed() < ms(10) {
            std::hint::spin_loop();
        }
        "finished"
    });
    assert_eq!(r, Ok("finished"));
    // And the expired scope leaves nothing behind.
    let t = Instant::now();
    gevent::sleep(ms(3));
    assert!(t.elapsed() >= ms(3));
}

#[test]
fn zero_timeout() {
    assert_eq!(with_timeout(Duration::ZERO, || 1), Ok(1), "no blocking, no timeout");
    assert_eq!(with_timeout(Duration::ZERO, gevent::yield_now), Err(Timeout));
    assert_eq!(with_timeout(Duration::ZERO, || gevent::sleep(ms(1))), Err(Timeout));
}

#[test]
fn a_panic_passes_through_the_scope() {
    let err = std::panic::catch_unwind(|| with_timeout(HOUR, || -> () { panic!("inner panic") })).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"inner panic"));
    assert_eq!(gevent::hub::stats().timers, 0);
    let g = gevent::spawn(|| with_timeout(HOUR, || -> u8 { panic!("in greenlet") }));
    assert_eq!(g.get(), Err(GreenletError::Panicked("in greenlet".into())));
}

#[test]
fn timeouts_of_different_greenlets_are_independent() {
    let trace = Trace::new();
    let gs: Vec<_> = [(1u64, 100u64), (500, 1), (500, 5)]
        .into_iter()
        .enumerate()
        .map(|(i, (limit, work))| {
            let t = trace.clone();
            gevent::spawn(move || {
                let r = with_timeout(ms(limit), || gevent::sleep(ms(work)));
                t.push((i, r.is_ok()));
            })
        })
        .collect();
    gevent::joinall(&gs);
    let mut got = trace.get();
    got.sort();
    assert_eq!(got, [(0, false), (1, true), (2, true)]);
}

#[test]
fn timeout_value() {
    let t = Timeout;
    assert_eq!(t.to_string(), "timed out");
    assert_eq!(format!("{t:?}"), "Timeout");
    let e: Box<dyn std::error::Error> = Box::new(t);
    assert_eq!(e.to_string(), "timed out");
    assert_eq!(<Timeout as Default>::default(), Timeout);
    #[allow(clippy::clone_on_copy)]
    let c = t.clone();
    assert_eq!(c, t);
    assert_eq!(GreenletError::Timeout.to_string(), "timed out");
    assert_eq!(GreenletError::Killed.to_string(), "greenlet was killed");
    assert_eq!(GreenletError::Panicked("m".into()).to_string(), "m");
    let ge: Box<dyn std::error::Error> = Box::new(GreenletError::Killed);
    assert!(!ge.to_string().is_empty());
}

#[test]
fn a_timed_out_scope_inside_a_killed_greenlet() {
    // A greenlet that already caught one timeout can still be killed.
    let g = gevent::spawn(|| {
        let _ = with_timeout(ms(1), || gevent::sleep(HOUR));
        gevent::sleep(HOUR);
    });
    gevent::sleep(ms(5));
    g.kill();
    assert_eq!(g.exception(), Some(GreenletError::Killed));
}

#[test]
fn a_greenlet_woken_every_pass_still_times_out() {
    // Its wait completes in every pass, so at every timer check it is about
    // to run: the timeout waits one pass for it to leave the scope, not
    // forever (it once never fired).
    let evt = gevent::event::Event::new();
    let e = evt.clone();
    let setter = gevent::spawn(move || loop {
        e.set();
        gevent::sleep(Duration::ZERO);
    });
    let e = evt.clone();
    let start = Instant::now();
    let waiter = gevent::spawn(move || {
        with_timeout(ms(20), || loop {
            e.wait();
            e.clear();
        })
    });
    assert!(waiter.join_timeout(Duration::from_secs(10)), "the timeout never fired");
    assert_eq!(waiter.value(), Some(Err(Timeout)));
    assert!(start.elapsed() >= ms(20));
    setter.kill();
    assert_eq!(gevent::hub::stats().waiters, 0);
}

/// Durations too large to add to now (`Duration::MAX`) wait forever instead
/// of panicking with an overflow.
#[test]
fn huge_durations_mean_forever() {
    let big = Duration::MAX;
    assert_eq!(with_timeout(big, || 5), Ok(5));
    let g = gevent::spawn(move || gevent::sleep(big));
    gevent::sleep(ms(1));
    assert!(!g.join_timeout(big.min(ms(1))));
    g.kill();
    let short = gevent::spawn(|| gevent::sleep(ms(1)));
    assert!(short.join_timeout(big));
    let later = gevent::spawn_later(big, || 1);
    assert!(later.started() && !later.dead());
    later.kill();
    assert_eq!(gevent::joinall_timeout([&short], big).len(), 1);
    let evt = gevent::event::Event::new();
    evt.set();
    assert!(evt.wait_timeout(big));
}

/// A raw coroutine suspended inside a `with_timeout` scope and kept past
/// its deadline, after the greenlet that ran it is gone: the scope's timer
/// finds nobody to interrupt (it used to index a freed control block and
/// abort the process).
#[test]
fn a_coroutine_timeout_outliving_its_greenlet_interrupts_nobody() {
    use gevent::coroutine::{Coroutine, CoroutineResult};
    let holder: Rc<std::cell::RefCell<Option<Coroutine>>> = Rc::default();
    let h = holder.clone();
    let g = gevent::spawn(move || {
        let mut co = Coroutine::new(|y, _| {
            let _ = with_timeout(ms(5), || y.suspend(1));
            0
        });
        assert_eq!(co.resume(0), CoroutineResult::Yield(1));
        *h.borrow_mut() = Some(co);
    });
    g.join();
    gevent::sleep(ms(20));
    drop(holder);
}

/// A `with_timeout` deadline that passes while the greenlet is blocked in a
/// destructor of an unwind caught *inside* the scope fires once the unwind
/// is over (at the next blocking point). It was dropped for good.
#[test]
fn a_timeout_due_during_an_unwind_caught_in_its_scope_still_fires() {
    let q: gevent::queue::Queue<u32> = gevent::queue::Queue::new();
    let g = gevent::spawn({
        let q = q.clone();
        move || {
            with_timeout(ms(10), || {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let _d = SleepOnDrop(ms(30));
                    panic!("caught inside the scope");
                }));
                q.get() // the deadline has passed: this unwinds at once
            })
        }
    });
    assert!(g.join_timeout(Duration::from_secs(10)), "the timeout was lost");
    assert_eq!(g.get(), Ok(Err(Timeout)));
    // A later scope is not hit by it.
    assert_eq!(with_timeout(ms(20), || 7), Ok(7));
}

/// Two nested scopes both due while their greenlet unwinds (the unwind is
/// caught between them): the outer scope's timeout still fires afterwards.
/// The inner one's took its place and then went with the inner scope.
#[test]
fn an_outer_timeout_deferred_with_an_inner_one_still_fires() {
    let g = gevent::spawn(|| {
        with_timeout(ms(10), || {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = with_timeout(ms(20), || {
                    let _d = SleepOnDrop(ms(40));
                    panic!("p");
                });
            }));
            gevent::sleep(Duration::from_secs(10)); // the outer deadline passed: unwinds
        })
    });
    assert!(g.join_timeout(Duration::from_secs(5)), "the outer timeout was lost");
    assert_eq!(g.get(), Ok(Err(Timeout)));
}

/// An outer scope's timeout deferred during an unwind is retried in the
/// pass an inner scope's timer fires: the outer one wins (its unwind
/// leaves the inner scope too). The inner one was kept, and the outer
/// scope never timed out.
#[test]
fn a_deferred_outer_timeout_wins_over_an_inner_one_due_with_it() {
    let g = gevent::spawn(|| {
        with_timeout(ms(10), || {
            let _ = std::panic::catch_unwind(|| {
                let _s = SleepOnDrop(ms(40));
                panic!("caught inside the outer scope");
            });
            let _ = with_timeout(Duration::ZERO, || gevent::sleep(ms(5)));
            gevent::sleep(Duration::from_secs(10));
            "the outer body completed"
        })
    });
    assert!(g.join_timeout(Duration::from_secs(5)), "the outer timeout was lost");
    assert_eq!(g.get(), Ok(Err(Timeout)));
}
