//! Helpers shared by the `io_*` integration tests: run a test body once per
//! I/O backend ([`both`]), each on a fresh thread (a fresh hub), with a
//! watchdog; count this process's fds; raise `RLIMIT_NOFILE`; and re-run
//! this test binary as a child process for scenarios that change
//! process-wide state (a lowered fd limit, server threads that never end).
#![allow(dead_code)]

#[path = "../child_common/mod.rs"]
mod child;

use std::any::Any;
use std::io::{Read, Write};
use std::process::Output;
use std::sync::{mpsc, RwLock};
use std::time::{Duration, Instant};

use gevent::hub::{backend, prefer_backend, Backend};
use gevent::socket::{TcpListener, TcpStream};
use gevent::{Greenlet, GreenletError};

/// Any free port on 127.0.0.1.
pub const LOCAL: &str = "127.0.0.1:0";

/// Milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// How long one backend's run of a body may take before the test fails as
/// hung (the body's thread is then left behind).
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// Tests that count this process's fds take this lock exclusively; every
/// other test of the binary takes it shared, so fd counts are not disturbed
/// by tests running in parallel threads.
static FD_LOCK: RwLock<()> = RwLock::new(());

/// The shared side of the fd lock, for a test that opens fds without going
/// through [`both`] (e.g. one that starts server threads itself): held for
/// the test's length, no fd-counting test runs meanwhile.
pub fn fds_shared() -> std::sync::RwLockReadGuard<'static, ()> {
    FD_LOCK.read().unwrap_or_else(|p| p.into_inner())
}

/// Asserts that `addr` refuses connections, within 2 s. A closed listener
/// refuses at once, unless a child process forked (by a test running in a
/// parallel thread) still holds a copy of its fd until its `exec` closes
/// it: under qemu-user that window lasts milliseconds (and a connect in
/// its handshake when that copy closes is reset). A listener that
/// stays open (a server that never stopped) fails this after 2 s.
#[track_caller]
pub fn assert_refused_soon(addr: std::net::SocketAddr) {
    let give_up = Instant::now() + Duration::from_secs(2);
    loop {
        match TcpStream::connect(addr) {
            // The last copy of the listener closed during this handshake
            // (the forked child's exec above): the next attempt is refused.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && Instant::now() < give_up => {
                gevent::sleep(ms(5))
            }
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
                return;
            }
            Ok(_) if Instant::now() < give_up => gevent::sleep(ms(5)),
            Ok(_) => panic!("{addr} still accepts connections after 2 s: its listener is open"),
        }
    }
}

/// The text of a panic payload.
pub fn panic_text(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

/// Runs `body` on a fresh thread whose hub prefers `b`; `Err` with the panic
/// message if it panicked, or if it ran longer than [`WATCHDOG`].
pub fn on_backend<F>(b: Backend, body: &std::sync::Arc<F>) -> Result<(), String>
where
    F: Fn() + Send + Sync + 'static,
{
    let body = body.clone();
    let (tx, rx) = mpsc::channel();
    let name = format!("io-test-{b:?}");
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            // Reports even when the body panics (the sender drops then).
            let _tx = tx;
            prefer_backend(b).expect("a fresh thread has no hub yet");
            let got = backend();
            match b {
                Backend::Epoll => assert_eq!(got, Backend::Epoll, "prefer_backend(Epoll) must force epoll"),
                Backend::IoUring if got != Backend::IoUring => {
                    eprintln!("note: io_uring is unavailable here; the IoUring run uses {got:?}")
                }
                Backend::IoUring => {}
            }
            body();
        })
        .expect("cannot start a test thread");
    match rx.recv_timeout(WATCHDOG) {
        Err(mpsc::RecvTimeoutError::Timeout) => return Err(format!("hung: still running after {WATCHDOG:?}")),
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {}
    }
    thread.join().map_err(|p| panic_text(&*p))
}

fn run_both<F>(body: F)
where
    F: Fn() + Send + Sync + 'static,
{
    let body = std::sync::Arc::new(body);
    let mut failures = Vec::new();
    for b in [Backend::IoUring, Backend::Epoll] {
        if let Err(e) = on_backend(b, &body) {
            failures.push(format!("[{b:?}] {e}"));
        }
    }
    assert!(failures.is_empty(), "failed on {} backend(s):\n{}", failures.len(), failures.join("\n"));
}

/// Runs `body` on a fresh thread with `prefer_backend(IoUring)` (epoll where
/// io_uring is unavailable), then on another with `prefer_backend(Epoll)`
/// (asserting the hub runs epoll). Both runs happen even if the first
/// fails; the test fails naming every backend whose run panicked or hung.
pub fn both<F>(body: F)
where
    F: Fn() + Send + Sync + 'static,
{
    let _shared = FD_LOCK.read().unwrap_or_else(|p| p.into_inner());
    run_both(body);
}

