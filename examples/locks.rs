//! Tutorial section "Locks und Semaphoren": a `BoundedSemaphore(2)` limits
//! how many workers are inside at once. `worker1` acquires and releases by
//! hand, `worker2` uses a guard (Python's `with sem:`); both run through a
//! pool's `map`. The third `worker2` waits until a permit is released.
//!
//! The tutorial's `Pool()` has no size limit; any size of at least three
//! behaves the same here. Its typo "git Semaphore frei" in `worker1` is
//! kept, so the output matches the tutorial's verbatim.
//!
//! Run: `cargo run --example locks`

use std::time::Duration;

use gevent::lock::BoundedSemaphore;
use gevent::pool::Pool;

fn worker1(sem: &BoundedSemaphore, n: u32) {
    sem.acquire();
    println!("Arbeiter {n} akquiriert Semaphore");
    gevent::sleep(Duration::ZERO);
    sem.release();
    println!("Arbeiter {n} git Semaphore frei");
}

fn worker2(sem: &BoundedSemaphore, n: u32) {
    {
        let _with = sem.guard();
        println!("Arbeiter {n} akquiriert Semaphore");
        gevent::sleep(Duration::ZERO);
    }
    println!("Arbeiter {n} gibt Semaphore frei");
}

fn main() {
    let sem = BoundedSemaphore::new(2);

    let pool = Pool::new(10);
    let s = sem.clone();
    pool.map(move |n| worker1(&s, n), 0..2);
    let s = sem.clone();
    pool.map(move |n| worker2(&s, n), 3..6);
}
