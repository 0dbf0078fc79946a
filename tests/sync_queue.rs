//! `gevent::queue`: `Queue`, `LifoQueue`, `PriorityQueue`, `Empty`, `Full` —
//! every public method; getters and putters served in FIFO order with no
//! barging; an item (or a free slot) handed to a greenlet that is killed or
//! times out at that moment going to the next one in line (or staying in
//! the queue); a wake-up never landing on a waiter that has left; `close`
//! ending iteration.
//!
//! The API every queue kind shares is checked for each of the three by
//! `common_queue_tests!`; the hand-off semantics on `Queue`.

mod core_common;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Instant;

use core_common::{assert_no_waiters, fire_passed_deadlines, ms, settle, DropGuard, Trace};
use gevent::queue::{Channel, Empty, Full, JoinableQueue, LifoQueue, PriorityQueue, Queue};
use gevent::{with_timeout, Greenlet, GreenletError};

/// Spawns `n` greenlets that each push (their index, what `get` returns)
/// into the trace returned; `get` is cloned for each (it holds a clone of
/// the queue).
fn spawn_getters<T: Clone + 'static>(
    n: usize,
    get: impl Fn() -> T + Clone + 'static,
) -> (Trace<(usize, T)>, Vec<Greenlet<()>>) {
    let trace = Trace::new();
    let gs = (0..n)
        .map(|i| {
            let (get, t) = (get.clone(), trace.clone());
            gevent::spawn(move || t.push((i, get())))
        })
        .collect();
    (trace, gs)
}

/// A `Queue::bounded(1)` holding `item`.
fn full_queue_of_one<T: 'static>(item: T) -> Queue<T> {
    let q = Queue::bounded(1);
    q.put(item);
    q
}

/// Spawns a greenlet per item that puts it into `q`.
fn spawn_putters(q: &Queue<i32>, items: std::ops::RangeInclusive<i32>) -> Vec<Greenlet<()>> {
    items
        .map(|i| {
            let q = q.clone();
            gevent::spawn(move || q.put(i))
        })
        .collect()
}

/// Tests shared by every queue kind; the order of items is checked
/// separately, so these put and take one item at a time where it matters.
macro_rules! common_queue_tests {
    ($m:ident, $q:ident) => {
        mod $m {
            use super::*;

            #[test]
            fn unbounded_basics() {
                let q: $q<u32> = $q::new();
                assert_eq!(q.maxsize(), None);
                assert!(q.is_empty());
                assert!(!q.is_full());
                assert_eq!(q.len(), 0);
                assert_eq!(q.get_nowait(), Err(Empty));
                assert_eq!(q.peek_nowait(), Err(Empty));
                for i in 0..100 {
                    q.put(i);
                }
                q.put_nowait(100).unwrap();
                assert!(q.put_timeout(101, ms(1)).is_ok());
                assert_eq!(q.len(), 102);
                assert!(!q.is_empty());
                assert!(!q.is_full(), "an unbounded queue is never full");
                let mut got: Vec<u32> = (0..102).map(|_| q.get()).collect();
                got.sort_unstable();
                assert_eq!(got, (0..102).collect::<Vec<_>>());
                assert!(q.is_empty());
                assert_eq!((q.getters(), q.putters()), (0, 0));
                assert!(format!("{q:?}").contains(stringify!($q)));
                let d: $q<u8> = $q::default();
                assert!(d.is_empty());
                assert_no_waiters();
            }

            #[test]
            fn one_item_round_trips() {
                let q = $q::new();
                q.put(String::from("a"));
                assert_eq!(q.peek_nowait(), Ok(String::from("a")));
                assert_eq!(q.len(), 1, "peek leaves the item");
                assert_eq!(q.get_nowait(), Ok(String::from("a")));
                q.put_nowait(String::from("b")).unwrap();
                assert_eq!(q.get_timeout(ms(1)), Ok(String::from("b")));
                assert_eq!(q.get_timeout(ms(1)), Err(Empty));
            }

            #[test]
            fn bounded_basics_and_full_gives_the_item_back() {
                let q = $q::bounded(2);
                assert_eq!(q.maxsize(), Some(2));
                q.put(Box::new(1));
                assert!(!q.is_full());
                q.put_nowait(Box::new(2)).unwrap();
                assert!(q.is_full());
                assert_eq!(q.len(), 2);
                match q.put_nowait(Box::new(3)) {
                    Err(Full(item)) => assert_eq!(*item, 3, "the item comes back"),
                    Ok(()) => panic!("a full queue took an item"),
                }
                let t = Instant::now();
                let Err(Full(back)) = q.put_timeout(Box::new(4), ms(3)) else { panic!("a full queue took an item") };
                assert_eq!(*back, 4);
                assert!(t.elapsed() >= ms(3));
                assert_eq!(q.len(), 2);
                assert!(q.get_nowait().is_ok());
                assert!(!q.is_full());
                assert!(q.put_nowait(Box::new(5)).is_ok());
                assert_no_waiters();
                assert_eq!(gevent::hub::stats().timers, 0);
            }

            #[test]
            fn bounded_zero_panics() {
                let err = catch_unwind(|| $q::<u8>::bounded(0)).unwrap_err();
                let msg =
                    err.downcast_ref::<String>().cloned().or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()));
                assert!(msg.unwrap_or_default().contains("maxsize >= 1"));
            }

            #[test]
            fn get_blocks_until_a_put() {
                let q = $q::new();
                let p = q.clone();
                let producer = gevent::spawn(move || {
                    gevent::sleep(ms(2));
                    p.put(42);
                });
                let t = Instant::now();
                assert_eq!(q.get(), 42);
                assert!(t.elapsed() >= ms(2));
                producer.join();
                assert_no_waiters();
            }

            #[test]
            fn get_timeout_empty_after_the_deadline() {
                let q: $q<u8> = $q::new();
                let t = Instant::now();
                assert_eq!(q.get_timeout(ms(3)), Err(Empty));
                assert!(t.elapsed() >= ms(3));
                assert_eq!(q.getters(), 0);
                assert_no_waiters();
                assert_eq!(gevent::hub::stats().timers, 0);
            }

            #[test]
            fn put_blocks_while_full() {
                let q = $q::bounded(1);
                q.put(1);
                let p = q.clone();
                let putter = gevent::spawn(move || {
                    p.put(2);
                    "put"
                });
                settle();
                assert_eq!(q.putters(), 1);
                assert!(!putter.dead());
                assert_eq!(q.get(), 1);
                assert_eq!(putter.get(), Ok("put"));
                assert_eq!(q.get(), 2);
                assert_no_waiters();
            }

            #[test]
            fn getters_served_in_fifo_order() {
                let q = $q::new();
                let q2 = q.clone();
                let (trace, gs) = spawn_getters(4, move || q2.get());
                settle();
                assert_eq!(q.getters(), 4);
                for x in [10, 11, 12, 13] {
                    q.put(x); // one at a time: each goes to the oldest getter
                    gevent::yield_now();
                }
                gevent::joinall(&gs);
                assert_eq!(trace.get(), [(0, 10), (1, 11), (2, 12), (3, 13)]);
                assert_no_waiters();
            }

            #[test]
            fn close_ends_iteration_after_draining() {
                let q = $q::new();
                let p = q.clone();
                let producer = gevent::spawn(move || {
                    for i in 0..5 {
                        p.put(i);
                        gevent::sleep(ms(0));
                    }
                    p.close();
                });
                let mut got: Vec<i32> = Vec::new();
                for x in &q {
                    got.push(x);
                }
                got.sort_unstable();
                assert_eq!(got, [0, 1, 2, 3, 4]);
                producer.join();
                // Closed and empty: iteration ends at once; puts still work.
                assert_eq!((&q).into_iter().next(), None);
                q.put(7);
                assert_eq!((&q).into_iter().collect::<Vec<_>>(), [7]);
                assert_no_waiters();
            }

            #[test]
            fn close_wakes_every_blocked_iterator() {
                let q: $q<u8> = $q::new();
                let gs: Vec<_> = (0..3)
                    .map(|_| {
                        let q = q.clone();
                        gevent::spawn(move || (&q).into_iter().count())
                    })
                    .collect();
                settle();
                assert_eq!(q.getters(), 3);
                q.close();
                for g in &gs {
                    assert_eq!(g.get(), Ok(0));
                }
                assert_no_waiters();
            }

            #[test]
            fn killed_getter_leaves_the_list() {
                let q = $q::new();
                let q2 = q.clone();
                let g = gevent::spawn(move || q2.get());
                settle();
                assert_eq!(q.getters(), 1);
                g.kill();
                assert_eq!(g.exception(), Some(GreenletError::Killed));
                assert_eq!(q.getters(), 0);
                q.put(1);
                assert_eq!(q.len(), 1, "the item is not lost to the dead getter");
                assert_eq!(q.get_nowait(), Ok(1));
                assert_no_waiters();
            }
        }
    };
}

