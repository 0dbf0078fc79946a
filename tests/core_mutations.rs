//! Behaviours first covered when hand mutation testing showed that a bug
//! there would go unnoticed: a forgotten deferred timeout leaving its
//! greenlet servable, joiners woken after links, main's greenlet-local
//! values dropped at thread exit, and `joinall_timeout` bounding the whole
//! wait.

mod core_common;

use std::time::Duration;

use core_common::{ms, SleepOnDrop};
use gevent::with_timeout;

#[test]
fn a_forgotten_deferred_timeout_leaves_the_greenlet_servable() {
    // The scope's timeout fires while a panic unwinds through a sleeping
    // destructor inside it (deferred), and the scope ends: the greenlet,
    // waiting on a queue afterwards, must be handed the next item.
    let q: gevent::queue::Queue<u32> = gevent::queue::Queue::new();
    let g = gevent::spawn({
        let q = q.clone();
        move || {
            let r = std::panic::catch_unwind(|| {
                with_timeout(ms(5), || {
                    let _d = SleepOnDrop(ms(20));
                    panic!("leaves the scope (expected)");
                })
            });
            assert!(r.is_err());
            q.get()
        }
    });
    assert!(with_timeout(Duration::from_secs(10), || while q.getters() == 0 {
        gevent::sleep(ms(1));
    })
    .is_ok());
    q.put(7);
    assert!(g.join_timeout(Duration::from_secs(10)), "the waiter was passed over");
    assert_eq!(g.get(), Ok(7));
}

#[test]
fn joiners_wake_after_the_links_ran() {
    let ran = std::rc::Rc::new(std::cell::Cell::new(false));
    let g = gevent::spawn(|| 5);
    g.link({
        let ran = ran.clone();
        move |_| ran.set(true)
    });
    g.join();
    assert!(ran.get(), "the joiner woke before the link ran");
}

#[test]
fn main_values_of_a_surviving_local_are_dropped_at_thread_exit() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    std::thread::spawn(move || {
        let local: gevent::local::Local<Option<core_common::SendGuard>> = gevent::local::Local::new();
        local.with(|v| *v = Some(core_common::SendGuard(d)));
        gevent::spawn(|| ()).join();
        // The handle outlives the thread's code (as in a thread_local or a
        // static would): main's value goes with the hub's teardown.
        std::mem::forget(local);
    })
    .join()
    .unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 1, "main's value outlived its thread");
}

#[test]
fn joinall_timeout_bounds_the_whole_wait() {
    // One bound for all: 300 ms in total, not 300 ms per greenlet (which
    // would be 250 + 300 here).
    let late = gevent::spawn(|| gevent::sleep(ms(250)));
    let never = gevent::spawn(|| gevent::sleep(Duration::from_secs(3600)));
    let t = std::time::Instant::now();
    let done = gevent::joinall_timeout([late.as_ref(), never.as_ref()], ms(300));
    let took = t.elapsed();
    assert_eq!(done, vec![late.as_ref().clone()]);
    assert!(took >= ms(300) && took < ms(500), "took {took:?} for a 300 ms bound");
    never.kill();
}
