//! Runs: `createRun` stores a QUEUED run of the program's current version, input checks,
//! `cancelRun` and its CONFLICT, environments that refuse runs, list filters, and the
//! `runStatus` subscription over both WebSocket protocols.

use crate::support::*;

const RUNS: &str = "query($status: RunStatus, $programId: ID, $environmentId: ID, $first: Int, $after: String) { runs(status: $status, programId: $programId, environmentId: $environmentId, first: $first, after: $after) { totalCount edges { cursor node { id status } } pageInfo { hasNextPage endCursor } } }";
const RUN_STATUS: &str =
    "subscription($id: ID!) { runStatus(runId: $id) { runId status exitCode failureReason at } }";

async fn runs(app: &TestApp, token: &str, filter: Value) -> Value {
    app.gql_ok(Some(token), RUNS, filter).await["runs"].clone()
}

e2e_test!(
    a_run_records_the_programs_current_version,
    |app| async move {
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let program_id = create_program_named(&app, &token, "versioned").await;
        let environment_id = create_ready_environment(&app, &token, "env").await;
        let first = create_run(&app, &token, &program_id, &environment_id).await;
        assert_eq!(first["programVersion"], 1);
        assert_eq!(first["program"]["id"], program_id.as_str());
        assert_eq!(first["environment"]["id"], environment_id.as_str());
        assert_eq!(first["args"], json!(["--flag", "value with spaces"]));
        assert_eq!(first["owner"]["email"], "dev@example.com");

        let update = "mutation($id: ID!) { updateProgram(id: $id, input: { files: [{ path: \"main.py\", content: \"print(2)\" }] }) { version } }";
        let updated = app
            .gql_ok(Some(&token), update, json!({ "id": program_id }))
            .await;
        assert_eq!(updated["updateProgram"]["version"], 2);
        let second = create_run(&app, &token, &program_id, &environment_id).await;
        assert_eq!(second["programVersion"], 2);
        assert_eq!(second["program"]["version"], 2);
        let first_again = get_run(&app, &token, &id_of(&first)).await;
        assert_eq!(
            first_again["programVersion"], 1,
            "a run keeps the version it was created with"
        );
        assert_run_waiting(&first_again);

        let logs = app
            .gql_ok(
                Some(&token),
                "query($id: ID!) { run(id: $id) { logs { seq line } } }",
                json!({ "id": id_of(&first) }),
            )
            .await;
        assert_eq!(
            logs["run"]["logs"],
            json!([]),
            "a queued run has no log lines"
        );

        let listed = runs(&app, &token, json!({})).await;
        assert_eq!(
            node_ids(&listed),
            [id_of(&second), id_of(&first)],
            "newest first"
        );
        assert_eq!(listed["totalCount"], 2);
    }
);

e2e_test!(run_input_is_checked, |app| async move {
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    let program_id = create_program_named(&app, &token, "p").await;
    let environment_id = create_ready_environment(&app, &token, "env").await;
    let input = |extra: Value| {
        let mut input = json!({ "programId": program_id, "environmentId": environment_id });
        for (key, value) in extra.as_object().unwrap() {
            input[key] = value.clone();
        }
        json!({ "input": input })
    };
    let run = app
        .gql_ok(
            Some(&token),
            &create_run_mutation(),
            input(
                json!({ "env": [{ "name": "A_1", "value": "x" }, { "name": "_b", "value": "" }] }),
            ),
        )
        .await["createRun"]
        .clone();
    assert_run_waiting(&run);
    assert_eq!(run["args"], json!([]), "args default to none");

    for bad_name in ["1BAD", "A-B", "", "A B", "É"] {
        let error = app
            .gql_err(
                Some(&token),
                &create_run_mutation(),
                input(json!({ "env": [{ "name": bad_name, "value": "v" }] })),
            )
            .await;
        assert_eq!(
            error.code, "BAD_USER_INPUT",
            "env name {bad_name:?}: {error:?}"
        );
    }
    let missing = uuid::Uuid::new_v4().to_string();
    let code = app
        .gql_err_code(
            Some(&token),
            &create_run_mutation(),
            input(json!({ "programId": missing })),
        )
        .await;
    assert_eq!(code, "NOT_FOUND", "unknown program");
    let code = app
        .gql_err_code(
            Some(&token),
            &create_run_mutation(),
            input(json!({ "environmentId": missing })),
        )
        .await;
    assert_eq!(code, "NOT_FOUND", "unknown environment");
    let code = app
        .gql_err_code(
            Some(&token),
            &create_run_mutation(),
            input(json!({ "programId": "p-1" })),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "not an id");
    assert_eq!(
        runs(&app, &token, json!({})).await["totalCount"],
        1,
        "refused runs are not stored"
    );

    let query = "query($id: ID!) { run(id: $id) { id } }";
    assert_eq!(
        app.gql_err_code(Some(&token), query, json!({ "id": "x" }))
            .await,
        "BAD_USER_INPUT"
    );
    assert!(
        app.gql_ok(Some(&token), query, json!({ "id": missing }))
            .await["run"]
            .is_null()
    );
});

