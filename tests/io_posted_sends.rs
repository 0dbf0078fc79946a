//! Posted sends (io_uring with `hub::set_ring_sends(true)`): a small stream
//! send is copied and returns at once, the hub submitting it with its next
//! poll. Bytes keep their order against large sends, clones and other
//! threads; a close, a shutdown, a flush and the hub's end let posted
//! bytes go first; errors come with a later call; a peer that does not
//! read makes the writer wait (a bounded amount is posted); no fd leaks.
//! Every body also runs on epoll, where sends are plain syscalls.

mod io_common;

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::rc::Rc;
use std::time::Duration;

use gevent::hub::{backend, set_ring_sends, Backend};
use gevent::socket::{TcpListener, TcpStream};
use io_common::{both, both_exclusive, fd_count, join_ok, ms, settle_fds, tcp_pair};

/// Byte `i` of a test stream.
fn byte(i: usize) -> u8 {
    (i * 7 % 251) as u8
}

/// Reads `r` to its end, checking each byte is `byte(i)`: the count.
fn read_checked(mut r: impl Read) -> usize {
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            return at;
        }
        for (k, &b) in buf[..n].iter().enumerate() {
            assert_eq!(b, byte(at + k), "byte {} out of order", at + k);
        }
        at += n;
    }
}

/// Writes bytes `from..to` of the test stream in one `write_all`.
fn write_range(w: &mut impl Write, from: usize, to: usize) {
    let data: Vec<u8> = (from..to).map(byte).collect();
    w.write_all(&data).unwrap();
}

#[test]
fn a_small_send_returns_without_switching_and_arrives() {
    both(|| {
        set_ring_sends(true);
        let (mut a, b) = tcp_pair();
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let other = gevent::spawn(move || r.set(true));
        write_range(&mut a, 0, 64);
        assert!(!ran.get(), "a small send does not switch");
        write_range(&mut a, 64, 128);
        drop(a);
        assert_eq!(read_checked(b), 128);
        other.join();
    });
}

#[test]
fn small_and_large_sends_keep_their_order() {
    both(|| {
        set_ring_sends(true);
        let (mut a, b) = tcp_pair();
        let reader = gevent::spawn(move || read_checked(b));
        // Small (posted), a large one (which waits for them), small again,
        // sizes around the posting bounds.
        let mut at = 0;
        for len in [1, 100, 16 * 1024, 16 * 1024 + 1, 5, 1 << 20, 3, 64 * 1024, 7, 40_000, 2] {
            write_range(&mut a, at, at + len);
            at += len;
        }
        // Many small ones in a row: more than a socket keeps posted.
        for _ in 0..2_000 {
            write_range(&mut a, at, at + 100);
            at += 100;
        }
        drop(a);
        assert_eq!(join_ok(reader), at);
    });
}

#[test]
fn a_close_right_after_posting_sends_everything_then_eof() {
    both(|| {
        set_ring_sends(true);
        let mut pairs = Vec::new();
        for _ in 0..20 {
            let (mut a, b) = tcp_pair();
            for k in 0..10 {
                write_range(&mut a, k * 50, k * 50 + 50);
            }
            drop(a); // posted bytes still unsent
            pairs.push(gevent::spawn(move || read_checked(b)));
        }
        for g in pairs {
            assert_eq!(join_ok(g), 500);
        }
    });
}

#[test]
fn flush_waits_until_the_bytes_are_sent() {
    both(|| {
        set_ring_sends(true);
        let (mut a, mut b) = tcp_pair();
        write_range(&mut a, 0, 64);
        let mut buf = [0u8; 128];
        if backend() == Backend::IoUring {
            // Posted: the hub has not polled since, so the kernel has not
            // seen them (on epoll the send was the syscall itself).
            b.set_nonblocking(true).unwrap();
            assert_eq!(b.read(&mut buf).unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
            b.set_nonblocking(false).unwrap();
        }
        a.flush().unwrap();
        // Sent: the peer's kernel holds them, readable at once.
        b.set_nonblocking(true).unwrap();
        assert_eq!(b.read(&mut buf).unwrap(), 64);
    });
}

#[test]
fn shutdown_sends_what_was_posted_first_and_later_writes_fail_at_once() {
    both(|| {
        set_ring_sends(true);
        let (mut a, b) = tcp_pair();
        write_range(&mut a, 0, 300);
        a.shutdown(Shutdown::Write).unwrap();
        let e = a.write(b"late").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        assert_eq!(read_checked(b), 300);
    });
}

#[test]
fn a_peer_that_resets_makes_a_later_write_or_flush_fail() {
    both(|| {
        set_ring_sends(true);
        let (mut a, b) = tcp_pair();
        // Unread bytes in b's buffer make its close a reset.
        write_range(&mut a, 0, 10);
        a.flush().unwrap();
        drop(b);
        let mut failed = None;
        for _ in 0..1_000 {
            let r = a.write(b"0123456789").and_then(|_| a.flush());
            if let Err(e) = r {
                failed = Some(e);
                break;
            }
            gevent::sleep(ms(1));
        }
        let e = failed.expect("writes to a reset peer never failed");
        assert!(
            matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe),
            "unexpected error {e}"
        );
    });
}

