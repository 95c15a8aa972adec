//! API load benchmark: idle memory of `playground serve`, and the latency of
//! `programs(first: 50)` under 32 concurrent clients, next to `/healthz`
//! under the same load (the floor of the HTTP stack, measured in the same
//! run).
//!
//! Run: `cargo bench -p playground-api --bench api_load`
//! (env: BENCH_CLIENTS, default 32; BENCH_REQUESTS per client, default 200;
//! BENCH_PROGRAMS, default 200).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "support.rs"]
mod support;

use support::{ADMIN_EMAIL, ADMIN_PASSWORD, env_usize, machine, percentiles, start_server};

const PROGRAMS_QUERY: &str = "query { programs(first: 50) { totalCount edges { cursor node { id name description tags runtime entrypoint version myPermission owner { email } updatedAt } } pageInfo { hasNextPage endCursor } } }";

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn gql(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let mut request = client
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let body: Value = request
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(body.get("errors").is_none(), "GraphQL errors: {body}");
    body["data"].clone()
}

struct Stats {
    n: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Stats {
    fn line(&self, name: &str) -> String {
        format!(
            "| {name} | {} | {:.0} | {:.2} | {:.2} |",
            self.n,
            self.n as f64 / self.seconds,
            self.p50_ms,
            self.p99_ms
        )
    }
}

async fn load(
    base: &str,
    token: &str,
    clients: usize,
    per_client: usize,
    kind: &'static str,
) -> Stats {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let base = base.to_owned();
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                let t0 = Instant::now();
                if kind == "programs" {
                    let data = gql(&client, &base, Some(&token), PROGRAMS_QUERY, json!({})).await;
                    assert_eq!(data["programs"]["edges"].as_array().map(Vec::len), Some(50));
                } else {
                    let status = client
                        .get(format!("{base}/healthz"))
                        .send()
                        .await
                        .expect("healthz")
                        .status();
                    assert!(status.is_success());
                }
                latencies.push(t0.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("client task"));
    }
    let seconds = started.elapsed().as_secs_f64();
    let n = all.len();
    let (p50, p99) = percentiles(all.iter().map(|d| d.as_secs_f64() * 1e3).collect());
    Stats {
        n,
        seconds,
        p50_ms: p50,
        p99_ms: p99,
    }
}

#[tokio::main]
async fn main() {
    let clients = env_usize("BENCH_CLIENTS", 32);
    let per_client = env_usize("BENCH_REQUESTS", 200);
    let n_programs = env_usize("BENCH_PROGRAMS", 200);

    let server = start_server(&[]);
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = rss_kib(server.child.id());

    let client = reqwest::Client::new();
    let login = gql(
        &client,
        &server.base,
        None,
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
        json!({ "e": ADMIN_EMAIL, "p": ADMIN_PASSWORD }),
    )
    .await;
    let token = login["login"]["token"].as_str().expect("token").to_owned();
    for i in 0..n_programs {
        gql(
            &client,
            &server.base,
            Some(&token),
            "mutation($i: CreateProgramInput!) { createProgram(input: $i) { id } }",
            json!({ "i": {
                "name": format!("program {i}"),
                "description": "a benchmark program",
                "tags": ["bench", format!("t{}", i % 10)],
                "runtime": "PYTHON",
                "entrypoint": "main.py",
                "files": [{ "path": "main.py", "content": format!("print({i})\n") }],
            }}),
        )
        .await;
    }

    // Warm up, then measure.
    load(&server.base, &token, clients, 10, "programs").await;
    let healthz = load(&server.base, &token, clients, per_client, "healthz").await;
    let programs = load(&server.base, &token, clients, per_client, "programs").await;
    let loaded_rss = rss_kib(server.child.id());

    println!("machine: {}", machine());
    println!(
        "idle RSS after start: {:.1} MiB; after the load: {:.1} MiB",
        idle_rss as f64 / 1024.0,
        loaded_rss as f64 / 1024.0
    );
    println!(
        "{clients} concurrent clients, {per_client} requests each, {n_programs} programs in SQLite"
    );
    println!("| request | n | requests/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    println!("{}", programs.line("programs(first: 50)"));
    println!("{}", healthz.line("GET /healthz (floor)"));
}
