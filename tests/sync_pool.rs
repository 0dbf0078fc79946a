//! `gevent::pool`: `Group` and `Pool` (spawn, join, kill, map, imap,
//! imap_unordered, the size limit) and `wait`/`iwait`, each checked against
//! what gevent does.

mod core_common;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use core_common::{assert_no_waiters, ms, SleepOnDrop, Trace};
use gevent::event::{AsyncResult, Event};
use gevent::pool::{Group, Pool};
use gevent::{GreenletError, Waitable};

/// A task that sleeps `n` ms and returns `n` (completion order follows `n`).
fn nap(n: u64) -> u64 {
    gevent::sleep(ms(n));
    n
}

#[test]
fn map_and_imap_keep_input_order_imap_unordered_gives_completion_order() {
    let g = Group::new();
    assert_eq!(g.map(nap, [3, 1, 2]), [3, 1, 2]);
    assert_eq!(g.imap(nap, [3, 1, 2]).collect::<Vec<_>>(), [3, 1, 2]);
    assert_eq!(g.imap_unordered(nap, [3, 1, 2]).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(g.is_empty());
    assert_no_waiters();
}

/// A pool never runs more than its size; `spawn` waits for a free slot.
#[test]
fn a_pool_never_runs_more_than_its_size() {
    let pool = Pool::new(2);
    let (running, most) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (r, m) = (running.clone(), most.clone());
            pool.spawn(move || {
                r.set(r.get() + 1);
                m.set(m.get().max(r.get()));
                gevent::sleep(ms(1));
                r.set(r.get() - 1);
            })
        })
        .collect();
    assert!(pool.len() <= 2 && pool.free_count() == 2 - pool.len());
    gevent::joinall(&tasks);
    pool.join();
    assert_eq!((most.get(), pool.free_count(), pool.is_full()), (2, 2, false));
}

/// An input iterator that panics: the consumer of `imap` and of
/// `imap_unordered` gets that failure as a panic at its next `next`
/// (gevent re-raises it); it used to wait forever (or hit LoopExit).
#[test]
fn a_panicking_map_input_reaches_the_consumer() {
    for unordered in [false, true] {
        let g = Group::new();
        let items = (0..3u64).map(|x| if x == 2 { panic!("input failed (expected in this test)") } else { x });
        let consumer = gevent::spawn(move || {
            let mut got = Vec::new();
            let r = catch_unwind(AssertUnwindSafe(|| {
                let it: Box<dyn Iterator<Item = u64>> =
                    if unordered { Box::new(g.imap_unordered(nap, items)) } else { Box::new(g.imap(nap, items)) };
                for v in it {
                    got.push(v);
                }
            }));
            (got, r.is_err())
        });
        assert!(consumer.join_timeout(Duration::from_secs(5)), "the consumer was left waiting");
        let (got, panicked) = consumer.get().unwrap();
        assert!(panicked, "unordered={unordered}: the failure reached the consumer");
        assert_eq!(got, [0, 1], "unordered={unordered}: the results before the failure came first");
    }
}

/// A failed task fails the `next` that reaches it.
#[test]
fn a_failed_task_fails_the_map() {
    let g = Group::new();
    let r = catch_unwind(AssertUnwindSafe(|| {
        g.imap(|x: u32| if x == 1 { panic!("task failed (expected in this test)") } else { x }, 0..3).count()
    }));
    assert!(r.is_err());
    g.join();
}

/// Killing a group kills its members, blocked or not; joiners wake.
#[test]
fn group_kill_and_join_timeout() {
    let g = Group::new();
    let members: Vec<_> = (0..3).map(|_| g.spawn(|| gevent::sleep(Duration::from_secs(5)))).collect();
    assert!(!g.join_timeout(ms(2)), "members still sleep");
    g.kill();
    assert!(g.is_empty());
    assert!(members.iter().all(|m| m.exception() == Some(GreenletError::Killed)));
    assert!(g.join_timeout(Duration::ZERO));
}

