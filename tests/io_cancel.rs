//! Interrupting I/O, thousands of times, on both backends: greenlets
//! killed or timed out in the middle of a `recv`, `recv_from` or `accept`.
//!
//! What must hold (the io_uring rule: no kernel write outlives the memory
//! it names): a kill or timeout returns only once the operation is
//! cancelled or complete, so
//! - data sent after the interruption is read intact by the next reader
//!   (no cancelled operation is still pending to swallow it);
//! - data racing with the interruption lands in the victim's own buffer or
//!   stays in the socket, never anywhere else: canary bytes around every
//!   buffer stay intact, and a greenlet that reuses a killed victim's stack
//!   finds its own memory untouched;
//! - a stream loses none of it: what an interrupted read took (io_uring)
//!   the socket's next read returns first, before what stayed in the
//!   socket;
//! - a listener loses no connection: one an interrupted accept took from
//!   the kernel (io_uring) the listener's next accept returns first, and
//!   the process's fd count is flat.

mod io_common;

use std::cell::RefCell;
use std::hint::black_box;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use gevent::event::Event;
use gevent::socket::{TcpListener, TcpStream, UdpSocket};
use gevent::{Greenlet, GreenletError};
use io_common::{both_exclusive, fd_count, join_ok, ms, scaled, settle_fds, tcp_pair, LOCAL};

/// What every buffer is filled with before a read (no message byte is it).
const FILL: u8 = 0xAA;
const CANARY: usize = 64;
const N: usize = 256;
const BUF: usize = CANARY + N + CANARY;
const MSG: usize = 16;

fn iterations() -> usize {
    scaled(2000, 300)
}

/// Message `i`: 16 bytes, none of them `FILL`.
fn msg(i: usize) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    for (j, b) in m.iter_mut().enumerate() {
        *b = ((i * 31 + j * 7) % 127) as u8;
    }
    m
}

/// Checks a `BUF`-byte buffer after an interrupted read of message `i` into
/// its middle: canaries intact; the middle holds a prefix of the message
/// (what the interrupted read took) and `FILL` after it. Returns the
/// prefix's length.
fn check_buffer(buf: &[u8], i: usize, what: &str) -> usize {
    assert_eq!(buf.len(), BUF);
    assert!(buf[..CANARY].iter().all(|&b| b == FILL), "{what} {i}: the canary before the buffer was overwritten");
    assert!(buf[CANARY + N..].iter().all(|&b| b == FILL), "{what} {i}: the canary after the buffer was overwritten");
    let mid = &buf[CANARY..CANARY + N];
    let k = mid.iter().take_while(|&&b| b != FILL).count();
    let m = msg(i);
    assert!(k <= MSG && mid[..k] == m[..k], "{what} {i}: foreign bytes in the buffer: {:?}", &mid[..k.min(32)]);
    assert!(mid[k..].iter().all(|&b| b == FILL), "{what} {i}: scattered bytes in the buffer");
    k
}

