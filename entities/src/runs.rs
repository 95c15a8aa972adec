//! `runs`: one execution of a program version in an environment, and the
//! durable queue: a QUEUED row is claimed by a server, which holds a lease
//! (`lease_owner`, `lease_expires_at`) renewed by its heartbeat.

use sea_orm::entity::prelude::*;

use crate::RunStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub program_id: Uuid,
    pub program_version: i32,
    pub environment_id: Uuid,
    pub owner_id: Uuid,
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub failure_reason: Option<String>,
    /// JSON array of strings.
    pub args: Json,
    /// JSON array of `{name, value}` objects given at `createRun`.
    pub env: Json,
    /// JSON array of credential ids to inject at launch.
    pub credential_ids: Json,
    pub attempt: i32,
    pub retry_of: Option<Uuid>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTimeUtc>,
    /// The executor's name for its object (container id, Job name).
    pub executor_ref: Option<String>,
    /// A pending cancel request (who or what asked), for the run's supervisor.
    pub cancel_reason: Option<String>,
    pub queued_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