/// `wait` returns the indices of the objects ready by the deadline;
/// `iwait` yields them as they become ready.
#[test]
fn wait_and_iwait_over_greenlets_events_and_results() {
    let (evt, res, last) = (Event::new(), AsyncResult::<u32>::new(), Event::new());
    // Ready in this order whatever the machine's load: the result, the
    // event, then the greenlet (it ends once the setter is done).
    let l = last.clone();
    let slow = gevent::spawn(move || l.wait());
    let (e, r) = (evt.clone(), res.clone());
    let setter = gevent::spawn(move || {
        gevent::sleep(ms(2));
        r.set(7);
        gevent::sleep(ms(2));
        e.set();
        gevent::sleep(ms(2));
        last.set();
    });
    let objects: [&dyn Waitable; 3] = [&slow, &evt, &res];
    let order = Trace::new();
    for i in gevent::iwait(&objects, None) {
        order.push(i);
    }
    assert_eq!(order.get(), [2, 1, 0]);
    assert_eq!(gevent::wait(&objects, Some(Duration::ZERO)), [0, 1, 2]);
    setter.join();
}

/// A consumer that stops early (drops the iterator) stops the feeder: no
/// task is spawned for the rest of the input, even an endless one (the
/// feeder went on forever).
#[test]
fn dropping_a_map_iterator_stops_feeding_an_endless_input() {
    for unordered in [false, true] {
        let pool = Pool::new(2);
        let spawned = Rc::new(Cell::new(0u32));
        let s = spawned.clone();
        let f = move |x: u32| {
            s.set(s.get() + 1);
            gevent::sleep(ms(1));
            x
        };
        let it: Box<dyn Iterator<Item = u32>> =
            if unordered { Box::new(pool.imap_unordered(f, 0..)) } else { Box::new(pool.imap(f, 0..)) };
        assert_eq!(it.take(3).count(), 3);
        assert!(pool.join_timeout(Duration::from_secs(5)), "unordered={unordered}: the feeder kept the pool busy");
        let after = spawned.get();
        gevent::sleep(ms(5));
        assert_eq!(spawned.get(), after, "unordered={unordered}: tasks were spawned after the consumer stopped");
        assert!(after <= 6, "unordered={unordered}: {after} tasks for 3 results from a pool of 2");
    }
}

/// Two greenlets adding the same greenlet to a full pool, both let in at
/// once: it is a member once, holding one slot (it was pushed twice and a
/// slot leaked).
#[test]
fn adding_the_same_greenlet_twice_to_a_full_pool_takes_one_slot() {
    let pool = Pool::new(2);
    let blockers: Vec<_> = (0..2).map(|_| pool.spawn(|| gevent::sleep(ms(5)))).collect();
    let member = gevent::Greenlet::new(|| gevent::sleep(ms(5)));
    let adders: Vec<_> = (0..2)
        .map(|_| {
            let (p, m) = (pool.clone(), member.clone());
            gevent::spawn(move || p.add(&m))
        })
        .collect();
    gevent::joinall(&blockers);
    gevent::joinall(&adders);
    assert_eq!((pool.len(), pool.free_count()), (1, 1), "one member, one slot taken");
    member.start();
    member.join();
    assert!(pool.join_timeout(Duration::from_secs(1)));
    assert_eq!(pool.free_count(), 2, "no slot leaked");
}

