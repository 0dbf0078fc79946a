//! `gevent::signal`: delivery to handler greenlets, from any thread, to
//! several handlers and hubs, and cancellation.
//!
//! Signals are process-wide while the tests of this binary run in parallel
//! threads, so every test uses a signal of its own. Every body runs on both
//! backends, one after the other.

mod io_common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use gevent::signal::{signal, SignalHandle, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH};
use io_common::both;

/// Sends `signum` to this process (any thread may receive it).
fn raise(signum: i32) {
    // SAFETY: kill(2) with our own pid; no memory involved.
    assert_eq!(unsafe { libc::kill(libc::getpid(), signum) }, 0);
}

/// Sleeps cooperatively until `done()` or 10 s passed; true if done.
fn wait_until(done: impl Fn() -> bool) -> bool {
    io_common::wait_until(Duration::from_secs(10), done)
}

/// Registers a handler for `signum` that counts its runs: (the count, the
/// registration).
fn counting(signum: i32) -> (Rc<Cell<usize>>, SignalHandle) {
    let n = Rc::new(Cell::new(0));
    let m = n.clone();
    let handle = signal(signum, move || m.set(m.get() + 1)).unwrap();
    (n, handle)
}

#[test]
fn handler_runs_in_its_own_greenlet() {
    both(|| {
        let main = gevent::getcurrent();
        let seen = Rc::new(Cell::new(None));
        let s = seen.clone();
        let handle = signal(SIGUSR1, move || s.set(Some(gevent::getcurrent() != main))).unwrap();
        assert_eq!(handle.signum(), SIGUSR1);
        raise(SIGUSR1);
        assert!(wait_until(|| seen.get().is_some()), "the handler did not run");
        assert_eq!(seen.get(), Some(true), "the handler ran in the main greenlet");
        handle.cancel();
    });
}

#[test]
fn each_delivery_runs_the_handler() {
    both(|| {
        let (n, handle) = counting(SIGHUP);
        for i in 1..=3 {
            raise(SIGHUP);
            assert!(wait_until(|| n.get() >= i), "delivery {i} was not handled");
        }
        handle.cancel();
    });
}

#[test]
fn signal_to_another_thread_reaches_the_hub() {
    both(|| {
        let (n, handle) = counting(SIGUSR2);
        // A plain thread that does not block SIGUSR2 and sits in a syscall.
        let (stop, stopped) = mpsc::channel::<()>();
        let other = std::thread::spawn(move || stopped.recv().ok());
        let thread = std::os::unix::thread::JoinHandleExt::as_pthread_t(&other);
        // SAFETY: the thread is alive until `stop` is sent below.
        assert_eq!(unsafe { libc::pthread_kill(thread, SIGUSR2) }, 0);
        assert!(wait_until(|| n.get() == 1), "a signal taken by another thread was lost");
        // Process-wide while the other thread exists: whichever thread takes it.
        raise(SIGUSR2);
        assert!(wait_until(|| n.get() == 2), "a process-wide signal was lost");
        stop.send(()).unwrap();
        other.join().unwrap();
        handle.cancel();
    });
}

#[test]
fn two_handlers_both_run_and_cancel_separately() {
    both(|| {
        let (a, first) = counting(libc::SIGURG);
        let (b, second) = counting(libc::SIGURG);
        raise(libc::SIGURG);
        assert!(wait_until(|| a.get() == 1 && b.get() == 1), "a={} b={}", a.get(), b.get());
        first.cancel();
        raise(libc::SIGURG);
        assert!(wait_until(|| b.get() == 2));
        assert_eq!(a.get(), 1, "a cancelled handler ran");
        second.cancel();
    });
}

#[test]
fn cancel_stops_delivery_and_restores_the_action() {
    both(|| {
        // SIGWINCH is ignored by default, so a delivery after the last cancel
        // is harmless.
        let (n, handle) = counting(SIGWINCH);
        raise(SIGWINCH);
        assert!(wait_until(|| n.get() == 1));
        handle.cancel();
        raise(SIGWINCH);
        gevent::sleep(Duration::from_millis(50));
        assert_eq!(n.get(), 1, "a cancelled handler ran");
        // Registering again works (a fresh dispatcher).
        let (m, handle) = counting(SIGWINCH);
        raise(SIGWINCH);
        assert!(wait_until(|| m.get() == 1));
        handle.cancel();
        assert_eq!(n.get(), 1);
    });
}

