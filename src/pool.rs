//! `Group` and `Pool` (gevent.pool): a set of greenlets managed together, and
//! a group with a concurrency limit (a group plus a semaphore). A finished
//! member leaves through a `link` callback, so it is counted until the hub
//! runs callbacks after the greenlets that were already ready (the tutorial's
//! "Ausmass der Gruppe: 3" three times). Plus `wait` / `iwait` over anything
//! waitable.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashSet;
use slab::Slab;

use crate::event::{AsyncResult, Event};
use crate::greenlet::{Greenlet, GreenletError, GreenletRef, LinkId};
use crate::hub::Waiters;
use crate::lock::Semaphore;
use crate::queue::Queue;

/// A group's members in the order they were added, with O(1) membership,
/// insertion and removal (a server's handler group holds one member per
/// connection: tens of thousands): a list linked by index through a slab,
/// and the members' ids naming their nodes.
#[derive(Default)]
struct MemberSet {
    nodes: Slab<MemberNode>,
    /// Node of each member, by greenlet id.
    by_id: HashMap<u64, usize, BuildHasherDefault<IdHasher>>,
    /// The oldest and the newest member's nodes.
    head: Option<usize>,
    tail: Option<usize>,
}

/// Hashes greenlet ids so that ids close together land close together.
/// Members are mostly added, and die, in id order; with 100,000 members a
/// probe at a random place missed the cache, a fifth of a member's cost.
/// Here ids in an aligned block of 64 take consecutive slots from the
/// block's place, and the places are scattered (a multiplicative hash
/// folded onto its low bits, so ids a power of two apart do not pile up
/// on a few slots). The top seven bits, which the table keeps as each
/// slot's tag, also take the id's low bits, so the ids of one block still
/// have different tags.
#[derive(Default)]
struct IdHasher(u64);

impl IdHasher {
    const BLOCK_BITS: u32 = 6;
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let id = self.0;
        let low = id & ((1 << Self::BLOCK_BITS) - 1);
        let block = (id >> Self::BLOCK_BITS).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let block = block ^ (block >> 32);
        block.wrapping_add(low) ^ ((id & 127) << 57)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}

struct MemberNode {
    greenlet: GreenletRef,
    /// The link by which it leaves when it dies (unlinked when discarded).
    link: Option<LinkId>,
    prev: Option<usize>,
    next: Option<usize>,
}

impl MemberSet {
    fn contains(&self, g: &GreenletRef) -> bool {
        self.by_id.contains_key(&g.id())
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Adds `g` at the end; its node, or `None` if it is a member already.
    fn insert(&mut self, g: &GreenletRef) -> Option<usize> {
        let Entry::Vacant(entry) = self.by_id.entry(g.id()) else { return None };
        let node = self.nodes.insert(MemberNode { greenlet: g.clone(), link: None, prev: self.tail, next: None });
        entry.insert(node);
        match self.tail {
            Some(t) => self.nodes[t].next = Some(node),
            None => self.head = Some(node),
        }
        self.tail = Some(node);
        Some(node)
    }

    /// Removes `g`; `None` if it was not a member, else its leaving link.
    fn remove(&mut self, g: &GreenletRef) -> Option<Option<LinkId>> {
        let node = self.by_id.remove(&g.id())?;
        let MemberNode { prev, next, link, .. } = self.nodes.remove(node);
        match prev {
            Some(p) => self.nodes[p].next = next,
            None => self.head = next,
        }
        match next {
            Some(n) => self.nodes[n].prev = prev,
            None => self.tail = prev,
        }
        Some(link)
    }

    /// The members, oldest first.
    fn iter(&self) -> impl Iterator<Item = &GreenletRef> {
        std::iter::successors(self.head, |&n| self.nodes[n].next).map(|n| &self.nodes[n].greenlet)
    }
}

struct Members {
    greenlets: RefCell<MemberSet>,
    /// Joiners, woken when the group becomes empty.
    empty: Waiters,
    /// A Pool's free slots; `None` for a Group.
    slots: Option<Semaphore>,
    /// Members a `kill` asked to die already (gevent's `dying`): a later
    /// `kill` waits for them without killing them again.
    dying: RefCell<FxHashSet<GreenletRef>>,
}

impl Members {
    fn new(slots: Option<Semaphore>) -> Members {
        Members { greenlets: RefCell::default(), empty: Waiters::default(), slots, dying: RefCell::default() }
    }

    fn contains(&self, g: &GreenletRef) -> bool {
        self.greenlets.borrow().contains(g)
    }

