//! Environments: CREATING → READY, resource defaults and limits, executor config validation,
//! the start/stop state machine with CONFLICT on illegal transitions, listing and deletion.

use crate::support::*;

const RESOURCE_DEFAULTS: [(&str, i64); 5] = [
    ("memoryMb", 256),
    ("cpuMillis", 1000),
    ("timeoutSeconds", 60),
    ("maxLogBytes", 10_485_760),
    ("pids", 128),
];
const RESOURCE_MAXIMA: [(&str, i64); 5] = [
    ("memoryMb", 4096),
    ("cpuMillis", 8000),
    ("timeoutSeconds", 86_400),
    ("maxLogBytes", 104_857_600),
    ("pids", 4096),
];
const LIST: &str = "query($first: Int, $after: String) { environments(first: $first, after: $after) { totalCount edges { cursor node { id name } } pageInfo { hasNextPage endCursor } } }";

async fn environment_count(app: &TestApp, token: &str) -> Value {
    app.gql_ok(Some(token), LIST, json!({})).await["environments"]["totalCount"].clone()
}

/// `createEnvironment(input)` must fail with BAD_USER_INPUT naming `word`, creating nothing.
async fn assert_create_rejected(app: &TestApp, token: &str, input: Value, word: &str) {
    let before = environment_count(app, token).await;
    let error = app
        .gql_err(
            Some(token),
            &create_environment_mutation(),
            json!({ "input": input }),
        )
        .await;
    assert_eq!(error.code, "BAD_USER_INPUT", "input {input}: {error:?}");
    assert!(
        error.message.contains(word),
        "the message should name {word}: {error:?} (input {input})"
    );
    assert_eq!(
        before,
        environment_count(app, token).await,
        "nothing was created for {input}"
    );
}

e2e_test!(wasm_environment_is_created_then_ready, |app| async move {
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    let created = create_environment(&app, &token, wasm_environment_input("sandbox")).await;
    assert_eq!(created["status"], "CREATING");
    assert_eq!(created["name"], "sandbox");
    assert_eq!(created["executor"], "WASM");
    assert!(created["image"].is_null());
    assert!(
        created["config"].is_object(),
        "config is a JSON object: {created}"
    );
    assert_eq!(created["owner"]["email"], "dev@example.com");
    assert_eq!(created["myPermission"], "ADMIN");
    for (field, default) in RESOURCE_DEFAULTS {
        assert_eq!(created["resources"][field], default, "default {field}");
    }
    let ready = wait_environment_status(&app, &token, &id_of(&created), "READY").await;
    assert_eq!(ready["resources"], created["resources"]);
    assert_eq!(ready["createdAt"], created["createdAt"]);

    let mut input = wasm_environment_input("custom");
    input["resources"] = json!({ "memoryMb": 512, "cpuMillis": 2000, "timeoutSeconds": 30, "maxLogBytes": 1000, "pids": 16 });
    let custom = create_environment(&app, &token, input).await;
    assert_eq!(
        custom["resources"],
        json!({ "memoryMb": 512, "cpuMillis": 2000, "timeoutSeconds": 30, "maxLogBytes": 1000, "pids": 16 })
    );

    let mut input = wasm_environment_input("partial");
    input["resources"] = json!({ "memoryMb": 4096 });
    let partial = create_environment(&app, &token, input).await;
    assert_eq!(
        partial["resources"]["memoryMb"], 4096,
        "the maximum itself is allowed"
    );
    assert_eq!(
        partial["resources"]["pids"], 128,
        "omitted values take the default"
    );
});

e2e_test!(environment_input_is_validated, |app| async move {
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    for name in [String::new(), "  ".to_owned(), "e".repeat(101)] {
        let mut input = wasm_environment_input("x");
        input["name"] = json!(name);
        assert_create_rejected(&app, &token, input, "name").await;
    }
    for executor in ["DOCKER", "KUBERNETES"] {
        let input = json!({ "name": "needs-image", "executor": executor });
        assert_create_rejected(&app, &token, input, "image").await;
    }
    let mut input = wasm_environment_input("bad-config");
    input["config"] = json!({ "bogus": 1 });
    assert_create_rejected(&app, &token, input, "bogus").await;
    for config in [json!([1, 2]), json!("text"), json!(5)] {
        let mut input = wasm_environment_input("bad-config");
        input["config"] = config;
        assert_create_rejected(&app, &token, input, "config").await;
    }
    for (field, maximum) in RESOURCE_MAXIMA {
        for value in [0, -1, maximum + 1] {
            let mut input = wasm_environment_input("bad-resources");
            input["resources"] = json!({ field: value });
            assert_create_rejected(&app, &token, input, field).await;
        }
    }
});

