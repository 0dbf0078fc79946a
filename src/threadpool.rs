//! Blocking code on OS threads, waited for cooperatively (gevent's
//! `threadpool`): while a job runs on a worker, its greenlet is parked and
//! the hub keeps switching. The result comes back through the hub's remote
//! handle (an eventfd), the only way into a hub from another thread.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};

use crate::driver::blocking::{run_scoped, Job};
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
}

/// A pool of at most `threads` worker threads, started on demand.
///
/// Dropping the pool lets its workers finish the jobs already queued, then
/// exit.
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

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("ThreadPool").field("max", &self.handle.shared.max).field("threads", &s.threads).finish()
    }
}

impl ThreadPool {
    /// A pool of at most `threads` workers (at least one).
    pub fn new(threads: usize) -> ThreadPool {
        let state = State { jobs: VecDeque::new(), threads: 0, idle: 0, closed: false };
        let shared = Arc::new(Shared { state: Mutex::new(state), ready: Condvar::new(), max: threads.max(1) });
        ThreadPool { handle: Arc::new(Handle { shared }) }
    }

    /// The most workers this pool runs at once.
    pub fn size(&self) -> usize {
        self.handle.shared.max
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
    /// Until `f` returned. `f` may borrow from the caller: killed meanwhile,
    /// the greenlet still waits for `f` to finish before it unwinds.
    pub fn apply<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        run_scoped(|job| self.submit(job), f)
    }

    /// Starts `f` on a worker and returns at once; the result arrives in
    /// the returned [`AsyncResult`] (a panic becomes its exception).
    pub fn spawn<F, T>(&self, f: F) -> AsyncResult<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let result = AsyncResult::new();
        let (out, pool) = (result.clone(), ThreadPool { handle: self.handle.clone() });
        crate::spawn(move || match panic::catch_unwind(AssertUnwindSafe(|| pool.apply(f))) {
            Ok(v) => out.set(v),
            Err(p) => out.set_exception(crate::hub::panic_message(&*p)),
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
        s = shared.ready.wait(s).unwrap_or_else(|p| p.into_inner());
        s.idle -= 1;
    }
}

thread_local! {
    static DEFAULT: ThreadPool = ThreadPool::new(DEFAULT_THREADS);
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
    // Past the default pool's destructor (a greenlet unwinding at thread
    // exit), a pool of its own serves the call.
    let pool = DEFAULT.try_with(|p| ThreadPool { handle: p.handle.clone() }).unwrap_or_else(|_| ThreadPool::new(1));
    run_scoped(|job| pool.submit(job), f)
}
