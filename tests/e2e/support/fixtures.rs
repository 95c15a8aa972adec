//! Shared GraphQL documents and helpers that create programs, environments and runs, plus the
//! one place that knows what a freshly created (not yet executed) run looks like.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::app::TestApp;

pub const PROGRAM_FIELDS: &str = "id name description tags runtime entrypoint version myPermission createdAt updatedAt owner { id email } files { path size sha256 content contentBase64 }";

pub const ENVIRONMENT_FIELDS: &str = "id name executor image status statusReason config myPermission createdAt owner { id email } resources { memoryMb cpuMillis timeoutSeconds maxLogBytes pids }";

pub const RUN_FIELDS: &str = "id status programVersion exitCode failureReason args attempt queuedAt startedAt finishedAt owner { email } program { id version } environment { id }";

/// A valid one-file Python program.
pub fn program_input(name: &str) -> Value {
    json!({
        "name": name,
        "runtime": "PYTHON",
        "entrypoint": "main.py",
        "files": [{ "path": "main.py", "content": "print('hello')\n" }],
    })
}

pub fn create_program_mutation() -> String {
    format!(
        "mutation($input: CreateProgramInput!) {{ createProgram(input: $input) {{ {PROGRAM_FIELDS} }} }}"
    )
}

/// Creates a program from `input` and returns it.
pub async fn create_program(app: &TestApp, token: &str, input: Value) -> Value {
    let data = app
        .gql_ok(
            Some(token),
            &create_program_mutation(),
            json!({ "input": input }),
        )
        .await;
    data["createProgram"].clone()
}

/// Creates the program `program_input(name)` and returns its id.
pub async fn create_program_named(app: &TestApp, token: &str, name: &str) -> String {
    let program = create_program(app, token, program_input(name)).await;
    id_of(&program)
}

pub async fn get_program(app: &TestApp, token: &str, id: &str) -> Value {
    let query = format!("query($id: ID!) {{ program(id: $id) {{ {PROGRAM_FIELDS} }} }}");
    app.gql_ok(Some(token), &query, json!({ "id": id })).await["program"].clone()
}

/// `programs` with the given arguments (a JSON object of `first`, `after`, `search`, `tag`).
pub async fn list_programs(app: &TestApp, token: &str, args: Value) -> Value {
    let query = "query($first: Int, $after: String, $search: String, $tag: String) { programs(first: $first, after: $after, search: $search, tag: $tag) { totalCount edges { cursor node { id name version tags } } pageInfo { hasNextPage endCursor } } }";
    app.gql_ok(Some(token), query, args).await["programs"].clone()
}

/// A WASM environment input (no image needed).
pub fn wasm_environment_input(name: &str) -> Value {
    json!({ "name": name, "executor": "WASM" })
}

pub fn create_environment_mutation() -> String {
    format!(
        "mutation($input: CreateEnvironmentInput!) {{ createEnvironment(input: $input) {{ {ENVIRONMENT_FIELDS} }} }}"
    )
}

pub async fn create_environment(app: &TestApp, token: &str, input: Value) -> Value {
    let data = app
        .gql_ok(
            Some(token),
            &create_environment_mutation(),
            json!({ "input": input }),
        )
        .await;
    data["createEnvironment"].clone()
}

pub async fn get_environment(app: &TestApp, token: &str, id: &str) -> Value {
    let query = format!("query($id: ID!) {{ environment(id: $id) {{ {ENVIRONMENT_FIELDS} }} }}");
    app.gql_ok(Some(token), &query, json!({ "id": id })).await["environment"].clone()
}

/// Polls `environment(id)` until its status is `status` (at most 5 s) and returns it.
pub async fn wait_environment_status(app: &TestApp, token: &str, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let environment = get_environment(app, token, id).await;
        if environment["status"] == status {
            return environment;
        }
        assert!(
            Instant::now() < deadline,
            "environment {id} did not reach {status} within 5 s: {environment}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates a WASM environment and waits until it is READY; returns its id.
pub async fn create_ready_environment(app: &TestApp, token: &str, name: &str) -> String {
    let environment = create_environment(app, token, wasm_environment_input(name)).await;
    let id = id_of(&environment);
    wait_environment_status(app, token, &id, "READY").await;
    id
}

/// Calls `startEnvironment` / `stopEnvironment` / `deleteEnvironment` (`mutation` names it).
pub async fn environment_mutation(app: &TestApp, token: &str, mutation: &str, id: &str) -> Value {
    let selection = if mutation == "deleteEnvironment" {
        ""
    } else {
        "{ id status }"
    };
    let query = format!("mutation($id: ID!) {{ {mutation}(id: $id) {selection} }}");
    app.gql(Some(token), &query, json!({ "id": id })).await
}

pub fn create_run_mutation() -> String {
    format!("mutation($input: CreateRunInput!) {{ createRun(input: $input) {{ {RUN_FIELDS} }} }}")
}

pub async fn create_run(
    app: &TestApp,
    token: &str,
    program_id: &str,
    environment_id: &str,
) -> Value {
    let input = json!({ "programId": program_id, "environmentId": environment_id, "args": ["--flag", "value with spaces"] });
    let data = app
        .gql_ok(
            Some(token),
            &create_run_mutation(),
            json!({ "input": input }),
        )
        .await;
    let run = data["createRun"].clone();
    assert_run_waiting(&run);
    run
}

pub async fn get_run(app: &TestApp, token: &str, id: &str) -> Value {
    let query = format!("query($id: ID!) {{ run(id: $id) {{ {RUN_FIELDS} }} }}");
    app.gql_ok(Some(token), &query, json!({ "id": id })).await["run"].clone()
}

pub async fn cancel_run(app: &TestApp, token: &str, id: &str) -> Value {
    let query = format!("mutation($id: ID!) {{ cancelRun(id: $id) {{ {RUN_FIELDS} }} }}");
    app.gql_ok(Some(token), &query, json!({ "id": id })).await["cancelRun"].clone()
}

/// What a run that was just created looks like on a server that executes nothing (the test
/// servers' concurrency is 0 unless a test asks for more): QUEUED, attempt 1, not started.
pub fn assert_run_waiting(run: &Value) {
    assert_eq!(run["status"], "QUEUED", "a new run is QUEUED: {run}");
    assert_eq!(run["attempt"], 1, "a new run is attempt 1: {run}");
    assert!(run["queuedAt"].is_string(), "queuedAt is set: {run}");
    assert!(
        run["startedAt"].is_null(),
        "a queued run has not started: {run}"
    );
    assert!(
        run["finishedAt"].is_null(),
        "a queued run has not finished: {run}"
    );
    assert!(
        run["exitCode"].is_null(),
        "a queued run has no exit code: {run}"
    );
}

pub fn id_of(node: &Value) -> String {
    node["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {node}"))
        .to_owned()
}

/// The ids of the nodes of a connection, in order.
pub fn node_ids(connection: &Value) -> Vec<String> {
    connection["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("no edges in {connection}"))
        .iter()
        .map(|edge| id_of(&edge["node"]))
        .collect()
}
