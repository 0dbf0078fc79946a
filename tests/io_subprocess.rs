//! `gevent::subprocess`: output, exit status, pipes in both directions,
//! timeouts and kills, and that other greenlets run while a child does;
//! every body on both backends.

mod io_common;

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use gevent::subprocess::{Command, Stdio};
use io_common::{both, both_exclusive, fd_count, join_ok, settle_fds};

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

#[test]
fn output_of_echo() {
    both(|| {
        let out = Command::new("echo").args(["hello", "world"]).output().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"hello world\n");
        assert!(out.stderr.is_empty());
    });
}

#[test]
fn output_captures_stdout_and_stderr() {
    both(|| {
        let out = sh("echo out; echo err >&2; exit 2").output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    });
}

#[test]
fn exit_status() {
    both(|| {
        assert!(Command::new("true").status().unwrap().success());
        let status = sh("exit 3").status().unwrap();
        assert!(!status.success());
        assert_eq!(status.code(), Some(3));
    });
}

#[test]
fn env_and_current_dir() {
    both(|| {
        let out = sh("echo $GEVENT_X; pwd").env("GEVENT_X", "ok").current_dir("/").output().unwrap();
        assert_eq!(out.stdout, b"ok\n/\n");
        let out = sh("echo \"[$GEVENT_Y]\"").env("GEVENT_Y", "y").env_remove("GEVENT_Y").output().unwrap();
        assert_eq!(out.stdout, b"[]\n");
    });
}

#[test]
fn missing_program_is_not_found() {
    both(|| {
        match Command::new("/nonexistent/gevent-test-program").spawn() {
            Err(err) => assert_eq!(err.kind(), ErrorKind::NotFound),
            // qemu-user emulates the fork and exec without passing the exec
            // error back: the child fails instead.
            Ok(mut child) => assert!(!child.wait().unwrap().success()),
        }
    });
}

#[test]
fn stdin_piped_to_cat() {
    both(|| {
        let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"through cat\n").unwrap();
        drop(stdin);
        let mut text = String::new();
        child.stdout.as_mut().unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "through cat\n");
        assert!(child.wait().unwrap().success());
    });
}

#[test]
fn wait_closes_stdin() {
    both(|| {
        let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
        assert!(child.wait().unwrap().success(), "cat saw end-of-file");
    });
}

#[test]
fn wait_timeout_then_kill() {
    both(|| {
        let started = Instant::now();
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        assert_eq!(child.try_wait().unwrap(), None);
        assert_eq!(child.wait_timeout(Duration::from_millis(50)).unwrap(), None);
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(started.elapsed() < Duration::from_secs(4), "waited for sleep 5");
        assert!(child.try_wait().unwrap().is_some());
        child.kill().unwrap(); // exited already: Ok, as std
    });
}

#[test]
fn wait_timeout_returns_the_status_of_a_quick_child() {
    both(|| {
        let mut child = Command::new("true").spawn().unwrap();
        let status = child.wait_timeout(Duration::from_secs(10)).unwrap();
        assert!(status.expect("exited within the timeout").success());
        // A timeout too large to add to now means forever (it panicked).
        let mut child = Command::new("true").spawn().unwrap();
        assert!(child.wait_timeout(Duration::MAX).unwrap().expect("exited").success());
    });
}

#[test]
fn other_greenlets_run_while_a_child_runs() {
    both(|| {
        let ticks = Rc::new(Cell::new(0u32));
        let t = ticks.clone();
        let ticker = gevent::spawn(move || loop {
            gevent::sleep(Duration::from_millis(10));
            t.set(t.get() + 1);
        });
        let out = sh("sleep 0.2; echo hi").output().unwrap();
        assert_eq!(out.stdout, b"hi\n");
        assert!(ticks.get() >= 2, "the ticker ran {} times during a 200 ms child", ticks.get());
        ticker.kill();
    });
}

#[test]
fn concurrent_waits() {
    both(|| {
        let waits: Vec<_> = (1..=3)
            .map(|i| gevent::spawn(move || sh(&format!("sleep 0.0{i}; exit {i}")).status().unwrap().code()))
            .collect();
        let codes: Vec<_> = waits.into_iter().map(join_ok).collect();
        assert_eq!(codes, [Some(1), Some(2), Some(3)]);
    });
}

