//! A pool's shared side: the job queue, the worker threads started on
//! demand, and the count of unfinished jobs its joiners wait on. A job
//! counts as finished before its result is handed over, and the last one
//! wakes the joiners (of any hub) through their remote handles: workers
//! never touch a hub.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::driver::blocking::{Job, Wake};
use crate::driver::RemoteWait;

pub(super) struct State {
    jobs: VecDeque<Job>,
    /// Jobs queued or running (gevent's `unfinished_tasks`): a job counts
    /// from its submission until it ran; it stops counting before its
    /// result is handed over.
    pub(super) unfinished: usize,
    /// Greenlets (of any hub) in `ThreadPool::join`, woken when
    /// `unfinished` drops to 0.
    joiners: Vec<Wake>,
    /// Workers started and not exited.
    pub(super) threads: usize,
    /// Workers waiting for a job.
    idle: usize,
    closed: bool,
}

pub(super) struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    pub(super) max: usize,
    /// How long a worker waits for a job before it exits.
    idle_exit: Duration,
}

impl Shared {
    /// A pool of at most `max >= 1` workers, each exiting after `idle_exit`
    /// without a job.
    pub(super) fn new(max: usize, idle_exit: Duration) -> Shared {
        let state =
            State { jobs: VecDeque::new(), unfinished: 0, joiners: Vec::new(), threads: 0, idle: 0, closed: false };
        Shared { state: Mutex::new(state), ready: Condvar::new(), max, idle_exit }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// No handle is left: the workers finish the queued jobs, then exit.
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Queues `job`, starting a worker if every running one is busy. Gives
    /// the job back if no worker exists and none can be started (it must
    /// then not stay queued: it may borrow its caller's stack).
    pub(super) fn submit(self: &Arc<Self>, job: Job) -> Result<(), Job> {
        let mut s = self.lock();
        s.jobs.push_back(job);
        s.unfinished += 1;
        // More jobs queued than idle workers to take them (a notified
        // worker counts as idle until it wakes): start another worker.
        if s.jobs.len() > s.idle && s.threads < self.max {
            let shared = self.clone();
            let started =
                std::thread::Builder::new().name("gevent-threadpool".to_owned()).spawn(move || worker(&shared));
            match started {
                Ok(_) => s.threads += 1,
                Err(_) if s.threads > 0 => self.ready.notify_one(),
                Err(_) => {
                    s.unfinished -= 1;
                    return Err(s.jobs.pop_back().expect("the job just queued"));
                }
            }
        } else {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Counts a job finished; the joiners to wake if it was the last.
    fn finished(&self) -> Vec<Wake> {
        let mut s = self.lock();
        s.unfinished -= 1;
        if s.unfinished == 0 {
            std::mem::take(&mut s.joiners)
        } else {
            Vec::new()
        }
    }

    /// Enlists the current greenlet among the joiners, unless no job is
    /// queued or running (`None`). Checked and enlisted under the lock the
    /// last job's worker takes to count it finished: no wake-up is lost.
    pub(super) fn enlist(&self) -> Option<Joining<'_>> {
        let mut s = self.lock();
        if s.unfinished == 0 {
            return None;
        }
        let wait = RemoteWait::open();
        let wake = Wake::to(&wait);
        s.joiners.push(wake.clone());
        Some(Joining { shared: self, wake, wait })
    }
}

/// A greenlet's place among a pool's joiners, left on every exit (a worker
/// took it already, or it leaves: a timed-out `join_timeout` in a loop
/// leaves nothing behind).
pub(super) struct Joining<'a> {
    shared: &'a Shared,
    wake: Wake,
    pub(super) wait: RemoteWait,
}

impl Drop for Joining<'_> {
    fn drop(&mut self) {
        self.shared.lock().joiners.retain(|w| !w.is(&self.wake));
    }
}

fn worker(shared: &Shared) {
    let mut s = shared.lock();
    loop {
        if let Some(job) = s.jobs.pop_front() {
            drop(s);
            let finish = job();
            // Counted finished first: whoever sees its result sees it gone
            // from the pool's `len`.
            let joiners = shared.finished();
            finish.send();
            joiners.into_iter().for_each(Wake::send);
            s = shared.lock();
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use crate::threadpool::ThreadPool;

    fn joiners(pool: &ThreadPool) -> usize {
        pool.handle.shared.lock().joiners.len()
    }

    #[test]
    fn a_joiner_that_times_out_or_is_killed_leaves_no_place_behind() {
        let pool = ThreadPool::new(1);
        let (open, gate) = mpsc::channel::<()>();
        pool.spawn(move || gate.recv().unwrap());
        for _ in 0..3 {
            assert!(!pool.join_timeout(std::time::Duration::from_millis(1)));
        }
        assert_eq!(joiners(&pool), 0, "timed-out joiners left their places");
        let p = pool.clone();
        let joiner = crate::spawn(move || p.join());
        crate::yield_now();
        assert_eq!(joiners(&pool), 1, "the greenlet waits in join");
        joiner.kill();
        assert_eq!(joiners(&pool), 0, "a killed joiner left its place");
        open.send(()).unwrap();
        pool.join();
        assert!(pool.is_empty());
    }
}
