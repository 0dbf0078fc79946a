//! The crate-root functions of gevent: spawn, sleep, join and kill many,
//! getcurrent. Thin wrappers over the hub.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use crate::greenlet::{Greenlet, GreenletRef};
use crate::hub;

/// Creates a greenlet running `f` and schedules it (gevent's `spawn`).
///
/// The new greenlet goes to the back of the run queue; it first runs when
/// the caller blocks or yields.
///
/// # Examples
/// ```
/// let g = gevent::spawn(|| 1 + 1);
/// assert!(!g.dead());
/// assert_eq!(g.get(), Ok(2));
/// ```
///
/// # Panics
/// If its control block cannot be made. (Its stack is mapped at its first
/// run: if that fails, the greenlet dies unrun with an error saying so.)
#[doc(alias = "spawn_raw")]
pub fn spawn<F, T>(f: F) -> Greenlet<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    Greenlet::spawn(f)
}

/// Creates a greenlet running `f` and starts it after `delay`.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let g = gevent::spawn_later(Duration::from_millis(5), || "late");
/// assert_eq!(g.get(), Ok("late"));
/// ```
pub fn spawn_later<F, T>(delay: Duration, f: F) -> Greenlet<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    let g = Greenlet::new(f);
    g.start_later(delay);
    g
}

/// Suspends the current greenlet for `d`. `Duration::ZERO` yields: every
/// greenlet ready now runs once, then the caller resumes.
///
/// # Examples
/// ```
/// use std::time::{Duration, Instant};
/// let t = Instant::now();
/// gevent::sleep(Duration::from_millis(20));
/// assert!(t.elapsed() >= Duration::from_millis(20));
/// ```
///
/// # Blocking
/// For `d`; with zero, until every greenlet ready now has run (at once if
/// none is). Killed or timed out while asleep, the greenlet unwinds and its
/// timer is cancelled.
///
/// # Panics
/// From a hub callback (link callbacks must not block).
#[inline(always)]
pub fn sleep(d: Duration) {
    hub::sleep(d)
}

/// Yields to every ready greenlet, then resumes (`sleep(Duration::ZERO)`).
///
/// # Blocking
/// As [`sleep`].
///
/// # Panics
/// From a hub callback (link callbacks must not block).
#[inline(always)]
pub fn yield_now() {
    hub::yield_now()
}

/// A handle to the running greenlet (the main greenlet included).
///
/// # Panics
/// In a hub callback (a link callback, a destructor the hub runs), which
/// runs in no greenlet (gevent returns the hub there).
///
/// # Examples
/// ```
/// assert_eq!(gevent::getcurrent().name(), "main");
/// let g = gevent::spawn(|| gevent::getcurrent().name());
/// assert_eq!(g.get(), Ok(g.name()));
/// ```
pub fn getcurrent() -> GreenletRef {
    hub::current_ref()
}

/// Waits until the hub has nothing else to do: every other greenlet is
/// blocked, no timer is due and no I/O is at hand (gevent's `idle()`).
/// Greenlets waiting here resume together, in the order they came.
///
/// # Blocking
/// While anything else can run. Never LoopExit: with nothing else to do,
/// it returns.
///
/// # Panics
/// From a hub callback (link callbacks must not block).
///
/// # Examples
/// ```
/// use std::{cell::Cell, rc::Rc};
/// let steps = Rc::new(Cell::new(0));
/// let s = steps.clone();
/// gevent::spawn(move || for _ in 0..3 { s.set(s.get() + 1); gevent::yield_now() });
/// gevent::idle();
/// assert_eq!(steps.get(), 3); // the busy greenlet ran to its end first
/// ```
pub fn idle() {
    hub::idle()
}

/// Waits until every greenlet given is dead.
///
/// # Blocking
/// Joins them in order (see [`GreenletRef::join`]).
///
/// # Panics
/// As [`GreenletRef::join`] (LoopExit when nothing can wake the caller).
pub fn joinall<I>(greenlets: I)
where
    I: IntoIterator,
    I::Item: AsRef<GreenletRef>,
{
    for g in greenlets {
        g.as_ref().join();
    }
}

