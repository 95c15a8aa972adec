//! The [`Executor`] trait and the types that cross it.

use std::time::Duration;

use async_trait::async_trait;
use futures_core::future::BoxFuture;

use crate::spec::{EnvironmentSpec, ExecutorKind, RunSpec};

/// Whether a plugin's engine can take runs now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Ready; `detail` names the engine and its version.
    Available { detail: String },
    /// Not usable; `reason` says why in words a person can act on.
    Unavailable { reason: String },
}

/// An environment's executor config was rejected. The message names the
/// field and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    pub message: String,
}

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Preparing an environment or launching a run failed; the message is shown
/// to the user as the environment's status reason or the run's failure
/// reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExecutorError {
    pub message: String,
    /// The engine could not be reached: nothing about the run itself is
    /// wrong, so the server puts it back in the queue instead of failing it.
    pub engine_unavailable: bool,
}

impl ExecutorError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            engine_unavailable: false,
        }
    }

    /// The engine is unreachable (see [`ExecutorError::engine_unavailable`]).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            engine_unavailable: true,
        }
    }
}

/// Which stream a chunk of output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Where a plugin writes a run's output and lifecycle notes. The sink owns
/// line splitting, numbering, the log cap and storage; a plugin only passes
/// bytes as they arrive.
pub trait LogSink: Send + Sync {
    /// A chunk of a run's output, in the order the program wrote it on that
    /// stream. Chunks need not end at line boundaries.
    fn write(&self, stream: OutputStream, bytes: &[u8]);
    /// A line written by Playground itself (a SYSTEM line).
    fn system(&self, line: &str);
}

/// A request to stop a run early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelRequest {
    /// How long the program may take to exit on its own before it is
    /// killed.
    pub grace: Duration,
    /// Who or what cancelled it, for the run's failure reason.
    pub reason: String,
}

/// How a run ended, as the plugin saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// The program exited by itself with this code (0 is success).
    Exited { code: i32 },
    /// The run could not complete: a trap, an OOM kill, an engine error.
    Failed {
        reason: String,
        exit_code: Option<i32>,
    },
    /// The environment's timeout elapsed and the run was stopped.
    TimedOut { after: Duration },
    /// A [`CancelRequest`] stopped it.
    Cancelled { reason: String },
}

/// What a plugin gives back from a launch: the external name of what it
/// started (for reattach after a restart), a future that resolves when the
/// run has ended and all its output went to the sink, and what to remove
/// afterwards.
pub struct RunHandle {
    pub external_ref: Option<String>,
    pub outcome: BoxFuture<'static, RunOutcome>,
    /// Removes what the run left on the engine (its container). The caller
    /// runs it after `outcome`, once the run's output is stored: until then
    /// a restarted server can still replay the output. Dropped unrun, the
    /// leftovers wait for [`Executor::discard`]. `None`: nothing to remove.
    pub cleanup: Option<BoxFuture<'static, ()>>,
}

impl RunHandle {
    /// Waits for the outcome, then runs the clean-up (for callers that
    /// store nothing in between).
    pub async fn finish(self) -> RunOutcome {
        let outcome = self.outcome.await;
        if let Some(cleanup) = self.cleanup {
            cleanup.await;
        }
        outcome
    }
}

/// Something a plugin started for a run that its engine still holds (a
/// container, a Job), found by the labels the plugin put on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartedRun {
    /// The run it belongs to.
    pub run_id: String,
    /// Its external reference, as [`RunHandle::external_ref`] gave it.
    pub external_ref: String,
    /// The instance id of the server that started it.
    pub instance_id: String,
    /// Whether it is still executing.
    pub running: bool,
}

/// A cancel signal a plugin watches while a run is in flight.
pub type CancelReceiver = tokio::sync::watch::Receiver<Option<CancelRequest>>;

/// An executor plugin.
#[async_trait]
pub trait Executor: Send + Sync {
    /// The kind of environment this plugin runs.
    fn kind(&self) -> ExecutorKind;

    /// Whether the engine is reachable, with its version or the reason it
    /// is not.
    async fn health(&self) -> Health;

    /// Checks an environment's settings without touching the engine: no
    /// network, no processes, no waiting. Called at `createEnvironment`.
    fn validate(&self, environment: &EnvironmentSpec) -> Result<(), ConfigError>;

    /// Gets an environment ready for runs (pull or build an image,
    /// precompile a module). Progress goes to `events` as lines.
    async fn prepare(
        &self,
        environment: &EnvironmentSpec,
        events: &dyn LogSink,
    ) -> Result<(), ExecutorError> {
        let _ = (environment, events);
        Ok(())
    }

    /// Starts a run. Output goes to `sink` while the program runs; the
    /// plugin enforces the environment's limits and watches `cancel`.
    async fn launch(
        &self,
        run_spec: RunSpec,
        sink: std::sync::Arc<dyn LogSink>,
        cancel: CancelReceiver,
    ) -> Result<RunHandle, ExecutorError>;

    /// Finds a run started by an earlier server process by its external
    /// reference and follows it to the end. Its output is written to `sink`
    /// again from the start; the sink drops the lines it already stored. `None` when the engine no longer
    /// has it (or the plugin cannot reattach), so the caller finishes the run.
    async fn reattach(
        &self,
        run_spec: RunSpec,
        external_ref: &str,
        sink: std::sync::Arc<dyn LogSink>,
        cancel: CancelReceiver,
    ) -> Option<RunHandle> {
        let _ = (run_spec, external_ref, sink, cancel);
        None
    }

    /// Everything the engine holds that this plugin started for runs, by
    /// any server, so a server starting up can remove what finished runs
    /// left behind. Empty for plugins that leave nothing behind.
    async fn list_started(&self) -> Result<Vec<StartedRun>, ExecutorError> {
        Ok(Vec::new())
    }

    /// Removes what a run left on the engine (no error when it is gone).
    async fn discard(&self, external_ref: &str) -> Result<(), ExecutorError> {
        let _ = external_ref;
        Ok(())
    }
}