/// `Group::kill` leaves no live member: one added while it kills (here a
/// spawner blocked on a full pool, let through by the deaths) is killed
/// too, as gevent's loop does.
#[test]
fn kill_also_kills_members_added_meanwhile() {
    let pool = Pool::new(2);
    for _ in 0..2 {
        pool.spawn(|| gevent::sleep(Duration::from_secs(3600)));
    }
    let producer = gevent::spawn({
        let pool = pool.clone();
        move || {
            for _ in 0..3 {
                pool.spawn(|| gevent::sleep(Duration::from_secs(3600)));
            }
        }
    });
    gevent::sleep(ms(1)); // the producer waits for a slot
    pool.kill();
    assert!(pool.greenlets().iter().all(|g| g.dead()), "a live member is left");
    producer.join();
    pool.kill();
    assert!(pool.join_timeout(Duration::from_secs(10)));
    assert_no_waiters();
}

/// `iwait` sees an event set and cleared again before its watcher ran (as
/// gevent's links see that pulse).
#[test]
fn iwait_sees_an_event_set_and_cleared() {
    let e = Event::new();
    gevent::spawn({
        let e = e.clone();
        move || {
            e.set();
            e.clear();
        }
    });
    assert_eq!(gevent::wait(&[&e], Some(Duration::from_secs(10))), [0]);
}

/// A `Waitable` of the user's (default `mark`) whose boxed handle is an
/// `Event` set and cleared long ago is not ready: the mark is taken from
/// the handle that waits.
#[test]
fn iwait_marks_the_handle_that_waits() {
    struct Wrapped(Event);
    impl Waitable for Wrapped {
        fn is_ready(&self) -> bool {
            self.0.is_set()
        }
        fn wait_ready(&self) {
            self.0.wait()
        }
        fn boxed(&self) -> Box<dyn Waitable> {
            Box::new(self.0.clone())
        }
    }
    let e = Event::new();
    e.set();
    e.clear();
    assert_eq!(gevent::wait(&[&Wrapped(e)], Some(ms(20))), Vec::<usize>::new());
}

#[test]
fn kill_returns_with_unstarted_members_gone_and_their_slots_free() {
    // gevent: after `pool.kill()`, `len() == 0` and `free_count() == size`.
    let pool = Pool::new(2);
    for _ in 0..2 {
        pool.spawn(|| gevent::sleep(Duration::from_secs(100)));
    }
    pool.kill();
    assert_eq!((pool.len(), pool.free_count(), pool.is_full()), (0, 2, false));
    // A spawn right after does not block.
    let g = pool.spawn(|| 7);
    assert_eq!(g.get(), Ok(7));
    let group = Group::new();
    group.spawn(|| ());
    group.kill();
    assert!(group.is_empty());
    assert_no_waiters();
}

/// Endless input, at most `maxsize` results ahead: the feeder has spawned
/// no more than `taken + maxsize` tasks whenever the consumer looks.
fn check_bounded_run_ahead<I: Iterator<Item = u64>>(spawned: &Rc<Cell<u64>>, results: I, maxsize: u64) -> Vec<u64> {
    let mut out = Vec::new();
    for (taken, v) in results.take(20).enumerate() {
        out.push(v);
        gevent::sleep(ms(1)); // a slow consumer
        assert!(spawned.get() <= taken as u64 + 1 + maxsize, "{} spawned, {} taken", spawned.get(), taken + 1);
    }
    out
}

#[test]
fn imap_maxsize_bounds_the_run_ahead_of_an_endless_input() {
    for maxsize in [1u64, 3] {
        let spawned = Rc::new(Cell::new(0u64));
        let count = |spawned: &Rc<Cell<u64>>| {
            let spawned = spawned.clone();
            move |x: u64| {
                spawned.set(spawned.get() + 1);
                x * 2
            }
        };
        let group = Group::new();
        let ordered = group.imap_maxsize(count(&spawned), 0u64.., maxsize as usize);
        assert_eq!(check_bounded_run_ahead(&spawned, ordered, maxsize), (0..20).map(|x| x * 2).collect::<Vec<_>>());
        spawned.set(0);
        let unordered = group.imap_unordered_maxsize(count(&spawned), 0u64.., maxsize as usize);
        let mut got = check_bounded_run_ahead(&spawned, unordered, maxsize);
        got.sort();
        assert_eq!(got, (0..20).map(|x| x * 2).collect::<Vec<_>>());
        group.join();
    }
    // A Pool too, with a task that fails: its panic reaches the consumer,
    // and the room it held goes back.
    let pool = Pool::new(2);
    let mut results = pool.imap_maxsize(|x: u64| if x == 2 { panic!("two") } else { x }, 0u64..5, 1);
    assert_eq!(results.next(), Some(0));
    assert_eq!(results.next(), Some(1));
    assert!(catch_unwind(AssertUnwindSafe(|| results.next())).is_err());
    assert_eq!(results.collect::<Vec<_>>(), [3, 4]);
    assert!(catch_unwind(|| Group::new().imap_maxsize(|x: u64| x, [1], 0).count()).is_err());
    pool.join();
    assert_no_waiters();
}

