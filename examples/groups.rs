//! Tutorial section "Groups und Pools": the three examples with output.
//! 1. `talk`: three greenlets, two added to a `Group` and joined, then the
//!    third added and joined (each talks three times without yielding).
//! 2. A group as a parallel dispatcher: `map` (every task sees all three
//!    members: a finished member leaves only after the greenlets that were
//!    ready run), then `imap` (results in input order) and `imap_unordered`
//!    (results in completion order) over tasks that sleep `3 - n` units
//!    (the tutorial's seconds, scaled down to 10 ms).
//! 3. A `Pool(2)`: its `map` runs at most two tasks at once.
//!
//! The greenlet ids differ from Python's `id(getcurrent())`; they are ours.
//!
//! Run: `cargo run --example groups`

use std::time::Duration;

use gevent::pool::{Group, Pool};

/// The tutorial's second.
const UNIT: Duration = Duration::from_millis(10);

fn talk(msg: &str) {
    for _ in 0..3 {
        println!("{msg}");
    }
}

/// Python's repr of the tuple `('task', n)`.
fn py_tuple((name, n): (&str, u32)) -> String {
    format!("('{name}', {n})")
}

fn intensive(n: u32) -> (&'static str, u32) {
    gevent::sleep(UNIT * (3 - n));
    ("task", n)
}

fn group_talk() {
    let g1 = gevent::spawn(|| talk("bar"));
    let g2 = gevent::spawn(|| talk("foo"));
    let g3 = gevent::spawn(|| talk("fizz"));

    let group = Group::new();
    group.add(&g1);
    group.add(&g2);
    group.join();

    group.add(&g3);
    group.join();
}

fn group_dispatch() {
    let group = Group::new();
    let hello_from = {
        let group = group.clone();
        move |_n: u32| {
            println!("Ausmass der Gruppe: {}", group.len());
            println!("Hallo von Greenlet {}", gevent::getcurrent().id());
        }
    };
    group.map(hello_from, 0..3);

    println!("Geordnet");
    let ogroup = Group::new();
    for i in ogroup.imap(intensive, 0..3) {
        println!("{}", py_tuple(i));
    }

    println!("Ungeordnet");
    let igroup = Group::new();
    for i in igroup.imap_unordered(intensive, 0..3) {
        println!("{}", py_tuple(i));
    }
}

fn pool_map() {
    let pool = Pool::new(2);
    let hello_from = {
        let pool = pool.clone();
        move |_n: u32| println!("Ausmass des Pools {}", pool.len())
    };
    pool.map(hello_from, 0..3);
}

fn main() {
    group_talk();
    group_dispatch();
    pool_map();
}