#[test]
fn megabyte_through_cat_without_deadlock() {
    both(|| {
        let payload: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
        let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = payload.clone();
        // Both pipes are far smaller than 1 MiB: the writer must interleave
        // with the reader (wait_with_output, below).
        let writer = gevent::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output().unwrap();
        join_ok(writer).unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), payload.len());
        assert!(out.stdout == payload);
    });
}

#[test]
fn large_stdout_and_stderr_at_once() {
    both(|| {
        // Each stream overfills a pipe: reading them one after the other would
        // deadlock.
        let out =
            sh("head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2; head -c 300000 /dev/zero").output().unwrap();
        assert!(out.status.success());
        assert_eq!((out.stdout.len(), out.stderr.len()), (600_000, 300_000));
    });
}

#[test]
fn killing_a_waiting_greenlet_leaves_the_child() {
    both(|| {
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let pid = child.id();
        let waiter = gevent::spawn(move || child.wait().is_ok());
        gevent::sleep(Duration::from_millis(20));
        waiter.kill();
        assert!(waiter.dead());
        // The child is still there (it was not reaped): kill it by pid.
        let status = sh(&format!("kill -KILL {pid}")).status().unwrap();
        assert!(status.success(), "the child was still running");
    });
}

#[test]
fn pipe_one_child_into_another() {
    both(|| {
        let mut first = sh("echo piped").stdout(Stdio::piped()).spawn().unwrap();
        let second = Command::new("cat").stdin(first.stdout.take().unwrap()).stdout(Stdio::piped()).spawn().unwrap();
        let out = second.wait_with_output().unwrap();
        assert_eq!(out.stdout, b"piped\n");
        assert!(first.wait().unwrap().success());
    });
}

#[test]
fn pipes_expose_their_fds() {
    both(|| {
        use std::os::fd::{AsFd, AsRawFd};
        let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let (stdin, stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        assert!(stdin.as_raw_fd() >= 0 && stdout.as_raw_fd() >= 0);
        assert_eq!(stdout.as_fd().as_raw_fd(), stdout.as_raw_fd());
        (&stdin).write_all(b"x").unwrap();
        drop(stdin);
        let mut buf = [0u8; 4];
        assert_eq!((&stdout).read(&mut buf).unwrap(), 1);
        assert_eq!((&stdout).read(&mut buf).unwrap(), 0);
        assert!(child.wait().unwrap().success());
    });
}

/// A greenlet killed while `output()` (or `status()`) waits for its child
/// kills the child and reaps it as it unwinds: no zombie is left (it was
/// dropped unwaited).
#[test]
fn a_caller_killed_in_output_leaves_no_zombie() {
    both(|| {
        for status in [false, true] {
            let path = std::env::temp_dir().join(format!(
                "gevent-zombie-{}-{status}-{:?}",
                std::process::id(),
                gevent::hub::backend()
            ));
            let script = format!("echo $$ > {}; exec sleep 5", path.display());
            let g = gevent::spawn(move || {
                let mut cmd = sh(&script);
                if status {
                    cmd.status().map(drop)
                } else {
                    cmd.output().map(drop)
                }
            });
            let pid = loop {
                gevent::sleep(Duration::from_millis(2));
                if let Some(pid) = std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<u32>().ok()) {
                    break pid;
                }
            };
            let proc_dir = format!("/proc/{pid}");
            assert!(std::path::Path::new(&proc_dir).exists());
            g.kill();
            assert!(!std::path::Path::new(&proc_dir).exists(), "status={status}: the child {pid} is left (a zombie)");
            std::fs::remove_file(&path).unwrap();
        }
    });
}

/// A pipe end converts into a plain blocking fd, as std's do, and the
/// command shows what was configured.
#[test]
fn pipe_ends_convert_into_blocking_fds() {
    both(|| {
        use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
        let mut cmd = sh("read line; echo \"got $line\"; echo oops >&2");
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).env("A", "1").current_dir("/");
        assert_eq!(cmd.get_envs().collect::<Vec<_>>(), [(std::ffi::OsStr::new("A"), Some(std::ffi::OsStr::new("1")))]);
        assert_eq!(cmd.get_current_dir(), Some(std::path::Path::new("/")));
        assert_eq!(cmd.as_std().get_program(), "sh");
        let mut child = cmd.spawn().unwrap();
        let stdin = OwnedFd::from(child.stdin.take().unwrap());
        let stdout = OwnedFd::from(child.stdout.take().unwrap());
        // SAFETY: the raw fd is ours (into_raw_fd gave it up).
        let stderr = unsafe { OwnedFd::from_raw_fd(child.stderr.take().unwrap().into_raw_fd()) };
        for fd in [&stdin, &stdout, &stderr] {
            // SAFETY: F_GETFL on a live fd.
            let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
            assert_eq!(flags & libc::O_NONBLOCK, 0, "a converted pipe end is blocking");
        }
        std::fs::File::from(stdin).write_all(b"x\n").unwrap();
        let (mut out, mut err) = (String::new(), String::new());
        std::fs::File::from(stdout).read_to_string(&mut out).unwrap();
        std::fs::File::from(stderr).read_to_string(&mut err).unwrap();
        assert_eq!((out.as_str(), err.as_str()), ("got x\n", "oops\n"));
        assert!(child.wait().unwrap().success());
    });
}

