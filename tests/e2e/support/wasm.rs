//! WASM runs for the end-to-end suites: a server that executes them, programs and environments,
//! starting a run, polling it, and reading its log.

use super::*;

const LINES: &str = include_str!("../../fixtures/lines.wat");

// Reading and polling a run is the same whatever executes it.
pub use super::docker::{RUN_SELECTION as RUN, fetch_run as run, wait_run as wait_status};

/// A server that executes runs.
pub fn executing() -> TestAppBuilder {
    TestApp::builder().env("PLAYGROUND_WASM_CONCURRENCY", 16)
}

/// A WAT program printing `n_writes × 4000` lines.
pub fn lines_program(n_writes: u32) -> String {
    LINES.replace("(i32.const 250)", &format!("(i32.const {n_writes})"))
}

pub async fn wasm_program(app: &TestApp, token: &str, name: &str, source: &str) -> String {
    let input = json!({
        "name": name,
        "runtime": "WASM",
        "entrypoint": format!("{name}.wat"),
        "files": [{ "path": format!("{name}.wat"), "content": source }],
    });
    id_of(&create_program(app, token, input).await)
}

pub async fn wasm_environment(app: &TestApp, token: &str, resources: Value) -> String {
    let input = json!({ "name": "wasm", "executor": "WASM", "resources": resources });
    let id = id_of(&create_environment(app, token, input).await);
    wait_environment_status(app, token, &id, "READY").await;
    id
}

pub async fn start_run(
    app: &TestApp,
    token: &str,
    program: &str,
    environment: &str,
    args: Value,
) -> Value {
    let query =
        format!("mutation($input: CreateRunInput!) {{ createRun(input: $input) {{ {RUN} }} }}");
    let input = json!({ "programId": program, "environmentId": environment, "args": args });
    app.gql_ok(Some(token), &query, json!({ "input": input }))
        .await["createRun"]
        .clone()
}

pub async fn logs(app: &TestApp, token: &str, id: &str, after: i64, first: i64) -> Vec<Value> {
    let data = app
        .gql_ok(
            Some(token),
            "query($id: ID!, $after: Int, $first: Int) { run(id: $id) { logs(afterSeq: $after, first: $first) { seq stream line } } }",
            json!({ "id": id, "after": after, "first": first }),
        )
        .await;
    data["run"]["logs"].as_array().unwrap().clone()
}

pub fn lines_of(logs: &[Value], stream: &str) -> Vec<String> {
    logs.iter()
        .filter(|l| l["stream"] == stream)
        .map(|l| l["line"].as_str().unwrap().to_owned())
        .collect()
}
