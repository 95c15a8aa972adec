//! Attacks through the API that the other suites do not already make, each contained with the
//! server still serving: a WASM module that tries to leave its read-only `/work` preopen, to
//! create files and symlinks, and to use sockets; a Docker program that looks for host files
//! and the network; output floods without a newline; hostile program file paths on create and
//! update; wrong value types for every argument of every mutation and hostile request bodies;
//! and queries and variables nested far deeper than the depth limit. SECURITY.md lists which
//! tests cover the other attacks. The Docker tests run only with `PLAYGROUND_TEST_DOCKER=1`.

use std::time::Duration;

use crate::support::docker::{
    BUSYBOX, assert_healthy, docker_environment, docker_server, docker_tests_enabled, lines_of,
    run_logs, shell_program, start_run, wait_run_end,
};
use crate::support::wasm::{wasm_environment, wasm_program};
use crate::support::*;

/// A server that executes WASM runs.
fn executing() -> TestAppBuilder {
    TestApp::builder().env("PLAYGROUND_WASM_CONCURRENCY", 4)
}

/// `/healthz` answers and an authenticated query works.
async fn assert_still_serving(app: &TestApp, token: &str) {
    assert_healthy(app).await;
    let data = app.gql_ok(Some(token), "{ me { email } }", json!({})).await;
    assert!(data["me"]["email"].is_string(), "{data}");
}

/// Runs a program on an environment to its end; the run and its log.
async fn run_to_end(
    app: &TestApp,
    token: &str,
    program: &str,
    environment: &str,
    limit: Duration,
) -> (Value, Vec<Value>) {
    let id = id_of(&start_run(app, token, program, environment, &[], &[]).await);
    let done = wait_run_end(app, token, &id, limit).await;
    let logs = run_logs(app, token, &id).await;
    (done, logs)
}

/// `key=value` lines of a log as pairs.
fn reported(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

fn value_of<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key}= line in {pairs:?}"))
}

/// A module that attempts, through WASI preview 1, to open files outside its preopen (`..`,
/// absolute, deep `..`), to create a file and a symlink in it, to find a second preopen, and
/// to accept on a socket. Each attempt prints `label=errno` (two digits; `00` is success).
/// Opening its own file and reading the preopen are the positive controls.
const ESCAPE_WAT: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_symlink" (func $path_symlink (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $sock_accept (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "../etc/passwd")
  (data (i32.const 272) "/etc/passwd")
  (data (i32.const 288) "escape.wat")
  (data (i32.const 304) "created")
  (data (i32.const 320) "../../../../../../../../etc/passwd")
  (data (i32.const 360) "/")
  (data (i32.const 400) "dotdot")
  (data (i32.const 408) "absolute")
  (data (i32.const 416) "own")
  (data (i32.const 420) "create")
  (data (i32.const 428) "symlink")
  (data (i32.const 436) "deep")
  (data (i32.const 440) "prestat3")
  (data (i32.const 448) "prestat4")
  (data (i32.const 456) "accept3")
  (data (i32.const 464) "accept42")
  (func $report (param $label i32) (param $len i32) (param $errno i32)
    (i32.store8 (i32.const 200) (i32.const 61))
    (i32.store8 (i32.const 201) (i32.add (i32.const 48) (i32.div_u (local.get $errno) (i32.const 10))))
    (i32.store8 (i32.const 202) (i32.add (i32.const 48) (i32.rem_u (local.get $errno) (i32.const 10))))
    (i32.store8 (i32.const 203) (i32.const 10))
    (i32.store (i32.const 16) (local.get $label))
    (i32.store (i32.const 20) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 32)))
    (i32.store (i32.const 16) (i32.const 200))
    (i32.store (i32.const 20) (i32.const 4))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 32))))
  ;; path_open(fd 3, follow symlinks, path, oflags, rights) -> errno
  (func $open (param $path i32) (param $len i32) (param $oflags i32) (param $rights i64) (result i32)
    (call $path_open (i32.const 3) (i32.const 1) (local.get $path) (local.get $len)
      (local.get $oflags) (local.get $rights) (i64.const 0) (i32.const 0) (i32.const 8)))
  (func (export "_start")
    ;; read: FD_READ = 2; create: O_CREAT = 1 with FD_WRITE = 64
    (call $report (i32.const 400) (i32.const 6) (call $open (i32.const 256) (i32.const 13) (i32.const 0) (i64.const 2)))
    (call $report (i32.const 408) (i32.const 8) (call $open (i32.const 272) (i32.const 11) (i32.const 0) (i64.const 2)))
    (call $report (i32.const 416) (i32.const 3) (call $open (i32.const 288) (i32.const 10) (i32.const 0) (i64.const 2)))
    (call $report (i32.const 420) (i32.const 6) (call $open (i32.const 304) (i32.const 7) (i32.const 1) (i64.const 64)))
    (call $report (i32.const 428) (i32.const 7)
      (call $path_symlink (i32.const 360) (i32.const 1) (i32.const 3) (i32.const 304) (i32.const 7)))
    (call $report (i32.const 436) (i32.const 4) (call $open (i32.const 320) (i32.const 34) (i32.const 0) (i64.const 2)))
    (call $report (i32.const 440) (i32.const 8) (call $fd_prestat_get (i32.const 3) (i32.const 96)))
    (call $report (i32.const 448) (i32.const 8) (call $fd_prestat_get (i32.const 4) (i32.const 96)))
    (call $report (i32.const 456) (i32.const 7) (call $sock_accept (i32.const 3) (i32.const 0) (i32.const 8)))
    (call $report (i32.const 464) (i32.const 8) (call $sock_accept (i32.const 42) (i32.const 0) (i32.const 8)))))
