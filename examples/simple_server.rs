//! Tutorial section "Ein simpler Server": a `StreamServer` whose handler
//! greets each client and counts to four.
//!
//! `cargo run --example simple_server -- --serve` serves on 127.0.0.1:5000
//! until interrupted (try `nc 127.0.0.1 5000`). Without `--serve` the
//! example also connects one client itself, prints what it received and
//! stops; a port can be given (`0`: any free port).
use std::io::{Read, Write};

use gevent::server::StreamServer;
use gevent::socket::TcpStream;

fn handle(mut socket: TcpStream) -> std::io::Result<()> {
    socket.write_all(b"Hallo von telnet!\n")?;
    for i in 0..5 {
        socket.write_all(format!("{i}\n").as_bytes())?;
    }
    Ok(()) // dropping the socket closes it
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let serve = args.iter().any(|a| a == "--serve");
    let port: u16 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(5000);
    let server = StreamServer::new(("127.0.0.1", port), |socket, _address| {
        if let Err(e) = handle(socket) {
            eprintln!("handler: {e}");
        }
    })?;
    if serve {
        eprintln!("serving on {}; try: nc 127.0.0.1 {}", server.local_addr(), server.local_addr().port());
        return server.serve_forever();
    }
    server.start()?;
    let mut reply = String::new();
    TcpStream::connect(server.local_addr())?.read_to_string(&mut reply)?;
    print!("{reply}");
    server.stop();
    Ok(())
}
