//! Health and errors without a usable engine: no socket, a socket nobody
//! answers on, an engine too old for API 1.41, an address that is not one.
//! These need no Docker Engine and always run.

mod support;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use playground_executors::compliance::CapturingSink;
use playground_executors::{
    EnvironmentSpec, Executor, ExecutorKind, Health, ProgramFile, Resources, RunSpec, Runtime,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn unavailable(health: Health) -> String {
    match health {
        Health::Unavailable { reason } => reason,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

fn executor_at(host: String, dir: &Path) -> playground_docker::DockerExecutor {
    support::executor(Some(host), "health-test", &dir.join("runs"))
}

#[tokio::test]
async fn a_missing_socket_is_named_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let executor = executor_at(format!("unix://{}", socket.display()), dir.path());
    let reason = unavailable(executor.health().await);
    assert!(
        reason.contains(&format!("no Docker engine socket at {}", socket.display())),
        "{reason}"
    );
    assert!(
        reason.contains("dockerd running") && reason.contains("DOCKER_HOST"),
        "{reason}"
    );

    // Prepare, launch and the listing say the same; validation needs no
    // engine.
    let environment = EnvironmentSpec {
        id: "env".to_owned(),
        kind: ExecutorKind::Docker,
        image: Some("busybox".to_owned()),
        resources: Resources {
            memory_mb: 64,
            cpu_millis: 100,
            timeout: Duration::from_secs(5),
            max_log_bytes: 1000,
            pids: 8,
        },
        config: serde_json::Value::Null,
    };
    executor.validate(&environment).unwrap();
    let events = CapturingSink::new(1000);
    let error = executor
        .prepare(&environment, events.as_ref())
        .await
        .unwrap_err();
    assert_eq!(error.message, reason);
    let spec = RunSpec {
        run_id: "run".to_owned(),
        program_id: "program".to_owned(),
        program_version: 1,
        runtime: Runtime::Shell,
        entrypoint: "main.sh".to_owned(),
        files: vec![ProgramFile {
            path: "main.sh".to_owned(),
            content: Bytes::from_static(b"echo hi\n"),
        }],
        args: Vec::new(),
        env: Vec::new(),
        secrets: Vec::new(),
        environment,
    };
    let (_cancel_tx, cancel_rx) = tokio::sync::watch::channel(None);
    let error = match executor
        .launch(spec, CapturingSink::new(1000), cancel_rx)
        .await
    {
        Ok(_) => panic!("no engine, no launch"),
        Err(e) => e,
    };
    assert_eq!(error.message, reason);
    assert_eq!(
        executor.labelled_containers().await.unwrap_err().message,
        reason
    );
    assert!(!dir.path().join("runs").exists(), "no files were written");
}

#[tokio::test]
async fn a_socket_nobody_answers_on_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    // Bound and closed: the file stays, connections are refused.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let executor = executor_at(format!("unix://{}", socket.display()), dir.path());
    let reason = unavailable(executor.health().await);
    assert!(
        reason.contains(&format!("nothing answers on {}", socket.display())),
        "{reason}"
    );
}

#[tokio::test]
async fn an_engine_older_than_api_1_41_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    // An engine that answers every request as Docker 19.03 (API 1.40).
    let engine = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let body = r#"{"Version":"19.03.15","ApiVersion":"1.40","MinAPIVersion":"1.12"}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: 1.40\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    let executor = executor_at(format!("unix://{}", socket.display()), dir.path());
    let reason = unavailable(executor.health().await);
    assert!(reason.contains("too old"), "{reason}");
    assert!(
        reason.contains("API 1.40") && reason.contains("1.41"),
        "{reason}"
    );
    engine.abort();
}

#[tokio::test]
async fn an_address_that_is_not_an_engine_address_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let executor = executor_at("ftp://example".to_owned(), dir.path());
    let reason = unavailable(executor.health().await);
    assert!(reason.contains("ftp://example"), "{reason}");
    assert!(reason.contains("unix://"), "{reason}");
}
