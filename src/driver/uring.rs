//! The io_uring backend: the operation itself is submitted (recv, send,
//! accept, ...) and its greenlet parks until the completion arrives.
//!
//! The io_uring rule lives here: memory an SQE names stays valid until its
//! CQE arrives. An operation's slot outlives its waiter: a waiter that
//! leaves early (killed, timed out) first cancels (`ASYNC_CANCEL`) and
//! waits for the original completion (`op::run`), then releases what it
//! carried (an accepted connection, received bytes: kept for the next
//! caller). Submissions are batched: pushing an SQE does not
//! enter the kernel; the hub submits once per loop pass, or when the
//! submission queue is full.
//!
//! Receives name their socket as a fixed file where they can: the ring's
//! fixed-file table (registered sparse at start, slot = fd number) spares
//! the kernel a file lookup and reference per operation. A slot belongs to
//! one source (its id); an operation from another source on the same fd
//! number (the fd was closed and reused) registers its own file first, so
//! a stale slot is never used. The slot holds a reference on the file, so
//! it is emptied before the fd closes: at once on the source's home hub,
//! by message from any other thread (`HomeMsg::ReleaseFixed`), which
//! the home hub reads at its next poll. (So a socket dropped on another
//! thread closes when its home hub next polls: at once if it waits for
//! anything, later if its thread is blocked outside the hub.)

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use slab::Slab;

use super::posted::{self, Posts};
use super::{sys, RemoteDrain, Wake};

/// `user_data` of completions nobody waits for (cancellations).
const IGNORE: u64 = u64::MAX;
/// `user_data` of the remote eventfd's multishot poll.
const REMOTE: u64 = u64::MAX - 1;
/// `user_data` of the feature probe at setup.
const PROBE: u64 = u64::MAX - 2;

const ENTRIES: u32 = 1024;

/// At most this many fixed-file slots (fd numbers `0..MAX_FIXED`; higher
/// fds are named the usual way), fewer if `RLIMIT_NOFILE` is lower: 8 bytes
/// of kernel memory each.
const MAX_FIXED: u32 = 16384;

struct Slot {
    greenlet: usize,
    /// The completion's result and flags, once it came.
    done: Option<(i32, u32)>,
}

