//! Helpers of the Docker end-to-end tests: the `PLAYGROUND_TEST_DOCKER` gate, the engine check
//! and test images (built once per process), a server that executes Docker runs, programs,
//! environments and runs on Docker, the `docker` command line, and a private dockerd that a
//! test may stop and start.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::app::{TestApp, TestAppBuilder};

#[path = "../../../plugins/docker/tests/support/wheel.rs"]
mod wheel;

use super::fixtures::{create_environment, create_program, get_environment, id_of};
pub use wheel::wheel;

/// Set to `1` to run the Docker tests; `DOCKER_HOST` then names the engine.
pub const DOCKER_GATE_ENV: &str = "PLAYGROUND_TEST_DOCKER";

/// The test images `make-images.sh` builds.
pub const BUSYBOX: &str = "playground-test/busybox:latest";
pub const PYTHON: &str = "playground-test/python:latest";

/// The label naming a container's run.
pub const RUN_LABEL: &str = "playground.run";

/// The grace period a cancelled run gets on the servers of these tests.
pub const CANCEL_GRACE_SECONDS: u64 = 1;

pub const RUN_SELECTION: &str =
    "id status exitCode failureReason attempt programVersion args queuedAt startedAt finishedAt";

/// `plugins/docker/tests/support/<name>`.
pub fn docker_support_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/docker/tests/support")
        .join(name)
}

/// Whether the Docker tests run. When they do not, prints the skip line. When they do, the
/// engine must answer (else the test fails here, loudly) and the test images are built first
/// (once per test process).
pub fn docker_tests_enabled(test: &str) -> bool {
    if std::env::var(DOCKER_GATE_ENV).as_deref() != Ok("1") {
        println!(
            "skipped {test}: set {DOCKER_GATE_ENV}=1 and DOCKER_HOST to run it against a Docker Engine \
             (export DOCKER_HOST=$(plugins/docker/tests/support/start-dockerd.sh))"
        );
        return false;
    }
    prepare_engine_once();
    true
}

/// Checks the engine and runs `make-images.sh`, once per process; every test fails with the
/// same message when that failed.
fn prepare_engine_once() {
    static PREPARED: OnceLock<Result<(), String>> = OnceLock::new();
    let prepared = PREPARED.get_or_init(|| {
        let version = Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .map_err(|e| format!("cannot run the docker command line: {e}"))?;
        if !version.status.success() {
            return Err(format!(
                "{DOCKER_GATE_ENV}=1 but the Docker engine at DOCKER_HOST={:?} does not answer: {}\
                 (start one with: export DOCKER_HOST=$(plugins/docker/tests/support/start-dockerd.sh))",
                std::env::var("DOCKER_HOST").unwrap_or_default(),
                String::from_utf8_lossy(&version.stderr)
            ));
        }
        make_images(None)
    });
    if let Err(message) = prepared {
        panic!("{message}");
    }
}

