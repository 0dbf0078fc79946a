//! The hub: one per OS thread, created on first use, that schedules the
//! thread's greenlets. This module's public part is the per-thread
//! configuration ([`set_default_stack_size`], [`default_stack_size`],
//! [`prefer_backend`]), the I/O backend in use ([`backend`], [`Backend`])
//! and statistics ([`stats`]).
//!
//! Inside, the hub owns the greenlets' control blocks, the FIFO run queue,
//! the timers, the waiter nodes and the stack pool, and is itself a context
//! on its own stack. Re-entrancy rule: every access to hub state is a short
//! closure passed to `with` that never switches; all switches happen outside
//! any borrow.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::VecDeque;
use std::ptr;
use std::time::{Duration, Instant};

use crate::driver::Driver;
use crate::greenlet::{GreenletRef, HubRecord, Life};
use crate::stack::{AltStack, Stack, StackPool, DEFAULT_STACK_SIZE};
use crate::timer::{Action, CoarseClock, TimerKey};

mod hub_loop;
mod interrupt;
mod life;
mod queue;
mod report;
mod sched;
mod waiters;

pub(crate) use interrupt::{
    forget_deferred_timeout, note_unwind, resume_unwind, take_deferred_kill, unwind_caught, unwind_depth,
};
pub(crate) use life::{create, discard_payload, discard_unstarted, exit_current, join, kill, schedule_links, start};
pub(crate) use life::{drop_local_everywhere, forget_local, panic_message, put_local, take_local};
pub(crate) use sched::{
    current_key, current_ref, park, sleep, yield_in_greenlet, yield_now, yield_woken_in_greenlet, HUB_BLOCKING,
};

/// Parks the current greenlet until the hub has nothing else to do: no
/// greenlet ready, no timer due, no I/O at hand (gevent's `idle()`; see
/// `gevent::idle`).
pub(crate) fn idle() {
    IDLERS.with(|idlers| idlers.wait(None, &|| {}));
}

thread_local! {
    /// The greenlets in [`idle`] on this thread's hub, woken by the hub
    /// loop when nothing else is ready. Beside the hub, not in it: the
    /// hub's layout is tuned for its hot fields. Without a destructor (its
    /// initializer is `const` and it needs no drop), so it outlives the
    /// hub, whose loop still runs while the thread's thread-locals are
    /// destroyed (a waiter parked across a switch holds it too).
    static IDLERS: Waiters = const { Waiters::new() };
}

const _: () = assert!(!std::mem::needs_drop::<Waiters>(), "the idle list must need no destructor");

/// Greenlets in [`idle`] now.
fn idlers_waiting() -> bool {
    IDLERS.with(|i| !i.is_empty())
}
use sched::{Core, State};
pub(crate) use waiters::Waiters;

/// Stack size of the hub's own context (link callbacks run there).
const HUB_STACK_SIZE: usize = 256 * 1024;

/// Greenlet ids are handed to hubs in blocks, so `spawn` needs no atomic.
const ID_BLOCK: u64 = 4096;

thread_local! {
    /// The current thread's hub, null until first use. Deliberately a plain
    /// pointer without a destructor, so it stays readable while the hub is
    /// torn down (greenlets unwinding at thread exit still reach it) and from
    /// the stack-overflow signal handler.
    static CURRENT: Cell<*const Hub> = const { Cell::new(ptr::null()) };
    /// The backend asked for by [`prefer_backend`] before the hub existed.
    static PREFERRED: Cell<Option<Backend>> = const { Cell::new(None) };
    /// Owns the hub: its destructor tears the hub down at thread exit.
    static OWNER: HubOwner = const { HubOwner };
}

/// Work the hub context does at a `LINKS` run-queue marker (outside any
/// borrow, where user destructors and callbacks may run).
pub(super) enum HubJob {
    /// A dead greenlet's link callbacks.
    Links(GreenletRef),
    /// A greenlet whose first run found no stack (the mapping failed): it
    /// dies with this message instead of running.
    StartFailed(GreenletRef, String),
}

