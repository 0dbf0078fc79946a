//! Fixes from this session's review of the I/O API, on both backends: a
//! server handed a listener with a read timeout, and a Unix listener's
//! timeouts and non-blocking mode.

mod io_common;

use std::io::{ErrorKind, Read, Write};

use gevent::server::StreamServer;
use gevent::socket::{TcpListener, TcpStream, UnixListener, UnixStream};
use io_common::{both, ms, LOCAL};

/// A listener with a read timeout handed to a server loses it: the accept
/// loop waits for connections instead of timing out (and counting an
/// error) again and again.
#[test]
fn a_server_clears_its_listeners_read_timeout() {
    both(|| {
        let listener = TcpListener::bind(LOCAL).unwrap();
        listener.set_read_timeout(Some(ms(1))).unwrap();
        let server = StreamServer::from_listener(listener, |mut c, _| {
            let mut b = [0u8; 4];
            c.read_exact(&mut b).unwrap();
            c.write_all(&b).unwrap();
        });
        server.start().unwrap();
        gevent::sleep(ms(20));
        let mut c = TcpStream::connect(server.local_addr()).unwrap();
        c.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"ping");
        assert_eq!(server.accept_errors(), 0, "the accept loop timed out");
        server.stop();
    });
}

/// A Unix listener has the read timeout and non-blocking mode of a TCP
/// one: `accept` gives `TimedOut` / `WouldBlock`, then serves a client.
#[test]
fn a_unix_listener_times_out_and_polls() {
    both(|| {
        let dir = std::env::temp_dir().join(format!("gevent-s11-{}-{}", std::process::id(), gevent::getcurrent().id()));
        let listener = UnixListener::bind(&dir).unwrap();
        listener.set_read_timeout(Some(ms(5))).unwrap();
        assert_eq!(listener.read_timeout().unwrap(), Some(ms(5)));
        let started = std::time::Instant::now();
        assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::TimedOut);
        assert!(started.elapsed() >= ms(5));
        listener.set_read_timeout(None).unwrap();
        listener.set_nonblocking(true).unwrap();
        assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
        let _client = UnixStream::connect(&dir).unwrap();
        assert!(listener.accept().is_ok());
        std::fs::remove_file(&dir).unwrap();
    });
}

/// gevent's `started`, `closed` and `close()`: closing stops accepting
/// (new connections are refused, `serve_forever` returns) and leaves the
/// running handlers alone; a closed server cannot start again.
#[test]
fn close_stops_accepting_and_leaves_the_handlers_running() {
    both(|| {
        let server = StreamServer::new(LOCAL, |mut c, _| {
            let mut b = [0u8; 4];
            c.read_exact(&mut b).unwrap();
            c.write_all(&b).unwrap();
        })
        .unwrap();
        assert!(!server.started() && !server.closed());
        let forever = gevent::spawn({
            let s = server.clone();
            move || s.serve_forever()
        });
        gevent::sleep(ms(1));
        assert!(server.started());
        let mut c = TcpStream::connect(server.local_addr()).unwrap();
        while server.connections() == 0 {
            gevent::sleep(ms(1));
        }
        server.close();
        assert!(server.closed() && !server.started());
        assert!(matches!(forever.into_result(), Ok(Ok(()))));
        io_common::assert_refused_soon(server.local_addr());
        // The handler still serves its client.
        c.write_all(b"late").unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"late");
        assert_eq!(server.start().unwrap_err().kind(), ErrorKind::NotConnected);
        server.stop();
        assert_eq!(server.connections(), 0);
    });
}

/// The same for a `DatagramServer`.
#[test]
fn a_datagram_server_closes_too() {
    both(|| {
        let server = gevent::server::DatagramServer::new(
            LOCAL,
            |_data: &[u8], _peer, _server: &gevent::server::DatagramServer| {},
        )
        .unwrap();
        server.start().unwrap();
        assert!(server.started() && !server.closed());
        server.close();
        assert!(server.closed() && !server.started());
        assert_eq!(server.start().unwrap_err().kind(), ErrorKind::NotConnected);
    });
}

/// gevent's `ThreadPool.map`: results in input order whatever the order
/// the workers finish in, never more jobs at once than the pool's size,
/// and a job's panic re-raised in the caller.
#[test]
fn threadpool_map_keeps_input_order_and_the_size() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    both(|| {
        let pool = gevent::threadpool::ThreadPool::new(2);
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (n, m) = (now.clone(), most.clone());
        let got = pool.map(
            move |d: u64| {
                let running = n.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(running, Ordering::SeqCst);
                std::thread::sleep(ms(d));
                n.fetch_sub(1, Ordering::SeqCst);
                d
            },
            [30, 1, 20, 2],
        );
        assert_eq!(got, [30, 1, 20, 2]);
        assert_eq!(most.load(Ordering::SeqCst), 2);
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.map(|x: u32| if x == 2 { panic!("two") } else { x }, [1, 2, 3])
        }));
        let msg = io_common::panic_text(&*failed.unwrap_err());
        assert!(msg.contains("two"), "{msg}");
    });
}
