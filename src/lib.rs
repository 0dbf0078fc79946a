//! # gevent for Rust
//!
//! Greenlets — stackful coroutines switched by hand-written assembly — and
//! one deterministic hub per OS thread, with gevent's programming model:
//! spawn, sleep, join, kill, timeouts, greenlet-local storage.
//!
//! The thread's own stack is the *main greenlet*: there is no `block_on`.
//! Blocking calls (`sleep`, `join`, ...) switch to the next ready greenlet.
//!
//! ```
//! use std::time::Duration;
//!
//! let a = gevent::spawn(|| {
//!     gevent::sleep(Duration::from_millis(2));
//!     "a"
//! });
//! let b = gevent::spawn(|| "b");
//! gevent::joinall([a.as_ref(), b.as_ref()]);
//! assert_eq!((a.get(), b.get()), (Ok("a"), Ok("b")));
//! ```
//!
//! Scheduling is FIFO and deterministic: a spawned greenlet runs when the
//! spawner blocks or yields; wake-ups append to the back of the run queue;
//! timers fire by (deadline, creation order).
//!
//! ## The crate
//!
//! Linux only, on x86_64 and aarch64. The core: [`spawn`], [`Greenlet`],
//! [`sleep`], [`joinall`], [`killall`], [`with_timeout`] and
//! [`Timeout`], [`local`], [`coroutine`] (a bare
//! stackful coroutine), [`hub`] (per-thread settings and statistics).
//! Synchronization: [`event`], [`queue`], [`lock`], [`pool`], [`wait()`] /
//! [`iwait`]. I/O: [`socket`], [`server`], [`select`](mod@select),
//! [`signal`](mod@signal), [`subprocess`], [`threadpool`] and
//! [`spawn_blocking`]; [`mpsc`] feeds greenlets from other threads. The
//! hub waits for I/O through io_uring, or epoll where the kernel refuses
//! io_uring or `GEVENT_BACKEND=epoll` is set ([`hub::backend`]).
//!
//! Greenlets and everything that parks them (events, queues, locks) are
//! `!Send`: each belongs to its thread's hub. Sockets may move between
//! threads; values cross through [`mpsc`], [`spawn_blocking`] or
//! [`threadpool`].
//!
//! ## Thread exit
//!
//! When a thread that used gevent exits (the main thread included, when
//! `main` returns), its hub kills the greenlets still alive, each unwinding
//! so its destructors run, then drops the main greenlet's
//! [`local`] values. A greenlet whose code swallows that kill (a
//! `catch_unwind` around a blocking call, in a loop) is reported on stderr
//! a second later and left suspended, never resumed.
//!
//! ## Stacks
//!
//! A greenlet runs on a stack of its own, 64 KiB by default (gevent's
//! greenlets copy theirs and have no such bound). A large array on it, say
//! the port of `sock.recv(65536)` as `let mut buf = [0u8; 65536];`,
//! overflows it, and an overflow aborts the process (`greenlet 'x' has
//! overflowed its stack`). Put large buffers on the heap (`vec![0u8; n]`),
//! or ask for a bigger stack: [`Builder::stack_size`],
//! [`hub::set_default_stack_size`],
//! [`StreamServer::with_stack_size`](server::StreamServer::with_stack_size).
//! Stack memory is committed only where touched: a million blocked
//! greenlets take ~4 KiB each.
//!
//! ## What the greenlets of a thread share
//!
//! Greenlets are not threads; what std keeps per thread, they share:
//! - A blocking std call (`std::thread::sleep`, `std::sync::Mutex::lock`
//!   on a contended lock, `std::net` I/O) stops every greenlet of the
//!   thread. Use gevent's: [`sleep`], [`lock`], [`socket`], or
//!   [`spawn_blocking`] for code that must block.
//! - `thread_local!` values: one per thread, seen by all its greenlets; for
//!   one per greenlet, use [`local::Local`].
//! - `std::thread::panicking()`: while a greenlet unwinding (from a panic,
//!   a kill or a timeout) blocks in a destructor (a `Drop` that sleeps,
//!   joins or waits), every
//!   other greenlet of the thread sees `true` (std counts panics per
//!   thread). A std `MutexGuard` taken before that moment and dropped
//!   during it marks its mutex poisoned; gevent's own locks do not poison.
//! - Unwinding: a kill or a timeout unwinds the greenlet like a panic, so
//!   `std::panic::catch_unwind` catches them too (and a worker loop built
//!   on it would swallow the kill meant to stop it). [`catch_panic`]
//!   catches panics only, as Python's `except Exception:`; [`is_interrupt`]
//!   tells a caught payload apart.
//! - The panic hook. A hook you install after the first gevent call
//!   should call the one it replaces (`std::panic::take_hook`): gevent's
//!   counts each greenlet's unwinds, which a kill or timeout aimed at a
//!   greenlet blocked in a destructor during its unwind needs (it is held
//!   until the unwind ends; raised there, it would abort the process).
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs, missing_debug_implementations)]

/// `eprintln!` that does not panic on a stderr that is gone: a report
/// from the runtime (often from a panic hook or the hub, where a panic
/// aborts the process) is dropped when stderr is a pipe nobody reads, as
/// std's own panic message is. Otherwise it is `eprintln!`, which a test
/// harness captures.
macro_rules! report {
    ($($arg:tt)*) => {{
        if !$crate::driver::sys::stderr_gone() {
            eprintln!($($arg)*);
        }
    }};
}

mod addr;
mod arch;
pub mod coroutine;
mod driver;
pub mod event;
mod greenlet;
pub mod hub;
pub mod local;
pub mod lock;
pub mod mpsc;
pub mod pool;
pub mod queue;
mod runtime;
pub mod select;
pub mod server;
pub mod signal;
pub mod socket;
mod stack;
pub mod subprocess;
pub mod threadpool;
mod timeout;
mod timer;
mod wait;

pub use greenlet::{Builder, Greenlet, GreenletError, GreenletRef, LinkId};
pub use pool::{iwait, wait, IWait, Waitable};
pub use runtime::{
    catch_panic, getcurrent, idle, is_interrupt, joinall, joinall_timeout, killall, killall_timeout, sleep, spawn,
    spawn_later, try_joinall, yield_now,
};
pub use stack::{DEFAULT_STACK_SIZE, MIN_STACK_SIZE};
pub use threadpool::spawn_blocking;
pub use timeout::{with_timeout, Timeout};