/// One thread's scheduler and everything it owns.
pub(crate) struct Hub {
    core: RefCell<Core>,
    stacks: RefCell<StackPool>,
    /// The stacks' guards, readable while `stacks` is borrowed.
    guards: crate::stack::GuardSpans,
    /// What the hub runs at its run-queue markers, in the order they were
    /// pushed: due link callbacks, greenlets that could not start.
    links: RefCell<VecDeque<HubJob>>,
    default_stack: Cell<usize>,
    hub_slots: *mut usize,
    hub_data: usize,
    hub_stack: RefCell<Option<Stack>>,
    /// The main greenlet's saved-sp and link slots (its stack is the thread's).
    _main_slots: Box<UnsafeCell<[usize; 2]>>,
    next_token: Cell<u64>,
    ids: Cell<(u64, u64)>,
    loop_exit: RefCell<Option<String>>,
    /// Loop time: read at the first timer armed in a pass (see timer.rs).
    now: Cell<Instant>,
    now_fresh: Cell<bool>,
    /// Skips the precise clock read at pass boundaries while no timer can
    /// be due yet.
    coarse: Option<Box<CoarseClock>>,
    _alt_stack: Option<AltStack>,
    /// The I/O backend and remote wake-ups.
    pub(crate) driver: Driver,
    /// The signal handlers registered on this thread (`signal.rs`).
    pub(crate) signals: RefCell<crate::signal::Registry>,
    /// This thread's default thread pool (`spawn_blocking`), made at first
    /// use.
    pub(crate) default_pool: RefCell<Option<crate::threadpool::ThreadPool>>,
    /// (listed fd, the set's eventfd) of every `select` waiting on a
    /// private epoll set (see [`SelectWatch`]).
    selects: RefCell<Vec<(std::os::fd::RawFd, std::os::fd::RawFd)>>,
}

struct HubOwner;

impl Drop for HubOwner {
    fn drop(&mut self) {
        let p = CURRENT.with(|c| c.get());
        // No hub, or the parent's in a forked child (left alone: its
        // greenlets and rings are the parent's).
        if p as usize <= GONE as usize {
            return;
        }
        // SAFETY: the pointer came from Box::into_raw in `create_hub`; it is
        // freed only below, once.
        let hub = unsafe { &*p };
        if hub.core.borrow().current != hub.core.borrow().main_key {
            // The thread exits from inside a greenlet (process::exit): its
            // stack is in use, so nothing can be unwound or unmapped safely.
            return;
        }
        life::teardown();
        CURRENT.with(|c| c.set(GONE));
        // SAFETY: as above; no greenlet is left that could reach the hub.
        drop(unsafe { Box::from_raw(p as *mut Hub) });
    }
}

/// Runs `f` with the current thread's hub, creating it on first use.
#[inline]
pub(crate) fn with<R>(f: impl FnOnce(&Hub) -> R) -> R {
    let mut p = CURRENT.with(|c| c.get());
    if p as usize <= GONE as usize {
        p = first_use(p);
    }
    // SAFETY: the hub lives until the thread's OWNER destructor, which runs
    // after all user code of the thread; `f` cannot outlive this call.
    f(unsafe { &*p })
}

/// The current thread's hub, creating it on first use: [`with`] without the
/// closure, for the hot paths (a wait-list park, a wake-all, a yield) where
/// the closure's own call (saving and restoring every callee-saved
/// register, returning its result through memory) costs more than the work
/// inside.
///
/// # Safety
/// The reference must not be kept past the current function's hub access:
/// not across a switch, not past the thread's teardown (as in `with`).
#[inline(always)]
pub(crate) unsafe fn hub_ref<'a>() -> &'a Hub {
    let mut p = CURRENT.with(|c| c.get());
    if p as usize <= GONE as usize {
        p = first_use(p);
    }
    // SAFETY: the hub lives until the thread's OWNER destructor; the caller
    // keeps the reference no longer than one hub access.
    unsafe { &*p }
}

/// Runs `f` with the current thread's I/O driver.
#[inline]
pub(crate) fn with_driver<R>(f: impl FnOnce(&Driver) -> R) -> R {
    with(|h| f(&h.driver))
}

