//! `environments`: where runs execute (executor kind, image, resource
//! limits, executor config) and the environment's state.

use sea_orm::entity::prelude::*;

use crate::{EnvironmentStatus, ExecutorKind};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "environments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub executor: ExecutorKind,
    pub image: Option<String>,
    pub memory_mb: i32,
    pub cpu_millis: i32,
    pub timeout_seconds: i32,
    pub max_log_bytes: i64,
    pub pids: i32,
    pub config: Json,
    pub status: EnvironmentStatus,
    pub status_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
