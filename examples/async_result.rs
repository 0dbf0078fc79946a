//! Tutorial section "Events", second example: an `AsyncResult` (a future)
//! carries a value along with the wake-up. The setter writes "Hallo!" after
//! a pause (the tutorial's 3 seconds, scaled down to 30 ms); the waiter's
//! `get` blocks until then and prints it.
//!
//! Run: `cargo run --example async_result`

use std::time::Duration;

use gevent::event::AsyncResult;

fn setter(a: AsyncResult<String>) {
    // Setze das Ergebnis von a nach 3 Sekunden.
    gevent::sleep(Duration::from_millis(30));
    a.set("Hallo!".to_owned());
}

fn waiter(a: AsyncResult<String>) {
    // Nach 3 Sekunden wird der get-Aufruf entblockt, nachdem der Setter
    // einen Wert in das AsyncResult schreibt.
    println!("{}", a.get().expect("the setter sets a value"));
}

fn main() {
    let a = AsyncResult::new();
    let (s, w) = (a.clone(), a.clone());
    gevent::joinall([gevent::spawn(move || setter(s)), gevent::spawn(move || waiter(w))]);
}
