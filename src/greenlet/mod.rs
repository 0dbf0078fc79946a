//! Greenlets: the `Greenlet<T>` / `GreenletRef` handles and the state they
//! share (one allocation per greenlet, holding the closure until the first
//! run and the result after). How a greenlet runs on its stack is in
//! `entry.rs`; the scheduler side (states, park, kill) lives in the hub.

mod builder;
mod entry;
pub(crate) use entry::error_from_payload;

pub use builder::Builder;

#[cfg(test)]
pub(crate) use entry::place_record;
pub(crate) use entry::{check_fits, new_context, Header, HubRecord, StartRecord};

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use std::rc::Rc;
use std::time::Duration;

use crate::hub;
use crate::wait::WaitList;

/// Why a greenlet did not return a value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GreenletError {
    /// The greenlet panicked (the panic message), or failed otherwise: the
    /// exception of [`AsyncResult::set_exception`](crate::event::AsyncResult::set_exception),
    /// a stack that could not be mapped, a value already moved out by
    /// [`into_result`](Greenlet::into_result).
    Panicked(String),
    /// The greenlet was killed (gevent's `GreenletExit`).
    Killed,
    /// A `*_timeout` call gave up waiting.
    Timeout,
}

impl fmt::Display for GreenletError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GreenletError::Panicked(msg) => f.write_str(msg),
            GreenletError::Killed => f.write_str("greenlet was killed"),
            GreenletError::Timeout => f.write_str("timed out"),
        }
    }
}

impl std::error::Error for GreenletError {}

/// The unwind payload of `kill`: private, so user code cannot forge it, and
/// caught at the greenlet root.
pub(crate) struct KillUnwind;

/// Lifecycle as the handles see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Life {
    /// Created, `start` not called.
    Created,
    /// Started (scheduled, running or suspended).
    Started,
    /// Finished: returned, panicked or killed.
    Dead,
}

/// The state every handle of one greenlet shares. `S` is the typed
/// [`SlotImpl`] (closure until the first run, then the result), erased to
/// `dyn Slot` in [`GreenletRef`]: one allocation per greenlet.
pub(crate) struct Inner<S: ?Sized> {
    pub(crate) id: u64,
    /// The hub slab key while the greenlet exists in the hub.
    pub(crate) key: Cell<usize>,
    pub(crate) life: Cell<Life>,
    /// Set by `start`/`start_later`; stays set after death.
    pub(crate) started: Cell<bool>,
    /// Name, exception and links: most greenlets have none, so they are
    /// boxed on first use and a greenlet's allocation stays small.
    pub(crate) extra: RefCell<Option<Box<Extra>>>,
    pub(crate) joiners: WaitList,
    /// Set once the greenlet is dead and every joiner was woken.
    pub(crate) joiners_woken: Cell<bool>,
    pub(crate) slot: S,
}

/// The rarely set parts of a greenlet's shared state.
#[derive(Default)]
pub(crate) struct Extra {
    pub(crate) name: Option<String>,
    pub(crate) exception: Option<GreenletError>,
    /// The link callbacks not run yet, each with the number its
    /// [`LinkId`] carries.
    pub(crate) links: Vec<(u64, Link)>,
    /// Links registered so far: the next link's number.
    pub(crate) linked: u64,
}

impl<S: ?Sized> Inner<S> {
    /// The extra part, created on first use.
    pub(crate) fn extra(&self) -> std::cell::RefMut<'_, Extra> {
        std::cell::RefMut::map(self.extra.borrow_mut(), |e| &mut **e.get_or_insert_with(Box::default))
    }

    /// Reads the extra part, if there is one.
    pub(crate) fn peek<R>(&self, f: impl FnOnce(&Extra) -> R) -> Option<R> {
        self.extra.borrow().as_deref().map(f)
    }

    pub(crate) fn exception(&self) -> Option<GreenletError> {
        self.peek(|e| e.exception.clone()).flatten()
    }

    pub(crate) fn set_exception(&self, e: GreenletError) {
        self.extra().exception = Some(e);
    }

    pub(crate) fn has_links(&self) -> bool {
        self.peek(|e| !e.links.is_empty()).unwrap_or(false)
    }

    pub(crate) fn take_links(&self) -> Vec<(u64, Link)> {
        self.extra.borrow_mut().as_deref_mut().map(|e| std::mem::take(&mut e.links)).unwrap_or_default()
    }

    pub(crate) fn set_name(&self, name: String) {
        self.extra().name = Some(name);
    }
}

