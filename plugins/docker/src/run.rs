//! Following one started container to its end: output to the sink as it
//! arrives, the timeout, cancel (SIGTERM, grace, SIGKILL), the exit code or
//! OOM kill, and removal of the container and its files once all output
//! reached the sink.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error;
use bollard::models::ContainerState;
use bollard::query_parameters::{KillContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use futures::{Stream, StreamExt};
use playground_executors::{CancelReceiver, LogSink, OutputStream, RunOutcome};
use tokio::time::Instant;

use crate::engine::{describe, is_connection_error, is_not_found};
use crate::files;

/// A container's stdout and stderr as the engine sends them.
pub(crate) type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, Error>> + Send>>;

/// Whatever must live as long as the output is read (the attach
/// connection's write half).
pub(crate) type KeepAlive = Box<dyn Send>;

/// How long output may keep arriving after the container exited.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// One started container to follow.
pub(crate) struct Supervised {
    pub docker: Docker,
    pub container_id: String,
    pub sink: Arc<dyn LogSink>,
    pub cancel: CancelReceiver,
    pub timeout: Duration,
    /// When the timeout elapses (counted from the container's start).
    pub deadline: Instant,
    pub memory_mb: u32,
}

/// Why the plugin stopped a run.
enum Stop {
    TimedOut,
    Cancelled { reason: String },
}

/// How waiting for the container ended.
enum Exit {
    Code(i64),
    /// The engine could not say: the connection broke or it refused.
    Unknown(String),
}

/// What the engine said about the container once it stopped.
enum Inspected {
    State(ContainerState),
    /// Removed by someone else.
    Gone,
    /// The engine no longer answers: it stopped (taking the container with
    /// it) or the connection broke.
    Unreachable(String),
}

/// Follows the container to its end. Resolves after all output went to the
/// sink; the container stays until [`cleanup`] runs.
pub(crate) async fn supervise(
    mut run: Supervised,
    output: Output,
    keep_alive: Option<KeepAlive>,
) -> RunOutcome {
    let mut pump = tokio::spawn(pump(output, run.sink.clone(), keep_alive));
    let (stop, exit) = watch(&mut run).await;
    match tokio::time::timeout(DRAIN_LIMIT, &mut pump).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => {
            if matches!(exit, Exit::Code(_)) {
                run.sink.system(&format!(
                    "the program's output from the Docker engine broke off: {}",
                    describe(&e)
                ));
            }
        }
        Ok(Err(e)) => tracing::error!(container = %run.container_id, "output task failed: {e}"),
        Err(_) => {
            pump.abort();
            run.sink.system(&format!(
                "output still arriving {} s after the program ended was not collected",
                DRAIN_LIMIT.as_secs()
            ));
        }
    }
    // A program that exited 0 by itself was neither OOM-killed nor stopped
    // by an engine going down (that reports 143): no need to ask.
    let inspected = if stop.is_none() && matches!(exit, Exit::Code(0)) {
        Inspected::Gone
    } else {
        match run.docker.inspect_container(&run.container_id, None).await {
            Ok(inspect) => Inspected::State(inspect.state.unwrap_or_default()),
            Err(e) if is_connection_error(&e) => Inspected::Unreachable(describe(&e)),
            Err(_) => Inspected::Gone,
        }
    };
    classify(stop, exit, inspected, run.memory_mb, run.timeout)
}

/// Removes a run's container and its files (the handle's clean-up).
pub(crate) fn cleanup(
    docker: Docker,
    container_id: String,
    run_dir: PathBuf,
) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(async move {
        remove(&docker, &container_id).await;
        if let Err(e) = files::remove(run_dir.clone()).await {
            tracing::warn!(dir = %run_dir.display(), "could not remove a run's files: {e}");
        }
    })
}

/// Force-removes a container, logging (not returning) failures; a
/// container already gone is fine.
pub(crate) async fn remove(docker: &Docker, container_id: &str) {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(container_id, Some(options)).await {
        Ok(()) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => tracing::warn!(
            container = container_id,
            "could not remove a run's container: {}",
            describe(&e)
        ),
    }
}

