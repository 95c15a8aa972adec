//! The Kubernetes executor plugin: runs SHELL and PYTHON programs as one
//! batch/v1 Job per run, through kube-rs.
//!
//! `cluster` finds the client configuration on first use and explains
//! errors; `manifest` builds the Job (sandboxed pod, limits, deadline,
//! TTL), the ConfigMap of the program files and the Secret of the
//! credentials; `run` follows a Job to its end by watching it and its pod;
//! `status` judges a run from what the watches saw; `logs` streams the
//! pod's output and resumes a broken stream without duplicates or gaps.
//! Jobs and pods carry the labels `playground.run`, `playground.instance`
//! and `playground.environment`, so a restarted server can find, reattach
//! to or remove them. The external reference of a run is
//! `<namespace>/<job name>`.
//!
//! Following a run: `launch` returns once the Job, its ConfigMap and its
//! Secret exist; the outcome comes from watching the Job and its pod. The
//! timeout counts from the launch (image pull and scheduling included), as
//! the Job's `activeDeadlineSeconds` does; the server also stops the run at
//! the timeout itself. The handle's clean-up deletes the Job (background
//! propagation takes the pod, ConfigMap and Secret along) once the output
//! is stored; `ttlSecondsAfterFinished` removes what a stopped server left.
//!
//! The Job is created first, then the ConfigMap and the Secret with an
//! owner reference to it (its uid only exists once it does), so they are
//! garbage-collected with it and nothing is left without an owner if this
//! server stops half-way. The pod cannot start before its volume and secret
//! exist: the kubelet waits and retries, and they are created a few
//! milliseconds after the Job, well before a pod is scheduled.

mod cluster;
mod config;
mod logs;
mod manifest;
mod run;
mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use playground_executors::{
    CancelReceiver, ConfigError, EnvironmentSpec, Executor, ExecutorError, ExecutorKind, Health,
    LogSink, RunHandle, RunOutcome, RunSpec, StartedRun,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::cluster::{Cluster, Connected, Source, describe, explain, is_already_exists, request};
use crate::run::Supervised;

pub use cluster::{NETWORK_POLICY_NAME, network_policy};
pub use config::{
    DEFAULT_NAMESPACE, DEFAULT_TTL_SECONDS_AFTER_FINISHED, KubernetesConfig,
    MAX_TTL_SECONDS_AFTER_FINISHED,
};
pub use manifest::{
    CONTAINER_NAME, LABEL_ENVIRONMENT, LABEL_INSTANCE, LABEL_RUN, MAX_PROGRAM_BYTES, RUN_AS,
    RunPlan, TERMINATION_GRACE_SECONDS, TMP_SIZE, WORK_MOUNT, credentials_secret, files_config_map,
    job_manifest, job_name,
};

/// Every (API group, resource, verbs) the plugin uses, for the Role of
/// Playground's service account in each namespace runs go to.
pub const REQUIRED_PERMISSIONS: &[(&str, &str, &[&str])] = &[
    (
        "batch",
        "jobs",
        &["create", "get", "list", "watch", "delete"],
    ),
    ("", "pods", &["get", "list", "watch"]),
    ("", "pods/log", &["get"]),
    // patch: a ConfigMap or Secret left by an earlier Job of the same name
    // is taken over (its owner and content replaced).
    ("", "configmaps", &["create", "get", "delete", "patch"]),
    ("", "secrets", &["create", "get", "delete", "patch"]),
    ("networking.k8s.io", "networkpolicies", &["create", "get"]),
];

/// Server-wide settings of the Kubernetes executor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesSettings {
    /// Path of a kubeconfig; `None`: `KUBECONFIG` or `~/.kube/config`, else
    /// the pod's service account (in-cluster).
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; `None`: its current context.
    pub context: Option<String>,
    /// This server's instance id; every Job gets the label
    /// `playground.instance` with it.
    pub instance_id: String,
    /// How long problems may last before a run fails.
    pub bounds: Bounds,
}

/// How long a run may be stuck before it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// The image cannot be pulled (or the container created).
    pub image_pull: Duration,
    /// No node can take the pod (cluster autoscalers need a while).
    pub unschedulable: Duration,
    /// The API server cannot be reached while a run is followed.
    pub api_unreachable: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            image_pull: Duration::from_secs(60),
            unschedulable: Duration::from_secs(120),
            api_unreachable: Duration::from_secs(60),
        }
    }
}

/// Runs programs as Kubernetes Jobs.
pub struct KubernetesExecutor {
    cluster: Cluster,
    settings: KubernetesSettings,
}

impl KubernetesExecutor {
    /// Never fails and never blocks: the configuration is read and the API
    /// server reached on first use, so problems show in
    /// [`Executor::health`] and launch errors.
    pub fn new(settings: KubernetesSettings) -> Self {
        Self {
            cluster: Cluster::new(Source::Kubeconfig {
                path: settings.kubeconfig.clone(),
                context: settings.context.clone(),
            }),
            settings,
        }
    }

