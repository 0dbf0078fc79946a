//! `pidfd_open(2)`: a descriptor that becomes readable once a child process
//! has exited, so waiting for a child is an ordinary readiness wait.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::sys;

/// A close-on-exec pidfd for process `pid` (which must not have been reaped).
///
/// # Errors
/// `ENOSYS` on kernels before 5.3 (and emulators without the call), `ESRCH`
/// if no such process exists.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: pidfd_open takes no pointers; the descriptor it returns is new.
    let fd = sys::cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: `fd` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