/// Runs `f` with the running greenlet's key and the driver, in one hub
/// access (an I/O operation enlists its greenlet).
#[inline]
pub(crate) fn with_driver_current<R>(f: impl FnOnce(usize, &Driver) -> R) -> R {
    with(|h| {
        let me = h.core.borrow().current;
        f(me, &h.driver)
    })
}

/// This thread's hub, as a number that tells it apart from the other
/// live hubs, if the caller is a greenlet on the io_uring backend (the
/// one where a parked read holds bytes); `None` in a hub callback or on
/// epoll. For `op::ReadOrder`.
pub(crate) fn uring_greenlet_hub() -> Option<usize> {
    with(|h| {
        let in_greenlet = h.core.borrow().current != sched::HUB;
        (in_greenlet && h.driver.backend() == Backend::IoUring).then_some(h as *const Hub as usize)
    })
}

/// Has a socket's home hub `home` do `msg`: at once when it is this
/// thread's hub, else by a message it reads at its next poll (an entry
/// taken meanwhile by a new source on a reused fd number is left alone:
/// each message names its source).
pub(crate) fn tell_home(home: &crate::driver::WeakRemote, msg: crate::driver::HomeMsg) {
    match existing() {
        Some(h) if h.driver.is_home(home) => h.driver.at_home(msg),
        _ => home.send(msg),
    }
}

/// Deregisters a socket's fd from this thread's hub (if it has one) before
/// the fd closes (`closing`) or is handed over, readying the greenlets
/// whose raw waits a close ends.
pub(crate) fn deregister(fd: std::os::fd::RawFd, closing: bool) {
    if let Some(h) = existing() {
        // A `select` waiting on an epoll set that lists `fd` is woken too
        // (the set would silently forget the closed fd): its eventfd makes
        // the set readable.
        if let (true, Ok(selects)) = (closing, h.selects.try_borrow()) {
            for &(_, poke) in selects.iter().filter(|&&(f, _)| f == fd) {
                crate::driver::sys::eventfd_wake(poke);
            }
        }
        // A socket dropped while the hub's core is borrowed (a value freed
        // along with a control block) has nobody left to wake anyway.
        match h.core.try_borrow_mut() {
            Ok(mut core) => h.driver.deregister(fd, &mut |g| core.unpark(g), closing),
            Err(_) => h.driver.deregister(fd, &mut |_| {}, closing),
        }
    }
}

/// After socket `id`'s own `shutdown` of `fd`: on epoll, the greenlets
/// of this hub waiting to use a half it shut retry at once (and find the
/// end of file or `EPIPE`). A Unix socket reports no readiness edge for its
/// own write shutdown, so a writer parked on a full buffer would wait for
/// ever.
pub(crate) fn shut_down(fd: std::os::fd::RawFd, id: u64, how: std::net::Shutdown) {
    if let Some(h) = existing() {
        if let Ok(mut core) = h.core.try_borrow_mut() {
            h.driver.shut_down(fd, id, how, &mut |g| core.unpark(g));
        }
    }
}

/// While a `select` waits on its private epoll set: a close of a listed fd
/// (through [`deregister`]) writes the set's eventfd, which ends the wait
/// as a close ends a wait on the fd itself.
pub(crate) struct SelectWatch(std::os::fd::RawFd);

impl SelectWatch {
    /// Watches the listed `fds` for the set whose eventfd is `poke`.
    pub(crate) fn new(poke: std::os::fd::RawFd, fds: impl Iterator<Item = std::os::fd::RawFd>) -> SelectWatch {
        with(|h| h.selects.borrow_mut().extend(fds.map(|fd| (fd, poke))));
        SelectWatch(poke)
    }
}

impl Drop for SelectWatch {
    fn drop(&mut self) {
        if let Some(h) = existing() {
            h.selects.borrow_mut().retain(|&(_, poke)| poke != self.0);
        }
    }
}

/// The hub if this thread has one, without creating it.
fn existing() -> Option<&'static Hub> {
    let p = CURRENT.try_with(|c| c.get()).ok()?;
    // SAFETY: see `with`; callers use the reference only briefly.
    (p as usize > GONE as usize).then(|| unsafe { &*p })
}