/// Waits until every greenlet given is dead, or one of them failed
/// (gevent's `joinall(raise_error=True)`); the others keep running.
///
/// Greenlets are looked at in the order they die (those dead already
/// first, in the order given). A killed greenlet has finished, not failed:
/// gevent's `GreenletExit` is a result, not an error.
///
/// # Errors
/// The error of the first greenlet found failed: `Panicked` with its
/// message (or `Timeout`: a `with_timeout` scope's timeout that unwound
/// out of it).
///
/// # Blocking
/// Until all are dead or one failed.
///
/// # Panics
/// In the main greenlet when nothing can ever finish them (LoopExit).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use gevent::GreenletError;
/// let slow = gevent::spawn(|| gevent::sleep(Duration::from_secs(3600)));
/// let failing = gevent::spawn(|| -> u32 { panic!("no luck") });
/// let err = gevent::try_joinall([slow.as_ref(), failing.as_ref()]).unwrap_err();
/// assert_eq!(err, GreenletError::Panicked("no luck".into()));
/// assert!(!slow.dead()); // not waited for
/// slow.kill();
/// assert_eq!(gevent::try_joinall([&slow]), Ok(())); // killed: finished
/// ```
#[doc(alias = "raise_error")]
pub fn try_joinall<I>(greenlets: I) -> Result<(), crate::GreenletError>
where
    I: IntoIterator,
    I::Item: AsRef<GreenletRef>,
{
    let failed = |g: &GreenletRef| match g.exception() {
        None | Some(crate::GreenletError::Killed) => None,
        e => e,
    };
    // The dead ones first, in the order given; each live one reports its
    // death through a link (a watcher greenlet each, as `iwait` spawns,
    // costs ten times more).
    let deaths: crate::queue::Queue<GreenletRef> = crate::queue::Queue::new();
    let mut alive = 0;
    for g in greenlets {
        let g = g.as_ref();
        if g.dead() {
            if let Some(e) = failed(g) {
                return Err(e);
            }
        } else {
            alive += 1;
            let deaths = deaths.clone();
            g.link(move |dead| deaths.put(dead.clone()));
        }
    }
    for _ in 0..alive {
        if let Some(e) = failed(&deaths.get()) {
            return Err(e);
        }
    }
    Ok(())
}

/// Waits at most `timeout` for the greenlets to die; returns the ones that
/// are dead by then, in the order given.
///
/// # Blocking
/// As [`joinall`], bounded by `timeout`.
///
/// # Panics
/// From a hub callback (link callbacks must not block).
pub fn joinall_timeout<I>(greenlets: I, timeout: Duration) -> Vec<GreenletRef>
where
    I: IntoIterator,
    I::Item: AsRef<GreenletRef>,
{
    let all: Vec<GreenletRef> = greenlets.into_iter().map(|g| g.as_ref().clone()).collect();
    let deadline = crate::timer::after(Instant::now(), timeout);
    for g in &all {
        let left = deadline.saturating_duration_since(Instant::now());
        if !g.join_timeout(left) {
            break;
        }
    }
    all.into_iter().filter(|g| g.dead()).collect()
}

/// Kills every greenlet given and waits until all are dead.
///
/// If the current greenlet is among them, it is killed last (it unwinds at
/// once, without waiting for the others).
///
/// # Blocking
/// As [`GreenletRef::kill`]; all are asked to die before the first wait.
///
/// # Panics
/// As [`GreenletRef::kill`].
pub fn killall<I>(greenlets: I)
where
    I: IntoIterator,
    I::Item: AsRef<GreenletRef>,
{
    kill_then_wait(greenlets.into_iter().map(|g| g.as_ref().clone()).collect(), None);
}

