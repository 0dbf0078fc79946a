//! `Builder`: names a greenlet and sizes its stack before it is created.
#![forbid(unsafe_code)]

use std::marker::PhantomData;

use super::entry::run;
use super::{Greenlet, GreenletRef};
use crate::hub;

/// Configures a greenlet before it is created: name and stack size.
#[derive(Debug, Default, Clone)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// Names the greenlet.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Usable stack bytes (rounded up to pages; at least 16 KiB, so 0 asks
    /// for 16 KiB). Without it, the hub's default, see
    /// [`crate::hub::set_default_stack_size`].
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        // The scheduler reads 0 as "the default": the minimum is 1 byte.
        self.stack_size = Some(bytes.max(1));
        self
    }

    /// Creates the greenlet without starting it.
    ///
    /// # Panics
    /// If the stack size asked for is 4 GiB or more. (The stack is mapped
    /// at the first run: if that fails, the greenlet dies unrun with
    /// [`GreenletError::Panicked`](crate::GreenletError::Panicked) saying
    /// so, and the failure is reported on stderr.)
    pub fn build<F, T>(self, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.create(f, false)
    }

    /// Creates and starts the greenlet.
    ///
    /// # Panics
    /// As [`build`](Self::build).
    pub fn spawn<F, T>(self, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.create(f, true)
    }

    fn create<F, T>(self, f: F, start: bool) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let name = self.name;
        let make = move |id| {
            let inner = GreenletRef::new_inner::<F, T>(id, Some(f));
            if let Some(n) = name {
                inner.set_name(n);
            }
            GreenletRef(inner)
        };
        let r = hub::create(make, self.stack_size, run::<F, T>, start);
        Greenlet { r, _t: PhantomData }
    }
}
