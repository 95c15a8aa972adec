//! The authorization matrix: every query, mutation and subscription × every kind of caller
//! → allowed, hidden (`null` / not listed / `NOT_FOUND`), `FORBIDDEN` or `UNAUTHENTICATED`,
//! from one table ([`ROWS`]). The table must name exactly the served schema's root fields, so
//! a new operation without a row (or a row of an operation that is gone) fails the test.
//!
//! The callers, against one developer's ("owner") program, environment and run:
//! - anonymous: no token;
//! - viewer: a VIEWER holding ADMIN on the owner's program and environment (the role caps the
//!   grant: it reads, and sees the program's runs, but changes nothing);
//! - owner: the developer who created them;
//! - VIEW / EXECUTE / EDIT / ADMIN: developers holding that grant on the program and the
//!   environment (given with `shareAsset`);
//! - none: a developer holding no grant;
//! - admin: a global admin.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Persona {
    Anonymous,
    Viewer,
    Owner,
    GrantView,
    GrantExecute,
    GrantEdit,
    GrantAdmin,
    NoGrant,
    Admin,
}

/// The table's columns, in order.
const PERSONAS: [Persona; 9] = [
    Persona::Anonymous,
    Persona::Viewer,
    Persona::Owner,
    Persona::GrantView,
    Persona::GrantExecute,
    Persona::GrantEdit,
    Persona::GrantAdmin,
    Persona::NoGrant,
    Persona::Admin,
];

impl Persona {
    fn email(self) -> Option<&'static str> {
        Some(match self {
            Persona::Anonymous => return None,
            Persona::Viewer => "matrix-viewer@example.com",
            Persona::Owner => "matrix-owner@example.com",
            Persona::GrantView => "matrix-view@example.com",
            Persona::GrantExecute => "matrix-execute@example.com",
            Persona::GrantEdit => "matrix-edit@example.com",
            Persona::GrantAdmin => "matrix-admin-grant@example.com",
            Persona::NoGrant => "matrix-no-grant@example.com",
            Persona::Admin => ADMIN_EMAIL,
        })
    }

    /// The grant the persona holds on the owner's program and environment (and on the fresh
    /// ones made for its destructive cells).
    fn grant(self) -> Option<&'static str> {
        match self {
            Persona::Viewer | Persona::GrantAdmin => Some("ADMIN"),
            Persona::GrantView => Some("VIEW"),
            Persona::GrantExecute => Some("EXECUTE"),
            Persona::GrantEdit => Some("EDIT"),
            _ => None,
        }
    }
}

/// The user a share / unshare cell grants to and takes from: nobody whose cells matter.
const BYSTANDER: &str = "matrix-bystander@example.com";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The operation works: no error, a value (for a list: the owner's object is listed).
    Allow,
    /// The object is invisible: `null`, not listed, or `NOT_FOUND`.
    Hidden,
    /// `FORBIDDEN`.
    Forbidden,
    /// `UNAUTHENTICATED`.
    Unauthenticated,
}

const A: Outcome = Outcome::Allow;
const H: Outcome = Outcome::Hidden;
const F: Outcome = Outcome::Forbidden;
const U: Outcome = Outcome::Unauthenticated;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Root {
    Query,
    Mutation,
    Subscription,
}

struct Row {
    root: Root,
    name: &'static str,
    expect: [Outcome; 9],
}

const fn q(name: &'static str, expect: [Outcome; 9]) -> Row {
    Row {
        root: Root::Query,
        name,
        expect,
    }
}

const fn m(name: &'static str, expect: [Outcome; 9]) -> Row {
    Row {
        root: Root::Mutation,
        name,
        expect,
    }
}

const fn s(name: &'static str, expect: [Outcome; 9]) -> Row {
    Row {
        root: Root::Subscription,
        name,
        expect,
    }
}

