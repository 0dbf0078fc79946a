//! The I/O driver: one interface, two backends, chosen when a hub is
//! created: io_uring (the operations themselves are submitted) unless the
//! kernel refuses it or `GEVENT_BACKEND=epoll` is set; edge-triggered epoll
//! otherwise. Operations go through the one generic loop in [`op::run`].
//!
//! The hub polls the driver without blocking once per pass over its run
//! queue (when anything is in flight), and blocking, up to the next timer,
//! when nothing is ready. Other threads reach the hub only through a
//! [`RemoteHandle`] (an eventfd the backend watches).
//!
//! Known edge-triggered limits of the epoll backend (io_uring has neither):
//! - A stream read that returns less than asked counts as draining the
//!   socket (tokio does the same: it saves a failing syscall per read). The
//!   kernel also stops short at a TCP urgent mark and at a Unix message
//!   carrying ancillary data (`SCM_RIGHTS`, `SO_PASSCRED`): the data behind
//!   it is read at the next edge, i.e. when more data arrives.
//! - A writer blocked on a full Unix stream is not woken when the peer
//!   shuts down its read side, nor by its own side's write shutdown (the
//!   kernel reports no event for either); a write timeout bounds that wait.
//!   The socket's own `shutdown` wakes its waiters on the calling hub
//!   itself (`Driver::shut_down`), which covers the same handle on its own
//!   thread.

pub(crate) mod blocking;
mod epoll;
pub(crate) mod op;
pub(crate) mod pidfd;
pub(crate) mod posted;
mod remote;
pub(crate) mod sig;
pub(crate) mod sys;
mod uring;

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

pub(crate) use remote::{HomeMsg, RemoteHandle, WeakRemote};

/// Which I/O backend a hub runs (see [`crate::hub::backend`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// io_uring: operations are submitted to the kernel and complete there.
    IoUring,
    /// epoll, edge-triggered: non-blocking syscalls retried on readiness.
    Epoll,
}

thread_local! {
    /// This thread's choice for stream sends on io_uring (see
    /// [`ring_sends`]): 0 not read yet, 1 syscall first, 2 posted.
    static RING_SENDS: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// Whether small stream sends on this thread's io_uring hub are posted to
/// the ring (`posted.rs`) rather than tried by syscall first
/// (`crate::hub::set_ring_sends`);
/// until set, `GEVENT_RING_SENDS=1` turns it on.
pub(crate) fn ring_sends() -> bool {
    RING_SENDS.with(|r| match r.get() {
        0 => {
            let on = std::env::var_os("GEVENT_RING_SENDS").is_some_and(|v| v == "1");
            r.set(if on { 2 } else { 1 });
            on
        }
        v => v == 2,
    })
}

/// Sets [`ring_sends`] for this thread.
pub(crate) fn set_ring_sends(on: bool) {
    RING_SENDS.with(|r| r.set(if on { 2 } else { 1 }));
}

/// The most I/O events one poll collects (epoll events, io_uring
/// completions); the rest wait for the next poll, at the end of the pass.
/// Small batches keep request and response streams overlapping: measured
/// on the echo benchmark at 1,000 connections, 32 per poll serves ~15%
/// more round trips per second than 1,024 (and 8 or 16 no more than 32).
pub(crate) const EVENTS_PER_POLL: usize = 32;

/// Operations that may complete in a row without waiting before the
/// greenlet running them yields once (before the next one starts, so a
/// kill or timeout in the yield loses no data). A greenlet reading a
/// socket that always has data would otherwise keep the hub to itself:
/// other connections, timers and timeouts would wait until its peer
/// paused (tokio's cooperative budget is 128 too).
pub(crate) const IO_BUDGET: u32 = 128;

/// Where the driver hands each greenlet an I/O event woke.
pub(crate) type Wake<'a> = &'a mut dyn FnMut(usize);
/// Drains the remote queue when the eventfd fired.
pub(crate) type RemoteDrain<'a> = &'a dyn Fn(&mut dyn FnMut(usize));

/// What an operation waits for when it cannot proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    Read,
    Write,
}

// One per hub, built once and never moved: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Kind {
    Uring(uring::Uring),
    Epoll(epoll::Epoll),
}

/// One hub's I/O: its backend and its remote wake-ups.
pub(crate) struct Driver {
    kind: Kind,
    remote: remote::Remote,
    /// Operations left before the next one yields first ([`IO_BUDGET`]).
    budget: std::cell::Cell<u32>,
}