/// True if `fd` has nothing to read right now.
fn nothing_readable(fd: RawFd) -> bool {
    let mut b = [0u8; 1];
    // SAFETY: writes at most 1 byte into the live buffer.
    let n = unsafe { libc::recv(fd, b.as_mut_ptr().cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    n < 0 && std::io::Error::last_os_error().kind() == ErrorKind::WouldBlock
}

/// Reads the rest of message `i` from `client` (an interrupted read took its
/// first `k` bytes) and checks it (`what` names a difference) and that
/// nothing else is readable; true if anything of the message was left.
fn read_rest(mut client: &TcpStream, i: usize, k: usize, what: &str) -> bool {
    let left = k < MSG;
    if left {
        let mut rest = vec![0u8; MSG - k];
        client.read_exact(&mut rest).unwrap();
        assert_eq!(rest, msg(i)[k..], "iteration {i}: {what}");
    }
    assert!(nothing_readable(client.as_raw_fd()), "iteration {i}: stray data in the socket");
    left
}

/// Lets a just-spawned victim reach its blocking point in one of several
/// ways: not at all (killed before it ran), one to three passes of the
/// hub, or now and then long enough for the kernel to have the operation
/// for sure.
fn let_run(i: usize) {
    match i % 4 {
        0 => {}
        1 => gevent::yield_now(),
        2 => {
            gevent::yield_now();
            gevent::yield_now();
        }
        _ if i % 64 == 3 => gevent::sleep(Duration::from_micros(200)),
        _ => {
            for _ in 0..3 {
                gevent::yield_now();
            }
        }
    }
}

/// A greenlet that likely runs on the stack a killed victim just left (the
/// pool hands it out again) and fills most of it; [`Bystander::check`]
/// then asks whether its memory is still as it left it.
struct Bystander {
    go: Event,
    greenlet: Greenlet<bool>,
}

impl Bystander {
    /// Spawns the bystander and lets it fill its stack and park.
    fn spawn() -> Self {
        let go = Event::new();
        let wait = go.clone();
        let greenlet = gevent::spawn(move || {
            let mut arr = [0x5Au8; 32 * 1024];
            black_box(&mut arr);
            wait.wait();
            black_box(&arr).iter().all(|&b| b == 0x5A)
        });
        gevent::yield_now();
        Bystander { go, greenlet }
    }

    /// Wakes the bystander; fails iteration `i` if its memory changed.
    fn check(self, i: usize) {
        self.go.set();
        assert!(join_ok(self.greenlet), "iteration {i}: a killed victim's stack was written after its death");
    }
}

fn assert_killed<T: 'static>(g: &Greenlet<T>, i: usize) {
    assert!(g.dead(), "iteration {i}: kill returned before the victim died");
    match g.exception() {
        Some(GreenletError::Killed) => {}
        other => panic!("iteration {i}: the victim ended with {other:?}, not killed"),
    }
}

/// Greenlets, timers and waiters of this hub: the same before and after a
/// loop of interruptions (nothing left armed or enlisted).
fn hub_counts() -> (usize, usize, usize) {
    let s = gevent::hub::stats();
    (s.greenlets, s.timers, s.waiters)
}

/// This process's fd count and this hub's [`hub_counts`] before a loop of
/// interruptions, to compare with after it.
struct Baseline {
    fds: usize,
    counts: (usize, usize, usize),
}

impl Baseline {
    fn take() -> Self {
        let fds = fd_count();
        Baseline { fds, counts: hub_counts() }
    }

    /// Asserts that no fd leaked (allowing 10 s for closes to settle) and
    /// that the hub holds what it held before.
    fn check(&self) {
        let after = settle_fds(self.fds, Duration::from_secs(10));
        assert_eq!(after, self.fds, "fds leaked: {after} open, {} before", self.fds);
        assert_eq!(hub_counts(), self.counts, "(greenlets, timers, waiters) before and after");
    }
}

#[test]
fn kill_mid_recv_then_later_data_arrives_intact() {
    both_exclusive(|| {
        let (client, mut server) = tcp_pair();
        let client = Rc::new(client);
        client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let base = Baseline::take();
        for i in 0..iterations() {
            let heap = Rc::new(RefCell::new(vec![FILL; BUF]));
            let (c, h) = (client.clone(), heap.clone());
            let on_stack = i % 2 == 0;
            let victim = gevent::spawn(move || {
                let mut stack_buf = [FILL; BUF];
                let r = if on_stack {
                    (&*c).read(&mut stack_buf[CANARY..CANARY + N])
                } else {
                    (&*c).read(&mut h.borrow_mut()[CANARY..CANARY + N])
                };
                black_box(&stack_buf);
                panic!("the victim's read returned {r:?} though nothing was sent");
            });
            let_run(i);
            victim.kill();
            assert_killed(&victim, i);
            let by = Bystander::spawn();
            // Sent after the kill returned: all of it for the next reader.
            server.write_all(&msg(i)).unwrap();
            let mut got = [0u8; MSG];
            (&*client).read_exact(&mut got).unwrap();
            assert_eq!(got, msg(i), "iteration {i}: data sent after the kill was altered or partly swallowed");
            assert_eq!(check_buffer(&heap.borrow(), i, "heap buffer"), 0);
            by.check(i);
        }
        base.check();
    });
}

#[test]
fn kill_mid_recv_racing_with_data() {
    both_exclusive(|| {
        let (client, mut server) = tcp_pair();
        let client = Rc::new(client);
        client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let base = Baseline::take();
        let (mut taken, mut left) = (0usize, 0usize);
        for i in 0..iterations() {
            let heap = Rc::new(RefCell::new(vec![FILL; BUF]));
            let (c, h) = (client.clone(), heap.clone());
            let victim = gevent::spawn(move || {
                let r = (&*c).read(&mut h.borrow_mut()[CANARY..CANARY + N]);
                // Resumed with the data before the kill took effect: park
                // so the kill still finds the victim alive.
                let _ = black_box(r);
                gevent::sleep(Duration::from_secs(60));
            });
            let_run(i);
            // The data arrives while the victim's read is pending (io_uring:
            // the kernel may complete it before the cancellation).
            server.write_all(&msg(i)).unwrap();
            victim.kill();
            assert_killed(&victim, i);
            let k = check_buffer(&heap.borrow(), i, "victim buffer");
            // All of it is still to be read, in order: what the victim
            // took first, then what it did not.
            read_rest(&client, i, 0, "the message, after a killed read");
            if k > 0 {
                taken += 1;
            } else {
                left += 1;
            }
        }
        println!(
            "{:?}: the killed victim had taken the data {taken} times, left it {left} times",
            gevent::hub::backend()
        );
        base.check();
    });
}

#[test]
fn with_timeout_around_recv_then_the_socket_still_works() {
    both_exclusive(|| {
        let (client, mut server) = tcp_pair();
        let base = Baseline::take();
        let durations =
            [Duration::ZERO, Duration::from_nanos(1), Duration::from_micros(20), Duration::from_micros(100)];
        let (mut timed_out, mut returned) = (0usize, 0usize);
        for i in 0..iterations() {
            let mut buf = [FILL; BUF];
            let race = i % 2 == 1;
            if race {
                server.write_all(&msg(i)).unwrap();
            }
            let d = durations[(i / 2) % durations.len()];
            let r = gevent::with_timeout(d, || (&client).read(&mut buf[CANARY..CANARY + N]));
            // The scope is left; this greenlet goes on, its buffer intact.
            let k = check_buffer(&buf, i, "scope buffer");
            // What the next reads return: the rest after what the read
            // returned; all of it after a read the scope interrupted (what
            // it took comes back first).
            let consumed = match r {
                Ok(Ok(n)) => {
                    assert!(race, "iteration {i}: a read returned {n} bytes though nothing was sent");
                    assert_eq!(n, k, "iteration {i}: the read's count and the buffer disagree");
                    returned += 1;
                    k
                }
                Ok(Err(e)) => panic!("iteration {i}: the read failed: {e}"),
                Err(gevent::Timeout) => {
                    timed_out += 1;
                    0
                }
            };
            if !race {
                assert_eq!(k, 0, "iteration {i}: data appeared though none was sent");
                // Sent after the scope was left: the next read gets all of it.
                server.write_all(&msg(i)).unwrap();
            }
            read_rest(&client, i, consumed, "the rest of the message");
        }
        println!("{:?}: {timed_out} scopes timed out, {returned} reads returned first", gevent::hub::backend());
        assert!(timed_out > 0);
        base.check();
    });
}

#[test]
fn socket_read_timeout_racing_with_data() {
    // The socket-timeout path: a timed-out read reports TimedOut only if it
    // took nothing; a read that completed anyway returns its data.
    both_exclusive(|| {
        let (client, mut server) = tcp_pair();
        let base = Baseline::take();
        let timeouts = [Duration::from_nanos(1), Duration::from_micros(1), Duration::from_micros(50)];
        for i in 0..iterations() {
            client.set_read_timeout(Some(timeouts[i % timeouts.len()])).unwrap();
            let race = i % 2 == 1;
            if race {
                server.write_all(&msg(i)).unwrap();
            }
            let mut buf = [FILL; BUF];
            let r = (&client).read(&mut buf[CANARY..CANARY + N]);
            let k = check_buffer(&buf, i, "buffer");
            match r {
                Ok(n) => assert!(race && n == k && n > 0, "iteration {i}: read {n}, {k} bytes in the buffer"),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::TimedOut, "iteration {i}: {e}");
                    assert_eq!(k, 0, "iteration {i}: a timed-out read left {k} bytes in the buffer");
                }
            }
            client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            if !race {
                server.write_all(&msg(i)).unwrap();
            }
            read_rest(&client, i, k, "data lost or altered by a timed-out read");
        }
        base.check();
    });
}

