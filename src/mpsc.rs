//! A channel from any thread to greenlets: std threads (or greenlets of
//! other hubs) send, greenlets receive without blocking their thread.
//!
//! The shape of [`std::sync::mpsc`]: [`channel`] gives a [`Sender`] (`Send`,
//! `Clone`: one per producer) and a [`Receiver`] whose [`recv`](Receiver::recv)
//! parks only the calling greenlet, and wakes it through its hub's eventfd
//! when an item comes (gevent's `hub.loop.async_()` wake-up, with the item
//! carried along). Unbounded: a send never waits.
//!
//! # Examples
//! ```
//! let (tx, rx) = gevent::mpsc::channel();
//! let producer = std::thread::spawn(move || {
//!     for i in 0..3 {
//!         tx.send(i).unwrap();
//!     }
//! });
//! // Other greenlets of this thread run while `recv` waits.
//! let ticker = gevent::spawn(|| gevent::sleep(std::time::Duration::from_millis(1)));
//! assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]); // until every sender is gone
//! producer.join().unwrap();
//! ticker.join();
//! ```
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::driver::{remote_handle, RemoteHandle, RemoteWait};

pub use std::sync::mpsc::{RecvTimeoutError, SendError, TryRecvError};

struct State<T> {
    items: VecDeque<T>,
    /// Live senders; none left and no item: the channel is disconnected.
    senders: usize,
    receiver: bool,
    /// The remote waits of greenlets parked in `recv`: every send wakes
    /// them all (each looks again; one that left ignores its wake-up).
    waiting: Vec<(RemoteHandle, u64)>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while locked leaves the state whole (every update is one
        // step), so a poisoned lock is used as it is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Creates a channel: the sending half may go to any thread, the receiving
/// half receives in greenlets.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State { items: VecDeque::new(), senders: 1, receiver: true, waiting: Vec::new() }),
    });
    (Sender { shared: shared.clone() }, Receiver { shared })
}

/// The sending half of a [`channel`]: `Send` and `Clone`, usable from any
/// thread, in or out of a greenlet. A send never waits.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> Sender<T> {
    /// Sends `value`, waking the greenlets waiting in `recv`; gives it back
    /// if the receiver is gone.
    ///
    /// # Errors
    /// `SendError(value)` when the receiver is gone.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let waiting = {
            let mut state = self.shared.lock();
            if !state.receiver {
                return Err(SendError(value));
            }
            state.items.push_back(value);
            std::mem::take(&mut state.waiting)
        };
        wake(waiting);
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender { shared: self.shared.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waiting = {
            let mut state = self.shared.lock();
            state.senders -= 1;
            if state.senders > 0 {
                return;
            }
            std::mem::take(&mut state.waiting)
        };
        // The last one: waiting receivers learn the channel is closed.
        wake(waiting);
    }
}

fn wake(waiting: Vec<(RemoteHandle, u64)>) {
    for (hub, token) in waiting {
        hub.complete(token);
    }
}

/// The receiving half of a [`channel`]: receives in greenlets (of any one
/// thread at a time: it is `Send`, and each wait parks on the hub of the
/// thread it runs on).
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

impl<T> Receiver<T> {
    /// Takes the next item, waiting while there is none; `Err` once the
    /// channel is empty and every sender is gone.
    ///
    /// # Errors
    /// `RecvError` once the channel is empty and every sender is gone.
    ///
    /// # Blocking
    /// Parks the calling greenlet (not its thread) until an item comes or
    /// the last sender goes; greenlets parked on one receiver are each
    /// woken by a send, and the first to run takes the item. Killed or
    /// timed out meanwhile, it leaves and takes nothing.
    ///
    /// # Panics
    /// From a hub callback.
    pub fn recv(&self) -> Result<T, std::sync::mpsc::RecvError> {
        loop {
            let wait = {
                let mut state = self.shared.lock();
                if let Some(item) = state.items.pop_front() {
                    return Ok(item);
                }
                if state.senders == 0 {
                    return Err(std::sync::mpsc::RecvError);
                }
                let wait = RemoteWait::open();
                let hub = remote_handle();
                state.waiting.push((hub.clone(), wait.token()));
                Enlisted { shared: &self.shared, hub, wait }
            };
            wait.wait.wait();
        }
    }

    /// As [`recv`](Self::recv), waiting at most `d`.
    ///
    /// # Errors
    /// `Timeout` when no item came within `d`; `Disconnected` once the
    /// channel is empty and every sender is gone.
    ///
    /// # Blocking
    /// As [`recv`](Self::recv), bounded by `d`.
    ///
    /// # Panics
    /// From a hub callback (link callbacks must not block).
    pub fn recv_timeout(&self, d: Duration) -> Result<T, RecvTimeoutError> {
        match crate::with_timeout(d, || self.recv()) {
            Ok(Ok(item)) => Ok(item),
            Ok(Err(_)) => Err(RecvTimeoutError::Disconnected),
            Err(crate::Timeout) => Err(RecvTimeoutError::Timeout),
        }
    }

    /// Takes an item if one is there now; never switches.
    ///
    /// # Errors
    /// `Empty` when no item is there now; `Disconnected` once the channel
    /// is empty and every sender is gone.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut state = self.shared.lock();
        match state.items.pop_front() {
            Some(item) => Ok(item),
            None if state.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// The items as they come, until every sender is gone.
    ///
    /// # Blocking
    /// Each `next` as [`recv`](Self::recv).
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }
}

/// A greenlet's place among a channel's waiting receivers, left on every
/// exit (a send took it already, or it leaves: a timed-out `recv` in a loop
/// leaves nothing behind).
struct Enlisted<'a, T> {
    shared: &'a Shared<T>,
    hub: RemoteHandle,
    wait: RemoteWait,
}

impl<T> Drop for Enlisted<'_, T> {
    fn drop(&mut self) {
        let token = self.wait.token();
        self.shared.lock().waiting.retain(|(hub, t)| !(*t == token && hub.same_hub(&self.hub)));
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // Senders get their items back from now on; the items left go now
        // (as std's), dropped outside the lock: one may hold a sender of
        // this very channel, or of one somebody waits on for a reply.
        let items = {
            let mut state = self.shared.lock();
            state.receiver = false;
            std::mem::take(&mut state.items)
        };
        drop(items);
    }
}

impl<T> Receiver<T> {
    /// The items there now, without waiting; never switches.
    pub fn try_iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.try_recv().ok())
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter(self)
    }
}

/// The items of a [`Receiver`] it owns, as they come, until every sender is
/// gone (`for item in rx`).
#[derive(Debug)]
pub struct IntoIter<T>(Receiver<T>);

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    /// # Blocking
    /// As [`Receiver::recv`].
    fn next(&mut self) -> Option<T> {
        self.0.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Box<dyn Iterator<Item = T> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}
