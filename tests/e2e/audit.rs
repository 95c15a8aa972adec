//! The audit log: every mutation and every login attempt (failed ones too) is recorded with
//! actor, action, object, outcome, client address and time; `auditEvents` is admin-only and
//! filters by actor, action and object; no password, token or credential value is ever in it.

use crate::support::*;

const AUDIT_EVENTS: &str = "query($first: Int, $after: String, $actor: ID, $action: String, $object: String) { auditEvents(first: $first, after: $after, actor: $actor, action: $action, object: $object) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id at actor { id email } actorEmail action object outcome clientAddress } } } }";
const LOGIN: &str = "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token } }";
const ME: &str = "query { me { id } }";

/// The nodes of `auditEvents(args)` read by the admin, newest first.
async fn audit_events(app: &TestApp, args: Value) -> Vec<Value> {
    let admin = app.admin_token().await;
    let data = app.gql_ok(Some(&admin), AUDIT_EVENTS, args).await;
    data["auditEvents"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| edge["node"].clone())
        .collect()
}

async fn user_id(app: &TestApp, token: &str) -> String {
    app.gql_ok(Some(token), ME, json!({})).await["me"]["id"]
        .as_str()
        .expect("me.id")
        .to_owned()
}

fn assert_recorded(event: &Value, action: &str, outcome: &str) {
    assert_eq!(event["action"], action, "{event}");
    assert_eq!(event["outcome"], outcome, "{event}");
    assert_eq!(event["clientAddress"], "127.0.0.1", "{event}");
    assert!(
        event["at"].as_str().is_some_and(|at| at.starts_with("20")),
        "{event}"
    );
}

e2e_test!(
    failed_and_successful_logins_are_recorded,
    |app| async move {
        let error = app
            .gql_err(
                None,
                LOGIN,
                json!({ "email": ADMIN_EMAIL, "password": "not-the-password" }),
            )
            .await;
        assert_eq!(error.code, "UNAUTHENTICATED");
        let error = app
            .gql_err(
                None,
                LOGIN,
                json!({ "email": "Nobody@Example.com", "password": "whatever-it-is" }),
            )
            .await;
        assert_eq!(error.code, "UNAUTHENTICATED");
        let admin = app.admin_token().await;
        let admin_id = user_id(&app, &admin).await;

        let logins = audit_events(&app, json!({ "action": "login" })).await;
        assert_eq!(logins.len(), 3, "{logins:?}");
        // Newest first: the admin's success, the unknown email, the admin's failure.
        assert_recorded(&logins[0], "login", "SUCCESS");
        assert_eq!(logins[0]["object"], ADMIN_EMAIL);
        assert_eq!(logins[0]["actorEmail"], ADMIN_EMAIL);
        assert_eq!(logins[0]["actor"]["id"], admin_id);
        assert_recorded(&logins[1], "login", "UNAUTHENTICATED");
        assert_eq!(logins[1]["object"], "nobody@example.com");
        assert!(logins[1]["actor"].is_null(), "{}", logins[1]);
        assert_recorded(&logins[2], "login", "UNAUTHENTICATED");
        assert_eq!(logins[2]["object"], ADMIN_EMAIL);
        assert_eq!(logins[2]["actorEmail"], ADMIN_EMAIL);
        assert!(logins[2]["actor"].is_null(), "{}", logins[2]);

        let by_email = audit_events(&app, json!({ "object": ADMIN_EMAIL })).await;
        assert_eq!(by_email.len(), 2, "{by_email:?}");
    }
);