    fn discard(&self, g: &GreenletRef) {
        let Some(link) = self.greenlets.borrow_mut().remove(g) else { return };
        // Discarded alive, it keeps running: its leaving link goes (run
        // already when this is that link).
        if let Some(link) = link {
            g.unlink(link);
        }
        let mut dying = self.dying.borrow_mut();
        if !dying.is_empty() {
            dying.remove(g);
        }
        drop(dying);
        if let Some(slots) = &self.slots {
            slots.release();
        }
        if self.greenlets.borrow().len() == 0 {
            self.empty.notify_all();
        }
    }
}

/// A set of greenlets managed together (gevent's `Group`). A `Clone` handle.
///
/// # Examples
/// ```
/// use gevent::pool::Group;
/// let group = Group::new();
/// let squares = group.map(|x: u32| x * x, 1..=4);
/// assert_eq!(squares, [1, 4, 9, 16]);
/// assert_eq!(group.len(), 0);
/// ```
#[derive(Clone)]
pub struct Group(Rc<Members>);

/// A group that runs at most `size` greenlets at once (gevent's `Pool`):
/// `spawn` and `add` wait for a free slot. A `Clone` handle.
///
/// # Examples
/// ```
/// use gevent::pool::Pool;
/// let pool = Pool::new(2);
/// let lens = pool.map({ let p = pool.clone(); move |_: u32| p.len() }, 0..3);
/// assert_eq!(lens, [2, 2, 1]); // the tutorial's "Ausmass des Pools 2 2 1"
/// ```
#[derive(Clone)]
pub struct Pool {
    group: Group,
    size: usize,
}

/// A [`Pool`] had no free slot for `try_add` / `add_timeout` /
/// `try_spawn` (gevent's `PoolFull`); carries back what was not added (the
/// closure of a `try_spawn`, else nothing).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolFull<F = ()>(pub F);

impl<F> fmt::Debug for PoolFull<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PoolFull(..)")
    }
}

impl<F> fmt::Display for PoolFull<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the pool is full")
    }
}

impl<F> std::error::Error for PoolFull<F> {}

impl Default for Group {
    fn default() -> Self {
        Group::new()
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group").field("len", &self.len()).finish()
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("size", &self.size).field("len", &self.len()).finish()
    }
}

impl Group {
    /// An empty group.
    pub fn new() -> Group {
        Group(Rc::new(Members::new(None)))
    }

    /// Spawns `f` as a member of the group.
    ///
    /// # Blocking
    /// Only for a [`Pool`] that is full: until a slot frees
    /// ([`apply_async`](Self::apply_async) never waits).
    pub fn spawn<F, T>(&self, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let g = Greenlet::new(f);
        // New: it cannot be a member yet, so no lookup.
        self.admit(g.as_ref());
        g.start();
        g
    }

