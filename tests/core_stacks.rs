//! Steady state: once warmed up, spawn + join maps no memory. This file
//! holds a single test so no other test thread maps memory meanwhile (the
//! process-wide `/proc/self/maps` is checked too).

use std::hint::black_box;

use gevent::Greenlet;

/// The tests of this binary run one at a time: one thread's hub mapping
/// its stacks would grow the maps another test counts.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

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
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
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

/// `Builder::stack_size(0)` asks for the smallest stack (16 KiB), not the
/// hub's default: it gets the same pooled stack as a 16 KiB request, not
/// the default-sized one. (Stacks are pooled per size, most recent first.)
#[test]
fn a_builder_stack_size_of_zero_is_the_minimum() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    gevent::hub::set_default_stack_size(256 * 1024);
    let probe = |size: Option<usize>| {
        let b = gevent::Greenlet::builder();
        let b = match size {
            Some(s) => b.stack_size(s),
            None => b,
        };
        b.spawn(|| {
            let x = 0u8;
            std::hint::black_box(&x) as *const u8 as usize
        })
        .get()
        .unwrap()
    };
    // Warm one stack of each size, then ask again.
    let (min, default) = (probe(Some(16 * 1024)), probe(None));
    assert_ne!(min, default);
    assert_eq!(probe(Some(0)), min, "stack_size(0) got the default-sized stack");
    assert_eq!(probe(None), default);
}