#[test]
fn a_task_failing_as_the_input_ends_fails_imap_unordered() {
    let mut i = 0;
    let input = std::iter::from_fn(move || {
        if i < 2 {
            i += 1;
            return Some(i - 1);
        }
        gevent::yield_now(); // task 1 dies here; the feeder resumes before its links ran
        None
    });
    let g = Group::new();
    let r = catch_unwind(AssertUnwindSafe(|| {
        g.imap_unordered(|x: u32| if x == 1 { panic!("task failed (expected)") } else { x }, input).collect::<Vec<_>>()
    }));
    assert!(r.is_err(), "the failed task was silently dropped: {r:?}");
    g.join();
    assert_no_waiters();
}

#[test]
fn wait_available_waits_for_a_slot_and_takes_none() {
    let pool = Pool::new(1);
    let task = pool.spawn(|| gevent::sleep(ms(5)));
    assert!(pool.is_full());
    pool.wait_available();
    assert!(task.dead());
    assert_eq!((pool.free_count(), pool.is_full(), pool.len()), (1, false, 0));
    pool.wait_available(); // a slot is free: returns at once
    assert_eq!(pool.spawn(|| 7).get(), Ok(7));
    assert_no_waiters();
}

/// `wait_available_timeout`: false while the pool stays full for the
/// whole bound, true once a slot frees; it takes no slot either way.
#[test]
fn wait_available_timeout_is_bounded_and_takes_none() {
    let pool = Pool::new(1);
    let task = pool.spawn(|| gevent::sleep(ms(40)));
    let t = std::time::Instant::now();
    assert!(!pool.wait_available_timeout(ms(10)));
    assert!(t.elapsed() >= ms(10), "returned after {:?}", t.elapsed());
    assert!(pool.is_full());
    assert!(pool.wait_available_timeout(std::time::Duration::from_secs(10)));
    assert!(task.dead());
    assert_eq!((pool.free_count(), pool.len()), (1, 0));
    assert!(pool.wait_available_timeout(ms(1))); // free: at once
    assert_eq!(pool.free_count(), 1);
    assert_no_waiters();
}

#[test]
fn kill_releases_each_slot_once() {
    // A member killed before it started leaves twice: by `kill` and by its
    // queued link; only the first frees its slot.
    let pool = Pool::new(1);
    pool.spawn(|| gevent::sleep(Duration::from_secs(3600)));
    pool.kill();
    gevent::sleep(ms(1)); // the queued link runs
    assert_eq!((pool.len(), pool.free_count()), (0, 1));
    let (a, b) = (pool.spawn(|| 1), pool.spawn(|| 2));
    assert!(!b.started() || a.dead(), "the pool ran two at once");
    assert_eq!((a.get(), b.get()), (Ok(1), Ok(2)));
}

