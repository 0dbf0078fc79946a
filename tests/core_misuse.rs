//! Misuse gives a clear panic, never a hang or corruption: joining oneself,
//! blocking in a link callback, waiting forever (LoopExit), and what panics
//! report on stderr.

mod core_common;

use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use core_common::{child_scenario, ms, run_child, stderr_of, SleepOnDrop};
use gevent::{Greenlet, GreenletError};

fn panic_text(err: &(dyn Any + Send)) -> String {
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn a_greenlet_joining_itself_panics() {
    let g = Greenlet::builder().name("narcissus").spawn(|| gevent::getcurrent().join());
    g.join();
    match g.exception() {
        Some(GreenletError::Panicked(msg)) => {
            assert!(msg.contains("join itself") && msg.contains("narcissus"), "{msg}")
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    let h = gevent::spawn(|| gevent::getcurrent().join_timeout(ms(1)));
    assert!(matches!(h.get(), Err(GreenletError::Panicked(m)) if m.contains("join itself")));
}

#[test]
fn main_joining_itself_panics_and_the_hub_survives() {
    let err = catch_unwind(|| gevent::getcurrent().join()).unwrap_err();
    assert!(panic_text(&*err).contains("join itself"), "{}", panic_text(&*err));
    assert_eq!(gevent::spawn(|| 2).get(), Ok(2));
}

#[test]
fn blocking_in_a_link_callback_is_caught_and_the_program_goes_on() {
    let after_sleep = Rc::new(Cell::new(false));
    let second = Rc::new(Cell::new(0));
    let g = gevent::spawn(|| 1);
    let a = after_sleep.clone();
    g.link(move |_| {
        gevent::sleep(ms(1));
        a.set(true);
    });
    let s = second.clone();
    g.link(move |_| s.set(s.get() + 1));
    g.join();
    gevent::sleep(ms(2));
    assert!(!after_sleep.get(), "sleep in a link callback must panic");
    assert_eq!(second.get(), 1, "the other callbacks still run");
    // Everything else still works.
    let h = gevent::spawn(|| {
        gevent::sleep(ms(1));
        3
    });
    assert_eq!(h.get(), Ok(3));
}

#[test]
fn other_blocking_calls_in_a_link_callback_are_refused_too() {
    let reached = Rc::new(Cell::new(0));
    let g = gevent::spawn(|| ());
    let other = gevent::spawn(|| gevent::sleep(ms(50)));
    let (r, o) = (reached.clone(), other.clone());
    g.link(move |_| {
        o.join();
        r.set(r.get() + 1);
    });
    let r = reached.clone();
    g.link(move |_| {
        gevent::yield_now();
        r.set(r.get() + 1);
    });
    let r = reached.clone();
    g.link(move |_| {
        let _ = gevent::getcurrent();
        r.set(r.get() + 1);
    });
    g.join();
    gevent::sleep(ms(1));
    assert_eq!(reached.get(), 0);
    other.kill();
}

#[test]
fn link_callback_panic_is_reported_on_stderr() {
    if child_scenario().as_deref() == Some("link-panic") {
        let g = Greenlet::builder().name("linked-one").spawn(|| ());
        g.link(|_| gevent::sleep(ms(1)));
        g.join();
        gevent::sleep(ms(1));
        println!("program survived");
        return;
    }
    let out = run_child("link_callback_panic_is_reported_on_stderr", "link-panic");
    let err = stderr_of(&out);
    assert!(out.status.success(), "status {:?}\n{err}", out.status);
    assert!(String::from_utf8_lossy(&out.stdout).contains("program survived"));
    assert!(err.contains("link callback of greenlet 'linked-one' panicked"), "{err}");
    assert!(err.contains("hub callback"), "the message names the misuse: {err}");
}

#[test]
fn loop_exit_names_the_blocked_greenlets() {
    let result = std::thread::spawn(|| {
        let never = Greenlet::builder().name("never-started").build(|| ());
        let stuck = Greenlet::builder().name("stuck-one").spawn(move || never.join());
        let also = Greenlet::builder().name("stuck-two").spawn({
            let s = stuck.clone();
            move || s.join()
        });
        also.join();
    })
    .join();
    let err = result.expect_err("the main greenlet's join must panic");
    let msg = panic_text(&*err);
    assert!(msg.contains("LoopExit"), "{msg}");
    assert!(msg.contains("'stuck-one'") && msg.contains("'stuck-two'"), "{msg}");
}

#[test]
fn loop_exit_when_main_joins_a_never_started_greenlet() {
    let result = std::thread::spawn(|| {
        let g = Greenlet::builder().name("not-started").build(|| ());
        g.join();
    })
    .join();
    let msg = panic_text(&*result.unwrap_err());
    assert!(msg.contains("block forever"), "{msg}");
    assert!(msg.contains("'not-started' (created but never started)"), "the usual porting mistake is named: {msg}");
}

#[test]
fn loop_exit_can_be_caught_and_the_thread_goes_on() {
    let out = std::thread::spawn(|| {
        let stuck = Greenlet::builder().name("stuck").spawn(|| Greenlet::new(|| ()).join());
        let err = catch_unwind(AssertUnwindSafe(|| stuck.join())).unwrap_err();
        let msg = panic_text(&*err);
        // The hub still schedules normally afterwards.
        let g = gevent::spawn(|| {
            gevent::sleep(ms(1));
            5
        });
        (msg, g.get(), stuck.dead())
    })
    .join()
    .unwrap();
    assert!(out.0.contains("'stuck'"), "{}", out.0);
    assert_eq!(out.1, Ok(5));
    assert!(!out.2);
}

#[test]
fn no_loop_exit_while_a_timer_is_pending() {
    let g = Greenlet::new(|| ());
    let h = g.clone();
    let starter = gevent::spawn(move || {
        gevent::sleep(ms(5));
        h.start();
    });
    g.join();
    assert!(g.successful());
    starter.join();
}

#[test]
fn greenlet_panics_are_reported_once_with_the_name() {
    if child_scenario().as_deref() == Some("report") {
        let g = Greenlet::builder().name("boom-greenlet").spawn(|| -> () { panic!("kaboom 42") });
        assert!(g.join_timeout(Duration::from_secs(5)));
        // Kills and timeouts unwind silently.
        let k = Greenlet::builder().name("killed-quietly").spawn(|| gevent::sleep(Duration::from_secs(60)));
        gevent::yield_now();
        k.kill();
        let _ = gevent::with_timeout(ms(1), || gevent::sleep(Duration::from_secs(60)));
        println!("parent not unwound");
        return;
    }
    let out = run_child("greenlet_panics_are_reported_once_with_the_name", "report");
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("parent not unwound"));
    assert_eq!(err.matches("panicked").count(), 1, "{err}");
    assert!(err.contains("greenlet 'boom-greenlet' panicked"), "{err}");
    assert!(err.contains("kaboom 42"), "{err}");
    assert!(!err.contains("killed-quietly"), "{err}");
}

/// An application that installs its own panic hook after the hub exists,
/// chaining to the previous one (as documented: gevent's hook counts the
/// unwinds of each greenlet), and then kills a greenlet blocked in a
/// destructor during its panic unwind: the kill waits for the unwind to
/// end instead of being raised inside that destructor (an abort).
#[test]
fn a_chained_panic_hook_keeps_kills_during_unwinds_safe() {
    if child_scenario().as_deref() == Some("hook-chained") {
        struct GetOnDrop(gevent::queue::Queue<u32>);
        impl Drop for GetOnDrop {
            fn drop(&mut self) {
                let _ = self.0.get();
            }
        }
        gevent::yield_now(); // the hub exists: gevent's hook is in
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            eprintln!("[app hook]");
            previous(info);
        }));
        let q = gevent::queue::Queue::new();
        let a = gevent::spawn({
            let q = q.clone();
            move || {
                let _d = GetOnDrop(q);
                panic!("p");
            }
        });
        gevent::yield_now(); // a blocks in its destructor
        a.kill_nowait();
        gevent::yield_now();
        q.put(1);
        a.join();
        println!("survived: {:?}", a.exception());
        return;
    }
    let out = run_child("a_chained_panic_hook_keeps_kills_during_unwinds_safe", "hook-chained");
    let err = stderr_of(&out);
    assert!(out.status.success(), "status {:?}\n{err}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // It ends as it began: panicked (a kill does not replace a panic).
    assert!(stdout.contains("survived: Some(Panicked(\"p\"))"), "{stdout}\n{err}");
    assert!(err.contains("[app hook]"), "{err}");
}

