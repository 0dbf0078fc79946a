//! `hub::set_ring_sends`: stream sends through the io_uring ring instead of
//! the syscall first. Streams stay intact and ordered (partial sends of
//! large writes included); on io_uring a small send is then posted (no
//! switch; `io_posted_sends.rs`) and a larger one tries the syscall first
//! as by default; epoll is unaffected; the environment variable sets the
//! default.

mod io_common;

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;

use gevent::hub::{ring_sends, set_ring_sends};
use gevent::socket::UnixStream;
use io_common::{both, child_ok, child_scenario, join_ok, run_child, tcp_pair};

/// Byte `i` of stream `s`'s payload.
fn byte(s: usize, i: usize) -> u8 {
    ((i * 7 + s * 13) % 251) as u8
}

/// Writes `len` bytes of stream `s` in chunks of varying sizes (up to
/// 256 KiB, so many sends are partial), while a reader greenlet checks
/// every byte in order.
fn stream_through(mut w: impl Write + 'static, mut r: impl Read + 'static, s: usize, len: usize) {
    let reader = gevent::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = 0;
        while at < len {
            let n = r.read(&mut buf).unwrap();
            assert!(n > 0, "stream {s}: EOF at {at} of {len}");
            for (k, &b) in buf[..n].iter().enumerate() {
                assert_eq!(b, byte(s, at + k), "stream {s}: byte {} out of order", at + k);
            }
            at += n;
        }
        at
    });
    let writer = gevent::spawn(move || {
        let data: Vec<u8> = (0..len).map(|i| byte(s, i)).collect();
        let (mut at, mut step) = (0, 1usize);
        while at < len {
            let end = (at + step).min(len);
            w.write_all(&data[at..end]).unwrap();
            at = end;
            step = (step * 3 + 1) % (256 * 1024) + 1;
        }
    });
    join_ok(writer);
    assert_eq!(join_ok(reader), len);
}

#[test]
fn streams_stay_intact_and_ordered_with_ring_sends() {
    both(|| {
        set_ring_sends(true);
        assert!(ring_sends());
        let mut gs = Vec::new();
        for s in 0..3 {
            let (a, b) = tcp_pair();
            gs.push(gevent::spawn(move || stream_through(a, b, s, 3 << 20)));
        }
        let (a, b) = UnixStream::pair().unwrap();
        gs.push(gevent::spawn(move || stream_through(a, b, 3, 3 << 20)));
        gevent::joinall(&gs);
        for g in gs {
            join_ok(g);
        }
    });
}

/// Whether a greenlet made ready just before a send of `len` bytes (which
/// the socket buffer takes at once) ran before that send returned.
fn ran_during_a_send(len: usize) -> bool {
    let (mut a, _b) = tcp_pair();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let other = gevent::spawn(move || r.set(true));
    a.write_all(&vec![b'p'; len]).unwrap();
    let during = ran.get();
    other.join();
    during
}

#[test]
fn a_send_the_buffer_takes_never_switches_with_ring_sends_or_without() {
    both(|| {
        assert!(!ring_sends(), "off unless asked (GEVENT_RING_SENDS is not set for the tests)");
        assert!(!ran_during_a_send(4), "a send that completes at once does not switch");
        assert!(!ran_during_a_send(16 * 1024 + 1));
        set_ring_sends(true);
        assert!(!ran_during_a_send(4), "a small send is posted (or, on epoll, the syscall)");
        assert!(!ran_during_a_send(16 * 1024), "the largest posted send");
        assert!(!ran_during_a_send(16 * 1024 + 1), "a larger send tries the syscall first, as by default");
        set_ring_sends(false);
        assert!(!ran_during_a_send(4));
        assert!(!ran_during_a_send(16 * 1024 + 1));
    });
}

#[test]
fn the_environment_sets_the_default() {
    if child_scenario().as_deref() == Some("ring-sends-env") {
        assert!(ring_sends(), "GEVENT_RING_SENDS=1 turns ring sends on");
        set_ring_sends(false);
        assert!(!ring_sends(), "set_ring_sends overrides the environment");
        return;
    }
    let out = run_child("the_environment_sets_the_default", "ring-sends-env", &[("GEVENT_RING_SENDS", Some("1"))]);
    child_ok(&out);
}