e2e_test!(
    mutations_are_recorded_with_actor_object_and_outcome,
    |app| async move {
        let developer = app.create_user("dev@example.com", "DEVELOPER").await;
        let viewer = app.create_user("viewer@example.com", "VIEWER").await;
        let developer_id = user_id(&app, &developer).await;
        let viewer_id = user_id(&app, &viewer).await;

        let program_id = create_program_named(&app, &developer, "audited").await;
        let environment_id = create_ready_environment(&app, &developer, "audited-env").await;
        let run_id = id_of(&create_run(&app, &developer, &program_id, &environment_id).await);
        app.gql_ok(
            Some(&developer),
            "mutation($asset: ID!) { shareAsset(assetId: $asset, userEmail: \"viewer@example.com\", permission: VIEW) }",
            json!({ "asset": program_id }),
        )
        .await;
        let code = app
            .gql_err_code(
                Some(&viewer),
                "mutation($id: ID!) { deleteProgram(id: $id) }",
                json!({ "id": program_id }),
            )
            .await;
        assert_eq!(code, "FORBIDDEN");
        let code = app
            .gql_err_code(
                None,
                &create_program_mutation(),
                json!({ "input": program_input("anonymous") }),
            )
            .await;
        assert_eq!(code, "UNAUTHENTICATED");

        let created = audit_events(&app, json!({ "action": "createProgram" })).await;
        assert_eq!(created.len(), 2, "{created:?}");
        assert_recorded(&created[0], "createProgram", "UNAUTHENTICATED");
        assert!(created[0]["actor"].is_null(), "{}", created[0]);
        assert!(created[0]["object"].is_null(), "{}", created[0]);
        assert_recorded(&created[1], "createProgram", "SUCCESS");
        assert_eq!(created[1]["actor"]["id"], developer_id);
        assert_eq!(created[1]["actorEmail"], "dev@example.com");
        assert_eq!(created[1]["object"], program_id);

        let runs = audit_events(&app, json!({ "action": "createRun" })).await;
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_recorded(&runs[0], "createRun", "SUCCESS");
        assert_eq!(runs[0]["actor"]["id"], developer_id);
        assert_eq!(runs[0]["object"], run_id);

        let denied = audit_events(&app, json!({ "action": "deleteProgram" })).await;
        assert_eq!(denied.len(), 1, "{denied:?}");
        assert_recorded(&denied[0], "deleteProgram", "FORBIDDEN");
        assert_eq!(denied[0]["actor"]["id"], viewer_id);
        assert_eq!(denied[0]["actorEmail"], "viewer@example.com");
        assert_eq!(denied[0]["object"], program_id);

        // Filters: by object, by actor, and combined.
        let on_program = audit_events(&app, json!({ "object": program_id })).await;
        let actions: Vec<&str> = on_program
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            ["deleteProgram", "shareAsset", "createProgram"],
            "{on_program:?}"
        );
        let by_viewer = audit_events(&app, json!({ "actor": viewer_id })).await;
        assert!(!by_viewer.is_empty());
        assert!(
            by_viewer.iter().all(|e| e["actor"]["id"] == viewer_id),
            "{by_viewer:?}"
        );
        let viewer_deletes = audit_events(
            &app,
            json!({ "actor": viewer_id, "action": "deleteProgram", "object": program_id }),
        )
        .await;
        assert_eq!(viewer_deletes.len(), 1, "{viewer_deletes:?}");
        let developer_deletes = audit_events(
            &app,
            json!({ "actor": developer_id, "action": "deleteProgram" }),
        )
        .await;
        assert!(developer_deletes.is_empty(), "{developer_deletes:?}");

        // Newest first, paged with cursors like the other connections.
        let admin = app.admin_token().await;
        let everything = audit_events(&app, json!({ "first": 500 })).await;
        let first = app
            .gql_ok(Some(&admin), AUDIT_EVENTS, json!({ "first": 2 }))
            .await["auditEvents"]
            .clone();
        assert_eq!(first["pageInfo"]["hasNextPage"], true, "{first}");
        let second = app
            .gql_ok(
                Some(&admin),
                AUDIT_EVENTS,
                json!({ "first": 2, "after": first["pageInfo"]["endCursor"] }),
            )
            .await["auditEvents"]
            .clone();
        let paged: Vec<String> = node_ids(&first)
            .into_iter()
            .chain(node_ids(&second))
            .collect();
        let all: Vec<String> = everything.iter().map(id_of).collect();
        assert_eq!(paged, all[..4], "pages follow the full list");
        let times: Vec<&str> = everything
            .iter()
            .map(|e| e["at"].as_str().unwrap())
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] >= w[1]),
            "newest first: {times:?}"
        );
    }
);

