//! Queues (gevent.queue): `Queue` (FIFO, unbounded or bounded),
//! `LifoQueue`, `PriorityQueue`, `JoinableQueue` and `Channel`
//! (rendezvous), all on one core (`core.rs`) that hands items over directly
//! to the waiter whose turn it is.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use crate::hub::Waiters;

mod core;
mod store;

use self::core::Core;
use self::store::{MinHeap, Stack, Store};

/// `get_nowait` / `get_timeout` found no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Empty;

impl fmt::Display for Empty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("queue is empty")
    }
}

impl std::error::Error for Empty {}

/// `put_nowait` / `put_timeout` found no room; gives the item back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Full<T>(pub T);

impl<T> fmt::Debug for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Full(..)")
    }
}

impl<T> fmt::Display for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("queue is full")
    }
}

impl<T> std::error::Error for Full<T> {}

/// The put/get methods every queue type shares (over its `Core` in `.0`),
/// each with its own docs: a rendezvous `Channel` describes them in its
/// own terms.
macro_rules! put_get {
    (
        $(#[$put:meta])* put;
        $(#[$put_timeout:meta])* put_timeout;
        $(#[$put_nowait:meta])* put_nowait;
        $(#[$get:meta])* get;
        $(#[$get_timeout:meta])* get_timeout;
        $(#[$get_nowait:meta])* get_nowait;
    ) => {
        $(#[$put])*
        pub fn put(&self, item: T) {
            if self.0.put(item, None).is_err() {
                unreachable!("an unbounded wait to put ends with the item placed");
            }
        }

        $(#[$put_timeout])*
        pub fn put_timeout(&self, item: T, d: Duration) -> Result<(), Full<T>> {
            self.0.put(item, Some(d))
        }

        $(#[$put_nowait])*
        pub fn put_nowait(&self, item: T) -> Result<(), Full<T>> {
            // gevent's `put(item, block=False)`: a put that waits no time.
            self.0.put(item, Some(Duration::ZERO))
        }

        $(#[$get])*
        pub fn get(&self) -> T {
            match self.0.get(None) {
                Ok(item) => item,
                Err(Empty) => unreachable!("an unbounded wait for an item ends with one"),
            }
        }

        $(#[$get_timeout])*
        pub fn get_timeout(&self, d: Duration) -> Result<T, Empty> {
            self.0.get(Some(d))
        }

        $(#[$get_nowait])*
        pub fn get_nowait(&self) -> Result<T, Empty> {
            self.0.try_get().ok_or(Empty)
        }

        /// Greenlets blocked in `get` (and, for the queues that have it,
        /// in `peek`: they wait in the same line, as in gevent).
        pub fn getters(&self) -> usize {
            self.0.getters.len()
        }

        /// Greenlets blocked in `put`.
        pub fn putters(&self) -> usize {
            self.0.putters.len()
        }
    };
}

macro_rules! queue_api {
    ($name:ident, [$($bound:tt)*]) => {
        impl<T: 'static $($bound)*> $name<T> {
            put_get! {
                /// Puts an item, waiting while a bounded queue is full.
                ///
                /// # Blocking
                /// Only when bounded and full; putters get free slots in FIFO
                /// order. Killed or timed out while waiting, the putter leaves:
                /// its item is dropped with the unwinding frame, unless a slot
                /// freed for it already (then the item is in the queue).
                ///
                /// # Panics
                /// From a hub callback; in the main greenlet when nothing can
                /// ever make room (LoopExit).
                put;
                /// As [`put`](Self::put), waiting at most `d`; gives the item
                /// back in `Full` if there was no room in time.
                ///
                /// # Errors
                /// `Full(item)`, giving the item back, when there was no room within
                /// `d`.
                ///
                /// # Blocking
                /// As [`put`](Self::put), bounded by `d`.
                ///
                /// # Panics
                /// From a hub callback (link callbacks must not block).
                put_timeout;
                /// Puts the item if there is room now; never switches.
                ///
                /// # Errors
                /// `Full(item)`, giving the item back, when there is no room now.
                put_nowait;
                /// Takes the next item, waiting while there is none.
                ///
                /// # Blocking
                /// While empty; getters are served in FIFO order. Killed or timed
                /// out while waiting, the greenlet leaves the queue and an item
                /// handed to it meanwhile goes to the next getter (or stays).
                ///
                /// # Panics
                /// From a hub callback; in the main greenlet when nothing can
                /// ever put (LoopExit).
                get;
                /// As [`get`](Self::get), waiting at most `d`.
                ///
                /// # Errors
                /// [`Empty`] when no item came within `d`.
                ///
                /// # Blocking
                /// As [`get`](Self::get), bounded by `d`.
                ///
                /// # Panics
                /// From a hub callback (link callbacks must not block).
                get_timeout;
                /// Takes an item if one is there now; never switches. An item
                /// already handed to a woken getter that has not run yet is
                /// that getter's: it counts in [`len`](Self::len) but is not
                /// taken here (`Err(Empty)`); `peek_nowait` shows it.
                ///
                /// # Errors
                /// [`Empty`] when no item is there now.
                get_nowait;
            }

            /// A copy of the queue's front item, the one the next getter in
            /// line takes (an item handed to a woken getter that has not run
            /// yet included: it is still in the queue, as [`len`](Self::len)
            /// counts it); never switches.
            ///
            /// # Errors
            /// [`Empty`] when [`len`](Self::len) is 0.
            pub fn peek_nowait(&self) -> Result<T, Empty>
            where
                T: Clone,
            {
                self.0.peek().ok_or(Empty)
            }

            /// A copy of the queue's front item (as
            /// [`peek_nowait`](Self::peek_nowait)), waiting while the queue
            /// is empty (gevent's `peek()`); the item stays in the queue.
            ///
            /// # Blocking
            /// While empty. A peeker waits in line with the getters (it
            /// counts in [`getters`](Self::getters)) and looks when it runs:
            /// an item put is seen by every peeker that started waiting
            /// before the getter that takes it (as in gevent, where they run
            /// before that getter).
            ///
            /// # Panics
            /// From a hub callback; in the main greenlet when nothing can
            /// ever put (LoopExit).
            pub fn peek(&self) -> T
            where
                T: Clone,
            {
                match self.0.peek_wait(None) {
                    Ok(item) => item,
                    Err(Empty) => unreachable!("an unbounded wait for an item ends with one"),
                }
            }

            /// As [`peek`](Self::peek), waiting at most `d` (gevent's
            /// `peek(timeout=d)`).
            ///
            /// # Errors
            /// [`Empty`] when no item came within `d`.
            ///
            /// # Blocking
            /// As [`peek`](Self::peek), bounded by `d`.
            ///
            /// # Panics
            /// From a hub callback (link callbacks must not block).
            pub fn peek_timeout(&self, d: Duration) -> Result<T, Empty>
            where
                T: Clone,
            {
                self.0.peek_wait(Some(d))
            }

            /// Items in the queue, those handed to woken getters that have
            /// not run yet included (gevent's `qsize`).
            #[doc(alias = "qsize")]
            pub fn len(&self) -> usize {
                self.0.len()
            }

            /// True when no item is queued (items handed to woken getters
            /// included, as in [`len`](Self::len)).
            #[doc(alias = "empty")]
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// True when a bounded queue has no free slot.
            #[doc(alias = "full")]
            pub fn is_full(&self) -> bool {
                !self.0.has_room()
            }

            /// The bound, `None` for an unbounded queue.
            pub fn maxsize(&self) -> Option<usize> {
                self.0.maxsize
            }

            /// Ends iteration: `for item in &queue` stops once the queue is
            /// closed and drained. Puts still work.
            pub fn close(&self) {
                self.0.close();
            }
        }

        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                $name(self.0.clone())
            }
        }

        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("maxsize", &self.0.maxsize)
                    .field("getters", &self.0.getters.len())
                    .field("putters", &self.0.putters.len())
                    .finish()
            }
        }

        impl<'a, T: 'static $($bound)*> IntoIterator for &'a $name<T> {
            type Item = T;
            type IntoIter = Iter<'a, T>;

            /// Takes items as they come, until the queue is closed and
            /// drained.
            fn into_iter(self) -> Self::IntoIter {
                Iter { core: &*self.0 }
            }
        }
    };
}

/// Items taken from a queue until it is closed and drained.
pub struct Iter<'a, T> {
    core: &'a dyn Drain<T>,
}

/// A queue core seen by its iterator, whatever its store.
trait Drain<T> {
    fn next_until_closed(&self) -> Option<T>;
}

impl<T, S: Store<T>> Drain<T> for Core<T, S> {
    fn next_until_closed(&self) -> Option<T> {
        Core::next_until_closed(self)
    }
}

impl<T> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Iter")
    }
}

/// # Blocking
/// Each `next` blocks as [`Queue::get`] until an item comes or the queue is
/// closed and drained.
impl<T> Iterator for Iter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.core.next_until_closed()
    }
}

/// A FIFO queue, unbounded or bounded (gevent's `Queue`). A `Clone` handle.
///
/// # Examples
/// ```
/// use gevent::queue::Queue;
/// let q = Queue::bounded(2);
/// let p = q.clone();
/// let producer = gevent::spawn(move || for i in 0..5 { p.put(i) });
/// let got: Vec<i32> = (0..5).map(|_| q.get()).collect();
/// producer.join();
/// assert_eq!(got, [0, 1, 2, 3, 4]);
/// ```
pub struct Queue<T>(Rc<Core<T, VecDeque<T>>>);

impl<T: 'static> Default for Queue<T> {
    fn default() -> Self {
        Queue::new()
    }
}

