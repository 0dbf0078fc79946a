//! `gevent::mpsc`: std threads send, greenlets receive, and only the
//! receiving greenlet waits. On both backends.

mod io_common;

use std::rc::Rc;
use std::sync::mpsc::{RecvError, RecvTimeoutError, TryRecvError};
use std::time::Duration;

use gevent::mpsc::channel;
use io_common::{both, ms};

#[test]
fn items_from_threads_arrive_in_order_while_other_greenlets_run() {
    both(|| {
        let (tx, rx) = channel();
        // The producers start only when a greenlet says so, and that
        // greenlet runs only if `recv` lets it (it parks the greenlet, not
        // the thread). Otherwise the producers give up after 10 s and send
        // what fails the test.
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let kick = gevent::spawn(move || go_tx.send(()).unwrap());
        let coordinator = std::thread::spawn(move || {
            if go_rx.recv_timeout(Duration::from_secs(10)).is_err() {
                tx.send((u64::MAX, 0)).unwrap();
                return;
            }
            let producers: Vec<_> = (0..4u64)
                .map(|p| {
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        for i in 0..500 {
                            tx.send((p, i)).unwrap();
                        }
                    })
                })
                .collect();
            for p in producers {
                p.join().unwrap();
            }
        });
        let mut next = [0u64; 4];
        for (p, i) in &rx {
            assert!(p != u64::MAX, "recv blocked the thread: the kick never ran");
            assert_eq!(i, next[p as usize], "each producer's items in order");
            next[p as usize] += 1;
        }
        assert_eq!(next, [500; 4], "nothing lost");
        assert!(kick.dead());
        assert_eq!(rx.recv(), Err(RecvError));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        coordinator.join().unwrap();
    });
}

#[test]
fn recv_timeout_try_recv_and_a_gone_receiver() {
    both(|| {
        let (tx, rx) = channel::<u32>();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        let t0 = std::time::Instant::now();
        assert_eq!(rx.recv_timeout(ms(20)), Err(RecvTimeoutError::Timeout));
        assert!(t0.elapsed() >= ms(20));
        for _ in 0..1000 {
            assert_eq!(rx.recv_timeout(Duration::ZERO), Err(RecvTimeoutError::Timeout));
        }
        tx.send(7).unwrap();
        assert_eq!(rx.recv_timeout(ms(20)), Ok(7));
        let t = std::thread::spawn({
            let tx = tx.clone();
            move || {
                std::thread::sleep(Duration::from_millis(10));
                tx.send(8).unwrap();
            }
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(8));
        t.join().unwrap();
        drop(rx);
        assert_eq!(tx.send(9).map_err(|e| e.0), Err(9), "the item comes back");
    });
}

#[test]
fn a_killed_receiver_leaves_and_the_next_one_gets_the_item() {
    both(|| {
        let (tx, rx) = channel::<u32>();
        let rx = Rc::new(rx);
        let first = gevent::spawn({
            let rx = rx.clone();
            move || rx.recv()
        });
        let second = gevent::spawn({
            let rx = rx.clone();
            move || rx.recv()
        });
        gevent::sleep(ms(1)); // both wait
        first.kill();
        let t = std::thread::spawn(move || tx.send(5).unwrap());
        assert_eq!(second.get(), Ok(Ok(5)));
        t.join().unwrap();
        assert!(first.dead());
        assert_eq!(rx.recv(), Err(RecvError), "the sender is gone");
    });
}

#[test]
fn two_receiving_greenlets_share_the_items_exactly_once() {
    both(|| {
        let (tx, rx) = channel::<u32>();
        let rx = Rc::new(rx);
        let take = |rx: Rc<gevent::mpsc::Receiver<u32>>| gevent::spawn(move || rx.iter().collect::<Vec<_>>());
        let (a, b) = (take(rx.clone()), take(rx.clone()));
        let t = std::thread::spawn(move || {
            for i in 0..2000 {
                tx.send(i).unwrap();
                if i % 100 == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let (mut a, b) = (a.get().unwrap(), b.get().unwrap());
        t.join().unwrap();
        a.extend(b);
        a.sort();
        assert_eq!(a, (0..2000).collect::<Vec<_>>());
    });
}

#[test]
fn the_main_greenlet_waits_for_a_thread_without_loop_exit() {
    both(|| {
        let (tx, rx) = channel();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            tx.send("late").unwrap();
        });
        assert_eq!(rx.recv(), Ok("late"));
        t.join().unwrap();
    });
}

#[test]
fn a_dropped_receiver_drops_its_items_now() {
    both(|| {
        // Request/reply: the reply's sender sits in the dead server's queue.
        let (req_tx, req_rx) = channel::<gevent::mpsc::Sender<u32>>();
        let (rep_tx, rep_rx) = channel::<u32>();
        req_tx.send(rep_tx).unwrap();
        std::thread::spawn(move || drop(req_rx)).join().unwrap();
        assert_eq!(rep_rx.recv_timeout(Duration::from_secs(10)), Err(RecvTimeoutError::Disconnected));
        // An item holding a sender of its own channel is dropped too.
        struct Noisy(#[allow(dead_code)] gevent::mpsc::Sender<Noisy>, std::sync::Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Noisy {
            fn drop(&mut self) {
                self.1.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = channel::<Noisy>();
        tx.send(Noisy(tx.clone(), dropped.clone())).unwrap();
        drop(rx);
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
        drop(req_tx);
    });
}

#[test]
fn owned_iteration_and_try_iter() {
    both(|| {
        let (tx, rx) = channel();
        for i in 0..3 {
            tx.send(i).unwrap();
        }
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(rx.try_iter().count(), 0);
        let t = std::thread::spawn(move || (3..6).for_each(|i| tx.send(i).unwrap()));
        let mut got = Vec::new();
        for i in rx {
            got.push(i);
        }
        assert_eq!(got, [3, 4, 5]);
        t.join().unwrap();
    });
}
