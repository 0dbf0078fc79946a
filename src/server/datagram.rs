//! `DatagramServer`: one greenlet per datagram.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;

use super::{stop_handlers, Serving, MIN_BACKOFF, STOP_GRACE};
use crate::pool::Group;
use crate::socket::{is_cancelled, UdpSocket};

type DatagramHandler = dyn Fn(&[u8], SocketAddr, &DatagramServer);

struct DatagramInner {
    socket: RefCell<Option<Rc<UdpSocket>>>,
    addr: SocketAddr,
    handler: Rc<DatagramHandler>,
    handlers: Group,
    serving: Serving,
}

/// A UDP server: a receive loop in a greenlet, and one greenlet per
/// datagram running the handler, which can answer with
/// [`send_to`](Self::send_to).
///
/// # Examples
/// ```
/// use gevent::server::DatagramServer;
/// use gevent::socket::UdpSocket;
/// let server = DatagramServer::new("127.0.0.1:0", |data: &[u8], peer, srv: &DatagramServer| {
///     srv.send_to(&data.to_ascii_uppercase(), peer).unwrap();
/// }).unwrap();
/// server.start().unwrap();
/// let c = UdpSocket::bind("127.0.0.1:0").unwrap();
/// c.send_to(b"hi", server.local_addr()).unwrap();
/// let mut buf = [0u8; 8];
/// let (n, _) = c.recv_from(&mut buf).unwrap();
/// assert_eq!(&buf[..n], b"HI");
/// server.stop();
/// ```
#[derive(Clone)]
pub struct DatagramServer(Rc<DatagramInner>);

impl fmt::Debug for DatagramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramServer").field("addr", &self.0.addr).field("accepting", &self.is_accepting()).finish()
    }
}

