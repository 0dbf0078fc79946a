//! `gevent::threadpool` on both backends (results come back through the
//! hub's eventfd, which each backend watches its own way): the hub keeps
//! switching while jobs run, panics resume in the caller, `spawn` gives an
//! `AsyncResult`, a killed caller still waits for the job that borrows its
//! stack, and many callers share a small pool; `join` waits for every job
//! (of any handle, any thread) cooperatively, `len` counts them, and
//! `imap` / `imap_unordered` stream the results.

mod io_common;

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use gevent::threadpool::ThreadPool;
use gevent::{Greenlet, GreenletError};
use io_common::{both, join_ok, ms, panic_text, scaled, wait_until};

#[test]
fn apply_returns_while_other_greenlets_run() {
    both(|| {
        let pool = ThreadPool::new(2);
        assert_eq!(pool.size(), 2);
        let ticks = Arc::new(AtomicUsize::new(0));
        let stop = Rc::new(Cell::new(false));
        let (t, s) = (ticks.clone(), stop.clone());
        let ticker = gevent::spawn(move || {
            while !s.get() {
                t.fetch_add(1, Ordering::Release);
                gevent::sleep(ms(1));
            }
        });
        let seen = ticks.clone();
        let start = Instant::now();
        let v = pool.apply(move || {
            std::thread::sleep(ms(50));
            // A loaded machine may not run the hub's thread for 50 ms: the
            // job waits for the ticks (10 s at most), as only a blocked hub
            // never gives them.
            let deadline = Instant::now() + Duration::from_secs(10);
            while seen.load(Ordering::Acquire) < 3 && Instant::now() < deadline {
                std::thread::sleep(ms(1));
            }
            42
        });
        let took = start.elapsed();
        let during = ticks.load(Ordering::Acquire);
        stop.set(true);
        join_ok(ticker);
        assert_eq!(v, 42);
        assert!(took >= ms(50), "a 50 ms job returned after {took:?}");
        // The hub was not blocked: the ticker advanced during the job.
        assert!(during >= 3, "the ticker ticked {during} times during a 50 ms job");
        // A job runs on a worker, not on the hub's thread.
        let hub_thread = std::thread::current().id();
        assert_ne!(pool.apply(move || std::thread::current().id()), hub_thread);
        // spawn_blocking: the same on the hub's default pool.
        let name = gevent::spawn_blocking(|| std::thread::current().name().map(str::to_owned));
        assert_eq!(name.as_deref(), Some("gevent-threadpool"));
    });
}

