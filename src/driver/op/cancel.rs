//! [`Cancel`]: another greenlet of the hub ends an operation's wait without
//! unwinding the greenlet waiting, as a deadline ends it: an io_uring
//! operation is cancelled, and if it completed first its result is returned
//! (an accepted connection, a datagram), never dropped.

use std::cell::Cell;
use std::io;

/// A switch, shared by the greenlets of one hub, that tells the operations
/// run under it ([`run_cancellable`](super::run_cancellable), one at a
/// time) not to wait: one waiting when it is turned on wakes, cancels
/// (io_uring) and returns the [`cancelled`] error, or its result if the
/// kernel completed it first; one starting while it is on returns the error
/// at once. Turned off, operations wait again (one woken meanwhile that has
/// not looked yet goes on waiting).
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    requested: Cell<bool>,
    /// The greenlet running an operation under this switch, while it runs.
    waiter: Cell<Option<usize>>,
}

impl Cancel {
    /// Turns the switch on, waking the operation that waits under it.
    pub(crate) fn request(&self) {
        self.requested.set(true);
        if let Some(key) = self.waiter.get() {
            crate::hub::unpark(key);
        }
    }

    /// Turns the switch off.
    pub(crate) fn withdraw(&self) {
        self.requested.set(false);
    }

    /// True while the switch is on.
    pub(crate) fn requested(&self) -> bool {
        self.requested.get()
    }

    /// Names greenlet `me` as the one running an operation under the
    /// switch, until the guard drops (the operation returned or unwound).
    pub(super) fn enter(&self, me: usize) -> Entered<'_> {
        debug_assert!(self.waiter.get().is_none(), "gevent: one operation at a time under a Cancel");
        self.waiter.set(Some(me));
        Entered(self)
    }
}

/// See [`Cancel::enter`].
pub(super) struct Entered<'a>(&'a Cancel);

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.waiter.set(None);
    }
}

// The error of an operation that a [`Cancel`] ended before it completed.
marker_error!(
    Cancelled,
    "operation cancelled",
    /// The error of an operation a [`Cancel`] ended.
    cancelled,
    /// True for [`cancelled`]'s error.
    is_cancelled
);
