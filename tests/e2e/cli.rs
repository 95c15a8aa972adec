//! The command line: `schema`, `migrate`, `user create`, the first-start admin, graceful
//! shutdown on SIGTERM/SIGINT and the generated JWT secret file.

use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::support::*;

const COMMITTED_SCHEMA_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");

const ME: &str = "{ me { id email displayName role } }";

/// Runs `command`, writing `stdin` to it.
async fn run_with_stdin(mut command: tokio::process::Command, stdin: &str) -> Output {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn playground");
    let mut pipe = child.stdin.take().expect("stdin pipe");
    pipe.write_all(stdin.as_bytes()).await.expect("write stdin");
    drop(pipe);
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the command finished within 60 s")
        .expect("wait for the command")
}

fn describe(output: &Output) -> String {
    format!(
        "status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn schema_command_prints_the_committed_schema() {
    let output = TestApp::bare_command()
        .arg("schema")
        .output()
        .await
        .expect("run playground schema");
    assert!(output.status.success(), "{}", describe(&output));
    let printed = String::from_utf8(output.stdout).expect("the SDL is UTF-8");
    assert!(printed.contains("type Query"), "not an SDL: {printed}");
    let committed = std::fs::read_to_string(COMMITTED_SCHEMA_PATH)
        .unwrap_or_else(|err| panic!("read {COMMITTED_SCHEMA_PATH}: {err}"));
    assert!(
        printed.trim_end() == committed.trim_end(),
        "schema.graphql differs from what `playground schema` prints; regenerate it with \
         `cargo run -- schema > schema.graphql`"
    );
}

db_test!(
    migrate_exits_zero_on_fresh_and_migrated_databases,
    |db| async move {
        for attempt in ["fresh", "already migrated"] {
            let output = TestApp::bare_command()
                .arg("migrate")
                .args(db.server_args())
                .output()
                .await
                .expect("run playground migrate");
            assert!(
                output.status.success(),
                "migrate on a {attempt} database: {}",
                describe(&output)
            );
        }
        if db.backend() == Backend::Sqlite {
            assert!(
                db.data_dir().join("playground.db").is_file(),
                "migrate creates the SQLite file"
            );
        }
        let app = db.start(TestApp::builder()).await;
        let admin = app.admin_token().await;
        let me = app.gql_ok(Some(&admin), ME, json!({})).await;
        assert_eq!(me["me"]["role"], "ADMIN");
        let output = TestApp::bare_command()
            .arg("migrate")
            .args(db.server_args())
            .output()
            .await
            .expect("run playground migrate");
        assert!(
            output.status.success(),
            "migrate while serving: {}",
            describe(&output)
        );
    }
);

db_test!(user_create_reads_the_password_from_stdin, |db| async move {
    let app = db.start(TestApp::builder()).await;
    let mut command = db.command();
    command.args([
        "user",
        "create",
        "--email",
        "cli-dev@example.com",
        "--role",
        "developer",
        "--display-name",
        "Cli Dev",
    ]);
    let output = run_with_stdin(command, "stdin-password-1\n").await;
    assert!(output.status.success(), "{}", describe(&output));
    let printed = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let printed_id = printed
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(
        uuid::Uuid::parse_str(&printed_id).is_ok(),
        "user create prints the id, got {printed:?}"
    );

    let token = app.login("cli-dev@example.com", "stdin-password-1").await;
    let me = app.gql_ok(Some(&token), ME, json!({})).await["me"].clone();
    assert_eq!(me["id"], printed_id.as_str());
    assert_eq!(me["role"], "DEVELOPER");
    assert_eq!(me["displayName"], "Cli Dev");

    let mut command = db.command();
    command.args([
        "user",
        "create",
        "--email",
        "cli-viewer@example.com",
        "--role",
        "viewer",
    ]);
    let output = run_with_stdin(command, "stdin-password-2\nignored second line\n").await;
    assert!(output.status.success(), "{}", describe(&output));
    let token = app
        .login("cli-viewer@example.com", "stdin-password-2")
        .await;
    assert_eq!(
        app.gql_ok(Some(&token), ME, json!({})).await["me"]["role"],
        "VIEWER"
    );

    let mut command = db.command();
    command.args([
        "user",
        "create",
        "--email",
        "cli-dev@example.com",
        "--role",
        "viewer",
    ]);
    let output = run_with_stdin(command, "another-password\n").await;
    assert!(
        !output.status.success(),
        "a duplicate email must fail: {}",
        describe(&output)
    );
    assert!(
        !output.stderr.is_empty(),
        "a duplicate email is explained on stderr"
    );
    assert_eq!(
        app.gql_ok(
            Some(&app.login("cli-dev@example.com", "stdin-password-1").await),
            ME,
            json!({})
        )
        .await["me"]["role"],
        "DEVELOPER",
        "the failed duplicate did not change the first user"
    );

    let mut command = db.command();
    command.args([
        "user",
        "create",
        "--email",
        "cli-bad@example.com",
        "--role",
        "superuser",
    ]);
    let output = run_with_stdin(command, "password-3\n").await;
    assert!(
        !output.status.success(),
        "an unknown role must fail: {}",
        describe(&output)
    );
});

db_test!(user_create_accepts_roles_in_any_case, |db| async move {
    let app = db.start(TestApp::builder()).await;
    for (role, expected) in [
        ("Developer", "DEVELOPER"),
        ("VIEWER", "VIEWER"),
        ("aDmIn", "ADMIN"),
    ] {
        let email = format!("{}-cli@example.com", role.to_lowercase());
        let mut command = db.command();
        command.args(["user", "create", "--email", &email, "--role", role]);
        let output = run_with_stdin(command, "any-case-password\n").await;
        assert!(
            output.status.success(),
            "--role {role}: {}",
            describe(&output)
        );
        let token = app.login(&email, "any-case-password").await;
        let me = app.gql_ok(Some(&token), ME, json!({})).await;
        assert_eq!(me["me"]["role"], expected, "--role {role}");
    }
});

/// Waits up to 2 s for a stdout line starting with `prefix`.
async fn stdout_line_starting_with(app: &TestApp, prefix: &str) -> Option<String> {
    for _ in 0..40 {
        if let Some(line) = app
            .stdout_lines()
            .into_iter()
            .find(|line| line.starts_with(prefix))
        {
            return Some(line);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

db_test!(
    first_start_without_settings_prints_an_admin_password_once,
    |db| async move {
        let prefix = "First start: created admin account admin@localhost with password ";
        let mut app = db.start(TestApp::builder().without_admin()).await;
        let line = stdout_line_starting_with(&app, prefix)
            .await
            .unwrap_or_else(|| panic!("no first-start line on stdout: {:?}", app.stdout_lines()));
        let password = line
            .split_whitespace()
            .last()
            .expect("a password")
            .to_owned();
        assert!(
            !password.is_empty() && password != "password",
            "a generated password: {line:?}"
        );
        let token = app.login("admin@localhost", &password).await;
        assert_eq!(
            app.gql_ok(Some(&token), ME, json!({})).await["me"]["role"],
            "ADMIN"
        );
        assert!(
            app.stdout_lines()
                .iter()
                .all(|line| !line.contains(ADMIN_EMAIL))
        );
        assert!(app.sigterm().await.success());

        // Users exist now: nothing is created or printed on the next start.
        let app = db.start(TestApp::builder().without_admin()).await;
        let token = app.login("admin@localhost", &password).await;
        let users = app
            .gql_ok(Some(&token), "{ users { email } }", json!({}))
            .await;
        assert_eq!(users["users"].as_array().map(Vec::len), Some(1), "{users}");
        assert!(
            stdout_line_starting_with(&app, "First start")
                .await
                .is_none(),
            "the password is printed only on the first start: {:?}",
            app.stdout_lines()
        );
    }
);

db_test!(
    configured_admin_is_created_and_nothing_is_printed,
    |db| async move {
        let app = db.start(TestApp::builder()).await;
        let token = app.admin_token().await;
        let me = app.gql_ok(Some(&token), ME, json!({})).await;
        assert_eq!(me["me"]["email"], ADMIN_EMAIL);
        assert_eq!(me["me"]["role"], "ADMIN");
        assert!(
            stdout_line_starting_with(&app, "First start")
                .await
                .is_none()
        );
        let code = app
            .gql_err_code(
                None,
                "mutation { login(email: \"admin@localhost\", password: \"x\") { token } }",
                json!({}),
            )
            .await;
        assert_eq!(
            code, "UNAUTHENTICATED",
            "no admin@localhost when an admin is configured"
        );
    }
);

db_test!(
    sigterm_and_sigint_shut_down_with_exit_code_zero,
    |db| async move {
        let mut app = db.start(TestApp::builder()).await;
        let admin = app.admin_token().await;
        // An open subscription must not keep the server from exiting.
        let program_id = create_program_named(&app, &admin, "shutdown").await;
        let environment_id = create_ready_environment(&app, &admin, "shutdown-env").await;
        let run = create_run(&app, &admin, &program_id, &environment_id).await;
        let mut client = WsClient::connect_with_token(&app, WsProtocol::TransportWs, &admin).await;
        client
            .subscribe(
                "1",
                "subscription($id: ID!) { runStatus(runId: $id) { status } }",
                json!({ "id": id_of(&run) }),
            )
            .await;
        assert_eq!(client.next_data().await["runStatus"]["status"], "QUEUED");
        let status = app.sigterm().await;
        assert!(
            status.success(),
            "SIGTERM exit status: {status}\n{}",
            app.stderr()
        );
        drop(client);

        let mut app = db.start(TestApp::builder()).await;
        let me = app
            .gql_ok(Some(&app.admin_token().await), ME, json!({}))
            .await;
        assert_eq!(
            me["me"]["email"], ADMIN_EMAIL,
            "the restarted server answers"
        );
        let status = app.sigint().await;
        assert!(
            status.success(),
            "SIGINT exit status: {status}\n{}",
            app.stderr()
        );
    }
);

db_test!(
    generated_jwt_secret_is_kept_with_mode_0600,
    |db| async move {
        let mut app = db.start(TestApp::builder()).await;
        let path = app.data_dir().join("jwt-secret");
        let metadata = std::fs::metadata(&path).expect("jwt-secret exists in the data directory");
        assert_eq!(
            metadata.permissions().mode() & 0o777,
            0o600,
            "jwt-secret has mode 0600"
        );
        let secret = std::fs::read(&path).expect("read jwt-secret");
        assert!(!secret.is_empty(), "the secret is not empty");
        let token = app.admin_token().await;
        assert!(app.stop().await.success());

        let app = db.start(TestApp::builder()).await;
        assert_eq!(
            std::fs::read(&path).expect("read jwt-secret"),
            secret,
            "the secret is generated once"
        );
        let me = app.gql_ok(Some(&token), ME, json!({})).await;
        assert_eq!(me["me"]["email"], ADMIN_EMAIL, "a token survives a restart");
    }
);