    /// Runs `f` in a member greenlet and returns its result (gevent's
    /// `apply`). Called from a member of this group, it runs `f` right
    /// there instead: in a full pool, waiting for a slot held by the
    /// caller itself would never end.
    ///
    /// # Blocking
    /// Until `f` returned (a [`Pool`] that is full: first until a slot
    /// frees).
    ///
    /// # Panics
    /// When `f` panicked or its greenlet was killed (gevent re-raises it),
    /// naming the cause.
    ///
    /// # Examples
    /// ```
    /// let pool = gevent::pool::Pool::new(2);
    /// assert_eq!(pool.apply(|| 6 * 7), 42);
    /// ```
    pub fn apply<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        if self.0.contains(&crate::getcurrent()) {
            return f();
        }
        task_result(self.spawn(f))
    }

    /// Starts `f` without ever waiting (gevent's `apply_async`): as
    /// [`spawn`](Self::spawn) when there is room; for a [`Pool`] that is
    /// full, in a greenlet of its own (not a member) that waits for a slot
    /// and [`apply`](Self::apply)s `f` there. Either way the greenlet
    /// returned ends with `f`'s value, or its panic. As in gevent, join
    /// that greenlet, not the group, to wait for the result.
    ///
    /// # Examples
    /// ```
    /// use gevent::pool::Pool;
    /// let pool = Pool::new(1);
    /// let busy = pool.spawn(|| gevent::sleep(std::time::Duration::from_millis(10)));
    /// let later = pool.apply_async(|| 6 * 7); // the pool is full: no wait
    /// assert!(!later.ready());
    /// assert_eq!(later.get(), Ok(42));
    /// assert!(busy.ready());
    /// ```
    pub fn apply_async<F, T>(&self, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        if self.0.slots.as_ref().is_some_and(|slots| slots.available() == 0) {
            let group = self.clone();
            return crate::spawn(move || group.apply(f));
        }
        self.spawn(f)
    }

    /// Adds a greenlet; it leaves the group when it dies.
    ///
    /// # Blocking
    /// Only for a [`Pool`] that is full: until a slot frees. Adding a member
    /// again does nothing.
    pub fn add(&self, g: &impl AsRef<GreenletRef>) {
        let g = g.as_ref();
        if !self.0.contains(g) {
            self.admit(g);
        }
    }

    /// Adds `g`, not a member: for a [`Pool`], once a slot is free.
    fn admit(&self, g: &GreenletRef) {
        if let Some(slots) = &self.0.slots {
            slots.acquire();
        }
        self.enlist(g);
    }

    /// Makes `g` a member holding the slot just taken (of a `Pool`): gives
    /// the slot back if another greenlet added it meanwhile, else links its
    /// death to its leaving.
    fn enlist(&self, g: &GreenletRef) {
        let Some(node) = self.0.greenlets.borrow_mut().insert(g) else {
            if let Some(slots) = &self.0.slots {
                slots.release();
            }
            return;
        };
        let members = Rc::downgrade(&self.0);
        let link = g.rawlink(move |dead| {
            if let Some(m) = members.upgrade() {
                m.discard(dead);
            }
        });
        self.0.greenlets.borrow_mut().nodes[node].link = Some(link);
    }

    /// True if `g` is a member (gevent's `greenlet in group`).
    pub fn contains(&self, g: &impl AsRef<GreenletRef>) -> bool {
        self.0.contains(g.as_ref())
    }

    /// Removes a greenlet from the group (it keeps running); frees its slot.
    pub fn discard(&self, g: &impl AsRef<GreenletRef>) {
        self.0.discard(g.as_ref());
    }

    /// Members not gone yet, started or not (a dead member leaves from the
    /// hub's callbacks, after the greenlets that were ready when it died).
    pub fn len(&self) -> usize {
        self.0.greenlets.borrow().len()
    }

    /// True when the group has no member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The members, in the order they were added.
    pub fn greenlets(&self) -> Vec<GreenletRef> {
        self.0.greenlets.borrow().iter().cloned().collect()
    }

    /// Waits until the group is empty.
    ///
    /// # Blocking
    /// Until every member is dead and gone.
    ///
    /// # Panics
    /// In the main greenlet when nothing can ever finish them (LoopExit).
    pub fn join(&self) {
        while !self.is_empty() {
            self.0.empty.wait(None, &|| {});
        }
    }

    /// Waits at most `d` for the group to empty; true if it did.
    ///
    /// # Blocking
    /// As [`join`](Self::join), bounded by `d`.
    ///
    /// # Panics
    /// From a hub callback (link callbacks must not block).
    pub fn join_timeout(&self, d: Duration) -> bool {
        self.0.empty.wait_until(d, || self.is_empty())
    }

    /// Kills every member and waits until they are dead; members added
    /// meanwhile (by a destructor of a dying member, or a spawn into a full
    /// pool that a death let through) are killed too, as gevent's loop
    /// `while self.greenlets` does. Each member is killed once: one that an
    /// earlier `kill` asked to die already (and that caught it, or is
    /// still unwinding) is waited for, not killed again (gevent's `dying`
    /// set).
    ///
    /// # Blocking
    /// As [`crate::killall`], until no live member is left: for ever if
    /// every dying member adds another (as in gevent).
    ///
    /// # Examples
    /// ```
    /// let group = gevent::pool::Group::new();
    /// for _ in 0..3 {
    ///     group.spawn(|| gevent::sleep(std::time::Duration::from_secs(3600)));
    /// }
    /// group.kill();
    /// assert!(group.greenlets().iter().all(|g| g.dead()));
    /// ```
    pub fn kill(&self) {
        self.kill_until(None);
    }

    /// As [`kill`](Self::kill), waiting at most `d` for the members to die
    /// (gevent's `kill(timeout=)`); true if the group emptied. Members
    /// still alive then were asked to die all the same (a later `kill`
    /// waits for them without killing them again). With a zero `d` it
    /// returns at once: members that had started have not unwound yet.
    ///
    /// # Blocking
    /// As [`kill`](Self::kill), bounded by `d`.
    ///
    /// # Panics
    /// From a hub callback (link callbacks must not block).
    pub fn kill_timeout(&self, d: Duration) -> bool {
        self.kill_until(Some(crate::timer::after(std::time::Instant::now(), d)))
    }

    /// Kills one member and waits until it is dead (gevent's `killone`).
    /// A greenlet that is not a member, or that a `kill` or `killone`
    /// already asked to die, is neither killed nor waited for. Called on
    /// the current greenlet, it unwinds at once.
    ///
    /// # Blocking
    /// Until the member is dead.
    ///
    /// # Panics
    /// From a hub callback (link callbacks must not block).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let group = gevent::pool::Group::new();
    /// let stuck = group.spawn(|| gevent::sleep(Duration::from_secs(60)));
    /// let other = group.spawn(|| gevent::sleep(Duration::from_secs(60)));
    /// gevent::sleep(Duration::ZERO);
    /// group.killone(&stuck);
    /// assert!(stuck.dead() && !other.dead());
    /// group.kill();
    /// ```
    pub fn killone(&self, g: &impl AsRef<GreenletRef>) {
        if self.kill_member(g.as_ref()) {
            g.as_ref().join();
        }
    }

    /// As [`killone`](Self::killone), waiting at most `d`; true if `g` is
    /// dead then.
    ///
    /// # Blocking
    /// As [`killone`](Self::killone), bounded by `d`.
    ///
    /// # Panics
    /// From a hub callback (link callbacks must not block).
    pub fn killone_timeout(&self, g: &impl AsRef<GreenletRef>, d: Duration) -> bool {
        let g = g.as_ref();
        if self.kill_member(g) {
            return g.join_timeout(d);
        }
        g.dead()
    }

    /// Asks member `g` to die unless it was asked already; true if it was
    /// asked now.
    fn kill_member(&self, g: &GreenletRef) -> bool {
        if g.dead() || !self.0.contains(g) || !self.0.dying.borrow_mut().insert(g.clone()) {
            return false;
        }
        g.kill_nowait();
        true
    }

    /// The body of `kill` and `kill_timeout`: false if `deadline` passed
    /// with members alive.
    fn kill_until(&self, deadline: Option<std::time::Instant>) -> bool {
        let me = crate::getcurrent();
        loop {
            let members = self.greenlets();
            // The caller, a member, cannot wait for itself: it is asked to
            // die (at once, or after the unwind it is in) and not joined.
            let alive: Vec<GreenletRef> = members.iter().filter(|g| !g.dead() && **g != me).cloned().collect();
            let caller_member = members.iter().any(|g| *g == me && !g.dead());
            if alive.is_empty() {
                // Dead members whose leaving link has not run yet (one
                // killed before it started is dead at once, its links
                // queued) leave now, as they have after gevent's joinall.
                for g in &members {
                    self.0.discard(g);
                }
                if caller_member {
                    crate::runtime::killall_nowait(std::slice::from_ref(&me));
                }
                return true;
            }
            let fresh: Vec<GreenletRef> = {
                let mut dying = self.0.dying.borrow_mut();
                alive.iter().filter(|g| dying.insert((*g).clone())).cloned().collect()
            };
            let mut ask = fresh;
            if caller_member {
                ask.push(me.clone());
            }
            crate::runtime::killall_nowait(&ask);
            match deadline {
                None => crate::joinall(&alive),
                Some(at) => {
                    let left = at.saturating_duration_since(std::time::Instant::now());
                    if crate::joinall_timeout(&alive, left).len() < alive.len() {
                        return false;
                    }
                }
            }
        }
    }

    /// Runs `f` on every item in its own member greenlet; returns the results
    /// in input order.
    ///
    /// # Blocking
    /// Until every task finished.
    ///
    /// # Panics
    /// When a task panicked or was killed (gevent re-raises it), naming the
    /// cause.
    pub fn map<A, T, F>(&self, f: F, items: impl IntoIterator<Item = A>) -> Vec<T>
    where
        F: Fn(A) -> T + 'static,
        A: 'static,
        T: 'static,
    {
        let f = Rc::new(f);
        let tasks: Vec<Greenlet<T>> = items
            .into_iter()
            .map(|a| {
                let f = f.clone();
                self.spawn(move || f(a))
            })
            .collect();
        tasks.into_iter().map(task_result).collect()
    }

    /// As [`map`](Self::map), in a greenlet of its own that this returns at
    /// once (gevent's `map_async`): its value is the results, in input
    /// order. That greenlet is not a member (the tasks are): join it, not
    /// the group, to wait for the results.
    ///
    /// # Examples
    /// ```
    /// let group = gevent::pool::Group::new();
    /// let squares = group.map_async(|x: u32| x * x, 1..=4);
    /// assert_eq!(squares.get(), Ok(vec![1, 4, 9, 16]));
    /// ```
    pub fn map_async<A, T, F>(&self, f: F, items: impl IntoIterator<Item = A> + 'static) -> Greenlet<Vec<T>>
    where
        F: Fn(A) -> T + 'static,
        A: 'static,
        T: 'static,
    {
        let group = self.clone();
        crate::spawn(move || group.map(f, items))
    }

    /// As [`map`](Self::map), streaming: yields each result in input order
    /// as soon as it and the ones before it are done. Tasks are spawned by a
    /// feeder greenlet: a [`Pool`] runs at most its size at once, but the
    /// feeder runs ahead of the consumer without bound (gevent's default),
    /// so with an endless input into a [`Group`] it never stops spawning;
    /// [`imap_maxsize`](Self::imap_maxsize) bounds it. Dropping the
    /// iterator stops the feeder: no task is spawned for the rest of the
    /// input (tasks already spawned run on).
    ///
    /// # Blocking
    /// Each `next` waits for the next result in order.
    ///
    /// # Panics
    /// `next` panics when that task panicked or was killed.
    pub fn imap<A, T, F>(&self, f: F, items: impl IntoIterator<Item = A> + 'static) -> impl Iterator<Item = T> + 'static
    where
        F: Fn(A) -> T + 'static,
        A: 'static,
        T: 'static,
    {
        self.imap_ahead(f, items, Room(None))
    }

    /// As [`imap`](Self::imap), with at most `maxsize >= 1` results ahead
    /// of the consumer (gevent's `imap(..., maxsize=)`): the feeder waits
    /// before spawning a task while `maxsize` tasks are spawned whose
    /// results were not taken yet. An endless input is fine here.
    ///
    /// # Examples
    /// ```
    /// let group = gevent::pool::Group::new();
    /// let squares: Vec<u64> = group.imap_maxsize(|x: u64| x * x, 0u64.., 4).take(5).collect();
    /// assert_eq!(squares, [0, 1, 4, 9, 16]);
    /// ```
    ///
    /// # Blocking
    /// As [`imap`](Self::imap).
    ///
    /// # Panics
    /// If `maxsize` is 0; `next` as [`imap`](Self::imap)'s.
    pub fn imap_maxsize<A, T, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A> + 'static,
        maxsize: usize,
    ) -> impl Iterator<Item = T> + 'static
    where
        F: Fn(A) -> T + 'static,
        A: 'static,
        T: 'static,
    {
        self.imap_ahead(f, items, Room::limit(maxsize))
    }

    fn imap_ahead<A, T, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A> + 'static,
        room: Room,
    ) -> impl Iterator<Item = T> + 'static
    where
        F: Fn(A) -> T + 'static,
        A: 'static,
        T: 'static,
    {
        let tasks: Queue<Result<Greenlet<T>, GreenletError>> = Queue::new();
        let (group, out, f) = (self.clone(), tasks.clone(), Rc::new(f));
        let feeder_room = room.clone();
        let feeder = crate::spawn(move || {
            let _close = Closing(out.clone());
            feed(&out, || {
                for a in items {
                    feeder_room.wait();
                    let f = f.clone();
                    out.put(Ok(group.spawn(move || f(a))));
                }
            });
        });
        // The task whose result `next` waits for: kept while it waits, so
        // a `next` interrupted (timed out, killed) loses nothing and frees
        // no room; the next call waits for the same task.
        let mut front: Option<Greenlet<T>> = None;
        let results = std::iter::from_fn(move || {
            if front.is_none() {
                front = Some((&tasks).into_iter().next()?.unwrap_or_else(|e| input_failed(&e)));
            }
            let waiting = front.as_ref().expect("the front task");
            waiting.join();
            let task = front.take().expect("the front task");
            let _taken = room.taken();
            Some(task_result(task))
        });
        Fed { results, feeder }
    }

    /// As [`imap`](Self::imap), but yields results in completion order
    /// (and as it, runs ahead without bound and stops feeding when dropped).
    ///
    /// # Blocking
    /// Each `next` waits for the next task to finish.
    ///
    /// # Panics
    /// `next` panics when a task panicked or was killed.
    pub fn imap_unordered<A, T, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A> + 'static,
    ) -> impl Iterator<Item = T> + 'static
    where
        F: Fn(A) -> T + 'static,
        A: 'static,
        T: 'static,
    {
        self.imap_unordered_ahead(f, items, Room(None))
    }

    /// As [`imap_unordered`](Self::imap_unordered), with at most
    /// `maxsize >= 1` results ahead of the consumer (see
    /// [`imap_maxsize`](Self::imap_maxsize)).
    ///
    /// # Blocking
    /// As [`imap_unordered`](Self::imap_unordered).
    ///
    /// # Panics
    /// If `maxsize` is 0; `next` as
    /// [`imap_unordered`](Self::imap_unordered)'s.
    pub fn imap_unordered_maxsize<A, T, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A> + 'static,
        maxsize: usize,
    ) -> impl Iterator<Item = T> + 'static
    where
        F: Fn(A) -> T + 'static,
        A: 'static,
        T: 'static,
    {
        self.imap_unordered_ahead(f, items, Room::limit(maxsize))
    }

    fn imap_unordered_ahead<A, T, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A> + 'static,
        room: Room,
    ) -> impl Iterator<Item = T> + 'static
    where
        F: Fn(A) -> T + 'static,
        A: 'static,
        T: 'static,
    {
        let feeder_room = room.clone();
        let done = Queue::new();
        let (group, out, f) = (self.clone(), done.clone(), Rc::new(f));
        // `Err(Err(e))`: the input itself panicked.
        let done: Queue<Result<T, Result<GreenletError, GreenletError>>> = done;
        let feeder = crate::spawn(move || {
            let _close = Closing(out.clone());
            let (mut spawned, mut live) = (Vec::new(), 0);
            let input = feed_result(|| {
                for a in items {
                    feeder_room.wait();
                    let (f, result) = (f.clone(), out.clone());
                    let task = group.spawn(move || result.put(Ok(f(a))));
                    let out = out.clone();
                    task.link(move |g| {
                        if let Some(e) = g.exception() {
                            out.put(Err(Ok(e)));
                        }
                    });
                    spawned.push(task);
                    // Only the live ones are joined: an endless input keeps
                    // no handle of every task it ever spawned.
                    if spawned.len() >= 2 * live.max(16) {
                        spawned.retain(|t| !t.dead());
                        live = spawned.len();
                    }
                }
            });
            crate::joinall(&spawned);
            // Failures arrive through links, run after the deaths.
            crate::yield_now();
            if let Err(e) = input {
                out.put(Err(Err(e)));
            }
        });
        let results = std::iter::from_fn(move || {
            let r = (&done).into_iter().next()?;
            let _taken = room.taken();
            Some(match r {
                Ok(v) => v,
                Err(Ok(e)) => task_failed(&e),
                Err(Err(e)) => input_failed(&e),
            })
        });
        Fed { results, feeder }
    }
}

