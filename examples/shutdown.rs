//! Tutorial section "Programmende": a greenlet that would run (nearly)
//! forever, joined by the main greenlet, is killed so the program can end.
//!
//! The tutorial installs `gevent.signal(signal.SIGQUIT, gevent.kill)`. Until
//! `gevent::signal` exists, a helper greenlet stands in for the SIGQUIT
//! handler: it sleeps briefly, then kills the forever-greenlet. The kill
//! unwinds it at its `sleep`, so the main greenlet's `join` returns.
//!
//! Run: `cargo run --example shutdown`

use std::time::Duration;

fn run_forever() {
    gevent::sleep(Duration::from_secs(1000));
}

fn main() {
    let thread = gevent::spawn(run_forever);

    // Stand-in for the SIGQUIT handler.
    let target = thread.clone();
    gevent::spawn(move || {
        gevent::sleep(Duration::from_millis(20));
        target.kill();
    });

    thread.join();
    match thread.exception() {
        Some(why) => println!("run_forever beendet: {why}"),
        None => println!("run_forever ist von selbst zurückgekehrt"),
    }
    println!("Programm sauber beendet");
}
