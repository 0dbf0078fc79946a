//! Spawn-and-join benchmarks, gevent beside tokio and may in the same run.
//!
//! - `spawn_join_one`: one iteration spawns one trivial unit and waits for its
//!   result: `gevent::spawn(|| 1).get()` from the main greenlet, `tokio::spawn(..)
//!   .await` inside one `block_on` on a current-thread runtime, `go!(..).join()`
//!   inside a may coroutine on may's single worker.
//! - `spawn_join_100k`: spawn 100,000 trivial units, then wait for all of them;
//!   one iteration is one unit (batches of exactly 100,000, time divided per unit).
//!   may is the exception: see `may_go_join_all`, its batch is spawned from the
//!   main thread because it cannot hold 100k coroutines under `vm.max_map_count`.
//! - `group_100k`: the same batch spawned into a `gevent::pool::Group` and
//!   awaited with `Group::join` (each member leaves the group as it dies),
//!   beside tokio's `JoinSet` (spawn, then `join_next` until empty): what a
//!   server's handler set pays per connection.
//!
//! Run with `cargo bench -p gevent-bench --bench spawn`; the closing table gives the
//! time per spawn + join and the ratio gevent/peer.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use common::Figure;
use criterion::{Criterion, SamplingMode};

/// Units spawned before joining in `spawn_join_100k`.
const BATCH: u64 = 100_000;

fn spawn_join_one(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_join_one");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));

    group.bench_function("gevent_spawn_get", |b| {
        b.iter(|| black_box(gevent::spawn(|| black_box(1u64)).get().ok()));
    });

    group.bench_function("tokio_spawn_await", |b| {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("tokio current-thread runtime");
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(tokio::spawn(async { black_box(1u64) }).await.ok());
                }
                start.elapsed()
            })
        });
    });

    group.bench_function("may_go_join", |b| {
        b.iter_custom(|iters| {
            common::in_may(move || {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(may::go!(|| black_box(1u64)).join().ok());
                }
                start.elapsed()
            })
        });
    });

    group.finish();
}

/// Runs `batch` (which spawns and joins [`BATCH`] units and returns its elapsed
/// time) as often as needed to cover `iters` units, and scales the total to
/// `iters` units so criterion's time budget matches the real time spent.
fn per_unit(iters: u64, mut batch: impl FnMut() -> Duration) -> Duration {
    let batches = iters.div_ceil(BATCH);
    let total: Duration = (0..batches).map(|_| batch()).sum();
    total.mul_f64(iters as f64 / (batches * BATCH) as f64)
}

fn spawn_join_100k(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_join_100k");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    group.bench_function("gevent_spawn_joinall", |b| {
        b.iter_custom(|iters| {
            per_unit(iters, || {
                let start = Instant::now();
                let greenlets: Vec<_> = (0..BATCH).map(|_| gevent::spawn(|| black_box(1u64))).collect();
                gevent::joinall(&greenlets);
                let elapsed = start.elapsed();
                drop(greenlets);
                elapsed
            })
        });
    });

    group.bench_function("tokio_spawn_await_all", |b| {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("tokio current-thread runtime");
        b.iter_custom(|iters| {
            per_unit(iters, || {
                rt.block_on(async {
                    let start = Instant::now();
                    let handles: Vec<_> = (0..BATCH).map(|_| tokio::spawn(async { black_box(1u64) })).collect();
                    for h in handles {
                        black_box(h.await.ok());
                    }
                    start.elapsed()
                })
            })
        });
    });

    // may cannot hold 100k coroutines at once here: each stack is an mmap plus a
    // guard page (two mappings), and vm.max_map_count (65530 by default) runs out
    // near 32.7k. So its batch is spawned from the main thread while may's worker
    // runs them as they arrive: two threads at work, which favours may.
    group.bench_function("may_go_join_all", |b| {
        b.iter_custom(|iters| {
            per_unit(iters, || {
                let start = Instant::now();
                let handles: Vec<_> = (0..BATCH).map(|_| may::go!(|| black_box(1u64))).collect();
                for h in handles {
                    black_box(h.join().ok());
                }
                start.elapsed()
            })
        });
    });

    group.finish();
}

fn group_100k(c: &mut Criterion) {
    let mut group = c.benchmark_group("group_100k");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    group.bench_function("gevent_group_join", |b| {
        b.iter_custom(|iters| {
            per_unit(iters, || {
                let start = Instant::now();
                let set = gevent::pool::Group::new();
                for _ in 0..BATCH {
                    set.spawn(|| black_box(1u64));
                }
                set.join();
                start.elapsed()
            })
        });
    });

    group.bench_function("tokio_joinset", |b| {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("tokio current-thread runtime");
        b.iter_custom(|iters| {
            per_unit(iters, || {
                rt.block_on(async {
                    let start = Instant::now();
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..BATCH {
                        set.spawn(async { black_box(1u64) });
                    }
                    while let Some(r) = set.join_next().await {
                        black_box(r.ok());
                    }
                    start.elapsed()
                })
            })
        });
    });

    group.finish();
}

fn main() {
    let since = SystemTime::now();
    let mut c = common::setup();
    spawn_join_one(&mut c);
    spawn_join_100k(&mut c);
    group_100k(&mut c);
    c.final_summary();
    common::print_table(
        "spawn",
        &[
            Figure {
                title: "per spawn+join",
                group: "spawn_join_one",
                divisor: 1.0,
                gevent: "gevent_spawn_get",
                peers: &[("tokio", "tokio_spawn_await"), ("may", "may_go_join")],
            },
            Figure {
                title: "per unit of 100k",
                group: "spawn_join_100k",
                divisor: 1.0,
                gevent: "gevent_spawn_joinall",
                peers: &[("tokio", "tokio_spawn_await_all"), ("may", "may_go_join_all")],
            },
            Figure {
                title: "per member of a 100k group",
                group: "group_100k",
                divisor: 1.0,
                gevent: "gevent_group_join",
                peers: &[("tokio JoinSet", "tokio_joinset")],
            },
        ],
        since,
    );
}
