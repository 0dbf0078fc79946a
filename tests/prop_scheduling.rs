//! Property tests of the scheduler: random programs over a few greenlets run
//! twice and must produce the identical trace, and every run must satisfy
//! the runtime's invariants (kills stop a greenlet at its blocking point,
//! joins return after the target's death, steps happen in script order,
//! the hub is empty afterwards). A second property checks the strict
//! round-robin of `sleep(ZERO)` and FIFO spawn order.
//!
//! # Why the traces are deterministic
//! Zero-duration timers (`sleep(ZERO)`, `with_timeout(ZERO, ..)`,
//! `join_timeout(j, ZERO)`) fire at the next pass boundary of the run queue,
//! which depends only on the program. Long timers (30 s) never fire. Timers
//! of 1-2 ms are used by the main greenlet only, and nothing in the program
//! ever waits for main, so in an ideal run every other greenlet is idle (dead
//! or blocked) long before such a deadline. Real time can only matter when
//! the thread is descheduled for a millisecond or more; such a run is
//! detected from the event timestamps (see [`World::tainted`]) and the pair
//! is run again, and if that keeps happening its trace comparison is skipped
//! (the invariants are still checked on every run).

mod prop_common;

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gevent::{Greenlet, GreenletError};
use prop_common::{panic_message, run_property, script_of, OnUnwind, Pairs, LONG, MAIN};
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};
use proptest::test_runner::Config;
/// The sleep that ends the body of a main `with_timeout(1-2 ms)`: the
/// timeout always interrupts it.
const TAIL: Duration = Duration::from_millis(200);

/// 1000 cases unless `PROPTEST_CASES` says otherwise; failures persisted in
/// tests/prop_scheduling.proptest-regressions, next to this file.
fn config() -> Config {
    prop_common::config(1000, file!())
}

// ---------------------------------------------------------------------------
// Programs

/// The duration of a timed operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Limit {
    Zero,
    Long,
    /// 1-2 ms; main greenlet, top level only.
    Ms(u8),
}

impl Limit {
    fn duration(self) -> Duration {
        match self {
            Limit::Zero => Duration::ZERO,
            Limit::Long => LONG,
            Limit::Ms(k) => Duration::from_millis(u64::from(k)),
        }
    }
}

/// One operation of a script. Targets are slot indices.
#[derive(Clone, Debug)]
enum Op {
    /// `sleep(ZERO)`.
    Yield,
    /// Spawn slot `j` unless it was spawned already.
    Spawn(u8),
    Kill(u8),
    KillNowait(u8),
    /// `join`: greenlet `i` only joins `j > i` (main joins anyone), so joins
    /// never form a cycle.
    Join(u8),
    /// Zero: any `j` but itself; Long: as `Join`; Ms: main only.
    JoinTimeout(u8, Limit),
    WithTimeout(Limit, Vec<Op>),
    /// Main only, top level.
    SleepMs(u8),
    /// The last op of a main `WithTimeout(Ms(_))` body: sleeps [`TAIL`].
    SleepTail,
}

impl Op {
    /// Ops in this subtree (pre-order ids run from the op's id to id + size).
    fn size(&self) -> u16 {
        match self {
            Op::WithTimeout(_, body) => 1 + body.iter().map(Op::size).sum::<u16>(),
            _ => 1,
        }
    }
}

#[derive(Clone, Debug)]
struct Program {
    /// The script of each greenlet slot (2..=5 slots).
    scripts: Vec<Vec<Op>>,
    main: Vec<Op>,
}

impl Program {
    fn script(&self, who: u8) -> &[Op] {
        script_of(&self.main, &self.scripts, who)
    }

    fn has_real_timers(&self) -> bool {
        self.main.iter().any(|op| {
            matches!(op, Op::SleepMs(_) | Op::JoinTimeout(_, Limit::Ms(_)) | Op::WithTimeout(Limit::Ms(_), _))
        })
    }
}