async fn pump(
    mut output: Output,
    sink: Arc<dyn LogSink>,
    keep_alive: Option<KeepAlive>,
) -> Result<(), Error> {
    let _keep_alive = keep_alive;
    while let Some(item) = output.next().await {
        match item? {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                sink.write(OutputStream::Stdout, &message);
            }
            LogOutput::StdErr { message } => sink.write(OutputStream::Stderr, &message),
            LogOutput::StdIn { .. } => {}
        }
    }
    Ok(())
}

/// Waits for the container to exit while enforcing the timeout and
/// watching for a cancel.
async fn watch(run: &mut Supervised) -> (Option<Stop>, Exit) {
    let docker = run.docker.clone();
    let id = run.container_id.clone();
    let mut wait = docker.wait_container(&id, None).boxed();
    let mut stop = None;
    let mut kill_at: Option<Instant> = None;
    let mut cancel_open = true;

    let request = run.cancel.borrow_and_update().clone();
    if let Some(request) = request {
        stop = Some(Stop::Cancelled {
            reason: request.reason,
        });
        kill_at = Some(Instant::now() + request.grace);
        signal(&docker, &id, "SIGTERM").await;
    }
    let timeout = tokio::time::sleep_until(run.deadline);
    tokio::pin!(timeout);
    loop {
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        tokio::select! {
            item = wait.next() => return (stop, exit_of(item)),
            () = &mut timeout, if stop.is_none() => {
                stop = Some(Stop::TimedOut);
                signal(&docker, &id, "SIGKILL").await;
            }
            changed = run.cancel.changed(), if cancel_open && stop.is_none() => match changed {
                Ok(()) => {
                    let request = run.cancel.borrow_and_update().clone();
                    if let Some(request) = request {
                        stop = Some(Stop::Cancelled { reason: request.reason });
                        kill_at = Some(Instant::now() + request.grace);
                        signal(&docker, &id, "SIGTERM").await;
                    }
                }
                Err(_) => cancel_open = false,
            },
            () = tokio::time::sleep_until(kill_at.unwrap_or(far)), if kill_at.is_some() => {
                kill_at = None;
                signal(&docker, &id, "SIGKILL").await;
            }
        }
    }
}