/// The run-ahead limit of a streaming map (`None`: none): the feeder takes
/// a permit before each spawn, the consumer gives it back as it takes the
/// result.
#[derive(Clone)]
struct Room(Option<Semaphore>);

impl Room {
    fn limit(maxsize: usize) -> Room {
        assert!(maxsize >= 1, "gevent: a map's maxsize must be at least 1");
        Room(Some(Semaphore::new(maxsize)))
    }

    /// Waits for room to spawn one more task.
    fn wait(&self) {
        if let Some(s) = &self.0 {
            s.acquire();
        }
    }

    /// A result is being taken: its room goes back when the guard goes
    /// (also when taking it panics: the task failed).
    fn taken(&self) -> Taken<'_> {
        Taken(self)
    }
}

struct Taken<'a>(&'a Room);

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if let Some(s) = &self.0 .0 {
            s.release();
        }
    }
}

/// A streaming map's results; dropped (the consumer stopped early), it
/// stops the feeder, so no further task is spawned for the rest of the
/// input. Tasks already running run on.
struct Fed<I> {
    results: I,
    feeder: Greenlet<()>,
}

impl<I: Iterator> Iterator for Fed<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        self.results.next()
    }
}

impl<I> Drop for Fed<I> {
    fn drop(&mut self) {
        if !self.feeder.dead() {
            self.feeder.kill_nowait();
        }
    }
}

