//! Docker run latency through the API against the `docker` CLI, measured in
//! the same run on the same engine and image:
//!
//! - one at a time: createRun → SUCCEEDED (seen by a `runStatus`
//!   subscriber) of a SHELL program running `true`, against
//!   `docker run --rm --network none IMAGE true`, and against the engine's
//!   floor: the same container made by three API calls (create, start,
//!   wait for the exit code) with no API server, no database and no CLI;
//!   alternating, median of `BENCH_N` each;
//! - 20 at once: wall time until all 20 have ended, the three ways.
//!
//! Run: `DOCKER_HOST=… cargo bench -p playground-api --bench docker_runs`
//! (`plugins/docker/tests/support/start-dockerd.sh` starts an engine and
//! prints its DOCKER_HOST; the image is built from the host's busybox by
//! `plugins/docker/tests/support/make-images.sh`).
//! Env: BENCH_N (default 15), BENCH_CONCURRENT (default 20).

use std::process::Command;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[path = "support.rs"]
mod support;

use support::{ADMIN_EMAIL, ADMIN_PASSWORD, env_usize, machine, start_server};

const IMAGE: &str = "playground-test/busybox:latest";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

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

    async fn create_run(&self, program: &str, environment: &str) -> String {
        let data = self
            .gql(
                "mutation($p: ID!, $e: ID!) { createRun(input: { programId: $p, environmentId: $e }) { id } }",
                json!({ "p": program, "e": environment }),
            )
            .await;
        data["createRun"]["id"].as_str().unwrap().to_owned()
    }

    async fn socket(&self) -> Socket {
        let url = format!("{}/graphql/ws", self.base.replacen("http", "ws", 1));
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {}", self.token) } });
        socket
            .send(Message::Text(init.to_string().into()))
            .await
            .unwrap();
        loop {
            if let Some(Ok(Message::Text(text))) = socket.next().await
                && text.contains("connection_ack")
            {
                return socket;
            }
        }
    }
}

/// Waits on `socket` for the run's terminal status and returns it.
async fn terminal_status(socket: &mut Socket, subscription: &str, run: &str) -> String {
    let subscribe = json!({ "id": subscription, "type": "subscribe", "payload": { "query": "subscription($r: ID!) { runStatus(runId: $r) { status failureReason } }", "variables": { "r": run } } });
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    let mut last = String::new();
    while let Some(message) = socket.next().await {
        let Message::Text(text) = message.unwrap() else {
            continue;
        };
        let value: Value = serde_json::from_str(&text).unwrap();
        match value["type"].as_str() {
            Some("next") => {
                let status = &value["payload"]["data"]["runStatus"];
                last = status["status"].as_str().unwrap().to_owned();
                if last != "SUCCEEDED"
                    && matches!(last.as_str(), "FAILED" | "CANCELLED" | "TIMED_OUT")
                {
                    panic!("run {run} ended {last}: {status}");
                }
            }
            Some("complete") => return last,
            Some("ping") | Some("pong") => {}
            other => panic!("unexpected message {other:?}: {text}"),
        }
    }
    panic!("the WebSocket closed before run {run} ended");
}

async fn api_run(client: &Client, socket: &mut Socket, program: &str, environment: &str) -> f64 {
    let started = Instant::now();
    let run = client.create_run(program, environment).await;
    let status = terminal_status(socket, &run, &run).await;
    assert_eq!(status, "SUCCEEDED");
    started.elapsed().as_secs_f64()
}

fn cli_run() -> f64 {
    let started = Instant::now();
    let status = Command::new("docker")
        .args(["run", "--rm", "--network", "none", IMAGE, "true"])
        .status()
        .expect("run the docker CLI");
    assert!(status.success(), "docker run failed");
    started.elapsed().as_secs_f64()
}

