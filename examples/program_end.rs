//! Tutorial section "Programmende": a greenlet that would run (nearly)
//! forever must not keep the program alive once it receives SIGQUIT. The
//! tutorial's `gevent.signal(signal.SIGQUIT, gevent.kill)` becomes a
//! handler that kills the greenlet the main greenlet joins.
//!
//! So that the example ends on its own, a child process sends us SIGQUIT
//! (as `kill -QUIT <pid>` from a terminal would) 20 ms after the start. The
//! tutorial prints nothing; this prints what happened.
//!
//! Run: `cargo run --example program_end`

use std::time::Duration;

use gevent::signal::SIGQUIT;
use gevent::subprocess::Command;

fn run_forever() {
    gevent::sleep(Duration::from_secs(1000));
}

fn main() {
    let thread = gevent::spawn(run_forever);
    let target = thread.clone();
    let handler = gevent::signal::signal(SIGQUIT, move || {
        println!("SIGQUIT empfangen");
        target.kill();
    })
    .expect("handling SIGQUIT");

    // Someone sends SIGQUIT shortly ($PPID: this process).
    gevent::spawn(|| {
        gevent::sleep(Duration::from_millis(20));
        Command::new("sh").args(["-c", "kill -QUIT $PPID"]).status().expect("running kill");
    });

    thread.join();
    handler.cancel();
    match thread.exception() {
        Some(why) => println!("run_forever beendet: {why}"),
        None => println!("run_forever ist von selbst zurückgekehrt"),
    }
    println!("Programm sauber beendet");
}
