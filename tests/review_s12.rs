//! Review of e9a4150 (children waitable through `ChildExit` handles), every
//! I/O body on both backends: handles waited on from other threads' hubs
//! (each thread preferring the body's backend), reaping exactly once under
//! concurrent waits, a pidfd's epoll registration left on a hub whose
//! handle was dropped on another thread, a child reaped behind gevent's
//! back, signals after a foreign reap, and waiters killed on a foreign hub.
//! The queue scenarios of f7a9d3c are in `mod queue_fast_paths` (no I/O).

mod io_common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gevent::hub::{backend, prefer_backend};
use gevent::subprocess::{ChildExit, Command};
use io_common::{both, join_ok, ms};

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

/// Runs `f` on a new thread whose hub runs the caller's backend.
fn on_thread_like_mine<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    let b = backend();
    std::thread::spawn(move || {
        prefer_backend(b).expect("a fresh thread");
        assert_eq!(backend(), b);
        f()
    })
}

/// The fd number of this process's pidfd for `pid`, if it has one.
fn pidfd_of(pid: u32) -> Option<i32> {
    for e in std::fs::read_dir("/proc/self/fdinfo").ok()?.flatten() {
        let info = std::fs::read_to_string(e.path()).unwrap_or_default();
        if info.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Pid:", &pid.to_string()]) {
            return e.file_name().to_str()?.parse().ok();
        }
    }
    None
}

/// A handle waited on from another thread's hub (same backend), by a
/// greenlet and by that thread's main greenlet, with a timed wait first,
/// while the spawning thread waits too: one status for all.
#[test]
fn a_handle_waited_on_another_threads_hub() {
    both(|| {
        let mut child = sh("sleep 0.1; exit 3").spawn().unwrap();
        let exit = child.exit_handle();
        let t = on_thread_like_mine(move || {
            assert_eq!(exit.wait_timeout(ms(5)).unwrap(), None);
            let e = exit.clone();
            let g = gevent::spawn(move || e.wait().unwrap());
            let mine = exit.wait().unwrap();
            assert_eq!(join_ok(g), mine);
            mine
        });
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(t.join().unwrap(), status);
    });
}

/// Many children, each waited on at once by its `Child`, by a handle in a
/// greenlet here, and by handles on two other threads (one `wait`, one
/// `gevent::wait`): every wait gets the one status, none an error (a second
/// reap would fail with ECHILD), no zombie left.
#[test]
fn reaped_once_under_concurrent_waits_on_three_hubs() {
    both(|| {
        let n = 12;
        let mut children: Vec<_> =
            (0..n).map(|i| sh(&format!("sleep 0.0{}; exit {i}", i % 5)).spawn().unwrap()).collect();
        let exits: Vec<ChildExit> = children.iter().map(|c| c.exit_handle()).collect();
        let (e1, e2) = (exits.clone(), exits.clone());
        let t1 = on_thread_like_mine(move || e1.iter().map(|e| e.wait().unwrap()).collect::<Vec<_>>());
        let t2 = on_thread_like_mine(move || {
            let w: Vec<&dyn gevent::Waitable> = e2.iter().map(|e| e as &dyn gevent::Waitable).collect();
            let mut ready = gevent::wait(&w, Some(Duration::from_secs(20)));
            ready.sort();
            assert_eq!(ready, (0..e2.len()).collect::<Vec<_>>());
            e2.iter().map(|e| e.try_wait().unwrap().expect("ready")).collect::<Vec<_>>()
        });
        let here: Vec<_> = exits
            .iter()
            .map(|e| {
                let e = e.clone();
                gevent::spawn(move || e.wait().unwrap())
            })
            .collect();
        let own: Vec<_> = children.iter_mut().map(|c| c.wait().unwrap()).collect();
        for (i, s) in own.iter().enumerate() {
            assert_eq!(s.code(), Some(i as i32));
        }
        assert_eq!(here.into_iter().map(join_ok).collect::<Vec<_>>(), own);
        assert_eq!(t1.join().unwrap(), own);
        assert_eq!(t2.join().unwrap(), own);
        for c in &children {
            assert!(!std::path::Path::new(&format!("/proc/{}", c.id())).exists(), "zombie {}", c.id());
        }
    });
}

