//! Synchronisation benchmarks, gevent beside its peers in the same run.
//!
//! - `queue_handoff`: a producer unit hands [`ITEMS`] items to a consumer unit
//!   through a channel; one iteration is one item (batches of exactly
//!   [`ITEMS`], time divided per item). gevent `Queue` (unbounded and
//!   `bounded(100)`) between two greenlets; tokio `mpsc::unbounded_channel` and
//!   `mpsc::channel(100)` between two tasks on a current-thread runtime; may
//!   `sync::mpsc::channel` (unbounded, may has no bounded mpsc) between two
//!   coroutines on may's single worker. Each consumer is started first.
//! - `event_pingpong`: one iteration is one hop (one unit waking the other and
//!   waiting for the reply is two hops): two greenlets bouncing through two
//!   `Event`s (set / wait / clear), two tokio tasks through two `Notify`s
//!   (`notify_one` / `notified().await`), two may coroutines through two mpsc
//!   channels. `gevent_sleep_zero` is our own per-yield figure, measured here
//!   again so the hop can be checked against the yield in the same run. The
//!   same with a timeout on every wait (`Event::wait_timeout`; tokio
//!   `time::timeout` around `notified()`), so each hop arms and cancels a timer.
//! - `event_set_many`: [`WAITERS`] units wait on one event; the time from the
//!   `set` until every waiter has run, per waiter. gevent `Event::set` +
//!   `joinall`; tokio `Notify::notify_waiters` + awaiting every task.
//! - `semaphore`: one iteration is one acquire + release. Uncontended from one
//!   unit: gevent `Semaphore(1)` `try_acquire`/`acquire` + `release`, tokio
//!   `Semaphore(1)` `try_acquire`/`acquire().await` + dropping the permit.
//!   Contended: four units on a one-permit semaphore, each looping acquire,
//!   yield (`sleep(ZERO)` / `yield_now`), release; per acquire.
//!
//! Run with `cargo bench -p gevent-bench --bench sync`; the closing table gives
//! the time per unit and the ratio gevent/peer.

mod common;

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::Figure;
use criterion::{BenchmarkGroup, Criterion, SamplingMode};

/// Items handed over per batch in `queue_handoff`.
const ITEMS: u64 = 100_000;
/// Waiters woken per batch in `event_set_many`.
const WAITERS: u64 = 10_000;
/// Bound of the bounded channels in `queue_handoff`.
const BOUND: usize = 100;
/// The timeout of every wait in the timed ping-pong (never reached).
const TIMED_WAIT: Duration = Duration::from_secs(100);
/// Units sharing the one-permit semaphore in the contended `semaphore` case.
const CONTENDERS: u32 = 4;

/// Runs `batch` (which handles `size` units and returns its elapsed time) as
/// often as needed to cover `iters` units, and scales the total to `iters` units
/// so criterion's time budget matches the real time spent.
fn per_unit(iters: u64, size: u64, mut batch: impl FnMut() -> Duration) -> Duration {
    let batches = iters.div_ceil(size);
    let total: Duration = (0..batches).map(|_| batch()).sum();
    total.mul_f64(iters as f64 / (batches * size) as f64)
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("tokio current-thread runtime")
}

fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, samples: usize, secs: f64) {
    group.sample_size(samples).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs_f64(secs));
}

// ---------------------------------------------------------------- queue_handoff

/// One batch through a gevent queue: consumer greenlet first, then producer.
fn gevent_handoff(q: gevent::queue::Queue<u64>) -> Duration {
    let start = Instant::now();
    let rx = q.clone();
    let consumer = gevent::spawn(move || {
        let mut sum = 0u64;
        for _ in 0..ITEMS {
            sum = sum.wrapping_add(rx.get());
        }
        black_box(sum)
    });
    let producer = gevent::spawn(move || {
        for i in 0..ITEMS {
            q.put(i);
        }
    });
    gevent::joinall([consumer.as_ref(), producer.as_ref()]);
    start.elapsed()
}

