//! `select` (gevent's `select.select`): waits until any of several fds is
//! ready, parking only the calling greenlet.
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use crate::driver::sys::{epoll_set, ready_set};
use crate::event::Event;
use crate::hub::SelectWatch;
use crate::socket::{wait_read, wait_write};

/// Waits until an fd of `rlist` is readable or one of `wlist` writable, or
/// `timeout` passes; returns the ready ones of each list. On timeout both
/// are empty (as gevent), not an error. With both lists empty it just
/// sleeps for `timeout` (`None`: forever; in the main greenlet with nothing
/// else to run, that is a LoopExit panic).
///
/// # Errors
/// `EBADF` if a listed fd is not open, `InvalidInput` if one is negative.
///
/// # Blocking
/// Until an fd is ready or `timeout` passes.
///
/// # Examples
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::time::{Duration, Instant};
/// let (a, mut b) = gevent::socket::UnixStream::pair().unwrap();
/// let (r, _) = gevent::select::select(&[a.as_raw_fd()], &[], Some(Duration::from_millis(1))).unwrap();
/// assert!(r.is_empty());
/// b.write_all(b"x").unwrap();
/// let (r, w) = gevent::select::select(&[a.as_raw_fd()], &[], None).unwrap();
/// assert_eq!((r, w), (vec![a.as_raw_fd()], vec![]));
/// ```
pub fn select(rlist: &[RawFd], wlist: &[RawFd], timeout: Option<Duration>) -> io::Result<(Vec<RawFd>, Vec<RawFd>)> {
    let ready = ready_set(rlist, wlist)?;
    if !ready.0.is_empty() || !ready.1.is_empty() || timeout.is_some_and(|d| d.is_zero()) {
        return Ok(ready);
    }
    if rlist.is_empty() && wlist.is_empty() {
        match timeout {
            Some(d) => crate::sleep(d),
            None => Event::new().wait(),
        }
        return Ok((Vec::new(), Vec::new()));
    }
    let deadline = timeout.map(|d| crate::timer::after(Instant::now(), d));
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|d| d.is_zero()) {
            return Ok((Vec::new(), Vec::new()));
        }
        let failed = match wait_any(rlist, wlist, left)? {
            Waited::TimedOut => return Ok((Vec::new(), Vec::new())),
            Waited::Ready => None,
            Waited::Failed(e) => Some(e),
        };
        let ready = ready_set(rlist, wlist)?;
        // Empty: the readiness was used up (by another greenlet) before
        // this one looked; wait again, within the deadline. After a failed
        // wait that `poll` does not explain, waiting again would fail the
        // same way at once: the error is the answer.
        if !ready.0.is_empty() || !ready.1.is_empty() {
            return Ok(ready);
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
}

/// How [`wait_any`] ended.
enum Waited {
    Ready,
    TimedOut,
    /// The wait itself failed; usually `poll` then reports the fd at fault.
    Failed(io::Error),
}

/// Waits until one of the fds is ready or `timeout` passes: on the fd
/// itself when there is one, else on a private epoll set of them all (one
/// wait, whatever the backend).
fn wait_any(rlist: &[RawFd], wlist: &[RawFd], timeout: Option<Duration>) -> io::Result<Waited> {
    let waited = match (rlist, wlist) {
        (&[fd], []) => wait_read(fd, timeout),
        ([], &[fd]) => wait_write(fd, timeout),
        _ => match epoll_set(rlist, wlist)? {
            Some((set, poke)) => {
                let _watch = SelectWatch::new(poke.as_raw_fd(), rlist.iter().chain(wlist).copied());
                wait_read(set.as_raw_fd(), timeout)
            }
            None => return Ok(Waited::Ready),
        },
    };
    Ok(match waited {
        Ok(()) => Waited::Ready,
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Waited::TimedOut,
        Err(e) => Waited::Failed(e),
    })
}
