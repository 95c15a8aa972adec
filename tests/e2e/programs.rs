//! Programs: files and their hashes, text and binary content, versions on update, search and
//! tag filters, cursor pagination with `totalCount` and the cap of 500, and deletion.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::support::*;

const BINARY: [u8; 6] = [0x00, 0x9f, 0x92, 0x96, 0xff, 0x0a];
const UPDATE: &str = "mutation($id: ID!, $input: UpdateProgramInput!) { updateProgram(id: $id, input: $input) { id name description tags entrypoint version updatedAt files { path content } } }";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn file<'a>(program: &'a Value, path: &str) -> &'a Value {
    program["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|file| file["path"] == path)
        .unwrap_or_else(|| panic!("no file {path} in {program}"))
}

e2e_test!(
    create_and_read_a_program_with_text_and_binary_files,
    |app| async move {
        let developer = app.create_user("dev@example.com", "DEVELOPER").await;
        let text = "import sys\nprint('héllo', sys.argv)\n";
        let input = json!({
            "name": "Report generator",
            "description": "makes reports",
            "tags": ["etl", "nightly"],
            "runtime": "PYTHON",
            "entrypoint": "src/main.py",
            "files": [
                { "path": "src/main.py", "content": text },
                { "path": "data/blob.bin", "contentBase64": STANDARD.encode(BINARY) },
                { "path": "README.md", "contentBase64": STANDARD.encode("# readme\n") },
            ],
        });
        let created = create_program(&app, &developer, input).await;
        assert_eq!(created["name"], "Report generator");
        assert_eq!(created["description"], "makes reports");
        assert_eq!(created["tags"], json!(["etl", "nightly"]));
        assert_eq!(created["runtime"], "PYTHON");
        assert_eq!(created["entrypoint"], "src/main.py");
        assert_eq!(created["version"], 1);
        assert_eq!(created["owner"]["email"], "dev@example.com");
        assert_eq!(created["myPermission"], "ADMIN");
        assert_eq!(created["files"].as_array().map(Vec::len), Some(3));

        let fetched = get_program(&app, &developer, created["id"].as_str().unwrap()).await;
        for program in [&created, &fetched] {
            let main = file(program, "src/main.py");
            assert_eq!(main["content"], text);
            assert_eq!(main["size"], text.len());
            assert_eq!(main["sha256"], sha256_hex(text.as_bytes()));
            assert_eq!(main["contentBase64"], STANDARD.encode(text));
            let blob = file(program, "data/blob.bin");
            assert!(blob["content"].is_null(), "binary content is null: {blob}");
            assert_eq!(blob["size"], BINARY.len());
            assert_eq!(blob["sha256"], sha256_hex(&BINARY));
            let decoded = STANDARD
                .decode(blob["contentBase64"].as_str().expect("base64"))
                .expect("valid base64");
            assert_eq!(decoded, BINARY);
            assert_eq!(
                file(program, "README.md")["content"],
                "# readme\n",
                "UTF-8 given as base64 is text"
            );
        }
        assert_eq!(fetched["name"], created["name"]);
        assert_eq!(fetched["createdAt"], created["createdAt"]);

        // A program without description and tags gets the defaults.
        let plain = create_program(&app, &developer, program_input("plain")).await;
        assert_eq!(plain["description"], "");
        assert_eq!(plain["tags"], json!([]));
    }
);

e2e_test!(updating_files_makes_a_new_version, |app| async move {
    let developer = app.create_user("dev@example.com", "DEVELOPER").await;
    let id = create_program_named(&app, &developer, "versioned").await;
    let input = json!({ "files": [{ "path": "v2.py", "content": "print(2)\n" }, { "path": "lib.py", "content": "" }], "entrypoint": "v2.py" });
    let updated = app
        .gql_ok(
            Some(&developer),
            UPDATE,
            json!({ "id": id, "input": input }),
        )
        .await["updateProgram"]
        .clone();
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["entrypoint"], "v2.py");
    let mut paths: Vec<&str> = updated["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(paths, ["lib.py", "v2.py"], "files are replaced as a whole");

    let input = json!({ "name": "renamed", "description": "d", "tags": ["t"] });
    let renamed = app
        .gql_ok(
            Some(&developer),
            UPDATE,
            json!({ "id": id, "input": input }),
        )
        .await["updateProgram"]
        .clone();
    assert_eq!(renamed["version"], 2, "no files, no new version");
    assert_eq!(renamed["name"], "renamed");
    assert_eq!(renamed["description"], "d");
    assert_eq!(renamed["tags"], json!(["t"]));
    assert_eq!(renamed["entrypoint"], "v2.py");
    assert_eq!(renamed["files"].as_array().map(Vec::len), Some(2));

    let same = json!({ "files": [{ "path": "v2.py", "content": "print(3)\n" }] });
    let third = app
        .gql_ok(Some(&developer), UPDATE, json!({ "id": id, "input": same }))
        .await["updateProgram"]
        .clone();
    assert_eq!(third["version"], 3);
    assert_eq!(file(&third, "v2.py")["content"], "print(3)\n");
    let fetched = get_program(&app, &developer, &id).await;
    assert_eq!(fetched["version"], 3);
    assert_eq!(fetched["name"], "renamed");
});