fn queue_handoff(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_handoff");
    configure(&mut group, 10, 2.0);
    group.sampling_mode(SamplingMode::Flat);

    group.bench_function("gevent_queue_unbounded", |b| {
        b.iter_custom(|iters| per_unit(iters, ITEMS, || gevent_handoff(gevent::queue::Queue::new())));
    });

    group.bench_function("gevent_queue_bounded_100", |b| {
        b.iter_custom(|iters| per_unit(iters, ITEMS, || gevent_handoff(gevent::queue::Queue::bounded(BOUND))));
    });

    group.bench_function("tokio_mpsc_unbounded", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            per_unit(iters, ITEMS, || {
                rt.block_on(async {
                    let start = Instant::now();
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
                    let consumer = tokio::spawn(async move {
                        let mut sum = 0u64;
                        for _ in 0..ITEMS {
                            sum = sum.wrapping_add(rx.recv().await.expect("item"));
                        }
                        black_box(sum)
                    });
                    let producer = tokio::spawn(async move {
                        for i in 0..ITEMS {
                            tx.send(i).expect("receiver alive");
                        }
                    });
                    consumer.await.expect("tokio task");
                    producer.await.expect("tokio task");
                    start.elapsed()
                })
            })
        });
    });

    group.bench_function("tokio_mpsc_bounded_100", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            per_unit(iters, ITEMS, || {
                rt.block_on(async {
                    let start = Instant::now();
                    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(BOUND);
                    let consumer = tokio::spawn(async move {
                        let mut sum = 0u64;
                        for _ in 0..ITEMS {
                            sum = sum.wrapping_add(rx.recv().await.expect("item"));
                        }
                        black_box(sum)
                    });
                    let producer = tokio::spawn(async move {
                        for i in 0..ITEMS {
                            tx.send(i).await.expect("receiver alive");
                        }
                    });
                    consumer.await.expect("tokio task");
                    producer.await.expect("tokio task");
                    start.elapsed()
                })
            })
        });
    });

    group.bench_function("may_mpsc_unbounded", |b| {
        b.iter_custom(|iters| {
            per_unit(iters, ITEMS, || {
                common::in_may(|| {
                    let start = Instant::now();
                    let (tx, rx) = may::sync::mpsc::channel::<u64>();
                    let consumer = may::go!(move || {
                        let mut sum = 0u64;
                        for _ in 0..ITEMS {
                            sum = sum.wrapping_add(rx.recv().expect("item"));
                        }
                        black_box(sum)
                    });
                    let producer = may::go!(move || {
                        for i in 0..ITEMS {
                            tx.send(i).expect("receiver alive");
                        }
                    });
                    consumer.join().expect("may coroutine");
                    producer.join().expect("may coroutine");
                    start.elapsed()
                })
            })
        });
    });

    group.finish();
}

// ---------------------------------------------------------------- event_pingpong

/// How each side of [`gevent_event_pingpong`] waits. A method that is
/// always inlined, so no call (and no `ret`) crosses the switch: a closure
/// here was not inlined, and returning to the other greenlet's call site
/// doubled the hop.
trait Wait: Copy + 'static {
    fn wait(self, e: &gevent::event::Event);
}

#[derive(Clone, Copy)]
struct Untimed;

impl Wait for Untimed {
    #[inline(always)]
    fn wait(self, e: &gevent::event::Event) {
        e.wait();
    }
}

#[derive(Clone, Copy)]
struct Timed;

impl Wait for Timed {
    #[inline(always)]
    fn wait(self, e: &gevent::event::Event) {
        assert!(e.wait_timeout(TIMED_WAIT));
    }
}

/// Two greenlets bouncing `iters` rounds through two events, each waiting
/// as `how` says; the time per hop. Each round is two hops (ping: A wakes
/// B, pong: B wakes A), so the elapsed time is halved.
fn gevent_event_pingpong(iters: u64, how: impl Wait) -> Duration {
    let (ping, pong) = (gevent::event::Event::new(), gevent::event::Event::new());
    let start = Instant::now();
    let a = gevent::spawn({
        let (ping, pong) = (ping.clone(), pong.clone());
        move || {
            for _ in 0..iters {
                ping.set();
                how.wait(&pong);
                pong.clear();
            }
        }
    });
    let b = gevent::spawn(move || {
        for _ in 0..iters {
            how.wait(&ping);
            ping.clear();
            pong.set();
        }
    });
    gevent::joinall([a.as_ref(), b.as_ref()]);
    start.elapsed() / 2
}

/// [`gevent_event_pingpong`] for two tokio tasks and two `Notify`s on `rt`;
/// with `timed`, every wait is inside `time::timeout`.
fn tokio_notify_pingpong(rt: &tokio::runtime::Runtime, iters: u64, timed: bool) -> Duration {
    async fn wait(n: &tokio::sync::Notify, timed: bool) {
        if timed {
            tokio::time::timeout(TIMED_WAIT, n.notified()).await.expect("in time");
        } else {
            n.notified().await;
        }
    }
    rt.block_on(async move {
        let (ping, pong) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
        let start = Instant::now();
        let a = tokio::spawn({
            let (ping, pong) = (ping.clone(), pong.clone());
            async move {
                for _ in 0..iters {
                    ping.notify_one();
                    wait(&pong, timed).await;
                }
            }
        });
        let b = tokio::spawn(async move {
            for _ in 0..iters {
                wait(&ping, timed).await;
                pong.notify_one();
            }
        });
        a.await.expect("tokio task");
        b.await.expect("tokio task");
        start.elapsed() / 2
    })
}

