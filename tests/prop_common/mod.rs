//! Helpers shared by the `prop_*` property tests: the proptest
//! configuration, running each program twice and comparing the traces (with
//! re-runs after a descheduling), and the summary check of a property.
#![allow(dead_code)]

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

/// `who` of the main greenlet in events.
pub const MAIN: u8 = u8::MAX;
/// A timeout that never fires during a test.
pub const LONG: Duration = Duration::from_secs(30);

/// Ok once the hub is idle at a program's end: nothing ready, no timer, no
/// waiter, only the main greenlet.
/// Yields once before a run: the entry a greenlet killed before it ever
/// ran leaves in the run queue (reaped when it comes up; `hub::stats` does
/// not count it) goes, and the run starts from an empty queue at a pass
/// boundary, as every other run does. Left in place, it would count in the
/// next run's first pass and shift every later pass boundary, and with
/// them the moments timers fire: two runs of one program diverged.
pub fn start_clean() {
    gevent::sleep(std::time::Duration::ZERO);
}

pub fn hub_is_idle() -> Result<(), String> {
    let s = gevent::hub::stats();
    if s.ready == 0 && s.timers == 0 && s.waiters == 0 && s.greenlets == 1 {
        Ok(())
    } else {
        Err(format!("hub not idle: {s:?}"))
    }
}

/// `PROPTEST_CASES`, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// `cases(default)` cases; failures persisted in
/// `<source_file minus .rs>.proptest-regressions`, next to the test file.
pub fn config(default: u32, source_file: &'static str) -> Config {
    Config {
        cases: cases(default),
        source_file: Some(source_file),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..Config::default()
    }
}

/// The script of `who` (`MAIN` or a slot index).
pub fn script_of<'a, Op>(main: &'a [Op], scripts: &'a [Vec<Op>], who: u8) -> &'a [Op] {
    if who == MAIN {
        main
    } else {
        &scripts[usize::from(who)]
    }
}

/// The text of a panic payload (`String` or `&str`), else empty.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// What became of the run pairs of one property.
pub struct Pairs {
    compared: AtomicUsize,
    retried: AtomicUsize,
    skipped: AtomicUsize,
    timed: AtomicUsize,
}

impl Pairs {
    pub const fn new() -> Pairs {
        Pairs {
            compared: AtomicUsize::new(0),
            retried: AtomicUsize::new(0),
            skipped: AtomicUsize::new(0),
            timed: AtomicUsize::new(0),
        }
    }

    /// Runs one program twice (`run`) and hands both outcomes to `compare`;
    /// a pair in which either run is `tainted` (maybe shaped by wall time)
    /// is run again, up to four times in all, then left uncompared.
    /// `timed`: the program has real-time (1-2 ms) timers.
    pub fn run_pair<O>(
        &self,
        timed: bool,
        mut run: impl FnMut() -> Result<O, String>,
        tainted: impl Fn(&O) -> bool,
        compare: impl FnOnce(O, O) -> Result<(), TestCaseError>,
    ) -> Result<(), TestCaseError> {
        if timed {
            self.timed.fetch_add(1, Ordering::Relaxed);
        }
        for _ in 0..4 {
            // A timed run during which the thread was descheduled is tainted
            // too: a stall between two timers armed in one pass can order
            // the later one by the stale loop time, where it can hide a
            // zero timeout behind it without any event showing the stall.
            let switches = involuntary_switches();
            let a = run().map_err(|e| TestCaseError::fail(format!("run 1: {e}")))?;
            let b = run().map_err(|e| TestCaseError::fail(format!("run 2: {e}")))?;
            let stalled = timed && involuntary_switches() != switches;
            if stalled || tainted(&a) || tainted(&b) {
                self.retried.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.compared.fetch_add(1, Ordering::Relaxed);
            return compare(a, b);
        }
        self.skipped.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// (compared, retried, skipped, timed) so far.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let load = |c: &AtomicUsize| c.load(Ordering::Relaxed);
        (load(&self.compared), load(&self.retried), load(&self.skipped), load(&self.timed))
    }

    /// Runs the property `test` (which runs its pairs through
    /// [`Pairs::run_pair`]) over `strategy` under `config`; then reports
    /// the pairs, with the `coverage` of the compared runs, on stderr under
    /// `name`, and checks that every case was compared or, having real-time
    /// timers, skipped.
    pub fn check_property<S: Strategy>(
        &self,
        name: &str,
        config: Config,
        strategy: &S,
        test: impl Fn(S::Value) -> Result<(), TestCaseError>,
        coverage: impl FnOnce() -> String,
    ) {
        let started = Instant::now();
        let cases = config.cases as usize;
        run_property(config, strategy, test);
        let (compared, retried, skipped, timed) = self.counts();
        eprintln!(
            "{name}: {cases} cases ({timed} with 1-2 ms timers) in {:?}; {compared} compared ({}), {retried} \
             pairs re-run after a descheduling, {skipped} not compared",
            started.elapsed(),
            coverage(),
        );
        // Programs without 1-2 ms timers are never skipped; on a loaded machine
        // (or under qemu) many of the timed ones may be, which is no failure.
        assert!(compared + skipped >= cases && compared >= cases - timed, "cases went unchecked");
    }
}

/// Runs the property `test` over `strategy` under `config`; panics with the
/// failure (and its minimal case) if it fails.
pub fn run_property<S: Strategy>(config: Config, strategy: &S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(strategy, test) {
        panic!("{e}");
    }
}

/// Calls its closure when dropped during an unwind: in a greenlet's root, a
/// record of the greenlet being killed.
pub struct OnUnwind<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for OnUnwind<F> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            (self.0)();
        }
    }
}

/// How many times the kernel took the CPU from this thread (it was ready to
/// run) so far.
fn involuntary_switches() -> i64 {
    // SAFETY: an all-zero `rusage` is a valid value; getrusage writes into it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a live, writable rusage.
    let r = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    assert_eq!(r, 0, "getrusage(RUSAGE_THREAD)");
    u.ru_nivcsw as i64
}
