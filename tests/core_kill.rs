//! Killing greenlets: `kill`, `kill_nowait`, `killall` in every state of a
//! greenlet's life, with destructors run and links fired once.

mod core_common;

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::{Duration, Instant};

use core_common::{ms, DropGuard, SleepOnDrop, Trace};
use gevent::{Greenlet, GreenletError};

#[test]
fn kill_before_start_never_runs() {
    let ran = Rc::new(Cell::new(false));
    let links = Rc::new(Cell::new(0));
    let closure_dropped = Rc::new(Cell::new(0));
    let (r, guard) = (ran.clone(), DropGuard(closure_dropped.clone()));
    let g = Greenlet::new(move || {
        let _g = &guard;
        r.set(true);
    });
    let l = links.clone();
    g.link(move |_| l.set(l.get() + 1));
    g.kill();
    assert!(g.dead() && g.ready());
    assert!(!g.started(), "never started");
    assert!(!g.successful());
    assert_eq!(g.exception(), Some(GreenletError::Killed));
    assert_eq!(g.get(), Err(GreenletError::Killed));
    assert_eq!(closure_dropped.get(), 1, "the closure is dropped at once");
    g.start(); // too late: it never runs
    g.start_later(ms(1));
    g.kill();
    gevent::sleep(ms(3));
    assert!(!ran.get());
    assert!(!g.started());
    assert_eq!(links.get(), 1, "links fire once");
    assert_eq!(gevent::hub::stats().greenlets, 1);
}

#[test]
fn kill_of_a_spawned_greenlet_that_has_not_run_yet() {
    let ran = Rc::new(Cell::new(false));
    let links = Rc::new(Cell::new(0));
    let r = ran.clone();
    let g = gevent::spawn(move || r.set(true));
    let l = links.clone();
    g.link(move |_| l.set(l.get() + 1));
    g.kill_nowait();
    assert!(g.dead(), "a greenlet that never ran is dead at once");
    assert!(g.started());
    gevent::sleep(ms(1));
    assert!(!ran.get());
    assert_eq!(g.exception(), Some(GreenletError::Killed));
    assert_eq!(links.get(), 1);
    assert_eq!(gevent::hub::stats().greenlets, 1, "its slot is freed");
}

#[test]
fn kill_of_a_spawn_later_greenlet_cancels_its_start() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let g = gevent::spawn_later(ms(5), move || r.set(true));
    assert_eq!(gevent::hub::stats().timers, 1);
    g.kill();
    assert_eq!(gevent::hub::stats().timers, 0);
    gevent::sleep(ms(10));
    assert!(!ran.get());
    assert_eq!(g.exception(), Some(GreenletError::Killed));
}

#[test]
fn kill_of_a_dead_greenlet_is_a_no_op() {
    let links = Rc::new(Cell::new(0));
    let g = gevent::spawn(|| 7);
    let l = links.clone();
    g.link(move |_| l.set(l.get() + 1));
    g.join();
    g.kill();
    g.kill_nowait();
    gevent::killall([&g]);
    assert!(g.successful());
    assert_eq!(g.exception(), None);
    assert_eq!(g.get(), Ok(7));
    gevent::sleep(ms(1));
    assert_eq!(links.get(), 1);
    let p = gevent::spawn(|| panic!("first"));
    p.join();
    p.kill();
    assert_eq!(p.exception(), Some(GreenletError::Panicked("first".into())), "kill keeps the old outcome");
}

#[test]
fn kill_while_sleeping_runs_destructors() {
    let drops = Rc::new(Cell::new(0));
    let after = Rc::new(Cell::new(false));
    let (d, a) = (drops.clone(), after.clone());
    let g = gevent::spawn(move || {
        let _outer = DropGuard(d.clone());
        let _inner = DropGuard(d);
        gevent::sleep(Duration::from_secs(3600));
        a.set(true);
    });
    gevent::yield_now();
    assert_eq!(gevent::hub::stats().timers, 1);
    let t = Instant::now();
    g.kill();
    assert!(t.elapsed() < Duration::from_secs(60));
    assert_eq!(drops.get(), 2, "both guards dropped");
    assert!(!after.get(), "nothing after the blocking point ran");
    assert_eq!(g.exception(), Some(GreenletError::Killed));
    assert!(!g.successful());
    assert_eq!(gevent::hub::stats().timers, 0, "the sleep timer was cancelled");
}

