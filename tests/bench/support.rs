//! What the benchmarks share: starting the release server on a free port
//! with a known admin, reading settings from the environment, percentiles
//! and the machine's description.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub const ADMIN_EMAIL: &str = "bench@example.com";
pub const ADMIN_PASSWORD: &str = "bench-password";

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A running `playground serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    _data_dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server on a fresh SQLite data directory.
pub fn start_server(extra_env: &[(&str, String)]) -> Server {
    let data_dir = tempfile::tempdir().expect("temporary directory");
    let mut command = Command::new(env!("CARGO_BIN_EXE_playground"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path())
        .env("PLAYGROUND_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("PLAYGROUND_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (name, value) in extra_env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start playground");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("the server exited before listening")
            .expect("read stdout");
        if let Some(url) = line.strip_prefix("Playground listening on ") {
            break url.trim().to_owned();
        }
    };
    Server {
        child,
        base,
        _data_dir: data_dir,
    }
}

/// (p50, p99) of `values`.
#[allow(dead_code)]
pub fn percentiles(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() as f64 * q) as usize).min(values.len() - 1)];
    (at(0.5), at(0.99))
}

/// "N cores, CPU model".
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let n_cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{n_cores} cores, {cpu}")
}

impl Server {
    /// CPU seconds (user + system) the server process has used so far.
    #[allow(dead_code)]
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name, which is in parentheses.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime are fields 14 and 15 of proc_pid_stat(5); the list
        // here starts at field 3.
        (ticks(11) + ticks(12)) / 100.0
    }
}
