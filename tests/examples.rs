//! Runs each tutorial example and compares its stdout, line by line, with
//! `tests/expected/<example>.txt` (the tutorial's output blocks, verbatim).
//!
//! Comparison rule:
//! - the output has exactly as many lines as the expected file;
//! - each line equals the expected line, except that an expected line ending
//!   in `<skip>` matches any line that starts with the text before `<skip>`
//!   (a line that is just `<skip>` matches any line). Use it for lines with
//!   times, ids or other values that vary from run to run;
//! - stderr is not compared (panic reports of greenlets go there), but the
//!   example must exit successfully.
//!
//! How the examples run: `cargo run --example NAME` in this package, with the
//! cargo that runs this test and the same profile and target, so that a
//! cross test (`--target aarch64-unknown-linux-gnu`) runs the examples
//! through the target's runner (qemu) from `.cargo/config.toml`. The profile
//! and target are read from the path of this test binary
//! (`<target-dir>/[<triple>/]<profile>/deps/...`): `debug` runs the examples
//! in the dev profile, `release` with `--release` (any other profile: by
//! whether this test has debug assertions); a path component
//! `<this arch>-...<this os>...` adds `--target` with it. All examples are
//! built once, in one cargo call, by the first test that needs one.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// Every example checked here (each has `tests/expected/<name>.txt`).
const EXAMPLES: &[&str] = &[
    "greenlets",
    "sync_async",
    "determinism",
    "creating_greenlets",
    "my_greenlet",
    "greenlet_states",
    "timeouts",
    "tour",
    "queue_workers",
    "queue_boss",
    "events",
    "async_result",
    "groups",
    "socket_pool",
    "locks",
    "thread_locals",
    "actors",
    "select",
    "fetch",
    "simple_server",
    "subprocess",
    "pipe_child",
    "program_end",
];

const SKIP: &str = "<skip>";

/// `--target`/`--release` flags matching this test binary's build.
fn build_flags() -> Vec<String> {
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut flags = Vec::new();
    // The profile directory holds `deps/`, where test binaries live.
    let profile = exe.parent().and_then(Path::parent).and_then(Path::file_name);
    match profile.and_then(|p| p.to_str()) {
        Some("release") => flags.push("--release".to_owned()),
        Some("debug") => {}
        _ if !cfg!(debug_assertions) => flags.push("--release".to_owned()),
        _ => {}
    }
    // A cross build puts its artifacts under `<target-dir>/<triple>/`.
    let arch_prefix = format!("{}-", std::env::consts::ARCH);
    let triple = exe
        .components()
        .rev()
        .filter_map(|c| c.as_os_str().to_str())
        .find(|c| c.starts_with(&arch_prefix) && c.contains(std::env::consts::OS));
    if let Some(triple) = triple {
        flags.extend(["--target".to_owned(), triple.to_owned()]);
    }
    flags
}

fn cargo(subcommand: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([subcommand, "--quiet", "-p", "gevent"]).args(build_flags());
    cmd
}

/// Builds all examples once, in one cargo call (parallel and cheaper than
/// one `cargo run` compiling each).
fn build_examples() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut cmd = cargo("build");
        for name in EXAMPLES {
            cmd.args(["--example", name]);
        }
        let out = cmd.output().expect("running cargo build");
        assert!(out.status.success(), "cargo build of the examples failed:\n{}", String::from_utf8_lossy(&out.stderr));
    });
}

/// Runs example `name` with `args` and checks its stdout against
/// `tests/expected/<name>.txt`; returns the stdout.
fn check(name: &str, args: &[&str]) -> String {
    build_examples();
    let out = cargo("run").args(["--example", name, "--"]).args(args).output().expect("cargo run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "example {name} failed ({}):\n{stdout}\n{stderr}", out.status);

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/expected/{name}.txt"));
    let expected = std::fs::read_to_string(&path).expect("expected output file");
    let (got, want): (Vec<&str>, Vec<&str>) = (stdout.lines().collect(), expected.lines().collect());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let ok = match w.strip_suffix(SKIP) {
            Some(prefix) => g.starts_with(prefix),
            None => g == w,
        };
        assert!(ok, "{name}, line {}:\n  got:      {g:?}\n  expected: {w:?}\nstdout:\n{stdout}", i + 1);
    }
    assert_eq!(got.len(), want.len(), "{name}: line count differs; stdout:\n{stdout}");
    stdout.into_owned()
}

#[test]
fn every_example_has_expected_output() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expected");
    for name in EXAMPLES {
        assert!(dir.join(format!("{name}.txt")).is_file(), "missing tests/expected/{name}.txt");
    }
}

#[test]
fn greenlets() {
    check("greenlets", &[]);
}

#[test]
fn sync_async() {
    check("sync_async", &[]);
}

#[test]
fn determinism() {
    // The first line is the OS thread pool's: whatever its runs gave.
    let stdout = check("determinism", &[]);
    let threads = stdout.lines().next().unwrap_or_default();
    assert!(threads == "True" || threads == "False", "determinism, line 1: {threads:?}");
}

#[test]
fn creating_greenlets() {
    check("creating_greenlets", &[]);
}

#[test]
fn my_greenlet() {
    check("my_greenlet", &[]);
}

#[test]
fn greenlet_states() {
    check("greenlet_states", &[]);
}

#[test]
fn timeouts() {
    check("timeouts", &[]);
}

#[test]
fn tour() {
    // Fewer measurement iterations than the default 1e6: debug builds and
    // qemu are slow, and the timing lines are not compared anyway.
    check("tour", &["10000"]);
}

#[test]
fn queue_workers() {
    check("queue_workers", &[]);
}

#[test]
fn queue_boss() {
    check("queue_boss", &[]);
}

#[test]
fn events() {
    check("events", &[]);
}

#[test]
fn async_result() {
    check("async_result", &[]);
}

#[test]
fn groups() {
    check("groups", &[]);
}

#[test]
fn socket_pool() {
    check("socket_pool", &[]);
}

#[test]
fn locks() {
    check("locks", &[]);
}

#[test]
fn thread_locals() {
    check("thread_locals", &[]);
}

#[test]
fn actors() {
    check("actors", &[]);
}

#[test]
fn select() {
    check("select", &[]);
}

#[test]
fn fetch() {
    check("fetch", &[]);
}

#[test]
fn simple_server() {
    check("simple_server", &["0"]);
}

#[test]
fn subprocess() {
    check("subprocess", &[]);
}

#[test]
fn pipe_child() {
    check("pipe_child", &[]);
}

#[test]
fn program_end() {
    check("program_end", &[]);
}