/// As [`killall`], waiting at most `timeout` for them to die (gevent's
/// `killall(timeout=)`); returns the ones still alive then, in the order
/// given (empty: all died). They were asked to die all the same: one that
/// catches its kill, or unwinds slowly, is left to it. With a zero
/// `timeout` it returns at once: the ones that had started have not
/// unwound yet.
///
/// # Blocking
/// As [`killall`], bounded by `timeout`.
///
/// # Panics
/// From a hub callback (link callbacks must not block).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let sleepers: Vec<_> = (0..3).map(|_| gevent::spawn(|| gevent::sleep(Duration::from_secs(3600)))).collect();
/// assert!(gevent::killall_timeout(&sleepers, Duration::from_secs(5)).is_empty());
/// assert!(sleepers.iter().all(|g| g.dead()));
/// ```
pub fn killall_timeout<I>(greenlets: I, timeout: Duration) -> Vec<GreenletRef>
where
    I: IntoIterator,
    I::Item: AsRef<GreenletRef>,
{
    kill_then_wait(greenlets.into_iter().map(|g| g.as_ref().clone()).collect(), Some(timeout))
}

/// The body of `killall` and `killall_timeout`: asks all to die, waits
/// (at most `timeout`), returns the ones still alive.
fn kill_then_wait(all: Vec<GreenletRef>, timeout: Option<Duration>) -> Vec<GreenletRef> {
    killall_nowait(&all);
    // Killing itself, the caller unwound already, unless it is unwinding
    // (a kill from a destructor is deferred): it waits for the others only.
    let me = getcurrent();
    let others = all.iter().filter(|g| **g != me);
    match timeout {
        None => joinall(others),
        Some(t) => drop(joinall_timeout(others, t)),
    }
    all.into_iter().filter(|g| !g.dead()).collect()
}

/// `killall`'s first half: asks each to die, the caller last (killing
/// itself unwinds at once, after the others were asked).
pub(crate) fn killall_nowait(all: &[GreenletRef]) {
    let me = getcurrent();
    for g in all.iter().filter(|g| **g != me) {
        g.kill_nowait();
    }
    if all.contains(&me) {
        me.kill_nowait();
    }
}

/// Runs `f`, catching a panic in it as [`std::panic::catch_unwind`] does,
/// but not a kill or a timeout: those unwind on to the greenlet's root or
/// their [`with_timeout`](crate::with_timeout) scope, as Python's `except
/// Exception:` lets `GreenletExit` and `Timeout` through. Use it where
/// `catch_unwind` would keep a worker loop going: a `catch_unwind` around
/// code that blocks swallows the kill meant to stop it.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let worker = gevent::spawn(|| {
///     let mut failures = 0;
///     loop {
///         let job = gevent::catch_panic(|| {
///             gevent::sleep(Duration::from_millis(1));
///             panic!("a bad job");
///         });
///         if job.is_err() {
///             failures += 1; // a panic: counted, and the loop goes on
///         }
///     }
/// });
/// gevent::sleep(Duration::from_millis(10));
/// worker.kill(); // not caught by catch_panic: the worker ends
/// assert!(worker.dead());
/// ```
///
/// # Errors
/// The panic's payload, when `f` panicked.
///
/// # Blocking
/// Blocks exactly as `f` does.
pub fn catch_panic<F, T>(f: F) -> std::thread::Result<T>
where
    F: FnOnce() -> T + std::panic::UnwindSafe,
{
    let me = hub::current_key();
    let payload = match std::panic::catch_unwind(f) {
        Ok(v) => return Ok(v),
        Err(payload) => payload,
    };
    if hub::is_hub(me) {
        // (Nothing interrupts a hub callback.)
        return Err(payload);
    }
    if is_interrupt(&*payload) {
        // Caught and raised again: counted once.
        hub::note_unwind(me, false);
        hub::resume_unwind(me, payload)
    }
    // A panic caught for good: a kill that came while it unwound (held
    // until then) is raised now.
    hub::unwind_caught(me);
    Err(payload)
}

/// True if `payload` (what [`std::panic::catch_unwind`] caught) is a kill
/// or a timeout unwinding a greenlet, or the cancellation of a dropped
/// [`Coroutine`](crate::coroutine::Coroutine), not a panic: code that caught
/// it should re-raise it with [`std::panic::resume_unwind`] (or use
/// [`catch_panic`], which never catches them).
pub fn is_interrupt(payload: &(dyn std::any::Any + Send)) -> bool {
    payload.is::<crate::greenlet::KillUnwind>()
        || payload.is::<crate::timeout::TimeoutUnwind>()
        || payload.is::<crate::coroutine::Cancel>()
}