/// Runs `make-images.sh` against the engine at `host` (default: `DOCKER_HOST`).
pub fn make_images(host: Option<&str>) -> Result<(), String> {
    let script = docker_support_script("make-images.sh");
    let mut command = Command::new("bash");
    command.arg(&script);
    if let Some(host) = host {
        command.env("DOCKER_HOST", host);
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed: {}{}",
            script.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A server that executes Docker runs (on the engine of `DOCKER_HOST`, inherited from the
/// test) and gives cancelled runs a short grace period.
pub fn docker_server() -> TestAppBuilder {
    TestApp::builder()
        .env("PLAYGROUND_DOCKER_CONCURRENCY", 8)
        .env("PLAYGROUND_CANCEL_GRACE_SECONDS", CANCEL_GRACE_SECONDS)
}

/// `docker ARGS` on the engine of `DOCKER_HOST` (or `host`); its stdout, or a panic.
pub fn docker_cli(host: Option<&str>, args: &[&str]) -> String {
    let mut command = Command::new("docker");
    command.args(args);
    if let Some(host) = host {
        command.env("DOCKER_HOST", host);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker {args:?}: {e}"));
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The engine's version as `docker version` reports it.
pub fn engine_version() -> String {
    docker_cli(None, &["version", "--format", "{{.Server.Version}}"])
        .trim()
        .to_owned()
}

/// Ids of the containers (running or not) labelled `playground.run=<run_id>`.
pub fn containers_of_run(run_id: &str) -> Vec<String> {
    let filter = format!("label={RUN_LABEL}={run_id}");
    docker_cli(None, &["ps", "-a", "--filter", &filter, "-q"])
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Fails unless no container of the run is left (waiting at most `limit` for its removal).
pub async fn assert_no_container_of_run(run_id: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let left = containers_of_run(run_id);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "containers of run {run_id} left after {limit:?}: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Force-removes containers when dropped (containers a test made itself).
#[derive(Default)]
pub struct ContainerGuard(pub Vec<String>);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        for id in &self.0 {
            let _ = Command::new("docker")
                .args(["rm", "-f", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Removes images when dropped (the dependency layers a test built).
#[derive(Default)]
pub struct ImageGuard(pub std::sync::Mutex<Vec<String>>);

impl ImageGuard {
    pub fn add(&self, image: String) {
        self.0.lock().unwrap().push(image);
    }
}

impl Drop for ImageGuard {
    fn drop(&mut self) {
        for image in self.0.lock().unwrap().iter() {
            let _ = Command::new("docker")
                .args(["rmi", "-f", image])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A SHELL program of one script `main.sh`; its id.
pub async fn shell_program(app: &TestApp, token: &str, name: &str, script: &str) -> String {
    let input = json!({
        "name": name,
        "runtime": "SHELL",
        "entrypoint": "main.sh",
        "files": [{ "path": "main.sh", "content": script }],
    });
    id_of(&create_program(app, token, input).await)
}

/// A program from `(path, bytes)` files; its id. Files that are not UTF-8 go as base64.
pub async fn program_with_files(
    app: &TestApp,
    token: &str,
    name: &str,
    runtime: &str,
    entrypoint: &str,
    files: &[(String, Vec<u8>)],
) -> String {
    let files: Vec<Value> = files
        .iter()
        .map(|(path, bytes)| match std::str::from_utf8(bytes) {
            Ok(text) => json!({ "path": path, "content": text }),
            Err(_) => json!({ "path": path, "contentBase64": STANDARD.encode(bytes) }),
        })
        .collect();
    let input =
        json!({ "name": name, "runtime": runtime, "entrypoint": entrypoint, "files": files });
    id_of(&create_program(app, token, input).await)
}

/// Polls an environment until its status is `wanted` (failing on any other settled status).
pub async fn wait_environment(
    app: &TestApp,
    token: &str,
    id: &str,
    wanted: &str,
    limit: Duration,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let environment = get_environment(app, token, id).await;
        let status = environment["status"].as_str().unwrap_or_default();
        if status == wanted {
            return environment;
        }
        assert!(
            status == "CREATING" && Instant::now() < deadline,
            "environment {id} is {status}, wanted {wanted} within {limit:?}: {environment}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates a DOCKER environment on `image` with `resources` and waits until it is READY.
pub async fn docker_environment(
    app: &TestApp,
    token: &str,
    image: &str,
    resources: Value,
) -> String {
    let input =
        json!({ "name": "docker", "executor": "DOCKER", "image": image, "resources": resources });
    let id = id_of(&create_environment(app, token, input).await);
    wait_environment(app, token, &id, "READY", Duration::from_secs(30)).await;
    id
}

/// `createRun` with args and environment variables (`[(name, value)]`); the run.
pub async fn start_run(
    app: &TestApp,
    token: &str,
    program: &str,
    environment: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Value {
    let query = format!(
        "mutation($input: CreateRunInput!) {{ createRun(input: $input) {{ {RUN_SELECTION} }} }}"
    );
    let env: Vec<Value> = env
        .iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    let input =
        json!({ "programId": program, "environmentId": environment, "args": args, "env": env });
    app.gql_ok(Some(token), &query, json!({ "input": input }))
        .await["createRun"]
        .clone()
}

pub async fn fetch_run(app: &TestApp, token: &str, id: &str) -> Value {
    let query = format!("query($id: ID!) {{ run(id: $id) {{ {RUN_SELECTION} }} }}");
    app.gql_ok(Some(token), &query, json!({ "id": id })).await["run"].clone()
}

/// Polls until the run has the status (or one of `|`-separated statuses); the run.
pub async fn wait_run(
    app: &TestApp,
    token: &str,
    id: &str,
    wanted: &str,
    limit: Duration,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let run = fetch_run(app, token, id).await;
        let status = run["status"].as_str().unwrap_or_default().to_owned();
        if wanted.split('|').any(|w| w == status) {
            return run;
        }
        if Instant::now() >= deadline {
            let logs = run_logs(app, token, id).await;
            panic!(
                "run {id} is {status}, wanted {wanted} within {limit:?}: {run}\nits log: {}",
                serde_json::to_string_pretty(&logs).unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until the run ended (any terminal status); the run.
pub async fn wait_run_end(app: &TestApp, token: &str, id: &str, limit: Duration) -> Value {
    wait_run(
        app,
        token,
        id,
        "SUCCEEDED|FAILED|CANCELLED|TIMED_OUT",
        limit,
    )
    .await
}

/// Every stored log line of a run (`seq stream line`).
pub async fn run_logs(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let data = app
        .gql_ok(
            Some(token),
            "query($id: ID!) { run(id: $id) { logs(afterSeq: 0, first: 10000) { seq stream line } } }",
            json!({ "id": id }),
        )
        .await;
    data["run"]["logs"].as_array().cloned().unwrap_or_default()
}

/// The lines of one stream (`STDOUT`, `STDERR`, `SYSTEM`).
pub fn lines_of(logs: &[Value], stream: &str) -> Vec<String> {
    logs.iter()
        .filter(|l| l["stream"] == stream)
        .map(|l| l["line"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Seconds from one `DateTime` field to another.
pub fn seconds_between(from: &Value, to: &Value) -> f64 {
    let parse = |v: &Value| -> chrono::DateTime<chrono::Utc> {
        v.as_str()
            .unwrap_or_else(|| panic!("not a DateTime: {v}"))
            .parse()
            .unwrap()
    };
    (parse(to) - parse(from)).num_milliseconds() as f64 / 1000.0
}

/// `/healthz` answers 200.
pub async fn assert_healthy(app: &TestApp) {
    let status = app
        .http()
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET /healthz failed: {e}\n{}", app.stderr()))
        .status();
    assert_eq!(status, 200, "GET /healthz");
}

/// The `executors` entry of `kind`.
pub async fn executor_info(app: &TestApp, token: &str, kind: &str) -> Value {
    let data = app
        .gql_ok(
            Some(token),
            "{ executors { kind available detail } }",
            json!({}),
        )
        .await;
    data["executors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {data}"))
        .clone()
}

/// A name no other test run uses (a Python identifier).
pub fn unique_name(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// A dockerd of one test's own (socket, data and state in a temporary directory, no bridge,
/// no iptables), which the test may stop and start again. Stopped when dropped.
pub struct PrivateDockerd {
    root: TempDir,
    child: Option<Child>,
}

impl PrivateDockerd {
    /// Starts it and waits until it answers.
    pub fn start() -> PrivateDockerd {
        let root = tempfile::Builder::new()
            .prefix("pg-dockerd-")
            .tempdir()
            .expect("a directory for the private dockerd");
        let mut dockerd = PrivateDockerd { root, child: None };
        dockerd.restart();
        dockerd
    }

    /// `unix://<socket>`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.root.path().join("docker.sock").display())
    }

    fn answers(&self) -> bool {
        Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .env("DOCKER_HOST", self.host())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn log(&self) -> String {
        let text =
            std::fs::read_to_string(self.root.path().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Starts the (stopped) dockerd again on the same directories and waits until it answers.
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "the private dockerd is already running"
        );
        let root = self.root.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("dockerd.log"))
            .expect("the private dockerd's log file");
        let _ = std::fs::remove_file(root.join("docker.sock"));
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(self.host())
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("docker.pid"))
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dockerd: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.answers() {
            let exited = self.child.as_mut().unwrap().try_wait().ok().flatten();
            if let Some(status) = exited {
                self.child = None;
                panic!(
                    "the private dockerd exited with {status}; its log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the private dockerd did not answer within 60 s; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, then waits for it to exit (SIGKILL after 40 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        // Killed, it left its containerd running, which would hold the directories.
        let containerd_pid = self.root.path().join("exec/containerd/containerd.pid");
        if let Ok(pid) = std::fs::read_to_string(&containerd_pid) {
            let pid = pid.trim().to_owned();
            if !pid.is_empty()
                && Command::new("kill")
                    .args(["-0", &pid])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
        }
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        self.stop();
    }
}