#[test]
fn kill_nowait_returns_before_the_target_unwinds() {
    let trace = Trace::new();
    let t = trace.clone();
    let g = gevent::spawn(move || {
        let _g = Unwinding(t);
        gevent::sleep(Duration::from_secs(3600));
    });
    gevent::yield_now();
    g.kill_nowait();
    assert!(!g.dead(), "unwinds when the hub schedules it");
    trace.push("after kill_nowait");
    g.join();
    assert_eq!(trace.get(), ["after kill_nowait", "unwound"]);
    assert_eq!(g.exception(), Some(GreenletError::Killed));
}

struct Unwinding(Trace<&'static str>);
impl Drop for Unwinding {
    fn drop(&mut self) {
        self.0.push("unwound");
    }
}

#[test]
fn kill_waits_for_destructors_that_block() {
    struct SlowDrop(Rc<Cell<bool>>);
    impl Drop for SlowDrop {
        fn drop(&mut self) {
            gevent::sleep(ms(5));
            self.0.set(true);
        }
    }
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    let g = gevent::spawn(move || {
        let _s = SlowDrop(d);
        gevent::sleep(Duration::from_secs(3600));
    });
    gevent::yield_now();
    let t = Instant::now();
    g.kill();
    assert!(done.get(), "kill returns once the target is dead");
    assert!(t.elapsed() >= ms(5));
}

#[test]
fn kill_current_unwinds_at_once() {
    let drops = Rc::new(Cell::new(0));
    let after = Rc::new(Cell::new(false));
    let (d, a) = (drops.clone(), after.clone());
    let g = gevent::spawn(move || {
        let _g = DropGuard(d);
        gevent::getcurrent().kill();
        a.set(true);
    });
    g.join();
    assert_eq!(g.exception(), Some(GreenletError::Killed));
    assert_eq!(drops.get(), 1);
    assert!(!after.get());
}

#[test]
fn kill_while_joining_another() {
    let release = Rc::new(Cell::new(false));
    let r = release.clone();
    let target = gevent::spawn(move || {
        while !r.get() {
            gevent::sleep(ms(1));
        }
        1
    });
    let t2 = target.clone();
    let joiner = gevent::spawn(move || t2.get());
    gevent::yield_now();
    assert_eq!(gevent::hub::stats().waiters, 1);
    joiner.kill();
    assert_eq!(joiner.exception(), Some(GreenletError::Killed));
    assert_eq!(gevent::hub::stats().waiters, 0, "the killed joiner left the join list");
    assert!(!target.dead(), "the target is unaffected");
    release.set(true);
    assert_eq!(target.get(), Ok(1));
}

#[test]
fn kill_of_a_yielding_greenlet() {
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let g = gevent::spawn(move || loop {
        c.set(c.get() + 1);
        gevent::yield_now();
    });
    for _ in 0..3 {
        gevent::yield_now();
    }
    g.kill();
    let n = count.get();
    assert_eq!(n, 3);
    gevent::yield_now();
    assert_eq!(count.get(), n);
    assert_eq!(g.exception(), Some(GreenletError::Killed));
}

#[test]
fn untyped_handles_kill_too() {
    let a = gevent::spawn(|| gevent::sleep(Duration::from_secs(3600)));
    let b = gevent::spawn(|| gevent::sleep(Duration::from_secs(3600)));
    gevent::yield_now();
    let (ra, rb): (gevent::GreenletRef, gevent::GreenletRef) = (a.as_ref().clone(), b.as_ref().clone());
    ra.kill_nowait();
    assert!(!ra.dead());
    rb.kill();
    assert!(rb.dead());
    ra.join();
    assert_eq!((ra.exception(), rb.exception()), (Some(GreenletError::Killed), Some(GreenletError::Killed)));
}

#[test]
fn kill_from_another_greenlet() {
    let victim = gevent::spawn(|| gevent::sleep(Duration::from_secs(3600)));
    let v = victim.clone();
    let killer = gevent::spawn(move || {
        v.kill();
        v.dead()
    });
    assert_eq!(killer.get(), Ok(true));
    assert_eq!(victim.exception(), Some(GreenletError::Killed));
}

#[test]
fn kill_is_not_swallowed_by_with_timeout() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = gevent::spawn(move || {
        let r = gevent::with_timeout(Duration::from_secs(3600), || {
            let _g = DropGuard(d);
            gevent::sleep(Duration::from_secs(3600));
        });
        // Only reached if the kill were turned into a timeout.
        r.is_err()
    });
    gevent::yield_now();
    g.kill();
    assert_eq!(g.exception(), Some(GreenletError::Killed));
    assert_eq!(drops.get(), 1);
    assert_eq!(gevent::hub::stats().timers, 0);
}