/// Closes a map's output queue however its feeder ends (a kill included),
/// so the consumer never waits for results that cannot come.
struct Closing<T: 'static>(Queue<T>);

impl<T: 'static> Drop for Closing<T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Runs a map's input loop; a panic in the input iterator becomes an error
/// for the consumer (kills and timeouts unwind on).
fn feed_result(input: impl FnOnce()) -> Result<(), GreenletError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(input)) {
        Ok(()) => Ok(()),
        Err(p) => match crate::greenlet::error_from_payload(&*p) {
            e @ GreenletError::Panicked(_) => {
                crate::hub::discard_payload(p);
                Err(e)
            }
            _ => std::panic::resume_unwind(p),
        },
    }
}

/// [`feed_result`], the error going straight into `out`.
fn feed<T: 'static>(out: &Queue<Result<T, GreenletError>>, input: impl FnOnce()) {
    if let Err(e) = feed_result(input) {
        out.put(Err(e));
    }
}

fn input_failed(e: &GreenletError) -> ! {
    panic!("gevent: the input iterator of a Group/Pool map panicked: {e}")
}

fn task_result<T: 'static>(g: Greenlet<T>) -> T {
    g.into_result().unwrap_or_else(|e| task_failed(&e))
}

fn task_failed(e: &GreenletError) -> ! {
    panic!("gevent: a task of a Group/Pool map or apply failed: {e}")
}