fn event_pingpong(c: &mut Criterion) {
    let mut group = c.benchmark_group("event_pingpong");
    configure(&mut group, 20, 2.0);

    group.bench_function("gevent_event", |b| {
        b.iter_custom(|iters| gevent_event_pingpong(iters, Untimed));
    });

    // With a (never reached) timeout on every wait: each hop arms and
    // cancels a timer.
    group.bench_function("gevent_event_timed", |b| {
        b.iter_custom(|iters| gevent_event_pingpong(iters, Timed));
    });

    group.bench_function("tokio_notify_timed", |b| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("tokio runtime");
        b.iter_custom(|iters| tokio_notify_pingpong(&rt, iters, true));
    });

    // As in the `switch` bench: two greenlets each yielding `iters` times.
    group.bench_function("gevent_sleep_zero", |b| {
        b.iter_custom(common::gevent_yields);
    });

    group.bench_function("tokio_notify", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| tokio_notify_pingpong(&rt, iters, false));
    });

    group.bench_function("may_mpsc", |b| {
        b.iter_custom(|iters| {
            common::in_may(move || {
                let (ping_tx, ping_rx) = may::sync::mpsc::channel::<()>();
                let (pong_tx, pong_rx) = may::sync::mpsc::channel::<()>();
                let start = Instant::now();
                let a = may::go!(move || {
                    for _ in 0..iters {
                        ping_tx.send(()).expect("peer alive");
                        pong_rx.recv().expect("pong");
                    }
                });
                let b = may::go!(move || {
                    for _ in 0..iters {
                        ping_rx.recv().expect("ping");
                        pong_tx.send(()).expect("peer alive");
                    }
                });
                a.join().expect("may coroutine");
                b.join().expect("may coroutine");
                start.elapsed() / 2
            })
        });
    });

    group.finish();
}

// ---------------------------------------------------------------- event_set_many

fn event_set_many(c: &mut Criterion) {
    let mut group = c.benchmark_group("event_set_many");
    configure(&mut group, 10, 2.0);
    group.sampling_mode(SamplingMode::Flat);

    group.bench_function("gevent_event_set", |b| {
        b.iter_custom(|iters| {
            per_unit(iters, WAITERS, || {
                let evt = gevent::event::Event::new();
                let parked = Rc::new(Cell::new(0u64));
                let waiters: Vec<_> = (0..WAITERS)
                    .map(|_| {
                        let (evt, parked) = (evt.clone(), parked.clone());
                        gevent::spawn(move || {
                            parked.set(parked.get() + 1);
                            evt.wait();
                        })
                    })
                    .collect();
                // Every waiter runs up to its `wait` and parks there.
                while parked.get() < WAITERS {
                    gevent::sleep(Duration::ZERO);
                }
                let start = Instant::now();
                evt.set();
                gevent::joinall(&waiters);
                let elapsed = start.elapsed();
                drop(waiters);
                elapsed
            })
        });
    });

    group.bench_function("tokio_notify_waiters", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            per_unit(iters, WAITERS, || {
                rt.block_on(async {
                    let notify = Arc::new(tokio::sync::Notify::new());
                    let parked = Arc::new(AtomicUsize::new(0));
                    let waiters: Vec<_> = (0..WAITERS)
                        .map(|_| {
                            let (notify, parked) = (notify.clone(), parked.clone());
                            tokio::spawn(async move {
                                let notified = notify.notified();
                                tokio::pin!(notified);
                                // Registered from here on: `notify_waiters` wakes it.
                                notified.as_mut().enable();
                                parked.fetch_add(1, Ordering::Relaxed);
                                notified.await;
                            })
                        })
                        .collect();
                    while parked.load(Ordering::Relaxed) < WAITERS as usize {
                        tokio::task::yield_now().await;
                    }
                    let start = Instant::now();
                    notify.notify_waiters();
                    for w in waiters {
                        w.await.expect("tokio task");
                    }
                    start.elapsed()
                })
            })
        });
    });

    group.finish();
}

// ---------------------------------------------------------------- semaphore

