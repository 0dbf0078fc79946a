//! Tests from hand-mutation testing of session 10's synchronization
//! changes (e51987f..aee0654): each fails on a mutant that the other test
//! files let survive, and passes on the original.

mod core_common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use core_common::{ms, settle, spawn_result_waiters, Trace};
use gevent::event::{AsyncResult, Event};
use gevent::lock::{Lock, Semaphore};
use gevent::pool::Group;
use gevent::queue::Channel;
use gevent::GreenletError;

/// Once the last greenlet a `set` woke has run, nothing of that wake-up is
/// in progress: a wait on the set event (by that very greenlet) returns
/// without switching, as gevent's does once its notifier is done.
/// (Mutants: `behind_woken` comparing `<=`, or yielding whenever a notify
/// ever happened.)
#[test]
fn a_wait_by_the_last_woken_greenlet_does_not_switch() {
    // Event::wait, Event::wait_timeout, AsyncResult::wait, AsyncResult::wait_timeout.
    for how in 0..4 {
        let (e, r) = (Event::new(), AsyncResult::<u32>::new());
        let t: Trace<&str> = Trace::new();
        let w = {
            let (e, r, t) = (e.clone(), r.clone(), t.clone());
            gevent::spawn(move || {
                let again = || match how {
                    0 => e.wait(),
                    1 => assert!(e.wait_timeout(Duration::from_secs(10))),
                    2 => r.wait(),
                    _ => assert!(r.wait_timeout(Duration::from_secs(10))),
                };
                again();
                t.push("woken");
                again(); // set, and nothing of the wake-up left to run
                t.push("again");
            })
        };
        settle();
        if how < 2 {
            e.set();
        } else {
            r.set(1);
        }
        let other = {
            let t = t.clone();
            gevent::spawn(move || t.push("other"))
        };
        w.join();
        other.join();
        assert_eq!(t.get(), ["woken", "again", "other"], "case {how}: the second wait switched");
    }
}

/// The run queue's positions keep running when it grows: a wake-up
/// recorded before a growth, whose greenlet has run since, does not make a
/// later wait on the set event switch (a growth that reset the counters
/// made every later wait yield until as many entries had run again).
#[test]
fn a_wait_after_the_run_queue_grew_does_not_switch() {
    // Push the run queue's counters well past what the growth below moves.
    for _ in 0..2000 {
        gevent::yield_now();
    }
    let (e, crowd) = (Event::new(), Event::new());
    let w = {
        let e = e.clone();
        gevent::spawn(move || e.wait())
    };
    // Spawned in batches the run queue holds without growing (it never
    // shrinks): it first grows below, when the crowd is woken at once.
    let mut many = Vec::new();
    for _ in 0..5 {
        for _ in 0..40 {
            let c = crowd.clone();
            many.push(gevent::spawn(move || c.wait()));
        }
        settle();
    }
    e.set(); // w woken: the wake-up's end is recorded
    crowd.set(); // 200 more woken at once: the run queue grows
    w.join();
    gevent::joinall(&many);
    gevent::sleep(ms(1));
    let other = gevent::spawn(|| ());
    e.wait();
    assert!(!other.dead(), "a wait on a set event whose wake-up was over switched");
    assert!(e.wait_timeout(ms(10)));
    assert!(!other.dead(), "wait_timeout on a set event whose wake-up was over switched");
    other.join();
}

/// `AsyncResult::wait_timeout` on a ready result resumes after the
/// greenlets its `set` woke, as `wait` does (gevent: both join the
/// notification in progress).
#[test]
fn wait_timeout_on_a_ready_result_resumes_after_the_woken() {
    let r: AsyncResult<u32> = AsyncResult::new();
    let (t, ws) = spawn_result_waiters(&r, 3);
    settle();
    r.set(7);
    assert!(r.wait_timeout(ms(10)));
    assert_eq!(t.get(), [0, 1, 2], "wait_timeout on a ready result did not let the woken run first");
    gevent::joinall(&ws);
}

/// A member that kills its group, alone in it, dies too (gevent's
/// `Group.kill` kills every member, the caller among them; so did `kill`
/// before the session).
#[test]
fn a_lone_member_killing_its_group_dies() {
    for timed in [false, true] {
        let group = Group::new();
        let went_on = Rc::new(Cell::new(false));
        let m = {
            let (g, went_on) = (group.clone(), went_on.clone());
            group.spawn(move || {
                if timed {
                    assert!(g.kill_timeout(Duration::from_secs(10)));
                } else {
                    g.kill();
                }
                went_on.set(true);
            })
        };
        assert_eq!(m.get(), Err(GreenletError::Killed), "timed: {timed}");
        assert!(!went_on.get(), "a member went on after killing its own group (timed: {timed})");
        group.join();
        assert!(group.is_empty());
    }
}

