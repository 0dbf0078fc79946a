//! Tutorial section "Greenlet Control Flow", the `fetch` example: nine
//! HTTP requests for the time, first one after another, then all at once
//! in greenlets. The tutorial asks a public JSON time service; this
//! example starts its own endpoint on 127.0.0.1 (a `StreamServer` that
//! answers `{"datetime": ...}` after a short, varying delay, like a server
//! under load), so it runs offline.
//!
//! Run: `cargo run --example fetch`
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gevent::server::StreamServer;
use gevent::socket::TcpStream;

/// The time service: reads one request, waits a little, answers JSON.
fn time_service(mut conn: TcpStream, delay: Duration) -> std::io::Result<()> {
    let mut buf = [0u8; 1024];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf[len..])? {
            0 => return Ok(()),
            n => len += n,
        }
    }
    gevent::sleep(delay);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    let body = serde_json::json!({ "datetime": format!("{}.{:06}", now.as_secs(), now.subsec_micros()) }).to_string();
    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())
}

/// `urllib2.urlopen(url).read()`, for this one endpoint.
fn get(addr: SocketAddr) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut conn = TcpStream::connect(addr)?;
    conn.write_all(format!("GET /time.json HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw)?;
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(body_start) = response.parse(&raw)? else { return Err("truncated response".into()) };
    Ok(raw[body_start..].to_vec())
}

fn fetch(addr: SocketAddr, pid: u32) -> String {
    let result = get(addr).expect("the time service answers");
    let json_result: serde_json::Value = serde_json::from_slice(&result).expect("JSON");
    let datetime = json_result["datetime"].as_str().expect("a datetime string").to_owned();
    println!("Prozess {pid}: {datetime}");
    datetime
}

fn main() -> std::io::Result<()> {
    let calls = std::cell::Cell::new(0u64);
    let server = StreamServer::new("127.0.0.1:0", move |conn, _| {
        // A varying load: 1, 3, 2, 1, 3, 2, ... ms.
        calls.set(calls.get() + 1);
        let delay = Duration::from_millis([1, 3, 2][calls.get() as usize % 3]);
        let _ = time_service(conn, delay);
    })?;
    server.start()?;
    let addr = server.local_addr();

    println!("Synchron:");
    for i in 1..10 {
        fetch(addr, i);
    }

    println!("Asynchron:");
    let threads: Vec<_> = (1..10).map(|i| gevent::spawn(move || fetch(addr, i))).collect();
    gevent::joinall(&threads);
    server.stop();
    Ok(())
}