/// `CURRENT` once the thread's hub was torn down (never a real hub's
/// address: the heap is not at 8).
const GONE: *const Hub = std::ptr::NonNull::<u64>::dangling().as_ptr() as *const Hub;

/// `CURRENT` in a child forked from a thread that had a hub: that hub's
/// epoll or io_uring instance, eventfd and thread pool are the parent's.
const FORKED: *const Hub = 1 as *const Hub;

/// The hub on first use; a clear panic after the thread's teardown (gevent
/// used from a thread-local destructor that runs after the hub's), or in a
/// forked child.
#[cold]
fn first_use(p: *const Hub) -> *const Hub {
    if p == GONE {
        panic!("gevent: this thread's hub is gone (the thread is exiting); greenlets cannot be used from thread-local destructors that run after it");
    }
    if p == FORKED {
        panic!("gevent: this process was forked from a thread that runs a hub; the hub (its epoll or io_uring instance, its thread pool) belongs to the parent: a forked child may only exec");
    }
    create_hub()
}

/// In a forked child: the forking thread's hub is the parent's (see
/// [`FORKED`]). Async-signal-safe: one store to a `const`-initialized
/// thread-local.
extern "C" fn poison_after_fork() {
    let _ = CURRENT.try_with(|c| {
        if !c.get().is_null() {
            c.set(FORKED);
        }
    });
}

#[cold]
fn create_hub() -> *const Hub {
    static AT_FORK: std::sync::Once = std::sync::Once::new();
    // SAFETY: registers a handler that only stores to a thread-local.
    AT_FORK.call_once(|| unsafe {
        libc::pthread_atfork(None, None, Some(poison_after_fork));
    });
    crate::stack::install_overflow_handler(report::overflow_report);
    report::install_panic_hook();
    let mut stacks = StackPool::new();
    // The default size becomes the pool's first class (its fast path).
    let first = stacks.take(DEFAULT_STACK_SIZE).expect("gevent: cannot map a greenlet stack");
    stacks.give(first);
    let hub_stack = stacks.take(HUB_STACK_SIZE).expect("gevent: cannot map the hub's stack");
    let (hub_ctx, hub_data) = crate::greenlet::new_context(&hub_stack, HubRecord::new(hub_loop::hub_loop));
    let main_slots = Box::new(UnsafeCell::new([0usize; 2]));
    let first_id = next_id_block();
    let main = GreenletRef(GreenletRef::new_inner::<fn(), ()>(first_id, None));
    main.0.set_name("main".to_owned());
    main.0.started.set(true);
    main.0.life.set(Life::Started);
    let core = Core::new(main_slots.get().cast(), main);
    let hub = Box::new(Hub {
        core: RefCell::new(core),
        stacks: RefCell::new(stacks),
        guards: crate::stack::GuardSpans::default(),
        links: RefCell::new(VecDeque::new()),
        default_stack: Cell::new(DEFAULT_STACK_SIZE),
        hub_slots: hub_ctx.sp_slot,
        hub_data,
        hub_stack: RefCell::new(Some(hub_stack)),
        _main_slots: main_slots,
        next_token: Cell::new(0),
        ids: Cell::new((first_id + 1, first_id + ID_BLOCK)),
        loop_exit: RefCell::new(None),
        now: Cell::new(Instant::now()),
        now_fresh: Cell::new(false),
        coarse: CoarseClock::new().map(Box::new),
        _alt_stack: AltStack::ensure(),
        driver: Driver::new(PREFERRED.with(|p| p.get())),
        signals: RefCell::default(),
        default_pool: RefCell::new(None),
        selects: RefCell::new(Vec::new()),
    });
    // The chunks mapped above (the default class, the hub's stack).
    hub.guards.sync(&hub.stacks.borrow());
    let p = Box::into_raw(hub) as *const Hub;
    CURRENT.with(|c| c.set(p));
    OWNER.with(|_| ());
    p
}

fn next_id_block() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(ID_BLOCK, Ordering::Relaxed)
}

impl Hub {
    /// A process-wide unique greenlet id.
    #[inline]
    fn next_id(&self) -> u64 {
        let (mut next, mut end) = self.ids.get();
        if next == end {
            next = next_id_block();
            end = next + ID_BLOCK;
        }
        self.ids.set((next + 1, end));
        next
    }
}

