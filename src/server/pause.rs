//! The accepting switch both server kinds share (gevent's `stop_accepting`
//! and `start_accepting`): while it is off, the serving loop parks (no
//! polling); turning it off cancels the accept (or receive) in flight, and
//! a connection (or datagram) the kernel handed over first is served, never
//! dropped.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::io;

use crate::event::Event;
use crate::socket::Cancel;

pub(super) struct Pause {
    /// Set while the loop may accept (or receive).
    accepting: Event,
    /// Ends the loop's accept (or receive) in flight once paused.
    cancel: Cancel,
    /// The loop is inside its accept (or receive).
    busy: Cell<bool>,
    /// Set when the loop leaves it, or accepting resumes: what
    /// [`stop`](Self::stop) waits for.
    settled: Event,
}

impl Default for Pause {
    fn default() -> Pause {
        let accepting = Event::new();
        accepting.set();
        Pause { accepting, cancel: Cancel::default(), busy: Cell::new(false), settled: Event::new() }
    }
}

impl Pause {
    /// True unless paused.
    pub(super) fn accepting(&self) -> bool {
        self.accepting.is_set()
    }

    /// Pauses, and waits until the loop is out of its accept (or receive),
    /// unless accepting resumes first.
    pub(super) fn stop(&self) {
        self.accepting.clear();
        self.cancel.request();
        while self.busy.get() && !self.accepting.is_set() {
            self.settled.clear();
            self.settled.wait();
        }
    }

    /// Resumes: the parked loop goes on (a loop woken by a pause that has
    /// not looked yet goes on waiting in its accept).
    pub(super) fn start(&self) {
        self.cancel.withdraw();
        self.accepting.set();
        self.settled.set();
    }

    /// The loop's turn: parks while paused.
    pub(super) fn wait_accepting(&self) {
        while !self.accepting.is_set() {
            self.accepting.wait();
        }
    }

    /// Runs the loop's accept (or receive) `f`, which a pause ends with
    /// the `socket::is_cancelled` error.
    pub(super) fn run<T>(&self, f: impl FnOnce(&Cancel) -> io::Result<T>) -> io::Result<T> {
        struct Leave<'a>(&'a Pause);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.busy.set(false);
                self.0.settled.set();
            }
        }
        self.busy.set(true);
        let _leave = Leave(self);
        f(&self.cancel)
    }
}
