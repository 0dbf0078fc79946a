//! Tutorial section "Determinismus" (the gevent half): the same ten greenlets,
//! run four times, finish in the same order every time, so `True` is printed.
//!
//! The tutorial uses `Pool(10).imap_unordered(echo, xrange(10))`; here each
//! greenlet appends its result to a shared list when it finishes, which
//! collects the results in completion order just the same.
//!
//! Run: `cargo run --example determinism`

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

fn echo(i: u32) -> u32 {
    gevent::sleep(Duration::from_millis(1));
    i
}

/// `echo` over `0..10` in ten greenlets; results in completion order.
fn imap_unordered() -> Vec<u32> {
    let done = Rc::new(RefCell::new(Vec::new()));
    let greenlets: Vec<_> = (0..10)
        .map(|i| {
            let done = Rc::clone(&done);
            gevent::spawn(move || {
                let v = echo(i); // not inside `borrow_mut()`: echo sleeps
                done.borrow_mut().push(v);
            })
        })
        .collect();
    gevent::joinall(&greenlets);
    done.take()
}

fn main() {
    let run1 = imap_unordered();
    let run2 = imap_unordered();
    let run3 = imap_unordered();
    let run4 = imap_unordered();

    assert_eq!(run1.len(), 10);
    let same = run1 == run2 && run2 == run3 && run3 == run4;
    println!("{}", if same { "True" } else { "False" });
}