e2e_test!(cancelling_a_queued_run, |app| async move {
    let admin = app.admin_token().await;
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    let program_id = create_program_named(&app, &token, "p").await;
    let environment_id = create_ready_environment(&app, &token, "env").await;
    for (canceller, canceller_email) in [(&token, "dev@example.com"), (&admin, ADMIN_EMAIL)] {
        let me = app
            .gql_ok(Some(canceller), "{ me { displayName } }", json!({}))
            .await;
        let display_name = me["me"]["displayName"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let run = create_run(&app, &token, &program_id, &environment_id).await;
        let cancelled = cancel_run(&app, canceller, &id_of(&run)).await;
        assert_eq!(cancelled["status"], "CANCELLED");
        assert!(cancelled["finishedAt"].is_string(), "{cancelled}");
        let reason = cancelled["failureReason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(canceller_email)
                || (!display_name.is_empty() && reason.contains(&display_name)),
            "the reason says who cancelled ({canceller_email}): {reason:?}"
        );
        assert_eq!(
            get_run(&app, &token, &id_of(&run)).await["status"],
            "CANCELLED"
        );
        let again = "mutation($id: ID!) { cancelRun(id: $id) { id } }";
        assert_eq!(
            app.gql_err_code(Some(canceller), again, json!({ "id": id_of(&run) }))
                .await,
            "CONFLICT"
        );
    }
});

e2e_test!(stopped_environments_refuse_runs, |app| async move {
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    let program_id = create_program_named(&app, &token, "p").await;
    let environment_id = create_ready_environment(&app, &token, "env").await;
    let response = environment_mutation(&app, &token, "stopEnvironment", &environment_id).await;
    assert_eq!(
        response["data"]["stopEnvironment"]["status"], "STOPPED",
        "{response}"
    );
    let input = json!({ "input": { "programId": program_id, "environmentId": environment_id } });
    assert_eq!(
        app.gql_err_code(Some(&token), &create_run_mutation(), input)
            .await,
        "CONFLICT"
    );
    assert_eq!(runs(&app, &token, json!({})).await["totalCount"], 0);

    let response = environment_mutation(&app, &token, "startEnvironment", &environment_id).await;
    assert_eq!(
        response["data"]["startEnvironment"]["status"], "RUNNING",
        "{response}"
    );
    create_run(&app, &token, &program_id, &environment_id).await;
});

e2e_test!(runs_are_filtered, |app| async move {
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    let p1 = create_program_named(&app, &token, "p1").await;
    let p2 = create_program_named(&app, &token, "p2").await;
    let e1 = create_ready_environment(&app, &token, "e1").await;
    let e2 = create_ready_environment(&app, &token, "e2").await;
    let r1 = id_of(&create_run(&app, &token, &p1, &e1).await);
    let r2 = id_of(&create_run(&app, &token, &p1, &e2).await);
    let r3 = id_of(&create_run(&app, &token, &p2, &e1).await);
    cancel_run(&app, &token, &r2).await;

    let cases = [
        (json!({}), vec![&r3, &r2, &r1]),
        (json!({ "status": "QUEUED" }), vec![&r3, &r1]),
        (json!({ "status": "CANCELLED" }), vec![&r2]),
        (json!({ "status": "SUCCEEDED" }), vec![]),
        (json!({ "programId": p1 }), vec![&r2, &r1]),
        (json!({ "environmentId": e1 }), vec![&r3, &r1]),
        (json!({ "programId": p1, "status": "QUEUED" }), vec![&r1]),
        (json!({ "programId": p2, "environmentId": e2 }), vec![]),
    ];
    for (filter, expected) in cases {
        let listed = runs(&app, &token, filter.clone()).await;
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(node_ids(&listed), expected, "filter {filter}");
        assert_eq!(listed["totalCount"], expected.len(), "filter {filter}");
    }
    let page = runs(&app, &token, json!({ "programId": p1, "first": 1 })).await;
    assert_eq!(node_ids(&page), [r2.as_str()]);
    assert_eq!(page["totalCount"], 2);
    let rest = runs(
        &app,
        &token,
        json!({ "programId": p1, "first": 1, "after": page["pageInfo"]["endCursor"] }),
    )
    .await;
    assert_eq!(node_ids(&rest), [r1.as_str()]);
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);
});

