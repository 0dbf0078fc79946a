//! Raw io_uring echo server on one thread, without gevent or any runtime: a probe for
//! whether multishot accept and multishot recv with provided buffers (a registered buffer
//! ring) pay for a one-thread echo server, against single-shot accept and recv. Drive it
//! with bench/echo.sh or echo_load (`--churn` for an accept-heavy load).
//!
//! Usage: uring_probe [--recv single|multishot] [--accept single|multishot] PORT
//! (both default to single). Listens on 127.0.0.1:PORT; SIGTERM (read from a signalfd
//! through the ring) ends it. Prints its counters on stderr when it ends.
//!
//! The ring is set up as gevent's driver sets up its own (4096 SQEs, 16384 CQEs,
//! SINGLE_ISSUER | DEFER_TASKRUN). One loop: push the SQEs queued by the last pass,
//! publish the buffers given back to the buffer ring, `submit_and_wait(1)`, handle every
//! CQE. Connections are indexed by fd, and an fd is closed only when none of its requests
//! is in flight, so no CQE names a reused fd.
//! Echoes are plain `send(MSG_DONTWAIT)` syscalls; only when the socket is full does a
//! Send SQE take over (single recv: the next Recv waits for it; multishot recv: what
//! arrives meanwhile is queued behind it, without limit: the echo client bounds it).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::TcpListener;
use std::os::fd::{IntoRawFd, RawFd};
use std::process::exit;
use std::ptr::{addr_of_mut, null_mut};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{cqueue, opcode, squeue, types::Fd, IoUring};

const ENTRIES: u32 = 4096;
/// Provided buffers (a power of two, the ring's size) and their size.
const BUF_COUNT: u16 = 4096;
const BUF_SIZE: usize = 4096;
const BGID: u16 = 0;
/// Single-shot recv: each connection's buffer.
const RECV_BUF: usize = 64 * 1024;

/// user_data: fd << 2 | kind.
const RECV: u64 = 0;
const SEND: u64 = 1;
const ACCEPT: u64 = 2;
const SIGNAL: u64 = 3;

fn ud(fd: RawFd, kind: u64) -> u64 {
    (fd as u64) << 2 | kind
}

fn usage() -> ! {
    eprintln!("usage: uring_probe [--recv single|multishot] [--accept single|multishot] PORT");
    exit(2)
}

fn fail(what: &str, e: io::Error) -> ! {
    eprintln!("uring_probe: {what}: {e}");
    exit(1)
}

fn check(ret: libc::c_int, what: &str) -> libc::c_int {
    if ret < 0 {
        fail(what, io::Error::last_os_error());
    }
    ret
}

/// (multishot recv, multishot accept, port)
fn parse_args() -> (bool, bool, u16) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((port, flags)) = args.split_last() else { usage() };
    let mut multi = [false; 2];
    for pair in flags.chunks(2) {
        let i = ["--recv", "--accept"].iter().position(|f| *f == pair[0]).unwrap_or_else(|| usage());
        multi[i] = match pair.get(1).map(String::as_str) {
            Some("single") => false,
            Some("multishot") => true,
            _ => usage(),
        };
    }
    (multi[0], multi[1], port.parse().unwrap_or_else(|_| usage()))
}

fn set_opt(fd: RawFd, level: libc::c_int, name: libc::c_int, val: libc::c_int) -> libc::c_int {
    // SAFETY: `val` is a c_int, as these options expect; the length says so.
    unsafe { libc::setsockopt(fd, level, name, (&val as *const libc::c_int).cast(), size_of::<libc::c_int>() as _) }
}

/// A listening socket on 127.0.0.1:port (std sets SO_REUSEADDR), blocking: io_uring
/// polls it, as it does the accepted sockets.
fn listen_on(port: u16) -> RawFd {
    let fd = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| fail("bind", e)).into_raw_fd();
    // SAFETY: a plain syscall on our socket; listening again only sets the backlog.
    check(unsafe { libc::listen(fd, 4096) }, "listen");
    fd
}

/// Blocks SIGTERM (one thread: for the whole process) and returns a signalfd for it.
fn sigterm_fd() -> RawFd {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        check(libc::sigprocmask(libc::SIG_BLOCK, &set, null_mut()), "sigprocmask");
        check(libc::signalfd(-1, &set, libc::SFD_CLOEXEC), "signalfd")
    }
}