    /// Uses `config` instead of a kubeconfig (the settings' `kubeconfig`
    /// and `context` are ignored).
    pub fn with_config(settings: KubernetesSettings, config: kube::Config) -> Self {
        Self {
            cluster: Cluster::new(Source::Config(Box::new(config))),
            settings,
        }
    }

    /// Follows a created Job in the background.
    fn follow(
        &self,
        connected: &Connected,
        run_spec: &RunSpec,
        (namespace, job_name): (&str, &str),
        deadline: Instant,
        sink: Arc<dyn LogSink>,
        cancel: CancelReceiver,
    ) -> RunHandle {
        let resources = run_spec.environment.resources;
        let supervised = Supervised {
            client: connected.client.clone(),
            url: connected.url.clone(),
            namespace: namespace.to_owned(),
            job_name: job_name.to_owned(),
            run_id: run_spec.run_id.clone(),
            image: config::image_of(&run_spec.environment)
                .unwrap_or_default()
                .to_owned(),
            memory_mb: resources.memory_mb,
            timeout: resources.timeout,
            deadline,
            bounds: self.settings.bounds,
            sink,
            cancel,
        };
        let task = tokio::spawn(run::supervise(supervised));
        let jobs: Api<Job> = Api::namespaced(connected.client.clone(), namespace);
        RunHandle {
            external_ref: Some(format!("{namespace}/{job_name}")),
            outcome: Box::pin(async move {
                task.await.unwrap_or_else(|e| RunOutcome::Failed {
                    reason: format!("following the Job failed: {e}"),
                    exit_code: None,
                })
            }),
            cleanup: Some(run::cleanup(jobs, job_name.to_owned())),
        }
    }
}

#[async_trait]
impl Executor for KubernetesExecutor {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Kubernetes
    }

    async fn health(&self) -> Health {
        let connected = match self.cluster.connect().await {
            Ok(connected) => connected,
            Err(e) => return Health::Unavailable { reason: e.message },
        };
        let version = tokio::time::timeout(
            Duration::from_secs(10),
            connected.client.apiserver_version(),
        )
        .await;
        match version {
            Ok(Ok(info)) => Health::Available {
                detail: format!("Kubernetes {}", info.git_version),
            },
            Ok(Err(e)) => Health::Unavailable {
                reason: explain(&connected.url, &e),
            },
            Err(_) => Health::Unavailable {
                reason: format!(
                    "the Kubernetes API server at {} did not answer within 10 s",
                    connected.url
                ),
            },
        }
    }

    fn validate(&self, environment: &EnvironmentSpec) -> Result<(), ConfigError> {
        KubernetesConfig::from_environment(environment).map(|_| ())
    }

    async fn prepare(
        &self,
        environment: &EnvironmentSpec,
        events: &dyn LogSink,
    ) -> Result<(), ExecutorError> {
        let config = config_error(KubernetesConfig::from_environment(environment))?;
        let connected = self.cluster.connect().await?;
        self.cluster.used(&config.namespace);
        let created = self
            .cluster
            .ensure_network_policy(connected, &config.namespace)
            .await?;
        events.system(&format!(
            "the NetworkPolicy {NETWORK_POLICY_NAME} denying runs' network access {} in namespace {}",
            if created { "was created" } else { "is in place" },
            config.namespace
        ));
        Ok(())
    }

    async fn launch(
        &self,
        run_spec: RunSpec,
        sink: Arc<dyn LogSink>,
        cancel: CancelReceiver,
    ) -> Result<RunHandle, ExecutorError> {
        let deadline = deadline_after(run_spec.environment.resources.timeout);
        let config = config_error(KubernetesConfig::from_environment(&run_spec.environment))?;
        let plan = RunPlan::new(&run_spec, &config, &self.settings.instance_id)?;
        let connected = self.cluster.connect().await?;
        let namespace = plan.namespace();
        self.cluster.used(namespace);
        self.cluster
            .ensure_network_policy(connected, namespace)
            .await?;
        let jobs: Api<Job> = Api::namespaced(connected.client.clone(), namespace);
        let created = request(connected, "could not create the Job", async {
            match jobs
                .create(&PostParams::default(), &job_manifest(&plan))
                .await
            {
                Ok(job) => Ok(Some(job)),
                Err(e) if is_already_exists(&e) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await?;
        let Some(job) = created else {
            return Err(ExecutorError::new(format!(
                "could not create the Job: a Job {namespace}/{} already exists for this run",
                plan.job_name()
            )));
        };
        let dependents = async {
            let config_map = files_config_map(&plan, &job);
            create_or_take_over(connected, namespace, &config_map, "the program's ConfigMap")
                .await?;
            if let Some(secret) = credentials_secret(&plan, &job) {
                create_or_take_over(connected, namespace, &secret, "the credentials' Secret")
                    .await?;
            }
            Ok::<(), ExecutorError>(())
        };
        if let Err(e) = dependents.await {
            if let Err(remove) = run::remove_job(&jobs, plan.job_name()).await {
                tracing::warn!(
                    job = plan.job_name(),
                    "could not remove a Job whose launch failed: {}",
                    describe(&remove)
                );
            }
            return Err(e);
        }
        Ok(self.follow(
            connected,
            &run_spec,
            (namespace, plan.job_name()),
            deadline,
            sink,
            cancel,
        ))
    }

    async fn reattach(
        &self,
        run_spec: RunSpec,
        external_ref: &str,
        sink: Arc<dyn LogSink>,
        cancel: CancelReceiver,
    ) -> Option<RunHandle> {
        let run_id = run_spec.run_id.clone();
        let Some((namespace, job_name)) = parse_ref(external_ref) else {
            tracing::warn!(run = %run_id, external_ref, "cannot reattach: not a <namespace>/<job> reference");
            return None;
        };
        let connected = match self.cluster.connect().await {
            Ok(connected) => connected,
            Err(e) => {
                tracing::warn!(run = %run_id, "cannot reattach: {e}");
                return None;
            }
        };
        let jobs: Api<Job> = Api::namespaced(connected.client.clone(), namespace);
        let job = match request(connected, "could not read the Job", jobs.get_opt(job_name)).await {
            Ok(Some(job)) => job,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(run = %run_id, "cannot reattach: {e}");
                return None;
            }
        };
        let labelled_run = job.metadata.labels.as_ref().and_then(|l| l.get(LABEL_RUN));
        if labelled_run != Some(&run_id) {
            tracing::warn!(run = %run_id, external_ref, "cannot reattach: the Job belongs to another run");
            return None;
        }
        self.cluster.used(namespace);
        let timeout = run_spec.environment.resources.timeout;
        let ran_for = job
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|created| {
                let elapsed = jiff::Timestamp::now().duration_since(created.0);
                Duration::try_from(elapsed).ok()
            })
            .unwrap_or_default();
        let deadline = deadline_after(timeout.saturating_sub(ran_for));
        Some(self.follow(
            connected,
            &run_spec,
            (namespace, job_name),
            deadline,
            sink,
            cancel,
        ))
    }

    async fn list_started(&self) -> Result<Vec<StartedRun>, ExecutorError> {
        let connected = self.cluster.connect().await?;
        let mut started = Vec::new();
        let mut errors = Vec::new();
        let namespaces = self.cluster.namespaces(connected);
        for namespace in &namespaces {
            let jobs: Api<Job> = Api::namespaced(connected.client.clone(), namespace);
            let listed = request(
                connected,
                &format!("could not list the Jobs in namespace {namespace}"),
                jobs.list(&ListParams::default().labels(LABEL_RUN)),
            )
            .await;
            match listed {
                Ok(list) => started.extend(
                    list.items
                        .iter()
                        .filter_map(|job| started_run(namespace, job)),
                ),
                Err(e) => {
                    tracing::warn!("{e}");
                    errors.push(e);
                }
            }
        }
        match errors.into_iter().next() {
            Some(error) if started.is_empty() && namespaces.len() == 1 => Err(error),
            _ => Ok(started),
        }
    }

    async fn discard(&self, external_ref: &str) -> Result<(), ExecutorError> {
        let Some((namespace, job_name)) = parse_ref(external_ref) else {
            return Err(ExecutorError::new(format!(
                "{external_ref:?} is not a <namespace>/<job> reference"
            )));
        };
        let connected = self.cluster.connect().await?;
        let jobs: Api<Job> = Api::namespaced(connected.client.clone(), namespace);
        request(
            connected,
            "could not delete the Job",
            run::remove_job(&jobs, job_name),
        )
        .await
    }
}

