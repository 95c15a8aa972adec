//! The Docker executor plugin: runs SHELL and PYTHON programs in one
//! sandboxed container per run on a Docker Engine (API 1.41 or newer),
//! through bollard.
//!
//! `engine` connects on first use and negotiates the API version once;
//! `image` makes the environment's image present (pulling per the pull
//! policy); `deps` builds and reuses the dependency layer of PYTHON programs
//! with a `requirements.txt`; `files` writes a run's files for the read-only
//! bind mount at `/work`; `container` describes the container and its
//! sandbox; `run` follows it to its end (output, timeout, cancel, exit code
//! or OOM kill) and removes it. Containers carry the labels
//! `playground.run`, `playground.instance` and `playground.environment`, so
//! a restarted server can find, reattach to or remove them.

mod config;
mod container;
mod deps;
mod engine;
mod files;
mod image;
mod run;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::ContainerStateStatusEnum;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
};
use futures::StreamExt;
use playground_executors::{
    CancelReceiver, ConfigError, EnvironmentSpec, Executor, ExecutorError, ExecutorKind, Health,
    LogSink, RunHandle, RunOutcome, RunSpec, Runtime, StartedRun,
};
use tokio::time::Instant;

use crate::container::ContainerPlan;
use crate::deps::{DependencyLayers, LayerSpec};
use crate::engine::{Engine, describe, is_connection_error, is_not_found};
use crate::run::{Output, Supervised};

pub use config::{
    DEFAULT_INSTALL_COMMAND, DEFAULT_TMP_SIZE_MB, DEFAULT_USER, DockerConfig, MAX_TMP_SIZE_MB,
    PullPolicy,
};
pub use container::{LABEL_ENVIRONMENT, LABEL_INSTANCE, LABEL_RUN};
pub use deps::DEPS_REPOSITORY;

/// Server-wide settings of the Docker executor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerSettings {
    /// Engine address like DOCKER_HOST ("unix:///path/docker.sock",
    /// "tcp://…"); `None`: the `DOCKER_HOST` environment variable, else the
    /// local default socket.
    pub host: Option<String>,
    /// This server's instance id; every container gets the label
    /// `playground.instance` with it.
    pub instance_id: String,
    /// Where each run's program files are written (`<work_dir>/<run id>/`,
    /// removed after the run) to be bind-mounted read-only at `/work`. The
    /// engine must see the same path, so it runs on this machine.
    pub work_dir: PathBuf,
}

/// A container of some run, found by its `playground.run` label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelledContainer {
    pub id: String,
    pub run_id: String,
    /// The `playground.instance` label ("" when missing).
    pub instance_id: String,
    pub running: bool,
}

/// Runs programs in containers on a Docker Engine.
pub struct DockerExecutor {
    engine: Engine,
    settings: DockerSettings,
    layers: DependencyLayers,
}

impl DockerExecutor {
    /// Never fails and never blocks: the engine is reached on first use, so
    /// a missing one shows in [`Executor::health`] and launch errors.
    pub fn new(settings: DockerSettings) -> Self {
        Self {
            engine: Engine::new(settings.host.clone()),
            settings,
            layers: DependencyLayers::default(),
        }
    }

    /// How many dependency layers this executor built (layers it found on
    /// the engine do not count).
    pub fn n_builds(&self) -> u64 {
        self.layers.n_builds()
    }

