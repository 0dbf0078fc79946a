//! `Semaphore`, `BoundedSemaphore`, `Lock`, `RLock` (gevent.lock) and the
//! RAII guards. One semaphore core under all of them: a count and a FIFO of
//! waiters; a release with waiters hands the permit straight to the longest
//! waiter (a newcomer never barges past), and a waiter killed or timed out
//! after being handed a permit passes it on.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use crate::hub::{self, Waiters};

struct Core {
    count: Cell<usize>,
    /// Permits handed to woken waiters that have not run yet.
    handed: Cell<usize>,
    /// `Some(n)`: releasing above `n` permits panics.
    bound: Option<usize>,
    /// For messages: "BoundedSemaphore" or "Lock".
    kind: &'static str,
    waiters: Waiters,
}

impl Core {
    fn new(n: usize, bound: Option<usize>, kind: &'static str) -> Rc<Core> {
        Rc::new(Core { count: Cell::new(n), handed: Cell::new(0), bound, kind, waiters: Waiters::default() })
    }

    #[inline]
    fn try_acquire(&self) -> bool {
        // A positive count means nobody waits: releases hand permits to
        // waiters directly.
        let n = self.count.get();
        if n == 0 {
            return false;
        }
        self.count.set(n - 1);
        true
    }

    #[inline]
    fn acquire(&self, timeout: Option<Duration>) -> bool {
        self.try_acquire() || self.acquire_waiting(timeout)
    }

    /// [`acquire`](Self::acquire) with no permit free: waits in line.
    #[inline(never)]
    fn acquire_waiting(&self, timeout: Option<Duration>) -> bool {
        let pass_on = || {
            // Handed a permit, then gone: it goes on (never an over-release).
            self.handed.set(self.handed.get() - 1);
            self.give();
        };
        let got = self.waiters.wait(timeout, &pass_on);
        if got {
            self.handed.set(self.handed.get() - 1);
        }
        got
    }

    /// Returns a permit held by the caller.
    #[inline]
    fn release(&self) {
        if let Some(bound) = self.bound {
            // Permits are free, handed to woken waiters, or held: a release
            // needs a holder.
            let free = self.count.get() + self.handed.get();
            assert!(free < bound, "gevent: {} released too many times (it has {bound} permit(s))", self.kind);
        }
        self.give();
    }

    /// A permit goes to the longest waiter, else back to the pool.
    #[inline]
    fn give(&self) {
        if self.waiters.notify_one() {
            self.handed.set(self.handed.get() + 1);
        } else {
            match self.count.get().checked_add(1) {
                Some(n) => self.count.set(n),
                None => overflow(self.kind),
            }
        }
    }
}

/// A release past `usize::MAX` free permits (out of line: never taken).
#[cold]
#[inline(never)]
fn overflow(kind: &str) -> ! {
    panic!("gevent: {kind} released with usize::MAX permits free")
}

