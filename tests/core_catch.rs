//! `catch_panic` and `is_interrupt`: catching panics without swallowing the
//! kills and timeouts that unwind greenlets (Python's `except Exception:`).

mod core_common;

use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use core_common::{assert_no_waiters, ms, SleepOnDrop};
use gevent::{catch_panic, is_interrupt, with_timeout, GreenletError, Timeout};

#[test]
fn a_panic_is_caught_with_its_payload() {
    let r = catch_panic(|| -> u32 { panic!("bad job") });
    let p = r.expect_err("caught");
    assert!(!is_interrupt(&*p));
    assert_eq!(p.downcast_ref::<&str>(), Some(&"bad job"));
    assert_eq!(catch_panic(|| 5).ok(), Some(5));
    // Inside a greenlet too, which goes on.
    let g = gevent::spawn(|| {
        let caught = catch_panic(|| {
            gevent::sleep(ms(1));
            panic!("again")
        })
        .is_err();
        gevent::sleep(ms(1));
        caught
    });
    assert_eq!(g.get(), Ok(true));
}

#[test]
fn a_kill_passes_through_a_worker_loop() {
    let jobs = Rc::new(Cell::new(0));
    let worker = gevent::spawn({
        let jobs = jobs.clone();
        move || loop {
            let _ = catch_panic(AssertUnwindSafe(|| {
                jobs.set(jobs.get() + 1);
                gevent::sleep(ms(1));
                panic!("a bad job");
            }));
        }
    });
    // Until the loop went on after a panic (under qemu-user a panic's
    // unwind alone can take longer than a fixed pause).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while jobs.get() < 2 && std::time::Instant::now() < deadline {
        gevent::sleep(ms(1));
    }
    assert!(jobs.get() >= 2, "the loop went on after panics");
    assert_eq!(with_timeout(Duration::from_secs(5), || worker.kill()), Ok(()), "the kill went through");
    assert!(matches!(worker.exception(), Some(GreenletError::Killed)));
    assert_no_waiters();
}

#[test]
fn a_timeout_passes_through_to_its_scope() {
    let r = with_timeout(ms(5), || catch_panic(|| gevent::sleep(Duration::from_secs(10))).is_ok());
    assert_eq!(r, Err(Timeout));
    // And inside a greenlet, nested: the outer scope gets its own timeout.
    let g = gevent::spawn(|| {
        with_timeout(ms(5), || catch_panic(|| with_timeout(ms(500), || gevent::sleep(ms(50)))).is_ok())
    });
    assert_eq!(g.get(), Ok(Err(Timeout)));
}

#[test]
fn a_caught_interrupt_is_recognised_and_can_be_raised_again() {
    let saw = Rc::new(Cell::new(false));
    let g = gevent::spawn({
        let saw = saw.clone();
        move || {
            if let Err(p) = catch_unwind(|| gevent::sleep(Duration::from_secs(10))) {
                saw.set(is_interrupt(&*p));
                resume_unwind(p);
            }
        }
    });
    gevent::yield_now();
    g.kill();
    assert!(saw.get(), "a kill is an interrupt");
    assert!(matches!(g.exception(), Some(GreenletError::Killed)));
}

#[test]
fn a_kill_during_a_caught_panic_is_raised_when_the_catch_ends() {
    // The panic unwinds through a destructor that blocks; the kill arriving
    // then is held (raised inside a destructor it would abort), and taken
    // when catch_panic ends the unwind: the loop does not go on.
    let rounds = Rc::new(Cell::new(0));
    let g = gevent::spawn({
        let rounds = rounds.clone();
        move || loop {
            rounds.set(rounds.get() + 1);
            let _ = catch_panic(|| {
                let _s = SleepOnDrop(ms(5));
                panic!("unwinding slowly");
            });
        }
    });
    gevent::sleep(ms(1)); // g is in SleepOnDrop(ms(5))'s sleep, unwinding
    assert_eq!(with_timeout(Duration::from_secs(5), || g.kill()), Ok(()), "the kill went through");
    assert!(matches!(g.exception(), Some(GreenletError::Killed)));
    assert_eq!(rounds.get(), 1, "killed in its first round");
}

#[test]
fn a_dropped_coroutine_cancels_through_catch_panic() {
    let caught = Rc::new(Cell::new(0));
    let mut co = gevent::coroutine::Coroutine::new({
        let caught = caught.clone();
        move |y, _| loop {
            if let Err(p) = catch_panic(AssertUnwindSafe(|| y.suspend(1))) {
                assert!(!is_interrupt(&*p));
                caught.set(caught.get() + 1);
            }
        }
    });
    co.resume(0);
    drop(co); // its cancellation unwinds through catch_panic: no abort
    assert_eq!(caught.get(), 0);
}
