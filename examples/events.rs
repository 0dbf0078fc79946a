//! Tutorial section "Events" (Daten-Strukturen): one setter and five waiters
//! share an `Event`; the waiters block in `wait` until the setter, after a
//! pause (the tutorial's 3 seconds, scaled down to 30 ms), sets it.
//!
//! The tutorial shows no output for this example. The lines below are what
//! gevent prints for it: the greenlets run in spawn order, so the setter
//! announces itself first and goes to sleep, each waiter then says it will
//! wait and blocks; when the setter wakes it says it is done and sets the
//! event, which wakes the five waiters in the order they started waiting.
//! Our scheduler is deterministic and produces exactly that order.
//!
//! Run: `cargo run --example events`

use std::time::Duration;

use gevent::event::Event;

fn setter(evt: Event) {
    // Nach 3 Sekunden werden alle Threads, die auf den Wert von evt warten,
    // aufgeweckt.
    println!("A: Hey, warte auf mich, ich muss etwas besorgen");
    gevent::sleep(Duration::from_millis(30));
    println!("Ok, ich bin fertig");
    evt.set();
}

fn waiter(evt: Event) {
    // Nach 3 Sekunden wird der wait-Aufruf entblockt.
    println!("Ich werde auf dich warten");
    evt.wait(); // blockierend
    println!("Wird ja auch Zeit");
}

fn main() {
    let evt = Event::new();
    let mut all = vec![gevent::spawn({
        let e = evt.clone();
        move || setter(e)
    })];
    for _ in 0..5 {
        let e = evt.clone();
        all.push(gevent::spawn(move || waiter(e)));
    }
    gevent::joinall(&all);
}