    /// Containers labelled `playground.run` (of any instance), for clean-up
    /// and reattach at start-up.
    pub async fn labelled_containers(&self) -> Result<Vec<LabelledContainer>, ExecutorError> {
        let docker = self.engine.client().await?;
        let filters = HashMap::from([("label", vec![LABEL_RUN])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let containers = match docker.list_containers(Some(options)).await {
            Ok(containers) => containers,
            Err(e) => return Err(self.error("could not list containers", &e).await),
        };
        Ok(containers
            .into_iter()
            .filter_map(|summary| {
                let labels = summary.labels?;
                Some(LabelledContainer {
                    id: summary.id?,
                    run_id: labels.get(LABEL_RUN)?.clone(),
                    instance_id: labels.get(LABEL_INSTANCE).cloned().unwrap_or_default(),
                    running: summary.state
                        == Some(bollard::models::ContainerSummaryStateEnum::RUNNING),
                })
            })
            .collect())
    }

    /// Force-removes a container and its run's files; no error if it is
    /// already gone.
    pub async fn remove_container(&self, id: &str) -> Result<(), ExecutorError> {
        let docker = self.engine.client().await?;
        let run_id = match docker.inspect_container(id, None).await {
            Ok(inspect) => inspect
                .config
                .and_then(|c| c.labels)
                .and_then(|labels| labels.get(LABEL_RUN).cloned()),
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(self.error("could not inspect the container", &e).await),
        };
        let options = bollard::query_parameters::RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match docker.remove_container(id, Some(options)).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(self.error("could not remove the container", &e).await),
        }
        if let Some(run_id) = run_id {
            let dir = files::run_dir(&self.settings.work_dir, &run_id);
            files::remove(dir).await.map_err(|e| {
                ExecutorError::new(format!("could not remove the run's files: {e}"))
            })?;
        }
        Ok(())
    }

    /// An engine error with what was being done.
    async fn error(&self, doing: &str, error: &bollard::errors::Error) -> ExecutorError {
        if is_connection_error(error) {
            let reason = self.engine.explain(error).await.message;
            return ExecutorError::unavailable(format!("{doing}: {reason}"));
        }
        ExecutorError::new(format!("{doing}: {}", describe(error)))
    }

    /// The image a run's container starts from: the environment's, or its
    /// dependency layer for a PYTHON program with a `requirements.txt`.
    async fn run_image(
        &self,
        docker: &Docker,
        run_spec: &RunSpec,
        config: &DockerConfig,
        sink: &dyn LogSink,
    ) -> Result<String, ExecutorError> {
        let image = config_error(config::image_of(&run_spec.environment))?;
        let base_id = image::ensure(&self.engine, docker, image, config.pull_policy, sink).await?;
        if run_spec.runtime != Runtime::Python {
            return Ok(image.to_owned());
        }
        match LayerSpec::of_program(&run_spec.files, image, &base_id, &config.install_command)? {
            Some(spec) => self.layers.ensure(&self.engine, docker, &spec, sink).await,
            None => Ok(image.to_owned()),
        }
    }

    /// Attaches to a created container's output, then starts it.
    async fn attach_and_start(
        &self,
        docker: &Docker,
        id: &str,
    ) -> Result<(Output, run::KeepAlive), ExecutorError> {
        let options = AttachContainerOptionsBuilder::new()
            .stream(true)
            .stdout(true)
            .stderr(true)
            .build();
        let attached = match docker.attach_container(id, Some(options)).await {
            Ok(attached) => attached,
            Err(e) => return Err(self.error("could not attach to the container", &e).await),
        };
        if let Err(e) = docker.start_container(id, None).await {
            return Err(self.error("could not start the container", &e).await);
        }
        Ok((attached.output, Box::new(attached.input)))
    }
}

#[async_trait]
impl Executor for DockerExecutor {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Docker
    }

    async fn health(&self) -> Health {
        let docker = match self.engine.client().await {
            Ok(docker) => docker,
            Err(e) => return Health::Unavailable { reason: e.message },
        };
        match docker.version().await {
            Ok(version) => Health::Available {
                detail: format!(
                    "Docker Engine {} (API {})",
                    version.version.as_deref().unwrap_or("of unknown version"),
                    version
                        .api_version
                        .unwrap_or_else(|| docker.client_version().to_string())
                ),
            },
            Err(e) => Health::Unavailable {
                reason: self.engine.explain(&e).await.message,
            },
        }
    }

    fn validate(&self, environment: &EnvironmentSpec) -> Result<(), ConfigError> {
        DockerConfig::from_environment(environment).map(|_| ())
    }

    async fn prepare(
        &self,
        environment: &EnvironmentSpec,
        events: &dyn LogSink,
    ) -> Result<(), ExecutorError> {
        let config = config_error(DockerConfig::from_environment(environment))?;
        let image = config_error(config::image_of(environment))?;
        let docker = self.engine.client().await?;
        let id = image::ensure(&self.engine, docker, image, config.pull_policy, events).await?;
        events.system(&format!("image {image} is ready ({id})"));
        Ok(())
    }

    async fn launch(
        &self,
        run_spec: RunSpec,
        sink: Arc<dyn LogSink>,
        cancel: CancelReceiver,
    ) -> Result<RunHandle, ExecutorError> {
        let config = config_error(DockerConfig::from_environment(&run_spec.environment))?;
        container::command(&run_spec)?;
        let docker = self.engine.client().await?.clone();
        let run_dir = files::write(&self.settings.work_dir, &run_spec.run_id, &run_spec.files)
            .await
            .map_err(|e| ExecutorError::new(format!("could not write the program's files: {e}")))?;
        // The image is remembered for a few seconds; if it went meanwhile,
        // make sure of it once more and create again.
        let mut attempts = 0;
        let id = loop {
            attempts += 1;
            let image = match self
                .run_image(&docker, &run_spec, &config, sink.as_ref())
                .await
            {
                Ok(image) => image,
                Err(e) => {
                    remove_files(run_dir).await;
                    return Err(e);
                }
            };
            let plan = ContainerPlan {
                image: &image,
                run_spec: &run_spec,
                instance_id: &self.settings.instance_id,
                user: &config.user,
                tmp_size_mb: config.tmp_size_mb,
                run_dir: &run_dir,
            };
            let created = match container::create_body(&plan) {
                Ok(body) => docker.create_container(None, body).await,
                Err(e) => {
                    remove_files(run_dir).await;
                    return Err(e);
                }
            };
            match created {
                Ok(created) => break created.id,
                Err(e) if is_not_found(&e) && attempts == 1 => {
                    if let Ok(base) = config::image_of(&run_spec.environment) {
                        self.engine.forget_image(base);
                    }
                }
                Err(e) => {
                    remove_files(run_dir).await;
                    return Err(self.error("could not create the container", &e).await);
                }
            }
        };
        let (output, keep_alive) = match self.attach_and_start(&docker, &id).await {
            Ok(attached) => attached,
            Err(e) => {
                run::remove(&docker, &id).await;
                remove_files(run_dir).await;
                return Err(e);
            }
        };
        let resources = run_spec.environment.resources;
        let cleanup = run::cleanup(docker.clone(), id.clone(), run_dir.clone());
        let supervised = Supervised {
            docker,
            container_id: id.clone(),
            sink,
            cancel,
            timeout: resources.timeout,
            deadline: deadline_after(resources.timeout),
            memory_mb: resources.memory_mb,
        };
        let task = tokio::spawn(run::supervise(supervised, output, Some(keep_alive)));
        Ok(handle(id, task, cleanup))
    }

