//! Tutorial section "Subprocess": waiting for a child process
//! cooperatively. A `cron` greenlet prints every 0.3 s while the main
//! greenlet waits for the output of `sleep; uname`; then `cron` is killed
//! and the child's output printed.
//!
//! The tutorial's `cron` prints every 0.2 s and its child sleeps 1 s,
//! exactly when `cron` would print a sixth time. Here `cron` prints every
//! 0.3 s and the child sleeps 1.35 s, half-way between the fifth and the
//! sixth line, so the output is the tutorial's five `cron` lines on every
//! run, even on a machine that stalls for 100 ms.
//!
//! Run: `cargo run --example subprocess`

use std::time::Duration;

use gevent::subprocess::{Command, Stdio};

fn cron() {
    loop {
        println!("cron");
        gevent::sleep(Duration::from_millis(300));
    }
}

fn main() {
    let g = gevent::spawn(cron);
    // Popen(['sleep 1; uname'], stdout=PIPE, shell=True).communicate()
    let sub = Command::new("sh").args(["-c", "sleep 1.35; uname"]).stdout(Stdio::piped()).spawn();
    let out = sub.and_then(|sub| sub.wait_with_output()).expect("running sh");
    g.kill();
    println!("{}", String::from_utf8_lossy(&out.stdout).trim_end());
}
