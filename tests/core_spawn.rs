//! Creating and scheduling greenlets: `spawn`, `spawn_later`,
//! `Greenlet::new`/`start`/`start_later`, the builder, names and ids,
//! `getcurrent`, `sleep`/`yield_now` and the deterministic FIFO order.

mod core_common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use core_common::{ms, Trace};
use gevent::{Greenlet, GreenletRef};

#[test]
fn spawn_runs_when_the_spawner_blocks_and_returns_the_value() {
    let trace = Trace::new();
    let t = trace.clone();
    let g = gevent::spawn(move || {
        t.push("child");
        6 * 7
    });
    trace.push("spawner");
    assert!(g.started());
    assert!(!g.dead(), "spawn only queues the greenlet");
    assert_eq!(g.get(), Ok(42));
    assert_eq!(trace.get(), ["spawner", "child"]);
}

#[test]
fn spawn_order_is_fifo() {
    let trace = Trace::new();
    let gs: Vec<Greenlet<()>> = (0..20)
        .map(|i| {
            let t = trace.clone();
            gevent::spawn(move || t.push(i))
        })
        .collect();
    gevent::joinall(&gs);
    assert_eq!(trace.get(), (0..20).collect::<Vec<_>>());
}

#[test]
fn yield_round_robin_is_a_strict_interleaving() {
    const N: usize = 5;
    const ROUNDS: usize = 50;
    let trace = Trace::new();
    let gs: Vec<Greenlet<()>> = (0..N)
        .map(|i| {
            let t = trace.clone();
            gevent::spawn(move || {
                for r in 0..ROUNDS {
                    t.push((r, i));
                    gevent::sleep(Duration::ZERO);
                }
            })
        })
        .collect();
    gevent::joinall(&gs);
    let expect: Vec<(usize, usize)> = (0..ROUNDS).flat_map(|r| (0..N).map(move |i| (r, i))).collect();
    assert_eq!(trace.get(), expect);
}

#[test]
fn yield_now_lets_every_ready_greenlet_run_once_then_resumes() {
    let trace = Trace::new();
    for i in 0..3 {
        let t = trace.clone();
        gevent::spawn(move || {
            t.push(format!("g{i} a"));
            gevent::yield_now();
            t.push(format!("g{i} b"));
        });
    }
    trace.push("main 1".to_string());
    gevent::yield_now();
    trace.push("main 2".to_string());
    gevent::yield_now();
    trace.push("main 3".to_string());
    assert_eq!(trace.get(), ["main 1", "g0 a", "g1 a", "g2 a", "main 2", "g0 b", "g1 b", "g2 b", "main 3"]);
}

#[test]
fn main_takes_part_in_the_round_robin() {
    let trace = Trace::new();
    let t = trace.clone();
    let g = gevent::spawn(move || {
        for _ in 0..3 {
            t.push('g');
            gevent::yield_now();
        }
    });
    for _ in 0..3 {
        trace.push('m');
        gevent::yield_now();
    }
    g.join();
    assert_eq!(trace.get(), ['m', 'g', 'm', 'g', 'm', 'g']);
}

#[test]
fn sleep_takes_at_least_its_duration() {
    let t = Instant::now();
    gevent::sleep(ms(20));
    assert!(t.elapsed() >= ms(20));
    let g = gevent::spawn(|| {
        let t = Instant::now();
        gevent::sleep(ms(15));
        t.elapsed()
    });
    assert!(g.get().unwrap() >= ms(15));
}

#[test]
fn sleepers_wake_by_deadline() {
    let trace = Trace::new();
    let gs: Vec<Greenlet<()>> = [60u64, 20, 40, 0, 10]
        .into_iter()
        .map(|d| {
            let t = trace.clone();
            gevent::spawn(move || {
                gevent::sleep(ms(d));
                t.push(d);
            })
        })
        .collect();
    gevent::joinall(&gs);
    assert_eq!(trace.get(), [0, 10, 20, 40, 60]);
}

#[test]
fn overdue_timers_fire_by_deadline_then_creation_order() {
    // All timers are overdue when the hub next looks (the thread is blocked
    // meanwhile), so only their order decides: deadline first, then the
    // order they were created in.
    let trace = Trace::new();
    let mut gs = Vec::new();
    for (name, d) in [("a", 30u64), ("b", 10), ("c", 20), ("d", 10), ("e", 30)] {
        let t = trace.clone();
        gs.push(gevent::spawn_later(ms(d), move || t.push(name)));
    }
    std::thread::sleep(ms(50));
    gevent::joinall(&gs);
    assert_eq!(trace.get(), ["b", "d", "c", "a", "e"]);
}

