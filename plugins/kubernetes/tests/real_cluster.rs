//! Opt-in runs on a real cluster: success, exit code, timeout and cancel
//! of busybox programs.
//!
//! Set `PLAYGROUND_TEST_KUBECONFIG` to a kubeconfig whose current context
//! may use the plugin's `REQUIRED_PERMISSIONS` in the namespace
//! `PLAYGROUND_TEST_NAMESPACE` (default `default`), and the nodes must be
//! able to pull `PLAYGROUND_TEST_IMAGE` (default `busybox:1.36`). For
//! example, with kind:
//!
//! ```text
//! kind create cluster --name playground
//! kind get kubeconfig --name playground > /tmp/kind.kubeconfig
//! PLAYGROUND_TEST_KUBECONFIG=/tmp/kind.kubeconfig cargo test -p playground-kubernetes --test real_cluster
//! ```
//!
//! Without the variable each test prints that it was skipped and passes.
//! The shared compliance suite does not run here as it is: Kubernetes
//! merges a container's stdout and stderr into one log, which its
//! ordered-output check keeps apart.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use playground_executors::{CancelRequest, Executor, Health, RunOutcome, RunSpec};
use playground_kubernetes::{Bounds, KubernetesExecutor, KubernetesSettings};
use support::{TestSink, no_cancel, shell, within};

struct Cluster {
    executor: KubernetesExecutor,
    namespace: String,
    image: String,
}

async fn cluster(test: &str) -> Option<Cluster> {
    let Some(kubeconfig) = std::env::var_os("PLAYGROUND_TEST_KUBECONFIG") else {
        eprintln!(
            "skipping {test}: set PLAYGROUND_TEST_KUBECONFIG to a kubeconfig to run it on a real cluster"
        );
        return None;
    };
    let executor = KubernetesExecutor::new(KubernetesSettings {
        kubeconfig: Some(PathBuf::from(kubeconfig)),
        context: None,
        instance_id: format!("test-{}", std::process::id()),
        bounds: Bounds {
            image_pull: Duration::from_secs(120),
            ..Bounds::default()
        },
    });
    match executor.health().await {
        Health::Available { .. } => {}
        Health::Unavailable { reason } => {
            panic!("PLAYGROUND_TEST_KUBECONFIG is set but the cluster is unavailable: {reason}")
        }
    }
    Some(Cluster {
        executor,
        namespace: std::env::var("PLAYGROUND_TEST_NAMESPACE")
            .unwrap_or_else(|_| "default".to_owned()),
        image: std::env::var("PLAYGROUND_TEST_IMAGE").unwrap_or_else(|_| "busybox:1.36".to_owned()),
    })
}

impl Cluster {
    fn spec(&self, script: &str, timeout: Duration) -> RunSpec {
        let mut run_spec = shell(script);
        run_spec.environment.image = Some(self.image.clone());
        run_spec.environment.config =
            serde_json::json!({"namespace": self.namespace, "ttlSecondsAfterFinished": 60});
        run_spec.environment.resources.timeout = timeout;
        run_spec
    }

    async fn run(
        &self,
        run_spec: RunSpec,
        cancel_after: Option<Duration>,
    ) -> (RunOutcome, Vec<String>) {
        let sink = TestSink::new();
        let (cancel_tx, cancel) = no_cancel();
        let handle = self
            .executor
            .launch(run_spec, sink.clone(), cancel)
            .await
            .expect("launch");
        if let Some(after) = cancel_after {
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = cancel_tx.send(Some(CancelRequest {
                    grace: Duration::from_secs(1),
                    reason: "cancelled by the test".to_owned(),
                }));
                tokio::time::sleep(Duration::from_secs(300)).await;
            });
        }
        let outcome = within(Duration::from_secs(300), "the run's end", handle.finish()).await;
        (outcome, sink.stdout())
    }
}

#[tokio::test]
async fn real_success_streams_output_in_order() {
    let Some(cluster) = cluster("real_success_streams_output_in_order").await else {
        return;
    };
    let spec = cluster.spec(
        "for i in 1 2 3 4 5; do echo line $i; done",
        Duration::from_secs(120),
    );
    let (outcome, lines) = cluster.run(spec, None).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 });
    assert_eq!(lines, ["line 1", "line 2", "line 3", "line 4", "line 5"]);
}

#[tokio::test]
async fn real_exit_codes_are_kept() {
    let Some(cluster) = cluster("real_exit_codes_are_kept").await else {
        return;
    };
    let (outcome, _) = cluster
        .run(cluster.spec("exit 3", Duration::from_secs(120)), None)
        .await;
    assert_eq!(outcome, RunOutcome::Exited { code: 3 });
}

#[tokio::test]
async fn real_timeouts_stop_the_program() {
    let Some(cluster) = cluster("real_timeouts_stop_the_program").await else {
        return;
    };
    let started = Instant::now();
    let (outcome, _) = cluster
        .run(cluster.spec("sleep 600", Duration::from_secs(20)), None)
        .await;
    assert!(
        matches!(outcome, RunOutcome::TimedOut { .. }),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn real_cancel_deletes_the_job() {
    let Some(cluster) = cluster("real_cancel_deletes_the_job").await else {
        return;
    };
    let (outcome, _) = cluster
        .run(
            cluster.spec("echo started; sleep 600", Duration::from_secs(120)),
            Some(Duration::from_secs(10)),
        )
        .await;
    assert_eq!(
        outcome,
        RunOutcome::Cancelled {
            reason: "cancelled by the test".to_owned()
        }
    );
}
