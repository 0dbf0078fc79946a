//! The epoll backend: edge-triggered readiness. An operation tries its
//! non-blocking syscall first; on `EAGAIN` its greenlet waits on the fd's
//! reader or writer list until the next edge, then tries again (the one
//! generic loop is `op::run`).
//!
//! Each fd is registered once, at its first wait, for reading and writing
//! together (`EPOLLET`), and keyed by the fd number plus the id of the
//! socket object that owns it: a socket deregisters when it closes, and a
//! registration whose id no longer matches (an fd number reused behind the
//! hub's back) is replaced. Raw fds (`wait_read`) are registered only for
//! the length of their wait.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use slab::Slab;

use super::{sys, Interest, RemoteDrain, Wake};
use crate::wait::{WaitKey, WaitList, WaitNodes};

/// The epoll `u64` of the remote eventfd.
const REMOTE: u64 = u64::MAX;

struct Reg {
    fd: RawFd,
    /// The owning socket's id; 0 for a transient registration.
    id: u64,
    readers: WaitList,
    writers: WaitList,
    /// Readiness last reported by the kernel and not used up since
    /// (`READY_*` bits); an operation that finds it clear waits for the
    /// next edge instead of first trying a syscall bound to fail.
    ready: u8,
}

/// What every registration asks for: both directions and hang-ups,
/// edge-triggered.
const EVENTS: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

impl Reg {
    fn list(&mut self, interest: Interest) -> &mut WaitList {
        match interest {
            Interest::Read => &mut self.readers,
            Interest::Write => &mut self.writers,
        }
    }
}

const READY_READ: u8 = 1;
const READY_WRITE: u8 = 2;
/// Sticky: the peer closed its side (`EPOLLRDHUP`) or the socket failed;
/// reads (writes) then always try, since no further edge would come for
/// an end of file (an error) that a short read left pending.
const CLOSED_READ: u8 = 4;
const CLOSED_WRITE: u8 = 8;

/// The ready bit and the sticky closed bit of an interest.
fn ready_bits(interest: Interest) -> (u8, u8) {
    match interest {
        Interest::Read => (READY_READ, CLOSED_READ),
        Interest::Write => (READY_WRITE, CLOSED_WRITE),
    }
}

pub(super) struct Epoll {
    epfd: OwnedFd,
    regs: RefCell<Slab<Reg>>,
    /// fd number -> registration key + 1 (0: none).
    by_fd: RefCell<Vec<u32>>,
    nodes: RefCell<WaitNodes>,
    events: RefCell<Vec<libc::epoll_event>>,
    /// Whether the kernel has `epoll_pwait2` (until it says `ENOSYS`).
    pwait2: Cell<bool>,
}

impl Epoll {
    pub(super) fn new(remote_fd: RawFd) -> io::Result<Epoll> {
        // SAFETY: no pointers; the new descriptor is ours.
        let epfd = sys::cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `epfd` was just created and is owned by nobody else.
        let epfd = unsafe { OwnedFd::from_raw_fd(epfd) };
        let e = Epoll {
            epfd,
            regs: RefCell::new(Slab::new()),
            by_fd: RefCell::new(Vec::new()),
            nodes: RefCell::new(WaitNodes::default()),
            events: RefCell::new(vec![libc::epoll_event { events: 0, u64: 0 }; super::EVENTS_PER_POLL]),
            pwait2: Cell::new(true),
        };
        e.ctl(libc::EPOLL_CTL_ADD, remote_fd, libc::EPOLLIN as u32 | libc::EPOLLET as u32, REMOTE)?;
        Ok(e)
    }

