//! Tutorial section "Greenlet Control Flow": two greenlets wait in
//! `select` on no fds (a pure timeout) while a third one runs meanwhile.
//!
//! Scaled down: the tutorial's two seconds are 500 ms here; `tic` prints
//! the elapsed time in tutorial seconds (elapsed / SCALE), so the lines
//! read as the tutorial's.
//!
//! Run: `cargo run --example select`
use std::time::{Duration, Instant};

/// One tutorial second.
const SCALE: Duration = Duration::from_millis(250);

fn tic(start: Instant) -> String {
    format!("bei {:.1} Sekunden", start.elapsed().as_secs_f64() / SCALE.as_secs_f64())
}

fn main() {
    let start = Instant::now();
    let waiter = move || {
        // Waits two (tutorial) seconds, but we do not want to idle about.
        println!("Beginn der Wartezeit: {}", tic(start));
        gevent::select::select(&[], &[], Some(SCALE * 2)).expect("select");
        println!("Ende der Wartezeit: {}", tic(start));
    };
    let gr3 = move || {
        println!("Hey, lass uns irgendwas tun, solange die Greenlets warten, {}", tic(start));
        gevent::sleep(SCALE);
    };
    gevent::joinall([gevent::spawn(waiter).as_ref(), gevent::spawn(waiter).as_ref(), gevent::spawn(gr3).as_ref()]);
}
