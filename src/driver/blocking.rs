//! Borrowing jobs on another thread: [`run_scoped`] lets a closure that
//! borrows the calling greenlet's stack run on a worker thread, because the
//! greenlet does not leave until the job finished, on every path (a kill
//! included): the same rule as an io_uring buffer. A job leaves the
//! hand-over of its result to its worker (a [`Finish`]), so the pool counts
//! the job finished before anybody sees the result.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{remote_handle, RemoteHandle, RemoteWait};

/// A job for a worker thread: it runs and returns how its result is handed
/// over, for the worker to [`send`](Finish::send) once it counted the job
/// finished.
pub(crate) type Job = Box<dyn FnOnce() -> Finish + Send + 'static>;

/// The hand-over of a finished job's result, left to its worker.
pub(crate) enum Finish {
    /// The result is stored where its waiter, already waiting, looks once
    /// woken ([`run_scoped`]).
    Wake(Wake),
    /// The result is staged out of its waiter's sight until published (a
    /// [`Delivery`]: its waiter may come after the job finished).
    Publish(Arc<dyn Publish>),
}

impl Finish {
    /// Hands the result over, waking its waiter.
    pub(crate) fn send(self) {
        match self {
            Finish::Wake(wake) => wake.send(),
            Finish::Publish(p) => {
                if let Some(wake) = p.publish() {
                    wake.send();
                }
            }
        }
    }
}

/// A staged result (see [`Finish::Publish`]).
pub(crate) trait Publish: Send + Sync {
    /// Makes the result visible; the wake-up owed to its waiter, if one
    /// waits already.
    fn publish(&self) -> Option<Wake>;
}

/// A wake-up owed to a greenlet of some hub, waiting in a [`RemoteWait`]:
/// `Send`, so any thread may deliver it.
#[derive(Clone, Debug)]
pub(crate) struct Wake {
    remote: RemoteHandle,
    token: u64,
}

impl Wake {
    /// The wake-up of `wait`, a wait of the current greenlet.
    pub(crate) fn to(wait: &RemoteWait) -> Wake {
        Wake { remote: remote_handle(), token: wait.token() }
    }

    /// Completes the wait and wakes its hub (from any thread).
    pub(crate) fn send(self) {
        self.remote.complete(self.token);
    }

    /// Whether both name the same wait.
    pub(crate) fn is(&self, other: &Wake) -> bool {
        self.token == other.token && self.remote.same_hub(&other.remote)
    }
}

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
    let wake = Wake::to(&wait);
    let slot: Arc<Mutex<Option<std::thread::Result<T>>>> = Arc::new(Mutex::new(None));
    let out = slot.clone();
    let job: Box<dyn FnOnce() -> Finish + Send + 'a> = Box::new(move || {
        let r = panic::catch_unwind(AssertUnwindSafe(f));
        *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        Finish::Wake(wake)
    });
    // SAFETY: only the lifetime is erased. `Outlive` below waits for the
    // job's completion on every exit path of this function (unwinding
    // included), and the completion is sent only after the job returned
    // (dropping all it captured), so whatever `f` and `T` borrow outlives
    // the job's run.
    let job: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce() -> Finish + Send + 'a>, Job>(job) };
    struct Outlive<'w>(&'w RemoteWait);
    impl Drop for Outlive<'_> {
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
    let outlive = Outlive(&wait);
    wait.wait();
    drop(outlive);
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
    /// The result, before it is published.
    staged: Option<std::thread::Result<T>>,
    result: Option<std::thread::Result<T>>,
    /// The waiting greenlet's wake-up, once it waits.
    waiter: Option<Wake>,
}

impl<T: Send> Delivery<T> {
    pub(crate) fn new() -> Arc<Delivery<T>> {
        Arc::new(Delivery { state: Mutex::new(DeliveryState { staged: None, result: None, waiter: None }) })
    }

    /// On the worker: stages the job's result, for the worker to
    /// [publish](Publish::publish).
    pub(crate) fn stage(self: Arc<Self>, r: std::thread::Result<T>) -> Finish
    where
        T: 'static,
    {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).staged = Some(r);
        Finish::Publish(self)
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
            s.waiter = Some(Wake::to(&wait));
        }
        wait.wait();
        self.state.lock().unwrap_or_else(|p| p.into_inner()).result.take().expect("a completed job left its result")
    }
}

impl<T: Send> Publish for Delivery<T> {
    /// The waiter, if it came already; else it finds the result when it
    /// comes to wait.
    fn publish(&self) -> Option<Wake> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.result = s.staged.take();
        s.waiter.take()
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
                std::thread::spawn(move || job().send());
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
