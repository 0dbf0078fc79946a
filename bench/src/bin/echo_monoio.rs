//! Echo server on monoio (one thread), io_uring driver with a fallback to the legacy
//! (epoll) driver when io_uring cannot be set up, for bench/echo.sh.
//! Usage: echo_monoio PORT. Listens on 127.0.0.1:PORT; default SIGTERM action ends it.

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).expect("usage: echo_monoio PORT");
    match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().build() {
        Ok(mut rt) => rt.block_on(serve(port)),
        Err(e) => {
            eprintln!("echo_monoio: io_uring unavailable ({e}); using the legacy driver");
            let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build().expect("monoio legacy runtime");
            rt.block_on(serve(port))
        }
    }
}

async fn serve(port: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                monoio::spawn(echo(stream));
            }
            Err(e) => eprintln!("echo_monoio: accept: {e}"),
        }
    }
}

async fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    // monoio reads into the Vec's capacity and sets its length to the bytes read.
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        let (res, b) = stream.read(buf).await;
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (res, b) = stream.write_all(b).await;
        if res.is_err() {
            return;
        }
        buf = b;
    }
}
