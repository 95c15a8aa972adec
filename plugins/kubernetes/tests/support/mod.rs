//! Helpers shared by the Kubernetes plugin's tests: the fake API server
//! (`fake`, `kubelet`), a sink that keeps raw output and numbered lines,
//! executors pointed at a fake, environments and run specs.

#![allow(dead_code)]

pub mod fake;
pub mod kubelet;
mod selector;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use playground_executors::{
    CancelReceiver, CancelRequest, EnvironmentSpec, ExecutorKind, LineStream, LogPipeline, LogSink,
    NumberedLine, OutputStream, ProgramFile, Resources, RunSpec, Runtime,
};
use playground_kubernetes::{Bounds, KubernetesExecutor, KubernetesSettings};
use tokio::sync::watch;

#[allow(unused_imports)]
pub use fake::{Break, FakeKube, Kind};

pub const INSTANCE: &str = "test-instance";
pub const IMAGE: &str = "busybox:1.36";
pub const NAMESPACE: &str = "default";

/// Bounds short enough for tests.
pub fn short_bounds() -> Bounds {
    Bounds {
        image_pull: Duration::from_millis(800),
        unschedulable: Duration::from_millis(800),
        api_unreachable: Duration::from_millis(1500),
    }
}

pub fn settings(instance_id: &str) -> KubernetesSettings {
    KubernetesSettings {
        kubeconfig: None,
        context: None,
        instance_id: instance_id.to_owned(),
        bounds: short_bounds(),
    }
}

/// An executor talking to `fake`.
pub fn executor(fake: &FakeKube) -> Arc<KubernetesExecutor> {
    Arc::new(KubernetesExecutor::with_config(
        settings(INSTANCE),
        fake.config(),
    ))
}

/// A fresh run id.
pub fn run_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "run-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn environment(config: serde_json::Value) -> EnvironmentSpec {
    EnvironmentSpec {
        id: "env-1".to_owned(),
        kind: ExecutorKind::Kubernetes,
        image: Some(IMAGE.to_owned()),
        resources: Resources {
            memory_mb: 128,
            cpu_millis: 500,
            timeout: Duration::from_secs(60),
            max_log_bytes: 10_000_000,
            pids: 64,
        },
        config,
    }
}

/// A SHELL run of one script.
pub fn shell(script: &str) -> RunSpec {
    RunSpec {
        run_id: run_id(),
        program_id: "program-1".to_owned(),
        program_version: 1,
        runtime: Runtime::Shell,
        entrypoint: "main.sh".to_owned(),
        files: vec![ProgramFile {
            path: "main.sh".to_owned(),
            content: Bytes::from(script.to_owned()),
        }],
        args: Vec::new(),
        env: Vec::new(),
        secrets: Vec::new(),
        environment: environment(serde_json::Value::Null),
    }
}

/// The Job name of a run.
pub fn job_name(run_spec: &RunSpec) -> String {
    playground_kubernetes::job_name(&run_spec.run_id)
}

pub fn no_cancel() -> (watch::Sender<Option<CancelRequest>>, CancelReceiver) {
    watch::channel(None)
}

/// Waits for a future at most `limit`, failing the test past it.
pub async fn within<T>(
    limit: Duration,
    what: &str,
    future: impl std::future::Future<Output = T>,
) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {limit:?}"))
}

/// A sink keeping the raw stdout bytes and the numbered lines.
pub struct TestSink {
    pipeline: Mutex<LogPipeline>,
    lines: Mutex<Vec<NumberedLine>>,
    raw: Mutex<Vec<u8>>,
    changed: watch::Sender<u64>,
}

impl TestSink {
    pub fn new() -> Arc<TestSink> {
        Arc::new(TestSink {
            pipeline: Mutex::new(LogPipeline::new(10_000_000)),
            lines: Mutex::new(Vec::new()),
            raw: Mutex::new(Vec::new()),
            changed: watch::channel(0).0,
        })
    }

    /// A sink that drops the first `n_stdout` stdout lines, as the server's
    /// pipeline does for a run resumed after `n_stdout` stored lines.
    pub fn resumed(n_stdout: u64) -> Arc<TestSink> {
        let sink = TestSink::new();
        sink.pipeline.lock().unwrap().skip_replayed(n_stdout, 0);
        sink
    }

    /// Every stdout byte the plugin wrote.
    pub fn raw(&self) -> String {
        String::from_utf8_lossy(&self.raw.lock().unwrap()).into_owned()
    }

    /// The complete lines of a stream so far.
    pub fn lines(&self, stream: LineStream) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.line.clone())
            .collect()
    }

    pub fn stdout(&self) -> Vec<String> {
        self.lines(LineStream::Stdout)
    }

    pub fn system(&self) -> Vec<String> {
        self.lines(LineStream::System)
    }

    /// Waits until the raw output satisfies `check` (at most 10 s).
    pub async fn wait_raw(&self, what: &str, check: impl Fn(&str) -> bool) {
        let mut changed = self.changed.subscribe();
        within(Duration::from_secs(10), what, async {
            loop {
                changed.borrow_and_update();
                if check(&self.raw()) {
                    return;
                }
                let _ = changed.changed().await;
            }
        })
        .await;
    }
}

impl LogSink for TestSink {
    fn write(&self, stream: OutputStream, bytes: &[u8]) {
        assert_eq!(stream, OutputStream::Stdout, "Kubernetes output is stdout");
        self.raw.lock().unwrap().extend_from_slice(bytes);
        let mut out = Vec::new();
        self.pipeline.lock().unwrap().write(stream, bytes, &mut out);
        self.lines.lock().unwrap().extend(out);
        self.changed.send_modify(|n| *n += 1);
    }

    fn system(&self, line: &str) {
        let mut out = Vec::new();
        self.pipeline.lock().unwrap().system(line, &mut out);
        self.lines.lock().unwrap().extend(out);
        self.changed.send_modify(|n| *n += 1);
    }
}
