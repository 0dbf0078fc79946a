//! The hub's own context: what runs when no greenlet is ready to be switched
//! to directly. It runs link callbacks, fires timers, sleeps until the next
//! deadline (polling the I/O driver meanwhile), and raises LoopExit in the main greenlet when nothing can ever
//! wake it.
#![forbid(unsafe_code)]

use std::time::Instant;

use super::sched::{switch, Interrupt, Plan, State, LINKS};
use super::{with, Hub, HubJob};

/// What the hub loop does next.
enum Step {
    Switch(Plan),
    Job(HubJob),
    /// Nothing ready: poll the driver, up to the next timer (if any).
    Poll(Option<Instant>),
    LoopExit,
}

impl Hub {
    fn hub_step(&self) -> Step {
        let mut core = self.core.borrow_mut();
        let mut looked = false;
        loop {
            self.pass_boundary(&mut core);
            match core.pop() {
                Some(LINKS) => {
                    let job = self.links.borrow_mut().pop_front().expect("a LINKS marker has its entry");
                    return Step::Job(job);
                }
                Some(k) => {
                    // None: it could not start (set aside as a job).
                    if let Some((to, data)) = self.plan_to(&mut core, k) {
                        return Step::Switch((self.hub_slots, to, data));
                    }
                }
                None => {
                    self.fire_timers(&mut core);
                    if !core.ready.is_empty() {
                        continue;
                    }
                    if super::idlers_waiting() {
                        self.wake_idlers(&mut core, &mut looked);
                        continue;
                    }
                    let deadline = core.timers.next_deadline();
                    if deadline.is_none() && !self.driver.waiting() {
                        // Nothing waits for I/O, but something may have
                        // arrived that wakes a greenlet (a signal the
                        // dispatcher has not seen yet): one last look
                        // without blocking, as libev polls once before
                        // its loop ends.
                        if !looked && self.driver.busy() {
                            looked = true;
                            self.driver.poll(Some(std::time::Duration::ZERO), &mut |g| core.unpark_io(g));
                            continue;
                        }
                        return Step::LoopExit;
                    }
                    return Step::Poll(deadline);
                }
            }
        }
    }

    /// With nothing ready: idle greenlets run when nothing else would, so
    /// the I/O at hand is collected first (once: `looked`); if none was,
    /// every idle greenlet is woken.
    #[cold]
    #[inline(never)]
    fn wake_idlers(&self, core: &mut super::sched::Core, looked: &mut bool) {
        if !*looked && self.driver.busy() {
            *looked = true;
            self.driver.poll(Some(std::time::Duration::ZERO), &mut |g| core.unpark_io(g));
            if !core.ready.is_empty() {
                return;
            }
        }
        super::IDLERS.with(|idlers| idlers.notify_all_in(core));
    }

    /// Polls the driver for at most `timeout` (`None`: until an I/O
    /// completion or a remote wake-up) and readies the greenlets it woke.
    pub(super) fn poll_driver(&self, timeout: Option<std::time::Duration>) {
        let mut core = self.core.borrow_mut();
        self.driver.poll(timeout, &mut |g| core.unpark_io(g));
    }

    fn loop_exit(&self) {
        let mut core = self.core.borrow_mut();
        let describe = |state: State| match state {
            State::Suspended => Some("blocked"),
            State::New => Some("created but never started"),
            State::Scheduled => Some("scheduled to start"),
            _ => None,
        };
        let names: Vec<String> = core
            .greenlets
            .iter()
            .filter(|(k, _)| *k != core.main_key)
            .filter_map(|(k, b)| Some(format!("'{}' ({})", b.shared.name(), describe(core.state(k))?)))
            .collect();
        let msg = format!(
            "gevent: this operation would block forever (LoopExit): the main greenlet waits and \
             nothing can wake it (no ready greenlet, no timer, no I/O); other greenlets: {}",
            if names.is_empty() { "none".to_owned() } else { names.join(", ") }
        );
        *self.loop_exit.borrow_mut() = Some(msg);
        let main = core.main_key;
        core.interrupt(main, Interrupt::LoopExit);
    }
}

/// The hub context's body: callbacks, timers, idle sleep, LoopExit.
pub(super) fn hub_loop() {
    loop {
        match with(|h| h.hub_step()) {
            Step::Switch(plan) => {
                switch(plan);
            }
            Step::Job(job) => super::life::run_job(job),
            Step::Poll(deadline) => {
                with(|h| h.poll_driver(deadline.map(|d| d.saturating_duration_since(Instant::now()))))
            }
            Step::LoopExit => with(|h| h.loop_exit()),
        }
    }
}