/// The typed part of a greenlet, seen through `dyn Slot` by untyped code.
pub(crate) trait Slot: Any {
    /// The result cell, a `RefCell<Option<T>>`.
    fn result(&self) -> &dyn Any;
    /// Drops the closure of a greenlet that will never run.
    fn drop_closure(&self);
    /// True while a result is stored.
    fn has_result(&self) -> bool;
    /// Drops the stored result (user code: call outside any hub borrow).
    fn drop_result(&self);
}

/// The closure (until the greenlet first runs) and the result.
pub(crate) struct SlotImpl<F, T> {
    closure: Cell<Option<F>>,
    result: RefCell<Option<T>>,
}

impl<F: 'static, T: 'static> Slot for SlotImpl<F, T> {
    fn result(&self) -> &dyn Any {
        &self.result
    }

    fn drop_closure(&self) {
        drop(self.closure.take());
    }

    fn has_result(&self) -> bool {
        self.result.borrow().is_some()
    }

    fn drop_result(&self) {
        let value = self.result.borrow_mut().take();
        drop(value);
    }
}

/// A callback run from the hub when a greenlet dies.
pub(crate) type Link = Box<dyn FnOnce(&GreenletRef)>;

/// Names one link callback of one greenlet (from
/// [`GreenletRef::rawlink`]), to remove it with
/// [`GreenletRef::unlink`] before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkId {
    greenlet: u64,
    n: u64,
}

/// An untyped handle to a greenlet: clone it freely; it keeps the greenlet's
/// observable state (name, exception, `dead()`...) alive, not the greenlet.
///
/// Two handles are equal when they name the same greenlet.
#[derive(Clone)]
pub struct GreenletRef(pub(crate) Rc<Inner<dyn Slot>>);

/// A typed handle to a greenlet returning `T`.
///
/// Cloning gives another handle to the same greenlet. `AsRef<GreenletRef>`
/// lets greenlets of different result types be joined together:
/// `joinall([a.as_ref(), b.as_ref()])`.
pub struct Greenlet<T> {
    r: GreenletRef,
    _t: PhantomData<T>,
}

impl<T> Clone for Greenlet<T> {
    fn clone(&self) -> Self {
        Greenlet { r: self.r.clone(), _t: PhantomData }
    }
}

impl<T> AsRef<GreenletRef> for Greenlet<T> {
    fn as_ref(&self) -> &GreenletRef {
        &self.r
    }
}

impl AsRef<GreenletRef> for GreenletRef {
    fn as_ref(&self) -> &GreenletRef {
        self
    }
}

impl Drop for GreenletRef {
    /// The last user handle of a greenlet that was never started frees it
    /// (its closure is dropped; it never runs). The hub's own reference is
    /// the other one counted.
    fn drop(&mut self) {
        if self.0.life.get() == Life::Created && Rc::strong_count(&self.0) == 2 {
            hub::discard_unstarted(self);
        }
    }
}

impl PartialEq for GreenletRef {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for GreenletRef {}

impl Hash for GreenletRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}

impl fmt::Debug for GreenletRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Greenlet")
            .field("id", &self.0.id)
            .field("name", &self.name())
            .field("state", &self.0.life.get())
            .finish()
    }
}

impl<T> fmt::Debug for Greenlet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.r.fmt(f)
    }
}