    async fn reattach(
        &self,
        run_spec: RunSpec,
        external_ref: &str,
        sink: Arc<dyn LogSink>,
        cancel: CancelReceiver,
    ) -> Option<RunHandle> {
        let docker = match self.engine.client().await {
            Ok(docker) => docker.clone(),
            Err(e) => {
                tracing::warn!(run = %run_spec.run_id, "cannot reattach: {e}");
                return None;
            }
        };
        let inspect = match docker.inspect_container(external_ref, None).await {
            Ok(inspect) => inspect,
            Err(e) => {
                if !is_not_found(&e) {
                    tracing::warn!(run = %run_spec.run_id, "cannot reattach: {}", describe(&e));
                }
                return None;
            }
        };
        let labelled_run = inspect
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|labels| labels.get(LABEL_RUN));
        if labelled_run != Some(&run_spec.run_id) {
            tracing::warn!(
                run = %run_spec.run_id,
                container = external_ref,
                "cannot reattach: the container belongs to another run"
            );
            return None;
        }
        let id = inspect.id.unwrap_or_else(|| external_ref.to_owned());
        let run_dir = files::run_dir(&self.settings.work_dir, &run_spec.run_id);
        let state = inspect.state.unwrap_or_default();
        if state.status == Some(ContainerStateStatusEnum::CREATED) {
            // Created but never started: nothing to follow.
            run::remove(&docker, &id).await;
            remove_files(run_dir).await;
            return None;
        }
        let timeout = run_spec.environment.resources.timeout;
        let ran_for = state
            .started_at
            .as_deref()
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .and_then(|at| SystemTime::now().duration_since(at.into()).ok())
            .unwrap_or_default();
        let options = LogsOptionsBuilder::new()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .build();
        let output: Output = docker.logs(&id, Some(options)).boxed();
        let cleanup = run::cleanup(docker.clone(), id.clone(), run_dir.clone());
        let supervised = Supervised {
            docker,
            container_id: id.clone(),
            sink,
            cancel,
            timeout,
            deadline: deadline_after(timeout.saturating_sub(ran_for)),
            memory_mb: run_spec.environment.resources.memory_mb,
        };
        let task = tokio::spawn(run::supervise(supervised, output, None));
        Some(handle(id, task, cleanup))
    }

    async fn list_started(&self) -> Result<Vec<StartedRun>, ExecutorError> {
        Ok(self
            .labelled_containers()
            .await?
            .into_iter()
            .map(|c| StartedRun {
                run_id: c.run_id,
                external_ref: c.id,
                instance_id: c.instance_id,
                running: c.running,
            })
            .collect())
    }

    async fn discard(&self, external_ref: &str) -> Result<(), ExecutorError> {
        self.remove_container(external_ref).await
    }
}

fn config_error<T>(result: Result<T, ConfigError>) -> Result<T, ExecutorError> {
    result.map_err(|e| ExecutorError::new(e.message))
}

fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

fn handle(
    container_id: String,
    task: tokio::task::JoinHandle<RunOutcome>,
    cleanup: futures::future::BoxFuture<'static, ()>,
) -> RunHandle {
    RunHandle {
        cleanup: Some(cleanup),
        external_ref: Some(container_id),
        outcome: Box::pin(async move {
            task.await.unwrap_or_else(|e| RunOutcome::Failed {
                reason: format!("following the container failed: {e}"),
                exit_code: None,
            })
        }),
    }
}

async fn remove_files(run_dir: PathBuf) {
    if let Err(e) = files::remove(run_dir.clone()).await {
        tracing::warn!(dir = %run_dir.display(), "could not remove a run's files: {e}");
    }
}
