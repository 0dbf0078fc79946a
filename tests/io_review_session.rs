//! Behaviours a review of the salvaged reads, the thread-exit bound and
//! non-blocking mode found wrong (each test failed before its fix): a
//! greenlet killed in a later teardown round gets a wait of its own, a
//! peek after salvaged bytes sees the kernel's too, a server on a
//! non-blocking listener waits rather than polls. On both backends.

mod io_common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gevent::hub::{prefer_backend, Backend};
use gevent::server::StreamServer;
use gevent::socket::{TcpListener, TcpStream};
use io_common::{both, ms};

const LOCAL: &str = "127.0.0.1:0";
const HOUR: Duration = Duration::from_secs(3600);

/// Tests that use process-wide statics run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `body` on a fresh thread per backend and joins it (thread exit,
/// hence the hub's teardown, included).
fn per_backend_thread(body: impl Fn(Backend) + Send + Sync + Clone + 'static) {
    for b in [Backend::IoUring, Backend::Epoll] {
        let body = body.clone();
        std::thread::spawn(move || {
            prefer_backend(b).unwrap();
            body(b)
        })
        .join()
        .unwrap();
    }
}

// ---------------------------------------------------------------------------
// 1. Thread exit: each round of kills gets its own bounded wait. (With one
//    deadline for all rounds, a greenlet killed in a later round, after a
//    swallower had used up the second, was given up at once, its
//    destructors never run.)
// ---------------------------------------------------------------------------

/// Counts its drop after a short cooperative pause (a destructor that
/// flushes a socket, say).
struct SlowFlag(Arc<AtomicUsize>);
impl Drop for SlowFlag {
    fn drop(&mut self) {
        gevent::sleep(ms(5));
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct SpawnOnDrop(Arc<AtomicUsize>);
impl Drop for SpawnOnDrop {
    fn drop(&mut self) {
        let f = self.0.clone();
        gevent::spawn(move || {
            let _guard = SlowFlag(f);
            gevent::sleep(HOUR);
        });
    }
}

#[test]
fn teardown_gives_up_at_once_on_a_greenlet_killed_in_a_later_round() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for swallower in [false, true] {
        let unwound = Arc::new(AtomicUsize::new(0));
        let u = unwound.clone();
        per_backend_thread(move |_| {
            if swallower {
                // Swallows every kill: uses up the teardown's one second.
                gevent::spawn(|| loop {
                    let _ = std::panic::catch_unwind(|| gevent::sleep(ms(20)));
                });
            }
            // Its unwinding starts a greenlet (round 2 of the teardown kills it).
            let u = u.clone();
            gevent::spawn(move || {
                let _s = SpawnOnDrop(u);
                gevent::sleep(HOUR);
            });
            gevent::sleep(ms(10));
        });
        assert_eq!(
            unwound.load(Ordering::SeqCst),
            2,
            "swallower={swallower}: a greenlet killed in teardown's second round was left suspended at once \
             (its destructor never finished)"
        );
    }
}

// ---------------------------------------------------------------------------
// 2. A peek after a killed read kept "ab" (io_uring) sees the kernel's
//    "cdef" behind it too. (It used to return "ab" for ever: a
//    peek-until-complete loop never ended.)
// ---------------------------------------------------------------------------

#[test]
fn peek_after_salvage_never_sees_the_rest() {
    both(|| {
        let l = TcpListener::bind(LOCAL).unwrap();
        let client = Arc::new(TcpStream::connect(l.local_addr().unwrap()).unwrap());
        let (mut server, _) = l.accept().unwrap();
        let c = client.clone();
        let victim = gevent::spawn(move || {
            let mut buf = [0u8; 64];
            let _ = (&*c).read(&mut buf);
        });
        gevent::sleep(ms(20)); // the victim's receive is in flight
        server.write_all(b"ab").unwrap();
        victim.kill(); // it took "ab" on io_uring (kept), or left it (epoll)
        server.write_all(b"cdef").unwrap();
        let mut buf = [0u8; 6];
        let mut n = 0;
        for _ in 0..200 {
            n = client.peek(&mut buf).unwrap();
            if n == 6 {
                break;
            }
            gevent::sleep(ms(1));
        }
        assert_eq!(n, 6, "peek still returns {:?} while 6 bytes are readable", &buf[..n]);
        let mut all = [0u8; 6];
        (&*client).read_exact(&mut all).unwrap();
        assert_eq!(&all, b"abcdef");
    });
}

// ---------------------------------------------------------------------------
// 3. A listener in non-blocking mode handed to a StreamServer leaves that
//    mode: the accept loop waits. (Each accept used to fail with
//    WouldBlock, counted and reported as an error, the loop polling every
//    5 ms.)
// ---------------------------------------------------------------------------

#[test]
fn server_on_a_nonblocking_listener_polls_and_counts_errors() {
    both(|| {
        let l = TcpListener::bind(LOCAL).unwrap();
        l.set_nonblocking(true).unwrap();
        let server = StreamServer::from_listener(l, |mut c: TcpStream, _| {
            let _ = c.write_all(b"x");
        });
        server.start().unwrap();
        gevent::sleep(ms(100));
        let errors = server.accept_errors();
        server.stop();
        assert_eq!(errors, 0, "{errors} accept 'errors' in 100 ms with no client (WouldBlock polled every 5 ms)");
    });
}

/// A reader parked in a receive, on `client`; `server` is the peer.
fn pair_with_victim() -> (Arc<TcpStream>, TcpStream, gevent::Greenlet<()>) {
    let l = TcpListener::bind(LOCAL).unwrap();
    let client = Arc::new(TcpStream::connect(l.local_addr().unwrap()).unwrap());
    let (server, _) = l.accept().unwrap();
    let c = client.clone();
    let victim = gevent::spawn(move || {
        let mut buf = [0u8; 64];
        let _ = (&*c).read(&mut buf);
    });
    gevent::sleep(ms(20)); // the victim's receive is in flight
    (client, server, victim)
}

// ---------------------------------------------------------------------------
// 4. Also checked: kill_nowait then an immediate read by the killer keeps
//    the stream in order (the victim's cancellation runs first).
// ---------------------------------------------------------------------------

#[test]
fn kill_nowait_then_read_keeps_order() {
    both(|| {
        let (client, mut server, victim) = pair_with_victim();
        server.write_all(b"ab").unwrap();
        victim.kill_nowait();
        server.write_all(b"cdef").unwrap();
        let mut all = [0u8; 6];
        (&*client).read_exact(&mut all).unwrap();
        assert_eq!(&all, b"abcdef", "stream reordered: {:?}", String::from_utf8_lossy(&all));
        victim.join();
    });
}

/// Checked fine: huge timeouts on the new calls do not panic or fire early.
#[test]
fn new_timed_calls_take_duration_max() {
    both(|| {
        let g = gevent::spawn(|| gevent::sleep(HOUR));
        gevent::sleep(Duration::ZERO);
        assert!(g.kill_timeout(Duration::MAX));
        let q: gevent::queue::JoinableQueue<u32> = gevent::queue::JoinableQueue::new();
        q.put(1);
        let q2 = q.clone();
        gevent::spawn(move || {
            q2.get();
            q2.task_done();
        });
        assert!(q.join_timeout(Duration::MAX));
        let q3: gevent::queue::JoinableQueue<u32> = gevent::queue::JoinableQueue::new();
        q3.put(1);
        assert!(!q3.join_timeout(ms(20)));
        assert!(!q3.join_timeout(Duration::ZERO));
    });
}