async fn run_status_sees_queued_then_cancelled(app: &TestApp, protocol: WsProtocol) {
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    let program_id = create_program_named(app, &token, "p").await;
    let environment_id = create_ready_environment(app, &token, "env").await;
    let run_id = id_of(&create_run(app, &token, &program_id, &environment_id).await);

    let mut client = WsClient::connect_with_token(app, protocol, &token).await;
    client
        .subscribe("status", RUN_STATUS, json!({ "id": run_id }))
        .await;
    let first = client.next_data().await["runStatus"].clone();
    assert_eq!(first["runId"], run_id.as_str());
    assert_eq!(
        first["status"], "QUEUED",
        "the first event is the current status"
    );
    assert!(first["at"].is_string());

    cancel_run(app, &token, &run_id).await;
    let cancelled = client.next_data().await["runStatus"].clone();
    assert_eq!(cancelled["status"], "CANCELLED");
    assert!(cancelled["failureReason"].is_string(), "{cancelled}");
    client.expect_complete().await;

    // A finished run: its final status at once, then the end.
    client
        .subscribe("again", RUN_STATUS, json!({ "id": run_id }))
        .await;
    assert_eq!(client.next_data().await["runStatus"]["status"], "CANCELLED");
    client.expect_complete().await;

    // Another user cannot watch it.
    let stranger = app.create_user("stranger@example.com", "DEVELOPER").await;
    let mut client = WsClient::connect_with_token(app, protocol, &stranger).await;
    client
        .subscribe("peek", RUN_STATUS, json!({ "id": run_id }))
        .await;
    match client.next_event().await {
        WsEvent::Error(payload) => assert!(!payload.is_null(), "an error event says why"),
        WsEvent::Next(payload) => assert!(
            payload["errors"]
                .as_array()
                .is_some_and(|errors| !errors.is_empty()),
            "a stranger must not see the run: {payload}"
        ),
        other => panic!("expected an error for a stranger, got {other:?}"),
    }
}

e2e_test!(
    run_status_subscription_over_graphql_transport_ws,
    |app| async move {
        run_status_sees_queued_then_cancelled(&app, WsProtocol::TransportWs).await;
    }
);

e2e_test!(
    run_status_subscription_over_legacy_graphql_ws,
    |app| async move {
        run_status_sees_queued_then_cancelled(&app, WsProtocol::LegacyWs).await;
    }
);

e2e_test!(
    a_program_needs_an_environment_that_runs_its_runtime,
    |app| async move {
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let program = |runtime: &str, entrypoint: &str| {
            json!({
                "name": format!("{runtime} program"),
                "runtime": runtime,
                "entrypoint": entrypoint,
                "files": [{ "path": entrypoint, "content": "(module)" }],
            })
        };
        let shell = id_of(&create_program(&app, &token, program("SHELL", "run.sh")).await);
        let wasm = id_of(&create_program(&app, &token, program("WASM", "m.wat")).await);
        let wasm_environment = create_ready_environment(&app, &token, "wasm").await;
        let docker_environment = id_of(
            &create_environment(
                &app,
                &token,
                json!({ "name": "docker", "executor": "DOCKER", "image": "busybox:latest" }),
            )
            .await,
        );
        for (program, environment, names) in [
            (&shell, &wasm_environment, "DOCKER or KUBERNETES"),
            (&wasm, &docker_environment, "WASM"),
        ] {
            let error = app
                .gql_err(
                    Some(&token),
                    &create_run_mutation(),
                    json!({ "input": { "programId": program, "environmentId": environment } }),
                )
                .await;
            assert_eq!(error.code, "BAD_USER_INPUT", "{error:?}");
            assert!(error.message.contains(names), "{error:?}");
        }
        let listed = runs(&app, &token, json!({})).await;
        assert_eq!(listed["totalCount"], 0, "no run was stored");
    }
);