/// How stale the loop time may get before arming a timer reads the clock
/// anew (see [`Hub::arm`]).
const LOOP_TIME_WINDOW: Duration = Duration::from_millis(2);

impl Hub {
    /// Arms a timer `d` from now. Its place in the order is the loop time
    /// plus `d`; it fires no earlier than the real now plus `d`.
    ///
    /// The loop time is read at the first timer armed in a pass and kept for
    /// the pass (libev's `ev_now`), so timers armed together fire in
    /// (duration, creation) order even if the thread was preempted between
    /// them; it is read anew once it is more than [`LOOP_TIME_WINDOW`] old, so
    /// a due timer never waits longer than that behind one ordered before it.
    pub(crate) fn arm(&self, d: Duration, action: Action) -> TimerKey {
        self.arm_from(Instant::now(), d, action)
    }

    /// [`arm`](Self::arm) for a caller that just read the clock: `real`.
    pub(crate) fn arm_from(&self, real: Instant, d: Duration, action: Action) -> TimerKey {
        let cached = self.now.get();
        let loop_now = if self.now_fresh.get() && real - cached <= LOOP_TIME_WINDOW { cached } else { real };
        self.now.set(loop_now);
        self.now_fresh.set(true);
        self.core.borrow_mut().timers.add(crate::timer::after(loop_now, d), crate::timer::after(real, d), action)
    }
}

impl Hub {
    /// A stack from the pool, the guard list brought up to date if a chunk
    /// was mapped for it.
    pub(super) fn take_stack(&self, size: usize) -> std::io::Result<Stack> {
        let mut pool = self.stacks.borrow_mut();
        let mapped = pool.chunks_mapped();
        let stack = pool.take(size)?;
        if pool.chunks_mapped() != mapped {
            self.guards.sync(&pool);
        }
        Ok(stack)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(s) = self.hub_stack.get_mut().take() {
            self.stacks.get_mut().give(s);
        }
        let pool = self.stacks.get_mut();
        if self.core.get_mut().greenlets.len() > 1 || pool.stacks_out() > 0 {
            // Greenlets that survived teardown, or raw coroutines that outlive
            // the hub (in thread-locals dropped after it), still use stacks:
            // the chunks stay mapped (leaked) rather than unmapped under them.
            std::mem::forget(std::mem::replace(pool, StackPool::new()));
        }
    }
}

/// An armed timer, cancelled when dropped (a no-op once it fired).
pub(crate) struct TimerGuard(TimerKey);

impl TimerGuard {
    /// Arms a timer `d` from now (see [`Hub::arm`]).
    pub(crate) fn arm(d: Duration, action: Action) -> TimerGuard {
        TimerGuard(with(|h| h.arm(d, action)))
    }

    /// Arms a timer `d` from `now`, a clock reading just taken.
    pub(crate) fn arm_from(now: Instant, d: Duration, action: Action) -> TimerGuard {
        TimerGuard(with(|h| h.arm_from(now, d, action)))
    }

    /// True once the timer fired.
    pub(crate) fn fired(&self) -> bool {
        with(|h| !h.core.borrow().timers.armed(self.0))
    }
}

impl Drop for TimerGuard {
    fn drop(&mut self) {
        with(|h| h.core.borrow_mut().timers.cancel(self.0));
    }
}

/// A fresh token naming one `with_timeout` scope.
pub(crate) fn new_token() -> u64 {
    with(|h| {
        let t = h.next_token.get() + 1;
        h.next_token.set(t);
        t
    })
}

/// True in the hub's own context (link callbacks, destructors the hub
/// runs), where nothing may block.
pub(crate) fn in_hub() -> bool {
    is_hub(current_key())
}

/// True for the key of the hub's own context (see [`in_hub`]).
pub(crate) fn is_hub(key: usize) -> bool {
    key == sched::HUB
}

/// Makes greenlet `key` ready if it is parked; nothing otherwise (a
/// greenlet is queued at most once). Only for a greenlet known to be alive
/// and parked in a loop that looks again at why it woke (an I/O operation
/// under an `op::Cancel`): to it, the wake-up may be spurious.
pub(crate) fn unpark(key: usize) {
    with(|h| h.core.borrow_mut().unpark(key));
}