impl GreenletRef {
    /// A new greenlet's shared state holding its closure.
    pub(crate) fn new_inner<F: 'static, T: 'static>(id: u64, f: Option<F>) -> Rc<Inner<SlotImpl<F, T>>> {
        Rc::new(Inner {
            id,
            key: Cell::new(usize::MAX),
            life: Cell::new(Life::Created),
            started: Cell::new(false),
            extra: RefCell::new(None),
            joiners: WaitList::default(),
            joiners_woken: Cell::new(false),
            slot: SlotImpl { closure: Cell::new(f), result: RefCell::new(None) },
        })
    }

    /// A unique number for this greenlet (unique within the process).
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The greenlet's name: the one given by the builder or `set_name`, else
    /// `Greenlet-<id>` (the main greenlet is `main`).
    pub fn name(&self) -> String {
        match self.0.peek(|e| e.name.clone()).flatten() {
            Some(n) => n,
            None => format!("Greenlet-{}", self.0.id),
        }
    }

    /// Renames the greenlet (used in panic reports and overflow messages).
    pub fn set_name(&self, name: &str) {
        self.0.set_name(name.to_owned());
    }

    /// True once the greenlet was started; stays true after its death.
    pub fn started(&self) -> bool {
        self.0.started.get()
    }

    /// True once the greenlet is dead (gevent's `ready()`).
    pub fn ready(&self) -> bool {
        self.dead()
    }

    /// True once the greenlet has finished: returned, panicked or was killed.
    pub fn dead(&self) -> bool {
        self.0.life.get() == Life::Dead
    }

    /// True if the greenlet is dead and returned normally.
    pub fn successful(&self) -> bool {
        self.dead() && self.0.peek(|e| e.exception.is_none()).unwrap_or(true)
    }

    /// Why the greenlet failed: `Some(Panicked(..))` or `Some(Killed)` once it
    /// died that way, `None` while it runs or after it returned normally.
    pub fn exception(&self) -> Option<GreenletError> {
        self.0.exception()
    }

    /// Waits until the greenlet is dead.
    ///
    /// # Blocking
    /// Parks the calling greenlet until the target dies; joiners are woken in
    /// FIFO order. Killed or timed out while waiting, the caller unwinds and
    /// leaves the join list; the target is unaffected.
    ///
    /// # Panics
    /// If a greenlet joins itself, or when called from a hub callback.
    /// In the main greenlet, when nothing can ever wake it (no ready
    /// greenlet, no timer): gevent's LoopExit, with a message naming the
    /// blocked and never-started greenlets.
    pub fn join(&self) {
        hub::join(self, None);
    }

    /// Waits at most `d` for the greenlet to die; true if it is dead. With
    /// `d` zero it only checks: a greenlet spawned but not yet run is not
    /// run first (`false`).
    ///
    /// # Blocking
    /// As [`join`](Self::join), bounded by `d`.
    ///
    /// # Panics
    /// If a greenlet joins itself, or when called from a hub callback.
    pub fn join_timeout(&self, d: Duration) -> bool {
        hub::join(self, Some(d))
    }

    /// Kills the greenlet and waits until it is dead.
    ///
    /// The target unwinds from the point where it is blocked (its destructors
    /// and guards run) and dies with [`GreenletError::Killed`]. A greenlet that
    /// never ran never runs. Killing a dead greenlet does nothing; killing the
    /// current greenlet unwinds it at once. A greenlet blocked in a
    /// destructor while it already unwinds (a second unwind would abort the
    /// process) takes the kill once that unwind is over: at its next resume,
    /// when a `with_timeout` scope catches the unwind, or at its end.
    ///
    /// # Blocking
    /// Waits for the target's death like [`join`](Self::join).
    ///
    /// # Panics
    /// When asked to kill the main greenlet; as [`join`](Self::join) while
    /// waiting.
    pub fn kill(&self) {
        self.kill_nowait();
        self.join();
    }

