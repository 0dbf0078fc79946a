//! Calls a port of gevent code reaches for: `kill(timeout=)`,
//! `link_value` / `link_exception`, `JoinableQueue.join(timeout)`, and a
//! timed-out scope turned into an `io::Error` with `?`.

mod core_common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use core_common::{ms, SleepOnDrop};
use gevent::queue::JoinableQueue;
use gevent::GreenletError;

#[test]
fn kill_timeout_waits_at_most_its_bound() {
    // An ordinary greenlet dies at once.
    let g = gevent::spawn(|| gevent::sleep(Duration::from_secs(3600)));
    gevent::sleep(Duration::ZERO);
    assert!(g.kill_timeout(ms(500)));
    assert_eq!(g.get(), Err(GreenletError::Killed));
    // One whose destructor blocks 50 ms while it unwinds: not dead after
    // 10 ms, dead within a generous bound.
    let g = gevent::spawn(|| {
        let _slow = SleepOnDrop(ms(1000));
        gevent::sleep(Duration::from_secs(3600));
    });
    gevent::sleep(Duration::ZERO);
    let t = Instant::now();
    assert!(!g.kill_timeout(ms(10)), "dead before its destructor ended");
    // Far below the destructor's second (a stalled machine may add much).
    assert!(t.elapsed() < ms(700), "waited for the destructor: {:?}", t.elapsed());
    assert!(g.join_timeout(Duration::from_secs(5)));
    // A greenlet not yet run dies at once.
    let g = gevent::spawn(|| ());
    assert!(g.kill_timeout(Duration::ZERO));
}

#[test]
fn link_value_and_link_exception_run_on_their_outcome_only() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let ok = gevent::spawn(|| 1);
    let boom = gevent::spawn(|| -> i32 { panic!("boom") });
    let killed = gevent::spawn(|| {
        gevent::sleep(Duration::from_secs(3600));
        2
    });
    for (name, g) in [("ok", &ok), ("boom", &boom), ("killed", &killed)] {
        let s = seen.clone();
        g.link_value(move |_| s.borrow_mut().push(format!("{name}: value")));
        let s = seen.clone();
        g.link_exception(move |g| s.borrow_mut().push(format!("{name}: {:?}", g.exception().map(|e| e.to_string()))));
    }
    gevent::sleep(Duration::ZERO);
    killed.kill();
    gevent::joinall([ok.as_ref(), boom.as_ref(), killed.as_ref()]);
    gevent::sleep(Duration::ZERO); // links run from the hub
    let seen = seen.borrow();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.contains(&"ok: value".to_owned()));
    assert!(seen.iter().any(|s| s.starts_with("boom: Some(") && s.contains("boom")), "{seen:?}");
    assert!(seen.iter().any(|s| s.starts_with("killed: Some(")), "{seen:?}");
    // Linked after death: scheduled at once, still by outcome.
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    ok.link_exception(move |_| r.set(r.get() + 10));
    let r = ran.clone();
    ok.link_value(move |_| r.set(r.get() + 1));
    gevent::sleep(Duration::ZERO);
    assert_eq!(ran.get(), 1);
}

#[test]
fn joinable_queue_join_timeout() {
    let q = JoinableQueue::new();
    assert!(q.join_timeout(Duration::ZERO), "nothing put: done at once");
    q.put(1);
    q.put(2);
    let t = Instant::now();
    assert!(!q.join_timeout(ms(20)), "two tasks unfinished");
    assert!(t.elapsed() >= ms(20));
    let worker = {
        let q = q.clone();
        gevent::spawn(move || {
            for _ in 0..2 {
                q.get();
                gevent::sleep(ms(5));
                q.task_done();
            }
        })
    };
    assert!(q.join_timeout(Duration::from_secs(5)));
    worker.join();
}

#[test]
fn a_timed_out_scope_is_an_io_error_of_kind_timed_out() {
    fn read() -> std::io::Result<u8> {
        let v = gevent::with_timeout(ms(1), || {
            gevent::sleep(Duration::from_secs(5));
            7
        })?;
        Ok(v)
    }
    let e = read().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    assert!(e.get_ref().is_some_and(|inner| inner.is::<gevent::Timeout>()));
}