#[test]
fn an_interrupted_imap_next_loses_nothing_and_keeps_the_bound() {
    let (running, peak) = (Rc::new(Cell::new(0usize)), Rc::new(Cell::new(0usize)));
    let group = Group::new();
    let (r, p) = (running.clone(), peak.clone());
    let mut it = group.imap_maxsize(
        move |x: u64| {
            r.set(r.get() + 1);
            p.set(p.get().max(r.get()));
            gevent::sleep(ms(20));
            r.set(r.get() - 1);
            x
        },
        0u64..,
        2,
    );
    let mut got = Vec::new();
    while got.len() < 6 {
        if let Ok(Some(v)) = gevent::with_timeout(ms(3), || it.next()) {
            got.push(v);
        }
    }
    assert_eq!(got, [0, 1, 2, 3, 4, 5], "in order, none lost");
    assert!(peak.get() <= 2, "{} tasks ran at once", peak.get());
    drop(it);
    group.join();
    assert_no_waiters();
}

/// `Group::kill_timeout` and `gevent::killall_timeout`: bounded by the
/// timeout when a member swallows its kill (false / the survivors), each
/// member killed once across calls (gevent's `dying` set), and true / none
/// left when all die.
#[test]
fn kill_timeout_is_bounded_and_kills_each_member_once() {
    let (shots, stop) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
    let undead = {
        let (shots, stop) = (shots.clone(), stop.clone());
        move || {
            while !stop.get() {
                if catch_unwind(AssertUnwindSafe(|| gevent::sleep(ms(5)))).is_err() {
                    shots.set(shots.get() + 1);
                }
            }
        }
    };
    let group = Group::new();
    let stubborn = group.spawn(undead);
    let mortal = group.spawn(|| gevent::sleep(Duration::from_secs(3600)));
    gevent::sleep(ms(1));
    let t = std::time::Instant::now();
    assert!(!group.kill_timeout(ms(30)));
    assert!(t.elapsed() >= ms(30), "returned after {:?}", t.elapsed());
    assert!(mortal.dead() && !stubborn.dead());
    assert!(!group.kill_timeout(ms(10)));
    assert_eq!(shots.get(), 1, "a member already dying was killed again");
    group.discard(&stubborn);

    let left = gevent::killall_timeout([&stubborn], ms(20));
    assert_eq!(left, [stubborn.as_ref().clone()]);
    assert_eq!(shots.get(), 2);
    let sleepers: Vec<_> = (0..3).map(|_| gevent::spawn(|| gevent::sleep(Duration::from_secs(3600)))).collect();
    assert!(gevent::killall_timeout(&sleepers, Duration::from_secs(10)).is_empty());
    let g2 = Group::new();
    g2.spawn(|| gevent::sleep(Duration::from_secs(3600)));
    assert!(g2.kill_timeout(Duration::from_secs(10)));
    assert!(g2.is_empty());
    stop.set(true);
    stubborn.kill();
    assert!(stubborn.dead());
}

/// `apply` (gevent's `Pool.apply`): runs in a member and returns the
/// value; from a member of the same full pool it runs inline (no
/// deadlock); a panic in it panics the caller, naming the cause.
#[test]
fn apply_runs_in_a_member_inline_from_one_and_re_raises() {
    let pool = Pool::new(1);
    let in_member = pool.apply({
        let pool = pool.clone();
        move || pool.greenlets().contains(&gevent::getcurrent())
    });
    assert!(in_member, "apply ran outside the pool");
    let nested = pool.spawn({
        let pool = pool.clone();
        move || pool.apply(|| 5) + 1
    });
    assert_eq!(nested.get(), Ok(6), "apply from a member of a full pool");
    let r = catch_unwind(AssertUnwindSafe(|| pool.apply(|| -> u32 { panic!("bad job") })));
    let msg = r.expect_err("apply re-raises");
    let text = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("bad job"), "{text}");
    pool.join();
    assert_no_waiters();
}

