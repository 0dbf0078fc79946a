//! Holds N greenlets (default 1,000,000) blocked at once, each on its own
//! timer, and reports memory and timing:
//!
//! ```text
//! cargo run --release --example million [N] [stack_kib]
//! ```
//!
//! Prints the process RSS before and with all greenlets blocked, RSS per
//! greenlet, and how long spawning and finishing took. Runs on stock kernel
//! settings: stacks are carved from large mappings with guard pages installed
//! by `madvise(MADV_GUARD_INSTALL)`, so `vm.max_map_count` (65530) is no limit.
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: usize = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("resident pages");
    pages * 4096
}

fn max_map_count() -> String {
    std::fs::read_to_string("/proc/sys/vm/max_map_count").map(|s| s.trim().to_owned()).unwrap_or_default()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|s| s.parse().expect("N")).unwrap_or(1_000_000);
    if let Some(kib) = args.next() {
        gevent::hub::set_default_stack_size(kib.parse::<usize>().expect("stack KiB") * 1024);
    }
    println!(
        "greenlets: {n}, stack: {} KiB, vm.max_map_count: {}",
        gevent::hub::default_stack_size() / 1024,
        max_map_count()
    );

    let before = rss_bytes();
    let woken = Rc::new(Cell::new(0usize));
    let hold = Duration::from_millis(500);
    let t0 = Instant::now();
    let mut greenlets = Vec::with_capacity(n);
    for _ in 0..n {
        let woken = woken.clone();
        greenlets.push(gevent::spawn(move || {
            gevent::sleep(hold);
            woken.set(woken.get() + 1);
        }));
    }
    let spawned = t0.elapsed();
    // Let every greenlet run up to its blocking point.
    gevent::sleep(Duration::ZERO);
    let blocked = t0.elapsed();
    let stats = gevent::hub::stats();
    let with_all = rss_bytes();
    let per = (with_all - before) as f64 / n as f64;
    println!("spawn {n}: {:.1} ms ({:.0} ns per greenlet)", ms(spawned), spawned.as_nanos() as f64 / n as f64);
    println!("all started and blocked after {:.1} ms; {} timers armed", ms(blocked), stats.timers);
    println!("RSS: {:.1} MiB before, {:.1} MiB with all blocked", mib(before), mib(with_all));
    println!("RSS per blocked greenlet: {per:.0} bytes ({:.2} KiB)", per / 1024.0);
    let t1 = Instant::now();
    gevent::joinall(&greenlets);
    println!("all {} finished {:.1} ms after the last one started waiting", woken.get(), ms(t1.elapsed()));
    assert_eq!(woken.get(), n, "every greenlet ran to completion");
    println!("stack chunks mapped: {}", gevent::hub::stats().stack_chunks);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}
