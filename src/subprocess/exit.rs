//! A child's exit, shared by its [`Child`](super::Child) and every
//! [`ChildExit`] handle: the std child, reaped once under a lock (std keeps
//! the status it collected), and the pidfd each waiter polls for itself, so
//! a waiter that leaves (killed, timed out) takes only its own wait along.

use std::io;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::driver::{op, pidfd, Interest, Source};
use crate::pool::Waitable;

/// First and longest pause between two looks at a child without a pidfd.
const POLL_MIN: Duration = Duration::from_millis(1);
const POLL_MAX: Duration = Duration::from_millis(50);

/// How the child's exit is noticed.
#[derive(Debug)]
enum Notice {
    /// Readable once the child exited.
    Pidfd(Source),
    /// No pidfd: `try_wait` after doubling sleeps.
    Poll,
}

/// The reaping side of a child, behind an `Arc`.
#[derive(Debug)]
pub(super) struct Reaper {
    pid: u32,
    /// Locked only for a syscall that never blocks (`waitpid(WNOHANG)`,
    /// `kill`), never across a switch.
    child: Mutex<std::process::Child>,
    notice: Notice,
}

impl Reaper {
    /// Watches `child`, just spawned and not reaped.
    pub(super) fn new(child: std::process::Child) -> Reaper {
        let pid = child.id();
        let notice = pidfd::pidfd_open(pid).and_then(Source::new).map_or(Notice::Poll, Notice::Pidfd);
        Reaper { pid, child: Mutex::new(child), notice }
    }

    pub(super) fn pid(&self) -> u32 {
        self.pid
    }

    /// The std child. Nothing panics while holding it, but should a
    /// poisoned lock ever be met, its child is still consistent.
    fn child(&self) -> MutexGuard<'_, std::process::Child> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The status if the child has exited (reaping it the first time).
    pub(super) fn try_wait(&self) -> io::Result<Option<ExitStatus>> {
        self.child().try_wait()
    }

    /// True when a wait would return at once: the child has exited, or its
    /// status cannot be collected (the wait fails).
    fn done(&self) -> bool {
        !matches!(self.try_wait(), Ok(None))
    }

    /// `SIGKILL`; `Ok` once reaped.
    pub(super) fn kill(&self) -> io::Result<()> {
        self.child().kill()
    }

    /// Sends `sig` unless the child was reaped (its id may be another
    /// process's then); no reaping meanwhile, under the lock.
    pub(super) fn signal(&self, sig: i32) -> io::Result<()> {
        let mut child = self.child();
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        crate::driver::sys::kill(self.pid, sig)
    }

    /// The status once the child exited.
    pub(super) fn wait(&self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.wait_until(None)? {
                return Ok(status);
            }
        }
    }

    /// The status once the child exited, `None` at `deadline`.
    pub(super) fn wait_until(&self, deadline: Option<Instant>) -> io::Result<Option<ExitStatus>> {
        let mut pause = crate::timer::Backoff::new(POLL_MIN, POLL_MAX);
        // After the pidfd reported an exit that waitpid does not show (yet),
        // or failed, fall back to polling instead of spinning on it.
        let mut use_pidfd = true;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Ok(None);
            }
            match &self.notice {
                // Each waiter has its own readiness wait (an io_uring poll,
                // an epoll waiter list entry), which its unwinding cancels.
                Notice::Pidfd(src) if use_pidfd => match op::wait(src.target(), Interest::Read, left) {
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(None),
                    _ => use_pidfd = false,
                },
                _ => pause.sleep(left),
            }
        }
    }

    /// A reaper that polls only, as on kernels without pidfds.
    #[cfg(test)]
    pub(super) fn without_pidfd(&mut self) {
        self.notice = Notice::Poll;
    }
}

