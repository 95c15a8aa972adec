//! Hardening: login rate limits per account and per client address, query shape limits
//! (aliases, query length, batches), WebSocket message size and subscriptions per user, and
//! the CORS allow-list.

use std::time::{Duration, Instant};

use crate::support::*;

const LOGIN: &str = "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token } }";

async fn try_login(app: &TestApp, email: &str, password: &str) -> Value {
    app.gql(None, LOGIN, json!({ "email": email, "password": password }))
        .await
}

fn first_error(response: &Value) -> &Value {
    &response["errors"][0]
}

fn code_of(response: &Value) -> &str {
    first_error(response)["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

/// Asserts a RATE_LIMITED error with a retry hint within `window` seconds.
fn assert_rate_limited(response: &Value, window: u64) {
    assert_eq!(code_of(response), "RATE_LIMITED", "{response}");
    let retry = first_error(response)["extensions"]["retryAfterSeconds"]
        .as_u64()
        .unwrap_or_else(|| panic!("retryAfterSeconds missing: {response}"));
    assert!((1..=window).contains(&retry), "retryAfterSeconds {retry}");
    let message = first_error(response)["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains(&format!("try again in {retry} seconds")),
        "the message says when to retry: {message}"
    );
    assert!(response["data"].is_null(), "{response}");
}

async fn assert_still_serving(app: &TestApp) {
    let token = app.admin_token().await;
    let data = app
        .gql_ok(Some(&token), "{ me { email } }", json!({}))
        .await;
    assert_eq!(data["me"]["email"], ADMIN_EMAIL);
}

e2e_test!(
    login_failures_are_limited_per_account,
    TestApp::builder()
        .env("PLAYGROUND_LOGIN_MAX_FAILURES_PER_ACCOUNT", 3)
        .env("PLAYGROUND_LOGIN_MAX_FAILURES_PER_ADDRESS", 1000)
        .env("PLAYGROUND_LOGIN_WINDOW_SECONDS", 600),
    |app| async move {
        app.create_user("locked@example.com", "DEVELOPER").await;
        app.create_user("reset@example.com", "DEVELOPER").await;

        for _ in 0..3 {
            let response = try_login(&app, "locked@example.com", "wrong").await;
            assert_eq!(code_of(&response), "UNAUTHENTICATED", "{response}");
        }
        // Over the limit even the right password is refused, without checking it.
        let response = try_login(&app, "locked@example.com", USER_PASSWORD).await;
        assert_rate_limited(&response, 600);
        // The email is normalized before counting.
        let response = try_login(&app, "  LOCKED@example.com ", "wrong").await;
        assert_rate_limited(&response, 600);
        // Unknown accounts are counted the same way (no enumeration).
        for _ in 0..3 {
            let response = try_login(&app, "nobody@example.com", "wrong").await;
            assert_eq!(code_of(&response), "UNAUTHENTICATED", "{response}");
        }
        assert_rate_limited(&try_login(&app, "nobody@example.com", "x").await, 600);

        // Other accounts are not affected.
        app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;

        // A success resets the account's count.
        for _ in 0..2 {
            let response = try_login(&app, "reset@example.com", "wrong").await;
            assert_eq!(code_of(&response), "UNAUTHENTICATED", "{response}");
        }
        app.login("reset@example.com", USER_PASSWORD).await;
        for _ in 0..2 {
            let response = try_login(&app, "reset@example.com", "wrong").await;
            assert_eq!(code_of(&response), "UNAUTHENTICATED", "{response}");
        }
        app.login("reset@example.com", USER_PASSWORD).await;
    }
);

e2e_test!(
    login_failures_are_limited_per_address,
    TestApp::builder()
        .env("PLAYGROUND_LOGIN_MAX_FAILURES_PER_ACCOUNT", 1000)
        .env("PLAYGROUND_LOGIN_MAX_FAILURES_PER_ADDRESS", 4)
        .env("PLAYGROUND_LOGIN_WINDOW_SECONDS", 300),
    |app| async move {
        let admin = app.admin_token().await;
        for i in 0..4 {
            let response = try_login(&app, &format!("guess{i}@example.com"), "wrong").await;
            assert_eq!(code_of(&response), "UNAUTHENTICATED", "{response}");
        }
        // Every account is now refused from this address, the right password too.
        let response = try_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_rate_limited(&response, 300);
        assert!(
            first_error(&response)["message"]
                .as_str()
                .unwrap_or_default()
                .contains("address"),
            "{response}"
        );
        // Sessions already issued keep working.
        let data = app
            .gql_ok(Some(&admin), "{ me { email } }", json!({}))
            .await;
        assert_eq!(data["me"]["email"], ADMIN_EMAIL);
    }
);

e2e_test!(ten_thousand_aliases_are_refused_cheaply, |app| async move {
    let token = app.admin_token().await;
    let aliases: String = (0..10_000).map(|i| format!("a{i}: __typename ")).collect();
    let started = Instant::now();
    let response = app
        .gql(Some(&token), &format!("{{ {aliases} }}"), json!({}))
        .await;
    let took = started.elapsed();
    assert_eq!(code_of(&response), "BAD_USER_INPUT", "{response}");
    let message = first_error(&response)["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("aliases"), "{message}");
    assert!(response["data"].is_null(), "nothing is executed");
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // 101 aliases are over the default limit of 100; 100 are fine.
    let aliases = |n: usize| -> String {
        let fields: String = (0..n).map(|i| format!("a{i}: __typename ")).collect();
        format!("{{ {fields} }}")
    };
    assert_eq!(
        app.gql_err_code(Some(&token), &aliases(101), json!({}))
            .await,
        "BAD_USER_INPUT"
    );
    app.gql_ok(Some(&token), &aliases(100), json!({})).await;
    assert_still_serving(&app).await;
});

e2e_test!(
    alias_limit_is_configurable,
    TestApp::builder().env("PLAYGROUND_MAX_QUERY_ALIASES", 2),
    |app| async move {
        let token = app.admin_token().await;
        app.gql_ok(Some(&token), "{ a: me { id } b: me { id } }", json!({}))
            .await;
        // Aliases in fragments count too.
        let response = app
            .gql(
                Some(&token),
                "{ a: me { ...F } } fragment F on User { b: id c: email }",
                json!({}),
            )
            .await;
        assert_eq!(code_of(&response), "BAD_USER_INPUT", "{response}");
    }
);

e2e_test!(batched_requests_are_refused, |app| async move {
    let token = app.admin_token().await;
    let batch: Vec<Value> = (0..11)
        .map(|_| json!({ "query": "{ me { email } }" }))
        .collect();
    for body in [json!(batch), json!([{ "query": "{ me { email } }" }])] {
        let response = app
            .http()
            .post(app.url("/graphql"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("POST a batch");
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.expect("a JSON error");
        assert_eq!(code_of(&body), "BAD_USER_INPUT", "{body}");
        let message = first_error(&body)["message"].as_str().unwrap_or_default();
        assert!(message.contains("batch"), "{message}");
    }
    assert_still_serving(&app).await;
});

e2e_test!(a_ten_megabyte_query_is_refused_fast, |app| async move {
    let token = app.admin_token().await;
    let query = format!("{{ me {{ email }} }}{}", " ".repeat(10 * 1024 * 1024));
    let started = Instant::now();
    let response = app
        .http()
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("POST a 10 MB query");
    let status = response.status();
    let text = response.text().await.expect("response body");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    if status != 413 {
        let body: Value = serde_json::from_str(&text).expect("a JSON response");
        assert_eq!(code_of(&body), "BAD_USER_INPUT", "{status} {body}");
        let message = first_error(&body)["message"].as_str().unwrap_or_default();
        assert!(message.contains("too long"), "{message}");
        assert!(body["data"].is_null());
    }
    assert_still_serving(&app).await;
});

e2e_test!(
    websocket_messages_over_the_limit_close_the_connection,
    TestApp::builder().env("PLAYGROUND_MAX_WS_MESSAGE_BYTES", 64 * 1024),
    |app| async move {
        let token = app.admin_token().await;
        let mut client = WsClient::connect_with_token(&app, WsProtocol::TransportWs, &token).await;
        let padding = " ".repeat(100 * 1024);
        client
            .subscribe("big", &format!("{{ me {{ email }} }}{padding}"), json!({}))
            .await;
        match client.next_event().await {
            WsEvent::Closed { .. } => {}
            other => panic!("a message over the limit must close the connection: {other:?}"),
        }
        // A message under the limit on a new connection works, and so does HTTP.
        let mut client = WsClient::connect_with_token(&app, WsProtocol::TransportWs, &token).await;
        client
            .subscribe("small", "{ me { email } }", json!({}))
            .await;
        assert_eq!(client.next_data().await["me"]["email"], ADMIN_EMAIL);
        assert_still_serving(&app).await;
    }
);

/// The error code of an operation that failed: an `error` message or a result with errors.
fn operation_error_code(event: &WsEvent) -> Option<String> {
    let error = match event {
        WsEvent::Error(payload) => payload.get(0).cloned().unwrap_or(payload.clone()),
        WsEvent::Next(payload) => payload["errors"].get(0)?.clone(),
        _ => return None,
    };
    error["extensions"]["code"].as_str().map(str::to_owned)
}

const RUN_STATUS: &str = "subscription($id: ID!) { runStatus(runId: $id) { status } }";

e2e_test!(
    subscriptions_are_capped_per_user_across_connections,
    TestApp::builder().env("PLAYGROUND_MAX_SUBSCRIPTIONS_PER_USER", 2),
    |app| async move {
        let dev = app.create_user("subs@example.com", "DEVELOPER").await;
        let program_id = create_program_named(&app, &dev, "subs").await;
        let environment_id = create_ready_environment(&app, &dev, "subs-env").await;
        let run = create_run(&app, &dev, &program_id, &environment_id).await;
        let run_id = id_of(&run);
        let vars = json!({ "id": run_id });

        let mut first = WsClient::connect_with_token(&app, WsProtocol::TransportWs, &dev).await;
        first.subscribe("1", RUN_STATUS, vars.clone()).await;
        assert_eq!(first.next_data().await["runStatus"]["status"], "QUEUED");
        let mut second = WsClient::connect_with_token(&app, WsProtocol::LegacyWs, &dev).await;
        second.subscribe("2", RUN_STATUS, vars.clone()).await;
        assert_eq!(second.next_data().await["runStatus"]["status"], "QUEUED");

        // The third, on either connection, is refused with a code; the connection stays open.
        second.subscribe("3", RUN_STATUS, vars.clone()).await;
        let event = second.next_event().await;
        assert_eq!(
            operation_error_code(&event).as_deref(),
            Some("RATE_LIMITED"),
            "{event:?}"
        );
        second.subscribe("4", "{ me { email } }", json!({})).await;
        let data = loop {
            match second.next_event().await {
                WsEvent::Next(payload) => break payload["data"].clone(),
                WsEvent::Complete => continue,
                other => panic!("the connection must stay usable: {other:?}"),
            }
        };
        assert_eq!(data["me"]["email"], "subs@example.com");

        // Other users have slots of their own.
        let admin = app.admin_token().await;
        let mut other = WsClient::connect_with_token(&app, WsProtocol::TransportWs, &admin).await;
        other.subscribe("a", RUN_STATUS, vars.clone()).await;
        assert_eq!(other.next_data().await["runStatus"]["status"], "QUEUED");

        // Closing a connection frees its subscriptions.
        drop(first);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let id = format!("retry-{attempt}");
            second.subscribe(&id, RUN_STATUS, vars.clone()).await;
            let event = loop {
                match second.next_event().await {
                    WsEvent::Complete => continue,
                    event => break event,
                }
            };
            match operation_error_code(&event).as_deref() {
                None => {
                    let WsEvent::Next(payload) = &event else {
                        panic!("unexpected {event:?}");
                    };
                    assert_eq!(payload["data"]["runStatus"]["status"], "QUEUED");
                    break;
                }
                Some("RATE_LIMITED") if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => panic!("the slot was not freed: {other:?} {event:?}"),
            }
        }
    }
);

e2e_test!(
    cors_allows_only_the_configured_origins,
    TestApp::builder().env(
        "PLAYGROUND_CORS_ORIGINS",
        "https://app.example.com, https://other.example.com"
    ),
    |app| async move {
        let token = app.admin_token().await;
        for origin in ["https://app.example.com", "https://evil.example.com"] {
            let response = app
                .http()
                .post(app.url("/graphql"))
                .header("Origin", origin)
                .bearer_auth(&token)
                .json(&json!({ "query": "{ me { email } }" }))
                .send()
                .await
                .expect("POST with an Origin");
            assert_eq!(response.status(), 200);
            let allowed = response
                .headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap_or_default().to_owned());
            if origin == "https://evil.example.com" {
                assert_eq!(allowed, None, "{origin} is not allowed");
            } else {
                assert_eq!(allowed.as_deref(), Some(origin));
            }
        }
        // A preflight for an allowed origin is answered.
        let preflight = app
            .http()
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("Origin", "https://other.example.com")
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
            .await
            .expect("OPTIONS preflight");
        assert!(preflight.status().is_success(), "{}", preflight.status());
        assert_eq!(
            preflight.headers()["access-control-allow-origin"],
            "https://other.example.com"
        );
        let allowed_headers = preflight.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap_or_default()
            .to_lowercase();
        assert!(
            allowed_headers.contains("authorization"),
            "{allowed_headers}"
        );
    }
);

e2e_test!(no_cors_headers_by_default, |app| async move {
    let response = app
        .http()
        .post(app.url("/graphql"))
        .header("Origin", "https://app.example.com")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .expect("POST with an Origin");
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
});

e2e_test!(
    cors_star_allows_any_origin,
    TestApp::builder().env("PLAYGROUND_CORS_ORIGINS", "*"),
    |app| async move {
        let response = app
            .http()
            .post(app.url("/graphql"))
            .header("Origin", "https://anything.example.com")
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await
            .expect("POST with an Origin");
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
    }
);