/// A `with_timeout` scope opened in a destructor (during one unwind) whose
/// deadline passes while a second, nested unwind inside it blocks in its
/// own destructor: the timeout is not raised inside that destructor (that
/// aborted the process). (Once the user catches the nested unwind, the
/// runtime cannot tell it ended while the first one goes on: the timeout
/// then waits, and the scope may end without it.)
#[test]
fn a_scope_in_a_destructor_waits_out_a_nested_unwind() {
    if child_scenario().as_deref() == Some("nested-unwind") {
        struct Outer;
        impl Drop for Outer {
            fn drop(&mut self) {
                let r = gevent::with_timeout(ms(10), || {
                    let _ = catch_unwind(AssertUnwindSafe(|| {
                        let _i = SleepOnDrop(ms(60));
                        panic!("p2")
                    }));
                    gevent::sleep(ms(100));
                });
                println!("scope in destructor: {}", if r.is_ok() { "Ok" } else { "Err" });
            }
        }
        let g = gevent::spawn(|| {
            let _o = Outer;
            panic!("p1")
        });
        g.join();
        println!("survived: {:?}", g.exception());
        return;
    }
    let out = run_child("a_scope_in_a_destructor_waits_out_a_nested_unwind", "nested-unwind");
    let err = stderr_of(&out);
    assert!(out.status.success(), "status {:?}\n{err}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("scope in destructor: "), "{stdout}\n{err}");
    assert!(stdout.contains("survived: Some(Panicked(\"p1\"))"), "{stdout}\n{err}");
}

/// A greenlet that panics while stderr is a closed pipe (the log reader
/// died, `prog 2>&1 | head`): the report is dropped, as std's own panic
/// message is, and the program goes on. The report's `eprintln!` panicked
/// inside the panic hook, which aborted the process.
#[test]
fn a_panic_report_to_a_closed_stderr_is_dropped() {
    if child_scenario().as_deref() == Some("closed-stderr") {
        let mut fds = [0; 2];
        // SAFETY: pipe(2) writes two fresh fds; the read end is closed and
        // the write end replaces fd 2, so writes to stderr fail (EPIPE).
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            libc::close(fds[0]);
            assert_eq!(libc::dup2(fds[1], 2), 2);
            libc::close(fds[1]);
        }
        let g = gevent::spawn(|| -> u8 { panic!("nobody reads this") });
        g.join();
        println!("survived: {:?}", g.exception());
        return;
    }
    let out = run_child("a_panic_report_to_a_closed_stderr_is_dropped", "closed-stderr");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "status {:?}\n{stdout}", out.status);
    assert!(stdout.contains("survived: Some(Panicked(\"nobody reads this\"))"), "{stdout}");
}

/// A kill of a greenlet blocked in a destructor while a dropped raw
/// coroutine's body is being cancelled (an unwind of that greenlet that no
/// panic hook sees) waits for the cancellation to end; it was raised inside
/// the destructor, which aborted the process.
#[test]
fn a_kill_during_a_coroutine_cancellation_waits_for_it() {
    if child_scenario().as_deref() == Some("coroutine-cancel") {
        let g = gevent::spawn(|| {
            let mut co = gevent::coroutine::Coroutine::new(|y, _| {
                let _d = SleepOnDrop(ms(30));
                y.suspend(1);
                0
            });
            co.resume(0);
            drop(co); // its body unwinds, and sleeps in the destructor
            gevent::sleep(Duration::from_secs(10));
        });
        gevent::sleep(ms(5));
        g.kill();
        println!("survived: {:?}", g.exception());
        return;
    }
    let out = run_child("a_kill_during_a_coroutine_cancellation_waits_for_it", "coroutine-cancel");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "status {:?}\n{stdout}\n{}", out.status, stderr_of(&out));
    assert!(stdout.contains("survived: Some(Killed)"), "{stdout}");
}
