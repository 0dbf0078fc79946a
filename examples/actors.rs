//! Tutorial section "Actors": gevent has no actor type, but one is easily
//! built from a greenlet and a `Queue` as its inbox; its main loop takes
//! each message from the inbox and acts on it. A `Pinger` and a `Ponger`
//! send each other messages, printing each one they receive.
//!
//! Python subclasses `Greenlet` and overrides `receive`; here an `Actor` is
//! a greenlet plus its inbox, and the behaviour is a `Receive` value its
//! run loop calls. The tutorial's actors never stop; these stop after
//! `MESSAGES` messages each, so the example ends.
//!
//! The tutorial shows no output. gevent prints, for this program: "start"
//! (the message main put into the pinger's inbox), then "ping" and "pong"
//! alternately, one per message, because each actor yields (`sleep(0)`)
//! after sending. Our deterministic scheduler gives the same order.
//!
//! Run: `cargo run --example actors`

use std::time::Duration;

use gevent::queue::Queue;
use gevent::{Greenlet, GreenletRef};

/// Messages each actor handles before it stops.
const MESSAGES: u32 = 5;

/// What an actor does with a message (the method each "subclass" defines);
/// returns whether the actor keeps running.
trait Receive: 'static {
    fn receive(&mut self, message: String) -> bool;
}

/// A greenlet with an inbox.
struct Actor {
    inbox: Queue<String>,
    greenlet: Greenlet<()>,
}

impl Actor {
    /// An actor reading `inbox`, created but not started.
    fn new(inbox: Queue<String>, mut behaviour: impl Receive) -> Actor {
        let messages = inbox.clone();
        let greenlet = Greenlet::new(move || {
            // The tutorial's `_run`.
            let mut running = true;
            while running {
                let message = messages.get();
                running = behaviour.receive(message);
            }
        });
        Actor { inbox, greenlet }
    }

    fn start(&self) {
        self.greenlet.start();
    }
}

impl AsRef<GreenletRef> for Actor {
    fn as_ref(&self) -> &GreenletRef {
        self.greenlet.as_ref()
    }
}

struct Pinger {
    pong: Queue<String>,
    left: u32,
}

impl Receive for Pinger {
    fn receive(&mut self, message: String) -> bool {
        println!("{message}");
        self.pong.put("ping".to_owned());
        gevent::sleep(Duration::ZERO);
        self.left -= 1;
        self.left > 0
    }
}

struct Ponger {
    ping: Queue<String>,
    left: u32,
}

impl Receive for Ponger {
    fn receive(&mut self, message: String) -> bool {
        println!("{message}");
        self.ping.put("pong".to_owned());
        gevent::sleep(Duration::ZERO);
        self.left -= 1;
        self.left > 0
    }
}

fn main() {
    // Each behaviour needs the other actor's inbox: make the inboxes first.
    let (ping_inbox, pong_inbox) = (Queue::new(), Queue::new());
    let ping = Actor::new(ping_inbox.clone(), Pinger { pong: pong_inbox.clone(), left: MESSAGES });
    let pong = Actor::new(pong_inbox, Ponger { ping: ping_inbox, left: MESSAGES });

    ping.start();
    pong.start();

    ping.inbox.put("start".to_owned());
    gevent::joinall([&ping, &pong]);
}
