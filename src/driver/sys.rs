//! Thin wrappers over the system calls the driver and the socket layer make.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::Interest;

/// A syscall's `-1` return as the thread's `errno`.
pub(crate) fn cvt<T: Default + PartialOrd>(r: T) -> io::Result<T> {
    if r < T::default() {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A negative io_uring result (`-errno`) as an error.
pub(crate) fn cvt_res(res: i32) -> io::Result<usize> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as usize)
    }
}

/// A Unix socket's local (or, with `peer`, peer) address as std gives it
/// (std represents unnamed and abstract addresses; socket2 has no std
/// value for them), read from `fd` in place: a dup of it would fail near
/// the fd limit, losing an accepted connection.
pub(crate) fn unix_addr(fd: std::os::fd::BorrowedFd<'_>, peer: bool) -> io::Result<std::os::unix::net::SocketAddr> {
    // SAFETY: the std stream is a view of `fd`, which stays open for the
    // call (it is borrowed); `ManuallyDrop` never closes it.
    let view = std::mem::ManuallyDrop::new(unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd.as_raw_fd()) });
    if peer {
        view.peer_addr()
    } else {
        view.local_addr()
    }
}

/// A Unix socket address for `path`, refused (as std refuses it) when the
/// path holds a NUL byte: the kernel would silently cut it there, or take
/// a leading one for the abstract namespace.
pub(crate) fn unix_path(path: &std::path::Path) -> io::Result<socket2::SockAddr> {
    use std::os::unix::ffi::OsStrExt;
    if path.as_os_str().as_bytes().contains(&0) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "paths must not contain interior null bytes"));
    }
    socket2::SockAddr::unix(path)
}

/// `kill(2)`: sends `sig` to process `pid`.
pub(crate) fn kill(pid: u32, sig: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: a plain syscall on integers.
    cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// Sets or clears `O_NONBLOCK`.
pub(crate) fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor the caller owns; no memory.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let flags = if on { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) }).map(drop)
}

/// Makes `cmd`'s child clear `O_NONBLOCK` on those of its fds 0, 1, 2
/// that `which` names, after they were set up and before it executes the
/// program (gevent's `_remove_nonblock_flag`): a program expects blocking
/// stdio, and an fd taken out of a gevent socket is non-blocking. The flag
/// belongs to the open file, so a copy the parent kept becomes blocking
/// too: this crate's socket reads and writes pass `MSG_DONTWAIT` and do
/// not mind, but an accept on a kept listener, or a read or write of a
/// kept pipe end, can then block the hub thread (on epoll).
pub(crate) fn blocking_stdio_in_child(cmd: &mut std::process::Command, which: [bool; 3]) {
    use std::os::unix::process::CommandExt;
    let hook = move || {
        for fd in (0..3).filter(|&fd| which[fd as usize]) {
            // SAFETY: fcntl on an integer fd is async-signal-safe and
            // touches no memory: allowed between fork and exec.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            if flags >= 0 && flags & libc::O_NONBLOCK != 0 {
                // SAFETY: as above.
                unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) };
            }
        }
        Ok(())
    };
    // SAFETY: the hook only calls fcntl (async-signal-safe), allocates
    // nothing and takes no lock, as a closure run after fork must.
    unsafe { cmd.pre_exec(hook) };
}

/// A non-blocking, close-on-exec eventfd.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; a new descriptor is ours to own.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
    // SAFETY: `fd` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd (async-signal-safe: a plain `write`).
pub(crate) fn eventfd_wake(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live local; a full counter (EAGAIN) is
    // fine, the hub is awake anyway.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Resets an eventfd's counter.
pub(crate) fn eventfd_drain(fd: RawFd) {
    let mut n: u64 = 0;
    // SAFETY: reads 8 bytes into a live local.
    unsafe { libc::read(fd, (&mut n as *mut u64).cast(), 8) };
}

/// The `poll(2)` bits for an interest.
pub(crate) fn poll_bits(interest: Interest) -> i16 {
    match interest {
        Interest::Read => libc::POLLIN | libc::POLLRDHUP,
        Interest::Write => libc::POLLOUT,
    }
}

/// Whether `fd` is ready for `interest` right now (`poll(2)` with no wait).
/// An error or hang-up condition counts as ready: the next call reports it.
pub(crate) fn ready_now(fd: RawFd, interest: Interest) -> io::Result<bool> {
    // `poll` skips a negative fd (never ready) and reports one that is not
    // open as ready (`POLLNVAL`): both are `EBADF`, as io_uring says.
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    let mut p = libc::pollfd { fd, events: poll_bits(interest), revents: 0 };
    // SAFETY: one pollfd, live for the call.
    let n = cvt(unsafe { libc::poll(&mut p, 1, 0) })?;
    if p.revents & libc::POLLNVAL != 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    Ok(n > 0 && p.revents != 0)
}

/// True when writing to stderr would fail at once: its fd is a pipe or
/// socket whose reader is gone (`POLLERR`/`POLLHUP`, asked without
/// waiting).
pub(crate) fn stderr_gone() -> bool {
    let mut p = libc::pollfd { fd: 2, events: libc::POLLOUT, revents: 0 };
    // SAFETY: one pollfd, live for the call.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// True when `fd`'s read half is shut down (`POLLRDHUP`, asked without
/// waiting).
pub(crate) fn read_shut(fd: RawFd) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLRDHUP, revents: 0 };
    // SAFETY: one pollfd, live for the call.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & libc::POLLRDHUP != 0
}