/// As [`both`], with no other test of this binary running meanwhile (for
/// tests that compare this process's fd count before and after).
pub fn both_exclusive<F>(body: F)
where
    F: Fn() + Send + Sync + 'static,
{
    let _alone = FD_LOCK.write().unwrap_or_else(|p| p.into_inner());
    quiet_fds();
    run_both(body);
}

/// Waits (on the thread, up to 2 s) until the fd count has held for 50 ms:
/// an fd another test let go of may close a moment after it ended (a
/// thread-pool worker drops its wake-up handle just after its last use).
fn quiet_fds() {
    let give_up = Instant::now() + Duration::from_secs(2);
    let (mut last, mut since) = (fd_count(), Instant::now());
    while since.elapsed() < Duration::from_millis(50) && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(5));
        let n = fd_count();
        if n != last {
            (last, since) = (n, Instant::now());
        }
    }
}

/// Open fds of this process (the directory listing's own fd included, the
/// same in every count).
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}

/// Waits (cooperatively, polling every millisecond) until `fd_count()` is
/// `want` or `timeout` passed; the last count.
pub fn settle_fds(want: usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let n = fd_count();
        if n == want || Instant::now() >= deadline {
            return n;
        }
        gevent::sleep(ms(1));
    }
}

/// `RLIMIT_NOFILE` as (soft, hard).
#[allow(clippy::unnecessary_cast)] // `rlim_t` is `u64` on the targets tested, not everywhere
pub fn nofile_limit() -> (u64, u64) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the live struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    (r.rlim_cur as u64, r.rlim_max as u64)
}

/// Sets the soft `RLIMIT_NOFILE` (process-wide).
pub fn set_nofile_soft(soft: u64) {
    let (_, hard) = nofile_limit();
    let r = libc::rlimit { rlim_cur: soft as libc::rlim_t, rlim_max: hard as libc::rlim_t };
    // SAFETY: setrlimit reads the live struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0, "setrlimit({soft})");
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; the new soft limit.
pub fn raise_nofile() -> u64 {
    let (soft, hard) = nofile_limit();
    if soft < hard {
        set_nofile_soft(hard);
    }
    nofile_limit().0
}

/// True when this test binary runs under an emulator (qemu-user, the
/// aarch64 cross run): heavy tests scale down there.
pub fn emulated() -> bool {
    child::emulated()
}

/// `full` natively, `reduced` under an emulator.
pub fn scaled(full: usize, reduced: usize) -> usize {
    if emulated() {
        reduced
    } else {
        full
    }
}

/// Joins `g` and returns its value; panics (failing the test) if it
/// panicked or was killed. A greenlet's panic never unwinds its parent, so
/// every greenlet that asserts must be checked this way.
pub fn join_ok<T: 'static>(g: Greenlet<T>) -> T {
    let name = g.name();
    match g.into_result() {
        Ok(v) => v,
        Err(GreenletError::Panicked(m)) => panic!("greenlet {name} panicked: {m}"),
        Err(e) => panic!("greenlet {name} failed: {e:?}"),
    }
}

/// An echo handler: echoes until EOF or an error.
pub fn echo(mut conn: TcpStream) {
    let mut buf = [0u8; 4096];
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

/// A connected TCP pair on 127.0.0.1: (client, server side).
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(LOCAL).unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = gevent::spawn(move || listener.accept().map(|(s, _)| s));
    let client = TcpStream::connect(addr).unwrap();
    let server = acceptor.into_result().unwrap().unwrap();
    (client, server)
}

/// Sleeps cooperatively until `done()` or `timeout` passed; true if done.
pub fn wait_until(timeout: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        gevent::sleep(ms(1));
    }
    true
}

/// The environment variable naming the scenario a child process runs.
pub const CHILD_ENV: &str = "GEVENT_IO_TEST_SCENARIO";

/// The scenario this process was started for, if it is a child.
pub fn child_scenario() -> Option<String> {
    child::scenario(CHILD_ENV)
}

/// Runs the test `test` of this binary alone in a child process with the
/// scenario variable set to `scenario` and the extra environment `env`
/// (`None` removes a variable); returns its output.
pub fn run_child(test: &str, scenario: &str, env: &[(&str, Option<&str>)]) -> Output {
    child::run(CHILD_ENV, test, scenario, env)
}

/// Asserts a child run succeeded and ran its test (not filtered out);
/// returns its stdout.
pub fn child_ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}", out.status);
    assert!(stdout.contains("1 passed"), "the child ran no test:\n{stdout}\n{stderr}");
    stdout
}

/// A fresh empty directory under the temp dir (for Unix socket paths),
/// removed on drop.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// Makes one, named after this process and a counter.
    #[allow(clippy::new_without_default)]
    pub fn new() -> TempDir {
        static DIRS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = DIRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("gevent-io-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap();
        TempDir(p)
    }

    /// `name` inside the directory.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