impl Driver {
    /// The backend for a new hub: io_uring unless refused, or unless epoll
    /// is `preferred` (or, with no preference, `GEVENT_BACKEND=epoll`).
    ///
    /// # Panics
    /// When neither an eventfd nor an epoll instance can be created (out of
    /// file descriptors at hub creation).
    pub(crate) fn new(preferred: Option<Backend>) -> Driver {
        let remote = remote::Remote::new().expect("gevent: cannot create the hub's eventfd");
        let forced = match preferred {
            Some(b) => b == Backend::Epoll,
            None => std::env::var("GEVENT_BACKEND").is_ok_and(|v| v.eq_ignore_ascii_case("epoll")),
        };
        let uring = if forced { None } else { uring::Uring::new(remote.fd()).ok() };
        let kind = match uring {
            Some(u) => Kind::Uring(u),
            None => Kind::Epoll(epoll::Epoll::new(remote.fd()).expect("gevent: cannot create an epoll instance")),
        };
        Driver { kind, remote, budget: std::cell::Cell::new(IO_BUDGET) }
    }

    /// Counts an operation about to start: true when the budget is spent
    /// (and refilled), so the caller yields first.
    #[inline]
    pub(crate) fn spend(&self) -> bool {
        let left = self.budget.get() - 1;
        self.budget.set(if left == 0 { IO_BUDGET } else { left });
        left == 0
    }

    /// An operation waits (its greenlet parks, so others run): the budget
    /// starts again.
    #[inline]
    pub(crate) fn refill(&self) {
        self.budget.set(IO_BUDGET);
    }

    pub(crate) fn backend(&self) -> Backend {
        match self.kind {
            Kind::Uring(_) => Backend::IoUring,
            Kind::Epoll(_) => Backend::Epoll,
        }
    }

    /// True while a greenlet waits on I/O or on another thread: the hub
    /// must poll rather than report LoopExit.
    pub(crate) fn waiting(&self) -> bool {
        self.remote.waiting() > 0
            || match &self.kind {
                Kind::Uring(u) => u.waiting() > 0,
                Kind::Epoll(e) => e.waiting() > 0,
            }
    }

    /// True when a non-blocking poll has anything to collect or submit.
    #[inline]
    pub(crate) fn busy(&self) -> bool {
        self.remote.pollable()
            || match &self.kind {
                Kind::Uring(u) => u.busy(),
                Kind::Epoll(e) => e.waiting() > 0,
            }
            // Last: the one check that leaves the hub's own memory.
            || self.remote.home_msgs_pending()
    }

    /// Waits at most `timeout` (`None`: until something happens) and hands
    /// every greenlet whose I/O completed to `wake`.
    pub(crate) fn poll(&self, timeout: Option<Duration>, wake: &mut dyn FnMut(usize)) {
        let remote = |wake: &mut dyn FnMut(usize)| self.remote.drain(wake);
        match &self.kind {
            Kind::Uring(u) => {
                u.poll(timeout, wake, &remote);
                for msg in self.remote.take_home_msgs() {
                    self.at_home(msg);
                }
            }
            Kind::Epoll(e) => e.poll(timeout, wake, &remote),
        }
    }

    /// Whether an operation on `t` may name its fd as a fixed file, which
    /// it then is: the backend is io_uring, the fd fits the table, and this
    /// hub is the source's home (the first hub to use its table for it,
    /// whose table alone may hold it).
    fn fixed_file(&self, t: op::Target<'_>) -> bool {
        let (Kind::Uring(u), Some(_)) = (&self.kind, t.home) else {
            return false;
        };
        u.fixed(t.fd, t.id, || self.home_here(t))
    }

    /// Whether this hub is the home of `t`'s source (made so if it has
    /// none yet): only the home hub's ring holds its fixed file and its
    /// posted sends.
    pub(crate) fn home_here(&self, t: op::Target<'_>) -> bool {
        let Some(home) = t.home else { return false };
        let mine = self.remote.handle_ref();
        home.get_or_init(|| mine.downgrade()).is(mine)
    }

    /// Does what a socket of this hub asked (see [`HomeMsg`]); only an
    /// io_uring ring holds anything to act on.
    pub(crate) fn at_home(&self, msg: HomeMsg) {
        let Kind::Uring(u) = &self.kind else { return };
        match msg {
            HomeMsg::ReleaseFixed(fd, id) => u.release_fixed(fd, id),
            HomeMsg::ClosePosted(key, id, fd) => u.posts_mut(|p| p.close(key, id, fd)),
        }
    }