/// `send_signal` / `terminate` (gevent's `Popen`): the child gets the
/// signal; after it exited and was waited for, sending is a no-op (its id
/// may be another process's by then); an unknown signal is refused.
#[test]
fn send_signal_and_terminate() {
    both(|| {
        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        child.terminate().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
        child.send_signal(libc::SIGKILL).unwrap();
        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        assert_eq!(child.send_signal(12345).unwrap_err().kind(), ErrorKind::InvalidInput);
        child.send_signal(libc::SIGUSR1).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGUSR1));
    });
}

/// `gevent::wait` over children (gevent's `gevent.wait([p1, p2, p3])` over
/// `Popen` objects), with a timeout: the ones that exited meanwhile, and
/// the others still running and waitable; the same through exit handles.
#[test]
fn wait_over_children_returns_the_ready_ones() {
    both(|| {
        for handles in [false, true] {
            let base = gevent::hub::stats().greenlets;
            let mut a = Command::new("sleep").arg("0.05").spawn().unwrap();
            let mut b = Command::new("true").spawn().unwrap();
            // Margins of 350 ms and more: a loaded machine stalls a while.
            let mut c = Command::new("sleep").arg("1").spawn().unwrap();
            let mut ready = if handles {
                let (ea, eb, ec) = (a.exit_handle(), b.exit_handle(), c.exit_handle());
                gevent::wait(&[&ea, &eb, &ec], Some(Duration::from_millis(400)))
            } else {
                gevent::wait(&[&a, &b, &c], Some(Duration::from_millis(400)))
            };
            ready.sort();
            assert_eq!(ready, [0, 1], "handles={handles}");
            assert_eq!(gevent::hub::stats().greenlets, base, "the watcher of the running child is gone");
            // The waits reaped the exited ones; `c` is still running.
            assert!(a.exit_handle().status().expect("a exited").success());
            assert!(b.try_wait().unwrap().expect("b exited").success());
            assert_eq!(c.exit_handle().status(), None);
            assert_eq!(c.try_wait().unwrap(), None);
            // Without a timeout: every one, `c` last.
            assert_eq!(gevent::wait(&[&a, &b, &c], None), [0, 1, 2]);
            for child in [&mut a, &mut b, &mut c] {
                assert!(child.wait().unwrap().success());
            }
        }
    });
}

/// `iwait` over exit handles yields the children as they exit, each one
/// reaped by then (its status is there when its index comes).
#[test]
fn iwait_yields_children_in_exit_order() {
    both(|| {
        let children: Vec<_> =
            ["sleep 0.9; exit 1", "exit 2", "sleep 0.45; exit 3"].into_iter().map(|s| sh(s).spawn().unwrap()).collect();
        let exits: Vec<_> = children.iter().map(|c| c.exit_handle()).collect();
        let waitables: Vec<&dyn gevent::Waitable> = exits.iter().map(|e| e as &dyn gevent::Waitable).collect();
        let mut order = Vec::new();
        for i in gevent::iwait(&waitables, None) {
            let code = exits[i].status().expect("exited when yielded").code();
            assert_eq!(code, Some(i as i32 + 1));
            order.push(i);
        }
        assert_eq!(order, [1, 2, 0]);
        // Reaped once, by the handles' waits: the child sees the same.
        for (i, mut child) in children.into_iter().enumerate() {
            assert_eq!(child.wait().unwrap().code(), Some(i as i32 + 1));
        }
    });
}

