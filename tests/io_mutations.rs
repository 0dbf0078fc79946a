//! Behaviours first covered when hand mutation testing showed that a bug
//! there would go unnoticed: a short peek, raw waits left on a closed fd,
//! one fd in both `select` lists, two signal deliveries before the
//! dispatcher runs. On both backends.

mod io_common;

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use gevent::socket::{wait_read, TcpListener, TcpStream, UnixStream};
use io_common::{both, both_exclusive, join_ok, ms, LOCAL};

/// A stream peek that returns less than asked leaves the data in the
/// socket: a read right after it returns that data at once (on epoll the
/// peek must not mark the socket drained).
#[test]
fn a_short_peek_on_a_registered_socket_leaves_it_readable() {
    both(|| {
        let listener = TcpListener::bind(LOCAL).unwrap();
        let mut b = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (a, _) = listener.accept().unwrap();
        a.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        // Parks in peek first: the socket waits once (and so is registered).
        let a = std::rc::Rc::new(a);
        let peeker = {
            let a = a.clone();
            gevent::spawn(move || {
                let mut buf = [0u8; 16];
                let n = a.peek(&mut buf).unwrap();
                buf[..n].to_vec()
            })
        };
        gevent::sleep(ms(10));
        b.write_all(b"hello").unwrap();
        assert_eq!(join_ok(peeker), b"hello");
        let mut buf = [0u8; 16];
        let t = Instant::now();
        let n = (&*a).read(&mut buf).expect("the peeked data is still there");
        assert_eq!(&buf[..n], b"hello");
        assert!(t.elapsed() < Duration::from_secs(1), "the read waited {:?}", t.elapsed());
    });
}

/// Two raw waits on one socket's fd; the first ends (timeout), then the
/// socket closes: the other one still ends with EBADF, not its timeout.
#[test]
fn closing_a_socket_ends_every_raw_wait_left_on_its_fd() {
    both_exclusive(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        let long = gevent::spawn(move || {
            let t = Instant::now();
            (wait_read(fd, Some(Duration::from_secs(3))).map_err(|e| e.kind()), t.elapsed())
        });
        let short = gevent::spawn(move || wait_read(fd, Some(ms(10))).map_err(|e| e.kind()));
        assert_eq!(join_ok(short), Err(ErrorKind::TimedOut));
        gevent::sleep(ms(10));
        drop(a);
        let (r, took) = join_ok(long);
        assert_ne!(r, Err(ErrorKind::TimedOut), "the remaining raw wait was not ended by the close ({took:?})");
    });
}

/// One fd in both lists of a select, not writable (its peer's queue is
/// full) and then made readable: select reports it readable.
#[test]
fn select_one_fd_in_both_lists_becomes_readable_while_unwritable() {
    both(|| {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let chunk = [0u8; 4096];
        loop {
            match (&a).write(&chunk) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        let fd = a.as_raw_fd();
        let other = UnixStream::pair().unwrap();
        let w = gevent::spawn_later(ms(10), move || (&b).write_all(b"x").map(|_| b));
        let t = Instant::now();
        let (r, wl) = gevent::select::select(&[fd], &[fd], Some(Duration::from_secs(2))).unwrap();
        assert_eq!((r, wl), (vec![fd], vec![]), "after {:?}", t.elapsed());
        let _b = join_ok(w).unwrap();
        drop(other);
    });
}

/// Two deliveries before the dispatcher runs (two `raise`s in a row, no
/// switch between): the handler runs twice.
#[test]
fn two_deliveries_before_dispatch_run_the_handler_twice() {
    both(|| {
        let n = std::rc::Rc::new(std::cell::Cell::new(0));
        let m = n.clone();
        let handle = gevent::signal::signal(gevent::signal::SIGUSR1, move || m.set(m.get() + 1)).unwrap();
        // SAFETY: raise(3) on this thread; the handler is installed.
        unsafe {
            assert_eq!(libc::raise(libc::SIGUSR1), 0);
            assert_eq!(libc::raise(libc::SIGUSR1), 0);
        }
        assert!(io_common::wait_until(Duration::from_secs(2), || n.get() >= 2), "handled {} of 2 deliveries", n.get());
        handle.cancel();
    });
}