common_queue_tests!(fifo, Queue);
common_queue_tests!(lifo, LifoQueue);
common_queue_tests!(priority, PriorityQueue);

// ---------------------------------------------------------------- order

#[test]
fn queue_is_fifo() {
    let q = Queue::new();
    for x in [3, 1, 2] {
        q.put(x);
    }
    assert_eq!(q.peek_nowait(), Ok(3));
    assert_eq!([q.get(), q.get(), q.get()], [3, 1, 2]);
}

#[test]
fn lifo_queue_is_last_in_first_out() {
    let q = LifoQueue::new();
    for x in [3, 1, 2] {
        q.put(x);
    }
    assert_eq!(q.peek_nowait(), Ok(2));
    assert_eq!([q.get(), q.get(), q.get()], [2, 1, 3]);
    let b = LifoQueue::bounded(2);
    b.put('a');
    b.put('b');
    assert!(b.is_full());
    assert_eq!(b.get(), 'b');
}

#[test]
fn priority_queue_is_smallest_first() {
    let q = PriorityQueue::new();
    for x in [5, 3, 9, 1, 7, 1] {
        q.put(x);
    }
    assert_eq!(q.peek_nowait(), Ok(1));
    let got: Vec<_> = (0..6).map(|_| q.get()).collect();
    assert_eq!(got, [1, 1, 3, 5, 7, 9]);
    // As gevent with (priority, item) tuples.
    let t = PriorityQueue::new();
    t.put((2, "zwei"));
    t.put((0, "null"));
    t.put((1, "eins"));
    assert_eq!(t.get(), (0, "null"));
    assert_eq!(t.get(), (1, "eins"));
    assert_eq!(t.get(), (2, "zwei"));
}

#[test]
fn priority_queue_iteration_until_closed() {
    let q = PriorityQueue::new();
    for x in [4, 2, 3, 1] {
        q.put(x);
    }
    q.close();
    assert_eq!((&q).into_iter().collect::<Vec<_>>(), [1, 2, 3, 4]);
}

