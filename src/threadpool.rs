//! Blocking code on OS threads, waited for cooperatively (gevent's
//! `threadpool`): while a job runs on a worker, its greenlet is parked and
//! the hub keeps switching. The result comes back through the hub's remote
//! handle (an eventfd), the only way into a hub from another thread.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::driver::blocking::{run_scoped, submit_retrying, Delivery, Job};
use crate::event::AsyncResult;

struct State {
    jobs: VecDeque<Job>,
    /// Workers started and not exited.
    threads: usize,
    /// Workers waiting for a job.
    idle: usize,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    max: usize,
    /// How long a worker waits for a job before it exits.
    idle_exit: Duration,
}

/// How long an idle worker of a new pool lives: a program that made one
/// host-name lookup at start does not keep a thread (and pay for being
/// multi-threaded: every syscall on a shared fd table takes a reference on
/// its file) for good.
pub const IDLE_EXIT: Duration = Duration::from_secs(10);

/// A pool of at most `threads` worker threads, started on demand; a
/// worker left without a job for [`IDLE_EXIT`] exits (see
/// [`with_idle_exit`](Self::with_idle_exit)).
///
/// A `Clone` handle: clones share the pool. Dropping the last handle lets
/// the workers finish the jobs already queued, then exit.
///
/// # Examples
/// ```
/// use gevent::threadpool::ThreadPool;
/// let pool = ThreadPool::new(2);
/// let ticker = gevent::spawn(|| for _ in 0..3 { gevent::sleep(std::time::Duration::from_millis(1)) });
/// let sum = pool.apply(|| (1..=100u64).sum::<u64>());
/// assert_eq!(sum, 5050);
/// ticker.join();
/// ```
pub struct ThreadPool {
    handle: Arc<Handle>,
}

/// The users' side of a pool (workers hold only `Shared`): when the last
/// handle goes, the pool closes.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.shared.ready.notify_all();
    }
}

impl Clone for ThreadPool {
    /// Another handle on the same pool.
    fn clone(&self) -> Self {
        self.share()
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("ThreadPool").field("max", &self.handle.shared.max).field("threads", &s.threads).finish()
    }
}

impl ThreadPool {
    /// A pool of at most `threads` workers (at least one).
    pub fn new(threads: usize) -> ThreadPool {
        ThreadPool::with_idle_exit(threads, IDLE_EXIT)
    }

    /// A pool of at most `threads` workers (at least one), each exiting
    /// once it waited `idle` for a job (a later job starts a new worker).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use gevent::threadpool::ThreadPool;
    /// let pool = ThreadPool::with_idle_exit(1, Duration::from_millis(1));
    /// assert_eq!(pool.apply(|| 6 * 7), 42);
    /// while pool.threads() > 0 {
    ///     gevent::sleep(Duration::from_millis(1));
    /// }
    /// assert_eq!(pool.apply(|| 7 * 6), 42, "a new worker starts");
    /// ```
    pub fn with_idle_exit(threads: usize, idle: Duration) -> ThreadPool {
        let state = State { jobs: VecDeque::new(), threads: 0, idle: 0, closed: false };
        let shared =
            Arc::new(Shared { state: Mutex::new(state), ready: Condvar::new(), max: threads.max(1), idle_exit: idle });
        ThreadPool { handle: Arc::new(Handle { shared }) }
    }

    /// Another handle on this pool.
    fn share(&self) -> ThreadPool {
        ThreadPool { handle: self.handle.clone() }
    }

    /// The most workers this pool runs at once.
    pub fn size(&self) -> usize {
        self.handle.shared.max
    }

    /// Workers running now (busy or idle).
    pub fn threads(&self) -> usize {
        self.lock().threads
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.handle.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `job`, starting a worker if every running one is busy. Gives
    /// the job back if no worker exists and none can be started (it must
    /// then not stay queued: it may borrow its caller's stack).
    fn submit(&self, job: Job) -> Result<(), Job> {
        let mut s = self.lock();
        s.jobs.push_back(job);
        // More jobs queued than idle workers to take them (a notified
        // worker counts as idle until it wakes): start another worker.
        if s.jobs.len() > s.idle && s.threads < self.handle.shared.max {
            let shared = self.handle.shared.clone();
            let started =
                std::thread::Builder::new().name("gevent-threadpool".to_owned()).spawn(move || worker(&shared));
            match started {
                Ok(_) => s.threads += 1,
                Err(_) if s.threads > 0 => self.handle.shared.ready.notify_one(),
                Err(_) => return Err(s.jobs.pop_back().expect("the job just queued")),
            }
        } else {
            self.handle.shared.ready.notify_one();
        }
        Ok(())
    }

    /// Runs `f` on a worker and returns its result; the calling greenlet
    /// waits cooperatively. A panic in `f` resumes in the caller.
    ///
    /// # Blocking
    /// Until `f` returned. `f` may borrow from the caller: killed or timed
    /// out meanwhile (a `with_timeout` scope around the call included), the
    /// greenlet still waits for `f` to finish before it unwinds, and the
    /// result is dropped. To stop waiting for a job, hand over an owned one
    /// with [`spawn`](Self::spawn) and wait on its result with
    /// [`AsyncResult::get_timeout`].
    pub fn apply<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        run_scoped(|job| self.submit(job), f)
    }