impl<T: 'static> Queue<T> {
    /// An unbounded queue.
    pub fn new() -> Queue<T> {
        Queue(Rc::new(Core::new(None)))
    }

    /// A queue holding at most `maxsize` items; `put` blocks when full.
    ///
    /// # Panics
    /// If `maxsize` is 0 (use [`Channel`] for a rendezvous).
    pub fn bounded(maxsize: usize) -> Queue<T> {
        assert!(maxsize >= 1, "gevent: a bounded Queue needs maxsize >= 1 (a Channel is the rendezvous)");
        Queue(Rc::new(Core::new(Some(maxsize))))
    }
}

queue_api!(Queue, []);

/// A last-in, first-out queue (gevent's `LifoQueue`). A `Clone` handle.
pub struct LifoQueue<T>(Rc<Core<T, Stack<T>>>);

impl<T: 'static> Default for LifoQueue<T> {
    fn default() -> Self {
        LifoQueue::new()
    }
}

impl<T: 'static> LifoQueue<T> {
    /// An unbounded LIFO queue.
    pub fn new() -> LifoQueue<T> {
        LifoQueue(Rc::new(Core::new(None)))
    }

    /// A LIFO queue holding at most `maxsize >= 1` items.
    ///
    /// # Panics
    /// If `maxsize` is 0.
    pub fn bounded(maxsize: usize) -> LifoQueue<T> {
        assert!(maxsize >= 1, "gevent: a bounded LifoQueue needs maxsize >= 1");
        LifoQueue(Rc::new(Core::new(Some(maxsize))))
    }
}