/// A member that kills its group asks the others to die and unwinds at
/// once (killed last, as by `killall`): it does not wait for them first.
#[test]
fn a_member_killing_its_group_unwinds_before_the_others() {
    for timed in [false, true] {
        let group = Group::new();
        let t: Trace<&str> = Trace::new();
        struct Push(Trace<&'static str>, &'static str);
        impl Drop for Push {
            fn drop(&mut self) {
                self.0.push(self.1);
            }
        }
        let other = {
            let t = t.clone();
            group.spawn(move || {
                let _p = Push(t, "other");
                gevent::sleep(Duration::from_secs(3600));
            })
        };
        let caller = {
            let (g, t) = (group.clone(), t.clone());
            group.spawn(move || {
                let _p = Push(t, "caller");
                gevent::yield_now(); // the other one sleeps
                if timed {
                    g.kill_timeout(Duration::from_secs(10));
                } else {
                    g.kill();
                }
            })
        };
        assert_eq!(caller.get(), Err(GreenletError::Killed));
        other.join();
        assert_eq!(t.get(), ["caller", "other"], "timed: {timed}");
        group.join();
    }
}

/// `gevent::wait`/`iwait` on a semaphore or lock take no permit: waiting
/// for one that becomes free leaves it free.
#[test]
fn waiting_on_a_semaphore_as_a_waitable_keeps_no_permit() {
    let sem = Semaphore::new(0);
    let s = sem.clone();
    let releaser = gevent::spawn(move || s.release());
    assert_eq!(gevent::wait(&[&sem], None), [0]);
    assert_eq!(sem.available(), 1, "waiting took a permit");
    releaser.join();

    let lock = Lock::new();
    let held = lock.guard();
    let unlocker = gevent::spawn(move || drop(held));
    let ready: Vec<usize> = gevent::iwait(&[&lock], Some(Duration::from_secs(10))).collect();
    assert_eq!(ready, [0]);
    assert!(!lock.locked(), "waiting kept the lock");
    unlocker.join();
}

/// `iwait` reports the semaphores free when it is called first, in order,
/// before any that frees later (even one freed before a watcher runs).
#[test]
fn iwait_reports_a_free_semaphore_before_one_freed_later() {
    let (busy_sem, free_sem) = (Semaphore::new(0), Semaphore::new(1));
    let s = busy_sem.clone();
    let releaser = gevent::spawn(move || s.release()); // runs before the watchers
    let order: Vec<usize> = gevent::iwait(&[&busy_sem, &free_sem], Some(Duration::from_secs(10))).collect();
    assert_eq!(order, [1, 0]);
    assert_eq!((busy_sem.available(), free_sem.available()), (1, 1));
    releaser.join();
}

/// A `Channel::put` from a link callback (which may not switch) to a
/// getter that waits already hands the item over and returns, without
/// yielding.
#[test]
fn a_channel_put_from_a_link_callback_to_a_waiting_getter() {
    let ch: Channel<u32> = Channel::new();
    let getter = {
        let ch = ch.clone();
        gevent::spawn(move || ch.get())
    };
    settle();
    assert_eq!(ch.getters(), 1);
    let done = Rc::new(Cell::new(false));
    let linked = gevent::spawn(|| ());
    {
        let (ch, done) = (ch.clone(), done.clone());
        linked.link(move |_| {
            ch.put(4);
            done.set(true);
        });
    }
    linked.join();
    assert_eq!(getter.get(), Ok(4));
    assert!(done.get());
}