impl Pool {
    /// A pool running at most `size >= 1` greenlets at once.
    ///
    /// # Panics
    /// If `size` is 0.
    pub fn new(size: usize) -> Pool {
        assert!(size >= 1, "gevent: a Pool needs a size of at least 1");
        Pool { group: Group(Rc::new(Members::new(Some(Semaphore::new(size))))), size }
    }

    fn slots(&self) -> &Semaphore {
        self.group.0.slots.as_ref().expect("a Pool has slots")
    }

    /// The concurrency limit.
    pub fn size(&self) -> usize {
        self.size
    }

    /// True when every slot is taken (gevent's `full()`).
    pub fn is_full(&self) -> bool {
        self.free_count() == 0
    }

    /// Free slots.
    pub fn free_count(&self) -> usize {
        self.slots().available()
    }

    /// Waits until at least one slot is free.
    ///
    /// # Blocking
    /// While the pool is full.
    pub fn wait_available(&self) {
        self.slots().wait();
    }

    /// Waits at most `d` until at least one slot is free; true if one is
    /// (gevent's `wait_available(timeout)`).
    ///
    /// # Blocking
    /// While the pool is full, at most `d`.
    ///
    /// # Panics
    /// From a hub callback (link callbacks must not block).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let pool = gevent::pool::Pool::new(1);
    /// pool.spawn(|| gevent::sleep(Duration::from_millis(20)));
    /// assert!(!pool.wait_available_timeout(Duration::from_millis(1)));
    /// assert!(pool.wait_available_timeout(Duration::from_secs(5)));
    /// ```
    pub fn wait_available_timeout(&self, d: Duration) -> bool {
        self.slots().wait_timeout(d)
    }

    /// Adds a greenlet if a slot is free now, without waiting (gevent's
    /// `add(greenlet, blocking=False)`); adding a member again does nothing
    /// and succeeds.
    ///
    /// # Errors
    /// [`PoolFull`] when every slot is taken.
    ///
    /// # Examples
    /// ```
    /// use gevent::pool::{Pool, PoolFull};
    /// let pool = Pool::new(1);
    /// let busy = gevent::spawn(|| gevent::sleep(std::time::Duration::from_millis(10)));
    /// assert_eq!(pool.try_add(&busy), Ok(()));
    /// let other = gevent::Greenlet::new(|| ());
    /// assert_eq!(pool.try_add(&other), Err(PoolFull(())));
    /// pool.join();
    /// assert_eq!(pool.try_add(&other), Ok(()));
    /// ```
    #[doc(alias = "PoolFull")]
    pub fn try_add(&self, g: &impl AsRef<GreenletRef>) -> Result<(), PoolFull> {
        let g = g.as_ref();
        if self.contains(g) {
            return Ok(());
        }
        if !self.slots().try_acquire() {
            return Err(PoolFull(()));
        }
        self.group.enlist(g);
        Ok(())
    }