#[test]
fn spawn_blocking_panic_resumes_in_the_caller() {
    both(|| {
        let r = panic::catch_unwind(AssertUnwindSafe(|| gevent::spawn_blocking(|| -> u32 { panic!("boom in a job") })));
        let payload = r.expect_err("the panic did not reach the caller");
        assert_eq!(panic_text(&*payload), "boom in a job");
        // The pool survived its job's panic.
        assert_eq!(gevent::spawn_blocking(|| 7), 7);
        let pool = ThreadPool::new(1);
        let r = panic::catch_unwind(AssertUnwindSafe(|| pool.apply(|| -> () { panic!("boom {}", 2) })));
        assert_eq!(panic_text(&*r.unwrap_err()), "boom 2");
        assert_eq!(pool.apply(|| "still works"), "still works");
        // In a greenlet: the panic ends that greenlet, not its parent.
        let g = gevent::spawn(|| gevent::spawn_blocking(|| -> u8 { panic!("in a greenlet's job") }));
        match g.into_result() {
            Err(GreenletError::Panicked(m)) => assert!(m.contains("in a greenlet's job"), "{m}"),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn spawn_gives_an_async_result() {
    both(|| {
        let pool = ThreadPool::new(2);
        let r = pool.spawn(|| 6 * 7);
        assert_eq!(r.get(), Ok(42));
        assert!(r.ready() && r.successful());
        let bad = pool.spawn(|| -> u8 { panic!("bad job") });
        match bad.get() {
            Err(GreenletError::Panicked(m)) => assert!(m.contains("bad job"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(bad.ready() && !bad.successful());
        // A slow job: not ready at first, then ready.
        let release = Arc::new(AtomicBool::new(false));
        let rel = release.clone();
        let slow = pool.spawn(move || {
            while !rel.load(Ordering::Acquire) {
                std::thread::sleep(ms(1));
            }
            "slow"
        });
        assert!(!slow.ready());
        assert_eq!(slow.get_timeout(ms(20)), Err(GreenletError::Timeout));
        release.store(true, Ordering::Release);
        assert_eq!(slow.get_timeout(Duration::from_secs(10)), Ok("slow"));
        // Many at once: each result in its own AsyncResult.
        let results: Vec<_> = (0..20u64).map(|i| pool.spawn(move || i * i)).collect();
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.get(), Ok((i * i) as u64));
        }
    });
}

#[test]
fn killing_a_greenlet_in_apply_waits_for_its_job() {
    both(|| {
        let pool = Rc::new(ThreadPool::new(2));
        for round in 0..20usize {
            let job_done = Arc::new(AtomicBool::new(false));
            // Set when the victim unwinds past `apply`: whether its job was done then.
            let unwound = Rc::new(Cell::new(None));
            let (p, done, uw) = (pool.clone(), job_done.clone(), unwound.clone());
            let victim: Greenlet<usize> = gevent::spawn(move || {
                struct Unwound(Rc<Cell<Option<bool>>>, Arc<AtomicBool>);
                impl Drop for Unwound {
                    fn drop(&mut self) {
                        self.0.set(Some(self.1.load(Ordering::Acquire)));
                    }
                }
                let _guard = Unwound(uw, done.clone());
                // The job writes into this greenlet's stack.
                let mut data = [0u8; 4096];
                let n = p.apply(|| {
                    std::thread::sleep(ms(5 + round as u64 % 3));
                    data.fill(round as u8);
                    done.store(true, Ordering::Release);
                    data.len()
                });
                assert!(data.iter().all(|&b| b == round as u8));
                n
            });
            if round % 2 == 0 {
                gevent::yield_now(); // the victim is waiting in apply
            } else {
                gevent::sleep(ms(1)); // the job is surely running
            }
            victim.kill();
            assert!(job_done.load(Ordering::Acquire), "round {round}: kill returned before the job finished");
            assert_eq!(
                unwound.get(),
                Some(true),
                "round {round}: None: no unwinding; false: it left apply while its job ran"
            );
            assert_eq!(victim.exception(), Some(GreenletError::Killed));
        }
        // A timeout around apply: the scope ends only after the job. The job
        // waits for a gate opened by a timer due after the timeout's, so the
        // timeout fires first however late the hub gets to both.
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let (open, gate) = mpsc::channel::<()>();
        let opener = gevent::spawn(move || {
            gevent::sleep(ms(20));
            open.send(()).unwrap();
        });
        let r = gevent::with_timeout(ms(5), || {
            pool.apply(move || {
                gate.recv().unwrap();
                d.store(true, Ordering::Release);
            })
        });
        join_ok(opener);
        assert_eq!(r, Err(gevent::Timeout));
        assert!(done.load(Ordering::Acquire), "the timed-out scope left before its job finished");
        // The pool and the hub still work.
        assert_eq!(pool.apply(|| 1 + 1), 2);
    });
}

#[test]
fn hundred_greenlets_share_a_four_thread_pool() {
    both(|| {
        let pool = Rc::new(ThreadPool::new(4));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let callers: Vec<Greenlet<u64>> = (0..100u64)
            .map(|i| {
                let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
                gevent::spawn(move || {
                    let mut sum = 0;
                    for r in 0..3u64 {
                        let (running, peak) = (running.clone(), peak.clone());
                        let v = pool.apply(move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_micros(200));
                            running.fetch_sub(1, Ordering::SeqCst);
                            i * 1000 + r
                        });
                        assert_eq!(v, i * 1000 + r);
                        sum += v;
                    }
                    sum
                })
            })
            .collect();
        for (i, g) in callers.into_iter().enumerate() {
            let i = i as u64;
            assert_eq!(join_ok(g), 3 * i * 1000 + 3);
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= 4, "{peak} jobs ran at once on a 4-thread pool");
        assert!(peak >= 2, "the 4 workers never overlapped");
    });
}

#[test]
fn an_idle_worker_exits_and_a_later_job_starts_another() {
    both(|| {
        let pool = ThreadPool::with_idle_exit(2, ms(20));
        assert_eq!(pool.threads(), 0, "workers start on demand");
        let first = pool.apply(|| std::thread::current().id());
        assert_ne!(first, std::thread::current().id(), "a worker ran the job");
        // (At most one: under an emulator it may be idle long enough to
        // have exited already.)
        assert!(pool.threads() <= 1);
        // Bounded: the worker exits 20 ms after its job; allow 10 s.
        let start = Instant::now();
        while pool.threads() > 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "the idle worker never exited");
            gevent::sleep(ms(5));
        }
        let second = pool.apply(|| std::thread::current().id());
        assert_ne!(first, second, "a new worker ran the later job");
        assert!(pool.threads() <= 1);
    });
}

/// Workers that exit the moment they are idle, racing jobs submitted
/// meanwhile: a job queued while its worker times out is still taken (by
/// that worker, or a new one), never left in the queue with no worker.
#[test]
fn jobs_racing_idle_exits_all_complete() {
    both(|| {
        let pool = Rc::new(ThreadPool::with_idle_exit(3, Duration::from_micros(1)));
        let done = Rc::new(Cell::new(0u32));
        let callers: Vec<Greenlet<()>> = (0..20)
            .map(|i| {
                let (pool, done) = (pool.clone(), done.clone());
                gevent::spawn(move || {
                    for j in 0..50u32 {
                        if (i + j) % 7 == 0 {
                            // Let the workers go idle (and exit) now and then.
                            std::thread::sleep(Duration::from_micros(50));
                        }
                        assert_eq!(pool.apply(move || i * 1000 + j), i * 1000 + j);
                        done.set(done.get() + 1);
                    }
                })
            })
            .collect();
        for c in callers {
            join_ok(c);
        }
        assert_eq!(done.get(), 1000);
        assert!(pool.threads() <= 3, "at most the pool's size of workers");
    });
}

/// Clones share one pool (one set of workers, one bound), and dropping a
/// handle leaves the pool open for the others.
#[test]
fn clones_share_the_pool_until_the_last_handle_goes() {
    both(|| {
        let pool = ThreadPool::new(1);
        let other = pool.clone();
        let a = pool.apply(|| std::thread::current().id());
        let b = other.apply(|| std::thread::current().id());
        assert_eq!(a, b, "one worker serves both handles");
        assert_eq!((pool.size(), other.threads()), (1, 1));
        drop(pool);
        assert_eq!(other.apply(|| std::thread::current().id()), a, "still open, same worker");
    });
}

/// A panic that `spawn_blocking` re-raises in its greenlet is an unwind of
/// that greenlet like any other: a destructor of it may kill another
/// greenlet (that kill used to be deferred until the unwind ended, which
/// waited on it: a deadlock).
#[test]
fn a_spawn_blocking_panic_unwinds_like_any_other() {
    both(|| {
        struct KillOnDrop(gevent::GreenletRef);
        impl Drop for KillOnDrop {
            fn drop(&mut self) {
                self.0.kill()
            }
        }
        let worker = gevent::spawn(|| loop {
            gevent::sleep(ms(5));
        });
        let g = gevent::spawn({
            let w = worker.as_ref().clone();
            move || {
                let _k = KillOnDrop(w);
                gevent::spawn_blocking(|| -> u32 { panic!("worker panic") })
            }
        });
        assert!(g.join_timeout(Duration::from_secs(10)), "the unwinding greenlet hung");
        assert!(worker.dead());
        assert!(matches!(g.exception(), Some(gevent::GreenletError::Panicked(_))));
    });
}

/// A door that jobs wait at, on their worker threads, until the test opens
/// it (a job still shut out after a minute fails: the test is broken).
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    fn pass(&self) {
        let open = self.open.lock().unwrap();
        let (open, _) = self.opened.wait_timeout_while(open, Duration::from_secs(60), |open| !*open).unwrap();
        assert!(*open, "the gate never opened");
    }
}

