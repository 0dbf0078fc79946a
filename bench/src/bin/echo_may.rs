//! Echo server on may with exactly one worker thread, for bench/echo.sh.
//! Usage: echo_may PORT. Listens on 127.0.0.1:PORT; default SIGTERM action ends it.

use std::io::{Read, Write};

use may::go;
use may::net::{TcpListener, TcpStream};

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).expect("usage: echo_may PORT");
    may::config().set_workers(1);
    // The accept loop runs in a coroutine, so that it parks on may's io instead of
    // blocking a thread; the main thread only waits for it.
    may::coroutine::scope(|s| {
        go!(s, move || {
            let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        go!(move || echo(stream));
                    }
                    Err(e) => eprintln!("echo_may: accept: {e}"),
                }
            }
        });
    });
}

fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    // On the heap: may's default coroutine stacks are small.
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}