#[test]
fn lifo_queue_iteration_until_closed() {
    let q = LifoQueue::new();
    for x in [1, 2, 3] {
        q.put(x);
    }
    q.close();
    assert_eq!((&q).into_iter().collect::<Vec<_>>(), [3, 2, 1]);
}

#[test]
fn empty_and_full_are_errors() {
    assert_eq!(Empty.to_string(), "queue is empty");
    assert_eq!(Full(5).to_string(), "queue is full");
    assert_eq!(format!("{:?}", Full(String::from("secret"))), "Full(..)");
    let e: Box<dyn std::error::Error> = Box::new(Empty);
    assert_eq!(e.to_string(), "queue is empty");
    let f: Box<dyn std::error::Error> = Box::new(Full(1u8));
    assert_eq!(f.to_string(), "queue is full");
    assert_eq!(Empty, <Empty as Default>::default());
    let Full(inner) = Full(vec![1, 2]);
    assert_eq!(inner, [1, 2]);
}

// ---------------------------------------------------------------- hand-off semantics (Queue)

#[test]
fn item_handed_to_a_killed_getter_goes_to_the_next_in_order() {
    let q = Queue::new();
    let q2 = q.clone();
    let (trace, gs) = spawn_getters(3, move || q2.get());
    settle();
    q.put("x"); // handed to 0
    assert_eq!(q.getters(), 2);
    gs[0].kill(); // before it ran: 1 gets "x"
    q.put("y"); // and 2 gets "y", not "x"
    gevent::joinall(&gs);
    assert_eq!(trace.get(), [(1, "x"), (2, "y")]);
    assert!(q.is_empty());
    assert_no_waiters();
}

#[test]
fn items_handed_to_several_getters_one_killed_keep_their_order() {
    let q = Queue::new();
    let q2 = q.clone();
    let (trace, gs) = spawn_getters(4, move || q2.get());
    settle();
    q.put('a'); // -> 0
    q.put('b'); // -> 1
    q.put('c'); // -> 2
    gs[1].kill(); // its promise passes to 3
    gevent::joinall(&gs);
    assert_eq!(trace.get(), [(0, 'a'), (2, 'b'), (3, 'c')]);
    assert_no_waiters();
}

#[test]
fn item_handed_to_a_killed_last_getter_stays_in_the_queue() {
    let q = Queue::new();
    let q2 = q.clone();
    let g = gevent::spawn(move || q2.get());
    settle();
    q.put(1);
    assert_eq!(q.get_nowait(), Err(Empty), "promised to g");
    g.kill();
    assert_eq!(q.len(), 1);
    assert_eq!(q.peek_nowait(), Ok(1), "free again");
    assert_eq!(q.get_nowait(), Ok(1));
    assert_no_waiters();
}

#[test]
fn get_timeout_handed_an_item_as_its_deadline_passes_keeps_it() {
    let q = Queue::new();
    let q2 = q.clone();
    let g = gevent::spawn(move || q2.get_timeout(ms(100)));
    settle();
    q.put(5);
    std::thread::sleep(ms(150)); // the deadline passes while g is ready
    assert_eq!(g.get(), Ok(Ok(5)));
    assert!(q.is_empty());
    assert_no_waiters();
}

#[test]
fn timed_out_scope_handed_an_item_at_that_moment_passes_it_on() {
    let q = Queue::new();
    let trace = Trace::new();
    let (q1, t1) = (q.clone(), trace.clone());
    let doomed = gevent::spawn(move || t1.push(("doomed", with_timeout(ms(100), || q1.get()).ok())));
    let (q2, t2) = (q.clone(), trace.clone());
    let next = gevent::spawn(move || t2.push(("next", Some(q2.get()))));
    settle();
    // The deadline passes unseen, then the hub fires the timeout: `doomed`
    // is due to unwind, queued behind main, still listed as a getter.
    fire_passed_deadlines();
    assert_eq!(q.getters(), 2);
    q.put(9); // handed to `doomed` at the moment it times out
    assert_eq!(q.getters(), 1);
    gevent::joinall([doomed.as_ref(), next.as_ref()]);
    assert_eq!(trace.get(), [("doomed", None), ("next", Some(9))]);
    assert_no_waiters();
}

#[test]
fn timed_out_scope_handed_an_item_with_nobody_next_leaves_it_queued() {
    let q = Queue::new();
    let q1 = q.clone();
    let doomed = gevent::spawn(move || with_timeout(ms(100), || q1.get()).ok());
    settle();
    fire_passed_deadlines();
    q.put(9);
    assert_eq!(doomed.get(), Ok(None));
    assert_eq!(q.len(), 1);
    assert_eq!(q.get_nowait(), Ok(9));
    assert_no_waiters();
}

#[test]
fn a_put_never_goes_to_a_getter_that_timed_out() {
    let q = Queue::new();
    let q1 = q.clone();
    let gone = gevent::spawn(move || q1.get_timeout(ms(2)));
    assert_eq!(gone.get(), Ok(Err(Empty)));
    assert_eq!(q.getters(), 0);
    q.put("kept");
    assert_eq!(q.len(), 1);
    let q2 = q.clone();
    assert_eq!(gevent::spawn(move || q2.get()).get(), Ok("kept"));
    assert_no_waiters();
}

#[test]
fn a_put_never_goes_to_a_getter_that_left_through_with_timeout() {
    let q = Queue::new();
    let (q1, q2) = (q.clone(), q.clone());
    let gone = gevent::spawn(move || with_timeout(ms(2), || q1.get()).ok());
    let stays = gevent::spawn(move || q2.get());
    assert_eq!(gone.get(), Ok(None));
    q.put(3);
    assert_eq!(stays.get(), Ok(3));
    assert_no_waiters();
}