#[test]
fn kill_mid_recv_from_udp() {
    both_exclusive(|| {
        let a = Rc::new(UdpSocket::bind(LOCAL).unwrap());
        let b = UdpSocket::bind(LOCAL).unwrap();
        let a_addr = a.local_addr().unwrap();
        a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let base = Baseline::take();
        let (mut taken, mut left) = (0usize, 0usize);
        for i in 0..iterations() / 2 {
            let heap = Rc::new(RefCell::new(vec![FILL; BUF]));
            let (s, h) = (a.clone(), heap.clone());
            let victim = gevent::spawn(move || {
                let r = s.recv_from(&mut h.borrow_mut()[CANARY..CANARY + N]);
                let _ = black_box(r);
                gevent::sleep(Duration::from_secs(60));
            });
            let_run(i);
            let race = i % 2 == 1;
            if race {
                b.send_to(&msg(i), a_addr).unwrap();
            }
            victim.kill();
            assert_killed(&victim, i);
            let by = Bystander::spawn();
            if !race {
                b.send_to(&msg(i), a_addr).unwrap();
            }
            let k = check_buffer(&heap.borrow(), i, "victim buffer");
            if k == 0 {
                let mut got = [0u8; 64];
                let (n, from) = a.recv_from(&mut got).unwrap();
                assert_eq!((&got[..n], from), (&msg(i)[..], b.local_addr().unwrap()), "iteration {i}");
                left += 1;
            } else {
                assert!(race, "iteration {i}: a datagram sent after the kill reached the victim");
                assert_eq!(k, MSG, "iteration {i}: part of a datagram");
                taken += 1;
            }
            assert!(nothing_readable(a.as_raw_fd()), "iteration {i}: a stray datagram");
            by.check(i);
        }
        println!(
            "{:?}: the killed victim had taken the datagram {taken} times, left it {left} times",
            gevent::hub::backend()
        );
        base.check();
    });
}