macro_rules! semaphore_methods {
    ($guard:ident) => {
        /// Takes a permit, waiting while none is free.
        ///
        /// # Blocking
        /// Parks while no permit is free; waiters get permits in FIFO order.
        /// Killed or timed out while waiting, the greenlet leaves the queue
        /// holding nothing (a permit handed to it meanwhile goes to the next
        /// waiter).
        ///
        /// # Panics
        /// From a hub callback; in the main greenlet when nothing can ever
        /// release (LoopExit).
        #[inline]
        pub fn acquire(&self) {
            self.core().acquire(None);
        }

        /// As [`acquire`](Self::acquire), waiting at most `d`; true if a
        /// permit was taken.
        ///
        /// # Blocking
        /// As [`acquire`](Self::acquire), bounded by `d`.
        ///
        /// # Panics
        /// From a hub callback (link callbacks must not block).
        pub fn acquire_timeout(&self, d: Duration) -> bool {
            self.core().acquire(Some(d))
        }

        /// Takes a permit if one is free now; never switches.
        #[inline]
        pub fn try_acquire(&self) -> bool {
            self.core().try_acquire()
        }

        /// Waits until a permit is free, without keeping one (gevent's
        /// `wait`): takes one in its turn and gives it back at once.
        ///
        /// # Blocking
        /// As [`acquire`](Self::acquire).
        ///
        /// # Panics
        /// As [`acquire`](Self::acquire).
        pub fn wait(&self) {
            self.acquire();
            self.core().release();
        }

        /// As [`wait`](Self::wait), waiting at most `d`; true if a permit
        /// was free in time.
        ///
        /// # Blocking
        /// As [`acquire`](Self::acquire), bounded by `d`.
        ///
        /// # Panics
        /// From a hub callback (link callbacks must not block).
        pub fn wait_timeout(&self, d: Duration) -> bool {
            if !self.acquire_timeout(d) {
                return false;
            }
            self.core().release();
            true
        }

        /// Free permits.
        pub fn available(&self) -> usize {
            self.core().count.get()
        }

        /// True when no permit is free.
        pub fn locked(&self) -> bool {
            self.available() == 0
        }

        /// Acquires and returns a guard that releases on drop (also when the
        /// greenlet unwinds); gevent's `with sem:`. The guard owns a handle,
        /// so it can move into another greenlet.
        ///
        /// # Blocking
        /// As [`acquire`](Self::acquire).
        pub fn guard(&self) -> $guard {
            self.acquire();
            $guard(self.clone())
        }
    };
}

/// A counting semaphore (gevent's `Semaphore`). A `Clone` handle.
///
/// # Examples
/// ```
/// use gevent::lock::Semaphore;
/// let sem = Semaphore::new(1);
/// let g = sem.guard();
/// assert!(!sem.try_acquire());
/// drop(g);
/// assert!(sem.try_acquire());
/// ```
#[derive(Clone)]
pub struct Semaphore(Rc<Core>);

impl Semaphore {
    /// A semaphore with `n` free permits.
    pub fn new(n: usize) -> Semaphore {
        Semaphore(Core::new(n, None, "Semaphore"))
    }

    #[inline]
    fn core(&self) -> &Core {
        &self.0
    }

    /// Returns a permit: to the longest waiter if any, else to the pool.
    ///
    /// # Panics
    /// When `usize::MAX` permits are free already (the count would
    /// overflow).
    #[inline]
    pub fn release(&self) {
        self.0.release();
    }

    semaphore_methods!(SemaphoreGuard);
}

/// A semaphore that refuses to be released above its initial count
/// (gevent's `BoundedSemaphore`). A `Clone` handle.
#[derive(Clone)]
pub struct BoundedSemaphore(Rc<Core>);

impl BoundedSemaphore {
    /// A semaphore with `n` permits, never more.
    pub fn new(n: usize) -> BoundedSemaphore {
        BoundedSemaphore(Core::new(n, Some(n), "BoundedSemaphore"))
    }

    #[inline]
    fn core(&self) -> &Core {
        &self.0
    }

    /// Returns a permit.
    ///
    /// # Panics
    /// When every permit is already free ("released too many times").
    #[inline]
    pub fn release(&self) {
        self.0.release();
    }

    semaphore_methods!(BoundedSemaphoreGuard);
}

/// A mutual-exclusion lock: a `BoundedSemaphore(1)` (gevent's `Lock`).
/// A `Clone` handle.
#[derive(Clone)]
pub struct Lock(Rc<Core>);

impl Default for Lock {
    fn default() -> Self {
        Lock::new()
    }
}

impl Lock {
    /// A free lock.
    pub fn new() -> Lock {
        Lock(Core::new(1, Some(1), "Lock"))
    }

    #[inline]
    fn core(&self) -> &Core {
        &self.0
    }

    /// Unlocks.
    ///
    /// # Panics
    /// When the lock is not locked.
    #[inline]
    pub fn release(&self) {
        self.0.release();
    }