queue_api!(LifoQueue, []);

/// A queue that hands out its smallest item first (gevent's
/// `PriorityQueue`). A `Clone` handle.
///
/// # Examples
/// ```
/// use gevent::queue::PriorityQueue;
/// let q = PriorityQueue::new();
/// for x in [3, 1, 2] { q.put(x); }
/// assert_eq!((q.get(), q.get(), q.get()), (1, 2, 3));
/// ```
pub struct PriorityQueue<T>(Rc<Core<T, MinHeap<T>>>);

impl<T: Ord + 'static> Default for PriorityQueue<T> {
    fn default() -> Self {
        PriorityQueue::new()
    }
}

impl<T: Ord + 'static> PriorityQueue<T> {
    /// An unbounded priority queue.
    pub fn new() -> PriorityQueue<T> {
        PriorityQueue(Rc::new(Core::new(None)))
    }

    /// A priority queue holding at most `maxsize >= 1` items.
    ///
    /// # Panics
    /// If `maxsize` is 0.
    pub fn bounded(maxsize: usize) -> PriorityQueue<T> {
        assert!(maxsize >= 1, "gevent: a bounded PriorityQueue needs maxsize >= 1");
        PriorityQueue(Rc::new(Core::new(Some(maxsize))))
    }
}

queue_api!(PriorityQueue, [+ Ord]);

