//! A greenlet that overflows its stack hits the guard page: the process
//! aborts with `greenlet '<name>' has overflowed its stack` on stderr, never
//! silent corruption. Each scenario runs in a child process (this binary,
//! re-run with the scenario in the environment).
//!
//! Under qemu-user (the aarch64 cross run) `madvise(MADV_GUARD_INSTALL)`
//! "succeeds" without installing anything; the stack pool notices (it checks
//! its first guard) and falls back to `mprotect`, so these run there too.

mod core_common;

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;

use core_common::{child_scenario, run_child, stderr_of};
use gevent::Greenlet;

const SIGABRT: i32 = 6;

#[inline(never)]
fn recurse_forever(depth: u64) -> u64 {
    let buf = black_box([depth as u8; 256]);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    recurse_forever(depth + 1).wrapping_add(buf[7] as u64)
}

/// Runs `test` as a child with `scenario` and checks it died of SIGABRT
/// with the overflow report naming `name`.
fn expect_overflow_report(test: &str, scenario: &str, name: &str) {
    let out = run_child(test, scenario);
    let err = stderr_of(&out);
    assert!(!out.status.success(), "the child survived an overflow:\n{err}");
    assert_eq!(out.status.signal(), Some(SIGABRT), "status {:?}\n{err}", out.status);
    assert!(err.contains(&format!("greenlet '{name}' has overflowed its stack")), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("survived"));
}

#[test]
fn overflow_aborts_naming_the_greenlet() {
    if child_scenario().as_deref() == Some("overflow") {
        let g = Greenlet::builder().name("x").spawn(|| recurse_forever(0));
        g.join();
        println!("survived");
        return;
    }
    expect_overflow_report("overflow_aborts_naming_the_greenlet", "overflow", "x");
}

#[test]
fn overflow_between_live_neighbours_is_caught_by_its_own_guard() {
    // The overflowing stack is not the lowest of its chunk: without a working
    // guard page it would run into a live neighbour's stack first.
    if child_scenario().as_deref() == Some("neighbours") {
        let parked: Vec<Greenlet<()>> =
            (0..3).map(|_| gevent::spawn(|| gevent::sleep(std::time::Duration::from_secs(60)))).collect();
        gevent::yield_now();
        let g = Greenlet::builder().name("middle child").spawn(|| recurse_forever(0));
        g.join();
        drop(parked);
        println!("survived");
        return;
    }
    expect_overflow_report("overflow_between_live_neighbours_is_caught_by_its_own_guard", "neighbours", "middle child");
}

