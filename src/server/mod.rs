//! Servers (gevent's `server`): [`StreamServer`] runs one greenlet per TCP
//! connection, [`DatagramServer`] one per datagram.
//!
//! ```
//! use std::io::{Read, Write};
//! use gevent::server::StreamServer;
//! use gevent::socket::TcpStream;
//!
//! let server = StreamServer::new("127.0.0.1:0", |mut conn: TcpStream, _peer| {
//!     let mut buf = [0u8; 64];
//!     while let Ok(n @ 1..) = conn.read(&mut buf) {
//!         if conn.write_all(&buf[..n]).is_err() { break }
//!     }
//! }).unwrap();
//! server.start().unwrap();
//! let mut c = TcpStream::connect(server.local_addr()).unwrap();
//! c.write_all(b"ping").unwrap();
//! let mut buf = [0u8; 4];
//! c.read_exact(&mut buf).unwrap();
//! assert_eq!(&buf, b"ping");
//! drop(c);
//! server.stop();
//! ```
#![forbid(unsafe_code)]

mod datagram;
mod pause;
mod threads;

pub use datagram::DatagramServer;
pub use threads::{serve_threads, start_threads, ThreadedServer};

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use crate::event::Event;
use crate::pool::{Group, Pool};
use crate::socket::{is_cancelled, TcpListener, TcpStream};
use crate::{Greenlet, GreenletRef};

/// gevent's default grace period for [`StreamServer::stop`].
pub const STOP_GRACE: Duration = Duration::from_secs(1);

/// How long `stop` waits for the handlers it killed (gevent's stop:
/// `pool.kill(block=True, timeout=1)`); one still running then (its code
/// caught the kill, e.g. in a `catch_unwind`) is reported and left running.
const KILL_WAIT: Duration = Duration::from_secs(1);

/// How long the accept loop first waits when the process is out of file
/// descriptors; doubled up to [`MAX_BACKOFF`] while it lasts.
const MIN_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// The accept loop yields once every this many connections, so that during
/// a burst the new handlers (and whatever else is ready) run in between: an
/// accept that finds a connection queued returns without switching, so a
/// long burst would otherwise be taken whole first. gevent's `max_accept`.
pub const MAX_ACCEPT: usize = 100;

type Handler = dyn Fn(TcpStream, SocketAddr);

struct Inner {
    listener: RefCell<Option<Rc<TcpListener>>>,
    addr: SocketAddr,
    handler: Rc<Handler>,
    handlers: Group,
    pool: Option<Pool>,
    /// The handlers' stack size, if not the hub's default.
    stack_size: Option<usize>,
    serving: Serving,
    accept_errors: Cell<u64>,
}

/// What both server kinds share: the greenlet that accepts (or receives),
/// the event `serve_forever` waits for, and the switch that pauses the
/// greenlet's loop.
#[derive(Default)]
struct Serving {
    task: RefCell<Option<Greenlet<()>>>,
    stopped: Event,
    pause: pause::Pause,
}

impl Serving {
    fn started(&self) -> bool {
        self.task.borrow().is_some()
    }