/// A FIFO queue that counts unfinished tasks (gevent's `JoinableQueue`):
/// each `put` adds one, each `task_done` retires one, and `join` waits until
/// none is left. A `Clone` handle.
///
/// # Examples
/// ```
/// use gevent::queue::JoinableQueue;
/// let q = JoinableQueue::new();
/// let w = q.clone();
/// gevent::spawn(move || loop { let _job: u32 = w.get(); w.task_done(); });
/// for job in 0..3 { q.put(job); }
/// q.join();
/// assert_eq!(q.unfinished(), 0);
/// ```
pub struct JoinableQueue<T>(Rc<Joinable<T>>);

struct Joinable<T> {
    queue: Queue<T>,
    /// Tasks marked done (the unfinished ones: items placed minus these).
    done: Cell<u64>,
    joiners: Waiters,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue(self.0.clone())
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue").field("unfinished", &(self.0.queue.0.placed() - self.0.done.get())).finish()
    }
}

impl<T: 'static> Default for JoinableQueue<T> {
    fn default() -> Self {
        JoinableQueue::new()
    }
}

impl<T: 'static> JoinableQueue<T> {
    /// An unbounded joinable queue.
    pub fn new() -> JoinableQueue<T> {
        Self::of(Queue::new())
    }

    /// A joinable queue holding at most `maxsize >= 1` items.
    ///
    /// # Panics
    /// If `maxsize` is 0.
    pub fn bounded(maxsize: usize) -> JoinableQueue<T> {
        Self::of(Queue::bounded(maxsize))
    }

    fn of(queue: Queue<T>) -> JoinableQueue<T> {
        JoinableQueue(Rc::new(Joinable { queue, done: Cell::new(0), joiners: Waiters::default() }))
    }

    /// As [`Queue::put`]; one more unfinished task once the item is in the
    /// queue.
    ///
    /// # Blocking
    /// As [`Queue::put`]. A putter waiting for room adds its task when its
    /// item moves in (as a getter makes room), even if the putter is then
    /// killed before it resumes.
    pub fn put(&self, item: T) {
        self.0.queue.put(item);
    }

    /// As [`Queue::put_timeout`]; one more unfinished task if it was put.
    ///
    /// # Errors
    /// As [`Queue::put_timeout`].
    ///
    /// # Blocking
    /// As [`put`](Self::put), bounded by `d`.
    pub fn put_timeout(&self, item: T, d: Duration) -> Result<(), Full<T>> {
        self.0.queue.put_timeout(item, d)
    }

    /// As [`Queue::put_nowait`]; one more unfinished task if it was put.
    ///
    /// # Errors
    /// As [`Queue::put_nowait`].
    pub fn put_nowait(&self, item: T) -> Result<(), Full<T>> {
        self.0.queue.put_nowait(item)
    }

    /// As [`Queue::get`].
    ///
    /// # Blocking
    /// As [`Queue::get`].
    pub fn get(&self) -> T {
        self.0.queue.get()
    }

    /// As [`Queue::get_timeout`].
    ///
    /// # Errors
    /// As [`Queue::get_timeout`].
    ///
    /// # Blocking
    /// As [`Queue::get_timeout`].
    pub fn get_timeout(&self, d: Duration) -> Result<T, Empty> {
        self.0.queue.get_timeout(d)
    }

    /// As [`Queue::get_nowait`].
    ///
    /// # Errors
    /// As [`Queue::get_nowait`].
    pub fn get_nowait(&self) -> Result<T, Empty> {
        self.0.queue.get_nowait()
    }

    /// As [`Queue::peek_nowait`].
    ///
    /// # Errors
    /// As [`Queue::peek_nowait`].
    pub fn peek_nowait(&self) -> Result<T, Empty>
    where
        T: Clone,
    {
        self.0.queue.peek_nowait()
    }

    /// As [`Queue::peek`].
    ///
    /// # Blocking
    /// As [`Queue::peek`].
    ///
    /// # Panics
    /// As [`Queue::peek`].
    pub fn peek(&self) -> T
    where
        T: Clone,
    {
        self.0.queue.peek()
    }

    /// As [`Queue::peek_timeout`].
    ///
    /// # Errors
    /// As [`Queue::peek_timeout`].
    ///
    /// # Blocking
    /// As [`Queue::peek_timeout`].
    ///
    /// # Panics
    /// As [`Queue::peek_timeout`].
    pub fn peek_timeout(&self, d: Duration) -> Result<T, Empty>
    where
        T: Clone,
    {
        self.0.queue.peek_timeout(d)
    }

    /// Items queued, those handed to woken getters that have not run yet
    /// included (as [`Queue::len`]).
    #[doc(alias = "qsize")]
    pub fn len(&self) -> usize {
        self.0.queue.len()
    }

    /// True when no item is queued.
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> bool {
        self.0.queue.is_empty()
    }

    /// True when a bounded queue has no free slot.
    #[doc(alias = "full")]
    pub fn is_full(&self) -> bool {
        self.0.queue.is_full()
    }

    /// The bound, `None` for an unbounded queue.
    pub fn maxsize(&self) -> Option<usize> {
        self.0.queue.maxsize()
    }

    /// As [`Queue::getters`].
    pub fn getters(&self) -> usize {
        self.0.queue.getters()
    }

    /// As [`Queue::putters`].
    pub fn putters(&self) -> usize {
        self.0.queue.putters()
    }

    /// As [`Queue::close`]: ends iteration (`for item in &queue`) once the
    /// queue is drained. Puts still work.
    pub fn close(&self) {
        self.0.queue.close();
    }

    /// Tasks put and not yet marked done.
    pub fn unfinished(&self) -> usize {
        (self.0.queue.0.placed() - self.0.done.get()) as usize
    }

    /// Marks one task done; the last one wakes every `join`.
    ///
    /// # Panics
    /// When called more times than items were put.
    pub fn task_done(&self) {
        assert!(self.unfinished() > 0, "gevent: JoinableQueue::task_done() called more times than items were put");
        self.0.done.set(self.0.done.get() + 1);
        if self.unfinished() == 0 {
            self.0.joiners.notify_all();
        }
    }

    /// Waits until every task put so far is done.
    ///
    /// # Blocking
    /// While tasks are unfinished; joiners are woken together.
    ///
    /// # Panics
    /// In the main greenlet when nothing can ever finish them (LoopExit).
    pub fn join(&self) {
        while self.unfinished() > 0 {
            self.0.joiners.wait(None, &|| {});
        }
    }

    /// As [`join`](Self::join), waiting at most `d`: true if every task
    /// was done by then (gevent's `join(timeout)`).
    ///
    /// # Blocking
    /// While tasks are unfinished, at most `d`.
    ///
    /// # Panics
    /// From a hub callback (link callbacks must not block).
    pub fn join_timeout(&self, d: Duration) -> bool {
        self.0.joiners.wait_until(d, || self.unfinished() == 0)
    }
}

