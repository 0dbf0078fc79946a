//! Block-scoped timeouts: `with_timeout` arms a timer that unwinds the
//! greenlet out of the scope at its blocking point. Each scope has its own
//! token, so nested timeouts are caught by the scope that armed them; the
//! private payload never escapes the scope.
#![forbid(unsafe_code)]

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use crate::hub;

/// The error of a scope that ran out of time (gevent's `Timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timeout;

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out")
    }
}

impl std::error::Error for Timeout {}

/// A [`with_timeout`] scope that timed out, as an I/O error of kind
/// `TimedOut` (what a socket's own timeout gives), so `?` works in a
/// function returning `io::Result`:
///
/// ```
/// use std::{io, time::Duration};
/// fn read_slowly() -> io::Result<u32> {
///     let n = gevent::with_timeout(Duration::from_millis(1), || {
///         gevent::sleep(Duration::from_secs(5));
///         7
///     })?;
///     Ok(n)
/// }
/// assert_eq!(read_slowly().unwrap_err().kind(), io::ErrorKind::TimedOut);
/// ```
impl From<Timeout> for std::io::Error {
    fn from(t: Timeout) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, t)
    }
}

/// The unwind payload of one `with_timeout` scope.
pub(crate) struct TimeoutUnwind(pub(crate) u64);

/// A scope's token carries, in its top byte, how many unwinds its greenlet
/// was in when the scope opened (inside a destructor): the scope catches
/// its own timeout, so raising it at that depth cannot escape the
/// destructor; deeper (a nested unwind started inside the scope), it
/// would, and it waits.
const DEPTH_SHIFT: u32 = 56;

/// The unwind depth a scope's token was made at.
pub(crate) fn opened_at_depth(token: u64) -> u32 {
    (token >> DEPTH_SHIFT) as u32
}

/// True when scope token `a` was made before `b` (`a` is the outer one of
/// two nested scopes).
pub(crate) fn older(a: u64, b: u64) -> bool {
    let serial = |t: u64| t & ((1 << DEPTH_SHIFT) - 1);
    serial(a) < serial(b)
}

/// Runs `f`, giving up after `d`: if `f` is still blocked when the deadline
/// passes, it unwinds from its blocking point (destructors and guards run)
/// and `Err(Timeout)` is returned.
///
/// Only blocking calls are interrupted: a greenlet that computes without
/// yielding is not preempted, as in gevent. With `d` zero, `f` runs until
/// its first blocking call (even a `sleep(ZERO)`), which times out. A `d`
/// too large for the clock (`Duration::MAX`) means no deadline; so it does
/// for every timeout of this crate.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let r = gevent::with_timeout(Duration::from_millis(10), || gevent::sleep(Duration::from_secs(5)));
/// assert_eq!(r, Err(gevent::Timeout));
/// let r = gevent::with_timeout(Duration::from_secs(5), || 7);
/// assert_eq!(r, Ok(7));
/// ```
///
/// # Errors
/// [`Timeout`] when `f` was still blocked at the deadline (it
/// unwound).
///
/// # Blocking
/// Blocks exactly as `f` does. Nested scopes each catch only their own
/// deadline; when both are due, the one armed first fires first. A kill
/// arriving meanwhile is not swallowed: it unwinds on through this scope.
#[doc(alias = "Timeout")]
#[doc(alias = "timeout")]
pub fn with_timeout<F, T>(d: Duration, f: F) -> Result<T, Timeout>
where
    F: FnOnce() -> T,
{
    // The same greenlet before and after `f` (a greenlet never migrates).
    let me = hub::current_key();
    if hub::is_hub(me) {
        // Nothing blocks in a hub callback (a blocking call panics), so
        // no timeout could ever fire there.
        return Ok(f());
    }
    let depth = u64::from(hub::unwind_depth(me).min(255));
    let token = hub::new_token() | depth << DEPTH_SHIFT;
    let timer = hub::arm_timeout(me, d, token);
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    drop(timer);
    // Fired while the greenlet (seemingly) unwound inside the scope, and
    // deferred: the scope ends here, and with it the timeout.
    hub::forget_deferred_timeout(me, token);
    match outcome {
        Ok(v) => Ok(v),
        Err(payload) => match payload.downcast_ref::<TimeoutUnwind>() {
            Some(t) if t.0 == token => {
                // A kill that came during the unwind, deferred until it
                // ended, is raised here.
                hub::unwind_caught(me);
                Err(Timeout)
            }
            _ => panic::resume_unwind(payload),
        },
    }
}
