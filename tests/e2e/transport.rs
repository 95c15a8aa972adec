//! HTTP and WebSocket transport: GraphiQL, health and readiness, both WebSocket protocols with
//! authentication in `connection_init`, the request body limit and the query depth and
//! complexity limits.

use std::time::{Duration, Instant};

use crate::support::db::terminate_postgres_database;
use crate::support::ws::bearer_payload;
use crate::support::*;

e2e_test!(graphiql_is_served_on_get, |app| async move {
    let response = app
        .http()
        .get(app.url("/graphql"))
        .send()
        .await
        .expect("GET /graphql");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/html"),
        "content-type {content_type}"
    );
    let page = response.text().await.expect("page body");
    assert!(
        page.to_lowercase().contains("graphiql"),
        "not a GraphiQL page: {page}"
    );
    assert!(
        page.contains("/graphql/ws"),
        "GraphiQL must know the subscription endpoint: {page}"
    );
});

db_test!(
    healthz_and_readyz_follow_the_process_and_the_database,
    |db| async move {
        let app = db.start(TestApp::builder()).await;
        let healthz = app
            .http()
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("GET /healthz");
        assert_eq!(healthz.status(), 200);
        assert_eq!(healthz.text().await.expect("body").trim(), "ok");
        let readyz = app
            .http()
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("GET /readyz");
        assert_eq!(readyz.status(), 200, "the database answers");

        if db.backend() == Backend::Postgres {
            // Take the database away: readiness goes down, liveness stays up.
            terminate_postgres_database(&db).await;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let readyz = app
                    .http()
                    .get(app.url("/readyz"))
                    .send()
                    .await
                    .expect("GET /readyz");
                if readyz.status() == 503 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "/readyz still {} without a database",
                    readyz.status()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let healthz = app
                .http()
                .get(app.url("/healthz"))
                .send()
                .await
                .expect("GET /healthz");
            assert_eq!(healthz.status(), 200, "the process is still up");
        }
    }
);

e2e_test!(
    websocket_authenticates_in_connection_init,
    |app| async move {
        app.create_user("ws-dev@example.com", "DEVELOPER").await;
        let api_token = {
            let token = app.login("ws-dev@example.com", USER_PASSWORD).await;
            let data = app
                .gql_ok(
                    Some(&token),
                    "mutation { createApiToken(name: \"ws\") { token } }",
                    json!({}),
                )
                .await;
            data["createApiToken"]["token"]
                .as_str()
                .expect("token")
                .to_owned()
        };
        for protocol in [WsProtocol::TransportWs, WsProtocol::LegacyWs] {
            for (label, token) in [
                ("admin JWT", app.admin_token().await),
                ("API token", api_token.clone()),
            ] {
                let mut client = WsClient::connect_with_token(&app, protocol, &token).await;
                client.subscribe("q1", "{ me { email } }", json!({})).await;
                let data = client.next_data().await;
                let expected = if label == "admin JWT" {
                    ADMIN_EMAIL
                } else {
                    "ws-dev@example.com"
                };
                assert_eq!(data["me"]["email"], expected, "{protocol:?} with {label}");
                client.expect_complete().await;
            }
        }
    }
);

e2e_test!(websocket_rejects_a_bad_token, |app| async move {
    let mut client = WsClient::connect(&app, WsProtocol::TransportWs).await;
    match client.init(bearer_payload("not-a-token")).await {
        Err(WsEvent::Closed { code, reason }) => {
            assert_eq!(
                code,
                Some(4403),
                "graphql-transport-ws closes with 4403 (reason {reason:?})"
            );
        }
        other => panic!("graphql-transport-ws accepted a bad token: {other:?}"),
    }

    let mut client = WsClient::connect(&app, WsProtocol::LegacyWs).await;
    match client.init(bearer_payload("not-a-token")).await {
        Err(WsEvent::ConnectionError(payload)) => {
            assert!(!payload.is_null(), "connection_error carries a payload");
        }
        other => panic!("graphql-ws must answer connection_error to a bad token: {other:?}"),
    }

    // An expired-looking, well-formed but unsigned JWT is no better.
    let forged = crate::support::jwt::unsigned(
        &json!({ "sub": uuid::Uuid::new_v4().to_string(), "exp": 4_000_000_000u64 }),
    );
    let mut client = WsClient::connect(&app, WsProtocol::TransportWs).await;
    assert!(
        client.init(bearer_payload(&forged)).await.is_err(),
        "an unsigned JWT is rejected"
    );
});

