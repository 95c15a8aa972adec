//! Storage seen from outside: program files are content-addressed blobs under the data
//! directory (stored once however often they are used), SQLite runs in WAL mode, and data
//! survives a restart.

use std::path::{Path, PathBuf};

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sha2::{Digest, Sha256};

use crate::support::*;

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("read a data directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

db_test!(program_files_are_content_addressed_blobs, |db| async move {
    let app = db.start(TestApp::builder()).await;
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    let content = format!("print('{}')\n", uuid::Uuid::new_v4());
    let digest = hex::encode(Sha256::digest(content.as_bytes()));
    for name in ["first", "second"] {
        let mut input = program_input(name);
        input["files"] = json!([{ "path": "main.py", "content": content }]);
        create_program(&app, &token, input).await;
    }
    let id = create_program_named(&app, &token, "third").await;
    let update = "mutation($id: ID!, $content: String!) { updateProgram(id: $id, input: { files: [{ path: \"main.py\", content: $content }] }) { version } }";
    app.gql_ok(
        Some(&token),
        update,
        json!({ "id": id, "content": content }),
    )
    .await;

    let blobs: Vec<PathBuf> = files_under(db.data_dir())
        .into_iter()
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy() == digest)
        })
        .collect();
    assert_eq!(
        blobs.len(),
        1,
        "one blob named by its SHA-256 for three uses: {blobs:?}"
    );
    assert_eq!(
        std::fs::read(&blobs[0]).expect("read the blob"),
        content.as_bytes()
    );

    if db.backend() == Backend::Sqlite {
        let connection = db.connect().await;
        let row = connection
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "PRAGMA journal_mode",
            ))
            .await
            .expect("PRAGMA journal_mode")
            .expect("a row");
        let mode: String = row.try_get_by_index(0).expect("the journal mode");
        assert_eq!(mode.to_lowercase(), "wal", "SQLite runs in WAL mode");
        let _ = connection.close().await;
    }
});

db_test!(data_survives_a_restart, |db| async move {
    let mut app = db.start(TestApp::builder()).await;
    let token = app.create_user("dev@example.com", "DEVELOPER").await;
    let program_id = create_program_named(&app, &token, "persistent").await;
    let environment_id = create_ready_environment(&app, &token, "persistent-env").await;
    let run = create_run(&app, &token, &program_id, &environment_id).await;
    assert!(app.sigterm().await.success());

    let app = db.start(TestApp::builder()).await;
    let token = app.login("dev@example.com", USER_PASSWORD).await;
    let program = get_program(&app, &token, &program_id).await;
    assert_eq!(program["name"], "persistent");
    assert_eq!(
        program["files"][0]["content"], "print('hello')\n",
        "blobs are read back"
    );
    assert_eq!(
        get_environment(&app, &token, &environment_id).await["status"],
        "READY"
    );
    let run = get_run(&app, &token, &id_of(&run)).await;
    assert_run_waiting(&run);
});
