//! Child processes waited for cooperatively (gevent's `gevent.subprocess`),
//! shaped like [`std::process`]: a [`Command`] spawns a [`Child`] whose
//! pipes and exit are awaited by parking the greenlet, not the thread.
//! [`gevent::wait`](crate::wait) and [`iwait`](crate::iwait) take children
//! (and [`ChildExit`] handles on them), as gevent's take `Popen` objects.
//!
//! # Examples
//! ```
//! use gevent::subprocess::Command;
//!
//! let out = Command::new("sh").args(["-c", "echo hello"]).output().unwrap();
//! assert!(out.status.success());
//! assert_eq!(out.stdout, b"hello\n");
//! ```
#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::Path;

mod child;
mod exit;
mod pipe;

pub use child::Child;
pub use exit::ChildExit;
pub use pipe::{ChildStderr, ChildStdin, ChildStdout};
pub use std::process::{ExitStatus, Output, Stdio};

/// A process builder, as [`std::process::Command`]: program, arguments,
/// environment, working directory and stdio, then [`spawn`](Self::spawn),
/// [`output`](Self::output) or [`status`](Self::status).
///
/// The stdio defaults are std's: inherited for `spawn` and `status`; for
/// `output`, stdin is null and stdout and stderr are captured.
pub struct Command {
    inner: std::process::Command,
    /// Which of stdin, stdout, stderr were configured explicitly.
    stdio_set: [bool; 3],
    /// Those of them the child already makes blocking (its hook is
    /// registered once per set of fds).
    made_blocking: [bool; 3],
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl Command {
    /// A command running `program` (looked up in `PATH` if it has no `/`).
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command { inner: std::process::Command::new(program), stdio_set: [false; 3], made_blocking: [false; 3] }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Sets an environment variable of the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env(key, val);
        self
    }

    /// Sets environment variables of the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what `env` adds).
    pub fn env_clear(&mut self) -> &mut Command {
        self.inner.env_clear();
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.inner.current_dir(dir);
        self
    }

