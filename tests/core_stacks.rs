//! Steady state: once warmed up, spawn + join maps no memory. This file
//! holds a single test so no other test thread maps memory meanwhile (the
//! process-wide `/proc/self/maps` is checked too).

use std::hint::black_box;

use gevent::Greenlet;

fn maps_lines() -> usize {
    std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps").lines().count()
}

fn cycle_one() {
    let g = gevent::spawn(|| black_box(1u64) + 1);
    assert_eq!(g.get(), Ok(2));
}

fn cycle_batch(n: usize) {
    let gs: Vec<Greenlet<usize>> = (0..n)
        .map(|i| {
            gevent::spawn(move || {
                gevent::yield_now();
                i
            })
        })
        .collect();
    gevent::joinall(&gs);
}

fn cycle_sized() {
    let g = Greenlet::builder().stack_size(256 << 10).spawn(|| {
        gevent::sleep(std::time::Duration::ZERO);
        black_box(3)
    });
    g.join();
}

#[test]
fn spawn_join_cycles_map_nothing_once_warm() {
    // Warm up: the hub, the stack pool's chunks for every size used, the
    // allocator's arenas, the run queue's and slabs' capacity.
    for _ in 0..3 {
        for _ in 0..100 {
            cycle_one();
        }
        cycle_batch(200);
        for _ in 0..10 {
            cycle_sized();
        }
        let c = gevent::coroutine::Coroutine::new(|_, v| v);
        drop(c);
    }
    let chunks = gevent::hub::stats().stack_chunks;
    let maps = maps_lines();
    for _ in 0..10_000 {
        cycle_one();
    }
    for _ in 0..20 {
        cycle_batch(200);
    }
    for _ in 0..500 {
        cycle_sized();
    }
    let after = gevent::hub::stats();
    assert_eq!(after.stack_chunks, chunks, "a spawn in the steady state mapped a new chunk");
    assert_eq!(after.greenlets, 1);
    assert!(after.free_stacks >= 200, "{after:?}");
    let maps_after = maps_lines();
    assert!(maps_after <= maps, "/proc/self/maps grew from {maps} to {maps_after} lines");
}