/// Ops of greenlet `me` (`None`: main) among `n` slots; scopes nest at most
/// `depth` deep.
fn op_strategy(me: Option<u8>, n: u8, depth: u32) -> BoxedStrategy<Op> {
    let any = 0..n;
    // Targets other than `me`, for `join_timeout(j, ZERO)` (joining oneself panics).
    let others = match me {
        Some(i) => (0..n - 1).prop_map(move |j| if j >= i { j + 1 } else { j }).boxed(),
        None => (0..n).boxed(),
    };
    let joinable = match me {
        Some(i) if i + 1 < n => Some((i + 1..n).boxed()),
        Some(_) => None,
        None => Some((0..n).boxed()),
    };
    let mut arms: Vec<(u32, BoxedStrategy<Op>)> = vec![
        (60, Just(Op::Yield).boxed()),
        (25, any.clone().prop_map(Op::Spawn).boxed()),
        (10, any.clone().prop_map(Op::Kill).boxed()),
        (10, any.prop_map(Op::KillNowait).boxed()),
        (8, others.prop_map(|j| Op::JoinTimeout(j, Limit::Zero)).boxed()),
    ];
    if let Some(j) = joinable {
        arms.push((12, j.clone().prop_map(Op::Join).boxed()));
        arms.push((4, j.prop_map(|j| Op::JoinTimeout(j, Limit::Long)).boxed()));
    }
    if depth > 0 {
        let body = prop::collection::vec(op_strategy(me, n, depth - 1), 0..=3);
        let limit = prop_oneof![Just(Limit::Zero), Just(Limit::Long)];
        arms.push((15, (limit, body).prop_map(|(l, b)| Op::WithTimeout(l, b)).boxed()));
    }
    Union::new_weighted(arms).boxed()
}

/// Main's top-level ops: the greenlet ops plus, rarely, 1-2 ms timers.
fn main_op_strategy(n: u8) -> BoxedStrategy<Op> {
    // GEVENT_PROP_NO_REAL_TIME (set for the qemu run, where a 1 ms deadline
    // is shorter than emulated scheduling work) keeps main off real time.
    if std::env::var_os("GEVENT_PROP_NO_REAL_TIME").is_some() {
        return op_strategy(None, n, 2);
    }
    let flat = prop::collection::vec(op_strategy(None, n, 0), 0..=3).prop_map(|mut b| {
        b.push(Op::SleepTail);
        b
    });
    Union::new_weighted(vec![
        (400, op_strategy(None, n, 2)),
        (4, (1..=2u8).prop_map(Op::SleepMs).boxed()),
        (3, (0..n).prop_map(|j| Op::JoinTimeout(j, Limit::Ms(1))).boxed()),
        (3, (1..=2u8, flat).prop_map(|(k, b)| Op::WithTimeout(Limit::Ms(k), b)).boxed()),
    ])
    .boxed()
}

fn program_strategy() -> impl Strategy<Value = Program> {
    (2..=5u8).prop_flat_map(|n| {
        let scripts: Vec<_> = (0..n).map(|i| prop::collection::vec(op_strategy(Some(i), n, 2), 0..=6)).collect();
        let main = prop::collection::vec(main_op_strategy(n), 0..=7).prop_map(|ops| {
            let mut all = vec![Op::Spawn(0)];
            all.extend(ops);
            all
        });
        (scripts, main).prop_map(|(scripts, main)| Program { scripts, main })
    })
}

// ---------------------------------------------------------------------------
// Running a program

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ev {
    /// `who` spawned slot `j`.
    Spawned(u8, u8),
    Started(u8),
    /// `who` begins op `id` (pre-order number in its script).
    Op(u8, u16),
    /// Op `id` returned normally (not for joins and scopes).
    Done(u8, u16),
    /// A join op `id` of `who` returned this (not recorded for an unspawned target).
    Joined(u8, u16, bool),
    ScopeOk(u8, u16),
    TimedOut(u8, u16),
    Finished(u8),
    /// Recorded by a drop guard while the greenlet unwinds.
    Killed(u8),
}

