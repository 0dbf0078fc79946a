//! Tests from a hand mutation round over this session's changes: each one
//! fails with a mutant the other tests let through (named in its doc).

mod io_common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use gevent::pool::Group;
use gevent::server::StreamServer;
use gevent::socket::{TcpStream, UnixStream};
use gevent::GreenletRef;
use io_common::{both, ms, LOCAL};

/// A shared list of steps, in the order they happened.
#[derive(Clone, Default)]
struct Steps(Rc<RefCell<Vec<&'static str>>>);

impl Steps {
    fn push(&self, s: &'static str) {
        self.0.borrow_mut().push(s);
    }

    fn get(&self) -> Vec<&'static str> {
        self.0.borrow().clone()
    }
}

fn an_hour() -> Duration {
    Duration::from_secs(3600)
}

/// The group's oldest member leaving (discarded, or dead) leaves the
/// others listed, in order, and `kill` still kills them. (Mutant: the
/// member list's head set to the removed node's `prev`, `None`: the group
/// looked empty, and `kill` returned at once, killing nobody.)
#[test]
fn the_oldest_member_leaving_keeps_the_others_in_the_group() {
    let group = Group::new();
    let first = group.spawn(|| ());
    let b = group.spawn(|| gevent::sleep(an_hour()));
    let c = group.spawn(|| gevent::sleep(an_hour()));
    group.discard(&first);
    let d = group.spawn(|| gevent::sleep(an_hour()));
    let want: Vec<GreenletRef> = [&b, &c, &d].iter().map(|g| g.as_ref().clone()).collect();
    assert_eq!(group.greenlets(), want);
    assert_eq!(group.len(), 3);
    assert!(!group.contains(&first) && group.contains(&b));

    // The oldest member dies: it leaves through its link.
    b.kill();
    gevent::sleep(Duration::ZERO);
    assert!(!group.contains(&b));
    assert_eq!(group.greenlets(), want[1..]);

    group.kill();
    assert!(c.dead() && d.dead(), "kill left members alive");
    assert!(group.is_empty());
    first.join();
}

/// `idle` collects the I/O at hand before it resumes: a reader whose data
/// is there runs (to its end) first. (Mutants: idlers woken without a look
/// at the driver; idlers woken in the same step as the I/O greenlets the
/// look readied, so the reader's yields let the idler in.)
#[test]
fn idle_lets_the_io_at_hand_run_first() {
    both(|| {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let steps = Steps::default();
        let reader = gevent::spawn({
            let steps = steps.clone();
            move || {
                let mut buf = [0u8; 4];
                b.read_exact(&mut buf).unwrap();
                steps.push("read");
                for _ in 0..3 {
                    gevent::yield_now();
                }
                steps.push("done");
            }
        });
        gevent::yield_now(); // the reader waits for its data
        assert!(steps.get().is_empty());
        a.write_all(b"ping").unwrap();
        gevent::idle();
        assert_eq!(steps.get(), ["read", "done"]);
        assert!(reader.dead());
    });
}

/// The idlers resume together, in FIFO order: one that yields lets the
/// next idler run before it goes on. (Mutant: one idler woken per hub
/// step, each running to its next block before the next one wakes.)
#[test]
fn idlers_resume_together() {
    let steps = Steps::default();
    let first = gevent::spawn({
        let steps = steps.clone();
        move || {
            gevent::idle();
            steps.push("first");
            gevent::yield_now();
            steps.push("first again");
        }
    });
    let second = gevent::spawn({
        let steps = steps.clone();
        move || {
            gevent::idle();
            steps.push("second");
        }
    });
    gevent::joinall([&first, &second]);
    assert_eq!(steps.get(), ["first", "second", "first again"]);
}

/// True if `fd`'s open file is in non-blocking mode.
fn nonblocking(fd: &impl AsRawFd) -> bool {
    // SAFETY: F_GETFL on an fd this test owns reads its flags only.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0, "fcntl: {}", std::io::Error::last_os_error());
    flags & libc::O_NONBLOCK != 0
}

/// A non-blocking fd handed over as the child's stdout or stderr alone
/// (stdin left alone) is made blocking in the child: the flag is the open
/// file's, so a copy kept here shows it. (Mutants: only fds 0 and 1 looked
/// at; every fd's flag cleared only when stdin was handed over.)
#[test]
fn a_nonblocking_stdout_or_stderr_handed_over_is_made_blocking() {
    both(|| {
        for which in ["stdout", "stderr"] {
            let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            let kept = a.try_clone().unwrap();
            assert!(nonblocking(&kept));
            let mut cmd = gevent::subprocess::Command::new("true");
            match which {
                "stdout" => cmd.stdout(OwnedFd::from(a)),
                _ => cmd.stderr(OwnedFd::from(a)),
            };
            assert!(cmd.status().unwrap().success());
            assert!(!nonblocking(&kept), "the child's {which} was left non-blocking");
        }
    });
}

/// `ThreadPool::map` runs the function on the pool's workers, not in the
/// calling thread. (Mutant: each item's function called in its greenlet
/// on the hub's thread.)
#[test]
fn threadpool_map_runs_on_the_workers() {
    both(|| {
        let pool = gevent::threadpool::ThreadPool::new(2);
        let here = std::thread::current().id();
        let ran_on = pool.map(|_: u32| std::thread::current().id(), [1, 2, 3]);
        assert_eq!(ran_on.len(), 3);
        assert!(ran_on.iter().all(|&t| t != here), "map ran a job on the hub's thread");
    });
}

/// `stop` closes the listener before it waits for the running handlers:
/// while it waits, the server is closed and no longer started. (Mutant:
/// the handlers waited for, and killed, first; the listener closed last.)
#[test]
fn stop_closes_the_listener_before_waiting_for_the_handlers() {
    both(|| {
        let server = Rc::new(
            StreamServer::new(LOCAL, |mut c, _| {
                let _ = c.read(&mut [0u8; 1]); // until its client goes
            })
            .unwrap(),
        );
        server.start().unwrap();
        let client = TcpStream::connect(server.local_addr()).unwrap();
        while server.connections() == 0 {
            gevent::sleep(ms(1));
        }
        let stopper = gevent::spawn({
            let server = server.clone();
            move || server.stop_timeout(Duration::from_secs(60))
        });
        // The stop closes at once (the accept loop's kill takes a few
        // switches), then waits for the handler: up to its 60 s grace.
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        while !server.closed() && std::time::Instant::now() < give_up {
            gevent::sleep(ms(1));
        }
        assert!(server.closed() && !server.started(), "the listener is open while stop waits");
        assert!(!stopper.dead(), "stop did not wait for the handler");
        drop(client);
        stopper.join();
        assert_eq!(server.connections(), 0);
    });
}