e2e_test!(only_admins_read_the_audit_log, |app| async move {
    let developer = app.create_user("dev@example.com", "DEVELOPER").await;
    let viewer = app.create_user("viewer@example.com", "VIEWER").await;
    for token in [&developer, &viewer] {
        let code = app.gql_err_code(Some(token), AUDIT_EVENTS, json!({})).await;
        assert_eq!(code, "FORBIDDEN");
    }
    let code = app.gql_err_code(None, AUDIT_EVENTS, json!({})).await;
    assert_eq!(code, "UNAUTHENTICATED");
    let admin = app.admin_token().await;
    let code = app
        .gql_err_code(Some(&admin), AUDIT_EVENTS, json!({ "actor": "not-an-id" }))
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
});

e2e_test!(no_secret_value_is_ever_recorded, |app| async move {
    const PASSWORD: &str = "planted-password-7f3a9c";
    const WRONG_PASSWORD: &str = "planted-wrong-password-51be2d";
    const CREDENTIAL: &str = "planted-credential-value-c0ffee";
    const ENV_VALUE: &str = "planted-env-value-d00d";
    let admin = app.admin_token().await;
    app.gql_ok(
        Some(&admin),
        "mutation($password: String!) { createUser(email: \"secretive@example.com\", password: $password, role: DEVELOPER) { id } }",
        json!({ "password": PASSWORD }),
    )
    .await;
    let code = app
        .gql_err_code(
            None,
            LOGIN,
            json!({ "email": "secretive@example.com", "password": WRONG_PASSWORD }),
        )
        .await;
    assert_eq!(code, "UNAUTHENTICATED");
    let token = app.login("secretive@example.com", PASSWORD).await;
    let credential = app
        .gql_ok(
            Some(&token),
            "mutation($value: String!) { createCredential(name: \"API_KEY\", value: $value) { id } }",
            json!({ "value": CREDENTIAL }),
        )
        .await["createCredential"]
        .clone();
    let api_token = app
        .gql_ok(
            Some(&token),
            "mutation { createApiToken(name: \"ci\") { token apiToken { id } } }",
            json!({}),
        )
        .await["createApiToken"]
        .clone();
    let program_id = create_program_named(&app, &token, "secretive").await;
    let environment_id = create_ready_environment(&app, &token, "secretive-env").await;
    let input = json!({
        "programId": program_id,
        "environmentId": environment_id,
        "env": [{ "name": "SETTING", "value": ENV_VALUE }],
        "credentialIds": [credential["id"]],
    });
    app.gql_ok(
        Some(&token),
        &create_run_mutation(),
        json!({ "input": input }),
    )
    .await;

    let events = audit_events(&app, json!({ "first": 500 })).await;
    let credentials = audit_events(&app, json!({ "action": "createCredential" })).await;
    assert_eq!(credentials.len(), 1, "{credentials:?}");
    assert_eq!(credentials[0]["object"], credential["id"]);
    assert_eq!(credentials[0]["outcome"], "SUCCESS");
    let tokens = audit_events(&app, json!({ "action": "createApiToken" })).await;
    assert_eq!(tokens[0]["object"], api_token["apiToken"]["id"]);

    let text = serde_json::to_string(&events).unwrap();
    let issued_token = api_token["token"].as_str().unwrap();
    for secret in [
        PASSWORD,
        WRONG_PASSWORD,
        CREDENTIAL,
        ENV_VALUE,
        issued_token,
        &token,
        &admin,
        ADMIN_PASSWORD,
    ] {
        assert!(
            !text.contains(secret),
            "the audit log holds a secret ({secret}): {text}"
        );
    }
    assert!(events.len() >= 8, "{events:?}");
});