/// Sends `signal` to the container; one that already stopped is fine.
async fn signal(docker: &Docker, container_id: &str, signal: &str) {
    let options = KillContainerOptionsBuilder::new().signal(signal).build();
    match docker.kill_container(container_id, Some(options)).await {
        Ok(()) => {}
        // 404: gone; 409: not running any more.
        Err(Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => {}
        Err(e) => tracing::warn!(
            container = container_id,
            signal,
            "could not signal a run's container: {}",
            describe(&e)
        ),
    }
}

fn exit_of(item: Option<Result<bollard::models::ContainerWaitResponse, Error>>) -> Exit {
    match item {
        Some(Ok(response)) => Exit::Code(response.status_code),
        // The client reports non-zero exit codes as errors.
        Some(Err(Error::DockerContainerWaitError { error, code })) if error.is_empty() => {
            Exit::Code(code)
        }
        Some(Err(Error::DockerContainerWaitError { error, .. })) => Exit::Unknown(error),
        Some(Err(e)) => Exit::Unknown(describe(&e)),
        None => Exit::Unknown("the engine ended the wait without an exit code".to_owned()),
    }
}

fn classify(
    stop: Option<Stop>,
    exit: Exit,
    inspected: Inspected,
    memory_mb: u32,
    timeout: Duration,
) -> RunOutcome {
    let (state, unreachable) = match inspected {
        Inspected::State(state) => (state, None),
        Inspected::Gone => (ContainerState::default(), None),
        Inspected::Unreachable(reason) => (ContainerState::default(), Some(reason)),
    };
    let code = match (exit, unreachable) {
        // An exit the plugin did not ask for, and an engine gone right
        // after: the engine stopped the program on its way down.
        (Exit::Code(_), Some(reason)) if stop.is_none() => return engine_lost(&reason),
        (Exit::Code(code), _) => state.exit_code.unwrap_or(code),
        // The engine may still know how the container ended.
        (Exit::Unknown(_), None) if state.running == Some(false) && state.exit_code.is_some() => {
            state.exit_code.unwrap_or_default()
        }
        (Exit::Unknown(reason), _) => return engine_lost(&reason),
    };
    let code = i32::try_from(code).unwrap_or(i32::MAX);
    match stop {
        Some(Stop::TimedOut) => return RunOutcome::TimedOut { after: timeout },
        Some(Stop::Cancelled { reason }) => return RunOutcome::Cancelled { reason },
        None => {}
    }
    if state.oom_killed == Some(true) {
        return RunOutcome::Failed {
            reason: format!(
                "the program exceeded its memory limit of {memory_mb} MB and was killed (exit code {code})"
            ),
            exit_code: Some(code),
        };
    }
    match state.error.as_deref().map(str::trim) {
        Some(error) if !error.is_empty() => RunOutcome::Failed {
            reason: format!("the container failed: {error}"),
            exit_code: Some(code),
        },
        _ => RunOutcome::Exited { code },
    }
}

fn engine_lost(reason: &str) -> RunOutcome {
    RunOutcome::Failed {
        reason: format!(
            "the Docker engine connection was lost while the program was running: {reason}"
        ),
        exit_code: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(exit_code: i64, oom_killed: bool, running: bool) -> Inspected {
        Inspected::State(ContainerState {
            exit_code: Some(exit_code),
            oom_killed: Some(oom_killed),
            running: Some(running),
            ..Default::default()
        })
    }

    fn unreachable() -> Inspected {
        Inspected::Unreachable("connection refused".to_owned())
    }

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn exit_codes_come_from_the_engine() {
        assert_eq!(
            classify(None, Exit::Code(3), state(3, false, false), 64, T),
            RunOutcome::Exited { code: 3 }
        );
        assert_eq!(
            classify(None, Exit::Code(0), Inspected::Gone, 64, T),
            RunOutcome::Exited { code: 0 }
        );
    }

    #[test]
    fn oom_kills_name_the_memory_limit() {
        let outcome = classify(None, Exit::Code(137), state(137, true, false), 64, T);
        let RunOutcome::Failed { reason, exit_code } = outcome else {
            panic!("{outcome:?}")
        };
        assert!(reason.contains("memory limit of 64 MB"), "{reason}");
        assert_eq!(exit_code, Some(137));
    }

    #[test]
    fn stops_win_over_exit_codes() {
        assert_eq!(
            classify(
                Some(Stop::TimedOut),
                Exit::Code(137),
                state(137, false, false),
                64,
                T
            ),
            RunOutcome::TimedOut { after: T }
        );
        let cancelled = Stop::Cancelled {
            reason: "by x".to_owned(),
        };
        assert_eq!(
            classify(Some(cancelled), Exit::Code(143), unreachable(), 64, T),
            RunOutcome::Cancelled {
                reason: "by x".to_owned()
            }
        );
    }

    #[test]
    fn a_lost_engine_fails_the_run_unless_it_still_knows_the_exit() {
        for (stop, exit, inspected) in [
            (None, Exit::Unknown("reset".to_owned()), Inspected::Gone),
            (None, Exit::Unknown("reset".to_owned()), unreachable()),
            // The engine stopped the container as it shut down.
            (None, Exit::Code(143), unreachable()),
            (
                Some(Stop::TimedOut),
                Exit::Unknown("x".to_owned()),
                state(0, false, true),
            ),
        ] {
            let outcome = classify(stop, exit, inspected, 64, T);
            let RunOutcome::Failed { reason, .. } = outcome else {
                panic!("{outcome:?}")
            };
            assert!(
                reason.contains("Docker engine connection was lost"),
                "{reason}"
            );
        }
        assert_eq!(
            classify(
                None,
                Exit::Unknown("x".to_owned()),
                state(4, false, false),
                64,
                T
            ),
            RunOutcome::Exited { code: 4 }
        );
    }
}