"#;

e2e_test!(
    a_wasm_module_cannot_leave_its_preopen_or_use_sockets,
    executing(),
    |app| async move {
        let token = app.create_user("attacker@example.com", "DEVELOPER").await;
        let program = wasm_program(&app, &token, "escape", ESCAPE_WAT).await;
        let environment = wasm_environment(&app, &token, json!({})).await;
        let (done, logs) = run_to_end(
            &app,
            &token,
            &program,
            &environment,
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(done["status"], "SUCCEEDED", "{done} {logs:?}");
        let pairs = reported(&lines_of(&logs, "STDOUT"));
        assert!(pairs.len() >= 10, "{done} {logs:?}");
        // The positive controls: the module's own file opens, fd 3 is the one preopen.
        assert_eq!(value_of(&pairs, "own"), "00", "{pairs:?}");
        assert_eq!(value_of(&pairs, "prestat3"), "00", "{pairs:?}");
        // Everything else is refused with an errno.
        for attempt in [
            "dotdot", "absolute", "deep", "create", "symlink", "prestat4", "accept3", "accept42",
        ] {
            let errno = value_of(&pairs, attempt);
            assert_ne!(errno, "00", "{attempt} succeeded: {pairs:?}");
        }
        // EBADF (8): there is no second preopen and no fd 42.
        assert_eq!(value_of(&pairs, "prestat4"), "08", "{pairs:?}");
        assert_eq!(value_of(&pairs, "accept42"), "08", "{pairs:?}");
        assert_still_serving(&app, &token).await;
    }
);

e2e_test!(
    a_wasm_module_importing_functions_that_do_not_exist_fails_its_run,
    executing(),
    |app| async move {
        let token = app.create_user("attacker@example.com", "DEVELOPER").await;
        let environment = wasm_environment(&app, &token, json!({})).await;
        // Preview 1 has no call that creates a socket; a module that imports one (or anything
        // from the host beyond WASI) fails before it runs.
        for (name, import) in [
            (
                "sockopen",
                r#"(import "wasi_snapshot_preview1" "sock_open" (func (param i32 i32 i32) (result i32)))"#,
            ),
            (
                "hostfn",
                r#"(import "env" "system" (func (param i32) (result i32)))"#,
            ),
        ] {
            let source = format!(
                "(module {import} (memory (export \"memory\") 1) (func (export \"_start\")))"
            );
            let program = wasm_program(&app, &token, name, &source).await;
            let (done, logs) = run_to_end(
                &app,
                &token,
                &program,
                &environment,
                Duration::from_secs(30),
            )
            .await;
            assert_eq!(done["status"], "FAILED", "{name}: {done} {logs:?}");
            assert!(
                done["failureReason"]
                    .as_str()
                    .is_some_and(|r| !r.is_empty()),
                "{name}: {done}"
            );
        }
        assert_still_serving(&app, &token).await;
    }
);

/// A module writing `n` blocks of 64 KiB of `x` without a newline (one line of `n × 64` KiB).
fn one_line_flood(n_blocks: u32) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_start")
    (local $i i32)
    (memory.fill (i32.const 65536) (i32.const 120) (i32.const 65536))
    (i32.store (i32.const 0) (i32.const 65536))
    (i32.store (i32.const 4) (i32.const 65536))
    (loop $write
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $write (i32.lt_u (local.get $i) (i32.const {n_blocks}))))))"#
    )
}

