//! Non-blocking mode (`set_nonblocking`), as std's: an operation that would
//! wait fails at once with `WouldBlock` and never switches. On both
//! backends.

mod io_common;

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;

use gevent::socket::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixStream};
use io_common::{both, LOCAL};

/// A greenlet that counts how often it got to run.
fn bystander() -> (Rc<Cell<u32>>, gevent::Greenlet<()>) {
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    let g = gevent::spawn(move || loop {
        r.set(r.get() + 1);
        gevent::sleep(std::time::Duration::ZERO);
    });
    (ran, g)
}

#[test]
fn tcp_reads_and_accepts_would_block_without_switching() {
    both(|| {
        let listener = TcpListener::bind(LOCAL).unwrap();
        listener.set_nonblocking(true).unwrap();
        let (ran, by) = bystander();
        assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
        let mut b = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let before = ran.get();
        let mut accepted = None;
        for _ in 0..1000 {
            match listener.accept() {
                Ok((a, _)) => {
                    accepted = Some(a);
                    break;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("accept: {e}"),
            }
        }
        let mut a = accepted.expect("the connection arrives");
        a.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(a.read(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
        assert_eq!(ran.get(), before, "a non-blocking call switched");
        b.write_all(b"hi").unwrap();
        let n = loop {
            match a.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("read: {e}"),
            }
        };
        assert_eq!(&buf[..n], b"hi");
        // A clone shares the mode; leaving it makes reads wait again.
        let c = a.try_clone().unwrap();
        assert_eq!((&c).read(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
        c.set_nonblocking(false).unwrap();
        let writer = gevent::spawn(move || b.write_all(b"late").unwrap());
        let n = a.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"late");
        writer.join();
        by.kill();
    });
}

#[test]
fn writes_to_a_full_socket_would_block() {
    both(|| {
        let (mut a, _b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let chunk = [7u8; 65536];
        let mut sent = 0usize;
        let err = loop {
            match a.write(&chunk) {
                Ok(n) => sent += n,
                Err(e) => break e,
            }
            assert!(sent < 64 << 20, "the socket never filled");
        };
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
        assert!(sent > 0);
    });
}

#[test]
fn datagram_receives_would_block() {
    both(|| {
        let u = UdpSocket::bind(LOCAL).unwrap();
        u.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(u.recv_from(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
        let (x, y) = UnixDatagram::pair().unwrap();
        x.set_nonblocking(true).unwrap();
        assert_eq!(x.recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
        y.send(b"d").unwrap();
        let mut got = None;
        for _ in 0..1000 {
            match x.recv(&mut buf) {
                Ok(n) => {
                    got = Some(n);
                    break;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("recv: {e}"),
            }
        }
        assert_eq!(got, Some(1));
    });
}
