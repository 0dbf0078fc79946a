//! [`StreamServer`]s on several OS threads sharing one port: gevent users
//! scale with processes, we scale with threads, each its own hub. The
//! handle reaches each thread's server only through a channel to that
//! thread (`gevent::mpsc`, which wakes the thread's hub through its remote
//! handle); dropping the channel stops the server.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{StreamServer, STOP_GRACE};
use crate::mpsc;
use crate::socket::{TcpListener, TcpStream};

/// What the handle asks of a server thread (its channel closing: stop).
enum Control {
    /// `stop_accepting`; the sender is dropped once paused (the caller
    /// waits until every thread's is).
    Pause(mpsc::Sender<()>),
    /// `start_accepting`.
    Resume,
}

/// [`StreamServer`]s running on several threads, all accepting on one port
/// (see [`start_threads`]).
///
/// Dropping the handle stops the servers as [`stop`](Self::stop) does,
/// without waiting for them.
#[derive(Debug)]
pub struct ThreadedServer {
    addr: SocketAddr,
    /// The grace the threads' servers get when stopped, in milliseconds.
    grace_ms: Arc<AtomicU64>,
    /// A channel to each thread; dropped, it tells that thread to stop.
    controls: Vec<mpsc::Sender<Control>>,
    /// Not paused by `stop_accepting`. Held while the threads are told
    /// of a change, so that every thread sees the changes from several
    /// callers in the order this flag took them.
    accepting: Mutex<bool>,
    threads: Vec<JoinHandle<io::Result<()>>>,
}

impl ThreadedServer {
    /// The address all the threads accept on (the real port when port 0
    /// was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The number of server threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Pauses accepting on every thread, as
    /// [`StreamServer::stop_accepting`] does: the listeners stay open, new
    /// peers wait in their kernel backlogs, running handlers go on. Calling
    /// it again while paused changes nothing.
    ///
    /// # Blocking
    /// Until every server thread has paused (or ended): one turn of each
    /// thread's hub, unless a handler keeps its thread busy without
    /// yielding. The calling greenlet parks, not its thread: from one of
    /// this server's own handlers, its own thread pauses meanwhile too.
    ///
    /// # Examples
    /// ```
    /// use std::io::{Read, Write};
    /// let server = gevent::server::start_threads("127.0.0.1:0", 2, || {
    ///     |mut conn: gevent::socket::TcpStream, _peer| {
    ///         let mut buf = [0u8; 4];
    ///         if conn.read_exact(&mut buf).is_ok() {
    ///             let _ = conn.write_all(&buf);
    ///         }
    ///     }
    /// }).unwrap();
    /// server.stop_accepting();
    /// assert!(!server.is_accepting());
    /// let mut c = std::net::TcpStream::connect(server.local_addr()).unwrap(); // queued
    /// c.write_all(b"ping").unwrap();
    /// server.start_accepting();
    /// let mut buf = [0u8; 4];
    /// c.read_exact(&mut buf).unwrap();
    /// assert_eq!(&buf, b"ping");
    /// drop(c);
    /// server.stop().unwrap();
    /// ```
    pub fn stop_accepting(&self) {
        let (paused, all_paused) = mpsc::channel();
        self.tell(false, || Control::Pause(paused.clone()));
        drop(paused);
        // Nothing is sent: every thread drops its sender once paused (a
        // thread that ends meanwhile drops it with its channel), and then
        // this returns.
        let _ = all_paused.recv();
    }

    /// Resumes accepting on every thread after
    /// [`stop_accepting`](Self::stop_accepting), as
    /// [`StreamServer::start_accepting`] does. Returns at once: each thread
    /// resumes at its hub's next turn. A no-op when not paused.
    pub fn start_accepting(&self) {
        self.tell(true, || Control::Resume);
    }

    /// Sets the accepting flag to `on` and sends each thread `control()`.
    fn tell(&self, on: bool, control: impl Fn() -> Control) {
        let mut accepting = self.accepting();
        *accepting = on;
        for c in &self.controls {
            // A thread whose server ended has no receiver any more.
            let _ = c.send(control());
        }
    }