/// A fresh anonymous mapping (page-aligned, zeroed).
fn map(len: usize) -> *mut u8 {
    let (prot, flags) = (libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS);
    // SAFETY: a new mapping; no existing memory is touched.
    let p = unsafe { libc::mmap(null_mut(), len, prot, flags, -1, 0) };
    if p == libc::MAP_FAILED {
        fail("mmap", io::Error::last_os_error());
    }
    p.cast()
}

/// `struct io_uring_buf`; entry 0's `resv` is the ring's tail.
#[repr(C)]
struct RawBuf {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

/// A provided-buffer ring and its buffers, in mappings that live until the process ends
/// (the kernel may use them until the io_uring is gone).
struct BufRing {
    entries: *mut RawBuf,
    bufs: *mut u8,
    /// Our tail: entries written up to here, published by `publish`.
    tail: u16,
}

impl BufRing {
    fn new() -> BufRing {
        let entries = map(BUF_COUNT as usize * size_of::<RawBuf>()).cast();
        let mut ring = BufRing { entries, bufs: map(BUF_COUNT as usize * BUF_SIZE), tail: 0 };
        for bid in 0..BUF_COUNT {
            ring.give(bid);
        }
        ring.publish();
        ring
    }

    /// The first `len` bytes of buffer `bid`, which a CQE handed us.
    fn data(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < BUF_COUNT && len <= BUF_SIZE);
        // SAFETY: inside the mapping; the kernel wrote it before posting the CQE and does
        // not touch it again until `give` returns it and `publish` makes that visible.
        unsafe { std::slice::from_raw_parts(self.bufs.add(bid as usize * BUF_SIZE), len) }
    }

    /// Puts buffer `bid` (ours: handed out by a CQE, or never given) back at the tail.
    fn give(&mut self, bid: u16) {
        // SAFETY: the slot is inside the mapping and not the kernel's: at most BUF_COUNT
        // buffers exist, so the ring never holds more than BUF_COUNT live entries. Fields
        // are written through raw pointers, so no reference covers entry 0's `resv` (the
        // tail the kernel reads).
        unsafe {
            let e = self.entries.add((self.tail & (BUF_COUNT - 1)) as usize);
            addr_of_mut!((*e).addr).write(self.bufs.add(bid as usize * BUF_SIZE) as u64);
            addr_of_mut!((*e).len).write(BUF_SIZE as u32);
            addr_of_mut!((*e).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the given-back buffers visible to the kernel.
    fn publish(&self) {
        // SAFETY: entry 0's `resv` is the tail, a u16 the kernel reads with an acquire
        // load: the release store orders the entry writes before it.
        let tail = unsafe { AtomicU16::from_ptr(addr_of_mut!((*self.entries).resv)) };
        tail.store(self.tail, Ordering::Release);
    }
}

#[derive(Default)]
struct Conn {
    open: bool,
    closing: bool,
    recv_armed: bool,
    send_armed: bool,
    /// Single recv: the receive buffer (allocated once per fd number, kept for reuse); a
    /// Send SQE sends `buf[off..end]` from it.
    buf: Vec<u8>,
    /// Multishot recv: a Send SQE sends `out[off..]`; `queued` collects what arrives meanwhile.
    out: Vec<u8>,
    queued: Vec<u8>,
    off: usize,
    end: usize,
}

struct Server {
    listen: RawFd,
    multi_recv: bool,
    multi_accept: bool,
    conns: Vec<Conn>,
    bufs: Option<BufRing>,
    /// SQEs for the next pass.
    sqes: Vec<squeue::Entry>,
    stop: bool,
    accepted: u64,
    enobufs: u64,
}

/// A Send SQE for `data`, which must stay put until its CQE (see `Conn`).
fn send_sqe(fd: RawFd, data: &[u8]) -> squeue::Entry {
    opcode::Send::new(Fd(fd), data.as_ptr(), data.len() as u32)
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(ud(fd, SEND))
}

/// Sends what the socket takes now: Some(bytes sent), fewer than `data.len()` if it is
/// full; None if the connection is dead.
fn send_now(fd: RawFd, data: &[u8]) -> Option<usize> {
    let mut off = 0;
    while off < data.len() {
        let rest = &data[off..];
        // SAFETY: `rest` is valid for its length; fd is open.
        let n = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        match n {
            1.. => off += n as usize,
            0 => break,
            _ => match io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN) => break,
                Some(libc::EINTR) => {}
                _ => return None,
            },
        }
    }
    Some(off)
}

impl Server {
    fn handle(&mut self, user_data: u64, res: i32, flags: u32) {
        let fd = (user_data >> 2) as RawFd;
        match user_data & 3 {
            RECV => self.on_recv(fd, res, flags),
            SEND => self.on_send(fd, res),
            ACCEPT => self.on_accept(res, flags),
            _ => self.stop = true,
        }
    }

