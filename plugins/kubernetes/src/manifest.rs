//! What a run is made of on the cluster, built purely: the Job (labels, the
//! sandbox, limits, the command), the ConfigMap holding the program files
//! (mounted read-only at `/work`) and the Secret holding the credentials.
//! [`RunPlan::new`] checks everything that can be checked before the
//! cluster is asked; the builders cannot fail.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, KeyToPath, LocalObjectReference, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, Secret, SecretKeySelector, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use playground_executors::{ExecutorError, RunSpec, Runtime};

use crate::config::{KubernetesConfig, image_of, is_label_value};

/// The label naming a Job's (and its pod's) run.
pub const LABEL_RUN: &str = "playground.run";
/// The label naming the server instance that started a Job.
pub const LABEL_INSTANCE: &str = "playground.instance";
/// The label naming a Job's environment.
pub const LABEL_ENVIRONMENT: &str = "playground.environment";

/// The name of the program's container in the pod.
pub const CONTAINER_NAME: &str = "program";

/// Where the program files appear inside the container.
pub const WORK_MOUNT: &str = "/work";

/// The most program bytes a run may have: a ConfigMap holds at most 1 MiB,
/// keys and metadata included.
pub const MAX_PROGRAM_BYTES: u64 = 1_000_000;

/// The size of the writable `/tmp` (an emptyDir).
pub const TMP_SIZE: &str = "64Mi";

/// The user and group programs run as (`nobody`).
pub const RUN_AS: i64 = 65534;

/// How long Kubernetes lets the program exit after SIGTERM when its Job is
/// deleted (cancel, timeout) before it kills it.
pub const TERMINATION_GRACE_SECONDS: i64 = 5;

/// Mode of the program files: read-only for everyone.
const FILE_MODE: i32 = 0o444;

/// A run checked against everything Kubernetes will require of it, ready
/// to become objects.
#[derive(Clone, Debug)]
pub struct RunPlan {
    run_spec: RunSpec,
    config: KubernetesConfig,
    instance_id: String,
    image: String,
    job_name: String,
    command: Vec<String>,
    /// ConfigMap key → program file path.
    files: Vec<(String, String)>,
    /// Secret key → environment variable name.
    secrets: Vec<(String, String)>,
}

impl RunPlan {
    /// Checks a run: a SHELL or PYTHON program whose entrypoint is one of
    /// its files, small enough for a ConfigMap, with ids usable as labels.
    pub fn new(
        run_spec: &RunSpec,
        config: &KubernetesConfig,
        instance_id: &str,
    ) -> Result<Self, ExecutorError> {
        let image = image_of(&run_spec.environment)
            .map_err(|e| ExecutorError::new(e.message))?
            .to_owned();
        let command = command(run_spec)?;
        for (what, value) in [
            ("run id", run_spec.run_id.as_str()),
            ("environment id", run_spec.environment.id.as_str()),
            ("server instance id", instance_id),
        ] {
            if value.is_empty() || !is_label_value(value) {
                return Err(ExecutorError::new(format!(
                    "the {what} {value:?} cannot be a Kubernetes label value (at most 63 letters, digits, '-', '_' or '.')"
                )));
            }
        }
        let n_bytes: u64 = run_spec.files.iter().map(|f| f.content.len() as u64).sum();
        if n_bytes > MAX_PROGRAM_BYTES {
            return Err(ExecutorError::new(format!(
                "the program is too large for a ConfigMap ({n_bytes} bytes, at most {MAX_PROGRAM_BYTES}): use a DOCKER environment or a smaller program"
            )));
        }
        let files = run_spec
            .files
            .iter()
            .map(|file| Ok((object_key("file-", &file.path)?, file.path.clone())))
            .collect::<Result<Vec<_>, ExecutorError>>()?;
        for (name, value) in run_spec.all_env() {
            if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
                return Err(ExecutorError::new(format!(
                    "the environment variable {name:?} cannot be passed to a container"
                )));
            }
        }
        let secrets = run_spec
            .secrets
            .iter()
            .map(|(name, _)| Ok((object_key("env-", name)?, name.clone())))
            .collect::<Result<Vec<_>, ExecutorError>>()?;
        Ok(Self {
            job_name: job_name(&run_spec.run_id),
            run_spec: run_spec.clone(),
            config: config.clone(),
            instance_id: instance_id.to_owned(),
            image,
            command,
            files,
            secrets,
        })
    }

    pub fn namespace(&self) -> &str {
        &self.config.namespace
    }

    pub fn job_name(&self) -> &str {
        &self.job_name
    }

    pub fn config_map_name(&self) -> String {
        format!("{}-files", self.job_name)
    }

    pub fn secret_name(&self) -> String {
        format!("{}-secrets", self.job_name)
    }

    pub fn run_spec(&self) -> &RunSpec {
        &self.run_spec
    }

    pub fn image(&self) -> &str {
        &self.image
    }

    /// Whether the run has credentials (and so a Secret).
    pub fn has_secrets(&self) -> bool {
        !self.secrets.is_empty()
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_RUN.to_owned(), self.run_spec.run_id.clone()),
            (LABEL_INSTANCE.to_owned(), self.instance_id.clone()),
            (
                LABEL_ENVIRONMENT.to_owned(),
                self.run_spec.environment.id.clone(),
            ),
        ])
    }

    fn metadata(&self, name: String, owner: Option<&Job>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.config.namespace.clone()),
            labels: Some(self.labels()),
            owner_references: owner.map(|job| vec![owner_reference(job)]),
            ..Default::default()
        }
    }
}