    /// The flag, locked (a panic while it was held left it whole).
    fn accepting(&self) -> MutexGuard<'_, bool> {
        self.accepting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// False from [`stop_accepting`](Self::stop_accepting) until
    /// [`start_accepting`](Self::start_accepting). (The threads' servers
    /// themselves are not asked: one a handler stopped does not accept
    /// either way.)
    pub fn is_accepting(&self) -> bool {
        *self.accepting()
    }

    /// [`stop_timeout`](Self::stop_timeout) with gevent's one-second grace.
    ///
    /// # Errors
    /// As [`join`](Self::join).
    ///
    /// # Blocking
    /// As `stop_timeout`.
    pub fn stop(self) -> io::Result<()> {
        self.stop_timeout(STOP_GRACE)
    }

    /// Stops every thread's server as [`StreamServer::stop_timeout`] does
    /// (no new connections; running handlers get up to `grace`, then are
    /// killed) and waits for the threads to end.
    ///
    /// # Errors
    /// As [`join`](Self::join).
    ///
    /// # Blocking
    /// The calling OS thread (not only the greenlet) waits, up to `grace`
    /// plus up to one second of the killed handlers' unwinding (as
    /// [`StreamServer::stop_timeout`](super::StreamServer::stop_timeout)); from a greenlet, run it through
    /// [`spawn_blocking`](crate::spawn_blocking) to keep the hub going. From
    /// one of this server's own handlers, call it directly (never through
    /// `spawn_blocking`: the handler would be killed while waiting for its
    /// own thread): the handler's thread is not waited for, it ends once the
    /// handler returns.
    pub fn stop_timeout(mut self, grace: Duration) -> io::Result<()> {
        self.grace_ms.store(grace.as_millis().try_into().unwrap_or(u64::MAX), Ordering::Release);
        self.controls.clear();
        self.wait()
    }

    /// Waits until every thread's server has stopped: until the process
    /// ends, unless handlers stop their own servers.
    ///
    /// # Errors
    /// The first error a thread's `serve_forever` returned, or `Other` if a
    /// server thread panicked.
    ///
    /// # Blocking
    /// The calling OS thread waits (see [`stop_timeout`](Self::stop_timeout)).
    pub fn join(mut self) -> io::Result<()> {
        self.wait()
    }