    /// Whether `home` is this hub's.
    pub(crate) fn is_home(&self, home: &WeakRemote) -> bool {
        home.is(self.remote.handle_ref())
    }

    fn uring(&self) -> Option<&uring::Uring> {
        match &self.kind {
            Kind::Uring(u) => Some(u),
            Kind::Epoll(_) => None,
        }
    }

    fn epoll(&self) -> Option<&epoll::Epoll> {
        match &self.kind {
            Kind::Epoll(e) => Some(e),
            Kind::Uring(_) => None,
        }
    }

    /// Forgets `fd` before its socket closes it. Raw waits on the fd
    /// (`wait_read`, `select`) end: on epoll their greenlets go to `wake`
    /// (they retry and see the closed fd), on io_uring their operations are
    /// cancelled.
    /// With `closing` false the fd stays open (handed over as an
    /// `OwnedFd`): raw waits on it go on (on epoll they retry).
    pub(crate) fn deregister(&self, fd: RawFd, wake: Wake<'_>, closing: bool) {
        match &self.kind {
            Kind::Epoll(e) => e.deregister(fd, wake),
            Kind::Uring(u) if closing => u.cancel_raw_waits(fd),
            Kind::Uring(_) => {}
        }
    }

    /// Socket `id` shut `how` of `fd` down: see `hub::shut_down`. (On
    /// io_uring the kernel retries the operations in flight by itself.)
    pub(crate) fn shut_down(&self, fd: RawFd, id: u64, how: std::net::Shutdown, wake: Wake<'_>) {
        if let Kind::Epoll(e) = &self.kind {
            e.shut_down(fd, id, how, wake);
        }
    }

    /// A `Send` handle that completes this hub's remote waits.
    pub(crate) fn remote_handle(&self) -> RemoteHandle {
        self.remote.handle()
    }

    /// The eventfd that wakes this hub (async-signal-safe to write).
    pub(crate) fn remote_fd(&self) -> RawFd {
        self.remote.fd()
    }
}

/// A remote wait of the current greenlet: open it, hand
/// [`token`](RemoteWait::token) and a [`RemoteHandle`] to another thread,
/// then [`wait`](RemoteWait::wait). Dropped early (the greenlet is killed),
/// it closes, and a late completion is ignored.
#[derive(Debug)]
pub(crate) struct RemoteWait {
    token: u64,
}

impl RemoteWait {
    /// Opens a wait for the current greenlet.
    pub(crate) fn open() -> RemoteWait {
        let me = crate::hub::current_key();
        RemoteWait { token: crate::hub::with_driver(|d| d.remote.open(me)) }
    }

    pub(crate) fn token(&self) -> u64 {
        self.token
    }

    /// Parks until the token is completed.
    ///
    /// # Blocking
    /// Until another thread calls [`RemoteHandle::complete`]; kills and
    /// timeouts unwind out of it.
    pub(crate) fn wait(&self) {
        while !self.is_done() {
            crate::hub::park();
        }
    }

    /// As [`wait`](Self::wait), at most `d`; true if the token was
    /// completed (also when that happened just as `d` passed). A zero `d`
    /// never switches.
    ///
    /// # Blocking
    /// As [`wait`](Self::wait), bounded by `d`.
    pub(crate) fn wait_timeout(&self, d: Duration) -> bool {
        if self.is_done() || d.is_zero() {
            return self.is_done();
        }
        let me = crate::hub::current_key();
        let timer = crate::hub::TimerGuard::arm(d, crate::timer::Action::Wake(me));
        loop {
            crate::hub::park();
            if self.is_done() {
                return true;
            }
            if timer.fired() {
                return false;
            }
        }
    }

    /// True once the token was completed.
    pub(crate) fn is_done(&self) -> bool {
        crate::hub::with_driver(|d| d.remote.is_done(self.token))
    }
}

impl Drop for RemoteWait {
    fn drop(&mut self) {
        crate::hub::with_driver(|d| d.remote.close(self.token));
    }
}

/// A handle that completes remote waits of the current thread's hub.
pub(crate) fn remote_handle() -> RemoteHandle {
    crate::hub::with_driver(|d| d.remote_handle())
}

/// The current hub's wake-up eventfd.
pub(crate) fn remote_fd() -> RawFd {
    crate::hub::with_driver(|d| d.remote_fd())
}

/// A dup of the current hub's wake-up eventfd, owned by the caller: an
/// async-signal handler writes to it, and its number cannot be reused
/// while the caller holds it, even after the hub is gone.
pub(crate) fn remote_fd_dup() -> io::Result<std::os::fd::OwnedFd> {
    crate::hub::with_driver(|d| d.remote.dup_fd())
}

