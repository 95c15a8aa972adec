//! GraphQL input types and their conversion into the services' drafts.

use async_graphql::{InputObject, Json};

use super::enums::{ExecutorKind, ProgramRuntime};
use crate::validation::{FileDraft, ResourceDraft};

#[derive(InputObject)]
pub struct FileInput {
    pub path: String,
    /// exactly one of content / contentBase64
    pub content: Option<String>,
    pub content_base64: Option<String>,
}

impl From<FileInput> for FileDraft {
    fn from(input: FileInput) -> Self {
        FileDraft {
            path: input.path,
            content: input.content,
            content_base64: input.content_base64,
        }
    }
}

#[derive(InputObject)]
pub struct CreateProgramInput {
    pub name: String,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub runtime: ProgramRuntime,
    pub entrypoint: String,
    pub files: Vec<FileInput>,
}

#[derive(InputObject)]
pub struct UpdateProgramInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub entrypoint: Option<String>,
    /// replaces the whole file set and creates a new version
    pub files: Option<Vec<FileInput>>,
}

#[derive(InputObject, Default)]
pub struct ResourcesInput {
    pub memory_mb: Option<i32>,
    pub cpu_millis: Option<i32>,
    pub timeout_seconds: Option<i32>,
    pub max_log_bytes: Option<i32>,
    pub pids: Option<i32>,
}

impl From<ResourcesInput> for ResourceDraft {
    fn from(input: ResourcesInput) -> Self {
        ResourceDraft {
            memory_mb: input.memory_mb,
            cpu_millis: input.cpu_millis,
            timeout_seconds: input.timeout_seconds,
            max_log_bytes: input.max_log_bytes,
            pids: input.pids,
        }
    }
}

#[derive(InputObject)]
pub struct CreateEnvironmentInput {
    pub name: String,
    pub executor: ExecutorKind,
    /// container image for DOCKER and KUBERNETES
    pub image: Option<String>,
    pub resources: Option<ResourcesInput>,
    /// executor-specific settings, validated when the environment is created
    pub config: Option<Json<serde_json::Value>>,
}

#[derive(InputObject)]
pub struct EnvVarInput {
    pub name: String,
    pub value: String,
}

#[derive(InputObject)]
pub struct CreateRunInput {
    pub program_id: async_graphql::ID,
    pub environment_id: async_graphql::ID,
    pub args: Option<Vec<String>>,
    pub env: Option<Vec<EnvVarInput>>,
    /// ids of credentials to inject as environment variables named after each credential
    pub credential_ids: Option<Vec<async_graphql::ID>>,
}
