//! Wake-ups from other threads: the only thing that crosses into a hub.
//!
//! A [`RemoteHandle`] is `Send`: a worker thread that finished a job pushes
//! the job's token and writes the hub's eventfd; the hub, woken by the
//! eventfd through its backend, marks each token's waiter done and makes it
//! ready. A waiter that left (killed, timed out) removed its slot, so a late
//! token is dropped, never delivered to a greenlet that reused the key.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use slab::Slab;

use super::sys;

struct Shared {
    efd: OwnedFd,
    done: Mutex<Vec<u64>>,
    /// What other threads asked of this hub for its sockets, in order.
    home_msgs: Mutex<Vec<HomeMsg>>,
    /// `home_msgs` is not empty (read on every poll, without the lock).
    any_home_msg: AtomicBool,
}

/// What a socket that closes (or leaves) asks of its home hub, whose ring
/// alone holds its fixed file and its posted sends: done at once on the
/// home thread, else sent, for the hub's next poll (see
/// `hub::tell_home`).
#[derive(Debug)]
pub(crate) enum HomeMsg {
    /// Empty `fd`'s fixed-file slot if the source `id` still holds it.
    ReleaseFixed(RawFd, u64),
    /// The socket of posted-send entry `key` (source `id`) closed, handing
    /// over its fd if data was still posted (see `posted::close`).
    ClosePosted(usize, u64, Option<OwnedFd>),
}

/// A `Send + Sync` handle that completes remote waits of one hub.
#[derive(Clone)]
pub(crate) struct RemoteHandle(Arc<Shared>);

impl std::fmt::Debug for RemoteHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteHandle").field("eventfd", &self.0.efd.as_raw_fd()).finish()
    }
}

impl RemoteHandle {
    /// Completes the remote wait named by `token` and wakes its hub.
    pub(crate) fn complete(&self, token: u64) {
        self.0.done.lock().unwrap_or_else(|p| p.into_inner()).push(token);
        sys::eventfd_wake(self.0.efd.as_raw_fd());
    }

    /// Whether both handles name the same hub.
    pub(crate) fn same_hub(&self, other: &RemoteHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// A handle that does not keep the hub's side (its eventfd) alive.
    pub(crate) fn downgrade(&self) -> WeakRemote {
        WeakRemote(Arc::downgrade(&self.0))
    }
}

/// A [`RemoteHandle`] that lets its hub's side go: a socket's home hub
/// (`Source`), which may end first (its ring, fixed-file table included,
/// goes with it).
#[derive(Debug)]
pub(crate) struct WeakRemote(Weak<Shared>);

impl WeakRemote {
    /// Sends `msg` to the hub, from another thread; if the hub is gone,
    /// it is dropped (an fd it carries just closes).
    pub(crate) fn send(&self, msg: HomeMsg) {
        let Some(shared) = self.0.upgrade() else { return };
        shared.home_msgs.lock().unwrap_or_else(|p| p.into_inner()).push(msg);
        shared.any_home_msg.store(true, Ordering::Release);
        sys::eventfd_wake(shared.efd.as_raw_fd());
    }

    /// Whether this names the hub of `handle`.
    pub(crate) fn is(&self, handle: &RemoteHandle) -> bool {
        std::ptr::eq(self.0.as_ptr(), Arc::as_ptr(&handle.0))
    }
}

struct Wait {
    greenlet: usize,
    generation: u32,
    done: bool,
}

/// The hub's side: open remote waits, and the one kick watcher.
pub(super) struct Remote {
    handle: RemoteHandle,
    waits: RefCell<Slab<Wait>>,
    /// `waits.len()`, readable without a borrow on the hub's hot path.
    open_waits: Cell<usize>,
    /// Holds (see [`hold`](Self::hold)): count as waits for LoopExit only.
    holds: Cell<usize>,
    /// `open_waits`, plus one while a kick watcher is set: what the per-pass
    /// poll checks, in one load.
    pollers: Cell<usize>,
    generation: Cell<u32>,
    /// The greenlet parked in [`super::wait_kick`], woken by every eventfd
    /// wake-up (the signal dispatcher).
    kick_watcher: Cell<Option<usize>>,
}

impl Remote {
    pub(super) fn new() -> std::io::Result<Remote> {
        let shared = Shared {
            efd: sys::eventfd()?,
            done: Mutex::new(Vec::new()),
            home_msgs: Mutex::new(Vec::new()),
            any_home_msg: AtomicBool::new(false),
        };
        Ok(Remote {
            handle: RemoteHandle(Arc::new(shared)),
            waits: RefCell::new(Slab::new()),
            open_waits: Cell::new(0),
            holds: Cell::new(0),
            pollers: Cell::new(0),
            generation: Cell::new(0),
            kick_watcher: Cell::new(None),
        })
    }

    pub(super) fn handle(&self) -> RemoteHandle {
        self.handle.clone()
    }

