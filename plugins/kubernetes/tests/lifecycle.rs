//! Runs from launch to outcome against the fake API server, the test
//! playing job controller and kubelet: output in order as it arrives, exit
//! codes, OOM kills, the deadline, cancel, what is created on the cluster
//! (Job, ConfigMap and Secret with owner references, NetworkPolicy), clean
//! up, `list_started` and `discard`.
//!
//! The compliance suite (`playground_executors::compliance`) needs programs
//! that really run, so it runs only against a real cluster (`real_cluster.rs`).
//! Against the fake its checks are covered like this: ordered output and
//! exit code 0 → `a_run_streams_its_output_in_order_and_exits_0`; exit codes
//! → `a_non_zero_exit_is_the_programs_code`; timeout →
//! `a_job_past_its_deadline_timed_out` and
//! `the_server_enforces_the_timeout_itself`; cancel →
//! `cancel_deletes_the_job_and_ends_cancelled`; memory limit →
//! `an_oom_kill_names_the_memory_limit` (and the limits in the manifest,
//! pinned in `manifest.rs`); the log cap is the sink's (`LogPipeline`),
//! the same for every plugin.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use playground_executors::{CancelRequest, Executor, LineStream, RunOutcome, Runtime};
use playground_kubernetes::LABEL_RUN;
use support::kubelet::job_of;
use support::*;

#[tokio::test]
async fn a_run_streams_its_output_in_order_and_exits_0() {
    let fake = FakeKube::start();
    let executor = executor(&fake);
    let run_spec = shell("echo hi");
    let sink = TestSink::new();
    let (_cancel_tx, cancel) = no_cancel();
    let handle = executor
        .launch(run_spec.clone(), sink.clone(), cancel)
        .await
        .expect("launch");
    let job = job_name(&run_spec);
    assert_eq!(
        handle.external_ref.as_deref(),
        Some(format!("default/{job}").as_str())
    );
    let pod = fake.wait_pod(NAMESPACE, &run_spec.run_id).await;
    fake.start_container(NAMESPACE, &pod);
    fake.log_lines(NAMESPACE, &pod, &["line 1", "line 2"]);
    // Output reaches the sink while the program runs.
    sink.wait_raw("the first lines", |raw| raw == "line 1\nline 2\n")
        .await;
    fake.log_lines(NAMESPACE, &pod, &["line 3"]);
    fake.log_at(NAMESPACE, &pod, jiff::Timestamp::now(), b"a line in ");
    fake.log_at(NAMESPACE, &pod, jiff::Timestamp::now(), b"two parts\n");
    fake.log_at(
        NAMESPACE,
        &pod,
        jiff::Timestamp::now(),
        b"no newline at the end",
    );
    fake.terminate_container(NAMESPACE, &pod, 0, "Completed");
    fake.job_condition(NAMESPACE, &job, "Complete", "CompletionsReached", "");
    let outcome = within(Duration::from_secs(10), "the outcome", handle.outcome).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 });
    assert_eq!(
        sink.raw(),
        "line 1\nline 2\nline 3\na line in two parts\nno newline at the end"
    );
    assert!(sink.system().is_empty(), "{:?}", sink.system());
    // The clean-up deletes the Job, and with it the pod and the ConfigMap.
    (handle.cleanup.expect("a clean-up")).await;
    assert!(fake.object::<Job>(Kind::Job, NAMESPACE, &job).is_none());
    assert!(fake.objects::<Pod>(Kind::Pod, NAMESPACE).is_empty());
    assert!(
        fake.objects::<ConfigMap>(Kind::ConfigMap, NAMESPACE)
            .is_empty()
    );
    let delete = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE" && r.path.ends_with(&format!("/jobs/{job}")))
        .expect("a DELETE of the Job");
    assert_eq!(delete.body["propagationPolicy"], "Background");
}

#[tokio::test]
async fn a_non_zero_exit_is_the_programs_code() {
    let fake = FakeKube::start();
    let executor = executor(&fake);
    let run_spec = shell("exit 3");
    let (_cancel_tx, cancel) = no_cancel();
    let handle = executor
        .launch(run_spec.clone(), TestSink::new(), cancel)
        .await
        .unwrap();
    let pod = fake.wait_pod(NAMESPACE, &run_spec.run_id).await;
    fake.start_container(NAMESPACE, &pod);
    fake.terminate_container(NAMESPACE, &pod, 3, "Error");
    fake.job_condition(
        NAMESPACE,
        &job_name(&run_spec),
        "Failed",
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
    );
    let outcome = within(Duration::from_secs(10), "the outcome", handle.outcome).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 3 });
}

