//! Stacks that cannot be had, stacks that are given back, and what unwinders
//! see after a greenlet's stack went back to the pool. Scenarios that crash
//! (or limit the whole process) run in a child process.

mod core_common;

use std::hint::black_box;
use std::panic::{catch_unwind, AssertUnwindSafe};

use core_common::{child_scenario, run_child, run_child_env, stderr_of};
use gevent::coroutine::Coroutine;
use gevent::{Greenlet, GreenletError};

fn status_line(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with(field)).expect("the field");
    line.split_whitespace().nth(1).and_then(|v| v.parse::<usize>().ok()).expect("a number of KiB") * 1024
}

/// Limits this (child) process's address space to what it maps now plus
/// `extra` bytes.
fn limit_address_space(extra: usize) {
    let limit = (status_line("VmSize:") + extra) as libc::rlim_t;
    let r = libc::rlimit { rlim_cur: limit, rlim_max: limit };
    // SAFETY: setrlimit reads the live struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &r) }, 0);
}

#[test]
fn a_greenlet_whose_stack_cannot_be_mapped_dies_and_the_hub_goes_on() {
    if child_scenario().as_deref() == Some("no-stack") {
        limit_address_space(256 << 20);
        let huge = Greenlet::builder().name("huge").stack_size(1 << 30).spawn(|| 1);
        let small = Greenlet::builder().name("small").spawn(|| 2);
        let linked = std::rc::Rc::new(std::cell::Cell::new(false));
        huge.link({
            let linked = linked.clone();
            move |_| linked.set(true)
        });
        match huge.get() {
            Err(GreenletError::Panicked(msg)) => assert!(msg.contains("'huge' cannot start"), "{msg}"),
            other => panic!("the greenlet without a stack: {other:?}"),
        }
        assert!(linked.get(), "its links ran");
        assert_eq!(gevent::getcurrent().name(), "main");
        assert_eq!(small.get(), Ok(2));
        // From another greenlet, and with the hub's own loop choosing it.
        let outer = gevent::spawn(|| {
            let inner = Greenlet::builder().name("inner").stack_size(1 << 30).spawn(|| 3);
            gevent::sleep(std::time::Duration::from_millis(1));
            inner.get()
        });
        assert!(matches!(outer.get(), Ok(Err(GreenletError::Panicked(_)))));
        assert_eq!(gevent::spawn(|| 4).get(), Ok(4));
        println!("survived");
        return;
    }
    if core_common::emulated() {
        // qemu-user ignores RLIMIT_AS (it would limit the emulator itself):
        // every mapping succeeds there.
        return;
    }
    let out = run_child("a_greenlet_whose_stack_cannot_be_mapped_dies_and_the_hub_goes_on", "no-stack");
    let err = stderr_of(&out);
    assert!(out.status.success(), "status {:?}\n{err}", out.status);
    assert!(String::from_utf8_lossy(&out.stdout).contains("survived"), "{err}");
    assert!(err.contains("greenlet 'huge' cannot start: no stack of"), "reported:\n{err}");
}

#[test]
fn a_backtrace_after_a_greenlet_died_stops_at_the_root() {
    if child_scenario().as_deref() == Some("stale-link") {
        let t = gevent::spawn(|| {
            gevent::yield_now(); // `x` runs, dies, and switches straight back here
            let junk = [0x4141_4141_4141_4141u64; 8];
            // Takes the stack `x` gave back, and writes over it.
            let _co = Coroutine::new(move |_, _| junk.iter().sum::<u64>() as usize);
            std::backtrace::Backtrace::force_capture().to_string().len()
        });
        let x = gevent::spawn(|| 1);
        assert!(t.get().is_ok_and(|n| n > 0));
        assert_eq!(x.get(), Ok(1));
        println!("survived");
        return;
    }
    let out = run_child("a_backtrace_after_a_greenlet_died_stops_at_the_root", "stale-link");
    let err = stderr_of(&out);
    assert!(out.status.success(), "status {:?}\n{err}", out.status);
    assert!(String::from_utf8_lossy(&out.stdout).contains("survived"), "{err}");
}

#[test]
fn greenlet_panic_reports_carry_a_backtrace_when_asked() {
    if child_scenario().as_deref() == Some("backtrace") {
        let g = Greenlet::builder().name("worker").spawn(|| -> u32 { panic!("boom") });
        assert!(g.get().is_err());
        return;
    }
    let test = "greenlet_panic_reports_carry_a_backtrace_when_asked";
    let with = stderr_of(&run_child_env(test, "backtrace", &[("RUST_BACKTRACE", Some("1"))]));
    assert!(with.contains("greenlet 'worker' panicked at"), "{with}");
    assert!(with.contains("stack backtrace:"), "{with}");
    let without = stderr_of(&run_child(test, "backtrace"));
    assert!(without.contains("greenlet 'worker' panicked at"), "{without}");
    assert!(!without.contains("stack backtrace:"), "{without}");
}