impl Ev {
    fn who(self) -> u8 {
        match self {
            Ev::Spawned(w, _)
            | Ev::Started(w)
            | Ev::Op(w, _)
            | Ev::Done(w, _)
            | Ev::Joined(w, _, _)
            | Ev::ScopeOk(w, _)
            | Ev::TimedOut(w, _)
            | Ev::Finished(w)
            | Ev::Killed(w) => w,
        }
    }
}

/// Everything one run shares between its greenlets.
struct World {
    prog: Rc<Program>,
    trace: RefCell<Vec<Ev>>,
    stamps: RefCell<Vec<Instant>>,
    handles: RefCell<Vec<Option<Greenlet<()>>>>,
    /// Greenlet id per slot (0: not spawned) and of main, to check that
    /// each event is recorded by the greenlet it names.
    ids: RefCell<Vec<u64>>,
    main_id: u64,
    /// (earliest possible deadline of a 1-2 ms timer of main, index of the
    /// event recorded when main got past it).
    windows: RefCell<Vec<(Instant, usize)>>,
    /// Set when a 1-2 ms timer of main resolved in a way only a
    /// descheduled thread can produce.
    odd_timer: Cell<bool>,
    /// Problems noticed while running (a drop guard must not panic).
    violations: RefCell<Vec<String>>,
}

impl World {
    fn record(&self, ev: Ev) -> usize {
        let who = ev.who();
        let expected = if who == MAIN { self.main_id } else { self.ids.borrow()[usize::from(who)] };
        let current = gevent::getcurrent().id();
        if current != expected {
            self.violations.borrow_mut().push(format!("{ev:?} recorded by greenlet id {current}, not {expected}"));
        }
        let mut trace = self.trace.borrow_mut();
        trace.push(ev);
        self.stamps.borrow_mut().push(Instant::now());
        trace.len() - 1
    }

    fn handle(&self, j: u8) -> Option<Greenlet<()>> {
        self.handles.borrow()[usize::from(j)].clone()
    }

    /// True if real time may have shaped this run: some greenlet was still
    /// active (recorded an event) at or after the deadline of one of main's
    /// 1-2 ms timers and before main got past that timer, or the timer
    /// resolved otherwise than it does when everybody else is idle.
    fn tainted(&self) -> bool {
        let stamps = self.stamps.borrow();
        self.odd_timer.get()
            || self.windows.borrow().iter().any(|&(deadline, resolved)| stamps[resolved - 1] >= deadline)
    }
}

fn spawn_slot(w: &Rc<World>, by: u8, j: u8) {
    if w.handle(j).is_some() {
        return;
    }
    let w2 = w.clone();
    let g = gevent::spawn(move || {
        // Records `Killed(j)` if the greenlet unwinds out of its root.
        let w3 = w2.clone();
        let _guard = OnUnwind(move || {
            w3.record(Ev::Killed(j));
        });
        w2.record(Ev::Started(j));
        let prog = w2.prog.clone();
        exec(&w2, j, prog.script(j), &mut 0);
        w2.record(Ev::Finished(j));
    });
    w.ids.borrow_mut()[usize::from(j)] = g.id();
    w.handles.borrow_mut()[usize::from(j)] = Some(g);
    w.record(Ev::Spawned(by, j));
}

