//! Runs end to end on the DOCKER executor, through the GraphQL API: the executor's health,
//! environment validation and preparation, SHELL and PYTHON programs with args and env, the
//! sandbox, memory and pids limits, timeout and cancel, a restart with a run in flight,
//! leftover containers, an engine that stops mid-run, and the dependency layer of PYTHON
//! programs. They run only with `PLAYGROUND_TEST_DOCKER=1` (and a Docker Engine at
//! `DOCKER_HOST`); otherwise each prints a skip line.

use std::time::{Duration, Instant};

use crate::support::docker::*;
use crate::support::*;

/// A trivial SHELL program.
const HELLO: &str = "echo hello from docker\n";

/// Runs `script` as a SHELL program on a fresh busybox environment with `resources` and
/// waits for its end; the run and its log.
async fn run_shell(
    app: &TestApp,
    token: &str,
    script: &str,
    resources: Value,
    limit: Duration,
) -> (Value, Vec<Value>) {
    let program = shell_program(app, token, "script", script).await;
    let environment = docker_environment(app, token, BUSYBOX, resources).await;
    let id = id_of(&start_run(app, token, &program, &environment, &[], &[]).await);
    let done = wait_run_end(app, token, &id, limit).await;
    let logs = run_logs(app, token, &id).await;
    (done, logs)
}

// Two servers on one database: the environment is prepared while the engine answers (a
// server without an engine would fail its preparation), then served by one without it.
db_test!(
    executors_show_the_engine_and_runs_wait_while_it_is_missing,
    |db| async move {
        if !docker_tests_enabled("executors_show_the_engine_and_runs_wait_while_it_is_missing") {
            return;
        }
        let mut app = db.start(docker_server()).await;
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let docker = executor_info(&app, &token, "DOCKER").await;
        assert_eq!(docker["available"], true, "{docker}");
        let detail = docker["detail"].as_str().unwrap();
        let version = engine_version();
        assert!(
            detail.contains("Docker Engine") && detail.contains(&version),
            "the detail names the engine version {version}: {detail}"
        );
        let program = shell_program(&app, &token, "hello", HELLO).await;
        let environment = docker_environment(&app, &token, BUSYBOX, json!({})).await;
        app.stop().await;

        // The same database, served by a server whose engine is missing.
        let app = db
            .start(docker_server().env("DOCKER_HOST", "unix:///nonexistent.sock"))
            .await;
        let token = app.login("dev@example.com", USER_PASSWORD).await;
        let docker = executor_info(&app, &token, "DOCKER").await;
        assert_eq!(docker["available"], false, "{docker}");
        let reason = docker["detail"].as_str().unwrap();
        assert!(
            reason.contains("/nonexistent.sock"),
            "the reason names the socket: {reason}"
        );
        let run = start_run(&app, &token, &program, &environment, &[], &[]).await;
        assert_eq!(run["status"], "QUEUED");
        let id = id_of(&run);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let still = fetch_run(&app, &token, &id).await;
        assert_eq!(
            still["status"], "QUEUED",
            "a run waits for the engine instead of failing: {still}"
        );
        assert!(still["failureReason"].is_null(), "{still}");
        assert!(run_logs(&app, &token, &id).await.is_empty());
        assert_healthy(&app).await;
    }
);

