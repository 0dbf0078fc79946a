//! Load client for the echo benchmark (bench/echo.sh): one thread, nonblocking sockets,
//! level-triggered epoll via libc. Independent of the gevent crate.
//!
//! Usage: echo_load --addr 127.0.0.1:PORT --conns C --secs T [--size 64] [--bulk | --churn]
//!                  [--warmup 0.5] [--chunk 1048576]
//!
//! Round-trip mode (default): each of C connections sends `size` bytes, waits for the
//! whole echo, and repeats. After the warm-up, counts the round trips completed in the
//! next T seconds and keeps a latency histogram. Prints one line:
//!   rtt_per_sec=.. p50_us=.. p99_us=.. p999_us=.. max_us=.. conns=C size=S secs=T
//!   all_rtt=.. all_secs=.. cpu_pct=..
//! where all_rtt/all_secs cover the whole run including the warm-up (for CPU accounting),
//! and cpu_pct is this client's own CPU time over that.
//!
//! Bulk mode (--bulk): each of C connections streams `chunk`-byte writes and drains the
//! echo at the same time (at most two chunks outstanding per connection). Prints:
//!   mb_per_sec=.. conns=C chunk=.. secs=T all_bytes=.. all_secs=.. cpu_pct=..
//! with MB = 1e6 bytes of echoed data received.
//!
//! Churn mode (--churn): each of C connection slots loops: nonblocking connect, send
//! `size` bytes, read the whole echo, close (with SO_LINGER {on, 0}: a reset, so that no
//! TIME_WAIT sockets pile up on the client), and again. After the warm-up, counts the
//! connect-echo-close cycles completed in the next T seconds; latency runs from creating
//! the socket (just before the connect) to the close. Prints:
//!   conns_per_sec=.. p50_us=.. p99_us=.. conns=C size=S secs=T all_conns=.. all_secs=..
//!   cpu_pct=..

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::process::exit;
use std::time::{Duration, Instant};

struct Args {
    addr: SocketAddr,
    conns: usize,
    secs: f64,
    warmup: f64,
    size: usize,
    chunk: usize,
    bulk: bool,
    churn: bool,
}

fn usage(msg: &str) -> ! {
    eprintln!("echo_load: {msg}");
    eprintln!(
        "usage: echo_load --addr HOST:PORT --conns C --secs T [--size 64] [--bulk | --churn] [--warmup 0.5] [--chunk 1048576]"
    );
    exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        addr: "127.0.0.1:0".parse().unwrap(),
        conns: 0,
        secs: 0.0,
        warmup: 0.5,
        size: 64,
        chunk: 1 << 20,
        bulk: false,
        churn: false,
    };
    let mut have_addr = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--bulk" {
            args.bulk = true;
            continue;
        }
        if flag == "--churn" {
            args.churn = true;
            continue;
        }
        let val = it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--addr" => {
                args.addr = val.parse().unwrap_or_else(|_| usage(&format!("bad --addr {val}")));
                have_addr = true;
            }
            "--conns" => args.conns = num(&flag, &val),
            "--secs" => args.secs = num(&flag, &val),
            "--warmup" => args.warmup = num(&flag, &val),
            "--size" => args.size = num(&flag, &val),
            "--chunk" => args.chunk = num(&flag, &val),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    if !have_addr || args.conns == 0 || args.secs <= 0.0 || args.size == 0 || args.chunk == 0 || args.warmup < 0.0 {
        usage("need --addr, --conns > 0, --secs > 0 (and --size, --chunk > 0)");
    }
    if args.bulk && args.churn {
        usage("--bulk and --churn exclude each other");
    }
    args
}

fn num<T: std::str::FromStr>(flag: &str, val: &str) -> T {
    val.parse().unwrap_or_else(|_| usage(&format!("bad value for {flag}: {val}")))
}

