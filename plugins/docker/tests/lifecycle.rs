//! A run's life on the engine: health, prepare and missing images, refused
//! runtimes, cancel with its grace period, timeout, and a restarted server
//! finding, reattaching to and removing containers. Every test ends with
//! no container and no program files of its runs left.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use playground_docker::LabelledContainer;
use playground_executors::compliance::CapturingSink;
use playground_executors::{Executor, Health, LineStream, RunOutcome, RunSpec, Runtime};
use serde_json::json;
use support::{BUSYBOX, TestEngine, cancel_request, lines};

/// An image no registry serves: its registry is a closed port on this
/// machine, so a pull fails at once.
const ABSENT: &str = "localhost:1/playground-test/absent:1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_the_engine_and_its_api_version() {
    let Some(engine) = support::engine("health").await else {
        return;
    };
    match engine.executor.health().await {
        Health::Available { detail } => {
            assert!(detail.starts_with("Docker Engine "), "{detail}");
            assert!(detail.contains("(API 1."), "{detail}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_finds_a_present_image() {
    let Some(engine) = support::engine("prepare").await else {
        return;
    };
    let events = CapturingSink::new(1_000_000);
    engine
        .executor
        .prepare(&engine.environment(BUSYBOX, json!({})), events.as_ref())
        .await
        .unwrap();
    let notes = lines(&events.finish(), LineStream::System);
    assert!(
        notes
            .iter()
            .any(|l| l.contains(BUSYBOX) && l.contains("ready")),
        "{notes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_cannot_be_had_fails_prepare_and_launch_naming_it() {
    let Some(engine) = support::engine("absent-image").await else {
        return;
    };
    let events = CapturingSink::new(1_000_000);
    let environment = engine.environment(ABSENT, json!({}));
    let error = engine
        .executor
        .prepare(&environment, events.as_ref())
        .await
        .unwrap_err();
    assert!(error.message.contains(ABSENT), "{error}");
    assert!(error.message.contains("cannot pull"), "{error}");
    let notes = lines(&events.finish(), LineStream::System);
    assert!(notes.iter().any(|l| l.contains("pulling")), "{notes:?}");

    let never = engine.environment(ABSENT, json!({"pullPolicy": "NEVER"}));
    let error = engine
        .executor
        .prepare(&never, events.as_ref())
        .await
        .unwrap_err();
    assert!(
        error.message.contains(ABSENT) && error.message.contains("NEVER"),
        "{error}"
    );

    let mut spec = engine.shell("echo never\n");
    spec.environment = environment;
    let error = launch_error(&engine, spec).await;
    assert!(error.contains(ABSENT), "{error}");
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_programs_and_missing_entrypoints_are_refused() {
    let Some(engine) = support::engine("refusals").await else {
        return;
    };
    let spec = engine.spec(
        Runtime::Wasm,
        "main.wat",
        vec![("main.wat", b"(module)".to_vec())],
        engine.environment(BUSYBOX, json!({})),
    );
    assert_eq!(
        launch_error(&engine, spec).await,
        "WASM programs run on WASM environments"
    );
    let mut spec = engine.shell("echo x\n");
    spec.entrypoint = "other.sh".to_owned();
    let error = launch_error(&engine, spec).await;
    assert!(error.contains("other.sh"), "{error}");
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_run_and_leaves_nothing() {
    let Some(engine) = support::engine("timeout").await else {
        return;
    };
    let mut spec = engine.shell("echo started\nwhile :; do :; done\n");
    spec.environment.resources.timeout = Duration::from_secs(2);
    let started = Instant::now();
    let (outcome, output) = engine.run(spec).await;
    assert_eq!(
        outcome,
        RunOutcome::TimedOut {
            after: Duration::from_secs(2)
        }
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(lines(&output, LineStream::Stdout), ["started"]);
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_sends_sigterm_and_the_program_may_finish_within_its_grace() {
    let Some(engine) = support::engine("cancel-grace").await else {
        return;
    };
    let spec = engine
        .shell("trap 'echo \"got TERM\"; exit 0' TERM\necho ready\nwhile :; do sleep 0.1; done\n");
    let started = Instant::now();
    let (outcome, output) = engine
        .run_with_cancel(
            spec,
            Some((
                Duration::from_secs(1),
                cancel_request(Duration::from_secs(20)),
            )),
        )
        .await;
    assert_eq!(
        outcome,
        RunOutcome::Cancelled {
            reason: "cancelled by the test".to_owned()
        }
    );
    assert_eq!(lines(&output, LineStream::Stdout), ["ready", "got TERM"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it waited for the grace period: {:?}",
        started.elapsed()
    );
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_kills_a_program_that_ignores_sigterm_after_the_grace() {
    let Some(engine) = support::engine("cancel-kill").await else {
        return;
    };
    let spec = engine.shell("trap '' TERM\necho ready\nwhile :; do :; done\n");
    let started = Instant::now();
    let (outcome, output) = engine
        .run_with_cancel(
            spec,
            Some((
                Duration::from_secs(1),
                cancel_request(Duration::from_secs(2)),
            )),
        )
        .await;
    let elapsed = started.elapsed();
    assert!(
        matches!(outcome, RunOutcome::Cancelled { .. }),
        "{outcome:?}"
    );
    assert_eq!(lines(&output, LineStream::Stdout), ["ready"]);
    assert!(
        elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(6),
        "cancel at 1 s with a 2 s grace ended after {elapsed:?}"
    );
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_reattaches_replays_the_output_and_gets_the_exit_code() {
    let Some(engine) = support::engine("reattach-running").await else {
        return;
    };
    let spec = engine.shell("echo before\necho warning >&2\nsleep 3\necho after\nexit 7\n");
    let container_id = launch_and_abandon(&engine, spec.clone()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (outcome, output) = reattach(&engine, spec, &container_id)
        .await
        .expect("the container is there");
    assert_eq!(outcome, RunOutcome::Exited { code: 7 });
    assert_eq!(lines(&output, LineStream::Stdout), ["before", "after"]);
    assert_eq!(lines(&output, LineStream::Stderr), ["warning"]);
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reattaching_to_a_finished_container_reports_how_it_ended() {
    let Some(engine) = support::engine("reattach-finished").await else {
        return;
    };
    let spec = engine.shell("echo done\nexit 3\n");
    let container_id = launch_and_abandon(&engine, spec.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while find(&engine, &container_id)
        .await
        .is_some_and(|c| c.running)
    {
        assert!(Instant::now() < deadline, "the container did not exit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (outcome, output) = reattach(&engine, spec, &container_id)
        .await
        .expect("the container is there");
    assert_eq!(outcome, RunOutcome::Exited { code: 3 });
    assert_eq!(lines(&output, LineStream::Stdout), ["done"]);
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reattached_run_times_out_counting_from_the_container_start() {
    let Some(engine) = support::engine("reattach-timeout").await else {
        return;
    };
    let mut spec = engine.shell("while :; do sleep 1; done\n");
    spec.environment.resources.timeout = Duration::from_secs(4);
    let container_id = launch_and_abandon(&engine, spec.clone()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reattached = Instant::now();
    let (outcome, _) = reattach(&engine, spec, &container_id)
        .await
        .expect("the container is there");
    assert!(
        matches!(outcome, RunOutcome::TimedOut { .. }),
        "{outcome:?}"
    );
    assert!(
        reattached.elapsed() < Duration::from_millis(3500),
        "the timeout restarted at the reattach: {:?}",
        reattached.elapsed()
    );
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reattached_run_can_be_cancelled() {
    let Some(engine) = support::engine("reattach-cancel").await else {
        return;
    };
    let spec = engine.shell("echo up\nwhile :; do sleep 1; done\n");
    let container_id = launch_and_abandon(&engine, spec.clone()).await;
    let sink = CapturingSink::new(1_000_000);
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(None);
    let handle = engine
        .executor
        .reattach(spec, &container_id, sink.clone(), cancel_rx)
        .await
        .expect("the container is there");
    tokio::time::sleep(Duration::from_millis(500)).await;
    cancel_tx
        .send(Some(cancel_request(Duration::from_secs(5))))
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(30), handle.finish())
        .await
        .expect("the run ends");
    assert!(
        matches!(outcome, RunOutcome::Cancelled { .. }),
        "{outcome:?}"
    );
    assert_eq!(lines(&sink.finish(), LineStream::Stdout), ["up"]);
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reattach_finds_nothing_for_missing_or_foreign_containers() {
    let Some(engine) = support::engine("reattach-none").await else {
        return;
    };
    let spec = engine.shell("sleep 60\n");
    assert!(
        reattach(&engine, spec.clone(), "0123456789ab-no-such-container")
            .await
            .is_none()
    );
    let container_id = launch_and_abandon(&engine, spec.clone()).await;
    let other_run = engine.shell("sleep 60\n");
    assert!(
        reattach(&engine, other_run, &container_id).await.is_none(),
        "another run's container"
    );
    assert!(
        find(&engine, &container_id).await.is_some(),
        "a foreign container is left alone"
    );
    engine
        .executor
        .remove_container(&container_id)
        .await
        .unwrap();
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labelled_containers_are_listed_and_removed() {
    let Some(engine) = support::engine("labelled").await else {
        return;
    };
    let spec = engine.shell("sleep 60\n");
    let run_id = spec.run_id.clone();
    let container_id = launch_and_abandon(&engine, spec).await;
    let found = find(&engine, &container_id)
        .await
        .expect("the container is listed");
    assert_eq!(
        found,
        LabelledContainer {
            id: container_id.clone(),
            run_id,
            instance_id: engine.instance_id.clone(),
            running: true,
        }
    );
    engine
        .executor
        .remove_container(&container_id)
        .await
        .unwrap();
    assert!(find(&engine, &container_id).await.is_none());
    engine
        .executor
        .remove_container(&container_id)
        .await
        .unwrap();
    engine.assert_clean().await;
}

async fn launch_error(engine: &TestEngine, spec: RunSpec) -> String {
    let sink = CapturingSink::new(1_000_000);
    let (_cancel_tx, cancel_rx) = tokio::sync::watch::channel(None);
    match engine.executor.launch(spec, sink, cancel_rx).await {
        Ok(_) => panic!("the launch should fail"),
        Err(e) => e.message,
    }
}

async fn find(engine: &TestEngine, container_id: &str) -> Option<LabelledContainer> {
    engine
        .executor
        .labelled_containers()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.id == container_id)
}

/// Launches `spec` from an executor on a runtime of its own, then stops
/// that runtime as a server that died would: the container runs on,
/// followed by no one. Returns its id.
async fn launch_and_abandon(engine: &TestEngine, spec: RunSpec) -> String {
    let (instance_id, work_dir) = (engine.instance_id.clone(), engine.work_dir.clone());
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let container_id = runtime.block_on(async {
            let executor = support::executor(None, &instance_id, &work_dir);
            let (_cancel_tx, cancel_rx) = tokio::sync::watch::channel(None);
            let handle = executor
                .launch(spec, CapturingSink::new(1_000_000), cancel_rx)
                .await
                .expect("the launch succeeds");
            handle.external_ref.expect("a container id")
        });
        runtime.shutdown_background();
        container_id
    })
    .await
    .unwrap()
}

/// Reattaches a fresh sink and waits for the outcome.
async fn reattach(
    engine: &TestEngine,
    spec: RunSpec,
    container_id: &str,
) -> Option<(RunOutcome, Vec<playground_executors::NumberedLine>)> {
    let sink: Arc<CapturingSink> = CapturingSink::new(1_000_000);
    let (_cancel_tx, cancel_rx) = tokio::sync::watch::channel(None);
    let handle = engine
        .executor
        .reattach(spec, container_id, sink.clone(), cancel_rx)
        .await?;
    assert_eq!(handle.external_ref.as_deref(), Some(container_id));
    let outcome = tokio::time::timeout(Duration::from_secs(60), handle.finish())
        .await
        .expect("the reattached run ends");
    Some((outcome, sink.finish()))
}