#[test]
fn timers_never_fire_early_and_a_long_pass_falls_back_to_real_time() {
    // Timers armed in one pass share the hub's loop time (as libev's ev_now)
    // only while it is fresh (a couple of milliseconds): `b` (10 ms) is armed
    // 30 ms after `a` (20 ms), far past that, so each is ordered by its real
    // due time, and neither fires before it.
    let trace = Trace::new();
    let t0 = Instant::now();
    let ta = trace.clone();
    let a = gevent::spawn_later(ms(20), move || ta.push(("a", t0.elapsed())));
    std::thread::sleep(ms(30));
    let tb = trace.clone();
    let b = gevent::spawn_later(ms(10), move || tb.push(("b", t0.elapsed())));
    gevent::joinall([&a, &b]);
    let got = trace.get();
    assert_eq!(got.iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["a", "b"]);
    assert!(got[0].1 >= ms(20), "a fired before its due time: {got:?}");
    assert!(got[1].1 >= ms(40), "b fired before its due time: {got:?}");
}

#[test]
fn a_sleep_never_ends_early_in_a_long_pass() {
    // Arm something so the pass has a loop time, then keep the thread busy:
    // a sleep armed later in the same pass still lasts its full duration.
    let pending = gevent::spawn_later(Duration::from_secs(3600), || ());
    std::thread::sleep(ms(30));
    let t = Instant::now();
    gevent::sleep(ms(20));
    assert!(t.elapsed() >= ms(20), "slept only {:?}", t.elapsed());
    pending.kill();
}

#[test]
fn spawn_later_starts_after_the_delay() {
    let t0 = Instant::now();
    // Far longer than the 1 ms join below (a preempted test thread could
    // let a close deadline pass before that join is armed).
    let g = gevent::spawn_later(ms(200), move || t0.elapsed());
    assert!(g.started(), "start_later counts as started");
    assert!(!g.dead());
    assert!(!g.join_timeout(ms(1)), "not before its delay");
    let waited = g.get().unwrap();
    assert!(waited >= ms(200), "ran after {waited:?}");
}

#[test]
fn new_does_not_run_until_started() {
    let trace = Trace::new();
    let t = trace.clone();
    let g = Greenlet::new(move || t.push("ran"));
    assert!(!g.started());
    gevent::sleep(ms(2));
    assert!(trace.get().is_empty(), "a greenlet that was not started never runs");
    assert!(!g.dead() && !g.ready());
    g.start();
    assert!(g.started());
    g.start(); // no-op
    g.join();
    assert_eq!(trace.get(), ["ran"]);
    g.start(); // no-op on a dead greenlet
    gevent::sleep(ms(1));
    assert_eq!(trace.get(), ["ran"]);
    assert!(g.started(), "started() stays true after death");
}

#[test]
fn start_later_and_start_twice_are_no_ops_once_started() {
    let trace = Trace::new();
    let t = trace.clone();
    let g = Greenlet::new(move || t.push(1));
    // Far later than the 1 ms ones (a preempted test thread could let a
    // close deadline pass before the sleep below is armed).
    g.start_later(ms(500));
    g.start();
    g.start_later(ms(1));
    gevent::sleep(ms(1));
    assert!(trace.get().is_empty(), "the first start_later decides");
    g.join();
    assert_eq!(trace.get(), [1]);
    let t = trace.clone();
    let h = Greenlet::spawn(move || t.push(2));
    h.start_later(ms(1));
    h.join();
    assert_eq!(trace.get(), [1, 2]);
}

#[test]

fn dropping_every_handle_of_an_unstarted_greenlet_frees_it() {
    let drops = std::rc::Rc::new(std::cell::Cell::new(0));
    let guard = core_common::DropGuard(drops.clone());
    drop(Greenlet::new(move || drop(guard)));
    gevent::yield_now();
    assert_eq!(gevent::hub::stats().greenlets, 1, "the hub still holds the greenlet");
    assert_eq!(drops.get(), 1, "its closure was not dropped");
}

