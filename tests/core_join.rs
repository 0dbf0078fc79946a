//! Waiting for greenlets and reading their outcome: `join`,
//! `join_timeout`, `get`, `get_timeout`, `into_result`, `value`, `joinall`,
//! `joinall_timeout`, and `link` callbacks.

mod core_common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use core_common::{ms, DropGuard, Trace};
use gevent::{Greenlet, GreenletError, GreenletRef};

#[test]
fn join_waits_for_death() {
    let g = gevent::spawn(|| gevent::sleep(ms(5)));
    let t = Instant::now();
    g.join();
    assert!(t.elapsed() >= ms(5));
    assert!(g.dead());
    g.join(); // joining a dead greenlet returns at once
    g.as_ref().join();
}

#[test]
fn join_timeout_reports_whether_it_died() {
    let g = gevent::spawn(|| {
        gevent::sleep(ms(30));
        1
    });
    let t = Instant::now();
    assert!(!g.join_timeout(ms(5)));
    assert!(t.elapsed() >= ms(5));
    assert!(!g.dead(), "a join timeout does not hurt the target");
    assert!(g.as_ref().join_timeout(ms(5_000)));
    assert_eq!(g.get(), Ok(1));
    assert!(g.join_timeout(Duration::ZERO), "dead: true at once");
    assert_eq!(gevent::hub::stats().timers, 0, "join timers are cancelled");
}

#[test]
fn joiners_wake_in_fifo_order() {
    let target = gevent::spawn(|| gevent::sleep(ms(2)));
    let trace = Trace::new();
    let js: Vec<Greenlet<()>> = (0..5)
        .map(|i| {
            let (t, tg) = (trace.clone(), target.clone());
            gevent::spawn(move || {
                tg.join();
                t.push(i);
            })
        })
        .collect();
    gevent::joinall(&js);
    assert_eq!(trace.get(), [0, 1, 2, 3, 4]);
}

#[test]
fn get_returns_clones_of_the_value() {
    let g = gevent::spawn(|| vec![1, 2, 3]);
    assert_eq!(g.get(), Ok(vec![1, 2, 3]));
    assert_eq!(g.get(), Ok(vec![1, 2, 3]));
    assert_eq!(g.value(), Some(vec![1, 2, 3]));
    assert_eq!(g.clone().get(), Ok(vec![1, 2, 3]));
}

#[test]
fn get_timeout_gives_timeout_while_running() {
    let g = gevent::spawn(|| {
        gevent::sleep(ms(30));
        "done"
    });
    assert_eq!(g.get_timeout(ms(2)), Err(GreenletError::Timeout));
    assert!(!g.dead());
    assert_eq!(g.exception(), None, "a get timeout is not the greenlet's exception");
    assert_eq!(g.get_timeout(ms(5_000)), Ok("done"));
    let k = gevent::spawn(|| gevent::sleep(ms(100)));
    k.kill();
    assert_eq!(k.get_timeout(ms(1)), Err(GreenletError::Killed));
}

#[test]
fn value_is_none_until_dead_with_a_value() {
    let g = gevent::spawn(|| {
        gevent::yield_now();
        9
    });
    assert_eq!(g.value(), None);
    gevent::yield_now();
    assert_eq!(g.value(), None);
    g.join();
    assert_eq!(g.value(), Some(9));
    let p = gevent::spawn(|| -> u32 { panic!("no value") });
    p.join();
    assert_eq!(p.value(), None);
}

#[test]
fn into_result_moves_the_value_out() {
    struct NotClone(u32);
    let g = gevent::spawn(|| NotClone(3));
    let other = g.clone();
    let v = g.into_result().map(|n| n.0);
    assert_eq!(v, Ok(3));
    assert!(other.dead());
    assert!(other.successful());
    // Another handle sees no value any more.
    let g2 = gevent::spawn(|| String::from("moved"));
    let witness = g2.clone();
    assert_eq!(g2.into_result(), Ok("moved".to_string()));
    assert!(witness.dead());
    assert_eq!(witness.value(), None, "the value was moved out by into_result");
}

#[test]
fn into_result_of_failed_greenlets() {
    let p = gevent::spawn(|| -> u8 { panic!("bad") });
    assert_eq!(p.into_result(), Err(GreenletError::Panicked("bad".into())));
    let k = gevent::spawn(|| gevent::sleep(ms(1000)));
    let k2 = k.clone();
    gevent::yield_now();
    k2.kill();
    assert_eq!(k.into_result(), Err(GreenletError::Killed));
}

#[test]
fn an_unread_value_is_dropped() {
    let drops = Rc::new(Cell::new(0));
    // No handle left when it returns: dropped at once.
    let d = drops.clone();
    drop(gevent::spawn(move || DropGuard(d)));
    gevent::yield_now();
    assert_eq!(drops.get(), 1);
    // A handle keeps the value until the last handle goes.
    let d = drops.clone();
    let g = gevent::spawn(move || DropGuard(d));
    let g2 = g.clone();
    g.join();
    assert_eq!(drops.get(), 1);
    drop(g);
    assert_eq!(drops.get(), 1);
    drop(g2);
    assert_eq!(drops.get(), 2);
}

#[test]
fn joinall_waits_for_every_greenlet_of_mixed_types() {
    let a = gevent::spawn(|| {
        gevent::sleep(ms(3));
        1u8
    });
    let b = gevent::spawn(|| "b");
    let c = Greenlet::spawn(|| gevent::sleep(ms(1)));
    gevent::joinall([a.as_ref(), b.as_ref(), c.as_ref()]);
    assert!(a.dead() && b.dead() && c.dead());
    // Owned refs, a Vec of typed handles, an empty list.
    let refs: Vec<GreenletRef> = (0..3).map(|_| gevent::spawn(gevent::yield_now).as_ref().clone()).collect();
    gevent::joinall(refs.clone());
    assert!(refs.iter().all(|g| g.dead()));
    gevent::joinall(Vec::<GreenletRef>::new());
}

