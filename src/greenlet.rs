//! Greenlets: the shared state behind the `Greenlet<T>` / `GreenletRef`
//! handles, the start record laid on a fresh stack, and the Rust entry point
//! that runs the user's closure inside `catch_unwind` (no unwind ever crosses
//! an asm frame). The scheduler side (states, park, kill) lives in hub.rs.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use crate::hub;
use crate::wait::WaitList;

/// Why a greenlet did not return a value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GreenletError {
    /// The greenlet panicked; the panic message.
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
    pub(crate) name: RefCell<Option<String>>,
    pub(crate) exception: RefCell<Option<GreenletError>>,
    pub(crate) links: RefCell<Vec<Link>>,
    pub(crate) joiners: Cell<WaitList>,
    pub(crate) slot: S,
}

/// The typed part of a greenlet, seen through `dyn Slot` by untyped code.
pub(crate) trait Slot: Any {
    /// The result cell, a `RefCell<Option<T>>`.
    fn result(&self) -> &dyn Any;
    /// Drops the closure of a greenlet that will never run.
    fn drop_closure(&self);
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
}

/// A callback run from the hub when a greenlet dies.
pub(crate) type Link = Box<dyn FnOnce(&GreenletRef)>;

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
            name: RefCell::new(None),
            exception: RefCell::new(None),
            links: RefCell::new(Vec::new()),
            joiners: Cell::new(WaitList::default()),
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
        match &*self.0.name.borrow() {
            Some(n) => n.clone(),
            None => format!("Greenlet-{}", self.0.id),
        }
    }

    /// Renames the greenlet (used in panic reports and overflow messages).
    pub fn set_name(&self, name: &str) {
        *self.0.name.borrow_mut() = Some(name.to_owned());
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
        self.dead() && self.0.exception.borrow().is_none()
    }

    /// Why the greenlet failed: `Some(Panicked(..))` or `Some(Killed)` once it
    /// died that way, `None` while it runs or after it returned normally.
    pub fn exception(&self) -> Option<GreenletError> {
        self.0.exception.borrow().clone()
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
    pub fn join(&self) {
        hub::join(self, None);
    }

    /// Waits at most `d` for the greenlet to die; true if it is dead.
    ///
    /// # Blocking
    /// As [`join`](Self::join), bounded by `d`.
    pub fn join_timeout(&self, d: Duration) -> bool {
        hub::join(self, Some(d))
    }

    /// Kills the greenlet and waits until it is dead.
    ///
    /// The target unwinds from the point where it is blocked (its destructors
    /// and guards run) and dies with [`GreenletError::Killed`]. A greenlet that
    /// never ran never runs. Killing a dead greenlet does nothing; killing the
    /// current greenlet unwinds it at once.
    ///
    /// # Blocking
    /// Waits for the target's death like [`join`](Self::join).
    ///
    /// # Panics
    /// When asked to kill the main greenlet.
    pub fn kill(&self) {
        self.kill_nowait();
        self.join();
    }

    /// Kills the greenlet without waiting for it to finish unwinding.
    ///
    /// A greenlet that has not run yet is dead when this returns; one that is
    /// blocked unwinds the next time the hub schedules it.
    pub fn kill_nowait(&self) {
        hub::kill(self);
    }

    /// Registers `f` to run (once, from the hub) when the greenlet dies.
    /// Linking a dead greenlet schedules `f` at once.
    pub fn link<F: FnOnce(&GreenletRef) + 'static>(&self, f: F) {
        self.0.links.borrow_mut().push(Box::new(f));
        if self.dead() {
            hub::schedule_links(self.clone());
        }
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
    /// why it failed.
    ///
    /// # Blocking
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
    /// # Blocking
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
    /// # Blocking
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
    pub fn join(&self) {
        self.r.join()
    }
    /// See [`GreenletRef::join_timeout`].
    pub fn join_timeout(&self, d: Duration) -> bool {
        self.r.join_timeout(d)
    }
    /// See [`GreenletRef::kill`].
    pub fn kill(&self) {
        self.r.kill()
    }
    /// See [`GreenletRef::kill_nowait`].
    pub fn kill_nowait(&self) {
        self.r.kill_nowait()
    }
    /// See [`GreenletRef::link`].
    pub fn link<F: FnOnce(&GreenletRef) + 'static>(&self, f: F) {
        self.r.link(f)
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

/// Configures a greenlet before it is created: name and stack size.
#[derive(Debug, Default, Clone)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// Names the greenlet.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Usable stack bytes (rounded up to pages; at least 16 KiB). The default
    /// is the hub's, see [`crate::hub::set_default_stack_size`].
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Creates the greenlet without starting it.
    ///
    /// # Panics
    /// If no stack can be mapped (out of memory or address space).
    pub fn build<F, T>(self, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.create(f, false)
    }

    /// Creates and starts the greenlet.
    ///
    /// # Panics
    /// As [`build`](Self::build).
    pub fn spawn<F, T>(self, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.create(f, true)
    }

    fn create<F, T>(self, f: F, start: bool) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let inner = GreenletRef::new_inner::<F, T>(hub::next_id(), Some(f));
        if let Some(n) = self.name {
            *inner.name.borrow_mut() = Some(n);
        }
        let r = GreenletRef(inner);
        hub::create(&r, self.stack_size, run::<F, T>, start);
        Greenlet { r, _t: PhantomData }
    }
}

