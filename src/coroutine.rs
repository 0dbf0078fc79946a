//! A raw stackful coroutine: resume / suspend with one word each way, no hub,
//! no scheduling. It is the bare switch the greenlets are built on, exposed
//! for embedding and for the switch benchmark (corosensei's shape).

use std::cell::Cell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};

use crate::arch::Context;
use crate::greenlet::{self, Header};
use crate::hub;
use crate::stack::Stack;

/// What [`Coroutine::resume`] got back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoroutineResult {
    /// The coroutine called [`Yielder::suspend`] with this value.
    Yield(usize),
    /// The coroutine returned this value; it cannot be resumed again.
    Return(usize),
}

/// State shared by the coroutine and its handle; boxed, so its address (the
/// caller's saved-sp slot lives here) stays put.
struct Shared {
    caller_slots: [Cell<usize>; 2],
    own: Cell<Context>,
    input: Cell<usize>,
    done: Cell<bool>,
    cancel: Cell<bool>,
    panic: Cell<Option<Box<dyn std::any::Any + Send>>>,
}

impl Shared {
    fn caller(&self) -> Context {
        Context::at(self.caller_slots.as_ptr() as *mut usize)
    }
}

/// The coroutine's side: suspends back to whoever resumed it.
pub struct Yielder {
    shared: *const Shared,
}

impl fmt::Debug for Yielder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Yielder")
    }
}

/// Unwind payload used to drop a suspended coroutine's stack frames (an
/// interrupt: [`crate::catch_panic`] lets it through).
pub(crate) struct Cancel;

impl Yielder {
    /// Passes `value` to the resumer and waits to be resumed again; returns
    /// the value given to the next [`Coroutine::resume`].
    #[inline]
    pub fn suspend(&self, value: usize) -> usize {
        // SAFETY: the Shared box outlives the coroutine body (the handle
        // cancels and finishes the body before dropping it).
        let shared = unsafe { &*self.shared };
        // SAFETY: we run on the coroutine's own context; the caller is
        // suspended inside `resume`, its slots in the Shared box.
        let v = unsafe { shared.own.get().suspend_to(shared.caller(), value) };
        if shared.cancel.get() {
            // An unwind of the greenlet running us, which no panic hook
            // sees: counted, so a kill or timeout meanwhile waits for it.
            hub::resume_unwind(hub::current_key(), Box::new(Cancel));
        }
        v
    }
}

/// A stackful coroutine on a pooled, guard-protected stack.
///
/// The coroutine has no identity of its own: gevent calls made inside it
/// (`sleep`, `with_timeout`, socket I/O, `getcurrent`) act for the greenlet
/// that resumed it. So a `with_timeout` scope left open across a
/// [`suspend`](Yielder::suspend) keeps its timer: when it expires, the
/// greenlet that resumed the coroutine is interrupted wherever it is
/// (gevent's `Timeout` started and not cancelled behaves the same). Close
/// such scopes before suspending.
///
/// # Drop
/// Dropping a coroutine suspended mid-body unwinds its body from the
/// `suspend` it waits in, so its destructors run (a panic among them is
/// reported). A body that catches that unwind (a `catch_unwind` around
/// `suspend`) and suspends again aborts the process: catch with
/// [`crate::catch_panic`], which lets it through.
///
/// # Examples
/// ```
/// use gevent::coroutine::{Coroutine, CoroutineResult};
/// let mut co = Coroutine::new(|y, first| {
///     let second = y.suspend(first + 1);
///     second * 10
/// });
/// assert_eq!(co.resume(1), CoroutineResult::Yield(2));
/// assert_eq!(co.resume(4), CoroutineResult::Return(40));
/// assert!(co.done());
/// ```
pub struct Coroutine {
    /// From `Box::into_raw`, freed in `Drop`: a raw pointer, so the
    /// coroutine's own copy (in its start record) stays valid however the
    /// handle moves.
    shared: std::ptr::NonNull<Shared>,
    stack: Option<Stack>,
    data: usize,
    discard: unsafe fn(usize),
    started: bool,
}

impl fmt::Debug for Coroutine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coroutine").field("started", &self.started).field("done", &self.done()).finish()
    }
}

#[repr(C)]
struct CoRecord<F> {
    header: Header,
    shared: *const Shared,
    f: F,
}