/// Runs `f` on a new thread whose hub uses this thread's backend.
fn on_another_hub<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    let b = gevent::hub::backend();
    std::thread::spawn(move || {
        gevent::hub::prefer_backend(b).unwrap();
        f()
    })
}

/// The text of the panic `f` raised.
fn panic_of<R>(f: impl FnOnce() -> R) -> String {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("no panic"),
        Err(p) => panic_text(&*p),
    }
}

#[test]
fn join_waits_for_the_jobs_of_every_handle_and_thread() {
    both(|| {
        let pool = ThreadPool::new(2);
        assert!(pool.is_empty());
        pool.join(); // an empty pool: at once
        let (gate, done) = (Arc::new(Gate::default()), Arc::new(AtomicUsize::new(0)));
        let (g, d) = (gate.clone(), done.clone());
        pool.spawn(move || {
            g.pass();
            d.fetch_add(1, Ordering::SeqCst);
        });
        // Through a clone, from another thread (its hub sets the result).
        let (other, g, d) = (pool.clone(), gate.clone(), done.clone());
        let (submitted, was_submitted) = mpsc::channel();
        let thread = on_another_hub(move || {
            let r = other.spawn(move || {
                g.pass();
                d.fetch_add(1, Ordering::SeqCst);
            });
            submitted.send(()).unwrap();
            r.get().unwrap();
        });
        was_submitted.recv().unwrap();
        assert_eq!(pool.len(), 2);
        // The gate opens from a greenlet of this hub, which only a
        // cooperative join lets run.
        let seen = done.clone();
        let opener = gevent::spawn(move || {
            for _ in 0..5 {
                gevent::yield_now();
            }
            assert_eq!(seen.load(Ordering::SeqCst), 0, "a job passed the shut gate");
            gate.open();
        });
        pool.join();
        assert_eq!(done.load(Ordering::SeqCst), 2, "join returned before both jobs finished");
        assert!(pool.is_empty());
        join_ok(opener);
        thread.join().unwrap();
    });
}

