//! The Docker executor plugin. This build validates DOCKER environments
//! but has no engine connection yet, so it reports itself unavailable with
//! that reason.

use async_trait::async_trait;
use playground_executors::{
    CancelReceiver, ConfigError, EnvironmentSpec, Executor, ExecutorError, ExecutorKind, Health,
    LogSink, RunHandle, RunSpec, parse_config,
};
use serde::Deserialize;

/// A DOCKER environment's `config`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DockerConfig {}

/// Runs programs with Docker.
#[derive(Default)]
pub struct DockerExecutor {}

impl DockerExecutor {
    pub fn new() -> Self {
        Self::default()
    }
}

const UNAVAILABLE: &str = "this server was built without a Docker engine connection";

#[async_trait]
impl Executor for DockerExecutor {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Docker
    }

    async fn health(&self) -> Health {
        Health::Unavailable {
            reason: UNAVAILABLE.to_owned(),
        }
    }

    fn validate(&self, environment: &EnvironmentSpec) -> Result<(), ConfigError> {
        match environment.image.as_deref().map(str::trim) {
            None | Some("") => {
                return Err(ConfigError::new(
                    "image is required for DOCKER environments: name a container image such as \"python:3.12-slim\"",
                ));
            }
            Some(_) => {}
        }
        parse_config::<DockerConfig>(&environment.config).map(|_| ())
    }

    async fn launch(
        &self,
        _run_spec: RunSpec,
        _sink: std::sync::Arc<dyn LogSink>,
        _cancel: CancelReceiver,
    ) -> Result<RunHandle, ExecutorError> {
        Err(ExecutorError::new(UNAVAILABLE))
    }
}
