//! `gevent::event`: `Event` and `AsyncResult` — every public method, FIFO
//! wake-ups, `set` waking exactly the waiters present at that moment, a
//! wake-up that wins over a deadline that passed while the waiter was ready,
//! killed and timed-out waiters leaving their list, no waiter left behind.

mod core_common;

use std::time::{Duration, Instant};

use core_common::{assert_no_waiters, ms, settle, spawn_after, spawn_result_waiters, Trace};
use gevent::event::{AsyncResult, Event};
use gevent::{with_timeout, Greenlet, GreenletError};

/// Spawns `n` greenlets that each wait for `e`, then push their index into
/// the trace returned.
fn spawn_waiters(e: &Event, n: usize) -> (Trace<usize>, Vec<Greenlet<()>>) {
    let trace = Trace::new();
    let gs = (0..n)
        .map(|i| {
            let (e, t) = (e.clone(), trace.clone());
            gevent::spawn(move || {
                e.wait();
                t.push(i);
            })
        })
        .collect();
    (trace, gs)
}

/// Spawns a greenlet that returns `e.wait_timeout(timeout)`.
fn spawn_wait_timeout(e: &Event, timeout: Duration) -> Greenlet<bool> {
    let e = e.clone();
    gevent::spawn(move || e.wait_timeout(timeout))
}

// ---------------------------------------------------------------- Event

#[test]
fn event_set_clear_is_set() {
    let e = Event::new();
    assert!(!e.is_set());
    e.set();
    assert!(e.is_set());
    e.set(); // idempotent
    assert!(e.is_set());
    e.clear();
    assert!(!e.is_set());
    e.clear();
    assert!(!e.is_set());
    let d = Event::default();
    assert!(!d.is_set());
    assert!(format!("{e:?}").contains("Event"));
}

#[test]
fn event_clones_share_the_flag() {
    let e = Event::new();
    let c = e.clone();
    c.set();
    assert!(e.is_set());
    e.clear();
    assert!(!c.is_set());
}

#[test]
fn event_wait_returns_at_once_when_set() {
    let e = Event::new();
    e.set();
    // A ready greenlet that has not run proves that nothing switched.
    let ran = Trace::new();
    let r = ran.clone();
    let other = gevent::spawn(move || r.push("ran"));
    e.wait();
    assert!(e.wait_timeout(ms(10_000)));
    assert!(ran.get().is_empty(), "a set event does not block or yield");
    other.join();
    assert_no_waiters();
}

#[test]
fn event_wait_blocks_until_set() {
    let e = Event::new();
    let trace = Trace::new();
    let (e2, t2) = (e.clone(), trace.clone());
    let setter = gevent::spawn(move || {
        t2.push("setter sleeps");
        gevent::sleep(ms(2));
        t2.push("setter sets");
        e2.set();
    });
    trace.push("main waits");
    e.wait();
    trace.push("main woken");
    setter.join();
    assert_eq!(trace.get(), ["main waits", "setter sleeps", "setter sets", "main woken"]);
    assert_no_waiters();
}

#[test]
fn event_wait_timeout_false_when_never_set() {
    let e = Event::new();
    let t = Instant::now();
    assert!(!e.wait_timeout(ms(5)));
    assert!(t.elapsed() >= ms(5));
    assert!(!e.is_set());
    assert_no_waiters();
    assert_eq!(gevent::hub::stats().timers, 0, "the deadline's timer is gone");
}

#[test]
fn event_wait_timeout_true_when_set_in_time() {
    let e = Event::new();
    let e2 = e.clone();
    spawn_after(ms(1), move || e2.set());
    assert!(e.wait_timeout(ms(10_000)));
    assert_no_waiters();
    assert_eq!(gevent::hub::stats().timers, 0);
}

#[test]
fn event_waiters_woken_in_fifo_order() {
    let e = Event::new();
    let (trace, gs) = spawn_waiters(&e, 5);
    settle();
    assert_eq!(gevent::hub::stats().waiters, 5);
    e.set();
    gevent::joinall(&gs);
    assert_eq!(trace.get(), [0, 1, 2, 3, 4]);
    assert_no_waiters();
}

#[test]
fn event_set_wakes_every_waiter_present_even_if_cleared_at_once() {
    let e = Event::new();
    let (woken, gs) = spawn_waiters(&e, 4);
    settle();
    e.set();
    e.clear(); // before any of them ran: they were all present at the set
    gevent::joinall(&gs);
    assert_eq!(woken.get(), [0, 1, 2, 3]);
    assert!(!e.is_set());
    assert_no_waiters();
}