/// Another thread's hub registers the pidfd (epoll) or polls it (io_uring)
/// and gives up (timed out); the last handle is then dropped on this
/// thread, closing the pidfd, and that thread opens a socket on the very
/// fd number: its registration left behind must not get in the way (the
/// socket's reads and a raw `wait_read` work, and time out, normally).
#[test]
fn a_pidfd_registration_left_on_a_foreign_hub_after_the_close() {
    // Alone: the test reuses an fd number, which no parallel test may take.
    io_common::both_exclusive(|| {
        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        let Some(pidfd) = pidfd_of(child.id()) else {
            eprintln!("note: no pidfd here; skipped");
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        };
        let exit = child.exit_handle();
        let (to_t, from_main) = mpsc::channel::<()>();
        let (to_main, from_t) = mpsc::channel::<()>();
        let t = on_thread_like_mine(move || {
            assert_eq!(exit.wait_timeout(ms(10)).unwrap(), None);
            drop(exit);
            to_main.send(()).unwrap();
            from_main.recv().unwrap(); // the pidfd is closed now
            let (a, b) = gevent::socket::UnixStream::pair().unwrap();
            // The lowest free numbers: the pair may have taken it already.
            let (a, b) = if b.as_raw_fd() == pidfd { (b, a) } else { (a, b) };
            let a = if a.as_raw_fd() == pidfd {
                a
            } else {
                // SAFETY: `pidfd`'s number is free (closed by the main
                // thread; no other test runs); dup2 makes it a's file.
                let n = unsafe { libc::dup2(a.as_raw_fd(), pidfd) };
                assert_eq!(n, pidfd, "dup2 onto the old pidfd number");
                drop(a);
                // SAFETY: `pidfd` is now an open socket nothing else owns.
                gevent::socket::UnixStream::from(unsafe { OwnedFd::from_raw_fd(pidfd) })
            };
            a.set_read_timeout(Some(ms(30))).unwrap();
            let mut buf = [0u8; 4];
            let t0 = Instant::now();
            let e = std::io::Read::read(&mut &a, &mut buf).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
            assert!(t0.elapsed() < Duration::from_secs(5));
            let writer = gevent::spawn(move || {
                gevent::sleep(ms(10));
                std::io::Write::write_all(&mut &b, b"ping").unwrap();
                b
            });
            gevent::socket::wait_read(pidfd, Some(Duration::from_secs(5))).unwrap();
            std::io::Read::read_exact(&mut &a, &mut buf).unwrap();
            assert_eq!(&buf, b"ping");
            drop(join_ok(writer));
        });
        from_t.recv().unwrap();
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        drop(child); // the last handle: the pidfd closes here
        assert!(!std::path::Path::new(&format!("/proc/self/fd/{pidfd}")).exists(), "the pidfd closed");
        to_t.send(()).unwrap();
        t.join().unwrap();
    });
}

/// A child reaped behind gevent's back (a raw `waitpid`): its handle is
/// ready (a wait would fail at once), `gevent::wait` returns it promptly,
/// and waits report the error instead of hanging.
#[test]
fn a_child_reaped_behind_gevents_back() {
    both(|| {
        let mut child = Command::new("true").spawn().unwrap();
        let exit = child.exit_handle();
        let mut st = 0;
        // SAFETY: plain syscall on our own child.
        assert_eq!(unsafe { libc::waitpid(child.id() as i32, &mut st, 0) }, child.id() as i32);
        let t0 = Instant::now();
        assert_eq!(gevent::wait(&[&exit], Some(Duration::from_secs(5))), [0]);
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert!(exit.wait().is_err());
        assert!(child.wait().is_err());
        assert_eq!(exit.status(), None);
    });
}

/// A waiter blocked on a pidfd when the child is reaped behind gevent's
/// back is woken (the pidfd is readable once the child exits) and gets the
/// error.
#[test]
fn a_blocked_waiter_sees_a_foreign_reap() {
    both(|| {
        // Long enough for the other thread to be blocked in its waitpid
        // before the exit, even under qemu-user.
        let child = Command::new("sleep").arg("0.5").spawn().unwrap();
        let pid = child.id() as i32;
        let exit = child.exit_handle();
        let w = gevent::spawn(move || exit.wait().map_err(|e| e.raw_os_error()));
        gevent::sleep(ms(5));
        let t = std::thread::spawn(move || {
            let mut st = 0;
            // SAFETY: plain syscall on our own child.
            unsafe { libc::waitpid(pid, &mut st, 0) }
        });
        assert_eq!(t.join().unwrap(), pid);
        let got = gevent::with_timeout(Duration::from_secs(5), || join_ok(w)).expect("the waiter woke");
        assert_eq!(got.unwrap_err(), Some(libc::ECHILD));
        drop(child);
    });
}

