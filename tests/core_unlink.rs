//! `rawlink`, `unlink` and `unlink_all` (gevent's link removal), and the
//! group that unlinks the member it discards.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use gevent::pool::{Group, Pool};
use gevent::{spawn, GreenletRef};

/// Lets the hub run what is ready, link callbacks included.
fn settle() {
    for _ in 0..3 {
        gevent::sleep(Duration::ZERO);
    }
}

#[test]
fn an_unlinked_callback_never_runs_and_the_others_run_in_order() {
    let order = Rc::new(RefCell::new(Vec::new()));
    let g = spawn(|| 7);
    let ids: Vec<_> = (0..4)
        .map(|i| {
            let o = order.clone();
            g.rawlink(move |_| o.borrow_mut().push(i))
        })
        .collect();
    assert!(g.unlink(ids[1]));
    assert!(!g.unlink(ids[1]), "removed twice");
    assert_eq!(g.get(), Ok(7));
    settle();
    assert_eq!(*order.borrow(), [0, 2, 3]);
    // Run already: nothing to remove.
    assert!(!g.unlink(ids[0]));
}

#[test]
fn an_id_of_another_greenlet_removes_nothing() {
    let ran = Rc::new(Cell::new(0));
    let (a, b) = (spawn(|| ()), spawn(|| ()));
    let r = ran.clone();
    let id_a = a.rawlink(move |_| r.set(r.get() + 1));
    let r = ran.clone();
    let id_b = b.rawlink(move |_| r.set(r.get() + 10));
    assert_ne!(id_a, id_b);
    assert!(!b.unlink(id_a) && !a.unlink(id_b));
    gevent::joinall([a.as_ref(), b.as_ref()]);
    settle();
    assert_eq!(ran.get(), 11);
}

#[test]
fn unlink_after_death_before_the_hub_ran_the_links() {
    let ran = Rc::new(Cell::new(false));
    let g = spawn(|| ());
    let r = ran.clone();
    let id = g.rawlink(move |_| r.set(true));
    // The greenlet dies; its links wait for the hub, behind us.
    gevent::sleep(Duration::ZERO);
    assert!(g.dead() && !ran.get());
    assert!(g.unlink(id));
    g.join(); // its joiners are still woken
    settle();
    assert!(!ran.get());
}

#[test]
fn unlink_all_removes_every_pending_callback_and_join_still_returns() {
    let ran = Rc::new(Cell::new(0));
    let g = spawn(|| gevent::sleep(Duration::from_millis(1)));
    for _ in 0..5 {
        let r = ran.clone();
        g.link(move |_| r.set(r.get() + 1));
    }
    assert_eq!(g.unlink_all(), 5);
    assert_eq!(g.unlink_all(), 0);
    g.join();
    settle();
    assert_eq!(ran.get(), 0);
    // A link on the dead greenlet still runs.
    let r = ran.clone();
    g.link(move |_| r.set(r.get() + 1));
    settle();
    assert_eq!(ran.get(), 1);
}

#[test]
fn unlink_drops_the_callback_and_what_it_holds() {
    let held = Rc::new(());
    let g = spawn(|| ());
    let h = held.clone();
    let id = g.rawlink(move |_| drop(h));
    assert_eq!(Rc::strong_count(&held), 2);
    assert!(g.unlink(id));
    assert_eq!(Rc::strong_count(&held), 1);
    g.join();
}

#[test]
fn a_callback_unlinking_another_of_the_same_greenlet_is_too_late() {
    // gevent runs the callbacks it collected at death; an unlink from one
    // of them finds the others taken already.
    let order = Rc::new(RefCell::new(Vec::new()));
    let g = spawn(|| ());
    let second = Rc::new(Cell::new(None));
    let (o, s) = (order.clone(), second.clone());
    g.rawlink(move |me: &GreenletRef| o.borrow_mut().push(("first", me.unlink(s.get().unwrap()))));
    let o = order.clone();
    second.set(Some(g.rawlink(move |_| o.borrow_mut().push(("second", false)))));
    g.join();
    settle();
    assert_eq!(*order.borrow(), [("first", false), ("second", false)]);
}

#[test]
fn a_group_leaves_no_link_behind_for_the_members_it_discards() {
    let group = Group::new();
    let g = spawn(|| gevent::sleep(Duration::from_millis(1)));
    for _ in 0..1000 {
        group.add(&g);
        assert!(group.contains(&g));
        group.discard(&g);
        assert!(!group.contains(&g));
    }
    // Before the unlink, each add left a callback: 1,000 here.
    let probe = g.rawlink(|_| ());
    assert!(g.unlink(probe));
    assert_eq!(g.unlink_all(), 0, "a discard left its leaving link");
    // Added again, it still leaves the group when it dies.
    group.add(&g);
    assert_eq!(group.len(), 1);
    group.join();
    assert!(g.dead() && group.is_empty());
}

#[test]
fn a_pool_discard_frees_the_slot_and_the_member_still_runs() {
    let pool = Pool::new(1);
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    let g = pool.spawn(move || {
        gevent::sleep(Duration::from_millis(1));
        d.set(true);
    });
    assert!(pool.is_full());
    pool.discard(&g);
    assert!(!pool.is_full() && pool.is_empty());
    // The slot serves another, while the discarded one runs on.
    let other = pool.spawn(|| 5);
    assert_eq!(other.get(), Ok(5));
    g.join();
    assert!(done.get());
    settle();
    assert_eq!((pool.len(), pool.free_count()), (0, 1));
    // Re-adding a greenlet that died leaves at once.
    pool.add(&g);
    settle();
    assert_eq!((pool.len(), pool.free_count()), (0, 1));
}

#[test]
fn a_member_of_two_groups_discarded_from_one_stays_in_the_other() {
    let (a, b) = (Group::new(), Group::new());
    let g = spawn(|| gevent::sleep(Duration::from_millis(1)));
    a.add(&g);
    b.add(&g);
    a.discard(&g);
    assert!(!a.contains(&g) && b.contains(&g));
    b.join();
    assert!(g.dead() && b.is_empty() && a.is_empty());
}
