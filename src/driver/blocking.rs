//! Borrowing jobs on another thread: [`run_scoped`] lets a closure that
//! borrows the calling greenlet's stack run on a worker thread, because the
//! greenlet does not leave until the job finished, on every path (a kill
//! included): the same rule as an io_uring buffer.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{remote_handle, RemoteHandle, RemoteWait};

/// A job for a worker thread.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// How often [`run_scoped`] submits a job that no worker can take before it
/// gives up (the pauses between add up to about a quarter second).
const SUBMIT_RETRIES: u32 = 9;

/// Runs `f` through `submit` (which hands the job to a worker, or gives it
/// back unqueued) and waits cooperatively for its result; a panic in `f`
/// resumes in the caller.
///
/// # Panics
/// If `submit` keeps giving the job back (no worker can run it: the
/// process cannot start a thread) for [`SUBMIT_RETRIES`] attempts,
/// each after a cooperative pause twice the last (1 ms first).
///
/// # Blocking
/// Until the job ran. Killed meanwhile, the greenlet still waits for the
/// job to finish before it unwinds (the job borrows its stack).
pub(crate) fn run_scoped<'a, F, T>(submit: impl FnMut(Job) -> Result<(), Job>, f: F) -> T
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
    // A job given back was never queued: holding it (and what it borrows)
    // across a pause, or dropping it on a kill, is all there is.
    if let Err(e) = submit_retrying(submit, job) {
        panic!("{e}");
    }
    let finish = Finish(&wait);
    wait.wait();
    drop(finish);
    let r = slot.lock().unwrap_or_else(|p| p.into_inner()).take().expect("a completed job left its result");
    r.unwrap_or_else(|payload| {
        // The job's panic began on another thread, unseen by this one's
        // panic hook: counted here, it is an unwind of this greenlet.
        crate::hub::resume_unwind(crate::hub::current_key(), payload)
    })
}

/// Hands `job` to `submit`, again after a cooperative pause (1 ms, then
/// twice the last) each time it is given back, at most [`SUBMIT_RETRIES`]
/// times; the error says why it gave up.
///
/// # Blocking
/// During the pauses.
pub(crate) fn submit_retrying(mut submit: impl FnMut(Job) -> Result<(), Job>, job: Job) -> Result<(), String> {
    let mut job = job;
    let mut pause = Duration::from_millis(1);
    for attempt in 1.. {
        match submit(job) {
            Ok(()) => return Ok(()),
            Err(back) if attempt < SUBMIT_RETRIES => {
                // Out of threads for now (EAGAIN): one may exit meanwhile.
                job = back;
                crate::sleep(pause);
                pause *= 2;
            }
            Err(back) => {
                drop(back);
                return Err(format!(
                    "gevent: cannot start a thread-pool worker (no worker is running; tried {attempt} times)"
                ));
            }
        }
    }
    unreachable!("the attempts are counted without end")
}

/// The result of an owned job, on its way from the worker to a greenlet of
/// the hub that queued it. The job may finish before the greenlet waits:
/// whichever comes second completes the hand-over.
pub(crate) struct Delivery<T> {
    state: Mutex<DeliveryState<T>>,
}

struct DeliveryState<T> {
    result: Option<std::thread::Result<T>>,
    /// The waiting greenlet's hub and token, once it waits.
    waiter: Option<(RemoteHandle, u64)>,
}

impl<T: Send> Delivery<T> {
    pub(crate) fn new() -> Arc<Delivery<T>> {
        Arc::new(Delivery { state: Mutex::new(DeliveryState { result: None, waiter: None }) })
    }

    /// On the worker: stores the job's result and wakes the waiter, if one
    /// waits already.
    pub(crate) fn deliver(&self, r: std::thread::Result<T>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.result = Some(r);
        if let Some((remote, token)) = s.waiter.take() {
            remote.complete(token);
        }
    }

    /// In a greenlet of the hub: the job's result, waiting cooperatively
    /// until it is there.
    ///
    /// # Blocking
    /// Until the job finished; kills and timeouts unwind out of it (the
    /// job runs on, its result is dropped).
    pub(crate) fn wait(&self) -> std::thread::Result<T> {
        let wait = RemoteWait::open();
        {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(r) = s.result.take() {
                return r;
            }
            s.waiter = Some((remote_handle(), wait.token()));
        }
        wait.wait();
        self.state.lock().unwrap_or_else(|p| p.into_inner()).result.take().expect("a completed job left its result")
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Instant;

    use super::*;

    #[test]
    fn a_job_given_back_is_submitted_again_after_a_pause() {
        let attempts = Cell::new(0);
        let start = Instant::now();
        let x = 20;
        let got = run_scoped(
            |job| {
                attempts.set(attempts.get() + 1);
                if attempts.get() < 3 {
                    return Err(job);
                }
                std::thread::spawn(job);
                Ok(())
            },
            || x + 1,
        );
        assert_eq!(got, 21);
        assert_eq!(attempts.get(), 3);
        assert!(start.elapsed() >= Duration::from_millis(3), "paused 1 ms, then 2 ms");
    }

    #[test]
    fn a_job_no_worker_ever_takes_panics_with_a_clear_message() {
        let attempts = Cell::new(0);
        let panicked = panic::catch_unwind(AssertUnwindSafe(|| {
            run_scoped(
                |job| {
                    attempts.set(attempts.get() + 1);
                    Err(job)
                },
                || (),
            )
        }));
        let message = *panicked.expect_err("gave up").downcast::<String>().expect("a formatted message");
        assert!(message.contains("cannot start a thread-pool worker"), "{message}");
        assert_eq!(attempts.get(), SUBMIT_RETRIES);
    }
}