    semaphore_methods!(LockGuard);
}

macro_rules! guard_type {
    ($guard:ident, $of:ident) => {
        #[doc = concat!("Holds one permit of a [`", stringify!($of), "`]; releases it when dropped.")]
        #[must_use = "the permit is released as soon as the guard is dropped"]
        pub struct $guard($of);

        impl Drop for $guard {
            fn drop(&mut self) {
                self.0.release();
            }
        }

        impl fmt::Debug for $guard {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(stringify!($guard))
            }
        }

        impl fmt::Debug for $of {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($of))
                    .field("available", &self.0.count.get())
                    .field("waiters", &self.0.waiters.len())
                    .finish()
            }
        }
    };
}

guard_type!(SemaphoreGuard, Semaphore);
guard_type!(BoundedSemaphoreGuard, BoundedSemaphore);
guard_type!(LockGuard, Lock);

/// A re-entrant lock (gevent's `RLock`): the greenlet holding it may acquire
/// it again; it is free once released as many times. A `Clone` handle.
///
/// # Examples
/// ```
/// use gevent::lock::RLock;
/// let l = RLock::new();
/// let outer = l.guard();
/// let inner = l.guard(); // the same greenlet: no deadlock
/// drop(inner);
/// assert!(l.locked());
/// drop(outer);
/// assert!(!l.locked());
/// ```
#[derive(Clone, Default)]
pub struct RLock(Rc<RLockInner>);

struct RLockInner {
    lock: Lock,
    owner: Cell<Option<u64>>,
    depth: Cell<usize>,
}

impl Default for RLockInner {
    fn default() -> Self {
        RLockInner { lock: Lock::new(), owner: Cell::new(None), depth: Cell::new(0) }
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock").field("owner", &self.0.owner.get()).field("depth", &self.0.depth.get()).finish()
    }
}

impl RLock {
    /// A free re-entrant lock.
    pub fn new() -> RLock {
        RLock::default()
    }

    /// The caller's id; the hub's own context (a link callback) is an
    /// owner of its own, as in gevent.
    fn me() -> u64 {
        if hub::in_hub() {
            return u64::MAX;
        }
        hub::current_ref().id()
    }

    fn enter(&self, me: u64) {
        self.0.owner.set(Some(me));
        self.0.depth.set(self.0.depth.get() + 1);
    }

    /// Takes the lock, or takes it once more if this greenlet holds it.
    ///
    /// # Blocking
    /// As [`Lock::acquire`] unless this greenlet holds it already.
    ///
    /// # Panics
    /// As [`Lock::acquire`].
    pub fn acquire(&self) {
        self.acquire_inner(None);
    }

    /// As [`acquire`](Self::acquire), waiting at most `d`; true if taken.
    ///
    /// # Blocking
    /// As [`Lock::acquire_timeout`].
    ///
    /// # Panics
    /// From a hub callback (link callbacks must not block).
    pub fn acquire_timeout(&self, d: Duration) -> bool {
        self.acquire_inner(Some(d))
    }

    fn acquire_inner(&self, timeout: Option<Duration>) -> bool {
        let me = Self::me();
        if self.0.owner.get() != Some(me) && !self.0.lock.core().acquire(timeout) {
            return false;
        }
        self.enter(me);
        true
    }

    /// Takes the lock if free or held by this greenlet; never switches.
    pub fn try_acquire(&self) -> bool {
        let me = Self::me();
        if self.0.owner.get() != Some(me) && !self.0.lock.try_acquire() {
            return false;
        }
        self.enter(me);
        true
    }

    /// Releases one level; the lock is free after the outermost release.
    ///
    /// # Panics
    /// When the current greenlet does not hold the lock.
    pub fn release(&self) {
        assert_eq!(self.0.owner.get(), Some(Self::me()), "gevent: RLock released by a greenlet that does not hold it");
        let depth = self.0.depth.get() - 1;
        self.0.depth.set(depth);
        if depth == 0 {
            self.0.owner.set(None);
            self.0.lock.release();
        }
    }