/// Members stay in the order they were added while many leave in between
/// (the set squeezes out the places of those that left once they are the
/// majority), and a member that left and is added again goes to the end.
#[test]
fn members_keep_their_order_while_many_leave() {
    let group = Group::new();
    let gate = Event::new();
    let members: Vec<_> = (0..200)
        .map(|i| {
            let gate = gate.clone();
            group.spawn(move || {
                gate.wait();
                i
            })
        })
        .collect();
    // Every third stays; the others leave, in an order unlike the adding.
    for (i, g) in members.iter().enumerate().rev() {
        if i % 3 != 0 {
            group.discard(g);
        }
    }
    let kept: Vec<_> = members.iter().step_by(3).map(|g| g.as_ref().clone()).collect();
    assert_eq!(group.greenlets(), kept);
    assert_eq!(group.len(), kept.len());
    group.add(&members[1]);
    group.add(&members[0]); // a member already: stays where it is
    let mut expected = kept.clone();
    expected.push(members[1].as_ref().clone());
    assert_eq!(group.greenlets(), expected);
    gate.set();
    group.join();
    assert!(group.is_empty());
    assert!(members.iter().all(|g| g.dead()));
    // The discarded ones were not members when they died: nothing else changed.
    assert_eq!(members.iter().filter_map(|g| g.value()).sum::<i32>(), (0..200).sum::<i32>());
}

/// gevent's `add(blocking=False)` / `add(timeout=)`: a full pool refuses at
/// once (or after the timeout) and changes nothing; the refused closure of
/// `try_spawn` comes back unrun; a slot that frees in time is taken.
#[test]
fn try_add_add_timeout_and_try_spawn_refuse_a_full_pool() {
    use gevent::pool::PoolFull;
    let pool = Pool::new(2);
    let gate = Event::new();
    let held: Vec<_> = (0..2)
        .map(|_| {
            pool.spawn({
                let g = gate.clone();
                move || g.wait()
            })
        })
        .collect();
    assert!(pool.is_full());
    let ran = Rc::new(Cell::new(false));
    let refused = pool
        .try_spawn({
            let r = ran.clone();
            move || r.set(true)
        })
        .unwrap_err();
    let outsider = gevent::Greenlet::new(|| ());
    assert_eq!(pool.try_add(&outsider), Err(PoolFull(())));
    assert_eq!(pool.add_timeout(&outsider, ms(5)), Err(PoolFull(())));
    assert_eq!((pool.len(), pool.free_count()), (2, 0));
    assert!(!pool.contains(&outsider) && pool.contains(&held[0]));
    // A member again: no slot needed, nothing changes.
    assert_eq!(pool.try_add(&held[1]), Ok(()));
    assert_eq!(pool.add_timeout(&held[1], ms(1)), Ok(()));
    assert_eq!(pool.len(), 2);
    // A slot frees while add_timeout waits: it is taken.
    let opener = gevent::spawn({
        let g = gate.clone();
        move || {
            gevent::sleep(ms(2));
            g.set();
        }
    });
    assert_eq!(pool.add_timeout(&outsider, Duration::from_secs(5)), Ok(()));
    assert!(pool.contains(&outsider));
    outsider.start();
    opener.join();
    pool.join();
    assert!(!ran.get(), "a refused closure never runs");
    let late = pool.try_spawn(refused.0).expect("an empty pool has room");
    late.join();
    assert!(ran.get());
    assert_eq!(pool.free_count(), 2);
    assert_no_waiters();
}

/// An `add_timeout` killed while it waits for a slot takes none and adds
/// nothing; the slot that frees later goes to the next waiter.
#[test]
fn a_killed_add_timeout_takes_no_slot() {
    let pool = Pool::new(1);
    let gate = Event::new();
    let holder = pool.spawn({
        let g = gate.clone();
        move || g.wait()
    });
    let outsider = gevent::Greenlet::new(|| ());
    let waiter = gevent::spawn({
        let (p, o) = (pool.clone(), outsider.clone());
        move || p.add_timeout(&o, Duration::from_secs(3600))
    });
    gevent::sleep(Duration::ZERO);
    waiter.kill();
    assert_eq!(waiter.exception(), Some(GreenletError::Killed));
    gate.set();
    holder.join();
    pool.join();
    assert_eq!((pool.len(), pool.free_count()), (0, 1));
    assert!(!pool.contains(&outsider));
    assert_no_waiters();
}

