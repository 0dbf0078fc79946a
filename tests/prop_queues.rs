//! Property test of `LifoQueue`, `PriorityQueue`, `JoinableQueue` (bounded
//! and unbounded) and `Channel`: random programs over 2..=5 greenlets (plus
//! main) mixing put / put_timeout / put_nowait / get / get_timeout /
//! get_nowait / peek / peek_timeout / peek_nowait / close (the peeks and
//! close not on a Channel), `task_done` / `join` (JoinableQueue), kills
//! (`kill` and `kill_nowait`) of random greenlets at random points and
//! `sleep(ZERO)` yields. Timeouts are zero (they fire at the next pass
//! boundary, a deterministic point) or 30 s (never fire), so every program
//! runs deterministically: each runs twice and the traces must be identical.
//!
//! Every recorded event carries a snapshot of the queue (`len`, `getters`,
//! `putters`, `unfinished`). The trace is replayed against a model of the
//! queue's documented semantics (src/queue/core.rs): a store of items, a
//! FIFO of listed getters (peekers among them) and putters, the getters
//! handed (promised) an item, the getters and peekers woken without one,
//! the putters whose item was moved in. The model is nondeterministic only
//! where the program cannot observe the queue: a getter woken by `close`,
//! or a peeker woken by an item or by `close`, that finds nothing when it
//! runs re-waits without recording anything, so the model keeps every
//! state consistent with what was observed. After every event:
//!
//! - the model predicts every result: a get takes the store's top *at the
//!   moment it runs* (LIFO: the newest item; PriorityQueue: the smallest;
//!   JoinableQueue/Channel: FIFO), so a woken getter takes what is on top
//!   when it resumes, not what was put when it was woken; `peek_nowait`
//!   shows the queue's front (an item handed to a getter that has not run
//!   yet included); a peek that waits does so in line with the getters (it
//!   counts in `getters`): an item offered wakes every peeker ahead of the
//!   first getter that takes it, those behind wait on; a woken peeker
//!   (by an item or by `close`) looks when it runs, and finding nothing
//!   (the item was taken before it ran) waits on at the back of the line,
//!   as src/queue/core.rs does (gevent wakes a peeker only with the item
//!   there, so there it keeps its place); killed or timed out, it takes
//!   nothing; `_nowait` calls fail exactly when the model says;
//!   puts complete at once when there is room (a Channel's, handing the
//!   item to a waiting getter, then yields: it resumes after the getter),
//!   a waiting putter's item moves in as soon as a slot frees;
//! - the snapshot equals the model's `len`, `getters`, `putters`, and
//!   (JoinableQueue) `unfinished == items placed - task_done calls`;
//! - `join` returns only with `unfinished() == 0`; a Channel stores an item
//!   only after a getter handed it was killed before taking it.
//!
//! Whenever every greenlet is blocked: nobody waits for a partner that is
//! there (a getter or peeker with items queued, a putter with room, a
//! Channel getter and putter both waiting, a joiner with no unfinished
//! task), each blocked greenlet is on the queue's list. At the end: every
//! item put is got exactly once (peeks take nothing, and show only items
//! put), or left in the queue, or was given back in `Full`, or went with a
//! putter killed before its item entered; each killed greenlet ends
//! `Killed`, the hub is idle.

mod prop_common;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gevent::queue::{Channel, Empty, Full, JoinableQueue, LifoQueue, PriorityQueue};
use gevent::{Greenlet, GreenletError};
use prop_common::hub_is_idle;
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestRunner};

const MAIN: u8 = u8::MAX;
const LONG: Duration = Duration::from_secs(30);
const STUCK: Duration = Duration::from_secs(20);
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// (priority, unique id): the id tells items apart, the priority orders a
/// PriorityQueue (ties broken by id, as gevent's tuples).
type Item = (u8, u32);

// ---------------------------------------------------------------------------
// Programs

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Lifo,
    Prio,
    Joinable,
    Channel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Limit {
    /// `put` / `get`: slots only.
    Block,
    /// `_nowait`.
    Nowait,
    /// `_timeout(ZERO)`.
    Zero,
    /// `_timeout(30 s)`: never fires; slots only.
    Long,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Yield,
    /// With the item's priority.
    Put(Limit, u8),
    Get(Limit),
    /// `peek_nowait` / `peek()` / `peek_timeout(ZERO)` / `peek_timeout(30 s)`.
    Peek(Limit),
    Close,
    /// `task_done()` if `unfinished() > 0` (else it would panic).
    TaskDone,
    /// `join()`; slots only.
    Join,
    Kill(u8),
    KillNowait(u8),
}

#[derive(Clone, Debug)]
struct Program {
    kind: Kind,
    /// `None`: unbounded (ignored for a Channel).
    bound: Option<u8>,
    scripts: Vec<Vec<Op>>,
    /// Never blocks without a deadline.
    main: Vec<Op>,
}

impl Program {
    fn maxsize(&self) -> Option<usize> {
        if self.kind == Kind::Channel {
            Some(0)
        } else {
            self.bound.map(usize::from)
        }
    }

    fn script(&self, who: u8) -> &[Op] {
        if who == MAIN {
            &self.main
        } else {
            &self.scripts[usize::from(who)]
        }
    }
}

fn limit_strategy(main: bool) -> BoxedStrategy<Limit> {
    if main {
        prop_oneof![Just(Limit::Nowait), Just(Limit::Zero)].boxed()
    } else {
        prop_oneof![40 => Just(Limit::Block), 20 => Just(Limit::Nowait), 25 => Just(Limit::Zero), 15 => Just(Limit::Long)]
            .boxed()
    }
}

