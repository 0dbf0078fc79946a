//! Behaviours first covered when hand mutation testing of subprocess,
//! signal, threadpool, mpsc and the remote wake-ups showed that a bug there
//! would go unnoticed. On both backends.
//!
//! Signals are process-wide while the tests of this binary run in parallel
//! threads, so every test that installs a handler uses signals of its own.

mod io_common;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gevent::hub::{backend, prefer_backend, stats};
use gevent::signal::signal;
use gevent::subprocess::{Command, Stdio};
use gevent::threadpool::ThreadPool;
use io_common::{both, child_ok, child_scenario, ms, run_child, tcp_pair, wait_until};

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

// ------------------------------------------------------------ subprocess

/// `wait_with_output` (and `output` with a piped stdin) closes the child's
/// stdin before reading its output: a child that reads to end-of-file
/// (`cat`) finishes instead of waiting forever.
#[test]
fn wait_with_output_closes_a_piped_stdin_first() {
    both(|| {
        let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        child.stdin.as_mut().unwrap().write_all(b"abc").unwrap();
        let out = gevent::with_timeout(Duration::from_secs(5), move || child.wait_with_output())
            .expect("wait_with_output left the child's stdin open: cat never saw end-of-file")
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"abc");
        let out = gevent::with_timeout(Duration::from_secs(5), || Command::new("cat").stdin(Stdio::piped()).output())
            .expect("output left a piped stdin open")
            .unwrap();
        assert!(out.status.success());
        assert!(out.stdout.is_empty());
    });
}

/// `output` with only one of stdout and stderr captured returns what that
/// one wrote (the other is empty).
#[test]
fn output_with_one_stream_captured_returns_that_stream() {
    both(|| {
        let script = "echo out; echo err >&2";
        let out = sh(script).stdout(Stdio::null()).output().unwrap();
        assert!(out.status.success());
        assert_eq!((out.stdout.as_slice(), out.stderr.as_slice()), (&b""[..], &b"err\n"[..]), "stderr alone");
        let out = sh(script).stderr(Stdio::null()).output().unwrap();
        assert!(out.status.success());
        assert_eq!((out.stdout.as_slice(), out.stderr.as_slice()), (&b"out\n"[..], &b""[..]), "stdout alone");
    });
}

/// The `flags` line of `/proc/self/fdinfo/<fd>` a child wrote (octal).
fn fdinfo_flags(text: &[u8]) -> i32 {
    let text = String::from_utf8_lossy(text);
    let octal = text.trim().strip_prefix("flags:").unwrap_or_else(|| panic!("no flags line in {text:?}")).trim();
    i32::from_str_radix(octal, 8).unwrap()
}

/// A pipe end handed to another child (`a | b`) is blocking there, as
/// programs expect their stdio to be: reading or writing a non-blocking
/// pipe fails with EAGAIN in a program that does not expect it.
#[test]
fn a_pipe_end_handed_to_another_child_is_blocking_there() {
    both(|| {
        // A ChildStdout as the next child's stdin.
        let mut first = sh("echo x").stdout(Stdio::piped()).spawn().unwrap();
        let out = sh("grep '^flags:' /proc/self/fdinfo/0; cat >/dev/null")
            .stdin(first.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(fdinfo_flags(&out.stdout) & libc::O_NONBLOCK, 0, "the second child's stdin is non-blocking");
        assert!(first.wait().unwrap().success());
        // A ChildStdin as the next child's stdout.
        let mut sink = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
        let out = sh("grep '^flags:' /proc/self/fdinfo/1 >&2").stdout(sink.stdin.take().unwrap()).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(fdinfo_flags(&out.stderr) & libc::O_NONBLOCK, 0, "the second child's stdout is non-blocking");
        assert!(sink.wait().unwrap().success());
    });
}

/// A greenlet killed in `output` leaves no stdout-reading helper greenlet
/// behind, even while a grandchild keeps the output pipes open.
#[test]
fn a_caller_killed_in_output_leaves_no_reader_greenlet() {
    both(|| {
        let path = std::env::temp_dir().join(format!("gevent-sub-grandchild-{}-{:?}", std::process::id(), backend()));
        let _ = std::fs::remove_file(&path);
        let before = stats().greenlets;
        let script = format!("sleep 30 & echo $! > {}; exec sleep 30", path.display());
        let g = gevent::spawn(move || sh(&script).output().map(drop));
        let deadline = Instant::now() + Duration::from_secs(10);
        let grandchild = loop {
            gevent::sleep(ms(2));
            if let Some(pid) = std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<i32>().ok()) {
                break pid;
            }
            assert!(Instant::now() < deadline, "the child never wrote its grandchild's pid");
        };
        g.kill();
        let gone = wait_until(Duration::from_secs(2), || stats().greenlets == before);
        let left = stats().greenlets - before;
        // SAFETY: kill(2) on the grandchild's pid; no memory involved.
        unsafe { libc::kill(grandchild, libc::SIGKILL) };
        std::fs::remove_file(&path).unwrap();
        assert!(gone, "{left} greenlet(s) left behind by the killed output()");
    });
}