impl Coroutine {
    /// Creates a coroutine that runs `f(yielder, first_input)` on first resume.
    ///
    /// # Panics
    /// If no stack can be mapped (the thread's hub pool provides it).
    pub fn new<F>(f: F) -> Coroutine
    where
        F: FnOnce(&Yielder, usize) -> usize + 'static,
    {
        let stack = hub::take_stack(None);
        if let Err(msg) = greenlet::check_fits::<CoRecord<F>>(&stack) {
            hub::give_stack(stack);
            panic!("{msg}");
        }
        let shared = Box::new(Shared {
            caller_slots: [Cell::new(0), Cell::new(0)],
            own: Cell::new(Context::at(std::ptr::null_mut())),
            input: Cell::new(0),
            done: Cell::new(false),
            cancel: Cell::new(false),
            panic: Cell::new(None),
        });
        let header = Header { run: co_run::<F> };
        let shared = std::ptr::NonNull::from(Box::leak(shared));
        let record = CoRecord { header, shared: shared.as_ptr(), f };
        let (own, data) = greenlet::new_context(&stack, record);
        let co = Coroutine { shared, stack: Some(stack), data, discard: co_discard::<F>, started: false };
        co.shared().own.set(own);
        co
    }

    fn shared(&self) -> &Shared {
        // SAFETY: allocated in `new` and freed only in `Drop`; only shared
        // references (and `Cell`s) are ever made to it.
        unsafe { self.shared.as_ref() }
    }

    /// Runs the coroutine until it suspends or returns.
    ///
    /// # Blocking
    /// Not a greenlet switch: the coroutine runs on the calling thread, in
    /// the calling greenlet's turn, until it suspends; nothing else is
    /// scheduled meanwhile (unless the coroutine itself blocks the greenlet).
    ///
    /// # Panics
    /// If the coroutine already returned, or when its body panics (the
    /// panic is resumed here).
    #[inline]
    pub fn resume(&mut self, value: usize) -> CoroutineResult {
        assert!(!self.shared().done.get(), "gevent: resume of a coroutine that has returned");
        let data = if self.started {
            value
        } else {
            self.started = true;
            self.shared().input.set(value);
            self.data
        };
        // SAFETY: we are the running context (saved into the Shared box);
        // the coroutine is fresh or suspended in `Yielder::suspend`.
        let out = unsafe { self.shared().caller().resume_nested(self.shared().own.get(), data) };
        if !self.shared().done.get() {
            return CoroutineResult::Yield(out);
        }
        if let Some(p) = self.shared().panic.take() {
            panic::resume_unwind(p);
        }
        CoroutineResult::Return(out)
    }

    /// True once the body returned.
    pub fn done(&self) -> bool {
        self.shared().done.get()
    }
}

impl Drop for Coroutine {
    fn drop(&mut self) {
        if !self.started {
            // SAFETY: the record was placed in `new` for this closure type
            // and never ran.
            unsafe { (self.discard)(self.data) };
        } else if !self.shared().done.get() {
            // Unwind the suspended body so its destructors run.
            self.shared().cancel.set(true);
            // SAFETY: as in `resume`.
            unsafe { self.shared().caller().resume_nested(self.shared().own.get(), 0) };
            if !self.shared().done.get() {
                // The body caught the cancellation and suspended again: its
                // frames are live, so its stack can be neither reused nor
                // freed, and its destructors would never run.
                report!("gevent: a coroutine suspended while being dropped (it caught its cancellation); aborting");
                std::process::abort();
            }
        }
        if let Some(s) = self.stack.take() {
            hub::give_stack(s);
        }
        // SAFETY: made by `Box` in `new`; the body finished or never ran,
        // so nothing refers to it any more.
        drop(unsafe { Box::from_raw(self.shared.as_ptr()) });
    }
}

/// # Safety
/// `data` is a placed, unrun `CoRecord<F>`.
unsafe fn co_discard<F>(data: usize) {
    // SAFETY: per the contract.
    unsafe { std::ptr::drop_in_place(&mut (*(data as *mut CoRecord<F>)).f) };
}

/// # Safety
/// `data` is a placed, unrun `CoRecord<F>` on the stack we run on.
unsafe fn co_run<F>(data: usize) -> !
where
    F: FnOnce(&Yielder, usize) -> usize,
{
    // SAFETY: per the contract; the closure is read once.
    let (shared, f) = unsafe {
        let rec = data as *const CoRecord<F>;
        ((*rec).shared, std::ptr::read(&(*rec).f))
    };
    let y = Yielder { shared };
    // SAFETY: the Shared box outlives the body (see Drop).
    let sh = unsafe { &*shared };
    let out = match panic::catch_unwind(AssertUnwindSafe(|| f(&y, sh.input.get()))) {
        Ok(v) => v,
        Err(p) => {
            if p.is::<Cancel>() {
                hub::note_unwind(hub::current_key(), false);
            } else {
                sh.panic.set(Some(p));
            }
            0
        }
    };
    sh.done.set(true);
    // SAFETY: the caller is suspended in `resume` or `drop`; we never run
    // again, and our stack is returned to the pool only after this switch.
    unsafe { sh.own.get().suspend_to(sh.caller(), out) };
    unreachable!("a finished coroutine was resumed")
}