#[test]
fn every_hub_gets_the_signal() {
    both(|| {
        let sig = libc::SIGCHLD; // ignored by default; no children in this binary
        let ready = Arc::new(AtomicUsize::new(0));
        let got = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (ready, got, stop) = (ready.clone(), got.clone(), stop.clone());
                std::thread::spawn(move || {
                    let g = got.clone();
                    let handle = signal(sig, move || {
                        g.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap();
                    ready.fetch_add(1, Ordering::SeqCst);
                    assert!(wait_until(|| stop.load(Ordering::SeqCst)));
                    handle.cancel();
                })
            })
            .collect();
        assert!(wait_until(|| ready.load(Ordering::SeqCst) == 3));
        raise(sig);
        assert!(wait_until(|| got.load(Ordering::SeqCst) == 3), "handled by {} of 3 hubs", got.load(Ordering::SeqCst));
        stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().unwrap();
        }
    });
}

#[test]
fn refuses_signals_greenlets_cannot_handle() {
    for sig in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, libc::SIGBUS, 0, -1, 65, 1000] {
        let err = signal(sig, || {}).expect_err("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "signal {sig}");
    }
}

/// The handler currently installed for `signum` (`SIG_DFL`, `SIG_IGN` or
/// a function address).
fn installed(signum: i32) -> libc::sighandler_t {
    // SAFETY: sigaction is plain data; all-zero is valid, and the query
    // writes into the live `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(signum, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

#[test]
fn a_thread_that_exits_unsubscribes() {
    both(|| {
        let sig = libc::SIGALRM;
        assert_eq!(installed(sig), libc::SIG_DFL);
        std::thread::spawn(move || {
            // Never cancelled: the registration lives until the thread ends.
            let _handle = signal(sig, || {}).unwrap();
            assert_ne!(installed(sig), libc::SIG_DFL);
            gevent::sleep(Duration::from_millis(1)); // the dispatcher parks
        })
        .join()
        .unwrap();
        assert_eq!(installed(sig), libc::SIG_DFL, "the previous action was not restored");
    });
}

/// Sends the number of greenlets its thread's hub has when it is dropped.
struct OnDrop(mpsc::Sender<usize>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(gevent::hub::stats().greenlets);
    }
}

/// Runs `register` on a new thread whose hub has the current backend, lets
/// the thread exit, and returns the receiver of what was sent on the way.
fn on_an_exiting_thread(register: impl FnOnce(mpsc::Sender<usize>) + Send + 'static) -> mpsc::Receiver<usize> {
    let b = gevent::hub::backend();
    let (tx, rx) = mpsc::channel::<usize>();
    std::thread::spawn(move || {
        gevent::hub::prefer_backend(b).unwrap();
        register(tx);
    })
    .join()
    .expect("the thread exited cleanly");
    rx
}

/// A thread's handlers belong to its hub: when the thread exits they are
/// dropped during the hub's teardown, while the hub still runs, so whatever
/// their closures own may use gevent in its destructor.
#[test]
fn handlers_are_dropped_while_their_exiting_hub_still_runs() {
    both(|| {
        let rx = on_an_exiting_thread(|tx| {
            let owned = OnDrop(tx);
            signal(libc::SIGURG, move || {
                let _ = &owned;
            })
            .unwrap();
        });
        let greenlets = rx.recv_timeout(Duration::from_secs(10)).expect("the handler was dropped at thread exit");
        let b = gevent::hub::backend();
        assert_eq!(greenlets, 1, "[{b:?}] only the main greenlet is left when the handlers go");
    });
}