    /// Kills the greenlet and waits at most `d` for it to die (gevent's
    /// `kill(timeout=d)`); true if it is dead. One still unwinding then (a
    /// destructor that blocks) dies later; one whose code swallowed the
    /// kill (a `catch_unwind` around a blocking call) goes on.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let g = gevent::spawn(|| gevent::sleep(Duration::from_secs(3600)));
    /// gevent::sleep(Duration::ZERO);
    /// assert!(g.kill_timeout(Duration::from_secs(1)));
    /// ```
    ///
    /// # Blocking
    /// As [`join_timeout`](Self::join_timeout).
    ///
    /// # Panics
    /// As [`kill`](Self::kill).
    pub fn kill_timeout(&self, d: Duration) -> bool {
        self.kill_nowait();
        self.join_timeout(d)
    }

    /// Kills the greenlet without waiting for it to finish unwinding.
    ///
    /// A greenlet that has not run yet is dead when this returns; one that is
    /// blocked unwinds the next time the hub schedules it. Called on the
    /// current greenlet, it unwinds at once and does not return.
    ///
    /// # Panics
    /// When asked to kill the main greenlet.
    pub fn kill_nowait(&self) {
        hub::kill(self);
    }

    /// Registers `f` to run (once, from the hub) when the greenlet dies.
    /// Linking a dead greenlet schedules `f` at once.
    ///
    /// A callback holding a handle to its own greenlet makes a reference
    /// cycle (as `Rc` does) that the greenlet's death breaks: a greenlet
    /// created and never started, whose only handles left are in its own
    /// links, is never freed. Start or kill it first.
    pub fn link<F: FnOnce(&GreenletRef) + 'static>(&self, f: F) {
        self.rawlink(f);
    }

    /// As [`link`](Self::link), returning an id that
    /// [`unlink`](Self::unlink) takes to remove the callback before it
    /// runs (gevent's `rawlink` and `unlink`: a `Group` unlinks the member
    /// it discards, so adding and discarding a greenlet again and again
    /// leaves no callbacks behind).
    ///
    /// # Examples
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let ran = Rc::new(Cell::new(0));
    /// let g = gevent::spawn(|| ());
    /// let (a, b) = (ran.clone(), ran.clone());
    /// let first = g.rawlink(move |_| a.set(a.get() + 1));
    /// g.rawlink(move |_| b.set(b.get() + 10));
    /// assert!(g.unlink(first));
    /// assert!(!g.unlink(first)); // gone already
    /// g.join();
    /// gevent::sleep(std::time::Duration::ZERO); // links run from the hub
    /// assert_eq!(ran.get(), 10);
    /// ```
    pub fn rawlink<F: FnOnce(&GreenletRef) + 'static>(&self, f: F) -> LinkId {
        let n = {
            let mut extra = self.0.extra();
            let n = extra.linked;
            extra.linked += 1;
            extra.links.push((n, Box::new(f)));
            n
        };
        if self.dead() {
            hub::schedule_links(self.clone());
        }
        LinkId { greenlet: self.id(), n }
    }

    /// Removes the link callback `id` names, unless it ran (or started to
    /// run) already; true if it was removed. An id of another greenlet
    /// removes nothing. The removed callback is dropped here.
    pub fn unlink(&self, id: LinkId) -> bool {
        if id.greenlet != self.id() {
            return false;
        }
        let removed = {
            let mut extra = self.0.extra.borrow_mut();
            let Some(links) = extra.as_deref_mut().map(|e| &mut e.links) else { return false };
            links.iter().position(|(n, _)| *n == id.n).map(|i| links.remove(i))
        };
        // Dropped outside the borrow: its captures' destructors may touch
        // this greenlet again.
        removed.is_some()
    }

    /// Removes every link callback not run yet (gevent's `unlink_all`);
    /// how many were removed.
    pub fn unlink_all(&self) -> usize {
        let links = self.0.take_links();
        links.len()
    }

    /// As [`link`](Self::link), running `f` only if the greenlet returned
    /// a value (gevent's `link_value`).
    pub fn link_value<F: FnOnce(&GreenletRef) + 'static>(&self, f: F) {
        self.link(move |g| {
            if g.successful() {
                f(g)
            }
        })
    }

    /// As [`link`](Self::link), running `f` only if the greenlet did not
    /// return a value: it panicked or was killed (gevent's
    /// `link_exception`); `f` reads why with [`exception`](Self::exception).
    ///
    /// # Examples
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let failed = Rc::new(Cell::new(false));
    /// let g = gevent::spawn(|| panic!("boom"));
    /// let f = failed.clone();
    /// g.link_exception(move |g| f.set(g.exception().is_some()));
    /// g.join();
    /// gevent::sleep(std::time::Duration::ZERO); // links run from the hub
    /// assert!(failed.get());
    /// ```
    pub fn link_exception<F: FnOnce(&GreenletRef) + 'static>(&self, f: F) {
        self.link(move |g| {
            if !g.successful() {
                f(g)
            }
        })
    }
}