/// The first word of every start record: how to run it. A record lives at
/// the top of a fresh stack; `gevent_entry` passes its address to
/// [`gevent_greenlet_main`].
#[repr(C)]
pub(crate) struct Header {
    pub(crate) run: unsafe fn(usize) -> !,
}

/// A greenlet's start record: the header and its shared state.
#[repr(C)]
pub(crate) struct StartRecord {
    header: Header,
    inner: *const (),
}

impl StartRecord {
    pub(crate) fn new(run: unsafe fn(usize) -> !, r: &GreenletRef) -> StartRecord {
        StartRecord { header: Header { run }, inner: Rc::as_ptr(&r.0) as *const () }
    }
}

/// Moves `record` to the top of the stack ending at `top` and returns its
/// address, which is below `top` and 16-byte aligned.
///
/// # Safety
/// `[top - room, top)` must be writable stack memory owned by the caller,
/// where `room` is at least `size_of::<R>() + align_of::<R>() + 16`.
pub(crate) unsafe fn place_record<R>(top: usize, record: R) -> usize {
    let align = std::mem::align_of::<R>().max(16);
    let addr = (top - std::mem::size_of::<R>()) & !(align - 1);
    // SAFETY: `addr` is aligned for R and inside the caller's stack memory.
    unsafe { (addr as *mut R).write(record) };
    addr
}

/// Runs a greenlet's closure and dies.
///
/// # Safety
/// `data` is a [`StartRecord`] for a greenlet whose slot is a
/// `SlotImpl<F, T>`, placed on the stack we run on; the hub's control block
/// keeps the shared state alive while we run.
unsafe fn run<F: FnOnce() -> T + 'static, T: 'static>(data: usize) -> ! {
    // SAFETY: per the contract, `inner` points at a live Inner<SlotImpl<F, T>>.
    let inner = unsafe { &*((*(data as *const StartRecord)).inner as *const Inner<SlotImpl<F, T>>) };
    let f = inner.slot.closure.take().expect("a greenlet's closure runs once");
    let outcome = panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| error_from_payload(&*p));
    match outcome {
        // Nobody can ever read it (only the hub's control block refers to the
        // greenlet): drop it here, in greenlet context, where its destructor
        // may block or switch like any user code.
        Ok(v) if hub::handles_of_current() == 0 => hub::drop_reporting(v, "a greenlet's unread result"),
        Ok(v) => *inner.slot.result.borrow_mut() = Some(v),
        Err(e) => *inner.exception.borrow_mut() = Some(e),
    }
    hub::exit_current()
}

/// Classifies what unwound out of a greenlet.
fn error_from_payload(payload: &(dyn Any + Send)) -> GreenletError {
    if payload.is::<KillUnwind>() {
        return GreenletError::Killed;
    }
    if let Some(s) = payload.downcast_ref::<&str>() {
        return GreenletError::Panicked((*s).to_owned());
    }
    if let Some(s) = payload.downcast_ref::<String>() {
        return GreenletError::Panicked(s.clone());
    }
    if payload.is::<crate::timeout::TimeoutUnwind>() {
        return GreenletError::Timeout;
    }
    GreenletError::Panicked("Box<dyn Any>".to_owned())
}

/// Where `gevent_entry` lands: reads the record header and runs it.
///
/// # Safety
/// Called only by `gevent_entry` with the record pointer a fresh context was
/// created with.
#[no_mangle]
unsafe extern "C" fn gevent_greenlet_main(data: usize) -> ! {
    // SAFETY: `data` points at a live record whose header is at offset 0.
    unsafe {
        let header = &*(data as *const Header);
        (header.run)(data)
    }
}

/// The start record of the hub's own context: runs the hub loop, which never
/// returns.
#[repr(C)]
pub(crate) struct HubRecord {
    header: Header,
    body: fn(),
}

impl HubRecord {
    pub(crate) fn new(body: fn()) -> HubRecord {
        HubRecord { header: Header { run: run_hub }, body }
    }
}

/// Runs the hub loop; aborts if it ever ends (nothing could be resumed).
///
/// # Safety
/// `data` is a placed [`HubRecord`].
unsafe fn run_hub(data: usize) -> ! {
    // SAFETY: per the contract, `data` points at a live HubRecord.
    let body = unsafe { (*(data as *const HubRecord)).body };
    if panic::catch_unwind(body).is_err() {
        eprintln!("gevent: the hub loop panicked; aborting");
    }
    std::process::abort()
}
