//! Review of e51987f..HEAD: gevent-compatibility changes (Channel::put's
//! yield after a hand-off, `Waiters::behind_woken`, Group's `dying` list)
//! and the new API. Tests not named `check_*` reproduce a bug the review
//! found (they failed before its fix); `check_*` are edge cases that were
//! checked and hold.

mod core_common;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use core_common::{ms, settle, Trace};
use gevent::event::{AsyncResult, Event};
use gevent::pool::{Group, Pool};
use gevent::queue::Channel;

fn busy(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Was a bug: a put that hands its item to a waiting getter, inside a scope whose
/// deadline passed meanwhile: the item is delivered, yet the scope's
/// timeout lands in the new yield (the greenlet is `Yielded`, so
/// interruptible). Before the session `put` returned Ok; in gevent the
/// unlock callback resumes the putter before the hub's timers.
#[test]
fn a_channel_put_that_handed_its_item_over_is_not_timed_out_in_its_yield() {
    let ch: Channel<u32> = Channel::new();
    let got = Rc::new(Cell::new(None));
    let getter = {
        let (ch, got) = (ch.clone(), got.clone());
        gevent::spawn(move || got.set(Some(ch.get())))
    };
    settle();
    assert_eq!(ch.getters(), 1);
    let r = gevent::with_timeout(ms(2), || {
        busy(ms(5));
        ch.put(7);
    });
    getter.join();
    assert_eq!(got.get(), Some(7), "the getter took it");
    assert!(r.is_ok(), "put handed 7 over, yet the scope reported {r:?}");
}

/// a dying member discarded, re-added, is killed again by kill.
#[test]
fn check_dying_member_discarded_and_readded_is_killed_again() {
    let shots = Rc::new(Cell::new(0));
    let stop = Rc::new(Cell::new(false));
    let group = Group::new();
    let g = {
        let (shots, stop) = (shots.clone(), stop.clone());
        group.spawn(move || {
            while !stop.get() {
                if catch_unwind(AssertUnwindSafe(|| gevent::sleep(ms(5)))).is_err() {
                    shots.set(shots.get() + 1);
                }
            }
        })
    };
    // Until the greenlet caught `n` kills (under qemu-user an unwind can
    // outlast `kill_timeout`'s 10 ms).
    let caught = |n: u32| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while shots.get() < n && std::time::Instant::now() < deadline {
            gevent::sleep(ms(1));
        }
        shots.get()
    };
    settle();
    assert!(!group.kill_timeout(ms(10)));
    assert_eq!(caught(1), 1);
    group.discard(&g);
    group.add(&g);
    assert!(!group.kill_timeout(ms(10)));
    assert_eq!(caught(2), 2);
    stop.set(true);
    g.join();
    gevent::sleep(ms(1));
    assert!(group.is_empty());
}

/// Event::wait on a set event from a link callback, with woken
/// greenlets pending: returns at once (no panic).
#[test]
fn check_event_wait_on_set_event_in_link_callback_does_not_switch() {
    let e = Event::new();
    let t: Trace<&str> = Trace::new();
    let w = {
        let (e, t) = (e.clone(), t.clone());
        gevent::spawn(move || {
            e.wait();
            t.push("woken");
        })
    };
    settle();
    let linker = gevent::spawn(|| ());
    {
        let (e, t) = (e.clone(), t.clone());
        linker.link(move |_| {
            e.set();
            e.wait();
            assert!(e.wait_timeout(ms(0)));
            t.push("link");
        });
    }
    w.join();
    linker.join();
    gevent::sleep(ms(1));
    assert_eq!(t.get(), ["link", "woken"]);
}

/// behind_woken after the run queue grew between set and wait.
#[test]
fn check_event_wait_after_run_queue_growth_resumes_last() {
    let e = Event::new();
    let t: Trace<usize> = Trace::new();
    for i in 0..200 {
        let (e, t) = (e.clone(), t.clone());
        gevent::spawn(move || {
            e.wait();
            t.push(i);
        });
    }
    settle();
    e.set();
    e.wait();
    t.push(1000);
    let got = t.get();
    assert_eq!(got.len(), 201);
    assert_eq!(*got.last().unwrap(), 1000);
}

/// Channel::put from a Drop while the putter unwinds from a kill.
#[test]
fn check_channel_put_in_drop_while_unwinding() {
    let ch: Channel<u32> = Channel::new();
    let got = Rc::new(Cell::new(None));
    let getter = {
        let (ch, got) = (ch.clone(), got.clone());
        gevent::spawn(move || got.set(Some(ch.get())))
    };
    struct PutOnDrop(Channel<u32>, Rc<Cell<u32>>);
    impl Drop for PutOnDrop {
        fn drop(&mut self) {
            self.0.put(9);
            self.1.set(1);
        }
    }
    let done = Rc::new(Cell::new(0));
    let victim = {
        let (ch, done) = (ch.clone(), done.clone());
        gevent::spawn(move || {
            let _g = PutOnDrop(ch, done);
            gevent::sleep(Duration::from_secs(3600));
        })
    };
    settle();
    victim.kill();
    getter.join();
    assert_eq!(got.get(), Some(9));
    assert_eq!(done.get(), 1);
}

/// AsyncResult::wait / wait_timeout / get_nowait / exception basics.
#[test]
fn check_async_result_new_api() {
    let r: AsyncResult<u32> = AsyncResult::new();
    assert!(!r.wait_timeout(ms(1)));
    assert!(r.get_nowait().is_err());
    let s = r.clone();
    gevent::spawn(move || s.set(3));
    assert!(r.wait_timeout(ms(1000)));
    assert_eq!(r.get_nowait(), Ok(3));
    assert_eq!(r.exception(), None);
}