e2e_test!(
    docker_environments_are_validated_and_prepared,
    docker_server(),
    |app| async move {
        if !docker_tests_enabled("docker_environments_are_validated_and_prepared") {
            return;
        }
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let rejected = |input: Value, word: &'static str| {
            let (app, token) = (&app, &token);
            async move {
                let error = app
                    .gql_err(
                        Some(token),
                        &create_environment_mutation(),
                        json!({ "input": input }),
                    )
                    .await;
                assert_eq!(error.code, "BAD_USER_INPUT", "{input}: {error:?}");
                assert!(
                    error.message.contains(word),
                    "the message names {word}: {error:?} ({input})"
                );
            }
        };
        rejected(json!({ "name": "no-image", "executor": "DOCKER" }), "image").await;
        rejected(
            json!({ "name": "x", "executor": "DOCKER", "image": BUSYBOX, "config": { "privileged": true } }),
            "privileged",
        )
        .await;
        for user in ["0", "root", "1000:0"] {
            rejected(
                json!({ "name": "x", "executor": "DOCKER", "image": BUSYBOX, "config": { "user": user } }),
                "user",
            )
            .await;
        }
        let listed = app
            .gql_ok(Some(&token), "{ environments { totalCount } }", json!({}))
            .await;
        assert_eq!(
            listed["environments"]["totalCount"], 0,
            "nothing was created"
        );

        let missing = "playground-test/nope:1";
        let input = json!({ "name": "missing", "executor": "DOCKER", "image": missing });
        let id = id_of(&create_environment(&app, &token, input).await);
        let failed = wait_environment(&app, &token, &id, "FAILED", Duration::from_secs(60)).await;
        let reason = failed["statusReason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(missing),
            "the reason names the image: {failed}"
        );

        let input = json!({ "name": "busybox", "executor": "DOCKER", "image": BUSYBOX, "config": { "user": "1000:1000" } });
        let created = create_environment(&app, &token, input).await;
        assert_eq!(created["executor"], "DOCKER");
        assert_eq!(created["image"], BUSYBOX);
        let ready = wait_environment(
            &app,
            &token,
            &id_of(&created),
            "READY",
            Duration::from_secs(30),
        )
        .await;
        assert!(ready["statusReason"].is_null(), "{ready}");
        assert_eq!(ready["config"]["user"], "1000:1000");
    }
);

e2e_test!(
    shell_and_python_programs_run_with_args_and_env,
    docker_server(),
    |app| async move {
        if !docker_tests_enabled("shell_and_python_programs_run_with_args_and_env") {
            return;
        }
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let busybox = docker_environment(&app, &token, BUSYBOX, json!({})).await;
        let script = r#"echo "args: $#"
for arg in "$@"; do echo "arg=$arg"; done
echo "err 1" >&2
echo "GREETING=$GREETING"
echo "err 2" >&2
echo "cwd=$(pwd)"
"#;
        let program = shell_program(&app, &token, "args", script).await;
        let run = start_run(
            &app,
            &token,
            &program,
            &busybox,
            &["one", "two words", "*"],
            &[("GREETING", "hello env")],
        )
        .await;
        assert_eq!(run["args"], json!(["one", "two words", "*"]));
        let id = id_of(&run);
        let done = wait_run_end(&app, &token, &id, Duration::from_secs(30)).await;
        let logs = run_logs(&app, &token, &id).await;
        assert_eq!(done["status"], "SUCCEEDED", "{done} {logs:?}");
        assert_eq!(done["exitCode"], 0);
        assert!(done["failureReason"].is_null());
        assert_eq!(
            lines_of(&logs, "STDOUT"),
            [
                "args: 3",
                "arg=one",
                "arg=two words",
                "arg=*",
                "GREETING=hello env",
                "cwd=/work"
            ]
        );
        assert_eq!(lines_of(&logs, "STDERR"), ["err 1", "err 2"]);
        let system = lines_of(&logs, "SYSTEM");
        assert!(
            system
                .first()
                .is_some_and(|l| l.starts_with("started on DOCKER")),
            "{system:?}"
        );
        assert_eq!(
            system.last().map(String::as_str),
            Some("exited with code 0")
        );
        let seqs: Vec<i64> = logs.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=logs.len() as i64).collect::<Vec<_>>());

        let exit3 = shell_program(&app, &token, "exit3", "echo before\nexit 3\n").await;
        let id = id_of(&start_run(&app, &token, &exit3, &busybox, &[], &[]).await);
        let done = wait_run_end(&app, &token, &id, Duration::from_secs(30)).await;
        assert_eq!(done["status"], "FAILED", "{done}");
        assert_eq!(done["exitCode"], 3);
        assert_eq!(done["failureReason"], "the program exited with code 3");
        assert_eq!(
            lines_of(&run_logs(&app, &token, &id).await, "STDOUT"),
            ["before"]
        );

        let python = docker_environment(&app, &token, PYTHON, json!({})).await;
        let files = [
            (
                "main.py".to_owned(),
                b"import os, sys\nfrom lib import helper\nprint(helper.greet(sys.argv[1:]))\nprint('env', os.environ['WHO'])\nprint('oops', file=sys.stderr)\n".to_vec(),
            ),
            ("lib/__init__.py".to_owned(), Vec::new()),
            (
                "lib/helper.py".to_owned(),
                b"def greet(args):\n    return 'hello ' + ' '.join(args)\n".to_vec(),
            ),
        ];
        let program = program_with_files(&app, &token, "py", "PYTHON", "main.py", &files).await;
        let id = id_of(
            &start_run(
                &app,
                &token,
                &program,
                &python,
                &["a", "b c"],
                &[("WHO", "python")],
            )
            .await,
        );
        let done = wait_run_end(&app, &token, &id, Duration::from_secs(30)).await;
        let logs = run_logs(&app, &token, &id).await;
        assert_eq!(done["status"], "SUCCEEDED", "{done} {logs:?}");
        assert_eq!(lines_of(&logs, "STDOUT"), ["hello a b c", "env python"]);
        assert_eq!(lines_of(&logs, "STDERR"), ["oops"]);
    }
);

