//! Context-switch benchmarks, gevent beside its peers in the same run.
//!
//! - `raw_switch`: one iteration is a resume + suspend round trip on a bare
//!   coroutine (two one-way switches): `gevent::coroutine` vs corosensei.
//! - `yield_pingpong`: one iteration is one yield between two units on one thread:
//!   two greenlets looping `gevent::sleep(Duration::ZERO)`, two tokio tasks looping
//!   `yield_now().await` on a current-thread runtime, two may coroutines looping
//!   `may::coroutine::yield_now()` on may's single worker.
//!
//! Run with `cargo bench -p gevent-bench --bench switch`; the closing table gives
//! nanoseconds per one-way switch and per yield, and the ratio gevent/peer.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use common::Figure;
use criterion::Criterion;

fn raw_switch(c: &mut Criterion) {
    let mut group = c.benchmark_group("raw_switch");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));

    group.bench_function("gevent_resume_suspend", |b| {
        let mut co = gevent::coroutine::Coroutine::new(|y, mut i| loop {
            i = y.suspend(i);
        });
        b.iter(|| black_box(co.resume(black_box(1))));
    });

    group.bench_function("corosensei_resume_suspend", |b| {
        let mut co = corosensei::Coroutine::new(|y: &corosensei::Yielder<usize, usize>, mut i| loop {
            i = y.suspend(i);
        });
        b.iter(|| black_box(co.resume(black_box(1))));
    });

    group.finish();
}

fn yield_pingpong(c: &mut Criterion) {
    let mut group = c.benchmark_group("yield_pingpong");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));

    // Each unit yields `iters` times, so `2 * iters` yields happen in all; halving
    // the elapsed time reports it per yield.
    group.bench_function("gevent_sleep_zero", |b| {
        b.iter_custom(common::gevent_yields);
    });

    group.bench_function("tokio_yield_now", |b| {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("tokio current-thread runtime");
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let start = Instant::now();
                let pinger = move || async move {
                    for _ in 0..iters {
                        tokio::task::yield_now().await;
                    }
                };
                let a = tokio::spawn(pinger());
                let b = tokio::spawn(pinger());
                a.await.expect("tokio task");
                b.await.expect("tokio task");
                start.elapsed() / 2
            })
        });
    });

    group.bench_function("may_yield_now", |b| {
        b.iter_custom(|iters| {
            common::in_may(move || {
                let start = Instant::now();
                let pinger = move || {
                    for _ in 0..iters {
                        may::coroutine::yield_now();
                    }
                };
                let a = may::go!(pinger);
                let b = may::go!(pinger);
                a.join().expect("may coroutine");
                b.join().expect("may coroutine");
                start.elapsed() / 2
            })
        });
    });

    group.finish();
}

fn main() {
    let since = SystemTime::now();
    let mut c = common::setup();
    raw_switch(&mut c);
    yield_pingpong(&mut c);
    c.final_summary();
    common::print_table(
        "switch",
        &[
            Figure {
                title: "ns per one-way switch",
                group: "raw_switch",
                divisor: 2.0,
                gevent: "gevent_resume_suspend",
                peers: &[("corosensei", "corosensei_resume_suspend")],
            },
            Figure {
                title: "ns per yield",
                group: "yield_pingpong",
                divisor: 1.0,
                gevent: "gevent_sleep_zero",
                peers: &[("tokio", "tokio_yield_now"), ("may", "may_yield_now")],
            },
        ],
        since,
    );
}
