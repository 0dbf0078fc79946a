//! Unix signals handled by greenlets (gevent's `gevent.signal_handler`):
//! each delivery runs the handler in a new greenlet of the hub that
//! registered it. The async-signal handler (`driver::sig`) only counts the
//! delivery and writes the hub's eventfd; a per-hub dispatcher greenlet,
//! parked until that eventfd is written, spawns the handler greenlets.
#![forbid(unsafe_code)]

use std::io;
use std::marker::PhantomData;
use std::rc::Rc;

use crate::driver::{self, sig};

/// Hangup.
pub const SIGHUP: i32 = libc::SIGHUP;
/// Interrupt from the keyboard (Ctrl-C).
pub const SIGINT: i32 = libc::SIGINT;
/// Quit from the keyboard (Ctrl-\\); the tutorial's shutdown signal.
pub const SIGQUIT: i32 = libc::SIGQUIT;
/// Broken pipe (ignored by Rust programs unless handled).
pub const SIGPIPE: i32 = libc::SIGPIPE;
/// Timer signal from `alarm(2)`.
pub const SIGALRM: i32 = libc::SIGALRM;
/// Termination request.
pub const SIGTERM: i32 = libc::SIGTERM;
/// User-defined signal 1.
pub const SIGUSR1: i32 = libc::SIGUSR1;
/// User-defined signal 2.
pub const SIGUSR2: i32 = libc::SIGUSR2;
/// A child stopped or exited.
pub const SIGCHLD: i32 = libc::SIGCHLD;
/// The terminal window changed size.
pub const SIGWINCH: i32 = libc::SIGWINCH;

/// Signals that cannot be handled here: `SIGKILL` and `SIGSTOP` cannot be
/// caught at all; `SIGSEGV` and `SIGBUS` detect greenlet stack overflows;
/// `SIGILL` and `SIGFPE` are faults of the interrupted instruction, which a
/// deferred handler would re-execute forever.
const REFUSED: [i32; 6] = [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

/// Runs `handler` in a new greenlet of the current hub each time the
/// process receives `signum`, until [`SignalHandle::cancel`].
///
/// The signal is caught with `sigaction` (`SA_RESTART`), whichever thread
/// the kernel delivers it to. Several handlers, on one hub or on several
/// (threads), may handle one signal: each delivery runs all of them. When
/// the last handler of a signal is cancelled, the signal's previous action
/// is restored. Deliveries that arrive while earlier ones are not yet
/// dispatched are each dispatched, but the kernel itself merges a signal
/// that is sent again while still pending.
///
/// Like gevent's, the watcher does not keep the hub alive: a main greenlet
/// that blocks with nothing else to wait for (no timer, no I/O) still gets
/// LoopExit, unless the handler was told to
/// ([`SignalHandle::keep_hub_alive`], gevent's `ref = True`). Handlers run when the hub next looks at its I/O, that is once
/// per pass over its run queue while any I/O is in flight, else when every
/// greenlet is blocked.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use gevent::event::Event;
///
/// let hup = Event::new();
/// let set = hup.clone();
/// let handle = gevent::signal::signal(gevent::signal::SIGHUP, move || set.set()).unwrap();
/// // A child process sends us SIGHUP (`$PPID` is this process).
/// gevent::subprocess::Command::new("sh").args(["-c", "kill -HUP $PPID"]).status().unwrap();
/// assert!(hup.wait_timeout(Duration::from_secs(10)));
/// handle.cancel();
/// ```
///
/// # Errors
/// `InvalidInput` for a signal number outside `1..=64` and for `SIGKILL`,
/// `SIGSTOP`, `SIGSEGV`, `SIGBUS`, `SIGILL` and `SIGFPE`; `sigaction`'s error
/// for a signal the C library reserves; an error when more than 32 hubs
/// handle the same signal.
pub fn signal(signum: i32, handler: impl Fn() + 'static) -> io::Result<SignalHandle> {
    check(signum)?;
    let (id, start) = with_registry(|r| r.add(signum, Rc::new(handler)))?;
    if start {
        crate::Builder::default().name("gevent signal dispatcher").spawn(dispatch);
    }
    Ok(SignalHandle { signum, id, _hub: PhantomData })
}

fn check(signum: i32) -> io::Result<()> {
    let invalid =
        |why: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, format!("gevent: signal {signum} {why}")));
    if signum < 1 || signum as usize >= sig::NSIG {
        return invalid("does not exist");
    }
    if REFUSED.contains(&signum) {
        return invalid("cannot be handled by greenlets");
    }
    Ok(())
}