#[test]
fn no_barging_past_a_woken_getter() {
    let q = Queue::new();
    let trace = Trace::new();
    let (q1, t1) = (q.clone(), trace.clone());
    let first = gevent::spawn(move || t1.push(("first", q1.get())));
    settle();
    // Ready before `first` is woken, so it runs before `first`.
    let (q2, t2) = (q.clone(), trace.clone());
    let newcomer = gevent::spawn(move || {
        t2.push(("newcomer nowait", q2.get_nowait().unwrap_or(-1)));
        t2.push(("newcomer", q2.get()));
    });
    q.put(1); // promised to `first`
    assert_eq!(q.len(), 1);
    assert_eq!(q.get_nowait(), Err(Empty), "main cannot take the promised item");
    assert!(!q.is_empty(), "but it is in the queue");
    assert_eq!(q.peek_nowait(), Ok(1), "and peek shows it, as len counts it (gevent's qsize)");
    gevent::yield_now(); // newcomer runs, refused, waits behind `first`
    q.put(2);
    gevent::joinall([first.as_ref(), newcomer.as_ref()]);
    assert_eq!(trace.get(), [("newcomer nowait", -1), ("first", 1), ("newcomer", 2)]);
    assert_no_waiters();
}

#[test]
fn bounded_putters_served_in_fifo_order() {
    let q = full_queue_of_one(0);
    let gs = spawn_putters(&q, 1..=4);
    settle();
    assert_eq!(q.putters(), 4);
    let got: Vec<_> = (0..5).map(|_| q.get()).collect();
    assert_eq!(got, [0, 1, 2, 3, 4]);
    gevent::joinall(&gs);
    assert_no_waiters();
}

#[test]
fn no_barging_past_a_woken_putter() {
    let q = full_queue_of_one("old");
    let q1 = q.clone();
    let putter = gevent::spawn(move || q1.put("waited"));
    settle();
    assert_eq!(q.get_nowait(), Ok("old")); // the free slot is promised to `putter`
    assert!(q.is_full(), "the promised slot is not free");
    match q.put_nowait("barging") {
        Err(Full(back)) => assert_eq!(back, "barging"),
        Ok(()) => panic!("took the slot promised to the woken putter"),
    }
    putter.join();
    assert_eq!(q.get(), "waited");
    assert!(q.is_empty() && !q.is_full());
    assert_no_waiters();
}

#[test]
fn killed_putter_drops_its_item_once_and_leaves() {
    let q = full_queue_of_one(DropGuard(Rc::new(Cell::new(0))));
    let drops = Rc::new(Cell::new(0));
    let (q1, d1) = (q.clone(), drops.clone());
    let putter = gevent::spawn(move || q1.put(DropGuard(d1)));
    settle();
    assert_eq!(q.putters(), 1);
    putter.kill();
    assert_eq!(drops.get(), 1, "the item unwound with its putter");
    assert_eq!(q.putters(), 0);
    assert_eq!(q.len(), 1);
    drop(q.get());
    assert!(q.is_empty());
    assert_no_waiters();
}

#[test]
fn a_putter_handed_a_slot_has_its_item_stored_at_once() {
    // As gevent's `_unlock`: the woken putter's item enters the queue when
    // the slot is handed, so killing the putter before it runs takes
    // nothing back, and the order of puts is kept.
    let q = full_queue_of_one(0);
    let gs = spawn_putters(&q, 1..=3);
    settle();
    assert_eq!(q.get_nowait(), Ok(0)); // the slot goes to putter 1: 1 is stored
    assert!(q.is_full());
    gs[0].kill(); // too late to take 1 back
    let got: Vec<_> = (0..3).map(|_| q.get()).collect();
    assert_eq!(got, [1, 2, 3]);
    gevent::joinall(&gs);
    assert!(q.is_empty());
    assert_no_waiters();
}

#[test]
fn killing_a_woken_putter_leaves_its_stored_item() {
    let q = full_queue_of_one(0);
    let q1 = q.clone();
    let putter = gevent::spawn(move || q1.put(1));
    settle();
    assert_eq!(q.get_nowait(), Ok(0));
    assert!(q.is_full(), "1 took the freed slot at once");
    putter.kill();
    assert_eq!(q.get(), 1);
    assert!(q.put_nowait(2).is_ok());
    assert_eq!(q.get(), 2);
    assert_no_waiters();
}

#[test]
fn put_timeout_handed_a_slot_as_its_deadline_passes_puts() {
    let q = full_queue_of_one(0);
    let q1 = q.clone();
    let putter = gevent::spawn(move || q1.put_timeout(1, ms(100)).is_ok());
    settle();
    assert_eq!(q.get_nowait(), Ok(0));
    std::thread::sleep(ms(150));
    assert_eq!(putter.get(), Ok(true));
    assert_eq!(q.get_nowait(), Ok(1));
    assert_no_waiters();
}

#[test]
fn timed_out_putter_scope_handed_a_slot_at_that_moment_passes_it_on() {
    let q = full_queue_of_one(0);
    let (q1, q2) = (q.clone(), q.clone());
    let doomed = gevent::spawn(move || with_timeout(ms(100), || q1.put(1)).is_ok());
    let next = gevent::spawn(move || q2.put(2));
    settle();
    fire_passed_deadlines();
    assert_eq!(q.putters(), 2);
    assert_eq!(q.get_nowait(), Ok(0)); // the slot goes to `doomed`, which times out
    assert_eq!(q.putters(), 1);
    assert_eq!(doomed.get(), Ok(false));
    next.join();
    assert_eq!(q.get_nowait(), Ok(2));
    assert!(q.is_empty());
    assert_no_waiters();
}

