//! Plain data handed to plugins: what to run, where, and with which limits.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Where an environment runs its programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ExecutorKind {
    Wasm,
    Docker,
    Kubernetes,
}

impl ExecutorKind {
    pub const ALL: [ExecutorKind; 3] = [
        ExecutorKind::Wasm,
        ExecutorKind::Docker,
        ExecutorKind::Kubernetes,
    ];
}

impl fmt::Display for ExecutorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExecutorKind::Wasm => "WASM",
            ExecutorKind::Docker => "DOCKER",
            ExecutorKind::Kubernetes => "KUBERNETES",
        })
    }
}

/// What a program is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Runtime {
    Wasm,
    Python,
    Shell,
}

/// The limits every plugin enforces for every run of an environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resources {
    pub memory_mb: u32,
    pub cpu_millis: u32,
    pub timeout: Duration,
    pub max_log_bytes: u64,
    pub pids: u32,
}

/// An environment as a plugin sees it: the executor settings, before or
/// after they are stored.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvironmentSpec {
    /// The environment's id, stable across restarts (for labels, caches).
    pub id: String,
    pub kind: ExecutorKind,
    /// Container image for DOCKER and KUBERNETES.
    pub image: Option<String>,
    pub resources: Resources,
    /// Executor-specific settings (a JSON object), checked by
    /// [`crate::Executor::validate_config`].
    pub config: serde_json::Value,
}

/// One file of a program version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramFile {
    /// Relative path, `/`-separated, never `..` or absolute (checked by the
    /// API before it reaches a plugin).
    pub path: String,
    pub content: Bytes,
}

/// Everything a plugin needs to launch one run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    pub run_id: String,
    pub program_id: String,
    pub program_version: i32,
    pub runtime: Runtime,
    /// The file to start, one of `files`.
    pub entrypoint: String,
    pub files: Vec<ProgramFile>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The run's credentials, also environment variables of the program.
    /// Kept apart so a plugin can deliver them as secrets (a Kubernetes
    /// Secret) and never log them.
    pub secrets: Vec<(String, String)>,
    pub environment: EnvironmentSpec,
}

impl RunSpec {
    /// Every environment variable of the program: `env`, then `secrets`.
    pub fn all_env(&self) -> impl Iterator<Item = &(String, String)> {
        self.env.iter().chain(self.secrets.iter())
    }
}