/// Keeps (`true`) or stops keeping (`false`) the current hub waiting for
/// its eventfd when every greenlet is blocked, as a pending remote wait
/// does (a signal handler kept alive, see `signal`).
pub(crate) fn hold_remote(on: bool) {
    crate::hub::with_driver(|d| d.remote.hold(on))
}

/// Parks the current greenlet until the hub's eventfd is next written
/// (by anyone: a signal handler, a worker). One such watcher per hub.
pub(crate) fn wait_kick() {
    let me = crate::hub::current_key();
    crate::hub::with_driver(|d| d.remote.set_kick_watcher(Some(me)));
    struct Unwatch;
    impl Drop for Unwatch {
        fn drop(&mut self) {
            crate::hub::with_driver(|d| d.remote.set_kick_watcher(None));
        }
    }
    let _unwatch = Unwatch;
    crate::hub::park();
}

/// `io::ErrorKind::TimedOut`, as every timed-out operation reports it.
pub(crate) fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "gevent: operation timed out")
}

/// An fd owned by a cooperative I/O object (socket, pipe): non-blocking,
/// with an id that keys its epoll registration (see `epoll.rs`), and
/// deregistered from the hub before it closes.
#[derive(Debug)]
pub(crate) struct Source {
    fd: Option<std::os::fd::OwnedFd>,
    id: u64,
    /// The hub whose io_uring may hold the fd in its fixed-file table (see
    /// `uring.rs`), told to let go when the fd closes, from any thread.
    home: Home,
}

/// A source's home hub, set by its first receive on an io_uring hub.
pub(crate) type Home = std::sync::OnceLock<WeakRemote>;

impl Source {
    /// Takes `fd`, making it non-blocking.
    pub(crate) fn new(fd: std::os::fd::OwnedFd) -> io::Result<Source> {
        use std::os::fd::AsRawFd;
        sys::set_nonblocking(fd.as_raw_fd(), true)?;
        Ok(Source::from_nonblocking(fd))
    }

    /// Takes `fd`, which is non-blocking already (`SOCK_NONBLOCK`).
    pub(crate) fn from_nonblocking(fd: std::os::fd::OwnedFd) -> Source {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Source { fd: Some(fd), id: NEXT_ID.fetch_add(1, Ordering::Relaxed), home: Home::new() }
    }

    /// What operations run on.
    pub(crate) fn target(&self) -> op::Target<'_> {
        op::Target { fd: self.raw(), id: self.id, home: Some(&self.home) }
    }

    pub(crate) fn raw(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        self.fd.as_ref().map_or(-1, |f| f.as_raw_fd())
    }

    pub(crate) fn fd(&self) -> &std::os::fd::OwnedFd {
        self.fd.as_ref().expect("a live source has its fd")
    }

    /// The source's id and its home hub, if it has one yet.
    pub(crate) fn id_and_home(&self) -> (u64, Option<&WeakRemote>) {
        (self.id, self.home.get())
    }

    /// Takes the fd out to close it later (see `posted::close`): forgotten
    /// as if it closed now (out of the fixed-file table, deregistered).
    pub(crate) fn take_closing(&mut self) -> Option<std::os::fd::OwnedFd> {
        let fd = self.fd.take()?;
        self.forget(&fd, true);
        Some(fd)
    }

    /// Takes the fd out, open (see [`into_owned`](Self::into_owned)).
    pub(crate) fn take_owned(&mut self) -> std::os::fd::OwnedFd {
        let fd = self.fd.take().expect("a live source has its fd");
        self.forget(&fd, false);
        fd
    }

    /// Gives the fd up (deregistered first; it stays open, so raw waits
    /// on it go on).
    pub(crate) fn into_owned(mut self) -> std::os::fd::OwnedFd {
        self.take_owned()
    }

    /// Before `fd` leaves (`closing`: it is about to close): out of the
    /// home hub's fixed-file table (at once on the home thread, else by a
    /// message the home hub reads at its next poll; the slot is only
    /// emptied if this source still holds it), and deregistered from this
    /// thread's hub.
    fn forget(&self, fd: &std::os::fd::OwnedFd, closing: bool) {
        use std::os::fd::AsRawFd;
        let fd = fd.as_raw_fd();
        if let Some(home) = self.home.get() {
            crate::hub::tell_home(home, HomeMsg::ReleaseFixed(fd, self.id));
        }
        crate::hub::deregister(fd, closing);
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            self.forget(&fd, true);
        }
    }
}