#[test]
fn event_set_does_not_wake_waiters_that_come_later() {
    let e = Event::new();
    e.set();
    e.clear();
    let late = spawn_wait_timeout(&e, ms(3));
    assert_eq!(late.get(), Ok(false), "a set before it waited does not count");
    // Set then cleared while a waiter is present: it is woken; one arriving
    // after the clear is not.
    let early = spawn_wait_timeout(&e, ms(10_000));
    settle();
    e.set();
    e.clear();
    let after = spawn_wait_timeout(&e, ms(3));
    assert_eq!(early.get(), Ok(true));
    assert_eq!(after.get(), Ok(false));
    assert_no_waiters();
}

#[test]
fn event_wait_timeout_true_if_set_before_resuming_though_deadline_passed() {
    // The waiter is woken by `set`, then its deadline passes before it runs
    // (the main greenlet keeps the thread busy): it reports the set.
    let e = Event::new();
    let w = spawn_wait_timeout(&e, ms(100));
    settle();
    e.set();
    e.clear();
    std::thread::sleep(ms(150)); // the waiter is ready, its deadline passes
    assert_eq!(w.get(), Ok(true));
    assert_no_waiters();
    assert_eq!(gevent::hub::stats().timers, 0);
}

#[test]
fn event_wait_timeout_true_if_deadline_passed_then_set_before_resuming() {
    // The deadline passes first (nobody ran the hub meanwhile), then a
    // greenlet that runs before the waiter's timer is looked at sets the
    // event: the set wins.
    let e = Event::new();
    let w = spawn_wait_timeout(&e, ms(100));
    settle();
    std::thread::sleep(ms(150));
    let e3 = e.clone();
    let setter = gevent::spawn(move || e3.set());
    assert_eq!(w.get(), Ok(true));
    setter.join();
    assert_no_waiters();
}

#[test]
fn event_wait_timeout_false_when_deadline_fires_before_a_late_set() {
    let e = Event::new();
    let w = spawn_wait_timeout(&e, ms(2));
    gevent::sleep(ms(10)); // the hub fires the waiter's timer, the waiter runs
    assert!(w.dead());
    e.set();
    assert_eq!(w.get(), Ok(false));
    assert_no_waiters();
}

#[test]
fn event_killed_waiter_leaves_and_others_are_still_woken() {
    let e = Event::new();
    let (trace, gs) = spawn_waiters(&e, 3);
    settle();
    assert_eq!(gevent::hub::stats().waiters, 3);
    gs[1].kill();
    assert_eq!(gs[1].exception(), Some(GreenletError::Killed));
    assert_eq!(gevent::hub::stats().waiters, 2, "the killed waiter left the list");
    e.set();
    gevent::joinall(&gs);
    assert_eq!(trace.get(), [0, 2]);
    assert_no_waiters();
}

#[test]
fn event_waiter_killed_after_the_set_before_resuming() {
    let e = Event::new();
    let (trace, gs) = spawn_waiters(&e, 3);
    settle();
    e.set();
    gs[0].kill(); // woken but not yet run
    gevent::joinall(&gs);
    assert_eq!(trace.get(), [1, 2]);
    assert_eq!(gs[0].exception(), Some(GreenletError::Killed));
    assert_no_waiters();
}

#[test]
fn event_wait_inside_with_timeout_leaves_the_list() {
    let e = Event::new();
    let t = Instant::now();
    assert!(with_timeout(ms(3), || e.wait()).is_err());
    assert!(t.elapsed() >= ms(3));
    assert_no_waiters();
    // A later set with no waiter is harmless, a later wait returns at once.
    e.set();
    e.wait();
}

#[test]
fn event_wait_from_main_with_nothing_to_set_it_is_loop_exit() {
    let msg = std::thread::spawn(|| {
        let e = Event::new();
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.wait())).unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert_no_waiters();
        msg
    })
    .join()
    .unwrap();
    assert!(msg.contains("LoopExit"), "{msg}");
}

#[test]
fn event_reused_across_set_clear_cycles() {
    let e = Event::new();
    let count = Trace::new();
    let (e2, c2) = (e.clone(), count.clone());
    let w = gevent::spawn(move || {
        for i in 0..3 {
            e2.wait();
            c2.push(i);
            e2.clear();
        }
    });
    for _ in 0..3 {
        settle();
        e.set();
    }
    w.join();
    assert_eq!(count.get(), [0, 1, 2]);
    assert_no_waiters();
}

// ---------------------------------------------------------------- AsyncResult