/// The stored STDOUT of a flooded run stays within `cap` bytes and the log says it was cut.
fn assert_capped(logs: &[Value], cap: usize) {
    let kept: usize = lines_of(logs, "STDOUT").iter().map(|l| l.len() + 1).sum();
    assert!(
        kept <= cap,
        "{kept} bytes of stdout kept with a cap of {cap}"
    );
    let system = lines_of(logs, "SYSTEM");
    assert!(
        system.iter().any(|l| l.contains("truncated")),
        "the log says it was truncated: {system:?}"
    );
}

e2e_test!(
    a_wasm_flood_without_newlines_is_capped,
    executing(),
    |app| async move {
        let token = app.create_user("attacker@example.com", "DEVELOPER").await;
        // 20 MiB on one line.
        let program = wasm_program(&app, &token, "flood", &one_line_flood(320)).await;
        let environment = wasm_environment(&app, &token, json!({ "maxLogBytes": 10_000 })).await;
        let (done, logs) = run_to_end(
            &app,
            &token,
            &program,
            &environment,
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(done["status"], "SUCCEEDED", "{done}");
        assert_capped(&logs, 10_000);
        assert_still_serving(&app, &token).await;
    }
);

e2e_test!(
    a_docker_program_sees_neither_host_files_nor_the_network,
    docker_server(),
    |app| async move {
        if !docker_tests_enabled("a_docker_program_sees_neither_host_files_nor_the_network") {
            return;
        }
        let marker = std::env::temp_dir().join(format!(
            "playground-host-marker-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&marker, "host secret\n").expect("write the host marker");
        let marker = marker.display().to_string();
        let port = app
            .url("/")
            .rsplit(':')
            .next()
            .expect("a port")
            .trim_end_matches('/')
            .to_owned();
        let script = format!(
            r#"check() {{ if eval "$2" >/dev/null 2>&1; then echo "$1=yes"; else echo "$1=no"; fi; }}
check control-tmp "echo x > /tmp/probe && cat /tmp/probe"
check control-work "cat /work/main.sh"
check control-symlink "ln -s /work/main.sh /tmp/self && cat /tmp/self"
check marker "cat {marker}"
check marker-via-symlink "ln -s / /tmp/root && cat /tmp/root{marker}"
check work-symlink "ln -s /etc/passwd /work/link"
check work-write "echo x > /work/main.sh"
check shadow "cat /etc/shadow"
check docker-socket "test -e /var/run/docker.sock || test -e /run/docker.sock"
check server-wget "wget -q -T 2 -O - http://127.0.0.1:{port}/healthz"
check server-nc "echo x | nc -w 2 127.0.0.1 {port}"
check private-wget "wget -q -T 2 -O - http://10.0.0.1/"
check private-nc "echo x | nc -w 2 10.0.0.1 80"
check public-nc "echo x | nc -w 2 1.1.1.1 53"
check dns "nslookup example.com"
echo done
"#
        );
        let token = app.create_user("attacker@example.com", "DEVELOPER").await;
        let program = shell_program(&app, &token, "snoop", &script).await;
        let environment =
            docker_environment(&app, &token, BUSYBOX, json!({ "timeoutSeconds": 60 })).await;
        let (done, logs) = run_to_end(
            &app,
            &token,
            &program,
            &environment,
            Duration::from_secs(90),
        )
        .await;
        let _ = std::fs::remove_file(&marker);
        assert_eq!(done["status"], "SUCCEEDED", "{done} {logs:?}");
        let stdout = lines_of(&logs, "STDOUT");
        assert_eq!(
            stdout.last().map(String::as_str),
            Some("done"),
            "{stdout:?}"
        );
        let pairs = reported(&stdout);
        // The positive controls: the checks can succeed.
        for control in ["control-tmp", "control-work", "control-symlink"] {
            assert_eq!(value_of(&pairs, control), "yes", "{control}: {stdout:?}");
        }
        for attempt in [
            "marker",
            "marker-via-symlink",
            "work-symlink",
            "work-write",
            "shadow",
            "docker-socket",
            "server-wget",
            "server-nc",
            "private-wget",
            "private-nc",
            "public-nc",
            "dns",
        ] {
            assert_eq!(value_of(&pairs, attempt), "no", "{attempt}: {stdout:?}");
        }
        assert!(
            !stdout.iter().any(|l| l.contains("host secret")),
            "{stdout:?}"
        );
        assert_still_serving(&app, &token).await;
    }
);

e2e_test!(
    a_docker_flood_without_newlines_is_capped,
    docker_server(),
    |app| async move {
        if !docker_tests_enabled("a_docker_flood_without_newlines_is_capped") {
            return;
        }
        let token = app.create_user("attacker@example.com", "DEVELOPER").await;
        // 20 MiB on one line, then 20 MiB of short lines.
        let script = "head -c 20971520 /dev/zero | tr '\\0' x\nyes flood | head -c 20971520\n";
        let program = shell_program(&app, &token, "flood", script).await;
        let environment = docker_environment(
            &app,
            &token,
            BUSYBOX,
            json!({ "maxLogBytes": 10_000, "timeoutSeconds": 60 }),
        )
        .await;
        let (done, logs) = run_to_end(
            &app,
            &token,
            &program,
            &environment,
            Duration::from_secs(90),
        )
        .await;
        assert_eq!(done["status"], "SUCCEEDED", "{done}");
        assert_capped(&logs, 10_000);
        assert_still_serving(&app, &token).await;
    }
);

const UPDATE_FILES: &str = "mutation($id: ID!, $input: UpdateProgramInput!) { updateProgram(id: $id, input: $input) { id version } }";

e2e_test!(
    hostile_file_paths_are_refused_and_nothing_is_stored,
    |app| async move {
        let token = app.create_user("attacker@example.com", "DEVELOPER").await;
        let kept = create_program_named(&app, &token, "kept").await;
        let long = format!("{}/main.py", "d".repeat(1100));
        let hostile = [
            "./main.py",
            ".",
            "..",
            "a/./b.py",
            "a/b/../../../etc/passwd",
            "/etc/passwd",
            "//host/share/x.py",
            "C:\\Windows\\x.py",
            "..\\..\\x.py",
            "a\\..\\..\\x.py",
            "a\u{0}b.py",
            "a\nb.py",
            "a\rb.py",
            "\u{1b}[2J.py",
            "a\u{7f}.py",
            long.as_str(),
        ];
        for path in hostile {
            let files =
                json!([{ "path": "main.py", "content": "" }, { "path": path, "content": "x" }]);
            // As a second file, as the only file and entrypoint, and in an update.
            let mut input = program_input("hostile");
            input["files"] = files.clone();
            let mut alone = program_input("hostile");
            alone["files"] = json!([{ "path": path, "content": "x" }]);
            alone["entrypoint"] = json!(path);
            for input in [input, alone] {
                let error = app
                    .gql_err(
                        Some(&token),
                        &create_program_mutation(),
                        json!({ "input": input }),
                    )
                    .await;
                assert_eq!(error.code, "BAD_USER_INPUT", "{path:?}: {error:?}");
            }
            let error = app
                .gql_err(
                    Some(&token),
                    UPDATE_FILES,
                    json!({ "id": kept, "input": { "files": files } }),
                )
                .await;
            assert_eq!(error.code, "BAD_USER_INPUT", "update {path:?}: {error:?}");
        }
        let listed = list_programs(&app, &token, json!({})).await;
        assert_eq!(listed["totalCount"], 1, "only the first program: {listed}");
        let program = get_program(&app, &token, &kept).await;
        assert_eq!(program["version"], 1, "no update went through: {program}");
        assert_eq!(program["files"][0]["path"], "main.py");
        assert_eq!(program["files"].as_array().map(Vec::len), Some(1));
        assert_still_serving(&app, &token).await;
    }
);

/// Mutations with their arguments, from introspection: `(name, [(arg, type)], returns object)`.
async fn mutations(app: &TestApp, token: &str) -> Vec<(String, Vec<(String, Value)>, bool)> {
    const TYPE: &str = "kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";
    let query = format!(
        "{{ __schema {{ mutationType {{ fields {{ name type {{ {TYPE} }} args {{ name type {{ {TYPE} }} }} }} }} }} }}"
    );
    let data = app.gql_ok(Some(token), &query, json!({})).await;
    let fields = data["__schema"]["mutationType"]["fields"]
        .as_array()
        .expect("mutation fields")
        .clone();
    fields
        .into_iter()
        .map(|field| {
            let mut named = &field["type"];
            while named["name"].is_null() {
                named = &named["ofType"];
            }
            let returns_object = matches!(named["kind"].as_str(), Some("OBJECT" | "INTERFACE"));
            let args = field["args"]
                .as_array()
                .expect("args")
                .iter()
                .map(|arg| {
                    (
                        arg["name"].as_str().unwrap().to_owned(),
                        arg["type"].clone(),
                    )
                })
                .collect();
            (
                field["name"].as_str().unwrap().to_owned(),
                args,
                returns_object,
            )
        })
        .collect()
}

/// A type reference as GraphQL writes it: `[String!]!`.
fn type_string(ty: &Value) -> String {
    match ty["kind"].as_str() {
        Some("NON_NULL") => format!("{}!", type_string(&ty["ofType"])),
        Some("LIST") => format!("[{}]", type_string(&ty["ofType"])),
        _ => ty["name"].as_str().expect("a named type").to_owned(),
    }
}

/// Values of the wrong type for `ty`; each must be refused by variable coercion.
fn wrong_values(ty: &Value) -> Vec<Value> {
    let mut values = Vec::new();
    let mut inner = ty;
    if inner["kind"] == "NON_NULL" {
        values.push(Value::Null);
        inner = &inner["ofType"];
    }
    if inner["kind"] == "LIST" {
        // Too deep a list, and a list of objects where the element is not an object.
        values.push(json!([[[[1]]]]));
        values.push(json!({ "not": "a list" }));
        return values;
    }
    match (inner["kind"].as_str(), inner["name"].as_str()) {
        (Some("INPUT_OBJECT"), _) => values.extend([
            json!(42),
            json!("an object, said the string"),
            json!(true),
            json!([[{}]]),
            json!({ "noSuchField": 1 }),
        ]),
        (_, Some("Int")) => values.extend([
            json!("12"),
            json!(1.5),
            json!(1e40),
            json!(4_294_967_296u64),
            json!(true),
            json!({ "n": 1 }),
        ]),
        (_, Some("Boolean")) => values.extend([json!("true"), json!(1), json!({})]),
        (_, Some("ID")) => values.extend([json!(true), json!(1.5), json!({ "id": "x" })]),
        (Some("ENUM"), _) => values.extend([json!("NOT_A_VALUE"), json!(1), json!({})]),
        _ => values.extend([json!(42), json!(false), json!({ "s": "x" })]),
    }
    values
}

e2e_test!(
    wrong_types_for_every_mutation_argument_are_refused_with_a_code,
    |app| async move {
        let token = app.admin_token().await;
        let mutations = mutations(&app, &token).await;
        assert!(mutations.len() >= 10, "{mutations:?}");
        let mut attempts = 0;
        for (name, args, returns_object) in &mutations {
            let selection = if *returns_object {
                " { __typename }"
            } else {
                ""
            };
            let declared: Vec<String> = args
                .iter()
                .map(|(arg, ty)| format!("${arg}: {}", type_string(ty)))
                .collect();
            let passed: Vec<String> = args
                .iter()
                .map(|(arg, _)| format!("{arg}: ${arg}"))
                .collect();
            let (declared, passed) = if args.is_empty() {
                (String::new(), String::new())
            } else {
                (
                    format!("({})", declared.join(", ")),
                    format!("({})", passed.join(", ")),
                )
            };
            let query = format!("mutation{declared} {{ {name}{passed}{selection} }}");
            // Each argument in turn gets each wrong value; the others get one too.
            for (arg, ty) in args {
                for wrong in wrong_values(ty) {
                    let mut variables = serde_json::Map::new();
                    for (other, other_ty) in args {
                        let value = if other == arg {
                            wrong.clone()
                        } else {
                            wrong_values(other_ty).swap_remove(0)
                        };
                        variables.insert(other.clone(), value);
                    }
                    let variables = Value::Object(variables);
                    let response = app.gql(Some(&token), &query, variables.clone()).await;
                    attempts += 1;
                    let errors = response["errors"].as_array();
                    assert!(
                        errors.is_some_and(|e| !e.is_empty()),
                        "{query} with {variables}: {response}"
                    );
                    for error in errors.unwrap() {
                        assert!(
                            error["extensions"]["code"].is_string(),
                            "an error without a code: {query} with {variables}: {response}"
                        );
                    }
                    assert!(
                        response["data"].is_null() || response["data"][name].is_null(),
                        "{query} with {variables} did something: {response}"
                    );
                }
            }
        }
        assert!(attempts > 50, "{attempts} attempts");
        let listed = list_programs(&app, &token, json!({})).await;
        assert_eq!(listed["totalCount"], 0, "no program came out of bad input");
        assert_still_serving(&app, &token).await;
    }
);

/// POSTs a raw body to /graphql; the status and the body.
async fn post_raw(app: &TestApp, token: &str, content_type: &str, body: Vec<u8>) -> (u16, String) {
    let response = app
        .http()
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("POST /graphql");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

e2e_test!(hostile_request_bodies_are_client_errors, |app| async move {
    let token = app.admin_token().await;
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_variables = format!(
        "{{\"query\": \"query($s: String) {{ me {{ email }} }}\", \"variables\": {{\"s\": {}1{}}}}}",
        "{\"a\":".repeat(50_000),
        "}".repeat(50_000)
    );
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", deep_json.into_bytes()),
        ("application/json", deep_variables.into_bytes()),
        (
            "application/json",
            b"{\"query\": \"{ me { email } }\", \"variables\": \"not an object\"}".to_vec(),
        ),
        (
            "application/json",
            b"{\"query\": \"{ me { email } }\", \"variables\": [1, 2]}".to_vec(),
        ),
        (
            "application/json",
            b"{\"query\": \"{ me { email } }\", \"operationName\": 5}".to_vec(),
        ),
        (
            "application/json",
            b"{\"query\": \"{ me { email } }\", \"extensions\": 5}".to_vec(),
        ),
        (
            "application/json",
            b"{\"query\": [\"{ me { email } }\"]}".to_vec(),
        ),
        ("application/json", b"{\"query\": \"\\ud800\"}".to_vec()),
        (
            "application/json",
            b"{\"query\": \"{ me { email } }\xff\xfe\"}".to_vec(),
        ),
        ("application/json", b"{\"query\": 1e999999}".to_vec()),
        ("application/json", b"null".to_vec()),
        ("application/json", b"[]".to_vec()),
        ("application/json", b"\"{ me { email } }\"".to_vec()),
        ("application/json", vec![0xff; 4096]),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\ngarbage\r\n--x--\r\n".to_vec(),
        ),
        ("multipart/form-data", b"no boundary".to_vec()),
        ("application/graphql", b"{ me { email".to_vec()),
        ("application/x-www-form-urlencoded", b"query=%7B".to_vec()),
    ];
    for (content_type, body) in bodies {
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        let (status, text) = post_raw(&app, &token, content_type, body).await;
        assert!(
            status < 500,
            "{content_type} {shown:?} gave {status}: {text}"
        );
        if status == 200 {
            let response: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{content_type} {shown:?}: not JSON ({e}): {text}"));
            let errors = response["errors"].as_array();
            assert!(
                errors.is_some_and(
                    |e| !e.is_empty() && e.iter().all(|e| e["extensions"]["code"].is_string())
                ),
                "{content_type} {shown:?}: {response}"
            );
        }
    }
    assert_still_serving(&app, &token).await;
});

e2e_test!(
    queries_nested_past_any_limit_are_refused_with_a_code,
    |app| async move {
        let token = app.admin_token().await;
        let levels = 40_000;
        // Selection sets, list values, object values and parenthesised fragments, each tens
        // of thousands of levels deep but under the query length limit.
        let selections = format!("{{{}me{}}}", "me{".repeat(levels), "}".repeat(levels));
        let lists = format!(
            "{{ programs(first: {}1{}) {{ totalCount }} }}",
            "[".repeat(levels * 2),
            "]".repeat(levels * 2)
        );
        let objects = format!(
            "mutation {{ createProgram(input: {}1{}) {{ id }} }}",
            "{a:".repeat(levels),
            "}".repeat(levels)
        );
        let fragments = format!(
            "{{ me {{ {} email {} }} }}",
            "... on User { ".repeat(levels / 4),
            "} ".repeat(levels / 4)
        );
        for query in [selections, lists, objects, fragments] {
            assert!(query.len() < 256 * 1024, "{} bytes", query.len());
            let response = app.gql(Some(&token), &query, json!({})).await;
            let errors = response["errors"].as_array();
            assert!(
                errors.is_some_and(|e| !e.is_empty()
                    && e.iter()
                        .all(|e| e["extensions"]["code"] == "BAD_USER_INPUT")),
                "{}…: {response}",
                &query[..60]
            );
            assert!(response["data"].is_null(), "{response}");
            assert_still_serving(&app, &token).await;
        }
    }
);
