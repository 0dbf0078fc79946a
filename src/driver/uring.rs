//! The io_uring backend: the operation itself is submitted (recv, send,
//! accept, ...) and its greenlet parks until the completion arrives.
//!
//! The io_uring rule lives here: memory an SQE names stays valid until its
//! CQE arrives. An operation's slot outlives its waiter: a waiter that
//! leaves early (killed, timed out) first cancels (`ASYNC_CANCEL`) and
//! waits for the original completion (`op::run`), then releases what it
//! carried (an accepted fd is closed). Submissions are batched: pushing an SQE does not
//! enter the kernel; the hub submits once per loop pass, or when the
//! submission queue is full.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use slab::Slab;

use super::{RemoteDrain, Wake};

/// `user_data` of completions nobody waits for (cancellations).
const IGNORE: u64 = u64::MAX;
/// `user_data` of the remote eventfd's multishot poll.
const REMOTE: u64 = u64::MAX - 1;

const ENTRIES: u32 = 1024;

struct Slot {
    greenlet: usize,
    res: Option<i32>,
}

pub(super) struct Uring {
    ring: RefCell<IoUring>,
    slots: RefCell<Slab<Slot>>,
    /// SQEs pushed but not yet submitted.
    unsubmitted: Cell<usize>,
    /// Operations whose completion has not been taken (`slots.len()`,
    /// readable without a borrow on the hub's hot path).
    in_flight: Cell<usize>,
    remote_fd: RawFd,
    remote_armed: Cell<bool>,
}

impl Uring {
    /// A ring, or the kernel's refusal (ENOSYS, EPERM, ...).
    pub(super) fn new(remote_fd: RawFd) -> io::Result<Uring> {
        // One thread submits and reaps (the hub's), so completions can wait
        // for its next `io_uring_enter` instead of interrupting it; kernels
        // without these flags get a plain ring.
        let ring = IoUring::builder()
            .setup_cqsize(ENTRIES * 4)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_taskrun_flag()
            .build(ENTRIES)
            .or_else(|_| IoUring::builder().setup_cqsize(ENTRIES * 4).build(ENTRIES))?;
        let u = Uring {
            ring: RefCell::new(ring),
            slots: RefCell::new(Slab::with_capacity(64)),
            unsubmitted: Cell::new(0),
            in_flight: Cell::new(0),
            remote_fd,
            remote_armed: Cell::new(false),
        };
        u.arm_remote();
        // Probe: a ring that cannot take a submission (seccomp) is refused.
        u.ring.borrow().submit()?;
        u.unsubmitted.set(0);
        Ok(u)
    }

    fn arm_remote(&self) {
        let fd = types::Fd(self.remote_fd);
        let e = opcode::PollAdd::new(fd, libc::POLLIN as u32).multi(true).build().user_data(REMOTE);
        self.push(e);
        self.remote_armed.set(true);
    }

    /// Pushes an SQE (submitting first if the queue is full).
    fn push(&self, e: squeue::Entry) {
        let mut ring = self.ring.borrow_mut();
        // SAFETY: the io_uring rule (module doc): every pointer in `e` names
        // memory its submitter keeps alive until the completion arrives.
        while unsafe { ring.submission().push(&e) }.is_err() {
            // Full: hand the queue to the kernel and retry. EBUSY (the CQ is
            // full) clears once completions are reaped by the next poll.
            if ring.submit().is_err() {
                drop(ring);
                std::thread::yield_now();
                ring = self.ring.borrow_mut();
            }
        }
        self.unsubmitted.set(self.unsubmitted.get() + 1);
    }

    /// Submits operation `e` for `greenlet`; returns its slot.
    pub(super) fn start(&self, e: squeue::Entry, greenlet: usize) -> usize {
        let slot = self.slots.borrow_mut().insert(Slot { greenlet, res: None });
        self.in_flight.set(self.in_flight.get() + 1);
        self.push(e.user_data(slot as u64));
        slot
    }

    /// The result of `slot` once it completed; the slot is freed then.
    pub(super) fn take(&self, slot: usize) -> Option<i32> {
        let mut slots = self.slots.borrow_mut();
        let res = slots[slot].res?;
        slots.remove(slot);
        self.in_flight.set(self.in_flight.get() - 1);
        Some(res)
    }

    /// Asks the kernel to cancel `slot`'s operation (its completion still
    /// comes, as `-ECANCELED` or its own result if it finished first).
    pub(super) fn cancel(&self, slot: usize) {
        self.push(opcode::AsyncCancel::new(slot as u64).build().user_data(IGNORE));
    }

    /// Cancels every operation on `fd` (it is about to close: a readiness
    /// wait on it would otherwise outlive it).
    pub(super) fn cancel_fd(&self, fd: RawFd) {
        if self.in_flight.get() > 0 {
            let c = types::CancelBuilder::fd(types::Fd(fd)).all();
            self.push(opcode::AsyncCancel2::new(c).build().user_data(IGNORE));
            // Now: the kernel finds the requests by the fd's file, which is
            // gone once the fd closes.
            if self.ring.borrow().submit().is_ok() {
                self.unsubmitted.set(self.ring.borrow_mut().submission().len());
            }
        }
    }

    /// Operations in flight (they keep the hub from LoopExit).
    pub(super) fn waiting(&self) -> usize {
        self.slots.borrow().len()
    }

    /// True when a non-blocking poll has something to do.
    #[inline]
    pub(super) fn busy(&self) -> bool {
        self.unsubmitted.get() > 0 || self.in_flight.get() > 0
    }

    /// Submits what is queued, waits at most `timeout` for a completion
    /// (`None`: without limit), and wakes the waiters of all completions.
    pub(super) fn poll(&self, timeout: Option<Duration>, wake: Wake<'_>, remote: RemoteDrain<'_>) {
        {
            let mut ring = self.ring.borrow_mut();
            let r = match timeout {
                // Without waiting: enter only with something to submit or
                // deferred task work pending (the crate then asks for
                // GETEVENTS); otherwise the completion queue is just read.
                Some(d) if d.is_zero() => {
                    let pending = self.unsubmitted.get() > 0 || ring.submission().taskrun();
                    if pending {
                        ring.submit()
                    } else {
                        Ok(0)
                    }
                }
                Some(d) => {
                    let ts = types::Timespec::from(d);
                    let args = types::SubmitArgs::new().timespec(&ts);
                    ring.submitter().submit_with_args(1, &args)
                }
                None => ring.submit_and_wait(1),
            };
            // ETIME (the timeout), EINTR (a signal), EBUSY: the caller
            // loops. Whatever the kernel took is no longer pending.
            let _ = r;
            self.unsubmitted.set(ring.submission().len());
        }
        self.reap(wake, remote);
        if !self.remote_armed.get() {
            self.arm_remote();
        }
    }

    fn reap(&self, wake: Wake<'_>, remote: RemoteDrain<'_>) {
        let mut ring = self.ring.borrow_mut();
        let mut slots = self.slots.borrow_mut();
        for cqe in ring.completion().take(super::EVENTS_PER_POLL) {
            match cqe.user_data() {
                IGNORE => {}
                REMOTE => {
                    if !cqueue::more(cqe.flags()) {
                        self.remote_armed.set(false);
                    }
                    remote(wake);
                }
                k => {
                    let slot = &mut slots[k as usize];
                    slot.res = Some(cqe.result());
                    wake(slot.greenlet);
                }
            }
        }
    }
}