pub(super) struct Uring {
    ring: RefCell<IoUring>,
    /// Entries that found the submission queue full while the kernel could
    /// take no more (its completion queue was full); pushed at the next
    /// poll, after reaping.
    overflow: RefCell<Vec<squeue::Entry>>,
    slots: RefCell<Slab<Slot>>,
    /// SQEs pushed but not yet submitted.
    unsubmitted: Cell<usize>,
    /// Operations whose completion has not been taken (`slots.len()`,
    /// readable without a borrow on the hub's hot path).
    in_flight: Cell<usize>,
    remote_fd: RawFd,
    remote_armed: Cell<bool>,
    /// Per fixed-file slot, the id of the source whose file it holds (0:
    /// empty); as long as the registered table (empty if the kernel
    /// refused one).
    fixed: RefCell<Vec<u64>>,
    /// Readiness waits in flight on bare fd numbers (`wait_read`,
    /// `wait_write`), per fd, by slot: the only operations that can
    /// outlive their fd (every other one is on a source whose owner waits
    /// for it), so the only ones a close has to cancel.
    raw_waits: RefCell<HashMap<RawFd, Vec<usize>>>,
    /// The sockets' posted sends (see `posted.rs`), counted in `in_flight`
    /// while a send of theirs is.
    posts: RefCell<Posts>,
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
        // Waiting with a timeout needs EXT_ARG (5.11); ending raw waits on a
        // closing fd needs cancellation by fd (5.19, probed below).
        if !ring.params().is_feature_ext_arg() {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "io_uring without EXT_ARG"));
        }
        let u = Uring {
            ring: RefCell::new(ring),
            overflow: RefCell::new(Vec::new()),
            slots: RefCell::new(Slab::with_capacity(64)),
            unsubmitted: Cell::new(0),
            in_flight: Cell::new(0),
            remote_fd,
            remote_armed: Cell::new(false),
            fixed: RefCell::new(Vec::new()),
            raw_waits: RefCell::new(HashMap::new()),
            posts: RefCell::new(Posts::default()),
        };
        // Probe: a ring that cannot take a submission (seccomp) is refused,
        // and so is a kernel that cannot cancel by fd (EINVAL; a count of
        // cancelled requests, 0 here, means it can).
        let c = types::CancelBuilder::fd(types::Fd(remote_fd)).all();
        u.push(opcode::AsyncCancel2::new(c).build().user_data(PROBE));
        u.ring.borrow().submit_and_wait(1)?;
        let probe = u.ring.borrow_mut().completion().find(|c| c.user_data() == PROBE).map(|c| c.result());
        if !probe.is_some_and(|r| r >= 0 || r == -libc::ENOENT) {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "io_uring without cancellation by fd"));
        }
        u.unsubmitted.set(0);
        u.arm_remote();
        // Without a table (a low fd limit, a refusal) fds are named as
        // usual. Before 6.4 the kernel let an emptied slot's file go about
        // a second late (a closed socket's FIN with it): no table there.
        let slots = sys::fd_limit().min(MAX_FIXED as u64) as u32;
        if slots > 0 && sys::kernel_at_least(6, 4) && u.ring.borrow().submitter().register_files_sparse(slots).is_ok() {
            *u.fixed.borrow_mut() = vec![0; slots as usize];
        }
        Ok(u)
    }

    /// Whether `fd`, owned by source `id`, is in the fixed-file table now:
    /// it has a slot and `home` (asked only then) says this ring may hold
    /// it; registered first if the slot is empty or another source's.
    pub(super) fn fixed(&self, fd: RawFd, id: u64, home: impl FnOnce() -> bool) -> bool {
        let mut fixed = self.fixed.borrow_mut();
        let Some(holder) = usize::try_from(fd).ok().and_then(|i| fixed.get_mut(i)) else {
            return false;
        };
        if !home() {
            return false;
        }
        if *holder != id {
            if self.ring.borrow().submitter().register_files_update(fd as u32, &[fd]).is_err() {
                return false;
            }
            *holder = id;
        }
        true
    }

    /// Empties `fd`'s fixed-file slot if source `id` holds it.
    pub(super) fn release_fixed(&self, fd: RawFd, id: u64) {
        let mut fixed = self.fixed.borrow_mut();
        if let Some(holder) = usize::try_from(fd).ok().and_then(|i| fixed.get_mut(i)).filter(|h| **h == id) {
            // -1 empties the slot; it cannot fail for a registered one.
            let _ = self.ring.borrow().submitter().register_files_update(fd as u32, &[-1]);
            *holder = 0;
        }
    }

    fn arm_remote(&self) {
        let fd = types::Fd(self.remote_fd);
        let e = opcode::PollAdd::new(fd, libc::POLLIN as u32).multi(true).build().user_data(REMOTE);
        self.push(e);
        self.remote_armed.set(true);
    }

    /// Pushes an SQE (submitting first if the queue is full).
    fn push(&self, e: squeue::Entry) {
        self.unsubmitted.set(self.unsubmitted.get() + 1);
        let mut ring = self.ring.borrow_mut();
        // SAFETY: the io_uring rule (module doc): every pointer in `e` names
        // memory its submitter keeps alive until the completion arrives.
        if unsafe { ring.submission().push(&e) }.is_ok() {
            return;
        }
        // Full: hand the queue to the kernel and retry; if it takes nothing
        // (EBUSY: its completion queue is full until the next poll reaps),
        // the entry waits in `overflow` for that poll.
        let _ = ring.submit();
        // SAFETY: as above.
        if unsafe { ring.submission().push(&e) }.is_err() {
            self.overflow.borrow_mut().push(e);
        }
    }

    /// Moves entries parked in `overflow` into the submission queue, as far
    /// as they fit.
    fn flush_overflow(&self) {
        let mut overflow = self.overflow.borrow_mut();
        let mut ring = self.ring.borrow_mut();
        let mut pushed = 0;
        for e in overflow.iter() {
            // SAFETY: as in `push`: the entries' memory outlives them.
            if unsafe { ring.submission().push(e) }.is_err() {
                break;
            }
            pushed += 1;
        }
        overflow.drain(..pushed);
    }

    /// Runs `f` on the table of posted sends.
    pub(super) fn posts_mut<R>(&self, f: impl FnOnce(&mut Posts) -> R) -> R {
        f(&mut self.posts.borrow_mut())
    }

    /// Posts `buf` on the socket of table entry `key` (see `posted.rs`);
    /// first the error an earlier posted send of it met, if any (then
    /// nothing is posted).
    pub(super) fn post(&self, key: usize, buf: &[u8]) -> io::Result<()> {
        let e = {
            let mut posts = self.posts.borrow_mut();
            if let Some(e) = posts.take_error(key) {
                return Err(e);
            }
            posts.post(key, buf)
        };
        if let Some(e) = e {
            self.in_flight.set(self.in_flight.get() + 1);
            self.push(e);
        }
        Ok(())
    }

    /// Submits operation `e` for `greenlet`; returns its slot.
    pub(super) fn start(&self, e: squeue::Entry, greenlet: usize) -> usize {
        let slot = self.slots.borrow_mut().insert(Slot { greenlet, done: None });
        self.in_flight.set(self.in_flight.get() + 1);
        self.push(e.user_data(slot as u64));
        slot
    }

    /// The result and the flags (`IORING_CQE_F_*`) of `slot` once it
    /// completed; the slot is freed then.
    pub(super) fn take(&self, slot: usize) -> Option<(i32, u32)> {
        let mut slots = self.slots.borrow_mut();
        let res = slots[slot].done?;
        slots.remove(slot);
        self.in_flight.set(self.in_flight.get() - 1);
        Some(res)
    }

    /// Asks the kernel to cancel `slot`'s operation (its completion still
    /// comes, as `-ECANCELED` or its own result if it finished first).
    pub(super) fn cancel(&self, slot: usize) {
        self.push(opcode::AsyncCancel::new(slot as u64).build().user_data(IGNORE));
    }

    /// Records the readiness wait in `slot` on the bare fd `fd` starting
    /// (`true`) or ending.
    pub(super) fn raw_wait(&self, fd: RawFd, slot: usize, starts: bool) {
        let mut waits = self.raw_waits.borrow_mut();
        if starts {
            waits.entry(fd).or_default().push(slot);
        } else if let Some(slots) = waits.get_mut(&fd) {
            slots.retain(|&s| s != slot);
            if slots.is_empty() {
                waits.remove(&fd);
            }
        }
    }

    /// Cancels the readiness waits on `fd` (it is about to close: they
    /// would otherwise outlive it, holding its file open). Each is
    /// cancelled by its own slot: a cancel by fd would match the fd's
    /// *file*, and so the operations of every dup of it (a `try_clone`
    /// reading on), and it makes the kernel scan every request in flight.
    /// Nothing to do, and no syscall, when none is in flight.
    pub(super) fn cancel_raw_waits(&self, fd: RawFd) {
        let Some(slots) = self.raw_waits.borrow_mut().remove(&fd) else { return };
        for slot in slots {
            self.cancel(slot);
        }
    }

    /// Operations in flight, and greenlets waiting for posted sends
    /// (they keep the hub from LoopExit).
    pub(super) fn waiting(&self) -> usize {
        self.slots.borrow().len() + self.posts.borrow().waiting()
    }

    /// True when a non-blocking poll has something to do.
    #[inline]
    pub(super) fn busy(&self) -> bool {
        (self.unsubmitted.get() | self.in_flight.get()) != 0
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
                    let pending = {
                        let sq = ring.submission();
                        self.unsubmitted.get() > 0 || sq.taskrun() || sq.cq_overflow()
                    };
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
            self.unsubmitted.set(ring.submission().len() + self.overflow.borrow().len());
        }
        self.reap(wake, remote);
        if !self.overflow.borrow().is_empty() {
            self.flush_overflow();
        }
        if !self.remote_armed.get() {
            self.arm_remote();
        }
    }

    fn reap(&self, wake: Wake<'_>, remote: RemoteDrain<'_>) {
        let mut ring = self.ring.borrow_mut();
        let mut slots = self.slots.borrow_mut();
        let mut next = Vec::new();
        for cqe in ring.completion().take(super::EVENTS_PER_POLL) {
            match cqe.user_data() {
                IGNORE => {}
                d if posted::is_posted(d, PROBE) => match self.posts.borrow_mut().complete(d, cqe.result(), wake) {
                    Some(e) => next.push(e),
                    None => self.in_flight.set(self.in_flight.get() - 1),
                },
                REMOTE => {
                    if !cqueue::more(cqe.flags()) {
                        self.remote_armed.set(false);
                    }
                    remote(wake);
                }
                k => {
                    let slot = &mut slots[k as usize];
                    slot.done = Some((cqe.result(), cqe.flags()));
                    wake(slot.greenlet);
                }
            }
        }
        // A posted send's next part (or its retry), pushed now that the
        // ring is free.
        drop((slots, ring));
        for e in next {
            self.push(e);
        }
    }
}

impl Drop for Uring {
    /// Posted sends still in flight when the hub goes: one last submission
    /// sends what can go at once (the kernel tries each send as it takes
    /// it), the rest is cancelled, and every completion is waited for (at
    /// most 5 s, past which their buffers are leaked rather than freed
    /// under the kernel).
    fn drop(&mut self) {
        let data = self.posts.borrow().in_flight_data();
        if data.is_empty() {
            return;
        }
        self.flush_overflow();
        for d in data {
            self.push(opcode::AsyncCancel::new(d).build().user_data(IGNORE));
        }
        let mut left = self.posts.borrow().in_flight();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while left > 0 && std::time::Instant::now() < until {
            self.flush_overflow();
            let ts = types::Timespec::from(Duration::from_millis(100));
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.ring.borrow().submitter().submit_with_args(1, &args);
            for cqe in self.ring.borrow_mut().completion() {
                if posted::is_posted(cqe.user_data(), PROBE) {
                    left -= 1;
                }
            }
        }
        self.posts.borrow_mut().clear(left > 0);
    }
}
