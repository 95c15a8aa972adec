//! The `executors` query: every executor kind with its availability and a detail line.

use crate::support::*;

e2e_test!(
    executors_lists_every_kind_with_its_health,
    |app| async move {
        let viewer = app.create_user("viewer@example.com", "VIEWER").await;
        for token in [app.admin_token().await, viewer] {
            let data = app
                .gql_ok(
                    Some(&token),
                    "{ executors { kind available detail } }",
                    json!({}),
                )
                .await;
            let executors = data["executors"].as_array().expect("a list");
            let mut kinds: Vec<&str> = executors
                .iter()
                .map(|e| e["kind"].as_str().unwrap())
                .collect();
            kinds.sort();
            assert_eq!(
                kinds,
                ["DOCKER", "KUBERNETES", "WASM"],
                "each kind once: {data}"
            );
            for executor in executors {
                let detail = executor["detail"].as_str().unwrap_or_default();
                assert!(
                    !detail.trim().is_empty(),
                    "every executor explains itself: {executor}"
                );
                assert!(executor["available"].is_boolean());
            }
            let wasm = executors.iter().find(|e| e["kind"] == "WASM").unwrap();
            assert_eq!(
                wasm["available"], true,
                "the in-process WASM executor is always available"
            );
        }
        let code = app
            .gql_err_code(None, "{ executors { kind } }", json!({}))
            .await;
        assert_eq!(code, "UNAUTHENTICATED");
    }
);
