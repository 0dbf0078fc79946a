//! gevent calls added for porting users: `try_joinall` (gevent's
//! `joinall(raise_error=True)`), each checked against what gevent does.

mod core_common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use core_common::{assert_no_waiters, ms, SleepOnDrop};
use gevent::event::Event;
use gevent::queue::{Empty, LifoQueue, PriorityQueue, Queue};
use gevent::GreenletError;

fn fail(msg: &'static str) -> gevent::Greenlet<()> {
    gevent::spawn(move || panic!("{msg}"))
}

/// The first failure in death order is raised at once; the others keep
/// running and are not waited for.
#[test]
fn try_joinall_raises_the_first_failure_in_death_order() {
    let gate = Event::new();
    let waiting = gevent::spawn({
        let g = gate.clone();
        move || g.wait()
    });
    // `late` dies once let go (a timer of its own, under qemu-user, ran
    // out while `early`'s panic was still unwinding).
    let late_gate = Event::new();
    let late = gevent::spawn({
        let g = late_gate.clone();
        move || {
            g.wait();
            panic!("late");
        }
    });
    let early = gevent::spawn(|| {
        gevent::sleep(ms(1));
        panic!("early");
    });
    let all = [waiting.as_ref(), late.as_ref(), early.as_ref()];
    assert_eq!(gevent::try_joinall(all), Err(GreenletError::Panicked("early".into())));
    assert!(!waiting.dead() && !late.dead());
    late_gate.set();
    gate.set();
    assert_eq!(gevent::try_joinall(all), Err(GreenletError::Panicked("early".into())));
    late.join();
    assert_no_waiters();
}

/// Greenlets dead already are looked at first, in the order given.
#[test]
fn try_joinall_looks_at_the_dead_ones_first_in_the_order_given() {
    let (a, b) = (fail("a"), fail("b"));
    gevent::sleep(Duration::ZERO);
    assert!(a.dead() && b.dead());
    let running = gevent::spawn(|| gevent::sleep(ms(1)));
    assert_eq!(gevent::try_joinall([&running, &b, &a]), Err(GreenletError::Panicked("b".into())));
    assert!(!running.dead());
    running.join();
}

/// A killed greenlet has finished (gevent's GreenletExit is a result);
/// with no failure it waits for all of them.
#[test]
fn try_joinall_counts_a_kill_as_finished_and_waits_for_all() {
    let killed = gevent::spawn(|| gevent::sleep(Duration::from_secs(3600)));
    let fine: Vec<_> = (1..=3).map(|n| gevent::spawn(move || gevent::sleep(ms(n)))).collect();
    gevent::sleep(Duration::ZERO);
    killed.kill_nowait();
    let mut all: Vec<_> = fine.iter().map(|g| g.as_ref().clone()).collect();
    all.push(killed.as_ref().clone());
    assert_eq!(gevent::try_joinall(&all), Ok(()));
    assert!(all.iter().all(|g| g.dead()));
    assert_eq!(killed.exception(), Some(GreenletError::Killed));
    assert_eq!(gevent::try_joinall(Vec::<gevent::GreenletRef>::new()), Ok(()));
    assert_no_waiters();
}

/// test__queue `TestQueue.test_peek`, `test_peek_empty`,
/// `test_peek_multi_greenlet`: a blocking peek sees the item put and leaves
/// it; on an empty queue it times out (a waiter with a timeout), or is
/// LoopExit in the main greenlet with nothing to put.
#[test]
fn peek_waits_for_an_item_and_leaves_it() {
    use gevent::queue::{Empty, Queue};
    let q = Queue::new();
    q.put("hi");
    assert_eq!(q.peek(), "hi");
    assert_eq!(q.get(), "hi");

    let waiter = gevent::spawn({
        let q = q.clone();
        move || q.peek_timeout(ms(10))
    });
    assert_eq!(waiter.get(), Ok(Err(Empty)));
    assert_eq!(q.getters(), 0);

    let q = Queue::new();
    let peeker = gevent::spawn({
        let q = q.clone();
        move || q.peek()
    });
    gevent::sleep(Duration::ZERO);
    assert_eq!(q.getters(), 1);
    q.put(1);
    assert_eq!(peeker.get(), Ok(1));
    assert_eq!(q.peek(), 1);
    assert_eq!(q.len(), 1);

    let empty: Queue<u8> = Queue::new();
    let loop_exit = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| empty.peek()));
    assert!(loop_exit.is_err(), "nothing can ever put: LoopExit");
    assert_no_waiters();
}