#[test]
fn put_timeout_on_a_full_queue_gives_the_item_back_and_leaves() {
    let q = full_queue_of_one(String::from("in"));
    let t = Instant::now();
    let r = q.put_timeout(String::from("out"), ms(3));
    assert!(t.elapsed() >= ms(3));
    assert!(matches!(r, Err(Full(ref s)) if s == "out"));
    assert_eq!(q.putters(), 0);
    // A later get does not hand the slot to the putter that left.
    assert_eq!(q.get(), "in");
    assert!(!q.is_full());
    assert_no_waiters();
}

#[test]
fn get_after_close_still_waits_for_items() {
    let q = Queue::new();
    q.close();
    assert_eq!(q.get_timeout(ms(2)), Err(Empty));
    let p = q.clone();
    gevent::spawn(move || p.put(1));
    assert_eq!(q.get(), 1);
    assert_no_waiters();
}

#[test]
fn close_wakes_plain_getters_which_keep_waiting() {
    let q = Queue::new();
    let q1 = q.clone();
    let g = gevent::spawn(move || q1.get());
    settle();
    q.close();
    settle();
    assert!(!g.dead(), "a plain get is not ended by close");
    assert_eq!(q.getters(), 1);
    q.put(4);
    assert_eq!(g.get(), Ok(4));
    assert_no_waiters();
}

#[test]
fn close_does_not_reorder_a_promised_item() {
    let q = Queue::new();
    let trace = Trace::new();
    let gs: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|n| {
            let (q, t) = (q.clone(), trace.clone());
            gevent::spawn(move || t.push((n, (&q).into_iter().collect::<Vec<i32>>())))
        })
        .collect();
    settle();
    q.put(1); // promised to "a"
    q.close(); // wakes "b" too
    gevent::joinall(&gs);
    // "a" was first in line when 1 arrived: it gets 1, "b" gets nothing.
    assert_eq!(trace.get(), [("a", vec![1]), ("b", vec![])]);
}

#[test]
fn iteration_blocks_between_items() {
    let q = Queue::new();
    let p = q.clone();
    let producer = gevent::spawn(move || {
        for i in 0..3 {
            gevent::sleep(ms(1));
            p.put(i);
        }
        p.close();
    });
    let t = Instant::now();
    let got: Vec<_> = (&q).into_iter().collect();
    assert_eq!(got, [0, 1, 2]);
    assert!(t.elapsed() >= ms(3));
    producer.join();
    assert_no_waiters();
}

#[test]
fn killed_iterator_leaves_and_the_item_goes_on() {
    let q = Queue::new();
    let trace = Trace::new();
    let (q1, t1) = (q.clone(), trace.clone());
    let a = gevent::spawn(move || {
        for x in &q1 {
            t1.push(("a", x));
        }
    });
    let (q2, t2) = (q.clone(), trace.clone());
    let b = gevent::spawn(move || {
        for x in &q2 {
            t2.push(("b", x));
        }
    });
    settle();
    q.put(1); // -> a
    a.kill(); // passes to b
    q.put(2);
    q.close();
    b.join();
    assert_eq!(trace.get(), [("b", 1), ("b", 2)]);
    assert_no_waiters();
}

#[test]
fn get_from_main_with_nobody_to_put_is_loop_exit() {
    let msg = std::thread::spawn(|| {
        let q: Queue<u8> = Queue::new();
        let err = catch_unwind(AssertUnwindSafe(|| q.get())).unwrap_err();
        assert_eq!(q.getters(), 0);
        assert_no_waiters();
        err.downcast_ref::<String>().cloned().unwrap_or_default()
    })
    .join()
    .unwrap();
    assert!(msg.contains("LoopExit"), "{msg}");
}

#[test]
fn put_from_main_into_a_full_queue_with_nobody_to_get_is_loop_exit() {
    let msg = std::thread::spawn(|| {
        let q = full_queue_of_one(1);
        let err = catch_unwind(AssertUnwindSafe(|| q.put(2))).unwrap_err();
        assert_eq!(q.putters(), 0);
        assert_eq!(q.len(), 1);
        err.downcast_ref::<String>().cloned().unwrap_or_default()
    })
    .join()
    .unwrap();
    assert!(msg.contains("LoopExit"), "{msg}");
}