e2e_test!(
    request_body_over_the_limit_gets_413,
    TestApp::builder().env("PLAYGROUND_MAX_BODY_BYTES", 4096),
    |app| async move {
        let token = app.admin_token().await;
        let big = "x".repeat(10_000);
        let response = app
            .http()
            .post(app.url("/graphql"))
            .bearer_auth(&token)
            .json(&json!({ "query": "query($s: String) { me { email } }", "variables": { "s": big } }))
            .send()
            .await
            .expect("POST a large body");
        assert_eq!(response.status(), 413);
        let data = app
            .gql_ok(Some(&token), "{ me { email } }", json!({}))
            .await;
        assert_eq!(
            data["me"]["email"], ADMIN_EMAIL,
            "small requests still work"
        );
    }
);

/// `{ __schema { types { ofType { ofType … } } } }` nested `n_levels` deep.
fn deep_introspection(n_levels: usize) -> String {
    let mut selection = "name".to_owned();
    for _ in 0..n_levels {
        selection = format!("name ofType {{ {selection} }}");
    }
    format!("{{ __schema {{ types {{ {selection} }} }} }}")
}

fn assert_limit_error(response: &Value, words: &[&str]) {
    let message = response["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        words.iter().any(|word| message.contains(word)),
        "expected an error mentioning {words:?}, got {response}"
    );
    assert!(
        response["data"].is_null(),
        "nothing is executed: {response}"
    );
}

e2e_test!(
    queries_deeper_than_the_default_limit_are_rejected,
    |app| async move {
        let token = app.admin_token().await;
        app.gql_ok(Some(&token), &deep_introspection(3), json!({}))
            .await;
        let response = app
            .gql(Some(&token), &deep_introspection(25), json!({}))
            .await;
        assert_limit_error(&response, &["deep", "depth"]);
    }
);

e2e_test!(
    query_depth_limit_is_configurable,
    TestApp::builder().arg("--max-query-depth").arg("3"),
    |app| async move {
        let token = app.admin_token().await;
        app.gql_ok(Some(&token), "{ me { email } }", json!({}))
            .await;
        let response = app
            .gql(
                Some(&token),
                "{ programs { edges { node { owner { email } } } } }",
                json!({}),
            )
            .await;
        assert_limit_error(&response, &["deep", "depth"]);
    }
);

e2e_test!(
    query_complexity_limit_is_configurable,
    TestApp::builder().env("PLAYGROUND_MAX_QUERY_COMPLEXITY", 20),
    |app| async move {
        let token = app.admin_token().await;
        app.gql_ok(Some(&token), "{ me { id email } }", json!({}))
            .await;
        let aliases: String = (0..30)
            .map(|i| format!("m{i}: me {{ id email }} "))
            .collect();
        let response = app
            .gql(Some(&token), &format!("{{ {aliases} }}"), json!({}))
            .await;
        assert_limit_error(&response, &["complex"]);
    }
);

e2e_test!(
    default_complexity_limit_rejects_huge_queries,
    |app| async move {
        let token = app.admin_token().await;
        let aliases: String = (0..4000)
            .map(|i| format!("m{i}: me {{ id email }} "))
            .collect();
        let response = app
            .gql(Some(&token), &format!("{{ {aliases} }}"), json!({}))
            .await;
        assert_limit_error(&response, &["complex"]);
    }
);