/// The least any client of the engine does to run `true` and learn its
/// exit code: create, start, wait. (Removing it is left out, as the API
/// removes its containers after the run has ended.)
async fn engine_run(docker: &bollard::Docker) -> f64 {
    use bollard::models::{ContainerCreateBody, HostConfig};
    let started = Instant::now();
    let body = ContainerCreateBody {
        image: Some(IMAGE.to_owned()),
        cmd: Some(vec!["true".to_owned()]),
        host_config: Some(HostConfig {
            network_mode: Some("none".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker.create_container(None, body).await.unwrap().id;
    docker.start_container(&id, None).await.unwrap();
    let mut wait = docker.wait_container(&id, None);
    while let Some(exit) = wait.next().await {
        assert_eq!(exit.unwrap().status_code, 0);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let options = bollard::query_parameters::RemoveContainerOptionsBuilder::new()
        .force(true)
        .build();
    docker.remove_container(&id, Some(options)).await.unwrap();
    elapsed
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn engine_version() -> String {
    let output = Command::new("docker")
        .args([
            "version",
            "--format",
            "{{.Server.Version}} (API {{.Server.APIVersion}})",
        ])
        .output()
        .expect("run the docker CLI");
    assert!(
        output.status.success(),
        "no Docker engine answers (set DOCKER_HOST; plugins/docker/tests/support/start-dockerd.sh starts one): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::main]
async fn main() {
    let n = env_usize("BENCH_N", 15);
    let n_concurrent = env_usize("BENCH_CONCURRENT", 20);
    let engine = engine_version();
    let images = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugins/docker/tests/support/make-images.sh"
    );
    let made = Command::new(images).status().expect("run make-images.sh");
    assert!(made.success(), "make-images.sh failed");

    let server = start_server(&[(
        "PLAYGROUND_DOCKER_CONCURRENCY",
        n_concurrent.max(8).to_string(),
    )]);
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{}/graphql", server.base))
        .json(&json!({ "query": "mutation($e:String!,$p:String!){login(email:$e,password:$p){token}}", "variables": {"e": ADMIN_EMAIL, "p": ADMIN_PASSWORD} }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client = Client {
        http,
        base: server.base.clone(),
        token: login["data"]["login"]["token"].as_str().unwrap().to_owned(),
    };
    let program = client
        .gql(
            "mutation($i: CreateProgramInput!) { createProgram(input: $i) { id } }",
            json!({ "i": { "name": "true", "runtime": "SHELL", "entrypoint": "true.sh", "files": [{ "path": "true.sh", "content": "true\n" }] } }),
        )
        .await["createProgram"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let environment = client
        .gql(
            "mutation($i: CreateEnvironmentInput!) { createEnvironment(input: $i) { id } }",
            json!({ "i": { "name": "bench", "executor": "DOCKER", "image": IMAGE } }),
        )
        .await["createEnvironment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    loop {
        let data = client
            .gql(
                "query($id: ID!) { environment(id: $id) { status statusReason } }",
                json!({ "id": environment }),
            )
            .await;
        match data["environment"]["status"].as_str() {
            Some("READY") => break,
            Some("CREATING") => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("environment not ready: {other:?} {}", data["environment"]),
        }
    }

    println!("machine: {}", machine());
    println!("engine: Docker {engine}");

    let docker = bollard::Docker::connect_with_defaults()
        .expect("connect to the engine")
        .negotiate_version()
        .await
        .expect("negotiate the engine's API version");

    // Warm the three paths up, then alternate them.
    let mut socket = client.socket().await;
    for _ in 0..2 {
        api_run(&client, &mut socket, &program, &environment).await;
        cli_run();
        engine_run(&docker).await;
    }
    let mut api = Vec::new();
    let mut cli = Vec::new();
    let mut engine = Vec::new();
    for _ in 0..n {
        api.push(api_run(&client, &mut socket, &program, &environment).await);
        cli.push(tokio::task::spawn_blocking(cli_run).await.unwrap());
        engine.push(engine_run(&docker).await);
    }
    let (api_median, cli_median, engine_median) = (median(api), median(cli), median(engine));

    // n_concurrent at once.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..n_concurrent {
        let client = Client {
            http: client.http.clone(),
            base: client.base.clone(),
            token: client.token.clone(),
        };
        let (program, environment) = (program.clone(), environment.clone());
        tasks.push(tokio::spawn(async move {
            let mut socket = client.socket().await;
            api_run(&client, &mut socket, &program, &environment).await
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let api_concurrent = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let processes: Vec<_> = (0..n_concurrent)
        .map(|_| {
            Command::new("docker")
                .args(["run", "--rm", "--network", "none", IMAGE, "true"])
                .spawn()
                .expect("run the docker CLI")
        })
        .collect();
    for mut process in processes {
        assert!(process.wait().unwrap().success());
    }
    let cli_concurrent = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let runs: Vec<_> = (0..n_concurrent).map(|_| engine_run(&docker)).collect();
    futures::future::join_all(runs).await;
    let engine_concurrent = started.elapsed().as_secs_f64();

    println!("\n`true` in {IMAGE}, median of {n} each, alternating");
    println!("| path | one run, median ms | {n_concurrent} at once, total s |");
    println!("|---|---|---|");
    println!(
        "| API: createRun → SUCCEEDED (runStatus) | {:.1} | {api_concurrent:.2} |",
        api_median * 1e3
    );
    println!(
        "| `docker run --rm --network none` | {:.1} | {cli_concurrent:.2} |",
        cli_median * 1e3
    );
    println!(
        "| engine floor: create, start, wait (no server, no CLI) | {:.1} | {engine_concurrent:.2} |",
        engine_median * 1e3
    );
    println!(
        "ratio API / CLI: {:.2} one at a time, {:.2} at once",
        api_median / cli_median,
        api_concurrent / cli_concurrent
    );
    println!(
        "ratio engine floor / CLI: {:.2} one at a time, {:.2} at once",
        engine_median / cli_median,
        engine_concurrent / cli_concurrent
    );
}
