//! Program validation: names, tags, file paths, duplicates, the entrypoint, exactly one of
//! `content`/`contentBase64`, the file count and size limits; a refused create or update
//! leaves nothing half-written.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::support::*;

const UPDATE: &str = "mutation($id: ID!, $input: UpdateProgramInput!) { updateProgram(id: $id, input: $input) { id version } }";

fn with_files(files: Value, entrypoint: &str) -> Value {
    let mut input = program_input("validated");
    input["files"] = files;
    input["entrypoint"] = json!(entrypoint);
    input
}

/// `createProgram(input)` must fail with BAD_USER_INPUT naming one of `words`, and must not
/// leave a program behind.
async fn assert_create_rejected(app: &TestApp, token: &str, input: Value, words: &[&str]) {
    let before = list_programs(app, token, json!({})).await;
    let error = app
        .gql_err(
            Some(token),
            &create_program_mutation(),
            json!({ "input": input }),
        )
        .await;
    assert_eq!(error.code, "BAD_USER_INPUT", "input {input}: {error:?}");
    let message = error.message.to_lowercase();
    assert!(
        words.iter().any(|word| message.contains(word)),
        "the message should name {words:?}: {:?} (input {input})",
        error.message
    );
    let after = list_programs(app, token, json!({})).await;
    assert_eq!(
        before, after,
        "a refused program leaves nothing behind (input {input})"
    );
}

async fn assert_create_accepted(app: &TestApp, token: &str, input: Value) {
    create_program(app, token, input).await;
}

e2e_test!(program_names_are_validated, |app| async move {
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    for name in [String::new(), "   ".to_owned(), "n".repeat(101)] {
        let mut input = program_input("x");
        input["name"] = json!(name);
        assert_create_rejected(&app, &token, input, &["name"]).await;
    }
    let mut input = program_input("x");
    input["name"] = json!("n".repeat(100));
    assert_create_accepted(&app, &token, input).await;
});

e2e_test!(program_tags_are_validated, |app| async move {
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    let twenty_one: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    for tags in [json!([""]), json!(["t".repeat(51)]), json!(twenty_one)] {
        let mut input = program_input("tagged");
        input["tags"] = tags;
        assert_create_rejected(&app, &token, input, &["tag"]).await;
    }
    let mut twenty: Vec<String> = (0..19).map(|i| format!("t{i}")).collect();
    twenty.push("t".repeat(50));
    let mut input = program_input("tagged");
    input["tags"] = json!(twenty);
    assert_create_accepted(&app, &token, input).await;
});

e2e_test!(file_paths_are_validated, |app| async move {
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    let bad_paths = [
        "../evil.py",
        "lib/../../evil.py",
        "a/..",
        "/etc/passwd",
        "lib\\win.py",
        "lib//a.py",
        "lib/",
        "",
    ];
    for bad_path in bad_paths {
        let files =
            json!([{ "path": "main.py", "content": "" }, { "path": bad_path, "content": "x" }]);
        assert_create_rejected(&app, &token, with_files(files, "main.py"), &["path"]).await;
    }
    let duplicates =
        json!([{ "path": "main.py", "content": "a" }, { "path": "main.py", "content": "b" }]);
    assert_create_rejected(
        &app,
        &token,
        with_files(duplicates, "main.py"),
        &["path", "duplicate"],
    )
    .await;
    let nested = json!([{ "path": "main.py", "content": "" }, { "path": "a/b/c..d/e.py", "content": "" }, { "path": ".hidden", "content": "" }]);
    assert_create_accepted(&app, &token, with_files(nested, "main.py")).await;
});

e2e_test!(the_entrypoint_must_be_one_of_the_files, |app| async move {
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    let files = json!([{ "path": "main.py", "content": "" }]);
    for entrypoint in ["missing.py", "", "MAIN.PY"] {
        assert_create_rejected(
            &app,
            &token,
            with_files(files.clone(), entrypoint),
            &["entrypoint"],
        )
        .await;
    }
    assert_create_rejected(
        &app,
        &token,
        with_files(json!([]), "main.py"),
        &["entrypoint", "file"],
    )
    .await;
});

