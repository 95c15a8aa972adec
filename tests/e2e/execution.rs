//! Runs end to end on the WASM executor: status transitions and their
//! times, timeout, cancel, the memory limit, traps and
//! invalid modules, retries, Python in WASM, a restart and a SIGTERM with
//! runs in flight, and two servers sharing one PostgreSQL queue; a new run
//! never passes queued ones.

use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;

use crate::support::wasm::*;
use crate::support::*;

const HELLO: &str = include_str!("../fixtures/hello.wat");
const SPIN: &str = include_str!("../fixtures/spin.wat");
const MEMORY_HOG: &str = include_str!("../fixtures/memory_hog.wat");

const RUN_STATUS: &str =
    "subscription($id: ID!) { runStatus(runId: $id) { runId status exitCode failureReason at } }";

fn seconds_between(from: &Value, to: &Value) -> f64 {
    let from: chrono::DateTime<chrono::Utc> = from.as_str().unwrap().parse().unwrap();
    let to: chrono::DateTime<chrono::Utc> = to.as_str().unwrap().parse().unwrap();
    (to - from).num_milliseconds() as f64 / 1000.0
}

e2e_test!(
    a_run_goes_through_its_states_and_keeps_its_output,
    executing(),
    |app| async move {
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let program = wasm_program(&app, &token, "hello", HELLO).await;
        let environment = wasm_environment(&app, &token, json!({})).await;

        let mut ws = WsClient::connect_with_token(&app, WsProtocol::TransportWs, &token).await;
        let created = start_run(&app, &token, &program, &environment, json!(["a"])).await;
        let id = id_of(&created);
        ws.subscribe("s", RUN_STATUS, json!({ "id": id })).await;
        let mut statuses = Vec::new();
        loop {
            match ws.next_event().await {
                WsEvent::Next(payload) => statuses.push(
                    payload["data"]["runStatus"]["status"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                ),
                WsEvent::Complete => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        let order = ["QUEUED", "STARTING", "RUNNING", "SUCCEEDED"];
        let positions: Vec<usize> = statuses
            .iter()
            .map(|s| order.iter().position(|o| o == s).unwrap())
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "statuses in order without repeats: {statuses:?}"
        );
        assert_eq!(statuses.last().map(String::as_str), Some("SUCCEEDED"));

        let done = run(&app, &token, &id).await;
        assert_eq!(done["exitCode"], 0);
        assert!(done["failureReason"].is_null());
        assert!(seconds_between(&done["queuedAt"], &done["startedAt"]) >= 0.0);
        assert!(seconds_between(&done["startedAt"], &done["finishedAt"]) >= 0.0);
        let lines = logs(&app, &token, &id, 0, 100).await;
        assert_eq!(lines_of(&lines, "STDOUT"), ["hello from wasm"]);
        let system = lines_of(&lines, "SYSTEM");
        assert!(
            system
                .first()
                .is_some_and(|l| l.starts_with("started on WASM")),
            "{system:?}"
        );
        assert_eq!(
            system.last().map(String::as_str),
            Some("exited with code 0")
        );
        let seqs: Vec<i64> = lines.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=lines.len() as i64).collect::<Vec<_>>());
    }
);

e2e_test!(
    a_spinning_module_times_out_within_a_second_of_its_limit,
    executing(),
    |app| async move {
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let program = wasm_program(&app, &token, "spin", SPIN).await;
        let environment = wasm_environment(&app, &token, json!({ "timeoutSeconds": 1 })).await;
        let id = id_of(&start_run(&app, &token, &program, &environment, json!([])).await);
        let done = wait_status(&app, &token, &id, "TIMED_OUT", Duration::from_secs(15)).await;
        let ran = seconds_between(&done["startedAt"], &done["finishedAt"]);
        assert!(
            (0.9..2.0).contains(&ran),
            "stopped {ran} s after it started, with a 1 s limit"
        );
        let reason = done["failureReason"].as_str().unwrap();
        assert!(reason.contains("timed out after 1 s"), "{reason}");
        let lines = logs(&app, &token, &id, 0, 100).await;
        assert!(
            lines_of(&lines, "SYSTEM")
                .iter()
                .any(|l| l.contains("timed out after 1 s"))
        );
    }
);