    fn arm_accept(&mut self) {
        let fd = Fd(self.listen);
        let e = if self.multi_accept {
            opcode::AcceptMulti::new(fd).flags(libc::SOCK_CLOEXEC).build()
        } else {
            opcode::Accept::new(fd, null_mut(), null_mut()).flags(libc::SOCK_CLOEXEC).build()
        };
        self.sqes.push(e.user_data(ud(0, ACCEPT)));
    }

    fn arm_recv(&mut self, fd: RawFd) {
        let c = &mut self.conns[fd as usize];
        c.recv_armed = true;
        let e = if self.multi_recv {
            opcode::RecvMulti::new(Fd(fd), BGID).build()
        } else {
            opcode::Recv::new(Fd(fd), c.buf.as_mut_ptr(), c.buf.len() as u32).build()
        };
        self.sqes.push(e.user_data(ud(fd, RECV)));
    }

    fn on_accept(&mut self, res: i32, flags: u32) {
        if !self.multi_accept || !cqueue::more(flags) {
            self.arm_accept();
        }
        if res < 0 {
            eprintln!("uring_probe: accept: {}", io::Error::from_raw_os_error(-res));
            return;
        }
        let fd = res;
        set_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
        if self.conns.len() <= fd as usize {
            self.conns.resize_with(fd as usize + 1, Conn::default);
        }
        let c = &mut self.conns[fd as usize];
        c.open = true;
        if !self.multi_recv && c.buf.is_empty() {
            c.buf = vec![0; RECV_BUF];
        }
        self.accepted += 1;
        self.arm_recv(fd);
    }

    fn on_recv(&mut self, fd: RawFd, res: i32, flags: u32) {
        let c = &mut self.conns[fd as usize];
        c.recv_armed = self.multi_recv && cqueue::more(flags);
        let mut ok = res > 0;
        if self.multi_recv {
            // Any buffer the CQE names is ours: echo (or copy) it, then give it back.
            if let Some(bid) = cqueue::buffer_select(flags) {
                let bufs = self.bufs.as_mut().expect("a buffer without a ring");
                if ok && !c.closing {
                    let data = bufs.data(bid, res as usize);
                    if c.send_armed {
                        c.queued.extend_from_slice(data);
                    } else {
                        match send_now(fd, data) {
                            Some(n) if n < data.len() => {
                                c.out.extend_from_slice(&data[n..]);
                                c.off = 0;
                                c.send_armed = true;
                                self.sqes.push(send_sqe(fd, &c.out));
                            }
                            Some(_) => {}
                            None => ok = false,
                        }
                    }
                }
                bufs.give(bid);
            } else if ok {
                panic!("multishot recv of {res} bytes without a buffer");
            } else if res == -libc::ENOBUFS {
                // The ring ran dry and the multishot ended: re-armed below.
                self.enobufs += 1;
                ok = true;
            }
        } else if ok {
            let n = res as usize;
            match send_now(fd, &c.buf[..n]) {
                Some(k) if k < n => {
                    (c.off, c.end) = (k, n);
                    c.send_armed = true;
                    self.sqes.push(send_sqe(fd, &c.buf[k..n]));
                }
                Some(_) => {}
                None => ok = false,
            }
        }
        if !ok {
            self.start_close(fd);
        }
        let c = &self.conns[fd as usize];
        if !c.closing && !c.recv_armed && (self.multi_recv || !c.send_armed) {
            self.arm_recv(fd);
        }
        self.maybe_close(fd);
    }

