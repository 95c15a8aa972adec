//! The enumerations stored as text columns. Their stored values are the same
//! upper-case names the API uses, so a row reads the same in `psql` as in
//! GraphiQL.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A user's global role.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Role {
    #[sea_orm(string_value = "ADMIN")]
    Admin,
    #[sea_orm(string_value = "DEVELOPER")]
    Developer,
    #[sea_orm(string_value = "VIEWER")]
    Viewer,
}

/// What a program is written in, which decides how an executor starts it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum ProgramRuntime {
    #[sea_orm(string_value = "WASM")]
    Wasm,
    #[sea_orm(string_value = "PYTHON")]
    Python,
    #[sea_orm(string_value = "SHELL")]
    Shell,
}

/// Where an environment runs its programs.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum ExecutorKind {
    #[sea_orm(string_value = "WASM")]
    Wasm,
    #[sea_orm(string_value = "DOCKER")]
    Docker,
    #[sea_orm(string_value = "KUBERNETES")]
    Kubernetes,
}

/// The environment state machine:
/// `CREATING → READY → STARTING → RUNNING → STOPPING → STOPPED`, plus `FAILED`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum EnvironmentStatus {
    #[sea_orm(string_value = "CREATING")]
    Creating,
    #[sea_orm(string_value = "READY")]
    Ready,
    #[sea_orm(string_value = "STARTING")]
    Starting,
    #[sea_orm(string_value = "RUNNING")]
    Running,
    #[sea_orm(string_value = "STOPPING")]
    Stopping,
    #[sea_orm(string_value = "STOPPED")]
    Stopped,
    #[sea_orm(string_value = "FAILED")]
    Failed,
}

/// The run state machine:
/// `QUEUED → STARTING → RUNNING → SUCCEEDED | FAILED | CANCELLED | TIMED_OUT`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum RunStatus {
    #[sea_orm(string_value = "QUEUED")]
    Queued,
    #[sea_orm(string_value = "STARTING")]
    Starting,
    #[sea_orm(string_value = "RUNNING")]
    Running,
    #[sea_orm(string_value = "SUCCEEDED")]
    Succeeded,
    #[sea_orm(string_value = "FAILED")]
    Failed,
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
    #[sea_orm(string_value = "TIMED_OUT")]
    TimedOut,
}

impl RunStatus {
    /// Whether no further transition can happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled | RunStatus::TimedOut
        )
    }
}

/// Which stream a log line came from; `SYSTEM` lines are written by
/// Playground itself (lifecycle events, truncation notices).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(8))")]
pub enum LogStream {
    #[sea_orm(string_value = "STDOUT")]
    Stdout,
    #[sea_orm(string_value = "STDERR")]
    Stderr,
    #[sea_orm(string_value = "SYSTEM")]
    System,
}

/// The kind of object a grant is on.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum AssetKind {
    #[sea_orm(string_value = "PROGRAM")]
    Program,
    #[sea_orm(string_value = "ENVIRONMENT")]
    Environment,
}
