//! Re-running this test binary as a child process, shared by `io_common`
//! and `core_common` (each includes this file as its own `child` module and
//! names the environment variable its scenarios are passed in).
#![allow(dead_code)]

use std::process::{Command, Output};
use std::sync::OnceLock;

/// The scenario this process was started for, if it is a child started
/// with the scenario variable `var`.
pub fn scenario(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// What runs this test binary: nothing natively; the emulator when the
/// machine is of another architecture (the aarch64 cross run under
/// qemu-user, without binfmt_misc: `uname` is a host binary, so it names the
/// host). `GEVENT_TEST_RUNNER` (space separated) overrides.
pub fn runner() -> &'static [String] {
    static RUNNER: OnceLock<Vec<String>> = OnceLock::new();
    RUNNER.get_or_init(|| {
        if let Ok(r) = std::env::var("GEVENT_TEST_RUNNER") {
            return r.split_whitespace().map(str::to_owned).collect();
        }
        let arch = std::env::consts::ARCH;
        let host =
            Command::new("uname").arg("-m").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        match host {
            Ok(h) if !h.is_empty() && h != arch => {
                vec![format!("qemu-{arch}"), "-L".into(), format!("/usr/{arch}-linux-gnu")]
            }
            _ => Vec::new(),
        }
    })
}

/// True when this test binary runs under an emulator (qemu-user, the
/// aarch64 cross run).
pub fn emulated() -> bool {
    !runner().is_empty()
}

/// Runs the test `test` of this binary alone in a child process (under
/// [`runner`], core dumps off) with the variable `var` set to `scenario`
/// and the extra environment `env` (`None` removes a variable); returns its
/// output.
pub fn run(var: &str, test: &str, scenario: &str, env: &[(&str, Option<&str>)]) -> Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg("ulimit -c 0 2>/dev/null; exec \"$@\"").arg("sh");
    cmd.args(runner()).arg(&exe);
    cmd.args([test, "--exact", "--nocapture", "--include-ignored", "--test-threads=1"]);
    cmd.env(var, scenario).env("RUST_BACKTRACE", "0");
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.output().expect("the child process ran")
}
