//! What a run's container is: its command, labels and the sandbox every
//! run gets (no network, unprivileged user, no capabilities, read-only root
//! and program files, a small tmpfs `/tmp`, the environment's limits).

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountType};
use playground_executors::{ExecutorError, Resources, RunSpec, Runtime};

/// The label naming a container's run.
pub const LABEL_RUN: &str = "playground.run";
/// The label naming the server instance that started a container.
pub const LABEL_INSTANCE: &str = "playground.instance";
/// The label naming a container's environment.
pub const LABEL_ENVIRONMENT: &str = "playground.environment";

/// Where the program files appear inside the container.
pub(crate) const WORK_MOUNT: &str = "/work";

/// The engine keeps at most this multiple of a run's log cap of its
/// output (so a reattach can replay it), and never less than the floor.
const ENGINE_LOG_FACTOR: u64 = 4;
const ENGINE_LOG_FLOOR: u64 = 1 << 20;
const ENGINE_LOG_CEILING: u64 = 1 << 30;

/// Everything a run's container is made from.
pub(crate) struct ContainerPlan<'a> {
    pub image: &'a str,
    pub run_spec: &'a RunSpec,
    pub instance_id: &'a str,
    pub user: &'a str,
    pub tmp_size_mb: u32,
    /// The run's files on the server, mounted read-only at [`WORK_MOUNT`].
    pub run_dir: &'a Path,
}

/// The interpreter and arguments of a run.
pub(crate) fn command(run_spec: &RunSpec) -> Result<Vec<String>, ExecutorError> {
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

/// The labels every container of a run carries.
pub(crate) fn labels(run_spec: &RunSpec, instance_id: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_RUN.to_owned(), run_spec.run_id.clone()),
        (LABEL_INSTANCE.to_owned(), instance_id.to_owned()),
        (
            LABEL_ENVIRONMENT.to_owned(),
            run_spec.environment.id.clone(),
        ),
    ])
}

/// The create request for a run's container.
pub(crate) fn create_body(plan: &ContainerPlan<'_>) -> Result<ContainerCreateBody, ExecutorError> {
    let run_spec = plan.run_spec;
    let mut argv = command(run_spec)?.into_iter();
    let interpreter = argv.next().expect("a command starts with its interpreter");
    Ok(ContainerCreateBody {
        image: Some(plan.image.to_owned()),
        entrypoint: Some(vec![interpreter]),
        cmd: Some(argv.collect()),
        env: Some(environment_variables(run_spec)?),
        user: Some(plan.user.to_owned()),
        working_dir: Some(WORK_MOUNT.to_owned()),
        labels: Some(labels(run_spec, plan.instance_id)),
        attach_stdin: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(false),
        tty: Some(false),
        host_config: Some(host_config(plan)),
        ..Default::default()
    })
}

fn environment_variables(run_spec: &RunSpec) -> Result<Vec<String>, ExecutorError> {
    let mut env = Vec::with_capacity(run_spec.env.len() + run_spec.secrets.len() + 3);
    for (key, value) in run_spec.all_env() {
        if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
            return Err(ExecutorError::new(format!(
                "the environment variable {key:?} cannot be passed to a container"
            )));
        }
        env.push(format!("{key}={value}"));
    }
    let mut defaults = vec![("HOME", "/tmp")];
    if run_spec.runtime == Runtime::Python {
        defaults.extend([("PYTHONUNBUFFERED", "1"), ("PYTHONDONTWRITEBYTECODE", "1")]);
    }
    for (key, value) in defaults {
        if !run_spec.all_env().any(|(k, _)| k == key) {
            env.push(format!("{key}={value}"));
        }
    }
    Ok(env)
}

fn host_config(plan: &ContainerPlan<'_>) -> HostConfig {
    let Resources {
        memory_mb,
        cpu_millis,
        pids,
        max_log_bytes,
        ..
    } = plan.run_spec.environment.resources;
    let memory = i64::from(memory_mb) * 1024 * 1024;
    let engine_log_bytes = max_log_bytes
        .saturating_mul(ENGINE_LOG_FACTOR)
        .clamp(ENGINE_LOG_FLOOR, ENGINE_LOG_CEILING);
    HostConfig {
        network_mode: Some("none".to_owned()),
        cap_drop: Some(vec!["ALL".to_owned()]),
        security_opt: Some(vec!["no-new-privileges".to_owned()]),
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([(
            "/tmp".to_owned(),
            format!("rw,nosuid,nodev,size={}m", plan.tmp_size_mb),
        )])),
        memory: Some(memory),
        memory_swap: Some(memory),
        nano_cpus: (cpu_millis > 0).then(|| i64::from(cpu_millis) * 1_000_000),
        pids_limit: (pids > 0).then(|| i64::from(pids)),
        // A minimal init as PID 1 passes SIGTERM on to the program and
        // reaps orphans.
        init: Some(true),
        mounts: Some(vec![Mount {
            typ: Some(MountType::BIND),
            source: Some(plan.run_dir.to_string_lossy().into_owned()),
            target: Some(WORK_MOUNT.to_owned()),
            read_only: Some(true),
            ..Default::default()
        }]),
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".to_owned()),
            config: Some(HashMap::from([
                ("max-size".to_owned(), engine_log_bytes.to_string()),
                ("max-file".to_owned(), "1".to_owned()),
            ])),
        }),
        auto_remove: Some(false),
        ..Default::default()
    }
}