e2e_test!(
    cancelling_a_spinning_module_stops_it_within_a_second,
    executing(),
    |app| async move {
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let program = wasm_program(&app, &token, "spin", SPIN).await;
        let environment = wasm_environment(&app, &token, json!({ "timeoutSeconds": 600 })).await;
        let id = id_of(&start_run(&app, &token, &program, &environment, json!([])).await);
        wait_status(&app, &token, &id, "RUNNING", Duration::from_secs(15)).await;
        let asked = Instant::now();
        let cancelled = cancel_run(&app, &token, &id).await;
        let took = asked.elapsed();
        assert_eq!(cancelled["status"], "CANCELLED", "{cancelled}");
        assert!(took < Duration::from_secs(1), "cancelRun took {took:?}");
        assert_eq!(cancelled["failureReason"], "cancelled by dev@example.com");
        let code = app
            .gql_err_code(
                Some(&token),
                "mutation($id: ID!) { cancelRun(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(code, "CONFLICT", "a finished run cannot be cancelled again");
    }
);

e2e_test!(
    a_new_run_never_passes_queued_runs,
    TestApp::builder().env("PLAYGROUND_WASM_CONCURRENCY", 1),
    |app| async move {
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let hello = wasm_program(&app, &token, "hello", HELLO).await;
        let spin = wasm_program(&app, &token, "spin", SPIN).await;
        let environment = wasm_environment(&app, &token, json!({ "timeoutSeconds": 600 })).await;
        let first = id_of(&start_run(&app, &token, &hello, &environment, json!([])).await);
        wait_status(&app, &token, &first, "SUCCEEDED", Duration::from_secs(15)).await;

        // Every new run is stored QUEUED; with the slot free and nobody
        // waiting, its server claims it at once.
        let a = start_run(&app, &token, &spin, &environment, json!([])).await;
        assert_eq!(a["status"], "QUEUED", "{a}");
        let a = id_of(&a);
        wait_status(&app, &token, &a, "RUNNING", Duration::from_secs(15)).await;

        // The slot is taken: new runs wait in the queue, in order.
        let b = start_run(&app, &token, &spin, &environment, json!([])).await;
        let c = start_run(&app, &token, &spin, &environment, json!([])).await;
        assert_eq!(b["status"], "QUEUED", "{b}");
        assert_eq!(c["status"], "QUEUED", "{c}");
        let (b, c) = (id_of(&b), id_of(&c));
        cancel_run(&app, &token, &a).await;
        wait_status(&app, &token, &b, "RUNNING", Duration::from_secs(15)).await;
        let c_now = run(&app, &token, &c).await;
        assert_eq!(
            c_now["status"],
            "QUEUED",
            "{c_now} {}",
            run(&app, &token, &b).await
        );

        // A run created while C waits queues behind it, slot or not.
        let d = start_run(&app, &token, &hello, &environment, json!([])).await;
        assert_eq!(d["status"], "QUEUED", "{d}");
        let d = id_of(&d);
        cancel_run(&app, &token, &b).await;
        wait_status(&app, &token, &c, "RUNNING", Duration::from_secs(15)).await;
        assert_eq!(run(&app, &token, &d).await["status"], "QUEUED");
        cancel_run(&app, &token, &c).await;
        let d = wait_status(&app, &token, &d, "SUCCEEDED", Duration::from_secs(15)).await;

        let started = |run: &Value| -> chrono::DateTime<chrono::Utc> {
            run["startedAt"].as_str().unwrap().parse().unwrap()
        };
        let b = run(&app, &token, &b).await;
        let c = run(&app, &token, &c).await;
        assert!(started(&b) <= started(&c), "B started before C: {b} {c}");
        assert!(started(&c) <= started(&d), "C started before D: {c} {d}");
    }
);

e2e_test!(
    a_memory_hog_fails_naming_the_memory_limit,
    executing(),
    |app| async move {
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let program = wasm_program(&app, &token, "hog", MEMORY_HOG).await;
        let environment = wasm_environment(&app, &token, json!({ "memoryMb": 64 })).await;
        let id = id_of(&start_run(&app, &token, &program, &environment, json!([])).await);
        let done = wait_status(&app, &token, &id, "FAILED", Duration::from_secs(30)).await;
        let reason = done["failureReason"].as_str().unwrap();
        assert!(reason.contains("memory limit of 64 MB"), "{reason}");
        // The server is unaffected.
        assert_eq!(
            app.http()
                .get(app.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
);

e2e_test!(
    traps_and_invalid_modules_fail_their_run_not_the_server,
    executing(),
    |app| async move {
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let environment = wasm_environment(&app, &token, json!({})).await;
        let trap = wasm_program(
            &app,
            &token,
            "trap",
            "(module (memory (export \"memory\") 1) (func (export \"_start\") unreachable))",
        )
        .await;
        let id = id_of(&start_run(&app, &token, &trap, &environment, json!([])).await);
        let done = wait_status(
            &app,
            &token,
            &id,
            "FAILED|SUCCEEDED",
            Duration::from_secs(15),
        )
        .await;
        assert_eq!(done["status"], "FAILED");
        assert!(
            done["failureReason"].as_str().unwrap().contains("trapped"),
            "{done}"
        );

        let input = json!({
            "name": "garbage", "runtime": "WASM", "entrypoint": "bad.wasm",
            "files": [{ "path": "bad.wasm", "contentBase64": "AGFzbQEAAAAB/////w==" }],
        });
        let garbage = id_of(&create_program(&app, &token, input).await);
        let id = id_of(&start_run(&app, &token, &garbage, &environment, json!([])).await);
        let done = wait_status(
            &app,
            &token,
            &id,
            "FAILED|SUCCEEDED",
            Duration::from_secs(15),
        )
        .await;
        assert_eq!(done["status"], "FAILED");
        assert!(
            done["failureReason"]
                .as_str()
                .unwrap()
                .contains("not valid WebAssembly"),
            "{done}"
        );
        assert_eq!(
            app.http()
                .get(app.url("/readyz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
);

e2e_test!(
    exit_codes_are_recorded_and_retry_makes_a_new_attempt,
    executing(),
    |app| async move {
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let environment = wasm_environment(&app, &token, json!({})).await;
        let exit_7 = "(module (import \"wasi_snapshot_preview1\" \"proc_exit\" (func $exit (param i32))) (memory (export \"memory\") 1) (func (export \"_start\") (call $exit (i32.const 7))))";
        let program = wasm_program(&app, &token, "exit7", exit_7).await;
        let id = id_of(&start_run(&app, &token, &program, &environment, json!(["x", "y"])).await);
        let done = wait_status(
            &app,
            &token,
            &id,
            "FAILED|SUCCEEDED",
            Duration::from_secs(15),
        )
        .await;
        assert_eq!(done["status"], "FAILED");
        assert_eq!(done["exitCode"], 7);
        assert_eq!(done["failureReason"], "the program exited with code 7");

        let query = format!("mutation($id: ID!) {{ retryRun(id: $id) {{ {RUN} }} }}");
        let retried =
            app.gql_ok(Some(&token), &query, json!({ "id": id })).await["retryRun"].clone();
        assert_ne!(retried["id"], done["id"]);
        assert_eq!(retried["attempt"], 2);
        assert_eq!(retried["programVersion"], done["programVersion"]);
        assert_eq!(retried["args"], json!(["x", "y"]));
        let again = wait_status(
            &app,
            &token,
            &id_of(&retried),
            "FAILED|SUCCEEDED",
            Duration::from_secs(15),
        )
        .await;
        assert_eq!(again["exitCode"], 7);
    }
);

db_test!(
    a_restart_finishes_runs_that_were_in_flight,
    |db| async move {
        let mut app = db.start(executing()).await;
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let program = wasm_program(&app, &token, "spin", SPIN).await;
        let environment = wasm_environment(&app, &token, json!({ "timeoutSeconds": 600 })).await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(id_of(
                &start_run(&app, &token, &program, &environment, json!([])).await,
            ));
        }
        for id in &ids {
            wait_status(&app, &token, id, "RUNNING", Duration::from_secs(15)).await;
        }
        app.kill().await;

        let app = db.start(executing()).await;
        let token = app.login("dev@example.com", USER_PASSWORD).await;
        for id in &ids {
            let done = wait_status(&app, &token, id, "FAILED", Duration::from_secs(15)).await;
            assert_eq!(done["failureReason"], "the server stopped during the run");
            assert!(done["finishedAt"].is_string());
        }
        // The restarted server runs new work.
        let hello = wasm_program(&app, &token, "hello", HELLO).await;
        let id = id_of(&start_run(&app, &token, &hello, &environment, json!([])).await);
        wait_status(&app, &token, &id, "SUCCEEDED", Duration::from_secs(15)).await;
    }
);

db_test!(
    sigterm_lets_runs_finish_then_cancels_them,
    |db| async move {
        let builder = executing().env("PLAYGROUND_SHUTDOWN_GRACE_SECONDS", 1);
        let mut app = db.start(builder).await;
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let program = wasm_program(&app, &token, "spin", SPIN).await;
        let environment = wasm_environment(&app, &token, json!({ "timeoutSeconds": 600 })).await;
        let id = id_of(&start_run(&app, &token, &program, &environment, json!([])).await);
        wait_status(&app, &token, &id, "RUNNING", Duration::from_secs(15)).await;
        let status = app.sigterm().await;
        assert!(status.success(), "the server exits cleanly: {status:?}");

        let app = db.start(executing()).await;
        let token = app.login("dev@example.com", USER_PASSWORD).await;
        let done = run(&app, &token, &id).await;
        assert_eq!(done["status"], "CANCELLED", "{done}");
        assert!(
            done["failureReason"]
                .as_str()
                .unwrap()
                .contains("the server shut down"),
            "{done}"
        );
    }
);

e2e_test!(
    python_programs_run_in_wasm_with_their_imports,
    executing(),
    |app| async move {
        let Some(python) = std::env::var_os("PLAYGROUND_PYTHON_WASM") else {
            println!("skipped: PLAYGROUND_PYTHON_WASM is not set");
            return;
        };
        assert!(
            std::path::Path::new(&python).exists(),
            "PLAYGROUND_PYTHON_WASM names a missing file"
        );
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let input = json!({
            "name": "py", "runtime": "PYTHON", "entrypoint": "main.py",
            "files": [
                { "path": "main.py", "content": "import sys\nimport helper\nprint(helper.greet(sys.argv[1:]))\n" },
                { "path": "helper.py", "content": "def greet(args):\n    return 'hello ' + ' '.join(args)\n" },
            ],
        });
        let program = id_of(&create_program(&app, &token, input).await);
        let env_input = json!({ "name": "py", "executor": "WASM", "config": { "pythonWasm": python.to_string_lossy() } });
        let environment = id_of(&create_environment(&app, &token, env_input).await);
        // Preparing compiles the interpreter (seconds; longer in debug builds).
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let current = get_environment(&app, &token, &environment).await;
            if current["status"] == "READY" {
                break;
            }
            assert_eq!(current["status"], "CREATING", "{current}");
            assert!(
                Instant::now() < deadline,
                "the interpreter was not prepared in time"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let id = id_of(&start_run(&app, &token, &program, &environment, json!(["a", "b"])).await);
        let done = wait_status(
            &app,
            &token,
            &id,
            "SUCCEEDED|FAILED",
            Duration::from_secs(60),
        )
        .await;
        let lines = logs(&app, &token, &id, 0, 100).await;
        assert_eq!(done["status"], "SUCCEEDED", "{done} {lines:?}");
        assert_eq!(lines_of(&lines, "STDOUT"), ["hello a b"]);
    }
);

e2e_test!(
    an_environment_whose_interpreter_is_missing_fails_with_the_reason,
    executing(),
    |app| async move {
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let input = json!({ "name": "py", "executor": "WASM", "config": { "pythonWasm": "/nonexistent/python.wasm" } });
        let environment = id_of(&create_environment(&app, &token, input).await);
        let failed = wait_environment_status(&app, &token, &environment, "FAILED").await;
        assert!(
            failed["statusReason"]
                .as_str()
                .unwrap()
                .contains("/nonexistent/python.wasm"),
            "{failed}"
        );
        let program = wasm_program(&app, &token, "hello", HELLO).await;
        let input = json!({ "programId": program, "environmentId": environment });
        let code = app
            .gql_err_code(
                Some(&token),
                &create_run_mutation(),
                json!({ "input": input }),
            )
            .await;
        assert_eq!(code, "CONFLICT");
    }
);

/// PostgreSQL only: one SQLite file belongs to one server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_never_run_a_run_twice() {
    run_db_test(Backend::Postgres, |db| async move {
        let first = db.start(executing()).await;
        let second = db.start_with_own_data_dir(executing()).await;
        let token = first.create_user("dev@example.com", "DEVELOPER").await;
        let program = wasm_program(&first, &token, "hello", HELLO).await;
        let environment = wasm_environment(&first, &token, json!({})).await;
        let n_runs = 1000;
        let mut creators = Vec::new();
        for (i, app) in [&first, &second].into_iter().enumerate() {
            let token = app.login("dev@example.com", USER_PASSWORD).await;
            let (program, environment) = (program.clone(), environment.clone());
            let base = app.url("/graphql");
            creators.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for _ in 0..n_runs / 2 {
                let body: Value = http
                    .post(&base)
                    .bearer_auth(&token)
                    .json(&json!({ "query": "mutation($p: ID!, $e: ID!) { createRun(input: { programId: $p, environmentId: $e }) { id } }", "variables": { "p": program, "e": environment } }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert!(body["errors"].is_null(), "server {i}: {body}");
            }
        }));
        }
        for creator in creators {
            creator.await.unwrap();
        }
        let conn = db.connect().await;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT count(*) FILTER (WHERE status = 'SUCCEEDED') AS done, count(*) AS total FROM runs",
            ))
            .await
            .unwrap()
            .unwrap();
            let done: i64 = row.try_get("", "done").unwrap();
            let total: i64 = row.try_get("", "total").unwrap();
            assert_eq!(total, n_runs as i64);
            if done == total {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{done} of {total} runs succeeded in time"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let starts = conn
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT run_id::text AS run_id, count(*) AS n, min(line) AS line FROM run_logs WHERE line LIKE 'started on%' GROUP BY run_id",
        ))
        .await
        .unwrap();
        assert_eq!(starts.len(), n_runs, "every run started");
        let mut servers = std::collections::HashSet::new();
        for row in &starts {
            let n: i64 = row.try_get("", "n").unwrap();
            assert_eq!(n, 1, "a run started more than once");
            let line: String = row.try_get("", "line").unwrap();
            servers.insert(line.rsplit(' ').next().unwrap().to_owned());
        }
        assert_eq!(servers.len(), 2, "both servers took runs: {servers:?}");
    })
    .await;
}