/// The matrix. Object operations act on the owner's objects (fresh ones where the operation
/// destroys or moves them); a run is visible to its owner, global admins and holders of ADMIN
/// on its program (here: the viewer and the ADMIN grantee), and only the first two may cancel
/// or retry it.
#[rustfmt::skip]
const ROWS: &[Row] = &[
    //                          anon viewer owner VIEW EXEC EDIT ADMIN none admin
    q("me",                     [U,  A,     A,    A,   A,   A,   A,    A,   A]),
    q("executors",              [U,  A,     A,    A,   A,   A,   A,    A,   A]),
    q("programs",               [U,  A,     A,    A,   A,   A,   A,    H,   A]),
    q("program",                [U,  A,     A,    A,   A,   A,   A,    H,   A]),
    q("environments",           [U,  A,     A,    A,   A,   A,   A,    H,   A]),
    q("environment",            [U,  A,     A,    A,   A,   A,   A,    H,   A]),
    q("runs",                   [U,  A,     A,    H,   H,   H,   A,    H,   A]),
    q("run",                    [U,  A,     A,    H,   H,   H,   A,    H,   A]),
    q("credentials",            [U,  F,     A,    A,   A,   A,   A,    A,   A]),
    q("users",                  [U,  F,     F,    F,   F,   F,   F,    F,   A]),
    q("apiTokens",              [U,  A,     A,    A,   A,   A,   A,    A,   A]),
    q("auditEvents",            [U,  F,     F,    F,   F,   F,   F,    F,   A]),
    m("login",                  [A,  A,     A,    A,   A,   A,   A,    A,   A]),
    m("createUser",             [U,  F,     F,    F,   F,   F,   F,    F,   A]),
    m("createApiToken",         [U,  A,     A,    A,   A,   A,   A,    A,   A]),
    m("revokeApiToken",         [U,  H,     A,    H,   H,   H,   H,    H,   A]),
    m("createProgram",          [U,  F,     A,    A,   A,   A,   A,    A,   A]),
    m("updateProgram",          [U,  F,     A,    F,   F,   A,   A,    H,   A]),
    m("deleteProgram",          [U,  F,     A,    F,   F,   F,   A,    H,   A]),
    m("createEnvironment",      [U,  F,     A,    A,   A,   A,   A,    A,   A]),
    m("startEnvironment",       [U,  F,     A,    F,   F,   A,   A,    H,   A]),
    m("stopEnvironment",        [U,  F,     A,    F,   F,   A,   A,    H,   A]),
    m("deleteEnvironment",      [U,  F,     A,    F,   F,   F,   A,    H,   A]),
    m("createRun",              [U,  F,     A,    F,   A,   A,   A,    H,   A]),
    m("cancelRun",              [U,  F,     A,    H,   H,   H,   F,    H,   A]),
    m("retryRun",               [U,  F,     A,    H,   H,   H,   F,    H,   A]),
    m("shareAsset",             [U,  F,     A,    F,   F,   F,   A,    H,   A]),
    m("unshareAsset",           [U,  F,     A,    F,   F,   F,   A,    H,   A]),
    m("createCredential",       [U,  F,     A,    A,   A,   A,   A,    A,   A]),
    m("deleteCredential",       [U,  H,     A,    H,   H,   H,   H,    H,   A]),
    s("runStatus",              [U,  A,     A,    H,   H,   H,   A,    H,   A]),
    s("runLogs",                [U,  A,     A,    H,   H,   H,   A,    H,   A]),
];

/// One request of a cell: its document and variables; `listed` names the id that an allowed
/// list must contain (and a hidden one must not).
struct Request {
    query: String,
    variables: Value,
    listed: Option<String>,
}

fn request(query: &str, variables: Value) -> Request {
    Request {
        query: query.to_owned(),
        variables,
        listed: None,
    }
}

fn listing(query: &str, id: &str) -> Request {
    Request {
        query: query.to_owned(),
        variables: json!({}),
        listed: Some(id.to_owned()),
    }
}

/// Everyone's tokens and the owner's objects every cell shares.
struct Fixture {
    tokens: Vec<Option<String>>,
    program_id: String,
    environment_id: String,
    /// An ended (cancelled) run of the owner's program in the owner's environment.
    run_id: String,
}

impl Fixture {
    fn token(&self, persona: Persona) -> Option<&str> {
        let index = PERSONAS.iter().position(|p| *p == persona).unwrap();
        self.tokens[index].as_deref()
    }