/// A handler whose destructor registers another handler: that one is
/// dropped at thread exit too, while the hub still runs.
#[test]
fn a_handler_registered_by_a_dropped_handler_goes_too() {
    both(|| {
        struct Reregister(Option<mpsc::Sender<usize>>);
        impl Drop for Reregister {
            fn drop(&mut self) {
                let owned = OnDrop(self.0.take().expect("dropped once"));
                let _ = signal(libc::SIGURG, move || {
                    let _ = &owned;
                });
            }
        }
        let rx = on_an_exiting_thread(|tx| {
            let first = Reregister(Some(tx));
            signal(libc::SIGURG, move || {
                let _ = &first;
            })
            .unwrap();
        });
        rx.recv_timeout(Duration::from_secs(10)).expect("the handler registered during teardown was dropped");
    });
}

/// A greenlet that only yields (`sleep(ZERO)` in a loop) does not starve
/// signal delivery: the per-pass poll counts the signal dispatcher as a
/// waiter (the handler never ran while such a loop lasted).
#[test]
fn a_yield_loop_does_not_starve_signal_delivery() {
    both(|| {
        let (n, handle) = counting(libc::SIGPWR);
        raise(libc::SIGPWR);
        let mut yields = 0u64;
        while n.get() == 0 && yields < 10_000_000 {
            gevent::sleep(Duration::ZERO);
            yields += 1;
        }
        assert_eq!(n.get(), 1, "the handler never ran during {yields} yields");
        handle.cancel();
    });
}

/// A signal that arrived while every greenlet is blocked and nothing else
/// can wake the main one runs its handler (which may wake it) before the
/// hub gives up with LoopExit: the hub looks at its wake-ups once more
/// first. The delivery used to be seen only after LoopExit was raised.
#[test]
fn a_delivered_signal_is_seen_before_loop_exit() {
    both(|| {
        for _ in 0..20 {
            let got = gevent::event::Event::new();
            let handle = signal(libc::SIGVTALRM, {
                let got = got.clone();
                move || got.set()
            })
            .unwrap();
            gevent::sleep(Duration::ZERO); // the dispatcher parks
                                           // SAFETY: raise(3) on this thread: delivered before it returns.
            assert_eq!(unsafe { libc::raise(libc::SIGVTALRM) }, 0);
            got.wait(); // LoopExit unless the delivery is seen first
            handle.cancel();
        }
    });
}

/// A handler kept alive (`keep_hub_alive`, gevent's `ref = True`) keeps a
/// main greenlet that waits only for its signal waiting, not LoopExit;
/// `false` or `cancel` undoes it.
#[test]
fn a_kept_alive_handler_keeps_a_lone_waiter_waiting() {
    // A watchdog: broken, a wait that should end in LoopExit waits for ever.
    let (done, finished) = std::sync::mpsc::channel();
    let body = std::thread::spawn(move || {
        use gevent::event::Event;
        // A signal no other test of this binary uses (they run at once).
        let sig = libc::SIGRTMIN() + 3;
        let stop = Event::new();
        let set = stop.clone();
        let handle = gevent::signal::signal(sig, move || set.set()).unwrap();
        // Not kept alive: LoopExit at once.
        let lone = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| stop.wait()));
        assert!(lone.is_err(), "waited with nothing to wake it");
        handle.keep_hub_alive(true);
        handle.keep_hub_alive(true); // idempotent
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            // SAFETY: kill(2) on our own process.
            unsafe { libc::kill(libc::getpid(), sig) };
        });
        stop.wait();
        sender.join().unwrap();
        stop.clear();
        handle.keep_hub_alive(false);
        let lone = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| stop.wait()));
        assert!(lone.is_err(), "still kept alive after keep_hub_alive(false)");
        handle.keep_hub_alive(true);
        handle.cancel();
        let lone = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| stop.wait()));
        assert!(lone.is_err(), "still kept alive after cancel");
        done.send(()).unwrap();
    });
    match finished.recv_timeout(Duration::from_secs(30)) {
        // Done, or the body panicked (its sender dropped): join tells.
        Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => body.join().unwrap(),
        Err(_) => panic!("a lone wait did not end within 30 s (kept alive when it should not be)"),
    }
}