/// Producers and consumers through a small bounded queue: every item
/// arrives exactly once, each producer's items in its order; the whole run
/// (the interleaving) is the same every time.
fn pipeline_trace() -> Vec<(usize, usize, u32)> {
    let q = Queue::bounded(3);
    let trace = Trace::new();
    let producers: Vec<_> = (0..3u32)
        .map(|p| {
            let q = q.clone();
            gevent::spawn(move || {
                for i in 0..200 {
                    q.put((p, i));
                    if i % 7 == 0 {
                        gevent::yield_now();
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..3usize)
        .map(|c| {
            let (q, t) = (q.clone(), trace.clone());
            gevent::spawn(move || {
                for (p, i) in &q {
                    t.push((c, p as usize, i));
                    if i % 5 == 0 {
                        gevent::yield_now();
                    }
                }
            })
        })
        .collect();
    gevent::joinall(&producers);
    q.close();
    gevent::joinall(&consumers);
    assert_no_waiters();
    trace.get()
}

#[test]
fn bounded_pipeline_loses_nothing_and_is_deterministic() {
    let first = pipeline_trace();
    assert_eq!(first.len(), 600);
    for p in 0..3 {
        // Items are handed out in order, but several consumers record them
        // in the order the consumers run: compare as sets.
        let mut mine: Vec<u32> = first.iter().filter(|(_, q, _)| *q == p).map(|&(_, _, i)| i).collect();
        mine.sort_unstable();
        assert_eq!(mine, (0..200).collect::<Vec<_>>(), "producer {p}'s items, once each");
    }
    assert!((0..3).all(|c| first.iter().any(|&(cc, _, _)| cc == c)), "every consumer got work");
    assert_eq!(pipeline_trace(), first, "same program, same interleaving");
}

#[test]
fn newcomer_takes_a_free_item_not_the_one_handed_to_a_woken_getter() {
    let q = Queue::new();
    let q1 = q.clone();
    let first = gevent::spawn(move || q1.get());
    settle();
    q.put(1); // handed to `first` (it was waiting when 1 arrived)
    q.put(2); // nobody waits: free
              // FIFO: the older getter gets the older item; the newcomer the free one.
    assert_eq!(q.peek_nowait(), Ok(1), "peek shows the queue's front: the handed item");
    assert_eq!(q.get_nowait(), Ok(2));
    assert_eq!(first.get(), Ok(1));
    assert_no_waiters();
}

// ---------------------------------------------------------------- JoinableQueue

/// A worker greenlet that takes `n` items, tracing each, and marks each done.
fn spawn_worker(q: &JoinableQueue<i32>, n: usize, trace: &Trace<String>) -> Greenlet<()> {
    let (q, t) = (q.clone(), trace.clone());
    gevent::spawn(move || {
        for _ in 0..n {
            let item = q.get();
            t.push(format!("got {item}"));
            q.task_done();
        }
    })
}

#[test]
fn joinable_queue_join_waits_for_every_task() {
    let q = JoinableQueue::new();
    let trace = Trace::new();
    let worker = spawn_worker(&q, 3, &trace);
    for i in 0..3 {
        q.put(i);
    }
    assert_eq!(q.unfinished(), 3);
    q.join();
    trace.push("joined".to_string());
    assert_eq!(trace.get(), ["got 0", "got 1", "got 2", "joined"]);
    assert_eq!(q.unfinished(), 0);
    worker.join();
    assert_no_waiters();
}

/// A `JoinableQueue::bounded(1)` holding 0, and a greenlet waiting to put 1.
fn full_with_a_waiting_putter() -> (JoinableQueue<i32>, Greenlet<()>) {
    let q = JoinableQueue::bounded(1);
    q.put(0);
    let putter = gevent::spawn({
        let q = q.clone();
        move || q.put(1)
    });
    settle();
    (q, putter)
}

/// A putter waiting on a full queue: a getter's take moves its item in at
/// once, before the putter resumes. The task is counted then, so the worker
/// can mark it done before the putter runs (this used to panic: the count
/// was raised only when `put` returned), and `join` waits for it.
#[test]
fn a_waiting_putters_task_counts_from_when_its_item_moves_in() {
    let (q, putter) = full_with_a_waiting_putter();
    assert_eq!(q.putters(), 1);
    assert_eq!(q.unfinished(), 1, "a waiting item is no task yet");
    let trace = Trace::new();
    let worker = spawn_worker(&q, 2, &trace);
    let joiner = gevent::spawn({
        let (q, t) = (q.clone(), trace.clone());
        move || {
            q.join();
            t.push("joined".to_string());
        }
    });
    gevent::joinall([putter.as_ref(), worker.as_ref(), joiner.as_ref()]);
    assert_eq!(worker.get(), Ok(()), "the worker's task_done calls all had a task");
    assert_eq!(trace.get(), ["got 0", "got 1", "joined"]);
    assert_eq!(q.unfinished(), 0);
    assert_no_waiters();
}

/// A putter killed after its item moved in (before it resumed): the item is
/// in the queue, so its task counts.
#[test]
fn a_putter_killed_after_its_item_moved_in_leaves_its_task() {
    let (q, putter) = full_with_a_waiting_putter();
    assert_eq!(q.get(), 0); // moves 1 in
    putter.kill();
    assert_eq!(q.len(), 1);
    assert_eq!(q.unfinished(), 2);
    q.task_done();
    assert_eq!(q.get(), 1);
    q.task_done();
    assert_eq!(q.unfinished(), 0);
    q.join();
}

/// A putter that gives up (timeout, kill) before its item moved in adds no
/// task, and a `join` meanwhile does not wait for it.
#[test]
fn a_put_that_never_happened_adds_no_task() {
    let q = JoinableQueue::bounded(1);
    q.put(0);
    assert!(matches!(q.put_timeout(1, ms(1)), Err(Full(1))));
    assert!(matches!(q.put_nowait(2), Err(Full(2))));
    let putter = gevent::spawn({
        let q = q.clone();
        move || q.put(3)
    });
    settle();
    putter.kill();
    assert_eq!(q.unfinished(), 1);
    assert_eq!(q.get(), 0);
    q.task_done();
    q.join();
    assert!(q.is_empty());
    assert_no_waiters();
}

#[test]
#[should_panic(expected = "task_done() called more times than items were put")]
fn joinable_queue_task_done_without_a_task_panics() {
    let q: JoinableQueue<i32> = JoinableQueue::new();
    q.put(1);
    q.task_done();
    q.task_done();
}

#[test]
fn joinable_queue_iteration_until_closed() {
    let q = JoinableQueue::new();
    let producer = gevent::spawn({
        let q = q.clone();
        move || {
            for i in 0..4 {
                q.put(i);
                gevent::yield_now();
            }
            q.close();
        }
    });
    let mut got = Vec::new();
    for item in &q {
        got.push(item);
        q.task_done();
    }
    assert_eq!(got, [0, 1, 2, 3]);
    assert_eq!((q.unfinished(), q.getters(), q.putters()), (0, 0, 0));
    producer.join();
}

// ---------------------------------------------------------------- Channel

#[test]
fn a_channel_put_waits_for_a_getter() {
    let ch = Channel::new();
    let trace = Trace::new();
    let putter = gevent::spawn({
        let (ch, t) = (ch.clone(), trace.clone());
        move || {
            ch.put('a');
            t.push("put returned");
        }
    });
    settle();
    assert_eq!((ch.putters(), ch.balance(), ch.len()), (1, 1, 0));
    assert!(ch.is_empty() && ch.is_full());
    assert!(trace.get().is_empty(), "no getter yet: the put waits");
    assert_eq!(ch.get(), 'a');
    putter.join();
    assert_eq!(trace.get(), ["put returned"]);
    assert_no_waiters();
}

#[test]
fn channel_putters_and_getters_are_served_in_order() {
    let ch = Channel::new();
    let putters: Vec<_> = (0..3)
        .map(|i| {
            let ch = ch.clone();
            gevent::spawn(move || ch.put(i))
        })
        .collect();
    settle();
    let got: Vec<i32> = (0..3).map(|_| ch.get()).collect();
    assert_eq!(got, [0, 1, 2]);
    gevent::joinall(&putters);

    let ch2 = ch.clone();
    let (trace, getters) = spawn_getters(3, move || ch2.get());
    settle();
    assert_eq!(ch.balance(), -3);
    for i in 10..13 {
        ch.put(i);
    }
    gevent::joinall(&getters);
    assert_eq!(trace.get(), [(0, 10), (1, 11), (2, 12)]);
    assert_no_waiters();
}

/// gevent's `put_nowait` is `put(item, block=False)`: handing the item to
/// a waiting getter, it switches, so the getter runs before the putter
/// goes on, as after a blocking `put`.
#[test]
fn a_channel_put_nowait_resumes_after_the_getter_it_served() {
    let ch = Channel::new();
    let trace = Trace::new();
    let getter = gevent::spawn({
        let (ch, trace) = (ch.clone(), trace.clone());
        move || trace.push(format!("got {}", ch.get()))
    });
    settle();
    assert_eq!(ch.put_nowait(5), Ok(()));
    trace.push("putter on".to_owned());
    assert_eq!(trace.get(), ["got 5", "putter on"]);
    getter.join();
    assert!(matches!(ch.put_nowait(6), Err(Full(6))), "nobody waits any more");
    assert_no_waiters();
}

#[test]
fn channel_nowait_and_timeout_forms_need_a_partner_now() {
    let ch = Channel::new();
    assert!(matches!(ch.put_nowait(1), Err(Full(1))), "nobody waits to get");
    assert_eq!(ch.get_nowait(), Err(Empty), "nobody waits to put");
    assert!(matches!(ch.put_timeout(2, ms(1)), Err(Full(2))));
    assert_eq!(ch.get_timeout(ms(1)), Err(Empty));
    let putter = gevent::spawn({
        let ch = ch.clone();
        move || ch.put(3)
    });
    settle();
    assert_eq!(ch.get_nowait(), Ok(3), "a waiting putter hands over at once");
    putter.join();
    assert_no_waiters();
}

/// `Channel::peek_nowait` shows what `get_nowait` would take: the oldest
/// waiting putter's item, which stays with its putter; a putter about to
/// unwind is passed over, as `get_nowait` passes it over.
#[test]
fn a_channel_peek_shows_the_item_get_nowait_would_take() {
    let ch = Channel::new();
    assert_eq!(ch.maxsize(), Some(0));
    assert_eq!(ch.peek_nowait(), Err(Empty));
    let putters: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|item| {
            let ch = ch.clone();
            gevent::spawn(move || ch.put(item))
        })
        .collect();
    settle();
    assert_eq!((ch.peek_nowait(), ch.peek_nowait()), (Ok("a"), Ok("a")), "a peek takes nothing");
    assert_eq!(ch.putters(), 3);
    putters[0].kill_nowait(); // about to unwind: its item is not on offer
    assert_eq!(ch.peek_nowait(), Ok("b"));
    assert_eq!(ch.get_nowait(), Ok("b"));
    assert_eq!(ch.peek_nowait(), Ok("c"));
    assert_eq!(ch.get_nowait(), Ok("c"));
    assert_eq!(ch.peek_nowait(), Err(Empty));
    for p in &putters {
        p.join();
    }
    assert_eq!(ch.peek_nowait(), Err(Empty), "the killed putter took its item along");
    assert_no_waiters();
}

#[test]
fn a_killed_channel_putter_hands_nothing_over() {
    let ch = Channel::new();
    let dropped = Rc::new(Cell::new(0));
    let putter = gevent::spawn({
        let (ch, d) = (ch.clone(), dropped.clone());
        move || ch.put(DropGuard(d))
    });
    settle();
    putter.kill();
    assert_eq!(dropped.get(), 1, "the item went with the unwinding putter");
    assert_eq!(ch.putters(), 0);
    assert!(ch.get_nowait().is_err());
    assert_no_waiters();
}

/// A getter waiting on a `PriorityQueue` or `LifoQueue` takes, when it
/// runs, what gevent's getter takes then: the smallest / the newest item,
/// not the first one put after it began to wait.
#[test]
fn a_waiting_getter_takes_the_smallest_or_newest_when_it_runs() {
    let pq = PriorityQueue::new();
    let q = pq.clone();
    let g = gevent::spawn(move || q.get());
    settle();
    pq.put(5);
    pq.put(1);
    assert_eq!(g.get(), Ok(1));
    assert_eq!(pq.get_nowait(), Ok(5));

    let lq = LifoQueue::new();
    let q = lq.clone();
    let g = gevent::spawn(move || q.get());
    settle();
    lq.put(1);
    lq.put(2);
    lq.put(3);
    assert_eq!(g.get(), Ok(3));
    assert_eq!((lq.get_nowait(), lq.get_nowait()), (Ok(2), Ok(1)));
}

/// An item handed to a `LifoQueue` getter killed before it took it goes
/// back under the newer items (it is the oldest), as gevent's queue holds
/// them.
#[test]
fn an_item_given_back_to_a_lifo_queue_is_its_oldest() {
    let lq = LifoQueue::new();
    let q = lq.clone();
    let g = gevent::spawn(move || q.get());
    settle();
    lq.put(1); // handed to g
    lq.put(2);
    g.kill();
    assert_eq!((lq.get_nowait(), lq.get_nowait()), (Ok(2), Ok(1)));
}

/// A `Channel` whose only getter is about to unwind (killed, not run yet)
/// has no getter to take an item: `put_nowait` fails and `put` waits (it
/// used to store the item and return).
#[test]
fn a_channel_getter_about_to_unwind_takes_nothing() {
    let ch = Channel::new();
    let c = ch.clone();
    let g = gevent::spawn(move || c.get());
    settle();
    g.kill_nowait();
    assert!(matches!(ch.put_nowait(7), Err(Full(7))));
    assert!(matches!(ch.put_timeout(8, ms(2)), Err(Full(8))));
    g.join();
    assert_eq!((ch.len(), ch.get_nowait()), (0, Err(Empty)));
    assert_no_waiters();
}

/// A timed `get` woken by `close` (no item) waits on only for what is left
/// of its time, however often the queue is closed meanwhile.
#[test]
fn a_timed_get_woken_by_close_keeps_its_deadline() {
    let q: Queue<u32> = Queue::new();
    let closes = Rc::new(Cell::new(0));
    let closer = gevent::spawn({
        let (q, closes) = (q.clone(), closes.clone());
        move || {
            for _ in 0..10 {
                gevent::sleep(ms(10));
                q.close();
                closes.set(closes.get() + 1);
            }
        }
    });
    let t = Instant::now();
    assert_eq!(q.get_timeout(ms(25)), Err(Empty));
    let took = t.elapsed();
    assert!(took >= ms(25), "waited {took:?} for a 25 ms get");
    // Counted in closes, not in time (a loaded machine is late for both):
    // the closes come at least 10 ms apart, the first 10 ms after the get
    // began, so its deadline comes before the third. Restarting at each
    // close, it would see all ten.
    let seen = closes.get();
    assert!(seen <= 2, "the 25 ms get returned after {seen} closes 10 ms apart ({took:?})");
    closer.join();
}

/// A getter that once caught a panic of its own is not unwinding: killed
/// and not run yet, it takes no item from a `Channel` (a stale count made
/// it look like a greenlet blocked in a destructor, which stays served).
#[test]
fn a_killed_channel_getter_that_once_caught_a_panic_takes_nothing() {
    let ch = Channel::new();
    let c = ch.clone();
    let g = gevent::spawn(move || {
        let _ = catch_unwind(|| panic!("caught (expected in this test)"));
        c.get()
    });
    settle();
    g.kill_nowait();
    assert!(matches!(ch.put_nowait(7), Err(Full(7))));
    g.join();
    assert_eq!(ch.len(), 0);
}

/// Several getters waiting on a `PriorityQueue` / `LifoQueue`: each takes,
/// when it runs, the smallest / newest item then in the queue, as gevent's
/// getters do; items promised to a getter that leaves stay for the next.
#[test]
fn several_waiting_getters_take_in_queue_order_when_they_run() {
    let pq = PriorityQueue::new();
    let q = pq.clone();
    let (trace, gs) = spawn_getters(2, move || q.get());
    settle();
    pq.put(5);
    pq.put(3);
    gevent::joinall(&gs);
    assert_eq!(trace.get(), [(0, 3), (1, 5)]);

    let lq = LifoQueue::new();
    let q = lq.clone();
    let (trace, gs) = spawn_getters(2, move || q.get());
    settle();
    for c in ['a', 'b', 'c'] {
        lq.put(c);
    }
    gevent::joinall(&gs);
    assert_eq!(trace.get(), [(0, 'c'), (1, 'b')]);
    assert_eq!(lq.get_nowait(), Ok('a'));

    let pq = PriorityQueue::new();
    let q = pq.clone();
    let (trace, gs) = spawn_getters(2, move || q.get());
    settle();
    pq.put(5); // promised to getter 0
    gs[0].kill(); // its promise passes to getter 1
    pq.put(9);
    gevent::joinall(&gs);
    assert_eq!(trace.get(), [(1, 5)]);
    assert_eq!((pq.len(), pq.get_nowait()), (1, Ok(9)));
    assert_no_waiters();
}
