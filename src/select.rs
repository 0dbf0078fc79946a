//! `select` (gevent's `select.select`): waits until any of several fds is
//! ready, parking only the calling greenlet.
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::driver::sys::ready_set;
use crate::event::Event;
use crate::pool::Group;
use crate::socket::{wait_read, wait_write};

/// Waits until an fd of `rlist` is readable or one of `wlist` writable, or
/// `timeout` passes; returns the ready ones of each list. On timeout both
/// are empty (as gevent), not an error. With both lists empty it just
/// sleeps for `timeout` (`None`: forever).
///
/// # Errors
/// `EBADF` if a listed fd is not open.
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
    let deadline = timeout.map(|d| Instant::now() + d);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|d| d.is_zero()) || !wait_any(rlist, wlist, left) {
            return Ok((Vec::new(), Vec::new()));
        }
        let ready = ready_set(rlist, wlist)?;
        // Empty: the readiness was used up (by another greenlet) before
        // this one looked; wait again, within the deadline.
        if !ready.0.is_empty() || !ready.1.is_empty() {
            return Ok(ready);
        }
    }
}

/// Waits until one of the fds is ready (true) or `timeout` passes (false):
/// one waiter greenlet per fd, the first one ready sets `any`.
fn wait_any(rlist: &[RawFd], wlist: &[RawFd], timeout: Option<Duration>) -> bool {
    let (any, waiters) = (Event::new(), Group::new());
    let watch = |fd: RawFd, wait: fn(RawFd, Option<Duration>) -> io::Result<()>| {
        let any = any.clone();
        waiters.spawn(move || {
            // An error is a readiness too: the caller's poll reports it.
            let _ = wait(fd, None);
            any.set();
        });
    };
    rlist.iter().for_each(|&fd| watch(fd, wait_read));
    wlist.iter().for_each(|&fd| watch(fd, wait_write));
    let woke = match timeout {
        Some(d) => any.wait_timeout(d),
        None => {
            any.wait();
            true
        }
    };
    waiters.kill();
    woke
}
