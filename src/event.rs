//! `Event` and `AsyncResult` (gevent.event): one-shot wake-ups of every
//! waiter, the latter carrying a value. Both are small state machines over
//! one `Waiters` list.
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use crate::greenlet::GreenletError;
use crate::hub::Waiters;

/// A flag greenlets can wait for (gevent's `Event`).
///
/// A `Clone` handle: clones share the same event.
///
/// # Examples
/// ```
/// use gevent::event::Event;
/// let evt = Event::new();
/// let e = evt.clone();
/// let waiter = gevent::spawn(move || { e.wait(); "woken" });
/// gevent::spawn({ let e = evt.clone(); move || e.set() });
/// assert_eq!(waiter.get(), Ok("woken"));
/// assert!(evt.is_set());
/// ```
#[derive(Clone, Default)]
pub struct Event(Rc<EventInner>);

#[derive(Default)]
struct EventInner {
    flag: Cell<bool>,
    /// How many times it was set since `iwait` first marked it (`watched`):
    /// `iwait` sees a set that a clear undid before its watcher ran. Not
    /// counted before: an event nobody marks pays a test, not a store.
    sets: Cell<u64>,
    watched: Cell<bool>,
    waiters: Waiters,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event").field("set", &self.is_set()).field("waiters", &self.0.waiters.len()).finish()
    }
}

impl Event {
    /// A new, unset event.
    pub fn new() -> Event {
        Event::default()
    }

    /// Sets the flag and wakes every greenlet waiting at this moment (they
    /// join the back of the run queue, in the order they started waiting).
    #[inline]
    pub fn set(&self) {
        self.0.flag.set(true);
        if self.0.watched.get() {
            self.count_set();
        }
        self.0.waiters.notify_all();
    }

    /// Resets the flag; later `wait` calls block until the next `set`.
    #[inline]
    pub fn clear(&self) {
        self.0.flag.set(false);
    }

    /// True while the flag is set.
    #[inline]
    pub fn is_set(&self) -> bool {
        self.0.flag.get()
    }

    /// Waits until the flag is set; returns at once if it is, unless
    /// greenlets that the `set` woke have not run yet: then, as in gevent,
    /// it yields so it resumes after them.
    ///
    /// # Blocking
    /// Parks until `set`; waiters are woken in FIFO order. Killed or timed
    /// out meanwhile, the greenlet leaves the wait list and unwinds.
    ///
    /// # Panics
    /// From a hub callback; in the main greenlet when nothing can ever set
    /// the event (LoopExit).
    ///
    /// # Examples
    /// A wait on a set event joins the end of the wake-ups in progress:
    /// ```
    /// use gevent::event::Event;
    /// use std::{cell::RefCell, rc::Rc};
    /// let (evt, order) = (Event::new(), Rc::new(RefCell::new(Vec::new())));
    /// for i in 1..=2 {
    ///     let (e, o) = (evt.clone(), order.clone());
    ///     gevent::spawn(move || { e.wait(); o.borrow_mut().push(i) });
    /// }
    /// gevent::sleep(std::time::Duration::ZERO); // both wait
    /// evt.set();
    /// evt.wait(); // set: it lets the two woken ones run first
    /// order.borrow_mut().push(3);
    /// assert_eq!(*order.borrow(), [1, 2, 3]);
    /// ```
    #[inline(always)]
    pub fn wait(&self) {
        if !self.is_set() {
            self.0.waiters.wait_untimed();
        } else if self.0.waiters.woke_any() {
            self.0.waiters.behind_woken();
        }
    }

    #[cold]
    #[inline(never)]
    fn count_set(&self) {
        self.0.sets.set(self.0.sets.get().wrapping_add(1));
    }

    /// How many times the event was set since it was first marked (see
    /// `wait_since`); from now on, sets are counted.
    pub(crate) fn mark(&self) -> u64 {
        self.0.watched.set(true);
        self.0.sets.get()
    }

    /// Waits until the event is set, or returns at once if it was set
    /// since [`mark`](Self::mark) said `mark` (and maybe cleared again).
    pub(crate) fn wait_since(&self, mark: u64) {
        if self.0.sets.get() == mark {
            self.wait();
        }
    }

    /// Waits at most `d`; true if the event was set before the waiter
    /// resumed (even if the deadline passed meanwhile, or it was cleared
    /// again since).
    ///
    /// # Blocking
    /// As [`wait`](Self::wait), bounded by `d`; set already, it may yield
    /// as `wait` does.
    ///
    /// # Panics
    /// From a hub callback (link callbacks must not block).
    pub fn wait_timeout(&self, d: Duration) -> bool {
        if self.is_set() {
            self.0.waiters.behind_woken();
            return true;
        }
        self.0.waiters.wait(Some(d), &|| {})
    }
}

/// A value that will be set once, for any number of waiters (gevent's
/// `AsyncResult`: a future).
///
/// A `Clone` handle. `set` on a ready result replaces the value (as gevent).
///
/// # Examples
/// ```
/// use gevent::event::AsyncResult;
/// let a = AsyncResult::new();
/// let setter = a.clone();
/// gevent::spawn(move || setter.set("Hallo!"));
/// assert_eq!(a.get(), Ok("Hallo!"));
/// ```
pub struct AsyncResult<T>(Rc<ResultInner<T>>);