    /// Adds a greenlet, waiting at most `d` for a free slot (gevent's
    /// `add(greenlet, timeout=d)`).
    ///
    /// # Errors
    /// [`PoolFull`] when no slot freed within `d`.
    ///
    /// # Blocking
    /// While the pool is full, at most `d`.
    ///
    /// # Panics
    /// From a hub callback (link callbacks must not block).
    pub fn add_timeout(&self, g: &impl AsRef<GreenletRef>, d: Duration) -> Result<(), PoolFull> {
        let g = g.as_ref();
        if self.contains(g) {
            return Ok(());
        }
        if !self.slots().acquire_timeout(d) {
            return Err(PoolFull(()));
        }
        self.group.enlist(g);
        Ok(())
    }

    /// Spawns `f` as a member if a slot is free now, without waiting
    /// (gevent's `spawn` into a pool with `blocking=False`: a server
    /// refusing work it has no room for).
    ///
    /// # Errors
    /// [`PoolFull`] with `f` given back, unrun, when every slot is taken.
    ///
    /// # Examples
    /// ```
    /// use gevent::pool::Pool;
    /// let pool = Pool::new(1);
    /// let first = pool.try_spawn(|| 1).expect("a free slot");
    /// let refused = pool.try_spawn(|| 2).unwrap_err();
    /// assert_eq!(first.get(), Ok(1));
    /// pool.join();
    /// assert_eq!(pool.try_spawn(refused.0).expect("free again").get(), Ok(2));
    /// ```
    pub fn try_spawn<F, T>(&self, f: F) -> Result<Greenlet<T>, PoolFull<F>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        if !self.slots().try_acquire() {
            return Err(PoolFull(f));
        }
        let g = Greenlet::new(f);
        self.group.enlist(g.as_ref());
        g.start();
        Ok(g)
    }

    /// The pool as a group (every `Group` method applies).
    pub fn as_group(&self) -> &Group {
        &self.group
    }
}

impl std::ops::Deref for Pool {
    type Target = Group;

    fn deref(&self) -> &Group {
        &self.group
    }
}

/// Something a greenlet can wait for: [`gevent::wait`](wait) and
/// [`iwait`] accept any mix of them through `&dyn Waitable`: greenlets
/// (ready once dead), `Event` (set), `AsyncResult` (ready), the
/// semaphores and `Lock` (a permit free; waiting takes none), and child
/// processes: a [`Child`](crate::subprocess::Child) or a
/// [`ChildExit`](crate::subprocess::ChildExit) handle (exited; waiting
/// reaps it).
///
/// # Examples
/// ```
/// use gevent::lock::Semaphore;
/// let sem = Semaphore::new(0);
/// let s = sem.clone();
/// gevent::spawn(move || s.release());
/// let ready: Vec<usize> = gevent::iwait(&[&sem], None).collect();
/// assert_eq!(ready, [0]);
/// assert_eq!(sem.available(), 1, "waiting took no permit");
/// ```
pub trait Waitable {
    /// True once waiting would not park (a wait on a set `Event` may still
    /// yield once, behind the greenlets its `set` woke).
    fn is_ready(&self) -> bool;
    /// Waits until ready.
    ///
    /// # Blocking
    /// Until ready.
    fn wait_ready(&self);
    /// A handle to the same object, for a helper greenlet.
    fn boxed(&self) -> Box<dyn Waitable>;
    /// A mark of the object's state now, for
    /// [`wait_ready_since`](Self::wait_ready_since) (0 unless the object
    /// can become ready and then not ready again).
    fn mark(&self) -> u64 {
        0
    }
    /// Waits until ready, or returns at once if the object was ready at
    /// some point since [`mark`](Self::mark) returned `mark` (an `Event`
    /// set and cleared again: gevent's `iwait` sees that pulse too).
    ///
    /// # Blocking
    /// As [`wait_ready`](Self::wait_ready).
    fn wait_ready_since(&self, mark: u64) {
        let _ = mark;
        self.wait_ready()
    }
}

/// `Waitable` for a handle type: ready when `$ready`, waited for by `$wait`.
macro_rules! waitable {
    ($([$($gen:tt)*] $ty:ty => $ready:ident, $wait:ident;)*) => {$(
        impl<$($gen)*> Waitable for $ty {
            fn is_ready(&self) -> bool {
                self.$ready()
            }
            fn wait_ready(&self) {
                self.$wait();
            }
            fn boxed(&self) -> Box<dyn Waitable> {
                Box::new(self.clone())
            }
        }
    )*};
}