    fn wait(&mut self) -> io::Result<()> {
        let mut first = Ok(());
        let me = std::thread::current().id();
        for t in self.threads.drain(..) {
            if t.thread().id() == me {
                // Called from a handler on one of the server threads: that
                // one ends once this handler returns (its stopper is gone).
                continue;
            }
            let r = t.join().unwrap_or_else(|_| Err(io::Error::other("gevent: a server thread panicked")));
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

/// Starts a [`StreamServer`] on each of `threads` new OS threads (at least
/// one), each its own hub, all listening on `addr` with `SO_REUSEPORT` (the
/// kernel spreads the connections), and returns once they listen.
/// `make_handler` builds each thread's handler, on that thread.
///
/// # Blocking
/// A host name in `addr` is resolved on the calling thread (an address,
/// typed or written as a string, is not looked up): call it before the
/// hub's work starts, or pass an address.
///
/// # Errors
/// When `addr` does not resolve, its port is in use (`AddrInUse`, as
/// `TcpListener::bind`), a listener cannot bind, or a thread cannot start
/// (the threads started so far are stopped).
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// let server = gevent::server::start_threads("127.0.0.1:0", 2, || {
///     |mut conn: gevent::socket::TcpStream, _peer| {
///         let mut buf = [0u8; 64];
///         while let Ok(n @ 1..) = conn.read(&mut buf) {
///             if conn.write_all(&buf[..n]).is_err() { break }
///         }
///     }
/// }).unwrap();
/// let mut c = std::net::TcpStream::connect(server.local_addr()).unwrap();
/// c.write_all(b"ping").unwrap();
/// let mut buf = [0u8; 4];
/// c.read_exact(&mut buf).unwrap();
/// assert_eq!(&buf, b"ping");
/// drop(c);
/// server.stop().unwrap();
/// ```
pub fn start_threads<A, F, H>(addr: A, threads: usize, make_handler: F) -> io::Result<ThreadedServer>
where
    A: ToSocketAddrs,
    F: Fn() -> H + Send + Sync + 'static,
    H: Fn(TcpStream, SocketAddr) + 'static,
{
    let addr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any addresses"))?;
    // A port in use is refused, as `TcpListener::bind` refuses it: with
    // `SO_REUSEPORT` alone, the group would silently join another socket
    // of this user on that port and split its connections with it.
    // The probe binds and never listens: a client connecting at that
    // moment is refused (and retries) rather than queued on a socket about
    // to close, which would reset it. Bound with `SO_REUSEADDR`, as every
    // listener of ours is, a bind fails only where a socket listens.
    if addr.port() != 0 {
        let probe = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        probe.set_reuse_address(true)?;
        probe.bind(&addr.into())?;
    }
    // The first listener binds a port 0 request to a real port the others
    // share. (A `SocketAddr` resolves without the thread pool.)
    let first = TcpListener::bind_reuse_port(addr)?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..threads.max(1) {
        listeners.push(TcpListener::bind_reuse_port(addr)?);
    }
    let make_handler = Arc::new(make_handler);
    let mut server = ThreadedServer {
        addr,
        grace_ms: Arc::new(AtomicU64::new(STOP_GRACE.as_millis() as u64)),
        controls: Vec::new(),
        accepting: Mutex::new(true),
        threads: Vec::new(),
    };
    for (i, listener) in listeners.into_iter().enumerate() {
        let (control, controlled) = mpsc::channel();
        let (make_handler, grace_ms) = (make_handler.clone(), server.grace_ms.clone());
        let thread = std::thread::Builder::new().name(format!("gevent-server-{i}")).spawn(move || {
            serve_until_stopped(StreamServer::from_listener(listener, make_handler()), controlled, grace_ms)
        });
        match thread {
            Ok(t) => {
                server.controls.push(control);
                server.threads.push(t);
            }
            Err(e) => {
                drop(control);
                // Dropping `server` stops the threads already started.
                return Err(e);
            }
        }
    }
    Ok(server)
}

/// A server thread's body: serves until the server stops, on its own or
/// when the handle's end of `controls` was dropped; pauses and resumes as
/// `controls` says meanwhile.
fn serve_until_stopped(
    server: StreamServer,
    controls: mpsc::Receiver<Control>,
    grace_ms: Arc<AtomicU64>,
) -> io::Result<()> {
    let stopping = Rc::new(Cell::new(false));
    let watcher = {
        let (server, stopping) = (server.clone(), stopping.clone());
        crate::spawn(move || {
            for control in controls.iter() {
                match control {
                    Control::Pause(paused) => {
                        server.stop_accepting();
                        drop(paused);
                    }
                    Control::Resume => server.start_accepting(),
                }
            }
            stopping.set(true);
            server.stop_timeout(Duration::from_millis(grace_ms.load(Ordering::Acquire)));
        })
    };
    let served = server.serve_forever();
    if stopping.get() {
        // Stopped by the watcher: let it finish waiting for the handlers.
        watcher.join();
    } else {
        // Stopped by a handler of its own.
        watcher.kill();
    }
    served
}

/// [`start_threads`], then [`ThreadedServer::join`]: serves until every
/// thread's server has stopped (they run until the process ends, unless a
/// handler stops its own server), or returns the first bind error.
///
/// # Errors
/// As `start_threads` and `ThreadedServer::join`.
///
/// # Blocking
/// The calling thread (not only the greenlet) waits for the server threads.
pub fn serve_threads<A, F, H>(addr: A, threads: usize, make_handler: F) -> io::Result<()>
where
    A: ToSocketAddrs,
    F: Fn() -> H + Send + Sync + 'static,
    H: Fn(TcpStream, SocketAddr) + 'static,
{
    start_threads(addr, threads, make_handler)?.join()
}
