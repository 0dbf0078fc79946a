//! Greenlet-local storage (gevent's `gevent.local.local`): each greenlet sees
//! its own value, created on first access and dropped when the greenlet dies.
#![forbid(unsafe_code)]

use std::any::Any;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hub;

static NEXT: AtomicU64 = AtomicU64::new(1);

/// Greenlet-local storage for a `T`.
///
/// A `Clone` handle: clones share the same per-greenlet values, and the
/// last handle dropped drops every greenlet's value (as gevent's `local`).
///
/// # Examples
/// ```
/// use gevent::local::Local;
/// let stash: Local<u32> = Local::new();
/// stash.with(|x| *x = 1);
/// let other = stash.clone();
/// let g = gevent::spawn(move || other.with(|x| *x)); // a new greenlet sees T::default()
/// assert_eq!(g.get(), Ok(0));
/// assert_eq!(stash.with(|x| *x), 1);
/// ```
#[derive(Debug)]
pub struct Local<T> {
    id: Rc<Id>,
    _t: PhantomData<*const T>,
}

/// A local's id, shared by its handles; the last one gone takes every
/// greenlet's value with it (as gevent's `local` does).
#[derive(Debug)]
struct Id(u64);

impl Drop for Id {
    fn drop(&mut self) {
        hub::drop_local_everywhere(self.0);
    }
}

impl<T> Clone for Local<T> {
    fn clone(&self) -> Self {
        Local { id: self.id.clone(), _t: PhantomData }
    }
}

impl<T: Default + 'static> Default for Local<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Default + 'static> Local<T> {
    /// A new local; no greenlet has a value yet.
    pub fn new() -> Local<T> {
        Local { id: Rc::new(Id(NEXT.fetch_add(1, Ordering::Relaxed))), _t: PhantomData }
    }

    /// Runs `f` with the current greenlet's value, creating it with
    /// `T::default()` on first access.
    ///
    /// The value is taken out of the greenlet's storage while `f` runs and
    /// put back afterwards, also when `f` unwinds (a kill or a timeout while
    /// `f` blocks): `f` may block like any code, and the value is dropped
    /// with the greenlet.
    ///
    /// # Panics
    /// When called re-entrantly for the same local from inside `f`, or from
    /// a hub callback.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let key = hub::current_key();
        let id = self.id.0;
        let mut guard = PutBack { key, id, value: hub::take_local(id) };
        // First access: if `T::default()` panics, the guard removes the
        // placeholder `take_local` left.
        let value = guard.value.get_or_insert_with(|| Box::new(T::default()));
        f(value.downcast_mut::<T>().expect("a Local's id always maps to its T"))
    }
}

/// Returns the value to the greenlet's storage, even while unwinding.
struct PutBack {
    key: usize,
    id: u64,
    value: Option<Box<dyn Any>>,
}

impl Drop for PutBack {
    fn drop(&mut self) {
        match self.value.take() {
            Some(v) => hub::put_local(self.key, self.id, v),
            None => hub::forget_local(self.key, self.id),
        }
    }
}