#[test]
fn kill_mid_accept_loses_no_connection() {
    both_exclusive(|| {
        let listener = Rc::new(TcpListener::bind(LOCAL).unwrap());
        let addr = listener.local_addr().unwrap();
        // Bounds a wait for a connection that should be there.
        listener.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let base = Baseline::take();
        let mut accepted_after = 0usize;
        for i in 0..iterations() {
            let l = listener.clone();
            let victim = gevent::spawn(move || {
                let r = l.accept();
                let _ = black_box(r);
                gevent::sleep(Duration::from_secs(60));
            });
            let_run(i);
            let race = i % 2 == 1;
            // A blocking std connect: the handshake completes in the kernel
            // at once, with no pass of the hub in between.
            let connect = || std::net::TcpStream::connect(addr).unwrap();
            let mut client = race.then(connect);
            victim.kill();
            assert_killed(&victim, i);
            let mut client = client.take().unwrap_or_else(connect);
            client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            client.set_nonblocking(true).unwrap();
            let mut b = [0u8; 1];
            match client.peek(&mut b) {
                // Still in the backlog, or taken by the victim's accept
                // after its cancellation and kept: ours to accept either way.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let (mut conn, peer) = listener.accept().unwrap_or_else(|e| {
                        panic!("iteration {i}: the connection vanished (taken by a cancelled accept, fd leaked?): {e}")
                    });
                    assert_eq!(peer, client.local_addr().unwrap());
                    conn.write_all(b"k").unwrap();
                    client.set_nonblocking(false).unwrap();
                    client.read_exact(&mut b).unwrap();
                    assert_eq!(&b, b"k");
                    accepted_after += 1;
                }
                // EOF or a reset: the connection was accepted and closed.
                r => panic!("iteration {i}: the interrupted accept lost the connection (peek gave {r:?})"),
            }
        }
        assert_eq!(accepted_after, iterations());
        base.check();
        // The listener still works.
        let c = TcpStream::connect(addr).unwrap();
        let (s, _) = listener.accept().unwrap();
        assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
    });
}

/// Sets an int socket option.
fn set_int_opt(fd: RawFd, level: i32, name: i32, v: i32) {
    // SAFETY: setsockopt reads 4 bytes of the live int.
    let r = unsafe {
        libc::setsockopt(fd, level, name, (&v as *const i32).cast(), std::mem::size_of::<i32>() as libc::socklen_t)
    };
    assert_eq!(r, 0, "setsockopt({level}, {name})");
}