fn op_strategy(kind: Kind, slots: u8, me: Option<u8>) -> BoxedStrategy<Op> {
    let main = me.is_none();
    let others = match me {
        Some(i) => (0..slots - 1).prop_map(move |j| if j >= i { j + 1 } else { j }).boxed(),
        None => (0..slots).boxed(),
    };
    let prio = if kind == Kind::Prio { (0..4u8).boxed() } else { Just(0u8).boxed() };
    let mut arms: Vec<(u32, BoxedStrategy<Op>)> = vec![
        (15, Just(Op::Yield).boxed()),
        (26, (limit_strategy(main), prio).prop_map(|(l, p)| Op::Put(l, p)).boxed()),
        (26, limit_strategy(main).prop_map(Op::Get).boxed()),
        (5, others.clone().prop_map(Op::Kill).boxed()),
        (5, others.prop_map(Op::KillNowait).boxed()),
    ];
    if kind != Kind::Channel {
        arms.push((12, limit_strategy(main).prop_map(Op::Peek).boxed()));
        arms.push((3, Just(Op::Close).boxed()));
    }
    if kind == Kind::Joinable {
        arms.push((10, Just(Op::TaskDone).boxed()));
        if !main {
            arms.push((5, Just(Op::Join).boxed()));
        }
    }
    Union::new_weighted(arms).boxed()
}

fn program_strategy() -> impl Strategy<Value = Program> {
    let kind = prop_oneof![Just(Kind::Lifo), Just(Kind::Prio), Just(Kind::Joinable), Just(Kind::Channel)];
    let bound = prop_oneof![4 => Just(None), 3 => Just(Some(1u8)), 2 => Just(Some(2)), 1 => Just(Some(3))];
    // PROPQ_OPS: the longest slot script (10 unless set).
    let ops: usize = std::env::var("PROPQ_OPS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    (kind, bound, 2..=5u8).prop_flat_map(move |(kind, bound, slots)| {
        let scripts: Vec<_> =
            (0..slots).map(|i| prop::collection::vec(op_strategy(kind, slots, Some(i)), 0..=ops)).collect();
        let main = prop::collection::vec(op_strategy(kind, slots, None), 0..=(ops * 3 / 5).max(1));
        (scripts, main).prop_map(move |(scripts, main)| Program {
            kind,
            bound: if kind == Kind::Channel { None } else { bound },
            scripts,
            main,
        })
    })
}

// ---------------------------------------------------------------------------
// Running a program

enum AnyQ {
    Lifo(LifoQueue<Item>),
    Prio(PriorityQueue<Item>),
    Joinable(JoinableQueue<Item>),
    Channel(Channel<Item>),
}

macro_rules! each {
    ($q:expr, $x:ident => $e:expr) => {
        match $q {
            AnyQ::Lifo($x) => $e,
            AnyQ::Prio($x) => $e,
            AnyQ::Joinable($x) => $e,
            AnyQ::Channel($x) => $e,
        }
    };
}

macro_rules! no_channel {
    ($q:expr, $x:ident => $e:expr) => {
        match $q {
            AnyQ::Lifo($x) => $e,
            AnyQ::Prio($x) => $e,
            AnyQ::Joinable($x) => $e,
            AnyQ::Channel(_) => unreachable!("not generated for a Channel"),
        }
    };
}

impl AnyQ {
    fn new(prog: &Program) -> AnyQ {
        let b = prog.bound.map(usize::from);
        match (prog.kind, b) {
            (Kind::Lifo, None) => AnyQ::Lifo(LifoQueue::new()),
            (Kind::Lifo, Some(m)) => AnyQ::Lifo(LifoQueue::bounded(m)),
            (Kind::Prio, None) => AnyQ::Prio(PriorityQueue::new()),
            (Kind::Prio, Some(m)) => AnyQ::Prio(PriorityQueue::bounded(m)),
            (Kind::Joinable, None) => AnyQ::Joinable(JoinableQueue::new()),
            (Kind::Joinable, Some(m)) => AnyQ::Joinable(JoinableQueue::bounded(m)),
            (Kind::Channel, _) => AnyQ::Channel(Channel::new()),
        }
    }

    fn snap(&self) -> Snap {
        Snap {
            len: each!(self, q => q.len()),
            getters: each!(self, q => q.getters()),
            putters: each!(self, q => q.putters()),
            unfinished: match self {
                AnyQ::Joinable(q) => q.unfinished(),
                _ => 0,
            },
        }
    }

