//! Tutorial section "Groups und Pools", the `SocketPool` sketch: a service
//! built around a `Pool`. Each socket gets a handler greenlet in the pool
//! that receives from it forever; when the pool is full (`is_full`, gevent's
//! `full()`), a new socket is refused instead of waiting; `shutdown` kills
//! every handler.
//!
//! The tutorial's sketch has no output and uses real sockets and a pool of
//! 1000. Here a "socket" is a `Queue` of messages (its `recv` blocks like a
//! socket's), the pool holds two handlers so the refusal shows, and the
//! example prints what it does. (The sketch's `self.pool.start()` is
//! dropped: gevent's `Pool.start` takes a greenlet to add.)
//!
//! Run: `cargo run --example socket_pool`

use std::fmt;
use std::time::Duration;

use gevent::pool::Pool;
use gevent::queue::Queue;

/// A stand-in for a connected socket: `recv` blocks until a message comes.
#[derive(Clone)]
struct FakeSocket {
    name: &'static str,
    incoming: Queue<String>,
}

impl FakeSocket {
    fn new(name: &'static str) -> FakeSocket {
        FakeSocket { name, incoming: Queue::new() }
    }

    /// What the peer sends.
    fn deliver(&self, msg: &str) {
        self.incoming.put(msg.to_owned());
    }

    fn recv(&self) -> String {
        self.incoming.get()
    }
}

/// The tutorial's `Exception("Pool hat Maximum erreicht")`.
#[derive(Debug)]
struct PoolFull;

impl fmt::Display for PoolFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pool hat Maximum erreicht")
    }
}

struct SocketPool {
    pool: Pool,
}

impl SocketPool {
    fn new(size: usize) -> SocketPool {
        SocketPool { pool: Pool::new(size) }
    }

    fn listen(socket: FakeSocket) {
        loop {
            let msg = socket.recv();
            println!("Socket {} empfängt: {msg}", socket.name);
        }
    }

    fn add_handler(&self, socket: FakeSocket) -> Result<(), PoolFull> {
        if self.pool.is_full() {
            return Err(PoolFull);
        }
        self.pool.spawn(move || Self::listen(socket));
        Ok(())
    }

    fn shutdown(&self) {
        self.pool.kill();
    }
}

fn main() {
    let service = SocketPool::new(2);
    let sockets = [FakeSocket::new("a"), FakeSocket::new("b"), FakeSocket::new("c")];

    for socket in &sockets {
        match service.add_handler(socket.clone()) {
            Ok(()) => println!("Handler für Socket {} gestartet", socket.name),
            Err(e) => println!("Socket {} abgewiesen: {e}", socket.name),
        }
    }
    println!("Handler im Pool: {}, frei: {}", service.pool.len(), service.pool.free_count());

    sockets[0].deliver("hallo");
    sockets[1].deliver("welt");
    sockets[0].deliver("tschüss");
    sockets[2].deliver("niemand hört zu");
    gevent::sleep(Duration::from_millis(10)); // the handlers receive

    service.shutdown();
    println!("Pool heruntergefahren, Handler im Pool: {}, frei: {}", service.pool.len(), service.pool.free_count());

    // Room again: socket c gets its handler and its waiting message.
    match service.add_handler(sockets[2].clone()) {
        Ok(()) => println!("Handler für Socket {} gestartet", sockets[2].name),
        Err(e) => println!("Socket {} abgewiesen: {e}", sockets[2].name),
    }
    gevent::sleep(Duration::from_millis(10));
    service.shutdown();
    println!("Ende, Handler im Pool: {}", service.pool.len());
}