    /// True while some greenlet holds the lock (or it was handed to a
    /// woken waiter that has not run yet).
    pub fn locked(&self) -> bool {
        self.0.lock.locked()
    }

    /// 1 when free, 0 when held (by anyone).
    pub fn available(&self) -> usize {
        self.0.lock.available()
    }

    /// Acquires and returns a guard that releases one level on drop.
    ///
    /// # Blocking
    /// As [`acquire`](Self::acquire).
    pub fn guard(&self) -> RLockGuard {
        self.acquire();
        RLockGuard(self.clone())
    }
}

/// Holds one level of an [`RLock`]; releases it when dropped, which must
/// happen in the greenlet that acquired it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard(RLock);

impl Drop for RLockGuard {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl fmt::Debug for RLockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RLockGuard")
    }
}

/// A cooperative mutex owning its data: the guard derefs to it. Waiting for
/// it parks the greenlet (a [`Lock`] inside), never the thread.
///
/// Not a handle: share it the way you share the data (e.g. in an `Rc`).
///
/// Unlike std's, it does not poison: a guard dropped while its greenlet
/// unwinds (a panic, a kill, a timeout) just unlocks; the data is as the
/// unwinding code left it.
///
/// # Examples
/// ```
/// use std::rc::Rc;
/// use gevent::lock::Mutex;
/// let total = Rc::new(Mutex::new(0));
/// let workers: Vec<_> = (1..=3)
///     .map(|i| {
///         let t = total.clone();
///         gevent::spawn(move || {
///             let mut sum = t.lock();
///             gevent::sleep(std::time::Duration::ZERO); // others wait; the data is ours
///             *sum += i;
///         })
///     })
///     .collect();
/// gevent::joinall(&workers);
/// assert_eq!(*total.lock(), 6);
/// ```
pub struct Mutex<T> {
    lock: Lock,
    data: std::cell::RefCell<T>,
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex").field("locked", &self.lock.locked()).finish()
    }
}

impl<T> Mutex<T> {
    /// A mutex holding `value`.
    pub fn new(value: T) -> Mutex<T> {
        Mutex { lock: Lock::new(), data: std::cell::RefCell::new(value) }
    }

    fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard { mutex: self, data: Some(self.data.borrow_mut()) }
    }

    /// Locks, waiting while another greenlet holds it.
    ///
    /// # Blocking
    /// As [`Lock::acquire`] (FIFO; a kill or timeout while waiting leaves
    /// nothing locked).
    ///
    /// Locking it again from the greenlet that holds it waits until another
    /// greenlet kills or times it out (it is not re-entrant); in the main
    /// greenlet, with nothing else to run, that is a LoopExit panic.
    ///
    /// # Panics
    /// As [`Lock::acquire`].
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.lock.acquire();
        self.guard()
    }

    /// Locks if free now; never switches.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.lock.try_acquire().then(|| self.guard())
    }

    /// As [`lock`](Self::lock), waiting at most `d`.
    ///
    /// # Blocking
    /// As [`lock`](Self::lock), bounded by `d`.
    pub fn lock_timeout(&self, d: Duration) -> Option<MutexGuard<'_, T>> {
        self.lock.acquire_timeout(d).then(|| self.guard())
    }

    /// The data, without locking (the `&mut` proves nobody else has it).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

/// Access to a [`Mutex`]'s data; unlocks when dropped (also while the
/// greenlet unwinds).
#[must_use = "the mutex unlocks as soon as the guard is dropped"]
pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
    data: Option<std::cell::RefMut<'a, T>>,
}

impl<T> std::ops::Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.data.as_ref().expect("present until drop")
    }
}

impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.data.as_mut().expect("present until drop")
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.data = None;
        self.mutex.lock.release();
    }
}

impl<T> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MutexGuard")
    }
}