/// A handle's wait on another thread reaps the child; the `Child` then
/// neither signals nor kills anything (its pid may be another process's),
/// and reports the same status.
#[test]
fn signals_after_a_foreign_reap_are_no_ops() {
    both(|| {
        let mut child = sh("exit 4").spawn().unwrap();
        let exit = child.exit_handle();
        let status = on_thread_like_mine(move || exit.wait().unwrap()).join().unwrap();
        assert_eq!(status.code(), Some(4));
        child.send_signal(libc::SIGTERM).unwrap();
        child.kill().unwrap();
        assert_eq!(child.try_wait().unwrap(), Some(status));
        assert_eq!(child.wait().unwrap(), status);
    });
}

/// Waiters on another thread's hub killed or timed out leave no wait in
/// flight there: that hub then reports LoopExit at once.
#[test]
fn foreign_hub_waiters_killed_leave_nothing() {
    both(|| {
        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        let exit = child.exit_handle();
        let t = on_thread_like_mine(move || {
            use std::panic::{catch_unwind, AssertUnwindSafe};
            let ws: Vec<_> = (0..3)
                .map(|_| {
                    let e = exit.clone();
                    gevent::spawn(move || e.wait().map(|s| s.code()))
                })
                .collect();
            let e = exit.clone();
            let timed = gevent::spawn(move || e.wait_timeout(ms(20)).unwrap());
            assert_eq!(join_ok(timed), None);
            let e = exit.clone();
            let watching: Vec<usize> = gevent::wait(&[&e], Some(ms(10)));
            assert!(watching.is_empty());
            gevent::killall(&ws);
            let t0 = Instant::now();
            let stuck = catch_unwind(AssertUnwindSafe(|| gevent::event::Event::new().wait())).unwrap_err();
            assert!(io_common::panic_text(&*stuck).contains("LoopExit"));
            assert!(t0.elapsed() < Duration::from_secs(2));
        });
        t.join().unwrap();
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    });
}

/// A thread that ends with greenlets still waiting on a child's exit (one
/// holding the last handle): its hub's teardown unwinds them, cancelling
/// their pidfd waits and closing the pidfd on the way out; nothing hangs
/// and nothing aborts. The child is then reaped by hand.
#[test]
fn a_thread_ending_with_handle_waiters() {
    both(|| {
        let child = Command::new("sleep").arg("10").spawn().unwrap();
        let pid = child.id();
        let pidfd = pidfd_of(pid);
        let exit = child.exit_handle();
        let keep = child.exit_handle();
        drop(child);
        let t = on_thread_like_mine(move || {
            let e = exit.clone();
            gevent::spawn(move || e.wait().map(|s| s.code()));
            gevent::spawn(move || exit.wait().map(|s| s.code())); // the last but `keep`
            gevent::sleep(ms(10));
        });
        t.join().unwrap();
        // The thread's waits are gone; the pidfd is open while `keep` is.
        if let Some(fd) = pidfd {
            assert!(std::path::Path::new(&format!("/proc/self/fd/{fd}")).exists());
        }
        let t = on_thread_like_mine(move || {
            gevent::spawn(move || keep.wait().map(|s| s.code()));
            gevent::sleep(ms(10));
            // `keep`, the last handle, is dropped in the teardown.
        });
        t.join().unwrap();
        assert_eq!(pidfd_of(pid), None, "the pidfd closed with the last handle");
        // SAFETY: plain syscalls on our own, unreaped child.
        unsafe {
            assert_eq!(libc::kill(pid as i32, libc::SIGKILL), 0);
            let mut st = 0;
            assert_eq!(libc::waitpid(pid as i32, &mut st, 0), pid as i32);
        }
    });
}

/// f7a9d3c: the hand-off rules of src/queue/core.rs at the edges of the
/// new fast paths, for every queue kind (no I/O: one hub each). The
/// expected results were derived from the module docs; this module also
/// passes on the parent commit 453cb9c, so the fast paths changed nothing
/// observable here.
mod queue_fast_paths {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use gevent::queue::{Channel, JoinableQueue, LifoQueue, PriorityQueue, Queue};

    type Log = Rc<RefCell<Vec<String>>>;

    fn log() -> Log {
        Rc::new(RefCell::new(Vec::new()))
    }

    fn note(l: &Log, s: impl Into<String>) {
        l.borrow_mut().push(s.into());
    }

    fn taken(l: &Log) -> Vec<String> {
        std::mem::take(&mut *l.borrow_mut())
    }

