//! The parent's ends of a child's stdio pipes, cooperative: each is a
//! non-blocking fd read or written through the driver, so a greenlet that
//! waits for the child's output lets the others run.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::process::Stdio;

use crate::driver::{op, sys, Source};

/// Takes a pipe end from std, making it non-blocking.
fn source(fd: impl Into<OwnedFd>) -> io::Result<Source> {
    Source::new(fd.into())
}

/// Hands a pipe end to another child: blocking again, as programs expect
/// their stdio to be.
fn into_stdio(src: Source) -> Stdio {
    Stdio::from(into_blocking(src))
}

/// The pipe end's fd, out of the hub and blocking again (as std's pipe
/// ends are).
fn into_blocking(src: Source) -> OwnedFd {
    let fd = src.into_owned();
    // Only fails for a closed fd, which an owned one is not.
    let _ = sys::set_nonblocking(fd.as_raw_fd(), false);
    fd
}

/// Reads bytes an interrupted read left behind first (see `op::Salvage`).
fn read(src: &Source, salvage: &op::Salvage, buf: &mut [u8]) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    salvage.order.settle();
    if let Some(n) = salvage.take(buf, false) {
        return Ok(n);
    }
    let _reading = salvage.order.reading();
    op::run(src.target(), &mut op::Read { buf, salvage }, None)
}

/// A child's standard input ([`Child::stdin`](super::Child::stdin)), written
/// cooperatively. Dropping it closes the pipe: the child reads end-of-file.
///
/// # Blocking
/// `write` waits, parked, while the pipe is full; kills and timeouts unwind
/// out of it. Writing after the child closed its end fails with
/// `BrokenPipe`.
pub struct ChildStdin {
    src: Source,
}

impl ChildStdin {
    pub(super) fn new(pipe: std::process::ChildStdin) -> io::Result<ChildStdin> {
        Ok(ChildStdin { src: source(pipe)? })
    }
}

impl Write for ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        op::run(self.src.target(), &mut op::Write { buf }, None)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Defines a cooperative reader of a child's output pipe.
macro_rules! reader {
    ($(#[$doc:meta])* $name:ident, $std:ty) => {
        $(#[$doc])*
        ///
        /// # Blocking
        /// `read` waits, parked, until the child writes or closes its end
        /// (`Ok(0)`: end-of-file); kills and timeouts unwind out of it,
        /// losing nothing: on io_uring, bytes the kernel had already read
        /// for the interrupted call are kept, and the next `read` returns
        /// them first. They are this handle's: handing the pipe on (to
        /// another child's stdin, or as an fd) leaves them behind.
        pub struct $name {
            src: Source,
            /// Bytes a killed reader's read took (io_uring), read next.
            salvage: op::Salvage,
        }

        impl $name {
            pub(super) fn new(pipe: $std) -> io::Result<$name> {
                Ok($name { src: source(pipe)?, salvage: op::Salvage::default() })
            }
        }

        impl Read for $name {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                read(&self.src, &self.salvage, buf)
            }
        }

        impl Read for &$name {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                read(&self.src, &self.salvage, buf)
            }
        }
    };
}

reader!(
    /// A child's standard output ([`Child::stdout`](super::Child::stdout)),
    /// read cooperatively.
    ChildStdout,
    std::process::ChildStdout
);

reader!(
    /// A child's standard error ([`Child::stderr`](super::Child::stderr)),
    /// read cooperatively.
    ChildStderr,
    std::process::ChildStderr
);

/// The fd accessors and conversions every pipe end has.
macro_rules! pipe_end {
    ($($name:ident),*) => {$(
        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.src.raw()
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.src.fd().as_fd()
            }
        }

        /// Connects the pipe to another child's stdio (`a | b`), as std's
        /// `Stdio::from(ChildStdout)`; the fd is made blocking again.
        impl From<$name> for Stdio {
            fn from(pipe: $name) -> Stdio {
                into_stdio(pipe.src)
            }
        }

        /// The pipe end's fd, as std's conversion gives it: blocking
        /// again, and no longer known to the hub.
        impl From<$name> for OwnedFd {
            fn from(pipe: $name) -> OwnedFd {
                into_blocking(pipe.src)
            }
        }

        /// As `From<_> for OwnedFd`; the caller owns the fd.
        impl IntoRawFd for $name {
            fn into_raw_fd(self) -> RawFd {
                OwnedFd::from(self).into_raw_fd()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("fd", &self.src.raw()).finish()
            }
        }
    )*};
}

pipe_end!(ChildStdin, ChildStdout, ChildStderr);
