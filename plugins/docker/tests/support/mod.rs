//! Helpers shared by the Docker plugin's tests: the gate on
//! `PLAYGROUND_TEST_DOCKER`, the test images, executors, environments, run
//! specs, a wheel maker, and the check that a test left no container and no
//! program files behind.

#![allow(dead_code)]

mod wheel;

#[allow(unused_imports)]
pub use wheel::wheel;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use playground_docker::{DockerExecutor, DockerSettings, LabelledContainer};
use playground_executors::compliance::CapturingSink;
use playground_executors::{
    CancelRequest, EnvironmentSpec, Executor, ExecutorKind, Health, LineStream, NumberedLine,
    ProgramFile, Resources, RunOutcome, RunSpec, Runtime,
};

pub const BUSYBOX: &str = "playground-test/busybox:latest";
pub const PYTHON: &str = "playground-test/python:latest";

/// Whether the engine's tests run: only with `PLAYGROUND_TEST_DOCKER=1`,
/// and then a missing engine fails them.
pub fn docker_enabled(test: &str) -> bool {
    if std::env::var("PLAYGROUND_TEST_DOCKER").as_deref() == Ok("1") {
        return true;
    }
    eprintln!(
        "skipping {test}: set PLAYGROUND_TEST_DOCKER=1 and DOCKER_HOST to run it against a Docker Engine \
         (plugins/docker/tests/support/start-dockerd.sh starts one)"
    );
    false
}

/// One test's executor, its work directory and its run ids.
pub struct TestEngine {
    pub executor: Arc<DockerExecutor>,
    pub instance_id: String,
    pub work_dir: PathBuf,
    prefix: String,
    n_runs: AtomicU64,
    _root: tempfile::TempDir,
}

/// A fresh executor for `test` when the engine's tests run; it panics if
/// they should run and the engine or the test images are missing.
pub async fn engine(test: &str) -> Option<TestEngine> {
    if !docker_enabled(test) {
        return None;
    }
    let root = tempfile::tempdir().expect("a temporary directory");
    let instance_id = format!("test-instance-{}", std::process::id());
    let work_dir = root.path().join("runs");
    let executor = executor(None, &instance_id, &work_dir);
    match executor.health().await {
        Health::Available { .. } => {}
        Health::Unavailable { reason } => panic!(
            "PLAYGROUND_TEST_DOCKER=1 but the Docker engine is unavailable: {reason} \
             (start one with plugins/docker/tests/support/start-dockerd.sh and export DOCKER_HOST)"
        ),
    }
    make_images();
    Some(TestEngine {
        executor: Arc::new(executor),
        instance_id,
        work_dir,
        prefix: format!("{test}-{}", std::process::id()),
        n_runs: AtomicU64::new(0),
        _root: root,
    })
}

pub fn executor(host: Option<String>, instance_id: &str, work_dir: &Path) -> DockerExecutor {
    DockerExecutor::new(DockerSettings {
        host,
        instance_id: instance_id.to_owned(),
        work_dir: work_dir.to_owned(),
    })
}

