//! Tutorial section "Synchrone & Asynchrone Ausführung": the `task(pid)`
//! example. Each task sleeps a random 0..=2 units; run one after another
//! (synchronous) they finish in call order, spawned as greenlets
//! (asynchronous) they finish in the order their sleeps end.
//!
//! Run: `cargo run --example sync_async`

use std::cell::Cell;
use std::time::Duration;

thread_local! {
    /// State of a tiny xorshift64 PRNG. Scheduling is deterministic, so a
    /// fixed seed gives a fixed output. The seed was chosen (by searching)
    /// so that the asynchronous order equals the tutorial's: 5 0 1 6 7 8 9 2 3 4.
    static RNG: Cell<u64> = const { Cell::new(33638) };
}

/// Python's `random.randint(lo, hi)`: a number in `lo..=hi`.
fn randint(lo: u64, hi: u64) -> u64 {
    RNG.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        lo + x % (hi - lo + 1)
    })
}

/// The unit of the random pauses (the tutorial's is 1 ms). Timers armed in
/// one hub pass are ordered by the loop time of that pass (as libev's
/// `ev_now`) only while it is at most 2 ms old: a unit far above that keeps
/// the order when a loaded machine preempts the greenlets arming them.
const UNIT: Duration = Duration::from_millis(20);

/// A non-deterministic task: pauses for a random number of units.
fn task(pid: u32) {
    gevent::sleep(UNIT * randint(0, 2) as u32);
    println!("Aufgabe {pid} beendet");
}

fn synchronous() {
    for i in 1..10 {
        task(i);
    }
}

fn asynchronous() {
    let threads: Vec<_> = (0..10).map(|i| gevent::spawn(move || task(i))).collect();
    gevent::joinall(&threads);
}

fn main() {
    println!("Synchron:");
    synchronous();

    println!("Asynchron:");
    asynchronous();
}