#[test]
fn a_peer_that_does_not_read_makes_the_writer_wait_with_a_bound() {
    both(|| {
        set_ring_sends(true);
        let (mut a, _b) = tcp_pair();
        a.set_write_timeout(Some(ms(200))).unwrap();
        let chunk = [7u8; 1000];
        let mut taken = 0usize;
        let e = loop {
            match a.write(&chunk) {
                Ok(n) => taken += n,
                Err(e) => break e,
            }
            assert!(taken < 64 << 20, "64 MiB taken without the peer reading");
        };
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
        assert!(taken > 0);
    });
}

#[test]
fn a_clone_writes_after_what_the_original_posted() {
    both(|| {
        set_ring_sends(true);
        let (mut a, b) = tcp_pair();
        let reader = gevent::spawn(move || read_checked(b));
        write_range(&mut a, 0, 500);
        let mut c = a.try_clone().unwrap();
        write_range(&mut c, 500, 1000);
        write_range(&mut a, 1000, 1500);
        drop(a);
        write_range(&mut c, 1500, 2000); // the only handle left: posts again
        drop(c);
        assert_eq!(join_ok(reader), 2000);
    });
}

#[test]
fn another_thread_writes_after_what_the_home_hub_posted() {
    both(|| {
        set_ring_sends(true);
        let (mut a, b) = tcp_pair();
        let reader = gevent::spawn(move || read_checked(b));
        write_range(&mut a, 0, 700);
        // The pool thread's writes wait for the posted bytes, which this
        // hub sends while it waits cooperatively for the pool.
        let a = gevent::spawn_blocking(move || {
            write_range(&mut &a, 700, 1400);
            a
        });
        let mut a = a;
        write_range(&mut a, 1400, 2100);
        // Dropped on another thread with bytes posted: they go first.
        write_range(&mut a, 2100, 2800);
        gevent::spawn_blocking(move || drop(a));
        assert_eq!(join_ok(reader), 2800);
    });
}

#[test]
fn a_hub_that_ends_sends_what_was_posted() {
    both(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = gevent::spawn(move || read_checked(listener.accept().unwrap().0));
        gevent::spawn_blocking(move || {
            std::thread::spawn(move || {
                set_ring_sends(true);
                let mut s = TcpStream::connect(addr).unwrap();
                write_range(&mut s, 0, 900);
                // The thread ends with s's bytes posted: s closes (its fd
                // kept with them), then the hub goes.
                drop(s);
            })
            .join()
            .unwrap()
        });
        assert_eq!(join_ok(reader), 900);
    });
}

#[test]
fn a_writer_killed_while_waiting_leaves_nothing_behind() {
    both_exclusive(|| {
        set_ring_sends(true);
        let before = fd_count();
        for _ in 0..20 {
            let (mut a, b) = tcp_pair();
            let w = gevent::spawn(move || loop {
                if a.write(&[1u8; 4000]).is_err() {
                    return;
                }
            });
            gevent::sleep(ms(5));
            w.kill();
            drop(b);
        }
        for _ in 0..100 {
            let (mut a, b) = tcp_pair();
            write_range(&mut a, 0, 100);
            drop(a);
            assert_eq!(read_checked(b), 100);
        }
        assert_eq!(settle_fds(before, Duration::from_secs(5)), before, "fds leaked");
    });
}

#[test]
fn non_blocking_mode_never_posts_and_waits_for_nothing() {
    both(|| {
        set_ring_sends(true);
        let (mut a, b) = tcp_pair();
        write_range(&mut a, 0, 100);
        a.set_nonblocking(true).unwrap();
        // Either the posted bytes went already, or the write would block
        // behind them: never reordered.
        let mut at = 100;
        while at < 200 {
            let data: Vec<u8> = (at..200).map(byte).collect();
            match a.write(&data) {
                Ok(n) => at += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => gevent::sleep(ms(1)),
                Err(e) => panic!("{e}"),
            }
        }
        drop(a);
        assert_eq!(read_checked(b), 200);
    });
}