    fn owner(&self) -> &str {
        self.token(Persona::Owner).unwrap()
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

const SHARE: &str = "mutation($asset: ID!, $email: String!, $permission: Permission!) { shareAsset(assetId: $asset, userEmail: $email, permission: $permission) }";
const UNSHARE: &str =
    "mutation($asset: ID!, $email: String!) { unshareAsset(assetId: $asset, userEmail: $email) }";

async fn share(app: &TestApp, token: &str, asset: &str, email: &str, permission: &str) {
    let data = app
        .gql_ok(
            Some(token),
            SHARE,
            json!({ "asset": asset, "email": email, "permission": permission }),
        )
        .await;
    assert_eq!(data["shareAsset"], true);
}

/// Shares an asset of the owner with `persona` at the persona's grant, if it holds one.
async fn share_with(app: &TestApp, fx: &Fixture, asset: &str, persona: Persona) {
    if let (Some(email), Some(grant)) = (persona.email(), persona.grant()) {
        share(app, fx.owner(), asset, email, grant).await;
    }
}

async fn fresh_program(app: &TestApp, fx: &Fixture, persona: Persona) -> String {
    let id = create_program_named(app, fx.owner(), &unique("matrix-program-")).await;
    share_with(app, fx, &id, persona).await;
    id
}

async fn fresh_environment(app: &TestApp, fx: &Fixture, persona: Persona) -> String {
    let id = create_ready_environment(app, fx.owner(), &unique("matrix-env-")).await;
    share_with(app, fx, &id, persona).await;
    id
}

/// The requests of one cell; every one of them must have the cell's outcome.
async fn requests(app: &TestApp, fx: &Fixture, name: &str, persona: Persona) -> Vec<Request> {
    let program = json!({ "id": fx.program_id });
    let run = json!({ "id": fx.run_id });
    let one = |query: &str, variables: Value| vec![request(query, variables)];
    match name {
        "me" => one("{ me { id } }", json!({})),
        "executors" => one("{ executors { kind available } }", json!({})),
        "programs" => vec![listing(
            "{ programs(first: 100) { edges { node { id } } } }",
            &fx.program_id,
        )],
        "program" => one(
            "query($id: ID!) { program(id: $id) { id myPermission files { path } } }",
            program,
        ),
        "environments" => vec![listing(
            "{ environments(first: 100) { edges { node { id } } } }",
            &fx.environment_id,
        )],
        "environment" => one(
            "query($id: ID!) { environment(id: $id) { id myPermission config } }",
            json!({ "id": fx.environment_id }),
        ),
        "runs" => vec![listing(
            "{ runs(first: 100) { edges { node { id } } } }",
            &fx.run_id,
        )],
        "run" => one(
            "query($id: ID!) { run(id: $id) { id status program { id } environment { id } logs { seq } } }",
            run,
        ),
        "credentials" => one("{ credentials { id } }", json!({})),
        "users" => one("{ users { id } }", json!({})),
        "apiTokens" => one("{ apiTokens { id } }", json!({})),
        "auditEvents" => one("{ auditEvents(first: 1) { totalCount } }", json!({})),
        "login" => {
            let (email, password) = match persona {
                Persona::Admin => (ADMIN_EMAIL, ADMIN_PASSWORD),
                Persona::Anonymous => (Persona::Owner.email().unwrap(), USER_PASSWORD),
                other => (other.email().unwrap(), USER_PASSWORD),
            };
            one(
                "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token } }",
                json!({ "email": email, "password": password }),
            )
        }
        "createUser" => one(
            "mutation($email: String!) { createUser(email: $email, password: \"password-123\", role: VIEWER) { id } }",
            json!({ "email": format!("{}@example.com", unique("matrix-new-")) }),
        ),
        "createApiToken" => one(
            "mutation($name: String!) { createApiToken(name: $name) { token } }",
            json!({ "name": unique("matrix-token-") }),
        ),
        "revokeApiToken" => {
            let data = app
                .gql_ok(
                    Some(fx.owner()),
                    "mutation($name: String!) { createApiToken(name: $name) { apiToken { id } } }",
                    json!({ "name": unique("matrix-token-") }),
                )
                .await;
            let id = id_of(&data["createApiToken"]["apiToken"]);
            one(
                "mutation($id: ID!) { revokeApiToken(id: $id) }",
                json!({ "id": id }),
            )
        }
        "createProgram" => one(
            "mutation($input: CreateProgramInput!) { createProgram(input: $input) { id } }",
            json!({ "input": program_input(&unique("matrix-created-")) }),
        ),
        "updateProgram" => one(
            "mutation($id: ID!, $description: String!) { updateProgram(id: $id, input: { description: $description }) { id } }",
            json!({ "id": fx.program_id, "description": unique("changed by the matrix ") }),
        ),
        "deleteProgram" => one(
            "mutation($id: ID!) { deleteProgram(id: $id) }",
            json!({ "id": fresh_program(app, fx, persona).await }),
        ),
        "createEnvironment" => one(
            "mutation($input: CreateEnvironmentInput!) { createEnvironment(input: $input) { id } }",
            json!({ "input": wasm_environment_input(&unique("matrix-created-env-")) }),
        ),
        "startEnvironment" | "stopEnvironment" => one(
            &format!("mutation($id: ID!) {{ {name}(id: $id) {{ id status }} }}"),
            json!({ "id": fresh_environment(app, fx, persona).await }),
        ),
        "deleteEnvironment" => one(
            "mutation($id: ID!) { deleteEnvironment(id: $id) }",
            json!({ "id": fresh_environment(app, fx, persona).await }),
        ),
        "createRun" => one(
            "mutation($input: CreateRunInput!) { createRun(input: $input) { id } }",
            json!({ "input": { "programId": fx.program_id, "environmentId": fx.environment_id } }),
        ),
        "cancelRun" => {
            let queued = create_run(app, fx.owner(), &fx.program_id, &fx.environment_id).await;
            one(
                "mutation($id: ID!) { cancelRun(id: $id) { id status } }",
                json!({ "id": id_of(&queued) }),
            )
        }
        "retryRun" => one("mutation($id: ID!) { retryRun(id: $id) { id } }", run),
        "shareAsset" | "unshareAsset" => {
            let mut requests = Vec::new();
            for asset in [&fx.program_id, &fx.environment_id] {
                if name == "shareAsset" {
                    requests.push(request(
                        SHARE,
                        json!({ "asset": asset, "email": BYSTANDER, "permission": "VIEW" }),
                    ));
                } else {
                    // Something to take away.
                    share(app, fx.owner(), asset, BYSTANDER, "VIEW").await;
                    requests.push(request(
                        UNSHARE,
                        json!({ "asset": asset, "email": BYSTANDER }),
                    ));
                }
            }
            requests
        }
        "createCredential" => one(
            "mutation($name: String!) { createCredential(name: $name, value: \"s3cret\") { id } }",
            json!({ "name": unique("MATRIX_SECRET_") }),
        ),
        "deleteCredential" => {
            let data = app
                .gql_ok(
                    Some(fx.owner()),
                    "mutation($name: String!) { createCredential(name: $name, value: \"s3cret\") { id } }",
                    json!({ "name": unique("MATRIX_SECRET_") }),
                )
                .await;
            one(
                "mutation($id: ID!) { deleteCredential(id: $id) }",
                json!({ "id": id_of(&data["createCredential"]) }),
            )
        }
        "runStatus" => one(
            "subscription($id: ID!) { runStatus(runId: $id) { runId status } }",
            run,
        ),
        "runLogs" => one(
            "subscription($id: ID!) { runLogs(runId: $id) { seq line } }",
            run,
        ),
        other => panic!("no request for the operation {other}: add one to matrix::requests"),
    }
}

/// The outcome an error code stands for.
fn outcome_of_code(code: &str) -> Result<Outcome, String> {
    match code {
        "UNAUTHENTICATED" => Ok(U),
        "FORBIDDEN" => Ok(F),
        "NOT_FOUND" => Ok(H),
        other => Err(format!("unexpected error code {other:?}")),
    }
}

/// The outcome of a response to `request` on the root field `name`.
fn outcome_of(name: &str, request: &Request, response: &Value) -> Result<Outcome, String> {
    if let Some(error) = response["errors"].as_array().and_then(|e| e.first()) {
        return outcome_of_code(error["extensions"]["code"].as_str().unwrap_or(""))
            .map_err(|why| format!("{why}: {error}"));
    }
    let value = &response["data"][name];
    if value.is_null() {
        return Ok(H);
    }
    match &request.listed {
        None => Ok(A),
        Some(id) => {
            let listed = value["edges"]
                .as_array()
                .ok_or_else(|| format!("no edges in {value}"))?
                .iter()
                .any(|edge| edge["node"]["id"] == id.as_str());
            Ok(if listed { A } else { H })
        }
    }
}

/// Subscribes over `graphql-transport-ws` and judges the first event: a result without
/// errors (or, for a stream with nothing to send, its end) is allowed.
async fn subscription_outcome(
    app: &TestApp,
    token: Option<&str>,
    request: &Request,
) -> Result<Outcome, String> {
    let mut client = match token {
        Some(token) => WsClient::connect_with_token(app, WsProtocol::TransportWs, token).await,
        None => {
            let mut client = WsClient::connect(app, WsProtocol::TransportWs).await;
            client
                .init(json!({}))
                .await
                .map_err(|event| format!("anonymous connection_init refused: {event:?}"))?;
            client
        }
    };
    client
        .subscribe("cell", &request.query, request.variables.clone())
        .await;
    match client.next_event().await {
        WsEvent::Next(payload) => match payload["errors"].as_array().and_then(|e| e.first()) {
            Some(error) => outcome_of_code(error["extensions"]["code"].as_str().unwrap_or(""))
                .map_err(|why| format!("{why}: {error}")),
            None => Ok(A),
        },
        WsEvent::Complete => Ok(A),
        WsEvent::Error(payload) => {
            let error = payload
                .as_array()
                .and_then(|e| e.first())
                .cloned()
                .unwrap_or(payload);
            outcome_of_code(error["extensions"]["code"].as_str().unwrap_or(""))
                .map_err(|why| format!("{why}: {error}"))
        }
        other => Err(format!("unexpected WebSocket event {other:?}")),
    }
}

/// The root fields of the served schema.
async fn served_operations(app: &TestApp, token: &str) -> BTreeSet<(Root, String)> {
    let data = app
        .gql_ok(
            Some(token),
            "{ __schema { queryType { fields { name } } mutationType { fields { name } } subscriptionType { fields { name } } } }",
            json!({}),
        )
        .await;
    let mut served = BTreeSet::new();
    for (root, key) in [
        (Root::Query, "queryType"),
        (Root::Mutation, "mutationType"),
        (Root::Subscription, "subscriptionType"),
    ] {
        let fields = data["__schema"][key]["fields"]
            .as_array()
            .unwrap_or_else(|| panic!("no {key} fields in {data}"));
        for field in fields {
            served.insert((root, field["name"].as_str().unwrap().to_owned()));
        }
    }
    served
}

async fn setup(app: &TestApp) -> Fixture {
    let mut tokens = Vec::new();
    for persona in PERSONAS {
        tokens.push(match persona {
            Persona::Anonymous => None,
            Persona::Admin => Some(app.admin_token().await),
            Persona::Viewer => Some(app.create_user(persona.email().unwrap(), "VIEWER").await),
            other => Some(app.create_user(other.email().unwrap(), "DEVELOPER").await),
        });
    }
    app.create_user(BYSTANDER, "DEVELOPER").await;
    let mut fx = Fixture {
        tokens,
        program_id: String::new(),
        environment_id: String::new(),
        run_id: String::new(),
    };
    let owner = fx.owner().to_owned();
    fx.program_id = create_program_named(app, &owner, "matrix-program").await;
    fx.environment_id = create_ready_environment(app, &owner, "matrix-env").await;
    let run = create_run(app, &owner, &fx.program_id, &fx.environment_id).await;
    fx.run_id = id_of(&run);
    cancel_run(app, &owner, &fx.run_id).await;
    for persona in PERSONAS {
        share_with(app, &fx, &fx.program_id, persona).await;
        share_with(app, &fx, &fx.environment_id, persona).await;
    }
    fx
}

e2e_test!(every_operation_for_every_caller, |app| async move {
    let admin = app.admin_token().await;

    // The table names exactly the served operations.
    let served = served_operations(&app, &admin).await;
    let mut tabled = BTreeSet::new();
    for row in ROWS {
        assert!(
            tabled.insert((row.root, row.name.to_owned())),
            "two rows for {:?} {}",
            row.root,
            row.name
        );
    }
    let missing: Vec<_> = served.difference(&tabled).collect();
    let stale: Vec<_> = tabled.difference(&served).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "the authorization matrix must have one row per served operation\n\
         operations without a row (add one to matrix::ROWS): {missing:?}\n\
         rows of operations not served (remove them): {stale:?}"
    );

    let fx = setup(&app).await;
    let mut failures = Vec::new();
    for row in ROWS {
        for (persona, expected) in PERSONAS.iter().zip(row.expect) {
            let token = fx.token(*persona);
            for request in requests(&app, &fx, row.name, *persona).await {
                let actual = if row.root == Root::Subscription {
                    subscription_outcome(&app, token, &request).await
                } else {
                    let response = app
                        .gql(token, &request.query, request.variables.clone())
                        .await;
                    outcome_of(row.name, &request, &response)
                        .map_err(|why| format!("{why} (response {response})"))
                };
                match actual {
                    Ok(actual) if actual == expected => {}
                    Ok(actual) => failures.push(format!(
                        "{} × {persona:?}: expected {expected:?}, got {actual:?} (variables {})",
                        row.name, request.variables
                    )),
                    Err(why) => failures.push(format!("{} × {persona:?}: {why}", row.name)),
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cell(s) of the authorization matrix differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
});

const RUN_ASSETS: &str = "query($id: ID!) { run(id: $id) { id program { id name files { path } } environment { id name image config statusReason } } }";

// Who may see a run sees which program and environment it used, but not the files of a
// program or the settings of an environment it may not view itself.
e2e_test!(
    a_run_shows_only_the_assets_the_caller_may_view,
    |app| async move {
        let owner = app.create_user("owner@example.com", "DEVELOPER").await;
        let program_admin = app
            .create_user("program-admin@example.com", "DEVELOPER")
            .await;
        let runner = app.create_user("runner@example.com", "DEVELOPER").await;

        // A private environment whose config names a path on the server.
        let dir = tempfile::tempdir().expect("a temporary directory");
        let module = dir.path().join("python.wasm");
        std::fs::write(&module, b"\0asm\x01\0\0\0").expect("write an empty WASM module");
        let module = module.to_str().unwrap().to_owned();
        let environment = create_environment(
            &app,
            &owner,
            json!({ "name": "private", "executor": "WASM", "config": { "pythonWasm": module } }),
        )
        .await;
        let environment_id = id_of(&environment);
        wait_environment_status(&app, &owner, &environment_id, "READY").await;
        let program_id = create_program_named(&app, &owner, "shared").await;
        share(
            &app,
            &owner,
            &program_id,
            "program-admin@example.com",
            "ADMIN",
        )
        .await;
        let run_id = id_of(&create_run(&app, &owner, &program_id, &environment_id).await);

        // The owner sees everything.
        let seen = app
            .gql_ok(Some(&owner), RUN_ASSETS, json!({ "id": run_id }))
            .await;
        assert_eq!(
            seen["run"]["environment"]["config"]["pythonWasm"],
            module.as_str()
        );
        assert_eq!(seen["run"]["program"]["files"][0]["path"], "main.py");

        // ADMIN on the program shows its runs and its files, not the owner's environment settings.
        let seen = app
            .gql_ok(Some(&program_admin), RUN_ASSETS, json!({ "id": run_id }))
            .await;
        let run = &seen["run"];
        assert_eq!(run["id"], run_id.as_str(), "{seen}");
        assert_eq!(run["program"]["files"][0]["path"], "main.py", "{seen}");
        assert_eq!(run["environment"]["id"], environment_id.as_str(), "{seen}");
        assert_eq!(
            run["environment"]["config"],
            json!({}),
            "config must not leak: {seen}"
        );
        assert!(!seen.to_string().contains(&module), "{seen}");
        assert!(
            app.gql_ok(
                Some(&program_admin),
                "query($id: ID!) { environment(id: $id) { id } }",
                json!({ "id": environment_id })
            )
            .await["environment"]
                .is_null()
        );

        // A run's owner who lost the program: the run and which program it ran, not the
        // program's current files.
        share(&app, &owner, &program_id, "runner@example.com", "EXECUTE").await;
        let own_environment = create_ready_environment(&app, &runner, "own").await;
        let own_run = id_of(&create_run(&app, &runner, &program_id, &own_environment).await);
        let data = app
            .gql_ok(
                Some(&owner),
                UNSHARE,
                json!({ "asset": program_id, "email": "runner@example.com" }),
            )
            .await;
        assert_eq!(data["unshareAsset"], true);
        let seen = app
            .gql_ok(Some(&runner), RUN_ASSETS, json!({ "id": own_run }))
            .await;
        let run = &seen["run"];
        assert_eq!(run["program"]["id"], program_id.as_str(), "{seen}");
        assert_eq!(
            run["program"]["files"],
            json!([]),
            "files must not leak: {seen}"
        );
        assert_eq!(run["environment"]["id"], own_environment.as_str(), "{seen}");
    }
);