/// Pool::wait_available_timeout with a spawn queued for a slot.
#[test]
fn check_pool_wait_available_timeout() {
    let pool = Pool::new(1);
    pool.spawn(|| gevent::sleep(ms(10)));
    assert!(!pool.wait_available_timeout(ms(0)));
    assert!(pool.wait_available_timeout(ms(1000)));
}

/// Was a bug: a wait on an event set before it, inside a scope whose deadline
/// passed, times out in `behind_woken`'s yield (returned at once before).
#[test]
fn a_wait_on_a_set_event_is_not_timed_out_in_its_yield() {
    let e = Event::new();
    let w = {
        let e = e.clone();
        gevent::spawn(move || e.wait())
    };
    settle();
    e.set(); // w is woken, has not run
    let r = gevent::with_timeout(ms(2), || {
        busy(ms(5));
        e.wait();
    });
    w.join();
    assert!(r.is_ok(), "the event was set before the wait, yet {r:?}");
}

/// The same for `AsyncResult::wait` on a ready result (gevent's waiter
/// joins the notification in progress and is resumed by it, before the
/// hub's timers).
#[test]
fn a_wait_on_a_ready_result_is_not_timed_out_in_its_yield() {
    let a: AsyncResult<u32> = AsyncResult::new();
    let w = {
        let a = a.clone();
        gevent::spawn(move || a.wait())
    };
    settle();
    a.set(1); // w is woken, has not run
    let r = gevent::with_timeout(ms(2), || {
        busy(ms(5));
        a.wait();
    });
    w.join();
    assert!(r.is_ok(), "the result was ready before the wait, yet {r:?}");
}

/// Was a bug (consequence): a put retried on `Timeout` delivers the item again.
#[test]
fn a_channel_put_retried_on_timeout_delivers_once() {
    let ch: Channel<u32> = Channel::new();
    let got: Trace<u32> = Trace::new();
    let getter = {
        let (ch, got) = (ch.clone(), got.clone());
        gevent::spawn(move || loop {
            let v = ch.get();
            got.push(v);
        })
    };
    settle();
    let mut tries = 0;
    loop {
        tries += 1;
        let r = gevent::with_timeout(ms(2), || {
            busy(ms(5));
            ch.put(1);
        });
        if r.is_ok() || tries == 3 {
            break;
        }
    }
    settle();
    getter.kill();
    assert_eq!(got.get(), [1], "one put, retried after {tries} tries");
}

/// Was a bug (inherited from `Group::kill`, also `killall_timeout` with the
/// caller listed): a member's guard kills its group when the member unwinds
/// ("one dies, all die"). The caller's own kill is deferred (it unwinds
/// already), so `kill_until` goes on to join itself: "tried to join
/// itself" panics during the unwind and the process aborts.
#[test]
fn group_kill_timeout_from_a_dying_members_destructor_does_not_join_itself() {
    if core_common::child_scenario().as_deref() != Some("p10") {
        let out =
            core_common::run_child("group_kill_timeout_from_a_dying_members_destructor_does_not_join_itself", "p10");
        let err = core_common::stderr_of(&out);
        assert!(out.status.success(), "child failed: {:?}\n{err}", out.status);
        return;
    }
    struct KillGroup(Group, Rc<Cell<Option<bool>>>);
    impl Drop for KillGroup {
        fn drop(&mut self) {
            self.1.set(Some(self.0.kill_timeout(ms(500))));
        }
    }
    let group = Group::new();
    let res = Rc::new(Cell::new(None));
    let other = group.spawn(|| gevent::sleep(Duration::from_secs(3600)));
    let leader = {
        let (g, res) = (group.clone(), res.clone());
        group.spawn(move || {
            let _k = KillGroup(g, res);
            gevent::sleep(Duration::from_secs(3600));
        })
    };
    settle();
    leader.kill();
    assert!(other.dead());
    eprintln!("kill_timeout in the destructor returned {:?}", res.get());
}

/// The same for `killall` and `killall_timeout` listing the caller, from a
/// destructor during its unwind: they wait for the others only (joining
/// itself panicked there, and the process aborted).
#[test]
fn killall_from_a_dying_greenlets_destructor_does_not_join_itself() {
    if core_common::child_scenario().as_deref() != Some("p11") {
        let out = core_common::run_child("killall_from_a_dying_greenlets_destructor_does_not_join_itself", "p11");
        let err = core_common::stderr_of(&out);
        assert!(out.status.success(), "child failed: {:?}\n{err}", out.status);
        return;
    }
    struct KillAll(Vec<gevent::GreenletRef>, bool, Rc<Cell<Option<usize>>>);
    impl Drop for KillAll {
        fn drop(&mut self) {
            let mut all = self.0.clone();
            all.push(gevent::getcurrent());
            if self.1 {
                self.2.set(Some(gevent::killall_timeout(&all, ms(500)).len()));
            } else {
                gevent::killall(&all);
                self.2.set(Some(0));
            }
        }
    }
    for timed in [false, true] {
        let res = Rc::new(Cell::new(None));
        let other = gevent::spawn(|| gevent::sleep(Duration::from_secs(3600)));
        let leader = {
            let (others, res) = (vec![other.as_ref().clone()], res.clone());
            gevent::spawn(move || {
                let _k = KillAll(others, timed, res);
                gevent::sleep(Duration::from_secs(3600));
            })
        };
        settle();
        leader.kill();
        assert!(other.dead() && leader.dead(), "timed {timed}");
        // killall_timeout lists the caller, alive while it unwinds.
        assert_eq!(res.get(), Some(usize::from(timed)), "timed {timed}");
    }
}