    /// Configures the child's stdin ([`Stdio::piped`] gives
    /// [`Child::stdin`]). An fd handed over this way (a gevent socket's,
    /// which is non-blocking) is made blocking in the child, as gevent's
    /// `Popen` does. The flag is the open file's, shared with any copy the
    /// parent kept: a kept socket's reads and writes do not mind, but an
    /// accept on a kept listener (or a read of a kept pipe end) may then
    /// block the whole thread; hand over fds the parent no longer uses.
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stdin(cfg);
        self.stdio_set[0] = true;
        self
    }

    /// Configures the child's stdout ([`Stdio::piped`] gives
    /// [`Child::stdout`]); an fd handed over is made blocking in the child
    /// (see [`stdin`](Self::stdin)).
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stdout(cfg);
        self.stdio_set[1] = true;
        self
    }

    /// Configures the child's stderr ([`Stdio::piped`] gives
    /// [`Child::stderr`]); an fd handed over is made blocking in the child
    /// (see [`stdin`](Self::stdin)).
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stderr(cfg);
        self.stdio_set[2] = true;
        self
    }

    /// The program to run.
    pub fn get_program(&self) -> &OsStr {
        self.inner.get_program()
    }

    /// The arguments (without the program).
    pub fn get_args(&self) -> std::process::CommandArgs<'_> {
        self.inner.get_args()
    }

    /// The environment changes made (`None` values: removed), as std's.
    pub fn get_envs(&self) -> std::process::CommandEnvs<'_> {
        self.inner.get_envs()
    }

    /// The working directory set, if any.
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.inner.get_current_dir()
    }

    /// The std command underneath.
    pub fn as_std(&self) -> &std::process::Command {
        &self.inner
    }

    /// The std command underneath, for what only std offers, such as
    /// `std::os::unix::process::CommandExt` (`uid`, `gid`,
    /// `process_group`, `arg0`, `pre_exec`). Set stdio through this
    /// command's own [`stdin`](Self::stdin), [`stdout`](Self::stdout) and
    /// [`stderr`](Self::stderr): those set here are replaced by the
    /// defaults of `spawn`, `output` or `status`.
    ///
    /// # Examples
    /// ```
    /// use std::os::unix::process::CommandExt;
    /// let mut cmd = gevent::subprocess::Command::new("sh");
    /// // Exits with 1 when its process group is its own (pgid == pid).
    /// cmd.args(["-c", "exit $(($$ == $(cut -d' ' -f5 /proc/$$/stat)))"]);
    /// cmd.as_std_mut().process_group(0); // its own process group
    /// assert_eq!(cmd.status().unwrap().code(), Some(1));
    /// ```
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.inner
    }

    /// Starts the child; unconfigured stdio is inherited.
    ///
    /// # Blocking
    /// Does not switch: `fork`/`exec` run on this thread and return once the
    /// program was executed (or failed to be), which is brief.
    ///
    /// # Errors
    /// As [`std::process::Command::spawn`] (`NotFound` for a missing
    /// program, ...).
    ///
    /// # Examples
    /// ```
    /// use std::io::{Read, Write};
    /// use gevent::subprocess::{Command, Stdio};
    ///
    /// let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    /// child.stdin.take().unwrap().write_all(b"ping").unwrap(); // dropped: cat sees EOF
    /// let mut echoed = String::new();
    /// child.stdout.take().unwrap().read_to_string(&mut echoed).unwrap();
    /// assert_eq!(echoed, "ping");
    /// assert!(child.wait().unwrap().success());
    /// ```
    pub fn spawn(&mut self) -> io::Result<Child> {
        self.spawn_with([Stdio::inherit, Stdio::inherit, Stdio::inherit])
    }

    /// Runs the child to completion and collects its output; unless
    /// configured, stdin is null and stdout and stderr are captured.
    ///
    /// # Blocking
    /// Until the child exited and its output pipes closed; see
    /// [`Child::wait_with_output`]. Killed or timed out meanwhile, the
    /// caller kills the child and reaps it as it unwinds.
    ///
    /// # Errors
    /// As [`spawn`](Self::spawn) and [`Child::wait_with_output`].
    pub fn output(&mut self) -> io::Result<Output> {
        let mut run = RunToEnd(Some(self.spawn_with([Stdio::null, Stdio::piped, Stdio::piped])?));
        let out = run.child().collect_output()?;
        run.done();
        Ok(out)
    }

    /// Runs the child to completion and returns its exit status; unless
    /// configured, stdio is inherited.
    ///
    /// # Blocking
    /// Until the child exited; see [`Child::wait`]. Killed or timed out
    /// meanwhile, the caller kills the child and reaps it as it unwinds.
    ///
    /// # Errors
    /// As [`spawn`](Self::spawn) and [`Child::wait`].
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        let mut run = RunToEnd(Some(self.spawn()?));
        let status = run.child().wait()?;
        run.done();
        Ok(status)
    }

    /// Spawns with `defaults` for the stdio not configured explicitly.
    fn spawn_with(&mut self, defaults: [fn() -> Stdio; 3]) -> io::Result<Child> {
        let [stdin, stdout, stderr] = defaults;
        if !self.stdio_set[0] {
            self.inner.stdin(stdin());
        }
        if !self.stdio_set[1] {
            self.inner.stdout(stdout());
        }
        if !self.stdio_set[2] {
            self.inner.stderr(stderr());
        }
        // Stdio handed over explicitly may be a gevent socket's fd, which
        // is non-blocking: the child makes it blocking (as gevent's Popen
        // does). Only then, so a plain spawn keeps std's fast path.
        if self.stdio_set != self.made_blocking {
            crate::driver::sys::blocking_stdio_in_child(&mut self.inner, self.stdio_set);
            self.made_blocking = self.stdio_set;
        }
        Child::from_std(self.inner.spawn()?)
    }
}

/// The child [`Command::output`] or [`Command::status`] runs to its end:
/// if the caller leaves first (killed, timed out, an error), the child is
/// killed and reaped on the way out, so it never lingers as a zombie.
struct RunToEnd(Option<Child>);

impl RunToEnd {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("the child runs until done")
    }

    /// The child was waited for: nothing left to do.
    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for RunToEnd {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            // Not killed (no permission): waiting could be forever.
            if child.kill().is_ok() {
                let _ = child.wait();
            }
        }
    }
}
