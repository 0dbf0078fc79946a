//! How a greenlet starts and ends on its own stack: the start record laid at
//! the top of a fresh stack, the Rust entry point `gevent_entry` jumps to, and
//! the root frame that runs the closure inside `catch_unwind` (no unwind ever
//! crosses an asm frame) and stores the outcome.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use super::{GreenletError, GreenletRef, Inner, KillUnwind, SlotImpl};
use crate::arch::{self, Context};
use crate::hub;
use crate::stack::Stack;

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

/// Whether a start record `R` (and the first frame) leaves at least half of
/// `stack` to the code it starts; the message says why not.
pub(crate) fn check_fits<R>(stack: &Stack) -> Result<(), String> {
    let room = std::mem::size_of::<R>() + std::mem::align_of::<R>() + 16 + arch::SLOT_BYTES + arch::FRAME_BYTES;
    if room < stack.size() / 2 {
        Ok(())
    } else {
        Err(format!("gevent: a start record of {room} bytes does not fit its stack of {} bytes", stack.size()))
    }
}

/// Lays out a fresh context on `stack` that will run `record` first.
///
/// # Panics
/// Unless [`check_fits`] accepts `R` for this stack.
pub(crate) fn new_context<R>(stack: &Stack, record: R) -> (Context, usize) {
    check_fits::<R>(stack).unwrap_or_else(|msg| panic!("{msg}"));
    // SAFETY: the top `room` bytes of the stack are ours and unused (the
    // stack is fresh from the pool); place_record keeps 16-byte alignment and
    // init_frame writes only the frame words below the slots.
    unsafe {
        let data = place_record(stack.top(), record);
        let slots = (data - arch::SLOT_BYTES) as *mut usize;
        let ctx = Context::at(slots);
        *ctx.sp_slot = arch::init_frame(slots);
        (ctx, data)
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
pub(super) unsafe fn run<F: FnOnce() -> T + 'static, T: 'static>(data: usize) -> ! {
    // SAFETY: per the contract, `inner` points at a live Inner<SlotImpl<F, T>>.
    let inner = unsafe { &*((*(data as *const StartRecord)).inner as *const Inner<SlotImpl<F, T>>) };
    let f = inner.slot.closure.take().expect("a greenlet's closure runs once");
    let mut outcome = panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let e = error_from_payload(&*p);
        hub::discard_payload(p);
        e
    });
    // A kill deferred while the greenlet was unwinding (blocked in a
    // destructor), whose unwind then ended in a scope that caught it: the
    // greenlet was killed all the same (unless it panicked).
    if hub::take_deferred_kill(hub::current_key()) && outcome.is_ok() {
        if let Ok(v) = std::mem::replace(&mut outcome, Err(GreenletError::Killed)) {
            // The value's destructor is user code: a panic in it (reported
            // by the panic hook) must not cross this root.
            if let Err(p) = panic::catch_unwind(AssertUnwindSafe(move || drop(v))) {
                hub::discard_payload(p);
            }
        }
    }
    match outcome {
        // Stored even if nobody can read it: `exit_current` then drops it,
        // still in this greenlet, where its destructor may block like any
        // user code.
        Ok(v) => *inner.slot.result.borrow_mut() = Some(v),
        Err(e) => inner.set_exception(e),
    }
    hub::exit_current()
}

/// Classifies what unwound out of a greenlet.
pub(crate) fn error_from_payload(payload: &(dyn Any + Send)) -> GreenletError {
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
        report!("gevent: the hub loop panicked; aborting");
    }
    std::process::abort()
}