fn raise_nofile_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Reads what is pending of a `size`-byte echo into `buf`, adding to `*got`; true once
/// all `size` bytes were sent and have come back.
fn read_echo(fd: RawFd, buf: &mut [u8], got: &mut usize, sent: usize, size: usize) -> bool {
    // The server echoes only what we sent, so never more than `size` is pending.
    match sys_read(fd, &mut buf[..size - *got]) {
        Ok(Some(0)) => fail("read", io::Error::new(io::ErrorKind::UnexpectedEof, "server closed")),
        Ok(Some(n)) => *got += n,
        Ok(None) => return false,
        Err(e) => fail("read", e),
    }
    *got == size && sent >= size
}

/// A run's clock: this client's CPU seconds at `begin`, the warm-up from `begin` to
/// `t0`, and the counted window from `t0` to `end`.
struct Window {
    cpu0: f64,
    begin: Instant,
    t0: Instant,
    end: Instant,
}

impl Window {
    fn start(args: &Args) -> Window {
        let cpu0 = own_cpu_secs();
        let begin = Instant::now();
        let t0 = begin + Duration::from_secs_f64(args.warmup);
        Window { cpu0, begin, t0, end: t0 + Duration::from_secs_f64(args.secs) }
    }
}

/// This process's CPU time (user + system) in seconds.
fn own_cpu_secs() -> f64 {
    // SAFETY: getrusage fills the zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn check(ret: libc::c_int, what: &str) -> libc::c_int {
    if ret < 0 {
        fail(what, io::Error::last_os_error());
    }
    ret
}

fn fail(what: &str, e: io::Error) -> ! {
    eprintln!("echo_load: {what}: {e}");
    exit(1)
}

/// Connects all sockets first (blocking connect: quick on loopback), then makes them
/// nonblocking. Connections the server has not accepted yet just queue their data.
fn connect_all(args: &Args) -> Vec<TcpStream> {
    (0..args.conns)
        .map(|i| {
            let s = TcpStream::connect_timeout(&args.addr, Duration::from_secs(10))
                .unwrap_or_else(|e| fail(&format!("connect #{i} to {}", args.addr), e));
            s.set_nodelay(true).unwrap_or_else(|e| fail("TCP_NODELAY", e));
            s.set_nonblocking(true).unwrap_or_else(|e| fail("O_NONBLOCK", e));
            s
        })
        .collect()
}

struct Epoll {
    fd: RawFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    fn new() -> Epoll {
        // SAFETY: plain syscall.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }, "epoll_create1");
        Epoll { fd, events: vec![libc::epoll_event { events: 0, u64: 0 }; 1024] }
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: usize) {
        let mut ev = libc::epoll_event { events, u64: token as u64 };
        // SAFETY: `ev` is a valid epoll_event; fd is an open socket.
        check(unsafe { libc::epoll_ctl(self.fd, op, fd, &mut ev) }, "epoll_ctl");
    }

    /// Waits until `deadline` at most; returns the number of ready events in `self.events`.
    fn wait(&mut self, deadline: Instant) -> usize {
        let ms = deadline.saturating_duration_since(Instant::now()).as_micros().div_ceil(1000).min(1000) as i32;
        // SAFETY: the buffer holds `events.len()` entries.
        let n = unsafe { libc::epoll_wait(self.fd, self.events.as_mut_ptr(), self.events.len() as i32, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return 0;
            }
            fail("epoll_wait", e);
        }
        n as usize
    }

    /// Hands every event to `f` (with this epoll, the token and the event bits) until
    /// `end`.
    fn each_until(&mut self, end: Instant, mut f: impl FnMut(&Epoll, usize, u32)) {
        while Instant::now() < end {
            let n = self.wait(end);
            for k in 0..n {
                let ev = self.events[k];
                f(self, ev.u64 as usize, ev.events);
            }
        }
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.fd) };
    }
}

/// Nonblocking read/write on a raw fd: Ok(None) means EAGAIN.
fn sys_read(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: buf is valid for buf.len() bytes.
    nonblocking(|| unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

fn sys_write(fd: RawFd, buf: &[u8]) -> io::Result<Option<usize>> {
    // SAFETY: buf is valid for buf.len() bytes.
    nonblocking(|| unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
}

/// Runs a read or write syscall, retrying on EINTR; EAGAIN is Ok(None).
fn nonblocking(mut call: impl FnMut() -> isize) -> io::Result<Option<usize>> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => return Ok(None),
            io::ErrorKind::Interrupted => continue,
            _ => return Err(e),
        }
    }
}

