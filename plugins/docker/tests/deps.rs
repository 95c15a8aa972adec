//! The dependency layer: a PYTHON program's `requirements.txt`, installed
//! from a local wheel without network into an image built once and reused
//! by every program with the same requirements.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::query_parameters::RemoveImageOptionsBuilder;
use playground_docker::DEPS_REPOSITORY;
use playground_executors::compliance::CapturingSink;
use playground_executors::{Executor, LineStream, NumberedLine, RunOutcome, RunSpec, Runtime};
use support::{PYTHON, TestEngine, lines};

/// Held by each test here: removing one test's layer prunes the cache
/// layers that another test's build may stand on.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Requirements that no other test run shares, so the layer is new.
fn unique_requirements(requirement: &str) -> Vec<u8> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("# test run {} {nanos}\n{requirement}\n", std::process::id()).into_bytes()
}

fn python_program(
    engine: &TestEngine,
    main: &str,
    requirements: &[u8],
    wheel: &(String, Vec<u8>),
) -> RunSpec {
    engine.spec(
        Runtime::Python,
        "main.py",
        vec![
            ("main.py", main.as_bytes().to_vec()),
            ("requirements.txt", requirements.to_vec()),
            (&format!("wheels/{}", wheel.0), wheel.1.clone()),
        ],
        engine.environment(PYTHON, serde_json::Value::Null),
    )
}

/// The dependency layer images the run's notes name.
fn layer_tags(output: &[NumberedLine]) -> Vec<String> {
    lines(output, LineStream::System)
        .iter()
        .filter(|l| l.contains("dependency layer"))
        .filter_map(|l| {
            let start = l.find(&format!("{DEPS_REPOSITORY}:"))?;
            Some(l[start..].split_whitespace().next()?.to_owned())
        })
        .collect()
}

async fn remove_images(tags: &[String]) {
    let docker = Docker::connect_with_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    for tag in tags {
        let options = RemoveImageOptionsBuilder::new().force(true).build();
        let _ = docker.remove_image(tag, Some(options), None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dependency_layer_is_built_once_and_reused() {
    let Some(engine) = support::engine("deps-reuse").await else {
        return;
    };
    let _alone = ONE_AT_A_TIME.lock().await;
    let wheel = support::wheel("pgdemo", "1.0", "GREETING = 'hello from a wheel'\n");
    let requirements = unique_requirements("pgdemo==1.0");
    let first = python_program(
        &engine,
        "import os, pgdemo\nprint(pgdemo.GREETING)\nprint('deps left', os.path.exists('/deps'))\n",
        &requirements,
        &wheel,
    );
    let (outcome, output) = engine.run(first).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 }, "{output:?}");
    assert_eq!(
        lines(&output, LineStream::Stdout),
        ["hello from a wheel", "deps left False"]
    );
    let notes = lines(&output, LineStream::System);
    assert!(
        notes
            .iter()
            .any(|l| l.contains("building the dependency layer")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|l| l.contains("Successfully installed pgdemo")),
        "the build output reaches the run's log: {notes:?}"
    );
    assert_eq!(engine.executor.n_builds(), 1);
    let tags = layer_tags(&output);
    assert_eq!(tags.len(), 1, "{notes:?}");

    // Another program with the same requirements: no build.
    let second = python_program(
        &engine,
        "from pgdemo import GREETING\nprint(GREETING.upper())\n",
        &requirements,
        &wheel,
    );
    let (outcome, output) = engine.run(second).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 }, "{output:?}");
    assert_eq!(lines(&output, LineStream::Stdout), ["HELLO FROM A WHEEL"]);
    assert_eq!(engine.executor.n_builds(), 1);
    assert_eq!(layer_tags(&output), tags);
    assert!(
        lines(&output, LineStream::System)
            .iter()
            .any(|l| l.contains("using the dependency layer")),
    );

    engine.assert_clean().await;
    remove_images(&tags).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_with_new_requirements_build_once() {
    let Some(engine) = support::engine("deps-concurrent").await else {
        return;
    };
    let _alone = ONE_AT_A_TIME.lock().await;
    let wheel = support::wheel("pgdemo", "2.0", "VALUE = 2\n");
    let requirements = unique_requirements("pgdemo==2.0");
    let runs = (0..3).map(|i| {
        let spec = python_program(
            &engine,
            &format!("import pgdemo\nprint(pgdemo.VALUE * {i})\n"),
            &requirements,
            &wheel,
        );
        engine.run(spec)
    });
    let results = futures::future::join_all(runs).await;
    let mut tags = Vec::new();
    for (i, (outcome, output)) in results.iter().enumerate() {
        assert_eq!(*outcome, RunOutcome::Exited { code: 0 }, "{output:?}");
        assert_eq!(lines(output, LineStream::Stdout), [format!("{}", 2 * i)]);
        tags.extend(layer_tags(output));
    }
    assert_eq!(engine.executor.n_builds(), 1);
    tags.dedup();
    assert_eq!(tags.len(), 1, "{tags:?}");
    engine.assert_clean().await;
    remove_images(&tags).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_build_fails_the_launch_with_the_build_error() {
    let Some(engine) = support::engine("deps-failed").await else {
        return;
    };
    let _alone = ONE_AT_A_TIME.lock().await;
    let wheel = support::wheel("pgdemo", "1.0", "X = 1\n");
    let spec = python_program(
        &engine,
        "print('never')\n",
        &unique_requirements("pgmissing==1.0"),
        &wheel,
    );
    let sink = CapturingSink::new(1_000_000);
    let (_cancel_tx, cancel_rx) = tokio::sync::watch::channel(None);
    let error = match engine.executor.launch(spec, sink.clone(), cancel_rx).await {
        Ok(_) => panic!("the build should fail"),
        Err(e) => e.message,
    };
    assert!(error.contains("dependency layer"), "{error}");
    assert!(error.contains("pgmissing"), "{error}");
    assert_eq!(engine.executor.n_builds(), 1);
    let notes = lines(&sink.finish(), LineStream::System);
    assert!(notes.iter().any(|l| l.contains("pgmissing")), "{notes:?}");
    engine.assert_clean().await;

    // The builder keeps the steps before the failed one; the last of them
    // is this test's alone.
    let last_step = notes
        .iter()
        .rev()
        .filter_map(|l| l.trim().strip_prefix("---> "))
        .find(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    if let Some(id) = last_step {
        let docker = Docker::connect_with_defaults()
            .unwrap()
            .negotiate_version()
            .await
            .unwrap();
        let options = RemoveImageOptionsBuilder::new().noprune(true).build();
        let _ = docker.remove_image(id, Some(options), None).await;
    }
}
