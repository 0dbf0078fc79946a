//! Echo server on tokio's `current_thread` runtime (one thread), for bench/echo.sh.
//! Usage: echo_tokio PORT. Listens on 127.0.0.1:PORT; default SIGTERM action ends it.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).expect("usage: echo_tokio PORT");
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().expect("tokio runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(echo(stream));
                }
                // EMFILE and the like: report, back off a little, keep serving.
                Err(e) => {
                    eprintln!("echo_tokio: accept: {e}");
                    tokio::task::yield_now().await;
                }
            }
        }
    });
}

async fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