/// Arms a timer that interrupts greenlet `me` (the current one) with
/// `token`.
pub(crate) fn arm_timeout(me: usize, d: Duration, token: u64) -> TimerGuard {
    TimerGuard::arm(d, Action::Interrupt(me, token))
}

/// A stack from this thread's pool (for raw coroutines).
pub(crate) fn take_stack(size: Option<usize>) -> Stack {
    with(|h| {
        let size = size.unwrap_or(h.default_stack.get());
        h.take_stack(size).expect("gevent: cannot map a coroutine stack")
    })
}

/// Returns a stack taken with [`take_stack`]; once the hub is gone (a
/// coroutine dropped by a later thread-local destructor) it is leaked.
pub(crate) fn give_stack(stack: Stack) {
    // (A `Stack` owns no mapping of its own: without a pool it is just left.)
    if let Some(h) = existing() {
        h.stacks.borrow_mut().give(stack);
    }
}

/// Sets the stack size of greenlets created from now on by this thread's
/// hub (rounded up to whole pages, at least [`crate::MIN_STACK_SIZE`]).
/// A builder's `stack_size` still wins.
///
/// # Panics
/// If `bytes` is 4 GiB or more (as `Builder::stack_size`).
///
/// # Examples
/// ```
/// gevent::hub::set_default_stack_size(256 * 1024);
/// assert_eq!(gevent::hub::default_stack_size(), 256 * 1024);
/// ```
pub fn set_default_stack_size(bytes: usize) {
    crate::stack::check_size(bytes);
    with(|h| h.default_stack.set(h.stacks.borrow().round(bytes)));
}

/// The stack size greenlets of this thread get by default
/// ([`crate::DEFAULT_STACK_SIZE`] unless changed).
pub fn default_stack_size() -> usize {
    with(|h| h.default_stack.get())
}

pub use crate::driver::Backend;

/// The I/O backend of the current thread's hub: [`Backend::IoUring`] unless
/// the kernel refuses io_uring, `GEVENT_BACKEND=epoll` is set, or
/// [`prefer_backend`] chose epoll for this thread.
///
/// # Examples
/// ```
/// let b = gevent::hub::backend();
/// if std::env::var("GEVENT_BACKEND").as_deref() == Ok("epoll") {
///     assert_eq!(b, gevent::hub::Backend::Epoll);
/// }
/// ```
pub fn backend() -> Backend {
    with_driver(|d| d.backend())
}

/// Chooses the backend of this thread's hub, which must not exist yet (it
/// is created at the first gevent call of the thread): `Epoll` forces
/// epoll; `IoUring` uses io_uring when the kernel allows it (epoll
/// otherwise) even if `GEVENT_BACKEND=epoll` is set. Tests use it to run a
/// body once per backend, each on its own thread.
///
/// # Errors
/// `AlreadyExists` if this thread's hub was already created, or if it is
/// gone (the thread is exiting) or belongs to the parent process (a forked
/// child): no hub can be made then.
///
/// # Examples
/// ```
/// use gevent::hub::{backend, prefer_backend, Backend};
/// std::thread::spawn(|| {
///     prefer_backend(Backend::Epoll).unwrap();
///     assert_eq!(backend(), Backend::Epoll);
///     assert!(prefer_backend(Backend::IoUring).is_err());
/// }).join().unwrap();
/// ```
pub fn prefer_backend(b: Backend) -> std::io::Result<()> {
    let made = CURRENT.try_with(|c| !c.get().is_null()).unwrap_or(true);
    if made {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "gevent: this thread's hub exists already (or is gone, or is the parent process's)",
        ));
    }
    PREFERRED.with(|p| p.set(Some(b)));
    Ok(())
}