/// Runs `ops` as greenlet `who`; `counter` is the pre-order id of the next op.
fn exec(w: &Rc<World>, who: u8, ops: &[Op], counter: &mut u16) {
    for op in ops {
        let id = *counter;
        *counter += 1;
        w.record(Ev::Op(who, id));
        match op {
            Op::Yield => {
                gevent::sleep(Duration::ZERO);
                w.record(Ev::Done(who, id));
            }
            Op::Spawn(j) => {
                spawn_slot(w, who, *j);
                w.record(Ev::Done(who, id));
            }
            Op::Kill(j) => {
                if let Some(h) = w.handle(*j) {
                    h.kill();
                }
                w.record(Ev::Done(who, id));
            }
            Op::KillNowait(j) => {
                if let Some(h) = w.handle(*j) {
                    h.kill_nowait();
                }
                w.record(Ev::Done(who, id));
            }
            Op::Join(j) => match w.handle(*j) {
                Some(h) => {
                    h.join();
                    w.record(Ev::Joined(who, id, true));
                }
                None => {
                    w.record(Ev::Done(who, id));
                }
            },
            Op::JoinTimeout(j, limit) => match w.handle(*j) {
                Some(h) => {
                    let earliest = Instant::now() + limit.duration();
                    let dead = h.join_timeout(limit.duration());
                    let at = w.record(Ev::Joined(who, id, dead));
                    if let Limit::Ms(_) = limit {
                        // Everybody else finishes without main's help, so in
                        // an idle-at-deadline run the join always succeeds.
                        if !dead {
                            w.odd_timer.set(true);
                        }
                        w.windows.borrow_mut().push((earliest, at));
                    }
                }
                None => {
                    w.record(Ev::Done(who, id));
                }
            },
            Op::WithTimeout(limit, body) => {
                let end = id + op.size();
                let earliest = Instant::now() + limit.duration();
                let r = gevent::with_timeout(limit.duration(), || exec(w, who, body, counter));
                *counter = end;
                let last_own = w.trace.borrow().iter().rev().find(|e| e.who() == who).copied();
                let at = match r {
                    Ok(()) => w.record(Ev::ScopeOk(who, id)),
                    Err(gevent::Timeout) => w.record(Ev::TimedOut(who, id)),
                };
                if let Limit::Ms(_) = limit {
                    // Ideally the body runs in no time and the timeout hits the tail sleep.
                    if r.is_ok() || last_own != Some(Ev::Op(who, end - 1)) {
                        w.odd_timer.set(true);
                    }
                    w.windows.borrow_mut().push((earliest, at));
                }
            }
            Op::SleepMs(k) => {
                let earliest = Instant::now() + Duration::from_millis(u64::from(*k));
                gevent::sleep(Duration::from_millis(u64::from(*k)));
                let at = w.record(Ev::Done(who, id));
                w.windows.borrow_mut().push((earliest, at));
            }
            Op::SleepTail => {
                gevent::sleep(TAIL);
                w.record(Ev::Done(who, id));
            }
        }
    }
}

/// The result of one run.
#[derive(Debug)]
struct Outcome {
    trace: Vec<Ev>,
    tainted: bool,
    /// Per slot: None if never spawned, else its `exception()`.
    fates: Vec<Option<Option<GreenletError>>>,
}

fn hub_is_idle() -> Result<(), String> {
    let s = gevent::hub::stats();
    if s.ready == 0 && s.timers == 0 && s.greenlets == 1 {
        Ok(())
    } else {
        Err(format!("hub not idle: {s:?}"))
    }
}

/// Runs `prog` once on this thread and checks the invariants.
fn run(prog: &Rc<Program>) -> Result<Outcome, String> {
    prop_common::start_clean();
    hub_is_idle().map_err(|e| format!("before the run: {e}"))?;
    let n = prog.scripts.len();
    let w = Rc::new(World {
        prog: prog.clone(),
        trace: RefCell::new(Vec::new()),
        stamps: RefCell::new(Vec::new()),
        handles: RefCell::new(vec![None; n]),
        ids: RefCell::new(vec![0; n]),
        main_id: gevent::getcurrent().id(),
        windows: RefCell::new(Vec::new()),
        odd_timer: Cell::new(false),
        violations: RefCell::new(Vec::new()),
    });
    let body = panic::catch_unwind(AssertUnwindSafe(|| {
        exec(&w, MAIN, &prog.main, &mut 0);
        // Join every greenlet spawned so far, until none is left alive.
        loop {
            let alive = w.handles.borrow().iter().flatten().find(|h| !h.dead()).cloned();
            match alive {
                Some(h) => h.join(),
                None => break,
            }
        }
    }));
    if let Err(payload) = body {
        // Leave a clean hub for the next case, then report.
        let handles: Vec<_> = w.handles.borrow().iter().flatten().cloned().collect();
        gevent::killall(&handles);
        return Err(format!("main panicked: {}", panic_message(&*payload)));
    }
    let idle = hub_is_idle();
    let fates = w.handles.borrow().iter().map(|h| h.as_ref().map(|h| h.exception())).collect();
    let out = Outcome { trace: w.trace.borrow().clone(), tainted: w.tainted(), fates };
    if let Some(v) = w.violations.borrow().first() {
        return Err(v.clone());
    }
    idle.map_err(|e| format!("after the run: {e}"))?;
    check(prog, &out, &w.handles.borrow())?;
    Ok(out)
}