/// A child reaped through one of its handles, by `Child::wait`, or by a
/// timed wait: every wait, before or after, and `status`/`try_wait` give
/// the same status (the child is reaped once; a second `waitpid` would
/// fail with `ECHILD`).
#[test]
fn handle_and_child_wait_agree() {
    both(|| {
        for reaper in ["handle", "child", "timed"] {
            let mut child = sh("sleep 0.05; exit 5").spawn().unwrap();
            let pid = child.id();
            let exit = child.exit_handle();
            assert_eq!(exit.id(), pid);
            assert_eq!(exit.status(), None);
            let waiters: Vec<_> = (0..3)
                .map(|i| {
                    let exit = exit.clone();
                    gevent::spawn(move || match i {
                        0 => exit.wait().unwrap(),
                        1 => exit.wait_timeout(Duration::from_secs(30)).unwrap().expect("exited"),
                        _ => exit.clone().wait().unwrap(),
                    })
                })
                .collect();
            let status = match reaper {
                "handle" => exit.wait().unwrap(),
                "child" => child.wait().unwrap(),
                _ => child.wait_timeout(Duration::from_secs(30)).unwrap().expect("exited"),
            };
            assert_eq!(status.code(), Some(5), "{reaper}");
            for w in waiters {
                assert_eq!(join_ok(w), status, "{reaper}");
            }
            assert_eq!(child.wait().unwrap(), status, "{reaper}");
            assert_eq!(child.try_wait().unwrap(), Some(status));
            assert_eq!(exit.wait().unwrap(), status);
            assert_eq!(exit.try_wait().unwrap(), Some(status));
            assert_eq!(exit.status(), Some(status));
            assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "{reaper}: {pid} is a zombie");
        }
        // A killed child: the signal, the same everywhere.
        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        let exit = child.exit_handle();
        let waiter = gevent::spawn(move || exit.wait().unwrap());
        gevent::sleep(Duration::from_millis(10));
        child.kill().unwrap();
        let status = join_ok(waiter);
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert_eq!(child.wait().unwrap(), status);
        // A handle outlives its child's `Child`, and moves to other threads.
        let child = sh("exit 9").spawn().unwrap();
        let exit = child.exit_handle();
        drop(child);
        let code = std::thread::spawn(move || exit.wait().unwrap().code()).join().unwrap();
        assert_eq!(code, Some(9));
    });
}

/// A greenlet waiting on a handle that is killed, or whose wait times
/// out, leaves nothing behind: no readiness wait in flight (the hub, with
/// nothing else to run, reports LoopExit at once instead of waiting for
/// the child's exit), the child unreaped until a later wait reaps it (no
/// zombie), and no fd once the child and its handles are dropped.
#[test]
fn a_killed_handle_waiter_leaves_nothing_behind() {
    both_exclusive(|| {
        use std::panic::{catch_unwind, AssertUnwindSafe};
        let fds = fd_count();
        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        let pid = child.id();
        // Its pidfd (none where the kernel or emulator lacks pidfd_open).
        let pidfd = fd_count() - fds;
        assert!(pidfd <= 1);
        let exit = child.exit_handle();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let exit = exit.clone();
                gevent::spawn(move || exit.wait().map(|s| s.code()))
            })
            .collect();
        let timed = {
            let exit = exit.clone();
            gevent::spawn(move || exit.wait_timeout(Duration::from_millis(20)).unwrap())
        };
        assert_eq!(join_ok(timed), None, "timed out");
        gevent::killall(&waiters);
        for w in &waiters {
            assert_eq!(w.exception(), Some(gevent::GreenletError::Killed));
        }
        // A wait left in flight (an io_uring poll, an epoll waiter) would
        // keep the hub waiting for the child's exit, 10 s away.
        let stuck = catch_unwind(AssertUnwindSafe(|| gevent::event::Event::new().wait())).unwrap_err();
        assert!(io_common::panic_text(&*stuck).contains("LoopExit"), "{}", io_common::panic_text(&*stuck));
        assert_eq!(exit.status(), None, "LoopExit came before the child's exit");
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        child.kill().unwrap();
        let status = exit.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert_eq!(child.wait().unwrap(), status);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "{pid} is a zombie");
        // The pidfd closes with the last of the child and its handles.
        assert_eq!(fd_count(), fds + pidfd, "the pidfd");
        drop(child);
        assert_eq!(fd_count(), fds + pidfd, "a handle keeps the pidfd");
        drop(exit);
        assert_eq!(settle_fds(fds, Duration::from_secs(5)), fds, "an fd leaked");
    });
}

/// Exit handles are `'static` and cross threads, as the `Child` does.
#[test]
fn exit_handles_are_send_and_static() {
    fn send_sync_static<T: Send + Sync + Clone + 'static>() {}
    send_sync_static::<gevent::subprocess::ChildExit>();
}