e2e_test!(
    exactly_one_of_content_and_content_base64,
    |app| async move {
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let both =
            json!([{ "path": "main.py", "content": "a", "contentBase64": STANDARD.encode("a") }]);
        let neither = json!([{ "path": "main.py" }]);
        let bad_base64 = json!([{ "path": "main.py", "contentBase64": "!!! not base64 !!!" }]);
        for files in [both, neither, bad_base64] {
            assert_create_rejected(
                &app,
                &token,
                with_files(files, "main.py"),
                &["content", "base64"],
            )
            .await;
        }
        let empty = json!([{ "path": "main.py", "content": "" }, { "path": "empty.bin", "contentBase64": "" }]);
        assert_create_accepted(&app, &token, with_files(empty, "main.py")).await;
    }
);

e2e_test!(
    file_count_and_total_size_are_limited,
    TestApp::builder()
        .env("PLAYGROUND_MAX_FILES", 3)
        .env("PLAYGROUND_MAX_PROGRAM_BYTES", 100),
    |app| async move {
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let file =
            |path: &str, n_bytes: usize| json!({ "path": path, "content": "x".repeat(n_bytes) });
        let four = json!([file("main.py", 1), file("b", 1), file("c", 1), file("d", 1)]);
        assert_create_rejected(&app, &token, with_files(four, "main.py"), &["file"]).await;
        let three = json!([file("main.py", 1), file("b", 1), file("c", 1)]);
        assert_create_accepted(&app, &token, with_files(three, "main.py")).await;

        let too_big = json!([file("main.py", 60), file("b", 41)]);
        assert_create_rejected(
            &app,
            &token,
            with_files(too_big, "main.py"),
            &["size", "bytes", "large", "file"],
        )
        .await;
        let one_too_big = json!([file("main.py", 101)]);
        assert_create_rejected(
            &app,
            &token,
            with_files(one_too_big, "main.py"),
            &["size", "bytes", "large", "file"],
        )
        .await;
        // The limit counts decoded bytes: 80 bytes are 108 base64 characters.
        let exact = json!([file("main.py", 20), { "path": "data.bin", "contentBase64": STANDARD.encode([7u8; 80]) }]);
        assert_create_accepted(&app, &token, with_files(exact, "main.py")).await;

        // The limits hold for updates too, and a refused update changes nothing.
        let id = create_program_named(&app, &token, "limited").await;
        let four = json!([file("main.py", 1), file("b", 1), file("c", 1), file("d", 1)]);
        let code = app
            .gql_err_code(
                Some(&token),
                UPDATE,
                json!({ "id": id, "input": { "files": four } }),
            )
            .await;
        assert_eq!(code, "BAD_USER_INPUT");
        let program = get_program(&app, &token, &id).await;
        assert_eq!(program["version"], 1);
        assert_eq!(program["files"].as_array().map(Vec::len), Some(1));
    }
);

e2e_test!(refused_updates_change_nothing, |app| async move {
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    let id = create_program_named(&app, &token, "stable").await;
    let before = get_program(&app, &token, &id).await;
    let refused = [
        (json!({ "name": "" }), "name"),
        (json!({ "name": "n".repeat(101) }), "name"),
        (json!({ "tags": [""] }), "tag"),
        (json!({ "entrypoint": "missing.py" }), "entrypoint"),
        (
            json!({ "files": [{ "path": "other.py", "content": "" }] }),
            "entrypoint",
        ),
        (
            json!({ "files": [{ "path": "main.py", "content": "" }, { "path": "../x", "content": "" }] }),
            "path",
        ),
        (
            json!({ "files": [{ "path": "main.py", "content": "a", "contentBase64": "YQ==" }] }),
            "content",
        ),
    ];
    for (input, word) in refused {
        let error = app
            .gql_err(Some(&token), UPDATE, json!({ "id": id, "input": input }))
            .await;
        assert_eq!(error.code, "BAD_USER_INPUT", "{input}: {error:?}");
        assert!(
            error.message.to_lowercase().contains(word),
            "message should name {word}: {error:?}"
        );
    }
    let after = get_program(&app, &token, &id).await;
    assert_eq!(before, after, "refused updates left the program as it was");
});