e2e_test!(
    the_sandbox_shows_in_the_output,
    docker_server(),
    |app| async move {
        if !docker_tests_enabled("the_sandbox_shows_in_the_output") {
            return;
        }
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let script = r#"echo "uid=$(id -u)"
if (echo x > /work/probe) 2>/dev/null; then echo "work=writable"; else echo "work=read-only"; fi
if (echo x > /probe) 2>/dev/null; then echo "root=writable"; else echo "root=read-only"; fi
if echo x > /tmp/probe && [ "$(cat /tmp/probe)" = x ]; then echo "tmp=writable"; fi
for iface in $(ls /sys/class/net); do echo "iface=$iface"; done
tail -n +3 /proc/net/dev | while IFS=: read name rest; do echo "dev=$(echo $name)"; done
"#;
        let (done, logs) =
            run_shell(&app, &token, script, json!({}), Duration::from_secs(30)).await;
        assert_eq!(done["status"], "SUCCEEDED", "{done} {logs:?}");
        let stdout = lines_of(&logs, "STDOUT");
        let uid = stdout
            .iter()
            .find_map(|l| l.strip_prefix("uid="))
            .unwrap_or_else(|| panic!("{stdout:?}"));
        assert_ne!(uid, "0", "programs do not run as root: {stdout:?}");
        assert_eq!(
            stdout[1..],
            [
                "work=read-only",
                "root=read-only",
                "tmp=writable",
                "iface=lo",
                "dev=lo"
            ],
            "{stdout:?}"
        );
    }
);