#[test]
fn greenlets_make_progress_while_the_main_greenlet_joins() {
    both(|| {
        let pool = ThreadPool::new(1);
        let gate = Arc::new(Gate::default());
        let g = gate.clone();
        pool.spawn(move || g.pass());
        let ticks = Rc::new([Cell::new(0), Cell::new(0)]);
        let tickers: Vec<Greenlet<()>> = (0..2)
            .map(|i| {
                let (ticks, gate) = (ticks.clone(), gate.clone());
                gevent::spawn(move || {
                    for _ in 0..20 {
                        ticks[i].set(ticks[i].get() + 1);
                        if i == 0 {
                            gevent::yield_now();
                        } else {
                            gevent::sleep(ms(1));
                        }
                    }
                    // The job ends only after both made all their steps.
                    if i == 1 {
                        gate.open();
                    }
                })
            })
            .collect();
        pool.join();
        assert_eq!((ticks[0].get(), ticks[1].get()), (20, 20), "the tickers stalled during the join");
        for t in tickers {
            join_ok(t);
        }
    });
}

#[test]
fn join_timeout_is_false_while_a_job_runs_and_true_after() {
    both(|| {
        let pool = ThreadPool::new(1);
        assert!(pool.join_timeout(Duration::ZERO), "an empty pool");
        assert!(pool.join_timeout(ms(1)));
        let gate = Arc::new(Gate::default());
        let g = gate.clone();
        let r = pool.spawn(move || {
            g.pass();
            "done"
        });
        assert!(!pool.join_timeout(Duration::ZERO));
        let start = Instant::now();
        assert!(!pool.join_timeout(ms(20)), "the job cannot have finished");
        assert!(start.elapsed() >= ms(20), "returned after {:?}", start.elapsed());
        assert_eq!(pool.len(), 1);
        gate.open();
        assert!(pool.join_timeout(Duration::from_secs(30)));
        assert!(pool.is_empty());
        assert_eq!(r.get(), Ok("done"));
    });
}