    /// Spawns `body` as the serving greenlet; `open` tells whether the
    /// socket is still there (not stopped).
    fn start(&self, name: String, open: bool, body: impl FnOnce() + 'static) -> io::Result<()> {
        if self.started() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "gevent: server already started"));
        }
        if !open {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "gevent: server was stopped"));
        }
        *self.task.borrow_mut() = Some(Greenlet::builder().name(name).spawn(body));
        Ok(())
    }

    /// Starts (if needed) and waits until stopped. A caller that leaves
    /// early (killed, timed out) stops the server on its way out, in a
    /// greenlet of its own that it joins, as gevent's `serve_forever` does
    /// in its `finally`: a server nobody serves forever any more does not
    /// go on accepting.
    ///
    /// `stop` is given the caller, which the stop must not wait for (a
    /// handler serving its own server forever would wait on itself).
    fn serve_forever(
        &self,
        start: impl FnOnce() -> io::Result<()>,
        stop: impl FnOnce(GreenletRef) + 'static,
    ) -> io::Result<()> {
        if !self.started() {
            start()?;
        }
        struct StopOnExit<F: FnOnce(GreenletRef) + 'static>(Option<F>);
        impl<F: FnOnce(GreenletRef) + 'static> Drop for StopOnExit<F> {
            fn drop(&mut self) {
                if let Some(stop) = self.0.take() {
                    let caller = crate::getcurrent();
                    crate::spawn(move || stop(caller)).join();
                }
            }
        }
        let mut on_exit = StopOnExit(Some(stop));
        self.stopped.wait();
        on_exit.0 = None; // stopped already
        Ok(())
    }

    /// Serving now: started and not stopped or closed.
    fn serving(&self) -> bool {
        self.started() && !self.stopped.is_set()
    }

    /// Serving and not paused.
    fn accepting(&self) -> bool {
        self.serving() && self.pause.accepting()
    }

    /// Stops serving and closes `socket` (the listener or the datagram
    /// socket): `serve_forever` returns; handlers are left alone.
    fn close<S>(&self, socket: &RefCell<Option<S>>) {
        self.halt();
        drop(socket.borrow_mut().take());
        self.stopped.set();
    }

    /// Kills the serving greenlet (no borrow is held across the kill: it
    /// switches).
    fn halt(&self) {
        let task = self.task.borrow_mut().take();
        if let Some(g) = task {
            g.kill();
        }
    }
}

/// A TCP server: an accept loop in a greenlet, and one greenlet per
/// connection running the handler (at most `size` at once with
/// [`with_pool`](Self::with_pool)).
///
/// Out of file descriptors (`EMFILE`, `ENFILE`), the accept loop backs off
/// (5 ms doubling to 500 ms) and keeps serving the connections it has; it
/// never exits or spins. [`stop_accepting`](Self::stop_accepting) pauses
/// it (the listener stays open), [`start_accepting`](Self::start_accepting)
/// resumes it.
#[derive(Clone)]
pub struct StreamServer(Rc<Inner>);

impl fmt::Debug for StreamServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamServer")
            .field("addr", &self.0.addr)
            .field("connections", &self.0.handlers.len())
            .field("started", &self.0.serving.started())
            .field("accepting", &self.is_accepting())
            .finish()
    }
}

impl StreamServer {
    /// Binds a listener to `addr` for `handler`; serving begins with
    /// [`start`](Self::start) or [`serve_forever`](Self::serve_forever).
    ///
    /// # Errors
    /// As [`TcpListener::bind`].
    ///
    /// # Blocking
    /// Only while a host name resolves (on the thread pool).
    pub fn new<A, H>(addr: A, handler: H) -> io::Result<StreamServer>
    where
        A: ToSocketAddrs + Sync,
        H: Fn(TcpStream, SocketAddr) + 'static,
    {
        Ok(StreamServer::from_listener(TcpListener::bind(addr)?, handler))
    }

    /// A server on an existing listener, which (with its clones) leaves
    /// non-blocking mode if it was in it, and loses its read timeout: the
    /// server waits for connections.
    ///
    /// # Panics
    /// If the listener has no local address (it is not bound).
    pub fn from_listener<H>(listener: TcpListener, handler: H) -> StreamServer
    where
        H: Fn(TcpStream, SocketAddr) + 'static,
    {
        let addr = listener.local_addr().expect("gevent: a StreamServer needs a bound listener");
        // The accept loop waits for connections: in non-blocking mode it
        // would poll, with a read timeout it would time out again and again
        // (on Linux neither call can fail).
        let _ = listener.set_nonblocking(false);
        let _ = listener.set_read_timeout(None);
        StreamServer(Rc::new(Inner {
            listener: RefCell::new(Some(Rc::new(listener))),
            addr,
            handler: Rc::new(handler),
            handlers: Group::new(),
            pool: None,
            stack_size: None,
            serving: Serving::default(),
            accept_errors: Cell::new(0),
        }))
    }

    /// Caps the connections handled at once at `size`; while the cap is
    /// reached, the server stops accepting (the kernel's backlog holds new
    /// peers), as gevent's does while its pool is full: the next
    /// connection is accepted once a handler has returned.
    ///
    /// # Panics
    /// If `size` is 0, or once the server was cloned or started.
    pub fn with_pool(self, size: usize) -> Self {
        let pool = Pool::new(size);
        self.configure("with_pool", |inner| inner.pool = Some(pool))
    }