/// `output` gives the child a null stdin, not this process's: run in a
/// child process of this test binary, whose stdin is made a pipe first.
#[test]
fn output_gives_the_child_a_null_stdin() {
    if child_scenario().as_deref() == Some("null-stdin") {
        let mut fds = [0; 2];
        // SAFETY: pipe(2) writes two fds into the live array; dup2 makes the
        // read end this process's stdin (it runs this one test alone). The
        // write end stays open.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            assert_eq!(libc::dup2(fds[0], 0), 0);
        }
        both(|| {
            let out = Command::new("readlink").arg("/proc/self/fd/0").output().unwrap();
            assert!(out.status.success(), "{out:?}");
            assert_eq!(String::from_utf8_lossy(&out.stdout), "/dev/null\n", "the child's stdin");
        });
        return;
    }
    child_ok(&run_child("output_gives_the_child_a_null_stdin", "null-stdin", &[]));
}

// ---------------------------------------------------------------- signal

/// `SIGILL` and `SIGFPE` are refused like `SIGSEGV` and `SIGBUS`: a
/// deferred handler would re-execute the faulting instruction forever.
#[test]
fn faults_of_the_interrupted_instruction_are_refused() {
    for sig in [libc::SIGILL, libc::SIGFPE] {
        let err = signal(sig, || {}).expect_err("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "signal {sig}");
    }
}

/// Cancelling a hub's last handler ends its dispatcher greenlet at once
/// (it is woken to see there is nothing left), not at some later wake-up.
#[test]
fn cancelling_the_last_handler_ends_the_dispatcher() {
    both(|| {
        let before = stats().greenlets;
        let handle = signal(libc::SIGUSR1, || {}).unwrap();
        gevent::sleep(ms(1)); // the dispatcher parks
        assert_eq!(stats().greenlets, before + 1, "a dispatcher greenlet runs");
        handle.cancel();
        assert!(
            wait_until(Duration::from_secs(2), || stats().greenlets == before),
            "the dispatcher is still there after the last cancel"
        );
    });
}

/// The handlers of one signal run in the order they were registered.
#[test]
fn handlers_of_one_delivery_run_in_registration_order() {
    both(|| {
        let order = Rc::new(RefCell::new(Vec::new()));
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let order = order.clone();
                signal(libc::SIGUSR2, move || order.borrow_mut().push(i)).unwrap()
            })
            .collect();
        // SAFETY: raise(3) on this thread; the handler is installed.
        assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
        assert!(wait_until(Duration::from_secs(5), || order.borrow().len() == 3), "ran {:?}", order.borrow());
        assert_eq!(*order.borrow(), [0, 1, 2]);
        handles.into_iter().for_each(gevent::signal::SignalHandle::cancel);
    });
}

/// Handlers of two different signals on one hub: each signal wakes the
/// hub (subscribing the second must not disturb the first's wake-up fd).
#[test]
fn handlers_of_two_signals_on_one_hub_both_run() {
    both(|| {
        let (urg, winch) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let first = signal(libc::SIGURG, {
            let n = urg.clone();
            move || n.set(n.get() + 1)
        })
        .unwrap();
        let second = signal(libc::SIGWINCH, {
            let n = winch.clone();
            move || n.set(n.get() + 1)
        })
        .unwrap();
        gevent::sleep(ms(1)); // the dispatcher parks
                              // SAFETY: raise(3) on this thread; the handlers are installed.
        assert_eq!(unsafe { libc::raise(libc::SIGURG) }, 0);
        assert!(wait_until(Duration::from_secs(5), || urg.get() == 1), "the first signal's handler never ran");
        // SAFETY: as above.
        assert_eq!(unsafe { libc::raise(libc::SIGWINCH) }, 0);
        assert!(wait_until(Duration::from_secs(5), || winch.get() == 1), "the second signal's handler never ran");
        assert_eq!(urg.get(), 1);
        first.cancel();
        second.cancel();
    });
}

// ------------------------------------------------------------ threadpool