    fn on_send(&mut self, fd: RawFd, res: i32) {
        let c = &mut self.conns[fd as usize];
        c.send_armed = false;
        if res <= 0 {
            self.start_close(fd);
        } else if !c.closing {
            c.off += res as usize;
            if self.multi_recv {
                if c.off == c.out.len() {
                    c.out.clear();
                    c.off = 0;
                    std::mem::swap(&mut c.out, &mut c.queued);
                }
                if !c.out.is_empty() {
                    c.send_armed = true;
                    self.sqes.push(send_sqe(fd, &c.out[c.off..]));
                }
            } else if c.off < c.end {
                c.send_armed = true;
                self.sqes.push(send_sqe(fd, &c.buf[c.off..c.end]));
            } else {
                self.arm_recv(fd);
            }
        }
        self.maybe_close(fd);
    }

    fn start_close(&mut self, fd: RawFd) {
        let c = &mut self.conns[fd as usize];
        if !c.closing && (c.recv_armed || c.send_armed) {
            // Ends the requests in flight (recv sees EOF, send an error); the fd is closed
            // after their CQEs.
            // SAFETY: fd is still open: it is closed only in `maybe_close`.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        c.closing = true;
    }

    fn maybe_close(&mut self, fd: RawFd) {
        let c = &mut self.conns[fd as usize];
        if c.closing && !c.recv_armed && !c.send_armed {
            // SAFETY: our fd, and no request in flight names it.
            unsafe { libc::close(fd) };
            (c.open, c.closing) = (false, false);
            c.out.clear();
            c.queued.clear();
        }
    }
}

fn main() {
    let (multi_recv, multi_accept, port) = parse_args();
    let sigfd = sigterm_fd();
    let listen = listen_on(port);
    let bufs = multi_recv.then(BufRing::new);
    let mut srv = Server {
        listen,
        multi_recv,
        multi_accept,
        conns: Vec::new(),
        bufs,
        sqes: Vec::new(),
        stop: false,
        accepted: 0,
        enobufs: 0,
    };
    // Declared after `srv`, so dropped before the buffers its requests point into.
    let mut ring: IoUring = IoUring::builder()
        .setup_cqsize(4 * ENTRIES)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(ENTRIES)
        .unwrap_or_else(|e| fail("io_uring_setup", e));
    if let Some(b) = &srv.bufs {
        // SAFETY: BUF_COUNT entries, page-aligned, in a mapping never unmapped.
        unsafe { ring.submitter().register_buf_ring_with_flags(b.entries as u64, BUF_COUNT, BGID, 0) }
            .unwrap_or_else(|e| fail("register_buf_ring", e));
    }
    srv.sqes.push(opcode::PollAdd::new(Fd(sigfd), libc::POLLIN as u32).build().user_data(ud(0, SIGNAL)));
    srv.arm_accept();

    while !srv.stop {
        if let Some(b) = &srv.bufs {
            b.publish();
        }
        let (submitter, mut sq, mut cq) = ring.split();
        for e in srv.sqes.drain(..) {
            // SAFETY: an SQE points only at memory that stays put until its CQE: a
            // connection's `buf` (allocated once, never resized) while its Recv or Send is
            // in flight, `out` (not modified while a Send is in flight; new data goes to
            // `queued`), or nothing (accept, multishot recv, poll).
            while unsafe { sq.push(&e) }.is_err() {
                sq.sync();
                submitter.submit().unwrap_or_else(|err| fail("io_uring_enter", err));
                sq.sync();
            }
        }
        sq.sync();
        match submitter.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
            Err(e) => fail("io_uring_enter", e),
        }
        cq.sync();
        for cqe in cq {
            srv.handle(cqe.user_data(), cqe.result(), cqe.flags());
        }
    }

    // In-flight requests keep their sockets alive until the ring's teardown, which the
    // kernel finishes after we exit: shut them down now, so that the port is free at once
    // (a shut-down listener does not block a new SO_REUSEADDR bind) and clients see EOF.
    let open = srv.conns.iter().enumerate().filter(|(_, c)| c.open).map(|(fd, _)| fd as RawFd);
    for fd in open.chain([listen]) {
        // SAFETY: our fds; requests still in flight hold their own references.
        unsafe {
            libc::shutdown(fd, libc::SHUT_RDWR);
            libc::close(fd);
        }
    }
    // SAFETY: as above.
    unsafe { libc::close(sigfd) };
    eprintln!("uring_probe: accepted={} enobufs={}", srv.accepted, srv.enobufs);
}