/// Chooses how this thread's hub sends on stream sockets (TCP, Unix) when
/// it runs on io_uring: `false` (the default) tries the non-blocking
/// `send(2)` first and goes through the ring only if it would block, as
/// the epoll backend always does; `true` posts small sends to the ring,
/// batched into the hub's one `io_uring_enter` per pass. Until called,
/// `GEVENT_RING_SENDS=1` in the environment turns it on.
///
/// With it on, a write of at most 16 KiB is **posted**: copied into the
/// socket's buffer, it returns at once (all of it taken, no system call,
/// no switch) and the hub submits it with its next poll, after what the
/// socket posted before. A larger write first waits for what was posted,
/// then is sent as by default (a bulk transfer gains nothing from a copy,
/// and a parked sender loses a pass).
/// A socket keeps at most 64 KiB posted: a write beyond that waits (at
/// most the write timeout) until the kernel took the rest, so a peer that
/// does not read holds the writer back as by default. On a 2-core AMD EPYC
/// VM whose null system call takes ~0.9 µs, this serves more echo round
/// trips per server-CPU-second than the default at both 64 and 1,000
/// connections (README); on a machine with cheap system calls it may not.
/// Measure on your machine.
///
/// What posting changes, and what stays:
/// - **The bytes leave when the hub next polls**, at the end of the
///   current pass or when the greenlet next waits. A thread that blocks
///   outside the hub after writing (a blocking std call, a `std::thread`
///   join) holds them back: flush first (`Write::flush` waits until the
///   kernel took every posted byte).
/// - **Errors come later**: a posted send that fails (the peer reset the
///   connection) drops what was posted behind it and reports its error
///   from the socket's next write or flush.
/// - **Order holds**: posted bytes go before any later write on the
///   socket, also one through a `try_clone` (which flushes first; neither
///   handle posts while both live) or from another thread (which waits for
///   them); `shutdown` of the write half sends them first, and a later
///   write fails at once.
/// - **A close does not lose them**: a socket dropped with bytes posted
///   keeps its fd open in the hub until they went (as the kernel's send
///   buffer outlives a `close`); when the hub itself goes (its thread
///   exits), what can go at once is sent and the rest is dropped.
/// - Non-blocking mode (`set_nonblocking`) never posts: a write there
///   fails with `WouldBlock` while posted bytes are left.
///
/// Either way, a send that found the socket buffer full goes to the ring
/// for the rest, and if killed or timed out there may have gone out all
/// the same (the kernel had sent it when the cancellation came): the
/// caller sees the kill or timeout, yet the peer gets the bytes. From a
/// hub callback, which may not park, a send is never posted.
///
/// # Examples
/// ```
/// gevent::hub::set_ring_sends(true);
/// assert!(gevent::hub::ring_sends());
/// gevent::hub::set_ring_sends(false);
/// ```
pub fn set_ring_sends(on: bool) {
    crate::driver::set_ring_sends(on);
}

/// Whether stream sends of this thread's hub go through the io_uring ring
/// (see [`set_ring_sends`]).
pub fn ring_sends() -> bool {
    crate::driver::ring_sends()
}

/// A snapshot of this thread's hub, for tests and monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Greenlets that exist (created and not dead), the main one included.
    pub greenlets: usize,
    /// Entries in the run queue.
    pub ready: usize,
    /// Armed timers.
    pub timers: usize,
    /// Parked waiters across all wait lists.
    pub waiters: usize,
    /// Stack chunks mapped so far (one `mmap` each; flat in the steady state).
    pub stack_chunks: usize,
    /// Stacks free in the pool.
    pub free_stacks: usize,
}

/// Counts of this thread's hub: greenlets, run queue, timers, stacks.
///
/// # Examples
/// ```
/// let before = gevent::hub::stats();
/// gevent::spawn(|| ()).join();
/// let after = gevent::hub::stats();
/// assert_eq!(before.greenlets, after.greenlets);
/// ```
pub fn stats() -> Stats {
    with(|h| {
        let stacks = h.stacks.borrow();
        let core = h.core.borrow();
        Stats {
            greenlets: core.greenlets.iter().filter(|(k, _)| core.state(*k) != State::Zombie).count(),
            ready: core.ready.iter().filter(|&k| k == sched::LINKS || core.state(k) != State::Zombie).count(),
            timers: core.timers.len(),
            waiters: core.waits.len(),
            stack_chunks: stacks.chunks_mapped(),
            free_stacks: stacks.free_stacks(),
        }
    })
}