/// A registered signal handler (see [`signal`]). Dropping the handle leaves
/// the handler registered; [`cancel`](SignalHandle::cancel) removes it.
///
/// The handle belongs to the hub (thread) that registered the handler.
#[derive(Debug)]
pub struct SignalHandle {
    signum: i32,
    id: u64,
    _hub: PhantomData<Rc<()>>,
}

impl SignalHandle {
    /// The signal handled.
    pub fn signum(&self) -> i32 {
        self.signum
    }

    /// Makes the handler keep its hub alive (gevent's `ref = True`): while
    /// it does, a greenlet blocked with nothing else to wait for (no
    /// timer, no I/O) waits for the signal instead of getting LoopExit, so
    /// a daemon whose work runs elsewhere (threads, child processes) can
    /// wait for its SIGTERM. `false` undoes it; so does
    /// [`cancel`](Self::cancel).
    ///
    /// # Examples
    /// ```
    /// use gevent::event::Event;
    /// use gevent::signal::{signal, SIGUSR1};
    ///
    /// let stop = Event::new();
    /// let set = stop.clone();
    /// let handle = signal(SIGUSR1, move || set.set()).unwrap();
    /// handle.keep_hub_alive(true);
    /// // Nothing of this hub's can set `stop`: a thread sends the signal.
    /// std::thread::spawn(|| {
    ///     std::thread::sleep(std::time::Duration::from_millis(20));
    ///     std::process::Command::new("kill").args(["-USR1", &std::process::id().to_string()]).status().unwrap();
    /// });
    /// stop.wait(); // without keep_hub_alive: LoopExit at once
    /// handle.cancel();
    /// ```
    pub fn keep_hub_alive(&self, keep: bool) {
        with_registry(|r| r.set_hold(self.id, keep));
    }

    /// Removes the handler: later deliveries no longer run it (handler
    /// greenlets already spawned still run). The last handler of a signal
    /// restores the signal's previous action.
    pub fn cancel(self) {
        let (removed, idle) = with_registry(|r| r.remove(self.id));
        if idle {
            // Wake the dispatcher so it sees it has nothing left and exits.
            driver::sys::eventfd_wake(driver::remote_fd());
        }
        drop(removed);
    }
}

/// A user's handler, shared by the greenlets of its deliveries.
type Handler = Rc<dyn Fn()>;

struct Registration {
    id: u64,
    signum: i32,
    handler: Handler,
    /// Keeps the hub waiting for the signal (`keep_hub_alive`).
    holds: bool,
}

/// One hub's handlers and subscriber slots (the hub's `signals`; its
/// destructor unsubscribes).
#[derive(Default)]
pub(crate) struct Registry {
    /// In registration order (the order handlers of one delivery spawn in).
    registrations: Vec<Registration>,
    /// (signal, slot in `driver::sig`) for each signal with a handler here.
    slots: Vec<(i32, usize)>,
    dispatcher: bool,
    next_id: u64,
    /// The fd the signal handler writes: a dup of the hub's eventfd, owned
    /// here, so its number stays this eventfd's until every slot that
    /// names it is released (the hub may close its own fd first).
    wake: Option<std::os::fd::OwnedFd>,
}