#[tokio::test]
async fn an_oom_kill_names_the_memory_limit() {
    let fake = FakeKube::start();
    let executor = executor(&fake);
    let run_spec = shell("x=1; while true; do x=$x$x; done");
    let (_cancel_tx, cancel) = no_cancel();
    let handle = executor
        .launch(run_spec.clone(), TestSink::new(), cancel)
        .await
        .unwrap();
    let pod = fake.wait_pod(NAMESPACE, &run_spec.run_id).await;
    fake.start_container(NAMESPACE, &pod);
    fake.terminate_container(NAMESPACE, &pod, 137, "OOMKilled");
    let outcome = within(Duration::from_secs(10), "the outcome", handle.outcome).await;
    let RunOutcome::Failed { reason, exit_code } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(reason.contains("memory limit of 128 MB"), "{reason}");
    assert_eq!(exit_code, Some(137));
}

#[tokio::test]
async fn a_job_past_its_deadline_timed_out() {
    let fake = FakeKube::start();
    let executor = executor(&fake);
    let run_spec = shell("sleep 1000");
    let (_cancel_tx, cancel) = no_cancel();
    let handle = executor
        .launch(run_spec.clone(), TestSink::new(), cancel)
        .await
        .unwrap();
    let job = job_name(&run_spec);
    let pod = fake.wait_pod(NAMESPACE, &run_spec.run_id).await;
    fake.start_container(NAMESPACE, &pod);
    // The job controller: past activeDeadlineSeconds the Job fails and its
    // pod is killed.
    fake.job_condition(
        NAMESPACE,
        &job,
        "Failed",
        "DeadlineExceeded",
        "Job was active longer than specified deadline",
    );
    fake.terminate_container(NAMESPACE, &pod, 137, "Error");
    let outcome = within(Duration::from_secs(10), "the outcome", handle.outcome).await;
    assert_eq!(
        outcome,
        RunOutcome::TimedOut {
            after: Duration::from_secs(60)
        }
    );
}

#[tokio::test]
async fn the_server_enforces_the_timeout_itself() {
    let fake = FakeKube::start();
    let executor = executor(&fake);
    let mut run_spec = shell("sleep 1000");
    run_spec.environment.resources.timeout = Duration::from_secs(1);
    let (_cancel_tx, cancel) = no_cancel();
    let started = Instant::now();
    let handle = executor
        .launch(run_spec.clone(), TestSink::new(), cancel)
        .await
        .unwrap();
    let pod = fake.wait_pod(NAMESPACE, &run_spec.run_id).await;
    fake.start_container(NAMESPACE, &pod);
    let outcome = within(Duration::from_secs(10), "the outcome", handle.outcome).await;
    assert_eq!(
        outcome,
        RunOutcome::TimedOut {
            after: Duration::from_secs(1)
        }
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "timed out after {elapsed:?}"
    );
    let job = job_name(&run_spec);
    assert!(
        fake.object::<Job>(Kind::Job, NAMESPACE, &job).is_none(),
        "the Job is deleted"
    );
}

#[tokio::test]
async fn cancel_deletes_the_job_and_ends_cancelled() {
    let fake = FakeKube::start();
    let executor = executor(&fake);
    let run_spec = shell("sleep 1000");
    let sink = TestSink::new();
    let (cancel_tx, cancel) = no_cancel();
    let handle = executor
        .launch(run_spec.clone(), sink.clone(), cancel)
        .await
        .unwrap();
    let job = job_name(&run_spec);
    let pod = fake.wait_pod(NAMESPACE, &run_spec.run_id).await;
    fake.start_container(NAMESPACE, &pod);
    fake.log_lines(NAMESPACE, &pod, &["working"]);
    sink.wait_raw("the output", |raw| raw == "working\n").await;
    let requested = Instant::now();
    cancel_tx
        .send(Some(CancelRequest {
            grace: Duration::from_secs(2),
            reason: "cancelled by alice".to_owned(),
        }))
        .unwrap();
    let outcome = within(Duration::from_secs(10), "the outcome", handle.outcome).await;
    assert_eq!(
        outcome,
        RunOutcome::Cancelled {
            reason: "cancelled by alice".to_owned()
        }
    );
    assert!(
        requested.elapsed() < Duration::from_secs(1),
        "{:?}",
        requested.elapsed()
    );
    let delete = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE" && r.path.ends_with(&format!("/jobs/{job}")))
        .expect("a DELETE of the Job");
    assert_eq!(delete.body["propagationPolicy"], "Background");
    assert_eq!(delete.body["gracePeriodSeconds"], 2);
    assert!(fake.object::<Job>(Kind::Job, NAMESPACE, &job).is_none());
    assert!(
        fake.object::<Pod>(Kind::Pod, NAMESPACE, &pod).is_none(),
        "the pod goes with the Job"
    );
}

