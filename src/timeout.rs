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

/// The unwind payload of one `with_timeout` scope.
pub(crate) struct TimeoutUnwind(pub(crate) u64);

/// Marks the token of a scope opened while the greenlet was already
/// unwinding (inside a destructor): that scope catches its own timeout, so
/// raising it cannot escape the destructor.
const OPENED_WHILE_UNWINDING: u64 = 1 << 63;

/// True for a token [`with_timeout`] made while unwinding.
pub(crate) fn opened_while_unwinding(token: u64) -> bool {
    token & OPENED_WHILE_UNWINDING != 0
}

/// Runs `f`, giving up after `d`: if `f` is still blocked when the deadline
/// passes, it unwinds from its blocking point (destructors and guards run)
/// and `Err(Timeout)` is returned.
///
/// Only blocking calls are interrupted: a greenlet that computes without
/// yielding is not preempted, as in gevent.
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
/// # Blocking
/// Blocks exactly as `f` does. Nested scopes each catch only their own
/// deadline; when both are due, the one armed first fires first. A kill
/// arriving meanwhile is not swallowed: it unwinds on through this scope.
pub fn with_timeout<F, T>(d: Duration, f: F) -> Result<T, Timeout>
where
    F: FnOnce() -> T,
{
    if hub::in_hub() {
        // Nothing blocks in a hub callback (a blocking call panics), so
        // no timeout could ever fire there.
        return Ok(f());
    }
    let unwinding = if hub::is_unwinding(hub::current_key()) { OPENED_WHILE_UNWINDING } else { 0 };
    let token = hub::new_token() | unwinding;
    let timer = hub::arm_timeout(d, token);
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    drop(timer);
    let me = hub::current_key();
    // Fired while the greenlet (seemingly) unwound inside the scope, and
    // deferred: the scope ends here, and with it the timeout.
    hub::forget_deferred_timeout(me, token);
    match outcome {
        Ok(v) => Ok(v),
        Err(payload) => match payload.downcast_ref::<TimeoutUnwind>() {
            Some(t) if t.0 == token => {
                hub::note_unwind(me, false);
                // A kill that came during the unwind, deferred until it
                // ended: it ends here.
                hub::raise_deferred_kill(me);
                Err(Timeout)
            }
            _ => panic::resume_unwind(payload),
        },
    }
}