waitable! {
    [] GreenletRef => dead, join;
    [T: 'static] Greenlet<T> => dead, join;
    [T: 'static] AsyncResult<T> => ready, wait;
}

/// `Waitable` for the semaphores: ready while a permit is free; waiting
/// keeps none (gevent's `iwait` on a semaphore).
macro_rules! waitable_semaphore {
    ($($ty:ty),*) => {$(
        impl Waitable for $ty {
            fn is_ready(&self) -> bool {
                !self.locked()
            }
            fn wait_ready(&self) {
                self.wait();
            }
            fn boxed(&self) -> Box<dyn Waitable> {
                Box::new(self.clone())
            }
        }
    )*};
}

waitable_semaphore!(crate::lock::Semaphore, crate::lock::BoundedSemaphore, crate::lock::Lock);

impl Waitable for Event {
    fn is_ready(&self) -> bool {
        self.is_set()
    }
    fn wait_ready(&self) {
        self.wait();
    }
    fn boxed(&self) -> Box<dyn Waitable> {
        Box::new(self.clone())
    }
    fn mark(&self) -> u64 {
        Event::mark(self)
    }
    fn wait_ready_since(&self, mark: u64) {
        self.wait_since(mark);
    }
}

/// Yields the indices of `objects` as each becomes ready (ready ones first,
/// in order), at most until `timeout` (gevent's `iwait`).
///
/// # Blocking
/// Each `next` waits for the next object to become ready, or the deadline.
/// One watcher greenlet per object not ready yet does the waiting; they are
/// killed when the iterator is dropped.
///
/// # Examples
/// ```
/// use gevent::event::Event;
/// let (a, b) = (Event::new(), Event::new());
/// let set_b = b.clone();
/// gevent::spawn(move || set_b.set());
/// let first: Vec<usize> = gevent::iwait(&[&a, &b], None).take(1).collect();
/// assert_eq!(first, [1]);
/// ```
pub fn iwait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> IWait {
    let ready: Queue<usize> = Queue::new();
    let mut watchers = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        if o.is_ready() {
            ready.put(i);
            continue;
        }
        // Marked now: a watcher that runs after the object was ready and
        // not again (an event set and cleared) still reports it.
        let (o, q) = (o.boxed(), ready.clone());
        let mark = o.mark(); // of the handle that waits
        watchers.push(crate::spawn(move || {
            o.wait_ready_since(mark);
            q.put(i);
        }));
    }
    IWait { ready, watchers, deadline: timeout.map(|d| crate::timer::after(Instant::now(), d)), left: objects.len() }
}

/// The iterator of [`iwait`]: indices of objects as they become ready.
#[derive(Debug)]
pub struct IWait {
    ready: Queue<usize>,
    watchers: Vec<Greenlet<()>>,
    deadline: Option<Instant>,
    left: usize,
}

impl Iterator for IWait {
    type Item = usize;

    /// The index of the next object to become ready; `None` once all were,
    /// or at the deadline.
    ///
    /// # Blocking
    /// Until an object is ready or the deadline passes.
    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        let next = match self.deadline {
            None => Some(self.ready.get()),
            Some(d) => self.ready.get_timeout(d.saturating_duration_since(Instant::now())).ok(),
        };
        match next {
            Some(_) => self.left -= 1,
            None => self.left = 0,
        }
        next
    }
}

/// # Blocking
/// Dropping an `IWait` kills its watcher greenlets and waits for them to
/// unwind (briefly: they only wait).
impl Drop for IWait {
    fn drop(&mut self) {
        crate::killall(std::mem::take(&mut self.watchers));
    }
}

/// Waits until every object is ready or `timeout` passes; returns the
/// indices of the ready ones, in the order they became ready (gevent's
/// `wait`).
///
/// # Blocking
/// As [`iwait`].
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Vec<usize> {
    iwait(objects, timeout).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::IdHasher;

    fn hash(id: u64) -> u64 {
        BuildHasherDefault::<IdHasher>::default().hash_one(id)
    }

    /// Ids of one aligned block take consecutive places (the low bits the
    /// table indexes by), with tags (the top seven bits) that differ.
    #[test]
    fn ids_of_a_block_are_neighbours_with_their_own_tags() {
        let places = (1 << 56) - 1;
        let base = 64 * 12_345;
        let first = hash(base) & places;
        for i in 0..64 {
            assert_eq!(hash(base + i) & places, (first + i) & places);
        }
        let tags: HashSet<u64> = (0..64).map(|i| hash(base + i) >> 57).collect();
        assert_eq!(tags.len(), 64);
    }

    /// Ids a power of two apart still spread over a table's slots (a hash
    /// that kept the ids' low bits as they are would put 100,000 ids 1,024
    /// apart on 128 of the 131,072 slots).
    #[test]
    fn ids_a_power_of_two_apart_spread() {
        let slots = (1u64 << 17) - 1;
        let used: HashSet<u64> = (0..100_000u64).map(|i| hash(i * 1024) & slots).collect();
        assert!(used.len() > 50_000, "{} slots used", used.len());
    }
}