e2e_test!(search_and_tag_filters, |app| async move {
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    let with = |name: &str, description: &str, tags: &[&str]| {
        let mut input = program_input(name);
        input["description"] = json!(description);
        input["tags"] = json!(tags);
        input
    };
    let alpha = id_of(&create_program(&app, &token, with("Alpha Report", "", &["etl"])).await);
    let described = id_of(
        &create_program(
            &app,
            &token,
            with("other", "feeds the ALPHA dashboard", &["etl-2"]),
        )
        .await,
    );
    let beta =
        id_of(&create_program(&app, &token, with("beta", "nothing", &["ETL", "nightly"])).await);

    let found = list_programs(&app, &token, json!({ "search": "alpha" })).await;
    let mut ids = node_ids(&found);
    ids.sort();
    let mut expected = vec![alpha.clone(), described.clone()];
    expected.sort();
    assert_eq!(
        ids, expected,
        "search matches name or description, case-insensitively"
    );
    assert_eq!(found["totalCount"], 2);

    let tagged = list_programs(&app, &token, json!({ "tag": "etl" })).await;
    assert_eq!(node_ids(&tagged), [alpha.as_str()], "tag is an exact match");
    assert_eq!(tagged["totalCount"], 1);
    let both = list_programs(&app, &token, json!({ "tag": "nightly", "search": "BET" })).await;
    assert_eq!(node_ids(&both), [beta]);
    let none = list_programs(&app, &token, json!({ "search": "zzz-no-match" })).await;
    assert_eq!(none["totalCount"], 0);
    assert_eq!(none["edges"], json!([]));
    assert_eq!(none["pageInfo"]["hasNextPage"], false);
});

e2e_test!(programs_are_paginated_newest_first, |app| async move {
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(create_program_named(&app, &token, &format!("page-{i}")).await);
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    let all = list_programs(&app, &token, json!({})).await;
    assert_eq!(
        node_ids(&all),
        newest_first,
        "default page holds all, newest first"
    );

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for page_idx in 0..3 {
        let page = list_programs(&app, &token, json!({ "first": 2, "after": after })).await;
        assert_eq!(page["totalCount"], 5, "totalCount ignores paging");
        let ids = node_ids(&page);
        let has_next = page_idx < 2;
        assert_eq!(
            ids.len(),
            if has_next { 2 } else { 1 },
            "page {page_idx}: {page}"
        );
        assert_eq!(page["pageInfo"]["hasNextPage"], has_next, "page {page_idx}");
        let last_cursor = page["edges"].as_array().unwrap().last().unwrap()["cursor"].clone();
        assert_eq!(page["pageInfo"]["endCursor"], last_cursor);
        seen.extend(ids);
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(
        seen, newest_first,
        "pages follow each other without gap or duplicate"
    );

    let negative = "query { programs(first: -1) { totalCount } }";
    assert_eq!(
        app.gql_err_code(Some(&token), negative, json!({})).await,
        "BAD_USER_INPUT"
    );
    let garbage = "query { programs(after: \"definitely-not-a-cursor\") { totalCount } }";
    assert_eq!(
        app.gql_err_code(Some(&token), garbage, json!({})).await,
        "BAD_USER_INPUT"
    );
});

e2e_test!(first_is_capped_at_500, |app| async move {
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    for batch in 0..6 {
        let mutations: String = (0..(if batch < 5 { 100 } else { 1 }))
            .map(|i| {
                format!("p{i}: createProgram(input: {{ name: \"bulk-{batch}-{i}\", runtime: SHELL, entrypoint: \"run.sh\", files: [{{ path: \"run.sh\", content: \"echo {i}\" }}] }}) {{ id }} ")
            })
            .collect();
        app.gql_ok(
            Some(&token),
            &format!("mutation {{ {mutations} }}"),
            json!({}),
        )
        .await;
    }
    let page = list_programs(&app, &token, json!({ "first": 1000 })).await;
    assert_eq!(page["totalCount"], 501);
    assert_eq!(node_ids(&page).len(), 500, "first is capped at 500");
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let rest = list_programs(
        &app,
        &token,
        json!({ "first": 1000, "after": page["pageInfo"]["endCursor"] }),
    )
    .await;
    assert_eq!(node_ids(&rest).len(), 1);
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);
    let default_page = list_programs(&app, &token, json!({})).await;
    assert_eq!(node_ids(&default_page).len(), 50, "first defaults to 50");
});

e2e_test!(deleting_a_program_removes_it, |app| async move {
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    let kept = create_program_named(&app, &token, "kept").await;
    let doomed = create_program_named(&app, &token, "doomed").await;
    let delete = "mutation($id: ID!) { deleteProgram(id: $id) }";
    let data = app
        .gql_ok(Some(&token), delete, json!({ "id": doomed }))
        .await;
    assert_eq!(data["deleteProgram"], true);
    assert!(get_program(&app, &token, &doomed).await.is_null());
    let listed = list_programs(&app, &token, json!({})).await;
    assert_eq!(node_ids(&listed), [kept]);
    assert_eq!(listed["totalCount"], 1);
    assert_eq!(
        app.gql_err_code(Some(&token), delete, json!({ "id": doomed }))
            .await,
        "NOT_FOUND"
    );
});

e2e_test!(program_ids_are_checked, |app| async move {
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    let query = "query($id: ID!) { program(id: $id) { id } }";
    assert_eq!(
        app.gql_err_code(Some(&token), query, json!({ "id": "not-a-uuid" }))
            .await,
        "BAD_USER_INPUT"
    );
    let missing = uuid::Uuid::new_v4().to_string();
    let data = app
        .gql_ok(Some(&token), query, json!({ "id": missing }))
        .await;
    assert!(data["program"].is_null());
    let update = "mutation($id: ID!) { updateProgram(id: $id, input: { name: \"x\" }) { id } }";
    assert_eq!(
        app.gql_err_code(Some(&token), update, json!({ "id": missing }))
            .await,
        "NOT_FOUND"
    );
    assert_eq!(
        app.gql_err_code(Some(&token), update, json!({ "id": "1234" }))
            .await,
        "BAD_USER_INPUT"
    );
});