#[test]
fn a_kill_outranks_a_pending_timeout() {
    // The timeout fires while the greenlet is already queued to resume; a
    // kill arriving before it resumes wins.
    let g = gevent::spawn(|| gevent::with_timeout(ms(1), || gevent::sleep(Duration::from_secs(3600))));
    gevent::yield_now();
    std::thread::sleep(ms(5));
    gevent::yield_now(); // timers fire at this pass boundary: g is queued
    g.kill();
    assert_eq!(g.exception(), Some(GreenletError::Killed));
}

#[test]
fn killall_kills_every_greenlet_in_any_state() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let sleeping = gevent::spawn(move || {
        let _g = DropGuard(d);
        gevent::sleep(Duration::from_secs(3600));
    });
    let yielding = gevent::spawn(|| loop {
        gevent::yield_now();
    });
    gevent::yield_now();
    let done = gevent::spawn(|| 1);
    done.join();
    let queued = gevent::spawn(|| ());
    let unstarted = Greenlet::new(|| ());
    let later = gevent::spawn_later(ms(1000), || ());
    gevent::killall([
        sleeping.as_ref(),
        yielding.as_ref(),
        queued.as_ref(),
        unstarted.as_ref(),
        later.as_ref(),
        done.as_ref(),
    ]);
    for g in [sleeping.as_ref(), yielding.as_ref(), queued.as_ref(), unstarted.as_ref(), later.as_ref()] {
        assert!(g.dead(), "{g:?}");
        assert_eq!(g.exception(), Some(GreenletError::Killed), "{g:?}");
    }
    assert!(done.successful());
    assert_eq!(drops.get(), 1);
    let s = gevent::hub::stats();
    assert_eq!((s.greenlets, s.timers), (1, 0));
}

#[test]
fn killall_asks_all_before_waiting() {
    // Each victim's destructor blocks; killall unwinds them concurrently.
    let gs: Vec<Greenlet<()>> = (0..5)
        .map(|_| {
            gevent::spawn(|| {
                let _s = SleepOnDrop(ms(20));
                gevent::sleep(Duration::from_secs(3600));
            })
        })
        .collect();
    gevent::yield_now();
    let t = Instant::now();
    gevent::killall(&gs);
    assert!(gs.iter().all(|g| g.dead()));
    assert!(t.elapsed() >= ms(20));
}

#[test]
fn killing_main_is_refused() {
    let main = gevent::getcurrent();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| main.kill())).unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()));
    assert!(msg.unwrap_or_default().contains("main greenlet cannot be killed"));
    // The hub is still fine.
    assert_eq!(gevent::spawn(|| 1).get(), Ok(1));
}

#[test]
fn a_killed_greenlet_can_be_replaced_by_a_new_one_in_its_slot() {
    // Slots are reused; a stale kill must not reach the new occupant.
    let old = gevent::spawn(|| gevent::sleep(Duration::from_secs(3600)));
    gevent::yield_now();
    old.kill();
    let fresh = gevent::spawn(|| {
        gevent::sleep(ms(2));
        "alive"
    });
    old.kill();
    old.kill_nowait();
    assert_eq!(fresh.get(), Ok("alive"));
}

#[test]
fn killall_including_the_current_greenlet_kills_the_others_first() {
    let others: Vec<Greenlet<()>> =
        (0..3).map(|_| gevent::spawn(|| gevent::sleep(Duration::from_secs(3600)))).collect();
    let list: Vec<gevent::GreenletRef> = others.iter().map(|g| g.as_ref().clone()).collect();
    let killer = gevent::spawn(move || {
        let mut all = vec![gevent::getcurrent()];
        all.extend(list);
        gevent::killall(&all);
    });
    gevent::yield_now();
    killer.join();
    assert_eq!(killer.exception(), Some(GreenletError::Killed));
    gevent::joinall(&others);
    assert!(others.iter().all(|g| g.exception() == Some(GreenletError::Killed)));
}

#[test]
fn a_second_kill_while_a_destructor_blocks_during_the_first_does_not_abort() {
    struct SlowClose(Rc<Cell<u32>>);
    impl Drop for SlowClose {
        fn drop(&mut self) {
            gevent::sleep(ms(5)); // e.g. flush and close a connection
            self.0.set(self.0.get() + 1);
        }
    }
    let closed = Rc::new(Cell::new(0));
    let c = closed.clone();
    let g = gevent::spawn(move || {
        let _c = SlowClose(c);
        gevent::sleep(Duration::from_secs(3600));
    });
    gevent::yield_now();
    g.kill_nowait();
    gevent::yield_now(); // g now sleeps inside SlowClose::drop, unwinding
    g.kill(); // a second kill: recorded, not raised inside the destructor
    assert_eq!(g.exception(), Some(GreenletError::Killed));
    assert_eq!(closed.get(), 1, "the destructor ran to completion once");
}