/// Creates a run's ConfigMap or Secret; one left by an earlier Job of the
/// same name gets the new owner and content.
async fn create_or_take_over<K>(
    connected: &Connected,
    namespace: &str,
    object: &K,
    what: &str,
) -> Result<(), ExecutorError>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(connected.client.clone(), namespace);
    let name = object.meta().name.clone().unwrap_or_default();
    request(connected, &format!("could not create {what}"), async {
        match api.create(&PostParams::default(), object).await {
            Ok(_) => Ok(()),
            Err(e) if is_already_exists(&e) => api
                .patch(&name, &PatchParams::default(), &Patch::Merge(object))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        }
    })
    .await
}

/// A listed Job as something a run left.
fn started_run(namespace: &str, job: &Job) -> Option<StartedRun> {
    let labels = job.metadata.labels.as_ref()?;
    let finished = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True")
        });
    Some(StartedRun {
        run_id: labels.get(LABEL_RUN)?.clone(),
        external_ref: format!("{namespace}/{}", job.metadata.name.as_deref()?),
        instance_id: labels.get(LABEL_INSTANCE).cloned().unwrap_or_default(),
        running: !finished && job.metadata.deletion_timestamp.is_none(),
    })
}

/// `<namespace>/<job name>`.
fn parse_ref(external_ref: &str) -> Option<(&str, &str)> {
    external_ref
        .split_once('/')
        .filter(|(namespace, name)| !namespace.is_empty() && !name.is_empty())
}

fn config_error<T>(result: Result<T, ConfigError>) -> Result<T, ExecutorError> {
    result.map_err(|e| ExecutorError::new(e.message))
}

fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}