/// Milliseconds for `epoll_wait`, rounded up so a timer is never early;
/// `-1` waits without limit.
pub(crate) fn timeout_ms(d: Option<Duration>) -> i32 {
    match d {
        None => -1,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            ms.min(i32::MAX as u128) as i32
        }
    }
}

/// A socket's pending error (`SO_ERROR`), cleared by reading it.
pub(crate) fn socket_error(fd: RawFd) -> io::Result<Option<io::Error>> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel writes one c_int into `err`.
    cvt(unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, (&mut err as *mut libc::c_int).cast(), &mut len)
    })?;
    Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
}

/// The fds of `rlist` readable and of `wlist` writable right now (one
/// `poll(2)` with no wait); `EBADF` if any is not an open fd, as select,
/// and `InvalidInput` for a negative one (which `poll` would skip), as
/// Python's `select` refuses it.
pub(crate) fn ready_set(rlist: &[RawFd], wlist: &[RawFd]) -> io::Result<(Vec<RawFd>, Vec<RawFd>)> {
    if let Some(fd) = rlist.iter().chain(wlist).find(|&&fd| fd < 0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("gevent: select on a negative file descriptor ({fd})"),
        ));
    }
    let entry = |fd, interest| libc::pollfd { fd, events: poll_bits(interest), revents: 0 };
    let mut fds: Vec<libc::pollfd> = rlist.iter().map(|&fd| entry(fd, Interest::Read)).collect();
    fds.extend(wlist.iter().map(|&fd| entry(fd, Interest::Write)));
    // SAFETY: `fds` is a live array of `len` pollfds.
    cvt(unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) })?;
    if fds.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    let (r, w) = fds.split_at(rlist.len());
    let ready = |ps: &[libc::pollfd]| ps.iter().filter(|p| p.revents != 0).map(|p| p.fd).collect();
    Ok((ready(r), ready(w)))
}

/// A private level-triggered epoll set of `rlist` (for reading) and
/// `wlist` (for writing): readable while any of them is ready, so one wait
/// on it waits for them all; and an eventfd in the set that makes it
/// readable when written (`eventfd_wake`). `None` when a listed fd is one
/// epoll cannot watch (a regular file, which is always ready).
pub(crate) fn epoll_set(rlist: &[RawFd], wlist: &[RawFd]) -> io::Result<Option<(OwnedFd, OwnedFd)>> {
    // SAFETY: plain syscall; the fd it returns is ours alone.
    let ep = unsafe { OwnedFd::from_raw_fd(cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
    let poke = eventfd()?;
    let mut interests: Vec<(RawFd, i16)> = rlist.iter().map(|&fd| (fd, poll_bits(Interest::Read))).collect();
    interests.push((poke.as_raw_fd(), poll_bits(Interest::Read)));
    interests.extend(wlist.iter().map(|&fd| (fd, poll_bits(Interest::Write))));
    interests.sort_unstable();
    // An fd listed twice (or in both lists) is added once, for both.
    interests.dedup_by(|later, first| {
        let same = later.0 == first.0;
        if same {
            first.1 |= later.1;
        }
        same
    });
    for (fd, bits) in interests {
        let mut ev = libc::epoll_event { events: bits as u16 as u32, u64: fd as u64 };
        // SAFETY: `ep` is our epoll fd and `ev` a live event the kernel copies.
        match cvt(unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) }) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some((ep, poke)))
}

/// `CLOCK_MONOTONIC_COARSE` in nanoseconds: the clock `Instant` reads, as
/// of the last timer tick (so up to its resolution behind), for a few ns
/// instead of a full clock read. `None` where the kernel lacks it.
#[inline]
pub(crate) fn coarse_monotonic_ns() -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: the kernel (vDSO) writes one timespec into `ts`.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (r == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// The resolution of [`coarse_monotonic_ns`]; `None` where the kernel lacks
/// that clock.
pub(crate) fn coarse_monotonic_res() -> Option<Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: the kernel writes one timespec into `ts`.
    let r = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (r == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// True when the running kernel is at least `major.minor` (its release, as
/// `uname -r` prints it, e.g. "6.18.44-...", read once from
/// `/proc/sys/kernel/osrelease`; false if it cannot be read).
pub(crate) fn kernel_at_least(major: u32, minor: u32) -> bool {
    static RELEASE: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    let &(have_major, have_minor) = RELEASE.get_or_init(|| {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    });
    (have_major, have_minor) >= (major, minor)
}

/// The soft `RLIMIT_NOFILE`: how many fds the process may have open (0 if
/// unknown).
pub(crate) fn fd_limit() -> u64 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `r` is a valid `rlimit` for the call to fill.
    match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } {
        0 => r.rlim_cur,
        _ => 0,
    }
}