e2e_test!(
    memory_and_pids_limits_stop_the_run_not_the_server,
    docker_server(),
    |app| async move {
        if !docker_tests_enabled("memory_and_pids_limits_stop_the_run_not_the_server") {
            return;
        }
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let (done, logs) = run_shell(
            &app,
            &token,
            "head -c 400m /dev/zero | tail\n",
            json!({ "memoryMb": 64 }),
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(done["status"], "FAILED", "{done} {logs:?}");
        let reason = done["failureReason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("memory limit of 64 MB"),
            "the reason names the memory limit: {reason}"
        );

        let bomb = "bomb() { bomb | bomb & }\nbomb\nsleep 30\n";
        let program = shell_program(&app, &token, "bomb", bomb).await;
        let environment = docker_environment(
            &app,
            &token,
            BUSYBOX,
            json!({ "pids": 32, "timeoutSeconds": 3 }),
        )
        .await;
        let id = id_of(&start_run(&app, &token, &program, &environment, &[], &[]).await);
        let done = wait_run_end(&app, &token, &id, Duration::from_secs(20)).await;
        let logs = run_logs(&app, &token, &id).await;
        assert!(
            ["TIMED_OUT", "FAILED"].contains(&done["status"].as_str().unwrap()),
            "{done}"
        );
        let ran = seconds_between(&done["startedAt"], &done["finishedAt"]);
        assert!(ran < 5.0, "the fork bomb ran {ran} s with a 3 s timeout");
        assert!(
            lines_of(&logs, "STDERR")
                .iter()
                .any(|l| l.contains("can't fork")),
            "the pids limit stopped the forks: {logs:?}"
        );
        assert_no_container_of_run(&id, Duration::from_secs(5)).await;

        assert_healthy(&app).await;
        let (done, logs) = run_shell(&app, &token, HELLO, json!({}), Duration::from_secs(30)).await;
        assert_eq!(done["status"], "SUCCEEDED", "{done} {logs:?}");
        assert_eq!(lines_of(&logs, "STDOUT"), ["hello from docker"]);
    }
);

e2e_test!(
    timeout_and_cancel_stop_the_container_and_remove_it,
    docker_server(),
    |app| async move {
        if !docker_tests_enabled("timeout_and_cancel_stop_the_container_and_remove_it") {
            return;
        }
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let (done, logs) = run_shell(
            &app,
            &token,
            "echo sleeping\nsleep 30\n",
            json!({ "timeoutSeconds": 2 }),
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(done["status"], "TIMED_OUT", "{done} {logs:?}");
        let ran = seconds_between(&done["startedAt"], &done["finishedAt"]);
        assert!(
            (1.5..=3.0).contains(&ran),
            "stopped {ran} s after it started, with a 2 s limit"
        );
        let reason = done["failureReason"].as_str().unwrap_or_default();
        assert!(reason.contains("timed out after 2 s"), "{reason}");
        assert_eq!(lines_of(&logs, "STDOUT"), ["sleeping"]);
        assert_no_container_of_run(&id_of(&done), Duration::from_secs(2)).await;

        // The shell ignores SIGTERM, so the run stops only when the grace period has passed.
        let script = "trap '' TERM\necho ready\nsleep 30\necho never\n";
        let program = shell_program(&app, &token, "sleeper", script).await;
        let environment =
            docker_environment(&app, &token, BUSYBOX, json!({ "timeoutSeconds": 60 })).await;
        let id = id_of(&start_run(&app, &token, &program, &environment, &[], &[]).await);
        wait_run(&app, &token, &id, "RUNNING", Duration::from_secs(20)).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while lines_of(&run_logs(&app, &token, &id).await, "STDOUT").is_empty() {
            assert!(Instant::now() < deadline, "the program never said ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let asked = Instant::now();
        let cancelled = cancel_run(&app, &token, &id).await;
        let done = if cancelled["status"] == "CANCELLED" {
            cancelled
        } else {
            wait_run(&app, &token, &id, "CANCELLED", Duration::from_secs(10)).await
        };
        let took = asked.elapsed();
        assert_eq!(done["status"], "CANCELLED", "{done}");
        assert_eq!(done["failureReason"], "cancelled by dev@example.com");
        let grace = Duration::from_secs(CANCEL_GRACE_SECONDS);
        assert!(
            took >= grace.mul_f64(0.8) && took <= grace + Duration::from_secs(2),
            "a run ignoring SIGTERM is killed after the {grace:?} grace; it took {took:?}"
        );
        let logs = run_logs(&app, &token, &id).await;
        assert_eq!(lines_of(&logs, "STDOUT"), ["ready"]);
        assert_no_container_of_run(&id, Duration::from_secs(2)).await;
    }
);

db_test!(
    a_restarted_server_follows_a_docker_run_to_its_end,
    |db| async move {
        if !docker_tests_enabled("a_restarted_server_follows_a_docker_run_to_its_end") {
            return;
        }
        let mut app = db.start(docker_server()).await;
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let script =
            "i=1\nwhile [ $i -le 12 ]; do echo \"line $i\"; i=$((i + 1)); sleep 0.25; done\n";
        let program = shell_program(&app, &token, "lines", script).await;
        let environment = docker_environment(&app, &token, BUSYBOX, json!({})).await;
        let id = id_of(&start_run(&app, &token, &program, &environment, &[], &[]).await);
        wait_run(&app, &token, &id, "RUNNING", Duration::from_secs(20)).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stored = lines_of(&run_logs(&app, &token, &id).await, "STDOUT");
            if stored.len() >= 3 {
                assert!(
                    stored.len() < 12,
                    "the run ended before the kill: {stored:?}"
                );
                break;
            }
            assert!(Instant::now() < deadline, "only {stored:?} after 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        app.kill().await;

        let app = db.start(docker_server()).await;
        let token = app.login("dev@example.com", USER_PASSWORD).await;
        let done = wait_run_end(&app, &token, &id, Duration::from_secs(30)).await;
        let logs = run_logs(&app, &token, &id).await;
        assert_eq!(done["status"], "SUCCEEDED", "{done} {logs:?}");
        assert_eq!(done["exitCode"], 0);
        let expected: Vec<String> = (1..=12).map(|i| format!("line {i}")).collect();
        assert_eq!(
            lines_of(&logs, "STDOUT"),
            expected,
            "every line once, in order: {logs:?}"
        );
        let seqs: Vec<i64> = logs.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=logs.len() as i64).collect::<Vec<_>>(),
            "contiguous seqs: {logs:?}"
        );
        assert_no_container_of_run(&id, Duration::from_secs(2)).await;
    }
);

db_test!(
    a_starting_server_removes_containers_of_finished_runs,
    |db| async move {
        if !docker_tests_enabled("a_starting_server_removes_containers_of_finished_runs") {
            return;
        }
        let mut app = db.start(docker_server()).await;
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let program = shell_program(&app, &token, "hello", HELLO).await;
        let environment = docker_environment(&app, &token, BUSYBOX, json!({})).await;
        let id = id_of(&start_run(&app, &token, &program, &environment, &[], &[]).await);
        let done = wait_run_end(&app, &token, &id, Duration::from_secs(30)).await;
        assert_eq!(done["status"], "SUCCEEDED", "{done}");
        app.stop().await;

        let run_label = format!("{RUN_LABEL}={id}");
        let container = docker_cli(
            None,
            &[
                "run",
                "-d",
                "--network",
                "none",
                "--label",
                &run_label,
                "--label",
                "playground.instance=x",
                BUSYBOX,
                "sleep",
                "300",
            ],
        )
        .trim()
        .to_owned();
        let _guard = ContainerGuard(vec![container.clone()]);
        assert_eq!(containers_of_run(&id).len(), 1);

        let app = db.start(docker_server()).await;
        assert_no_container_of_run(&id, Duration::from_secs(10)).await;
        assert_healthy(&app).await;
    }
);

/// SQLite only: the test stops and starts an engine of its own, which is heavy. A run
/// created right after the engine went away is claimed before the scheduler knows; its
/// launch finds no engine and puts it back in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_engine_fails_its_run_and_queues_new_ones() {
    run_db_test(Backend::Sqlite, |db| async move {
        if !docker_tests_enabled("a_stopped_engine_fails_its_run_and_queues_new_ones") {
            return;
        }
        let mut dockerd = tokio::task::spawn_blocking(|| {
            let dockerd = PrivateDockerd::start();
            if let Err(message) = make_images(Some(&dockerd.host())) {
                panic!("{message}");
            }
            dockerd
        })
        .await
        .unwrap();
        let app = db
            .start(docker_server().env("DOCKER_HOST", dockerd.host()))
            .await;
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let program = shell_program(&app, &token, "sleeper", "echo sleeping\nsleep 30\n").await;
        let environment = docker_environment(&app, &token, BUSYBOX, json!({})).await;
        let id = id_of(&start_run(&app, &token, &program, &environment, &[], &[]).await);
        wait_run(&app, &token, &id, "RUNNING", Duration::from_secs(20)).await;

        let mut dockerd = tokio::task::spawn_blocking(move || {
            dockerd.stop();
            dockerd
        })
        .await
        .unwrap();
        let done = wait_run_end(&app, &token, &id, Duration::from_secs(20)).await;
        let logs = run_logs(&app, &token, &id).await;
        assert_eq!(done["status"], "FAILED", "{done} {logs:?}");
        let reason = done["failureReason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("Docker engine"),
            "the reason is about the engine: {reason}"
        );
        assert_healthy(&app).await;
        let docker = executor_info(&app, &token, "DOCKER").await;
        assert_eq!(docker["available"], false, "{docker}");

        let hello = shell_program(&app, &token, "hello", HELLO).await;
        let queued = id_of(&start_run(&app, &token, &hello, &environment, &[], &[]).await);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let waiting = fetch_run(&app, &token, &queued).await;
        assert_eq!(
            waiting["status"],
            "QUEUED",
            "a run waits for the engine to return: {waiting} {:?}",
            run_logs(&app, &token, &queued).await
        );

        let _dockerd = tokio::task::spawn_blocking(move || {
            dockerd.restart();
            dockerd
        })
        .await
        .unwrap();
        let done = wait_run_end(&app, &token, &queued, Duration::from_secs(30)).await;
        let logs = run_logs(&app, &token, &queued).await;
        assert_eq!(done["status"], "SUCCEEDED", "{done} {logs:?}");
        assert_eq!(lines_of(&logs, "STDOUT"), ["hello from docker"]);
        let docker = executor_info(&app, &token, "DOCKER").await;
        assert_eq!(docker["available"], true, "{docker}");
    })
    .await;
}

/// The two variants of the dependency test take turns: removing one's layer image may
/// remove the intermediate images the other's build stands on.
static DEPENDENCY_LAYERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The dependency layer images named in a run's SYSTEM lines.
fn layer_images(logs: &[Value]) -> Vec<String> {
    let mut images: Vec<String> = lines_of(logs, "SYSTEM")
        .iter()
        .filter(|l| l.contains("dependency layer"))
        .filter_map(|l| {
            let start = l.find("playground-deps:")?;
            Some(l[start..].split_whitespace().next()?.to_owned())
        })
        .collect();
    images.dedup();
    images
}

e2e_test!(
    python_requirements_build_a_dependency_layer_once,
    docker_server(),
    |app| async move {
        if !docker_tests_enabled("python_requirements_build_a_dependency_layer_once") {
            return;
        }
        let _turn = DEPENDENCY_LAYERS.lock().await;
        let images = ImageGuard::default();
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let environment = docker_environment(&app, &token, PYTHON, json!({})).await;
        let package = unique_name("pgwheel");
        let (wheel_name, wheel_bytes) = wheel(&package, "0.1", "GREETING = 'hello from a wheel'\n");
        let files = |main: String| {
            vec![
                ("main.py".to_owned(), main.into_bytes()),
                (
                    "requirements.txt".to_owned(),
                    format!("{package}==0.1\n").into_bytes(),
                ),
                (format!("wheels/{wheel_name}"), wheel_bytes.clone()),
            ]
        };

        let first = program_with_files(
            &app,
            &token,
            "first",
            "PYTHON",
            "main.py",
            &files(format!("import {package}\nprint({package}.GREETING)\n")),
        )
        .await;
        let id = id_of(&start_run(&app, &token, &first, &environment, &[], &[]).await);
        let done = wait_run_end(&app, &token, &id, Duration::from_secs(120)).await;
        let logs = run_logs(&app, &token, &id).await;
        for image in layer_images(&logs) {
            images.add(image);
        }
        assert_eq!(done["status"], "SUCCEEDED", "{done} {logs:?}");
        assert_eq!(lines_of(&logs, "STDOUT"), ["hello from a wheel"]);
        let system = lines_of(&logs, "SYSTEM");
        assert!(
            system
                .iter()
                .any(|l| l.contains("building the dependency layer")),
            "the first run builds the layer: {system:?}"
        );
        assert!(
            system.iter().any(|l| l.contains(&format!(
                "Successfully installed {}",
                package.replace('_', "-")
            )) || l.contains(&format!("Successfully installed {package}"))),
            "the build's output is in the run's log: {system:?}"
        );
        let built = layer_images(&logs);
        assert_eq!(built.len(), 1, "{system:?}");

        let second = program_with_files(
            &app,
            &token,
            "second",
            "PYTHON",
            "main.py",
            &files(format!(
                "from {package} import GREETING\nprint(GREETING.upper())\n"
            )),
        )
        .await;
        let id = id_of(&start_run(&app, &token, &second, &environment, &[], &[]).await);
        let done = wait_run_end(&app, &token, &id, Duration::from_secs(60)).await;
        let logs = run_logs(&app, &token, &id).await;
        assert_eq!(done["status"], "SUCCEEDED", "{done} {logs:?}");
        assert_eq!(lines_of(&logs, "STDOUT"), ["HELLO FROM A WHEEL"]);
        let system = lines_of(&logs, "SYSTEM");
        assert!(
            !system.iter().any(|l| l.contains("building")),
            "the second program reuses the layer: {system:?}"
        );
        assert!(
            system
                .iter()
                .any(|l| l.contains("using the dependency layer")),
            "{system:?}"
        );
        assert_eq!(layer_images(&logs), built);
        drop(images);
        assert!(
            docker_cli(None, &["images", "-q", &built[0]])
                .trim()
                .is_empty(),
            "the layer image was removed"
        );
    }
);

e2e_test!(
    credentials_reach_the_program_but_never_the_log_the_database_or_the_server_log,
    docker_server().env("RUST_LOG", "debug"),
    |app| async move {
        if !docker_tests_enabled("credentials_reach_the_program_but_never_the_log") {
            return;
        }
        const PLANTED: &str = "pl4nted-Cr3dential-value";
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let credential = app
            .gql_ok(
                Some(&token),
                "mutation($v: String!) { createCredential(name: \"API_TOKEN\", value: $v) { id name } }",
                json!({ "v": PLANTED }),
            )
            .await["createCredential"]
            .clone();
        // The value whole, then split across two writes a moment apart, and its length.
        let script = "printf 'whole=%s\\n' \"$API_TOKEN\"\n\
                      head=${API_TOKEN%?????????}\n\
                      printf 'split=%s' \"$head\"\n\
                      sleep 0.3\n\
                      printf '%s\\n' \"${API_TOKEN#\"$head\"}\"\n\
                      echo \"length=${#API_TOKEN}\"\n";
        let program = shell_program(&app, &token, "uses-credential", script).await;
        let environment = docker_environment(&app, &token, BUSYBOX, json!({})).await;
        let query = format!(
            "mutation($input: CreateRunInput!) {{ createRun(input: $input) {{ {RUN_SELECTION} }} }}"
        );
        let input = json!({ "programId": program, "environmentId": environment, "credentialIds": [credential["id"]] });
        let run = app
            .gql_ok(Some(&token), &query, json!({ "input": input }))
            .await["createRun"]
            .clone();
        let id = id_of(&run);
        let done = wait_run_end(&app, &token, &id, Duration::from_secs(60)).await;
        assert_eq!(done["status"], "SUCCEEDED", "{done}");
        let stdout = lines_of(&run_logs(&app, &token, &id).await, "STDOUT");
        assert_eq!(
            stdout,
            [
                "whole=****",
                "split=****",
                &format!("length={}", PLANTED.len())
            ],
            "the program got the value; the log shows only the mask"
        );

        // Nowhere at rest: not in the database files, not in the server's own log.
        let mut stored = Vec::new();
        for entry in std::fs::read_dir(app.data_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                stored.extend(std::fs::read(&path).unwrap());
            }
        }
        assert!(!stored.is_empty());
        assert!(
            !stored
                .windows(PLANTED.len())
                .any(|w| w == PLANTED.as_bytes()),
            "the credential value is in a file of the data directory"
        );
        let log = app.stderr();
        let leaks: Vec<&str> = log.lines().filter(|l| l.contains(PLANTED)).collect();
        assert!(
            leaks.is_empty(),
            "the credential value is in the server log: {leaks:?}"
        );
        let listed = app
            .gql_ok(Some(&token), "{ credentials { id name } }", json!({}))
            .await;
        assert!(!listed.to_string().contains(PLANTED));
    }
);