/// A handle on a child's exit, from [`Child::exit_handle`](super::Child::exit_handle):
/// cheap to clone, `'static` and `Send`, so several greenlets (or threads)
/// can wait for one child at once, and [`gevent::wait`](crate::wait) /
/// [`iwait`](crate::iwait) accept it (ready once the child has exited), as
/// they accept the [`Child`](super::Child) itself.
///
/// The child is reaped exactly once, by whichever wait notices its exit
/// first (a handle's or the `Child`'s own); every other one, before or
/// after, gets the same [`ExitStatus`]. The handle keeps the child's pidfd
/// open until the `Child` and its last handle are dropped.
///
/// # Examples
/// ```
/// use gevent::subprocess::Command;
///
/// let slow = Command::new("sleep").arg("0.2").spawn().unwrap();
/// let quick = Command::new("true").spawn().unwrap();
/// let exits = [slow.exit_handle(), quick.exit_handle()];
/// // Like gevent's `gevent.wait([p1, p2])` over `Popen` objects.
/// let first: Vec<usize> = gevent::iwait(&[&exits[0], &exits[1]], None).take(1).collect();
/// assert_eq!(first, [1]);
/// assert!(exits[1].status().unwrap().success());
/// assert_eq!(exits[0].status(), None, "still sleeping");
/// assert!(exits[0].wait().unwrap().success());
/// ```
#[doc(alias = "result")]
#[derive(Debug, Clone)]
pub struct ChildExit(pub(super) Arc<Reaper>);

impl ChildExit {
    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.0.pid()
    }

    /// The exit status if the child has exited, else `None`; never waits
    /// (gevent's `Popen.returncode` after `poll()`). A child that has
    /// just exited is reaped here. `None` too if the status cannot be
    /// collected (another part of the program reaped the child behind
    /// gevent's back): [`try_wait`](Self::try_wait) reports that error.
    #[doc(alias = "returncode")]
    pub fn status(&self) -> Option<ExitStatus> {
        self.0.try_wait().ok().flatten()
    }

    /// The exit status if the child has exited, else `None`; never waits.
    ///
    /// # Errors
    /// As [`std::process::Child::try_wait`].
    #[doc(alias = "poll")]
    pub fn try_wait(&self) -> io::Result<Option<ExitStatus>> {
        self.0.try_wait()
    }

    /// Waits until the child exits. Unlike [`Child::wait`](super::Child::wait),
    /// the child's stdin (which the handle does not own) stays open.
    ///
    /// # Blocking
    /// Parks the greenlet until the child exits; the hub runs other
    /// greenlets meanwhile. Any number of greenlets may wait on one child
    /// (through handles or the `Child`): its exit wakes them all. Killed or
    /// timed out, the greenlet unwinds leaving nothing behind (its wait on
    /// the child's pidfd is cancelled, on io_uring once the kernel
    /// confirmed it), and the child keeps running, to be reaped by a later
    /// wait.
    ///
    /// # Errors
    /// As [`std::process::Child::wait`].
    pub fn wait(&self) -> io::Result<ExitStatus> {
        self.0.wait()
    }

    /// Waits at most `timeout` for the child to exit: `Ok(None)` if it is
    /// still running then.
    ///
    /// # Blocking
    /// As [`wait`](Self::wait), for at most `timeout`.
    ///
    /// # Errors
    /// As [`std::process::Child::try_wait`].
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        self.0.wait_until(Some(crate::timer::after(Instant::now(), timeout)))
    }
}

/// Ready once the child has exited (or its status can no longer be
/// collected, so that a wait fails at once); waiting reaps it.
impl Waitable for ChildExit {
    fn is_ready(&self) -> bool {
        self.0.done()
    }
    fn wait_ready(&self) {
        let _ = self.0.wait();
    }
    fn boxed(&self) -> Box<dyn Waitable> {
        Box::new(self.clone())
    }
}

/// As [`ChildExit`]'s: ready once the child has exited. Waiting this way
/// leaves the child's stdin open (unlike [`Child::wait`](super::Child::wait)).
impl Waitable for super::Child {
    fn is_ready(&self) -> bool {
        self.exit.done()
    }
    fn wait_ready(&self) {
        let _ = self.exit.wait();
    }
    fn boxed(&self) -> Box<dyn Waitable> {
        Box::new(self.exit_handle())
    }
}