#[test]
fn async_result_set_get() {
    let a = AsyncResult::new();
    assert!(!a.ready());
    assert!(!a.successful());
    a.set(7);
    assert!(a.ready());
    assert!(a.successful());
    assert_eq!(a.get(), Ok(7));
    assert_eq!(a.get(), Ok(7), "get clones; the value stays");
    assert_eq!(a.get_timeout(ms(1)), Ok(7));
    a.wait();
    assert!(format!("{a:?}").contains("AsyncResult"));
    let d: AsyncResult<u8> = AsyncResult::default();
    assert!(!d.ready());
    assert_no_waiters();
}

#[test]
fn async_result_set_replaces_the_value() {
    let a = AsyncResult::new();
    a.set("first");
    a.set("second");
    assert_eq!(a.get(), Ok("second"));
    a.set_exception("boom");
    assert!(a.ready() && !a.successful());
    a.set("third");
    assert!(a.successful());
    assert_eq!(a.get(), Ok("third"));
}

#[test]
fn async_result_set_exception() {
    let a: AsyncResult<u32> = AsyncResult::new();
    a.set_exception("kaputt");
    assert!(a.ready());
    assert!(!a.successful());
    assert_eq!(a.get(), Err(GreenletError::Panicked("kaputt".into())));
    assert_eq!(a.get_timeout(ms(1)), Err(GreenletError::Panicked("kaputt".into())));
    a.set_exception(String::from("again"));
    assert_eq!(a.get(), Err(GreenletError::Panicked("again".into())));
}

#[test]
fn async_result_get_blocks_until_set() {
    let a = AsyncResult::new();
    let s = a.clone();
    spawn_after(ms(2), move || s.set(String::from("Hallo!")));
    let t = Instant::now();
    assert_eq!(a.get(), Ok(String::from("Hallo!")));
    assert!(t.elapsed() >= ms(2));
    assert_no_waiters();
}

#[test]
fn async_result_get_blocks_until_exception() {
    let a: AsyncResult<()> = AsyncResult::new();
    let s = a.clone();
    gevent::spawn(move || s.set_exception("nope"));
    assert_eq!(a.get(), Err(GreenletError::Panicked("nope".into())));
}

#[test]
fn async_result_get_timeout_unset_is_timeout() {
    let a: AsyncResult<u32> = AsyncResult::new();
    let t = Instant::now();
    assert_eq!(a.get_timeout(ms(5)), Err(GreenletError::Timeout));
    assert!(t.elapsed() >= ms(5));
    assert!(!a.ready());
    assert_no_waiters();
    assert_eq!(gevent::hub::stats().timers, 0);
}

#[test]
fn async_result_get_timeout_set_in_time() {
    let a = AsyncResult::new();
    let s = a.clone();
    spawn_after(ms(1), move || s.set(3u8));
    assert_eq!(a.get_timeout(ms(10_000)), Ok(3));
    assert_no_waiters();
}

#[test]
fn async_result_get_timeout_set_before_resuming_though_deadline_passed() {
    let a = AsyncResult::new();
    let a2 = a.clone();
    let w = gevent::spawn(move || a2.get_timeout(ms(100)));
    settle();
    a.set(1u8);
    std::thread::sleep(ms(150));
    assert_eq!(w.get(), Ok(Ok(1)));
    assert_no_waiters();
}

#[test]
fn async_result_wait_wakes_every_waiter_in_fifo_order() {
    let a = AsyncResult::new();
    let trace = Trace::new();
    let gs: Vec<_> = (0..4)
        .map(|i| {
            let (a, t) = (a.clone(), trace.clone());
            gevent::spawn(move || {
                if i % 2 == 0 {
                    a.wait();
                    t.push((i, a.get()));
                } else {
                    t.push((i, a.get()));
                }
            })
        })
        .collect();
    settle();
    assert_eq!(gevent::hub::stats().waiters, 4);
    a.set('x');
    gevent::joinall(&gs);
    assert_eq!(trace.get(), (0..4).map(|i| (i, Ok('x'))).collect::<Vec<_>>());
    assert_no_waiters();
}

#[test]
fn async_result_killed_waiter_leaves_the_list() {
    let a = AsyncResult::new();
    let trace = Trace::new();
    let gs: Vec<_> = (0..3)
        .map(|i| {
            let (a, t) = (a.clone(), trace.clone());
            gevent::spawn(move || t.push((i, a.get())))
        })
        .collect();
    settle();
    gs[0].kill();
    assert_eq!(gevent::hub::stats().waiters, 2);
    a.set(5);
    gs[2].kill(); // woken, not yet run
    gevent::joinall(&gs);
    assert_eq!(trace.get(), [(1, Ok(5))]);
    assert_no_waiters();
}