    fn ctl(&self, op: i32, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: data };
        // SAFETY: `ev` is live for the call; the kernel copies it.
        sys::cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) }).map(drop)
    }

    /// Greenlets waiting for readiness.
    pub(super) fn waiting(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// The registration of `fd` for socket `id`, made if needed.
    fn register(&self, fd: RawFd, id: u64) -> io::Result<usize> {
        if let Some(key) = self.key_of(fd) {
            let mut regs = self.regs.borrow_mut();
            let reg = &mut regs[key];
            if reg.id == id {
                return Ok(key);
            }
            if id == 0 {
                // A raw wait on a socket's fd: fine while that socket is
                // open, but it may have closed unseen (dropped on another
                // thread) and the number been reused. A fresh ADD tells:
                // EEXIST means the registration is current.
                match self.ctl(libc::EPOLL_CTL_ADD, fd, EVENTS, key as u64) {
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(e),
                    Ok(()) => {
                        reg.id = 0;
                        reg.ready = READY_READ | READY_WRITE;
                    }
                }
                return Ok(key);
            }
            if reg.id == 0 {
                // A raw wait on this fd number came first: the socket owns the
                // registration now, if it is the kernel's for this file. The
                // raw wait may have been on an earlier file closed since (the
                // kernel dropped that registration): a fresh ADD tells.
                match self.ctl(libc::EPOLL_CTL_ADD, fd, EVENTS, key as u64) {
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(e),
                    Ok(()) => reg.ready = READY_READ | READY_WRITE,
                }
                reg.id = id;
                return Ok(key);
            }
            drop(regs);
            // Stale: the fd number now names another socket's file (its
            // waiters, if any, waited on a closed fd: they are dropped).
            self.drop_reg(key, &mut |_| {});
        }
        let key = self.regs.borrow_mut().insert(Reg {
            fd,
            id,
            readers: WaitList::default(),
            writers: WaitList::default(),
            ready: READY_READ | READY_WRITE,
        });
        if let Err(e) = self.ctl(libc::EPOLL_CTL_ADD, fd, EVENTS, key as u64) {
            self.regs.borrow_mut().remove(key);
            return Err(e);
        }
        let mut by_fd = self.by_fd.borrow_mut();
        if by_fd.len() <= fd as usize {
            by_fd.resize(fd as usize + 1, 0);
        }
        by_fd[fd as usize] = key as u32 + 1;
        Ok(key)
    }

    /// Forgets a registration; whoever still waits on it goes to `wake`
    /// (they retry their syscall and see the closed fd's error).
    fn drop_reg(&self, key: usize, wake: Wake<'_>) {
        let reg = self.regs.borrow_mut().remove(key);
        // The fd may be closed already (ENOENT/EBADF): nothing to undo then.
        let _ = self.ctl(libc::EPOLL_CTL_DEL, reg.fd, 0, 0);
        self.by_fd.borrow_mut()[reg.fd as usize] = 0;
        let mut nodes = self.nodes.borrow_mut();
        for list in [reg.readers, reg.writers] {
            list.drain(&mut nodes, &mut *wake);
        }
    }

    /// Deregisters `fd` before it is closed. Whatever registration the
    /// number has goes, whoever made it: the closing socket owns the number
    /// now, so the registration is its own, a raw wait's on its file, or
    /// stale.
    pub(super) fn deregister(&self, fd: RawFd, wake: Wake<'_>) {
        if let Some(key) = self.key_of(fd) {
            self.drop_reg(key, wake);
        }
    }

    /// The registration key of `fd`, if it has one.
    fn key_of(&self, fd: RawFd) -> Option<usize> {
        let current = self.by_fd.borrow().get(fd as usize).copied().unwrap_or(0);
        (current as usize).checked_sub(1)
    }

    /// The registration of socket `id` (never a transient one) on `fd`.
    fn owned_reg(&self, fd: RawFd, id: u64) -> Option<usize> {
        let key = self.key_of(fd)?;
        (id != 0 && self.regs.borrow()[key].id == id).then_some(key)
    }

    /// True when the kernel has reported no `interest` readiness on socket
    /// `id`'s fd since it was last used up.
    pub(super) fn known_unready(&self, fd: RawFd, id: u64, interest: Interest) -> bool {
        let (ready, closed) = ready_bits(interest);
        self.owned_reg(fd, id).is_some_and(|k| self.regs.borrow()[k].ready & (ready | closed) == 0)
    }

    /// True when socket `id`'s `interest` half is closed for good (a
    /// `shutdown`, a hang-up, an error).
    pub(super) fn is_shut(&self, fd: RawFd, id: u64, interest: Interest) -> bool {
        let closed = ready_bits(interest).1;
        self.owned_reg(fd, id).is_some_and(|k| self.regs.borrow()[k].ready & closed != 0)
    }

    /// Records that `interest` readiness was used up (`EAGAIN`, or a short
    /// read or write).
    pub(super) fn clear_ready(&self, fd: RawFd, id: u64, interest: Interest) {
        if let Some(k) = self.owned_reg(fd, id) {
            self.regs.borrow_mut()[k].ready &= !ready_bits(interest).0;
        }
    }

    /// Socket `id` shut `how` of `fd` down itself: the halves shut are
    /// closed for good (their operations always try the syscall), and
    /// their waiters go to `wake` to do so.
    pub(super) fn shut_down(&self, fd: RawFd, id: u64, how: std::net::Shutdown, wake: Wake<'_>) {
        use std::net::Shutdown;
        let Some(k) = self.owned_reg(fd, id) else { return };
        let mut regs = self.regs.borrow_mut();
        let mut nodes = self.nodes.borrow_mut();
        let reg = &mut regs[k];
        let halves: &[Interest] = match how {
            Shutdown::Read => &[Interest::Read],
            Shutdown::Write => &[Interest::Write],
            Shutdown::Both => &[Interest::Read, Interest::Write],
        };
        for &half in halves {
            let (ready, closed) = ready_bits(half);
            reg.ready |= ready | closed;
            reg.list(half).drain(&mut nodes, &mut *wake);
        }
    }

    /// Enlists greenlet `me` to wait for `interest` on `fd`.
    pub(super) fn enlist(&self, fd: RawFd, id: u64, interest: Interest, me: usize) -> io::Result<(usize, WaitKey)> {
        let key = self.register(fd, id)?;
        let mut regs = self.regs.borrow_mut();
        let reg = &mut regs[key];
        Ok((key, reg.list(interest).push_back(&mut self.nodes.borrow_mut(), me)))
    }

    /// True while the waiter is still enlisted (no edge yet).
    pub(super) fn listed(&self, reg: usize, interest: Interest, wk: WaitKey) -> bool {
        let regs = self.regs.borrow();
        let Some(r) = regs.get(reg) else { return false };
        let list = if interest == Interest::Read { &r.readers } else { &r.writers };
        list.contains(&self.nodes.borrow(), wk)
    }

    /// Leaves the list (if still in it); ends a transient registration
    /// nobody else waits on.
    pub(super) fn delist(&self, reg: usize, interest: Interest, wk: WaitKey) {
        let transient_idle = {
            let mut regs = self.regs.borrow_mut();
            let Some(r) = regs.get_mut(reg) else { return };
            r.list(interest).remove(&mut self.nodes.borrow_mut(), wk);
            r.id == 0 && r.readers.is_empty() && r.writers.is_empty()
        };
        if transient_idle {
            self.drop_reg(reg, &mut |_| {});
        }
    }

    /// Waits at most `timeout` for events and wakes their waiters.
    pub(super) fn poll(&self, timeout: Option<Duration>, wake: Wake<'_>, remote: RemoteDrain<'_>) {
        let mut events = self.events.borrow_mut();
        let n = match timeout {
            // Finer than a millisecond (a timer due in 50 µs): epoll_pwait2
            // takes a timespec where epoll_wait rounds up to whole
            // milliseconds. Kernels before 5.11 (and qemu-user) lack it.
            Some(d) if d.subsec_nanos() % 1_000_000 != 0 && self.pwait2.get() => {
                let ts = libc::timespec {
                    tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                    tv_nsec: d.subsec_nanos() as _,
                };
                // SAFETY: the kernel writes at most `len` events into the
                // vector's initialized storage and reads `ts`; no sigmask.
                let n = unsafe {
                    libc::syscall(
                        libc::SYS_epoll_pwait2,
                        self.epfd.as_raw_fd(),
                        events.as_mut_ptr(),
                        events.len() as libc::c_int,
                        &ts as *const libc::timespec,
                        std::ptr::null::<libc::sigset_t>(),
                        0usize,
                    )
                } as i32;
                match n {
                    // Refused (ENOSYS on old kernels and qemu-user, EPERM
                    // under some seccomp filters): epoll_wait from now on,
                    // starting with this wait.
                    _ if n < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) => {
                        self.pwait2.set(false);
                        // SAFETY: as below.
                        unsafe {
                            libc::epoll_wait(
                                self.epfd.as_raw_fd(),
                                events.as_mut_ptr(),
                                events.len() as i32,
                                sys::timeout_ms(timeout),
                            )
                        }
                    }
                    n => n,
                }
            }
            // SAFETY: the kernel writes at most `len` events into the
            // vector's initialized storage.
            _ => unsafe {
                libc::epoll_wait(
                    self.epfd.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    sys::timeout_ms(timeout),
                )
            },
        };
        if n <= 0 {
            return; // timeout, or EINTR (a signal: the caller loops)
        }
        let mut regs = self.regs.borrow_mut();
        let mut nodes = self.nodes.borrow_mut();
        for ev in &events[..n as usize] {
            let (bits, data) = (ev.events, ev.u64);
            if data == REMOTE {
                remote(wake);
                continue;
            }
            let Some(reg) = regs.get_mut(data as usize) else { continue };
            let err = bits & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
            if err {
                reg.ready |= CLOSED_READ | CLOSED_WRITE;
            }
            if bits & libc::EPOLLRDHUP as u32 != 0 {
                reg.ready |= CLOSED_READ;
            }
            if err || bits & (libc::EPOLLIN | libc::EPOLLRDHUP) as u32 != 0 {
                reg.ready |= READY_READ;
                reg.readers.drain(&mut nodes, &mut *wake);
            }
            if err || bits & libc::EPOLLOUT as u32 != 0 {
                reg.ready |= READY_WRITE;
                reg.writers.drain(&mut nodes, &mut *wake);
            }
        }
    }
}
