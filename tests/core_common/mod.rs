//! Helpers shared by the `core_*` integration tests: drop recorders, a
//! trace, and re-running this test binary as a child process for scenarios
//! that must end the process (stack overflow) or whose stderr is checked.
#![allow(dead_code)]

#[path = "../child_common/mod.rs"]
mod child;

use std::cell::{Cell, RefCell};
use std::process::Output;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An ordered record of events, shared by the greenlets of one test.
#[derive(Clone, Default)]
pub struct Trace<T>(Rc<RefCell<Vec<T>>>);

impl<T: Clone> Trace<T> {
    pub fn new() -> Self {
        Trace(Rc::new(RefCell::new(Vec::new())))
    }
    pub fn push(&self, v: T) {
        self.0.borrow_mut().push(v);
    }
    pub fn get(&self) -> Vec<T> {
        self.0.borrow().clone()
    }
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }
}

/// Counts its drops into a shared cell.
pub struct DropGuard(pub Rc<Cell<usize>>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// Counts its drops into a shared atomic (for guards that outlive a thread).
pub struct SendGuard(pub Arc<AtomicUsize>);

impl Drop for SendGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Sleeps this long when dropped: a destructor that blocks (a kill or an
/// unwind waits on it).
pub struct SleepOnDrop(pub Duration);

impl Drop for SleepOnDrop {
    fn drop(&mut self) {
        gevent::sleep(self.0);
    }
}

/// The environment variable naming the scenario a child process runs.
pub const CHILD_ENV: &str = "GEVENT_CORE_TEST_SCENARIO";

/// The scenario this process was started for, if it is a child.
pub fn child_scenario() -> Option<String> {
    child::scenario(CHILD_ENV)
}

/// Runs the test `test` of this binary alone in a child process with the
/// scenario variable set, core dumps off; returns its output.
pub fn run_child(test: &str, scenario: &str) -> Output {
    child::run(CHILD_ENV, test, scenario, &[])
}

/// True under an emulator (the aarch64 cross run under qemu-user).
pub fn emulated() -> bool {
    child::emulated()
}

/// [`run_child`] with extra environment (`None` removes a variable).
pub fn run_child_env(test: &str, scenario: &str, env: &[(&str, Option<&str>)]) -> Output {
    child::run(CHILD_ENV, test, scenario, env)
}

/// The child's stderr as text.
pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Nothing is left parked on any wait list of this thread's hub.
pub fn assert_no_waiters() {
    assert_eq!(gevent::hub::stats().waiters, 0, "every waiter left its list");
}

/// Spawns `n` greenlets that each wait for `r`, then push their index
/// into the trace returned.
pub fn spawn_result_waiters(
    r: &gevent::event::AsyncResult<u32>,
    n: usize,
) -> (Trace<usize>, Vec<gevent::Greenlet<()>>) {
    let trace = Trace::new();
    let gs = (0..n)
        .map(|i| {
            let (r, t) = (r.clone(), trace.clone());
            gevent::spawn(move || {
                r.wait();
                t.push(i);
            })
        })
        .collect();
    (trace, gs)
}

/// Lets every spawned greenlet run until it blocks.
pub fn settle() {
    for _ in 0..3 {
        gevent::yield_now();
    }
}

/// Lets the 100 ms deadlines armed just before pass unseen (the thread
/// sleeps), then yields until the hub has fired them: the timed-out
/// greenlets are due to unwind, queued behind the caller, still listed as
/// waiters.
pub fn fire_passed_deadlines() {
    std::thread::sleep(ms(150));
    while gevent::hub::stats().timers > 0 {
        gevent::yield_now();
    }
}

/// Spawns a greenlet that sleeps `delay`, then runs `f`.
pub fn spawn_after(delay: Duration, f: impl FnOnce() + 'static) -> gevent::Greenlet<()> {
    gevent::spawn(move || {
        gevent::sleep(delay);
        f();
    })
}