#[test]
fn overflow_of_an_unnamed_greenlet_uses_its_default_name() {
    if child_scenario().as_deref() == Some("unnamed") {
        let g = gevent::spawn(|| recurse_forever(0));
        println!("id={}", g.id());
        g.join();
        println!("survived");
        return;
    }
    let out = run_child("overflow_of_an_unnamed_greenlet_uses_its_default_name", "unnamed");
    let err = stderr_of(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let id = stdout.split("id=").nth(1).and_then(|s| s.lines().next()).expect("the child printed the id");
    assert_eq!(out.status.signal(), Some(SIGABRT), "{err}");
    assert!(err.contains(&format!("greenlet 'Greenlet-{id}' has overflowed its stack")), "{err}");
}

#[test]
fn overflow_of_a_small_custom_stack() {
    if child_scenario().as_deref() == Some("small") {
        let g = Greenlet::builder().name("tiny").stack_size(gevent::MIN_STACK_SIZE).spawn(|| recurse_forever(0));
        g.join();
        println!("survived");
        return;
    }
    expect_overflow_report("overflow_of_a_small_custom_stack", "small", "tiny");
}

#[test]
fn overflow_in_a_link_callback_names_the_hub() {
    if child_scenario().as_deref() == Some("hub") {
        let g = gevent::spawn(|| ());
        g.link(|_| {
            recurse_forever(0);
        });
        g.join();
        gevent::sleep(std::time::Duration::from_millis(10));
        println!("survived");
        return;
    }
    expect_overflow_report("overflow_in_a_link_callback_names_the_hub", "hub", "hub");
}

#[test]
fn overflow_of_the_main_greenlet_is_left_to_std() {
    // The thread's own stack is not a greenlet stack: gevent's handler passes
    // the fault on to the one installed before it (std's), which reports the
    // thread.
    if child_scenario().as_deref() == Some("main") {
        gevent::spawn(|| ()).join(); // the hub and its handler exist
        std::thread::Builder::new()
            .name("overflowing-thread".into())
            .stack_size(256 << 10)
            .spawn(|| {
                gevent::yield_now();
                recurse_forever(0)
            })
            .unwrap()
            .join()
            .unwrap();
        println!("survived");
        return;
    }
    let out = run_child("overflow_of_the_main_greenlet_is_left_to_std", "main");
    let err = stderr_of(&out);
    assert_eq!(out.status.signal(), Some(SIGABRT), "{err}");
    assert!(err.contains("thread 'overflowing-thread'") && err.contains("has overflowed its stack"), "{err}");
    assert!(!err.contains("greenlet '"), "{err}");
}

#[test]
fn an_ordinary_segfault_is_not_reported_as_an_overflow() {
    if child_scenario().as_deref() == Some("segv") {
        let g = gevent::spawn(|| {
            // SAFETY: deliberately not safe: a fault far from any stack.
            unsafe { std::ptr::write_volatile(16 as *mut u64, 1) };
        });
        g.join();
        return;
    }
    let out = run_child("an_ordinary_segfault_is_not_reported_as_an_overflow", "segv");
    let err = stderr_of(&out);
    assert!(!out.status.success());
    assert!(!err.contains("overflowed"), "{err}");
    assert_eq!(out.status.signal(), Some(11), "SIGSEGV, handled as if gevent were not there: {err}");
}

/// A frame that moves the stack pointer 24 KiB down at once and touches
/// only its lowest word: what C code compiled without stack probes does
/// with a large local buffer. Below a 16 KiB stack, it must land in the
/// guard (64 KiB), not in the neighbouring stack (a one-page guard let it
/// corrupt the neighbour silently).
#[inline(never)]
fn unprobed_frame() {
    // SAFETY: moves sp down, stores one word there and moves sp back; the
    // store is meant to fault (the guard), which aborts the process.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::asm!("sub rsp, 24576", "mov qword ptr [rsp], 0", "add rsp, 24576");
    }
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        std::arch::asm!("sub sp, sp, #6, lsl #12", "str xzr, [sp]", "add sp, sp, #6, lsl #12");
    }
}

#[test]
fn an_unprobed_large_frame_hits_the_guard_not_the_neighbour() {
    if child_scenario().as_deref() == Some("unprobed") {
        let parked: Vec<Greenlet<()>> = (0..3)
            .map(|_| {
                Greenlet::builder()
                    .stack_size(gevent::MIN_STACK_SIZE)
                    .spawn(|| gevent::sleep(std::time::Duration::from_secs(60)))
            })
            .collect();
        gevent::yield_now();
        let g = Greenlet::builder().name("c frame").stack_size(gevent::MIN_STACK_SIZE).spawn(unprobed_frame);
        g.join();
        drop(parked);
        println!("survived");
        return;
    }
    expect_overflow_report("an_unprobed_large_frame_hits_the_guard_not_the_neighbour", "unprobed", "c frame");
}

/// An overflow on a raw coroutine's stack names the greenlet running it.
#[test]
fn a_coroutine_overflow_names_its_greenlet() {
    if child_scenario().as_deref() == Some("coroutine") {
        let g = Greenlet::builder().name("owner").spawn(|| {
            let mut co = gevent::coroutine::Coroutine::new(|_, _| recurse_forever(0) as usize);
            co.resume(0);
        });
        g.join();
        println!("survived");
        return;
    }
    expect_overflow_report("a_coroutine_overflow_names_its_greenlet", "coroutine", "owner");
}