/// Log-linear latency histogram in nanoseconds: exact below 32 ns, then 32 buckets per
/// power of two (relative error < 3.2%).
struct Hist {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;

impl Hist {
    fn new() -> Hist {
        Hist { counts: vec![0; (64 - SUB_BITS as usize + 1) * SUB as usize], total: 0, max: 0 }
    }

    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros(); // >= SUB_BITS
        let shift = msb - SUB_BITS;
        let sub = (v >> shift) & (SUB - 1);
        ((shift as u64 + 1) * SUB + sub) as usize
    }

    /// Middle of the bucket's value range.
    fn value(index: usize) -> u64 {
        let index = index as u64;
        if index < SUB {
            return index;
        }
        let shift = index / SUB - 1;
        let low = (SUB + index % SUB) << shift;
        low + ((1u64 << shift) >> 1)
    }

    fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }
}

struct RttConn {
    stream: TcpStream,
    /// Bytes of the current request written so far.
    sent: usize,
    /// Bytes of the current echo read so far.
    got: usize,
    started: Instant,
    want_out: bool,
}

fn run_rtt(args: &Args) {
    let mut conns: Vec<RttConn> = connect_all(args)
        .into_iter()
        .map(|stream| RttConn { stream, sent: 0, got: 0, started: Instant::now(), want_out: false })
        .collect();
    let mut ep = Epoll::new();
    let payload: Vec<u8> = (0..args.size).map(|i| (i % 251) as u8).collect();
    let mut rbuf = vec![0u8; args.size.max(64 * 1024)];
    let mut hist = Hist::new();
    let (mut counted, mut all) = (0u64, 0u64);

    let Window { cpu0, begin, t0, end } = Window::start(args);

    // Writes what is left of the current request; registers for EPOLLOUT only while the
    // socket buffer is full (never, in practice, with small requests).
    let send = |ep: &Epoll, c: &mut RttConn, token: usize, payload: &[u8]| {
        let fd = c.stream.as_raw_fd();
        while c.sent < payload.len() {
            match sys_write(fd, &payload[c.sent..]) {
                Ok(Some(n)) => c.sent += n,
                Ok(None) => break,
                Err(e) => fail("write", e),
            }
        }
        let want_out = c.sent < payload.len();
        if want_out != c.want_out {
            let ev = libc::EPOLLIN as u32 | if want_out { libc::EPOLLOUT as u32 } else { 0 };
            ep.ctl(libc::EPOLL_CTL_MOD, fd, ev, token);
            c.want_out = want_out;
        }
    };

    for (i, c) in conns.iter_mut().enumerate() {
        ep.ctl(libc::EPOLL_CTL_ADD, c.stream.as_raw_fd(), libc::EPOLLIN as u32, i);
        c.started = Instant::now();
        send(&ep, c, i, &payload);
    }

    ep.each_until(end, |ep, token, events| {
        let c = &mut conns[token];
        if events & libc::EPOLLOUT as u32 != 0 {
            send(ep, c, token, &payload);
        }
        if events & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 {
            return;
        }
        let fd = c.stream.as_raw_fd();
        if !read_echo(fd, &mut rbuf, &mut c.got, c.sent, args.size) {
            return;
        }
        let done = Instant::now();
        all += 1;
        if done >= t0 && done < end {
            counted += 1;
            hist.record(done.duration_since(c.started).as_nanos() as u64);
        }
        c.got = 0;
        c.sent = 0;
        c.started = done;
        send(ep, c, token, &payload);
    });
    let all_secs = Instant::now().duration_since(begin).as_secs_f64();
    let us = |ns: u64| ns as f64 / 1000.0;
    println!(
        "rtt_per_sec={:.0} p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} conns={} size={} secs={} all_rtt={} all_secs={:.3} cpu_pct={:.0}",
        counted as f64 / args.secs,
        us(hist.quantile(0.50)),
        us(hist.quantile(0.99)),
        us(hist.quantile(0.999)),
        us(hist.max),
        args.conns,
        args.size,
        args.secs,
        all,
        all_secs,
        100.0 * (own_cpu_secs() - cpu0) / all_secs
    );
}