impl<'a, T: 'static> IntoIterator for &'a JoinableQueue<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;

    /// Takes items as they come, until the queue is closed and drained
    /// (each still needs its `task_done`).
    fn into_iter(self) -> Self::IntoIter {
        (&self.0.queue).into_iter()
    }
}

/// A rendezvous channel (gevent's `Channel`): `put` waits until a getter
/// takes the item, which is never stored (but see [`len`](Self::len)). A `Clone`
/// handle.
///
/// # Examples
/// ```
/// use gevent::queue::Channel;
/// let ch = Channel::new();
/// let tx = ch.clone();
/// let sender = gevent::spawn(move || { tx.put("ping"); "delivered" });
/// assert_eq!(ch.get(), "ping");
/// assert_eq!(sender.get(), Ok("delivered"));
/// ```
pub struct Channel<T>(Rc<Core<T, VecDeque<T>>>);

impl<T> Clone for Channel<T> {
    fn clone(&self) -> Self {
        Channel(self.0.clone())
    }
}

impl<T> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("getters", &self.0.getters.len())
            .field("putters", &self.0.putters.len())
            .finish()
    }
}

impl<T: 'static> Default for Channel<T> {
    fn default() -> Self {
        Channel::new()
    }
}

impl<T: 'static> Channel<T> {
    /// A new channel.
    pub fn new() -> Channel<T> {
        Channel(Rc::new(Core::new(Some(0))))
    }

    put_get! {
        /// Hands the item to a getter, waiting until one comes.
        ///
        /// # Blocking
        /// Until a getter takes the item; putters are served in FIFO order.
        /// Handing it to a getter that waits already, it still switches:
        /// as in gevent, the putter resumes after the getter ran.
        /// Killed or timed out while waiting, the item goes with the unwinding
        /// frame, unless a getter took it already (then it was delivered,
        /// and the putter unwinds all the same).
        ///
        /// # Panics
        /// In the main greenlet when no getter can ever come (LoopExit).
        put;
        /// As [`put`](Self::put), waiting at most `d`; gives the item back in
        /// `Full` if no getter came.
        ///
        /// # Errors
        /// `Full(item)`, giving the item back, when there was no room within
        /// `d`.
        ///
        /// # Blocking
        /// As [`put`](Self::put), bounded by `d`.
        ///
        /// # Panics
        /// From a hub callback (link callbacks must not block).
        put_timeout;
        /// Hands the item over only if a getter is waiting now.
        ///
        /// # Errors
        /// `Full(item)`, giving the item back, when there is no room now.
        ///
        /// # Blocking
        /// Never waits for a getter. Handing the item to one, it switches
        /// as [`put`](Self::put) does: as in gevent, the putter resumes
        /// after the getter ran.
        put_nowait;
        /// Takes an item, waiting until a putter hands one.
        ///
        /// # Blocking
        /// Until an item is handed over; getters are served in FIFO order.
        ///
        /// # Panics
        /// In the main greenlet when nothing can ever put (LoopExit).
        get;
        /// As [`get`](Self::get), waiting at most `d`.
        ///
        /// # Errors
        /// [`Empty`] when no item came within `d`.
        ///
        /// # Blocking
        /// As [`get`](Self::get), bounded by `d`.
        ///
        /// # Panics
        /// From a hub callback (link callbacks must not block).
        get_timeout;
        /// Takes an item only if a putter is waiting now.
        ///
        /// # Errors
        /// [`Empty`] when no item is there now.
        get_nowait;
    }

    /// Items waiting in the channel (gevent's `qsize`): 0, except for an
    /// item handed to a getter that was killed or timed out before it took
    /// it, when no other getter waited (the putter is done with it: it has
    /// returned, or is about to): it goes to the next getter. Waiting putters are
    /// [`putters`](Self::putters).
    #[doc(alias = "qsize")]
    pub fn len(&self) -> usize {
        self.0.stored()
    }

    /// True when no item waits in the channel (see [`len`](Self::len)).
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Always true: a put waits for a getter (as gevent's `full`).
    #[doc(alias = "full")]
    pub fn is_full(&self) -> bool {
        true
    }

    /// `Some(0)`: a rendezvous stores no item, a put waits for a getter.
    /// (gevent's `Channel` takes `maxsize=1` and refuses any other, yet
    /// holds no item either: its `qsize` is 0.)
    pub fn maxsize(&self) -> Option<usize> {
        self.0.maxsize
    }

    /// A copy of the item [`get_nowait`](Self::get_nowait) would take now:
    /// the oldest waiting putter's (or one left in the channel, see
    /// [`len`](Self::len)). The item stays where it is. (gevent's
    /// `Channel` has no `peek`; this is the queues' `peek_nowait`.)
    ///
    /// # Errors
    /// [`Empty`] when no putter waits and no item was left.
    ///
    /// # Examples
    /// ```
    /// use gevent::queue::{Channel, Empty};
    /// let ch = Channel::new();
    /// assert_eq!(ch.peek_nowait(), Err(Empty));
    /// let tx = ch.clone();
    /// let putter = gevent::spawn(move || tx.put("hi"));
    /// gevent::sleep(std::time::Duration::ZERO); // the putter waits
    /// assert_eq!(ch.peek_nowait(), Ok("hi"));
    /// assert_eq!(ch.get_nowait(), Ok("hi"));
    /// assert_eq!(ch.peek_nowait(), Err(Empty));
    /// putter.join();
    /// ```
    pub fn peek_nowait(&self) -> Result<T, Empty>
    where
        T: Clone,
    {
        self.0.peek_handoff().ok_or(Empty)
    }

    /// Waiting putters minus waiting getters (gevent's `balance`): positive
    /// when items wait for getters, negative when getters wait for items.
    pub fn balance(&self) -> isize {
        self.putters() as isize - self.getters() as isize
    }
}