/// Jobs submitted one after another, each once the last finished, reuse
/// the idle worker: a worker starts only when every running one is busy.
#[test]
fn one_job_at_a_time_keeps_one_worker() {
    both(|| {
        let pool = ThreadPool::new(4);
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(pool.apply(|| std::thread::current().id()));
            gevent::sleep(ms(20)); // the worker goes idle
        }
        assert_eq!(pool.threads(), 1, "a worker was started while another was idle");
        assert!(ids.iter().all(|id| *id == ids[0]), "the jobs ran on several workers");
    });
}

/// Dropping the last handle ends the idle workers at once, not only when
/// their idle time runs out.
#[test]
fn dropping_the_last_handle_ends_idle_workers() {
    thread_local! {
        static ON_EXIT: RefCell<Option<std::sync::mpsc::Sender<()>>> = const { RefCell::new(None) };
    }
    both(|| {
        let pool = ThreadPool::with_idle_exit(2, Duration::from_secs(60));
        let (tx, exited) = std::sync::mpsc::channel::<()>();
        // The worker's thread-local sender goes when its thread exits.
        pool.apply(move || ON_EXIT.with(|s| *s.borrow_mut() = Some(tx)));
        assert_eq!(pool.threads(), 1);
        gevent::sleep(ms(50)); // the worker waits for its next job
        drop(pool);
        assert_eq!(
            exited.recv_timeout(Duration::from_secs(5)),
            Err(RecvTimeoutError::Disconnected),
            "the idle worker of a dropped pool is still running"
        );
    });
}

/// A pool asked for zero threads has one.
#[test]
fn a_pool_of_zero_threads_has_one() {
    both(|| {
        for pool in [ThreadPool::new(0), ThreadPool::with_idle_exit(0, ms(10))] {
            assert_eq!(pool.size(), 1);
            assert_eq!(pool.apply(|| 6 * 7), 42);
        }
    });
}

// ------------------------------------------------------------------ mpsc

/// Items sent before the last sender went are still taken by `try_recv`
/// and `try_iter`; then the channel reports `Disconnected`.
#[test]
fn try_recv_takes_the_items_left_by_gone_senders() {
    both(|| {
        let (tx, rx) = gevent::mpsc::channel();
        for i in 1..=3 {
            tx.send(i).unwrap();
        }
        drop(tx);
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [2, 3]);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    });
}

/// Greenlets of two hubs waiting on one shared receiver: the one that
/// times out leaves, the other stays enlisted and gets the next item (the
/// two waits have the same token, each on its own hub).
#[test]
fn a_receiver_timing_out_on_one_hub_leaves_another_hubs_receiver_enlisted() {
    both(|| {
        let b = backend();
        let (tx, rx) = gevent::mpsc::channel::<u32>();
        let rx = Arc::new(rx);
        let (ready_tx, ready) = std::sync::mpsc::channel::<()>();
        let waiter = std::thread::spawn({
            let rx = rx.clone();
            move || {
                prefer_backend(b).unwrap();
                ready_tx.send(()).unwrap();
                let t = Instant::now();
                (rx.recv_timeout(Duration::from_secs(10)), t.elapsed())
            }
        });
        ready.recv().unwrap();
        std::thread::sleep(ms(50)); // the waiter parks
        let leaver = std::thread::spawn({
            let rx = rx.clone();
            move || {
                prefer_backend(b).unwrap();
                rx.recv_timeout(ms(20))
            }
        });
        assert_eq!(leaver.join().unwrap(), Err(RecvTimeoutError::Timeout));
        tx.send(7).unwrap();
        let (got, took) = waiter.join().unwrap();
        assert_eq!(got, Ok(7), "the waiter was not woken by the send (after {took:?})");
        assert!(took < Duration::from_secs(5), "the waiter took {took:?}");
    });
}

// --------------------------------------------------------- remote wake-ups

/// A stream that received on this hub (so, on io_uring, its home hub's
/// fixed-file table holds it) and is dropped on another thread that has a
/// hub of its own: its connection still closes (the release goes to the
/// home hub, not to the dropping thread's).
#[test]
fn a_stream_dropped_on_another_hubs_thread_closes_its_connection() {
    both(|| {
        let b = backend();
        let (mut peer, mut conn) = tcp_pair();
        peer.write_all(b"x").unwrap();
        let mut got = [0u8; 1];
        conn.read_exact(&mut got).unwrap();
        std::thread::spawn(move || {
            prefer_backend(b).unwrap();
            let _ = backend(); // this thread's hub starts
            drop(conn);
        })
        .join()
        .unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(peer.read(&mut got).map_err(|e| e.kind()), Ok(0), "the peer sees the close");
    });
}
