//! Tutorial section "Greenlets" / "Synchrone & Asynchrone Ausführung":
//! two greenlets hand control to each other explicitly with
//! `gevent::sleep(Duration::ZERO)`, the context switch of gevent.
//!
//! Run: `cargo run --example greenlets`

use std::time::Duration;

fn foo() {
    println!("Expliziter Kontext bei foo");
    gevent::sleep(Duration::ZERO);
    println!("Expliziter Kontextwechsel zu foo");
}

fn bar() {
    println!("Expliziter Kontext bei bar");
    gevent::sleep(Duration::ZERO);
    println!("Expliziter Kontextwechsel zu bar");
}

fn main() {
    gevent::joinall([gevent::spawn(foo), gevent::spawn(bar)]);
}
