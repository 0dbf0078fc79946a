//! Tutorial section "Greenlets kreieren", the `MyGreenlet` subclass: Rust
//! has no subclassing, so the state goes into a struct with a `run(self)`
//! method, and the greenlet is `Greenlet::new(move || g.run())`
//! (`MyGreenlet::into_greenlet`).
//!
//! Run: `cargo run --example my_greenlet`

use std::time::Duration;

use gevent::Greenlet;

struct MyGreenlet {
    message: String,
    n: Duration,
}

impl MyGreenlet {
    /// The tutorial's `_run`.
    fn run(self) {
        println!("{}", self.message);
        gevent::sleep(self.n);
    }

    /// A greenlet that will run [`MyGreenlet::run`]; created, not started.
    fn into_greenlet(self) -> Greenlet<()> {
        Greenlet::new(move || self.run())
    }
}

fn main() {
    let g = MyGreenlet { message: "Hallo!".to_owned(), n: Duration::from_millis(30) }.into_greenlet();
    g.start();
    g.join();
}