    fn joinable(&self) -> &JoinableQueue<Item> {
        match self {
            AnyQ::Joinable(q) => q,
            _ => unreachable!("only generated for a JoinableQueue"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Snap {
    len: usize,
    getters: usize,
    putters: usize,
    unfinished: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Res {
    Done,
    PutOk,
    Full(Item),
    Got(Item),
    Empty,
    Peeked(Item),
    TaskDone(bool),
    Joined,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ev {
    Started(u8),
    /// `who` begins op `idx` (with the item, for a put).
    Begin(u8, u16, Option<Item>),
    End(u8, u16, Res),
    Finished(u8),
    /// Recorded while the greenlet unwinds out of its root.
    Killed(u8),
    /// Everything is blocked (nothing ready, no timer but the 30 s ones).
    Settled,
    /// Main kills slot `j`, blocked for good, while winding up.
    Reap(u8),
    /// Main drains the queue with `get_nowait` at the end.
    Left(Option<Item>),
}

struct World {
    prog: Rc<Program>,
    q: AnyQ,
    handles: RefCell<Vec<Greenlet<()>>>,
    trace: RefCell<Vec<(Ev, Snap)>>,
    next_item: Cell<u32>,
    long_waits: Cell<usize>,
}

impl World {
    fn record(&self, ev: Ev) {
        let snap = self.q.snap();
        self.trace.borrow_mut().push((ev, snap));
    }
}

/// Counts a 30 s wait (its timer is expected while winding up).
struct LongWait<'a>(Option<&'a Cell<usize>>);

impl<'a> LongWait<'a> {
    fn new(w: &'a World, limit: Limit) -> LongWait<'a> {
        if limit == Limit::Long {
            w.long_waits.set(w.long_waits.get() + 1);
            LongWait(Some(&w.long_waits))
        } else {
            LongWait(None)
        }
    }
}

impl Drop for LongWait<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0 {
            c.set(c.get() - 1);
        }
    }
}

struct OnUnwind<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnUnwind<F> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            (self.0)();
        }
    }
}

fn perform(w: &World, op: Op, item: Option<Item>) -> Res {
    let q = &w.q;
    match op {
        Op::Yield => {
            gevent::sleep(Duration::ZERO);
            Res::Done
        }
        Op::Put(limit, _) => {
            let item = item.expect("a put has an item");
            let _l = LongWait::new(w, limit);
            let r = match limit {
                Limit::Block => {
                    each!(q, q => q.put(item));
                    Ok(())
                }
                Limit::Nowait => each!(q, q => q.put_nowait(item)),
                Limit::Zero => each!(q, q => q.put_timeout(item, Duration::ZERO)),
                Limit::Long => each!(q, q => q.put_timeout(item, LONG)),
            };
            match r {
                Ok(()) => Res::PutOk,
                Err(Full(back)) => Res::Full(back),
            }
        }
        Op::Get(limit) => {
            let _l = LongWait::new(w, limit);
            let r = match limit {
                Limit::Block => Ok(each!(q, q => q.get())),
                Limit::Nowait => each!(q, q => q.get_nowait()),
                Limit::Zero => each!(q, q => q.get_timeout(Duration::ZERO)),
                Limit::Long => each!(q, q => q.get_timeout(LONG)),
            };
            match r {
                Ok(x) => Res::Got(x),
                Err(Empty) => Res::Empty,
            }
        }
        Op::Peek(limit) => {
            let _l = LongWait::new(w, limit);
            let r = match limit {
                Limit::Block => Ok(no_channel!(q, q => q.peek())),
                Limit::Nowait => no_channel!(q, q => q.peek_nowait()),
                Limit::Zero => no_channel!(q, q => q.peek_timeout(Duration::ZERO)),
                Limit::Long => no_channel!(q, q => q.peek_timeout(LONG)),
            };
            match r {
                Ok(x) => Res::Peeked(x),
                Err(Empty) => Res::Empty,
            }
        }
        Op::Close => {
            no_channel!(q, q => q.close());
            Res::Done
        }
        Op::TaskDone => {
            let jq = q.joinable();
            if jq.unfinished() > 0 {
                jq.task_done();
                Res::TaskDone(true)
            } else {
                Res::TaskDone(false)
            }
        }
        Op::Join => {
            q.joinable().join();
            Res::Joined
        }
        Op::Kill(j) => {
            let h = w.handles.borrow()[usize::from(j)].clone();
            h.kill();
            Res::Done
        }
        Op::KillNowait(j) => {
            let h = w.handles.borrow()[usize::from(j)].clone();
            h.kill_nowait();
            Res::Done
        }
    }
}

fn exec(w: &World, who: u8) {
    let prog = w.prog.clone();
    for (idx, &op) in prog.script(who).iter().enumerate() {
        let item = match op {
            Op::Put(_, prio) => {
                let id = w.next_item.get();
                w.next_item.set(id + 1);
                Some((prio, id))
            }
            _ => None,
        };
        w.record(Ev::Begin(who, idx as u16, item));
        let res = perform(w, op, item);
        w.record(Ev::End(who, idx as u16, res));
    }
}

fn wind_up(w: &Rc<World>) -> Result<(), String> {
    let start = Instant::now();
    loop {
        loop {
            gevent::sleep(Duration::ZERO);
            let s = gevent::hub::stats();
            if s.ready == 0 && s.timers == w.long_waits.get() {
                w.record(Ev::Settled);
                break;
            }
            if start.elapsed() > STUCK {
                return Err(format!("never settles: {s:?}"));
            }
        }
        let alive = w.handles.borrow().iter().position(|h| !h.dead());
        let Some(j) = alive else { return Ok(()) };
        w.record(Ev::Reap(j as u8));
        let h = w.handles.borrow()[j].clone();
        h.kill();
    }
}

#[derive(Debug)]
struct Outcome {
    trace: Vec<(Ev, Snap)>,
    fates: Vec<Option<GreenletError>>,
}

fn run(prog: &Rc<Program>) -> Result<Outcome, String> {
    prop_common::start_clean();
    hub_is_idle().map_err(|e| format!("before the run: {e}"))?;
    let w = Rc::new(World {
        prog: prog.clone(),
        q: AnyQ::new(prog),
        handles: RefCell::new(Vec::new()),
        trace: RefCell::new(Vec::new()),
        next_item: Cell::new(1),
        long_waits: Cell::new(0),
    });
    let body = panic::catch_unwind(AssertUnwindSafe(|| {
        for j in 0..prog.scripts.len() as u8 {
            let w2 = w.clone();
            let g = gevent::spawn(move || {
                let w3 = w2.clone();
                let _kill = OnUnwind(move || w3.record(Ev::Killed(j)));
                w2.record(Ev::Started(j));
                exec(&w2, j);
                w2.record(Ev::Finished(j));
            });
            w.handles.borrow_mut().push(g);
        }
        exec(&w, MAIN);
        w.record(Ev::Finished(MAIN));
        wind_up(&w)?;
        loop {
            let r = each!(&w.q, q => q.get_nowait()).ok();
            w.record(Ev::Left(r));
            if r.is_none() {
                return Ok(());
            }
        }
    }));
    let body = match body {
        Ok(r) => r,
        Err(p) => Err(format!(
            "main panicked: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    };
    if let Err(e) = body {
        let handles = w.handles.borrow().clone();
        gevent::killall(&handles);
        for _ in 0..10 {
            gevent::sleep(Duration::ZERO);
        }
        return Err(e);
    }
    hub_is_idle().map_err(|e| format!("after the run: {e}"))?;
    let fates = w.handles.borrow().iter().map(|h| h.exception()).collect();
    let out = Outcome { trace: w.trace.borrow().clone(), fates };
    Ok(out)
}

// ---------------------------------------------------------------------------
// The model

#[derive(Clone, Debug, PartialEq, Eq)]
struct M {
    /// Stored items in the order they were stored (a LIFO's top is the
    /// last, a PriorityQueue's the smallest, a FIFO's the first).
    store: Vec<Item>,
    /// Listed getters (`true`: a peeker) / putters (with their item), in
    /// FIFO order; a killed one stays listed (passed over) until it unwinds.
    getters: Vec<(u8, bool)>,
    putters: Vec<(u8, Item)>,
    /// Getters handed an item (FIFO: in their slot; LIFO/priority: a
    /// promise of the store's top when they run), in the order handed.
    handed: Vec<(u8, Option<Item>)>,
    /// Getters woken by `close`, and peekers woken by an item or by
    /// `close`, that have not run yet (they look when they run).
    floating: Vec<u8>,
    /// Putters whose item moved in, not resumed yet.
    admitted: Vec<u8>,
    placed: u64,
    done: u64,
    /// An op that must return before anything else happens, with its result.
    imm: Option<(u8, Res)>,
}

struct Env<'a> {
    kind: Kind,
    maxsize: Option<usize>,
    interrupted: &'a [bool],
}

impl Env<'_> {
    fn intr(&self, g: u8) -> bool {
        g != MAIN && self.interrupted[usize::from(g)]
    }
    fn twr(&self) -> bool {
        matches!(self.kind, Kind::Lifo | Kind::Prio)
    }
}

impl M {
    fn new() -> M {
        M {
            store: Vec::new(),
            getters: Vec::new(),
            putters: Vec::new(),
            handed: Vec::new(),
            floating: Vec::new(),
            admitted: Vec::new(),
            placed: 0,
            done: 0,
            imm: None,
        }
    }

    fn len(&self, e: &Env) -> usize {
        if e.twr() {
            self.store.len()
        } else {
            self.store.len() + self.handed.len()
        }
    }

    fn unpromised(&self, e: &Env) -> usize {
        if e.twr() {
            self.store.len().saturating_sub(self.handed.len())
        } else {
            self.store.len()
        }
    }

    fn has_room(&self, e: &Env) -> bool {
        e.maxsize.map_or(true, |m| self.len(e) < m)
    }

    fn top_index(&self, e: &Env) -> Option<usize> {
        if self.store.is_empty() {
            return None;
        }
        Some(match e.kind {
            Kind::Lifo => self.store.len() - 1,
            Kind::Prio => (0..self.store.len()).min_by_key(|&i| self.store[i]).unwrap(),
            Kind::Joinable | Kind::Channel => 0,
        })
    }

    fn pop_top(&mut self, e: &Env) -> Option<Item> {
        let i = self.top_index(e)?;
        Some(self.store.remove(i))
    }

    /// Pops the longest-waiting listed getter or peeker not about to unwind.
    fn pop_waiter(&mut self, e: &Env) -> Option<(u8, bool)> {
        let i = self.getters.iter().position(|&(g, _)| !e.intr(g))?;
        Some(self.getters.remove(i))
    }

    /// Pops the longest-waiting getter that takes an item; each peeker
    /// popped before it is woken (to look when it runs).
    fn next_getter(&mut self, e: &Env) -> Option<u8> {
        loop {
            match self.pop_waiter(e)? {
                (g, false) => return Some(g),
                (p, true) => self.floating.push(p),
            }
        }
    }

    fn pop_putter(&mut self, e: &Env) -> Option<(u8, Item)> {
        let i = self.putters.iter().position(|&(g, _)| !e.intr(g))?;
        Some(self.putters.remove(i))
    }

    fn hand(&mut self, e: &Env, g: u8, item: Item) {
        if e.twr() {
            self.store.push(item);
            self.handed.push((g, None));
        } else {
            self.handed.push((g, Some(item)));
        }
    }

    fn offer(&mut self, e: &Env, item: Item, front: bool) {
        if let Some(g) = self.next_getter(e) {
            self.hand(e, g, item);
        } else if front {
            self.store.insert(0, item);
        } else {
            self.store.push(item);
        }
    }

    fn admit_putters(&mut self, e: &Env) {
        while self.has_room(e) {
            match self.pop_putter(e) {
                Some((p, item)) => {
                    self.admitted.push(p);
                    self.placed += 1;
                    self.offer(e, item, false);
                }
                None => return,
            }
        }
    }

    fn try_get(&mut self, e: &Env) -> Option<Item> {
        if self.unpromised(e) > 0 {
            let x = self.pop_top(e);
            self.admit_putters(e);
            x
        } else if e.maxsize == Some(0) {
            let (p, item) = self.pop_putter(e)?;
            self.admitted.push(p);
            self.placed += 1;
            Some(item)
        } else {
            None
        }
    }

    /// The queue's front item: the one handed to the getter woken first
    /// (FIFO: in its slot), else the store's top, promised or not (it is
    /// still in the queue, as `len` counts it).
    fn peek(&self, e: &Env) -> Option<Item> {
        if !e.twr() {
            if let Some(&(_, item)) = self.handed.first() {
                return item;
            }
        }
        self.top_index(e).map(|i| self.store[i])
    }

    fn try_put(&mut self, e: &Env, item: Item) -> Result<(), Item> {
        if e.maxsize == Some(0) {
            // A Channel has no peekers.
            return match self.pop_waiter(e) {
                Some((g, _)) => {
                    self.placed += 1;
                    self.hand(e, g, item);
                    Ok(())
                }
                None => Err(item),
            };
        }
        if self.has_room(e) {
            self.placed += 1;
            self.offer(e, item, false);
            Ok(())
        } else {
            Err(item)
        }
    }

    /// A woken getter resumes: it takes what it was handed (LIFO/priority:
    /// the store's top now), `None` if woken by `close`.
    fn collect(&mut self, e: &Env, g: u8) -> Result<Option<Item>, String> {
        let item = match self.handed.iter().position(|h| h.0 == g) {
            Some(i) => {
                let (_, slot) = self.handed.remove(i);
                if e.twr() {
                    Some(self.pop_top(e).ok_or("a promised item is not in the store")?)
                } else {
                    slot
                }
            }
            None => None,
        };
        self.admit_putters(e);
        Ok(item)
    }

    /// A getter handed an item unwinds before taking it.
    fn pass_on(&mut self, e: &Env, g: u8) {
        let Some(i) = self.handed.iter().position(|h| h.0 == g) else { return };
        let (_, slot) = self.handed.remove(i);
        if e.twr() {
            // The promise goes on, waking the peekers ahead.
            if let Some(n) = self.next_getter(e) {
                self.handed.push((n, None));
            }
            return;
        }
        let mut carry = slot.expect("a FIFO getter is handed its item");
        for k in i..self.handed.len() {
            carry = self.handed[k].1.replace(carry).expect("handed getters hold items");
        }
        self.offer(e, carry, true);
    }

    fn close(&mut self, e: &Env) {
        while let Some((g, _)) = self.pop_waiter(e) {
            self.floating.push(g);
        }
    }

    fn unfinished(&self) -> u64 {
        self.placed - self.done
    }

    fn check_snap(&self, e: &Env, s: &Snap) -> Result<(), String> {
        let len = if e.kind == Kind::Channel { self.store.len() } else { self.len(e) };
        let unf = if e.kind == Kind::Joinable { self.unfinished() as usize } else { 0 };
        let model = Snap { len, getters: self.getters.len(), putters: self.putters.len(), unfinished: unf };
        if model != *s {
            return Err(format!("queue shows {s:?}, the model {model:?}"));
        }
        Ok(())
    }

    /// Op `op` of `who` begins (after its Begin was recorded).
    fn begin(&mut self, e: &Env, who: u8, op: Op, item: Option<Item>, target_dead: bool) {
        let imm = match op {
            Op::Put(limit, _) => match self.try_put(e, item.unwrap()) {
                // A Channel's put (any form) that handed its item to a
                // waiting getter yields, to resume after it (gevent).
                Ok(()) if e.kind == Kind::Channel => {
                    self.admitted.push(who);
                    None
                }
                Ok(()) => Some(Res::PutOk),
                Err(item) => match limit {
                    Limit::Nowait | Limit::Zero => Some(Res::Full(item)),
                    Limit::Block | Limit::Long => {
                        self.putters.push((who, item));
                        None
                    }
                },
            },
            Op::Get(limit) => match self.try_get(e) {
                Some(x) => Some(Res::Got(x)),
                None if limit == Limit::Nowait => Some(Res::Empty),
                None => {
                    self.getters.push((who, false));
                    None
                }
            },
            Op::Peek(limit) => match self.peek(e) {
                Some(x) => Some(Res::Peeked(x)),
                None if limit == Limit::Nowait => Some(Res::Empty),
                None => {
                    self.getters.push((who, true));
                    None
                }
            },
            Op::Close => {
                self.close(e);
                Some(Res::Done)
            }
            Op::TaskDone => {
                let ok = self.unfinished() > 0;
                if ok {
                    self.done += 1;
                }
                Some(Res::TaskDone(ok))
            }
            Op::Join => (self.unfinished() == 0).then_some(Res::Joined),
            Op::Yield => None,
            Op::Kill(_) => target_dead.then_some(Res::Done),
            Op::KillNowait(_) => Some(Res::Done),
        };
        self.imm = imm.map(|r| (who, r));
    }

    /// Op `op` of `who` returns `res` after waiting.
    fn end(&mut self, e: &Env, who: u8, op: Op, res: Res) -> Result<(), String> {
        if let Some((w, r)) = self.imm.take() {
            if w != who {
                return Err(format!("greenlet {w} should have returned first"));
            }
            return if r == res { Ok(()) } else { Err(format!("the model predicts {r:?}")) };
        }
        let predicted = match op {
            Op::Get(limit) => {
                if self.handed.iter().any(|h| h.0 == who) {
                    match self.collect(e, who)? {
                        Some(x) => Res::Got(x),
                        None => return Err("handed nothing".into()),
                    }
                } else if let Some(i) = self.floating.iter().position(|&g| g == who) {
                    self.floating.remove(i);
                    self.collect(e, who)?;
                    match self.try_get(e) {
                        Some(x) => Res::Got(x),
                        None if limit == Limit::Zero => Res::Empty,
                        None => return Err("woken by close with nothing to take: it waits again".into()),
                    }
                } else if let Some(i) = self.getters.iter().position(|&(g, _)| g == who) {
                    if limit != Limit::Zero {
                        return Err("a getter still listed (handed nothing) returns".into());
                    }
                    self.getters.remove(i);
                    Res::Empty
                } else {
                    return Err("a getter the model lost returns".into());
                }
            }
            Op::Peek(limit) => {
                if let Some(i) = self.floating.iter().position(|&g| g == who) {
                    // Woken (by an item or by `close`): it looks now.
                    self.floating.remove(i);
                    match self.peek(e) {
                        Some(x) => Res::Peeked(x),
                        None if limit == Limit::Zero => Res::Empty,
                        None => return Err("woken, with nothing to see: it waits again".into()),
                    }
                } else if let Some(i) = self.getters.iter().position(|&(g, _)| g == who) {
                    if limit != Limit::Zero {
                        return Err("a peeker still listed (never woken) returns".into());
                    }
                    self.getters.remove(i);
                    Res::Empty
                } else {
                    return Err("a peeker the model lost returns".into());
                }
            }
            Op::Put(..) => match self.admitted.iter().position(|&g| g == who) {
                Some(i) => {
                    self.admitted.remove(i);
                    Res::PutOk
                }
                None => return Err("a putter whose item never moved in returns".into()),
            },
            Op::Join => {
                if self.unfinished() != 0 {
                    return Err(format!("join returns with {} unfinished", self.unfinished()));
                }
                Res::Joined
            }
            Op::Yield | Op::Kill(_) => Res::Done,
            _ => return Err("an op that cannot wait returns after a switch".into()),
        };
        if predicted != res {
            return Err(format!("the model predicts {predicted:?}; store {:?}", self.store));
        }
        Ok(())
    }

    /// `who` unwinds out of `op` (killed).
    fn killed(&mut self, e: &Env, who: u8, op: Option<Op>) -> Result<(), String> {
        if let Some((w, _)) = self.imm {
            return Err(format!("greenlet {w} should have returned first"));
        }
        match op {
            Some(Op::Get(_)) => {
                if self.handed.iter().any(|h| h.0 == who) {
                    self.pass_on(e, who);
                } else if let Some(i) = self.getters.iter().position(|&(g, _)| g == who) {
                    self.getters.remove(i);
                } else if let Some(i) = self.floating.iter().position(|&g| g == who) {
                    self.floating.remove(i);
                } else {
                    return Err("a killed getter the model lost".into());
                }
            }
            // A peeker takes nothing with it, woken or not.
            Some(Op::Peek(_)) => {
                if let Some(i) = self.getters.iter().position(|&(g, _)| g == who) {
                    self.getters.remove(i);
                } else if let Some(i) = self.floating.iter().position(|&g| g == who) {
                    self.floating.remove(i);
                } else {
                    return Err("a killed peeker the model lost".into());
                }
            }
            Some(Op::Put(..)) => {
                if let Some(i) = self.admitted.iter().position(|&g| g == who) {
                    self.admitted.remove(i);
                } else if let Some(i) = self.putters.iter().position(|&(g, _)| g == who) {
                    // Its item goes with it.
                    self.putters.remove(i);
                } else {
                    return Err("a killed putter the model lost".into());
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Replays a trace against the model.
struct Checker<'p> {
    prog: &'p Program,
    n: usize,
    interrupted: Vec<bool>,
    started: Vec<bool>,
    dead: Vec<bool>,
    /// Per greenlet (main last): the op running, with its Begin position.
    open: Vec<Option<(u16, Op)>>,
    next: Vec<u16>,
    states: Vec<M>,
    killed_getters: usize,
    max_states: usize,
}

const STATE_CAP: usize = 20_000;

impl<'p> Checker<'p> {
    fn new(prog: &'p Program) -> Checker<'p> {
        let n = prog.scripts.len();
        Checker {
            prog,
            n,
            interrupted: vec![false; n],
            started: vec![false; n],
            dead: vec![false; n],
            open: vec![None; n + 1],
            next: vec![0; n + 1],
            states: vec![M::new()],
            killed_getters: 0,
            max_states: 1,
        }
    }

    fn ix(&self, who: u8) -> usize {
        if who == MAIN {
            self.n
        } else {
            usize::from(who)
        }
    }

    fn env(&self) -> Env<'_> {
        Env { kind: self.prog.kind, maxsize: self.prog.maxsize(), interrupted: &self.interrupted }
    }

    /// Getters woken by `close`, and peekers woken by an item or by
    /// `close`, may run unobserved: finding nothing, they wait again (at the
    /// back of the list). Adds every such outcome.
    fn silent_closure(&mut self) {
        let mut out = std::mem::take(&mut self.states);
        let e = self.env();
        let mut i = 0;
        while i < out.len() {
            let s = out[i].clone();
            i += 1;
            if s.imm.is_some() {
                continue;
            }
            for &g in &s.floating {
                let (limit, peeks) = match self.open[self.ix(g)] {
                    Some((_, Op::Get(l))) => (l, false),
                    Some((_, Op::Peek(l))) => (l, true),
                    _ => continue,
                };
                if e.intr(g) || !matches!(limit, Limit::Block | Limit::Long) {
                    continue;
                }
                let mut t = s.clone();
                t.floating.retain(|&f| f != g);
                if peeks {
                    if t.peek(&e).is_some() {
                        continue; // it sees an item: observed
                    }
                } else {
                    if t.collect(&e, g).is_err() {
                        continue;
                    }
                    if t.try_get(&e).is_some() {
                        continue; // it takes an item: observed
                    }
                }
                t.getters.push((g, peeks));
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
        self.states = out;
    }

    /// Keeps the states for which `f` holds; fails if none does.
    fn filter(&mut self, what: &str, mut f: impl FnMut(&mut M, &Env) -> Result<(), String>) -> Result<(), String> {
        let e = Env { kind: self.prog.kind, maxsize: self.prog.maxsize(), interrupted: &self.interrupted };
        let mut first_err = None;
        let mut kept = Vec::new();
        for mut s in std::mem::take(&mut self.states) {
            let before = s.clone();
            match f(&mut s, &e) {
                Ok(()) => {
                    if !kept.contains(&s) {
                        kept.push(s);
                    }
                }
                Err(msg) => {
                    if first_err.is_none() {
                        first_err = Some(format!("{msg}\n    model state before: {before:?}"));
                    }
                }
            }
        }
        if kept.is_empty() {
            return Err(format!("{what}: {}", first_err.unwrap_or_default()));
        }
        self.states = kept;
        Ok(())
    }

    fn step(&mut self, pos: usize, ev: Ev, snap: Snap) -> Result<(), String> {
        let ctx = |m: String| format!("event #{pos} {ev:?} (snapshot {snap:?}): {m}");
        self.silent_closure();
        self.max_states = self.max_states.max(self.states.len());
        if self.states.len() > STATE_CAP {
            return Err(ctx("too many model states".into()));
        }
        if let Ev::Killed(j) = ev {
            if j != MAIN && matches!(self.open[usize::from(j)], Some((_, Op::Get(_)))) {
                self.killed_getters += 1;
            }
        }
        // Independent checks of the snapshot.
        if let Some(m) = self.prog.maxsize().filter(|&m| m > 0) {
            if snap.len > m {
                return Err(ctx(format!("{} items in a queue of maxsize {m}", snap.len)));
            }
        }
        if self.prog.kind == Kind::Channel && snap.len > self.killed_getters {
            return Err(ctx(format!(
                "the Channel stores {} items; only {} getters were killed",
                snap.len, self.killed_getters
            )));
        }
        match ev {
            Ev::Started(j) => {
                let j = usize::from(j);
                if j >= self.n || self.started[j] || self.dead[j] {
                    return Err(ctx("started twice or after its death".into()));
                }
                self.started[j] = true;
                self.filter("", |s, e| {
                    if let Some((w, _)) = s.imm {
                        return Err(format!("greenlet {w} should have returned first"));
                    }
                    s.check_snap(e, &snap)
                })
                .map_err(ctx)?;
            }
            Ev::Begin(who, idx, item) => {
                let k = self.ix(who);
                if self.open[k].is_some() || self.next[k] != idx || (who != MAIN && (self.dead[k] || !self.started[k]))
                {
                    return Err(ctx("op out of order".into()));
                }
                let Some(&op) = self.prog.script(who).get(usize::from(idx)) else {
                    return Err(ctx("no such op".into()));
                };
                if matches!(op, Op::Put(..)) != item.is_some() {
                    return Err(ctx("item mismatch".into()));
                }
                self.open[k] = Some((idx, op));
                self.next[k] += 1;
                self.filter("", |s, e| {
                    if let Some((w, _)) = s.imm {
                        if w != who {
                            return Err(format!("greenlet {w} should have returned first"));
                        }
                        return Err("began an op before the last returned".into());
                    }
                    s.check_snap(e, &snap)
                })
                .map_err(ctx)?;
                let mut target_dead = false;
                if let Op::Kill(j) | Op::KillNowait(j) = op {
                    let j = usize::from(j);
                    if !self.dead[j] {
                        if self.started[j] {
                            self.interrupted[j] = true;
                        } else {
                            self.dead[j] = true; // never runs
                        }
                    }
                    target_dead = self.dead[j];
                }
                self.filter("", |s, e| {
                    s.begin(e, who, op, item, target_dead);
                    Ok(())
                })
                .map_err(ctx)?;
            }
            Ev::End(who, idx, res) => {
                let k = self.ix(who);
                let Some((_, op)) = self.open[k].filter(|o| o.0 == idx) else {
                    return Err(ctx("returns from an op that is not running".into()));
                };
                if let Op::Kill(j) = op {
                    if !self.dead[usize::from(j)] {
                        return Err(ctx("kill returned before the death".into()));
                    }
                }
                if op == Op::Join && snap.unfinished != 0 {
                    return Err(ctx("join returned with unfinished tasks".into()));
                }
                self.filter("no model state explains this result", |s, e| {
                    s.end(e, who, op, res)?;
                    s.check_snap(e, &snap)
                })
                .map_err(ctx)?;
                self.open[k] = None;
            }
            Ev::Finished(who) => {
                let k = self.ix(who);
                if self.open[k].is_some() || usize::from(self.next[k]) != self.prog.script(who).len() {
                    return Err(ctx("finished before the end of its script".into()));
                }
                if who != MAIN {
                    if self.interrupted[k] {
                        return Err(ctx("finished although it was killed".into()));
                    }
                    self.dead[k] = true;
                }
                self.filter("", |s, e| {
                    if let Some((w, _)) = s.imm {
                        return Err(format!("greenlet {w} should have returned first"));
                    }
                    s.check_snap(e, &snap)
                })
                .map_err(ctx)?;
            }
            Ev::Killed(j) => {
                let k = usize::from(j);
                if j == MAIN || !self.interrupted[k] || self.dead[k] {
                    return Err(ctx("unwound although nobody killed it".into()));
                }
                let op = self.open[k].map(|o| o.1);
                self.filter("no model state explains this kill", |s, e| {
                    s.killed(e, j, op)?;
                    s.check_snap(e, &snap)
                })
                .map_err(ctx)?;
                self.open[k] = None;
                self.dead[k] = true;
            }
            Ev::Reap(j) => {
                let k = usize::from(j);
                if j == MAIN || self.dead[k] {
                    return Err(ctx("reaps a dead slot".into()));
                }
                self.filter("", |s, e| s.check_snap(e, &snap)).map_err(ctx)?;
                if self.started[k] {
                    self.interrupted[k] = true;
                } else {
                    // Cannot happen: a quiescent hub has run every slot.
                    self.dead[k] = true;
                }
            }
            Ev::Settled => self.settled(snap).map_err(ctx)?,
            Ev::Left(x) => {
                self.filter("the queue's items at the end differ from the model's", |s, e| {
                    let m = s.try_get(e);
                    if m != x {
                        return Err(format!("the model's next item is {m:?}"));
                    }
                    s.check_snap(e, &snap)
                })
                .map_err(ctx)?;
            }
        }
        Ok(())
    }

    /// Everything is blocked: nothing is in transit, and nobody waits for a
    /// partner that is there.
    fn settled(&mut self, snap: Snap) -> Result<(), String> {
        let n = self.n;
        // Independent of the model.
        let waiting: Vec<(u8, Op)> =
            (0..=n).filter_map(|k| self.open[k].map(|(_, op)| (if k == n { MAIN } else { k as u8 }, op))).collect();
        for (k, &intr) in self.interrupted.iter().enumerate() {
            if intr && !self.dead[k] {
                return Err(format!("slot {k} was killed and has not unwound"));
            }
        }
        // Peekers wait in the getters' list.
        let get_waiting = waiting.iter().filter(|(_, op)| matches!(op, Op::Get(_) | Op::Peek(_))).count();
        let put_waiting = waiting.iter().filter(|(_, op)| matches!(op, Op::Put(..))).count();
        if snap.getters != get_waiting || snap.putters != put_waiting {
            return Err(format!("{get_waiting} getters and {put_waiting} putters blocked; the queue lists {snap:?}"));
        }
        for &(who, op) in &waiting {
            match op {
                Op::Get(Limit::Block | Limit::Long)
                | Op::Peek(Limit::Block | Limit::Long)
                | Op::Put(Limit::Block | Limit::Long, _)
                | Op::Kill(_) => {}
                Op::Join if snap.unfinished > 0 => {}
                Op::Join => return Err(format!("greenlet {who} waits in join() with no unfinished task")),
                _ => return Err(format!("greenlet {who} is stuck in {op:?}")),
            }
        }
        let lost = match self.prog.kind {
            Kind::Channel => snap.getters > 0 && (snap.putters > 0 || snap.len > 0),
            _ => {
                snap.getters > 0 && snap.len > 0
                    || snap.putters > 0 && self.prog.maxsize().map_or(true, |m| snap.len < m)
            }
        };
        if lost {
            return Err(format!("a greenlet waits although its partner is there: {snap:?}"));
        }
        // The model: nothing in transit, and the same.
        self.filter("no model state is quiescent", |s, e| {
            if s.imm.is_some() || !s.floating.is_empty() || !s.handed.is_empty() || !s.admitted.is_empty() {
                return Err("something in transit".into());
            }
            s.check_snap(e, &snap)
        })
    }
}

fn ledger(prog: &Program, out: &Outcome) -> Result<(), String> {
    // item -> (put result: None unfinished, got count)
    let mut puts: BTreeMap<Item, Option<Res>> = BTreeMap::new();
    let mut open: BTreeMap<u8, Item> = BTreeMap::new();
    let mut taken: BTreeMap<Item, usize> = BTreeMap::new();
    let mut task_done = 0usize;
    for &(ev, _) in &out.trace {
        match ev {
            Ev::Begin(who, _, Some(item)) => {
                if puts.insert(item, None).is_some() {
                    return Err(format!("item {item:?} put twice"));
                }
                open.insert(who, item);
            }
            Ev::End(who, _, res) => match res {
                Res::PutOk | Res::Full(_) => {
                    let item = open.remove(&who).ok_or("put result without a put")?;
                    if let Res::Full(back) = res {
                        if back != item {
                            return Err(format!("Full gave back {back:?}, not {item:?}"));
                        }
                    }
                    puts.insert(item, Some(res));
                }
                Res::Got(x) => {
                    if !puts.contains_key(&x) {
                        return Err(format!("got {x:?} before it was put"));
                    }
                    *taken.entry(x).or_default() += 1;
                }
                Res::TaskDone(true) => task_done += 1,
                // Peeks take nothing: only an item put can be seen.
                Res::Peeked(x) if !puts.contains_key(&x) => {
                    return Err(format!("peeked {x:?} before it was put"));
                }
                _ => {}
            },
            Ev::Killed(who) => {
                open.remove(&who);
            }
            Ev::Left(Some(x)) => {
                if !puts.contains_key(&x) {
                    return Err(format!("{x:?} left in the queue, never put"));
                }
                *taken.entry(x).or_default() += 1;
            }
            _ => {}
        }
    }
    for (item, res) in &puts {
        let t = taken.get(item).copied().unwrap_or(0);
        let ok = match res {
            Some(Res::PutOk) => t == 1,
            Some(Res::Full(_)) => t == 0,
            None => t <= 1, // its putter was killed: in, or gone with it
            _ => false,
        };
        if !ok {
            return Err(format!("item {item:?}, put {res:?}, was got or left {t} times"));
        }
    }
    // JoinableQueue: every item that entered was got or left; the last
    // snapshot's unfinished count is those minus the task_done calls.
    if let Some(&(_, snap)) = out.trace.last() {
        let entered: usize = taken.values().sum();
        if prog.kind == Kind::Joinable && snap.unfinished + task_done != entered {
            return Err(format!(
                "unfinished {} at the end, {entered} items entered, {task_done} done",
                snap.unfinished
            ));
        }
    }
    Ok(())
}

fn check(prog: &Program, out: &Outcome) -> Result<usize, String> {
    let mut c = Checker::new(prog);
    for (pos, &(ev, snap)) in out.trace.iter().enumerate() {
        c.step(pos, ev, snap)?;
    }
    if !matches!(out.trace.last(), Some((Ev::Left(None), _))) {
        return Err("the trace does not end with the drain".into());
    }
    for j in 0..c.n {
        let expected = if c.interrupted[j] || !c.started[j] { Some(GreenletError::Killed) } else { None };
        if !c.dead[j] || out.fates[j] != expected {
            return Err(format!(
                "slot {j} (started {}, killed {}) ends with {:?}",
                c.started[j], c.interrupted[j], out.fates[j]
            ));
        }
    }
    ledger(prog, out)?;
    Ok(c.max_states)
}

// ---------------------------------------------------------------------------
// The property

static CASES: AtomicUsize = AtomicUsize::new(0);
static EVENTS: AtomicUsize = AtomicUsize::new(0);
static WAITED: AtomicUsize = AtomicUsize::new(0);
static KILLED: AtomicUsize = AtomicUsize::new(0);
static FULL: AtomicUsize = AtomicUsize::new(0);
static EMPTY: AtomicUsize = AtomicUsize::new(0);
static AMBIGUOUS: AtomicUsize = AtomicUsize::new(0);
static PEEKS_WAITED: AtomicUsize = AtomicUsize::new(0);
static KINDS: [AtomicUsize; 4] = [AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)];

fn one_case(prog: Program) -> Result<(), TestCaseError> {
    let prog = Rc::new(prog);
    let a = run(&prog).map_err(|e| TestCaseError::fail(format!("run 1: {e}")))?;
    let states = check(&prog, &a).map_err(|e| TestCaseError::fail(format!("run 1: {e}")))?;
    let b = run(&prog).map_err(|e| TestCaseError::fail(format!("run 2: {e}")))?;
    if a.trace != b.trace {
        let i = a.trace.iter().zip(&b.trace).position(|(x, y)| x != y).unwrap_or(a.trace.len().min(b.trace.len()));
        return Err(TestCaseError::fail(format!(
            "the two runs diverge at event #{i}: {:?} vs {:?}",
            a.trace.get(i),
            b.trace.get(i)
        )));
    }
    prop_assert_eq!(&a.fates, &b.fates);
    CASES.fetch_add(1, Ordering::Relaxed);
    KINDS[prog.kind as usize].fetch_add(1, Ordering::Relaxed);
    EVENTS.fetch_add(a.trace.len(), Ordering::Relaxed);
    let count = |f: &dyn Fn(&Ev) -> bool| a.trace.iter().filter(|(e, _)| f(e)).count();
    KILLED.fetch_add(count(&|e| matches!(e, Ev::Killed(_))), Ordering::Relaxed);
    FULL.fetch_add(count(&|e| matches!(e, Ev::End(_, _, Res::Full(_)))), Ordering::Relaxed);
    EMPTY.fetch_add(count(&|e| matches!(e, Ev::End(_, _, Res::Empty))), Ordering::Relaxed);
    let waited =
        a.trace.windows(2).filter(|w| matches!(w[0].0, Ev::Begin(..)) && !matches!(w[1].0, Ev::End(..))).count();
    WAITED.fetch_add(waited, Ordering::Relaxed);
    let peeks_waited = a
        .trace
        .windows(2)
        .filter(|w| {
            matches!(w[0].0, Ev::Begin(who, idx, _) if matches!(prog.script(who)[usize::from(idx)], Op::Peek(_)))
                && !matches!(w[1].0, Ev::End(..))
        })
        .count();
    PEEKS_WAITED.fetch_add(peeks_waited, Ordering::Relaxed);
    if states > 1 {
        AMBIGUOUS.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let seed = std::env::var("PROPQ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(SEED);
    Config {
        cases,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    }
}

#[test]
fn random_queue_programs_match_the_model() {
    let started = Instant::now();
    let mut runner = TestRunner::new(config());
    let result = runner.run(&program_strategy(), one_case);
    let load = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    eprintln!(
        "queue programs: {} cases passed in {:?} (lifo {}, priority {}, joinable {}, channel {}); {} events, {} ops \
         waited ({} peeks), {} greenlets killed, {} Full, {} Empty, {} cases with an ambiguous (woken, unobserved) \
         model state",
        load(&CASES),
        started.elapsed(),
        load(&KINDS[0]),
        load(&KINDS[1]),
        load(&KINDS[2]),
        load(&KINDS[3]),
        load(&EVENTS),
        load(&WAITED),
        load(&PEEKS_WAITED),
        load(&KILLED),
        load(&FULL),
        load(&EMPTY),
        load(&AMBIGUOUS),
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
