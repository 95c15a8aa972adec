//! Bad input never crashes the server: malformed bodies, syntax errors, wrong variable types,
//! unknown fields and out-of-range numbers give errors, and the server keeps serving.

use crate::support::*;

/// POSTs a raw body to /graphql; returns the status and the body text.
async fn post_raw(app: &TestApp, token: &str, content_type: &str, body: &str) -> (u16, String) {
    let response = app
        .http()
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .expect("POST /graphql");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

async fn assert_still_serving(app: &TestApp, token: &str) {
    let healthz = app
        .http()
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(healthz.status(), 200);
    let data = app.gql_ok(Some(token), "{ me { email } }", json!({})).await;
    assert_eq!(data["me"]["email"], ADMIN_EMAIL);
}

e2e_test!(malformed_bodies_are_client_errors, |app| async move {
    let token = app.admin_token().await;
    let bodies = [
        ("application/json", "{\"query\": "),
        ("application/json", "not json at all"),
        ("application/json", "[1, 2, 3"),
        ("application/json", "{\"variables\": {}}"),
        ("application/json", "{\"query\": 42}"),
        ("application/json", ""),
        ("text/plain", "{ me { email } }"),
        ("application/json", "\u{0}\u{1}\u{2}"),
    ];
    for (content_type, body) in bodies {
        let (status, text) = post_raw(&app, &token, content_type, body).await;
        let refused = (400..500).contains(&status)
            || serde_json::from_str::<Value>(&text)
                .is_ok_and(|v| v["errors"].as_array().is_some_and(|e| !e.is_empty()));
        assert!(
            refused,
            "{content_type} body {body:?} gave {status}: {text}"
        );
        assert!(
            status < 500,
            "{content_type} body {body:?} gave {status}: {text}"
        );
    }
    assert_still_serving(&app, &token).await;
});

e2e_test!(
    invalid_documents_and_variables_are_errors,
    |app| async move {
        let token = app.admin_token().await;
        let cases = [
            ("{ me { email }", json!({})),
            ("", json!({})),
            ("{ me { noSuchField } }", json!({})),
            ("{ noSuchQuery }", json!({})),
            ("query($id: ID!) { program(id: $id) { id } }", json!({})),
            (
                "query($id: ID!) { program(id: $id) { id } }",
                json!({ "id": { "nested": true } }),
            ),
            (
                "query($first: Int) { programs(first: $first) { totalCount } }",
                json!({ "first": "many" }),
            ),
            (
                "query($first: Int) { programs(first: $first) { totalCount } }",
                json!({ "first": 1e40 }),
            ),
            ("{ programs(first: 99999999999) { totalCount } }", json!({})),
            (
                "mutation($input: CreateProgramInput!) { createProgram(input: $input) { id } }",
                json!({ "input": { "name": 5 } }),
            ),
            (
                "mutation($input: CreateProgramInput!) { createProgram(input: $input) { id } }",
                json!({ "input": { "name": "x", "runtime": "COBOL", "entrypoint": "a", "files": [] } }),
            ),
            (
                "mutation($input: CreateEnvironmentInput!) { createEnvironment(input: $input) { id } }",
                json!({ "input": "just a string" }),
            ),
            (
                "subscription { runStatus(runId: \"x\") { status } }",
                json!({}),
            ),
            ("query A { me { id } } query B { me { id } }", json!({})),
        ];
        for (query, variables) in cases {
            let response = app.gql(Some(&token), query, variables.clone()).await;
            let errors = response["errors"].as_array();
            assert!(
                errors.is_some_and(|errors| !errors.is_empty()),
                "{query} with {variables} must give an error: {response}"
            );
            assert!(
                response["data"]["createProgram"].is_null(),
                "nothing created: {response}"
            );
        }
        let listed = list_programs(&app, &token, json!({})).await;
        assert_eq!(listed["totalCount"], 0, "no program came out of bad input");
        assert_still_serving(&app, &token).await;
    }
);

e2e_test!(unusual_text_is_stored_as_given, |app| async move {
    let token = app.admin_token().await;
    create_program_named(&app, &token, "plain").await;
    let mut input = program_input("名前 🚀 \"quoted\" <b> '; --");
    input["description"] = json!("line\nbreak\ttab");
    input["files"] = json!([{ "path": "dir with space/ü.py", "content": "print('✓')" }]);
    input["entrypoint"] = json!("dir with space/ü.py");
    let program = create_program(&app, &token, input).await;
    let fetched = get_program(&app, &token, &id_of(&program)).await;
    assert_eq!(fetched["name"], "名前 🚀 \"quoted\" <b> '; --");
    assert_eq!(fetched["description"], "line\nbreak\ttab");
    assert_eq!(fetched["files"][0]["path"], "dir with space/ü.py");
    assert_eq!(fetched["files"][0]["content"], "print('✓')");
    for text in ["%", "_", "%_'; DROP TABLE programs; --"] {
        let search = list_programs(&app, &token, json!({ "search": text })).await;
        assert_eq!(
            search["totalCount"], 0,
            "search {text:?} is literal text, not SQL or a pattern"
        );
    }
    let search = list_programs(&app, &token, json!({ "search": "🚀 \"QUOTED\"" })).await;
    assert_eq!(search["totalCount"], 1);
    assert_still_serving(&app, &token).await;
});

e2e_test!(
    nul_characters_are_stored_or_refused_never_internal,
    |app| async move {
        // PostgreSQL text cannot hold U+0000, SQLite can: either way the client must get the
        // program back as given or a BAD_USER_INPUT, not an internal error.
        let token = app.admin_token().await;
        let mut cases = Vec::new();
        let mut input = program_input("nul in description");
        input["description"] = json!("before\u{0}after");
        cases.push(input);
        let mut input = program_input("nul\u{0}name");
        input["description"] = json!("");
        cases.push(input);
        let mut input = program_input("nul in tag");
        input["tags"] = json!(["a\u{0}b"]);
        cases.push(input);
        let mut input = program_input("nul in path");
        input["files"] =
            json!([{ "path": "main.py", "content": "" }, { "path": "a\u{0}b.py", "content": "" }]);
        cases.push(input);
        for input in cases {
            let response = app
                .gql(
                    Some(&token),
                    &create_program_mutation(),
                    json!({ "input": input }),
                )
                .await;
            if let Some(program) = response["data"]["createProgram"].as_object() {
                let fetched = get_program(&app, &token, program["id"].as_str().unwrap()).await;
                for field in ["name", "description", "tags"] {
                    if let Some(given) = input.get(field) {
                        assert_eq!(&fetched[field], given, "{field} round-trips");
                    }
                }
                let mut paths: Vec<&Value> = fetched["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| &f["path"])
                    .collect();
                let mut given: Vec<&Value> = input["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| &f["path"])
                    .collect();
                paths.sort_by_key(|path| path.to_string());
                given.sort_by_key(|path| path.to_string());
                assert_eq!(paths, given, "paths round-trip");
            } else {
                assert_eq!(
                    response["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
                    "input {input}: {response}"
                );
            }
        }
        assert_still_serving(&app, &token).await;
    }
);
