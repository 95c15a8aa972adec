//! Health and configuration: the version of a reachable API server, and
//! reasons a person can act on when there is no kubeconfig, the API server
//! is unreachable or refuses the credentials. Validation needs no cluster.

mod support;

use std::path::Path;

use playground_executors::{Executor, ExecutorKind, Health};
use playground_kubernetes::{KubernetesExecutor, KubernetesSettings};
use support::*;

fn write_kubeconfig(dir: &Path, server: &str, token: Option<&str>) -> std::path::PathBuf {
    let user = match token {
        Some(token) => format!("    token: {token}\n"),
        None => "    {}\n".to_owned(),
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {server}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: runs\nusers:\n- name: tester\n  user:\n{user}"
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

fn from_kubeconfig(path: &Path, context: Option<&str>) -> KubernetesExecutor {
    KubernetesExecutor::new(KubernetesSettings {
        kubeconfig: Some(path.to_owned()),
        context: context.map(str::to_owned),
        ..settings(INSTANCE)
    })
}

#[tokio::test]
async fn a_reachable_api_server_reports_its_version() {
    let fake = FakeKube::start();
    let executor = executor(&fake);
    assert_eq!(executor.kind(), ExecutorKind::Kubernetes);
    assert_eq!(
        executor.health().await,
        Health::Available {
            detail: "Kubernetes v1.33.1-fake".to_owned()
        }
    );
}

#[tokio::test]
async fn a_kubeconfig_names_the_server_credentials_and_default_namespace() {
    let fake = FakeKube::start_with(Some("secret-token"));
    let dir = tempfile::tempdir().unwrap();
    let path = write_kubeconfig(dir.path(), fake.url(), Some("secret-token"));
    let executor = from_kubeconfig(&path, None);
    assert!(matches!(executor.health().await, Health::Available { .. }));
    // The context's namespace is where list_started looks.
    executor.list_started().await.unwrap();
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.path == "/apis/batch/v1/namespaces/runs/jobs")
    );

    let executor = from_kubeconfig(&path, Some("missing"));
    let Health::Unavailable { reason } = executor.health().await else {
        panic!("a missing context")
    };
    assert!(
        reason.contains("cannot use the kubeconfig") && reason.contains("missing"),
        "{reason}"
    );
}

#[tokio::test]
async fn refused_credentials_say_so() {
    let fake = FakeKube::start_with(Some("secret-token"));
    let dir = tempfile::tempdir().unwrap();
    let path = write_kubeconfig(dir.path(), fake.url(), Some("wrong-token"));
    let Health::Unavailable { reason } = from_kubeconfig(&path, None).health().await else {
        panic!("wrong credentials")
    };
    assert!(
        reason.contains("401 Unauthorized") && reason.contains(fake.url()),
        "{reason}"
    );
}

#[tokio::test]
async fn an_unreachable_api_server_is_named() {
    let fake = FakeKube::start();
    let url = fake.url().to_owned();
    fake.stop();
    let executor = executor(&fake);
    let Health::Unavailable { reason } = executor.health().await else {
        panic!("a stopped server")
    };
    assert!(
        reason.starts_with(&format!(
            "the Kubernetes API server at {url} is unreachable"
        )),
        "{reason}"
    );
    let (_tx, cancel) = no_cancel();
    let error = executor
        .launch(shell("echo"), TestSink::new(), cancel)
        .await
        .err()
        .unwrap();
    assert!(
        error.message.contains("is unreachable"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_missing_kubeconfig_is_named_and_validation_needs_no_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let executor = from_kubeconfig(&missing, None);
    let Health::Unavailable { reason } = executor.health().await else {
        panic!("no kubeconfig")
    };
    assert!(
        reason.starts_with(&format!("cannot use the kubeconfig {}", missing.display())),
        "{reason}"
    );
    executor
        .validate(&environment(serde_json::json!({"namespace": "runs"})))
        .unwrap();
    let error = executor
        .validate(&environment(serde_json::json!({"namespace": "Runs"})))
        .unwrap_err();
    assert!(error.message.contains("namespace"), "{}", error.message);
}