/// Peekers wait in line with getters (gevent keeps both in `getters`): an
/// item is shown to the peekers ahead of the getter that takes it, not to
/// those behind it, who see the next item.
#[test]
fn peekers_see_items_in_line_with_getters() {
    use gevent::queue::Queue;
    let q = Queue::new();
    let spawn_peek = |q: &Queue<&'static str>| {
        gevent::spawn({
            let q = q.clone();
            move || q.peek()
        })
    };
    let first = spawn_peek(&q);
    let getter = gevent::spawn({
        let q = q.clone();
        move || q.get()
    });
    let behind = spawn_peek(&q);
    gevent::sleep(Duration::ZERO);
    assert_eq!(q.getters(), 3);
    q.put("x");
    gevent::sleep(Duration::ZERO);
    assert_eq!((first.get(), getter.get()), (Ok("x"), Ok("x")));
    assert!(!behind.dead(), "the getter ahead of it took x");
    assert_eq!(q.len(), 0);
    q.put("y");
    assert_eq!(behind.get(), Ok("y"));
    assert_eq!(q.get_nowait(), Ok("y"));
    assert_no_waiters();
}

/// A getter handed an item and killed before it ran passes the item on:
/// a peeker behind it is shown the item, which stays queued. A peeker
/// killed while shown an item takes nothing from the queue.
#[test]
fn an_item_passed_on_by_a_killed_getter_is_shown_to_the_peeker_behind() {
    use gevent::queue::{LifoQueue, Queue};
    let q = Queue::new();
    let getter = gevent::spawn({
        let q = q.clone();
        move || q.get()
    });
    let peeker = gevent::spawn({
        let q = q.clone();
        move || q.peek()
    });
    gevent::sleep(Duration::ZERO);
    q.put(7);
    getter.kill_nowait();
    assert_eq!(peeker.get(), Ok(7));
    assert_eq!(getter.exception(), Some(GreenletError::Killed));
    assert_eq!(q.len(), 1);

    let shown = gevent::spawn({
        let q = q.clone();
        move || {
            q.get();
            q.peek()
        }
    });
    gevent::sleep(Duration::ZERO);
    q.put(8);
    shown.kill_nowait();
    gevent::sleep(Duration::ZERO);
    assert_eq!(q.get_nowait(), Ok(8));
    assert!(q.is_empty());

    // A LIFO queue shows the item a getter would take when the peeker
    // runs: the newest (gevent's unlock runs once the putter yields).
    let lifo = LifoQueue::new();
    let peeker = gevent::spawn({
        let q = lifo.clone();
        move || q.peek()
    });
    gevent::sleep(Duration::ZERO);
    lifo.put(1);
    lifo.put(2);
    assert_eq!(peeker.get(), Ok(2));
    assert_eq!(lifo.peek(), 2);
    assert_no_waiters();
}

/// gevent's `idle()`: resumes once every other greenlet is blocked (a
/// timer not yet due does not count), idlers together in FIFO order; with
/// nothing else to do it returns (no LoopExit); a killed idler leaves.
#[test]
fn idle_waits_until_nothing_else_can_run() {
    use core_common::Trace;
    let trace = Trace::new();
    let busy = gevent::spawn({
        let t = trace.clone();
        move || {
            for i in 0..3 {
                t.push(format!("busy {i}"));
                gevent::yield_now();
            }
        }
    });
    let sleeper = gevent::spawn({
        let t = trace.clone();
        move || {
            gevent::sleep(Duration::from_secs(3600)); // far from due (an emulator can outlast a short one)
            t.push("slept".into())
        }
    });
    let idlers: Vec<_> = (0..2)
        .map(|i| {
            gevent::spawn({
                let t = trace.clone();
                move || {
                    gevent::idle();
                    t.push(format!("idle {i}"))
                }
            })
        })
        .collect();
    let killed = gevent::spawn(gevent::idle);
    gevent::sleep(Duration::ZERO);
    killed.kill();
    gevent::idle();
    trace.push("main".into());
    assert_eq!(trace.get(), ["busy 0", "busy 1", "busy 2", "idle 0", "idle 1", "main"]);
    assert!(busy.dead() && !sleeper.dead());
    sleeper.kill();
    gevent::joinall(&idlers);
    gevent::idle(); // nothing else at all: returns
    assert_eq!(killed.exception(), Some(GreenletError::Killed));
    assert_no_waiters();
}

// Blocking peek, from this session's review.

/// (From this session's review.) gevent: `q.put(1)` with a getter
/// waiting, then `q.peek()` returns 1 at once (qsize() == 1; the getter
/// has not run): peek sees an item handed to a getter that has not run.
#[test]
fn peek_waits_while_len_is_one_item_handed_to_a_getter() {
    let q: Queue<u32> = Queue::new();
    let getter = gevent::spawn({
        let q = q.clone();
        move || q.get()
    });
    gevent::yield_now(); // the getter waits
    q.put(1);
    assert_eq!(q.len(), 1, "qsize counts the handed item");
    // gevent's peek(): returns 1 at once.
    let seen = q.peek_timeout(ms(50));
    assert_eq!(getter.get(), Ok(1));
    assert_eq!(seen, Ok(1), "peek with len()==1 must not report Empty / wait for a later item");
}