impl DatagramServer {
    /// Binds a UDP socket to `addr` for `handler`.
    ///
    /// # Errors
    /// As [`UdpSocket::bind`].
    ///
    /// # Blocking
    /// Only while a host name resolves (on the thread pool).
    pub fn new<A, H>(addr: A, handler: H) -> io::Result<DatagramServer>
    where
        A: ToSocketAddrs + Sync,
        H: Fn(&[u8], SocketAddr, &DatagramServer) + 'static,
    {
        let socket = UdpSocket::bind(addr)?;
        let addr = socket.local_addr()?;
        Ok(DatagramServer(Rc::new(DatagramInner {
            socket: RefCell::new(Some(Rc::new(socket))),
            addr,
            handler: Rc::new(handler),
            handlers: Group::new(),
            serving: Serving::default(),
        })))
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// Sends `buf` to `addr` from the server's socket.
    ///
    /// # Errors
    /// `NotConnected` once the server is stopped; else as
    /// [`UdpSocket::send_to`].
    ///
    /// # Blocking
    /// While the socket's send buffer is full.
    pub fn send_to(&self, buf: &[u8], addr: SocketAddr) -> io::Result<usize> {
        let socket = self.0.socket.borrow().clone();
        let socket = socket.ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "gevent: server was stopped"))?;
        socket.send_to(buf, addr)
    }

    /// Starts the receive loop in a new greenlet.
    ///
    /// # Errors
    /// `AlreadyExists` once started; `NotConnected` once stopped.
    pub fn start(&self) -> io::Result<()> {
        let Some(socket) = self.0.socket.borrow().clone() else {
            return self.0.serving.start(String::new(), false, || ());
        };
        let me = self.clone();
        self.0.serving.start(format!("DatagramServer({})", self.0.addr), true, move || me.receive(&socket))
    }

    /// The receive loop: one handler greenlet per datagram.
    fn receive(&self, socket: &UdpSocket) {
        let mut buf = vec![0u8; 65536];
        loop {
            self.0.serving.pause.wait_accepting();
            match self.0.serving.pause.run(|cancel| socket.recv_from_cancellable(&mut buf, cancel)) {
                // Paused: the loop parks above.
                Err(e) if is_cancelled(&e) => {}
                Ok((n, peer)) => {
                    let (data, srv) = (buf[..n].to_vec(), self.clone());
                    self.0.handlers.spawn(move || (srv.0.handler)(&data, peer, &srv));
                }
                // An ICMP error for an earlier send, a full buffer: the
                // socket still works.
                Err(e) if transient_udp_error(&e) => crate::sleep(MIN_BACKOFF),
                Err(e) => {
                    // Closed, as a StreamServer whose accepts fail for good.
                    report!("gevent: DatagramServer({}) stops receiving: {e}", self.0.addr);
                    drop(self.0.socket.borrow_mut().take());
                    drop(self.0.serving.task.borrow_mut().take());
                    self.0.serving.stopped.set();
                    return;
                }
            }
        }
    }

    /// Starts (if needed) and blocks until [`stop`](Self::stop).
    ///
    /// # Errors
    /// `NotConnected` when called after `stop`.
    ///
    /// # Blocking
    /// Until the server is stopped, or its receive loop ends on an error
    /// that is not transient (reported on stderr; `Ok` is returned). A
    /// caller killed or timed out while it serves stops the server before
    /// it goes on unwinding (as gevent's `serve_forever`).
    pub fn serve_forever(&self) -> io::Result<()> {
        let me = self.clone();
        self.0.serving.serve_forever(|| self.start(), move |caller| me.stop_leaving_out(STOP_GRACE, Some(&caller)))
    }

    /// [`stop_timeout`](Self::stop_timeout) with gevent's one-second grace.
    ///
    /// # Blocking
    /// As `stop_timeout`.
    pub fn stop(&self) {
        self.stop_timeout(STOP_GRACE)
    }

    /// True while the server receives: after [`start`](Self::start) (or
    /// `serve_forever`), before [`stop`](Self::stop) or
    /// [`close`](Self::close) (gevent's `started`).
    pub fn started(&self) -> bool {
        self.0.serving.serving()
    }

    /// True once the socket is closed (by `stop`, `close`, or a fatal
    /// receive error); the server cannot start again (gevent's `closed`).
    pub fn closed(&self) -> bool {
        self.0.socket.borrow().is_none()
    }

    /// Pauses receiving, keeping the socket open (gevent's
    /// `stop_accepting`): datagrams wait in the socket's receive buffer
    /// (the kernel drops those that do not fit, as always with UDP) and
    /// are handled, in order, once
    /// [`start_accepting`](Self::start_accepting) resumes. Handlers already
    /// running go on, and can still [`send_to`](Self::send_to). The receive
    /// loop parks until resumed, taking no CPU.
    ///
    /// Before [`start`](Self::start), the pause is kept: the server starts
    /// paused. After [`close`](Self::close) or [`stop`](Self::stop) it
    /// changes nothing. Calling it again while paused changes nothing.
    ///
    /// # Blocking
    /// Until the receive loop has left a receive that waits (on io_uring it
    /// is cancelled in the kernel first): when this returns, no datagram is
    /// taken from the socket until receiving resumes. A datagram the kernel
    /// had already handed to that receive is not dropped: its handler was
    /// spawned.
    ///
    /// # Examples
    /// ```
    /// use gevent::server::DatagramServer;
    /// use gevent::socket::UdpSocket;
    /// let server = DatagramServer::new("127.0.0.1:0", |data: &[u8], peer, srv: &DatagramServer| {
    ///     srv.send_to(data, peer).unwrap();
    /// }).unwrap();
    /// server.start().unwrap();
    /// server.stop_accepting();
    /// let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// c.send_to(b"one", server.local_addr()).unwrap();
    /// c.send_to(b"two", server.local_addr()).unwrap();
    /// server.start_accepting(); // both were kept in the socket's buffer
    /// let mut buf = [0u8; 8];
    /// let (n, _) = c.recv_from(&mut buf).unwrap();
    /// assert_eq!(&buf[..n], b"one");
    /// let (n, _) = c.recv_from(&mut buf).unwrap();
    /// assert_eq!(&buf[..n], b"two");
    /// server.stop();
    /// ```
    pub fn stop_accepting(&self) {
        self.0.serving.pause.stop();
    }

    /// Resumes receiving after [`stop_accepting`](Self::stop_accepting)
    /// (gevent's `start_accepting`): the datagrams queued meanwhile are
    /// handled first, in the order they arrived. A no-op when not paused.
    /// Before [`start`](Self::start) it only undoes a pause (the server
    /// does not start); after [`close`](Self::close) or
    /// [`stop`](Self::stop) it changes nothing.
    pub fn start_accepting(&self) {
        self.0.serving.pause.start();
    }

    /// True while the server receives: [`started`](Self::started) and not
    /// paused by [`stop_accepting`](Self::stop_accepting).
    pub fn is_accepting(&self) -> bool {
        self.0.serving.accepting()
    }

    /// Stops receiving and closes the socket at once (`serve_forever`
    /// returns), leaving the running handlers alone (gevent's `close`).
    ///
    /// # Blocking
    /// While the receive loop unwinds (it is killed).
    pub fn close(&self) {
        self.0.serving.close(&self.0.socket);
    }

    /// Stops receiving at once (the socket closes; `serve_forever`
    /// returns), waits up to `grace` for running handlers (other than the
    /// caller, if a handler stops its own server), then kills the rest,
    /// waiting at most one more second for them (as
    /// [`StreamServer::stop_timeout`](super::StreamServer::stop_timeout)).
    ///
    /// # Blocking
    /// Up to `grace`, plus up to one second of the killed handlers'
    /// unwinding.
    pub fn stop_timeout(&self, grace: std::time::Duration) {
        self.stop_leaving_out(grace, None)
    }

    /// [`stop_timeout`](Self::stop_timeout), not waiting for `caller`
    /// either (see `Serving::serve_forever`).
    fn stop_leaving_out(&self, grace: std::time::Duration, caller: Option<&crate::GreenletRef>) {
        self.close();
        stop_handlers(&self.0.handlers, grace, caller);
    }
}

fn transient_udp_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED | libc::EINTR | libc::ENOBUFS | libc::ENOMEM | libc::EHOSTUNREACH | libc::ENETUNREACH)
    )
}