    /// Runs `f` on every item on the workers (at most [`size`](Self::size)
    /// at once) and returns the results in input order (gevent's
    /// `ThreadPool.map`); the calling greenlet waits cooperatively.
    ///
    /// # Blocking
    /// Until every item was done.
    ///
    /// # Panics
    /// When `f` panicked on an item (gevent re-raises it), naming its
    /// message.
    ///
    /// # Examples
    /// ```
    /// let pool = gevent::threadpool::ThreadPool::new(3);
    /// let lens = pool.map(|s: &str| s.len(), ["a", "bb", "ccc"]);
    /// assert_eq!(lens, [1, 2, 3]);
    /// ```
    pub fn map<A, T, F>(&self, f: F, items: impl IntoIterator<Item = A>) -> Vec<T>
    where
        F: Fn(A) -> T + Send + Sync + 'static,
        A: Send + 'static,
        T: Send + 'static,
    {
        let (f, pool) = (Arc::new(f), self.share());
        crate::pool::Group::new().map(
            move |item| {
                let f = f.clone();
                pool.apply(move || f(item))
            },
            items,
        )
    }

    /// Runs `f` on a worker and returns at once; the result arrives in the
    /// returned [`AsyncResult`] (a panic becomes its exception).
    ///
    /// `f` is queued at once: it runs as soon as a worker is free, whether
    /// or not the caller ever yields (a job of another pool may spawn
    /// here). The result is set by a greenlet of the caller's hub, so it
    /// shows once that hub runs (the caller blocks, yields, or waits on
    /// the result). If no worker can be started, that greenlet tries again
    /// after pauses, and gives up with the result's exception.
    ///
    /// # Examples
    /// ```
    /// use gevent::threadpool::ThreadPool;
    /// let pool = ThreadPool::new(1);
    /// let sum = pool.spawn(|| (1..=10u32).sum::<u32>());
    /// assert_eq!(sum.get(), Ok(55));
    /// ```
    pub fn spawn<F, T>(&self, f: F) -> AsyncResult<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let result = AsyncResult::new();
        let delivery = Delivery::new();
        let to = delivery.clone();
        let job: Job = Box::new(move || to.deliver(panic::catch_unwind(AssertUnwindSafe(f))));
        let unqueued = self.submit(job).err();
        let (out, pool) = (result.clone(), self.share());
        crate::spawn(move || {
            if let Some(job) = unqueued {
                if let Err(e) = submit_retrying(|job| pool.submit(job), job) {
                    out.set_exception(e);
                    return;
                }
            }
            match delivery.wait() {
                Ok(v) => out.set(v),
                Err(p) => out.set_exception(crate::hub::panic_message(&*p)),
            }
        });
        result
    }
}

fn worker(shared: &Shared) {
    let mut s = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if let Some(job) = s.jobs.pop_front() {
            drop(s);
            job();
            s = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            continue;
        }
        if s.closed {
            s.threads -= 1;
            return;
        }
        s.idle += 1;
        let (guard, waited) = shared.ready.wait_timeout(s, shared.idle_exit).unwrap_or_else(|p| p.into_inner());
        s = guard;
        s.idle -= 1;
        if waited.timed_out() && s.jobs.is_empty() {
            // A job queued meanwhile (counting on this worker as idle) is
            // taken above instead.
            s.threads -= 1;
            return;
        }
    }
}

/// Workers of each hub's default pool (gevent's default).
pub const DEFAULT_THREADS: usize = 10;

/// Runs blocking `f` on this thread's default pool ([`DEFAULT_THREADS`]
/// workers) and returns its result, cooperatively (see
/// [`ThreadPool::apply`]). Also `gevent::spawn_blocking`.
///
/// # Blocking
/// As [`ThreadPool::apply`].
///
/// # Examples
/// ```
/// let n = gevent::spawn_blocking(|| std::fs::read_dir(".").map(|d| d.count()).unwrap_or(0));
/// assert!(n > 0);
/// ```
pub fn spawn_blocking<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    // A handle on the hub's pool: the hub drops its own at thread exit,
    // once its greenlets are gone, and the workers then exit.
    let pool = crate::hub::with(|h| {
        h.default_pool.borrow_mut().get_or_insert_with(|| ThreadPool::new(DEFAULT_THREADS)).share()
    });
    run_scoped(|job| pool.submit(job), f)
}