impl Greenlet<()> {
    /// A builder to set the name and stack size of a greenlet.
    ///
    /// # Examples
    /// ```
    /// let g = gevent::Greenlet::builder().name("worker").stack_size(128 * 1024).spawn(|| 1);
    /// assert_eq!(g.name(), "worker");
    /// g.join();
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }
}

impl<T: 'static> Greenlet<T> {
    /// Creates a greenlet that will run `f` once started; it does not run yet.
    ///
    /// # Examples
    /// ```
    /// let g = gevent::Greenlet::new(|| 6 * 7);
    /// assert!(!g.started());
    /// g.start();
    /// assert_eq!(g.get(), Ok(42));
    /// ```
    pub fn new<F>(f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
    {
        Greenlet::builder().build(f)
    }

    /// Creates and starts a greenlet, as [`crate::spawn`].
    pub fn spawn<F>(f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
    {
        Greenlet::builder().spawn(f)
    }

    fn typed(&self) -> &RefCell<Option<T>> {
        self.r.0.slot.result().downcast_ref().expect("a Greenlet<T> handle always wraps a T result slot")
    }

    /// Schedules the greenlet to run; a no-op if it was started or killed.
    pub fn start(&self) {
        hub::start(&self.r, None);
    }

    /// Schedules the greenlet to start after `d`.
    pub fn start_later(&self, d: Duration) {
        hub::start(&self.r, Some(d));
    }

    /// Waits until the greenlet is dead, then returns its value (cloned) or
    /// why it failed. Once another handle moved the value out
    /// ([`into_result`](Self::into_result)), there is none to clone: the
    /// error is then `Panicked` with a message saying so, although the
    /// greenlet returned normally (`successful()` stays true).
    ///
    /// # Errors
    /// Why the greenlet did not return a value: `Panicked` (its message),
    /// `Killed`.
    ///
    /// # Blocking
    /// As [`GreenletRef::join`].
    ///
    /// # Panics
    /// As [`GreenletRef::join`].
    pub fn get(&self) -> Result<T, GreenletError>
    where
        T: Clone,
    {
        self.r.join();
        self.outcome()
    }

    /// As [`get`](Self::get), waiting at most `d`; `Err(Timeout)` if the
    /// greenlet is still running then.
    ///
    /// # Errors
    /// As [`get`](Self::get); `Timeout` if the greenlet still runs after
    /// `d`.
    ///
    /// # Blocking
    /// As [`GreenletRef::join_timeout`].
    ///
    /// # Panics
    /// As [`GreenletRef::join_timeout`].
    pub fn get_timeout(&self, d: Duration) -> Result<T, GreenletError>
    where
        T: Clone,
    {
        if !self.r.join_timeout(d) {
            return Err(GreenletError::Timeout);
        }
        self.outcome()
    }

    fn outcome(&self) -> Result<T, GreenletError>
    where
        T: Clone,
    {
        if let Some(e) = self.r.exception() {
            return Err(e);
        }
        self.typed().borrow().clone().ok_or_else(|| self.taken_error())
    }

    fn taken_error(&self) -> GreenletError {
        GreenletError::Panicked("the value was already moved out by into_result".into())
    }

    /// Waits until the greenlet is dead and moves its value out; other
    /// handles then see `value() == None`.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    ///
    /// # Blocking
    /// As [`GreenletRef::join`].
    ///
    /// # Panics
    /// As [`GreenletRef::join`].
    pub fn into_result(self) -> Result<T, GreenletError> {
        self.r.join();
        if let Some(e) = self.r.exception() {
            return Err(e);
        }
        let value = self.typed().borrow_mut().take();
        value.ok_or_else(|| self.taken_error())
    }

    /// The value, once dead with one (never blocks).
    pub fn value(&self) -> Option<T>
    where
        T: Clone,
    {
        self.typed().borrow().clone()
    }

    /// The untyped handle.
    pub fn as_greenlet_ref(&self) -> &GreenletRef {
        &self.r
    }

    /// See [`GreenletRef::join`].
    ///
    /// # Blocking
    /// Until the greenlet is dead (as [`GreenletRef::join`]).
    pub fn join(&self) {
        self.r.join()
    }
    /// See [`GreenletRef::join_timeout`].
    ///
    /// # Blocking
    /// As [`join`](Self::join), at most `d`.
    ///
    /// # Panics
    /// If a greenlet joins itself, or when called from a hub callback.
    pub fn join_timeout(&self, d: Duration) -> bool {
        self.r.join_timeout(d)
    }
    /// See [`GreenletRef::kill`].
    ///
    /// # Blocking
    /// Until the greenlet is dead (as [`GreenletRef::kill`]).
    pub fn kill(&self) {
        self.r.kill()
    }
    /// See [`GreenletRef::kill_nowait`].
    pub fn kill_nowait(&self) {
        self.r.kill_nowait()
    }
    /// See [`GreenletRef::kill_timeout`].
    ///
    /// # Blocking
    /// As [`GreenletRef::kill_timeout`].
    ///
    /// # Panics
    /// As [`GreenletRef::kill`].
    pub fn kill_timeout(&self, d: Duration) -> bool {
        self.r.kill_timeout(d)
    }
    /// See [`GreenletRef::link`].
    pub fn link<F: FnOnce(&GreenletRef) + 'static>(&self, f: F) {
        self.r.link(f)
    }
    /// See [`GreenletRef::rawlink`].
    pub fn rawlink<F: FnOnce(&GreenletRef) + 'static>(&self, f: F) -> LinkId {
        self.r.rawlink(f)
    }
    /// See [`GreenletRef::unlink`].
    pub fn unlink(&self, id: LinkId) -> bool {
        self.r.unlink(id)
    }
    /// See [`GreenletRef::unlink_all`].
    pub fn unlink_all(&self) -> usize {
        self.r.unlink_all()
    }
    /// See [`GreenletRef::link_value`].
    pub fn link_value<F: FnOnce(&GreenletRef) + 'static>(&self, f: F) {
        self.r.link_value(f)
    }
    /// See [`GreenletRef::link_exception`].
    pub fn link_exception<F: FnOnce(&GreenletRef) + 'static>(&self, f: F) {
        self.r.link_exception(f)
    }
    /// See [`GreenletRef::started`].
    pub fn started(&self) -> bool {
        self.r.started()
    }
    /// See [`GreenletRef::ready`].
    pub fn ready(&self) -> bool {
        self.r.ready()
    }
    /// See [`GreenletRef::dead`].
    pub fn dead(&self) -> bool {
        self.r.dead()
    }
    /// See [`GreenletRef::successful`].
    pub fn successful(&self) -> bool {
        self.r.successful()
    }
    /// See [`GreenletRef::exception`].
    pub fn exception(&self) -> Option<GreenletError> {
        self.r.exception()
    }
    /// See [`GreenletRef::id`].
    pub fn id(&self) -> u64 {
        self.r.id()
    }
    /// See [`GreenletRef::name`].
    pub fn name(&self) -> String {
        self.r.name()
    }
    /// See [`GreenletRef::set_name`].
    pub fn set_name(&self, n: &str) {
        self.r.set_name(n)
    }
}