/// Builds the test images once per test binary.
fn make_images() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/make-images.sh");
        let output = std::process::Command::new("bash")
            .arg(&script)
            .output()
            .expect("bash runs");
        assert!(
            output.status.success(),
            "{} failed: {}{}",
            script.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

impl TestEngine {
    /// A run id unique to this test.
    pub fn run_id(&self) -> String {
        let n = self.n_runs.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.prefix)
    }

    /// This test's environment id.
    pub fn environment_id(&self) -> String {
        format!("env-{}", self.prefix)
    }

    pub fn environment(&self, image: &str, config: serde_json::Value) -> EnvironmentSpec {
        EnvironmentSpec {
            id: self.environment_id(),
            kind: ExecutorKind::Docker,
            image: Some(image.to_owned()),
            resources: Resources {
                memory_mb: 256,
                cpu_millis: 1000,
                timeout: Duration::from_secs(60),
                max_log_bytes: 10_000_000,
                pids: 64,
            },
            config,
        }
    }

    /// A SHELL program of one script on the busybox image.
    pub fn shell(&self, script: &str) -> RunSpec {
        self.spec(
            Runtime::Shell,
            "main.sh",
            vec![("main.sh", script.as_bytes().to_vec())],
            self.environment(BUSYBOX, serde_json::Value::Null),
        )
    }

    pub fn spec(
        &self,
        runtime: Runtime,
        entrypoint: &str,
        files: Vec<(&str, Vec<u8>)>,
        environment: EnvironmentSpec,
    ) -> RunSpec {
        RunSpec {
            run_id: self.run_id(),
            program_id: format!("program-{}", self.prefix),
            program_version: 1,
            runtime,
            entrypoint: entrypoint.to_owned(),
            files: files
                .into_iter()
                .map(|(path, content)| ProgramFile {
                    path: path.to_owned(),
                    content: Bytes::from(content),
                })
                .collect(),
            args: Vec::new(),
            env: Vec::new(),
            secrets: Vec::new(),
            environment,
        }
    }

    /// Launches `run_spec` and waits for its outcome and lines.
    pub async fn run(&self, run_spec: RunSpec) -> (RunOutcome, Vec<NumberedLine>) {
        self.run_with_cancel(run_spec, None).await
    }

    /// As [`Self::run`], sending `cancel` after the given delay.
    pub async fn run_with_cancel(
        &self,
        run_spec: RunSpec,
        cancel: Option<(Duration, CancelRequest)>,
    ) -> (RunOutcome, Vec<NumberedLine>) {
        let sink = CapturingSink::new(run_spec.environment.resources.max_log_bytes);
        let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(None);
        let run_id = run_spec.run_id.clone();
        let handle = self
            .executor
            .launch(run_spec, sink.clone(), cancel_rx)
            .await
            .unwrap_or_else(|e| panic!("{run_id}: launch failed: {e}"));
        assert!(handle.external_ref.is_some(), "a container id");
        let sender = tokio::spawn(async move {
            if let Some((after, request)) = cancel {
                tokio::time::sleep(after).await;
                let _ = cancel_tx.send(Some(request));
            }
            tokio::time::sleep(Duration::from_secs(600)).await;
            drop(cancel_tx);
        });
        let outcome = tokio::time::timeout(Duration::from_secs(120), handle.finish())
            .await
            .unwrap_or_else(|_| panic!("{run_id}: the run did not end within 120 s"));
        sender.abort();
        (outcome, sink.finish())
    }

    /// Fails if any container of this test's runs remains, or any run's
    /// files.
    pub async fn assert_clean(&self) {
        self.assert_no_container(|c| c.run_id.starts_with(&self.prefix))
            .await;
    }

    /// Fails if any container of this test binary's executors remains, or
    /// any run's files (for a test alone in its binary).
    pub async fn assert_instance_clean(&self) {
        self.assert_no_container(|c| c.instance_id == self.instance_id)
            .await;
    }

    async fn assert_no_container(&self, ours: impl Fn(&LabelledContainer) -> bool) {
        let left: Vec<_> = self
            .executor
            .labelled_containers()
            .await
            .expect("containers are listed")
            .into_iter()
            .filter(|c| ours(c))
            .collect();
        assert!(left.is_empty(), "containers left behind: {left:?}");
        let files: Vec<_> = std::fs::read_dir(&self.work_dir)
            .map(|dir| dir.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        assert!(files.is_empty(), "run files left behind: {files:?}");
    }
}

/// The lines of one stream.
pub fn lines(lines: &[NumberedLine], stream: LineStream) -> Vec<String> {
    CapturingSink::lines_of(lines, stream)
}

pub fn cancel_request(grace: Duration) -> CancelRequest {
    CancelRequest {
        grace,
        reason: "cancelled by the test".to_owned(),
    }
}