/// A kill that lands while a call yields only to let the greenlets it woke
/// run first (a wait on the event it just set; a `Channel::put` that handed
/// its item over) unwinds the caller when it resumes: one of those it woke
/// killed it, and it does not go on.
#[test]
fn a_kill_during_the_yield_behind_the_woken_lands_at_once() {
    for put in [false, true] {
        let (e, ch) = (Event::new(), Channel::<u32>::new());
        let victim: Rc<RefCell<Option<gevent::GreenletRef>>> = Rc::default();
        let killer = {
            let (e, ch, victim) = (e.clone(), ch.clone(), victim.clone());
            gevent::spawn(move || {
                if put {
                    assert_eq!(ch.get(), 1);
                } else {
                    e.wait();
                }
                victim.borrow().as_ref().expect("spawned").kill_nowait();
            })
        };
        settle();
        let went_on = Rc::new(Cell::new(false));
        let g = {
            let (e, ch, went_on) = (e.clone(), ch.clone(), went_on.clone());
            gevent::spawn(move || {
                if put {
                    ch.put(1); // handed to the killer, which runs first
                } else {
                    e.set(); // wakes the killer
                    e.wait(); // set: lets the killer run first
                }
                went_on.set(true);
            })
        };
        *victim.borrow_mut() = Some(g.as_ref().clone());
        assert_eq!(g.get(), Err(GreenletError::Killed), "put: {put}");
        assert!(!went_on.get(), "a greenlet killed in its yield went on (put: {put})");
        killer.join();
    }
}

/// A destructor that holds its greenlet's unwind until the event is set.
struct SlowUnwind(Event);
impl Drop for SlowUnwind {
    fn drop(&mut self) {
        self.0.wait();
    }
}

/// The timed calls of the session (`AsyncResult::wait_timeout`, the
/// semaphores' `wait_timeout`, `Pool::wait_available_timeout`,
/// `Group::kill_timeout`, `killall_timeout`), each bound to give up after
/// `D`, run together between two sleepers, one due well before `D`, one
/// well before `2 * D`: each gives up between them (neither at once nor
/// late). Timers due together fire in deadline order, so a loaded machine
/// cannot reorder them; the bounds only assume all were armed within 80 ms
/// of each other.
#[test]
fn the_new_timed_calls_give_up_after_their_timeout() {
    const D: u64 = 100;
    let d = ms(D);
    let release = Event::new(); // ends the holders and slow unwinders below
    let slow_unwinder = || {
        let r = release.clone();
        move || {
            let _u = SlowUnwind(r);
            gevent::sleep(Duration::from_secs(3600));
        }
    };

    let r: AsyncResult<u32> = AsyncResult::new();
    let sem = Semaphore::new(0);
    let bounded = gevent::lock::BoundedSemaphore::new(1);
    let bounded_held = bounded.guard();
    let lock = Lock::new();
    let lock_held = lock.guard();
    let pool = gevent::pool::Pool::new(1);
    let pool_member = {
        let release = release.clone();
        pool.spawn(move || release.wait())
    };
    let group = Group::new();
    let group_member = group.spawn(slow_unwinder());
    let lone = gevent::spawn(slow_unwinder());
    settle();

    type Call = (&'static str, Box<dyn FnOnce()>);
    let calls: Vec<Call> = vec![
        ("AsyncResult::wait_timeout", Box::new(move || assert!(!r.wait_timeout(d)))),
        ("Semaphore::wait_timeout", Box::new(move || assert!(!sem.wait_timeout(d)))),
        ("BoundedSemaphore::wait_timeout", Box::new(move || assert!(!bounded.wait_timeout(d)))),
        ("Lock::wait_timeout", Box::new(move || assert!(!lock.wait_timeout(d)))),
        ("Pool::wait_available_timeout", {
            let pool = pool.clone();
            Box::new(move || assert!(!pool.wait_available_timeout(d)))
        }),
        ("Group::kill_timeout", {
            let group = group.clone();
            Box::new(move || assert!(!group.kill_timeout(d)))
        }),
        ("killall_timeout", {
            let g = lone.as_ref().clone();
            Box::new(move || assert_eq!(gevent::killall_timeout([&g], d), std::slice::from_ref(&g)))
        }),
    ];
    let t: Trace<&str> = Trace::new();
    let sleeper = |n: u64, label: &'static str| {
        let t = t.clone();
        gevent::spawn(move || {
            gevent::sleep(ms(n));
            t.push(label);
        })
    };
    let mut all = vec![sleeper(20, "early")];
    for (name, f) in calls {
        let t = t.clone();
        all.push(gevent::spawn(move || {
            f();
            t.push(name);
        }));
    }
    all.push(sleeper(2 * D - 20, "late"));
    gevent::joinall(&all);
    let got = t.get();
    assert_eq!(got.len(), 9, "{got:?}");
    assert_eq!((got[0], got[8]), ("early", "late"), "a timed call gave up too early or too late: {got:?}");

    release.set();
    drop((bounded_held, lock_held));
    pool_member.join();
    group_member.join();
    lone.join();
    assert!(group.is_empty());
}