#[test]
fn a_timeout_opened_in_a_destructor_fires_while_a_second_kill_waits() {
    // The second kill cannot be raised inside the destructor; it must not
    // hold back the destructor's own timeout either (it once did, forever,
    // with the hub spinning on the due timer).
    struct Flush(gevent::event::Event, Rc<Cell<Option<bool>>>);
    impl Drop for Flush {
        fn drop(&mut self) {
            let r = gevent::with_timeout(ms(10), || self.0.wait());
            self.1.set(Some(r.is_err()));
        }
    }
    let never = gevent::event::Event::new();
    let timed_out = Rc::new(Cell::new(None));
    let (e, t) = (never.clone(), timed_out.clone());
    let g = gevent::spawn(move || {
        let _f = Flush(e, t);
        gevent::sleep(Duration::from_secs(3600));
    });
    gevent::yield_now();
    g.kill_nowait();
    gevent::yield_now(); // g now waits inside Flush::drop, unwinding
    g.kill_nowait(); // deferred
    let start = Instant::now();
    assert!(g.join_timeout(Duration::from_secs(10)), "the destructor's wait never ended");
    assert_eq!(timed_out.get(), Some(true), "the destructor's scope timed out");
    assert!(start.elapsed() >= ms(5), "no earlier than its deadline");
    assert_eq!(g.exception(), Some(GreenletError::Killed));
    assert_eq!(gevent::hub::stats().waiters, 0);
}

#[test]
fn other_greenlets_stay_killable_while_one_is_suspended_mid_unwind() {
    // std::thread::panicking() is the thread's: it is true in every greenlet
    // while one of them sleeps in a destructor during its unwind.
    let unwinding = gevent::spawn(|| {
        let _s = SleepOnDrop(ms(20));
        gevent::sleep(Duration::from_secs(3600));
    });
    let bystander = gevent::spawn(|| gevent::sleep(Duration::from_secs(3600)));
    gevent::yield_now();
    unwinding.kill_nowait();
    gevent::yield_now();
    bystander.kill();
    assert_eq!(bystander.exception(), Some(GreenletError::Killed));
    unwinding.join();
}

/// Sleeps `ms` in its destructor (a cleanup that blocks, as a flush would).
struct SleepyDrop(u64, Rc<Cell<bool>>);

impl Drop for SleepyDrop {
    fn drop(&mut self) {
        gevent::sleep(ms(self.0));
        self.1.set(true);
    }
}

/// A greenlet that kills itself unwinds like one killed from outside: a
/// second kill arriving while its destructor blocks is deferred, not
/// raised inside the destructor (that aborted the process).
#[test]
fn a_self_kill_counts_as_an_unwind_for_a_second_kill() {
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let g = gevent::spawn(move || {
        let _d = SleepyDrop(30, d);
        gevent::getcurrent().kill();
        unreachable!("a greenlet that kills itself does not go on");
    });
    gevent::sleep(ms(5));
    g.kill();
    assert_eq!(g.exception(), Some(GreenletError::Killed));
    assert!(dropped.get(), "the destructor ran to its end");
}

/// A kill that comes while the greenlet unwinds out of a `with_timeout`
/// (its destructor blocking) is deferred; once the scope caught its
/// timeout, the kill ends the greenlet (it used to be lost: the greenlet
/// went on and returned).
#[test]
fn a_kill_during_an_unwind_out_of_with_timeout_is_not_lost() {
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let g = gevent::spawn(move || {
        let r = gevent::with_timeout(ms(5), move || {
            let _d = SleepyDrop(30, d);
            gevent::sleep(Duration::from_secs(5));
        });
        assert!(r.is_err());
        "went on after the kill"
    });
    gevent::sleep(ms(15)); // in the destructor, unwinding from the timeout
    g.kill();
    assert_eq!(g.get(), Err(GreenletError::Killed));
    assert!(dropped.get());
}

/// A greenlet whose user code caught a panic (`catch_unwind`) is not
/// unwinding any more: a kill later takes effect at once.
#[test]
fn a_caught_panic_leaves_the_greenlet_killable() {
    let g = gevent::spawn(|| {
        let _ = std::panic::catch_unwind(|| panic!("caught and handled (expected in this test)"));
        gevent::sleep(Duration::from_secs(60));
    });
    gevent::sleep(ms(1));
    let t = Instant::now();
    g.kill();
    assert_eq!(g.exception(), Some(GreenletError::Killed));
    assert!(t.elapsed() < Duration::from_secs(10), "the kill waited for the 60 s sleep");
}