// ---------------------------------------------------------------------------
// Checking a trace

/// A script flattened in pre-order: each op with the id after its subtree.
fn flatten<'a>(ops: &'a [Op], out: &mut Vec<(&'a Op, u16)>) {
    for op in ops {
        let id = out.len() as u16;
        out.push((op, id + op.size()));
        if let Op::WithTimeout(_, body) = op {
            flatten(body, out);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    Unspawned,
    /// Spawned, not started yet.
    Queued,
    Running,
    Dead,
}

/// Per-greenlet (slots, then main) checking state.
struct Track<'a> {
    flat: Vec<(&'a Op, u16)>,
    /// Next op id expected.
    next: u16,
    /// Open `with_timeout` scopes (their op ids).
    scopes: Vec<u16>,
    /// The op started last and not finished yet.
    current: Option<u16>,
    life: Life,
    /// A kill was issued while it was alive: it may only record `Killed` now.
    doomed: bool,
    /// It died through a kill (before or after it started).
    killed: bool,
    /// For `join_timeout(_, ZERO)`: whether the target was dead when the op began.
    zero_join_expect: bool,
}

fn check(prog: &Program, out: &Outcome, handles: &[Option<Greenlet<()>>]) -> Result<(), String> {
    let n = prog.scripts.len();
    let mut tracks: Vec<Track> = (0..=n)
        .map(|k| {
            let who = if k == n { MAIN } else { k as u8 };
            let mut flat = Vec::new();
            flatten(prog.script(who), &mut flat);
            Track {
                flat,
                next: 0,
                scopes: Vec::new(),
                current: None,
                life: if who == MAIN { Life::Running } else { Life::Unspawned },
                doomed: false,
                killed: false,
                zero_join_expect: false,
            }
        })
        .collect();
    let ix = |who: u8| if who == MAIN { n } else { usize::from(who) };

    for (pos, &ev) in out.trace.iter().enumerate() {
        let fail = |what: &str| Err(format!("event #{pos} {ev:?}: {what}"));
        let me = ix(ev.who());
        if tracks[me].life != Life::Running && !matches!(ev, Ev::Started(_)) {
            return fail("recorded by a greenlet that is not running");
        }
        if tracks[me].doomed && !matches!(ev, Ev::Killed(_)) {
            return fail("recorded after the greenlet was killed");
        }
        match ev {
            Ev::Spawned(_, j) => {
                let t = &mut tracks[usize::from(j)];
                if t.life != Life::Unspawned {
                    return fail("slot spawned twice");
                }
                t.life = Life::Queued;
            }
            Ev::Started(_) => {
                let t = &mut tracks[me];
                if t.life != Life::Queued {
                    return fail("started while not queued (killed before it ran, or twice)");
                }
                t.life = Life::Running;
            }
            Ev::Op(_, id) => {
                let t = &tracks[me];
                if id != t.next || usize::from(id) >= t.flat.len() {
                    return fail(&format!("out of order: expected op {}", t.next));
                }
                if let Some(&open) = t.scopes.last() {
                    if id >= t.flat[usize::from(open)].1 {
                        return fail("op after its scope's body without ScopeOk");
                    }
                }
                let (op, _) = t.flat[usize::from(id)];
                let t = &mut tracks[me];
                t.next = id + 1;
                t.current = Some(id);
                match op {
                    Op::WithTimeout(..) => {
                        t.scopes.push(id);
                        t.current = None;
                    }
                    Op::Kill(j) | Op::KillNowait(j) => {
                        let target = &mut tracks[usize::from(*j)];
                        match target.life {
                            Life::Queued => {
                                target.life = Life::Dead;
                                target.killed = true;
                            }
                            Life::Running => {
                                target.doomed = true;
                                target.killed = true;
                            }
                            Life::Unspawned | Life::Dead => {}
                        }
                    }
                    Op::JoinTimeout(j, Limit::Zero) => {
                        let dead = tracks[usize::from(*j)].life == Life::Dead;
                        tracks[me].zero_join_expect = dead;
                    }
                    _ => {}
                }
            }
            Ev::Done(_, id) | Ev::Joined(_, id, _) => {
                if tracks[me].current != Some(id) {
                    return fail("completes an op that is not running");
                }
                tracks[me].current = None;
                let (op, _) = tracks[me].flat[usize::from(id)];
                let target = match op {
                    Op::Kill(j) | Op::Join(j) | Op::JoinTimeout(j, _) => Some(tracks[usize::from(*j)].life),
                    _ => None,
                };
                match (op, ev, target) {
                    (Op::Join(_) | Op::JoinTimeout(..), Ev::Joined(_, _, r), Some(life)) => {
                        if r != (life == Life::Dead) {
                            return fail(&format!("join returned {r} while the target is {life:?}"));
                        }
                        let expected = match op {
                            Op::Join(_) | Op::JoinTimeout(_, Limit::Long) => Some(true),
                            Op::JoinTimeout(_, Limit::Zero) => Some(tracks[me].zero_join_expect),
                            _ => None,
                        };
                        if expected.is_some_and(|e| e != r) {
                            return fail("wrong join result");
                        }
                    }
                    (Op::Join(_) | Op::JoinTimeout(..), Ev::Done(..), Some(life)) if life != Life::Unspawned => {
                        return fail("join skipped although the target exists");
                    }
                    (Op::Kill(_), _, Some(life)) if !matches!(life, Life::Dead | Life::Unspawned) => {
                        return fail("kill returned before the target died");
                    }
                    (_, Ev::Joined(..), _) if !matches!(op, Op::Join(_) | Op::JoinTimeout(..)) => {
                        return fail("Joined for a non-join op");
                    }
                    _ => {}
                }
            }
            Ev::ScopeOk(_, id) | Ev::TimedOut(_, id) => {
                let t = &mut tracks[me];
                let Some(depth) = t.scopes.iter().rposition(|&s| s == id) else {
                    return fail("scope not open");
                };
                let (op, end) = t.flat[usize::from(id)];
                if let Ev::ScopeOk(..) = ev {
                    if depth + 1 != t.scopes.len() || t.next != end || t.current.is_some() {
                        return fail("scope ended before its body");
                    }
                } else if matches!(op, Op::WithTimeout(Limit::Long, _)) {
                    return fail("a 30 s timeout fired");
                }
                t.scopes.truncate(depth);
                t.next = end;
                t.current = None;
            }
            Ev::Finished(_) => {
                let t = &mut tracks[me];
                if !t.scopes.is_empty() || usize::from(t.next) != t.flat.len() || t.current.is_some() {
                    return fail("finished before the end of its script");
                }
                t.life = Life::Dead;
            }
            Ev::Killed(_) => {
                let t = &mut tracks[me];
                if !t.doomed {
                    return fail("unwound although nobody killed it");
                }
                t.doomed = false;
                t.life = Life::Dead;
            }
        }
    }
    for (j, t) in tracks.iter().take(n).enumerate() {
        let fate = &out.fates[j];
        let ok = match (t.life, fate) {
            (Life::Unspawned, None) => true,
            (Life::Dead, Some(e)) => {
                let h = handles[j].as_ref().expect("spawned");
                h.dead() && *e == if t.killed { Some(GreenletError::Killed) } else { None }
            }
            _ => false,
        };
        if !ok {
            return Err(format!("slot {j} ends {:?} (killed: {}) with exception {fate:?}", t.life, t.killed));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Properties

static PAIRS: Pairs = Pairs::new();
/// Coverage: events, kills that unwound a started greenlet, timeouts fired.
static EVENTS: AtomicUsize = AtomicUsize::new(0);
static KILLS: AtomicUsize = AtomicUsize::new(0);
static TIMEOUTS: AtomicUsize = AtomicUsize::new(0);

fn deterministic_and_invariant(prog: Program) -> Result<(), TestCaseError> {
    let prog = Rc::new(prog);
    PAIRS.run_pair(
        prog.has_real_timers(),
        || run(&prog),
        |o| o.tainted,
        |a, b| {
            EVENTS.fetch_add(a.trace.len(), Ordering::Relaxed);
            KILLS.fetch_add(a.trace.iter().filter(|e| matches!(e, Ev::Killed(_))).count(), Ordering::Relaxed);
            TIMEOUTS.fetch_add(a.trace.iter().filter(|e| matches!(e, Ev::TimedOut(..))).count(), Ordering::Relaxed);
            prop_assert_eq!(a.trace, b.trace, "the two runs diverge");
            prop_assert_eq!(a.fates, b.fates);
            Ok(())
        },
    )
}

#[test]
fn random_programs_are_deterministic() {
    PAIRS.check_property("random programs", config(), &program_strategy(), deterministic_and_invariant, || {
        let load = |c: &AtomicUsize| c.load(Ordering::Relaxed);
        format!("{} events, {} kills unwound, {} timeouts fired", load(&EVENTS), load(&KILLS), load(&TIMEOUTS))
    });
}

/// `sleep(ZERO)` among `n` greenlets (and optionally main) gives the strict
/// interleaving 0, 1, .., n-1, 0, 1, ..; spawned greenlets start in spawn order.
fn round_robin(n: usize, m: usize, main_too: bool) -> Result<(), TestCaseError> {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Rr {
        Start(usize),
        Step(usize, usize),
        End(usize),
    }
    hub_is_idle().map_err(TestCaseError::fail)?;
    let trace = Rc::new(RefCell::new(Vec::new()));
    let gs: Vec<Greenlet<()>> = (0..n)
        .map(|i| {
            let trace = trace.clone();
            gevent::spawn(move || {
                trace.borrow_mut().push(Rr::Start(i));
                for r in 0..m {
                    trace.borrow_mut().push(Rr::Step(i, r));
                    gevent::sleep(Duration::ZERO);
                }
                trace.borrow_mut().push(Rr::End(i));
            })
        })
        .collect();
    prop_assert!(trace.borrow().is_empty(), "a spawned greenlet ran before the spawner yielded");
    if main_too {
        for r in 0..m {
            trace.borrow_mut().push(Rr::Step(n, r));
            gevent::sleep(Duration::ZERO);
        }
    }
    gevent::joinall(&gs);
    let mut expected = Vec::new();
    for r in 0..=m {
        if main_too && r < m {
            expected.push(Rr::Step(n, r));
        }
        for i in 0..n {
            if r == 0 {
                expected.push(Rr::Start(i));
            }
            expected.push(if r < m { Rr::Step(i, r) } else { Rr::End(i) });
        }
    }
    prop_assert_eq!(&*trace.borrow(), &expected);
    hub_is_idle().map_err(TestCaseError::fail)?;
    Ok(())
}

#[test]
fn yield_round_robin_is_strict_and_spawn_is_fifo() {
    run_property(config(), &(1..=8usize, 0..=10usize, any::<bool>()), |(n, m, main_too)| round_robin(n, m, main_too));
}

// ---------------------------------------------------------------------------
// Plain repros

/// Once every greenlet is dead and nothing can run, `stats().ready` is 0,
/// even while the run-queue entry of a greenlet killed before it ran is
/// still there (it is reaped when the queue reaches it).
#[test]
fn stats_ready_ignores_a_greenlet_killed_before_it_ran() {
    let a = gevent::spawn(|| {
        // Queued behind main, which yielded first.
        let x = gevent::spawn(|| ());
        x.kill_nowait();
        assert!(x.dead());
    });
    gevent::sleep(Duration::ZERO);
    assert!(a.dead());
    let s = gevent::hub::stats();
    assert_eq!((s.greenlets, s.ready), (1, 0), "{s:?}");
}

/// Two nested `with_timeout` scopes whose deadlines both pass before the
/// greenlet next blocks: the inner one (earlier deadline) fires first and its
/// scope catches it; the outer one must still interrupt the outer body at its
/// next blocking point (gevent throws both, in turn). Instead the outer
/// interrupt is dropped ("the first timeout wins") while its timer is gone,
/// so the outer body runs on past its deadline and the scope returns `Ok`.
#[test]
fn nested_timeouts_due_together_both_fire() {
    let t = Instant::now();
    let outer = gevent::with_timeout(Duration::from_millis(5), || {
        let inner = gevent::with_timeout(Duration::ZERO, || {
            // Both deadlines pass before the next switch.
            std::thread::sleep(Duration::from_millis(10));
            gevent::sleep(Duration::ZERO);
        });
        assert_eq!(inner, Err(gevent::Timeout));
        gevent::sleep(Duration::from_millis(300));
    });
    assert_eq!(outer, Err(gevent::Timeout), "outer scope ran {:?}", t.elapsed());
}

/// Timers are checked at every pass boundary, so a `sleep(ZERO)` loop never
/// starves them. Reaping a greenlet killed before it ran, when it is the last
/// entry of the current pass, must not break the pass count.
#[test]
fn zero_timeout_fires_in_a_yield_loop_after_a_zombie_is_reaped() {
    let z: Rc<RefCell<Option<Greenlet<()>>>> = Rc::new(RefCell::new(None));
    let z2 = z.clone();
    let a = gevent::spawn(move || {
        // Queue: [z]; kill it before it runs, then yield: the pass's last
        // entry is the zombie, the next one is us.
        z2.borrow().as_ref().expect("spawned").kill_nowait();
        gevent::sleep(Duration::ZERO);
        gevent::with_timeout(Duration::ZERO, || {
            for _ in 0..1000 {
                gevent::sleep(Duration::ZERO);
            }
        })
    });
    *z.borrow_mut() = Some(gevent::spawn(|| ()));
    assert_eq!(a.get(), Ok(Err(gevent::Timeout)));
}

/// A timer that is due must fire at the next pass boundary, whatever other
/// timers are armed. Timers are ordered by the cached loop time but due by
/// the real time: a timer armed while the cached loop time is stale (no pass
/// boundary for a while) sorts before a timer armed later with a fresh loop
/// time, and while it is not due yet it hides the due one behind it.
#[test]
fn due_zero_timeout_is_not_held_back_by_a_timer_armed_with_a_stale_loop_time() {
    // Arming caches the loop time until the next pass boundary.
    let _ = gevent::with_timeout(LONG, || ());
    std::thread::sleep(Duration::from_millis(30));
    let g = gevent::spawn(|| {
        let mut yields = 0u32;
        let r = gevent::with_timeout(Duration::ZERO, || {
            while yields < 100_000_000 {
                gevent::sleep(Duration::ZERO);
                yields += 1;
            }
        });
        (r, yields)
    });
    // Ordered at (30 ms ago + 20 ms), due 20 ms from now.
    gevent::sleep(Duration::from_millis(20));
    let (r, yields) = g.get().expect("g returns");
    assert_eq!(r, Err(gevent::Timeout));
    assert!(yields < 10, "the zero timeout fired after {yields} yields");
}
