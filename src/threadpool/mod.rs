//! Blocking code on OS threads, waited for cooperatively (gevent's
//! `threadpool`): while a job runs on a worker, its greenlet is parked and
//! the hub keeps switching. The result comes back through the hub's remote
//! handle (an eventfd), the only way into a hub from another thread.
#![forbid(unsafe_code)]

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use crate::driver::blocking::{run_scoped, submit_retrying, Delivery, Job};
use crate::event::AsyncResult;

mod workers;

use workers::{Shared, State};

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
        self.shared.close();
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
        f.debug_struct("ThreadPool")
            .field("max", &self.handle.shared.max)
            .field("threads", &s.threads)
            .field("unfinished", &s.unfinished)
            .finish()
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
        let shared = Arc::new(Shared::new(threads.max(1), idle));
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
        self.handle.shared.lock()
    }

    /// See [`Shared::submit`].
    fn submit(&self, job: Job) -> Result<(), Job> {
        self.handle.shared.submit(job)
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
        crate::pool::Group::new().map(self.job_per_item(f), items)
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
        let job: Job = Box::new(move || to.stage(panic::catch_unwind(AssertUnwindSafe(f))));
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

    /// As [`map`](Self::map), streaming (gevent's `ThreadPool.imap`):
    /// yields each result in input order as soon as it and the ones before
    /// it are done, so the first result can be read before the last item
    /// was even taken from `items`. At most [`size`](Self::size) jobs of
    /// this call are queued or running at once: a feeder greenlet takes the
    /// next item when one of them finished. It runs ahead of the consumer
    /// (results not yet read are kept), and stops when the iterator is
    /// dropped: no job is submitted for the rest of the input (jobs already
    /// submitted run on). Built on [`Pool::imap`](crate::pool::Group::imap).
    ///
    /// # Blocking
    /// Each `next` waits cooperatively for the next result in order.
    ///
    /// # Panics
    /// `next` panics when that item's job panicked (gevent re-raises it),
    /// naming its message.
    ///
    /// # Examples
    /// ```
    /// let pool = gevent::threadpool::ThreadPool::new(2);
    /// let mut lens = pool.imap(|s: &str| s.len(), ["a", "bb", "ccc"]);
    /// assert_eq!(lens.next(), Some(1));
    /// assert_eq!(lens.collect::<Vec<_>>(), [2, 3]);
    /// ```
    pub fn imap<A, T, F>(&self, f: F, items: impl IntoIterator<Item = A> + 'static) -> impl Iterator<Item = T> + 'static
    where
        F: Fn(A) -> T + Send + Sync + 'static,
        A: Send + 'static,
        T: Send + 'static,
    {
        crate::pool::Pool::new(self.size()).imap(self.job_per_item(f), items)
    }

    /// As [`imap`](Self::imap), but yields the results in the order the
    /// jobs finished (gevent's `ThreadPool.imap_unordered`). Built on
    /// [`Pool::imap_unordered`](crate::pool::Group::imap_unordered).
    ///
    /// # Blocking
    /// Each `next` waits cooperatively for the next job to finish.
    ///
    /// # Panics
    /// `next` panics when it reaches a job that panicked, naming its
    /// message.
    ///
    /// # Examples
    /// ```
    /// let pool = gevent::threadpool::ThreadPool::new(2);
    /// let mut squares: Vec<u64> = pool.imap_unordered(|x: u64| x * x, 1..=4).collect();
    /// squares.sort();
    /// assert_eq!(squares, [1, 4, 9, 16]);
    /// ```
    pub fn imap_unordered<A, T, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A> + 'static,
    ) -> impl Iterator<Item = T> + 'static
    where
        F: Fn(A) -> T + Send + Sync + 'static,
        A: Send + 'static,
        T: Send + 'static,
    {
        crate::pool::Pool::new(self.size()).imap_unordered(self.job_per_item(f), items)
    }

    /// `f` as a greenlet task of the maps: runs `f` on its item in a job of
    /// this pool, waiting for it cooperatively.
    fn job_per_item<A, T, F>(&self, f: F) -> impl Fn(A) -> T + 'static
    where
        F: Fn(A) -> T + Send + Sync + 'static,
        A: Send + 'static,
        T: Send + 'static,
    {
        let (f, pool) = (Arc::new(f), self.share());
        move |item| {
            let f = f.clone();
            pool.apply(move || f(item))
        }
    }

    /// Jobs queued or running, submitted through any handle from any
    /// thread (gevent's `len(pool)`). A job stops counting once it ran and
    /// handed its result over, before anybody sees that result: right after
    /// [`apply`](Self::apply) returns, or a [`spawn`](Self::spawn)'s result
    /// is ready, its job is not counted any more.
    ///
    /// # Examples
    /// ```
    /// let pool = gevent::threadpool::ThreadPool::new(1);
    /// assert_eq!(pool.len(), 0);
    /// let (open, gate) = std::sync::mpsc::channel::<()>();
    /// let r = pool.spawn(move || gate.recv().unwrap());
    /// assert_eq!(pool.len(), 1);
    /// open.send(()).unwrap();
    /// r.get().unwrap();
    /// assert!(pool.is_empty());
    /// ```
    #[doc(alias = "__len__")]
    pub fn len(&self) -> usize {
        self.lock().unfinished
    }

    /// True when no job is queued or running (see [`len`](Self::len));
    /// gevent's `not pool`.
    #[doc(alias = "__bool__")]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until no job is queued or running (gevent's
    /// `ThreadPool.join`): every job submitted so far, through any handle
    /// and from any thread, has finished.
    ///
    /// It returns at the first moment after the call at which the pool has
    /// no job: a job submitted while it waits is waited for as well, as
    /// long as the pool has not run empty before that submission; one
    /// submitted after that moment may be queued or running when `join`
    /// returns. So a steady stream of jobs that never lets the pool run
    /// empty keeps it waiting.
    ///
    /// # Blocking
    /// Cooperatively (the hub runs other greenlets), until the pool is
    /// empty. Any number of greenlets, of any threads' hubs, may join at
    /// once: the last job to finish wakes them all. Killed or timed out
    /// meanwhile, the greenlet leaves at once (the jobs run on). A job
    /// that joins its own pool waits for itself: for ever.
    ///
    /// # Panics
    /// From a hub callback (link callbacks must not block).
    ///
    /// # Examples
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let pool = gevent::threadpool::ThreadPool::new(2);
    /// let done = Arc::new(AtomicUsize::new(0));
    /// for _ in 0..5 {
    ///     let done = done.clone();
    ///     pool.spawn(move || done.fetch_add(1, Ordering::SeqCst));
    /// }
    /// pool.join();
    /// assert_eq!(done.load(Ordering::SeqCst), 5);
    /// assert!(pool.is_empty());
    /// ```
    pub fn join(&self) {
        if let Some(joining) = self.handle.shared.enlist() {
            joining.wait.wait();
        }
    }

    /// As [`join`](Self::join), waiting at most `d`; true if the pool ran
    /// empty (also when that happened just as `d` passed).
    ///
    /// # Blocking
    /// As [`join`](Self::join), bounded by `d`; with a zero `d` it never
    /// switches.
    ///
    /// # Panics
    /// From a hub callback (link callbacks must not block).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let pool = gevent::threadpool::ThreadPool::new(1);
    /// let (open, gate) = std::sync::mpsc::channel::<()>();
    /// pool.spawn(move || gate.recv().unwrap());
    /// assert!(!pool.join_timeout(Duration::from_millis(1)));
    /// open.send(()).unwrap();
    /// assert!(pool.join_timeout(Duration::from_secs(10)));
    /// ```
    pub fn join_timeout(&self, d: Duration) -> bool {
        match self.handle.shared.enlist() {
            None => true,
            Some(joining) => joining.wait.wait_timeout(d),
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