struct BulkConn {
    stream: TcpStream,
    /// Bytes of the current chunk written so far.
    off: usize,
    sent: u64,
    got: u64,
    want_out: bool,
}

fn run_bulk(args: &Args) {
    let mut conns: Vec<BulkConn> = connect_all(args)
        .into_iter()
        .map(|stream| BulkConn { stream, off: 0, sent: 0, got: 0, want_out: true })
        .collect();
    let mut ep = Epoll::new();
    let chunk: Vec<u8> = (0..args.chunk).map(|i| (i % 251) as u8).collect();
    let mut rbuf = vec![0u8; args.chunk.max(64 * 1024)];
    // At most two chunks outstanding per connection: one being written while the
    // previous one is echoed back.
    let window = 2 * args.chunk as u64;
    let (mut counted, mut all) = (0u64, 0u64);

    let Window { cpu0, begin, t0, end } = Window::start(args);
    let both = (libc::EPOLLIN | libc::EPOLLOUT) as u32;
    for (i, c) in conns.iter().enumerate() {
        ep.ctl(libc::EPOLL_CTL_ADD, c.stream.as_raw_fd(), both, i);
    }

    ep.each_until(end, |ep, token, events| {
        let c = &mut conns[token];
        let fd = c.stream.as_raw_fd();
        if events & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
            // Drain what is there.
            loop {
                match sys_read(fd, &mut rbuf) {
                    Ok(Some(0)) => fail("read", io::Error::new(io::ErrorKind::UnexpectedEof, "server closed")),
                    Ok(Some(n)) => {
                        c.got += n as u64;
                        all += n as u64;
                        let now = Instant::now();
                        if now >= t0 && now < end {
                            counted += n as u64;
                        }
                        if n < rbuf.len() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => fail("read", e),
                }
            }
        }
        // Write while the window allows; a chunk once started is always finished.
        while c.off > 0 || c.sent - c.got < window {
            match sys_write(fd, &chunk[c.off..]) {
                Ok(Some(n)) => {
                    c.sent += n as u64;
                    c.off = (c.off + n) % chunk.len();
                }
                Ok(None) => break,
                Err(e) => fail("write", e),
            }
        }
        let want_out = c.off > 0 || c.sent - c.got < window;
        if want_out != c.want_out {
            let ev = libc::EPOLLIN as u32 | if want_out { libc::EPOLLOUT as u32 } else { 0 };
            ep.ctl(libc::EPOLL_CTL_MOD, fd, ev, token);
            c.want_out = want_out;
        }
    });
    let all_secs = Instant::now().duration_since(begin).as_secs_f64();
    println!(
        "mb_per_sec={:.1} conns={} chunk={} secs={} all_bytes={} all_secs={:.3} cpu_pct={:.0}",
        counted as f64 / 1e6 / args.secs,
        args.conns,
        args.chunk,
        args.secs,
        all,
        all_secs,
        100.0 * (own_cpu_secs() - cpu0) / all_secs
    );
}

/// `addr` as a sockaddr for connect(2), and its length.
fn raw_sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as _,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than, and aligned for, any sockaddr.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as _,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

struct ChurnConn {
    fd: RawFd,
    sent: usize,
    got: usize,
    started: Instant,
}