/// Killing a greenlet that never ran drops its closure; a panic in that
/// destructor is reported, and the greenlet still dies killed: its
/// joiners wake and its links run (it was left half-dead).
#[test]
fn killing_an_unstarted_greenlet_whose_closure_drop_panics() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("closure drop panicked (expected in this test)");
        }
    }
    let p = PanicOnDrop;
    let g = Greenlet::new(move || {
        let _p = &p;
        1
    });
    let linked = Rc::new(Cell::new(false));
    let l = linked.clone();
    g.link(move |_| l.set(true));
    let g2 = g.clone();
    let joiner = gevent::spawn(move || g2.join_timeout(Duration::from_secs(5)));
    gevent::sleep(ms(1));
    g.kill();
    assert!(g.dead());
    assert_eq!(g.exception(), Some(GreenletError::Killed));
    assert_eq!(joiner.get(), Ok(true), "the joiner woke");
    gevent::sleep(ms(1));
    assert!(linked.get(), "the link ran");
}

/// A kill deferred while the greenlet unwound a panic it then caught ends
/// it as killed at its root; the value it returned is dropped there, and a
/// panic in that drop is contained (it crossed the root and aborted).
#[test]
fn a_deferred_kill_at_the_root_drops_the_value_safely() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("Bomb dropped (expected in this test)");
        }
    }
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let g = gevent::spawn(move || {
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let _s = SleepyDrop(20, d);
            panic!("inner (expected in this test)");
        }));
        Bomb
    });
    gevent::sleep(ms(5)); // g sleeps in SleepyDrop, unwinding
    g.kill_nowait();
    g.join();
    assert!(dropped.get());
    assert_eq!(g.exception(), Some(GreenletError::Killed));
}

/// Blocks in its destructor until `0` is set.
struct WaitsOnDrop(gevent::event::Event);

impl Drop for WaitsOnDrop {
    fn drop(&mut self) {
        self.0.wait();
    }
}

/// A kill that arrives while a greenlet unwinds from a panic is deferred;
/// when the user's own `catch_unwind` ends that unwind, the kill is taken
/// at the greenlet's next blocking point. It used to be lost there: the
/// greenlet blocked on, alive, until something else woke it.
#[test]
fn a_kill_deferred_in_a_caught_unwind_is_taken_when_it_blocks_again() {
    let release = gevent::event::Event::new();
    let forever = gevent::event::Event::new();
    let g = gevent::spawn({
        let (release, forever) = (release.clone(), forever.clone());
        move || {
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let _w = WaitsOnDrop(release);
                panic!("a handler failed");
            }));
            forever.wait(); // nothing ever sets it
        }
    });
    gevent::sleep(ms(5)); // g is in its destructor, unwinding
    g.kill_nowait();
    release.set();
    assert!(g.join_timeout(Duration::from_secs(10)), "the deferred kill was lost");
    assert_eq!(g.exception(), Some(GreenletError::Killed));
}

/// A greenlet that once caught a panic (a count left behind) and idles is
/// killed while another greenlet unwinds (the thread is panicking, so the
/// idle one looks unwinding and its kill is deferred): once that other
/// unwind is over, the kill is taken. It used to be lost for good.
#[test]
fn a_kill_deferred_while_another_greenlet_unwinds_is_taken_after() {
    let release = gevent::event::Event::new();
    let unwinding = gevent::spawn({
        let release = release.clone();
        move || {
            let _w = WaitsOnDrop(release);
            panic!("b fails");
        }
    });
    let idle = gevent::spawn(|| {
        let _ = std::panic::catch_unwind(|| panic!("handled"));
        gevent::event::Event::new().wait(); // idles for ever
    });
    gevent::sleep(ms(5));
    idle.kill_nowait();
    release.set();
    unwinding.join();
    assert!(idle.join_timeout(Duration::from_secs(10)), "the deferred kill was lost");
    assert_eq!(idle.exception(), Some(GreenletError::Killed));
}

/// `with_timeout` in a hub callback (a link) runs its function: nothing
/// blocks there, so no timeout can fire. It used to panic with an index
/// out of bounds.
#[test]
fn with_timeout_in_a_link_callback_runs_the_function() {
    let got = Rc::new(Cell::new(None));
    let g = gevent::spawn(|| ());
    g.link({
        let got = got.clone();
        move |_| got.set(Some(gevent::with_timeout(ms(5), || 1 + 1).ok()))
    });
    g.join();
    gevent::sleep(Duration::ZERO); // the link runs from the hub
    assert_eq!(got.get(), Some(Some(2)));
}