/// The Job of a run: one pod, never retried, stopped at the timeout, kept
/// `ttlSecondsAfterFinished` after it ends, sandboxed.
pub fn job_manifest(plan: &RunPlan) -> Job {
    let resources = plan.run_spec.environment.resources;
    let timeout_seconds = resources.timeout.as_secs_f64().ceil().max(1.0) as i64;
    let mut limits = BTreeMap::from([(
        "memory".to_owned(),
        Quantity(format!("{}Mi", resources.memory_mb)),
    )]);
    if resources.cpu_millis > 0 {
        limits.insert(
            "cpu".to_owned(),
            Quantity(format!("{}m", resources.cpu_millis)),
        );
    }
    let container = Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(plan.image.clone()),
        command: Some(plan.command.clone()),
        working_dir: Some(WORK_MOUNT.to_owned()),
        env: Some(environment_variables(plan)),
        resources: Some(ResourceRequirements {
            requests: Some(limits.clone()),
            limits: Some(limits),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "program".to_owned(),
                mount_path: WORK_MOUNT.to_owned(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: "tmp".to_owned(),
                mount_path: "/tmp".to_owned(),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    let config = &plan.config;
    let pod = PodSpec {
        restart_policy: Some("Never".to_owned()),
        automount_service_account_token: Some(false),
        // Service addresses in the environment tell a program about the
        // cluster; it has no business there.
        enable_service_links: Some(false),
        service_account_name: config.service_account_name.clone(),
        termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
        node_selector: (!config.node_selector.is_empty()).then(|| config.node_selector.clone()),
        tolerations: (!config.tolerations.is_empty()).then(|| config.tolerations.clone()),
        image_pull_secrets: (!config.image_pull_secrets.is_empty()).then(|| {
            config
                .image_pull_secrets
                .iter()
                .map(|name| LocalObjectReference { name: name.clone() })
                .collect()
        }),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            fs_group: Some(RUN_AS),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            }),
            ..Default::default()
        }),
        containers: vec![container],
        volumes: Some(vec![
            Volume {
                name: "program".to_owned(),
                config_map: Some(ConfigMapVolumeSource {
                    name: plan.config_map_name(),
                    items: Some(
                        plan.files
                            .iter()
                            .map(|(key, path)| KeyToPath {
                                key: key.clone(),
                                path: path.clone(),
                                mode: None,
                            })
                            .collect(),
                    ),
                    default_mode: Some(FILE_MODE),
                    optional: Some(false),
                }),
                ..Default::default()
            },
            Volume {
                name: "tmp".to_owned(),
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: None,
                    size_limit: Some(Quantity(TMP_SIZE.to_owned())),
                }),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    Job {
        metadata: plan.metadata(plan.job_name.clone(), None),
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(timeout_seconds),
            ttl_seconds_after_finished: Some(
                i32::try_from(config.ttl_seconds_after_finished).unwrap_or(i32::MAX),
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(plan.labels()),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The ConfigMap of a run's program files, owned by its Job (so it goes
/// with it).
pub fn files_config_map(plan: &RunPlan, owner: &Job) -> ConfigMap {
    let binary_data = plan
        .files
        .iter()
        .zip(&plan.run_spec.files)
        .map(|((key, _), file)| (key.clone(), ByteString(file.content.to_vec())))
        .collect();
    ConfigMap {
        metadata: plan.metadata(plan.config_map_name(), Some(owner)),
        binary_data: Some(binary_data),
        ..Default::default()
    }
}

/// The Secret of a run's credentials, owned by its Job; `None` when the run
/// has none.
pub fn credentials_secret(plan: &RunPlan, owner: &Job) -> Option<Secret> {
    if !plan.has_secrets() {
        return None;
    }
    let data = plan
        .secrets
        .iter()
        .zip(&plan.run_spec.secrets)
        .map(|((key, _), (_, value))| (key.clone(), ByteString(value.clone().into_bytes())))
        .collect();
    Some(Secret {
        metadata: plan.metadata(plan.secret_name(), Some(owner)),
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Default::default()
    })
}

/// The Job name of a run: `playground-run-<run id>`, lower-case, only
/// letters, digits and `-`, at most 63 characters.
pub fn job_name(run_id: &str) -> String {
    let mut name: String = format!("playground-run-{run_id}")
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-') => c,
            _ => '-',
        })
        .take(63)
        .collect();
    while name.ends_with('-') {
        name.pop();
    }
    name
}

/// A reference from a dependent to the run's Job. Without
/// `blockOwnerDeletion`, which would need update rights on the Job's
/// finalizers.
fn owner_reference(job: &Job) -> OwnerReference {
    OwnerReference {
        api_version: "batch/v1".to_owned(),
        kind: "Job".to_owned(),
        name: job.metadata.name.clone().unwrap_or_default(),
        uid: job.metadata.uid.clone().unwrap_or_default(),
        controller: Some(false),
        block_owner_deletion: None,
    }
}

/// The interpreter command of a run.
fn command(run_spec: &RunSpec) -> Result<Vec<String>, ExecutorError> {
    let interpreter = match run_spec.runtime {
        Runtime::Shell => "sh",
        Runtime::Python => "python3",
        Runtime::Wasm => {
            return Err(ExecutorError::new("WASM programs run on WASM environments"));
        }
    };
    if !run_spec.files.iter().any(|f| f.path == run_spec.entrypoint) {
        return Err(ExecutorError::new(format!(
            "the entrypoint {} is not one of the program's files",
            run_spec.entrypoint
        )));
    }
    let mut argv = vec![
        interpreter.to_owned(),
        format!("{WORK_MOUNT}/{}", run_spec.entrypoint),
    ];
    argv.extend(run_spec.args.iter().cloned());
    Ok(argv)
}

/// Plain variables, then defaults the run did not set, then each
/// credential from the Secret; a later definition of a name replaces an
/// earlier one.
fn environment_variables(plan: &RunPlan) -> Vec<EnvVar> {
    let run_spec = &plan.run_spec;
    let secret_names: Vec<&str> = plan.secrets.iter().map(|(_, n)| n.as_str()).collect();
    let mut env: Vec<EnvVar> = Vec::new();
    let mut push = |var: EnvVar| {
        env.retain(|e| e.name != var.name);
        env.push(var);
    };
    for (name, value) in &run_spec.env {
        if !secret_names.contains(&name.as_str()) {
            push(EnvVar {
                name: name.clone(),
                value: Some(value.clone()),
                value_from: None,
            });
        }
    }
    let mut defaults = vec![("HOME", "/tmp")];
    if run_spec.runtime == Runtime::Python {
        defaults.extend([("PYTHONUNBUFFERED", "1"), ("PYTHONDONTWRITEBYTECODE", "1")]);
    }
    for (name, value) in defaults {
        if !run_spec.all_env().any(|(n, _)| n == name) {
            push(EnvVar {
                name: name.to_owned(),
                value: Some(value.to_owned()),
                value_from: None,
            });
        }
    }
    for (key, name) in &plan.secrets {
        push(EnvVar {
            name: name.clone(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: plan.secret_name(),
                    key: key.clone(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
        });
    }
    env
}

/// A ConfigMap or Secret key for a name: `prefix` then the name with every
/// byte other than letters, digits, `-` and `.` written `_xx` (hex), so
/// distinct names get distinct keys.
fn object_key(prefix: &str, name: &str) -> Result<String, ExecutorError> {
    let mut key = prefix.to_owned();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.') {
            key.push(char::from(byte));
        } else {
            key.push_str(&format!("_{byte:02x}"));
        }
    }
    if key.len() > 253 {
        return Err(ExecutorError::new(format!(
            "the name {name:?} is too long for a Kubernetes ConfigMap or Secret key"
        )));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_and_distinct() {
        assert_eq!(object_key("file-", "main.py").unwrap(), "file-main.py");
        assert_eq!(
            object_key("file-", "pkg/mod_x.py").unwrap(),
            "file-pkg_2fmod_5fx.py"
        );
        assert_ne!(
            object_key("file-", "a/b").unwrap(),
            object_key("file-", "a_2fb").unwrap()
        );
        assert!(object_key("file-", &"x".repeat(300)).is_err());
    }

    #[test]
    fn job_names_are_dns_labels() {
        assert_eq!(job_name("0190A1B2-c3d4"), "playground-run-0190a1b2-c3d4");
        assert_eq!(job_name("a_b.c"), "playground-run-a-b-c");
        let long = job_name(&"x".repeat(100));
        assert_eq!(long.len(), 63);
        assert!(crate::config::is_dns_label(&job_name(&format!(
            "{}-",
            "y".repeat(47)
        ))));
    }
}

#[cfg(test)]
mod pinned {
    //! The generated objects, pinned whole.

    use std::time::Duration;

    use bytes::Bytes;
    use playground_executors::{EnvironmentSpec, ExecutorKind, ProgramFile, Resources};
    use serde_json::json;

    use super::*;

    fn run_spec() -> RunSpec {
        RunSpec {
            run_id: "0190A1B2-run".to_owned(),
            program_id: "program".to_owned(),
            program_version: 2,
            runtime: Runtime::Shell,
            entrypoint: "main.sh".to_owned(),
            files: vec![
                ProgramFile {
                    path: "main.sh".to_owned(),
                    content: Bytes::from_static(b"echo hi\n"),
                },
                ProgramFile {
                    path: "lib/util.sh".to_owned(),
                    content: Bytes::from_static(b"x=1\n"),
                },
            ],
            args: vec!["a b".to_owned(), "c".to_owned()],
            env: vec![("MODE".to_owned(), "fast".to_owned())],
            secrets: vec![("API_TOKEN".to_owned(), "t0ken".to_owned())],
            environment: EnvironmentSpec {
                id: "env-7".to_owned(),
                kind: ExecutorKind::Kubernetes,
                image: Some("busybox:1.36".to_owned()),
                resources: Resources {
                    memory_mb: 256,
                    cpu_millis: 500,
                    timeout: Duration::from_millis(90_500),
                    max_log_bytes: 1_000_000,
                    pids: 64,
                },
                config: json!({}),
            },
        }
    }

    fn config() -> KubernetesConfig {
        serde_json::from_value(json!({
            "namespace": "runs",
            "serviceAccountName": "runner",
            "nodeSelector": {"pool": "batch"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "runs", "effect": "NoSchedule"}],
            "imagePullSecrets": ["registry"],
            "ttlSecondsAfterFinished": 120,
        }))
        .unwrap()
    }

    fn plan() -> RunPlan {
        RunPlan::new(&run_spec(), &config(), "instance-1").unwrap()
    }

    fn created_job() -> Job {
        let mut job = job_manifest(&plan());
        job.metadata.uid = Some("job-uid".to_owned());
        job
    }

    #[test]
    fn the_job_is_pinned() {
        let labels = json!({
            "playground.environment": "env-7",
            "playground.instance": "instance-1",
            "playground.run": "0190A1B2-run",
        });
        assert_eq!(
            serde_json::to_value(job_manifest(&plan())).unwrap(),
            json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "playground-run-0190a1b2-run", "namespace": "runs", "labels": labels},
                "spec": {
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": 91,
                    "ttlSecondsAfterFinished": 120,
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "restartPolicy": "Never",
                            "automountServiceAccountToken": false,
                            "enableServiceLinks": false,
                            "serviceAccountName": "runner",
                            "terminationGracePeriodSeconds": 5,
                            "nodeSelector": {"pool": "batch"},
                            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "runs", "effect": "NoSchedule"}],
                            "imagePullSecrets": [{"name": "registry"}],
                            "securityContext": {
                                "runAsNonRoot": true,
                                "runAsUser": 65534,
                                "runAsGroup": 65534,
                                "fsGroup": 65534,
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "containers": [{
                                "name": "program",
                                "image": "busybox:1.36",
                                "command": ["sh", "/work/main.sh", "a b", "c"],
                                "workingDir": "/work",
                                "env": [
                                    {"name": "MODE", "value": "fast"},
                                    {"name": "HOME", "value": "/tmp"},
                                    {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {
                                        "name": "playground-run-0190a1b2-run-secrets", "key": "env-API_5fTOKEN", "optional": false}}},
                                ],
                                "resources": {
                                    "requests": {"cpu": "500m", "memory": "256Mi"},
                                    "limits": {"cpu": "500m", "memory": "256Mi"},
                                },
                                "securityContext": {
                                    "readOnlyRootFilesystem": true,
                                    "allowPrivilegeEscalation": false,
                                    "privileged": false,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [
                                    {"name": "program", "mountPath": "/work", "readOnly": true},
                                    {"name": "tmp", "mountPath": "/tmp"},
                                ],
                            }],
                            "volumes": [
                                {"name": "program", "configMap": {
                                    "name": "playground-run-0190a1b2-run-files",
                                    "items": [
                                        {"key": "file-main.sh", "path": "main.sh"},
                                        {"key": "file-lib_2futil.sh", "path": "lib/util.sh"},
                                    ],
                                    "defaultMode": 0o444,
                                    "optional": false,
                                }},
                                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                            ],
                        },
                    },
                },
            })
        );
    }

    #[test]
    fn the_config_map_and_secret_are_pinned() {
        let owner = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "playground-run-0190a1b2-run",
            "uid": "job-uid", "controller": false}]);
        let labels = json!({
            "playground.environment": "env-7",
            "playground.instance": "instance-1",
            "playground.run": "0190A1B2-run",
        });
        assert_eq!(
            serde_json::to_value(files_config_map(&plan(), &created_job())).unwrap(),
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "playground-run-0190a1b2-run-files", "namespace": "runs",
                    "labels": labels, "ownerReferences": owner},
                "binaryData": {"file-main.sh": "ZWNobyBoaQo=", "file-lib_2futil.sh": "eD0xCg=="},
            })
        );
        assert_eq!(
            serde_json::to_value(credentials_secret(&plan(), &created_job()).unwrap()).unwrap(),
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "playground-run-0190a1b2-run-secrets", "namespace": "runs",
                    "labels": labels, "ownerReferences": owner},
                "type": "Opaque",
                "data": {"env-API_5fTOKEN": "dDBrZW4="},
            })
        );
        let mut no_secrets = run_spec();
        no_secrets.secrets.clear();
        let plan = RunPlan::new(&no_secrets, &config(), "instance-1").unwrap();
        assert!(credentials_secret(&plan, &created_job()).is_none());
    }

    #[test]
    fn python_gets_unbuffered_output_and_its_interpreter() {
        let mut spec = run_spec();
        spec.runtime = Runtime::Python;
        spec.entrypoint = "lib/util.sh".to_owned();
        spec.environment.resources.cpu_millis = 0;
        let job = job_manifest(&RunPlan::new(&spec, &config(), "i").unwrap());
        let container = &job.spec.unwrap().template.spec.unwrap().containers[0];
        assert_eq!(
            container.command.as_deref().unwrap(),
            ["python3", "/work/lib/util.sh", "a b", "c"]
        );
        let names: Vec<&str> = container
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "MODE",
                "HOME",
                "PYTHONUNBUFFERED",
                "PYTHONDONTWRITEBYTECODE",
                "API_TOKEN"
            ]
        );
        let limits = container
            .resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap();
        assert!(!limits.contains_key("cpu"), "no CPU limit when none is set");
    }

    #[test]
    fn runs_kubernetes_cannot_take_are_refused() {
        let check = |change: &dyn Fn(&mut RunSpec)| {
            let mut spec = run_spec();
            change(&mut spec);
            RunPlan::new(&spec, &config(), "instance-1")
                .unwrap_err()
                .message
        };
        assert_eq!(
            check(&|s| s.files[0].content = Bytes::from(vec![b'x'; 1_000_000])),
            "the program is too large for a ConfigMap (1000004 bytes, at most 1000000): use a DOCKER environment or a smaller program"
        );
        assert!(check(&|s| s.runtime = Runtime::Wasm).contains("WASM"));
        assert!(check(&|s| s.entrypoint = "missing.sh".to_owned()).contains("entrypoint"));
        assert!(check(&|s| s.run_id = "not a label!".to_owned()).contains("run id"));
        assert!(check(&|s| s.env.push(("A=B".to_owned(), "x".to_owned()))).contains("A=B"));
        assert!(check(&|s| s.environment.image = None).contains("image is required"));
    }
}