/// gevent's `killone`: the member dies and is waited for; the others run
/// on; a greenlet that is not a member, or is dying already, is left
/// alone.
#[test]
fn killone_kills_and_waits_for_one_member_only() {
    let group = Group::new();
    let trace = Trace::new();
    let member = |name: &'static str| {
        let t = trace.clone();
        group.spawn(move || {
            gevent::sleep(ms(60_000));
            t.push(name);
        })
    };
    let (a, b) = (member("a"), member("b"));
    let outsider = gevent::spawn(|| gevent::sleep(ms(60_000)));
    gevent::sleep(Duration::ZERO);
    group.killone(&a);
    assert!(a.dead() && !b.dead());
    assert_eq!(a.get(), Err(GreenletError::Killed));
    assert!(!group.contains(&a) && group.contains(&b));
    group.killone(&outsider);
    assert!(!outsider.dead(), "not a member: left alone");
    assert!(group.killone_timeout(&b, ms(5_000)));
    assert!(group.is_empty());
    assert!(trace.get().is_empty(), "both were killed in their sleep");
    outsider.kill();
    assert_no_waiters();
}

/// A member asked to die by `kill_timeout` that is still unwinding is not
/// killed again by `killone` (gevent's `dying`), and `killone_timeout`
/// reports it alive while its destructor blocks.
#[test]
fn killone_leaves_a_dying_member_to_its_unwind() {
    let group = Group::new();
    let g = group.spawn(|| {
        let _slow = SleepOnDrop(ms(30));
        gevent::sleep(ms(60_000));
    });
    gevent::sleep(Duration::ZERO);
    assert!(!group.kill_timeout(Duration::ZERO));
    assert!(!group.killone_timeout(&g, Duration::ZERO), "still unwinding");
    g.join();
    assert_eq!(g.get(), Err(GreenletError::Killed));
    assert!(group.killone_timeout(&g, Duration::ZERO), "dead now");
    gevent::sleep(Duration::ZERO);
    assert!(group.is_empty());
}

/// gevent's `apply_async` never waits: a full pool's task runs in a
/// greenlet of its own once a slot frees; with room it is a member.
#[test]
fn apply_async_never_waits_for_a_full_pool() {
    let pool = Pool::new(1);
    let gate = Event::new();
    let busy = pool.spawn({
        let gate = gate.clone();
        move || gate.wait()
    });
    let late = pool.apply_async(|| 7);
    assert!(!late.ready() && pool.len() == 1, "queued outside the pool");
    gevent::sleep(ms(1));
    assert!(!late.ready(), "no slot yet");
    gate.set();
    assert_eq!(late.get(), Ok(7));
    assert!(busy.dead());
    let member = pool.apply_async(|| 8);
    assert!(pool.contains(&member), "with room, a member");
    assert_eq!(member.get(), Ok(8));
    let failing = pool.apply_async(|| -> u8 { panic!("boom") });
    assert!(matches!(failing.get(), Err(GreenletError::Panicked(m)) if m.contains("boom")));
    pool.join();
    assert_no_waiters();
}

/// gevent's `map_async`: the results, in input order, from a greenlet that
/// is not a member.
#[test]
fn map_async_returns_at_once_with_the_results_in_order() {
    let group = Group::new();
    let results = group.map_async(nap, [3, 1, 2]);
    assert!(!results.ready());
    assert!(!group.contains(&results));
    assert_eq!(results.get(), Ok(vec![3, 1, 2]));
    assert!(group.is_empty());
    assert_no_waiters();
}