#[test]
fn len_counts_queued_and_running_jobs_until_they_finish() {
    both(|| {
        let pool = ThreadPool::new(2);
        assert_eq!((pool.len(), pool.is_empty()), (0, true));
        let (gate, started) = (Arc::new(Gate::default()), Arc::new(AtomicUsize::new(0)));
        let results: Vec<_> = (0..5u32)
            .map(|i| {
                let (gate, started) = (gate.clone(), started.clone());
                pool.spawn(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    gate.pass();
                    i
                })
            })
            .collect();
        assert_eq!((pool.len(), pool.is_empty()), (5, false));
        assert!(wait_until(Duration::from_secs(30), || started.load(Ordering::SeqCst) == 2));
        assert_eq!(pool.len(), 5, "2 running and 3 queued");
        gate.open();
        pool.join();
        assert_eq!((pool.len(), pool.is_empty()), (0, true));
        for (i, r) in results.into_iter().enumerate() {
            assert_eq!(r.get(), Ok(i as u32));
        }
        // A job stops counting before anybody sees its result.
        for i in 0..scaled(200, 30) {
            assert_eq!(pool.apply(move || i), i);
            assert_eq!(pool.len(), 0, "apply {i} returned with its job counted");
            let r = pool.spawn(move || i);
            if i % 2 == 0 {
                // Without yielding: the job is likely done before the
                // greenlet that sets the result comes to look.
                std::thread::sleep(Duration::from_micros(200));
            }
            assert_eq!(r.get(), Ok(i));
            assert_eq!(pool.len(), 0, "spawn {i}'s result was ready with its job counted");
        }
    });
}

/// Greenlets of two hubs join one pool at once: the last job wakes them
/// all, while one that timed out meanwhile left without disturbing them.
#[test]
fn joiners_of_two_hubs_all_wake_when_the_last_job_ends() {
    both(|| {
        let pool = ThreadPool::new(1);
        let gate = Arc::new(Gate::default());
        let g = gate.clone();
        pool.spawn(move || g.pass());
        let joiners: Vec<Greenlet<bool>> = (0..3)
            .map(|_| {
                let p = pool.clone();
                gevent::spawn(move || p.join_timeout(Duration::from_secs(60)))
            })
            .collect();
        let p = pool.clone();
        let impatient = gevent::spawn(move || p.join_timeout(ms(1)));
        let (other, (enlisting, is_enlisting)) = (pool.clone(), mpsc::channel());
        let thread = on_another_hub(move || {
            let o = other.clone();
            let g = gevent::spawn(move || o.join_timeout(Duration::from_secs(60)));
            enlisting.send(()).unwrap();
            let main = other.join_timeout(Duration::from_secs(60));
            (main, g.get().unwrap())
        });
        is_enlisting.recv().unwrap();
        // Time for the other hub's joiners to enlist (had they not yet,
        // they would find the pool empty: correct as well).
        gevent::sleep(ms(20));
        assert!(!join_ok(impatient), "the job cannot have finished");
        gate.open();
        for j in joiners {
            assert!(join_ok(j), "a joiner of this hub was not woken");
        }
        assert_eq!(thread.join().unwrap(), (true, true), "a joiner of the other hub was not woken");
    });
}

/// Jobs that finish just before, during or after a join enlists, from two
/// threads: no join misses the wake-up of the last job.
#[test]
fn join_never_misses_the_last_job_finishing() {
    both(|| {
        let pool = ThreadPool::new(2);
        let rounds = scaled(300, 40);
        let round = |pool: &ThreadPool, i: usize| {
            let r = pool.spawn(move || {
                if i % 4 == 0 {
                    std::thread::sleep(Duration::from_micros((i % 7) as u64 * 20));
                }
                i
            });
            if i % 3 == 0 {
                std::thread::sleep(Duration::from_micros((i % 5) as u64 * 20));
            }
            assert!(pool.join_timeout(Duration::from_secs(30)), "round {i}: a join missed its wake-up");
            assert_eq!(r.get(), Ok(i));
        };
        let other = pool.clone();
        let thread = on_another_hub(move || (0..rounds).for_each(|i| round(&other, i)));
        (0..rounds).for_each(|i| round(&pool, i));
        thread.join().unwrap();
    });
}