#[test]
fn kill_mid_send_the_peer_never_sees_freed_memory() {
    // A victim blocked in write_all (the peer does not read) is killed; its
    // buffer is freed and the memory refilled with 0xEE at once. The peer
    // then reads everything: a prefix of the victim's bytes, in order, and
    // never a 0xEE (no send outlived the buffer it names).
    const LEN: usize = 256 * 1024;
    const END: [u8; 8] = [0xFF; 8];
    both_exclusive(move || {
        let (client, server) = tcp_pair();
        set_int_opt(client.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, 32 * 1024);
        set_int_opt(server.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 32 * 1024);
        let (client, server) = (Rc::new(client), Rc::new(server));
        server.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // Bytes 20..220 cycling; iteration i starts at offset i % 200.
        let cycle: Vec<u8> = (0..LEN + 200).map(|j| (20 + j % 200) as u8).collect();
        let base = Baseline::take();
        for i in 0..iterations() / 8 {
            let c = client.clone();
            let data = cycle[i % 200..][..LEN].to_vec();
            let expect = data.clone();
            let victim = gevent::spawn(move || {
                let r = (&*c).write_all(&data);
                panic!("a write_all to a peer that does not read returned {r:?}");
            });
            gevent::sleep(ms(1)); // the buffers fill up, the send blocks
            victim.kill();
            assert_killed(&victim, i);
            // The freed buffer's memory, reused and overwritten.
            let garbage = vec![0xEEu8; LEN];
            black_box(&garbage);
            let s = server.clone();
            let reader = gevent::spawn(move || {
                let mut got = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                while !got.ends_with(&END) {
                    let n = (&*s).read(&mut buf).unwrap();
                    assert!(n > 0, "EOF before the end marker");
                    got.extend_from_slice(&buf[..n]);
                }
                got.truncate(got.len() - END.len());
                got
            });
            (&*client).write_all(&END).unwrap();
            let got = join_ok(reader);
            drop(garbage);
            assert!(!got.contains(&0xEE), "iteration {i}: the peer received freed memory");
            assert!(!got.is_empty() && got.len() < LEN, "iteration {i}: {} bytes went through", got.len());
            assert!(got[..] == expect[..got.len()], "iteration {i}: the victim's bytes arrived altered");
        }
        base.check();
    });
}

#[test]
fn kill_mid_connect() {
    // Connects kept pending by a full accept queue (backlog 0, one peer
    // queued: further SYNs are dropped), killed: each victim's socket is
    // closed, its address (on its stack) no longer in the kernel's hands.
    both_exclusive(|| {
        let l = std::net::TcpListener::bind(LOCAL).unwrap();
        // SAFETY: listen(2) on a socket we own; a second listen sets the backlog.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
        let addr = l.local_addr().unwrap();
        let _filler = std::net::TcpStream::connect(addr).unwrap();
        let base = Baseline::take();
        for i in 0..iterations() / 4 {
            let victim = gevent::spawn(move || {
                let r = TcpStream::connect(addr);
                panic!("a connect to a full backlog returned {r:?}");
            });
            let_run(i);
            if i % 8 == 7 {
                gevent::sleep(ms(1)); // surely sent its SYN
            }
            victim.kill();
            assert_killed(&victim, i);
            let by = Bystander::spawn();
            by.check(i);
        }
        base.check();
        // The queue drained, a connect completes.
        drop(l.accept().unwrap());
        let c = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
        drop(c);
    });
}

#[test]
fn killed_readers_and_acceptors_leave_no_registrations_behind() {
    // Many victims at once on the same sockets, killed together, then the
    // sockets reused: nothing left behind wakes the wrong greenlet or
    // holds an fd.
    both_exclusive(|| {
        let (client, mut server) = tcp_pair();
        let client = Rc::new(client);
        let listener = Rc::new(TcpListener::bind(LOCAL).unwrap());
        let base = Baseline::take();
        for round in 0..scaled(20, 5) {
            let mut victims = Vec::new();
            for _ in 0..50 {
                let c = client.clone();
                victims.push(gevent::spawn(move || {
                    let mut b = [0u8; 8];
                    let _ = (&*c).read(&mut b);
                    panic!("a reader returned");
                }));
                let l = listener.clone();
                victims.push(gevent::spawn(move || {
                    let _ = l.accept();
                    panic!("an acceptor returned");
                }));
            }
            gevent::sleep(ms(1));
            gevent::killall(victims.iter());
            for (i, v) in victims.iter().enumerate() {
                assert_killed(v, round * 1000 + i);
            }
            server.write_all(&msg(round)).unwrap();
            let mut got = [0u8; MSG];
            (&*client).read_exact(&mut got).unwrap();
            assert_eq!(got, msg(round));
            let c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (s, _) = listener.accept().unwrap();
            assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
        }
        base.check();
    });
}