    /// Changes the server before it is shared (cloned or started).
    fn configure(self, what: &str, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Rc::try_unwrap(self.0).unwrap_or_else(|_| panic!("gevent: {what} before the server is shared"));
        change(&mut inner);
        StreamServer(Rc::new(inner))
    }

    /// Gives each handler greenlet a stack of `bytes` (see
    /// [`Builder::stack_size`](crate::Builder::stack_size)) instead of the
    /// hub's default: for handlers with large buffers on their stack (a
    /// `[0u8; 65536]` needs more than the 64 KiB default).
    ///
    /// # Panics
    /// If `bytes` is 4 GiB or more, or once the server was cloned or
    /// started.
    pub fn with_stack_size(self, bytes: usize) -> Self {
        crate::stack::check_size(bytes);
        self.configure("with_stack_size", |inner| inner.stack_size = Some(bytes))
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// Connections being handled now.
    pub fn connections(&self) -> usize {
        self.0.pool.as_ref().map_or(self.0.handlers.len(), |p| p.len())
    }

    /// Accept errors met so far (each one retried or backed off from).
    pub fn accept_errors(&self) -> u64 {
        self.0.accept_errors.get()
    }

    /// Starts the accept loop in a new greenlet and returns.
    ///
    /// # Errors
    /// `AlreadyExists` once started; `NotConnected` once stopped.
    pub fn start(&self) -> io::Result<()> {
        let inner = self.0.clone();
        let open = self.0.listener.borrow().is_some();
        self.0.serving.start(format!("StreamServer({})", self.0.addr), open, move || accept_loop(&inner))
    }

    /// Starts (if needed) and blocks until [`stop`](Self::stop), or until
    /// the accept loop meets a fatal error (the listener is no socket any
    /// more: `EBADF`, `EINVAL`, `ENOTSOCK`; the server then closes, as
    /// gevent's does).
    ///
    /// # Errors
    /// `NotConnected` when called after `stop`. A fatal accept error is
    /// not returned: it is reported on stderr, and `Ok` is returned (as
    /// [`DatagramServer::serve_forever`] does).
    ///
    /// # Blocking
    /// Until the server is stopped by another greenlet (or a signal
    /// handler). A caller killed or timed out while it serves stops the
    /// server before it goes on unwinding (as gevent's `serve_forever`),
    /// which takes up to the stop's grace period.
    pub fn serve_forever(&self) -> io::Result<()> {
        let me = self.clone();
        self.0.serving.serve_forever(|| self.start(), move |caller| me.stop_leaving_out(STOP_GRACE, Some(&caller)))
    }

    /// True while the server accepts connections: after
    /// [`start`](Self::start) (or `serve_forever`), before
    /// [`stop`](Self::stop) or [`close`](Self::close) (gevent's `started`).
    pub fn started(&self) -> bool {
        self.0.serving.serving()
    }

    /// True once the listener is closed (by `stop`, `close`, or a fatal
    /// accept error); the server cannot start again (gevent's `closed`).
    pub fn closed(&self) -> bool {
        self.0.listener.borrow().is_none()
    }

    /// Pauses accepting, keeping the listener open (gevent's
    /// `stop_accepting`): new peers still connect, into the kernel's
    /// backlog (up to its length), and are accepted once
    /// [`start_accepting`](Self::start_accepting) resumes. Handlers already
    /// running go on; `serve_forever` goes on waiting. The accept loop
    /// parks until resumed, taking no CPU.
    ///
    /// Before [`start`](Self::start), the pause is kept: the server starts
    /// paused. After [`close`](Self::close) or [`stop`](Self::stop) it
    /// changes nothing (no connection is accepted any more anyway). A
    /// second call while paused changes nothing.
    ///
    /// # Blocking
    /// Until the accept loop has left an accept that waits (on io_uring it
    /// is cancelled in the kernel first): when this returns, no connection
    /// is taken from the backlog until accepting resumes. A connection the
    /// kernel had already handed to that accept is not dropped: its handler
    /// was spawned. This takes one turn of the hub, or none when the loop
    /// was not waiting.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use gevent::server::StreamServer;
    /// use gevent::socket::TcpStream;
    /// let server = StreamServer::new("127.0.0.1:0", |_conn, _peer| {}).unwrap();
    /// server.start().unwrap();
    /// server.stop_accepting();
    /// assert!(server.started() && !server.is_accepting());
    /// let client = TcpStream::connect(server.local_addr()).unwrap(); // into the backlog
    /// gevent::sleep(Duration::from_millis(5));
    /// assert_eq!(server.connections(), 0);
    /// server.start_accepting();
    /// assert!(server.is_accepting());
    /// # drop(client);
    /// server.stop();
    /// ```
    pub fn stop_accepting(&self) {
        self.0.serving.pause.stop();
    }

    /// Resumes accepting after [`stop_accepting`](Self::stop_accepting)
    /// (gevent's `start_accepting`): the accept loop takes the connections
    /// queued meanwhile, oldest first. A no-op when not paused. Before
    /// [`start`](Self::start) it only undoes a pause (the server does not
    /// start); after [`close`](Self::close) or [`stop`](Self::stop) it
    /// changes nothing.
    ///
    /// The pause is the caller's alone: a server with a full pool
    /// ([`with_pool`](Self::with_pool)) also waits, for a free slot,
    /// whatever this says.
    pub fn start_accepting(&self) {
        self.0.serving.pause.start();
    }

    /// True while the server accepts connections: [`started`](Self::started)
    /// and not paused by [`stop_accepting`](Self::stop_accepting). (A
    /// server whose pool is full waits for a slot, yet is accepting.)
    pub fn is_accepting(&self) -> bool {
        self.0.serving.accepting()
    }

    /// Stops accepting and closes the listener at once (`serve_forever`
    /// returns), leaving the running handlers alone (gevent's `close`;
    /// [`stop`](Self::stop) also waits for them, then kills the rest).
    ///
    /// # Blocking
    /// While the accept loop unwinds (it is killed).
    ///
    /// # Examples
    /// ```
    /// use std::io::Read;
    /// use gevent::server::StreamServer;
    /// let server = StreamServer::new("127.0.0.1:0", |mut c, _| {
    ///     let _ = c.read(&mut [0u8; 1]); // waits for its client
    /// }).unwrap();
    /// server.start().unwrap();
    /// let client = gevent::socket::TcpStream::connect(server.local_addr()).unwrap();
    /// while server.connections() == 0 {
    ///     gevent::sleep(std::time::Duration::from_millis(1));
    /// }
    /// server.close();
    /// assert!(server.closed() && !server.started());
    /// assert_eq!(server.connections(), 1, "the handler runs on");
    /// drop(client);
    /// ```
    pub fn close(&self) {
        self.0.serving.close(&self.0.listener);
    }

    /// [`stop_timeout`](Self::stop_timeout) with gevent's one-second grace.
    ///
    /// # Blocking
    /// As `stop_timeout`.
    pub fn stop(&self) {
        self.stop_timeout(STOP_GRACE)
    }

    /// Stops accepting at once (the listener closes; `serve_forever`
    /// returns), waits up to `grace` for running handlers (other than the
    /// caller, if a handler stops its own server), then kills the rest;
    /// returns when all are gone, or one second after the kill (as
    /// gevent's): a handler whose code swallowed the kill (a
    /// `std::panic::catch_unwind` around a blocking call; see
    /// [`catch_panic`](crate::catch_panic)) is reported on stderr and left
    /// running.
    ///
    /// # Blocking
    /// While the accept loop unwinds (it is killed first), then up to
    /// `grace`, plus up to one second of the killed handlers' unwinding.
    pub fn stop_timeout(&self, grace: Duration) {
        self.stop_leaving_out(grace, None)
    }

    /// [`stop_timeout`](Self::stop_timeout), not waiting for `caller`
    /// either (see `Serving::serve_forever`).
    fn stop_leaving_out(&self, grace: Duration, caller: Option<&GreenletRef>) {
        // As gevent: closed first, so `serve_forever` returns even when a
        // handler stops its own server (it does not wait for itself).
        self.close();
        let group = self.0.pool.as_ref().map_or(&self.0.handlers, |p| p.as_group());
        stop_handlers(group, grace, caller);
    }
}

/// Waits up to `grace` for the group's greenlets, then kills the rest; the
/// calling greenlet (a handler stopping its own server) and `caller` are
/// left out.
fn stop_handlers(group: &Group, grace: Duration, caller: Option<&GreenletRef>) {
    group.discard(&crate::getcurrent());
    if let Some(c) = caller {
        group.discard(c);
    }
    if group.join_timeout(grace) {
        return;
    }
    for g in group.greenlets() {
        g.kill_nowait();
    }
    if !group.join_timeout(KILL_WAIT) {
        let left = group.greenlets().iter().filter(|g| !g.dead()).count();
        report!(
            "gevent: server stop: {left} handler(s) still running {KILL_WAIT:?} after being killed (a catch_unwind \
             swallowed the kill?); left running"
        );
    }
}

fn accept_loop(inner: &Inner) {
    let mut backoff = MIN_BACKOFF;
    let mut streak = 0;
    let mut last_error = None;
    loop {
        if streak == MAX_ACCEPT {
            streak = 0;
            crate::sleep(Duration::ZERO);
        }
        inner.serving.pause.wait_accepting();
        if let Some(pool) = &inner.pool {
            pool.wait_available();
        }
        let Some(listener) = inner.listener.borrow().clone() else { return };
        // Paused meanwhile (while the pool was full), or during the accept:
        // it ends with the cancellation's error, and the loop parks above.
        let accepted = inner.serving.pause.run(|cancel| listener.accept_cancellable(Some(cancel)));
        match accepted {
            Err(e) if is_cancelled(&e) => {}
            Ok((conn, peer)) => {
                backoff = MIN_BACKOFF;
                last_error = None;
                streak += 1;
                let handler = inner.handler.clone();
                let run = move || handler(conn, peer);
                match (&inner.pool, inner.stack_size) {
                    (Some(pool), None) => drop(pool.spawn(run)),
                    (None, None) => drop(inner.handlers.spawn(run)),
                    (pool, Some(bytes)) => {
                        let g = Greenlet::builder().stack_size(bytes).build(run);
                        match pool {
                            Some(pool) => pool.add(&g),
                            None => inner.handlers.add(&g),
                        }
                        g.start();
                    }
                }
            }
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EOPNOTSUPP)) =>
            {
                // The listener was shut down or is no listening socket (a
                // datagram socket handed over: EOPNOTSUPP): no accept will
                // ever succeed again. As gevent: report, close,
                // and let `serve_forever` return.
                inner.accept_errors.set(inner.accept_errors.get() + 1);
                report!("gevent: StreamServer({}) stops accepting: {e}", inner.addr);
                drop(listener);
                drop(inner.listener.borrow_mut().take());
                drop(inner.serving.task.borrow_mut().take());
                inner.serving.stopped.set();
                return;
            }
            Err(e) => {
                inner.accept_errors.set(inner.accept_errors.get() + 1);
                let this = Some((e.kind(), e.raw_os_error()));
                if this != last_error
                    && !matches!(e.raw_os_error(), Some(libc::ECONNABORTED | libc::EPROTO | libc::EINTR))
                {
                    // Once per run of one error (gevent logs each one).
                    report!("gevent: StreamServer({}) accept failed: {e}; retrying", inner.addr);
                }
                last_error = this;
                if let Some(pause) = accept_pause(&e, &mut backoff) {
                    streak = 0;
                    crate::sleep(pause);
                }
            }
        }
    }
}

/// How long to pause after an accept error: out of fds, back off (doubling
/// `backoff`); a connection that died in the backlog, none; anything else,
/// the minimum, so a persistent error cannot make the loop spin.
fn accept_pause(e: &io::Error, backoff: &mut Duration) -> Option<Duration> {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            let pause = *backoff;
            *backoff = (*backoff * 2).min(MAX_BACKOFF);
            Some(pause)
        }
        Some(libc::ECONNABORTED | libc::EPROTO | libc::EINTR) => None,
        _ => Some(MIN_BACKOFF),
    }
}
