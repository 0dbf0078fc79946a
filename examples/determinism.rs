//! Tutorial section "Determinismus": `echo` over ten inputs, four times,
//! through a pool whose results come in completion order
//! (`imap_unordered`). A pool of ten OS threads (the tutorial's
//! `multiprocessing` pool) finishes them in an order the OS scheduler
//! picks, which usually differs between runs: the first line is whatever
//! the four runs gave, `False` as in the tutorial unless all four happened
//! to agree. A gevent `Pool(10)` finishes them in the same order every
//! time: the second line is `True`.
//!
//! Run: `cargo run --example determinism`

use std::sync::mpsc;
use std::time::Duration;

use gevent::pool::Pool;

fn echo(i: u32) -> u32 {
    gevent::sleep(Duration::from_millis(1));
    i
}

/// `echo` over `0..10` on ten OS threads; the results in the order the
/// threads finished (`multiprocessing.Pool(10).imap_unordered`).
fn threads_imap_unordered() -> Vec<u32> {
    let (tx, rx) = mpsc::channel();
    let threads: Vec<_> = (0..10)
        .map(|i| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(1));
                tx.send(i).expect("the collector outlives the threads");
            })
        })
        .collect();
    drop(tx);
    let results = rx.iter().collect();
    for t in threads {
        t.join().expect("an echo thread panicked");
    }
    results
}

/// Whether four runs gave the same sequence (`run1 == run2 == run3 == run4`).
fn all_equal(runs: &[Vec<u32>; 4]) -> bool {
    runs.iter().all(|r| r.len() == 10 && *r == runs[0])
}

fn python_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

fn main() {
    // Non-deterministic: a pool of OS threads.
    let runs = [(); 4].map(|()| threads_imap_unordered());
    println!("{}", python_bool(all_equal(&runs)));

    // Deterministic: a gevent pool.
    let p = Pool::new(10);
    let runs = [(); 4].map(|()| p.imap_unordered(echo, 0..10).collect::<Vec<_>>());
    println!("{}", python_bool(all_equal(&runs)));
}