fn semaphore(c: &mut Criterion) {
    let mut group = c.benchmark_group("semaphore");
    configure(&mut group, 20, 1.0);

    group.bench_function("gevent_try_acquire_release", |b| {
        let sem = gevent::lock::Semaphore::new(1);
        b.iter(|| {
            assert!(black_box(&sem).try_acquire());
            sem.release();
        });
    });

    group.bench_function("tokio_try_acquire_drop", |b| {
        let sem = tokio::sync::Semaphore::new(1);
        b.iter(|| drop(black_box(&sem).try_acquire().expect("a free permit")));
    });

    group.bench_function("gevent_acquire_release", |b| {
        let sem = gevent::lock::Semaphore::new(1);
        b.iter(|| {
            black_box(&sem).acquire();
            sem.release();
        });
    });

    group.bench_function("tokio_acquire_drop", |b| {
        let rt = tokio_rt();
        let sem = tokio::sync::Semaphore::new(1);
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    drop(black_box(&sem).acquire().await.expect("semaphore open"));
                }
                start.elapsed()
            })
        });
    });

    // Each of the four units acquires `iters` times: `4 * iters` acquires in all,
    // so the elapsed time is divided by four to report it per acquire.
    group.bench_function("gevent_contended_4", |b| {
        b.iter_custom(|iters| {
            let sem = gevent::lock::Semaphore::new(1);
            let start = Instant::now();
            let units: Vec<_> = (0..CONTENDERS)
                .map(|_| {
                    let sem = sem.clone();
                    gevent::spawn(move || {
                        for _ in 0..iters {
                            sem.acquire();
                            gevent::sleep(Duration::ZERO);
                            sem.release();
                        }
                    })
                })
                .collect();
            gevent::joinall(&units);
            start.elapsed() / CONTENDERS
        });
    });

    group.bench_function("tokio_contended_4", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let sem = Arc::new(tokio::sync::Semaphore::new(1));
                let start = Instant::now();
                let units: Vec<_> = (0..CONTENDERS)
                    .map(|_| {
                        let sem = sem.clone();
                        tokio::spawn(async move {
                            for _ in 0..iters {
                                let permit = sem.acquire().await.expect("semaphore open");
                                tokio::task::yield_now().await;
                                drop(permit);
                            }
                        })
                    })
                    .collect();
                for u in units {
                    u.await.expect("tokio task");
                }
                start.elapsed() / CONTENDERS
            })
        });
    });

    group.finish();
}

fn main() {
    let since = SystemTime::now();
    let mut c = common::setup();
    queue_handoff(&mut c);
    event_pingpong(&mut c);
    event_set_many(&mut c);
    semaphore(&mut c);
    c.final_summary();
    common::print_table(
        "sync",
        &[
            Figure {
                title: "unbounded, per item",
                group: "queue_handoff",
                divisor: 1.0,
                gevent: "gevent_queue_unbounded",
                peers: &[("tokio", "tokio_mpsc_unbounded"), ("may", "may_mpsc_unbounded")],
            },
            Figure {
                title: "bounded 100, per item",
                group: "queue_handoff",
                divisor: 1.0,
                gevent: "gevent_queue_bounded_100",
                peers: &[("tokio", "tokio_mpsc_bounded_100")],
            },
            Figure {
                title: "per hop",
                group: "event_pingpong",
                divisor: 1.0,
                gevent: "gevent_event",
                peers: &[("tokio", "tokio_notify"), ("may mpsc", "may_mpsc"), ("our yield", "gevent_sleep_zero")],
            },
            Figure {
                title: "per hop, every wait with a timeout",
                group: "event_pingpong",
                divisor: 1.0,
                gevent: "gevent_event_timed",
                peers: &[("tokio", "tokio_notify_timed")],
            },
            Figure {
                title: "per waiter",
                group: "event_set_many",
                divisor: 1.0,
                gevent: "gevent_event_set",
                peers: &[("tokio", "tokio_notify_waiters")],
            },
            Figure {
                title: "try_acquire+release",
                group: "semaphore",
                divisor: 1.0,
                gevent: "gevent_try_acquire_release",
                peers: &[("tokio", "tokio_try_acquire_drop")],
            },
            Figure {
                title: "acquire+release",
                group: "semaphore",
                divisor: 1.0,
                gevent: "gevent_acquire_release",
                peers: &[("tokio", "tokio_acquire_drop")],
            },
            Figure {
                title: "4 contending, per acquire",
                group: "semaphore",
                divisor: 1.0,
                gevent: "gevent_contended_4",
                peers: &[("tokio", "tokio_contended_4")],
            },
        ],
        since,
    );
}
