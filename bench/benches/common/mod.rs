//! Shared set-up for the bench binaries: one criterion configuration, a way to run
//! code inside may's single worker, and the closing table that puts each gevent
//! median beside its peers' medians, read back from criterion's own estimates.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use criterion::Criterion;

/// One row group of the closing table: a criterion group, the gevent function and
/// the peers measured beside it.
pub struct Figure {
    /// What one reported unit is, e.g. "one-way switch".
    pub title: &'static str,
    /// The criterion group name.
    pub group: &'static str,
    /// Criterion's per-iteration median is divided by this to give one unit
    /// (2 for a resume+suspend round trip = two one-way switches).
    pub divisor: f64,
    /// The gevent function id inside `group`.
    pub gevent: &'static str,
    /// `(label, function id)` of each peer inside `group`.
    pub peers: &'static [(&'static str, &'static str)],
}

/// Configures may (one worker, so its coroutines run on one OS thread like a hub)
/// and returns the criterion driver: command-line filters honoured, no plots, and
/// results written where [`output_dir`] says so the table can read them back.
pub fn setup() -> Criterion {
    may::config().set_workers(1);
    Criterion::default().output_directory(&output_dir()).without_plots().configure_from_args()
}

/// Where criterion keeps its estimates: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else `<target>/criterion` next to this binary
/// (`<target>/<profile>/deps/<bench>-<hash>`).
pub fn output_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(|t| t.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// Runs `f` as a may coroutine on may's worker and waits for its result, so that
/// may is measured coroutine-to-coroutine on one thread, without the cross-thread
/// hand-off a plain OS thread would add to each join.
pub fn in_may<T, F>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    may::go!(f).join().expect("may coroutine panicked")
}

/// Criterion's median time per iteration for `group/function`, in nanoseconds,
/// if that benchmark was measured by this process (started at `since`).
fn median_ns(group: &str, function: &str, since: SystemTime) -> Option<f64> {
    let path = output_dir().join(group).join(function).join("new").join("estimates.json");
    let modified = fs::metadata(&path).ok()?.modified().ok()?;
    // Allow for coarse file-system timestamps, never for an earlier run.
    if modified + Duration::from_secs(1) < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn fmt_ns(ns: Option<f64>) -> String {
    match ns {
        Some(v) if v >= 1000.0 => format!("{:.2} us", v / 1000.0),
        Some(v) => format!("{v:.2} ns"),
        None => "not run".to_string(),
    }
}

/// Prints one line per (figure, peer): gevent's median per unit, the peer's, and
/// gevent/peer (below 1 means gevent is faster). Every number is read from the
/// estimates criterion wrote during this process; skipped benchmarks show "not run".
pub fn print_table(title: &str, figures: &[Figure], since: SystemTime) {
    println!();
    println!("== {title}: criterion medians from this run, per unit ==");
    // The first column fits the longest "group (title)", never narrower than 34.
    let width = figures.iter().map(|f| f.group.len() + f.title.len() + 3).fold(34, usize::max);
    println!(
        "{:<width$} {:>12}  {:<11} {:>12}  {:>11}",
        "figure (unit)", "gevent", "peer", "peer median", "gevent/peer"
    );
    for fig in figures {
        let gevent = median_ns(fig.group, fig.gevent, since).map(|v| v / fig.divisor);
        for (i, (label, function)) in fig.peers.iter().enumerate() {
            let peer = median_ns(fig.group, function, since).map(|v| v / fig.divisor);
            let ratio = match (gevent, peer) {
                (Some(g), Some(p)) if p > 0.0 => format!("{:.2}x", g / p),
                _ => "-".to_string(),
            };
            let (name, ours) = if i == 0 {
                (format!("{} ({})", fig.group, fig.title), fmt_ns(gevent))
            } else {
                (String::new(), String::new())
            };
            println!("{name:<width$} {ours:>12}  {label:<11} {:>12}  {ratio:>11}", fmt_ns(peer));
        }
    }
}

/// Two greenlets each yielding (`sleep(ZERO)`) `iters` times; the elapsed
/// time per yield (`2 * iters` yields in all). The `switch` bench measures
/// it against the peers, `sync` beside the Event hop.
#[allow(dead_code)] // not every bench binary uses it
pub fn gevent_yields(iters: u64) -> Duration {
    let start = std::time::Instant::now();
    let pinger = move || {
        for _ in 0..iters {
            gevent::sleep(Duration::ZERO);
        }
    };
    let a = gevent::spawn(pinger);
    let b = gevent::spawn(pinger);
    gevent::joinall([&a, &b]);
    start.elapsed() / 2
}