    /// A peeker waiting alone: a put wakes it and stores the item (it is no
    /// getter); with a getter behind it, the put hands the item to the getter
    /// and the peeker, run first, sees that handed item. A put right after
    /// (the getter list empty again, so the fast path) stores behind it.
    #[test]
    fn put_with_a_peeker_waiting() {
        let _fds = crate::io_common::fds_shared(); // its hub takes fds: not beside the fd-reusing test
        let q: Queue<u32> = Queue::new();
        let l = log();
        let (q1, l1) = (q.clone(), l.clone());
        let peeker = gevent::spawn(move || note(&l1, format!("peek {}", q1.peek())));
        gevent::yield_now();
        assert_eq!(q.getters(), 1);
        q.put(1);
        assert_eq!(q.getters(), 0);
        assert_eq!(q.len(), 1);
        peeker.join();
        assert_eq!(taken(&l), ["peek 1"]);
        assert_eq!(q.get_nowait(), Ok(1));

        // Peeker, then getter, then put: the getter is handed the item.
        let (q1, l1) = (q.clone(), l.clone());
        let peeker = gevent::spawn(move || note(&l1, format!("peek {}", q1.peek())));
        let (q2, l2) = (q.clone(), l.clone());
        let getter = gevent::spawn(move || note(&l2, format!("get {}", q2.get())));
        gevent::yield_now();
        assert_eq!(q.getters(), 2);
        q.put(10);
        assert_eq!((q.getters(), q.len()), (0, 1));
        q.put(11); // fast path: nobody waits now
        assert_eq!(q.len(), 2);
        assert_eq!(q.peek_nowait(), Ok(10), "the handed item is the front");
        assert_eq!(q.get_nowait(), Ok(11), "the handed item is the getter's");
        assert_eq!(q.get_nowait(), Err(gevent::queue::Empty));
        peeker.join();
        getter.join();
        assert_eq!(taken(&l), ["peek 10", "get 10"]);
        assert!(q.is_empty());
    }

    /// Bounded(1): the item handed to a woken getter fills the queue, so a put
    /// waits (no fast path: no room) and `get_nowait` takes nothing; when the
    /// getter runs, the putter's item moves in.
    #[test]
    fn bounded_handed_item_and_waiting_putter() {
        let _fds = crate::io_common::fds_shared(); // its hub takes fds: not beside the fd-reusing test
        let q: Queue<u32> = Queue::bounded(1);
        let l = log();
        let (q1, l1) = (q.clone(), l.clone());
        let getter = gevent::spawn(move || note(&l1, format!("get {}", q1.get())));
        gevent::yield_now();
        q.put(1); // handed to the getter
        assert_eq!((q.len(), q.is_full()), (1, true));
        let (q2, l2) = (q.clone(), l.clone());
        let putter = gevent::spawn(move || {
            q2.put(2);
            note(&l2, "put 2 done");
        });
        assert_eq!(q.put_nowait(3), Err(gevent::queue::Full(3)));
        assert_eq!(q.get_nowait(), Err(gevent::queue::Empty), "1 is the getter's");
        // The putter waits, the getter runs: 2 moves in as 1 leaves.
        getter.join();
        assert_eq!(q.len(), 1);
        assert_eq!(q.get_nowait(), Ok(2));
        putter.join();
        assert_eq!(taken(&l), ["get 1", "put 2 done"]);

        // Bounded(2), two stored, a putter waiting: get_nowait admits it.
        let q: Queue<u32> = Queue::bounded(2);
        q.put(1);
        q.put(2);
        let q2 = q.clone();
        let putter = gevent::spawn(move || q2.put(3));
        gevent::yield_now();
        assert_eq!(q.putters(), 1);
        assert_eq!(q.get_nowait(), Ok(1));
        assert_eq!((q.putters(), q.len()), (0, 2), "3 moved in at once");
        assert_eq!((q.get_nowait(), q.get_nowait()), (Ok(2), Ok(3)));
        putter.join();

        // A putter about to unwind is passed over; a later put finds room.
        let q: Queue<u32> = Queue::bounded(1);
        q.put(1);
        let q2 = q.clone();
        let putter = gevent::spawn(move || q2.put(2));
        gevent::yield_now();
        putter.kill_nowait();
        assert_eq!(q.get_nowait(), Ok(1));
        assert_eq!(q.len(), 0, "the killed putter's item did not move in");
        q.put(7);
        putter.join();
        assert_eq!(q.get_nowait(), Ok(7));
        assert_eq!(q.get_nowait(), Err(gevent::queue::Empty));
    }

    /// A handed getter killed before it runs passes its item on, ahead of
    /// items put after (by the fast path, as nobody waits any more).
    #[test]
    fn a_killed_handed_getter_passes_on_ahead_of_later_puts() {
        let _fds = crate::io_common::fds_shared(); // its hub takes fds: not beside the fd-reusing test
        let q: Queue<u32> = Queue::new();
        let q1 = q.clone();
        let getter = gevent::spawn(move || q1.get());
        gevent::yield_now();
        q.put(1);
        q.put(2);
        getter.kill();
        assert_eq!((q.get_nowait(), q.get_nowait()), (Ok(1), Ok(2)));
    }