e2e_test!(
    resource_maxima_are_configurable,
    TestApp::builder()
        .env("PLAYGROUND_MAX_MEMORY_MB", 100)
        .env("PLAYGROUND_MAX_PIDS", 8),
    |app| async move {
        let token = app.admin_token().await;
        let mut input = wasm_environment_input("small");
        input["resources"] = json!({ "memoryMb": 100, "pids": 8 });
        create_environment(&app, &token, input).await;
        for (field, value) in [("memoryMb", 101), ("pids", 9)] {
            let mut input = wasm_environment_input("too-big");
            input["resources"] = json!({ "memoryMb": 50, field: value });
            assert_create_rejected(&app, &token, input, field).await;
        }
    }
);

e2e_test!(start_and_stop_follow_the_state_machine, |app| async move {
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    let id = create_ready_environment(&app, &token, "machine").await;
    let expect_status = |response: Value, mutation: &str, status: &str| {
        assert!(response["errors"].is_null(), "{mutation}: {response}");
        assert_eq!(response["data"][mutation]["status"], status, "{response}");
    };
    let expect_conflict = |response: Value, label: &str| {
        assert_eq!(
            response["errors"][0]["extensions"]["code"], "CONFLICT",
            "{label}: {response}"
        );
    };

    expect_status(
        environment_mutation(&app, &token, "startEnvironment", &id).await,
        "startEnvironment",
        "RUNNING",
    );
    expect_conflict(
        environment_mutation(&app, &token, "startEnvironment", &id).await,
        "start on RUNNING",
    );
    assert_eq!(
        get_environment(&app, &token, &id).await["status"],
        "RUNNING"
    );
    expect_status(
        environment_mutation(&app, &token, "stopEnvironment", &id).await,
        "stopEnvironment",
        "STOPPED",
    );
    expect_conflict(
        environment_mutation(&app, &token, "stopEnvironment", &id).await,
        "stop on STOPPED",
    );
    assert_eq!(
        get_environment(&app, &token, &id).await["status"],
        "STOPPED"
    );
    expect_status(
        environment_mutation(&app, &token, "startEnvironment", &id).await,
        "startEnvironment",
        "RUNNING",
    );
    assert_eq!(
        get_environment(&app, &token, &id).await["status"],
        "RUNNING"
    );

    let other = create_ready_environment(&app, &token, "stopped-from-ready").await;
    let response = environment_mutation(&app, &token, "stopEnvironment", &other).await;
    expect_status(response, "stopEnvironment", "STOPPED");
    let response = environment_mutation(&app, &token, "startEnvironment", &other).await;
    expect_status(response, "startEnvironment", "RUNNING");
});

e2e_test!(environments_are_listed_and_deleted, |app| async move {
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    let mut ids = Vec::new();
    for name in ["first", "second", "third"] {
        ids.push(create_ready_environment(&app, &token, name).await);
    }
    let page = app.gql_ok(Some(&token), LIST, json!({ "first": 2 })).await["environments"].clone();
    assert_eq!(page["totalCount"], 3);
    assert_eq!(
        node_ids(&page),
        [ids[2].as_str(), ids[1].as_str()],
        "newest first"
    );
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let rest = app
        .gql_ok(
            Some(&token),
            LIST,
            json!({ "first": 2, "after": page["pageInfo"]["endCursor"] }),
        )
        .await["environments"]
        .clone();
    assert_eq!(node_ids(&rest), [ids[0].as_str()]);
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);

    // A non-terminal run keeps its environment; once cancelled the environment may go.
    let program_id = create_program_named(&app, &token, "p").await;
    let run = create_run(&app, &token, &program_id, &ids[0]).await;
    let response = environment_mutation(&app, &token, "deleteEnvironment", &ids[0]).await;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "CONFLICT",
        "{response}"
    );
    cancel_run(&app, &token, &id_of(&run)).await;
    let response = environment_mutation(&app, &token, "deleteEnvironment", &ids[0]).await;
    assert_eq!(response["data"]["deleteEnvironment"], true, "{response}");
    assert!(get_environment(&app, &token, &ids[0]).await.is_null());
    let listed = app.gql_ok(Some(&token), LIST, json!({})).await["environments"].clone();
    assert_eq!(node_ids(&listed), [ids[2].as_str(), ids[1].as_str()]);
    assert_eq!(listed["totalCount"], 2);
    let response = environment_mutation(&app, &token, "deleteEnvironment", &ids[0]).await;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{response}"
    );

    let query = "query($id: ID!) { environment(id: $id) { id } }";
    assert_eq!(
        app.gql_err_code(Some(&token), query, json!({ "id": "nope" }))
            .await,
        "BAD_USER_INPUT"
    );
    let data = app
        .gql_ok(Some(&token), query, json!({ "id": uuid::Uuid::new_v4() }))
        .await;
    assert!(data["environment"].is_null());
});
