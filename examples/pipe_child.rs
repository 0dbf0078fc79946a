//! Tutorial section "Subprocess", the multiprocessing example: talking to
//! another process over pipes that are *not* cooperative, made so with
//! `gevent::socket::wait_read` and `wait_write`. A greenlet waits until a
//! pipe is writable (readable) before each write (read), so the blocking
//! call that follows returns at once and the hub keeps running.
//!
//! The tutorial forks a Python `Process` running `relay`, which reads a
//! message from one pipe and answers on another. A process here cannot fork
//! itself safely while its hub runs, so the relay is a small `sh` loop with
//! the same protocol, and its pipes are `std::process`'s blocking ones (the
//! counterpart of `multiprocessing.Pipe`). The tutorial joins with a timeout
//! of 1 s; 5 s here leaves room for slow (emulated) runs.
//!
//! Run: `cargo run --example pipe_child`

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use gevent::socket::{wait_read, wait_write};

/// `relay`: for i in 0..10, read a message and send back "<msg> in <i>".
const RELAY: &str = r#"i=0; while [ $i -lt 10 ]; do read msg; echo "$msg in $i"; i=$((i+1)); done"#;

/// To the process: ten times "hi", each once the pipe is writable.
fn put_msg(mut a: ChildStdin) {
    for _ in 0..10 {
        wait_write(a.as_raw_fd(), None).expect("waiting to write");
        a.write_all(b"hi\n").expect("writing to the relay");
    }
}

/// From the process: ten answers, each once the pipe is readable.
fn get_msg(d: ChildStdout) {
    let fd = d.as_raw_fd();
    let mut d = BufReader::new(d);
    for _ in 0..10 {
        if d.buffer().is_empty() {
            wait_read(fd, None).expect("waiting to read");
        }
        let mut msg = String::new();
        d.read_line(&mut msg).expect("reading from the relay");
        println!("{}", msg.trim_end());
    }
}

fn main() {
    let mut proc = Command::new("sh")
        .args(["-c", RELAY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the relay");
    let (a, d) = (proc.stdin.take().expect("piped"), proc.stdout.take().expect("piped"));

    let g1 = gevent::spawn(move || get_msg(d));
    let g2 = gevent::spawn(move || put_msg(a));
    gevent::joinall_timeout([g1.as_ref(), g2.as_ref()], Duration::from_secs(5));
    // Past the timeout, the pipes close with their greenlets and the relay
    // reads end-of-file.
    gevent::killall([g1.as_ref(), g2.as_ref()]);
    proc.wait().expect("the relay exits after ten messages");
}