#[tokio::test]
async fn the_job_configmap_and_secret_reach_the_cluster() {
    let fake = FakeKube::start();
    let executor = executor(&fake);
    let mut run_spec = shell("echo $GREETING $TOKEN");
    run_spec.runtime = Runtime::Python;
    run_spec.entrypoint = "pkg/main.py".to_owned();
    run_spec.files = vec![
        playground_executors::ProgramFile {
            path: "pkg/main.py".to_owned(),
            content: bytes::Bytes::from_static(b"print('hi')\n"),
        },
        playground_executors::ProgramFile {
            path: "data.bin".to_owned(),
            content: bytes::Bytes::from_static(&[0, 159, 146, 150]),
        },
    ];
    run_spec.args = vec!["--flag".to_owned()];
    run_spec.env = vec![("GREETING".to_owned(), "hello".to_owned())];
    run_spec.secrets = vec![("TOKEN".to_owned(), "s3cr3t".to_owned())];
    run_spec.environment.config =
        serde_json::json!({"namespace": "runs", "ttlSecondsAfterFinished": 120});
    let (_cancel_tx, cancel) = no_cancel();
    let handle = executor
        .launch(run_spec.clone(), TestSink::new(), cancel)
        .await
        .unwrap();
    let name = job_name(&run_spec);
    assert_eq!(
        handle.external_ref.as_deref(),
        Some(format!("runs/{name}").as_str())
    );

    let job = job_of(&fake, "runs", &name);
    let uid = job.metadata.uid.clone().unwrap();
    let labels = job.metadata.labels.clone().unwrap();
    assert_eq!(labels[LABEL_RUN], run_spec.run_id);
    assert_eq!(labels["playground.instance"], INSTANCE);
    assert_eq!(labels["playground.environment"], "env-1");
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(spec.ttl_seconds_after_finished, Some(120));
    let container = &spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        container.command.as_deref().unwrap(),
        ["python3", "/work/pkg/main.py", "--flag"]
    );
    // The credential is not in the Job: only a reference to the Secret.
    let job_json = serde_json::to_string(&job).unwrap();
    assert!(!job_json.contains("s3cr3t"), "{job_json}");
    let env = container.env.as_ref().unwrap();
    let token = env.iter().find(|e| e.name == "TOKEN").unwrap();
    assert_eq!(token.value, None);
    let secret_ref = token
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(secret_ref.name, format!("{name}-secrets"));
    assert_eq!(
        env.iter()
            .find(|e| e.name == "GREETING")
            .unwrap()
            .value
            .as_deref(),
        Some("hello")
    );

    let config_map: ConfigMap = fake
        .object(Kind::ConfigMap, "runs", &format!("{name}-files"))
        .unwrap();
    let owner = &config_map.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("Job", name.as_str(), uid.as_str())
    );
    let data = config_map.binary_data.unwrap();
    assert_eq!(data.len(), 2);
    assert!(data.values().any(|v| v.0 == [0, 159, 146, 150]));
    let volume = &spec
        .template
        .spec
        .as_ref()
        .unwrap()
        .volumes
        .as_ref()
        .unwrap()[0];
    let items = volume.config_map.as_ref().unwrap().items.as_ref().unwrap();
    let paths: Vec<&str> = items.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, ["pkg/main.py", "data.bin"]);
    for item in items {
        assert!(
            data.contains_key(&item.key),
            "{} is in the ConfigMap",
            item.key
        );
    }

    let secret: Secret = fake
        .object(Kind::Secret, "runs", &format!("{name}-secrets"))
        .unwrap();
    let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.uid, uid);
    let data = secret.data.unwrap();
    assert_eq!(data[&secret_ref.key].0, b"s3cr3t");

    // Launch made sure runs in "runs" have no network.
    let policy: NetworkPolicy = fake
        .object(Kind::NetworkPolicy, "runs", "playground-deny-egress")
        .expect("the NetworkPolicy");
    assert_eq!(
        policy,
        playground_kubernetes::network_policy("runs").with_server_fields(&policy)
    );
    // Deleting the Job takes its dependents along.
    fake.remove(Kind::Job, "runs", &name);
    assert!(
        fake.objects::<ConfigMap>(Kind::ConfigMap, "runs")
            .is_empty()
    );
    assert!(fake.objects::<Secret>(Kind::Secret, "runs").is_empty());
}

/// Compares objects without what the server adds.
trait WithServerFields {
    fn with_server_fields(self, stored: &Self) -> Self;
}

impl WithServerFields for NetworkPolicy {
    fn with_server_fields(mut self, stored: &Self) -> Self {
        self.metadata.uid = stored.metadata.uid.clone();
        self.metadata.resource_version = stored.metadata.resource_version.clone();
        self.metadata.creation_timestamp = stored.metadata.creation_timestamp.clone();
        self
    }
}