#[test]
fn async_result_get_inside_with_timeout() {
    let a: AsyncResult<u8> = AsyncResult::new();
    assert!(with_timeout(ms(2), || a.get()).is_err());
    assert_no_waiters();
    a.set(9);
    assert_eq!(with_timeout(ms(2), || a.get()), Ok(Ok(9)));
}

#[test]
fn async_result_as_a_future_between_greenlets() {
    // A "deferred" handed to a worker; the caller waits on it.
    let a = AsyncResult::new();
    let (a2, a3) = (a.clone(), a.clone());
    let worker = spawn_after(ms(1), move || a2.set(vec![1, 2, 3]));
    let reader = gevent::spawn(move || a3.get().map(|v| v.iter().sum::<i32>()));
    assert_eq!(reader.get(), Ok(Ok(6)));
    worker.join();
    assert_no_waiters();
}

#[test]
fn event_and_async_result_elapsed_lower_bounds_only() {
    // Many waiters with deadlines, all timing out: each waited at least its
    // deadline; nothing is left behind.
    let e = Event::new();
    let gs: Vec<_> = (1..=5u64)
        .map(|i| {
            let e = e.clone();
            gevent::spawn(move || {
                let t = Instant::now();
                let got = e.wait_timeout(ms(i));
                (got, t.elapsed() >= Duration::from_millis(i))
            })
        })
        .collect();
    for g in &gs {
        assert_eq!(g.get(), Ok((false, true)));
    }
    assert_no_waiters();
    assert_eq!(gevent::hub::stats().timers, 0);
}

/// A wait on a set event whose `set` woke greenlets that have not run yet
/// resumes after all of them (gevent's waiter joins the end of the
/// notification), `wait`, `wait_timeout` and `AsyncResult::wait` alike,
/// also when the wake-ups grew the run queue; `AsyncResult::get` of a
/// ready value returns at once. Once they ran, a wait on the set event
/// returns without switching.
#[test]
fn a_wait_on_a_set_event_resumes_after_the_greenlets_its_set_woke() {
    for n in [1, 2, 300] {
        let e = Event::new();
        let (trace, gs) = spawn_waiters(&e, n);
        settle();
        e.set();
        e.wait();
        assert_eq!(trace.get(), (0..n).collect::<Vec<_>>(), "wait, {n} woken");
        gevent::joinall(&gs);

        e.clear();
        let (trace, gs) = spawn_waiters(&e, n);
        settle();
        e.set();
        assert!(e.wait_timeout(ms(10)));
        assert_eq!(trace.len(), n, "wait_timeout, {n} woken");
        gevent::joinall(&gs);
    }
    // Nobody was woken since: no switch.
    let e = Event::new();
    e.set();
    let other = gevent::spawn(|| ());
    e.wait();
    assert!(!other.dead(), "a wait on a set event with nobody woken switched");
    other.join();

    let r: AsyncResult<u32> = AsyncResult::new();
    let (woken, getters) = spawn_result_waiters(&r, 3);
    settle();
    r.set(7);
    assert_eq!(r.get(), Ok(7));
    assert_eq!(woken.len(), 0, "get of a ready value switched");
    r.wait();
    assert_eq!(woken.get(), [0, 1, 2]);
    gevent::joinall(&getters);
}

/// `AsyncResult::get_nowait`, `wait_timeout` and `exception` (gevent's
/// `get_nowait`, `wait(timeout)`, `exception`).
#[test]
fn async_result_get_nowait_wait_timeout_and_exception() {
    let r: AsyncResult<u32> = AsyncResult::new();
    assert_eq!(r.get_nowait(), Err(GreenletError::Timeout));
    assert_eq!(r.exception(), None);
    let t = Instant::now();
    assert!(!r.wait_timeout(ms(30)));
    assert!(t.elapsed() >= ms(30), "returned after {:?}", t.elapsed());
    let setter = spawn_after(ms(10), {
        let r = r.clone();
        move || r.set(5)
    });
    assert!(r.wait_timeout(Duration::from_secs(10)));
    assert_eq!(r.get_nowait(), Ok(5));
    assert_eq!(r.exception(), None);
    setter.join();

    let failed: AsyncResult<u32> = AsyncResult::new();
    failed.set_exception("boom");
    assert!(failed.wait_timeout(ms(1)));
    assert_eq!(failed.exception().as_deref(), Some("boom"));
    assert_eq!(failed.get_nowait(), Err(GreenletError::Panicked("boom".into())));
    assert_no_waiters();
}
