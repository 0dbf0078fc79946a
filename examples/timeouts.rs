//! Tutorial section "Timeouts": limiting how long a block of code or a
//! greenlet may run. The three snippets of the tutorial, with seconds
//! scaled down to tens of milliseconds:
//! 1. a timeout around `spawn(wait).join()`;
//! 2. a block-scoped timeout whose error is mapped to our own `TooLong`;
//! 3. the timeout arguments of `join_timeout`, `get_timeout` and
//!    `gevent::with_timeout`.
//!
//! Run: `cargo run --example timeouts`

use std::time::Duration;

use gevent::{GreenletError, Timeout};

/// The tutorial's `TooLong` exception.
#[derive(Debug)]
struct TooLong;

impl From<Timeout> for TooLong {
    fn from(_: Timeout) -> TooLong {
        TooLong
    }
}

fn main() {
    // 1. `Timeout(seconds)` around a join. The timeout is armed before the
    //    greenlet's sleep of the same length, so it fires first.
    let seconds = Duration::from_millis(10);
    let wait = || gevent::sleep(Duration::from_millis(10));
    if let Err(Timeout) = gevent::with_timeout(seconds, || gevent::spawn(wait).join()) {
        println!("Konnte nicht beendet werden");
    }

    // 2. `with Timeout(time_to_wait, TooLong): gevent.sleep(10)`.
    let time_to_wait = Duration::from_millis(5);
    let slept: Result<(), TooLong> =
        gevent::with_timeout(time_to_wait, || gevent::sleep(Duration::from_millis(10))).map_err(TooLong::from);
    if let Err(e) = slept {
        println!("Abgebrochen mit {e:?}");
    }

    // 3. Timeout arguments of greenlet calls.
    let wait = || gevent::sleep(Duration::from_millis(20));
    let timer = Duration::from_millis(10);

    let thread1 = gevent::spawn(wait);
    if !thread1.join_timeout(timer) {
        println!("Timeout in Thread 1");
    }

    let thread2 = gevent::spawn(wait);
    if let Err(GreenletError::Timeout) = thread2.get_timeout(timer) {
        println!("Timeout in Thread 2");
    }

    if let Err(Timeout) = gevent::with_timeout(timer, wait) {
        println!("Timeout in Thread 3");
    }
}
