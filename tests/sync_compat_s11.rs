//! gevent calls added for porting users: `try_joinall` (gevent's
//! `joinall(raise_error=True)`), each checked against what gevent does.

mod core_common;

use std::time::Duration;

use core_common::{assert_no_waiters, ms};
use gevent::event::Event;
use gevent::GreenletError;

fn fail(msg: &'static str) -> gevent::Greenlet<()> {
    gevent::spawn(move || panic!("{msg}"))
}

/// The first failure in death order is raised at once; the others keep
/// running and are not waited for.
#[test]
fn try_joinall_raises_the_first_failure_in_death_order() {
    let gate = Event::new();
    let waiting = gevent::spawn({
        let g = gate.clone();
        move || g.wait()
    });
    let late = gevent::spawn(|| {
        gevent::sleep(ms(20));
        panic!("late");
    });
    let early = gevent::spawn(|| {
        gevent::sleep(ms(1));
        panic!("early");
    });
    let all = [waiting.as_ref(), late.as_ref(), early.as_ref()];
    assert_eq!(gevent::try_joinall(all), Err(GreenletError::Panicked("early".into())));
    assert!(!waiting.dead() && !late.dead());
    gate.set();
    assert_eq!(gevent::try_joinall(all), Err(GreenletError::Panicked("early".into())));
    late.join();
    assert_no_waiters();
}

/// Greenlets dead already are looked at first, in the order given.
#[test]
fn try_joinall_looks_at_the_dead_ones_first_in_the_order_given() {
    let (a, b) = (fail("a"), fail("b"));
    gevent::sleep(Duration::ZERO);
    assert!(a.dead() && b.dead());
    let running = gevent::spawn(|| gevent::sleep(ms(1)));
    assert_eq!(gevent::try_joinall([&running, &b, &a]), Err(GreenletError::Panicked("b".into())));
    assert!(!running.dead());
    running.join();
}

/// A killed greenlet has finished (gevent's GreenletExit is a result);
/// with no failure it waits for all of them.
#[test]
fn try_joinall_counts_a_kill_as_finished_and_waits_for_all() {
    let killed = gevent::spawn(|| gevent::sleep(Duration::from_secs(3600)));
    let fine: Vec<_> = (1..=3).map(|n| gevent::spawn(move || gevent::sleep(ms(n)))).collect();
    gevent::sleep(Duration::ZERO);
    killed.kill_nowait();
    let mut all: Vec<_> = fine.iter().map(|g| g.as_ref().clone()).collect();
    all.push(killed.as_ref().clone());
    assert_eq!(gevent::try_joinall(&all), Ok(()));
    assert!(all.iter().all(|g| g.dead()));
    assert_eq!(killed.exception(), Some(GreenletError::Killed));
    assert_eq!(gevent::try_joinall(Vec::<gevent::GreenletRef>::new()), Ok(()));
    assert_no_waiters();
}