/// Same, unbounded `peek()`: returns 1 (it waited for an item that never
/// came: LoopExit in the main greenlet).
#[test]
fn blocking_peek_with_len_one_never_returns() {
    let q: Queue<u32> = Queue::new();
    let _getter = gevent::spawn({
        let q = q.clone();
        move || q.get()
    });
    gevent::yield_now();
    q.put(1);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.peek()));
    assert_eq!(r.ok(), Some(1), "gevent's peek() returns the item qsize() counts");
}

/// A PriorityQueue peeker sees the item `get` takes next when it runs
/// (gevent's peeker runs `_peek`, the smallest), not the first offered.
#[test]
fn priority_peeker_is_shown_an_item_get_does_not_take_next() {
    let q: PriorityQueue<u32> = PriorityQueue::new();
    let peeker = gevent::spawn({
        let q = q.clone();
        move || q.peek()
    });
    gevent::yield_now();
    q.put(5);
    q.put(1);
    let seen = peeker.get().unwrap();
    assert_eq!(q.peek_nowait(), Ok(1));
    assert_eq!(seen, 1, "peek must return what get would take next (gevent: 1)");
}

/// A peeker in front of a getter on a PriorityQueue sees the item the
/// getter behind it takes.
#[test]
fn priority_peeker_and_getter_disagree() {
    let q: PriorityQueue<u32> = PriorityQueue::new();
    let peeker = gevent::spawn({
        let q = q.clone();
        move || q.peek()
    });
    let getter = gevent::spawn({
        let q = q.clone();
        move || q.get()
    });
    gevent::yield_now();
    q.put(5);
    q.put(1);
    let (p, g) = (peeker.get().unwrap(), getter.get().unwrap());
    assert_eq!(p, g, "peeker saw {p}, the getter behind it took {g} (gevent: both 1)");
}

/// LifoQueue: the same, the newest item.
#[test]
fn lifo_peeker_is_shown_an_item_get_does_not_take_next() {
    let q: LifoQueue<u32> = LifoQueue::new();
    let peeker = gevent::spawn({
        let q = q.clone();
        move || q.peek()
    });
    gevent::yield_now();
    q.put(1);
    q.put(2);
    let seen = peeker.get().unwrap();
    assert_eq!(q.peek_nowait(), Ok(2));
    assert_eq!(seen, 2, "gevent's LifoQueue.peek() returns queue[-1] == 2");
}

/// FIFO sanity: peekers never steal or duplicate; counts stay exact.
#[test]
fn fifo_peekers_do_not_steal_and_counts_are_exact() {
    let q: Queue<u32> = Queue::bounded(2);
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut gs = Vec::new();
    for i in 0..6 {
        let (q, log) = (q.clone(), log.clone());
        gs.push(gevent::spawn(move || {
            if i % 2 == 0 {
                let v = q.peek();
                log.borrow_mut().push(format!("p{i}:{v}"));
            } else {
                let v = q.get();
                log.borrow_mut().push(format!("g{i}:{v}"));
            }
        }));
    }
    gevent::yield_now();
    assert_eq!(q.getters(), 6);
    for v in 10..13 {
        q.put(v);
    }
    gevent::joinall(&gs);
    assert_eq!(*log.borrow(), ["p0:10", "g1:10", "p2:11", "g3:11", "p4:12", "g5:12"]);
    assert_eq!(q.len(), 0);
    assert_eq!(q.getters(), 0);
}

/// A killed peeker leaves no trace; a timed-out one neither.
#[test]
fn killed_and_timed_out_peekers_leave_no_trace() {
    let q: Queue<u32> = Queue::new();
    let p1 = gevent::spawn({
        let q = q.clone();
        move || q.peek()
    });
    let p2 = gevent::spawn({
        let q = q.clone();
        move || q.peek_timeout(Duration::from_secs(60))
    });
    gevent::yield_now();
    q.put(7); // both woken; kill p1 before it runs
    p1.kill();
    assert_eq!(p2.get(), Ok(Ok(7)));
    assert_eq!(q.get_nowait(), Ok(7));
    assert_eq!(q.peek_timeout(ms(1)), Err(Empty));
    assert_eq!(q.getters(), 0);
}

/// (From the mutation round.) A thread ending with a greenlet whose
/// destructor waits: the hub loop still runs while the thread-locals are
/// destroyed, and reads its idle list then (a thread-local that had a
/// destructor made it panic there, and the process abort).
#[test]
fn a_thread_ends_with_a_greenlet_waiting_in_its_destructor() {
    let t = std::thread::spawn(|| {
        gevent::spawn(|| {
            let _g = SleepOnDrop(ms(1));
            gevent::sleep(Duration::from_secs(3600));
        });
        gevent::sleep(ms(1));
        "ended"
    });
    assert_eq!(t.join().unwrap(), "ended");
}