    /// This hub's handle, to compare with (no clone).
    pub(super) fn handle_ref(&self) -> &RemoteHandle {
        &self.handle
    }

    /// Messages from other threads are waiting (a poll takes them).
    #[inline]
    pub(super) fn home_msgs_pending(&self) -> bool {
        self.handle.0.any_home_msg.load(Ordering::Relaxed)
    }

    /// The messages other threads sent since the last call, in order.
    pub(super) fn take_home_msgs(&self) -> Vec<HomeMsg> {
        let any = &self.handle.0.any_home_msg;
        if !any.load(Ordering::Relaxed) || !any.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut *self.handle.0.home_msgs.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(super) fn fd(&self) -> RawFd {
        self.handle.0.efd.as_raw_fd()
    }

    /// A second fd on the eventfd, for a waker that may outlive the hub
    /// (its number then stays reserved until the waker closes it).
    pub(super) fn dup_fd(&self) -> std::io::Result<OwnedFd> {
        self.handle.0.efd.try_clone()
    }

    /// Open remote waits (they keep the hub from LoopExit).
    #[inline]
    pub(super) fn waiting(&self) -> usize {
        self.open_waits.get() + self.holds.get()
    }

    /// Counts a hold (`+1`) or its release (`-1`): something outside the
    /// hub that may write the eventfd, a kept-alive signal handler, keeps
    /// a blocked hub waiting for it rather than reporting LoopExit.
    pub(super) fn hold(&self, on: bool) {
        let n = self.holds.get();
        self.holds.set(if on { n + 1 } else { n.checked_sub(1).expect("gevent: remote hold released twice") });
    }

    pub(super) fn open(&self, greenlet: usize) -> u64 {
        let generation = self.generation.get().wrapping_add(1);
        self.generation.set(generation);
        let slot = self.waits.borrow_mut().insert(Wait { greenlet, generation, done: false });
        self.open_waits.set(self.open_waits.get() + 1);
        self.pollers.set(self.pollers.get() + 1);
        (slot as u64) << 32 | generation as u64
    }

    /// True once `token` completed.
    pub(super) fn is_done(&self, token: u64) -> bool {
        self.waits.borrow().get((token >> 32) as usize).is_some_and(|w| w.done && w.generation == token as u32)
    }

    pub(super) fn close(&self, token: u64) {
        let mut waits = self.waits.borrow_mut();
        let slot = (token >> 32) as usize;
        if waits.get(slot).is_some_and(|w| w.generation == token as u32) {
            waits.remove(slot);
            self.open_waits.set(self.open_waits.get() - 1);
            self.pollers.set(self.pollers.get() - 1);
        }
    }

    /// True while a greenlet waits on the eventfd: remote waits, or the
    /// kick watcher (which does not keep the hub from LoopExit, but must be
    /// polled for, so a yield loop never starves signal delivery).
    #[inline]
    pub(super) fn pollable(&self) -> bool {
        self.pollers.get() > 0
    }

    /// Sets (or clears) the kick watcher.
    pub(super) fn set_kick_watcher(&self, greenlet: Option<usize>) {
        self.take_kick_watcher();
        if greenlet.is_some() {
            self.pollers.set(self.pollers.get() + 1);
        }
        self.kick_watcher.set(greenlet);
    }

    fn take_kick_watcher(&self) -> Option<usize> {
        let g = self.kick_watcher.take();
        if g.is_some() {
            self.pollers.set(self.pollers.get() - 1);
        }
        g
    }

    /// The eventfd fired: completes the tokens posted since the last time.
    pub(super) fn drain(&self, wake: &mut dyn FnMut(usize)) {
        sys::eventfd_drain(self.fd());
        let done = std::mem::take(&mut *self.handle.0.done.lock().unwrap_or_else(|p| p.into_inner()));
        let mut waits = self.waits.borrow_mut();
        for token in done {
            if let Some(w) = waits.get_mut((token >> 32) as usize).filter(|w| w.generation == token as u32) {
                w.done = true;
                wake(w.greenlet);
            }
        }
        if let Some(g) = self.take_kick_watcher() {
            wake(g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_token_never_completes_a_wait_that_reused_its_slot() {
        let r = Remote::new().expect("an eventfd");
        let old = r.open(1);
        r.close(old);
        let new = r.open(2);
        assert_eq!(old >> 32, new >> 32, "the slot is reused");
        r.handle().complete(old);
        let mut woken = Vec::new();
        r.drain(&mut |g| woken.push(g));
        assert!(woken.is_empty(), "the late token woke {woken:?}");
        assert!(!r.is_done(new));
        r.handle().complete(new);
        r.drain(&mut |g| woken.push(g));
        assert_eq!(woken, [2]);
        assert!(r.is_done(new));
        r.close(new);
        assert_eq!(r.waiting(), 0);
    }
}