/// Runs `f` on the current hub's registry.
fn with_registry<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    crate::hub::with(|h| f(&mut h.signals.borrow_mut()))
}

impl Registry {
    /// No handler registered and no signal subscribed.
    pub(crate) fn is_empty(&self) -> bool {
        self.registrations.is_empty() && self.slots.is_empty()
    }

    /// Adds a handler, subscribing the hub's eventfd (through `wake`) to
    /// the signal if this is its first handler here; returns its id and
    /// whether the dispatcher must be started.
    fn add(&mut self, signum: i32, handler: Handler) -> io::Result<(u64, bool)> {
        if !self.slots.iter().any(|&(s, _)| s == signum) {
            if self.wake.is_none() {
                self.wake = Some(driver::remote_fd_dup()?);
            }
            let fd = self.wake.as_ref().map(std::os::fd::AsRawFd::as_raw_fd).expect("set above");
            let slot = sig::subscribe(signum, fd)?;
            self.slots.push((signum, slot));
        }
        self.next_id += 1;
        self.registrations.push(Registration { id: self.next_id, signum, handler, holds: false });
        let start = !self.dispatcher;
        self.dispatcher = true;
        Ok((self.next_id, start))
    }

    /// Sets whether handler `id` keeps the hub waiting for its signal.
    fn set_hold(&mut self, id: u64, on: bool) {
        if let Some(r) = self.registrations.iter_mut().find(|r| r.id == id) {
            if r.holds != on {
                r.holds = on;
                driver::hold_remote(on);
            }
        }
    }

    /// Removes handler `id` (returned, to be dropped outside the borrow);
    /// the last handler of its signal unsubscribes. Also returns whether
    /// the running dispatcher has nothing left to do.
    fn remove(&mut self, id: u64) -> (Option<Registration>, bool) {
        let Some(i) = self.registrations.iter().position(|r| r.id == id) else { return (None, false) };
        let removed = self.registrations.remove(i);
        if removed.holds {
            driver::hold_remote(false);
        }
        if !self.registrations.iter().any(|r| r.signum == removed.signum) {
            if let Some(j) = self.slots.iter().position(|&(s, _)| s == removed.signum) {
                let (signum, slot) = self.slots.remove(j);
                sig::unsubscribe(signum, slot);
            }
        }
        (Some(removed), self.dispatcher && self.registrations.is_empty())
    }

    /// The handlers to run for the deliveries since the last call, one per
    /// delivery and handler; `None` (and the dispatcher ends) when no
    /// handler is left.
    fn due(&mut self) -> Option<Vec<(i32, Handler)>> {
        if self.registrations.is_empty() {
            self.dispatcher = false;
            return None;
        }
        let mut due = Vec::new();
        for &(signum, slot) in &self.slots {
            for _ in 0..sig::take_pending(signum, slot) {
                let handlers = self.registrations.iter().filter(|r| r.signum == signum);
                due.extend(handlers.map(|r| (signum, r.handler.clone())));
            }
        }
        Some(due)
    }

    /// Unsubscribes from every signal (the hub is going away).
    fn release_all(&mut self) {
        for (signum, slot) in self.slots.drain(..) {
            sig::unsubscribe(signum, slot);
        }
        self.dispatcher = false;
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.release_all();
    }
}

/// The dispatcher greenlet: spawns the due handlers, then parks until the
/// hub's eventfd is next written. It runs while the hub has handlers.
fn dispatch() {
    /// Killed (the thread exits and its hub tears down), the dispatcher
    /// unsubscribes before the hub's eventfd closes.
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            if std::thread::panicking() {
                with_registry(Registry::release_all);
            }
        }
    }
    let _release = Release;
    while let Some(due) = with_registry(Registry::due) {
        for (signum, handler) in due {
            crate::Builder::default().name(format!("signal {signum} handler")).spawn(move || handler());
        }
        driver::wait_kick();
    }
}