#[tokio::test]
async fn prepare_ensures_the_network_policy() {
    let fake = FakeKube::start();
    let executor = executor(&fake);
    let sink = TestSink::new();
    let environment = environment(serde_json::json!({"namespace": "team-a"}));
    executor
        .prepare(&environment, sink.as_ref())
        .await
        .expect("prepare");
    let policy: NetworkPolicy = fake
        .object(Kind::NetworkPolicy, "team-a", "playground-deny-egress")
        .expect("the NetworkPolicy");
    let spec = policy.spec.unwrap();
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Egress".to_owned()][..])
    );
    assert!(
        spec.egress.unwrap_or_default().is_empty(),
        "no egress is allowed"
    );
    let selector = spec.pod_selector.unwrap().match_expressions.unwrap();
    assert_eq!(
        (selector[0].key.as_str(), selector[0].operator.as_str()),
        (LABEL_RUN, "Exists")
    );
    assert!(
        sink.system()[0].contains("was created"),
        "{:?}",
        sink.system()
    );
    // Another server finds it in place.
    let other = support::executor(&fake);
    let sink = TestSink::new();
    other
        .prepare(&environment, sink.as_ref())
        .await
        .expect("prepare again");
    assert!(
        sink.system()[0].contains("is in place"),
        "{:?}",
        sink.system()
    );
    let n_creates = fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/networkpolicies"))
        .count();
    assert_eq!(n_creates, 1);
}

#[tokio::test]
async fn launch_refuses_what_kubernetes_cannot_run() {
    let fake = FakeKube::start();
    let executor = executor(&fake);
    let (_tx, cancel) = no_cancel();
    let mut large = shell("");
    large.files[0].content = bytes::Bytes::from(vec![b'#'; 1_000_001]);
    let error = executor
        .launch(large, TestSink::new(), cancel.clone())
        .await
        .err()
        .unwrap();
    assert_eq!(
        error.message,
        "the program is too large for a ConfigMap (1000001 bytes, at most 1000000): use a DOCKER environment or a smaller program"
    );
    let mut wasm = shell("");
    wasm.runtime = Runtime::Wasm;
    let error = executor
        .launch(wasm, TestSink::new(), cancel)
        .await
        .err()
        .unwrap();
    assert!(error.message.contains("WASM"), "{}", error.message);
    assert!(
        fake.requests().iter().all(|r| r.method != "POST"),
        "nothing was created: {:?}",
        fake.requests()
    );
}

#[tokio::test]
async fn list_started_and_discard_find_and_remove_jobs() {
    let fake = FakeKube::start();
    let executor = executor(&fake);
    let run_spec = shell("echo");
    let (_tx, cancel) = no_cancel();
    let handle = executor
        .launch(run_spec.clone(), TestSink::new(), cancel)
        .await
        .unwrap();
    let external_ref = handle.external_ref.clone().unwrap();
    let started = executor.list_started().await.unwrap();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].run_id, run_spec.run_id);
    assert_eq!(started[0].external_ref, external_ref);
    assert_eq!(started[0].instance_id, INSTANCE);
    assert!(started[0].running);
    let pod = fake.wait_pod(NAMESPACE, &run_spec.run_id).await;
    fake.start_container(NAMESPACE, &pod);
    fake.terminate_container(NAMESPACE, &pod, 0, "Completed");
    fake.job_condition(
        NAMESPACE,
        &job_name(&run_spec),
        "Complete",
        "CompletionsReached",
        "",
    );
    within(Duration::from_secs(10), "the outcome", handle.outcome).await;
    let started = executor.list_started().await.unwrap();
    assert!(!started[0].running, "a finished Job is not running");
    executor.discard(&external_ref).await.unwrap();
    assert!(executor.list_started().await.unwrap().is_empty());
    assert!(fake.objects::<Pod>(Kind::Pod, NAMESPACE).is_empty());
    executor
        .discard(&external_ref)
        .await
        .expect("a Job already gone is fine");
    assert!(executor.discard("no-slash").await.is_err());
}

#[tokio::test]
async fn a_system_line_never_carries_program_output() {
    // Kubernetes merges stdout and stderr: everything is stdout.
    let fake = FakeKube::start();
    let executor = executor(&fake);
    let run_spec = shell("echo out; echo err >&2");
    let sink = TestSink::new();
    let (_tx, cancel) = no_cancel();
    let handle = executor
        .launch(run_spec.clone(), sink.clone(), cancel)
        .await
        .unwrap();
    let pod = fake.wait_pod(NAMESPACE, &run_spec.run_id).await;
    fake.start_container(NAMESPACE, &pod);
    fake.log_lines(NAMESPACE, &pod, &["out", "err"]);
    fake.terminate_container(NAMESPACE, &pod, 0, "Completed");
    within(Duration::from_secs(10), "the outcome", handle.outcome).await;
    assert_eq!(sink.stdout(), ["out", "err"]);
    assert!(sink.lines(LineStream::Stderr).is_empty());
}