    /// LIFO and smallest-first: a woken getter is promised an item, which
    /// `get_nowait` leaves alone; it takes the store's top when it runs, a
    /// later (fast-path) put included.
    #[test]
    fn take_when_run_stores_keep_promises() {
        let _fds = crate::io_common::fds_shared(); // its hub takes fds: not beside the fd-reusing test
        let q: LifoQueue<u32> = LifoQueue::new();
        let q1 = q.clone();
        let getter = gevent::spawn(move || q1.get());
        gevent::yield_now();
        q.put(1); // promised
        q.put(2); // stored: nobody waits
        assert_eq!(q.len(), 2);
        assert_eq!(q.get_nowait(), Ok(2), "one item is unpromised");
        assert_eq!(q.get_nowait(), Err(gevent::queue::Empty), "the other is promised");
        assert_eq!(getter.get(), Ok(1));

        let q1 = q.clone();
        let getter = gevent::spawn(move || q1.get());
        gevent::yield_now();
        q.put(1);
        q.put(2);
        assert_eq!(getter.get(), Ok(2), "the top when it runs");
        assert_eq!(q.get_nowait(), Ok(1));

        let q: PriorityQueue<u32> = PriorityQueue::bounded(2);
        let q1 = q.clone();
        let getter = gevent::spawn(move || q1.get());
        gevent::yield_now();
        q.put(5);
        q.put(1);
        assert!(q.is_full());
        assert_eq!(q.put_timeout(0, Duration::ZERO), Err(gevent::queue::Full(0)));
        assert_eq!(getter.get(), Ok(1));
        assert_eq!(q.get_nowait(), Ok(5));
    }

    /// JoinableQueue: every item that enters counts once, put at once by the
    /// fast path, handed to a getter, or moved in from a waiting putter.
    #[test]
    fn joinable_counts_every_entry_once() {
        let _fds = crate::io_common::fds_shared(); // its hub takes fds: not beside the fd-reusing test
        let q: JoinableQueue<u32> = JoinableQueue::bounded(1);
        q.put(1);
        assert_eq!(q.unfinished(), 1);
        let q2 = q.clone();
        let putter = gevent::spawn(move || q2.put(2));
        gevent::yield_now();
        assert_eq!(q.unfinished(), 1, "a waiting putter's item has not entered");
        assert_eq!(q.get(), 1);
        assert_eq!(q.unfinished(), 2, "2 moved in");
        q.task_done();
        assert_eq!(q.get(), 2);
        q.task_done();
        putter.join();
        let q1 = q.clone();
        let getter = gevent::spawn(move || {
            let x = q1.get();
            q1.task_done();
            x
        });
        gevent::yield_now();
        q.put(3); // handed
        assert_eq!(q.unfinished(), 1);
        q.join();
        assert_eq!(getter.get(), Ok(3));
        assert_eq!(q.unfinished(), 0);
    }

    /// Channel: never the fast path (a rendezvous has no room): a put with no
    /// getter waits; with one, it hands over and resumes after the getter.
    #[test]
    fn channel_never_stores() {
        let _fds = crate::io_common::fds_shared(); // its hub takes fds: not beside the fd-reusing test
        let ch: Channel<u32> = Channel::new();
        assert_eq!(ch.put_nowait(1), Err(gevent::queue::Full(1)));
        assert_eq!(ch.put_timeout(1, Duration::ZERO), Err(gevent::queue::Full(1)));
        let l = log();
        let (c1, l1) = (ch.clone(), l.clone());
        let getter = gevent::spawn(move || note(&l1, format!("got {}", c1.get())));
        gevent::yield_now();
        ch.put(9);
        note(&l, "put returned");
        getter.join();
        assert_eq!(taken(&l), ["got 9", "put returned"]);
        assert_eq!(ch.len(), 0);
    }

    /// `close` wakes getters empty-handed; puts after it still store (fast
    /// path) and iteration drains them, then ends.
    #[test]
    fn close_then_fast_puts_drain() {
        let _fds = crate::io_common::fds_shared(); // its hub takes fds: not beside the fd-reusing test
        let q: Queue<u32> = Queue::new();
        let q1 = q.clone();
        let iter = gevent::spawn(move || (&q1).into_iter().collect::<Vec<_>>());
        gevent::yield_now();
        q.put(1);
        q.put(2);
        q.close();
        q.put(3);
        assert_eq!(iter.get(), Ok(vec![1, 2, 3]));
    }
}
