//! A running child process. Its exit is awaited through a pidfd, readable
//! once the child has exited, then collected with `waitpid`; where the
//! kernel has no `pidfd_open` (before 5.3, some emulators) by polling with
//! short cooperative sleeps. No SIGCHLD handler is involved. The reaping
//! side is shared with the child's [`ChildExit`] handles (`exit.rs`).

use std::io::{self, Read};
use std::process::{ExitStatus, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::exit::{ChildExit, Reaper};
use super::pipe::{ChildStderr, ChildStdin, ChildStdout};
use crate::Greenlet;

/// A spawned child process (see [`Command::spawn`](super::Command::spawn)),
/// shaped like [`std::process::Child`] but waited for cooperatively.
///
/// Dropping a `Child` neither kills nor waits for the process (as std).
///
/// [`gevent::wait`](crate::wait) and [`iwait`](crate::iwait) accept a
/// `Child` (ready once it has exited; gevent's `gevent.wait([p1, p2])`
/// over `Popen` objects), and [`exit_handle`](Self::exit_handle) gives a
/// clonable handle on its exit for other greenlets to wait on.
///
/// # Examples
/// ```
/// use gevent::subprocess::Command;
///
/// let mut slow = Command::new("sleep").arg("1").spawn().unwrap();
/// let mut quick = Command::new("true").spawn().unwrap();
/// let ready = gevent::wait(&[&slow, &quick], Some(std::time::Duration::from_millis(300)));
/// assert_eq!(ready, [1]);
/// assert!(quick.wait().unwrap().success());
/// assert!(slow.wait().unwrap().success());
/// ```
#[derive(Debug)]
pub struct Child {
    pub(super) exit: Arc<Reaper>,
    /// The child's stdin, if it was [`Stdio::piped`](super::Stdio::piped).
    pub stdin: Option<ChildStdin>,
    /// The child's stdout, if it was [`Stdio::piped`](super::Stdio::piped).
    pub stdout: Option<ChildStdout>,
    /// The child's stderr, if it was [`Stdio::piped`](super::Stdio::piped).
    pub stderr: Option<ChildStderr>,
}

impl Child {
    /// Adopts a child std just spawned; if its pipes cannot be made
    /// cooperative, the child is killed and reaped.
    pub(super) fn from_std(mut inner: std::process::Child) -> io::Result<Child> {
        let pipes = (|| {
            io::Result::Ok((
                inner.stdin.take().map(ChildStdin::new).transpose()?,
                inner.stdout.take().map(ChildStdout::new).transpose()?,
                inner.stderr.take().map(ChildStderr::new).transpose()?,
            ))
        })();
        match pipes {
            Ok((stdin, stdout, stderr)) => Ok(Child { exit: Arc::new(Reaper::new(inner)), stdin, stdout, stderr }),
            Err(e) => {
                let _ = inner.kill();
                let _ = inner.wait();
                Err(e)
            }
        }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.exit.pid()
    }

    /// A handle on the child's exit, for [`gevent::wait`](crate::wait) and
    /// [`iwait`](crate::iwait) and for other greenlets to wait on (gevent's
    /// `Popen.result`): cheap to clone, `'static`, sharing the child's
    /// reaping with this `Child`, so every wait gets the same status.
    ///
    /// # Examples
    /// ```
    /// let mut child = gevent::subprocess::Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
    /// let exit = child.exit_handle();
    /// let waiter = gevent::spawn(move || exit.wait().unwrap().code());
    /// assert_eq!(child.wait().unwrap().code(), Some(7));
    /// assert_eq!(waiter.get(), Ok(Some(7)));
    /// ```
    #[doc(alias = "result")]
    pub fn exit_handle(&self) -> ChildExit {
        ChildExit(self.exit.clone())
    }

    /// Sends `SIGKILL` to the child; `Ok` if it has exited already (as std).
    ///
    /// # Errors
    /// As [`std::process::Child::kill`].
    pub fn kill(&mut self) -> io::Result<()> {
        self.exit.kill()
    }

    /// Sends signal `sig` to the child (gevent's `Popen.send_signal`);
    /// `Ok` if it has exited already. The child is not reaped until it is
    /// waited for, so its process id cannot name another process meanwhile.
    ///
    /// # Errors
    /// `InvalidInput` for a signal number the kernel refuses.
    ///
    /// # Examples
    /// ```
    /// use std::os::unix::process::ExitStatusExt;
    /// let mut child = gevent::subprocess::Command::new("sleep").arg("10").spawn().unwrap();
    /// child.send_signal(libc::SIGTERM).unwrap();
    /// assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
    /// ```
    pub fn send_signal(&mut self, sig: i32) -> io::Result<()> {
        // Not if reaped (the id may be another process's now), checked
        // and sent under the reaper's lock: no handle reaps meanwhile.
        match self.exit.signal(sig) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                Err(io::Error::new(io::ErrorKind::InvalidInput, format!("gevent: invalid signal number {sig}")))
            }
            r => r,
        }
    }

    /// Sends `SIGTERM` (gevent's `Popen.terminate`); see
    /// [`send_signal`](Self::send_signal).
    ///
    /// # Errors
    /// As [`send_signal`](Self::send_signal).
    pub fn terminate(&mut self) -> io::Result<()> {
        self.send_signal(libc::SIGTERM)
    }

    /// The exit status if the child has exited, else `None`; never waits.
    ///
    /// # Errors
    /// As [`std::process::Child::try_wait`].
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.exit.try_wait()
    }

    /// Closes the child's stdin (so a child reading it sees end-of-file),
    /// then waits until it exits.
    ///
    /// # Blocking
    /// Parks the greenlet until the child exits; the hub runs other
    /// greenlets meanwhile, some perhaps waiting for the same child through
    /// [`exit_handle`](Self::exit_handle)s (whichever wait reaps it, all
    /// get the same status). Killed or timed out, the greenlet unwinds
    /// leaving no wait behind, and the child keeps running (call
    /// [`wait`](Self::wait) again later).
    ///
    /// # Errors
    /// As [`std::process::Child::wait`].
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        self.exit.wait()
    }

    /// Waits at most `timeout` for the child to exit: `Ok(None)` if it is
    /// still running then. Unlike [`wait`](Self::wait), stdin stays open.
    ///
    /// # Blocking
    /// As [`wait`](Self::wait), for at most `timeout`.
    ///
    /// # Errors
    /// As [`std::process::Child::try_wait`].
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        self.exit.wait_until(Some(crate::timer::after(Instant::now(), timeout)))
    }

    /// Closes stdin, reads stdout and stderr (those that are piped) to their
    /// end, concurrently so that neither pipe can fill up and stall the
    /// child, and waits for the child to exit.
    ///
    /// # Blocking
    /// Until both pipes reached end-of-file and the child exited. stdout is
    /// read by a helper greenlet while this one reads stderr; killed or timed
    /// out, this greenlet unwinds and kills the helper.
    ///
    /// # Errors
    /// A read error on stdout, else one on stderr, else the wait's (a
    /// reader that panicked or was killed gives `Other`).
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        self.collect_output()
    }

    /// [`wait_with_output`](Self::wait_with_output) in place.
    pub(super) fn collect_output(&mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let (stdout, stderr) = read_outputs(self.stdout.take(), self.stderr.take())?;
        let status = self.wait()?;
        Ok(Output { status, stdout, stderr })
    }

    /// A child watched by polling only, as on kernels without pidfds.
    #[cfg(test)]
    fn without_pidfd(mut self) -> Child {
        Arc::get_mut(&mut self.exit).expect("no handle yet").without_pidfd();
        self
    }
}

