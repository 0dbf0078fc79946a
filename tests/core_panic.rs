//! A panic inside a greenlet is caught at its root and stored as
//! `GreenletError::Panicked(message)`; it never unwinds the parent.

mod core_common;

use std::cell::Cell;
use std::rc::Rc;

use core_common::{child_scenario, ms, run_child, stderr_of, DropGuard, Trace};
use gevent::{Greenlet, GreenletError};

#[test]
fn a_panic_is_stored_and_does_not_unwind_the_parent() {
    let g = gevent::spawn(|| -> u32 { panic!("boom") });
    let r = g.get();
    assert_eq!(r, Err(GreenletError::Panicked("boom".into())));
    assert!(g.dead() && g.ready() && g.started());
    assert!(!g.successful());
    assert_eq!(g.exception(), Some(GreenletError::Panicked("boom".into())));
    assert_eq!(g.value(), None);
    // The parent is fine and the hub keeps going.
    assert_eq!(gevent::spawn(|| 1).get(), Ok(1));
}

#[test]
fn panic_messages_of_every_payload_kind() {
    let fmt = gevent::spawn(|| -> () { panic!("formatted {}", 42) });
    assert_eq!(fmt.get(), Err(GreenletError::Panicked("formatted 42".into())));
    let any = gevent::spawn(|| std::panic::panic_any(17u8));
    assert!(matches!(any.get(), Err(GreenletError::Panicked(_))), "{:?}", any.get());
    let unwrap = gevent::spawn(|| -> u8 { std::hint::black_box(None::<u8>).unwrap() });
    match unwrap.get() {
        Err(GreenletError::Panicked(m)) => assert!(m.contains("None"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_panic_after_blocking_runs_destructors_and_wakes_joiners() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = gevent::spawn(move || {
        let _g = DropGuard(d);
        gevent::sleep(ms(2));
        panic!("late");
    });
    let trace = Trace::new();
    let joiners: Vec<Greenlet<()>> = (0..3)
        .map(|i| {
            let (g, t) = (g.clone(), trace.clone());
            gevent::spawn(move || {
                g.join();
                t.push(i);
            })
        })
        .collect();
    gevent::joinall(&joiners);
    assert_eq!(trace.get(), [0, 1, 2]);
    assert_eq!(drops.get(), 1);
    assert_eq!(g.exception(), Some(GreenletError::Panicked("late".into())));
}

#[test]
fn a_panicking_greenlet_among_others() {
    let trace = Trace::new();
    let gs: Vec<Greenlet<usize>> = (0..6)
        .map(|i| {
            let t = trace.clone();
            gevent::spawn(move || {
                gevent::yield_now();
                t.push(i);
                if i % 2 == 1 {
                    panic!("odd {i}");
                }
                i
            })
        })
        .collect();
    gevent::joinall(&gs);
    assert_eq!(trace.get(), [0, 1, 2, 3, 4, 5], "a panic does not disturb the others' order");
    for (i, g) in gs.iter().enumerate() {
        if i % 2 == 1 {
            assert_eq!(g.get(), Err(GreenletError::Panicked(format!("odd {i}"))));
        } else {
            assert_eq!(g.get(), Ok(i));
        }
    }
}

#[test]
fn a_panic_in_a_nested_greenlet_stays_there() {
    let outer = gevent::spawn(|| {
        let inner = gevent::spawn(|| -> () { panic!("inner") });
        let r = inner.get();
        (r, "outer fine")
    });
    assert_eq!(outer.get(), Ok((Err(GreenletError::Panicked("inner".into())), "outer fine")));
}

/// Panics in its destructor (unless already unwinding).
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("bomb dropped");
        }
    }
}

#[derive(Default)]
struct LocalBomb(bool);

impl Drop for LocalBomb {
    fn drop(&mut self) {
        if self.0 && !std::thread::panicking() {
            panic!("local bomb dropped");
        }
    }
}

fn expect_child_survives(test: &str, scenario: &str) {
    let out = run_child(test, scenario);
    let err = stderr_of(&out);
    assert!(out.status.success(), "status {:?}\n{err}", out.status);
    assert!(String::from_utf8_lossy(&out.stdout).contains("survived"), "{err}");
}

#[test]
fn a_panicking_drop_of_an_unread_result_does_not_abort() {
    if child_scenario().as_deref() == Some("result-bomb") {
        // No handle is left, so the value is dropped inside the greenlet.
        drop(gevent::spawn(|| Bomb));
        gevent::sleep(ms(1));
        assert_eq!(gevent::spawn(|| 5).get(), Ok(5));
        println!("survived");
        return;
    }
    expect_child_survives("a_panicking_drop_of_an_unread_result_does_not_abort", "result-bomb");
}

#[test]
fn a_panicking_drop_of_a_local_value_does_not_abort() {
    if child_scenario().as_deref() == Some("local-bomb") {
        let local: gevent::local::Local<LocalBomb> = gevent::local::Local::new();
        let l = local.clone();
        gevent::spawn(move || l.with(|b| b.0 = true)).join();
        assert_eq!(gevent::spawn(|| 5).get(), Ok(5));
        println!("survived");
        return;
    }
    expect_child_survives("a_panicking_drop_of_a_local_value_does_not_abort", "local-bomb");
}

#[test]
fn a_panicking_drop_of_a_read_result_unwinds_the_reader() {
    // With a handle alive, the value is stored and dropped with the last
    // handle, in the dropping greenlet: an ordinary panic there.
    let g = gevent::spawn(|| Bomb);
    g.join();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(g))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"bomb dropped"));
    assert_eq!(gevent::spawn(|| 5).get(), Ok(5));
}