#[test]
fn state_queries_follow_the_life_cycle() {
    let g = Greenlet::new(|| {
        gevent::sleep(ms(1));
        5
    });
    assert!(!g.started() && !g.ready() && !g.dead() && !g.successful());
    assert_eq!(g.value(), None);
    assert_eq!(g.exception(), None);
    g.start();
    gevent::yield_now(); // now running, blocked in sleep
    assert!(g.started() && !g.ready() && !g.dead() && !g.successful());
    assert_eq!(g.value(), None, "no value while running");
    g.join();
    assert!(g.started() && g.ready() && g.dead() && g.successful());
    assert_eq!(g.value(), Some(5));
    assert_eq!(g.exception(), None);
    let r: &GreenletRef = g.as_ref();
    assert!(r.started() && r.ready() && r.dead() && r.successful());
    assert_eq!(r.exception(), None);
}

#[test]
fn builder_names_and_sizes() {
    let g = Greenlet::builder().name("x").spawn(|| gevent::getcurrent().name());
    assert_eq!(g.name(), "x");
    assert_eq!(g.get(), Ok("x".to_string()));
    let big = Greenlet::builder().name("big").stack_size(512 << 10).spawn(|| {
        // Uses more than the default stack (64 KiB) holds.
        big_frame()
    });
    assert_eq!(big.get(), Ok(7 * (128 << 10)));
    let tiny = Greenlet::builder().stack_size(1).build(|| 1);
    tiny.start();
    assert_eq!(tiny.get(), Ok(1), "tiny sizes are rounded up to the minimum");
    let built = Greenlet::builder().name("later").build(|| 2);
    assert!(!built.started(), "build does not start");
    built.start();
    assert_eq!(built.get(), Ok(2));
}

#[inline(never)]
fn big_frame() -> usize {
    let mut buf = [0u8; 128 << 10];
    for b in buf.iter_mut() {
        *b = std::hint::black_box(7);
    }
    std::hint::black_box(&buf).iter().map(|&b| b as usize).sum()
}

#[test]
fn default_stack_size_of_the_hub() {
    std::thread::spawn(|| {
        assert_eq!(gevent::hub::default_stack_size(), gevent::DEFAULT_STACK_SIZE);
        gevent::hub::set_default_stack_size(256 << 10);
        assert_eq!(gevent::hub::default_stack_size(), 256 << 10);
        // Big enough for the 128 KiB frame now, without a builder size.
        assert_eq!(gevent::spawn(big_frame).get(), Ok(7 * (128 << 10)));
        gevent::hub::set_default_stack_size(1);
        assert_eq!(gevent::hub::default_stack_size(), gevent::MIN_STACK_SIZE);
        assert_eq!(gevent::spawn(|| 3).get(), Ok(3));
    })
    .join()
    .unwrap();
}

#[test]
fn names_default_and_set_name() {
    let g = gevent::spawn(|| ());
    assert_eq!(g.name(), format!("Greenlet-{}", g.id()));
    g.set_name("renamed");
    assert_eq!(g.name(), "renamed");
    let r: &GreenletRef = g.as_ref();
    assert_eq!(r.name(), "renamed");
    r.set_name("again");
    assert_eq!(g.name(), "again");
    let inner = gevent::spawn(|| {
        gevent::getcurrent().set_name("self-named");
        gevent::getcurrent().name()
    });
    assert_eq!(inner.get(), Ok("self-named".to_string()));
    assert_eq!(inner.name(), "self-named");
    assert_eq!(gevent::getcurrent().name(), "main");
    g.join();
}

#[test]
fn ids_are_unique_within_and_across_threads() {
    let mut ids: HashSet<u64> = HashSet::new();
    let gs: Vec<Greenlet<u64>> = (0..5000).map(|_| gevent::spawn(|| gevent::getcurrent().id())).collect();
    for g in &gs {
        assert!(ids.insert(g.id()), "duplicate id {}", g.id());
    }
    assert!(ids.insert(gevent::getcurrent().id()), "main shares an id");
    for g in &gs {
        assert_eq!(g.get(), Ok(g.id()));
    }
    let others: Vec<Vec<u64>> = (0..3)
        .map(|_| {
            std::thread::spawn(|| {
                let gs: Vec<Greenlet<()>> = (0..5000).map(|_| gevent::spawn(|| ())).collect();
                gevent::joinall(&gs);
                let mut v: Vec<u64> = gs.iter().map(|g| g.id()).collect();
                v.push(gevent::getcurrent().id());
                v
            })
        })
        .map(|t| t.join().unwrap())
        .collect();
    for id in others.into_iter().flatten() {
        assert!(ids.insert(id), "id {id} used by two threads");
    }
}