fn read_to_end(mut pipe: impl Read) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    pipe.read_to_end(&mut buf)?;
    Ok(buf)
}

/// Reads both pipes to their end: stdout in a helper greenlet, stderr here.
fn read_outputs(out: Option<ChildStdout>, err: Option<ChildStderr>) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let (out, err) = match (out, err) {
        (Some(out), Some(err)) => (out, err),
        (out, err) => {
            let out = out.map(read_to_end).transpose()?.unwrap_or_default();
            return Ok((out, err.map(read_to_end).transpose()?.unwrap_or_default()));
        }
    };
    let helper = Helper(Some(crate::Builder::default().name("gevent stdout reader").spawn(move || read_to_end(out))));
    let err = read_to_end(err);
    let out = helper.join();
    Ok((out?, err?))
}

/// The stdout-reading greenlet, killed if its caller unwinds first.
struct Helper(Option<Greenlet<io::Result<Vec<u8>>>>);

impl Helper {
    fn join(mut self) -> io::Result<Vec<u8>> {
        let g = self.0.take().expect("joined once");
        g.into_result().unwrap_or_else(|e| Err(io::Error::other(e)))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if let Some(g) = self.0.take() {
            g.kill_nowait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Command, Stdio};
    use std::time::Duration;

    /// The fallback for kernels without pidfd_open: polling with sleeps.
    #[test]
    fn polling_fallback_waits_and_times_out() {
        let ticks = std::rc::Rc::new(std::cell::Cell::new(0));
        let t = ticks.clone();
        let ticker = crate::spawn(move || loop {
            crate::sleep(Duration::from_millis(5));
            t.set(t.get() + 1);
        });
        let mut child = Command::new("sleep").arg("0.1").stdout(Stdio::null()).spawn().unwrap().without_pidfd();
        assert_eq!(child.wait_timeout(Duration::from_millis(1)).unwrap(), None);
        assert!(child.wait().unwrap().success());
        assert!(ticks.get() > 0, "other greenlets ran while the child was polled");
        ticker.kill();

        let mut child = Command::new("sleep").arg("5").spawn().unwrap().without_pidfd();
        assert_eq!(child.wait_timeout(Duration::from_millis(20)).unwrap(), None);
        child.kill().unwrap();
        assert!(!child.wait().unwrap().success());
    }

    /// Without a pidfd, exit handles poll too: several wait at once with
    /// the child's own wait, a timed one gives up, and all agree.
    #[test]
    fn polling_fallback_through_handles() {
        let mut child = Command::new("sleep").arg("0.05").spawn().unwrap().without_pidfd();
        let exit = child.exit_handle();
        assert_eq!(exit.wait_timeout(Duration::from_millis(1)).unwrap(), None);
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let exit = exit.clone();
                crate::spawn(move || exit.wait().unwrap())
            })
            .collect();
        let status = child.wait().unwrap();
        assert!(status.success());
        for w in waiters {
            assert_eq!(w.get(), Ok(status));
        }
        assert_eq!(exit.status(), Some(status));
    }
}
