//! Borrowing jobs on another thread: [`run_scoped`] lets a closure that
//! borrows the calling greenlet's stack run on a worker thread, because the
//! greenlet does not leave until the job finished, on every path (a kill
//! included): the same rule as an io_uring buffer.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use super::{remote_handle, RemoteWait};

/// A job for a worker thread.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// Runs `f` through `submit` (which hands the job to a worker, or gives it
/// back unqueued) and waits cooperatively for its result; a panic in `f`
/// resumes in the caller.
///
/// # Panics
/// If `submit` gives the job back (no worker can run it).
///
/// # Blocking
/// Until the job ran. Killed meanwhile, the greenlet still waits for the
/// job to finish before it unwinds (the job borrows its stack).
pub(crate) fn run_scoped<'a, F, T>(submit: impl FnOnce(Job) -> Result<(), Job>, f: F) -> T
where
    F: FnOnce() -> T + Send + 'a,
    T: Send + 'a,
{
    let wait = RemoteWait::open();
    let (remote, token) = (remote_handle(), wait.token());
    let slot: Arc<Mutex<Option<std::thread::Result<T>>>> = Arc::new(Mutex::new(None));
    let out = slot.clone();
    let job: Box<dyn FnOnce() + Send + 'a> = Box::new(move || {
        let r = panic::catch_unwind(AssertUnwindSafe(f));
        *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        remote.complete(token);
    });
    // SAFETY: only the lifetime is erased. `Finish` below waits for the
    // job's completion on every exit path of this function (unwinding
    // included), so whatever `f` and `T` borrow outlives the job's run.
    let job: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + 'a>, Job>(job) };
    struct Finish<'w>(&'w RemoteWait);
    impl Drop for Finish<'_> {
        fn drop(&mut self) {
            // Unwinding: further kills are deferred until this returns.
            self.0.wait();
        }
    }
    if let Err(job) = submit(job) {
        // Never queued: dropping it (and what it borrows) is all there is.
        drop(job);
        panic!("gevent: cannot start a thread-pool worker (no worker is running)");
    }
    let finish = Finish(&wait);
    wait.wait();
    drop(finish);
    let r = slot.lock().unwrap_or_else(|p| p.into_inner()).take().expect("a completed job left its result");
    r.unwrap_or_else(|payload| panic::resume_unwind(payload))
}
