//! An echo server for the echo benchmark (`bench/echo.sh`): one hub
//! thread, listening on 127.0.0.1 at the port given as the first argument
//! (default 5000), `TCP_NODELAY` on every connection, each connection
//! echoed by its own greenlet. The backend follows `GEVENT_BACKEND`
//! (`epoll` forces epoll); `GEVENT_RING_SENDS=1` posts small sends to the
//! io_uring ring (`gevent::hub::set_ring_sends`). SIGTERM stops it.
//!
//! ```text
//! cargo run --release --example echo_server 5000
//! ```
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};

use gevent::server::StreamServer;
use gevent::socket::TcpStream;

fn echo(mut conn: TcpStream) {
    if conn.set_nodelay(true).is_err() {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).map_or(Ok(5000), |p| p.parse()).expect("usage: echo_server [PORT]");
    // An address, not a string: a string may name a host, whose lookup runs
    // on the thread pool, and the process would be multi-threaded for a
    // while after it (each syscall then takes a reference on its file).
    let server = StreamServer::new(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), |conn, _| echo(conn))?;
    eprintln!("echo_server: {} on {:?}", server.local_addr(), gevent::hub::backend());
    server.serve_forever()
}
