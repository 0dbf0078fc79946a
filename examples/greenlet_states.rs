//! Tutorial section "Greenlet-Zustände": the flags that show a greenlet's
//! state (`started`, `value`, `ready`, `successful`, `exception`) for one
//! greenlet that returns and one that panics. The panic is reported on
//! stderr and stays inside its greenlet; it never unwinds `main`.
//!
//! Run: `cargo run --example greenlet_states`

use std::fmt::Display;

fn win() -> &'static str {
    "Gewonnen!"
}

fn fail() -> &'static str {
    panic!("Du bist ein Verlierer im Verlieren.")
}

/// Python's rendering of a bool.
fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// Python's rendering of an optional value (`None` or the value).
fn py_opt(v: Option<impl Display>) -> String {
    v.map_or_else(|| "None".to_owned(), |v| v.to_string())
}

fn main() {
    let winner = gevent::spawn(win);
    let loser = gevent::spawn(fail);

    println!("{}", py_bool(winner.started())); // True
    println!("{}", py_bool(loser.started())); // True

    // The panic in `fail` stays in its greenlet: joinall returns normally.
    gevent::joinall([&winner, &loser]);

    println!("{}", py_opt(winner.value())); // Gewonnen!
    println!("{}", py_opt(loser.value())); // None

    println!("{}", py_bool(winner.ready())); // True
    println!("{}", py_bool(loser.ready())); // True

    println!("{}", py_bool(winner.successful())); // True
    println!("{}", py_bool(loser.successful())); // False

    // The panic message, kept by the dead greenlet. It can be re-raised with
    // `loser.get()`, which returns it as `Err(GreenletError::Panicked(..))`.
    println!("{}", py_opt(loser.exception()));
}