#[test]
fn stack_sizes_of_4_gib_or_more_are_refused_clearly() {
    for bytes in [usize::MAX, usize::MAX - 4095, 4 << 30] {
        let p = catch_unwind(|| gevent::hub::set_default_stack_size(bytes)).expect_err("refused");
        let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("stack size must be below 4 GiB"), "{msg}");
        let p = catch_unwind(|| Greenlet::builder().stack_size(bytes).spawn(|| ())).expect_err("refused");
        let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("stack size must be below 4 GiB"), "{msg}");
    }
    // The default is untouched, and greenlets still run.
    assert_eq!(gevent::hub::default_stack_size(), gevent::DEFAULT_STACK_SIZE);
    assert_eq!(gevent::spawn(|| black_box(5)).get(), Ok(5));
}

#[test]
fn a_coroutine_whose_closure_does_not_fit_gives_its_stack_back() {
    let _warm = Coroutine::new(|_, x| x);
    drop(_warm);
    let before = gevent::hub::stats().free_stacks;
    let big = [7u8; 40 * 1024];
    let p = catch_unwind(AssertUnwindSafe(|| Coroutine::new(move |_, _| big.iter().map(|&b| b as usize).sum())))
        .expect_err("refused");
    let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("does not fit its stack"), "{msg}");
    assert_eq!(gevent::hub::stats().free_stacks, before, "the stack went back to the pool");
}

#[inline(never)]
fn touch(bytes: usize) -> u64 {
    let mut on_stack = [0u8; 64 * 1024];
    black_box(&mut on_stack);
    if bytes <= on_stack.len() {
        return on_stack[7] as u64;
    }
    touch(bytes - on_stack.len()) + black_box(on_stack[9]) as u64
}

#[test]
fn large_stacks_give_their_memory_back_when_their_greenlets_die() {
    if child_scenario().as_deref() == Some("trim") {
        let before = status_line("VmRSS:");
        let go = gevent::event::Event::new();
        let gs: Vec<Greenlet<u64>> = (0..32)
            .map(|_| {
                let go = go.clone();
                Greenlet::builder().stack_size(8 << 20).spawn(move || {
                    let n = touch(6 << 20);
                    go.wait();
                    n
                })
            })
            .collect();
        gevent::sleep(std::time::Duration::from_millis(1));
        let peak = status_line("VmRSS:");
        go.set();
        gevent::joinall(&gs);
        drop(gs);
        let after = status_line("VmRSS:");
        println!("rss before {before} peak {peak} after {after}");
        assert!(peak > before + (160 << 20), "the greenlets touched their stacks");
        // A few stay warm (and the last one given back is released at the
        // pool's next use): at most 5 of the 32 keep their pages.
        assert!(after < before + (48 << 20), "the stacks' pages went back");
        println!("survived");
        return;
    }
    let out = run_child("large_stacks_give_their_memory_back_when_their_greenlets_die", "trim");
    let err = stderr_of(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "status {:?}\n{stdout}\n{err}", out.status);
    assert!(stdout.contains("survived"), "{stdout}\n{err}");
}

#[test]
fn greenlets_with_large_root_frames_on_large_stacks_die_cleanly() {
    // (On a thread with room for the arrays moved around by debug builds.)
    let t = std::thread::Builder::new().stack_size(64 << 20).spawn(large_root_frames).expect("a thread");
    t.join().expect("the large frames ran");
}

fn large_root_frames() {
    // Their stacks are released once they switched away, never under
    // their own feet (a 160 KiB closure sits in the root frame).
    let gs: Vec<Greenlet<u64>> = (0..12)
        .map(|i| {
            let buf = [i as u8; 160 * 1024];
            Greenlet::builder().stack_size(4 << 20).spawn(move || {
                gevent::sleep(std::time::Duration::from_millis(1));
                black_box(&buf).iter().map(|&b| b as u64).sum::<u64>()
            })
        })
        .collect();
    for (i, g) in gs.iter().enumerate() {
        assert_eq!(g.get(), Ok(i as u64 * 160 * 1024));
    }
    let results: Vec<Greenlet<[u8; 32 * 1024]>> = (0..12)
        .map(|i| {
            Greenlet::builder().stack_size(4 << 20).spawn(move || {
                gevent::yield_now();
                [i as u8; 32 * 1024]
            })
        })
        .collect();
    for (i, g) in results.into_iter().enumerate() {
        assert!(g.into_result().is_ok_and(|v| v.iter().all(|&b| b == i as u8)));
    }
}

#[test]
fn a_panic_on_a_small_stack_is_reported_without_a_backtrace_rather_than_aborting() {
    if child_scenario().as_deref() == Some("small-backtrace") {
        let g = Greenlet::builder().name("small").stack_size(16 * 1024).spawn(|| -> u32 { panic!("boom") });
        assert!(matches!(g.get(), Err(GreenletError::Panicked(m)) if m == "boom"));
        println!("survived");
        return;
    }
    let test = "a_panic_on_a_small_stack_is_reported_without_a_backtrace_rather_than_aborting";
    let out = run_child_env(test, "small-backtrace", &[("RUST_BACKTRACE", Some("1"))]);
    let err = stderr_of(&out);
    assert!(out.status.success(), "status {:?}\n{err}", out.status);
    assert!(String::from_utf8_lossy(&out.stdout).contains("survived"), "{err}");
    assert!(err.contains("greenlet 'small' panicked at"), "{err}");
    assert!(err.contains("no backtrace: too little of this stack is left"), "{err}");
}
