//! Tutorial section "Greenlets kreieren": the usual ways to create a
//! greenlet — `Greenlet::spawn`, `gevent::spawn`, and a closure — then
//! `joinall` to wait for all of them.
//!
//! Run: `cargo run --example creating_greenlets`

use std::time::Duration;

use gevent::Greenlet;

/// Every greenlet gets its own `message` and `n` when it is created.
/// (The tutorial sleeps `n` seconds; here `n` tens of milliseconds.)
fn foo(message: &str, n: u64) {
    gevent::sleep(Duration::from_millis(10 * n));
    println!("{message}");
}

fn main() {
    // A new greenlet running `foo`.
    let thread1 = Greenlet::spawn(|| foo("Hallo", 1));

    // The same through the crate-root wrapper.
    let thread2 = gevent::spawn(|| foo("Ich lebe!", 2));

    // A closure (the tutorial's lambda).
    let add_one = |x: i32| x + 1;
    let thread3 = gevent::spawn(move || add_one(2));

    // Blocks until all of them are done; mixed result types join as
    // `GreenletRef`s.
    gevent::joinall([thread1.as_ref(), thread2.as_ref(), thread3.as_ref()]);
    assert_eq!(thread3.value(), Some(3));
}