fn run_churn(args: &Args) {
    let (sa, sa_len) = raw_sockaddr(&args.addr);
    let family = if args.addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    let mut ep = Epoll::new();
    let payload: Vec<u8> = (0..args.size).map(|i| (i % 251) as u8).collect();
    let mut rbuf = vec![0u8; args.size];
    let mut hist = Hist::new();
    let (mut counted, mut all) = (0u64, 0u64);

    // Opens slot `token`'s next connection: a nonblocking connect (on loopback it often
    // completes at once), the request written as soon as it is connected, EPOLLOUT only
    // while connecting or while the request is not all written.
    let open = |ep: &Epoll, token: usize| -> ChurnConn {
        let started = Instant::now();
        let ty = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: plain syscall.
        let fd = check(unsafe { libc::socket(family, ty, 0) }, "socket");
        // One small write per connection: Nagle never delays it, so no TCP_NODELAY here.
        // SAFETY: `sa` is a sockaddr of `sa_len` bytes.
        let r = unsafe { libc::connect(fd, (&sa as *const libc::sockaddr_storage).cast(), sa_len) };
        let connected = r == 0;
        if !connected {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                fail(&format!("connect to {}", args.addr), e);
            }
        }
        let mut c = ChurnConn { fd, sent: 0, got: 0, started };
        if connected {
            churn_send(&mut c, &payload);
        }
        let out = if !connected || c.sent < payload.len() { libc::EPOLLOUT as u32 } else { 0 };
        ep.ctl(libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32 | out, token);
        c
    };

    let Window { cpu0, begin, t0, end } = Window::start(args);
    let mut conns: Vec<ChurnConn> = (0..args.conns).map(|i| open(&ep, i)).collect();

    ep.each_until(end, |ep, token, events| {
        let c = &mut conns[token];
        if events & libc::EPOLLOUT as u32 != 0 && c.sent < payload.len() {
            // Connected (or failed: then the write reports why).
            churn_send(c, &payload);
            if c.sent == payload.len() {
                ep.ctl(libc::EPOLL_CTL_MOD, c.fd, libc::EPOLLIN as u32, token);
            }
        }
        if events & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 {
            return;
        }
        if !read_echo(c.fd, &mut rbuf, &mut c.got, c.sent, args.size) {
            return;
        }
        churn_close(c.fd);
        let done = Instant::now();
        all += 1;
        if done >= t0 && done < end {
            counted += 1;
            hist.record(done.duration_since(c.started).as_nanos() as u64);
        }
        conns[token] = open(ep, token);
    });
    let all_secs = Instant::now().duration_since(begin).as_secs_f64();
    let cpu_pct = 100.0 * (own_cpu_secs() - cpu0) / all_secs;
    for c in &conns {
        churn_close(c.fd);
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    println!(
        "conns_per_sec={:.0} p50_us={:.1} p99_us={:.1} conns={} size={} secs={} all_conns={} all_secs={:.3} cpu_pct={:.0}",
        counted as f64 / args.secs,
        us(hist.quantile(0.50)),
        us(hist.quantile(0.99)),
        args.conns,
        args.size,
        args.secs,
        all,
        all_secs,
        cpu_pct
    );
}

/// Writes what is left of the request.
fn churn_send(c: &mut ChurnConn, payload: &[u8]) {
    while c.sent < payload.len() {
        match sys_write(c.fd, &payload[c.sent..]) {
            Ok(Some(n)) => c.sent += n,
            Ok(None) => break,
            Err(e) => fail("write", e),
        }
    }
}

/// Closes with SO_LINGER {on, 0}: the close sends a reset instead of a FIN, so the socket
/// skips TIME_WAIT. We close first, and at thousands of connections a second the
/// TIME_WAIT sockets would otherwise exhaust the ephemeral ports within a minute.
fn churn_close(fd: RawFd) {
    let lg = libc::linger { l_onoff: 1, l_linger: 0 };
    let len = std::mem::size_of::<libc::linger>() as libc::socklen_t;
    // SAFETY: `lg` is a linger struct of `len` bytes; we own fd (the close also drops it
    // from the epoll set).
    unsafe {
        check(
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, (&lg as *const libc::linger).cast(), len),
            "SO_LINGER",
        );
        libc::close(fd);
    }
}

fn main() {
    let args = parse_args();
    raise_nofile_limit();
    if args.bulk {
        run_bulk(&args)
    } else if args.churn {
        run_churn(&args)
    } else {
        run_rtt(&args)
    }
}