struct ResultInner<T> {
    value: RefCell<Option<Result<T, String>>>,
    waiters: Waiters,
}

impl<T> Clone for AsyncResult<T> {
    fn clone(&self) -> Self {
        AsyncResult(self.0.clone())
    }
}

impl<T> Default for AsyncResult<T> {
    fn default() -> Self {
        AsyncResult(Rc::new(ResultInner { value: RefCell::new(None), waiters: Waiters::default() }))
    }
}

impl<T: 'static> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult").field("ready", &self.ready()).field("successful", &self.successful()).finish()
    }
}

impl<T: 'static> AsyncResult<T> {
    /// A new, unset result.
    pub fn new() -> AsyncResult<T> {
        AsyncResult::default()
    }

    /// Stores `v` and wakes every waiter.
    pub fn set(&self, v: T) {
        self.store(Ok(v));
    }

    /// Stores a failure: `get` then returns `Err(GreenletError::Panicked(e))`.
    pub fn set_exception(&self, e: impl Into<String>) {
        self.store(Err(e.into()));
    }

    fn store(&self, r: Result<T, String>) {
        let old = self.0.value.replace(Some(r));
        // Waiters first: a replaced value whose destructor panics must not
        // leave them parked.
        self.0.waiters.notify_all();
        drop(old);
    }

    /// True once a value or an exception was set.
    pub fn ready(&self) -> bool {
        self.0.value.borrow().is_some()
    }

    /// True once a value (not an exception) was set.
    pub fn successful(&self) -> bool {
        matches!(*self.0.value.borrow(), Some(Ok(_)))
    }

    /// Waits until the result is ready; ready already, it may yield as
    /// [`Event::wait`] does (greenlets woken by the `set` run first).
    /// [`get`](Self::get) never does: a ready value is returned at once.
    ///
    /// # Blocking
    /// As [`Event::wait`].
    ///
    /// # Panics
    /// As [`Event::wait`].
    pub fn wait(&self) {
        if self.ready() {
            self.0.waiters.behind_woken();
        }
        self.wait_ready();
    }

    fn wait_ready(&self) {
        while !self.ready() {
            self.0.waiters.wait(None, &|| {});
        }
    }

    /// Waits until ready, then returns the value (cloned) or the exception.
    ///
    /// # Errors
    /// `GreenletError::Panicked` with the exception given to
    /// [`set_exception`](Self::set_exception).
    ///
    /// # Blocking
    /// Until the result is ready, as [`wait`](Self::wait); a ready result
    /// is returned at once (no yield).
    ///
    /// # Panics
    /// As [`Event::wait`].
    pub fn get(&self) -> Result<T, GreenletError>
    where
        T: Clone,
    {
        self.wait_ready();
        self.outcome().expect("ready")
    }

    /// As [`get`](Self::get), waiting at most `d`: `Err(Timeout)` if the
    /// result is not ready by then.
    ///
    /// # Errors
    /// As [`get`](Self::get); `GreenletError::Timeout` if the result was
    /// not ready within `d`.
    ///
    /// # Blocking
    /// As [`wait`](Self::wait), bounded by `d`.
    ///
    /// # Panics
    /// From a hub callback (link callbacks must not block).
    pub fn get_timeout(&self, d: Duration) -> Result<T, GreenletError>
    where
        T: Clone,
    {
        if !self.ready() {
            self.0.waiters.wait(Some(d), &|| {});
        }
        self.outcome().unwrap_or(Err(GreenletError::Timeout))
    }

    /// The value (cloned) or the exception if the result is ready now,
    /// without waiting (gevent's `get_nowait`).
    ///
    /// # Errors
    /// As [`get`](Self::get); `GreenletError::Timeout` if the result is not
    /// ready (gevent raises `Timeout` there too).
    pub fn get_nowait(&self) -> Result<T, GreenletError>
    where
        T: Clone,
    {
        self.outcome().unwrap_or(Err(GreenletError::Timeout))
    }

    /// Waits at most `d` until the result is ready; true if it is
    /// (gevent's `wait(timeout)`). Ready already, it may yield as
    /// [`wait`](Self::wait) does.
    ///
    /// # Blocking
    /// As [`wait`](Self::wait), bounded by `d`.
    ///
    /// # Panics
    /// From a hub callback (link callbacks must not block).
    pub fn wait_timeout(&self, d: Duration) -> bool {
        if self.ready() {
            self.0.waiters.behind_woken();
            return true;
        }
        self.0.waiters.wait(Some(d), &|| {});
        self.ready()
    }

    /// The exception given to [`set_exception`](Self::set_exception), if
    /// that is how the result was set (gevent's `exception`); `None` while
    /// not ready or when a value was set.
    ///
    /// # Examples
    /// ```
    /// let r: gevent::event::AsyncResult<u32> = gevent::event::AsyncResult::new();
    /// assert_eq!(r.exception(), None);
    /// r.set_exception("no route");
    /// assert_eq!(r.exception().as_deref(), Some("no route"));
    /// assert!(r.get_nowait().is_err());
    /// ```
    pub fn exception(&self) -> Option<String> {
        match &*self.0.value.borrow() {
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        }
    }

    fn outcome(&self) -> Option<Result<T, GreenletError>>
    where
        T: Clone,
    {
        let value = self.0.value.borrow();
        Some(value.as_ref()?.clone().map_err(GreenletError::Panicked))
    }
}