#[test]
fn joinall_timeout_returns_only_the_finished_ones() {
    let a = gevent::spawn(|| 1);
    let slow = gevent::spawn(|| gevent::sleep(ms(10_000)));
    let c = gevent::spawn(|| {
        gevent::sleep(ms(1));
        3
    });
    let d = Greenlet::new(|| 4); // never started
    let t = Instant::now();
    // Far longer than `c`'s 1 ms: `c` arms its sleep after this wait, later
    // still if the thread is preempted in between.
    let done = gevent::joinall_timeout([a.as_ref(), slow.as_ref(), c.as_ref(), d.as_ref()], ms(200));
    assert!(t.elapsed() >= ms(200));
    assert_eq!(done, vec![a.as_ref().clone(), c.as_ref().clone()], "finished ones, in the order given");
    assert!(!slow.dead());
    let all = gevent::joinall_timeout([a.as_ref(), c.as_ref()], Duration::from_secs(10));
    assert_eq!(all.len(), 2);
    slow.kill();
    d.kill();
    assert!(gevent::joinall_timeout([slow.as_ref(), d.as_ref()], Duration::ZERO).len() == 2);
}

#[test]
fn link_runs_once_after_death_with_the_greenlet() {
    let hits = Rc::new(Cell::new(0));
    let seen = Rc::new(Cell::new(0u64));
    let g = gevent::spawn(|| gevent::sleep(ms(2)));
    let (h, s) = (hits.clone(), seen.clone());
    g.link(move |r| {
        assert!(r.dead(), "links run after death");
        s.set(r.id());
        h.set(h.get() + 1);
    });
    gevent::yield_now();
    assert_eq!(hits.get(), 0);
    g.join();
    gevent::sleep(ms(2));
    assert_eq!(hits.get(), 1);
    assert_eq!(seen.get(), g.id());
    gevent::sleep(ms(2));
    assert_eq!(hits.get(), 1, "once");
}

#[test]
fn links_run_after_the_greenlets_that_were_already_ready() {
    let trace = Trace::new();
    let t = trace.clone();
    let a = gevent::spawn(move || t.push("a"));
    let t = trace.clone();
    a.link(move |_| t.push("link a"));
    let t = trace.clone();
    let b = gevent::spawn(move || t.push("b"));
    let t = trace.clone();
    let c = gevent::spawn(move || t.push("c"));
    gevent::joinall([&a, &b, &c]);
    gevent::yield_now();
    assert_eq!(trace.get(), ["a", "b", "c", "link a"]);
}

#[test]
fn links_run_in_registration_order_and_each_once() {
    let trace = Trace::new();
    let g = gevent::spawn(|| ());
    for i in 0..4 {
        let t = trace.clone();
        g.link(move |_| t.push(i));
    }
    let t = trace.clone();
    g.as_ref().link(move |_| t.push(99));
    g.join();
    gevent::yield_now();
    gevent::yield_now();
    assert_eq!(trace.get(), [0, 1, 2, 3, 99]);
}

#[test]
fn linking_a_dead_greenlet_schedules_the_callback() {
    let hits = Rc::new(Cell::new(0));
    let g = gevent::spawn(|| ());
    g.join();
    gevent::yield_now();
    let h = hits.clone();
    g.link(move |_| h.set(h.get() + 1));
    assert_eq!(hits.get(), 0, "not run synchronously");
    let h = hits.clone();
    g.link(move |_| h.set(h.get() + 10));
    gevent::yield_now();
    assert_eq!(hits.get(), 11);
    gevent::yield_now();
    assert_eq!(hits.get(), 11);
}

#[test]
fn links_fire_for_panicked_and_killed_greenlets() {
    let trace = Trace::new();
    let p = gevent::spawn(|| panic!("linked panic"));
    let t = trace.clone();
    p.link(move |r| t.push(format!("p {:?}", r.exception())));
    let k = gevent::spawn(|| gevent::sleep(ms(1000)));
    let t = trace.clone();
    k.link(move |r| t.push(format!("k {:?}", r.exception())));
    gevent::yield_now();
    k.kill();
    p.join();
    gevent::sleep(ms(1));
    let mut got = trace.get();
    got.sort();
    assert_eq!(
        got,
        [
            format!("k {:?}", Some(GreenletError::Killed)),
            format!("p {:?}", Some(GreenletError::Panicked("linked panic".into())))
        ]
    );
}

#[test]
fn a_link_may_spawn_and_wake_greenlets() {
    let trace = Trace::new();
    let g = gevent::spawn(|| 5);
    let t = trace.clone();
    g.link(move |_| {
        let t2 = t.clone();
        gevent::spawn(move || t2.push("spawned by link"));
        t.push("link");
    });
    g.join();
    gevent::yield_now();
    gevent::yield_now();
    assert_eq!(trace.get(), ["link", "spawned by link"]);
}

#[test]
fn a_link_may_capture_the_greenlets_own_handle() {
    let seen = Rc::new(Cell::new(0));
    let g = gevent::spawn(|| 8);
    let (g2, s) = (g.clone(), seen.clone());
    g.link(move |_| s.set(g2.value().unwrap()));
    drop(g);
    gevent::yield_now(); // it runs and dies; its link is queued behind us
    gevent::yield_now(); // the link runs
    assert_eq!(seen.get(), 8);
}