#[test]
#[allow(clippy::mutable_key_type)] // GreenletRef hashes by its immutable id
fn greenlet_refs_compare_and_hash_by_identity() {
    let a = gevent::spawn(gevent::getcurrent);
    let b = gevent::spawn(|| 1);
    let a_ref: GreenletRef = a.as_ref().clone();
    assert_eq!(&a_ref, a.as_ref());
    assert_eq!(a.clone().as_ref(), a.as_ref(), "clones are the same greenlet");
    assert_ne!(a.as_ref(), b.as_ref());
    let set: HashSet<GreenletRef> =
        [a.as_ref().clone(), b.as_ref().clone(), a_ref.clone(), a.as_greenlet_ref().clone()].into();
    assert_eq!(set.len(), 2);
    assert!(set.contains(b.as_ref()));
    let inside = a.get().unwrap();
    assert_eq!(&inside, a.as_ref(), "getcurrent() inside is the greenlet's own handle");
    assert_ne!(gevent::getcurrent(), a_ref);
    assert_eq!(gevent::getcurrent(), gevent::getcurrent());
    assert_eq!(GreenletRef::as_ref(&a_ref), &a_ref);
    b.join();
}

#[test]
fn handles_are_debug() {
    let g = Greenlet::builder().name("dbg").spawn(|| 1);
    let s = format!("{g:?}");
    assert!(s.contains("dbg"), "{s}");
    let r = format!("{:?}", g.as_ref());
    assert!(r.contains("dbg"), "{r}");
    g.join();
    assert!(format!("{:?}", gevent::Greenlet::builder().name("bname")).contains("bname"));
}

#[test]
fn getcurrent_names_the_running_greenlet() {
    let main = gevent::getcurrent();
    assert_eq!(main.name(), "main");
    assert!(main.started() && !main.dead());
    let g = gevent::spawn(move || {
        let me = gevent::getcurrent();
        (me.name(), me != main)
    });
    let (name, differs) = g.get().unwrap();
    assert_eq!(name, g.name());
    assert!(differs);
}

#[test]
fn greenlets_spawn_greenlets() {
    let trace = Trace::new();
    let t = trace.clone();
    let outer = gevent::spawn(move || {
        let t2 = t.clone();
        let inner = gevent::spawn(move || {
            t2.push("inner");
            3
        });
        t.push("outer");
        inner.get().unwrap() + 1
    });
    assert_eq!(outer.get(), Ok(4));
    assert_eq!(trace.get(), ["outer", "inner"]);
}

#[test]
fn many_greenlets_at_once() {
    let gs: Vec<Greenlet<usize>> = (0..10_000)
        .map(|i| {
            gevent::spawn(move || {
                gevent::yield_now();
                i * 2
            })
        })
        .collect();
    let sum: usize = gs.iter().map(|g| g.get().unwrap()).sum();
    assert_eq!(sum, 10_000 * 9_999);
    assert_eq!(gevent::hub::stats().greenlets, 1, "only main is left");
}

/// A small program mixing spawns, yields, joins, kills and zero-length
/// timeouts (due at the next pass boundary, so no wall-clock race); it must
/// give the same trace every time.
fn program() -> Vec<String> {
    let trace = Trace::new();
    let mut gs = Vec::new();
    for i in 0..6u64 {
        let t = trace.clone();
        gs.push(gevent::spawn(move || {
            for r in 0..5 {
                t.push(format!("{i}.{r}"));
                match (i + r) % 4 {
                    0 => gevent::yield_now(),
                    1 => {
                        let out = gevent::with_timeout(Duration::ZERO, gevent::yield_now);
                        t.push(format!("{i}.{r} {out:?}"));
                    }
                    2 => {
                        let t2 = t.clone();
                        let child = gevent::spawn(move || {
                            t2.push(format!("child of {i}"));
                            gevent::yield_now();
                        });
                        gevent::yield_now();
                        child.join();
                    }
                    _ => gevent::sleep(Duration::ZERO),
                }
            }
            t.push(format!("{i} done"));
        }));
    }
    gevent::yield_now();
    gevent::yield_now();
    gs[3].kill();
    trace.push("killed 3".into());
    gs[5].kill_nowait();
    gevent::joinall(&gs);
    trace.get()
}

#[test]
fn scheduling_is_deterministic() {
    let first = program();
    for _ in 0..3 {
        assert_eq!(program(), first);
    }
    let in_thread = std::thread::spawn(program).join().unwrap();
    assert_eq!(in_thread, first);
}