#[test]
fn imap_yields_in_input_order_while_jobs_finish_in_another() {
    both(|| {
        let pool = ThreadPool::new(3);
        let gates: Arc<Vec<Gate>> = Arc::new((0..3).map(|_| Gate::default()).collect());
        let finished = Arc::new(Mutex::new(Vec::new()));
        let (g, f) = (gates.clone(), finished.clone());
        let mut results = pool.imap(
            move |i: usize| {
                g[i].pass();
                f.lock().unwrap().push(i);
                i * 10
            },
            0..3,
        );
        for i in [2, 1, 0] {
            gates[i].open();
            let n = 3 - i;
            assert!(wait_until(Duration::from_secs(30), || finished.lock().unwrap().len() == n));
        }
        assert_eq!(*finished.lock().unwrap(), [2, 1, 0]);
        assert_eq!(results.next(), Some(0));
        assert_eq!(results.collect::<Vec<_>>(), [10, 20]);
    });
}

/// The first result can be read while later items wait: not all taken from
/// the input, at most `size()` jobs in flight, the rest blocked on a gate
/// that only the consumer opens.
#[test]
fn imap_streams_with_at_most_size_jobs_in_flight() {
    both(|| {
        let pool = ThreadPool::new(2);
        let (gate, running, peak) =
            (Arc::new(Gate::default()), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let taken = Rc::new(Cell::new(0));
        let t = taken.clone();
        let items = (0..10usize).inspect(move |_| t.set(t.get() + 1));
        let (g, r, p) = (gate.clone(), running.clone(), peak.clone());
        let mut results = pool.imap(
            move |i: usize| {
                p.fetch_max(r.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                if i > 0 {
                    g.pass();
                }
                r.fetch_sub(1, Ordering::SeqCst);
                i * i
            },
            items,
        );
        assert_eq!(results.next(), Some(0));
        assert!(taken.get() < 10, "the whole input was taken before the first result: {}", taken.get());
        assert!(pool.len() <= 2, "{} jobs in flight on a pool of 2", pool.len());
        gate.open();
        assert_eq!(results.collect::<Vec<_>>(), (1..10).map(|i| i * i).collect::<Vec<_>>());
        assert_eq!(taken.get(), 10);
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= 2, "{peak} jobs ran at once on a pool of 2");
    });
}

/// Completion order, made deterministic: each job waits at its own gate,
/// opened one at a time in a chosen order.
#[test]
fn imap_unordered_yields_in_completion_order() {
    both(|| {
        let pool = ThreadPool::new(3);
        let gates: Arc<Vec<Gate>> = Arc::new((0..3).map(|_| Gate::default()).collect());
        let g = gates.clone();
        let mut results = pool.imap_unordered(
            move |i: usize| {
                g[i].pass();
                i * 10
            },
            0..3,
        );
        let mut got = Vec::new();
        for i in [2, 0, 1] {
            gates[i].open();
            got.extend(results.next());
        }
        assert_eq!(got, [20, 0, 10]);
        assert_eq!(results.next(), None);
    });
}

#[test]
fn imap_reraises_a_job_panic_when_its_result_is_reached() {
    both(|| {
        let pool = ThreadPool::new(2);
        let f = |i: u32| {
            if i == 1 {
                panic!("bad item {i}");
            }
            i
        };
        let mut ordered = pool.imap(f, 0..3);
        assert_eq!(ordered.next(), Some(0));
        let text = panic_of(|| ordered.next());
        assert!(text.contains("bad item 1"), "{text}");
        let mut unordered = pool.imap_unordered(f, 0..3);
        let mut ok = Vec::new();
        let text = loop {
            match panic::catch_unwind(AssertUnwindSafe(|| unordered.next())) {
                Ok(Some(v)) => ok.push(v),
                Ok(None) => panic!("no panic among the results {ok:?}"),
                Err(p) => break panic_text(&*p),
            }
        };
        assert!(text.contains("bad item 1"), "{text}");
        assert!(ok.iter().all(|&v| v != 1), "{ok:?}");
        let text = panic_of(|| pool.map(f, 0..3));
        assert!(text.contains("bad item 1"), "{text}");
    });
}
