//! Tutorial section "Thread Locals": greenlet-local storage. Each greenlet
//! sees its own `Stash`; `f2` never set `x`, so in its stash `x` is unset.
//!
//! Python's `local()` takes attributes on the fly and raises
//! `AttributeError` for one that was never set; here the stash is a struct
//! whose fields are `Option`s, and `None` plays the missing attribute.
//!
//! The tutorial's output (1, 2, "x ist nicht lokal in f2") is what gevent
//! prints: `f1` runs first, then `f2`.
//!
//! Run: `cargo run --example thread_locals`

use gevent::local::Local;

/// The attributes the greenlets set on the tutorial's `stash`.
#[derive(Default)]
struct Stash {
    x: Option<i32>,
    y: Option<i32>,
}

fn f1(stash: Local<Stash>) {
    stash.with(|s| s.x = Some(1));
    println!("{}", stash.with(|s| s.x.expect("set just now")));
}

fn f2(stash: Local<Stash>) {
    stash.with(|s| s.y = Some(2));
    println!("{}", stash.with(|s| s.y.expect("set just now")));

    match stash.with(|s| s.x) {
        Some(x) => println!("{x}"),
        None => println!("x ist nicht lokal in f2"), // Python: AttributeError
    }
}

fn main() {
    let stash = Local::new();
    let g1 = gevent::spawn({
        let s = stash.clone();
        move || f1(s)
    });
    let g2 = gevent::spawn(move || f2(stash));
    gevent::joinall([g1, g2]);
}
