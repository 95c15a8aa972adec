//! `TestApp`: the real `playground serve` process on a random port, with helpers to log in
//! and send GraphQL over HTTP. The process is killed when the `TestApp` is dropped.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-for-e2e";
/// The password of every user made by `TestApp::create_user`.
pub const USER_PASSWORD: &str = "user-password-for-e2e";

const LISTENING_PREFIX: &str = "Playground listening on ";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Settings of a server to start: extra environment variables and arguments.
#[derive(Clone, Debug, Default)]
pub struct TestAppBuilder {
    envs: Vec<(String, String)>,
    args: Vec<String>,
    without_admin: bool,
}

impl TestAppBuilder {
    pub fn env(mut self, name: &str, value: impl ToString) -> Self {
        self.envs.push((name.to_owned(), value.to_string()));
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Leaves `PLAYGROUND_ADMIN_EMAIL`/`PLAYGROUND_ADMIN_PASSWORD` unset.
    pub fn without_admin(mut self) -> Self {
        self.without_admin = true;
        self
    }
}

/// One running server.
pub struct TestApp {
    child: Child,
    pid: u32,
    base_url: String,
    http: reqwest::Client,
    stdout_lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    admin_token: Mutex<Option<String>>,
    _data_dir: Arc<TempDir>,
}

/// The first error of a GraphQL response.
#[derive(Clone, Debug)]
pub struct GqlError {
    pub code: String,
    pub message: String,
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// The binary with an environment free of the caller's Playground settings.
    pub fn bare_command() -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_playground"));
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("PLAYGROUND_") || name == "DATABASE_URL" || name == "RUST_LOG" {
                command.env_remove(&*name);
            }
        }
        command.env("RUST_LOG", "warn");
        command
    }

    pub(crate) async fn start(
        builder: TestAppBuilder,
        data_dir: Arc<TempDir>,
        database_url: Option<String>,
    ) -> TestApp {
        let mut command = Self::bare_command();
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path());
        if let Some(database_url) = &database_url {
            command.args(["--database-url", database_url]);
        }
        command.args(&builder.args);
        if !builder.without_admin {
            command.env("PLAYGROUND_ADMIN_EMAIL", ADMIN_EMAIL);
            command.env("PLAYGROUND_ADMIN_PASSWORD", ADMIN_PASSWORD);
        }
        // Runs are not executed in these tests: with no executor slots the scheduler never
        // claims a run, so runs stay QUEUED until cancelled (the queue semantics under test).
        // A test that wants execution sets a concurrency itself; its value wins.
        for name in [
            "PLAYGROUND_WASM_CONCURRENCY",
            "PLAYGROUND_DOCKER_CONCURRENCY",
            "PLAYGROUND_KUBERNETES_CONCURRENCY",
        ] {
            command.env(name, "0");
        }
        for (name, value) in &builder.envs {
            command.env(name, value);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("spawn the playground binary");
        let pid = child.id().expect("pid of the server");

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut stderr_pipe = child.stderr.take().expect("stderr pipe");
        let stderr_sink = stderr.clone();
        let stderr_task = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n_read) = stderr_pipe.read(&mut buf).await {
                if n_read == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n_read]);
                stderr_sink.lock().unwrap().push_str(&text);
            }
        });

        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let (line_tx, mut line_rx) = mpsc::unbounded_channel::<String>();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout pipe")).lines();
        let stdout_sink = stdout_lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                stdout_sink.lock().unwrap().push(line.clone());
                let _ = line_tx.send(line);
            }
        });

        let listening = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = line_rx.recv().await {
                if let Some(url) = line.strip_prefix(LISTENING_PREFIX) {
                    return Some(url.trim().trim_end_matches('/').to_owned());
                }
            }
            None
        })
        .await;
        let base_url = match listening {
            Ok(Some(url)) => url,
            outcome => {
                let why = match outcome {
                    Ok(_) => "the server closed its stdout (exited?)",
                    Err(_) => "no listening line within 30 s",
                };
                let _ = child.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(5), stderr_task).await;
                panic!(
                    "playground serve did not start: {why}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    stdout_lines.lock().unwrap().join("\n"),
                    stderr.lock().unwrap()
                );
            }
        };
        assert!(
            base_url.starts_with("http://127.0.0.1:"),
            "unexpected listening URL {base_url:?}"
        );
        TestApp {
            child,
            pid,
            base_url,
            http: reqwest::Client::new(),
            stdout_lines,
            stderr,
            admin_token: Mutex::new(None),
            _data_dir: data_dir,
        }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn ws_url(&self) -> String {
        self.url("/graphql/ws").replacen("http://", "ws://", 1)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout_lines.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn data_dir(&self) -> &Path {
        self._data_dir.path()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn sigterm(&mut self) -> ExitStatus {
        self.signal("-TERM").await
    }

    pub async fn sigint(&mut self) -> ExitStatus {
        self.signal("-INT").await
    }

    pub async fn stop(&mut self) -> ExitStatus {
        self.sigterm().await
    }

    /// Kills the server with SIGKILL, as a crash would, and waits for it.
    pub async fn kill(&mut self) -> ExitStatus {
        self.signal("-KILL").await
    }

    async fn signal(&mut self, signal: &str) -> ExitStatus {
        let status = std::process::Command::new("kill")
            .args([signal, &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {} failed", self.pid);
        match tokio::time::timeout(EXIT_TIMEOUT, self.child.wait()).await {
            Ok(status) => status.expect("wait for the server"),
            Err(_) => panic!(
                "the server did not exit within {EXIT_TIMEOUT:?} after {signal}\n--- stderr ---\n{}",
                self.stderr()
            ),
        }
    }

    /// POSTs a GraphQL request and returns the whole JSON response (data and errors).
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let body = json!({ "query": query, "variables": variables });
        let mut request = self.http.post(self.url("/graphql")).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap_or_else(|err| {
            panic!(
                "POST /graphql failed: {err}\n--- stderr ---\n{}",
                self.stderr()
            )
        });
        let status = response.status();
        let text = response.text().await.expect("read the response body");
        assert!(
            !status.is_server_error(),
            "POST /graphql answered {status}: {text}\nquery: {query}"
        );
        serde_json::from_str(&text).unwrap_or_else(|err| {
            panic!("response to {query} is not JSON ({err}): {status} {text}")
        })
    }

    /// `data` of a response that must have no errors.
    pub async fn gql_ok(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let response = self.gql(token, query, variables.clone()).await;
        let errors = response.get("errors").and_then(Value::as_array);
        if errors.is_some_and(|errors| !errors.is_empty()) {
            panic!(
                "unexpected GraphQL errors: {}\nquery: {query}\nvariables: {variables}",
                serde_json::to_string_pretty(&response["errors"]).unwrap()
            );
        }
        match response.get("data") {
            Some(data) if !data.is_null() => data.clone(),
            _ => panic!("response without data: {response}\nquery: {query}"),
        }
    }

    /// The first error of a response that must fail.
    pub async fn gql_err(&self, token: Option<&str>, query: &str, variables: Value) -> GqlError {
        let response = self.gql(token, query, variables.clone()).await;
        let Some(error) = response
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|errors| errors.first())
        else {
            panic!("expected an error, got {response}\nquery: {query}\nvariables: {variables}");
        };
        GqlError {
            code: error["extensions"]["code"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            message: error["message"].as_str().unwrap_or("").to_owned(),
        }
    }

    /// `extensions.code` of the first error of a response that must fail.
    pub async fn gql_err_code(&self, token: Option<&str>, query: &str, variables: Value) -> String {
        let error = self.gql_err(token, query, variables).await;
        assert!(
            !error.code.is_empty(),
            "error without extensions.code: {error:?}\nquery: {query}"
        );
        error.code
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let data = self
            .gql_ok(
                None,
                "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token user { email } } }",
                json!({ "email": email, "password": password }),
            )
            .await;
        assert_eq!(data["login"]["user"]["email"], email);
        data["login"]["token"]
            .as_str()
            .expect("login returns a token")
            .to_owned()
    }

    pub async fn admin_token(&self) -> String {
        if let Some(token) = self.admin_token.lock().unwrap().clone() {
            return token;
        }
        let token = self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        *self.admin_token.lock().unwrap() = Some(token.clone());
        token
    }

    /// Creates a user (as the admin) with `USER_PASSWORD` and `role` (`ADMIN`, `DEVELOPER`,
    /// `VIEWER`), and returns a token of that user.
    pub async fn create_user(&self, email: &str, role: &str) -> String {
        let admin = self.admin_token().await;
        let data = self
            .gql_ok(
                Some(&admin),
                "mutation($email: String!, $password: String!, $role: Role!) { createUser(email: $email, password: $password, role: $role) { id email role } }",
                json!({ "email": email, "password": USER_PASSWORD, "role": role }),
            )
            .await;
        assert_eq!(data["createUser"]["email"], email);
        assert_eq!(data["createUser"]["role"], role);
        self.login(email, USER_PASSWORD).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
