//! A tour of `gevent`: spawn, explicit switches with `sleep(ZERO)`,
//! join/get, kill, `with_timeout`, greenlet-locals, and a micro-measurement
//! of switching and spawning.
//!
//! Run: `cargo run --release --example tour [ITERATIONS]` (measurement
//! iterations, default 1 000 000).

use std::time::{Duration, Instant};

use gevent::local::Local;

/// Announces its drop: shows that `kill` unwinds the greenlet's stack.
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        println!("sleeper: guard dropped while unwinding");
    }
}

fn main() {
    let n: u32 = std::env::args().nth(1).map_or(1_000_000, |s| s.parse().expect("ITERATIONS"));

    // Spawned greenlets run once main blocks; sleep(ZERO) yields to the next.
    let player = |name: &'static str| {
        move || {
            for i in 1..=2 {
                println!("{name} {i}");
                gevent::sleep(Duration::ZERO);
            }
        }
    };
    gevent::joinall([gevent::spawn(player("ping")), gevent::spawn(player("pong"))]);

    // Results come back through the handle; get() waits for each.
    let squares: Vec<_> = (1..=4u64)
        .map(|i| {
            gevent::spawn(move || {
                gevent::sleep(Duration::from_millis(5 - i)); // the last one finishes first
                i * i
            })
        })
        .collect();
    let values: Vec<u64> = squares.iter().map(|g| g.get().unwrap()).collect();
    println!("squares: {values:?}");

    // kill() unwinds a greenlet at its blocking point; destructors run.
    let sleeper = gevent::spawn(|| {
        let _guard = Guard;
        gevent::sleep(Duration::from_secs(3600));
    });
    gevent::sleep(Duration::from_millis(1));
    sleeper.kill();
    println!("sleeper: {:?}", sleeper.exception());

    // Block-scoped timeouts.
    let hour = Duration::from_secs(3600);
    println!("slow: {:?}", gevent::with_timeout(Duration::from_millis(5), || gevent::sleep(hour)));
    println!("fast: {:?}", gevent::with_timeout(hour, || 6 * 7));

    // Every greenlet sees its own value of a Local.
    let user: Local<String> = Local::new();
    let sessions = ["alice", "bob"].map(|name| {
        let user = user.clone();
        gevent::spawn(move || {
            user.with(|u| *u = name.to_owned());
            gevent::sleep(Duration::ZERO); // the other session runs meanwhile
            user.with(|u| println!("session of {name}: user = {u}"));
        })
    });
    gevent::joinall(&sessions);
    user.with(|u| println!("main: user = {u:?}"));

    // Micro-measurement.
    let t = Instant::now();
    let yielder = move || (0..n).for_each(|_| gevent::sleep(Duration::ZERO));
    gevent::joinall([gevent::spawn(yielder), gevent::spawn(yielder)]);
    let per = t.elapsed().as_secs_f64() * 1e9 / f64::from(2 * n);
    println!("sleep(ZERO) switch: {per:.1} ns ({n} x 2 greenlets)");
    let t = Instant::now();
    (0..n).for_each(|_| gevent::spawn(|| ()).join());
    let per = t.elapsed().as_secs_f64() * 1e9 / f64::from(n);
    println!("spawn + join: {per:.1} ns ({n} iterations)");
}
